"""Spark SQL for the table-format sources: column types, staged rows, one MERGE per table commit."""

from __future__ import annotations

import itertools
from typing import Any

from harness.errors import Unsupported
from harness.sources.arrow_types import rows_to_table
from harness.sources.base import RowChange, now_ns
from harness.steps import AddColumn, AlterType, Column, DropColumn, RenameColumn, TableSpec

SPARK_TYPES = {"int": "INT", "bigint": "BIGINT", "decimal": "DECIMAL(38,10)", "float": "DOUBLE",
               "text": "STRING", "bool": "BOOLEAN", "bytes": "BINARY", "date": "DATE",
               "timestamp": "TIMESTAMP_NTZ", "timestamptz": "TIMESTAMP", "int[]": "ARRAY<INT>"}
_views = itertools.count(1)


def spark_type(logical: str) -> str:
    """The Spark SQL type of a logical column type (``Unsupported`` when there is none)."""
    try:
        return SPARK_TYPES[logical]
    except KeyError:
        raise Unsupported(f"no Spark SQL column type for {logical!r} here") from None


def column_sql(col: Column) -> str:
    """One column of a CREATE TABLE."""
    return f"`{col.name}` {spark_type(col.type)}{'' if col.nullable else ' NOT NULL'}"


def quoted(name: str) -> str:
    """A backquoted identifier."""
    return f"`{name}`"


class SparkTableWriter:
    """Writes one commit per table with Spark SQL on ``spark`` (a ``containers.spark.SparkEngine``).

    Contract of ``commit``: inserts only → one ``INSERT``; every row deleted → one ``DELETE``;
    anything else → one ``MERGE`` keyed by the table's key (``_op`` says what each staged row
    does). ``commit=False`` runs a write that fails inside Spark's job, before its commit, so
    nothing reaches the table's log. Returns ``(issued_at, committed_at)`` or None.
    """

    def __init__(self, spark: Any, prefix: str) -> None:
        self.spark = spark
        self.prefix = "".join(c if c.isalnum() else "_" for c in prefix)

    def stage(self, spec: TableSpec, changes: list[RowChange]) -> str:
        """A temp view of the commit's rows (after image, or before for deletes) with their ``_op``."""
        rows = [c.after if c.after is not None else c.before for c in changes]
        data = rows_to_table(spec, rows, extra={"_op": [c.op for c in changes]})
        view = f"cdc_stage_{self.prefix}_{next(_views)}"
        self.spark.session.createDataFrame(data).createOrReplaceTempView(view)
        return view

    def commit(self, target: str, spec: TableSpec, changes: list[RowChange], commit: bool,
               all_rows_deleted: bool) -> tuple[int, int] | None:
        cols = ", ".join(quoted(c.name) for c in spec.columns)
        if not commit:
            view = self.stage(spec, changes)
            try:
                self.spark.sql(f"INSERT INTO {target} SELECT {cols} FROM {view} "
                               "WHERE raise_error('cdc-harness: this transaction is rolled back') IS NULL")
            except Exception:  # noqa: BLE001 - the intended failure inside the job, before the commit
                return None
            finally:
                self.spark.session.catalog.dropTempView(view)
            raise AssertionError("a Spark write meant to fail before its commit was committed")
        if all_rows_deleted and all(c.op == "delete" for c in changes):
            issued = now_ns()
            self.spark.sql(f"DELETE FROM {target}")
            return issued, now_ns()
        view = self.stage(spec, changes)
        try:
            if all(c.op == "insert" for c in changes):
                issued = now_ns()
                self.spark.sql(f"INSERT INTO {target} SELECT {cols} FROM {view}")
                return issued, now_ns()
            on = " AND ".join(f"t.{quoted(k)} = s.{quoted(k)}" for k in spec.key)
            sets = ", ".join(f"t.{quoted(c.name)} = s.{quoted(c.name)}" for c in spec.columns)
            values = ", ".join(f"s.{quoted(c.name)}" for c in spec.columns)
            issued = now_ns()
            self.spark.sql(f"MERGE INTO {target} t USING {view} s ON {on} "
                           "WHEN MATCHED AND s._op = 'delete' THEN DELETE "
                           f"WHEN MATCHED AND s._op = 'update' THEN UPDATE SET {sets} "
                           f"WHEN NOT MATCHED AND s._op = 'insert' THEN INSERT ({cols}) VALUES ({values})")
            return issued, now_ns()
        finally:
            self.spark.session.catalog.dropTempView(view)

    def ddl(self, target: str, step: Any) -> tuple[int, int]:
        """Run one DDL step (add, drop, rename, widen) as Spark SQL; return ``(issued_at, committed_at)``."""
        if isinstance(step, AddColumn):
            sql = f"ALTER TABLE {target} ADD COLUMNS ({column_sql(step.column)})"
        elif isinstance(step, DropColumn):
            sql = f"ALTER TABLE {target} DROP COLUMN {quoted(step.name)}"
        elif isinstance(step, RenameColumn):
            sql = f"ALTER TABLE {target} RENAME COLUMN {quoted(step.old)} TO {quoted(step.new)}"
        elif isinstance(step, AlterType):
            sql = f"ALTER TABLE {target} ALTER COLUMN {quoted(step.name)} TYPE {spark_type(step.new_type)}"
        else:
            raise Unsupported(f"no Spark SQL for {type(step).__name__}")
        issued = now_ns()
        self.spark.sql(sql)
        return issued, now_ns()

    def read(self, target: str, spec: TableSpec) -> list[dict]:
        """Every row of the table now, as Python values (the engine's final state)."""
        return self.spark.sql(f"SELECT * FROM {target}").toArrow().to_pylist()
