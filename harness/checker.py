"""The checker: compares what the source committed with what an approach captured.

Vectorized with polars: images and keys are encoded once into type-aware canonical strings
(``harness.values``), then matched as columns. Only the rows left unmatched — the anomalies
themselves — are classified one by one, to name them and to keep readable examples.

Matching, in order:
1. exact: each committed change is paired with a captured event of identical
   (table, key, op, before, after), the n-th occurrence with the n-th (commit vs capture order).
   Surplus identical events are ``duplicate`` — unless delivery is at-least-once and the surplus
   is bounded redelivery: an exact repeat at the same position, delivered after a reader
   restart that came after its previous delivery, of an event whose position had not been
   acknowledged before that restart (counted as ``redelivered``, a measurement).
2. split updates: a delete then an insert of the same key whose images equal one unpaired
   committed update → ``op-mismatch`` (when the approach claims ``update``).
3. near: remaining events and changes of the same key are paired and classified as
   ``op-mismatch``, ``schema`` (other columns or value types), ``after-mismatch``,
   ``missing-before`` or ``before-mismatch``. Unpaired changes are ``lost``, unpaired events
   ``phantom`` (matching a rolled-back change, or invented).
4. order: per key, capture order must follow commit order (``reordered``); with
   ``transactions`` claimed, one commit's events must share one commit position and be
   contiguous (``torn-txn``).
5. replay: the captured events applied to the empty initial state must give the engine's final
   state (``divergence``), counted per key that no other anomaly already explains.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa

from harness.capabilities import Capabilities
from harness.columnar import RowLog, batch_len, encode_parts, encode_rows, positions_repr, values_repr
from harness.events import ChangeEvent
from harness.ledger import Ledger, LedgerChange
from harness.values import (
    describe_difference,
    encode_image,
    jsonable,
    shape_differs,
)
from harness.verdict import ANOMALIES, MAX_EXAMPLES, Verdict

CONTENT = ["table", "key", "op", "before", "after"]
#: fixed seed: hashes of the ledger, the events and the final state must be comparable
_SEED = 0x5EED
#: engine final state: table -> {key tuple -> row}
FinalState = Mapping[str, Mapping[tuple, Mapping[str, Any]]]


def _hash(expr: pl.Expr) -> pl.Expr:
    """The 64-bit hash every match starts from. A match on it is only a candidate: pairs are
    confirmed on their canonical content, so a collision costs time, never an anomaly."""
    return expr.hash(_SEED)


def _hashes() -> list[pl.Expr]:
    """u64 hashes of (table, key), before and after, computed once when encoding."""
    return [_hash(pl.struct("table", "key")).alias("kh"), _hash(pl.col("before")).alias("bh"),
            _hash(pl.col("after")).alias("ah")]


class _Indexed(Sequence):
    """Rows of a ``RowLog`` picked by index (``ridx``), turned into Python rows when looked at."""

    def __init__(self, log: Sequence, ridx: pl.Series) -> None:
        self.log = log
        self.ridx = ridx.to_numpy()

    def __len__(self) -> int:
        return len(self.ridx)

    def __getitem__(self, i: Any) -> Any:  # type: ignore[override]
        if isinstance(i, slice):
            return [self.log[int(j)] for j in self.ridx[i]]
        return self.log[int(self.ridx[i])]


@dataclass
class EncodedHistory:
    """Ledger and events as polars frames of canonical strings (built once, checked many times)."""

    ledger: pl.DataFrame
    events: pl.DataFrame
    ledger_rows: Sequence[LedgerChange]
    event_rows: Sequence[ChangeEvent]
    ddl: list[LedgerChange]
    rolled_back: pl.DataFrame
    #: per reader epoch, the position acknowledged before the restart that began it (epoch 0: None)
    acked_at_epoch: Sequence[Any] = (None,)
    #: where each ``ddl`` change stands in the whole ledger (row index, for ``_project``)
    ddl_at: Sequence[int] = ()


_LEDGER_SCHEMA = {"table": pl.String, "key": pl.String, "op": pl.String, "before": pl.String,
                  "after": pl.String, "txid": pl.Int64, "commit_seq": pl.Int64, "issued_at": pl.Int64,
                  "rolled": pl.Boolean}
_EVENT_SCHEMA = {"table": pl.String, "key": pl.String, "op": pl.String, "before": pl.String,
                 "after": pl.String, "pos": pl.String, "etx": pl.String, "captured_at": pl.Int64}


def _ledger_part(part: Any) -> pl.DataFrame:
    if isinstance(part, list):
        k, b, a = encode_rows(part)
        cols = {"table": [c.table for c in part], "key": k, "op": [c.op for c in part], "before": b,
                "after": a, "txid": [c.txid for c in part], "commit_seq": [c.commit_seq for c in part],
                "issued_at": [c.commit_issued_at for c in part], "rolled": [c.rolled_back for c in part]}
        return pl.DataFrame(cols, schema=_LEDGER_SCHEMA)
    n = len(part)
    k, b, a = encode_parts(part.data, n)
    return pl.DataFrame({"table": part.data.column("table"), "key": k, "op": part.data.column("op"),
                         "before": b, "after": a}).with_columns(
        pl.col("table").cast(pl.String), pl.col("op").cast(pl.String),
        pl.lit(part.txid, pl.Int64).alias("txid"), pl.lit(part.commit_seq, pl.Int64).alias("commit_seq"),
        pl.lit(part.commit_issued_at, pl.Int64).alias("issued_at"),
        pl.lit(part.rolled_back).alias("rolled"))


def _event_part(part: Any) -> pl.DataFrame:
    if isinstance(part, list):
        k, b, a = encode_rows(part)
        cols = {"table": [e.table for e in part], "key": k, "op": [e.op for e in part], "before": b,
                "after": a, "pos": [repr(e.position) for e in part], "etx": [repr(e.txid) for e in part],
                "captured_at": [e.captured_at for e in part]}
        return pl.DataFrame(cols, schema=_EVENT_SCHEMA)
    n = batch_len(part)
    names = part.schema.names
    k, b, a = encode_parts(part, n)
    captured = part.column("captured_at") if "captured_at" in names else pa.nulls(n, pa.int64())
    return pl.DataFrame({
        "table": part.column("table"), "key": k, "op": part.column("op"), "before": b, "after": a,
        "pos": positions_repr(part.column("position")),
        "etx": values_repr(part.column("txid") if "txid" in names else None, n),
        "captured_at": captured}).with_columns(
        pl.col("table").cast(pl.String), pl.col("op").cast(pl.String),
        pl.col("captured_at").cast(pl.Int64).fill_null(0))


def _event_log(events: Any) -> RowLog:
    if isinstance(events, RowLog):
        return events
    log = RowLog()
    pending: list[ChangeEvent] = []
    for item in ([events] if isinstance(events, (pa.RecordBatch, pa.Table)) else events):
        if isinstance(item, (pa.RecordBatch, pa.Table)):
            log.append_part(pending)
            pending = []
            log.append_part(item)
        else:
            pending.append(item)
    log.append_part(pending)
    return log


def encode_history(ledger: Ledger | Sequence[LedgerChange], events: Any,
                   delivery: Any = None) -> EncodedHistory:
    """Encode ledger changes and captured events into frames of canonical strings, column by
    column (``harness.columnar``): Arrow batches as they are, Python rows run by run.

    ``events`` is a list of ``ChangeEvent`` and/or Arrow event batches, or the capture loop's
    ``RowLog``. ``delivery`` (a ``harness.capture.DeliveryRecord``: ``epochs`` per event,
    ``restarts`` with the position acknowledged before each) lets the checker bound
    at-least-once redelivery; without it every event is of epoch 0 (no restart happened).
    """
    if isinstance(ledger, Ledger):
        llog = ledger.log
    else:
        llog = RowLog()
        llog.append_part(list(ledger))
    elog = _event_log(events)
    n_events = len(elog)
    epochs = delivery.epochs if delivery is not None else None
    if epochs is not None and len(epochs) != n_events:
        raise ValueError(f"delivery record has {len(epochs)} epochs for {n_events} events")
    acked_at_epoch = [None] + [r.acked for r in delivery.restarts] if delivery is not None else [None]

    lparts = [_ledger_part(p) for p in llog.parts]
    lall = (pl.concat(lparts) if lparts else pl.DataFrame(schema=_LEDGER_SCHEMA)).with_row_index("ridx")
    eparts = [_event_part(p) for p in elog.parts]
    eall = (pl.concat(eparts) if eparts else pl.DataFrame(schema=_EVENT_SCHEMA)).with_row_index("ridx")
    eall = eall.with_columns(pl.Series("epoch", epochs, dtype=pl.Int32) if epochs is not None
                             else pl.lit(0, pl.Int32).alias("epoch"))

    def ledger_frame(rows: pl.DataFrame) -> pl.DataFrame:
        return rows.drop("rolled").with_row_index("lseq").with_columns(_hashes())

    not_ddl = pl.col("op") != "ddl"
    committed = lall.filter(~pl.col("rolled") & not_ddl)
    rolled = lall.filter(pl.col("rolled") & not_ddl)
    ddl_idx = lall.filter(~pl.col("rolled") & ~not_ddl)["ridx"].to_list()
    ev = eall.filter(not_ddl)
    events_df = ev.drop("ridx").with_row_index("eidx").with_columns(_hashes())
    return EncodedHistory(ledger_frame(committed).drop("ridx"), events_df,
                          _Indexed(llog, committed["ridx"]), _Indexed(elog, ev["ridx"]),
                          [llog[i] for i in ddl_idx], ledger_frame(rolled).drop("ridx"), acked_at_epoch,
                          ddl_idx)


class _Anomalies:
    """Counts and first examples per anomaly kind, plus the keys each one touched."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.examples: dict[str, list[Any]] = defaultdict(list)
        self.keys: set[tuple[str, str]] = set()

    def add(self, kind: str, count: int, examples: list[Any], keys: Sequence[tuple[str, str]]) -> None:
        if count <= 0:
            return
        self.counts[kind] += count
        room = MAX_EXAMPLES - len(self.examples[kind])
        self.examples[kind].extend(examples[:max(room, 0)])
        self.keys.update(keys)

    def explains(self, table: str, key: str) -> bool:
        """True when an anomaly already touched this key, or the whole table (a truncate's key)."""
        return (table, key) in self.keys or (table, "") in self.keys


