"""Table specs shared by scenarios, and a deterministic row generator."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from harness.steps import Column, TableSpec

UTC = dt.UTC
SCALE10 = Decimal("1e-10")

ITEMS = TableSpec(
    "items",
    (
        Column("id", "bigint", nullable=False),
        Column("name", "text"),
        Column("qty", "int"),
        Column("price", "decimal"),
        Column("updated", "timestamptz"),
    ),
)
ORDERS = TableSpec(
    "orders",
    (
        Column("id", "bigint", nullable=False),
        # NOT NULL: under REPLICA IDENTITY DEFAULT, Debezium fills a delete's before image with
        # the type's default (0) for such a column
        Column("item_id", "bigint", nullable=False),
        Column("amount", "decimal"),
        Column("note", "text"),
    ),
)


class RowMaker:
    """Seeded values: every update gets a fresh value, so no update is a no-op."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.counter = 0
        self.base = dt.datetime(2024, 1, 1, tzinfo=UTC)

    def tick(self) -> int:
        self.counter += 1
        return self.counter

    def item(self, key: int) -> dict[str, Any]:
        n = self.tick()
        return {
            "id": key,
            "name": f"item-{key}-{n}",
            "qty": self.rng.randint(0, 1000),
            "price": Decimal(self.rng.randint(0, 10**8)) / Decimal(100),
            "updated": self.base + dt.timedelta(microseconds=self.rng.randint(0, 10**12)),
        }

    def item_change(self) -> dict[str, Any]:
        n = self.tick()
        choice = self.rng.randrange(3)
        if choice == 0:
            return {"qty": 10_000 + n}
        if choice == 1:
            return {"name": f"renamed-{n}", "price": (Decimal(n) / Decimal(7)).quantize(SCALE10)}
        return {"updated": self.base + dt.timedelta(seconds=n, microseconds=n), "qty": -n}

    def order(self, key: int, item_id: int) -> dict[str, Any]:
        n = self.tick()
        return {"id": key, "item_id": item_id, "amount": Decimal(n) / Decimal(8), "note": f"order {n}"}
