"""Type-aware canonical values: equal exactly when equal and of the same logical type."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal

import pytest

from harness.values import canonical, describe_difference, encode_image, encode_key, shape_differs

UTC = dt.UTC
PLUS5 = dt.timezone(dt.timedelta(hours=5, minutes=30))
MINUS8 = dt.timezone(dt.timedelta(hours=-8))

EQUAL = [
    pytest.param(Decimal("1.10"), Decimal("1.1"), id="decimal-trailing-zero"),
    pytest.param(Decimal("100"), Decimal("1E+2"), id="decimal-exponent"),
    pytest.param(Decimal("0.000"), Decimal("-0"), id="decimal-zero"),
    pytest.param(Decimal("9999999999999999999999999999.9999999999"),
                 Decimal("9999999999999999999999999999.99999999990"), id="decimal-38-10-max"),
    pytest.param(Decimal("-9999999999999999999999999999.9999999999"),
                 Decimal("-9999999999999999999999999999.9999999999"), id="decimal-38-10-min"),
    pytest.param(Decimal("0.0000000001"), Decimal("1E-10"), id="decimal-38-10-smallest"),
    pytest.param(float("nan"), float("nan"), id="nan"),
    pytest.param(float("inf"), math.inf, id="inf"),
    pytest.param(-math.inf, float("-inf"), id="-inf"),
    pytest.param(-0.0, 0.0, id="signed-zero"),
    pytest.param(Decimal("NaN"), Decimal("nan"), id="decimal-nan"),
    pytest.param(dt.datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
                 dt.datetime(2024, 3, 1, 17, 30, 0, 123456, tzinfo=PLUS5), id="tz-utc-vs-plus5"),
    pytest.param(dt.datetime(2024, 3, 1, 4, 0, tzinfo=MINUS8),
                 dt.datetime(2024, 3, 1, 17, 30, tzinfo=PLUS5), id="tz-minus8-vs-plus5"),
    pytest.param(dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                 dt.datetime(1970, 1, 1, 5, 29, 59, 999999, tzinfo=PLUS5), id="tz-before-epoch"),
    pytest.param(dt.date(1900, 1, 1), dt.date(1900, 1, 1), id="date-1900"),
    pytest.param(dt.date(1, 1, 1), dt.date(1, 1, 1), id="date-year-1"),
    pytest.param("héllo ✓ 😀 𝄞", "héllo ✓ 😀 𝄞", id="unicode-emoji"),
    pytest.param({"a": 1, "b": [1, 2, {"c": None}]}, {"b": [1, 2, {"c": None}], "a": 1}, id="json-key-order"),
    pytest.param(uuid.UUID("12345678-1234-5678-1234-567812345678"),
                 uuid.UUID("{12345678-1234-5678-1234-567812345678}"), id="uuid"),
    pytest.param([1, 2, 3], [1, 2, 3], id="list"),
    pytest.param([1, 2], (1, 2), id="list-vs-tuple"),
    pytest.param(b"\x00\xff", bytearray(b"\x00\xff"), id="bytes-vs-bytearray"),
    pytest.param(dt.timedelta(days=1), dt.timedelta(hours=24), id="interval"),
]

DIFFERENT = [
    pytest.param(Decimal("1.1"), Decimal("1.2"), id="decimal"),
    pytest.param(Decimal("9999999999999999999999999999.9999999999"),
                 Decimal("9999999999999999999999999999.9999999998"), id="decimal-38-10-last-digit"),
    pytest.param(Decimal("-9999999999999999999999999999.9999999999"),
                 Decimal("9999999999999999999999999999.9999999999"), id="decimal-38-10-sign"),
    pytest.param(math.inf, -math.inf, id="inf-vs-minus-inf"),
    pytest.param(float("nan"), math.inf, id="nan-vs-inf"),
    pytest.param(float("nan"), None, id="nan-vs-null"),
    pytest.param(dt.datetime(2024, 3, 1, 12, 0, tzinfo=UTC), dt.datetime(2024, 3, 1, 12, 0), id="aware-vs-naive"),
    pytest.param(dt.datetime(2024, 3, 1, 12, 0, 0, 1, tzinfo=UTC),
                 dt.datetime(2024, 3, 1, 12, 0, 0, 2, tzinfo=UTC), id="one-microsecond"),
    pytest.param(dt.datetime(2024, 3, 1, 12, 0, tzinfo=UTC),
                 dt.datetime(2024, 3, 1, 12, 0, tzinfo=PLUS5), id="same-wallclock-other-tz"),
    pytest.param(dt.date(2024, 3, 1), dt.datetime(2024, 3, 1), id="date-vs-datetime"),
    pytest.param(dt.date(1969, 12, 31), dt.date(1970, 1, 1), id="date-before-epoch"),
    pytest.param(None, "", id="null-vs-empty-string"),
    pytest.param(b"abc", "abc", id="bytes-vs-str"),
    pytest.param(b"", "", id="empty-bytes-vs-empty-str"),
    pytest.param(1, 1.0, id="int-vs-float"),
    pytest.param(1, True, id="int-vs-bool"),
    pytest.param(1.0, True, id="float-vs-bool"),
    pytest.param(0, False, id="zero-vs-false"),
    pytest.param(1, Decimal(1), id="int-vs-decimal"),
    pytest.param(1.5, Decimal("1.5"), id="float-vs-decimal"),
    pytest.param("1", 1, id="str-vs-int"),
    pytest.param("e\u0301", "\u00e9", id="unicode-not-normalized"),
    pytest.param("😀", "😁", id="emoji"),
    pytest.param({"a": 1}, {"a": 1.0}, id="json-int-vs-float"),
    pytest.param({"a": 1}, {"a": True}, id="json-int-vs-bool"),
    pytest.param({"a": None}, {}, id="json-null-vs-absent"),
    pytest.param(uuid.UUID(int=1), str(uuid.UUID(int=1)), id="uuid-vs-str"),
    pytest.param([1, 2], [2, 1], id="list-order"),
    pytest.param(["a,s:b"], ["a", "b"], id="list-separator-in-string"),
    pytest.param([None], [], id="list-null-vs-empty"),
    pytest.param([1], 1, id="list-vs-scalar"),
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equal_values_share_a_token(a: object, b: object) -> None:
    assert canonical(a) == canonical(b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_values_get_different_tokens(a: object, b: object) -> None:
    assert canonical(a) != canonical(b)


def test_decimal_38_10_is_exact() -> None:
    big = Decimal("1234567890123456789012345678.0123456789")
    assert canonical(big) == "d:1234567890123456789012345678.0123456789"
    assert canonical(big + Decimal("1E-10")) != canonical(big)


def test_datetime_is_compared_at_microseconds_in_utc() -> None:
    assert canonical(dt.datetime(2024, 1, 1, tzinfo=PLUS5)) == "t:2023-12-31T18:30:00.000000"


def test_unknown_type_is_rejected() -> None:
    with pytest.raises(TypeError):
        canonical(object())


def test_image_column_order_does_not_matter() -> None:
    assert encode_image({"a": 1, "b": "x"}) == encode_image({"b": "x", "a": 1})
    assert encode_image(None) is None
    assert encode_image({}) != encode_image(None)


def test_image_null_vs_empty_and_missing_column() -> None:
    assert encode_image({"a": None}) != encode_image({"a": ""})
    assert encode_image({"a": None}) != encode_image({})


def test_key_is_type_aware() -> None:
    assert encode_key((1, "a")) != encode_key(("1", "a"))
    assert encode_key((1,)) != encode_key((True,))
    assert encode_key((Decimal("1.0"),)) == encode_key((Decimal("1"),))


def test_shape_differs_on_columns_and_types_not_on_values() -> None:
    assert not shape_differs({"a": 1}, {"a": 2})
    assert not shape_differs({"a": 1}, {"a": None})
    assert shape_differs({"a": 1}, {"a": "1"})
    assert shape_differs({"a": 1}, {"a": 1, "b": 2})
    assert shape_differs({"a": 1, "b": 2}, {"a": 1})


def test_describe_difference_names_the_columns() -> None:
    diff = describe_difference({"a": 1, "b": "x", "c": 3}, {"a": 1, "b": "y", "d": 4})
    assert diff == {"b": {"expected": "x", "got": "y"}, "c": {"expected": 3, "got": "<missing column>"},
                    "d": {"expected": "<no such column>", "got": 4}}
