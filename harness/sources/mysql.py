"""MariaDB/MySQL source: scenario steps as real SQL through pymysql, in a per-run database."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, ClassVar

from containers.mysql import MySqlEngine, require_mysql
from harness.context import RunContext
from harness.errors import MissingDependency, Unsupported
from harness.ledger import Ledger
from harness.sources.base import Row, Source, Statement, now_ns
from harness.steps import AddColumn, AlterType, DropColumn, RenameColumn, TableSpec

#: Logical type (harness.steps.LOGICAL_TYPES) → MySQL type. Types named ``mysql:<type>`` are
#: native MySQL types used as they are (the ``mysql-types`` scenario).
MYSQL_TYPES: dict[str, str] = {
    "int": "int",
    "bigint": "bigint",
    "decimal": "decimal(38,10)",
    "float": "double",
    "text": "text",
    "bytes": "longblob",
    "date": "date",
    "timestamp": "datetime(6)",
    # TIMESTAMP holds 1970-01-01 .. 2038-01-19 UTC only; stored in UTC (session time_zone +00:00)
    "timestamptz": "timestamp(6) NULL DEFAULT NULL",
    "json": "json",
}
#: The logical types the core ``types`` scenario may use on MySQL: no ``bool`` (MySQL's BOOLEAN is
#: TINYINT(1), captured as an integer), no ``uuid`` (no such type in MySQL), no ``int[]`` (no
#: arrays), no ``float`` (MySQL has no NaN/±inf: finite float/double are in ``mysql-types``), no
#: ``timestamptz`` (TIMESTAMP's range ends in 2038 and starts in 1970: ``mysql-types`` has it in range).
SUPPORTED_TYPES = frozenset({"int", "bigint", "decimal", "text", "bytes", "date", "timestamp", "json"})
ROW_IMAGES = ("full", "minimal", "noblob")
ROW_METADATA = ("full", "minimal")
_UTC = dt.UTC
#: an InsertMany of at least this many rows is sent as LOAD DATA LOCAL INFILE (when the server allows it)
LOAD_DATA_MIN_ROWS = 100
#: native types LOAD DATA's text format does not carry as pymysql's INSERT does (BIT takes the bytes)
_NO_LOAD_DATA = frozenset({"bit"})
_log = logging.getLogger(__name__)


def _tsv_field(value: Any) -> bytes:
    """One LOAD DATA field (FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\', CHARACTER SET binary)."""
    if value is None:
        return b"\\N"
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, bytes):
        raw = value
    elif isinstance(value, (dt.datetime, dt.date)):
        raw = value.isoformat(sep=" ").encode() if isinstance(value, dt.datetime) else value.isoformat().encode()
    elif isinstance(value, float):
        raw = repr(value).encode()
    else:
        raw = str(value).encode()
    if any(c in raw for c in b"\\\t\n\r\x00"):
        raw = (raw.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")
               .replace(b"\r", b"\\r").replace(b"\x00", b"\\0"))
    return raw


def run_database(ctx: RunContext) -> str:
    """The database one run's tables live in (the engine's naming rule)."""
    return MySqlEngine.database_for(ctx.name_prefix)


def mysql_type(logical: str) -> str:
    """The MySQL type of a logical column type (``mysql:<type>`` passes through)."""
    if logical.startswith("mysql:"):
        return logical[len("mysql:"):]
    try:
        return MYSQL_TYPES[logical]
    except KeyError:
        raise Unsupported(f"MySQL source has no mapping for logical type {logical!r}") from None


def native(logical: str) -> str:
    """The bare native type name (``timestamp``, ``set``, ``bit``, ...) of a logical type."""
    return mysql_type(logical).split("(", 1)[0].split(" ", 1)[0].lower()


def to_python(logical: str, value: Any) -> Any:
    """A value read back with pymysql as the Python value the ledger holds."""
    if value is None:
        return None
    kind = native(logical)
    if kind == "timestamp" and isinstance(value, dt.datetime):
        return value.replace(tzinfo=_UTC)
    if kind == "json" and isinstance(value, (str, bytes)):
        return json.loads(value)
    if kind == "bit" and isinstance(value, bytes):
        return int.from_bytes(value, "big")
    if kind == "set" and isinstance(value, set):
        return ",".join(sorted(value))
    return value


