"""Schema-evolution scenarios: add, drop, rename and widen a column mid-stream."""

from __future__ import annotations

from typing import Any

from harness.steps import (
    AddColumn,
    AlterType,
    Column,
    DropColumn,
    Fault,
    Insert,
    RenameColumn,
    Scenario,
    Update,
)
from scenarios.sizes import size
from scenarios.tables import ITEMS, RowMaker


def _before(maker: RowMaker, n: int) -> list[Any]:
    steps: list[Any] = [Insert("items", maker.item(k)) for k in range(1, n + 1)]
    steps.extend(Update("items", (k,), maker.item_change()) for k in range(1, n + 1, 3))
    return steps


def schema_add(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """ADD COLUMN mid-stream; later rows and updates of old rows carry it."""
    maker = RowMaker(seed)
    n = size(scale, "rows") // 2
    steps = _before(maker, n)
    steps.append(AddColumn("items", Column("color", "text")))
    for k in range(n + 1, 2 * n + 1):
        steps.append(Insert("items", {**maker.item(k), "color": f"c{k}"}))
    steps.extend(Update("items", (k,), {"color": f"late-{k}"}) for k in range(1, n + 1, 2))
    return Scenario("schema-add", (ITEMS,), steps, requires=("ddl:add",), description="add a column mid-stream")


def schema_drop(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """DROP COLUMN mid-stream; later events must not carry it."""
    maker = RowMaker(seed)
    n = size(scale, "rows") // 2
    steps = _before(maker, n)
    steps.append(DropColumn("items", "name"))
    for k in range(n + 1, 2 * n + 1):
        row = maker.item(k)
        row.pop("name")
        steps.append(Insert("items", row))
    steps.extend(Update("items", (k,), {"qty": -k}) for k in range(1, n + 1, 2))
    return Scenario("schema-drop", (ITEMS,), steps, requires=("ddl:drop",), description="drop a column mid-stream")


def schema_rename(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """RENAME COLUMN mid-stream; later events carry the new name."""
    maker = RowMaker(seed)
    n = size(scale, "rows") // 2
    steps = _before(maker, n)
    steps.append(RenameColumn("items", "qty", "quantity"))
    for k in range(n + 1, 2 * n + 1):
        row = maker.item(k)
        row["quantity"] = row.pop("qty")
        steps.append(Insert("items", row))
    steps.extend(Update("items", (k,), {"quantity": -k}) for k in range(1, n + 1, 2))
    return Scenario("schema-rename", (ITEMS,), steps, requires=("ddl:rename",),
                    description="rename a column mid-stream")


def schema_type(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """Widen int → bigint mid-stream; later values exceed the old range."""
    maker = RowMaker(seed)
    n = size(scale, "rows") // 2
    steps = _before(maker, n)
    steps.append(AlterType("items", "qty", "bigint"))
    for k in range(n + 1, 2 * n + 1):
        steps.append(Insert("items", {**maker.item(k), "qty": 2**40 + k}))
    steps.extend(Update("items", (k,), {"qty": 2**35 + k}) for k in range(1, n + 1, 2))
    return Scenario("schema-type", (ITEMS,), steps, requires=("ddl:type",),
                    description="widen int to bigint mid-stream")


def schema_offline(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """ADD COLUMN while the reader is stopped (pitfall 6): rows written before and after the DDL
    wait for the reader; when it starts again it must deliver both shapes, each as committed."""
    maker = RowMaker(seed)
    n = size(scale, "rows") // 2
    steps = _before(maker, n)
    steps.append(Fault("reader-stop"))
    steps.extend(Update("items", (k,), maker.item_change()) for k in range(1, n + 1, 4))
    steps.append(AddColumn("items", Column("color", "text")))
    for k in range(n + 1, 2 * n + 1):
        steps.append(Insert("items", {**maker.item(k), "color": f"c{k}"}))
    steps.append(Fault("reader-start"))
    steps.extend(Update("items", (k,), {"color": f"late-{k}"}) for k in range(1, 2 * n + 1, 3))
    return Scenario("schema-offline", (ITEMS,), steps, requires=("ddl:add", "resume"),
                    description="add a column while the reader is stopped, then start it again")


SCENARIOS = {
    "schema-add": schema_add,
    "schema-drop": schema_drop,
    "schema-rename": schema_rename,
    "schema-type": schema_type,
    "schema-offline": schema_offline,
}
