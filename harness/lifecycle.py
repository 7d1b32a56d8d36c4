"""A session's life: SIGTERM ends it like Ctrl-C, leftovers of killed sessions are removed at the
next start, an explicitly chosen engine must work before the first test, and no secret reaches a
report. Registered by ``harness.plugin`` as the ``cdc_lifecycle`` plugin.

Ownership of what a session leaves behind:

- a private data dir (``$TMPDIR/cdc-<engine>-*``) holds an owner file (:func:`write_owner`):
  the pid and start time of the process that made it. It is a leftover once that process is gone;
  a dir without an owner file, or one this user cannot read, is never touched;
- on an external server, a session holds a *lease* while it runs: a connection whose
  ``application_name`` is ``cdc-lease <prefix>`` (see ``containers.postgres``). Slots,
  publications and schemas named ``cdc_…`` that no live lease's prefix covers are leftovers —
  this works across machines and users, where a pid would not;
- a container (Docker backend) carries the label ``org.cdc-harness.owner`` = ``pid:start`` of the
  process that started it: a leftover once that process is gone (``containers.docker_api``), like
  the podman service a killed session started in its private dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.secrets import mask_text, one_line

OWNER_FILE = ".cdc-owner"
DIR_GLOB = "cdc-*-*"
#: how long the sweep waits for the processes of a stopped leftover server to exit
USERS_WAIT_S = 5.0


# -- SIGTERM ----------------------------------------------------------------------------------
def _sigterm(signum: int, frame: Any) -> None:
    # a second SIGTERM while the teardown runs ends the process at once (as with kill's default)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt("SIGTERM")


def install_sigterm() -> Any:
    """Make SIGTERM end the session like Ctrl-C: ``KeyboardInterrupt`` in the main thread, so
    pytest stops, fixtures and engines are torn down and the exit status is non-zero (2).

    Installed only from the main thread and only over the default action (a handler someone
    else installed wins). Returns the previous handler (for ``restore_sigterm``), or None.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is _sigterm:
        return None
    if previous not in (signal.SIG_DFL, None):
        return None
    signal.signal(signal.SIGTERM, _sigterm)
    return previous


def restore_sigterm(previous: Any) -> None:
    """Put back the handler ``install_sigterm`` replaced (pytester runs pytest in-process)."""
    if previous is not None and threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) is _sigterm:
            signal.signal(signal.SIGTERM, previous)


# -- owner files ------------------------------------------------------------------------------
def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 else None


