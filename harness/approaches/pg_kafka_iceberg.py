"""Approach ``pg-kafka-iceberg``: PostgreSQL → Debezium → Kafka → a sink → Iceberg, read back per sink commit.

The pipeline under test: pg-debezium's connector (transaction markers routed into the run's one
topic), the sink (``harness.pipeline.sink``, applying batches with pyiceberg through the
``TableWriter`` seam) supervised by the run's ``sink`` engine, and Iceberg tables created from
the source tables' specs. What it captures is the sink tables' change history, read commit by
commit with ``iceberg-snapshot-diff`` (reused, not copied), so the same checker judges it, under
``net_per_commit``: at the boundaries each sink commit records (``commit_log``).

Settings: ``sink=exactly-once`` (offsets in the Iceberg commit), ``sink=offsets-after`` and
``sink=offsets-before`` (naive: the consumer group's offset after, or before, the Iceberg commit);
``sink_drop=<column>`` (a declared projection: the column is not written, and the checker holds
the sink to exactly that); ``sink_batch_s`` (default 0.5 s). REPLICA IDENTITY does not matter
to the sink (it applies after images and deletes by key): the approach runs under FULL only.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from typing import Any, ClassVar

from harness.approach import BaseApproach
from harness.approaches.iceberg_snapshot_diff import IcebergSnapshotDiff
from harness.approaches.pg_debezium import PgDebezium
from harness.capabilities import Capabilities
from harness.checker import lag_summary
from harness.context import RunContext
from harness.errors import EngineUnavailable
from harness.events import ChangeEvent, Position
from harness.netcommit import SinkCommit
from harness.pipeline.apply import PREFIX, PyIcebergWriter, TableWriter
from harness.pipeline.sink import MARKER_TABLE, IcebergSink
from harness.steps import TableSpec

#: calls of ``caught_up`` further apart than this begin a new wait (a marker of the last one is stale)
MARKER_GAP_S = 1.0
#: a marker not through after this long is written again (a naive sink may lose the one it was in)
MARKER_RETRY_S = 5.0
#: the scenarios the pipeline runs (the others exercise Debezium itself: see pg-debezium)
SCENARIOS = ("crud", "txn", "types", "bulk", "truncate", "schema-add", "connect-crash", "broker-restart",
             "sink-crash-before-commit", "sink-crash-after-commit")
_BASE = {"replica_identity": "full", "connector": "tuned", "delivery": "at-least-once"}


class _Upstream(PgDebezium):
    """pg-debezium's connector with Debezium's BEGIN/END markers written into the run's topic
    (``topic.transaction``), so the sink sees where each source transaction ends. No reader,
    so no caught-up markers of pg-debezium's (the approach writes its own)."""

    markers: ClassVar[bool] = False
    transaction_metadata: ClassVar[bool] = True
    #: records keep their schema: the sink types its Iceberg columns from it
    types_from_stream: ClassVar[bool] = False

    def _common_config(self, ctx: RunContext) -> dict[str, str]:
        return {**super()._common_config(ctx), "topic.transaction": "changes"}

    def _open_consumer(self, ck: Any, resume: bool) -> None:
        """The sink consumes the topic; this object only owns the connector."""


