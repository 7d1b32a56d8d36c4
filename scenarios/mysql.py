"""MariaDB/MySQL-only scenarios: the native MySQL types, and which Postgres scenarios also run here.

``MYSQL_SCENARIOS`` maps a stable id to ``factory(seed, scale) -> Scenario``. ``SHARED`` names the
scenarios of ``scenarios.postgres`` that also run on the mysql family (their steps are engine
neutral: large values left unchanged by updates, multi-row inserts, savepoints, multi-table
transactions, and the ``source-restart``/``net-drop``/``net-partition`` engine faults).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from harness.steps import Column, Delete, Insert, Scenario, TableSpec, Update
from scenarios.sizes import size

UTC = dt.UTC
#: Postgres scenarios that run on mysql too (toast: 12 KB TEXT values, which NOBLOB leaves out;
#: long-txn: one 120k-change transaction, drained in ~7 s by the compiled row readers;
#: large-txn-abort: transactions past binlog_cache_size, one rolled back)
SHARED = ("toast", "bulk-copy", "savepoint", "multi-table-txn", "long-txn", "source-restart", "net-drop",
          "net-partition", "large-txn-abort")

MYSQL_TYPE_COLUMNS: tuple[Column, ...] = (
    Column("id", "bigint", nullable=False),
    Column("dec65", "mysql:decimal(65,30)"),
    Column("dt6", "mysql:datetime(6)"),
    Column("ts6", "mysql:timestamp(6) NULL DEFAULT NULL"),
    Column("d", "mysql:date"),
    Column("doc", "json"),
    Column("txt", "mysql:varchar(200) CHARACTER SET utf8mb4"),
    Column("bin", "mysql:binary(16)"),
    Column("vbin", "mysql:varbinary(64)"),
    Column("blb", "mysql:blob"),
    Column("en", "mysql:enum('small','medium','large')"),
    Column("st", "mysql:set('red','green','blue')"),
    Column("bits", "mysql:bit(10)"),
    Column("f4", "mysql:float"),
    Column("f8", "mysql:double"),
    Column("tiny", "mysql:tinyint"),
    Column("ubig", "mysql:bigint unsigned"),
)
#: MySQL has no NaN or ±inf in FLOAT/DOUBLE: the values are finite (float ones exact in 32 bits)
_F4 = [0.0, 1.5, -0.25, 16777216.0, 3.0517578125e-05]
_F8 = [0.0, -2.5e300, 1e-300, 0.1, 123456789.123456789]
_DEC = [Decimal("0"), Decimal("12345678901234567890123456789012345.123456789012345678901234567891"),
        Decimal("-0.000000000000000000000000000001"), Decimal("1.10")]
_TEXT = ["", "plain", "emoji 🦆🚀 (4-byte utf8mb4)", "ünïcödé ✓ 中文", "quote ' \" \\ tab\t"]
_TS = [dt.datetime(1970, 1, 1, 0, 0, 1, 1, tzinfo=UTC), dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
       dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC)]
_DATES = [dt.date(1000, 1, 1), dt.date(1900, 1, 1), dt.date(1969, 12, 31), dt.date(9999, 12, 31)]


def _row(key: int, i: int) -> dict[str, Any]:
    return {
        "id": key,
        "dec65": _DEC[i % len(_DEC)],
        "dt6": dt.datetime(1901 + i % 150, 1 + i % 12, 1 + i % 28, i % 24, i % 60, 0, i * 7919 % 1_000_000),
        "ts6": _TS[i % len(_TS)],
        "d": _DATES[i % len(_DATES)],
        "doc": [{"a": 1, "b": [1, 2, None]}, {"nested": {"ü": "🦆"}}, None, [1, "x"]][i % 4],
        "txt": None if i % 6 == 5 else _TEXT[i % len(_TEXT)],
        "bin": bytes((i * 13 + j) % 256 for j in range(16)),
        "vbin": [b"", b"\x00\xff\x10binary", None, bytes(range(64))][i % 4],
        "blb": [b"\x00" * 3, bytes(range(256)) * 4, None][i % 3],
        "en": ["small", "medium", "large", None][i % 4],
        "st": ["red", "red,blue", "green,blue", "red,green,blue"][i % 4],
        "bits": [0, 1, 1023, 512][i % 4],
        "f4": _F4[i % len(_F4)],
        "f8": _F8[i % len(_F8)],
        "tiny": [-128, 0, 127][i % 3],
        "ubig": [0, 2**64 - 1, 2**63][i % 3],
    }


def mysql_types(seed: int, scale: str) -> Scenario:
    """MySQL's own types: decimal(65,30), datetime(6), timestamp(6) (UTC session), dates from
    year 1000, JSON, utf8mb4 4-byte characters, binary/varbinary/blob, enum/set, bit(10),
    float/double (finite: MySQL has no NaN), signed tinyint, unsigned bigint."""
    spec = TableSpec("mtyped", MYSQL_TYPE_COLUMNS)
    n = size(scale, "type_rows")
    steps: list[Any] = [Insert("mtyped", _row(k, k)) for k in range(1, n + 1)]
    for k in range(1, n + 1, 2):
        new = _row(k, k + 3)
        steps.append(Update("mtyped", (k,), {c: v for c, v in new.items() if c != "id"}))
    steps.extend(Delete("mtyped", (k,)) for k in range(1, n + 1, 4))
    return Scenario("mysql-types", (spec,), steps, description="MySQL-native types round trip")


MYSQL_SCENARIOS: dict[str, Callable[[int, str], Scenario]] = {"mysql-types": mysql_types}
