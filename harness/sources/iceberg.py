"""Apache Iceberg source (pyiceberg, SQLite catalog): one transaction per table commit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.errors import MissingDependency, Unsupported
from harness.sources.arrow_types import changes_batch, rows_to_table
from harness.sources.base import Row, RowChange, Source, now_ns
from harness.steps import AddColumn, AlterType, DropColumn, RenameColumn, TableSpec

try:
    from pyiceberg import types as it
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.expressions import AlwaysTrue, And, EqualTo, In, Or
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import IdentityTransform
except ImportError:  # pragma: no cover
    SqlCatalog = None

#: Logical types stored natively (no JSON type; UUID round-trips as fixed bytes in pyarrow).
ICEBERG_TYPES = frozenset({"int", "bigint", "decimal", "float", "text", "bool", "bytes", "date",
                           "timestamp", "timestamptz", "int[]"})


def iceberg_type(logical: str, next_id: list[int]) -> Any:
    """The Iceberg type of a logical column type (``next_id`` hands out nested field ids)."""
    simple = {"int": it.IntegerType(), "bigint": it.LongType(), "decimal": it.DecimalType(38, 10),
              "float": it.DoubleType(), "text": it.StringType(), "bool": it.BooleanType(),
              "bytes": it.BinaryType(), "date": it.DateType(), "timestamp": it.TimestampType(),
              "timestamptz": it.TimestamptzType()}
    if logical in simple:
        return simple[logical]
    if logical == "int[]":
        next_id[0] += 1
        return it.ListType(next_id[0], it.IntegerType(), element_required=False)
    raise Unsupported(f"Iceberg (pyiceberg) has no column type {logical!r} here")


class IcebergSource(Source):
    """Writes through pyiceberg: inserts append; other changes delete the touched keys and
    append their new rows in one transaction (copy-on-write). A failed commit is a transaction
    that raises after writing its data files and before committing, leaving orphan files only.
    Truncate is a delete of every row. DDL: add, drop, rename, widen (int → bigint). A table is
    partitioned by its spec's ``partition_by`` columns (identity transforms).
    """

    family = "iceberg"
    truncate_as_deletes = True
    commits_net_changes = True
    supported_types = ICEBERG_TYPES

    def __init__(self, ctx: Any, ledger: Any) -> None:
        if SqlCatalog is None:
            raise MissingDependency("pyiceberg", None)
        super().__init__(ctx, ledger)
        self.catalog = ctx.engine.catalog()
        self.catalog.create_namespace_if_not_exists(ctx.engine.namespace)

    def table(self, name: str) -> Any:
        return self.catalog.load_table(self.ctx.engine.identifier(name))

    def create_table(self, spec: TableSpec) -> None:
        if any(c.generated for c in spec.columns):
            raise Unsupported("Iceberg has no generated columns")
        ids = [len(spec.columns)]
        fields = [it.NestedField(i + 1, c.name, iceberg_type(c.type, ids), required=not c.nullable)
                  for i, c in enumerate(spec.columns)]
        names = [c.name for c in spec.columns]
        key_ids = [names.index(k) + 1 for k in spec.key]  # in key-column order, which readers keep
        schema = Schema(*fields, identifier_field_ids=key_ids)
        spec_fields = [PartitionField(source_id=names.index(c) + 1, field_id=1000 + i, transform=IdentityTransform(),
                                      name=c) for i, c in enumerate(spec.partition_by)]
        self.catalog.create_table(self.ctx.engine.identifier(spec.name), schema=schema,
                                  partition_spec=PartitionSpec(*spec_fields))

    def changes_batch(self, table: str, changes: list[RowChange]) -> Any:
        """A commit of >= 1,000 row changes as one Arrow ledger batch, typed as it is written
        (``arrow_types.changes_batch``); None to stage it row by row."""
        return changes_batch(self.specs[table], self.key_columns(table), changes)

    def _key_filter(self, spec: TableSpec, keys: list[tuple]) -> Any:
        cols = self.key_columns(spec.name)
        if len(cols) == 1:
            return In(cols[0], [k[0] for k in keys])
        terms = [And(*[EqualTo(c, v) for c, v in zip(cols, k, strict=True)]) for k in keys]
        return terms[0] if len(terms) == 1 else Or(*terms)

    def commit_table(self, table: str, changes: list[RowChange], commit: bool) -> tuple[int, int] | None:
        spec = self.specs[table]
        tbl = self.table(table)
        written = [c.after for c in changes if c.after is not None]
        if not commit:
            try:
                with tbl.transaction() as tx:
                    tx.append(rows_to_table(spec, written or [c.before for c in changes]))
                    raise _AbortCommit
            except _AbortCommit:
                return None
        if all(c.op == "insert" for c in changes):
            data = rows_to_table(spec, written)
            issued = now_ns()
            tbl.append(data)
            return issued, now_ns()
        if all(c.op == "delete" for c in changes) and len(changes) == len(self.rows[table]):
            issued = now_ns()
            tbl.delete(AlwaysTrue())
            return issued, now_ns()
        touched = [c.where_key for c in changes if c.op != "insert"]  # a key change: its old key
        data = rows_to_table(spec, written) if written else None
        issued = now_ns()
        with tbl.transaction() as tx:
            tx.delete(self._key_filter(spec, touched))
            if data is not None:
                tx.append(data)
        return issued, now_ns()

    def ddl(self, step: Any) -> tuple[int, int]:
        tbl = self.table(step.table)
        issued = now_ns()
        with tbl.update_schema() as update:
            if isinstance(step, AddColumn):
                update.add_column(step.column.name, iceberg_type(step.column.type, [10_000]))
            elif isinstance(step, DropColumn):
                update.delete_column(step.name)
            elif isinstance(step, RenameColumn):
                update.rename_column(step.old, step.new)
            elif isinstance(step, AlterType):
                update.update_column(step.name, field_type=iceberg_type(step.new_type, [10_000]))
        return issued, now_ns()

    def read_table(self, spec: TableSpec) -> Iterable[Row]:
        return self.read_arrow(spec).to_pylist()

    def read_arrow(self, spec: TableSpec) -> Any:
        return self.table(spec.name).scan().to_arrow()

    def compact(self, table: str) -> int:
        raise Unsupported("pyiceberg has no data-file compaction (rewrite_data_files); the cell with writer=spark "
                          "compacts with Spark")


class _AbortCommit(Exception):
    """Raised inside a transaction to make it fail before its commit."""