class PgKafkaIceberg(BaseApproach):
    """``pg-kafka-iceberg``: the pipeline, captured as the sink tables' net changes per commit.

    Claims: one net change per key per sink commit with full before images (from the table);
    each sink commit whole (one Iceberg commit per table and batch: a source transaction over
    two tables lands in two commits); exactly-once with ``sink=exactly-once``; DDL ``add``
    (the sink adds the column); truncate (the sink clears the table); resume (the reader's
    checkpoint; the sink resumes by itself).
    """

    name: ClassVar[str] = "pg-kafka-iceberg"
    family: ClassVar[str] = "postgres"
    roles: ClassVar[tuple[str, ...]] = ("kafka", "connect", "iceberg", "sink")
    only_scenarios: ClassVar[tuple[str, ...]] = SCENARIOS
    capabilities: ClassVar[Capabilities] = Capabilities(
        before_image="full", updates="update", transactions=True, delivery="exactly-once",
        ddl=frozenset({"add"}), truncate=True, resume=True, net_per_commit=True,
        notes=("net changes per sink commit: changes to one key inside one batch arrive as one",
               "a source transaction over several tables lands in one Iceberg commit per table",
               "json and uuid are stored as text and read back (declared transformation)"))
    #: the naive sinks run where their window can show: the two sink crashes (Debezium's own
    #: exactly-once source support is pg-debezium's cells; here the sink's LSN check covers it)
    variants: ClassVar[tuple[tuple[str, tuple[dict, ...]], ...]] = (
        ("*", ({**_BASE, "sink": "exactly-once"},)),
        ("crud", ({**_BASE, "sink": "exactly-once"}, {**_BASE, "sink": "exactly-once", "sink_drop": "price"})),
        *((name, ({**_BASE, "sink": "exactly-once"}, {**_BASE, "sink": "offsets-after"},
                  {**_BASE, "sink": "offsets-before"}))
          for name in ("sink-crash-before-commit", "sink-crash-after-commit")),
    )

    @classmethod
    def capabilities_for(cls, settings: dict[str, Any]) -> Capabilities:
        """Exactly-once with the offsets in the Iceberg commit; the naive sinks claim at-least-once;
        ``sink_drop=<column>`` declares the projection (``Capabilities.dropped``)."""
        caps = cls.capabilities
        if settings.get("sink", "exactly-once") != "exactly-once":
            caps = replace(caps, delivery="at-least-once",
                           notes=(*caps.notes, "naive sink: the consumer group's offset is committed "
                                  f"{str(settings.get('sink')).removeprefix('offsets-')} the Iceberg commit"))
        if settings.get("sink_drop"):
            caps = replace(caps, dropped=frozenset({str(settings["sink_drop"])}),
                           notes=(*caps.notes, f"declared projection: column {settings['sink_drop']} is not written"))
        return caps

    def __init__(self) -> None:
        super().__init__()
        self.upstream: _Upstream | None = None
        self.reader: IcebergSnapshotDiff | None = None
        self.sink: Any = None
        self._last_call = 0.0
        self._marker_sent = -1
        self._marker_seen = False
        self._marker_at = 0.0
        self._marker_id = int(time.time() * 1000)  # increasing across reader restarts
        self._errors_seen = 0
        self._probe: Any = None

    def start(self, ctx: RunContext, resume: bool = False) -> None:
        super().start(ctx, resume)
        self.capabilities = self.capabilities_for(ctx.settings)
        self.sink = ctx.role("sink")
        upstream = _Upstream()
        if not resume:
            _create_marker_table(ctx)
        upstream.start(ctx, resume)
        self.upstream = upstream
        if not resume:
            writer = self.table_writer(ctx)
            for spec in ctx.tables.values():
                writer.ensure(TableSpec(spec.name, tuple(c for c in spec.columns if c.name not in
                                                         self.capabilities.dropped), spec.key))
            bootstrap, topic, group = ctx.role("kafka").bootstrap, upstream.topic, f"{ctx.name_prefix}_sink"
            mode = str(ctx.settings.get("sink", "exactly-once"))
            batch_s = float(ctx.settings.get("sink_batch_s", 0.5))
            specs = dict(ctx.tables)
            hops = self.sink.hops
            dropped = self.capabilities.dropped

            def incarnation(n: int) -> IcebergSink:
                return self.new_sink(ctx, n, bootstrap, topic, group, self.table_writer(ctx), specs,
                                     _Upstream().to_event, mode, batch_s, n, hops, dropped)

            self.sink.supervise(incarnation)
        reader = IcebergSnapshotDiff()
        reader.columnar = False  # its events are rewritten one by one (``_read_back``): rows, not batches
        reader.start(replace(ctx, source_role="iceberg"), resume)
        self.reader = reader

    def table_writer(self, ctx: RunContext) -> TableWriter:
        """The engine that writes the sink tables: pyiceberg on the run's warehouse."""
        return PyIcebergWriter(ctx.role("iceberg"))

    def new_sink(self, ctx: RunContext, n: int, *args: Any) -> IcebergSink:
        """Sink incarnation ``n`` (``args``: ``IcebergSink``'s): the confluent-kafka consumer loop."""
        return IcebergSink(*args)

    def poll(self, max_events: int, timeout_s: float) -> list[ChangeEvent]:
        """The sink tables' net changes of the commits not read yet; a sink incarnation that died
        of an error since the last poll is reported once (as a reader error) before them."""
        assert self.reader is not None, "start() first"
        errors = self.sink.errors
        if len(errors) > self._errors_seen:
            self._errors_seen = len(errors)
            raise EngineUnavailable(f"sink incarnation died: {errors[-1]}")
        return [_read_back(e, self.ctx.tables) for e in self.reader.poll(max_events, timeout_s)]

    def ack(self, position: Position) -> None:
        if self.reader is not None:
            self.reader.ack(position)

    def caught_up(self) -> bool:
        """True when a flush marker written during this wait has come through the pipeline (so
        every change committed before it is applied), the sink is idle at the topic's end (asked
        of the broker) with no failpoint armed, and the reader has read every commit.

        A marker is a row the approach commits to its own table in the run's schema
        (``MARKER_TABLE``, as Debezium's ``heartbeat.action.query`` does): in the one partition it
        comes after every change committed before it. A wait is a run of calls less than
        ``MARKER_GAP_S`` apart; a marker written before it proves nothing about later writes."""
        now = time.monotonic()
        if now - self._last_call > MARKER_GAP_S:
            self._marker_sent, self._marker_seen = -1, False
        self._last_call = now
        if self.upstream is None or self.reader is None:
            return False
        if self._marker_sent >= 0 and self.sink.marker >= self._marker_sent:
            self._marker_seen = True
            self._marker_sent = -1
        if not self._marker_seen and (self._marker_sent < 0 or now - self._marker_at > MARKER_RETRY_S):
            # none yet in this wait, or one lost; once one is through, none more: a marker behind
            # it would move the topic's end again and a slow sink (Spark's micro-batches) would
            # never be seen idle at it twice in a row
            self._marker_sent, self._marker_at = self._write_marker(), now
        return bool(self._marker_seen and self.sink.caught_up(self._topic_end()) and self.reader.caught_up())

    def _write_marker(self) -> int:
        """Commit the next flush marker; its id."""
        from containers.postgres import connect

        self._marker_id += 1
        with connect(self.upstream.url) as conn:
            conn.execute(f'INSERT INTO "{self.upstream.schema}"."{MARKER_TABLE}" (id) VALUES (%s)',
                         (self._marker_id,))
        return self._marker_id

    def _topic_end(self) -> int:
        """The run topic's end offset, asked of the broker now (a huge number when it does not answer)."""
        from containers.jvm import require_confluent_kafka

        ck = require_confluent_kafka()
        if self._probe is None:
            self._probe = ck.Consumer({"bootstrap.servers": self.ctx.role("kafka").bootstrap, "log_level": 0,
                                       "group.id": f"{self.ctx.name_prefix}_probe", "enable.auto.commit": False})
        try:
            return self._probe.get_watermark_offsets(ck.TopicPartition(self.upstream.topic, 0), timeout=2.0)[1]
        except ck.KafkaException:
            return 1 << 62

    def crash(self) -> None:
        """The reader dies; the connector and the sink run on (separate processes in production)."""
        self.reader = None
        probe, self._probe = self._probe, None
        if probe is not None:
            with contextlib.suppress(Exception):
                probe.close()

    def stop(self) -> None:
        """Stop the sink, delete the connector, its topic, slot and publication. Idempotent."""
        self.reader = None
        probe, self._probe = self._probe, None
        if probe is not None:
            with contextlib.suppress(Exception):
                probe.close()
        if self.sink is not None:
            self.sink.stop()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            with contextlib.suppress(Exception):
                upstream.stop()

    def run_measurements(self, ctx: RunContext) -> dict[str, Any]:
        """The sink's figures: ``hop_lag_ms`` per change it applied (first application):
        PostgreSQL commit → Kafka record (Debezium + Connect) and Kafka record → the sink's
        Iceberg commit done (Kafka's record time has millisecond resolution); ``sink_crashes``
        (incarnations killed at a failpoint), ``sink_errors`` (incarnations that died of an
        error) and ``sink_state`` (the running incarnation's positions, ``SinkEngine.state``)."""
        sink = ctx.role("sink")
        first: dict[tuple, tuple[int, int, int]] = {}
        for table, key, ts_us, kafka_ms, done_ns in sink.hops:
            first.setdefault((table, key, ts_us), (ts_us * 1000, kafka_ms * 1_000_000, done_ns))
        hops = {"debezium_kafka": [k - s for s, k, _ in first.values()],
                "sink_iceberg": [d - k for _, k, d in first.values()]}
        return {"hop_lag_ms": {name: lag_summary(v)["lag_ms"] for name, v in hops.items()},
                "sink_crashes": len(sink.crashes), "sink_errors": list(sink.errors[:5]), "sink_state": sink.state()}

    def commit_log(self, ctx: RunContext) -> list[SinkCommit]:
        """Every sink commit of the run's tables, from the records in the Iceberg snapshots."""
        writer = self.table_writer(ctx)
        out = []
        for table in sorted(ctx.tables):
            for r in writer.records(table):
                first = r.get(PREFIX + "source.first-ts-us")
                out.append(SinkCommit(table, int(r["seq"]), int(r[PREFIX + "source.last-ts-us"]) * 1000,
                                      int(first) * 1000 if first not in (None, "None") else None,
                                      int(r["visible_ms"]) * 1_000_000,
                                      {k: r.get(PREFIX + k) for k in
                                       ("offset", "batch", "incarnation", "mode", "skipped")}))
        return out


def _create_marker_table(ctx: RunContext) -> None:
    """The flush-marker table in the run's schema (captured by the connector, ignored by the sink)."""
    from containers.postgres import connect, require_postgres

    engine = ctx.role("postgres")
    with connect(require_postgres(engine)) as conn:
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{engine.schema_for(ctx.name_prefix)}"."{MARKER_TABLE}" '
                     "(id bigint PRIMARY KEY)")


def _read_back(event: ChangeEvent, specs: dict[str, Any]) -> ChangeEvent:
    """Undo the declared transformation: json and uuid columns stored as text, read as values."""
    spec = specs.get(event.table)
    cols = [c for c in spec.columns if c.type in ("json", "uuid")] if spec is not None else []
    if not cols:
        return event
    return replace(event, before=_decode(event.before, cols), after=_decode(event.after, cols))


def _decode(image: Any, cols: list[Any]) -> Any:
    import json
    import uuid

    if image is None:
        return None
    out = dict(image)
    for c in cols:
        v = out.get(c.name)
        if isinstance(v, str):
            out[c.name] = json.loads(v) if c.type == "json" else uuid.UUID(v)
    return out
