"""delta-cdf-spark-stream: Delta's Change Data Feed as a Spark Structured Streaming query (``foreachBatch``)."""

from __future__ import annotations

import json
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
#: the error classes of a Delta streaming source stopping at a schema change ("please restart"):
#: without schema tracking DELTA_SCHEMA_CHANGED, ..._WITH_STARTING_OPTIONS, ..._WITH_VERSION; with
#: it DELTA_STREAMING_METADATA_EVOLUTION (the tracking log holds the new schema)
SCHEMA_CHANGED = ("[DELTA_SCHEMA_CHANGED", "[DELTA_STREAMING_METADATA_EVOLUTION]",
                  # Spark's own check when a batch's columns differ from the ones the query planned
                  # with (an ADD COLUMN landing as the query starts; seen once in schema-add)
                  "assertion failed: Invalid batch: ")
#: reader options of a column-mapped table's query: Delta's schema tracking (a log under the query's
#: checkpoint holding the schema each version range is read with) and the non-additive changes
#: acknowledged for good, as a job that propagates them itself would set them
SCHEMA_TRACKING = {"allowSourceColumnRename": "always", "allowSourceColumnDrop": "always",
                   "allowSourceColumnTypeChange": "always"}
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
    schema: ADD COLUMN is followed. On a column-mapped table (``column_mapping=name``, which only
    Spark writes) the query also runs with Delta's schema tracking (``schemaTrackingLocation`` under
    its checkpoint; rename, drop and type widening acknowledged with ``allowSourceColumn*=always``):
    it stops at each schema change with ``DELTA_STREAMING_METADATA_EVOLUTION``, is restarted the same
    way, and reads each version range with the schema it was written with, so drop, rename and
    type change are claimed there. Without column mapping (delta-rs's tables) they are not.
    Needs a local session: over Spark Connect the batch function runs in the server's Python, out
    of the harness's reach.
    """

    name = "delta-cdf-spark-stream"
    writers = ("", "spark")  # delta-rs's tables and Spark's (column-mapped for drop/rename/type)
    capabilities = replace(DeltaCdfSpark.capabilities, ddl=frozenset({"add"}), notes=(
        "a Delta streaming source stops at a schema change: the query is restarted from its checkpoint "
        "and reads on with the new schema (ADD COLUMN); drop/rename/type need column mapping and schema tracking",
        "durable state: the streaming query's checkpoint; a batch is committed once acknowledged",
        "truncate arrives as per-row deletes"))

    @classmethod
    def capabilities_for(cls, settings: dict[str, Any]) -> Any:
        """Column-mapped tables are streamed with schema tracking: through drop, rename and widening."""
        if settings.get("column_mapping") == "name":
            return replace(cls.capabilities, ddl=frozenset({"add", "drop", "rename", "type"}), notes=(
                "column mapping + schema tracking (schemaTrackingLocation, allowSourceColumn*=always): the query "
                "stops at each schema change and is restarted from its checkpoint with the tracked schema",
                *cls.capabilities.notes[1:]))
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
        self.tracking = ctx.settings.get("column_mapping") == "name"
        self.queries: list[Any] = [None] * len(self.tables)
        self._start_ready()

    def _start_ready(self) -> None:
        """Start each table's query not started yet; on a table this Spark session wrote
        (``writer=spark``) only once the table has its first version to read: there a query whose
        ``startingVersion`` is not written yet fails (``DELTA_VERSION_NOT_FOUND`` … "Available
        versions: [0, 0]"; seen with and without schema tracking, each failure a reader restart),
        while on delta-rs's tables it waits for it (and starting it at once keeps the first lag low)."""
        for idx, table in enumerate(self.tables):
            if self.queries[idx] is not None:
                continue
            entry = Path(self.paths[table]) / "_delta_log" / f"{self.first_version[table]:020d}.json"
            if self.ctx.settings.get("writer") != "spark" or entry.exists():
                self.queries[idx] = self._query(idx, table, self.checkpoints / table)

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
                  .option("startingVersion", self.first_version[table]))
        if self.tracking:
            reader = reader.options(schemaTrackingLocation=str(Path(checkpoint) / "_schema_log"), **SCHEMA_TRACKING)
        reader = reader.load(self.paths[table])
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
            changes[:] = [(lo, self._columns_as_of(table, lo))]
            scanned = lo
        for version in range(scanned + 1, hi + 1):
            columns = _logged_columns(Path(self.paths[table]), version)
            if columns:
                changes.append((version, columns))
        self._scanned[table] = max(scanned, hi)
        spans = []
        for n, (since, columns) in enumerate(changes):
            until = changes[n + 1][0] - 1 if n + 1 < len(changes) else hi
            if until >= lo and since <= hi:
                spans.append((max(since, lo), min(until, hi), columns))
        return spans

    def _columns_as_of(self, table: str, version: int) -> list[str]:
        """The table's columns as of ``version``: from the newest log entry at or before it that
        holds a ``metaData`` action (no Spark job), else (an entry gone to log clean-up) Spark's
        time travel."""
        log = Path(self.paths[table])
        for at in range(version, -1, -1):
            if not (log / "_delta_log" / f"{at:020d}.json").exists():
                break
            columns = _logged_columns(log, at)
            if columns:
                return columns
        return self._snapshot_columns(table, version)

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
        if not self.stopping:
            self._start_ready()
        for idx, query in enumerate(self.queries):
            failure = query.exception() if query is not None else None
            if failure is None or self.stopping:
                continue
            text = str(failure)
            if any(c in text for c in SCHEMA_CHANGED) and self.schema_restarts < MAX_SCHEMA_RESTARTS:
                table = self.tables[idx]  # restart from the checkpoint: it reads on with the new schema
                self.queries[idx] = self._query(idx, table, self.checkpoints / table)
                self.schema_restarts += 1
                continue
            raise RuntimeError(f"streaming query failed: {text.splitlines()[0][:200]}")
        for event in out:
            table, version = event.txid
            self.next_version[table] = max(self.next_version[table], int(version) + 1)
        return sorted(out, key=lambda e: e.position)

    def run_measurements(self, ctx: RunContext) -> dict[str, Any]:
        """``schema_restarts``: queries the last reader restarted at a schema change."""
        return {"schema_restarts": getattr(self, "schema_restarts", 0)}

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
        for query in (q for q in self.queries if q is not None):
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


def _logged_columns(path: Path, version: int) -> list[str] | None:
    """The column names (logical, in schema order) of the ``metaData`` action in ``version``'s log
    entry; None when the entry has none (or is gone)."""
    entry = path / "_delta_log" / f"{version:020d}.json"
    try:
        text = entry.read_text()
    except FileNotFoundError:
        return None
    if '"metaData"' not in text:
        return None
    for line in text.splitlines():
        action = json.loads(line) if line.strip() else {}
        if "metaData" in action:
            return [f["name"] for f in json.loads(action["metaData"]["schemaString"])["fields"]]
    return None


def _ms() -> Any:
    import pyarrow as pa

    return pa.timestamp("ms", tz="UTC")
