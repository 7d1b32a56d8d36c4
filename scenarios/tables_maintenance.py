"""Table-format maintenance scenarios: a compaction must not show up as changes (pitfall 18)."""

from __future__ import annotations

from typing import Any

from harness.steps import Compact, Delete, Insert, Scenario, Txn, Update
from scenarios.tables import ITEMS, RowMaker


def compaction(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """Small commits (one file each), a compaction of the table, then changes to compacted rows."""
    maker = RowMaker(seed)
    steps: list[Any] = [Insert("items", maker.item(k)) for k in range(1, 9)]
    steps.append(Txn((Update("items", (2,), maker.item_change()), Delete("items", (3,)))))
    steps.append(Compact("items"))
    steps += [Update("items", (1,), maker.item_change()), Delete("items", (4,)), Insert("items", maker.item(9))]
    steps.append(Compact("items"))
    steps.append(Update("items", (5,), maker.item_change()))
    return Scenario("compaction", (ITEMS,), steps, description="a compaction between small commits: no change")


SCENARIOS = {"compaction": compaction}
