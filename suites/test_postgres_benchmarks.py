"""PostgreSQL benchmarks: load generation and pg-pgoutput backlog drain.

Each test starts its own private local cluster (PostgreSQL 15 binaries) and reports its
figures in ``benchmark.extra_info`` (``pytest suites/test_postgres_benchmarks.py
--benchmark-only --benchmark-json=out.json``). Size: ``CDC_PG_BENCH_ROWS`` (default 100k
rows/changes). Lag at offered rates is ``suites/test_rate_ladder.py``'s (every approach, one
load generator). Skips with the fix when the binaries are missing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.context import RunContext
from harness.runner import Case, run_case
from harness.steps import InsertMany, Scenario
from scenarios.tables import ITEMS, RowMaker

ROWS = int(os.environ.get("CDC_PG_BENCH_ROWS", "100000"))
TXN_ROWS = 1_000


@pytest.fixture(scope="module")
def pg_engine() -> Iterator:
    """A private local PostgreSQL cluster for this module (skipped with the fix when absent)."""
    pytest.importorskip("psycopg", reason="fix: pip install -e '.[postgres]'")
    pytest.importorskip("psycopg2", reason="fix: pip install -e '.[postgres]'")
    from containers.postgres import LocalPostgres

    missing = LocalPostgres.available()
    if missing:
        pytest.skip(missing)
    engine = LocalPostgres(prefix="cdc_bench_")
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


def _context(engine, name: str, tmp_path: Path) -> RunContext:
    return RunContext(run_id=name, worker="bench", workdir=tmp_path, engines={"postgres": engine},
                      source_role="postgres", timeout_s=60)


def _create_table(engine, ctx: RunContext) -> str:
    from harness.sources.postgres import run_schema

    schema = run_schema(ctx)
    with engine.connect() as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.execute(f'DROP TABLE IF EXISTS "{schema}".t')
        conn.execute(f'CREATE TABLE "{schema}".t (id bigint PRIMARY KEY, name text, qty int)')
    return f'"{schema}".t'


def _load(url: str, table: str, rows: int, start: int = 0) -> list[tuple[int, int]]:
    """Insert ``rows`` rows with executemany in 1000-row transactions; return (last id, issued_at)."""
    import psycopg

    commits = []
    with psycopg.connect(url, prepare_threshold=0) as conn:  # server-side prepared from the start
        cur = conn.cursor()
        sql = f"INSERT INTO {table} (id, name, qty) VALUES (%s, %s, %s)"
        for base in range(start, start + rows, TXN_ROWS):
            n = min(TXN_ROWS, start + rows - base)
            cur.executemany(sql, [(i, f"name-{i}", i % 1000) for i in range(base, base + n)])
            issued = time.time_ns()
            conn.commit()
            commits.append((base + n - 1, issued))
    return commits


@pytest.mark.benchmark(group="postgres-load")
def test_load_generation(benchmark, pg_engine, tmp_path) -> None:
    """(a) executemany into local PostgreSQL in 1000-row transactions: rows/s."""
    ctx = _context(pg_engine, "load", tmp_path)
    table = _create_table(pg_engine, ctx)
    t0 = time.perf_counter()
    benchmark.pedantic(_load, args=(pg_engine.url, table, ROWS), rounds=1, iterations=1)
    seconds = time.perf_counter() - t0
    benchmark.extra_info.update(rows=ROWS, txn_rows=TXN_ROWS, seconds=round(seconds, 3),
                                rows_per_s=round(ROWS / seconds, 1))


def _backlog(rows: int) -> Scenario:
    """``rows`` inserts in ``TXN_ROWS``-row transactions (multi-row statements)."""
    maker = RowMaker(11)
    steps = [InsertMany("items", tuple(maker.item(k) for k in range(base + 1, min(base + TXN_ROWS, rows) + 1)))
             for base in range(0, rows, TXN_ROWS)]
    return Scenario(f"pg-backlog-{rows}", (ITEMS,), steps)


@pytest.mark.benchmark(group="postgres-drain")
def test_pgoutput_backlog_drain(benchmark, pg_engine, cdc_session, tmp_path) -> None:
    """(b) pg-pgoutput drains a backlog of ROWS inserts through ``run_case(backlog=True)``:
    events/s and lag, and the drain is checked (a wrong drain reports no figure)."""
    cls = cdc_session.approaches.get("pg-pgoutput")
    case = Case(cls, "pg-backlog", cdc_session.families.get("postgres"), (("replica_identity", "default"),),
                ("postgres",))
    result = run_case(case, {"postgres": pg_engine}, lambda *_: _backlog(ROWS), run_id="drain", worker="bench",
                      workdir=tmp_path, timeout_s=120, backlog=True,
                      timer=lambda fn: benchmark.pedantic(fn, rounds=1, iterations=1))
    verdict = result.verdict
    m = verdict.measurements
    benchmark.extra_info.update(events=m.get("events"), seconds=m.get("capture_s"),
                                events_per_s=m.get("events_per_s"), backlog_lag_ms=m.get("lag_ms"),
                                verdict=verdict.status, check_s=m.get("check_s"), check_path=m.get("check_path"))
    assert verdict.passed, verdict.summary()