def _event_json(e: ChangeEvent) -> dict:
    return {"table": e.table, "op": e.op, "key": jsonable(e.key), "before": jsonable(e.before),
            "after": jsonable(e.after), "position": list(e.position), "txid": jsonable(e.txid)}


def _change_json(c: LedgerChange) -> dict:
    return {"table": c.table, "op": c.op, "key": jsonable(c.key), "before": jsonable(c.before),
            "after": jsonable(c.after), "txid": c.txid, "commit_seq": c.commit_seq}


def _content(df: pl.DataFrame, order_col: str) -> pl.DataFrame:
    """Add ``h0``, a u64 hash of the content (table, key, op, before, after), ``occ``, the
    occurrence number of that exact content (n-th pairs with n-th), and ``h``: ``h0`` for a
    first occurrence, else ``h0`` folded with ``occ``."""
    df = df.with_columns(_hash(pl.struct("kh", "op", "bh", "ah")).alias("h0"))
    if df["h0"].n_unique() == df.height:
        return df.with_columns(pl.col("h0").alias("h"), pl.lit(1, pl.UInt32).alias("occ"))
    occ = pl.col(order_col).rank("ordinal").over(CONTENT).cast(pl.UInt32)
    rep = df["h0"].is_duplicated()
    ranked = df.filter(rep).with_columns(occ.alias("occ")).with_columns(
        pl.when(pl.col("occ") == 1).then(pl.col("h0")).otherwise(_hash(pl.struct("h0", "occ"))).alias("h"))
    single = df.filter(~rep).with_columns(pl.col("h0").alias("h"), pl.lit(1, pl.UInt32).alias("occ"))
    return pl.concat([single, ranked.select(single.columns)]).sort(order_col)


