"""The sink's apply step on a real embedded Iceberg warehouse, and the sink's type mapping."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from containers.engine import IcebergWarehouse
from harness.pipeline.apply import PREFIX, PyIcebergWriter
from harness.pipeline.sink import logical_type
from harness.steps import Column, TableSpec

pytest.importorskip("pyiceberg", reason="fix: pip install -e '.[iceberg]'")

SPEC = TableSpec("t", (Column("id", "bigint", nullable=False), Column("v", "decimal"), Column("doc", "json"),
                       Column("u", "uuid")))


@pytest.fixture
def writer(tmp_path):
    warehouse = IcebergWarehouse(tmp_path)
    warehouse.start()
    w = PyIcebergWriter(warehouse)
    w.ensure(SPEC)
    return w


def _rows(w: PyIcebergWriter) -> dict:
    table = w.catalog.load_table(w.warehouse.identifier("t"))
    return {r["id"]: r for r in table.scan().to_arrow().to_pylist()}


def _record(n: int) -> dict[str, str]:
    return {PREFIX + "commit": f"c{n}", PREFIX + "offset": str(n)}


def test_upsert_delete_truncate_each_one_commit_with_its_record(writer) -> None:
    u = uuid.UUID(int=7)
    writer.apply("t", [{"id": 1, "v": Decimal("1.5"), "doc": {"a": 1}, "u": u},
                       {"id": 2, "v": None, "doc": None, "u": None}], [], False, _record(1))
    writer.apply("t", [{"id": 1, "v": Decimal("2.5"), "doc": [1], "u": u}], [(2,)], False, _record(2))
    rows = _rows(writer)
    assert list(rows) == [1]
    assert rows[1]["v"] == Decimal("2.5000000000") and json.loads(rows[1]["doc"]) == [1] and rows[1]["u"] == str(u)
    writer.apply("t", [{"id": 3, "v": None, "doc": None, "u": None}], [], True, _record(3))
    assert list(_rows(writer)) == [3]
    records = writer.records("t")
    assert [r[PREFIX + "offset"] for r in records] == ["1", "2", "3"]
    assert all(r["visible_ms"] > 0 for r in records)
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)


def test_ensure_adds_a_column_the_rows_carry(writer) -> None:
    writer.apply("t", [{"id": 1, "v": None, "doc": None, "u": None}], [], False, _record(1))
    wider = TableSpec("t", (*SPEC.columns, Column("color", "text")), SPEC.key)
    writer.ensure(wider)
    writer.apply("t", [{"id": 2, "v": None, "doc": None, "u": None, "color": "red"}], [], False, _record(2))
    rows = _rows(writer)
    assert rows[1]["color"] is None and rows[2]["color"] == "red"


def test_debezium_field_types_map_to_logical_types() -> None:
    assert logical_type({"type": "int64"}) == "bigint"
    assert logical_type({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal"}) == "decimal"
    assert logical_type({"type": "string", "name": "io.debezium.time.ZonedTimestamp"}) == "timestamptz"
    assert logical_type({"type": "int64", "name": "io.debezium.time.MicroTimestamp"}) == "timestamp"
    assert logical_type({"type": "string", "name": "io.debezium.data.Json"}) == "json"
    assert logical_type({"type": "array", "items": {"type": "int32"}}) == "int[]"
    assert logical_type({"type": "string"}) == "text"
