"""The Spark sink: Spark Structured Streaming reads the Debezium topic (Kafka source) and applies in ``foreachBatch``.

One incarnation is one streaming query on the worker's local Spark session: ``readStream`` from
Kafka (the run's one partition, ``read_committed``), a ``processingTime`` trigger of ``batch_s``,
and ``foreachBatch`` handing each micro-batch's records to ``IcebergSink``'s own steps — whole
source transactions taken from the records (``_take``: a transaction a micro-batch cuts in two
is carried to the next one), applied per table as one ``MERGE INTO`` whose commit holds the sink's
record (``_commit`` with ``SparkIcebergWriter``): the same sink, only the transport and the
writer differ.

Where progress is kept — the table is authoritative. ``exactly-once`` starts every incarnation's
query from the offset the tables' latest snapshot records name (``startingOffsets``), with a
fresh checkpoint folder of its own; the Spark checkpoint is never resumed from. Two reasons:
Spark commits a micro-batch to its checkpoint *after* ``foreachBatch`` returned, so a crash
between the Iceberg commit and that checkpoint commit would make a resumed query run the batch
again (pitfall 9's window, moved into Spark); and a micro-batch's end offset may lie inside a
source transaction the sink has not applied yet (carried in memory), which a resumed checkpoint
would skip. The naive modes keep the consumer group's offset as ``IcebergSink`` does (Spark's
Kafka source commits none: a confluent-kafka client commits it, and reads it on restart).
"""

from __future__ import annotations

import ast
import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import EngineUnavailable
from harness.pipeline.sink import IcebergSink, _Txn

#: how often the incarnation's loop looks at its query (status, progress, a failure)
WATCH_S = 0.05


def require_kafka_source(spark: Any, source: str = "kafka") -> None:
    """``EngineUnavailable`` naming the fix when the session cannot load Spark's Kafka source
    (``spark-sql-kafka-0-10`` and its jars are not on the session's class path). Resolving the
    source reads no topic and connects to nothing. Without this check every sink incarnation
    would die at its query's start and be restarted, and the run would capture nothing."""
    try:
        (spark.session.readStream.format(source).option("kafka.bootstrap.servers", "127.0.0.1:9")
         .option("subscribe", "cdc-probe").load())
    except Exception as exc:  # noqa: BLE001 - AnalysisException (DATA_SOURCE_NOT_FOUND) or a py4j error
        raise EngineUnavailable(f"the Spark session cannot load the {source!r} streaming source "
                                f"({str(exc).splitlines()[0][:160]}); fix: make setup (spark-sql-kafka-0-10 "
                                "and its jars in .cache/jars/spark)") from None


class _Record:
    """One Kafka record of a micro-batch with the accessors of a confluent-kafka ``Message``."""

    __slots__ = ("_key", "_offset", "_ts", "_value")

    def __init__(self, row: dict[str, Any]) -> None:
        self._key, self._value, self._offset, self._ts = row["key"], row["value"], row["offset"], row["ts"]

    def error(self) -> None:
        return None

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def offset(self) -> int:
        return int(self._offset)

    def timestamp(self) -> tuple[int, int]:
        return 1, int(self._ts)  # CreateTime, ms


