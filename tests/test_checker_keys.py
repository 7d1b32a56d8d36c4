"""Checker on key changes, composite keys and keyless tables: correct histories pass, and each
mutant is named as exactly its anomaly (synthetic histories, no engine)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from harness.capabilities import Capabilities
from harness.checker import check, encode_history
from harness.events import ChangeEvent
from harness.ledger import Ledger
from harness.verdict import Verdict

UPDATE = Capabilities(before_image="full", updates="update", key_updates="update")
SPLIT = replace(UPDATE, key_updates="delete+insert")
Change = tuple[str, str, tuple, Any, Any, Any]  # table, op, key, before, after, old_key


class Hist:
    """A ledger built commit by commit, and the events a correct approach gives for it."""

    def __init__(self) -> None:
        self.ledger = Ledger()
        self.commits: list[list[Change]] = []
        self.state: dict[str, dict[tuple, dict]] = {}

    def commit(self, *changes: Change) -> None:
        txid = self.ledger.begin()
        for table, op, key, before, after, old in changes:
            self.ledger.stage(txid, table, op, key, before, after, old)
            rows = self.state.setdefault(table, {})
            rows.pop(old if old is not None else key, None)
            if after is not None:
                rows[key] = after
        t = 1_700_000_000_000_000_000 + len(self.commits) * 1_000_000
        self.ledger.commit(txid, t, t + 100)
        self.commits.append(list(changes))

    def events(self, key_updates: str = "update") -> list[ChangeEvent]:
        """Key changes as one update with the old key, or as delete(old key) + insert(new key)."""
        out: list[ChangeEvent] = []
        for n, changes in enumerate(self.commits, 1):
            cap = 1_700_000_000_000_000_000 + n * 1_000_000 + 5_000
            shaped: list[tuple] = []
            for table, op, key, before, after, old in changes:
                if op == "update" and old is not None and key_updates == "delete+insert":
                    shaped += [(table, "delete", old, before, None, None), (table, "insert", key, None, after, None)]
                else:
                    shaped.append((table, op, key, before, after, old))
            out += [ChangeEvent(t, op, k, b, a, (n, i), n, captured_at=cap, old_key=o)
                    for i, (t, op, k, b, a, o) in enumerate(shaped)]
        return out

    def verdict(self, events: list[ChangeEvent], caps: Capabilities) -> tuple[Verdict, Verdict]:
        """The verdict against the ledger's own final state and against the engine's."""
        enc = encode_history(self.ledger, events)
        return check(enc, caps), check(enc, caps, final_state=self.state)


def row(k: int, v: str) -> dict:
    return {"id": k, "v": v}


def pk_history() -> Hist:
    """Key 1 updated, moved to 2, updated and deleted there; key 1 taken again; a move and the
    vacated key refilled in one commit."""
    h = Hist()
    h.commit(("t", "insert", (1,), None, row(1, "a"), None), ("t", "insert", (3,), None, row(3, "c"), None))
    h.commit(("t", "update", (1,), row(1, "a"), row(1, "b"), None))
    h.commit(("t", "update", (2,), row(1, "b"), row(2, "b"), (1,)))
    h.commit(("t", "update", (2,), row(2, "b"), row(2, "x"), None))
    h.commit(("t", "insert", (1,), None, row(1, "new"), None))
    h.commit(("t", "update", (4,), row(3, "c"), row(4, "c"), (3,)), ("t", "insert", (3,), None, row(3, "z"), None))
    h.commit(("t", "delete", (2,), row(2, "x"), None, None))
    return h


def kinds(v: Verdict) -> set[str]:
    return set(v.anomalies)


@pytest.mark.parametrize("key_updates", ["update", "delete+insert"])
def test_key_change_passes_in_the_representation_claimed(key_updates: str) -> None:
    h = pk_history()
    caps = UPDATE if key_updates == "update" else SPLIT
    for v in h.verdict(h.events(key_updates), caps):
        assert v.passed, (v.summary(), v.examples)


def test_updates_delete_insert_implies_key_changes_split() -> None:
    caps = replace(UPDATE, updates="delete+insert")
    assert caps.key_updates == "delete+insert" and caps.splits_updates


def test_key_change_as_delete_insert_against_an_update_claim_is_op_mismatch() -> None:
    h = pk_history()
    for v in h.verdict(h.events("delete+insert"), UPDATE):
        assert kinds(v) == {"op-mismatch"}, (v.summary(), v.examples)
        assert v.anomalies["op-mismatch"] == 2


def test_key_change_as_one_update_against_a_delete_insert_claim_is_op_mismatch() -> None:
    h = pk_history()
    for v in h.verdict(h.events("update"), SPLIT):
        assert kinds(v) == {"op-mismatch"}, (v.summary(), v.examples)
        assert v.anomalies["op-mismatch"] == 2  # and neither half also lost


def test_update_without_its_old_key_is_op_mismatch() -> None:
    h = pk_history()
    events = [replace(e, old_key=None) if e.old_key == (1,) else e for e in h.events()]
    for v in h.verdict(events, UPDATE):
        assert kinds(v) == {"op-mismatch"}, (v.summary(), v.examples)
        assert "key change" in v.examples["op-mismatch"][0]["why"]


def test_order_follows_the_key_across_its_change() -> None:
    """The update of key 1 delivered after key 1 moved to 2: only the old key's chain shows it."""
    h = pk_history()
    events = h.events()
    upd = next(i for i, e in enumerate(events) if e.op == "update" and e.key == (1,))
    move = next(i for i, e in enumerate(events) if e.old_key == (1,))
    a, b = events[upd], events[move]
    events[upd] = replace(b, position=a.position, txid=a.txid)
    events[move] = replace(a, position=b.position, txid=b.txid)
    for v in h.verdict(events, UPDATE):
        assert kinds(v) == {"reordered"}, (v.summary(), v.examples)


