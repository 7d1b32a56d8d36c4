"""PostgreSQL benchmarks: load generation, pg-pgoutput backlog drain, open-loop offered rates.

Each test starts its own private local cluster (PostgreSQL 15 binaries) and reports its
figures in ``benchmark.extra_info`` (``pytest suites/test_postgres_benchmarks.py
--benchmark-only --benchmark-json=out.json``). Sizes: ``CDC_PG_BENCH_ROWS`` (default 100k
rows/changes) and ``CDC_PG_BENCH_SECONDS`` (default 3 s per offered rate). Skips with the fix
when the binaries are missing.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.checker import lag_summary
from harness.context import RunContext
from harness.runner import Case, run_case
from harness.steps import InsertMany, Scenario
from scenarios.tables import ITEMS, RowMaker

ROWS = int(os.environ.get("CDC_PG_BENCH_ROWS", "100000"))
SECONDS = float(os.environ.get("CDC_PG_BENCH_SECONDS", "3"))
RATES = (1_000, 5_000, 10_000, 20_000)
#: the ladder step a plain run (``make test``) checks: the path and its verdict, not the figures
CHECK_RATES = (5_000,)
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


def _issued_by_key(commits: list[tuple[int, int]]) -> dict[int, int]:
    return {last // TXN_ROWS: issued for last, issued in commits}


def _writer(url: str, table: str, rate: float, writer: int, writers: int, t0_ns: int, seconds: float,
            out: mp.Queue) -> None:
    """Open-loop writer: change j of this writer is due at t0 + (j*writers + writer)/rate; it is
    sent then even if earlier ones were late (no coordinated omission). One row per commit."""
    import psycopg

    period_ns = int(1e9 * writers / rate)
    first_ns = t0_ns + int(1e9 * writer / rate)
    n = int(seconds * rate / writers)
    rows = []
    with psycopg.connect(url, autocommit=True) as conn:
        sql = f"INSERT INTO {table} (id, name, qty) VALUES (%s, 'x', %s)"
        conn.execute("SELECT 1")
        for j in range(n):
            intended = first_ns + j * period_ns
            wait = (intended - time.time_ns()) / 1e9
            if wait > 0:
                time.sleep(wait)
            key = j * writers + writer
            issued = time.time_ns()
            conn.execute(sql, (key, j), prepare=True)
            rows.append((key, intended, issued, time.time_ns()))
    out.put(rows)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The whole rate ladder under ``--benchmark-only``; one step otherwise."""
    if "rate" in metafunc.fixturenames:
        rates = RATES if metafunc.config.getoption("benchmark_only") else CHECK_RATES
        metafunc.parametrize("rate", rates, ids=[f"{r // 1000}k" for r in rates])


@pytest.mark.benchmark(group="postgres-rate")
def test_pgoutput_offered_rate(benchmark, pg_engine, tmp_path, rate: int) -> None:
    """(c) open-loop offered rate over several writer processes; lag = captured_at − issued_at."""
    from harness.approaches.pg_pgoutput import PgOutput

    ctx = _context(pg_engine, f"rate{rate}", tmp_path)
    table = _create_table(pg_engine, ctx)
    writers = 2 if rate <= 5_000 else 4
    approach = PgOutput()
    approach.start(ctx)
    captured: dict[int, int] = {}
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            got = approach.poll(10_000, 0.02)
            for e in got:
                captured[e.key[0]] = e.captured_at
            if got:
                approach.ack(got[-1].position)

    results: list = []

    def offer() -> None:
        spawn = mp.get_context("spawn")
        queue = spawn.Queue()
        t0 = time.time_ns() + 1_500_000_000  # writers start together after they connected
        procs = [spawn.Process(target=_writer, args=(pg_engine.url, table, rate, w, writers, t0, SECONDS, queue))
                 for w in range(writers)]
        for p in procs:
            p.start()
        for _ in procs:
            results.extend(queue.get(timeout=SECONDS + 60))
        for p in procs:
            p.join(timeout=10)

    reader = threading.Thread(target=read, name="pg-rate-reader", daemon=True)
    reader.start()
    try:
        benchmark.pedantic(offer, rounds=1, iterations=1)
        deadline = time.monotonic() + 15
        while len(captured) < len(results) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        reader.join(timeout=10)
        approach.stop()
    offered_n = len(results)
    span_s = (max(r[3] for r in results) - min(r[1] for r in results)) / 1e9 if results else 0
    lag = [captured[k] - issued for k, _, issued, _ in results if k in captured]
    lag_intended = [captured[k] - intended for k, intended, _, _ in results if k in captured]
    late = sum(1 for _, intended, issued, _ in results if issued - intended > 1_000_000)
    benchmark.extra_info.update(
        offered_per_s=rate, writers=writers, changes=offered_n, captured=len(lag),
        achieved_per_s=round(offered_n / span_s, 1) if span_s else None,
        lag_ms=lag_summary(lag)["lag_ms"], lag_from_intended_ms=lag_summary(lag_intended)["lag_ms"],
        writes_late_over_1ms=late,
    )
    assert len(lag) == offered_n, f"captured {len(lag)} of {offered_n} changes"