def process_start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), None when it is gone: with the
    pid, the identity of an owner (owner files, container labels) that survives pid reuse."""
    return _start_time(pid)


def pid_alive(pid: int, start: str | None = None) -> bool:
    """True while process ``pid`` runs (and, given ``start``, is the same process, not a reuse)."""
    if pid <= 0:
        return False
    proc = Path(f"/proc/{pid}/stat")
    if proc.parent.parent.exists() and Path("/proc/self").exists():
        try:
            stat = proc.read_text()
        except OSError:
            return False
        fields = stat.rsplit(")", 1)[1].split()
        if fields and fields[0] == "Z":  # a zombie is dead
            return False
        return start is None or (len(fields) > 19 and fields[19] == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_owner(path: Path, **extra: Any) -> None:
    """Mark ``path`` as owned by this process (pid + start time), for the leftover sweep.

    An engine that writes one should make its server die with its owner (a parent-death guard,
    as ``containers.postgres`` does) or teach ``sweep_leftovers`` to stop it: the sweep never
    removes a dir some live process still works in.
    """
    pid = os.getpid()
    doc = {"pid": pid, "start": _start_time(pid), "created": time.time(), **extra}
    (Path(path) / OWNER_FILE).write_text(json.dumps(doc))


def read_owner(path: Path) -> dict | None:
    """The owner record of ``path``, or None (no file, unreadable, not ours to judge)."""
    try:
        doc = json.loads((Path(path) / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("pid"), int) else None


def owner_alive(doc: dict) -> bool:
    """True while the process that wrote ``doc`` runs."""
    return pid_alive(doc["pid"], doc.get("start"))


def dead_dirs(tmp: Path | None = None) -> list[Path]:
    """Private dirs whose owner process is gone (readable owner files only)."""
    root = Path(tmp or tempfile.gettempdir())
    out = []
    for path in sorted(root.glob(DIR_GLOB)):
        with contextlib.suppress(OSError):
            if not path.is_dir() or path.is_symlink():
                continue
            doc = read_owner(path)
            if doc is not None and not owner_alive(doc):
                out.append(path)
    return out


# -- the leftover sweep -----------------------------------------------------------------------
def sweep_leftovers(options: Any, tmp: Path | None = None) -> list[str]:
    """Remove what killed sessions left: their servers and data dirs here, and their slots,
    publications and schemas on the external servers named in ``options``. Returns what was
    removed, as short phrases (empty: nothing). Never raises: a sweep must not stop a run."""
    removed: list[str] = []
    try:
        from containers import postgres
    except ImportError:  # psycopg missing: nothing of ours can be running either
        postgres = None
    try:
        from containers import mysql
    except ImportError:
        mysql = None
    from containers import docker_api, jvm

    for path in dead_dirs(tmp):
        for engine in (postgres, mysql, jvm, docker_api):
            if engine is not None:
                with contextlib.suppress(Exception):
                    removed += engine.stop_leftover_server(path)
        users = _users_of(path, wait_s=USERS_WAIT_S)
        if users:  # a server the sweep does not know how to stop: never pull its data away
            removed.append(f"nothing in {path} (still used by pid {', '.join(map(str, users))})")
            continue
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(f"data dir {path}")
    with contextlib.suppress(Exception):
        removed += docker_api.sweep_containers()
    url = (getattr(options, "engine_urls", None) or {}).get("postgres")
    if url and postgres is not None:
        with contextlib.suppress(Exception):
            removed += postgres.sweep_external(url)
    return removed


def _users_of(path: Path, wait_s: float = 0.0) -> list[int]:
    """Live processes whose working directory or command line is in ``path`` (waits up to
    ``wait_s`` for them to go: a stopped postmaster's backends exit a moment after it)."""
    root = str(Path(path).resolve())
    deadline = time.monotonic() + wait_s
    while True:
        pids = []
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                cwd = os.readlink(proc / "cwd")
                cmd = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
                inside = cwd == root or cwd.startswith(root + "/") or any(
                    a == root or a.startswith(root + "/") for a in cmd)
                if inside and pid_alive(int(proc.name)):
                    pids.append(int(proc.name))
        if not pids or time.monotonic() >= deadline:
            return pids
        time.sleep(0.05)


# -- the session hooks ------------------------------------------------------------------------
def _explicit(options: Any, role: str) -> str | None:
    """How the user asked for ``role`` explicitly (the option to name), or None for ``auto``."""
    if role in (options.engine_urls or {}):
        return f"--cdc-engine-url {role}=…"
    if options.engines != "auto":
        return f"--cdc-engines={options.engines}"
    return None


def selected_cases(items: list[pytest.Item]) -> list[Any]:
    """The cases of the selected tests (after ``-k``/``-m`` and every other deselection)."""
    out = []
    for item in items:
        case = getattr(getattr(item, "callspec", None), "params", {}).get("cdc_case")
        if case is not None and case not in out:
            out.append(case)
    return out


def check_explicit_engines(state: Any, cases: list[Any] | None = None) -> str | None:
    """Start every server engine an explicitly chosen backend must give ``cases`` (default: the
    whole selected grid).

    Returns None when all started (they stay started and cached for the tests), else one line
    saying which engine cannot be used and why (with the fix, the password masked).
    """
    roles: list[str] = []
    for case in state.cases() if cases is None else cases:
        for role in case.roles:
            if role not in roles and not state.families.role(role).per_run:
                roles.append(role)
    for role in roles:
        how = _explicit(state.options, role)
        if how is None:
            continue
        try:
            state.server_engine(role)
        except HarnessError as exc:
            return f"{how}: the {role} engine cannot be used: {one_line(exc)}"
        except Exception as exc:  # noqa: BLE001 - any failure here must be one line, not a traceback
            state.engine_errors.setdefault(role, one_line(exc))
            return f"{how}: the {role} engine cannot be used: {type(exc).__name__}: {one_line(exc)}"
    return None


def _write_line(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    else:  # pragma: no cover - -p no:terminal
        print(line)


ENGINE_FAILURE: pytest.StashKey[str] = pytest.StashKey()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Sweep leftovers of killed sessions, once: in the xdist controller or the only process."""
    from fixtures.session import STASH

    config = session.config
    state = config.stash.get(STASH, None)
    if state is None or hasattr(config, "workerinput"):
        return
    removed = sweep_leftovers(state.options)
    if removed:
        _write_line(config, mask_text(f"cdc: removed leftovers of killed sessions: {'; '.join(removed)}"))


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Before the first test: start the engines explicitly chosen for the selected cases.

    Without xdist an unusable one is a usage error (one line, exit 4). In an xdist worker it
    sets ``session.shouldfail``: the worker runs nothing (``pytest_runtest_protocol``) and the
    controller stops the session with that line (exit 2). ``--collect-only`` starts nothing.
    """
    from fixtures.session import STASH

    config = session.config
    state = config.stash.get(STASH, None)
    if state is None or config.option.collectonly:
        return
    line = check_explicit_engines(state, selected_cases(session.items))
    if line is None:
        return
    line = mask_text(line)
    if not hasattr(config, "workerinput"):
        raise pytest.UsageError(line)
    config.stash[ENGINE_FAILURE] = line
    session.shouldfail = line


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """In an xdist worker whose explicit engine failed: run nothing (the session is stopping)."""
    return True if item.config.stash.get(ENGINE_FAILURE, None) else None


# -- masking what reports carry ---------------------------------------------------------------
def _mask_report(report: pytest.TestReport, call: pytest.CallInfo | None = None) -> None:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        reason = mask_text(str(longrepr[2]))
        if reason != longrepr[2]:
            report.longrepr = (longrepr[0], longrepr[1], reason)
    elif longrepr is not None:
        text = str(longrepr)
        masked = mask_text(text)
        if masked != text:
            report.longrepr = masked
    sections = []
    for title, content in report.sections:
        sections.append((title, mask_text(content)))
    report.sections = sections
    exc = call.excinfo.value if call is not None and call.excinfo is not None else None
    if exc is not None:
        text = str(exc)
        masked = mask_text(text)
        if masked != text:  # allure-pytest reports excinfo.exconly(): mask the exception itself
            with contextlib.suppress(Exception):
                if isinstance(getattr(exc, "msg", None), str):  # pytest's skip/fail/exit outcomes
                    exc.msg = mask_text(exc.msg)
                exc.args = (masked,)


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Mask secrets in every test report (failure text, skip reason, captured output) before
    the terminal, JUnit XML or Allure see it: the last line of defence if a driver quotes a URL."""
    outcome = yield
    with contextlib.suppress(Exception):
        _mask_report(outcome.get_result(), call)
