"""Debezium's Kafka Connect JSON values decoded exactly, driven by the record's own schema.

Connect's ``JsonConverter`` with ``schemas.enable=true`` sends every value with its schema; the
logical type names (``org.apache.kafka.connect.data.Decimal``, ``io.debezium.time.MicroTimestamp``,
...) say how to read it back: decimals from their unscaled big-endian bytes and scale, times
from their epoch counts, bytes from base64, JSON from its text, NaN/±inf from the strings the
converter writes for them. A value with a name this module does not know keeps its JSON form.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
import uuid
from binascii import a2b_base64
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

#: the placeholder Debezium puts in place of an unchanged TOASTed value it did not receive
UNAVAILABLE = "__debezium_unavailable_value"
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_DATE = dt.date(1970, 1, 1)
_F32 = struct.Struct("<f")
_SPECIAL_FLOATS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _bytes(v: Any) -> bytes:
    return base64.b64decode(v) if isinstance(v, str) else bytes(v)


def _unscaled(raw: bytes, scale: int) -> Decimal:
    """Exact: built from digits and exponent (``scaleb`` would round to the context's 28 digits)."""
    return Decimal(f"{int.from_bytes(raw, 'big', signed=True)}E{-scale}")


def _decimal(v: Any, schema: Mapping[str, Any]) -> Any:
    if isinstance(v, str) and v in ("NaN", "Infinity", "-Infinity"):
        return Decimal(v)
    scale = int((schema.get("parameters") or {}).get("scale", 0))
    return _unscaled(_bytes(v), scale)


def _variable_scale(v: Any) -> Any:
    """A ``VariableScaleDecimal`` struct (its scale, its unscaled bytes as base64) as a decimal."""
    raw = v["value"]
    return _unscaled(a2b_base64(raw) if isinstance(raw, str) else bytes(raw), int(v["scale"]))


def _float(v: Any, schema: Mapping[str, Any]) -> float:
    return _SPECIAL_FLOATS[v] if isinstance(v, str) else float(v)


def _float32(v: Any, schema: Mapping[str, Any]) -> float:
    """A 32-bit float: the JSON holds its shortest decimal form (3.0517578E-5), which names one
    float32 exactly; read back as that float32's value (3.0517578125e-05)."""
    return _SPECIAL_FLOATS[v] if isinstance(v, str) else _F32.unpack(_F32.pack(float(v)))[0]


def _time_of_day(us: int) -> dt.time:
    return (_EPOCH + dt.timedelta(microseconds=us)).time()


def _zoned_time(v: str, schema: Mapping[str, Any]) -> dt.time:
    return dt.time.fromisoformat(v.replace("Z", "+00:00"))


def _enum_set(v: str, schema: Mapping[str, Any]) -> Any:
    return v


#: logical type name -> decoder(value, schema)
LOGICAL: dict[str, Callable[[Any, Mapping[str, Any]], Any]] = {
    "org.apache.kafka.connect.data.Decimal": _decimal,
    "io.debezium.data.VariableScaleDecimal": lambda v, s: _variable_scale(v),
    "io.debezium.time.ZonedTimestamp": lambda v, s: dt.datetime.fromisoformat(v),
    "io.debezium.time.MicroTimestamp": lambda v, s: _EPOCH + dt.timedelta(microseconds=v),
    "io.debezium.time.NanoTimestamp": lambda v, s: _EPOCH + dt.timedelta(microseconds=v // 1000),
    "io.debezium.time.Timestamp": lambda v, s: _EPOCH + dt.timedelta(milliseconds=v),
    "org.apache.kafka.connect.data.Timestamp": lambda v, s: _EPOCH + dt.timedelta(milliseconds=v),
    "io.debezium.time.Date": lambda v, s: _EPOCH_DATE + dt.timedelta(days=v),
    "org.apache.kafka.connect.data.Date": lambda v, s: _EPOCH_DATE + dt.timedelta(days=v),
    "io.debezium.time.MicroTime": lambda v, s: _time_of_day(v),
    "io.debezium.time.NanoTime": lambda v, s: _time_of_day(v // 1000),
    "io.debezium.time.Time": lambda v, s: _time_of_day(v * 1000),
    "org.apache.kafka.connect.data.Time": lambda v, s: _time_of_day(v * 1000),
    "io.debezium.time.ZonedTime": _zoned_time,
    "io.debezium.time.MicroDuration": lambda v, s: dt.timedelta(microseconds=v),
    "io.debezium.data.Json": lambda v, s: json.loads(v),
    "io.debezium.data.Uuid": lambda v, s: uuid.UUID(v),
    "io.debezium.data.EnumSet": _enum_set,
    # BIT(n): the bits as bytes, least significant byte first (Java's BitSet.toByteArray)
    "io.debezium.data.Bits": lambda v, s: int.from_bytes(_bytes(v), "little"),
}


def decode(value: Any, schema: Mapping[str, Any]) -> Any:
    """The Python value of one Connect JSON ``value`` described by ``schema``.

    ``None`` stays ``None``; the TOAST placeholder stays the placeholder string (a checker sees
    it as a wrong value, which is what it is); structs become dicts, arrays lists.
    """
    if value is None or value == UNAVAILABLE:
        return value
    name = schema.get("name")
    if name in LOGICAL:
        return LOGICAL[name](value, schema)
    kind = schema.get("type")
    if kind == "bytes":
        return _bytes(value)
    if kind == "double":
        return _float(value, schema)
    if kind == "float":
        return _float32(value, schema)
    if kind == "array":
        items = schema.get("items") or {}
        return [decode(x, items) for x in value]
    if kind == "struct":
        return decode_struct(value, schema)
    return value


def decode_struct(value: Mapping[str, Any] | None, schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """A struct (a row image, a key) as a dict in the schema's field order."""
    if value is None:
        return None
    return {f["field"]: decode(value.get(f["field"]), f) for f in schema.get("fields", ())}


def _identity(v: Any) -> Any:
    return v


def unscaled_decimal(scale: int) -> Callable[[bytes], Decimal]:
    """The decimal of a scale from its unscaled value's big-endian two's-complement bytes (the
    bytes of a ``Decimal`` field, base64-decoded)."""
    exponent = f"E{-scale}"

    def run(raw: bytes) -> Decimal:
        return Decimal(f"{int.from_bytes(raw, 'big', signed=True)}{exponent}")

    return run


def _fixed_decimal(scale: int) -> Callable[[Any], Any]:
    """``_decimal`` for one schema's scale (base64 text of the unscaled big-endian bytes)."""
    of_bytes = unscaled_decimal(scale)

    def run(v: Any) -> Any:
        if isinstance(v, str):
            return Decimal(v) if v in ("NaN", "Infinity", "-Infinity") else of_bytes(a2b_base64(v))
        return of_bytes(bytes(v))

    return run


def field_decoder(schema: Mapping[str, Any]) -> Callable[[Any], Any] | None:
    """A one-argument decoder for one non-null field value, chosen once for its schema (``None``
    for plain ints, strings and booleans, whose JSON form is their value)."""
    name, kind = schema.get("name"), schema.get("type")
    if name not in LOGICAL and kind in ("int8", "int16", "int32", "int64", "string", "boolean"):
        return None
    if name == "org.apache.kafka.connect.data.Decimal":
        return _fixed_decimal(int((schema.get("parameters") or {}).get("scale", 0)))
    if name == "io.debezium.data.VariableScaleDecimal":
        return _variable_scale
    logical = LOGICAL.get(name)  # type: ignore[arg-type]
    if logical is not None:
        return lambda v: logical(v, schema)
    return lambda v: decode(v, schema)


def compile_struct(schema: Mapping[str, Any]) -> Callable[[Mapping[str, Any] | None], dict[str, Any] | None]:
    """``decode_struct`` for one schema, with each field's decoder chosen once (for a schema that
    is seen again and again, as the one of a table's row images)."""
    names = tuple(f["field"] for f in schema.get("fields", ()))
    special = tuple((f["field"], fn) for f in schema.get("fields", ()) if (fn := field_decoder(f)) is not None)

    def run(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        get = value.get
        out = {name: get(name) for name in names}
        for name, fn in special:
            v = out[name]
            if v is not None and v != UNAVAILABLE:
                out[name] = fn(v)
        return out

    return run


def compile_key(schema: Mapping[str, Any], skip_prefix: str) -> Callable[[Mapping[str, Any] | None], tuple]:
    """The key columns' values in key order from a key struct, fields named with ``skip_prefix``
    (routing fields) left out; decoded as ``compile_struct`` does."""
    fields = tuple((f["field"], field_decoder(f)) for f in schema.get("fields", ())
                   if not f["field"].startswith(skip_prefix))

    def run(value: Mapping[str, Any] | None) -> tuple:
        if value is None:
            return ()
        get = value.get
        return tuple(v if (v := get(name)) is None or fn is None or v == UNAVAILABLE else fn(v)
                     for name, fn in fields)

    return run


def field_schema(schema: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The schema of field ``name`` of a struct schema (``{}`` when absent)."""
    return next((f for f in schema.get("fields", ()) if f.get("field") == name), {})
