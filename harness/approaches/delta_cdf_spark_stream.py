"""delta-cdf-spark-stream: Delta's Change Data Feed as a Spark Structured Streaming query (``foreachBatch``)."""

from __future__ import annotations

import queue
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.approaches.delta_cdf_spark import DeltaCdfSpark
from harness.context import RunContext
from harness.errors import Unsupported
from harness.events import ChangeEvent, Position

TRIGGER = "100 milliseconds"
#: the error class prefix of a Delta streaming source stopping at a schema change
#: (DELTA_SCHEMA_CHANGED, DELTA_SCHEMA_CHANGED_WITH_STARTING_OPTIONS, ..._WITH_VERSION)
SCHEMA_CHANGED = "[DELTA_SCHEMA_CHANGED"
#: restarts per reader beyond which a schema change is taken as one the stream cannot pass
MAX_SCHEMA_RESTARTS = 20


class DeltaCdfSparkStream(DeltaCdfSpark):
    """One streaming query per table (``readStream`` with ``readChangeFeed``), each micro-batch
    handed over in ``foreachBatch``; the query's **checkpoint** (in ``ctx.workdir``) is the
    durable state, as in a real Spark job.

    Delivery contract: ``foreachBatch`` returns — and Spark commits the batch to the checkpoint —
    only once the harness has acknowledged the batch's last event, so a crash (the query stopped
    while a batch waits) leaves that batch uncommitted and a restarted query delivers it again at
    the same positions (at-least-once). Positions are ``delta-cdf``'s.

    Schema changes: a Delta streaming source stops at one (``DELTA_SCHEMA_CHANGED…``: "please try
    restarting the query"); the approach restarts that query from its checkpoint, as a job's
    supervisor would (``schema_restarts`` counts them), and the restarted query reads on with the new
    schema: ADD COLUMN is followed. Drop, rename and type change need column mapping and Delta's
    schema tracking, which delta-rs-written tables do not have: not claimed. Needs a local
    session: over Spark Connect the batch function runs in the server's Python, out of the
    harness's reach.
    """

    name = "delta-cdf-spark-stream"
    #: tables delta-rs wrote only: which writer made the versions is the batch reader's matrix
    writers = ("",)
    capabilities = replace(DeltaCdfSpark.capabilities, ddl=frozenset({"add"}), notes=(
        "a Delta streaming source stops at a schema change: the query is restarted from its checkpoint "
        "and reads on with the new schema (ADD COLUMN); drop/rename/type need column mapping and schema tracking",
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
        self.checkpoints = ctx.workdir / "spark-checkpoints"
        if not resume:
            shutil.rmtree(self.checkpoints, ignore_errors=True)
        self.schema_restarts = 0
        self._changes: dict[str, list[tuple[int, list[str]]]] = {}  # version → columns where the schema changed
        self._scanned: dict[str, int] = {}  # the last version whose log entry was looked at
        self.queries = [self._query(idx, table, self.checkpoints / table) for idx, table in enumerate(self.tables)]

    def _query(self, idx: int, table: str, checkpoint: Any) -> Any:
        def each_batch(frame: Any, batch_id: int) -> None:
            data = frame.toArrow()
            if data.num_rows == 0:
                return
            stamps = data.column("_commit_timestamp").cast(_ms())
            data = data.set_column(data.schema.get_field_index("_commit_timestamp"), "_commit_timestamp", stamps)
            got = [e for part in self._as_written(table, data) for e in self._decode(idx, table, part)]
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

    def _as_written(self, table: str, data: Any) -> list[Any]:
        """The batch cut where the table's schema changed, each part with the columns of the
        versions it holds: a query reads with the schema it started with (or restarted with),
        which a later ADD COLUMN widened, and rows written before it must not gain the column."""
        import pyarrow.compute as pc

        versions = data.column("_commit_version")
        lo, hi = pc.min_max(versions).values()
        spans = self._schema_spans(table, lo.as_py(), hi.as_py())
        meta = [c for c in data.column_names if c.startswith("_")]
        parts = []
        for first, last, columns in spans:
            rows = data.filter(pc.and_(pc.greater_equal(versions, first), pc.less_equal(versions, last)))
            if rows.num_rows:
                parts.append(rows.select([*(c for c in columns if c in rows.column_names), *meta]))
        return parts

    def _schema_spans(self, table: str, lo: int, hi: int) -> list[tuple[int, int, list[str]]]:
        """``(first, last, columns)`` covering versions ``lo..hi``: the table's columns from each
        version whose log entry changed the table's metadata. The log's JSON entries are scanned
        once each; the columns are read (as of that version) only where one holds a ``metaData``
        action."""
        changes = self._changes.setdefault(table, [])
        scanned = self._scanned.get(table, lo - 1)
        if not changes or lo < changes[0][0]:  # the first batch (or one from before it): start the scan at lo
            changes[:] = [(lo, self._snapshot_columns(table, lo))]
            scanned = lo
        for version in range(scanned + 1, hi + 1):
            entry = Path(self.paths[table]) / "_delta_log" / f"{version:020d}.json"
            if entry.exists() and '"metaData"' in entry.read_text():
                changes.append((version, self._snapshot_columns(table, version)))
        self._scanned[table] = max(scanned, hi)
        spans = []
        for n, (since, columns) in enumerate(changes):
            until = changes[n + 1][0] - 1 if n + 1 < len(changes) else hi
            if until >= lo and since <= hi:
                spans.append((max(since, lo), min(until, hi), columns))
        return spans

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
        for idx, query in enumerate(self.queries):
            failure = query.exception()
            if failure is None or self.stopping:
                continue
            text = str(failure)
            if SCHEMA_CHANGED in text and self.schema_restarts < MAX_SCHEMA_RESTARTS:
                table = self.tables[idx]  # restart from the checkpoint: it reads on with the new schema
                self.queries[idx] = self._query(idx, table, self.checkpoints / table)
                self.schema_restarts += 1
                continue
            raise RuntimeError(f"streaming query failed: {text.splitlines()[0][:200]}")
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
