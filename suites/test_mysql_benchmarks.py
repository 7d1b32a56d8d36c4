"""MariaDB benchmarks: batched load, mysql-binlog backlog drain (beside pg-pgoutput's in the same
run), and mysql-binlog lag at an open-loop offered rate.

Each module starts a private local MariaDB (``CDC_MYSQL_BENCH_ROWS``, default 50000 rows;
``CDC_MYSQL_BENCH_RATE``, default 2000 changes/s offered for ``CDC_MYSQL_BENCH_SECONDS``, default 5)
and reports figures in ``benchmark.extra_info``. Skips with the fix when the binaries are missing.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import threading
import time
from collections.abc import Iterator

import pytest

from harness.checker import lag_summary
from harness.context import RunContext
from harness.runner import Case, run_case
from harness.steps import InsertMany, Scenario
from scenarios.tables import ITEMS, RowMaker

ROWS = int(os.environ.get("CDC_MYSQL_BENCH_ROWS", "50000"))
TXN_ROWS = 1_000
RATE = int(os.environ.get("CDC_MYSQL_BENCH_RATE", "2000"))
SECONDS = float(os.environ.get("CDC_MYSQL_BENCH_SECONDS", "5"))
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
def test_mysql_binlog_resume_drain(benchmark, mysql_engine, tmp_path, decoder: str) -> None:
    """The decode rate: ROWS inserts (1000-row transactions) are written while no reader runs,
    then a reader resumes from its checkpoint (the GTID before them) and reads them all: events/s
    from its start to the last event. ``library``: python-mysql-replication's own row decoding."""
    from harness.approaches.mysql_binlog import MySqlBinlog

    cls = MySqlBinlog if decoder == "compiled" else type("SlowRows", (MySqlBinlog,), {"slow_rows": True})
    ctx = RunContext(run_id=f"resume-{decoder}", worker="bench", workdir=tmp_path, engines={"mysql": mysql_engine},
                     source_role="mysql", settings=dict(FULL), timeout_s=60)
    db = mysql_engine.database_for(ctx.name_prefix)
    conn = mysql_engine.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{db}`")
        cur.execute(f"DROP TABLE IF EXISTS `{db}`.items")
        cur.execute(f"CREATE TABLE `{db}`.items (id bigint PRIMARY KEY, name text, qty int, "
                    "price decimal(38,10), updated timestamp(6) NULL DEFAULT NULL)")
    first = cls()
    first.start(ctx)  # its checkpoint: the GTID before the backlog
    first.stop()
    maker = RowMaker(11)
    with conn.cursor() as cur:
        for base in range(0, ROWS, TXN_ROWS):
            conn.begin()
            rows = [maker.item(k) for k in range(base + 1, min(base + TXN_ROWS, ROWS) + 1)]
            cur.executemany(f"INSERT INTO `{db}`.items (id, name, qty, price, updated) VALUES (%s, %s, %s, %s, %s)",
                            [(r["id"], r["name"], r["qty"], r["price"],
                              r["updated"].replace(tzinfo=None) if r["updated"] else None) for r in rows])
            conn.commit()
    conn.close()
    keys: set = set()

    def drain() -> None:
        reader = cls()
        reader.start(ctx, resume=True)
        try:
            deadline = time.monotonic() + 120
            while len(keys) < ROWS and time.monotonic() < deadline:
                got = reader.poll(100_000, 0.5)
                keys.update(e.key for e in got)
                if got:
                    reader.ack(got[-1].position)
        finally:
            reader.stop()

    t0, cpu0 = time.perf_counter(), _process_cpu()
    benchmark.pedantic(drain, rounds=1, iterations=1)
    seconds, cpu = time.perf_counter() - t0, _process_cpu() - cpu0
    # process CPU per event (reader thread + poll + this loop): steadier than events/s on a loaded machine
    benchmark.extra_info.update(decoder=decoder, events=len(keys), seconds=round(seconds, 3),
                                events_per_s=round(len(keys) / seconds, 1),
                                cpu_us_per_event=round(cpu / max(len(keys), 1) * 1e6, 2))
    assert len(keys) == ROWS, f"read {len(keys)} of {ROWS} rows"


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _writer(url: str, db: str, rate: float, writer: int, writers: int, t0_ns: int, seconds: float,
            out: mp.Queue) -> None:
    """Open-loop writer: change j of this writer is due at t0 + (j*writers + writer)/rate and is
    sent then even if earlier ones were late (no coordinated omission). One row per commit."""
    from containers.mysql import connect

    period_ns = int(1e9 * writers / rate)
    first_ns = t0_ns + int(1e9 * writer / rate)
    n = int(seconds * rate / writers)
    rows = []
    conn = connect(url, database=db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            sql = "INSERT INTO t (id, name, qty) VALUES (%s, 'x', %s)"
            for j in range(n):
                intended = first_ns + j * period_ns
                wait = (intended - time.time_ns()) / 1e9
                if wait > 0:
                    time.sleep(wait)
                key = j * writers + writer
                issued = time.time_ns()
                cur.execute(sql, (key, j))  # autocommit: the INSERT is its own transaction
                rows.append((key, intended, issued, time.time_ns()))
    finally:
        conn.close()
    out.put(rows)


@pytest.mark.benchmark(group="mysql-rate")
def test_mysql_binlog_offered_rate(benchmark, mysql_engine, tmp_path) -> None:
    """mysql-binlog lag at RATE changes/s offered open loop by two writer processes (one-row
    autocommit INSERTs); lag = captured_at − issued_at (and − the intended start time)."""
    from harness.approaches.mysql_binlog import MySqlBinlog

    ctx = RunContext(run_id="rate", worker="bench", workdir=tmp_path, engines={"mysql": mysql_engine},
                     source_role="mysql", settings=dict(FULL), timeout_s=60)
    db = mysql_engine.database_for(ctx.name_prefix)
    conn = mysql_engine.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{db}`")
        cur.execute(f"DROP TABLE IF EXISTS `{db}`.t")
        cur.execute(f"CREATE TABLE `{db}`.t (id bigint PRIMARY KEY, name text, qty int)")
    conn.close()
    writers = 2
    approach = MySqlBinlog()
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
        procs = [spawn.Process(target=_writer, args=(mysql_engine.url, db, RATE, w, writers, t0, SECONDS, queue))
                 for w in range(writers)]
        for p in procs:
            p.start()
        for _ in procs:
            results.extend(queue.get(timeout=SECONDS + 60))
        for p in procs:
            p.join(timeout=10)

    reader = threading.Thread(target=read, name="mysql-rate-reader", daemon=True)
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
    summary = lag_summary(lag)["lag_ms"]
    benchmark.extra_info.update(
        offered_per_s=RATE, writers=writers, changes=offered_n, captured=len(lag),
        achieved_per_s=round(offered_n / span_s, 1) if span_s else None,
        lag_ms=summary, lag_from_intended_ms=lag_summary(lag_intended)["lag_ms"],
        writes_late_over_1ms=late, p99_target_ms=5.0,
    )
    assert len(lag) == offered_n, f"captured {len(lag)} of {offered_n} changes"
