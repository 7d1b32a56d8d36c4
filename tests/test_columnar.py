"""The columnar path: Arrow batches and Python rows encode alike, and hash collisions hide nothing."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal

import polars as pl
import pyarrow as pa
import pytest

from harness import checker
from harness.capabilities import Capabilities
from harness.checker import check, encode_history
from harness.columnar import _column, encode_rows, encode_values
from harness.events import ChangeEvent
from harness.ledger import Ledger
from harness.values import canonical, encode_image, encode_key
from tests.histories import FULL, HistoryBuilder, dele, ins, random_history, upd

UTC = dt.UTC
PLUS5 = dt.timezone(dt.timedelta(hours=5, minutes=30))
VALUES = [
    0, 1, -5, 2**63 - 1, 2**70, 1.0, -0.0, 0.0, math.nan, math.inf, -math.inf, 1e-5, 1.5e-7, 1 / 7, 1e16,
    Decimal("1.10"), Decimal("0"), Decimal("-0.000"), Decimal("1E-10"), Decimal("100"), Decimal("NaN"),
    Decimal("1E-30"), Decimal("12345678901234567890123456789012345.123456789012345678901234567890"),
    dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), dt.datetime(1, 1, 1, tzinfo=UTC),
    dt.datetime(2024, 3, 1, 17, 30, tzinfo=PLUS5), dt.datetime(2024, 3, 1), dt.date(1, 1, 1),
    dt.date(1969, 12, 31), dt.time(1, 2, 3, 4), dt.timedelta(days=1, microseconds=5), "", "e\u0301",
    "😀\x1f=", b"", b"\x00\xff", True, False, {"a": 1, "b": [1.5, None]}, [1, 2], uuid.UUID(int=7),
]


@pytest.mark.parametrize("kind", sorted({type(v).__name__ for v in VALUES}))
def test_columns_encode_like_canonical(kind: str) -> None:
    values = [v for v in VALUES if type(v).__name__ == kind] + [None]
    got = encode_values(_column(values)).to_list()
    assert got == [None if v is None else canonical(v) for v in values]


def test_rows_with_mixed_types_encode_like_encode_image() -> None:
    rows = [ChangeEvent("t", "update", (i, "k"), {"a": v, "b": 1}, {"a": v, "b": 2}, (i,))
            for i, v in enumerate(VALUES)]
    rows += [ChangeEvent("t", "insert", (9, "k"), None, {"b": 2, "a": 1.5}, (1,)),
             ChangeEvent("u", "truncate", (), None, None, (2,)), ChangeEvent("u", "insert", (1,), None, {}, (3,))]
    keys, befores, afters = encode_rows(rows)
    assert keys.to_list() == [encode_key(r.key) for r in rows]
    assert befores.to_list() == [encode_image(r.before) for r in rows]
    assert afters.to_list() == [encode_image(r.after) for r in rows]


def test_arrow_decimal_65_30_and_nanosecond_timestamps() -> None:
    dec = pa.array([Decimal("1.500"), Decimal("-0.0000001"), Decimal("0"), None], pa.decimal256(65, 30))
    assert encode_values(dec).to_list() == ["d:1.5", "d:-0.0000001", "d:0", None]
    ts = pa.array([1_000_000_001_500, -1], pa.timestamp("ns", tz="+02:00"))
    assert encode_values(ts).to_list() == ["t:1970-01-01T00:16:40.000001", "t:1969-12-31T23:59:59.999999"]


def _as_batches(events: list[ChangeEvent]) -> pa.RecordBatch:
    """One table's events as an Arrow event batch (what an approach may return from ``poll``)."""
    def image(side: str) -> list:
        return [getattr(e, side) for e in events]
    return pa.RecordBatch.from_pydict({
        "table": [e.table for e in events], "op": [e.op for e in events],
        "key": [{"id": e.key[0]} for e in events], "before": image("before"), "after": image("after"),
        "position": [list(e.position) for e in events], "txid": [e.txid for e in events],
        "captured_at": [e.captured_at for e in events]})


def test_arrow_events_and_ledger_batches_check_like_python_rows() -> None:
    h = random_history(seed=5, n_events=400, n_keys=80)
    events = [e for e in h.events if e.op != "truncate"]
    batch = _as_batches(events)
    mixed = [batch.slice(0, 100), *events[100:250], batch.slice(250)]
    assert check(encode_history(h.ledger, mixed), FULL).passed
    # the same committed changes staged as one Arrow batch per transaction
    ledger = Ledger()
    for c in h.ledger.changes:
        txid = ledger.begin()
        ledger.stage_batch(txid, pa.RecordBatch.from_pydict({
            "table": [c.table], "op": [c.op], "key": [{"id": c.key[0]}], "before": [c.before],
            "after": [c.after]}))
        if c.rolled_back:
            ledger.rollback(txid)
        else:
            ledger.commit(txid, c.commit_issued_at, c.committed_at)
    assert check(encode_history(ledger, batch), FULL).passed
    wrong = events[:10] + events[11:]
    v = check(encode_history(ledger, _as_batches(wrong)), FULL)
    assert v.anomalies.get("lost") == 1
    assert v.examples["lost"][0]["committed"]["key"] == [events[10].key[0]]


