"""MariaDB benchmarks: batched load, mysql-binlog backlog drain (beside pg-pgoutput's in the same run).

Each module starts a private local MariaDB (``CDC_MYSQL_BENCH_ROWS``, default 50000 rows) and
reports figures in ``benchmark.extra_info``. Skips with the fix when the binaries are missing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

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
    """mysql-binlog drains a backlog of ROWS inserts through ``run_case(backlog=True)`` (checked)."""
    cls = cdc_session.approaches.get("mysql-binlog")
    case = Case(cls, "mysql-backlog", cdc_session.families.get("mysql"), FULL, ("mysql",))
    result = run_case(case, {"mysql": mysql_engine}, lambda *_: _backlog(ROWS), run_id="drain", worker="bench",
                      workdir=tmp_path, timeout_s=120, backlog=True,
                      timer=lambda fn: benchmark.pedantic(fn, rounds=1, iterations=1))
    verdict = result.verdict
    m = verdict.measurements
    benchmark.extra_info.update(events=m.get("events"), seconds=m.get("capture_s"),
                                events_per_s=m.get("events_per_s"), backlog_lag_ms=m.get("lag_ms"),
                                verdict=verdict.status)
    assert verdict.passed, verdict.summary()