class SparkIcebergSink(IcebergSink):
    """One incarnation of the Spark sink (see the module docstring); ``spark`` is the worker's
    local ``SparkEngine``, ``checkpoint`` this incarnation's own (fresh) checkpoint folder.

    Contract: as ``IcebergSink.run``; a failpoint fires inside ``foreachBatch`` (before or after
    the MERGE commits), which fails the micro-batch and so the query: nothing more is committed,
    and ``run`` raises ``SinkCrashed``.
    """

    def __init__(self, *args: Any, spark: Any, checkpoint: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spark = spark
        self.checkpoint = checkpoint
        self._current: _Txn | None = None
        self._done: list[_Txn] = []
        self._died: BaseException | None = None
        self._busy = False
        #: the streaming query's last status message (e.g. "Waiting for data to arrive")
        self.query_status = "not started"

    def state(self) -> dict[str, Any]:
        """``IcebergSink.state`` and the streaming query's last status message."""
        return {**super().state(), "query": self.query_status}

    def run(self, stop: threading.Event, fire: Callable[[str], bool]) -> None:
        for spec in self.specs.values():
            self.writer.ensure(spec)
        ck, consumer = self._consumer()  # the consumer group's offsets (naive modes; monitoring)
        query = None
        try:
            start = self._resume(ck, consumer)
            self.read_to = self.applied_to = self.position = start
            shutil.rmtree(self.checkpoint, ignore_errors=True)
            query = self._query(start, lambda frame, _batch: self._batch(frame, ck, consumer, fire))
            while not stop.wait(WATCH_S):
                if self._died is not None:
                    raise self._died
                if query.exception() is not None:
                    raise EngineUnavailable(f"the sink's streaming query failed: "
                                            f"{str(query.exception()).splitlines()[0][:300]}")
                self._watch(query)
        finally:
            if query is not None:
                try:
                    query.stop()
                except Exception:  # noqa: BLE001,S110 - a failed query is what a crash leaves
                    pass
            consumer.close()

    def _query(self, start: int, each: Callable[[Any, int], None]) -> Any:
        """The streaming query: Kafka source from ``start``, ``foreachBatch(each)`` every ``batch_s``."""
        reader = (self.spark.session.readStream.format("kafka")
                  .option("kafka.bootstrap.servers", self.bootstrap)
                  .option("assign", json.dumps({self.topic: [0]}))
                  .option("startingOffsets", json.dumps({self.topic: {"0": start}}))
                  .option("kafka.isolation.level", "read_committed")
                  .load())
        return (reader.selectExpr("key", "value", "offset", "unix_millis(timestamp) AS ts")
                .writeStream.foreachBatch(each).option("checkpointLocation", str(self.checkpoint))
                .trigger(processingTime=f"{max(int(self.batch_s * 1000), 100)} milliseconds")
                .queryName(f"cdc_sink_{self.group}_{self.incarnation}").start())

    def _batch(self, frame: Any, ck: Any, consumer: Any, fire: Callable[[str], bool]) -> None:
        """One micro-batch: take its records, apply the transactions completed so far."""
        if self._died is not None:
            raise RuntimeError("the sink incarnation is dead")
        self._busy = True
        try:
            for row in frame.toArrow().to_pylist():
                self._current = self._take(_Record(row), self._current, self._done)
            self.pending = sum(len(t.changes) for t in self._done)
            if self._done:
                self._commit(ck, consumer, self._done, fire)
                self._done, self.pending = [], 0
        except Exception as exc:  # SinkCrashed at a failpoint, or an error: the incarnation dies
            self._died = exc
            raise
        finally:
            self._busy = False

    def _watch(self, query: Any) -> None:
        """Idle and position from the query: no trigger running, no new data at the last one, the
        end offset of the last micro-batch (past Kafka's transaction markers), nothing carried."""
        status = query.status
        self.query_status = str(status.get("message"))
        progress = query.lastProgress
        if progress and progress.get("sources"):
            end = _offsets(progress["sources"][-1].get("endOffset"))
            if self.topic in end:
                self.position = max(self.position, int(end[self.topic]["0"]))
        self.idle = bool(not self._busy and not status.get("isTriggerActive") and not status.get("isDataAvailable")
                         and self._current is None and not self._done)


def _offsets(value: Any) -> dict[str, Any]:
    """A Kafka source's offsets from a progress report: JSON from the JVM, or the repr of the dict
    pyspark parsed it into (``SourceProgress.fromJson`` keeps ``str(dict)``); {} when neither."""
    if isinstance(value, dict):
        return value
    for parse in (json.loads, ast.literal_eval):
        try:
            out = parse(str(value))
        except (ValueError, SyntaxError):
            continue
        if isinstance(out, dict):
            return out
    return {}
