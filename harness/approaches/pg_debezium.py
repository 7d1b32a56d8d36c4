"""Approach ``pg-debezium``: Debezium's PostgreSQL connector (pgoutput) through Kafka Connect.

The run's publication (FOR TABLES IN SCHEMA) is created by the approach, the slot by the
connector; ``stop`` drops both (deleting a connector leaves them behind). Under REPLICA IDENTITY
DEFAULT Debezium gives updates without a before image and deletes whose before image holds the
key plus *type defaults* (0, 1970-01-01) for NOT NULL columns: the approach passes them on as
received, so the checker names what is wrong. Unchanged TOASTed values arrive as
``__debezium_unavailable_value`` and are passed on too.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from containers.postgres import connect, create_schema_publication, drop_slot, pg_name, require_postgres
from harness.approaches.debezium import DebeziumApproach
from harness.capabilities import Capabilities
from harness.context import RunContext
from harness.errors import EngineUnavailable


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

    def start(self, ctx: RunContext, resume: bool = False) -> None:
        engine = ctx.role("postgres")
        self.url = require_postgres(engine)
        self.schema = engine.schema_for(ctx.name_prefix)
        self.slot = pg_name(f"{ctx.name_prefix}_dbz")
        self.publication = pg_name(f"{ctx.name_prefix}_dbzpub")
        super().start(ctx, resume)

    def before_register(self, ctx: RunContext, resume: bool) -> None:
        with connect(self.url) as admin:
            drop_slot(admin, self.slot, ctx.timeout_s)  # a stale slot of this name: start from now
            create_schema_publication(admin, self.publication, self.schema)

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

    def txid(self, payload: dict, source: dict) -> Any:
        """PostgreSQL's xid (``source.txId``): the transaction block's id is ``xid:lsn`` with the
        LSN of each change, so only the part before the colon names the transaction."""
        return source.get("txId")

    def connector_config(self, ctx: RunContext) -> dict[str, str]:
        parts = urlsplit(self.url)
        # only this run's caught-up markers (by default every prefix's messages are taken)
        markers = {"message.prefix.include.list": re.escape(self._marker_prefix())} if self.markers else {}
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
        return f"{tables}|{ctx.name_prefix}\\.message" if self.markers else tables

    def wait_streaming(self, ctx: RunContext, timeout_s: float) -> None:
        """The slot exists: every change committed after its creation is in its stream."""
        deadline = time.monotonic() + timeout_s
        with connect(self.url) as admin:
            while not admin.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                                    (self.slot,)).fetchone():
                if time.monotonic() > deadline:
                    raise EngineUnavailable(f"the connector created no slot {self.slot} within {timeout_s:.0f} s")
                time.sleep(0.05)

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
