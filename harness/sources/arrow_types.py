"""Logical column types as Arrow types, and rows ↔ Arrow tables, for the table-format sources."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from harness.steps import Column, TableSpec

ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int32(),
    "bigint": pa.int64(),
    "decimal": pa.decimal128(38, 10),
    "float": pa.float64(),
    "text": pa.string(),
    "bool": pa.bool_(),
    "bytes": pa.binary(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "int[]": pa.list_(pa.int32()),
}


def arrow_field(col: Column) -> pa.Field:
    """The Arrow field of a logical column."""
    return pa.field(col.name, ARROW_TYPES[col.type], nullable=col.nullable)


def arrow_schema(spec: TableSpec) -> pa.Schema:
    """The Arrow schema of a table spec."""
    return pa.schema([arrow_field(c) for c in spec.columns])


def rows_to_table(spec: TableSpec, rows: Iterable[dict[str, Any]], extra: dict[str, list] | None = None,
                  match: dict[str, tuple[str, list]] | None = None) -> pa.Table:
    """Build an Arrow table of ``rows`` in the spec's schema, plus ``extra`` string columns and
    ``match`` columns (``name -> (spec column, values)``: values typed as that column)."""
    rows = list(rows)
    arrays = [pa.array([r.get(c.name) for r in rows], type=ARROW_TYPES[c.type]) for c in spec.columns]
    schema = arrow_schema(spec)
    for name, values in (extra or {}).items():
        arrays.append(pa.array(values, type=pa.string()))
        schema = schema.append(pa.field(name, pa.string()))
    for name, (column, values) in (match or {}).items():
        field = arrow_field(spec.column(column))
        arrays.append(pa.array(values, type=field.type))
        schema = schema.append(pa.field(name, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def json_text(v: Any) -> str | None:
    """JSON text of a value (for engines storing JSON as a string column)."""
    return None if v is None else json.dumps(v, sort_keys=True)


#: a table-format commit of at least this many row changes is staged in the ledger as one Arrow batch
ARROW_LEDGER_MIN = 1_000


def changes_batch(spec: TableSpec, key_columns: tuple[str, ...], changes: list[Any]) -> pa.RecordBatch | None:
    """One commit's row changes (``RowChange``: inserts, updates, deletes) as a ledger batch
    (``harness.columnar``'s shape: images typed as the table's columns, key columns named as
    they are), or None when it is small (under ``ARROW_LEDGER_MIN``), holds another op or a
    key change, or an image whose columns are not exactly the table's: those are staged row
    by row."""
    n = len(changes)
    if n < ARROW_LEDGER_MIN or any(ch.op not in ("insert", "update", "delete") or ch.old_key is not None
                                   for ch in changes):
        return None
    names = {c.name for c in spec.columns}
    images: dict[str, pa.Array] = {}
    for side in ("before", "after"):
        rows = [getattr(ch, side) for ch in changes]
        if any(r is not None and r.keys() != names for r in rows):
            return None
        missing = [r is None for r in rows]
        if all(missing):
            images[side] = pa.nulls(n)
            continue
        table = rows_to_table(spec, [r or {} for r in rows])
        mask = pa.array(missing) if any(missing) else None
        images[side] = pa.StructArray.from_arrays([c.combine_chunks() for c in table.columns],
                                                  fields=list(table.schema), mask=mask)
    before, after = images["before"], images["after"]
    if pa.types.is_null(before.type):
        keys = [after.field(k) for k in key_columns]
    elif pa.types.is_null(after.type):
        keys = [before.field(k) for k in key_columns]
    else:  # an insert's key from its after image, every other's from its before image
        keys = [pc.if_else(before.is_valid(), before.field(k), after.field(k)) for k in key_columns]
    key = pa.StructArray.from_arrays(keys, names=list(key_columns))
    return pa.RecordBatch.from_arrays([pa.array([spec.name] * n, pa.string()),
                                       pa.array([ch.op for ch in changes], pa.string()), key, before, after],
                                      names=["table", "op", "key", "before", "after"])
