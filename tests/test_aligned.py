"""The checker's aligned fast path: taken only when every event equals its committed change, and
every difference it cannot judge goes to the general path, which names it."""

from __future__ import annotations

import math

import pyarrow as pa

from harness.aligned import aligned
from harness.checker import check, encode_history
from harness.ledger import Ledger
from tests.histories import FULL

JSON = pa.field("v", pa.string(), metadata={b"cdc.logical": b"json"})


def _rows(ids: list[int], values: pa.Array, field: pa.Field | None = None, **extra: pa.Array) -> pa.RecordBatch:
    n = len(ids)
    after = pa.StructArray.from_arrays([pa.array(ids), values],
                                       fields=[pa.field("id", pa.int64()), field or pa.field("v", values.type)])
    cols = {"table": pa.array(["t"] * n), "op": pa.array(["insert"] * n),
            "key": pa.StructArray.from_arrays([pa.array(ids)], names=["id"]), "before": pa.nulls(n), "after": after}
    return pa.RecordBatch.from_pydict({**cols, **extra})


def _history(values: pa.Array, per_txn: int = 3, field: pa.Field | None = None) -> tuple[Ledger, list[pa.RecordBatch]]:
    ledger = Ledger()
    events = []
    for start in range(0, len(values), per_txn):
        ids = list(range(start, min(start + per_txn, len(values))))
        txid = ledger.begin()
        ledger.stage_batch(txid, _rows(ids, values.slice(start, len(ids)), field))
        ledger.commit(txid, txid * 10**9, txid * 10**9 + 1)
        events.append(_rows(ids, values.slice(start, len(ids)), field, txid=pa.array([txid] * len(ids)),
                            position=pa.array([[txid, i] for i in ids]),
                            captured_at=pa.array([txid * 10**9 + 4_000_000] * len(ids))))
    return ledger, events


def test_equal_capture_takes_the_fast_path_and_passes() -> None:
    ledger, events = _history(pa.array([1.5, math.nan, -0.0, 0.0, None, math.inf, 2.0]))
    h = encode_history(ledger, events)
    assert aligned(h.llog, h.elog, FULL) is not None
    v = check(h, FULL)
    assert v.passed, v.summary()
    assert v.measurements["matched"] == 7 and v.measurements["lag_ms"]["max"] == 4.0


def test_a_differing_value_leaves_the_fast_path_and_is_named() -> None:
    ledger, events = _history(pa.array([1.5, 2.5, 3.5, 4.5, 5.5]))
    wrong = events[1].to_pydict()
    wrong["after"][0]["v"] = -0.5
    events[1] = pa.RecordBatch.from_pydict(wrong, schema=events[1].schema)
    h = encode_history(ledger, events)
    assert aligned(h.llog, h.elog, FULL) is None
    assert check(h, FULL).anomalies == {"after-mismatch": 1}


def test_json_text_is_not_equal_to_a_plain_string() -> None:
    texts = pa.array(['{"a": 1}', "[1]", "2"])
    ledger, _ = _history(texts, field=JSON)
    _, events = _history(texts)
    h = encode_history(ledger, events)
    assert aligned(h.llog, h.elog, FULL) is None
    assert not check(h, FULL).passed


def test_one_transaction_under_two_commit_identities_is_torn() -> None:
    ledger, events = _history(pa.array([1, 2, 3, 4, 5, 6]))
    split = events[0].to_pydict()
    split["txid"][2] = 99
    events[0] = pa.RecordBatch.from_pydict(split, schema=events[0].schema)
    h = encode_history(ledger, events)
    assert aligned(h.llog, h.elog, FULL) is not None
    assert check(h, FULL).anomalies == {"torn-txn": 1}


def _reversed(b: pa.RecordBatch) -> pa.RecordBatch:
    return b.take(pa.array(range(b.num_rows - 1, -1, -1)))


def test_each_transaction_reordered_takes_the_fast_path_and_passes() -> None:
    ledger, events = _history(pa.array([1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5]))
    events = [_reversed(b) for b in events]
    h = encode_history(ledger, events)
    assert aligned(h.llog, h.elog, FULL) is not None
    v = check(h, FULL)
    assert v.passed, v.summary()
    assert v.measurements["matched"] == 7 and v.measurements["lag_ms"]["max"] == 4.0


def _one_key_twice() -> tuple[Ledger, pa.RecordBatch]:
    """One transaction: insert id 1, insert id 2, update id 1; and its events in that order."""
    ops, ids, vs = ["insert", "insert", "update"], [1, 2, 1], [10, 20, 11]
    after = pa.StructArray.from_arrays([pa.array(ids), pa.array(vs)], names=["id", "v"])
    before = pa.StructArray.from_arrays([pa.array(ids), pa.array([None, None, 10])], names=["id", "v"],
                                        mask=pa.array([True, True, False]))
    cols = {"table": pa.array(["t"] * 3), "op": pa.array(ops),
            "key": pa.StructArray.from_arrays([pa.array(ids)], names=["id"]), "before": before, "after": after}
    ledger = Ledger()
    txid = ledger.begin()
    ledger.stage_batch(txid, pa.RecordBatch.from_pydict(cols))
    ledger.commit(txid, 10**9, 10**9 + 1)
    events = pa.RecordBatch.from_pydict({**cols, "txid": pa.array([txid] * 3),
                                         "position": pa.array([[txid, i] for i in range(3)]),
                                         "captured_at": pa.array([10**9 + 5] * 3)})
    return ledger, events


