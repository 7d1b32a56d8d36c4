"""delta-cdf-spark-stream: Delta's Change Data Feed as a Spark Structured Streaming query (``foreachBatch``)."""

from __future__ import annotations

import queue
import shutil
import threading
import time
from dataclasses import replace
from typing import Any

from harness.approaches.delta_cdf_spark import DeltaCdfSpark
from harness.context import RunContext
from harness.errors import Unsupported
from harness.events import ChangeEvent, Position

TRIGGER = "100 milliseconds"


class DeltaCdfSparkStream(DeltaCdfSpark):
    """One streaming query per table (``readStream`` with ``readChangeFeed``), each micro-batch
    handed over in ``foreachBatch``; the query's **checkpoint** (in ``ctx.workdir``) is the
    durable state, as in a real Spark job.

    Delivery contract: ``foreachBatch`` returns — and Spark commits the batch to the checkpoint —
    only once the harness has acknowledged the batch's last event, so a crash (the query stopped
    while a batch waits) leaves that batch uncommitted and a restarted query delivers it again at
    the same positions (at-least-once). Positions are ``delta-cdf``'s. A Delta streaming source
    stops at a schema change, so no DDL is claimed. Needs a local session: over Spark Connect the
    batch function runs in the server's Python, out of the harness's reach.
    """

    name = "delta-cdf-spark-stream"
    #: tables delta-rs wrote only: which writer made the versions is the batch reader's matrix
    writers = ("",)
    capabilities = replace(DeltaCdfSpark.capabilities, ddl=frozenset(), notes=(
        "a Delta streaming source stops at a schema change: no DDL followed",
        "durable state: the streaming query's checkpoint; a batch is committed once acknowledged",
        "truncate arrives as per-row deletes"))

    @classmethod
    def capabilities_for(cls, settings: dict[str, Any]) -> Any:
        return cls.capabilities

    def start(self, ctx: RunContext, resume: bool = False) -> None:
        self.spark = ctx.role("spark")
        if self.spark.backend != "local":
            raise Unsupported("delta-cdf-spark-stream needs a local Spark session: over Spark Connect, "
                              "foreachBatch runs in the server's Python process")
        self.events: queue.Queue[ChangeEvent] = queue.Queue()
        self.acked: Position | None = None
        self.done = threading.Condition()
        self.stopping = False
        super().start(ctx, resume)  # versions, checkpoint file (first versions), resume position
        checkpoints = ctx.workdir / "spark-checkpoints"
        if not resume:
            shutil.rmtree(checkpoints, ignore_errors=True)
        self.queries = [self._query(idx, table, checkpoints / table) for idx, table in enumerate(self.tables)]

    def _query(self, idx: int, table: str, checkpoint: Any) -> Any:
        def each_batch(frame: Any, batch_id: int) -> None:
            data = frame.toArrow()
            if data.num_rows == 0:
                return
            stamps = data.column("_commit_timestamp").cast(_ms())
            data = data.set_column(data.schema.get_field_index("_commit_timestamp"), "_commit_timestamp", stamps)
            got = self._decode(idx, table, data)
            if self.resume_from is not None:
                got = [e for e in got if e.position > self.resume_from]
            for event in got:
                self.events.put(event)
            if got:
                self._wait_acked(got[-1].position)

        reader = (self.spark.session.readStream.format("delta").option("readChangeFeed", "true")
                  .option("startingVersion", self.first_version[table]).load(self.paths[table]))
        return (reader.writeStream.foreachBatch(each_batch).option("checkpointLocation", str(checkpoint))
                .trigger(processingTime=TRIGGER).queryName(f"cdc_{self.ctx.name_prefix}_{idx}_{time.time_ns()}")
                .start())

    def _wait_acked(self, position: Position) -> None:
        """Block the batch until the harness acknowledged ``position``; fail it when crashing."""
        with self.done:
            while not self.stopping and (self.acked is None or self.acked < position):
                self.done.wait(0.1)
            if self.stopping and (self.acked is None or self.acked < position):
                raise RuntimeError("reader crashed before the batch was acknowledged: not committed")

    def poll(self, max_events: int, timeout_s: float) -> list[ChangeEvent]:
        out: list[ChangeEvent] = []
        deadline = time.monotonic() + min(timeout_s, 0.2)
        while len(out) < max_events:
            try:
                out.append(self.events.get(timeout=max(deadline - time.monotonic(), 0.001)))
            except queue.Empty:
                break
        for query in self.queries:
            if query.exception() is not None and not self.stopping:
                raise RuntimeError(f"streaming query failed: {str(query.exception()).splitlines()[0][:200]}")
        for event in out:
            table, version = event.txid
            self.next_version[table] = max(self.next_version[table], int(version) + 1)
        return sorted(out, key=lambda e: e.position)

    def caught_up(self) -> bool:
        return self.events.empty() and super().caught_up()

    def ack(self, position: Position) -> None:
        super().ack(position)
        with self.done:
            self.acked = position if self.acked is None else max(self.acked, position)
            self.done.notify_all()

    def _halt(self) -> None:
        with self.done:
            self.stopping = True
            self.done.notify_all()
        for query in self.queries:
            try:
                query.stop()
            except Exception:  # noqa: BLE001,S110 - a stopped or failed query is what a crash leaves
                pass

    def stop(self) -> None:
        self._halt()
        super().stop()

    def crash(self) -> None:
        """Stop the queries while a batch waits for its ack: that batch is not committed."""
        self._halt()


def _ms() -> Any:
    import pyarrow as pa

    return pa.timestamp("ms", tz="UTC")