def _confirmed(matched: pl.DataFrame) -> pl.DataFrame:
    """Keep the hash matches whose canonical content is equal too (a collision is no match)."""
    cols = [*CONTENT, "occ"]
    same = pl.all_horizontal([pl.col(c).eq_missing(pl.col(f"{c}_e")) for c in cols])
    if not matched.select((~same).any()).item():
        return matched.drop([f"{c}_e" for c in cols])
    return matched.filter(same).drop([f"{c}_e" for c in cols])


def _without(df: pl.DataFrame, col: str, used: pl.Series) -> pl.DataFrame:
    """Rows of ``df`` whose ``col`` is not in ``used``."""
    if used.len() == df.height:
        return df.clear()
    return df.filter(~pl.col(col).is_in(used.implode()))


def _capability_view(df: pl.DataFrame, capabilities: Capabilities) -> pl.DataFrame:
    """Ledger rows as the approach can give them: split updates, no before image unless full."""
    if capabilities.updates == "delete+insert":
        df = _split_ledger_updates(df)
    if capabilities.before_image != "full":
        df = _no_before(df)
    return df


def _no_before(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(pl.lit(None, pl.String).alias("before")).with_columns(
        _hash(pl.col("before")).alias("bh"))


def check(
    history: EncodedHistory,
    capabilities: Capabilities,
    final_state: FinalState | None = None,
) -> Verdict:
    """Compare an encoded history under ``capabilities``; return the verdict with lag figures.

    ``final_state`` is the engine's state read after the run (rows by key tuple); when None the
    replay is compared with the ledger's own final state. Content is matched on 64-bit hashes
    of the canonical strings and every match is confirmed on the strings themselves, so a hash
    collision cannot hide an anomaly (``tests/test_checker.py::test_hash_collisions_are_told_apart``).
    """
    found = _Anomalies()
    L = _capability_view(history.ledger, capabilities)
    E = history.events
    if capabilities.before_image != "full":
        E = _no_before(E)

    # 1. exact matching by content and occurrence (in ledger order)
    Lh = _content(L, "lseq")
    Eh = _content(E, "eidx")
    matched = _confirmed(Lh.select("h", "lseq", "kh", "txid", "issued_at", *CONTENT, "occ").join(
        Eh.select("h", "h0", "eidx", "etx", "pos", "captured_at", *CONTENT, "occ"), on="h", how="inner",
        maintain_order="left", suffix="_e"))
    e_unmatched = _without(Eh, "eidx", matched["eidx"])
    l_unmatched = _without(Lh, "lseq", matched["lseq"])
    rest = e_unmatched
    redelivered = 0
    if e_unmatched.height:
        in_ledger = e_unmatched.join(Lh.select(CONTENT).unique(), on=CONTENT, how="semi", nulls_equal=True)
        surplus = in_ledger
        if capabilities.delivery == "at-least-once" and in_ledger.height:
            surplus = _unbounded_repeats(in_ledger, Eh, history)
            redelivered = in_ledger.height - surplus.height
        _add_events(found, "duplicate", surplus, history, "captured more often than committed "
                    "(not a redelivery after a restart of an unacknowledged position)")
        rest = _without(e_unmatched, "eidx", in_ledger["eidx"])

    # 2. updates captured as delete + insert
    if capabilities.updates == "update" and rest.height and l_unmatched.height:
        rest, l_unmatched = _split_updates(found, rest, l_unmatched, history)

    # 3. near matches, lost and phantoms (only anomalous rows reach this Python loop)
    paired = _classify_leftovers(found, rest, l_unmatched, history, capabilities)

    # 4. order and transaction boundaries
    pairs = matched.select("kh", "lseq", "eidx", "txid", "etx")
    if paired.height:
        paired = paired.select(_hash(pl.struct("table", "key")).alias("kh"),
                               "lseq", "eidx", "txid", "etx")
        pairs = pl.concat([pairs, paired]).sort("lseq")
    _check_order(found, pairs, history)
    if capabilities.transactions:
        _check_transactions(found, pairs, history)

    # 5. replay
    _check_replay(found, history, final_state, pairs, capabilities.updates == "delete+insert")

    lag_ns = (matched["captured_at"] - matched["issued_at"]).filter(matched["issued_at"] > 0)
    measurements = lag_summary(lag_ns)
    measurements.update(events=E.height, committed=L.height, matched=matched.height, redelivered=redelivered)
    counts = {k: found.counts[k] for k in ANOMALIES if found.counts.get(k)}
    return Verdict(
        status="fail" if counts else "pass",
        anomalies=counts,
        examples={k: found.examples[k] for k in counts},
        measurements=measurements,
    )


def lag_summary(lag_ns: pl.Series | Sequence[float]) -> dict[str, Any]:
    """Lag percentiles in ms (p50/p95/p99 linearly interpolated, max) and a 200-point CDF of
    nanosecond lags (one sort). The one percentile function of the suite and the benchmarks."""
    if not isinstance(lag_ns, pl.Series):
        lag_ns = pl.Series(list(lag_ns), dtype=pl.Float64)
    if lag_ns.len() == 0:
        return {"lag_cdf": [], "lag_ms": {"p50": None, "p95": None, "p99": None, "max": None}}
    ms = (lag_ns.cast(pl.Float64) / 1e6).sort()
    n = ms.len()
    fractions = [i / 200 for i in range(1, 201)]
    lower = ms.gather([int(f * (n - 1)) for f in fractions]).to_list()
    cdf = [[round(float(v), 4), f] for v, f in zip(lower, fractions, strict=True)] if n > 1 else []

    def linear(q: float) -> float:
        x = q * (n - 1)
        lo = int(x)
        a, b = ms[lo], ms[min(lo + 1, n - 1)]
        return round(float(a + (b - a) * (x - lo)), 3)

    return {"lag_cdf": cdf, "lag_ms": {
        "p50": linear(0.50), "p95": linear(0.95), "p99": linear(0.99), "max": round(float(ms[n - 1]), 3),
    }}


def _unbounded_repeats(repeats: pl.DataFrame, events: pl.DataFrame, history: EncodedHistory) -> pl.DataFrame:
    """The repeated events at-least-once delivery does not excuse.

    A repeat is excused only when it is an exact repeat at the same position of the previous
    delivery of that content, a reader restart lies between the two (its epoch is higher), and
    its position had not been acknowledged before the restart that began its epoch.
    """
    prev = events.select("eidx", *CONTENT, "pos", "epoch").sort("eidx").with_columns(
        pl.col("epoch").shift(1).over([*CONTENT, "pos"]).alias("prev_epoch")).select("eidx", "prev_epoch")
    cand = repeats.join(prev, on="eidx", how="left").filter(
        pl.col("prev_epoch").is_not_null() & (pl.col("prev_epoch") < pl.col("epoch")))
    excused = []
    for eidx, epoch in cand.select("eidx", "epoch").iter_rows():
        acked = history.acked_at_epoch[epoch] if epoch < len(history.acked_at_epoch) else None
        if acked is None or tuple(history.event_rows[eidx].position) > tuple(acked):
            excused.append(eidx)
    if not excused:
        return repeats
    return repeats.filter(~pl.col("eidx").is_in(excused))


def _add_events(found: _Anomalies, kind: str, df: pl.DataFrame, history: EncodedHistory, why: str) -> None:
    if not df.height:
        return
    idx = df["eidx"].head(MAX_EXAMPLES).to_list()
    examples = [{"why": why, "event": _event_json(history.event_rows[i])} for i in idx]
    found.add(kind, df.height, examples, list(zip(df["table"].to_list(), df["key"].to_list(), strict=False)))


def _split_ledger_updates(L: pl.DataFrame) -> pl.DataFrame:
    """Expand committed updates into delete(before) + insert(after) for delete+insert approaches."""
    upd = L.filter(pl.col("op") == "update")
    if not upd.height:
        return L
    dels = upd.with_columns(pl.lit("delete").alias("op"), pl.lit(None, pl.String).alias("after"),
                            (pl.col("lseq") * 2).alias("lseq2"))
    ins = upd.with_columns(pl.lit("insert").alias("op"), pl.lit(None, pl.String).alias("before"),
                           (pl.col("lseq") * 2 + 1).alias("lseq2"))
    keep = L.filter(pl.col("op") != "update").with_columns((pl.col("lseq") * 2).alias("lseq2"))
    out = pl.concat([keep, dels, ins]).sort("lseq2")
    return out.drop("lseq").rename({"lseq2": "lseq"}).with_columns(
        pl.col("lseq").cast(pl.UInt32), *_hashes()[1:])


def _split_updates(found: _Anomalies, rest: pl.DataFrame, l_un: pl.DataFrame,
                   history: EncodedHistory) -> tuple[pl.DataFrame, pl.DataFrame]:
    s = rest.sort(["table", "key", "eidx"])
    nxt = s.select(
        pl.col("op").shift(-1).over(["table", "key"]).alias("n_op"),
        pl.col("after").shift(-1).over(["table", "key"]).alias("n_after"),
        pl.col("eidx").shift(-1).over(["table", "key"]).alias("n_eidx"),
    )
    s = pl.concat([s, nxt], how="horizontal")
    combos = s.filter((pl.col("op") == "delete") & (pl.col("n_op") == "insert")).select(
        "table", "key", pl.col("before"), pl.col("n_after").alias("after"),
        pl.col("eidx").alias("d_eidx"), pl.col("n_eidx").alias("i_eidx"))
    updates = l_un.filter(pl.col("op") == "update").select("table", "key", "before", "after", "lseq")
    hit = combos.join(updates, on=["table", "key", "before", "after"], how="inner", nulls_equal=True)
    hit = hit.unique("lseq", keep="first").unique("d_eidx", keep="first")
    if not hit.height:
        return rest, l_un
    examples = [{"why": "update captured as delete + insert",
                 "committed": _change_json(history.ledger_rows[r]),
                 "captured": [_event_json(history.event_rows[r2]) for r2 in (d, i)]}
                for r, d, i in hit.select("lseq", "d_eidx", "i_eidx").head(MAX_EXAMPLES).iter_rows()]
    found.add("op-mismatch", hit.height, examples,
              list(zip(hit["table"].to_list(), hit["key"].to_list(), strict=False)))
    used = pl.concat([hit["d_eidx"], hit["i_eidx"]]).to_frame("eidx")
    return rest.join(used, on="eidx", how="anti"), l_un.join(hit.select("lseq"), on="lseq", how="anti")


def _ledger_row(history: EncodedHistory, lseq: int, split: bool) -> LedgerChange:
    return history.ledger_rows[lseq // 2 if split else lseq]


def _classify_leftovers(found: _Anomalies, rest: pl.DataFrame, l_un: pl.DataFrame,
                        history: EncodedHistory, caps: Capabilities) -> pl.DataFrame:
    """Pair leftover events and changes per key and name each anomaly; return the pairs."""
    split = caps.updates == "delete+insert"
    by_key: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in l_un.select("table", "key", "op", "lseq", "txid").iter_rows(named=True):
        by_key[(row["table"], row["key"])].append(row)
    rolled = set(_capability_view(history.rolled_back, caps).select(CONTENT).iter_rows())
    pairs: list[tuple] = []
    for row in rest.select(*CONTENT, "eidx", "etx").iter_rows(named=True):
        k = (row["table"], row["key"])
        e = history.event_rows[row["eidx"]]
        cands = by_key.get(k)
        if not cands:
            content = tuple(row[c] for c in CONTENT)
            why = "matches a rolled-back change" if content in rolled else "never committed"
            found.add("phantom", 1, [{"why": why, "event": _event_json(e)}], [k])
            continue
        # prefer the earliest change of the same op; else the earliest change
        pick = next((c for c in cands if c["op"] == row["op"]), cands[0])
        cands.remove(pick)
        if split and row["op"] == "update" and pick["op"] == "delete" and pick["lseq"] % 2 == 0:
            # one committed update, split into delete + insert for a delete+insert approach, was
            # captured as an update: one op-mismatch, its insert half is not also lost
            half = next((c for c in cands if c["lseq"] == pick["lseq"] + 1 and c["op"] == "insert"), None)
            if half is not None:
                cands.remove(half)
        c = _ledger_row(history, pick["lseq"], split)
        pairs.append((row["table"], row["key"], pick["lseq"], row["eidx"], pick["txid"], row["etx"]))
        for kind, why in _pair_kinds(c, e, pick["op"], caps):
            found.add(kind, 1, [{"why": why, "committed": _change_json(c), "captured": _event_json(e),
                                 "difference": jsonable(_diff_for(kind, c, e))}], [k])
    for cands in by_key.values():
        for pick in cands:
            c = _ledger_row(history, pick["lseq"], split)
            found.add("lost", 1, [{"why": "committed, never captured", "committed": _change_json(c)}],
                      [(pick["table"], pick["key"])])
    return pl.DataFrame(pairs, schema={"table": pl.String, "key": pl.String, "lseq": pl.UInt32,
                                       "eidx": pl.UInt32, "txid": pl.Int64, "etx": pl.String},
                        orient="row")


def _diff_for(kind: str, c: LedgerChange, e: ChangeEvent) -> Any:
    if kind in ("before-mismatch", "missing-before"):
        return describe_difference(c.before, e.before)
    return describe_difference(c.after, e.after)


def _pair_kinds(c: LedgerChange, e: ChangeEvent, expected_op: str,
                caps: Capabilities) -> list[tuple[str, str]]:
    """Name what differs between a committed change and the captured event paired with it."""
    if e.op != expected_op:
        return [("op-mismatch", f"committed {expected_op}, captured {e.op}")]
    exp_after = c.after if expected_op != "delete" else None
    exp_before = c.before if expected_op != "insert" else None
    kinds: list[tuple[str, str]] = []
    if encode_image(exp_after) != encode_image(e.after):
        if shape_differs(exp_after, e.after):
            kinds.append(("schema", "after image has other columns or types than committed"))
        else:
            kinds.append(("after-mismatch", "after image differs from the committed row"))
    if caps.before_image == "full" and encode_image(exp_before) != encode_image(e.before):
        if e.before is None:
            kinds.append(("missing-before", "no before image although full before images are claimed"))
        elif shape_differs(exp_before, e.before):
            kinds.append(("schema", "before image has other columns or types than committed"))
        else:
            kinds.append(("before-mismatch", "before image differs from the committed row"))
    return kinds


def _check_order(found: _Anomalies, pairs: pl.DataFrame, history: EncodedHistory) -> None:
    """Per key, capture order must follow commit order."""
    s = pairs.select("kh", "eidx").sort("kh", maintain_order=True)  # pairs are in lseq order
    same_key = pl.col("kh") == pl.col("kh").shift(1)
    if not s.select((same_key & (pl.col("eidx") < pl.col("eidx").shift(1))).any()).item():
        return  # capture order increases along commit order on every key
    # a hash collision can only merge two keys here: look again on the keys themselves
    s = pairs.select("eidx").join(history.events.select("eidx", "table", "key"), on="eidx",
                                  how="left", maintain_order="left")
    s = s.with_columns(pl.col("eidx").cum_max().shift(1).over(["table", "key"]).alias("prev_max"))
    bad = s.filter(pl.col("eidx") < pl.col("prev_max")).select("eidx").sort("eidx")
    _add_events(found, "reordered", _event_rows(history, bad["eidx"]), history,
                "captured before a change committed earlier on this key")


def _event_rows(history: EncodedHistory, eidx: pl.Series) -> pl.DataFrame:
    """The encoded events at ``eidx`` (table, key, eidx), for examples."""
    return history.events.select("eidx", "table", "key").filter(pl.col("eidx").is_in(eidx.implode()))


def _check_transactions(found: _Anomalies, pairs: pl.DataFrame, history: EncodedHistory) -> None:
    """One commit's events share one commit identity and are contiguous among paired events."""
    ranked = (pairs.select("txid", "eidx", pl.col("etx").alias("eh"))
              .sort("eidx").with_row_index("pos_rank"))
    same_tx = pl.col("txid") == pl.col("txid").shift(1)
    runs, split = ranked.select(
        (~same_tx).fill_null(True).sum().alias("runs"),
        (same_tx & (pl.col("eh") != pl.col("eh").shift(1))).any().alias("split")).row(0)
    if runs == ranked["txid"].n_unique() and not split:
        return  # every transaction is one run of events with one commit identity
    per_tx = ranked.group_by("txid").agg(
        (pl.col("eh").min() != pl.col("eh").max()).alias("split"),
        pl.col("pos_rank").min().alias("lo"),
        pl.col("pos_rank").max().alias("hi"),
        pl.len().alias("n"),
        pl.col("eidx").min().alias("eidx"),
    )
    torn = per_tx.filter(pl.col("split") | ((pl.col("hi") - pl.col("lo") + 1) != pl.col("n")))
    if torn.height:
        _add_events(found, "torn-txn", _event_rows(history, torn["eidx"]), history,
                    "one transaction's changes split across commit positions or interleaved")


def _alive(df: pl.DataFrame, order_col: str) -> pl.DataFrame:
    """The last change per key after the table's last truncate, unless it is a delete."""
    df = df.select("table", "key", "op", order_col, "kh", "after")
    truncs = df.filter(pl.col("op") == "truncate")
    rows = df.filter(pl.col("op") != "truncate") if truncs.height else df
    if truncs.height:
        cut = dict(truncs.group_by("table").agg(pl.col(order_col).max()).iter_rows())
        rows = rows.filter(pl.col(order_col) > pl.col("table").replace_strict(cut, default=-1,
                                                                              return_dtype=pl.Int64))
    last = rows.filter(pl.struct("table", "key").is_last_distinct())  # rows are in order_col order
    return last.filter(pl.col("op") != "delete").select(
        "kh", "table", "key", pl.col(order_col).alias("idx"), "after")


class _FinalRow:
    __slots__ = ("table", "key", "before", "after")

    def __init__(self, table: str, key: tuple, after: Mapping[str, Any]) -> None:
        self.table, self.key, self.before, self.after = table, key, None, after


def _final_frame(final_state: FinalState) -> tuple[pl.DataFrame, list[_FinalRow]]:
    """The engine's final rows, encoded column by column; and the rows, for examples."""
    rows = [_FinalRow(t, k, row) for t, by_key in final_state.items() for k, row in by_key.items()]
    keys, _, afters = encode_rows(rows)
    df = pl.DataFrame({"table": [r.table for r in rows], "key": keys, "after": afters},
                      schema={"table": pl.String, "key": pl.String, "after": pl.String})
    df = df.with_row_index("idx").with_columns(_hashes()[0]).select("kh", "table", "key", "idx", "after")
    return df, rows


def _check_replay(found: _Anomalies, history: EncodedHistory, final_state: FinalState | None,
                  pairs: pl.DataFrame | None = None, split: bool = False) -> None:
    """Replay the events on the empty state; compare with the final state, per key not yet explained.

    Vectorized on the canonical final images; only differing keys are looked at in Python, where
    images of tables with DDL are brought to the table's final shape before comparing: each
    image gets only the DDL committed after the change that wrote it (an event: after the
    committed change it was paired with), so a column dropped and re-added under the same name
    keeps the value written after the re-add.
    """
    got = _alive(history.events, "eidx")
    if final_state is None:
        want = _alive(history.ledger, "lseq")
        want_rows: Sequence[Any] = history.ledger_rows
    else:
        want, want_rows = _final_frame(final_state)
    j = want.join(got, on=["kh", "table", "key"], how="full", suffix="_got", coalesce=False)
    diff = j.filter(~pl.col("after").eq_missing(pl.col("after_got")) | pl.col("idx").is_null()
                    | pl.col("idx_got").is_null())
    if not diff.height:
        return
    ddl_tables = {c.table for c in history.ddl}
    ledger_at = getattr(history.ledger_rows, "ridx", None)
    event_at: dict[int, int] = {}
    if ddl_tables and ledger_at is not None and pairs is not None and pairs.height:
        got_idx = diff["idx_got"].drop_nulls().implode()
        for lseq, eidx in pairs.filter(pl.col("eidx").is_in(got_idx)).select("lseq", "eidx").iter_rows():
            event_at[eidx] = int(ledger_at[lseq // 2 if split else lseq])
    never = 1 << 62  # after every DDL: apply none
    bad_keys: list[tuple[str, str]] = []
    examples: list[dict] = []
    for table, key, idx, table_g, key_g, idx_g in diff.select(
            "table", "key", "idx", "table_got", "key_got", "idx_got").iter_rows():
        tk = (table, key) if table is not None else (table_g, key_g)
        if found.explains(*tk):
            continue
        g = history.event_rows[idx_g].after if idx_g is not None else None
        w = want_rows[idx].after if idx is not None else None
        if tk[0] in ddl_tables:
            g_at = event_at.get(idx_g, -1) if idx_g is not None else -1
            if final_state is not None:
                w_at = never  # the engine's rows already have the table's final shape
            else:
                w_at = int(ledger_at[idx]) if ledger_at is not None and idx is not None else -1
            g = _project(g, tk[0], history, g_at) if g is not None else None
            w = _project(w, tk[0], history, w_at) if w is not None else None
        if encode_image(g) != encode_image(w):
            bad_keys.append(tk)
            if len(examples) < MAX_EXAMPLES:
                examples.append({"why": "replayed state differs from the source's final state",
                                 "table": tk[0], "expected": jsonable(w), "replayed": jsonable(g)})
    found.add("divergence", len(bad_keys), examples, bad_keys)


def _project(image: Mapping[str, Any], table: str, history: EncodedHistory, at: int) -> dict[str, Any]:
    """Bring an image written at ledger row ``at`` to the table's final shape: the table's DDL
    committed after it, in order (``at`` = -1, unknown: all of it; each DDL is idempotent on an
    image written after it unless a column is dropped and re-added under the same name)."""
    out = dict(image)
    ddl_at = history.ddl_at or [-1] * len(history.ddl)
    for d, d_at in zip(history.ddl, ddl_at, strict=True):
        if d.table != table or (at >= 0 and d_at < at):
            continue
        spec = d.after or {}
        kind = spec.get("kind")
        if kind == "add" and spec["column"] not in out:
            out[spec["column"]] = None
        elif kind == "drop":
            out.pop(spec["column"], None)
        elif kind == "rename" and spec["old"] in out and spec["new"] not in out:
            out[spec["new"]] = out.pop(spec["old"])
    return out
