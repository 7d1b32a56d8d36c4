"""Approach ``pg-kafka-iceberg-spark``: the pipeline of ``pg-kafka-iceberg`` with a Spark Structured Streaming sink.

Everything but the sink is ``pg-kafka-iceberg``'s (subclassed): the connector, the flush marker,
the read-back with ``iceberg-snapshot-diff``, the commit log, the claims, the settings and the
scenarios. The sink is ``harness.pipeline.spark_sink.SparkIcebergSink``: a streaming query on the
worker's local Spark session reading the run's topic with Spark's Kafka source, applying each
micro-batch in ``foreachBatch`` with one ``MERGE INTO`` per table whose commit carries the sink's
record (``harness.pipeline.spark_apply.SparkIcebergWriter``), resuming from the offsets in the
tables' latest snapshots (docs/pipeline.md says why the table, not the Spark checkpoint).
"""

from __future__ import annotations

from typing import Any, ClassVar

from harness.approaches.pg_kafka_iceberg import PgKafkaIceberg
from harness.context import RunContext
from harness.errors import Unsupported
from harness.pipeline.apply import TableWriter
from harness.pipeline.sink import IcebergSink


class PgKafkaIcebergSpark(PgKafkaIceberg):
    """``pg-kafka-iceberg-spark``: ``pg-kafka-iceberg`` whose sink is Spark (``foreachBatch`` +
    ``MERGE INTO``); same claims and checks. Needs a local Spark session: over Spark Connect,
    ``foreachBatch`` runs in the server's Python and the commit properties need the session's JVM."""

    name: ClassVar[str] = "pg-kafka-iceberg-spark"
    roles: ClassVar[tuple[str, ...]] = (*PgKafkaIceberg.roles, "spark")

    def start(self, ctx: RunContext, resume: bool = False) -> None:
        if ctx.role("spark").backend != "local":
            raise Unsupported("pg-kafka-iceberg-spark needs a local Spark session: over Spark Connect, "
                              "foreachBatch runs in the server's Python process")
        from harness.pipeline.spark_sink import require_kafka_source

        require_kafka_source(ctx.role("spark"))  # before the connector: a missing jar ends the run here
        super().start(ctx, resume)

    def table_writer(self, ctx: RunContext) -> TableWriter:
        """Spark SQL on the worker's session, on the run's warehouse (``MERGE INTO``)."""
        from harness.pipeline.spark_apply import SparkIcebergWriter

        return SparkIcebergWriter(ctx.role("spark"), ctx.role("iceberg"))

    def new_sink(self, ctx: RunContext, n: int, *args: Any) -> IcebergSink:
        """Sink incarnation ``n``: a streaming query with a checkpoint folder of its own."""
        from harness.pipeline.spark_sink import SparkIcebergSink

        return SparkIcebergSink(*args, spark=ctx.role("spark"), checkpoint=ctx.workdir / "sink-checkpoints" / str(n))
