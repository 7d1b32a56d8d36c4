"""Approach ``pg-debezium``: Debezium's PostgreSQL connector (pgoutput) through Kafka Connect.

The run's publication (FOR TABLES IN SCHEMA) is created by the approach, the slot by the
connector; ``stop`` drops both (deleting a connector leaves them behind). Under REPLICA IDENTITY
DEFAULT Debezium gives updates without a before image and deletes whose before image holds the
key plus *type defaults* (0, 1970-01-01) for NOT NULL columns: the approach passes them on as
received, so the checker names what is wrong. Unchanged TOASTed values arrive as
``__debezium_unavailable_value`` and are passed on too.

Under the ``tuned`` connector the records go without their schema (about 580 instead of 3,300
bytes a change: the schema was most of Connect's, the broker's and the reader's work, figures in
docs/kafka.md) and the reader decodes values from the column types the source writes into the
stream: an event trigger in the run's database writes the run schema's column types as a
transactional logical decoding message after every DDL on the schema (in the DDL's transaction,
so before every change that uses the new types), and the approach writes one when the
connector's slot exists (``debezium_pg_types``). Creating an event trigger takes a superuser;
the ``defaults`` connector keeps Debezium's records with their schema. With the types known
ahead, a change record is parsed by typed msgspec decoders (``fast_event``: the envelope's few
fields the reader uses, then each row image by its table's types), a third of the reader's
work; a record they do not fit (a message, a truncate, a value not of its column's type) is read
the generic way.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

try:
    import msgspec
except ImportError:  # the kafka extra installs it; without it every record is read the generic way
    msgspec = None  # type: ignore[assignment]

from containers.postgres import connect, create_schema_publication, drop_slot, pg_name, require_postgres
from harness.approaches.debezium import OPS, DebeziumApproach
from harness.approaches.debezium_pg_types import TableTypes, event_trigger_sql, table_types, types_sql
from harness.capabilities import Capabilities
from harness.context import RunContext
from harness.errors import EngineMisconfigured, EngineUnavailable
from harness.events import ChangeEvent


def _envelope_decoder() -> Any:
    """A msgspec decoder of the envelope fields a change needs (``op``, the row images as raw
    JSON, ``source``'s table, commit time and xid); every other field is skipped unparsed."""
    if msgspec is None:
        return None
    null = msgspec.Raw(b"null")
    source = msgspec.defstruct("Source", [("table", str, ""), ("ts_us", int | None, None), ("txId", Any, None)])
    envelope = msgspec.defstruct("Envelope", [("op", Any, None), ("before", msgspec.Raw, null),
                                              ("after", msgspec.Raw, null), ("source", source | None, None)])
    return msgspec.json.Decoder(envelope)


_ENVELOPE = _envelope_decoder()


class PgDebezium(DebeziumApproach):
    """``pg-debezium``: the Debezium PostgreSQL connector with pgoutput, read from Kafka.

    Claims: one update event per update; whole transactions in commit order (one partition);
    at-least-once (exactly-once with the worker's exactly-once source support); follows
    add/drop/rename/type DDL from pgoutput's Relation messages; truncate events. Before images:
    full under REPLICA IDENTITY FULL, key only under DEFAULT.
    """

    name: ClassVar[str] = "pg-debezium"
    family: ClassVar[str] = "postgres"
    capabilities: ClassVar[Capabilities] = replace(
        DebeziumApproach.capabilities, before_image="key",
        notes=("REPLICA IDENTITY DEFAULT: updates carry no before image; a delete's before image "
               "holds the key and type defaults for NOT NULL columns",
               "unchanged TOAST values arrive as __debezium_unavailable_value"))

    #: ``types`` also under Debezium's defaults: the decoding from record schemas beside the
    #: decoding from the stream's types messages, on every type the scenario writes
    variants: ClassVar[tuple[tuple[str, tuple[dict, ...]], ...]] = (
        *DebeziumApproach.variants,
        ("types", ({"connector": "tuned", "delivery": "at-least-once"},
                   {"connector": "defaults", "delivery": "at-least-once"})),
    )

    @classmethod
    def capabilities_for(cls, settings: dict[str, Any]) -> Capabilities:
        """Full before images under ``replica_identity=full``; exactly-once with that delivery."""
        caps = super().capabilities_for(settings)
        if str(settings.get("replica_identity", "default")).lower() == "full":
            caps = replace(caps, before_image="full", notes=DebeziumApproach.capabilities.notes)
        return caps

    def __init__(self) -> None:
        super().__init__()
        self.url = ""
        self.schema = ""
        self.slot = ""
        self.publication = ""
        self.trigger = ""
        #: the run's tables' column decoders, from the last types message (``types_in_stream``)
        self._types: dict[str, TableTypes] = {}
        self.types_messages = 0
        #: tables whose types had to be read from the catalog (a change before any types message)
        self.types_from_catalog: set[str] = set()
        #: (offset, types JSON) of every types message read; the last offset saved by ``ack``
        self._types_log: list[tuple[int, str]] = []
        self._types_saved = -1

    def start(self, ctx: RunContext, resume: bool = False) -> None:
        engine = ctx.role("postgres")
        self.url = require_postgres(engine)
        self.schema = engine.schema_for(ctx.name_prefix)
        self.slot = pg_name(f"{ctx.name_prefix}_dbz")
        self.publication = pg_name(f"{ctx.name_prefix}_dbzpub")
        self.trigger = pg_name(f"{ctx.name_prefix}_dbztypes")
        super().start(ctx, resume)
        if resume and self.types_in_stream:
            self._restore_types()

    #: whether the ``tuned`` connector sends records without their schema (the pipeline's
    #: upstream keeps them: its sink reads the schema)
    types_from_stream: ClassVar[bool] = True

    def uses_types_in_stream(self, settings: dict[str, Any]) -> bool:
        """Under the ``tuned`` connector (and ``types_from_stream``)."""
        return self.types_from_stream and settings.get("connector", "tuned") == "tuned"

    def _types_prefix(self) -> str:
        return f"{self.connector}.types"

    def before_register(self, ctx: RunContext, resume: bool) -> None:
        with connect(self.url) as admin:
            drop_slot(admin, self.slot, ctx.timeout_s)  # a stale slot of this name: start from now
            create_schema_publication(admin, self.publication, self.schema)
            if self.types_in_stream:
                self._create_types_trigger(admin)

    def _create_types_trigger(self, admin: Any) -> None:
        """The run's event trigger writing its schema's column types into the stream (a superuser's
        right)."""
        try:
            for statement in event_trigger_sql(self.schema, self.trigger, self._types_prefix()):
                admin.execute(statement)
        except Exception as e:  # noqa: BLE001 - psycopg's errors: one message with the fix
            raise EngineMisconfigured(
                f"pg-debezium (connector=tuned) cannot create its event trigger {self.trigger}: "
                f"{str(e).strip().splitlines()[0]}; fix: connect as a superuser, or run the "
                "connector=defaults variant (records with their schema, no trigger)") from None

    #: caught-up markers (logical decoding messages) routed into the run's topic; the
    #: pg-kafka-iceberg upstream turns them off (its sink has markers of its own)
    markers: ClassVar[bool] = True
    #: a logical decoding message is in every slot's stream after the commits before it
    markers_always_arrive: ClassVar[bool] = True
    #: Debezium's transaction metadata (BEGIN/END records and a ``transaction`` block per change):
    #: not needed here, the xid is in ``source.txId``; off, it saves two records per transaction
    #: (a one-row transaction is one record instead of three) and the block's work per change
    transaction_metadata: ClassVar[bool] = False

    def _marker_prefix(self) -> str:
        return f"{self.connector}.caught-up"

    def send_marker(self, token: str) -> bool:
        """A non-transactional logical decoding message: in the WAL (and the slot's stream)
        after every commit before it; Debezium puts it into ``<prefix>.message``, routed into
        the run's topic."""
        if not self.markers:
            return False
        with connect(self.url) as admin:
            admin.execute("SELECT pg_logical_emit_message(false, %s, %s)", (self._marker_prefix(), token))
        return True

    def marker_of(self, payload: dict) -> str | None:
        message = payload.get("message") if payload.get("op") == "m" else None
        if not message or message.get("prefix") != self._marker_prefix():
            return None
        content = message.get("content")
        return base64.b64decode(content).decode() if isinstance(content, str) else None

    def control_record(self, payload: dict, offset: int) -> None:
        """Caught-up markers, and the run's types messages (the decoders of every table of the
        run's schema from here on, kept with their offsets for a resumed reader: ``ack``)."""
        message = payload.get("message") if payload.get("op") == "m" else None
        if message and message.get("prefix") == self._types_prefix() and isinstance(message.get("content"), str):
            doc = base64.b64decode(message["content"]).decode()
            self._apply_types(doc)
            self.types_messages += 1
            if not self._types_log or self._types_log[-1][0] < offset:
                self._types_log.append((offset, doc))
            return
        super().control_record(payload, offset)

    def _apply_types(self, doc: str) -> None:
        self._types.update(table_types(json.loads(doc)))

    def ack(self, position: Any) -> None:
        """Commit the offset after ``position``; first, when a types message came since the last
        save, save the types messages up to ``position`` in the checkpoint (a resumed reader
        starts after the committed offset, past the messages that give its tables' types)."""
        if self.types_in_stream and self._types_log and self._types_log[-1][0] != self._types_saved:
            upto = [[off, doc] for off, doc in self._types_log if off <= int(position[0])]
            if upto and upto[-1][0] != self._types_saved:
                self.save_checkpoint({"types": upto})
                self._types_saved = upto[-1][0]
        super().ack(position)

    def _restore_types(self) -> None:
        """A resumed reader: the types of the saved messages before its first offset."""
        saved = (self.load_checkpoint() or {}).get("types") or []
        self._types_log = [(int(off), str(doc)) for off, doc in saved if int(off) < self.start_offset]
        for _, doc in self._types_log:
            self._apply_types(doc)
        self._types_saved = self._types_log[-1][0] if self._types_log else -1

    def fast_event(self, raw: bytes, key: bytes | None, offset: int, captured_at: int) -> ChangeEvent | None:
        """A change record (insert, update, delete) parsed by the typed decoders of its table's
        types; ``None`` for any other record and for one the decoders do not fit."""
        if _ENVELOPE is None:
            return None
        try:
            env = _ENVELOPE.decode(raw)
            op = OPS.get(env.op) if isinstance(env.op, str) else None
            source = env.source
            if op is None or op == "truncate" or source is None:
                return None
            types = self.table_types(source.table)
            return ChangeEvent(source.table, op, types.key_json(key, "__dbz__") if key is not None else (),
                               types.row_json(env.before), types.row_json(env.after), (offset,), source.txId,
                               None if source.ts_us is None else source.ts_us * 1000, captured_at)
        except msgspec.DecodeError:
            return None

    def table_types(self, table: str) -> TableTypes:
        """The table's decoders as of the last types message; for a table no message named yet
        (a change committed before the first one), its types in the catalog now, counted in
        ``types_from_catalog``."""
        found = self._types.get(table)
        if found is None:
            with connect(self.url) as admin:
                doc = admin.execute(types_sql("%s"), (self.schema,)).fetchone()[0]
            self._types.update({name: types for name, types in table_types(json.loads(doc)).items()
                                if name not in self._types})
            self.types_from_catalog.add(table)
            found = self._types.get(table)
            if found is None:
                raise EngineUnavailable(f"pg-debezium: a change of table {table}, which is not in schema "
                                        f"{self.schema} (dropped?): its column types are unknown")
        return found

    def run_measurements(self, ctx: RunContext) -> dict[str, Any]:
        """Where the column types came from: ``value_types`` (``stream``: types messages, or
        ``record schema``), how many types messages were read, and the tables whose types were
        read from the catalog instead (none in a healthy run)."""
        if not self.types_in_stream:
            return {"value_types": "record schema"}
        return {"value_types": "stream", "types_messages": self.types_messages,
                "types_from_catalog": sorted(self.types_from_catalog)}

    def txid(self, payload: dict, source: dict) -> Any:
        """PostgreSQL's xid (``source.txId``): the transaction block's id is ``xid:lsn`` with the
        LSN of each change, so only the part before the colon names the transaction."""
        return source.get("txId")

    def connector_config(self, ctx: RunContext) -> dict[str, str]:
        parts = urlsplit(self.url)
        # only this run's caught-up markers and types messages (by default every prefix's are taken)
        prefixes = [re.escape(p) for p, on in ((self._marker_prefix(), self.markers),
                                               (self._types_prefix(), self.types_in_stream)) if on]
        markers = {"message.prefix.include.list": "|".join(prefixes)} if prefixes else {}
        return {**markers,
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "plugin.name": "pgoutput",
            "database.hostname": parts.hostname or "127.0.0.1",
            "database.port": str(parts.port or 5432),
            "database.user": unquote(parts.username or "postgres"),
            "database.password": unquote(parts.password or ""),
            "database.dbname": parts.path.lstrip("/") or "postgres",
            "slot.name": self.slot,
            "publication.name": self.publication,
            "publication.autocreate.mode": "disabled",
            "schema.include.list": self.schema,
        }

    def route_regex(self, ctx: RunContext) -> str:
        tables = f"{ctx.name_prefix}\\.{self.schema}\\..*"
        return f"{tables}|{ctx.name_prefix}\\.message" if self.markers or self.types_in_stream else tables

    def wait_streaming(self, ctx: RunContext, timeout_s: float) -> None:
        """The slot exists: every change committed after its creation is in its stream. With
        ``types_in_stream``, the run schema's column types are written then, ahead of them."""
        deadline = time.monotonic() + timeout_s
        with connect(self.url) as admin:
            while not admin.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                                    (self.slot,)).fetchone():
                if time.monotonic() > deadline:
                    raise EngineUnavailable(f"the connector created no slot {self.slot} within {timeout_s:.0f} s")
                time.sleep(0.05)
            if self.types_in_stream:
                admin.execute(f'SELECT pg_logical_emit_message(true, %s, "{self.schema}".cdc_types())',
                              (self._types_prefix(),))

    def source_sent_all(self) -> bool:
        """The slot's walsender has sent all WAL written so far."""
        try:
            with connect(self.url) as admin:
                row = admin.execute(
                    "SELECT s.sent_lsn >= pg_current_wal_lsn() FROM pg_replication_slots r "
                    "JOIN pg_stat_replication s ON s.pid = r.active_pid WHERE r.slot_name = %s",
                    (self.slot,)).fetchone()
        except Exception:  # noqa: BLE001 - a restarting server: not caught up
            return False
        return bool(row and row[0])

    def drop_source_objects(self) -> None:
        with connect(self.url) as admin:
            drop_slot(admin, self.slot, 30.0)
            admin.execute(f'DROP PUBLICATION IF EXISTS "{self.publication}"')
            if self.trigger:
                admin.execute(f'DROP EVENT TRIGGER IF EXISTS "{self.trigger}"')
                admin.execute(f'DROP FUNCTION IF EXISTS "{self.schema}".cdc_types_emit(), "{self.schema}".cdc_types()')
