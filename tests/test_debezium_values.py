"""Debezium's Connect JSON decoded exactly: logical types, special floats, the TOAST placeholder,
and the envelope split that parses only the payload per record."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest

from harness.approaches.debezium import _loads, _split
from harness.approaches.debezium_values import UNAVAILABLE, compile_key, compile_struct, decode


def _b64(n: int, size: int) -> str:
    return base64.b64encode(n.to_bytes(size, "big", signed=True)).decode()


@pytest.mark.parametrize(("value", "schema", "expected"), [
    (_b64(123456789012345678901234567890123456789, 17),
     {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "10"}},
     Decimal("12345678901234567890123456789.0123456789")),  # more digits than the 28 of Decimal's context
    (_b64(-5, 1), {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "30"}},
     Decimal("-5E-30")),
    ({"scale": 2, "value": _b64(-12345, 4)}, {"type": "struct", "name": "io.debezium.data.VariableScaleDecimal"},
     Decimal("-123.45")),
    (3.0517578e-05, {"type": "float"}, 3.0517578125e-05),  # float32's shortest form read back exactly
    (-315619199500000, {"type": "int64", "name": "io.debezium.time.MicroTimestamp"},
     dt.datetime(1960, 1, 1, 0, 0, 0, 500000)),
    (-3620, {"type": "int32", "name": "io.debezium.time.Date"}, dt.date(1960, 2, 3)),
    ("2020-01-01T08:00:00.123456Z", {"type": "string", "name": "io.debezium.time.ZonedTimestamp"},
     dt.datetime(2020, 1, 1, 8, 0, 0, 123456, tzinfo=dt.UTC)),
    (45296000001, {"type": "int64", "name": "io.debezium.time.MicroTime"}, dt.time(12, 34, 56, 1)),
    ("AP8=", {"type": "bytes"}, b"\x00\xff"),
    ('{"a":[1,2]}', {"type": "string", "name": "io.debezium.data.Json"}, {"a": [1, 2]}),
    ("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", {"type": "string", "name": "io.debezium.data.Uuid"},
     uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
    ("/wM=", {"type": "bytes", "name": "io.debezium.data.Bits"}, 1023),  # BIT(10), least significant byte first
    ([1, 2], {"type": "array", "items": {"type": "int32"}}, [1, 2]),
    (UNAVAILABLE, {"type": "string"}, UNAVAILABLE),
])
def test_decode(value, schema, expected) -> None:
    got = decode(value, schema)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("special", ["NaN", "Infinity", "-Infinity"])
def test_special_floats(special: str) -> None:
    got = decode(special, {"type": "double"})
    assert repr(got) == repr(float(special.replace("Infinity", "inf")))


def test_compiled_struct_equals_field_by_field_decoding() -> None:
    schema = {"type": "struct", "fields": [
        {"field": "id", "type": "int32"},
        {"field": "d", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}},
        {"field": "big", "type": "string"},
        {"field": "f", "type": "double"}]}
    row = {"id": 1, "d": _b64(1234, 2), "big": UNAVAILABLE, "f": "NaN"}
    got = compile_struct(schema)(row)
    assert got["id"] == 1 and got["d"] == Decimal("12.34") and got["big"] == UNAVAILABLE
    assert got["f"] != got["f"]  # NaN
    assert compile_struct(schema)(None) is None


DECIMAL_2 = {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}}


@pytest.mark.parametrize("value", [_b64(1234, 2), _b64(-1, 1), _b64(-(10**40), 17), _b64(0, 1), "NaN",
                                   "-Infinity", None, UNAVAILABLE])
def test_compiled_decimal_equals_the_generic_decoder(value) -> None:
    """The compiled fixed-scale decimal decoder gives what ``decode`` gives, value and type."""
    schema = {"type": "struct", "fields": [{"field": "d", **DECIMAL_2}]}
    got = compile_struct(schema)({"d": value})["d"]
    want = decode(value, DECIMAL_2)
    assert repr(got) == repr(want) and type(got) is type(want)


def test_compiled_key_keeps_key_order_and_drops_routing_fields() -> None:
    schema = {"type": "struct", "fields": [{"field": "b", "type": "string"}, {"field": "a", **DECIMAL_2},
                                           {"field": "__dbz__physicalTableIdentifier", "type": "string"}]}
    key = compile_key(schema, "__dbz__")
    assert key({"a": _b64(-5, 1), "b": "x", "__dbz__physicalTableIdentifier": "p.s.t"}) == ("x", Decimal("-0.05"))
    assert key(None) == ()


@pytest.mark.parametrize("text", [b'{"n":18446744073709551616}', b'{"n":-9223372036854775809}',
                                  b'{"n":99999999999999999999999,"ts_ns":1795719213713622000}',
                                  rb'{"f":0.1,"g":1e308,"s":"\u00e9"}'])
def test_loads_equals_json_even_beyond_64_bit_integers(text: bytes) -> None:
    """orjson reads integers beyond 64 bits as floats: such text goes to the stdlib parser, so
    values stay exact (same values, same types)."""
    got, want = _loads(text), json.loads(text)
    assert got == want and [type(v) for v in got.values()] == [type(v) for v in want.values()]


def test_split_parses_only_the_payload_and_survives_a_column_named_payload() -> None:
    schema = {"type": "struct", "fields": [{"field": "after", "type": "struct",
                                            "fields": [{"field": "payload", "type": "string"}]}]}
    doc = {"schema": schema, "payload": {"after": {"payload": ',"payload":"x"'}, "op": "c"}}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    schema_json, payload = _split(raw)
    assert json.loads(schema_json) == schema
    assert payload == doc["payload"]
