"""Core DML scenarios: crud, txn, types, bulk, truncate."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from harness.steps import (
    Column,
    Delete,
    Insert,
    InsertMany,
    Scenario,
    TableSpec,
    Truncate,
    Txn,
    Update,
)
from scenarios.sizes import size
from scenarios.tables import ITEMS, ORDERS, UTC, RowMaker


class KeyedRandomWalk:
    """Picks existing keys for updates/deletes and fresh keys for inserts, deterministically."""

    def __init__(self, maker: RowMaker, start: int = 1) -> None:
        self.maker = maker
        self.live: list[int] = []
        self.next_key = start

    def new_key(self) -> int:
        k = self.next_key
        self.next_key += 1
        self.live.append(k)
        return k

    def pick(self) -> int:
        return self.live[self.maker.rng.randrange(len(self.live))]

    def remove(self, key: int) -> None:
        self.live.remove(key)


def crud(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """Single-row inserts, updates and deletes, each its own commit."""
    maker = RowMaker(seed)
    walk = KeyedRandomWalk(maker)
    steps: list[Any] = [Insert("items", maker.item(walk.new_key())) for _ in range(size(scale, "rows"))]
    for _ in range(size(scale, "ops")):
        r = maker.rng.random()
        if r < 0.3 or len(walk.live) < 3:
            steps.append(Insert("items", maker.item(walk.new_key())))
        elif r < 0.8:
            steps.append(Update("items", (walk.pick(),), maker.item_change()))
        else:
            k = walk.pick()
            walk.remove(k)
            steps.append(Delete("items", (k,)))
    return Scenario("crud", (ITEMS,), steps, description="single-row inserts, updates, deletes")


def txn(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """Multi-change, multi-table commits (same key touched twice included) and failed commits."""
    maker = RowMaker(seed)
    items = KeyedRandomWalk(maker)
    orders = KeyedRandomWalk(maker)
    steps: list[Any] = [Insert("items", maker.item(items.new_key())) for _ in range(size(scale, "rows") // 2)]
    for i in range(size(scale, "txns")):
        body: list[Any] = []
        for _ in range(maker.rng.randint(2, 8)):
            r = maker.rng.random()
            if r < 0.35:
                body.append(Insert("items", maker.item(items.new_key())))
            elif r < 0.6:
                body.append(Insert("orders", maker.order(orders.new_key(), items.pick())))
            elif r < 0.85:
                body.append(Update("items", (items.pick(),), maker.item_change()))
            elif len(items.live) > 3:
                k = items.pick()
                items.remove(k)
                body.append(Delete("items", (k,)))
        commit = i % 5 != 4
        if not commit:  # a failed commit: its keys must not be reused as if they existed
            for st in body:
                if isinstance(st, Insert):
                    walk = items if st.table == "items" else orders
                    walk.live.remove(st.row["id"])
                elif isinstance(st, Delete):
                    items.live.append(st.key[0])
        steps.append(Txn(tuple(body), commit=commit))
    return Scenario("txn", (ITEMS, ORDERS), steps,
                    description="multi-change multi-table commits; every 5th commit fails and must leave no trace")


TYPE_COLUMNS: tuple[Column, ...] = (
    Column("id", "bigint", nullable=False),
    Column("dec", "decimal"),
    Column("f", "float"),
    Column("ts", "timestamptz"),
    Column("naive", "timestamp"),
    Column("d", "date"),
    Column("txt", "text"),
    Column("blob", "bytes"),
    Column("flag", "bool"),
    Column("nums", "int[]"),
    Column("doc", "json"),
    Column("uid", "uuid"),
)

_DECIMALS = [Decimal("0"), Decimal("1234567890123456789012345678.0123456789"),
             Decimal("-9999999999999999999999999999.9999999999"), Decimal("0.0000000001"), Decimal("1.10")]
_FLOATS = [0.0, -0.0, 1.5, float("nan"), float("inf"), float("-inf"), 1e-300, -2.5e300]
_TEXTS = ["", "plain", "ünïcödé ✓", "emoji 🦆🚀", "quote ' and \" and \\", "tab\tnewline\n", "中文"]
_TIMES = [dt.datetime(1969, 7, 20, 20, 17, 40, 123456, tzinfo=UTC),
          dt.datetime(2038, 1, 19, 3, 14, 8, 999999, tzinfo=UTC),
          dt.datetime(2024, 2, 29, 23, 59, 59, 1, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))]
_DATES = [dt.date(1900, 1, 1), dt.date(1969, 12, 31), dt.date(1970, 1, 1), dt.date(2262, 4, 11)]


def _type_row(key: int, i: int, cols: tuple[Column, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": key,
        "dec": _DECIMALS[i % len(_DECIMALS)],
        "f": _FLOATS[i % len(_FLOATS)],
        "ts": _TIMES[i % len(_TIMES)],
        "naive": dt.datetime(1960 + i % 90, 1 + i % 12, 1 + i % 28, i % 24, 0, 0, i * 7 % 1_000_000),
        "d": _DATES[i % len(_DATES)],
        "txt": None if i % 6 == 5 else _TEXTS[i % len(_TEXTS)],
        "blob": [b"", b"\x00\xff\x10binary", None, bytes(range(256))][i % 4],
        "flag": [True, False, None][i % 3],
        "nums": [[1, 2, 3], [], None, [-(2**31), 2**31 - 1]][i % 4],
        "doc": [{"a": 1, "b": [1, 2]}, {"nested": {"x": None}}, None, {"s": "ü"}][i % 4],
        "uid": uuid.UUID(int=(key * 7919) % (2**128)),
    }
    return {c.name: values[c.name] for c in cols}


def types(seed: int, scale: str, supported: frozenset[str] = frozenset()) -> Scenario:
    """Hard values: decimal(38,10), NaN/±inf, µs timestamps (tz and naive), pre-1970 dates,
    unicode and emoji, NULL vs '', binary, booleans, arrays, JSON, uuid — each column only where
    the engine has the type (``supported``; empty means all)."""
    cols = tuple(c for c in TYPE_COLUMNS if not supported or c.type in supported)
    spec = TableSpec("typed", cols)
    n = size(scale, "type_rows")
    steps: list[Any] = [Insert("typed", _type_row(k, k, cols)) for k in range(1, n + 1)]
    for k in range(1, n + 1, 2):
        new = _type_row(k, k + 3, cols)
        steps.append(Update("typed", (k,), {c: v for c, v in new.items() if c != "id"}))
    steps.extend(Delete("typed", (k,)) for k in range(1, n + 1, 4))
    return Scenario("types", (spec,), steps, description="type-aware round trip of hard values")


def bulk(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """One large multi-row insert, a large multi-row update and delete, each one commit."""
    maker = RowMaker(seed)
    n = size(scale, "bulk")
    rows = tuple(maker.item(k) for k in range(1, n + 1))
    upd = Txn(tuple(Update("items", (k,), {"qty": -k}) for k in range(1, n + 1, 3)))
    dele = Txn(tuple(Delete("items", (k,)) for k in range(2, n + 1, 5)))
    return Scenario("bulk", (ITEMS,), [InsertMany("items", rows), upd, dele],
                    description=f"{n} rows in one statement, then bulk update and delete")


def truncate(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """Rows, a truncate, then rows again (re-using some keys), and changes after it."""
    maker = RowMaker(seed)
    n = size(scale, "rows")
    steps: list[Any] = [InsertMany("items", tuple(maker.item(k) for k in range(1, n + 1)))]
    steps.extend(Update("items", (k,), maker.item_change()) for k in (1, 2, 3))
    steps.append(Truncate("items"))
    steps.append(InsertMany("items", tuple(maker.item(k) for k in range(n // 2, n // 2 + n))))
    steps.append(Update("items", (n // 2 + 1,), maker.item_change()))
    steps.append(Delete("items", (n // 2,)))
    return Scenario("truncate", (ITEMS,), steps, description="truncate between two batches of writes")


SCENARIOS = {"crud": crud, "txn": txn, "types": types, "bulk": bulk, "truncate": truncate}
