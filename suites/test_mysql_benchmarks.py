"""MariaDB benchmarks: batched load and mysql-binlog backlog drains (streamed and resumed).

Each module starts a private local MariaDB (``CDC_MYSQL_BENCH_ROWS``, default 50000 rows) and
reports figures in ``benchmark.extra_info``; lag at offered rates is
``suites/test_rate_ladder.py``'s. Skips with the fix when the binaries are missing.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator

import pytest

from harness.context import RunContext
from harness.runner import Case, run_case
from harness.steps import InsertMany, Scenario
from scenarios.tables import ITEMS, RowMaker

ROWS = int(os.environ.get("CDC_MYSQL_BENCH_ROWS", "50000"))
TXN_ROWS = 1_000
FULL = (("binlog_row_image", "full"), ("binlog_row_metadata", "full"))


@pytest.fixture(scope="module")
def mysql_engine() -> Iterator:
    """A private local MariaDB for this module (skipped with the fix when absent)."""
    pytest.importorskip("pymysql", reason="fix: pip install -e '.[mysql]'")
    pytest.importorskip("pymysqlreplication", reason="fix: pip install -e '.[mysql]'")
    from containers.mysql import LocalMariaDb

    missing = LocalMariaDb.available()
    if missing:
        pytest.skip(missing)
    engine = LocalMariaDb(prefix="cdc_bench_")
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.mark.benchmark(group="mysql-load")
def test_mysql_load_generation(benchmark, mysql_engine) -> None:
    """Batched executemany (multi-row INSERTs) into local MariaDB in 1000-row transactions: rows/s."""
    db = "cdc_bench_load"
    conn = mysql_engine.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
        cur.execute(f"DROP TABLE IF EXISTS {db}.t")
        cur.execute(f"CREATE TABLE {db}.t (id bigint PRIMARY KEY, name text, qty int)")

    def load() -> None:
        with conn.cursor() as cur:
            for base in range(0, ROWS, TXN_ROWS):
                conn.begin()
                cur.executemany(f"INSERT INTO {db}.t (id, name, qty) VALUES (%s, %s, %s)",
                                [(i, f"name-{i}", i % 1000) for i in range(base, base + TXN_ROWS)])
                conn.commit()

    t0 = time.perf_counter()
    benchmark.pedantic(load, rounds=1, iterations=1)
    seconds = time.perf_counter() - t0
    conn.close()
    benchmark.extra_info.update(rows=ROWS, txn_rows=TXN_ROWS, seconds=round(seconds, 3),
                                rows_per_s=round(ROWS / seconds, 1))


def _backlog(rows: int) -> Scenario:
    maker = RowMaker(11)
    steps = [InsertMany("items", tuple(maker.item(k) for k in range(base + 1, min(base + TXN_ROWS, rows) + 1)))
             for base in range(0, rows, TXN_ROWS)]
    return Scenario(f"mysql-backlog-{rows}", (ITEMS,), steps)


@pytest.mark.benchmark(group="mysql-drain")
def test_mysql_binlog_backlog_drain(benchmark, mysql_engine, cdc_session, tmp_path) -> None:
    """mysql-binlog drains a backlog of ROWS inserts through ``run_case(backlog=True)`` (checked).

    The reader thread reads ahead while the backlog is written (it is a stream), so this checks
    the drain but its events/s is not a decode rate: ``test_mysql_binlog_resume_drain`` is."""
    cls = cdc_session.approaches.get("mysql-binlog")
    case = Case(cls, "mysql-backlog", cdc_session.families.get("mysql"), FULL, ("mysql",))
    result = run_case(case, {"mysql": mysql_engine}, lambda *_: _backlog(ROWS), run_id="drain", worker="bench",
                      workdir=tmp_path, timeout_s=120, backlog=True,
                      timer=lambda fn: benchmark.pedantic(fn, rounds=1, iterations=1))
    verdict = result.verdict
    m = verdict.measurements
    benchmark.extra_info.update(events=m.get("events"), seconds=m.get("capture_s"), backlog_lag_ms=m.get("lag_ms"),
                                verdict=verdict.status, note="read ahead during the writes: no events/s figure")
    assert verdict.passed, verdict.summary()


@pytest.mark.parametrize("decoder", ["compiled", "library"])
@pytest.mark.benchmark(group="mysql-drain")
def test_mysql_binlog_resume_drain(benchmark, mysql_engine, cdc_session, tmp_path, decoder: str,
                                   request: pytest.FixtureRequest) -> None:
    """The decode rate: ROWS inserts (1000-row transactions) are written through the MariaDB source
    (which records them in its ledger) while no reader runs, then a reader resumes from its
    checkpoint (the GTID before them) and reads them all: events/s from its start to the last
    event. What it read is then checked against the ledger and the table (a failing verdict fails
    the benchmark). ``library``: python-mysql-replication's own row decoding. A normal run (not
    ``--benchmark-only``) drains 10,000 rows: the path is checked, the figure comes from ROWS."""
    from harness.approaches.mysql_binlog import MySqlBinlog
    from harness.checker import check, encode_history
    from harness.columnar import batch_len, is_batch
    from harness.ledger import Ledger

    cls = MySqlBinlog if decoder == "compiled" else type("SlowRows", (MySqlBinlog,), {"slow_rows": True})
    ctx = RunContext(run_id=f"resume-{decoder}", worker="bench", workdir=tmp_path, engines={"mysql": mysql_engine},
                     source_role="mysql", settings=dict(FULL), timeout_s=60)
    rows = ROWS if request.config.getoption("benchmark_only", default=False) else min(ROWS, 10_000)
    scenario = _backlog(rows)
    source = cdc_session.families.get("mysql").source_class(dict(FULL))(ctx, Ledger())
    source.setup(scenario.tables)
    ctx.tables = dict(source.specs)
    first = cls()
    first.start(ctx)  # its checkpoint: the GTID before the backlog
    first.stop()
    for step in scenario.steps:
        source.apply(step)
    events: list = []

    def drain() -> None:
        reader = cls()
        reader.start(ctx, resume=True)
        try:
            deadline = time.monotonic() + 120
            seen = 0
            while seen < rows and time.monotonic() < deadline:
                got = reader.poll(100_000, 0.5)
                events.extend(got)
                seen += sum(batch_len(e) if is_batch(e) else 1 for e in got)
                if got:
                    last = got[-1]
                    reader.ack(last.position if not is_batch(last) else tuple(last.column("position")[-1].as_py()))
        finally:
            reader.stop()

    t0, cpu0 = time.perf_counter(), _process_cpu()
    benchmark.pedantic(drain, rounds=1, iterations=1)
    seconds, cpu = time.perf_counter() - t0, _process_cpu() - cpu0
    t1 = time.perf_counter()
    verdict = check(encode_history(source.ledger, events), cls.capabilities, source.final_state())
    check_s = time.perf_counter() - t1
    source.close()
    n = verdict.measurements.get("events", 0)
    # process CPU per event (reader thread + poll + this loop): steadier than events/s on a loaded machine
    benchmark.extra_info.update(decoder=decoder, events=n, seconds=round(seconds, 3),
                                events_per_s=round(n / seconds, 1), cpu_us_per_event=round(cpu / max(n, 1) * 1e6, 2),
                                verdict=verdict.status, committed=verdict.measurements.get("committed"),
                                check_s=round(check_s, 3), check_path=verdict.measurements.get("check_path"))
    assert verdict.passed, verdict.summary()
    assert n == rows, f"read {n} of {rows} rows"


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
