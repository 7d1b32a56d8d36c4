"""The sink under test: consumes a Debezium topic and applies whole source transactions, in batches,
to tables through a ``TableWriter``, recording in every commit what it applied.

One incarnation of the sink is ``IcebergSink.run``: it reads the run's one partition (data
events and Debezium's BEGIN/END transaction markers, in commit order), and every ``batch_s``
applies the source transactions completed so far: per table, the batch's net change per key
(upsert of the last row, or delete; a truncate first clears the table) in ONE commit whose
snapshot summary holds the sink's record (``cdc.*``): the next Kafka offset, the source commit
time of the first change applied to the table and of the batch's last transaction, the END LSN
of that transaction, the batch number and the sink's incarnation. A batch never ends inside a
source transaction.

Modes (where the consumer's progress is kept):

- ``exactly-once``: in the table commit itself. A new incarnation resumes from the lowest offset
  the tables' latest records name and, per table, skips what that table's record says it
  applied (offset below it, or a transaction whose END LSN is at or below its LSN: Debezium's
  at-least-once redelivery at new offsets is skipped too). The consumer group's offset is
  committed afterwards for monitoring only; it is never read.
- ``offsets-after`` (naive): the consumer group's offset, committed after the table commits; a
  crash between them re-applies the batch after the restart.
- ``offsets-before`` (naive, pitfall 9): committed before the table commits; a crash between
  them loses the batch.

Failpoints (``fire(point)`` returns True once when armed): ``before-commit`` (batch read, nothing
committed), ``after-commit`` (tables committed, group offset not yet): the incarnation then dies
at once (``SinkCrashed``), committing nothing more, as a kill -9 would.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.approaches.debezium import _split
from harness.errors import EngineUnavailable
from harness.events import ChangeEvent
from harness.pipeline.apply import PREFIX, TableWriter
from harness.steps import Column, TableSpec

MODES = ("exactly-once", "offsets-after", "offsets-before")
#: the source table the pipeline writes flush markers to (not a sink table): once the sink has
#: applied the batch holding marker n, every change committed before marker n is in the tables
MARKER_TABLE = "_cdc_marker"
FAILPOINTS = ("before-commit", "after-commit")


class SinkCrashed(Exception):
    """The sink incarnation died at an armed failpoint."""


@dataclass
class _Txn:
    """One source transaction as read from the topic."""

    txid: str
    changes: list[tuple[ChangeEvent, int, int, bytes]] = field(default_factory=list)
    end_lsn: int = 0
    end_offset: int = -1

    @property
    def ts_us(self) -> int:
        return (self.changes[-1][0].commit_ts or 0) // 1000 if self.changes else 0


@dataclass
class _TableState:
    next_offset: int = 0
    lsn: int = -1


@dataclass
class _Net:
    rows: dict[tuple, Mapping[str, Any] | None] = field(default_factory=dict)
    truncate: bool = False
    first_ts_us: int | None = None


#: per applied change: (table, key, source commit µs, Kafka record ms, table commit done ns)
Hop = tuple[str, tuple, int, int, int]


class IcebergSink:
    """One incarnation of the sink (see the module docstring).

    ``decoder`` maps one record to a ``ChangeEvent`` (``DebeziumApproach.to_event``); ``specs``
    are the sink tables by source table name; ``hops`` collects per-change hop times;
    ``dropped`` names columns the sink leaves out of its tables (a declared projection).
    """

    def __init__(self, bootstrap: str, topic: str, group: str, writer: TableWriter, specs: dict[str, TableSpec],
                 decoder: Callable[..., ChangeEvent | None], mode: str = "exactly-once", batch_s: float = 1.0,
                 incarnation: int = 0, hops: list[Hop] | None = None, dropped: frozenset[str] = frozenset()) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown sink mode {mode!r}; valid: {', '.join(MODES)}")
        self.bootstrap, self.topic, self.group = bootstrap, topic, group
        self.writer, self.specs, self.decoder = writer, dict(specs), decoder
        self.mode, self.batch_s, self.incarnation = mode, batch_s, incarnation
        self.hops = hops if hops is not None else []
        #: columns the sink leaves out (a declared projection)
        self.dropped = dropped
        #: the highest flush-marker id (``MARKER_TABLE``) among the transactions applied so far
        self.marker = -1
        self.specs = {n: TableSpec(sp.name, tuple(c for c in sp.columns if c.name not in dropped), sp.key)
                      for n, sp in self.specs.items()}
        self.tables: dict[str, _TableState] = {}
        self.batches = 0
        self.skipped = 0
        #: the offset after the last END marker read, and after the last one applied
        self.read_to = -1
        self.applied_to = -1
        self.pending = 0
        #: True when the last poll found nothing new and nothing read waits to be applied
        self.idle = False
        #: the consumer's position (past Kafka's transaction markers too), when it was last idle
        self.position = -1

    def state(self) -> dict[str, Any]:
        """Where this incarnation is: offsets read to, applied to and its position, batches
        committed, changes pending, idle, the last flush marker applied."""
        return {"read_to": self.read_to, "applied_to": self.applied_to, "position": self.position,
                "batches": self.batches, "pending": self.pending, "idle": self.idle, "marker": self.marker}

    def _consumer(self) -> Any:
        from containers.jvm import require_confluent_kafka

        ck = require_confluent_kafka()
        return ck, ck.Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": self.group, "enable.auto.commit": False,
            "isolation.level": "read_committed", "log_level": 0, "fetch.wait.max.ms": 5,
            "socket.timeout.ms": 10_000, "enable.partition.eof": False})

    def _resume(self, ck: Any, consumer: Any) -> int:
        """Where this incarnation starts reading (see the modes)."""
        for name in self.specs:
            state = _TableState()
            if self.mode == "exactly-once":
                records = self.writer.records(name)
                if records:
                    last = records[-1]
                    state = _TableState(int(last[PREFIX + "offset"]), int(last[PREFIX + "source.end-lsn"]))
            self.tables[name] = state
        if self.mode == "exactly-once":
            return min((s.next_offset for s in self.tables.values()), default=0)
        committed = consumer.committed([ck.TopicPartition(self.topic, 0)], timeout=10)
        return committed[0].offset if committed and committed[0].offset >= 0 else 0

    def run(self, stop: threading.Event, fire: Callable[[str], bool]) -> None:
        """Consume and apply until ``stop`` is set; raises ``SinkCrashed`` at an armed failpoint."""
        for spec in self.specs.values():
            self.writer.ensure(spec)
        ck, consumer = self._consumer()
        try:
            start = self._resume(ck, consumer)
            consumer.assign([ck.TopicPartition(self.topic, 0, start)])
            self.read_to = self.applied_to = start
            current: _Txn | None = None
            done: list[_Txn] = []
            last_commit = time.monotonic()
            tp = [ck.TopicPartition(self.topic, 0)]
            while not stop.is_set():
                got = consumer.consume(num_messages=10_000, timeout=0.05)
                for msg in got:
                    current = self._take(msg, current, done)
                self.pending = sum(len(t.changes) for t in done)
                if done and time.monotonic() - last_commit >= self.batch_s:
                    self._commit(ck, consumer, done, fire)
                    done = []
                    self.pending = 0
                    last_commit = time.monotonic()
                if not got:
                    position = consumer.position(tp)[0].offset
                    self.position = position if position >= 0 else start  # nothing fetched yet
                    self.idle = current is None and not done
                else:
                    self.idle = False
        finally:
            consumer.close()

    def _take(self, msg: Any, current: _Txn | None, done: list[_Txn]) -> _Txn | None:
        err = msg.error()
        if err is not None:
            if err.fatal() or not err.retriable():
                raise EngineUnavailable(f"sink consumer error on {self.topic}: {err.str()}")
            return current
        raw = msg.value()
        if raw is None:  # a delete's tombstone
            return current
        _, payload = _split(raw)
        status = (payload or {}).get("status")
        if status == "BEGIN":
            return _Txn(str(payload["id"]).split(":")[0])  # an open one without END: redelivered again
        if status == "END":
            if current is not None:
                current.end_lsn = int(str(payload["id"]).split(":")[1])
                current.end_offset = msg.offset()
                done.append(current)
            self.read_to = msg.offset() + 1
            return None
        event = self.decoder(raw, msg.key(), msg.offset(), time.time_ns())
        if event is None:
            return current
        txn = current if current is not None else _Txn(str(event.txid))
        txn.changes.append((event, msg.offset(), msg.timestamp()[1], raw))
        return txn

    def _commit(self, ck: Any, consumer: Any, txns: list[_Txn], fire: Callable[[str], bool]) -> None:
        self.idle = False
        net: dict[str, _Net] = {}
        applied: list[tuple[str, tuple, int, int]] = []
        marker = self.marker
        for txn in txns:
            for event, offset, kafka_ms, raw in txn.changes:
                if event.table == MARKER_TABLE:
                    marker = max(marker, int(event.key[0]))
                    continue
                state = self.tables.setdefault(event.table, _TableState())
                if self.mode == "exactly-once" and (offset < state.next_offset or txn.end_lsn <= state.lsn):
                    self.skipped += 1
                    continue
                if event.table not in self.specs:
                    continue
                n = net.setdefault(event.table, _Net())
                if n.first_ts_us is None:
                    n.first_ts_us = txn.ts_us
                applied.append((event.table, event.key, txn.ts_us, kafka_ms))
                if event.op == "truncate":
                    n.truncate, n.rows = True, {}
                elif event.op == "delete":
                    n.rows[event.key] = None
                elif event.after is not None:
                    self._evolve(event.table, event.after, raw)
                    n.rows[event.key] = event.after
        next_offset = txns[-1].end_offset + 1
        # "applied up to": the batch's last transaction of the source's tables (a marker's
        # transaction is the pipeline's own, not the source's)
        last = next((t for t in reversed(txns) if any(e.table != MARKER_TABLE for e, *_ in t.changes)), txns[-1])
        self.batches += 1
        base = {PREFIX + "offset": str(next_offset), PREFIX + "topic": self.topic, PREFIX + "mode": self.mode,
                PREFIX + "source.last-ts-us": str(last.ts_us), PREFIX + "source.end-lsn": str(txns[-1].end_lsn),
                PREFIX + "source.last-txid": last.txid, PREFIX + "batch": str(self.batches),
                PREFIX + "incarnation": str(self.incarnation), PREFIX + "skipped": str(self.skipped)}
        if self.mode == "offsets-before":
            self._commit_group(ck, consumer, next_offset)
        if fire("before-commit"):
            raise SinkCrashed("before-commit")
        for table in sorted(net):
            n = net[table]
            record = {**base, PREFIX + "commit": uuid.uuid4().hex,
                      PREFIX + "source.first-ts-us": str(n.first_ts_us)}
            self.writer.apply(table, [r for r in n.rows.values() if r is not None],
                              [k for k, r in n.rows.items() if r is None], n.truncate, record)
            self.tables[table] = _TableState(next_offset, txns[-1].end_lsn)
        done_ns = time.time_ns()
        self.hops.extend((t, k, ts, kms, done_ns) for t, k, ts, kms in applied)
        self.applied_to = next_offset
        self.marker = marker
        if fire("after-commit"):
            raise SinkCrashed("after-commit")
        if self.mode != "offsets-before":
            self._commit_group(ck, consumer, next_offset)

    def _commit_group(self, ck: Any, consumer: Any, offset: int) -> None:
        consumer.commit(offsets=[ck.TopicPartition(self.topic, 0, offset)], asynchronous=False)

    def _evolve(self, table: str, row: Mapping[str, Any], raw: bytes) -> None:
        """Add the columns a row carries that the table lacks (types from the record's schema)."""
        spec = self.specs[table]
        have = {c.name for c in spec.columns}
        new = [name for name in row if name not in have and name not in self.dropped]
        if not new:
            return
        schema = json.loads(_split(raw)[0]) or {}
        after = next((f for f in schema.get("fields", []) if f.get("field") == "after"), {})
        fields = {f["field"]: f for f in after.get("fields", [])}
        cols = tuple(Column(name, logical_type(fields.get(name, {}))) for name in new)
        self.specs[table] = TableSpec(spec.name, spec.columns + cols, spec.key)
        self.writer.ensure(self.specs[table])


#: Connect/Debezium schema types → the harness's logical types
_NAMED = {"org.apache.kafka.connect.data.Decimal": "decimal", "io.debezium.time.MicroTimestamp": "timestamp",
          "io.debezium.time.Timestamp": "timestamp", "io.debezium.time.ZonedTimestamp": "timestamptz",
          "io.debezium.time.Date": "date", "io.debezium.data.Json": "json", "io.debezium.data.Uuid": "uuid"}
_PLAIN = {"int8": "int", "int16": "int", "int32": "int", "int64": "bigint", "float32": "float",
          "float64": "float", "boolean": "bool", "string": "text", "bytes": "bytes"}


def logical_type(field_schema: Mapping[str, Any]) -> str:
    """The logical type of one Connect field schema (text when unknown)."""
    named = _NAMED.get(str(field_schema.get("name")))
    if named:
        return named
    if field_schema.get("type") == "array":
        return "int[]"
    return _PLAIN.get(str(field_schema.get("type")), "text")
