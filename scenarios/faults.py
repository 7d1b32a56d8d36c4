"""Fault scenarios the runner executes against the reader: crash at several points, then resume."""

from __future__ import annotations

from typing import Any

from harness.steps import Fault, Insert, Scenario, Txn, Update
from scenarios.sizes import size
from scenarios.tables import ITEMS, RowMaker

#: Where a reader crash is injected (see harness.runner for what each point does).
CRASH_POINTS = ("begin", "mid-txn", "after-commit-before-ack", "after-ack")


def reader_crash(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """Writes interleaved with reader crashes at begin, mid-transaction, after receipt before
    ack, and after ack; each time a fresh reader resumes from the last acknowledged position."""
    maker = RowMaker(seed)
    n = size(scale, "rows") // 4 or 1
    key = 0
    steps: list[Any] = []
    for point in CRASH_POINTS:
        for _ in range(n):
            key += 1
            steps.append(Insert("items", maker.item(key)))
        body = [Insert("items", maker.item(key + i + 1)) for i in range(4)]
        key += 4
        body.append(Update("items", (key,), maker.item_change()))
        steps.append(Txn(tuple(body)))
        steps.append(Fault("reader-crash", point))
    steps.extend(Update("items", (k,), maker.item_change()) for k in range(1, key + 1, 3))
    return Scenario("reader-crash", (ITEMS,), steps, requires=("resume",),
                    description="crash the reader at " + ", ".join(CRASH_POINTS) + " and resume")


SCENARIOS = {"reader-crash": reader_crash}
