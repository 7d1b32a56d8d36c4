"""Approach ``mariadb-debezium``: Debezium's MariaDB connector (MySQL's on a MySQL server) through
Kafka Connect.

The connector reads the binary log from the position it records at start (``snapshot.mode=
no_data``: the schema is captured, no rows) and keeps its schema history in a Kafka topic of the
run, removed at ``stop`` with the others. Its binlog client registers with a server id derived
from the run's name. Positions, delivery and recovery are the Kafka side's (``debezium``).
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
    #: not ``partition``: after a network partition the binlog dump thread left behind on the server
    #: still says "has sent all binlog" and the last GTID's END marker may never be the run's, so
    #: ``caught_up`` would end the drain while the connector is reconnecting (seen: lost=12 after
    #: 12.7 s, the connector's binlog client still retrying); an exact marker of the run's own is
    #: the fix (a marker row in the run's database, filtered out of the capture)
    capabilities: ClassVar[Capabilities] = replace(DebeziumApproach.capabilities, before_image="full",
                                                   partition=False)
    #: Debezium needs binlog_row_image=FULL: every variant runs with the FULL binlog settings
    variants: ClassVar[tuple[tuple[str, tuple[dict, ...]], ...]] = tuple(
        (name, tuple({**_FULL, **v} for v in variants)) for name, variants in DebeziumApproach.variants)

    def __init__(self) -> None:
        super().__init__()
        self.engine: Any = None
        self.database = ""
        self._threads_before = 0
        #: caught-up markers: the GTID each token waits for, and the last transaction END read
        self._gtid_tokens: dict[str, str] = {}
        self._last_end: str | None = None

    def _common_config(self, ctx: RunContext) -> dict[str, str]:
        """Debezium's transaction BEGIN/END records go into the run's topic too (``<prefix>.
        changes``), each END after its transaction's changes: the caught-up markers."""
        return {**super()._common_config(ctx), "topic.transaction": "changes"}

    def send_marker(self, token: str) -> bool:
        """The server's last binlogged GTID (``@@gtid_binlog_pos``, MariaDB, one replication
        domain) stands for the marker: once the consumer has read that transaction's END record,
        it has read every change binlogged before it. False on MySQL or with several domains.
        When the last binlogged transaction is not one of the run's (a DDL, another database's),
        no END of it comes: ``caught_up`` then answers by its inexact rule, as without markers."""
        if self.engine is None or getattr(self.engine, "flavor", "") != "mariadb":
            return False
        conn = self.engine.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@global.gtid_binlog_pos")
                gtid = str(cur.fetchone()[0] or "")
        finally:
            conn.close()
        if not gtid or "," in gtid:
            return False
        self._gtid_tokens = {gtid: token}
        if self._last_end == gtid:
            self._marker_seen = token
        return True

    def marker_of(self, payload: dict) -> str | None:
        if payload.get("status") != "END":
            return None
        self._last_end = str(payload.get("id"))
        return self._gtid_tokens.get(self._last_end)

    def start(self, ctx: RunContext, resume: bool = False) -> None:
        self.engine = ctx.role("mysql")
        require_mysql(self.engine)
        self.database = self.engine.database_for(ctx.name_prefix)
        super().start(ctx, resume)

    def before_register(self, ctx: RunContext, resume: bool) -> None:
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
            "database.include.list": self.database,
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

    def route_regex(self, ctx: RunContext) -> str:
        return f"{ctx.name_prefix}\\.{self.database}\\..*"

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