def to_mysql(logical: str, value: Any) -> Any:
    """A ledger value as pymysql sends it (aware timestamps in UTC, JSON as text)."""
    if value is None:
        return None
    kind = native(logical)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(_UTC).replace(tzinfo=None)
    if kind == "json":
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


class MySqlSource(Source):
    """Writes scenario steps to MariaDB/MySQL (pymysql) and records committed changes.

    Contract: tables live in database ``run_database(ctx)`` (the connection's current database,
    so the engine can find the run's connections); ``ctx.settings['binlog_row_image']``
    (``full|minimal|noblob``) is set on the source's session (``SET SESSION``) and
    ``binlog_row_metadata`` (global only) through ``engine.configure`` before any table exists.
    ``execute`` runs one explicit transaction and returns ``(issued_at, committed_at)`` read
    right before COMMIT is sent and right after it returns; ``insert_many`` is a batched
    ``executemany`` (multi-row INSERTs). A connection lost before the first statement of a
    transaction is reopened and the transaction retried once.
    """

    family: ClassVar[str] = "mysql"
    supported_types: ClassVar[frozenset[str]] = SUPPORTED_TYPES

    def __init__(self, ctx: RunContext, ledger: Ledger, url: str | None = None) -> None:
        super().__init__(ctx, ledger)
        try:
            import pymysql
        except ImportError:  # pragma: no cover - depends on the install
            raise MissingDependency("pymysql", "mysql") from None
        self._pymysql = pymysql
        engine = ctx.engine
        self.url = url or require_mysql(engine)
        self.database = run_database(ctx)
        self.row_image = str(ctx.settings.get("binlog_row_image", "full")).lower()
        if self.row_image not in ROW_IMAGES:
            raise Unsupported(f"binlog_row_image must be one of {ROW_IMAGES}, got {self.row_image!r}")
        meta = str(ctx.settings.get("binlog_row_metadata", "full")).lower()
        if meta not in ROW_METADATA:
            raise Unsupported(f"binlog_row_metadata must be one of {ROW_METADATA}, got {meta!r}")
        configure = getattr(engine, "configure", None)
        if configure is not None:
            configure(ctx.settings)
        self._sql: dict[tuple, str] = {}
        self._conn: Any = None
        from containers.mysql import connect

        admin = connect(self.url)
        try:
            with admin.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}` "
                            "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        finally:
            admin.close()
        self._connect()
        #: LOAD DATA LOCAL INFILE for bulk inserts, or why not (then multi-row INSERTs)
        self.bulk_note = self._local_infile()
        self.load_data = self.bulk_note is None
        if self.bulk_note:
            _log.warning("mysql source: %s", self.bulk_note)

    def _local_infile(self) -> str | None:
        with self._conn.cursor() as cur:
            cur.execute("SELECT @@global.local_infile")
            on = str(cur.fetchone()[0]).upper() in ("1", "ON")
        return None if on else ("the server runs local_infile=OFF: bulk inserts are multi-row INSERTs "
                                "(SET GLOBAL local_infile = ON enables LOAD DATA LOCAL INFILE)")

    # -- connection ---------------------------------------------------------------------------
    def _connect(self) -> None:
        from containers.mysql import connect

        self._conn = connect(self.url, database=self.database, local_infile=True,
                             init_command=f"SET time_zone = '+00:00', binlog_row_image = '{self.row_image.upper()}',"
                                          " sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'")

    def reconnect(self) -> None:
        """Open a fresh connection (after a server restart or a killed connection)."""
        self.close()
        self._connect()

    def close(self) -> None:
        """Close the connection (the database is dropped by the engine's cleanup)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close
                pass

    # -- engine hooks -------------------------------------------------------------------------
    def create_table(self, spec: TableSpec) -> None:
        """(Re)create the table (InnoDB) with a primary key on ``spec.key`` (a text key column is
        VARCHAR(255): MySQL indexes no TEXT column without a prefix length)."""
        cols = [f"`{c.name}` {'varchar(255)' if c.type == 'text' and c.name in spec.key else mysql_type(c.type)}"
                f"{f' AS ({c.generated}) STORED' if c.generated else ''}{'' if c.nullable else ' NOT NULL'}"
                for c in spec.columns]
        if spec.key:  # a keyless table gets no index: its rows are identified by all their columns
            key = ", ".join(f"`{k}`" for k in spec.key)
            cols.append(f"PRIMARY KEY ({key})")
        parts = ""
        if spec.partitions:  # range partitions on the first key column, as PostgreSQL's
            bounds = [*map(str, spec.partitions), "MAXVALUE"]
            parts = f" PARTITION BY RANGE (`{spec.key[0]}`) (" + ", ".join(
                f"PARTITION p{i} VALUES LESS THAN ({b})" for i, b in enumerate(bounds)) + ")"
        t = self._table(spec.name)
        with self._conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {t}")
            cur.execute(f"CREATE TABLE {t} ({', '.join(cols)}) ENGINE=InnoDB{parts}")

    def execute(self, statements: list[Statement], commit: bool) -> tuple[int, int] | None:
        """Run ``statements`` as one transaction; see the class contract."""
        pymysql = self._pymysql
        if self._conn is None:
            self._connect()
        if any(st.kind == "truncate" for st in statements) and len(statements) > 1:
            raise Unsupported("TRUNCATE commits implicitly in MySQL: it cannot run inside a larger transaction")
        try:
            self._conn.query("START TRANSACTION")
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError):
            self.reconnect()
            self._conn.query("START TRANSACTION")
        try:
            cur = self._conn.cursor()
            for st in statements:
                self._run(cur, st)
        except BaseException:
            try:
                self._conn.query("ROLLBACK")
            except Exception:  # noqa: BLE001 - the connection may be gone
                self.close()
            raise
        if not commit:
            self._conn.query("ROLLBACK")
            return None
        issued_at = now_ns()
        self._conn.query("COMMIT")
        committed_at = now_ns()
        return issued_at, committed_at

    def ddl(self, step: Any) -> tuple[int, int]:
        """ALTER TABLE add/drop/rename/type (each its own implicit commit); returns the times."""
        t = self._table(step.table)
        if isinstance(step, AddColumn):
            sql = f"ALTER TABLE {t} ADD COLUMN `{step.column.name}` {mysql_type(step.column.type)}"
        elif isinstance(step, DropColumn):
            sql = f"ALTER TABLE {t} DROP COLUMN `{step.name}`"
        elif isinstance(step, RenameColumn):
            sql = f"ALTER TABLE {t} RENAME COLUMN `{step.old}` TO `{step.new}`"
        elif isinstance(step, AlterType):
            sql = f"ALTER TABLE {t} MODIFY COLUMN `{step.name}` {mysql_type(step.new_type)}"
        else:
            raise Unsupported(f"MySqlSource cannot run {type(step).__name__}")
        if self._conn is None:
            self._connect()
        self._sql.clear()
        issued_at = now_ns()
        try:
            self._conn.query(sql)
        except (self._pymysql.err.OperationalError, self._pymysql.err.InterfaceError):
            self.reconnect()
            issued_at = now_ns()
            self._conn.query(sql)
        return issued_at, now_ns()

    def read_table(self, spec: TableSpec) -> Iterable[Row]:
        """All rows as the ledger's Python values (aware UTC timestamps, parsed JSON, ints for BIT)."""
        if self._conn is None:
            self._connect()
        try:
            self._conn.ping(reconnect=False)
        except Exception:  # noqa: BLE001 - reopen whatever went wrong
            self.reconnect()
        names = [c.name for c in spec.columns]
        types = [c.type for c in spec.columns]
        # FLOAT comes back as text rounded to 6 digits: read it as the double it holds
        cols = ", ".join(f"CAST(`{n}` AS DOUBLE)" if native(t) == "float" else f"`{n}`"
                         for n, t in zip(names, types, strict=True))
        order = ", ".join(f"`{k}`" for k in self.key_columns(spec.name))
        with self._conn.cursor() as cur:
            cur.execute(f"SELECT {cols} FROM {self._table(spec.name)} ORDER BY {order}")
            rows = cur.fetchall()
        return [{n: to_python(t, v) for n, t, v in zip(names, types, r, strict=True)} for r in rows]

    # -- SQL building -------------------------------------------------------------------------
    def _table(self, name: str) -> str:
        return f"`{self.database}`.`{name}`"

    def _adapt(self, table: str, row: Row, cols: Iterable[str]) -> list[Any]:
        spec = self.specs[table]
        return [to_mysql(spec.column(c).type, row[c]) for c in cols]

    def _run(self, cur: Any, st: Statement) -> None:
        kind = st.kind
        if kind == "savepoint":
            cur.execute(f"SAVEPOINT `{st.name}`")
        elif kind == "rollback_to":
            cur.execute(f"ROLLBACK TO SAVEPOINT `{st.name}`")
        elif kind == "release":
            cur.execute(f"RELEASE SAVEPOINT `{st.name}`")
        elif kind == "truncate":
            cur.execute(f"TRUNCATE TABLE {self._table(st.table)}")
        elif kind == "insert":
            ch = st.changes[0]
            cols = self.written_columns(st.table, ch.after)
            cur.execute(self._insert_sql(st.table, cols), self._adapt(st.table, ch.after, cols))
        elif kind == "insert_many":
            if not st.changes:
                return
            cols = self.written_columns(st.table, st.changes[0].after)
            rows = [self._adapt(st.table, ch.after, cols) for ch in st.changes]
            if self.load_data and len(rows) >= LOAD_DATA_MIN_ROWS and not any(
                    native(self.specs[st.table].column(c).type) in _NO_LOAD_DATA for c in cols):
                self._load_data(cur, st.table, cols, rows)
                return
            sql = self._insert_sql(st.table, cols)
            for i in range(0, len(rows), 5_000):  # pymysql packs each batch into multi-row INSERTs
                cur.executemany(sql, rows[i:i + 5_000])
        elif kind == "update":
            ch = st.changes[0]
            key = self.specs[st.table].key
            cols = ch.set_cols or self.written_columns(st.table, (c for c in ch.after if c not in key))
            cur.execute(self._update_sql(st.table, cols), [*self._adapt(st.table, ch.after, cols), *ch.where_key])
        elif kind == "delete":
            cur.execute(self._delete_sql(st.table), list(st.changes[0].key))
        else:
            raise Unsupported(f"MySqlSource cannot run statement kind {kind!r}")

    def _load_data(self, cur: Any, table: str, cols: tuple[str, ...], rows: list[list[Any]]) -> None:
        """LOAD DATA LOCAL INFILE of ``rows`` from a private temp file. LOCAL turns duplicate keys
        and bad values into warnings, so any warning or a short count fails the statement."""
        fd, path = tempfile.mkstemp(prefix="cdc-load-", suffix=".tsv")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(b"".join(b"\t".join(_tsv_field(v) for v in row) + b"\n" for row in rows))
            names = ", ".join(f"`{c}`" for c in cols)
            cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE {self._table(table)} CHARACTER SET binary "
                        f"FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({names})",
                        (path,))
            loaded = cur.rowcount
            cur.execute("SHOW WARNINGS LIMIT 3")
            warnings = cur.fetchall()
        finally:
            os.unlink(path)
        if warnings or loaded != len(rows):
            raise RuntimeError(f"LOAD DATA into {table} loaded {loaded} of {len(rows)} rows: {warnings}")

    def _where(self, table: str) -> str:
        op = "=" if self.specs[table].key else "<=>"  # a keyless table's identity may hold NULLs
        return " AND ".join(f"`{k}` {op} %s" for k in self.key_columns(table))

    def _insert_sql(self, table: str, cols: tuple[str, ...]) -> str:
        k = ("i", table, cols)
        sql = self._sql.get(k)
        if sql is None:
            names = ", ".join(f"`{c}`" for c in cols)
            marks = ", ".join(["%s"] * len(cols))
            sql = self._sql[k] = f"INSERT INTO {self._table(table)} ({names}) VALUES ({marks})"
        return sql

    def _update_sql(self, table: str, cols: tuple[str, ...]) -> str:
        k = ("u", table, cols)
        sql = self._sql.get(k)
        if sql is None:
            sets = ", ".join(f"`{c}` = %s" for c in cols)
            sql = self._sql[k] = f"UPDATE {self._table(table)} SET {sets} WHERE {self._where(table)}"
        return sql

    def _delete_sql(self, table: str) -> str:
        k = ("d", table)
        sql = self._sql.get(k)
        if sql is None:
            sql = self._sql[k] = f"DELETE FROM {self._table(table)} WHERE {self._where(table)}"
        return sql
