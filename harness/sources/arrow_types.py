"""Logical column types as Arrow types, and rows ↔ Arrow tables, for the table-format sources."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

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