@pytest.mark.parametrize("key_updates", ["update", "delete+insert"])
def test_a_lost_key_change_is_lost(key_updates: str) -> None:
    h = pk_history()
    caps = UPDATE if key_updates == "update" else SPLIT
    events = [e for e in h.events(key_updates) if not (e.old_key == (1,) or (e.op == "delete" and e.key == (1,)))]
    for v in h.verdict(events, caps):
        assert kinds(v) == {"lost"}, (v.summary(), v.examples)


def test_replay_ends_the_old_key() -> None:
    """A reader that applies a key change as an upsert of the new key keeps the old row: the
    key change without its old key is named, and the old key's leftover row is not counted twice."""
    h = pk_history()
    events = [replace(e, old_key=None) if e.old_key is not None else e for e in h.events()]
    for v in h.verdict(events, UPDATE):
        assert kinds(v) == {"op-mismatch"}, (v.summary(), v.examples)
        assert v.anomalies["op-mismatch"] == 2


# -- composite keys ----------------------------------------------------------------------------

def part(region: str, seq: int, qty: int) -> dict:
    return {"seq": seq, "region": region, "qty": qty}


def composite_history() -> Hist:
    h = Hist()
    h.commit(*(("p", "insert", (r, s), None, part(r, s, 0), None) for r in ("eu", "us") for s in (1, 2)))
    h.commit(("p", "update", ("eu", 1), part("eu", 1, 0), part("eu", 1, 5), None))
    h.commit(("p", "update", ("sa", 1), part("eu", 1, 5), part("sa", 1, 5), ("eu", 1)))  # one key part
    h.commit(("p", "update", ("us", 9), part("us", 2, 0), part("us", 9, 0), ("us", 2)))  # the other part
    h.commit(("p", "delete", ("sa", 1), part("sa", 1, 5), None, None))
    return h


