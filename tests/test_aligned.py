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
