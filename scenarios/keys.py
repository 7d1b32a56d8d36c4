"""Key scenarios: updates that change the primary key, and composite keys (pitfalls 20, 25).

Every family runs them: a key change is one committed update from the old key to the new one
(``LedgerChange.old_key``); an approach delivers it as one update carrying both keys or as
delete (old key) + insert (new key), as its ``key_updates`` capability claims.
"""

from __future__ import annotations

from typing import Any

from harness.steps import Column, Delete, Insert, InsertMany, Scenario, TableSpec, Txn, Update
from scenarios.sizes import size
from scenarios.tables import ITEMS, RowMaker

#: a composite key: (region, seq), in that key-column order, which is not the column order
PARTS = TableSpec(
    "parts",
    (
        Column("seq", "int", nullable=False),
        Column("name", "text"),
        Column("region", "text", nullable=False),
        Column("qty", "int"),
    ),
    key=("region", "seq"),
)
_REGIONS = ("eu", "us", "ap")


def pk_update(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """Updates that change the key: alone, with other columns, twice in one transaction, back
    to the old key, onto a key vacated earlier, followed by an update and a delete under the
    new key, and inside a rolled-back transaction (which must leave no trace)."""
    maker = RowMaker(seed)
    n = max(size(scale, "rows"), 8)
    steps: list[Any] = [InsertMany("items", tuple(maker.item(k) for k in range(1, n + 1)))]
    fresh = 1_000
    live = list(range(1, n + 1))

    def move(old: int, extra: dict[str, Any] | None = None) -> Update:
        nonlocal fresh
        fresh += 1
        live[live.index(old)] = fresh
        return Update("items", (old,), {"id": fresh, **(extra or {})})

    steps.append(move(1))                                                 # key only
    steps.append(move(2, maker.item_change()))                            # key and other columns
    steps.append(Update("items", (fresh,), maker.item_change()))          # then updated under the new key
    steps.append(Delete("items", (fresh,)))                               # and deleted under it
    live.remove(fresh)
    steps.append(Insert("items", maker.item(2)))                          # the vacated key reused
    live.append(2)
    steps.append(Txn((move(3), move(fresh))))                             # moved twice in one commit
    moved = fresh
    steps.append(Update("items", (moved,), {"id": 3}))                    # back to its first key
    live[live.index(moved)] = 3
    steps.append(Txn((move(4), Update("items", (5,), maker.item_change()),
                      Insert("items", maker.item(4)))))                   # vacated and refilled in one commit
    live.append(4)
    rolled = 7  # untouched so far
    steps.append(Txn((Update("items", (rolled,), {"id": 9_999}), Update("items", (6,), maker.item_change())),
                     commit=False))                                       # rolled back: no trace
    for k in [k for k in live if k != rolled][::4][:size(scale, "txns") // 2]:  # a few more, each alone
        steps.append(move(k, maker.item_change()))
    return Scenario("pk-update", (ITEMS,), steps,
                    description="updates that change the primary key (pitfall 20)")


def _part(maker: RowMaker, region: str, seq: int) -> dict[str, Any]:
    n = maker.tick()
    return {"seq": seq, "name": f"part-{region}-{seq}-{n}", "region": region, "qty": maker.rng.randint(0, 500)}


def composite_key(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """A two-column key in an order other than the columns': rows sharing one key part, updates
    of other columns, changes of one key part (then the other, then both), deletes."""
    maker = RowMaker(seed)
    n = max(size(scale, "rows") // len(_REGIONS), 3)
    keys = [(r, s) for s in range(1, n + 1) for r in _REGIONS]
    steps: list[Any] = [InsertMany("parts", tuple(_part(maker, r, s) for r, s in keys))]
    steps.append(Txn(tuple(Update("parts", k, {"qty": 1_000 + i}) for i, k in enumerate(keys[::4]))))
    steps.append(Update("parts", ("eu", 1), {"region": "sa"}))                 # first key part changes
    steps.append(Update("parts", ("us", 1), {"seq": 100}))                     # second key part changes
    steps.append(Update("parts", ("ap", 1), {"region": "af", "seq": 101, "qty": 7}))  # both, and a value
    steps.append(Txn((Update("parts", ("sa", 1), {"seq": 102}),                # a moved row moves again
                      Insert("parts", _part(maker, "eu", 1)),                  # its first key refilled
                      Update("parts", ("us", 2), {"name": "renamed"}))))
    steps.append(Txn((Update("parts", ("eu", 2), {"region": "xx"}),), commit=False))
    steps.append(Update("parts", ("us", 100), {"region": "us", "seq": 1}))     # back to its first key
    steps.append(Delete("parts", ("af", 101)))
    steps.append(Delete("parts", ("eu", 3)))
    return Scenario("composite-key", (PARTS,), steps,
                    description="two-column key: changes of one key part, of both (pitfall 25)")


SCENARIOS = {"pk-update": pk_update, "composite-key": composite_key}