@pytest.mark.parametrize("hash_fn", [lambda e: e.hash(1) & 0, lambda e: e.hash(1) & 1],
                         ids=["constant", "one-bit"])
def test_hash_collisions_are_told_apart(monkeypatch: pytest.MonkeyPatch, hash_fn) -> None:
    """Every content hashes alike: matches are confirmed on the canonical content, so a correct
    history still passes and each anomaly is still named, exactly."""
    monkeypatch.setattr(checker, "_hash", lambda expr: hash_fn(expr).cast(pl.UInt64))
    b = HistoryBuilder(Capabilities())
    b.commit(ins("t", id=1, v="a"), ins("t", id=2, v="b"))
    b.commit(upd("t", 1, v="a2"))
    b.commit(dele("t", 2), ins("t", id=3, v="c"))
    h = b.history()
    assert h.verdict(final_state=h.final_state).passed
    bad = list(h.events)
    bad[2] = ChangeEvent("t", "update", (1,), bad[2].before, {"id": 1, "v": "a3"}, bad[2].position, bad[2].txid,
                         captured_at=bad[2].captured_at)
    v = h.verdict(bad)
    assert v.anomalies == {"after-mismatch": 1}
    dup = h.events + [h.events[0]]
    assert h.verdict(dup).anomalies == {"duplicate": 1}


def _one_table(ids: list[int], amounts: pa.Array, ts: pa.Array, n: pa.Array,
               extra: dict | None = None) -> pa.RecordBatch:
    after = pa.StructArray.from_arrays([pa.array(ids), amounts, ts, n], names=["id", "amount", "ts", "n"])
    cols = {"table": pa.array(["t"] * len(ids)), "op": pa.array(["insert"] * len(ids)),
            "key": pa.StructArray.from_arrays([pa.array(ids)], names=["id"]), "before": pa.nulls(len(ids)),
            "after": after, **(extra or {})}
    return pa.RecordBatch.from_pydict(cols)


@pytest.mark.parametrize("rows", [4, 200], ids=["tiny", "batch"])
def test_equal_values_of_other_arrow_types_match_and_differences_are_named(rows: int) -> None:
    """Images are hashed and compared on native values: a decimal at another scale or width, a
    timestamp in another unit or zone, an int of another width are the same canonical value."""
    ids = list(range(1, rows + 1))
    amounts = [[Decimal("1.10"), Decimal("-0.5"), Decimal("0"), None][i % 4] for i in range(rows)]
    micros = [[0, 1_700_000_000_123_456, -1, 86_400_000_000][i % 4] + i for i in range(rows)]
    ledger = Ledger()
    txid = ledger.begin()
    ledger.stage_batch(txid, _one_table(ids, pa.array(amounts, pa.decimal128(38, 2)),
                                        pa.array(micros, pa.timestamp("us", tz="UTC")), pa.array(ids, pa.int64())))
    ledger.commit(txid, 1, 2)
    n = len(ids)
    extra = {"position": pa.array([[1, i] for i in range(n)]), "txid": pa.array([1] * n)}
    events = _one_table(ids, pa.array(amounts, pa.decimal256(40, 6)),
                        pa.array([m * 1000 + 999 for m in micros], pa.timestamp("ns", tz="+05:30")),
                        pa.array(ids, pa.int32()), extra)
    v = check(encode_history(ledger, [events]), FULL)
    assert v.passed, v.summary()
    assert v.measurements["matched"] == n
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    python_events = [ChangeEvent("t", "insert", (i,), None,
                                 {"id": i, "amount": a, "ts": epoch + dt.timedelta(microseconds=m), "n": i}, (1, j), 1)
                     for j, (i, a, m) in enumerate(zip(ids, amounts, micros, strict=True))]
    assert check(encode_history(ledger, python_events), FULL).passed
    wrong = _one_table(ids, pa.array([Decimal("1.11"), *amounts[1:]], pa.decimal128(38, 2)),
                       pa.array(micros, pa.timestamp("us", tz="UTC")), pa.array(ids, pa.int64()), extra)
    v = check(encode_history(ledger, [wrong]), FULL)
    assert v.anomalies == {"after-mismatch": 1}
