"""Delta Lake source (delta-rs): each transaction is one merge commit per table, with CDF on."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from harness.errors import MissingDependency, Unsupported
from harness.sources.arrow_types import ARROW_TYPES, arrow_field, arrow_schema, changes_batch, rows_to_table
from harness.sources.base import Row, RowChange, Source, now_ns
from harness.steps import AddColumn, TableSpec

try:
    import deltalake
    from deltalake import DeltaTable, write_deltalake
except ImportError:  # pragma: no cover - exercised only without the package
    deltalake = None

#: Logical types Delta stores natively here (no JSON or UUID type in Delta).
DELTA_TYPES = frozenset(ARROW_TYPES)


class DeltaSource(Source):
    """Writes through delta-rs: inserts append, every other change is one MERGE per table commit
    (rows matched on their old key, so a key-changing update is one MERGE update). A generated
    column is declared with its ``delta.generationExpression``: delta-rs checks every written value.
    A table is partitioned by its spec's ``partition_by`` columns (identity partitions).

    A failed commit is a write that raises before committing (a schema mismatch detected by
    delta-rs), so nothing reaches the log. Truncate is a DELETE of every row (CDF: per-row
    deletes). DDL: only ADD COLUMN — delta-rs has no column mapping, so it cannot drop,
    rename or change the type of a column in place.
    """

    family = "delta"
    truncate_as_deletes = True
    commits_net_changes = True
    supported_types = DELTA_TYPES

    def __init__(self, ctx: Any, ledger: Any) -> None:
        if deltalake is None:
            raise MissingDependency("deltalake")
        super().__init__(ctx, ledger)

    def path(self, table: str) -> str:
        return str(self.ctx.engine.table_path(table))

    def create_table(self, spec: TableSpec) -> None:
        for c in spec.columns:
            if c.type not in DELTA_TYPES:
                raise Unsupported(f"Delta has no column type {c.type!r}")
        schema = arrow_schema(spec)
        for i, c in enumerate(spec.columns):  # generated columns: delta-rs checks every written value
            if c.generated:
                schema = schema.set(i, schema.field(i).with_metadata({"delta.generationExpression": c.generated}))
        Path(self.path(spec.name)).parent.mkdir(parents=True, exist_ok=True)
        DeltaTable.create(self.path(spec.name), schema=schema, name=spec.name,
                          partition_by=list(spec.partition_by) or None,
                          configuration={"delta.enableChangeDataFeed": "true"})

    def changes_batch(self, table: str, changes: list[RowChange]) -> pa.RecordBatch | None:
        return changes_batch(self.specs[table], self.key_columns(table), changes)

    def commit_table(self, table: str, changes: list[RowChange], commit: bool) -> tuple[int, int] | None:
        spec = self.specs[table]
        if not commit:
            bad = pa.table({"__no_such_column__": pa.array([1] * max(len(changes), 1))})
            try:
                write_deltalake(self.path(table), bad, mode="append")
            except Exception:  # noqa: BLE001 - the intended pre-commit failure
                return None
            raise AssertionError("a write meant to fail before commit was committed")
        if all(c.op == "insert" for c in changes):
            data = rows_to_table(spec, [c.after for c in changes])
            issued = now_ns()
            write_deltalake(self.path(table), data, mode="append")
            return issued, now_ns()
        if all(c.op == "delete" for c in changes) and len(changes) == len(self.rows[table]):
            issued = now_ns()
            DeltaTable(self.path(table)).delete()
            return issued, now_ns()
        rows = [c.after if c.after is not None else c.before for c in changes]
        keys = self.key_columns(table)  # a row is found by its old key when an update changes it
        match = {f"_k{i}": (k, [c.where_key[i] if c.op != "insert" else None for c in changes])
                 for i, k in enumerate(keys)}  # an insert matches nothing (its key may be vacated now)
        data = rows_to_table(spec, rows, extra={"_op": [c.op for c in changes]}, match=match)
        on = " AND ".join(f"t.{k} = s._k{i}" for i, k in enumerate(keys))
        cols = {c.name: f"s.{c.name}" for c in spec.columns}
        issued = now_ns()
        (DeltaTable(self.path(table))
         .merge(data, predicate=on, source_alias="s", target_alias="t")
         .when_matched_delete(predicate="s._op = 'delete'")
         .when_matched_update(updates=cols, predicate="s._op = 'update'")
         .when_not_matched_insert(updates=cols, predicate="s._op = 'insert'")
         .execute())
        return issued, now_ns()

    def ddl(self, step: Any) -> tuple[int, int]:
        if not isinstance(step, AddColumn):
            raise Unsupported(f"delta-rs cannot {type(step).__name__} in place: it has no column mapping")
        issued = now_ns()
        field = arrow_field(step.column)
        DeltaTable(self.path(step.table)).alter.add_columns(
            [deltalake.Field(field.name, _delta_type_name(step.column.type), nullable=True)])
        return issued, now_ns()

    def read_table(self, spec: TableSpec) -> Iterable[Row]:
        return self.read_arrow(spec).to_pylist()

    def read_arrow(self, spec: TableSpec) -> pa.Table:
        return pa.table(DeltaTable(self.path(spec.name)).to_pyarrow_table())

    def compact(self, table: str) -> int:
        """delta-rs ``optimize.compact()``: a commit with ``dataChange=false`` files."""
        return int(DeltaTable(self.path(table)).optimize.compact()["numFilesRemoved"])


def _delta_type_name(logical: str) -> Any:
    primitive = {"int": "integer", "bigint": "long", "decimal": "decimal(38,10)", "float": "double",
                 "text": "string", "bool": "boolean", "bytes": "binary", "date": "date",
                 "timestamp": "timestamp_ntz", "timestamptz": "timestamp"}
    if logical in primitive:
        return primitive[logical]
    if logical == "int[]":
        return deltalake.schema.ArrayType("integer", True)
    raise Unsupported(f"Delta has no column type {logical!r}")
