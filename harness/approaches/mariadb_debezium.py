"""Approach ``mariadb-debezium``: Debezium's MariaDB connector (MySQL's on a MySQL server) through
Kafka Connect.

The connector reads the binary log from the position it records at start (``snapshot.mode=
no_data``: the schema is captured, no rows) and keeps its schema history in a Kafka topic of the
run, removed at ``stop`` with the others. Its binlog client registers with a server id derived
from the run's name. Positions, delivery and recovery are the Kafka side's (``debezium``).

Caught-up markers are rows: the approach creates a marker database beside the run's
(``<run database>_mk``, one table ``caught_up``), captured by the same connector and routed into
the run's topic; ``send_marker`` upserts the token in an autocommit statement, binlogged after
every transaction committed before it, and the reader takes that row's change as the marker and
never passes it on. So ``caught_up`` is exact here too, on MariaDB and MySQL, whatever else the
server binlogs.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import replace
from typing import Any, ClassVar

from containers.mysql import parse_url, require_mysql
from harness.approaches.debezium import DebeziumApproach
from harness.capabilities import Capabilities
from harness.context import RunContext
from harness.errors import EngineUnavailable

CONNECTORS = {"mariadb": "io.debezium.connector.mariadb.MariaDbConnector",
              "mysql": "io.debezium.connector.mysql.MySqlConnector"}
_FULL = {"binlog_row_image": "full", "binlog_row_metadata": "full"}


def _dump_threads(engine: Any) -> int:
    conn = engine.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


class MariaDbDebezium(DebeziumApproach):
    """``mariadb-debezium``: the Debezium MariaDB/MySQL connector, read from Kafka.

    Claims: full before images (binlog_row_image=FULL, the one image Debezium supports fully);
    one update event per update; whole transactions in commit order (one partition);
    at-least-once (exactly-once with the worker's exactly-once source support); follows
    add/drop/rename/type DDL through its schema history; truncate events.
    """

    name: ClassVar[str] = "mariadb-debezium"
    family: ClassVar[str] = "mysql"
    #: ``partition``: the marker rows come through a live connector after every change before
    #: them, so a drain waits for a reconnecting connector (the binlog dump thread a partition
    #: leaves on the server says "has sent all binlog": the inexact rule alone ended drains early)
    capabilities: ClassVar[Capabilities] = replace(DebeziumApproach.capabilities, before_image="full")
    markers_always_arrive: ClassVar[bool] = True
    marker_rows: ClassVar[bool] = True
    #: Debezium needs binlog_row_image=FULL: every variant runs with the FULL binlog settings
    variants: ClassVar[tuple[tuple[str, tuple[dict, ...]], ...]] = tuple(
        (name, tuple({**_FULL, **v} for v in variants)) for name, variants in DebeziumApproach.variants)

    def __init__(self) -> None:
        super().__init__()
        self.engine: Any = None
        self.database = ""
        self._threads_before = 0
        #: the database of the marker table (captured with the run's, never passed on)
        self.marker_db = ""

    def _common_config(self, ctx: RunContext) -> dict[str, str]:
        """Debezium's transaction BEGIN/END records go into the run's topic too (``<prefix>.
        changes``): the transaction block names each change's GTID."""
        return {**super()._common_config(ctx), "topic.transaction": "changes"}

    def _execute(self, sql: str, args: tuple = ()) -> None:
        conn = self.engine.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
        finally:
            conn.close()

    def send_marker(self, token: str) -> bool:
        """Upsert ``token`` into the marker table (autocommit: binlogged after every transaction
        committed before it)."""
        if self.engine is None or not self.marker_db:
            return False
        self._execute(f"INSERT INTO `{self.marker_db}`.caught_up (id, token) VALUES (1, %s) "
                      "ON DUPLICATE KEY UPDATE token = VALUES(token)", (token,))
        return True

    def marker_change(self, source: dict, payload: dict) -> str | None:
        """A change of the marker table: its row's token."""
        if source.get("db") != self.marker_db:
            return None
        return str((payload.get("after") or {}).get("token") or "") or None

    def start(self, ctx: RunContext, resume: bool = False) -> None:
        self.engine = ctx.role("mysql")
        require_mysql(self.engine)
        self.database = self.engine.database_for(ctx.name_prefix)
        self.marker_db = self.engine.database_for(f"{ctx.name_prefix}_mk")
        super().start(ctx, resume)

    def before_register(self, ctx: RunContext, resume: bool) -> None:
        """The marker database and table (before the connector's schema snapshot), then the count
        of binlog dump threads before the connector's."""
        self._execute(f"CREATE DATABASE IF NOT EXISTS `{self.marker_db}`")
        self._execute(f"CREATE TABLE IF NOT EXISTS `{self.marker_db}`.caught_up "
                      "(id int PRIMARY KEY, token varchar(200) NOT NULL)")
        self._threads_before = _dump_threads(self.engine)

    def connector_config(self, ctx: RunContext) -> dict[str, str]:
        params = parse_url(self.engine.url)
        tuned = {"connect.keep.alive.interval.ms": "1000"} if ctx.settings.get("connector") == "tuned" else {}
        return {**tuned,
            "connector.class": CONNECTORS.get(self.engine.flavor, CONNECTORS["mysql"]),
            "database.hostname": params["host"],
            "database.port": str(params["port"]),
            "database.user": params["user"],
            "database.password": params["password"],
            "database.server.id": str(100_000 + zlib.crc32(ctx.name_prefix.encode()) % 1_000_000_000),
            "database.include.list": f"{self.database},{self.marker_db}",
            "database.ssl.mode": "disable",
            "include.schema.changes": "false",
            "schema.history.internal.kafka.bootstrap.servers": self._kafka_engine.bootstrap,
            "schema.history.internal.kafka.topic": f"{ctx.name_prefix}.schemahistory",
            "connect.timeout.ms": "10000",
            # the schema snapshot of no_data reads only the run's database, without a global read
            # lock (nothing runs DDL before start() returns): the server is shared by many runs
            "schema.history.internal.store.only.captured.databases.ddl": "true",
            "schema.history.internal.store.only.captured.tables.ddl": "true",
            "snapshot.locking.mode": "none",
        }

    def drop_source_objects(self) -> None:
        """The marker database (the run's own is the source's)."""
        if self.marker_db:
            self._execute(f"DROP DATABASE IF EXISTS `{self.marker_db}`")

    def route_regex(self, ctx: RunContext) -> str:
        return f"{ctx.name_prefix}\\.({self.database}|{self.marker_db})\\..*"

    def wait_streaming(self, ctx: RunContext, timeout_s: float) -> None:
        """The connector's binlog dump thread is connected: it reads from the position it
        recorded before connecting, so a change committed now will be captured."""
        deadline = time.monotonic() + timeout_s
        while _dump_threads(self.engine) <= self._threads_before:
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"connector {self.connector} opened no binlog connection within "
                                        f"{timeout_s:.0f} s")
            time.sleep(0.05)

    def source_sent_all(self) -> bool:
        """Every binlog dump thread (the connector's, one case at a time per server) has sent all
        of the binary log and waits for more."""
        try:
            conn = self.engine.connect()
        except Exception:  # noqa: BLE001 - a restarting server: not caught up
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT STATE FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
                states = [str(r[0] or "").lower() for r in cur.fetchall()]
        finally:
            conn.close()
        return bool(states) and all("has sent all binlog" in s for s in states)

    def txid(self, payload: dict, source: dict) -> Any:
        """The transaction's GTID (the transaction block's id), else its binlog file and position."""
        tx = (payload.get("transaction") or {}).get("id")
        return tx or f"{source.get('file')}:{source.get('pos')}"
