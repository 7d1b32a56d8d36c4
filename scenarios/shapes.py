"""Table-shape scenarios: generated columns, tables without a key, partitioned tables (pitfalls 21, 22, 24).

``LIGHT_SCENARIOS`` maps an id to ``(factory, families)``; on the JVM engines (Debezium, Spark),
which run at smoke scale in one group and set the suite's time, they run in ``all`` breadth only
(``harness.breadth``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.steps import Column, Delete, Insert, InsertMany, Scenario, TableSpec, Txn, Update
from scenarios.sizes import size
from scenarios.tables import ITEMS, RowMaker

LINES = TableSpec(
    "lines",
    (
        Column("id", "bigint", nullable=False),
        Column("qty", "int"),
        Column("price", "int"),
        Column("total", "bigint", generated="qty * price"),
        Column("note", "text"),
    ),
)


def generated_columns(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """A STORED generated column (``total = qty * price``): inserts, updates of its operands
    (it changes), of another column (it does not), a NULL operand (it is NULL), deletes. Every
    image must carry it with the engine's value (pitfall 24: pgoutput before PostgreSQL 18
    publishes no generated column)."""
    maker = RowMaker(seed)
    n = max(size(scale, "rows"), 6)
    steps: list[Any] = [InsertMany("lines", tuple(
        {"id": k, "qty": maker.rng.randint(1, 50), "price": maker.rng.randint(1, 99), "note": f"line {k}"}
        for k in range(1, n + 1)))]
    steps.append(Txn(tuple(Update("lines", (k,), {"qty": 100 + k}) for k in range(1, n + 1, 2))))
    steps.extend(Update("lines", (k,), {"note": f"noted {k}"}) for k in range(2, n + 1, 3))
    steps.append(Txn((Update("lines", (1,), {"price": None}), Update("lines", (2,), {"qty": 7, "price": 6}))))
    steps.extend(Delete("lines", (k,)) for k in range(3, n + 1, 4))
    return Scenario("generated-columns", (LINES,), steps,
                    description="a stored generated column: qty * price (pitfall 24)")


NOKEY = TableSpec(
    "nokey",
    (
        Column("code", "int", nullable=False),
        Column("name", "text", nullable=False),
        Column("qty", "int", nullable=False),
    ),
    key=(),
    unique=("code",),
)


def no_key(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """A table without a primary key (its identity is the whole row, or the unique index under
    REPLICA IDENTITY USING INDEX): inserts, updates (each one changes the whole-row identity),
    a change of the unique column, deletes, a multi-change and a rolled-back transaction
    (pitfall 21: DEFAULT/NOTHING make PostgreSQL refuse UPDATE/DELETE on a published table)."""
    maker = RowMaker(seed)
    n = max(size(scale, "rows"), 8)
    steps: list[Any] = [InsertMany("nokey", tuple({"code": k, "name": f"n{k}", "qty": maker.rng.randint(0, 99)}
                                                  for k in range(1, n + 1)))]
    steps.extend(Update("nokey", (k,), {"qty": 1_000 + k}) for k in range(1, n + 1, 6))
    steps.append(Txn(tuple(Update("nokey", (k,), {"qty": 2_000 + k}) for k in range(4, n + 1, 6))))
    steps.append(Update("nokey", (2,), {"code": 500, "name": "moved"}))
    steps.append(Txn((Insert("nokey", {"code": 600, "name": "new", "qty": 1}), Update("nokey", (600,), {"qty": 2}),
                      Delete("nokey", (3,)))))
    steps.append(Txn((Update("nokey", (4,), {"qty": -1}), Delete("nokey", (5,))), commit=False))
    steps.extend(Delete("nokey", (k,)) for k in range(6, n + 1, 4))
    return Scenario("no-key", (NOKEY,), steps, requires=("keyless",),
                    description="a table without a primary key, matched by whole row (pitfall 21)")


#: items with a region: range-partitioned on id where the engine partitions by range (PostgreSQL,
#: MariaDB: p0 below 100, p1 [100, 200), p2 from 200 on), by region where it partitions by value
#: (Delta, Iceberg: one partition per region)
PARTED = TableSpec(ITEMS.name, (*ITEMS.columns, Column("region", "text", nullable=False)), ITEMS.key,
                   partitions=(100, 200), partition_by=("region",))
REGIONS = ("eu", "us", "apac")


def partitioned(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """A partitioned table written through its root: rows in every partition, updates,
    deletes, a multi-partition transaction, a key change inside one range partition and one
    that moves the row to another (PostgreSQL runs that as a delete + insert), region changes
    that move a row to another value partition (Delta and Iceberg rewrite a file in each).
    Events must name the table written to (pitfall 22) and carry every column, the partition
    column included."""
    maker = RowMaker(seed)
    n = min(max(size(scale, "rows") // 3, 3), 90)  # each range partition's keys stay inside it
    keys = [base + i for base in (1, 100, 200) for i in range(n)]
    steps: list[Any] = [Insert("items", maker.item(k) | {"region": REGIONS[k % 3]}) for k in keys]
    steps.extend(Update("items", (k,), maker.item_change()) for k in keys[::2])
    steps.append(Txn((Update("items", (1,), maker.item_change()), Update("items", (100,), maker.item_change()),
                      Delete("items", (200,)))))
    steps.append(Update("items", (2,), {"id": 95}))      # a key change inside p0
    steps.append(Update("items", (101,), {"id": 295}))   # a key change from p1 to p2
    steps.append(Update("items", (1,), {"region": "moved"}))  # to a new value partition
    steps.append(Txn((Update("items", (100,), {"region": REGIONS[0]}), Update("items", (201,), maker.item_change()))))
    steps.extend(Delete("items", (k,)) for k in keys[3::4] if k not in (1, 2, 100, 101, 200))
    return Scenario("partitioned", (PARTED,), steps,
                    description="a partitioned table written through its root (pitfall 22)")


LIGHT_SCENARIOS: dict[str, tuple[Callable[..., Scenario], frozenset[str] | None]] = {
    "partitioned": (partitioned, None),
    "generated-columns": (generated_columns, None),
    "no-key": (no_key, None),
}
