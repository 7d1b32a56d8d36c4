"""Explicit means required, nothing left behind: the session's start and end around engines.

An engine the user chose (``--cdc-engines=local|external``, a ``--cdc-engine-url``) that cannot
be used stops the session before the first test with one line and a non-zero exit; ``auto``
skips with the reason. SIGTERM ends a session like Ctrl-C; a killed session's servers die with
it and what it left (data dirs, slots, publications, schemas) is removed by the next session.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pg_helpers import (
    CASE,
    PASSWORD,
    Work,
    harness_objects,
    postmasters,
    require_local_postgres,
    run,
    server,
    start,
    wait_for,
    work_fixture,  # noqa: F401 - the ``work`` fixture
)


@dataclass
class Done:
    """A finished child run: its exit status and its whole terminal output."""

    returncode: int
    out: str


def one_error_line(proc) -> str:  # noqa: ANN001
    """The run's output holds exactly one ERROR line and no traceback; return it."""
    out = proc.out if isinstance(proc, Done) else proc.stdout + proc.stderr
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1, out
    return errors[0]


@pytest.fixture(scope="module")
def logical_url():
    with server() as (_, url):
        yield url


@pytest.fixture(scope="module")
def replica_url():
    with server(wal_level="replica") as (_, url):
        yield url


