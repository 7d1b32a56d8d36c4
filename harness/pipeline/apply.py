"""The sink's apply step: one atomic table commit per batch and table, the sink's record inside it.

``TableWriter`` is the seam between the sink's consumer loop (``harness.pipeline.sink``) and the
engine that writes the table: ``PyIcebergWriter`` here (pyiceberg, embedded SQLite catalog);
``harness.pipeline.spark_apply.SparkIcebergWriter`` (one ``MERGE INTO`` with the record as commit
properties) implements the same three methods for the Spark sink.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from harness.sources.arrow_types import ARROW_TYPES, rows_to_table
from harness.steps import Column, TableSpec

#: prefix of every snapshot summary property the sink writes
PREFIX = "cdc."
#: logical types the sink stores as text (Iceberg has no JSON type; pyarrow writes uuid as bytes)
AS_TEXT = frozenset({"json", "uuid"})


class TableWriter(Protocol):
    """Writes one table of the sink.

    Contract: ``ensure(spec)`` creates the table (identifier fields = the spec's key) or adds the
    spec's columns it lacks; ``apply(table, upserts, deletes, truncate, record)`` makes ONE atomic
    commit: when ``truncate``, every row goes first; then the rows with the keys of ``upserts``
    (full rows) and ``deletes`` (key tuples) are replaced by ``upserts``; ``record`` (string
    properties) is stored in that same commit; ``records(table)`` returns the record of every
    commit, oldest first, each with ``seq`` (the commit's order) and ``visible_ms`` (when it
    became visible) added.
    """

    def ensure(self, spec: TableSpec) -> None: ...
    def apply(self, table: str, upserts: Sequence[Mapping[str, Any]], deletes: Sequence[tuple], truncate: bool,
              record: Mapping[str, str]) -> None: ...
    def records(self, table: str) -> list[dict[str, Any]]: ...


def stored_type(logical: str) -> str:
    """The logical type a column is stored as (json and uuid as text: a declared transformation)."""
    return "text" if logical in AS_TEXT else logical


def stored_spec(spec: TableSpec) -> TableSpec:
    """The table as stored: every column with its ``stored_type``."""
    return TableSpec(spec.name, tuple(Column(c.name, stored_type(c.type), c.nullable) for c in spec.columns),
                     spec.key)


class PyIcebergWriter:
    """``TableWriter`` on an ``IcebergWarehouse`` with pyiceberg: copy-on-write delete + append in
    one transaction (one metadata commit, the record in each of its snapshots' summaries)."""

    def __init__(self, warehouse: Any) -> None:
        self.warehouse = warehouse
        self.catalog = warehouse.catalog()
        self.catalog.create_namespace_if_not_exists(warehouse.namespace)
        self.specs: dict[str, TableSpec] = {}

    def ensure(self, spec: TableSpec) -> None:
        from pyiceberg import types as it
        from pyiceberg.schema import Schema

        from harness.sources.iceberg import iceberg_type

        stored = stored_spec(spec)
        ident = self.warehouse.identifier(spec.name)
        if not self.catalog.table_exists(ident):
            ids = [len(stored.columns)]
            fields = [it.NestedField(i + 1, c.name, iceberg_type(c.type, ids), required=c.name in stored.key)
                      for i, c in enumerate(stored.columns)]
            key_ids = [i + 1 for i, c in enumerate(stored.columns) if c.name in stored.key]
            self.catalog.create_table(ident, schema=Schema(*fields, identifier_field_ids=key_ids))
        else:
            table = self.catalog.load_table(ident)
            have = {f.name for f in table.schema().fields}
            missing = [c for c in stored.columns if c.name not in have]
            if missing:
                with table.update_schema() as update:
                    for c in missing:
                        update.add_column(c.name, iceberg_type(c.type, [10_000]))
        self.specs[spec.name] = stored

    def apply(self, table: str, upserts: Sequence[Mapping[str, Any]], deletes: Sequence[tuple], truncate: bool,
              record: Mapping[str, str]) -> None:
        from pyiceberg.expressions import AlwaysTrue

        spec = self.specs[table]
        tbl = self.catalog.load_table(self.warehouse.identifier(table))
        props = dict(record)
        keys = [tuple(r[k] for k in spec.key) for r in upserts] + list(deletes)
        with tbl.transaction() as tx, warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Delete operation did not match any records")  # new keys: expected
            if truncate:
                tx.delete(AlwaysTrue(), snapshot_properties=props)
            elif keys:
                tx.delete(_key_filter(spec, keys), snapshot_properties=props)
            if upserts:
                data = rows_to_table(spec, [stored_row(spec, r) for r in upserts])
                tx.append(data.cast(_arrow_schema(tbl, data)), snapshot_properties=props)

    def records(self, table: str) -> list[dict[str, Any]]:
        ident = self.warehouse.identifier(table)
        if not self.catalog.table_exists(ident):
            return []
        meta = self.catalog.load_table(ident).metadata
        out: dict[str, dict[str, Any]] = {}
        for snap in sorted(meta.snapshots, key=lambda s: s.sequence_number):
            props = {k: v for k, v in (snap.summary.additional_properties or {}).items() if k.startswith(PREFIX)}
            commit = props.get(PREFIX + "commit")
            if commit and commit not in out:  # the delete and the append of one commit carry the same record
                out[commit] = {**props, "seq": snap.sequence_number, "visible_ms": snap.timestamp_ms}
        return list(out.values())


def _arrow_schema(tbl: Any, data: Any) -> Any:
    """The table's Arrow schema (required key fields), in the data's column order."""
    schema = tbl.schema().as_arrow()
    return __import__("pyarrow").schema([schema.field(n) for n in data.schema.names])


def stored_row(spec: TableSpec, row: Mapping[str, Any]) -> dict[str, Any]:
    """A decoded source row as stored: json as canonical JSON text, uuid as its text."""
    import json

    out = dict(row)
    for c in spec.columns:
        v = out.get(c.name)
        if v is not None and c.type == "text" and not isinstance(v, str):
            out[c.name] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else str(v)
    return out


def _key_filter(spec: TableSpec, keys: Sequence[tuple]) -> Any:
    from pyiceberg.expressions import And, EqualTo, In, Or

    if len(spec.key) == 1:
        return In(spec.key[0], sorted({k[0] for k in keys}))
    terms = [And(*[EqualTo(c, v) for c, v in zip(spec.key, k, strict=True)]) for k in set(keys)]
    return terms[0] if len(terms) == 1 else Or(*terms)


__all__ = ["ARROW_TYPES", "PREFIX", "PyIcebergWriter", "TableWriter", "stored_row", "stored_spec", "stored_type"]
