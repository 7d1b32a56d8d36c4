"""Helpers for tests that run the harness in a child pytest against servers they start themselves."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITE = str(ROOT / "suites" / "test_conformance.py")
USER, PASSWORD = "cdcuser", "Pl4ntedS3cret"
CASE = "pg-pgoutput-crud-replica-identity-default"


def require_local_postgres() -> None:
    """Skip (with the fix) where the PostgreSQL binaries or drivers are missing."""
    pytest.importorskip("psycopg", reason="fix: pip install -e '.[postgres]'")
    pytest.importorskip("mirakuru", reason="fix: pip install -e '.[postgres]'")
    from containers.postgres import LocalPostgres

    missing = LocalPostgres.available()
    if missing:
        pytest.skip(missing)


@contextmanager
def server(**settings: str) -> Iterator[tuple[object, str]]:
    """A private local server with a superuser ``cdcuser``/``Pl4ntedS3cret`` owning database ``db``.

    Yields ``(engine, url)``; the URL is the external one a user would pass.
    """
    require_local_postgres()
    from containers.postgres import LocalPostgres

    engine = LocalPostgres(prefix="cdc_testsrv_", settings=settings or None)
    engine.start()
    try:
        with engine.connect() as conn:
            conn.execute(f"CREATE ROLE {USER} LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
            conn.execute(f"CREATE DATABASE db OWNER {USER}")
        yield engine, f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{engine.port}/db"
    finally:
        engine.stop()


@dataclass
class Work:
    """Where a child run writes: ``out`` (results, reports, its output) and ``tmpdir``, its private
    TMPDIR (its engines' data dirs and its leftover sweep stay there). ``tmpdir`` lies outside
    pytest's 0700 basetemp so that the ``postgres`` user can reach its data dirs."""

    out: Path
    tmpdir: Path


@pytest.fixture(name="work")
def work_fixture(tmp_path: Path) -> Iterator[Work]:
    """A ``Work`` whose ``tmpdir`` (and any server a child left in it) is removed afterwards."""
    tmpdir = Path(tempfile.mkdtemp(prefix="cdctest-"))
    os.chmod(tmpdir, 0o711)
    try:
        yield Work(tmp_path, tmpdir)
    finally:
        for pid in postmasters(tmpdir):  # a failed test must not leave a server behind
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        shutil.rmtree(tmpdir, ignore_errors=True)


def env(work: Work, **extra: str) -> dict[str, str]:
    """The child's environment: its private TMPDIR, the project on the path."""
    out = {**os.environ, "TMPDIR": str(work.tmpdir), "PYTHONPATH": str(ROOT), **extra}
    out.pop("PYTEST_XDIST_WORKER", None)
    out.pop("PYTEST_ADDOPTS", None)
    return out


def pytest_args(work: Work, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", SUITE, "-p", "no:cacheprovider", "--rootdir", str(ROOT),
            f"--cdc-results={work.out / 'results.json'}", *args]


def run(work: Work, *args: str, timeout: float = 120, **extra_env: str) -> subprocess.CompletedProcess:
    """Run the conformance suite in a child pytest; stdout and stderr captured as text."""
    return subprocess.run(pytest_args(work, *args), cwd=ROOT, env=env(work, **extra_env), capture_output=True,
                          text=True, timeout=timeout)


def start(work: Work, *args: str, **extra_env: str) -> subprocess.Popen:
    """Start the conformance suite in a child pytest (output into ``out/out.txt``)."""
    with open(work.out / "out.txt", "w") as out:
        child = subprocess.Popen(pytest_args(work, *args), cwd=ROOT, env=env(work, **extra_env), stdout=out,
                                 stderr=subprocess.STDOUT, text=True)
    child.out_path = work.out / "out.txt"  # type: ignore[attr-defined]
    return child


def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def postmasters(under: Path) -> list[int]:
    """Pids of running postmasters whose data dir is below ``under``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and cmd and cmd[0].endswith(b"/postgres") and any(
                part.startswith(str(under).encode()) for part in cmd):
            pids.append(int(proc.name))
    return pids


def harness_objects(url: str, prefix: str = "cdc_") -> dict[str, list[str]]:
    """Slots, publications and schemas named ``prefix…`` on the server at ``url`` (its database)."""
    from containers.postgres import connect

    like = prefix.replace("_", r"\_") + "%"
    with connect(url) as conn:
        return {
            "slots": [r[0] for r in conn.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE %s", (like,))],
            "publications": [r[0] for r in conn.execute(
                "SELECT pubname FROM pg_publication WHERE pubname LIKE %s", (like,))],
            "schemas": [r[0] for r in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (like,))],
        }
