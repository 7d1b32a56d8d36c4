"""Apache Iceberg written by Spark (iceberg-spark-runtime) into the warehouse's shared SQLite catalog."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.errors import Unsupported
from harness.sources.base import Row, RowChange
from harness.sources.iceberg import IcebergSource
from harness.sources.spark_writes import SparkTableWriter, column_sql, quoted
from harness.steps import TableSpec

WRITE_MODES = ("copy-on-write", "merge-on-read")


class SparkIcebergSource(IcebergSource):
    """Writes the Iceberg tables through the worker's Spark session (setting ``writer=spark``).

    Format v2 with the key as identifier fields; ``write_mode`` (``copy-on-write``, the default,
    or ``merge-on-read``: position delete files, pitfall 17) sets the table's delete, update and
    merge modes. DDL: add, drop, rename, widen (int → bigint). A failed commit is a Spark job
    that fails before committing.
    """

    def __init__(self, ctx: Any, ledger: Any) -> None:
        super().__init__(ctx, ledger)
        self.mode = ctx.settings.get("write_mode", "copy-on-write")
        if self.mode not in WRITE_MODES:
            raise Unsupported(f"write_mode={self.mode!r}: Iceberg knows {', '.join(WRITE_MODES)}")
        spark = ctx.role("spark")
        self.writer = SparkTableWriter(spark, ctx.name_prefix)
        self.catalog_name = spark.iceberg_catalog(ctx.engine)

    def target(self, table: str) -> str:
        return f"{quoted(self.catalog_name)}.{self.ctx.engine.namespace}.{quoted(table)}"

    def create_table(self, spec: TableSpec) -> None:
        columns = ", ".join(column_sql(c) for c in spec.columns)
        props = {"format-version": "2", "write.delete.mode": self.mode, "write.update.mode": self.mode,
                 "write.merge.mode": self.mode}
        properties = ", ".join(f"'{k}' = '{v}'" for k, v in props.items())
        spark = self.writer.spark
        spark.sql(f"CREATE TABLE {self.target(spec.name)} ({columns}) USING iceberg TBLPROPERTIES ({properties})")
        spark.sql(f"ALTER TABLE {self.target(spec.name)} SET IDENTIFIER FIELDS "
                  f"{', '.join(quoted(k) for k in spec.key)}")

    def commit_table(self, table: str, changes: list[RowChange], commit: bool) -> tuple[int, int] | None:
        return self.writer.commit(self.target(table), self.specs[table], changes, commit,
                                  all_rows_deleted=len(changes) == len(self.rows[table]))

    def ddl(self, step: Any) -> tuple[int, int]:
        return self.writer.ddl(self.target(step.table), step)

    def compact(self, table: str) -> int:
        """``rewrite_data_files``: the small files rewritten into one (a ``replace`` snapshot)."""
        ident = f"{self.ctx.engine.namespace}.{table}"
        result = self.writer.spark.sql(f"CALL {quoted(self.catalog_name)}.system.rewrite_data_files(table => "
                                       f"'{ident}', options => map('min-input-files', '2'))").collect()[0]
        return int(result["rewritten_data_files_count"])

    def read_table(self, spec: TableSpec) -> Iterable[Row]:
        return self.writer.read(self.target(spec.name), spec)