@pytest.mark.parametrize("key_updates", ["update", "delete+insert"])
def test_composite_key_changes_pass(key_updates: str) -> None:
    h = composite_history()
    caps = UPDATE if key_updates == "update" else SPLIT
    for v in h.verdict(h.events(key_updates), caps):
        assert v.passed, (v.summary(), v.examples)


def test_composite_key_in_column_order_is_lost_and_phantom() -> None:
    """A reader that orders key parts as the columns (seq, region), not as the key: every event
    is under a key that was never committed (pitfall 25)."""
    h = composite_history()

    def swap(k: tuple | None) -> tuple | None:
        return None if k is None else (k[1], k[0])
    events = [replace(e, key=swap(e.key), old_key=swap(e.old_key)) for e in h.events()]
    for v in h.verdict(events, UPDATE):
        assert kinds(v) == {"lost", "phantom"}, (v.summary(), v.examples)


def test_composite_old_key_with_a_wrong_part_is_op_mismatch() -> None:
    h = composite_history()
    events = [replace(e, old_key=("eu", 2)) if e.old_key == ("eu", 1) else e for e in h.events()]
    for v in h.verdict(events, UPDATE):
        assert kinds(v) == {"op-mismatch"}, (v.summary(), v.examples)


# -- keyless tables: the identity is the whole row ---------------------------------------------

def whole(r: dict) -> tuple:
    return (r["v"], r["n"])


def keyless_history() -> Hist:
    """Rows identified by all their columns; an update changes the identity; two equal rows."""
    h = Hist()
    a, b, c = {"v": "a", "n": 1}, {"v": "b", "n": 2}, {"v": "c", "n": 3}
    h.commit(*(("k", "insert", whole(r), None, r, None) for r in (a, b, c)))
    b2 = {"v": "b", "n": 20}
    h.commit(("k", "update", whole(b2), b, b2, whole(b)))
    h.commit(("k", "delete", whole(a), a, None, None))
    return h


@pytest.mark.parametrize("key_updates", ["update", "delete+insert"])
def test_keyless_changes_pass_matched_by_whole_row(key_updates: str) -> None:
    h = keyless_history()
    caps = UPDATE if key_updates == "update" else SPLIT
    for v in h.verdict(h.events(key_updates), caps):
        assert v.passed, (v.summary(), v.examples)


@pytest.mark.parametrize(("mutant", "want"), [("drop-delete", "lost"), ("repeat-insert", "duplicate"),
                                              ("corrupt-after", "phantom")])
def test_keyless_mutants_are_named(mutant: str, want: str) -> None:
    """Without a key, a changed value is a different row: a corrupted after image is an insert
    of a row never committed (phantom) and the committed one is missing (lost)."""
    h = keyless_history()
    events = h.events("delete+insert")
    if mutant == "drop-delete":
        events = [e for e in events if not (e.op == "delete" and e.key == ("a", 1))]
        expected = {want}
    elif mutant == "repeat-insert":
        first = events[0]
        events = [*events, replace(first, position=(99, 0), txid=99)]
        expected = {want}
    else:
        i = next(i for i, e in enumerate(events) if e.op == "insert" and e.key == ("c", 3))
        bad = {"v": "c", "n": 4}
        events[i] = replace(events[i], key=whole(bad), after=bad)
        expected = {"phantom", "lost"}
    for v in h.verdict(events, SPLIT):
        assert kinds(v) == expected, (v.summary(), v.examples)


def test_keyless_equal_rows_cannot_be_told_apart() -> None:
    """Two equal rows share one identity: occurrences pair n-th with n-th, so losing either one
    is one ``lost``, and which of the two was lost cannot be said."""
    h = Hist()
    r = {"v": "same", "n": 1}
    h.commit(("k", "insert", whole(r), None, r, None))
    h.commit(("k", "insert", whole(r), None, r, None))
    events = h.events()
    for drop in (0, 1):
        v = check(encode_history(h.ledger, events[:drop] + events[drop + 1:]), SPLIT)
        assert kinds(v) == {"lost"} and v.anomalies["lost"] == 1, (v.summary(), v.examples)