# -- explicit means required ------------------------------------------------------------------
def _runs(logical_url: str, replica_url: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    bad_password = logical_url.replace(PASSWORD, "WrongPassw0rd")
    url = "--cdc-engine-url=postgres="
    return {
        "external-no-url": (["-k", CASE, "--cdc-engines=external"], {}),
        "wrong-password": (["-k", CASE, "--cdc-engines=external", url + bad_password], {}),
        "port-1": (["-k", CASE, url + f"postgresql://u:{PASSWORD}@127.0.0.1:1/db"], {}),
        "replica": (["-k", CASE, "--cdc-engines=external", url + replica_url], {}),
        "local-no-binaries": (["-k", CASE, "--cdc-engines=local"], {"CDC_PG_BIN": "/nonexistent"}),
        "auto-no-binaries": (["-k", CASE, "-rs"], {"CDC_PG_BIN": "/nonexistent",
                                                   "DOCKER_HOST": "unix:///nonexistent.sock"}),
        "unknown-family": (["--cdc-engine-url", f"nosuchfamily=postgresql://u:{PASSWORD}@127.0.0.1:1/db"], {}),
        "no-family": (["--cdc-engine-url", f"postgresql://u:{PASSWORD}@127.0.0.1:1/db?password={PASSWORD}"], {}),
        # libpq quotes a malformed URL whole, or its bad token
        "bracket": (["-k", CASE, url + f"postgresql://cdcuser:{PASSWORD}@[127.0.0.1/db"], {}),
        "percent": (["-k", CASE, url + "postgresql://cdcuser:Pl4nted%ZZS3cret@127.0.0.1:1/db"], {}),
        "scheme": (["-k", CASE, url + f"postgresql//cdcuser:{PASSWORD}@127.0.0.1:1/db"], {}),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, logical_url: str, replica_url: str):
    """Every child run of this section, started at once (each alone would cost a pytest start-up)."""
    started, tmpdirs = {}, []
    try:
        for name, (args, extra_env) in _runs(logical_url, replica_url).items():
            work = Work(tmp_path_factory.mktemp(name), Path(tempfile.mkdtemp(prefix="cdctest-")))
            tmpdirs.append(work.tmpdir)
            started[name] = start(work, *args, **extra_env)
        done = {}
        for name, child in started.items():
            child.wait(timeout=180)
            done[name] = Done(child.returncode, child.out_path.read_text())
        yield done
    finally:
        for child in started.values():
            if child.poll() is None:
                child.kill()
        for path in tmpdirs:
            shutil.rmtree(path, ignore_errors=True)


def test_external_without_url_fails_at_start(runs) -> None:  # noqa: ANN001
    proc = runs["external-no-url"]
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.out
    line = one_error_line(proc)
    assert "--cdc-engines=external" in line and "needs --cdc-engine-url postgres=" in line


def test_wrong_password_fails_at_start(runs) -> None:  # noqa: ANN001
    proc = runs["wrong-password"]
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.out
    line = one_error_line(proc)
    assert "password authentication failed" in line and "cdcuser:***@" in line
    assert "WrongPassw0rd" not in proc.out


def test_refused_port_fails_at_start_even_under_auto(runs) -> None:  # noqa: ANN001
    """A URL is explicit whatever --cdc-engines says."""
    proc = runs["port-1"]
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.out
    assert "Connection refused" in one_error_line(proc)
    assert PASSWORD not in proc.out


def test_wal_level_replica_fails_at_start(runs) -> None:  # noqa: ANN001
    proc = runs["replica"]
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.out
    line = one_error_line(proc)
    assert "wal_level is 'replica'" in line and "ALTER SYSTEM SET wal_level = logical" in line


def test_local_without_binaries_fails_at_start(runs) -> None:  # noqa: ANN001
    proc = runs["local-no-binaries"]
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.out
    line = one_error_line(proc)
    assert "--cdc-engines=local" in line and "/nonexistent/initdb not found" in line and "fix:" in line


def test_auto_without_binaries_still_skips(runs) -> None:  # noqa: ANN001
    proc = runs["auto-no-binaries"]
    assert proc.returncode == pytest.ExitCode.OK, proc.out
    assert "1 skipped" in proc.out and "/nonexistent/initdb not found" in proc.out


def test_unknown_family_in_url_is_a_usage_error(runs) -> None:  # noqa: ANN001
    proc = runs["unknown-family"]
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.out
    assert "'nosuchfamily', which is no engine role" in one_error_line(proc)
    assert PASSWORD not in proc.out


def test_url_without_family_is_a_usage_error_without_the_password(runs) -> None:  # noqa: ANN001
    proc = runs["no-family"]
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.out
    assert "--cdc-engine-url wants FAMILY=URL" in one_error_line(proc)
    assert PASSWORD not in proc.out


@pytest.mark.parametrize("name", ["bracket", "percent", "scheme"])
def test_malformed_url_is_one_line_without_the_password(runs, name: str) -> None:  # noqa: ANN001
    proc = runs[name]
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.out
    one_error_line(proc)
    assert PASSWORD not in proc.out and "ZZS3cret" not in proc.out, proc.out


@pytest.mark.slow
def test_xdist_worker_failure_stops_the_session_with_the_line(work: Work) -> None:
    pytest.importorskip("xdist")
    proc = run(work, "-n", "2", "-k", "pg-pgoutput", "--cdc-scale=smoke", "--cdc-engines=external")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    lines = [line for line in out.splitlines() if "needs --cdc-engine-url postgres=" in line]
    assert len(lines) == 1 and "--cdc-engines=external: the postgres engine cannot be used" in lines[0], out
    assert " passed" not in out and " failed" not in out


# -- the wal2json fix ------------------------------------------------------------------------
def test_wal2json_fix_command_lists_each_library() -> None:
    """The printed fix must give a list of libraries, not one entry holding commas."""
    from harness.approaches.pg_wal2json import allow_plugin_sql

    sql = allow_plugin_sql("postgresql://nobody:x@127.0.0.1:1/nowhere")  # unreachable: the defaults
    assert sql == ("ALTER SYSTEM SET output_plugin_libraries = 'pgoutput', 'test_decoding', 'wal2json'; "
                   "SELECT pg_reload_conf();")


@pytest.mark.slow
def test_wal2json_fix_command_works_on_a_restricting_server() -> None:
    """On a build with output_plugin_libraries (not set on the command line), run the printed fix
    (even over the old, wrong one-entry value) and create a wal2json slot as a REPLICATION role."""
    require_local_postgres()
    from containers.postgres import LocalPostgres, connect
    from harness.approaches.pg_wal2json import allow_plugin_sql

    if not LocalPostgres()._has_setting("output_plugin_libraries"):
        pytest.skip("this PostgreSQL build does not restrict output plugins")

    class Unconfigured(LocalPostgres):
        def _has_setting(self, name: str) -> bool:
            return False  # leave output_plugin_libraries at the server's default

    engine = Unconfigured(prefix="cdc_testsrv_")
    engine.start()
    try:
        with engine.connect() as conn:
            conn.execute("CREATE ROLE rep LOGIN REPLICATION PASSWORD 'rep-pass-1'")
            conn.execute("ALTER SYSTEM SET output_plugin_libraries = 'pgoutput, test_decoding, wal2json'")
            conn.execute("SELECT pg_reload_conf()")
            for statement in allow_plugin_sql(engine.url).split(";"):
                if statement.strip():
                    conn.execute(statement)
        rep = f"postgresql://rep:rep-pass-1@127.0.0.1:{engine.port}/postgres"
        deadline = time.monotonic() + 10
        while True:  # the reload is asynchronous
            try:
                with connect(rep) as conn:
                    conn.execute("SELECT pg_create_logical_replication_slot('cdc_testsrv_w2j', 'wal2json')")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        engine.stop()


# -- nothing left behind ---------------------------------------------------------------------
def _server_dirs(work: Work) -> list[Path]:
    return sorted(work.tmpdir.glob("cdc-postgres-*"))


def _postmaster_up(work: Work) -> bool:
    return any((d / "data" / "postmaster.pid").exists() for d in _server_dirs(work)) and bool(
        postmasters(work.tmpdir))


@pytest.mark.slow
def test_sigterm_ends_the_session_like_ctrl_c(work: Work) -> None:
    require_local_postgres()
    child = start(work, "-k", "pg-pgoutput or pg-wal2json", "--cdc-scale=smoke", "--cdc-engines=local")
    try:
        wait_for(lambda: _postmaster_up(work), 60, "the child's server")
        time.sleep(1.0)  # into a case
        started = time.monotonic()
        child.send_signal(signal.SIGTERM)
        rc = child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    out = (work.out / "out.txt").read_text()
    assert rc == pytest.ExitCode.INTERRUPTED, out
    assert time.monotonic() - started < 30, "the suite ran on after SIGTERM"
    assert "KeyboardInterrupt" in out and "SIGTERM" in out, out
    assert postmasters(work.tmpdir) == [] and _server_dirs(work) == [], out


@pytest.mark.slow
def test_kill_9_leaves_nothing_after_the_next_session(work: Work) -> None:
    """The postmaster dies with its session (parent-death guard); the next session removes the dir."""
    require_local_postgres()
    child = start(work, "-k", "pg-pgoutput or pg-wal2json", "--cdc-scale=smoke", "--cdc-engines=local")
    try:
        wait_for(lambda: _postmaster_up(work), 60, "the child's server")
        time.sleep(1.0)
    finally:
        child.kill()
        child.wait(timeout=30)
    wait_for(lambda: not postmasters(work.tmpdir), 15, "the orphaned postmaster to exit")
    left = _server_dirs(work)
    assert len(left) == 1
    proc = run(work, "--collect-only", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"cdc: removed leftovers of killed sessions: data dir {left[0]}" in proc.stdout
    assert _server_dirs(work) == []


@pytest.mark.slow
def test_sweep_stops_a_surviving_postmaster(work: Work) -> None:
    """A server whose guard could not apply (started off the main thread) is stopped by the sweep."""
    require_local_postgres()
    import subprocess
    import sys

    from harness.lifecycle import sweep_leftovers
    from harness.options import Options

    script = (
        "import threading, time\n"
        "from containers.postgres import LocalPostgres\n"
        "e = LocalPostgres(prefix='cdc_orphan_')\n"
        "t = threading.Thread(target=e.start); t.start(); t.join()\n"
        "print('up', flush=True); time.sleep(600)\n")
    tmpdir = work.tmpdir
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "up"
    finally:
        child.kill()
        child.wait()
    time.sleep(0.5)
    assert len(postmasters(tmpdir)) == 1, "expected the postmaster to survive its unguarded parent"
    options = Options(approaches=None, scenarios=None, seed=1, scale="smoke", engines="auto",
                      results=work.out / "r.json", timeout_s=10.0, pushgateway="")
    removed = sweep_leftovers(options, tmpdir)
    assert any(r.startswith("postgres server (pid ") for r in removed), removed
    assert any(r.startswith("data dir ") for r in removed), removed
    assert postmasters(tmpdir) == [] and list(tmpdir.glob("cdc-*")) == []


def test_sweep_leaves_live_and_foreign_dirs_alone(work: Work) -> None:
    from harness.lifecycle import dead_dirs, write_owner

    live, foreign, dead = (work.out / f"cdc-postgres-{n}" for n in ("live", "foreign", "dead"))
    for d in (live, foreign, dead):
        d.mkdir()
    write_owner(live)
    (dead / ".cdc-owner").write_text('{"pid": 999999999, "start": "1"}')
    assert dead_dirs(work.out) == [dead]


def test_sweep_never_removes_a_dir_a_live_process_works_in(work: Work, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from harness import lifecycle
    from harness.lifecycle import sweep_leftovers
    from harness.options import Options

    monkeypatch.setattr(lifecycle, "USERS_WAIT_S", 0.2)
    busy = work.tmpdir / "cdc-other-busy"
    busy.mkdir()
    (busy / ".cdc-owner").write_text('{"pid": 999999999, "start": "1"}')
    sleeper = subprocess.Popen(["sleep", "30"], cwd=busy)
    try:
        options = Options(approaches=None, scenarios=None, seed=1, scale="smoke", engines="auto",
                          results=work.out / "r.json", timeout_s=10.0, pushgateway="")
        removed = sweep_leftovers(options, work.tmpdir)
        assert removed == [f"nothing in {busy} (still used by pid {sleeper.pid})"] and busy.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sweep_leftovers(options, work.tmpdir) == [f"data dir {busy}"] and not busy.exists()


def test_external_sweep_drops_only_unleased_objects(logical_url: str) -> None:
    """Objects of a dead session go; those a live lease covers (another run, anywhere) stay."""
    from containers.postgres import LEASE_APP, connect, sweep_external

    with connect(logical_url) as admin, connect(logical_url, application_name=LEASE_APP + "cdc_live_1") as lease:
        for owner in ("cdc_dead_1", "cdc_live_1"):
            admin.execute(f"CREATE SCHEMA {owner}_s")
            admin.execute(f"CREATE TABLE {owner}_s.t (id int primary key)")
            admin.execute(f"CREATE PUBLICATION {owner}_pub FOR TABLE {owner}_s.t")
            admin.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (f"{owner}_slot",))
        removed = sweep_external(logical_url)
        assert removed == [f"on {logical_url.replace(PASSWORD, '***')}: 1 replication slot, 1 publication, "
                           "1 schema"]
        assert harness_objects(logical_url) == {"slots": ["cdc_live_1_slot"], "publications": ["cdc_live_1_pub"],
                                                "schemas": ["cdc_live_1_s"]}
        lease.close()
        sweep_external(logical_url)  # the live session ended without cleaning up: now it goes too
        assert harness_objects(logical_url) == {"slots": [], "publications": [], "schemas": []}


@pytest.mark.slow
def test_kill_9_on_an_external_server_leaves_nothing_after_the_next_session(work: Work, logical_url: str) -> None:
    child = start(work, "-k", "pg-pgoutput or pg-wal2json", "--cdc-scale=smoke",
                  f"--cdc-engine-url=postgres={logical_url}")
    try:
        wait_for(lambda: harness_objects(logical_url)["slots"], 60, "a slot of the child's run")
    finally:
        child.kill()
        child.wait(timeout=30)
    left = harness_objects(logical_url)
    assert left["schemas"], left
    proc = run(work, "--collect-only", "-q", f"--cdc-engine-url=postgres={logical_url}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cdc: removed leftovers of killed sessions: on postgresql://cdcuser:***@" in proc.stdout
    assert PASSWORD not in proc.stdout + proc.stderr
    assert harness_objects(logical_url) == {"slots": [], "publications": [], "schemas": []}
