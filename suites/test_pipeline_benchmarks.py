"""pg-kafka-iceberg benchmarks: end-to-end lag per hop at an offered rate, and convergence after a backlog.

Uses ``test_kafka_benchmarks``' module engines (one local PostgreSQL, one KRaft broker, one
Connect worker, warmed by its ``warm`` fixture: ``CDC_KAFKA_BENCH_WARM`` inserts through a
connector first) and a fresh Iceberg warehouse and sink per test. Figures go to
``benchmark.extra_info`` (``pytest suites/test_pipeline_benchmarks.py --benchmark-only``):

- ``test_pipeline_lag[pyiceberg|spark]``: ``CDC_PIPE_BENCH_RATE`` one-row commits/s (default 1000)
  offered open loop for ``CDC_PIPE_BENCH_SECONDS`` (default 10) by four writer processes, with a
  ``CDC_PIPE_BENCH_BATCH_S`` (default 1.0) sink batch interval, for each sink: pyiceberg
  (``pg-kafka-iceberg``) and Spark (``pg-kafka-iceberg-spark``; its session warmed first with two
  MERGEs on a throwaway table, so the JVM's first MERGE is not in the figures). Per change: end to end (commit
  issued → the Iceberg commit that made it visible, done), and the hops: commit issued → source
  commit time (PostgreSQL), source commit → Kafka record (Debezium + Connect), Kafka record →
  Iceberg commit done (the sink: waiting for its batch, then writing). p50/p95/p99 of each and
  each hop's share of the mean. Every offered change must be in the table, once, first.
- ``test_pipeline_backlog``: ``CDC_PIPE_BENCH_ROWS`` inserts (default 20000; the issue asks for
  100k, which takes several minutes here) in 1000-row transactions as fast as the source takes
  them; the sink runs throughout. ``convergence_s``: last write committed → table equal to the
  source (row count and content); ``rows_per_s``: rows applied to Iceberg per second from the
  first write to convergence.

Skips, like the Kafka module, unless ``--benchmark-only``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_kafka_benchmarks import _create_table, pg_engine, stack, warm  # noqa: F401

from harness import loadgen
from harness.checker import lag_summary
from harness.context import RunContext
from harness.steps import Column, TableSpec

RATE = int(os.environ.get("CDC_PIPE_BENCH_RATE", "1000"))
SECONDS = float(os.environ.get("CDC_PIPE_BENCH_SECONDS", "10"))
BATCH_S = float(os.environ.get("CDC_PIPE_BENCH_BATCH_S", "1.0"))
ROWS = int(os.environ.get("CDC_PIPE_BENCH_ROWS", "20000"))
WRITERS = 4


@pytest.fixture(scope="module", autouse=True)
def _benchmark_only(request: pytest.FixtureRequest) -> None:
    """Minutes of JVMs and Iceberg commits: only under ``--benchmark-only`` (CI's plain run skips)."""
    if not request.config.getoption("benchmark_only", default=False):
        pytest.skip("pipeline benchmarks take minutes: run with --benchmark-only "
                    "(pytest suites/test_pipeline_benchmarks.py --benchmark-only)")


SPEC = TableSpec("t", (Column("id", "bigint", nullable=False), Column("name", "text"), Column("qty", "int")))


@pytest.fixture(scope="module")
def spark_session() -> Iterator[Any]:
    """A local Spark session for the Spark sink, warmed with two MERGEs (skipped with the fix when absent)."""
    pytest.importorskip("pyspark", reason="fix: pip install -e '.[spark]'")
    from containers.engine import IcebergWarehouse
    from containers.spark import SparkEngine
    from harness.errors import EngineUnavailable
    from harness.pipeline.spark_apply import SparkIcebergWriter

    engine = SparkEngine()
    try:
        engine.start()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    warehouse = IcebergWarehouse()
    warehouse.start()
    try:
        writer = SparkIcebergWriter(engine, warehouse)
        writer.ensure(SPEC)
        for i in range(2):
            writer.apply("t", [{"id": i, "name": "warm", "qty": i}], [], False, {"cdc.warm": str(i)})
    finally:
        warehouse.stop()
    yield engine
    engine.stop()


def _pipeline(pg: Any, engines: Any, name: str, tmp_path: Path,
              spark: Any = None) -> tuple[Any, Any, RunContext, str]:
    """A started pg-kafka-iceberg approach (``pg-kafka-iceberg-spark`` when given a Spark engine) on
    the module's engines, a fresh warehouse and sink."""
    from containers.engine import IcebergWarehouse
    from containers.sink import SinkEngine
    from harness.approaches.pg_kafka_iceberg import PgKafkaIceberg
    from harness.approaches.pg_kafka_iceberg_spark import PgKafkaIcebergSpark

    warehouse, sink = IcebergWarehouse(), SinkEngine()
    warehouse.start()
    ctx = RunContext(run_id=name, worker="pbench", workdir=tmp_path, source_role="postgres",
                     engines={"postgres": pg, "kafka": engines.kafka, "connect": engines.connect,
                              "iceberg": warehouse, "sink": sink, **({"spark": spark} if spark else {})},
                     settings={"connector": "tuned", "delivery": "at-least-once", "replica_identity": "full",
                               "sink": "exactly-once", "sink_batch_s": BATCH_S}, timeout_s=60)
    table = _create_table(pg, ctx)
    ctx.tables = {"t": SPEC}
    approach = PgKafkaIcebergSpark() if spark is not None else PgKafkaIceberg()
    approach.start(ctx)
    return approach, warehouse, ctx, table


def _pct(values: list[float]) -> dict:
    return lag_summary(values)["lag_ms"]


@pytest.mark.benchmark(group="pipeline-rate")
@pytest.mark.parametrize("sink_kind", ["pyiceberg", "spark"])
def test_pipeline_lag(benchmark, pg_engine, stack, warm, tmp_path, request, sink_kind) -> None:  # noqa: F811
    """RATE one-row commits/s offered open loop; lag per change and per hop (see the module), per sink."""
    spark = request.getfixturevalue("spark_session") if sink_kind == "spark" else None
    approach, warehouse, ctx, table = _pipeline(pg_engine, stack, f"prate{sink_kind}", tmp_path, spark)
    offered: list = []

    def offer() -> None:
        offered.append(loadgen.offer(loadgen.pg_writer, {"url": pg_engine.url, "table": table},
                                     loadgen.Offer(RATE, SECONDS, 1, WRITERS)))

    try:
        benchmark.pedantic(offer, rounds=1, iterations=1)
        hops = approach.sink.hops
        deadline = time.monotonic() + 120
        keys, issued_ns, _ = offered[0].issued_per_key()
        while len({h[1] for h in hops}) < len(keys) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(BATCH_S + 0.5)
        rows = warehouse.catalog().load_table(warehouse.identifier("t")).scan().to_arrow().num_rows
    finally:
        approach.stop()
        warehouse.stop()
    issued = {(k,): i for k, i in zip(keys.tolist(), issued_ns.tolist(), strict=True)}
    first: dict[tuple, tuple] = {}
    for _, key, ts_us, kafka_ms, done_ns in hops:
        first.setdefault(key, (ts_us, kafka_ms, done_ns))
    assert set(first) == set(issued), f"{len(set(issued) - set(first))} offered changes never applied"
    assert len(hops) == len(issued), f"{len(hops)} applications for {len(issued)} changes"
    assert rows == len(issued), f"table holds {rows} rows for {len(issued)} inserts"
    e2e = [first[k][2] - issued[k] for k in issued]
    pg = [first[k][0] * 1000 - issued[k] for k in issued]
    connect = [first[k][1] * 1_000_000 - first[k][0] * 1000 for k in issued]
    sink = [first[k][2] - first[k][1] * 1_000_000 for k in issued]
    mean = sum(e2e) / len(e2e)
    benchmark.extra_info.update(
        sink_kind=sink_kind, offered_per_s=RATE, seconds=SECONDS, writers=WRITERS, sink_batch_s=BATCH_S,
        changes=len(issued),
        lag_ms=_pct(e2e), hop_commit_ms=_pct(pg), hop_debezium_kafka_ms=_pct(connect), hop_sink_iceberg_ms=_pct(sink),
        share_of_mean={"commit": round(sum(pg) / len(pg) / mean, 3), "debezium_kafka": round(
            sum(connect) / len(connect) / mean, 3), "sink_iceberg": round(sum(sink) / len(sink) / mean, 3)},
        load_1m=round(os.getloadavg()[0], 2))


@pytest.mark.benchmark(group="pipeline-backlog")
def test_pipeline_backlog(benchmark, pg_engine, stack, warm, tmp_path) -> None:  # noqa: F811
    """ROWS inserts in 1000-row transactions; seconds from the last commit until the table equals
    the source, and rows/s applied (see the module)."""
    approach, warehouse, ctx, table = _pipeline(pg_engine, stack, "pbacklog", tmp_path)
    ident = warehouse.identifier("t")
    catalog = warehouse.catalog()
    timing: dict[str, float] = {}

    def converge() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            tbl = catalog.load_table(ident)
            if tbl.current_snapshot() is not None and tbl.scan().count() == ROWS:
                return
            time.sleep(0.2)
        raise AssertionError(f"table never reached {ROWS} rows")

    try:
        t0 = time.perf_counter()
        with pg_engine.connect() as conn:
            cur = conn.cursor()
            for base in range(0, ROWS, 1000):
                cur.executemany(f"INSERT INTO {table} (id, name, qty) VALUES (%s, %s, %s)",
                                [(i, f"name-{i}", i) for i in range(base, min(base + 1000, ROWS))])
                conn.commit()
        timing["write_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        benchmark.pedantic(converge, rounds=1, iterations=1)
        timing["convergence_s"] = time.perf_counter() - t1
        got = {r["id"]: (r["name"], r["qty"]) for r in catalog.load_table(ident).scan().to_arrow().to_pylist()}
        commits = len(approach.commit_log(ctx))
    finally:
        approach.stop()
        warehouse.stop()
    assert got == {i: (f"name-{i}", i) for i in range(ROWS)}, "table content differs from the source"
    total = timing["write_s"] + timing["convergence_s"]
    benchmark.extra_info.update(
        rows=ROWS, write_s=round(timing["write_s"], 3), convergence_s=round(timing["convergence_s"], 3),
        rows_per_s=round(ROWS / total, 1), sink_commits=commits, sink_batch_s=BATCH_S,
        note="the sink runs during the writes; convergence = last commit until the table equals the source",
        load_1m=round(os.getloadavg()[0], 2))
