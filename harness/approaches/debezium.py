"""Debezium through Kafka: the shared part of ``pg-debezium`` and ``mariadb-debezium``.

Per run, the approach creates one topic (one partition) and registers a Debezium connector on
the case's Connect engine whose table topics are routed into it (Debezium's
``ByLogicalTableRouter``), so one partition holds every change of the run in commit order and an
offset is a total order; it consumes that topic with confluent-kafka and maps each envelope
(``op``, ``before``, ``after``, ``source``, ``transaction``) to a ``ChangeEvent`` with values
decoded exactly (``debezium_values``): from the record's own schema, or, where the approach takes
the column types from its stream (``types_in_stream``: records sent without their schema, about
a sixth of the bytes), from the types the source wrote into the stream ahead of the changes that
use them (``table_types``); tombstones are skipped.

Durable progress is the consumer group's committed offset: ``ack`` commits synchronously (the
capture loop calls it at most every ``ack_every_s``, a commit being a broker round trip),
``start(resume=True)`` reads the committed offset and continues after it; ``crash`` closes the
consumer without committing. The connector keeps running while the reader is down, as in
production. ``stop`` deletes the connector, its topics and group, and the source-side objects
(slot and publication) — nothing of a run is left behind.

Settings (the matrix's variants): ``connector=defaults|tuned`` (Debezium's defaults, or the
latency settings ``poll.interval.ms=5``, bigger batches and queues, producer ``linger.ms=1``) and
``delivery=at-least-once|exactly-once`` (the Connect worker's ``exactly.once.source.support``;
the consumer reads ``read_committed`` either way).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import replace
from typing import Any, ClassVar

from containers.connect import first_cause
from containers.jvm import require_confluent_kafka
from harness.approach import BaseApproach
from harness.approaches.debezium_values import compile_key, compile_struct, field_schema
from harness.capabilities import Capabilities
from harness.context import RunContext
from harness.errors import CaptureEnded, EngineUnavailable
from harness.events import ChangeEvent, Position
from harness.secrets import mask_text

try:
    import orjson as _orjson
except ImportError:  # the kafka extra installs it; json is exact too, only slower
    _orjson = None

OPS = {"c": "insert", "r": "insert", "u": "update", "d": "delete", "t": "truncate"}
#: the connector settings of the ``tuned`` variant (for latency: figures in docs/kafka.md)
TUNED: dict[str, str] = {
    "poll.interval.ms": "5",
    "max.batch.size": "8192",
    "max.queue.size": "32768",
    "producer.override.linger.ms": "1",
    # records are large (JSON with their schema): the default 16 KB batch holds about ten
    "producer.override.batch.size": "1048576",
}
ADMIN_TIMEOUT_S = 10.0
#: the consumer's fetches: the broker answers once this many bytes are there or ``FETCH_WAIT_MS``
#: passed (65536 saved no broker or reader CPU measurably in 100k-row drains and added 2.5 ms to
#: the lag p50 of a consumer alone: docs/kafka.md)
FETCH_MIN_BYTES = 1
FETCH_WAIT_MS = 5
#: how long the inexact rule of ``caught_up`` must hold before it answers True
CAUGHT_UP_HOLD_S = 2.0
#: how often (s) ``caught_up`` asks Connect whether the connector's task FAILED
TASK_CHECK_S = 5.0
#: a caught-up marker not through after this long is sent again (its wait may have been cut by a restart)
MARKER_RETRY_S = 5.0
#: calls of ``caught_up`` further apart than this begin a new wait: a marker sent in the last one
#: proves nothing about writes since
MARKER_GAP_S = 2.0


def _kafka() -> Any:
    """confluent_kafka (with its admin module), or ``MissingDependency`` with the install command."""
    return require_confluent_kafka()


class DebeziumApproach(BaseApproach):
    """A Debezium connector on Kafka Connect, read from Kafka with confluent-kafka.

    Subclasses give ``connector_config(ctx)`` (the source-specific part), ``wait_streaming()``
    (return once a change committed now would be captured) and ``drop_source_objects()``.
    """

    roles: ClassVar[tuple[str, ...]] = ("kafka", "connect")
    #: Debezium's transaction metadata (``txid`` reads the transaction block's id by default)
    transaction_metadata: ClassVar[bool] = True
    #: every marker ``send_marker`` sends reaches a live connector's topic (so ``caught_up`` waits
    #: for it instead of judging by the source's sender, which a network partition leaves behind)
    markers_always_arrive: ClassVar[bool] = False
    #: the markers are rows of a marker table (``marker_change`` is asked about every change)
    marker_rows: ClassVar[bool] = False
    #: ``ack`` is a synchronous commit of the consumer group (a broker round trip in the read path:
    #: with one after every poll, the lag p99 at 2k/s was 42–287 ms, without 58–73 ms; docs/kafka.md)
    ack_every_s: ClassVar[float] = 0.1
    #: Debezium delivers at least once: after a crash of Connect or of the consumer, records
    #: after the last committed offset come again
    capabilities: ClassVar[Capabilities] = Capabilities(
        before_image="full", updates="update", key_updates="delete+insert", transactions=True,
        delivery="at-least-once", ddl=frozenset({"add", "drop", "rename", "type"}), truncate=True, resume=True,
        keyless=False,
        notes=("a primary-key change arrives as delete (old key, + tombstone) and create (new key)",
               "a table without a primary key is keyed by a unique index Debezium picks (PostgreSQL) or by no "
               "key (MariaDB): an update there is one update unless that index's columns change"))
    #: per scenario: the Debezium settings variants run beside the family's
    variants: ClassVar[tuple[tuple[str, tuple[dict, ...]], ...]] = (
        ("*", ({"connector": "tuned", "delivery": "at-least-once"},)),
        ("crud", ({"connector": "tuned", "delivery": "at-least-once"},
                  {"connector": "defaults", "delivery": "at-least-once"})),
        *((name, ({"connector": "tuned", "delivery": "at-least-once"},
                  {"connector": "tuned", "delivery": "exactly-once"}))
          for name in ("connect-crash", "broker-restart", "reader-crash", "source-restart", "net-drop")),
    )

    @classmethod
    def capabilities_for(cls, settings: dict[str, Any]) -> Capabilities:
        """Exactly-once source support claims exactly-once delivery; the rest as the class."""
        if settings.get("delivery") == "exactly-once":
            return replace(cls.capabilities, delivery="exactly-once")
        return cls.capabilities

    def __init__(self) -> None:
        super().__init__()
        self.connector = ""
        self.topic = ""
        self.group = ""
        self._consumer: Any = None
        self._connect: Any = None
        self._task_checked_at = 0.0
        self._kafka_engine: Any = None
        self.start_offset = 0
        #: records without their schema, column types from the stream (``uses_types_in_stream``)
        self.types_in_stream = False
        #: compiled decoders by the schema part of records (values, keys)
        self._schemas: dict[bytes, tuple[Any, Any]] = {}
        self._caught_since: float | None = None
        self._keys: dict[bytes, Any] = {}
        #: caught-up markers (``send_marker``): how many sent, the last one sent, when, and the
        #: last one the consumer read
        self._markers = 0
        self._marker_sent: str | None = None
        self._marker_at = 0.0
        self._marker_seen: str | None = None
        self._last_call = 0.0
        #: how many times ``caught_up`` answered True through a marker (the exact rule)
        self.marker_answers = 0

    # -- subclass hooks -------------------------------------------------------------------------
    def connector_config(self, ctx: RunContext) -> dict[str, str]:
        """The source-specific connector settings (connection, filters, slot/server id)."""
        raise NotImplementedError

    def route_regex(self, ctx: RunContext) -> str:
        """A regex matching the run's table topics (routed into the run's one topic)."""
        raise NotImplementedError

    def wait_streaming(self, ctx: RunContext, timeout_s: float) -> None:
        """Return once the connector streams: a change committed now will be captured."""

    def drop_source_objects(self) -> None:
        """Remove what the connector left on the source (slot, publication)."""

    def txid(self, payload: dict, source: dict) -> Any:
        """The commit identity of a change: the transaction block's id (Debezium's metadata)."""
        return (payload.get("transaction") or {}).get("id")

    def source_sent_all(self) -> bool:
        """True when the source has sent the connector everything it has committed so far."""
        return False

    def before_register(self, ctx: RunContext, resume: bool) -> None:
        """Prepare the source before the connector starts (e.g. create the publication)."""

    def send_marker(self, token: str) -> bool:
        """Write a caught-up marker with content ``token`` into the source's log, ordered after
        every transaction committed before the call, for the connector to put into the run's
        topic (read back by ``marker_of``); False when the source cannot (then ``caught_up``
        uses its inexact rule only)."""
        return False

    def marker_of(self, payload: dict) -> str | None:
        """The token of a caught-up marker record of this run (``None`` for any other record;
        called with every record that is not a change)."""
        return None

    def marker_change(self, source: dict, payload: dict) -> str | None:
        """The token of a change that is a caught-up marker of this run (a row of a marker table,
        never passed on as a change), else ``None``; called with every change record."""
        return None

    def uses_types_in_stream(self, settings: dict[str, Any]) -> bool:
        """True when the run's records go without their schema and the column types come from
        the stream instead (``control_record`` takes them, ``table_types`` gives them)."""
        return False

    def control_record(self, payload: dict, offset: int) -> None:
        """A record that is not a change (a caught-up marker, a types message, a transaction's
        BEGIN/END) at ``offset``, in stream order."""
        token = self.marker_of(payload)
        if token is not None:
            self._marker_seen = token

    def fast_event(self, raw: bytes, key: bytes | None, offset: int, captured_at: int) -> ChangeEvent | None:
        """``to_event`` of a change record without its schema by a faster path, or ``None`` when
        the record is not one it reads (then the generic path reads it): only with
        ``types_in_stream``; the same event as the generic path or ``None``."""
        return None

    def table_types(self, table: str) -> Any:
        """The decoders (``debezium_pg_types.TableTypes``) of ``table``'s columns as of the
        record being read (only with ``types_in_stream``)."""
        raise NotImplementedError

    # -- contract -------------------------------------------------------------------------------
    def start(self, ctx: RunContext, resume: bool = False) -> None:
        super().start(ctx, resume)
        ck = _kafka()
        self.capabilities = self.capabilities_for(ctx.settings)
        self.types_in_stream = self.uses_types_in_stream(ctx.settings)
        self._kafka_engine = ctx.role("kafka")
        self._connect = ctx.role("connect")
        prefix = ctx.name_prefix
        self.connector = prefix
        self.topic = f"{prefix}.changes"
        self.group = f"{prefix}_reader"
        mode = str(ctx.settings.get("delivery", "at-least-once"))
        running = bool(self._connect.status(self.connector)) if resume else False
        if not running:
            if resume:
                raise EngineUnavailable(f"connector {self.connector} is gone, cannot resume")
            self._create_topic(ck)
            self.before_register(ctx, resume)
            config = {**self.connector_config(ctx), **self._common_config(ctx)}
            self._connect.register(self.connector, config, mode=mode, timeout_s=ctx.timeout_s)
            self.wait_streaming(ctx, ctx.timeout_s)
        self._open_consumer(ck, resume)

    def _common_config(self, ctx: RunContext) -> dict[str, str]:
        config = {
            "topic.prefix": ctx.name_prefix,
            "tasks.max": "1",
            "snapshot.mode": "no_data",
            "provide.transaction.metadata": str(self.transaction_metadata).lower(),
            "skipped.operations": "none",
            "tombstones.on.delete": "true",
            "transforms": "route",
            "transforms.route.type": "io.debezium.transforms.ByLogicalTableRouter",
            "transforms.route.topic.regex": self.route_regex(ctx),
            "transforms.route.topic.replacement": self.topic,
            "topic.creation.default.replication.factor": "1",
            "topic.creation.default.partitions": "1",
        }
        if ctx.settings.get("connector", "tuned") == "tuned":
            config.update(TUNED)
        if ctx.settings.get("delivery") == "exactly-once":
            config.update({"exactly.once.support": "required", "transaction.boundary": "poll"})
        if self.types_in_stream:
            json_converter = "org.apache.kafka.connect.json.JsonConverter"
            config.update({"key.converter": json_converter, "key.converter.schemas.enable": "false",
                           "value.converter": json_converter, "value.converter.schemas.enable": "false"})
        return config

    def _create_topic(self, ck: Any) -> None:
        admin = self._kafka_engine.admin()
        futures = admin.create_topics([ck.admin.NewTopic(self.topic, num_partitions=1, replication_factor=1)],
                                      operation_timeout=ADMIN_TIMEOUT_S)
        for future in futures.values():
            try:
                future.result(timeout=ADMIN_TIMEOUT_S)
            except ck.KafkaException as exc:
                if exc.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise EngineUnavailable(f"cannot create topic {self.topic}: {exc.args[0].str()}") from None

    def _open_consumer(self, ck: Any, resume: bool) -> None:
        consumer = ck.Consumer({
            "bootstrap.servers": self._kafka_engine.bootstrap, "group.id": self.group,
            "enable.auto.commit": False, "isolation.level": "read_committed", "log_level": 0,
            "fetch.wait.max.ms": FETCH_WAIT_MS, "fetch.min.bytes": FETCH_MIN_BYTES,
            "socket.timeout.ms": 10_000, "enable.partition.eof": False,
        })
        start = ck.OFFSET_BEGINNING
        if resume:
            committed = consumer.committed([ck.TopicPartition(self.topic, 0)], timeout=ADMIN_TIMEOUT_S)
            if committed and committed[0].offset >= 0:
                start = committed[0].offset
        consumer.assign([ck.TopicPartition(self.topic, 0, start)])
        self._consumer = consumer
        #: the first offset this consumer reads (0: the topic's beginning)
        self.start_offset = max(0, start)

    def poll(self, max_events: int, timeout_s: float) -> list[ChangeEvent]:
        """Changes in offset order (one partition: commit order), waiting at most ``timeout_s``."""
        consumer = self._consumer
        if consumer is None:
            raise EngineUnavailable("poll() on a reader that is not started")
        # consume(n, timeout) waits for n messages or the whole timeout: wait for the first one
        # only, then take what is already fetched without waiting
        first = consumer.poll(timeout_s)
        if first is None:
            return []
        captured_at = time.time_ns()
        messages = [first, *consumer.consume(num_messages=max(1, min(max_events, 10_000)) - 1, timeout=0)] \
            if max_events > 1 else [first]
        out: list[ChangeEvent] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal() or not err.retriable():
                    raise EngineUnavailable(f"Kafka consumer error on {self.topic}: {err.str()}")
                continue
            value = msg.value()
            if value is None:  # a delete's tombstone
                continue
            event = self.to_event(value, msg.key(), msg.offset(), captured_at)
            if event is not None:
                out.append(event)
        return out

    def _compiled(self, schema_json: bytes) -> tuple[Any, Any]:
        """The (before, after) decoders of an envelope schema, compiled once per distinct schema."""
        hit = self._schemas.get(schema_json)
        if hit is None:
            schema = json.loads(schema_json) or {}
            hit = (compile_struct(field_schema(schema, "before")), compile_struct(field_schema(schema, "after")))
            if len(self._schemas) > 256:
                self._schemas.clear()
            self._schemas[schema_json] = hit
        return hit

    def to_event(self, raw: bytes, key: bytes | None, offset: int, captured_at: int) -> ChangeEvent | None:
        """One Debezium envelope (Connect JSON, with its schema or not) as a ``ChangeEvent``
        (None for records that are not changes). Only the payload is parsed per record: the
        schema part, the same for every change of a table version, is parsed and compiled once;
        without it, the decoders are the table's of the last types message."""
        if self.types_in_stream:
            event = self.fast_event(raw, key, offset, captured_at)
            if event is not None:
                return event
            schema_json, payload = b"", _loads(raw)
        else:
            schema_json, payload = _split(raw)
        if not payload:
            return None
        op = OPS.get(payload.get("op"))
        if op is None:  # a caught-up marker, a types message, a transaction's BEGIN/END, a kind not mapped
            self.control_record(payload, offset)
            return None
        source = payload.get("source") or {}
        if self.marker_rows:
            token = self.marker_change(source, payload)
            if token is not None:
                self._marker_seen = token
                return None
        table = source.get("table") or ""
        txid = self.txid(payload, source)
        commit_ts = source.get("ts_us")
        if op == "truncate":
            return ChangeEvent(table, op, (), None, None, (offset,), txid, ns_of(commit_ts), captured_at)
        if self.types_in_stream:
            types = self.table_types(table)
            before, after = types.row(payload.get("before")), types.row(payload.get("after"))
            key_values = types.key(_loads(key), "__dbz__") if key is not None else ()
            return ChangeEvent(table, op, key_values, before, after, (offset,), txid, ns_of(commit_ts), captured_at)
        before_of, after_of = self._compiled(schema_json)
        before = before_of(payload.get("before"))
        after = after_of(payload.get("after"))
        return ChangeEvent(table, op, self._key(key), before, after, (offset,), txid, ns_of(commit_ts), captured_at)

    def _key(self, raw: bytes | None) -> tuple:
        """The key columns' values in key order, from the record key (routing fields dropped)."""
        if raw is None:
            return ()
        schema_json, payload = _split(raw)
        decoder = self._keys.get(schema_json)
        if decoder is None:
            if len(self._keys) > 256:
                self._keys.clear()
            decoder = self._keys[schema_json] = compile_key(json.loads(schema_json) or {}, "__dbz__")
        return decoder(payload)

    def caught_up(self) -> bool:
        """True when the consumer has read everything the source committed before (about) now.

        Exact where the source takes markers (``send_marker``): a call sends a marker; True
        once the consumer has read the last marker sent, which in the run's one partition comes
        after every change committed before it was sent, so what is missing then was lost, not
        late (each True answer sends the next marker: the next answer covers commits up to this
        call; calls more than ``MARKER_GAP_S`` apart begin a new wait with a new marker).
        While a marker is on its way and the approach's markers always arrive through a live
        connector (``markers_always_arrive``), False: a dead connector is waited for until the
        deadline, never taken as caught up. Otherwise, and while no marker is through: True when,
        for ``CAUGHT_UP_HOLD_S`` on end, the source has sent the connector all it committed and
        the consumer has read the topic to its end (Debezium's queue and producer flush within
        milliseconds, and within its ``poll.interval.ms`` of 500 ms under the defaults)."""
        now = time.monotonic()
        self._check_task(now)
        if now - self._last_call > MARKER_GAP_S:
            self._marker_sent = None
        self._last_call = now
        through = self._marker_sent is not None and self._marker_seen == self._marker_sent
        if through or self._marker_sent is None or now - self._marker_at > MARKER_RETRY_S:
            self._markers += 1
            token = f"{self.connector}:{self._markers}"
            self._marker_sent = token if self._send_marker(token) else None
            self._marker_at = now
        if through:
            self._caught_since = None
            self.marker_answers += 1
            return True
        if self._marker_sent is not None and self.markers_always_arrive:
            return False  # a live connector delivers the marker: wait for it, whatever the source says
        if not (self._consumer_at_end() and self.source_sent_all()):
            self._caught_since = None
            return False
        if self._caught_since is None:
            self._caught_since = now
        return now - self._caught_since >= CAUGHT_UP_HOLD_S

    def _check_task(self, now: float) -> None:
        """At most every ``TASK_CHECK_S``: a connector task in state FAILED ends the capture
        (``CaptureEnded`` with the task's first cause): Connect does not restart it, so waiting for
        the deadline could only add minutes. A Connect that does not answer (restarting) is not
        a failure."""
        if now - self._task_checked_at < TASK_CHECK_S or self._connect is None or not self.connector:
            return
        self._task_checked_at = now
        try:
            state, trace = self._connect.task_state(self.connector)
        except Exception:  # noqa: BLE001 - Connect restarting: ask again later
            return
        if state == "FAILED":
            raise CaptureEnded(f"connector {self.connector}'s task FAILED: {mask_text(first_cause(trace))}")

    def _send_marker(self, token: str) -> bool:
        try:
            return bool(self.connector) and self.send_marker(token)
        except Exception:  # noqa: BLE001 - a restarting source: no marker this time
            return False

    def _consumer_at_end(self) -> bool:
        consumer = self._consumer
        if consumer is None:
            return False
        ck = _kafka()
        try:
            _, high = consumer.get_watermark_offsets(ck.TopicPartition(self.topic, 0), timeout=2.0)
            position = consumer.position([ck.TopicPartition(self.topic, 0)])[0].offset
        except ck.KafkaException:
            return False
        return high <= 0 or position >= high

    def ack(self, position: Position) -> None:
        """Commit the consumer group's offset after ``position`` (synchronously: durable)."""
        if self._consumer is None:
            return
        ck = _kafka()
        self._consumer.commit(offsets=[ck.TopicPartition(self.topic, 0, int(position[0]) + 1)],
                              asynchronous=False)

    def crash(self) -> None:
        """Abrupt: drop the consumer without committing anything more (the connector runs on)."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                consumer.close()

    def stop(self) -> None:
        """Close the consumer, delete the connector, its topics and group, and the source's slot
        and publication. Idempotent."""
        self.crash()
        if not self.connector:
            return
        connector, self.connector = self.connector, ""
        with contextlib.suppress(Exception):
            self._connect.delete(connector)
        with contextlib.suppress(Exception):
            self.drop_source_objects()
        with contextlib.suppress(Exception):
            self._kafka_engine.cleanup(connector)


_SCHEMA_START = len(b'{"schema":')
_PAYLOAD = b',"payload":'


#: digits to 9, '-' kept, the rest to blanks: a long integer literal shows as a run of nines (a
#: translate and two substring searches are several times cheaper than a regex over the digits)
_DIGIT_RUNS = bytes(57 if 48 <= i <= 57 else 45 if i == 45 else 32 for i in range(256))
_LONG_POSITIVE, _LONG_NEGATIVE = b"9" * 20, b"-" + b"9" * 19


def _loads(raw: bytes) -> Any:
    """JSON text as Python values, exactly as ``json.loads`` gives them: orjson (several times
    faster) when installed; ``json`` for text with a digit run of 20+ (19+ after a minus: orjson
    reads an integer beyond int64/uint64 as a float; Connect's JSON has none, int64 being its
    widest integer, so this is a guard) and for what orjson refuses."""
    runs = raw.translate(_DIGIT_RUNS)
    if _orjson is not None and _LONG_POSITIVE not in runs and _LONG_NEGATIVE not in runs:
        try:
            return _orjson.loads(raw)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def _split(raw: bytes) -> tuple[bytes, Any]:
    """(schema JSON bytes, parsed payload) of a Connect JSON record ``{"schema":…,"payload":…}``.

    The first ``,"payload":`` is the envelope's: the schema holds field names only as values
    (``"field":"payload"``), and a quote inside a string value is escaped."""
    cut = raw.find(_PAYLOAD)
    if not raw.startswith(b'{"schema":') or cut < 0:
        doc = json.loads(raw)
        return json.dumps(doc.get("schema")).encode(), doc.get("payload")
    return raw[_SCHEMA_START:cut], _loads(raw[cut + len(_PAYLOAD):-1])


def ns_of(us: Any) -> int | None:
    """Epoch nanoseconds of Debezium's epoch microseconds (``ts_us``)."""
    return int(us) * 1000 if us is not None else None
