"""The checker names exactly the anomaly a history has, with its count and an example."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from harness.capabilities import Capabilities
from harness.capture import DeliveryRecord, Restart
from harness.checker import check, encode_history
from harness.events import ChangeEvent
from harness.verdict import ANOMALIES, MAX_EXAMPLES
from tests.histories import FULL, History, HistoryBuilder, dele, ins, random_history, trunc, upd

TS = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def small(caps: Capabilities = FULL) -> History:
    """Six commits on ``t``: a two-insert txn, updates, a rollback, an update+delete txn, a late insert."""
    b = HistoryBuilder(caps)
    b.commit(ins("t", id=1, v="a", n=1, amount=Decimal("1.10"), ts=TS),
             ins("t", id=2, v="b", n=2, amount=Decimal("2.00"), ts=TS))
    b.commit(upd("t", 1, v="a2"))
    b.rollback(ins("t", id=3, v="r", n=3, amount=None, ts=None))
    b.commit(upd("t", 1, n=10))
    b.commit(upd("t", 2, v="b2"), dele("t", 1))
    b.commit(ins("t", id=4, v="d", n=4, amount=Decimal("-0.5"), ts=TS))
    return b.history()


def find(events: list[ChangeEvent], op: str, key: int, nth: int = 0) -> int:
    """Index of the ``nth`` event with ``op`` on key ``(key,)``."""
    return [i for i, e in enumerate(events) if e.op == op and e.key == (key,)][nth]


def test_every_anomaly_has_a_test() -> None:
    assert set(ANOMALIES) == {
        "lost", "duplicate", "phantom", "reordered", "torn-txn", "before-mismatch", "after-mismatch",
        "missing-before", "op-mismatch", "schema", "divergence"}


def test_correct_history_passes_with_lag() -> None:
    h = small()
    v = h.verdict()
    assert v.status == "pass" and v.anomalies == {} and v.passed
    assert v.measurements["matched"] == v.measurements["committed"] == v.measurements["events"] == 7
    assert v.measurements["lag_ms"]["p50"] == pytest.approx(2.0)
    assert h.verdict(final_state=h.final_state).passed


def test_lost() -> None:
    h = small()
    ev = list(h.events)
    del ev[find(ev, "update", 1)]
    v = h.verdict(ev)
    assert v.anomalies == {"lost": 1}
    (ex,) = v.examples["lost"]
    assert ex["committed"]["op"] == "update" and ex["committed"]["after"]["v"] == "a2"


def test_duplicate_at_another_position() -> None:
    h = small()
    i = find(h.events, "update", 2)
    ev = [*h.events, replace(h.events[i], position=(99, 0))]
    v = h.verdict(ev)
    assert v.anomalies == {"duplicate": 1}
    assert v.examples["duplicate"][0]["event"]["position"] == [99, 0]


def test_phantom_invented() -> None:
    h = small()
    ev = [*h.events, ChangeEvent("t", "insert", (7,), None, {"id": 7, "v": "x"}, (99, 0), 99)]
    v = h.verdict(ev)
    assert v.anomalies == {"phantom": 1}
    assert v.examples["phantom"][0]["why"] == "never committed"


def test_phantom_from_rolled_back_transaction() -> None:
    h = small()
    rolled = next(c for c in h.ledger.changes if c.rolled_back)
    ev = [*h.events, ChangeEvent("t", "insert", rolled.key, None, dict(rolled.after), (99, 0), 99)]
    v = h.verdict(ev)
    assert v.anomalies == {"phantom": 1}
    assert v.examples["phantom"][0]["why"] == "matches a rolled-back change"


def test_reordered() -> None:
    h = small()
    ev = list(h.events)
    a, b = find(ev, "update", 1, 0), find(ev, "update", 1, 1)
    ev[a], ev[b] = ev[b], ev[a]
    v = h.verdict(ev)
    assert v.anomalies == {"reordered": 1}
    assert v.examples["reordered"][0]["event"]["after"]["n"] == 10


def test_torn_txn_split_across_commit_positions() -> None:
    h = small()
    ev = list(h.events)
    i = find(ev, "insert", 2)
    ev[i] = replace(ev[i], txid="other")
    v = h.verdict(ev)
    assert v.anomalies == {"torn-txn": 1}
    assert h.verdict(ev, caps=replace(FULL, transactions=False)).passed


def test_torn_txn_interleaved() -> None:
    h = small()
    ev = list(h.events)
    late = ev.pop(find(ev, "insert", 4))
    ev.insert(find(ev, "insert", 2), late)  # between the two inserts of the first commit
    v = h.verdict(ev)
    assert v.anomalies == {"torn-txn": 1}
    assert h.verdict(ev, caps=replace(FULL, transactions=False)).passed


def test_before_mismatch() -> None:
    h = small()
    ev = list(h.events)
    i = find(ev, "delete", 1)
    ev[i] = replace(ev[i], before={**ev[i].before, "amount": Decimal("1.11")})
    v = h.verdict(ev)
    assert v.anomalies == {"before-mismatch": 1}
    assert v.examples["before-mismatch"][0]["difference"] == {"amount": {"expected": "d:1.1", "got": "d:1.11"}}


def test_after_mismatch() -> None:
    h = small()
    ev = list(h.events)
    i = find(ev, "update", 2)
    ev[i] = replace(ev[i], after={**ev[i].after, "ts": TS + dt.timedelta(microseconds=1)})
    v = h.verdict(ev)
    assert v.anomalies == {"after-mismatch": 1}
    assert list(v.examples["after-mismatch"][0]["difference"]) == ["ts"]


def test_after_mismatch_is_type_aware_not_textual() -> None:
    h = small()
    ev = list(h.events)
    i = find(ev, "insert", 1)
    same = {**ev[i].after, "amount": Decimal("1.1000"), "ts": TS.astimezone(dt.timezone(dt.timedelta(hours=9)))}
    ev[i] = replace(ev[i], after=same)
    assert h.verdict(ev).passed


def test_missing_before() -> None:
    h = small()
    ev = list(h.events)
    i = find(ev, "update", 1, 1)
    ev[i] = replace(ev[i], before=None)
    v = h.verdict(ev)
    assert v.anomalies == {"missing-before": 1}
    assert v.examples["missing-before"][0]["captured"]["before"] is None


@pytest.mark.parametrize("before_image", ["key", "none"])
def test_missing_before_is_fine_when_not_claimed(before_image: str) -> None:
    h = small(replace(FULL, before_image=before_image))
    ev = [replace(e, before=None) if e.op in ("update", "delete") else e for e in h.events]
    assert h.verdict(ev).passed


def test_op_mismatch_update_captured_as_delete_insert() -> None:
    h = small()
    ev = list(h.events)
    i = find(ev, "update", 2)
    e = ev[i]
    ev[i:i + 1] = [replace(e, op="delete", after=None), replace(e, op="insert", before=None, position=(*e.position, 1))]
    v = h.verdict(ev)
    assert v.anomalies == {"op-mismatch": 1}
    assert len(v.examples["op-mismatch"][0]["captured"]) == 2


def test_op_mismatch_wrong_op() -> None:
    h = small()
    ev = list(h.events)
    i = find(ev, "update", 1, 0)
    ev[i] = replace(ev[i], op="insert")
    v = h.verdict(ev)
    assert v.anomalies == {"op-mismatch": 1}
    assert v.examples["op-mismatch"][0]["why"] == "committed update, captured insert"


def test_schema_missing_column() -> None:
    h = small()
    ev = list(h.events)
    i = find(ev, "insert", 4)
    ev[i] = replace(ev[i], after={k: v for k, v in ev[i].after.items() if k != "amount"})
    v = h.verdict(ev)
    assert v.anomalies == {"schema": 1}
    assert v.examples["schema"][0]["difference"] == {"amount": {"expected": "d:-0.5", "got": "<missing column>"}}


def test_schema_wrong_type() -> None:
    h = small()
    ev = list(h.events)
    i = find(ev, "update", 1, 1)
    ev[i] = replace(ev[i], after={**ev[i].after, "n": "10"})
    assert h.verdict(ev).anomalies == {"schema": 1}


def test_divergence_against_engine_final_state() -> None:
    h = small()
    state = copy.deepcopy(h.final_state)
    state["t"][(2,)]["v"] = "engine-only"
    state["t"][(9,)] = {"id": 9, "v": "z", "n": 9, "amount": None, "ts": None}
    del state["t"][(4,)]
    v = h.verdict(final_state=state)
    assert v.anomalies == {"divergence": 3}
    assert {ex["table"] for ex in v.examples["divergence"]} == {"t"}


def test_divergence_from_a_truncate_moved_after_later_inserts() -> None:
    b = HistoryBuilder()
    b.commit(ins("t", id=1, v="a"), ins("t", id=2, v="b"))
    b.commit(trunc("t"))
    b.commit(ins("t", id=3, v="c"))
    b.commit(ins("t", id=4, v="d"), upd("t", 3, v="c2"))
    h = b.history()
    assert h.verdict().passed and h.verdict(final_state=h.final_state).passed
    ev = list(h.events)
    t = next(i for i, e in enumerate(ev) if e.op == "truncate")
    ev = ev[:t] + ev[t + 1:] + [replace(ev[t], position=(99, 0))]
    v = h.verdict(ev)
    assert v.anomalies == {"divergence": 2}
    assert sorted(ex["expected"]["id"] for ex in v.examples["divergence"]) == [3, 4]


def test_examples_are_capped() -> None:
    h = random_history(3, 300, 40)
    ev = [e for e in h.events if e.op != "update"]
    v = h.verdict(ev)
    assert set(v.anomalies) == {"lost"} and v.anomalies["lost"] > MAX_EXAMPLES
    assert len(v.examples["lost"]) == MAX_EXAMPLES


# -- capability variants ----------------------------------------------------------------------

VARIANTS = [
    Capabilities(before_image=bi, updates=up, transactions=tx, delivery=dl, truncate=True)
    for bi, up, tx, dl in itertools.product(["full", "key", "none"], ["update", "delete+insert"], [True, False],
                                             ["exactly-once", "at-least-once"])
]


def _caps_id(c: Capabilities) -> str:
    return f"{c.before_image}-{c.updates}-{'txn' if c.transactions else 'notxn'}-{c.delivery}"


@pytest.mark.parametrize("caps", VARIANTS, ids=_caps_id)
def test_correct_history_passes_under_each_capability(caps: Capabilities) -> None:
    h = random_history(11, 1500, 120, caps)
    v = h.verdict()
    assert v.passed, v.summary()
    assert v.measurements["matched"] == len(h.events)
    assert h.verdict(final_state=h.final_state).passed
    s = small(caps)
    assert s.verdict().passed and s.verdict(final_state=s.final_state).passed


def test_delete_insert_approach_is_not_blamed_for_split_updates() -> None:
    caps = replace(FULL, updates="delete+insert")
    h = small(caps)
    assert sum(e.op == "update" for e in h.events) == 0
    assert h.verdict().passed
    # but losing the insert half of a split update is a lost change
    ev = list(h.events)
    del ev[find(ev, "insert", 2)]
    assert h.verdict(ev).anomalies == {"lost": 1}


def _restarted(n_before: int, n_after: int, acked: Any) -> DeliveryRecord:
    """A delivery record: ``n_before`` events, a restart after acking ``acked``, ``n_after`` more."""
    return DeliveryRecord(epochs=[0] * n_before + [1] * n_after, restarts=[Restart(n_before, acked, 0.0)])


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_redelivery_after_a_restart_of_unacknowledged_positions(delivery: str) -> None:
    caps = replace(FULL, delivery=delivery)
    h = small(caps)
    # a reader that crashed before acking the last three events re-delivers them at their positions
    ev = [*h.events, *h.events[-3:]]
    v = h.verdict(ev, delivery=_restarted(len(h.events), 3, h.events[-4].position))
    if delivery == "at-least-once":
        assert v.passed, v.summary()
        assert v.measurements["redelivered"] == 3
    else:
        assert v.anomalies == {"duplicate": 3}


def test_redelivery_of_acknowledged_positions_after_a_restart_is_a_duplicate() -> None:
    h = small(replace(FULL, delivery="at-least-once"))
    ev = [*h.events, *h.events[-3:]]
    # the last two were acknowledged before the restart: only the first repeat is excused
    v = h.verdict(ev, delivery=_restarted(len(h.events), 3, h.events[-2].position))
    assert v.anomalies == {"duplicate": 2}, v.summary()
    assert v.measurements["redelivered"] == 1
    # nothing acknowledged at all: every repeat excused
    assert h.verdict(ev, delivery=_restarted(len(h.events), 3, None)).passed


def test_repeat_without_a_restart_is_a_duplicate_even_at_least_once() -> None:
    h = small(replace(FULL, delivery="at-least-once"))
    ev = [*h.events, *h.events[-3:]]
    assert h.verdict(ev).anomalies == {"duplicate": 3}
    # a restart before both deliveries does not excuse a repeat inside one epoch
    v = h.verdict(ev, delivery=_restarted(0, len(ev), None))
    assert v.anomalies == {"duplicate": 3}


def test_at_least_once_still_flags_a_repeat_at_another_position() -> None:
    h = small(replace(FULL, delivery="at-least-once"))
    i = find(h.events, "insert", 4)
    ev = [*h.events, replace(h.events[i], position=(42, 0))]
    assert h.verdict(ev).anomalies == {"duplicate": 1}


def test_transactions_false_needs_no_txid() -> None:
    caps = replace(FULL, transactions=False)
    h = small(caps)
    ev = [replace(e, txid=None) for e in h.events]
    assert h.verdict(ev).passed
    assert h.verdict(ev, caps=FULL).passed  # no txid: commits are still contiguous


# -- truncate and DDL ---------------------------------------------------------------------------

def truncate_history(caps: Capabilities = FULL) -> History:
    b = HistoryBuilder(caps)
    b.commit(ins("t", id=1, v="a"), ins("u", id=1, v="other table"))
    b.commit(ins("t", id=2, v="b"))
    b.commit(trunc("t"))
    b.commit(ins("t", id=1, v="again"))
    b.commit(upd("t", 1, v="again2"), ins("t", id=5, v="e"))
    b.commit(trunc("t"), ins("t", id=6, v="f"))
    return b.history()


def test_truncate_history_passes() -> None:
    h = truncate_history()
    assert [e.op for e in h.events].count("truncate") == 2
    assert h.verdict().passed
    assert h.verdict(final_state=h.final_state).passed
    assert set(h.final_state["t"]) == {(6,)} and set(h.final_state["u"]) == {(1,)}


def test_lost_truncate() -> None:
    h = truncate_history()
    ev = list(h.events)
    del ev[next(i for i, e in enumerate(ev) if e.op == "truncate")]
    v = h.verdict(ev)
    assert v.anomalies.get("lost") == 1
    assert v.examples["lost"][0]["committed"]["op"] == "truncate"
    assert set(v.anomalies) <= {"lost", "divergence"}


def ddl_history(caps: Capabilities = FULL) -> History:
    b = HistoryBuilder(caps)
    b.commit(ins("t", id=1, v="a", n=1), ins("t", id=2, v="b", n=2))
    b.ddl("t", {"kind": "add", "column": "c", "type": "int"})
    b.commit(ins("t", id=3, v="c", n=3, c=30))
    b.commit(upd("t", 1, c=10))
    b.ddl("t", {"kind": "rename", "old": "v", "new": "label"})
    b.commit(ins("t", id=4, label="d", n=4, c=None))
    b.ddl("t", {"kind": "drop", "column": "n"})
    b.commit(upd("t", 3, label="c2"))
    return b.history()


def test_ddl_history_passes() -> None:
    h = ddl_history()
    assert sum(c.op == "ddl" for c in h.ledger.changes) == 3
    assert h.final_state["t"][(2,)] == {"id": 2, "label": "b", "c": None}
    v = h.verdict()
    assert v.passed, v.summary()
    v = h.verdict(final_state=h.final_state)
    assert v.passed, (v.summary(), v.examples)


def test_ddl_not_followed_is_a_schema_anomaly() -> None:
    h = ddl_history()
    ev = list(h.events)
    i = find(ev, "insert", 4)
    old_shape = {"id": 4, "v": "d", "n": 4, "c": None}  # the rename not followed
    ev[i] = replace(ev[i], after=old_shape)
    v = h.verdict(ev)
    assert v.anomalies == {"schema": 1}


def test_divergence_after_ddl_against_final_state() -> None:
    h = ddl_history()
    state = copy.deepcopy(h.final_state)
    state["t"][(2,)]["c"] = 7
    v = h.verdict(final_state=state)
    assert v.anomalies == {"divergence": 1}


def test_encoded_history_can_be_checked_under_many_capabilities() -> None:
    h = small()
    enc = encode_history(h.ledger, h.events)
    assert check(enc, FULL).passed
    assert check(enc, replace(FULL, before_image="none")).passed
    assert "op-mismatch" in check(enc, replace(FULL, updates="delete+insert")).anomalies


def readded_column_history() -> History:
    """``n`` dropped, then re-added under the same name; key 1 written after the re-add."""
    b = HistoryBuilder(FULL)
    b.commit(ins("t", id=1, v="a", n=1), ins("t", id=2, v="b", n=2))
    b.ddl("t", {"kind": "drop", "column": "n"})
    b.ddl("t", {"kind": "add", "column": "n", "type": "int"})
    b.commit(upd("t", 1, n=5))
    return b.history()


def test_dropped_column_readded_under_the_same_name_is_projected_by_commit_order() -> None:
    h = readded_column_history()
    assert h.final_state["t"] == {(1,): {"id": 1, "v": "a", "n": 5}, (2,): {"id": 2, "v": "b", "n": None}}
    assert h.verdict().passed
    v = h.verdict(final_state=h.final_state)
    assert v.passed, (v.summary(), v.examples)
    # a divergence in the re-added column is seen, not projected away with the old column
    state = copy.deepcopy(h.final_state)
    state["t"][(1,)]["n"] = 6
    v = h.verdict(final_state=state)
    assert v.anomalies == {"divergence": 1}
    assert v.examples["divergence"][0]["expected"]["n"] == 6


def test_delete_insert_approach_emitting_an_update_is_op_mismatch_only() -> None:
    caps = replace(FULL, updates="delete+insert")
    h = small(caps)
    ev = list(h.events)
    d = find(ev, "delete", 2)
    assert ev[d + 1].op == "insert" and ev[d + 1].key == (2,)
    ev[d:d + 2] = [replace(ev[d], op="update", after=ev[d + 1].after)]
    v = h.verdict(ev)
    assert v.anomalies == {"op-mismatch": 1}, v.summary()
    assert v.examples["op-mismatch"][0]["captured"]["op"] == "update"


def test_redelivery_of_an_anomalous_event_is_judged_once() -> None:
    """A wrong event (here a corrupted after image) delivered again after a restart is one
    ``after-mismatch`` and one redelivery — not also a phantom; without a restart, a duplicate."""
    h = small(replace(FULL, delivery="at-least-once"))
    i = find(h.events, "insert", 4)
    bad = replace(h.events[i], after={**h.events[i].after, "v": "corrupt"})
    ev = [*h.events[:i], bad, *h.events[i + 1:]]
    again = [*ev, *ev[i:]]
    v = h.verdict(again, delivery=_restarted(len(ev), len(ev) - i, h.events[i - 1].position))
    assert v.anomalies == {"after-mismatch": 1}, v.summary()
    assert v.measurements["redelivered"] == len(ev) - i
    v = h.verdict(again)
    assert v.anomalies == {"after-mismatch": 1, "duplicate": len(ev) - i}, v.summary()


# -- key-only before images: what is given must be right -----------------------------------------

def test_key_claim_names_a_made_up_value_in_a_before_image() -> None:
    """Under ``before_image='key'`` a delete's before image may hold only the key (or NULLs), but
    a value the row never had (Debezium's type defaults under REPLICA IDENTITY DEFAULT) is named."""
    caps = replace(FULL, before_image="key")
    h = small(caps)
    ev = list(h.events)
    i = find(ev, "delete", 1)
    committed = next(c for c in h.ledger.changes if c.op == "delete" and c.key == (1,))
    other = next(col for col in committed.before if col != "id")
    key_only = {"id": 1}
    assert h.verdict([*ev[:i], replace(ev[i], before=key_only), *ev[i + 1:]]).passed
    with_nulls = {**key_only, **{col: None for col in committed.before if col != "id"}}
    assert h.verdict([*ev[:i], replace(ev[i], before=with_nulls), *ev[i + 1:]]).passed
    assert h.verdict([*ev[:i], replace(ev[i], before=dict(committed.before)), *ev[i + 1:]]).passed
    made_up = {**with_nulls, other: 0 if not isinstance(committed.before[other], str) else "0"}
    assert committed.before[other] != made_up[other]
    v = h.verdict([*ev[:i], replace(ev[i], before=made_up), *ev[i + 1:]])
    assert v.anomalies == {"before-mismatch": 1}, v.summary()