def test_one_keys_changes_swapped_inside_a_transaction_are_reordered() -> None:
    ledger, events = _one_key_twice()
    h = encode_history(ledger, [events])
    assert aligned(h.llog, h.elog, FULL) is not None and check(h, FULL).passed
    swapped = events.take(pa.array([2, 1, 0]))  # the update of id 1 before its insert
    h = encode_history(ledger, [swapped])
    assert aligned(h.llog, h.elog, FULL) is None
    assert check(h, FULL).anomalies == {"reordered": 1}
    other_keys = events.take(pa.array([1, 0, 2]))  # id 2 first: every key keeps its own order
    h = encode_history(ledger, [other_keys])
    assert aligned(h.llog, h.elog, FULL) is not None and check(h, FULL).passed


def test_interleaved_transactions_leave_the_fast_path_and_are_torn() -> None:
    ledger, events = _history(pa.array([1, 2, 3, 4, 5, 6]))
    both = pa.concat_tables([pa.Table.from_batches([b]) for b in events]).combine_chunks().to_batches()[0]
    h = encode_history(ledger, [both.take(pa.array([0, 3, 1, 4, 2, 5]))])
    assert aligned(h.llog, h.elog, FULL) is None
    assert check(h, FULL).anomalies == {"torn-txn": 2}
    # whole transactions in another order, each contiguous: no key's order is broken
    h = encode_history(ledger, [events[1], events[0]])
    assert aligned(h.llog, h.elog, FULL) is None
    assert check(h, FULL).passed


def test_a_reordered_capture_still_names_lost_duplicate_and_mismatch() -> None:
    ledger, events = _history(pa.array([1.5, 2.5, 3.5, 4.5, 5.5, 6.5]))
    events = [_reversed(b) for b in events]
    wrong = events[1].to_pydict()
    wrong["after"][0]["v"] = -0.5
    cases = {
        "lost": [events[0], events[1].slice(1)],
        "duplicate": [events[0], events[0].slice(0, 1), events[1]],
        "mismatch": [events[0], pa.RecordBatch.from_pydict(wrong, schema=events[1].schema)],
    }
    want = {"lost": {"lost": 1}, "duplicate": {"duplicate": 1}, "mismatch": {"after-mismatch": 1}}
    for name, capture in cases.items():
        h = encode_history(ledger, capture)
        assert aligned(h.llog, h.elog, FULL) is None, name
        assert check(h, FULL).anomalies == want[name], name


def test_reordered_updates_after_inserts_of_another_shape_take_the_fast_path() -> None:
    """Inserts staged without a before column's type, then an update transaction with one (as a
    bulk write and its update commit): one table, two column types for ``before``."""
    ledger, events = _history(pa.array([1, 2, 3]))
    ids, old, new = [0, 1, 2], [1, 2, 3], [-1, -2, -3]
    image = lambda vs: pa.StructArray.from_arrays([pa.array(ids), pa.array(vs)], names=["id", "v"])  # noqa: E731
    cols = {"table": pa.array(["t"] * 3), "op": pa.array(["update"] * 3),
            "key": pa.StructArray.from_arrays([pa.array(ids)], names=["id"]), "before": image(old), "after": image(new)}
    txid = ledger.begin()
    ledger.stage_batch(txid, pa.RecordBatch.from_pydict(cols))
    ledger.commit(txid, txid * 10**9, txid * 10**9 + 1)
    ev = pa.RecordBatch.from_pydict({**cols, "txid": pa.array([txid] * 3),
                                     "position": pa.array([[txid, i] for i in ids]),
                                     "captured_at": pa.array([txid * 10**9 + 4_000_000] * 3)})
    h = encode_history(ledger, [*events, _reversed(ev)])
    assert aligned(h.llog, h.elog, FULL) is not None
    assert check(h, FULL).passed
    wrong = ev.to_pydict()
    wrong["before"][1]["v"] = 7
    h = encode_history(ledger, [*events, _reversed(pa.RecordBatch.from_pydict(wrong, schema=ev.schema))])
    assert aligned(h.llog, h.elog, FULL) is None
    assert check(h, FULL).anomalies == {"before-mismatch": 1}


def test_key_only_before_images_in_arrow_are_checked_value_by_value() -> None:
    """Under a ``key`` before-image claim (the general path), an Arrow delete's before image may
    hold only the key, but a value it does hold must be the committed one."""
    from dataclasses import replace

    ledger, events = _history(pa.array([10]), per_txn=1)
    image = pa.StructArray.from_arrays([pa.array([0]), pa.array([10])], names=["id", "v"])
    cols = {"table": pa.array(["t"]), "op": pa.array(["delete"]), "key": pa.StructArray.from_arrays(
        [pa.array([0])], names=["id"]), "before": image, "after": pa.nulls(1)}
    txid = ledger.begin()
    ledger.stage_batch(txid, pa.RecordBatch.from_pydict(cols))
    ledger.commit(txid, txid * 10**9, txid * 10**9 + 1)
    caps = replace(FULL, before_image="key")
    for v, want in ((None, {}), (10, {}), (11, {"before-mismatch": 1})):
        before = pa.StructArray.from_arrays([pa.array([0]), pa.array([v], pa.int64())], names=["id", "v"])
        ev = pa.RecordBatch.from_pydict({**cols, "before": before, "txid": pa.array([txid]),
                                         "position": pa.array([[txid, 0]]), "captured_at": pa.array([txid * 10**9])})
        assert check(encode_history(ledger, [*events, ev]), caps).anomalies == want, v
