"""Type-aware canonical forms of values, so equal values compare equal without string guessing.

``canonical(v)`` maps a Python value to a type-tagged token: two values get the same token
exactly when they are equal *and* of the same logical type (``Decimal('1.10') == Decimal('1.1')``,
aware datetimes compared in UTC at microsecond precision, NaN equal to NaN, ``None`` distinct
from ``''``, bytes distinct from str, 1 distinct from 1.0). Images and keys are encoded once,
so the checker can compare millions of them as plain columns.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Callable, Mapping
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Any

SEP = "\x1f"
_UTC = dt.UTC
#: normalize() rounds to the context precision (28 by default): decimal(38,10) needs an exact one.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def _float(v: float) -> str:
    if math.isnan(v):
        return "f:nan"
    if math.isinf(v):
        return "f:inf" if v > 0 else "f:-inf"
    return "f:" + repr(v + 0.0)  # -0.0 + 0.0 == 0.0


def _decimal(v: Decimal) -> str:
    if v.is_nan():
        return "d:nan"
    if v.is_infinite():
        return "d:inf" if v > 0 else "d:-inf"
    if v == 0:
        return "d:0"
    return "d:" + format(v.normalize(_EXACT), "f")


def _datetime(v: dt.datetime) -> str:
    if v.tzinfo is None:
        return "T:" + v.isoformat(timespec="microseconds")
    return "t:" + v.astimezone(_UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def _json_default(v: Any) -> Any:
    return canonical(v)


def _mapping(v: Mapping) -> str:
    return "j:" + json.dumps(v, sort_keys=True, separators=(",", ":"), default=_json_default,
                             allow_nan=True, ensure_ascii=False)


def _sequence(v: list | tuple) -> str:
    # JSON-quoted items, so a string holding the separator cannot pass for two items
    return "a:" + json.dumps([canonical(x) for x in v], ensure_ascii=False, separators=(",", ":"))


_ENCODERS: dict[type, Callable[[Any], str]] = {
    type(None): lambda v: "N",
    bool: lambda v: "b:1" if v else "b:0",
    int: lambda v: "i:" + str(v),
    float: _float,
    Decimal: _decimal,
    str: lambda v: "s:" + v,
    bytes: lambda v: "x:" + v.hex(),
    bytearray: lambda v: "x:" + bytes(v).hex(),
    memoryview: lambda v: "x:" + v.tobytes().hex(),
    dt.datetime: _datetime,
    dt.date: lambda v: "D:" + v.isoformat(),
    dt.time: lambda v: "h:" + v.isoformat(timespec="microseconds"),
    dt.timedelta: lambda v: "I:" + str((v.days * 86400 + v.seconds) * 1_000_000 + v.microseconds),
    uuid.UUID: lambda v: "u:" + str(v),
    dict: _mapping,
    list: _sequence,
    tuple: _sequence,
}


def canonical(v: Any) -> str:
    """Return the type-tagged canonical token of one value."""
    enc = _ENCODERS.get(type(v))
    if enc is not None:
        return enc(v)
    for base, fn in _ENCODERS.items():  # subclasses (numpy scalars excluded on purpose)
        if base is not type(None) and isinstance(v, base):
            return fn(v)
    if isinstance(v, Mapping):
        return _mapping(v)
    raise TypeError(f"no canonical form for {type(v).__name__}: {v!r}")


def encode_key(key: tuple) -> str:
    """Canonical form of a key tuple."""
    return SEP.join([canonical(k) for k in key])


def encode_image(image: Mapping[str, Any] | None) -> str | None:
    """Canonical form of a row image (columns sorted by name); None stays None."""
    if image is None:
        return None
    return SEP.join([f"{c}={canonical(image[c])}" for c in sorted(image)])


def type_tag(v: Any) -> str:
    """The logical type letter of a value (``N`` for NULL)."""
    return canonical(v).split(":", 1)[0]


def describe_difference(expected: Mapping[str, Any] | None, got: Mapping[str, Any] | None) -> dict:
    """Column-level difference of two images, for anomaly examples (not used on the hot path)."""
    if expected is None or got is None:
        return {"expected": expected, "got": got}
    diff: dict[str, Any] = {}
    for col in sorted(set(expected) | set(got)):
        if col not in got:
            diff[col] = {"expected": expected[col], "got": "<missing column>"}
        elif col not in expected:
            diff[col] = {"expected": "<no such column>", "got": got[col]}
        elif canonical(expected[col]) != canonical(got[col]):
            diff[col] = {"expected": expected[col], "got": got[col]}
    return diff


def shape_differs(expected: Mapping[str, Any] | None, got: Mapping[str, Any] | None) -> bool:
    """True when ``got`` has other columns than ``expected``, or a non-NULL value of another type."""
    if expected is None or got is None:
        return False
    if set(expected) != set(got):
        return True
    for col, v in expected.items():
        a, b = type_tag(v), type_tag(got[col])
        if a != "N" and b != "N" and a != b:
            return True
    return False


def jsonable(v: Any) -> Any:
    """A JSON-friendly rendering of a value for reports (keeps the type visible)."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else repr(v)
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return canonical(v)
