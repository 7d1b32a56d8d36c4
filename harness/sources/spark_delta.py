"""Delta Lake written by Spark (delta-spark): one MERGE per table commit, CDF on, optional column mapping."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.errors import Unsupported
from harness.sources.base import Row, RowChange
from harness.sources.delta import DeltaSource
from harness.sources.spark_writes import SparkTableWriter, column_sql
from harness.steps import AddColumn, TableSpec


class SparkDeltaSource(DeltaSource):
    """Writes the Delta tables through the worker's Spark session (setting ``writer=spark``).

    Tables are created with ``delta.enableChangeDataFeed``; with ``column_mapping=name`` also
    with ``delta.columnMapping.mode=name`` and type widening, so DROP, RENAME and int → bigint
    run in place (without it only ADD COLUMN does, as with delta-rs). A failed commit is a
    Spark job that fails before committing.
    """

    def __init__(self, ctx: Any, ledger: Any) -> None:
        super().__init__(ctx, ledger)
        self.mapping = ctx.settings.get("column_mapping", "none")
        self.writer = SparkTableWriter(ctx.role("spark"), ctx.name_prefix)

    def target(self, table: str) -> str:
        return f"delta.`{self.path(table)}`"

    def create_table(self, spec: TableSpec) -> None:
        props = {"delta.enableChangeDataFeed": "true"}
        if self.mapping == "name":
            props |= {"delta.columnMapping.mode": "name", "delta.enableTypeWidening": "true"}
        columns = ", ".join(column_sql(c) for c in spec.columns)
        properties = ", ".join(f"'{k}' = '{v}'" for k, v in props.items())
        self.writer.spark.sql(f"CREATE TABLE {self.target(spec.name)} ({columns}) USING delta "
                              f"TBLPROPERTIES ({properties})")

    def commit_table(self, table: str, changes: list[RowChange], commit: bool) -> tuple[int, int] | None:
        return self.writer.commit(self.target(table), self.specs[table], changes, commit,
                                  all_rows_deleted=len(changes) == len(self.rows[table]))

    def ddl(self, step: Any) -> tuple[int, int]:
        if not isinstance(step, AddColumn) and self.mapping != "name":
            raise Unsupported(f"Delta cannot {type(step).__name__} in place without column mapping "
                              "(run with column_mapping=name)")
        return self.writer.ddl(self.target(step.table), step)

    def compact(self, table: str) -> int:
        """``OPTIMIZE``: the small files rewritten into one (a ``dataChange=false`` commit)."""
        return int(self.writer.spark.sql(f"OPTIMIZE {self.target(table)}").collect()[0]["metrics"]["numFilesRemoved"])

    def read_arrow(self, spec: TableSpec) -> None:
        return None  # the final state is read through Spark (read_table)

    def read_table(self, spec: TableSpec) -> Iterable[Row]:
        return self.writer.read(self.target(spec.name), spec)
