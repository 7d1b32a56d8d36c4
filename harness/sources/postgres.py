"""PostgreSQL source: scenario steps as real SQL through psycopg 3, in a per-run schema."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from containers.postgres import PostgresEngine, require_postgres
from harness.context import RunContext
from harness.errors import MissingDependency, Unsupported
from harness.ledger import Ledger
from harness.sources.base import Row, Source, Statement, now_ns
from harness.steps import AddColumn, AlterType, DropColumn, RenameColumn, TableSpec

#: Logical type (harness.steps.LOGICAL_TYPES) → PostgreSQL type.
PG_TYPES: dict[str, str] = {
    "int": "integer",
    "bigint": "bigint",
    "decimal": "numeric(38,10)",
    "float": "double precision",
    "text": "text",
    "bool": "boolean",
    "bytes": "bytea",
    "date": "date",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
    "json": "jsonb",
    "uuid": "uuid",
    "int[]": "integer[]",
}
REPLICA_IDENTITIES = ("default", "full", "index", "nothing")


def run_schema(ctx: RunContext) -> str:
    """The schema one run's tables live in (the engine's naming rule)."""
    return PostgresEngine.schema_for(ctx.name_prefix)


def pg_type(logical: str) -> str:
    """The PostgreSQL type of a logical column type."""
    try:
        return PG_TYPES[logical]
    except KeyError:
        raise Unsupported(f"PostgreSQL source has no mapping for logical type {logical!r}") from None


class PostgresSource(Source):
    """Writes scenario steps to PostgreSQL (psycopg 3) and records committed changes.

    Contract: tables live in schema ``run_schema(ctx)``; ``ctx.settings['replica_identity']``
    (``default`` | ``full``) sets REPLICA IDENTITY on every table; ``execute`` runs one explicit
    transaction (BEGIN … COMMIT) and returns ``(issued_at, committed_at)`` read right before
    COMMIT is sent and right after it returns; ``insert_many`` uses COPY. A connection lost
    before the first statement of a transaction (e.g. after a server restart) is reopened and
    the transaction retried once; a failure later propagates (the outcome is unknown).
    """

    family: ClassVar[str] = "postgres"

    def __init__(self, ctx: RunContext, ledger: Ledger, url: str | None = None) -> None:
        super().__init__(ctx, ledger)
        try:
            import psycopg
            from psycopg.types.json import Jsonb
        except ImportError:  # pragma: no cover - depends on the install
            raise MissingDependency("psycopg", "postgres") from None
        self._psycopg = psycopg
        self._jsonb = Jsonb
        self.url = url or require_postgres(ctx.engine)
        self.schema = run_schema(ctx)
        self.replica_identity = str(ctx.settings.get("replica_identity", "default")).lower()
        if self.replica_identity not in REPLICA_IDENTITIES:
            raise Unsupported(f"replica_identity must be one of {REPLICA_IDENTITIES}, "
                              f"got {self.replica_identity!r}")
        self._sql: dict[tuple, str] = {}
        self._conn: Any = None
        self._connect()
        self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')

    # -- connection ---------------------------------------------------------------------------
    def _connect(self) -> None:
        from containers.postgres import connect

        self._conn = connect(self.url, options=f"-c search_path={self.schema},public -c timezone=UTC",
                             prepare_threshold=2, application_name=f"{self.schema}_src"[:63])

    def reconnect(self) -> None:
        """Open a fresh connection (after a server restart or a dropped connection)."""
        self._reconnect()

    def _reconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close
                pass
        self._connect()

    def close(self) -> None:
        """Close the connection (the schema is dropped by the engine's cleanup)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def drop_schema(self) -> None:
        """Drop this run's schema and tables (optional: the engine's stop() also does it)."""
        self._conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    # -- engine hooks -------------------------------------------------------------------------
    def changes_batch(self, table: str, changes: list[Any]) -> Any:
        """A transaction's run of >= 1,000 changes to a keyed table whose columns all have an
        Arrow type (``arrow_types.ARROW_TYPES``) as one Arrow ledger batch, else None (rows)."""
        import pyarrow as pa

        from harness.sources.arrow_types import ARROW_TYPES, changes_batch

        spec = self.specs[table]
        if not spec.key or any(c.type not in ARROW_TYPES for c in spec.columns):
            return None
        try:
            return changes_batch(spec, self.key_columns(table), changes)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            return None  # a value with no place in its column's Arrow type (decimal scale > 10, ...)

    def key_columns(self, table: str) -> tuple[str, ...]:
        """As the base, except that a keyless table under REPLICA IDENTITY USING INDEX is
        identified by that index's columns (``spec.unique``)."""
        spec = self.specs[table]
        if not spec.key and self.replica_identity == "index" and spec.unique:
            return spec.unique
        return super().key_columns(table)

    def create_table(self, spec: TableSpec) -> None:
        """(Re)create the table with a primary key on ``spec.key`` (none when it is empty), a
        unique index on ``spec.unique``, and the run's replica identity (``index``: that unique
        index, else the primary key's)."""
        cols = [f'"{c.name}" {pg_type(c.type)}{"" if c.nullable else " NOT NULL"}'
                + (f" GENERATED ALWAYS AS ({c.generated}) STORED" if c.generated else "") for c in spec.columns]
        if spec.key:
            key = ", ".join(f'"{k}"' for k in spec.key)
            cols.append(f"PRIMARY KEY ({key})")
        t = self._table(spec.name)
        self._conn.execute(f"DROP TABLE IF EXISTS {t}")
        if spec.partitions:  # range-partitioned on the first key column; partitions inherit the key
            self._conn.execute(f'CREATE TABLE {t} ({", ".join(cols)}) PARTITION BY RANGE ("{spec.key[0]}")')
            bounds = ["MINVALUE", *map(str, spec.partitions), "MAXVALUE"]
            for i, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False)):
                self._conn.execute(f'CREATE TABLE {self._table(f"{spec.name}_p{i}")} PARTITION OF {t} '
                                   f"FOR VALUES FROM ({lo}) TO ({hi})")
        else:
            self._conn.execute(f"CREATE TABLE {t} ({', '.join(cols)})")
        index = f"{spec.name}_pkey"
        if spec.unique:
            index = f"{spec.name}_uq"
            names = ", ".join(f'"{c}"' for c in spec.unique)
            self._conn.execute(f'CREATE UNIQUE INDEX "{index}" ON {t} ({names})')
        if self.replica_identity == "index":
            if not spec.key and not spec.unique:
                raise Unsupported(f"REPLICA IDENTITY USING INDEX needs a unique index; {spec.name} has none")
            self._conn.execute(f'ALTER TABLE {t} REPLICA IDENTITY USING INDEX "{index}"')
        else:
            self._conn.execute(f"ALTER TABLE {t} REPLICA IDENTITY {self.replica_identity.upper()}")

    def execute(self, statements: list[Statement], commit: bool) -> tuple[int, int] | None:
        """Run ``statements`` as one transaction; see the class contract."""
        psycopg = self._psycopg
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._reconnect()
        try:
            self._conn.execute("BEGIN")
        except psycopg.OperationalError:
            self._reconnect()
            self._conn.execute("BEGIN")
        try:
            cur = self._conn.cursor()
            for st in statements:
                self._run(cur, st)
        except BaseException as exc:
            if not self._conn.broken:
                self._conn.execute("ROLLBACK")
            if isinstance(exc, psycopg.errors.ObjectNotInPrerequisiteState) and "replica identity" in str(exc):
                raise Unsupported(f"PostgreSQL refuses the write: {str(exc).splitlines()[0]} (pitfall 21: "
                                  f"REPLICA IDENTITY {self.replica_identity.upper()} on a table without a key "
                                  "that a publication publishes)") from None
            raise
        if not commit:
            self._conn.execute("ROLLBACK")
            return None
        issued_at = now_ns()
        self._conn.execute("COMMIT")
        committed_at = now_ns()
        return issued_at, committed_at

    def ddl(self, step: Any) -> tuple[int, int]:
        """ALTER TABLE add/drop/rename/type as its own transaction; returns the commit times."""
        t = self._table(step.table)
        if isinstance(step, AddColumn):
            sql = f'ALTER TABLE {t} ADD COLUMN "{step.column.name}" {pg_type(step.column.type)}'
        elif isinstance(step, DropColumn):
            sql = f'ALTER TABLE {t} DROP COLUMN "{step.name}"'
        elif isinstance(step, RenameColumn):
            sql = f'ALTER TABLE {t} RENAME COLUMN "{step.old}" TO "{step.new}"'
        elif isinstance(step, AlterType):
            new = pg_type(step.new_type)
            sql = f'ALTER TABLE {t} ALTER COLUMN "{step.name}" TYPE {new} USING "{step.name}"::{new}'
        else:
            raise Unsupported(f"PostgresSource cannot run {type(step).__name__}")
        if self._conn.closed or self._conn.broken:
            self._reconnect()
        self._sql.clear()
        issued_at = now_ns()
        self._conn.execute(sql)
        return issued_at, now_ns()

    def read_table(self, spec: TableSpec) -> Iterable[Row]:
        """All rows as Python values (Decimal, aware datetimes in UTC, bytes, dict, UUID, list)."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._reconnect()
        names = [c.name for c in spec.columns]
        cols = ", ".join(f'"{n}"' for n in names)
        order = ", ".join(f'"{k}"' for k in self.key_columns(spec.name))
        cur = self._conn.execute(f"SELECT {cols} FROM {self._table(spec.name)} ORDER BY {order}")
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    # -- SQL building -------------------------------------------------------------------------
    def _table(self, name: str) -> str:
        return f'"{self.schema}"."{name}"'

    def _adapt(self, table: str, row: Row, cols: Iterable[str]) -> list[Any]:
        spec = self.specs.get(table)
        out = []
        for c in cols:
            v = row[c]
            if v is not None and spec is not None and spec.column(c).type == "json":
                v = self._jsonb(v)
            out.append(v)
        return out

    def _run(self, cur: Any, st: Statement) -> None:
        kind = st.kind
        if kind == "savepoint":
            cur.execute(f'SAVEPOINT "{st.name}"')
        elif kind == "rollback_to":
            cur.execute(f'ROLLBACK TO SAVEPOINT "{st.name}"')
        elif kind == "release":
            cur.execute(f'RELEASE SAVEPOINT "{st.name}"')
        elif kind == "truncate":
            cur.execute(f"TRUNCATE {self._table(st.table)}")
        elif kind == "insert":
            ch = st.changes[0]
            cols = self.written_columns(st.table, ch.after)
            cur.execute(self._insert_sql(st.table, cols), self._adapt(st.table, ch.after, cols))
        elif kind == "insert_many":
            if not st.changes:
                return
            cols = self.written_columns(st.table, st.changes[0].after)
            names = ", ".join(f'"{c}"' for c in cols)
            with cur.copy(f"COPY {self._table(st.table)} ({names}) FROM STDIN") as copy:
                for ch in st.changes:
                    copy.write_row(self._adapt(st.table, ch.after, cols))
        elif kind == "update":
            ch = st.changes[0]
            key = self.specs[st.table].key
            cols = ch.set_cols or self.written_columns(st.table, (c for c in ch.after if c not in key))
            sql = self._update_sql(st.table, cols)
            cur.execute(sql, [*self._adapt(st.table, ch.after, cols), *ch.where_key])
        elif kind == "delete":
            ch = st.changes[0]
            cur.execute(self._delete_sql(st.table), list(ch.key))
        else:
            raise Unsupported(f"PostgresSource cannot run statement kind {kind!r}")

    def _where(self, table: str) -> str:
        # a keyless table's identity may hold NULLs
        op = "=" if self.specs[table].key else "IS NOT DISTINCT FROM"
        return " AND ".join(f'"{k}" {op} %s' for k in self.key_columns(table))

    def _insert_sql(self, table: str, cols: tuple[str, ...]) -> str:
        k = ("i", table, cols)
        sql = self._sql.get(k)
        if sql is None:
            names = ", ".join(f'"{c}"' for c in cols)
            marks = ", ".join(["%s"] * len(cols))
            sql = self._sql[k] = f"INSERT INTO {self._table(table)} ({names}) VALUES ({marks})"
        return sql

    def _update_sql(self, table: str, cols: tuple[str, ...]) -> str:
        k = ("u", table, cols)
        sql = self._sql.get(k)
        if sql is None:
            sets = ", ".join(f'"{c}" = %s' for c in cols)
            sql = self._sql[k] = f"UPDATE {self._table(table)} SET {sets} WHERE {self._where(table)}"
        return sql

    def _delete_sql(self, table: str) -> str:
        k = ("d", table)
        sql = self._sql.get(k)
        if sql is None:
            sql = self._sql[k] = f"DELETE FROM {self._table(table)} WHERE {self._where(table)}"
        return sql
