"""The checker: compares what the source committed with what an approach captured.

A capture equal to the ledger transaction by transaction (both Arrow; events in commit order, or
each transaction's events in another order that keeps every key's own order) is confirmed column
by column on its values and only its transaction boundaries and final state are checked
(``harness.aligned``). Every other history takes the general path below.

Vectorized with polars, without a canonical string per image: keys are encoded into
type-aware canonical strings (``harness.values``), images into u64 hashes of their native column
values (``harness.columnar.image_hash``: equal exactly when the canonical strings are, up to
collisions). A hash match is only a candidate: every pair is confirmed on its content (native
values compared column by column, part pair by part pair, or canonical strings where two parts'
types differ), so a collision costs time, never an anomaly. Canonical strings are built only for
the rows left unmatched — the anomalies themselves — which are classified one by one, to name
them and to keep readable examples.

Memory. The frames kept hold only keys, hashes and positions (the whole-ledger frame, image
hashes per view and commit sequence numbers are not kept); the exact matching joins on the hash
alone and confirms its candidates ``_CONFIRM_CHUNK`` pairs at a time; the matched pairs are kept
as positions, and the order and transaction checks gather the columns they read. From
``SPILL_ROWS`` rows (``CDC_CHECK_SPILL``: 1 always, 0 never) the hash join runs out of core in
DuckDB over Parquet under a memory limit (``check_path`` ``general-spill``); every stage after
it is the same code, so both give the same verdict (``tests/test_checker_spill.py``). Those
frames still grow with the history (about 0.46 GB per million events): from
``harness.partitioned.PARTITION_FROM`` rows (``CDC_CHECK_PARTITION``: 1 always, 0 never) the
same stages run one key-hash partition at a time from spilled files instead, the transaction
check and lag percentiles in DuckDB (``check_path`` ``general-partitioned``), so the memory
beyond the history stays bounded; a history with key changes, or a ``key`` before-image claim,
is not partitioned (see that module).

A key-changing update carries its old key (``old_key``, column ``okey``); under a
``key_updates=delete+insert`` claim the ledger view splits it into delete(old key) + insert(new
key). A table without a key is keyed by its whole row, so its updates are key changes.

Matching, in order:
1. exact: each committed change is paired with a captured event of identical
   (table, key, old key, op, before, after), the n-th occurrence with the n-th (commit vs capture order).
   Surplus identical events are ``duplicate`` — unless delivery is at-least-once and the surplus
   is bounded redelivery: an exact repeat at the same position, delivered after a reader
   restart that came after its previous delivery, of an event whose position had not been
   acknowledged before that restart (counted as ``redelivered``, a measurement).
2. split updates: a delete then an insert of the same key — or a delete of a key change's old
   key and an insert of its new one — whose images equal one unpaired committed update →
   ``op-mismatch`` (when the approach claims ``update``).
3. near: remaining events and changes of the same key are paired and classified as
   ``op-mismatch``, ``schema`` (other columns or value types), ``after-mismatch``,
   ``missing-before`` or ``before-mismatch`` (a key change without its old key, or with another:
   ``op-mismatch``). Unpaired changes are ``lost``, unpaired events ``phantom`` (matching a
   rolled-back change, or invented).
4. order: per key, capture order must follow commit order (``reordered``; a key change counts on
   its old key and its new one); with
   ``transactions`` claimed, one commit's events must share one commit position and be
   contiguous (``torn-txn``).
5. replay: the captured events applied to the empty initial state must give the engine's final
   state (``divergence``; a key change ends its old key), counted per key that no other anomaly
   already explains. Against the
   ledger's own final state the replay is implied, and skipped, when every change matched its
   event (content confirmed), nothing else is anomalous and no truncate moves whole tables.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from harness.aligned import Aligned, aligned, torn
from harness.capabilities import Capabilities
from harness.columnar import (
    ArrowRows,
    RowBatch,
    RowLog,
    Tokens,
    _encode_struct_like,
    _row_batches,
    _TokenStruct,
    batch_len,
    encode_keys,
    encode_parts,
    image_hash,
    rows_to_batches,
    same_images,
    token_columns,
    values_repr,
)
from harness.columnar import _image as _arrow_image
from harness.events import ChangeEvent
from harness.ledger import Ledger, LedgerChange
from harness.values import (
    canonical,
    describe_difference,
    encode_image,
    encode_key,
    jsonable,
    shape_differs,
)
from harness.verdict import ANOMALIES, MAX_EXAMPLES, Verdict

#: ``okey``: the old key of a key-changing update (canonical string), else NULL
CONTENT = ["table", "key", "okey", "op", "before", "after"]
#: fixed seed: hashes of the ledger, the events and the final state must be comparable
_SEED = 0x5EED
#: engine final state: table -> {key tuple -> row}
FinalState = Mapping[str, Mapping[tuple, Mapping[str, Any]]]


def _hash(expr: pl.Expr) -> pl.Expr:
    """The 64-bit hash every match starts from. A match on it is only a candidate: pairs are
    confirmed on their content, so a collision costs time, never an anomaly."""
    return expr.hash(_SEED)


def _view_hashes() -> list[pl.Expr]:
    """``bh``/``ah``: hashes of the before/after images as this view has them (``vb``/``va``
    False: the view drops that image, as a capability does); computed where a content hash
    needs them, never kept in a frame (16 bytes a row)."""
    return [_hash(pl.when(pl.col("vb")).then(pl.col("rbh"))).alias("bh"),
            _hash(pl.when(pl.col("va")).then(pl.col("rah"))).alias("ah")]


def _key_hash() -> pl.Expr:
    return _hash(pl.struct("table", "key")).alias("kh")


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


class EncodedHistory:
    """Ledger and events, encoded on demand into polars frames (built once, checked many times).

    ``llog``/``elog`` are the ledger's and the events' ``RowLog``. The frames are computed the
    first time a check needs them (a capture equal to the ledger row by row is confirmed
    without them, ``harness.aligned``). Images are not kept as strings: each row carries
    ``rbh``/``rah``, u64 hashes of its before and after images computed from native column
    values (``harness.columnar.image_hash``), and ``ridx``, its row in ``llog``/``elog``, where
    its content is read again to confirm a match (``harness.columnar.same_images``) or to name
    an anomaly (canonical strings, for the few rows that are anomalies).
    """

    def __init__(self, llog: RowLog, elog: RowLog, epochs: Sequence[int] | None = None,
                 acked_at_epoch: Sequence[Any] = (None,)) -> None:
        self.llog = llog
        self.elog = elog
        self.epochs = epochs
        #: per reader epoch, the position acknowledged before the restart that began it (epoch 0: None)
        self.acked_at_epoch = acked_at_epoch

    @cached_property
    def _tokens(self) -> dict[str, frozenset[str]]:
        lsegs, esegs = _segments(self.llog), _segments(self.elog)
        return token_columns([b for segs in (lsegs, esegs) for i in range(len(segs.items))
                              for _, _, b in segs.runs(i)])

    @cached_property
    def _ledger_split(self) -> tuple[pl.DataFrame, pl.DataFrame, list[int]]:
        """(committed row changes, rolled-back row changes, where each committed DDL stands),
        from one frame of the whole ledger that is not kept (only what a check reads stays)."""
        lsegs = _segments(self.llog)
        lparts = [_ledger_segment(lsegs, i, self._tokens) for i in range(len(lsegs.items))]
        everything = (pl.concat(lparts) if lparts else pl.DataFrame(schema=_LEDGER_SCHEMA)).with_row_index("ridx")
        del lparts
        if not everything.select(pl.col("rolled").any() | (~_NOT_DDL).any()).item():
            # the common case: no copy of the frame by a filter that keeps every row
            return _ledger_frame(everything), _ledger_frame(everything.clear()), []
        ddl_at = everything.filter(~pl.col("rolled") & ~_NOT_DDL)["ridx"].to_list()
        rolled = _ledger_frame(everything.filter(pl.col("rolled") & _NOT_DDL))
        committed = everything.filter(~pl.col("rolled") & _NOT_DDL)
        del everything
        return _ledger_frame(committed), rolled, ddl_at

    @property
    def ledger(self) -> pl.DataFrame:
        """Committed row changes (no DDL) in commit order: ``lseq``, keys, image hashes, commit times."""
        return self._ledger_split[0]

    @property
    def rolled_back(self) -> pl.DataFrame:
        """Rolled-back row changes, framed like ``ledger`` (to name phantoms)."""
        return self._ledger_split[1]

    @cached_property
    def ledger_rows(self) -> Sequence[LedgerChange]:
        """``ledger``'s rows as ``LedgerChange`` objects, turned into Python when looked at."""
        return _Indexed(self.llog, self.ledger["ridx"])

    @property
    def ddl_at(self) -> list[int]:
        """Where each committed DDL change stands in the whole ledger (row index, for ``_project``)."""
        return self._ledger_split[2]

    @cached_property
    def ddl(self) -> list[LedgerChange]:
        """The committed DDL changes, in order."""
        return [self.llog[i] for i in self.ddl_at]

    @cached_property
    def events(self) -> pl.DataFrame:
        """Captured row events (no DDL) in capture order: ``eidx``, keys, image hashes, ``epoch``."""
        esegs = _segments(self.elog)
        eparts = [_event_part(p, self._tokens, esegs.runs(i) if isinstance(p, list) else None)
                  for i, p in enumerate(esegs.items)]
        eall = (pl.concat(eparts) if eparts else pl.DataFrame(schema=_EVENT_SCHEMA)).with_row_index("ridx")
        del eparts
        eall = eall.with_columns(pl.Series("epoch", self.epochs, dtype=pl.Int32) if self.epochs is not None
                                 else pl.lit(0, pl.Int32).alias("epoch"))
        if eall.select((~_NOT_DDL).any()).item():
            eall = eall.filter(_NOT_DDL)
        return eall.with_row_index("eidx").with_columns(_key_hash(), *_VIEWS)

    @cached_property
    def event_keys(self) -> pl.DataFrame:
        """``events`` without image hashes (``eidx``, table, key, old key, op, ``kh``, ``ridx``):
        what the replay needs; taken from ``events`` when that is encoded already."""
        if "events" in self.__dict__:
            return self.events.select("eidx", "table", "key", "okey", "op", "kh", "ridx")
        esegs = _segments(self.elog)
        parts = [_base(p, batch_len(p), self._tokens, esegs.runs(i) if isinstance(p, list) else None, images=False)
                 for i, p in enumerate(esegs.items)]
        frame = pl.concat(parts) if parts else pl.DataFrame(schema={k: _EVENT_SCHEMA[k] for k in
                                                                    ("table", "key", "okey", "op")})
        return frame.with_row_index("ridx").filter(_NOT_DDL).with_row_index("eidx").with_columns(_key_hash())

    @cached_property
    def event_rows(self) -> Sequence[ChangeEvent]:
        """``events``' rows as ``ChangeEvent`` objects, turned into Python when looked at."""
        return _Indexed(self.elog, self.event_keys["ridx"])


_NOT_DDL = pl.col("op") != "ddl"
_VIEWS = [pl.lit(True).alias("vb"), pl.lit(True).alias("va")]


def _ledger_frame(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.drop("rolled").with_row_index("lseq").with_columns(
        _key_hash(), *_VIEWS)


_BASE_SCHEMA = {"table": pl.String, "key": pl.String, "okey": pl.String, "op": pl.String, "rbh": pl.UInt64,
                "rah": pl.UInt64}
_LEDGER_SCHEMA = {**_BASE_SCHEMA, "txid": pl.Int64, "issued_at": pl.Int64,
                  "rolled": pl.Boolean}
_EVENT_SCHEMA = {**_BASE_SCHEMA, "etx": pl.String, "captured_at": pl.Int64}


def _base(part: Any, n: int, tokens: Mapping[str, frozenset[str]], runs: list | None = None,
          images: bool = True) -> pl.DataFrame:
    """table, key (canonical string), op and (``images``) image hashes of one part, run by run."""
    frames = []
    for start, stop, batch in (runs if runs is not None else _row_batches(part)):
        m = stop - start
        if isinstance(batch, RowBatch):
            rows = part[start:stop]
            table_op = {"table": [r.table for r in rows], "op": [r.op for r in rows]}
            okey = pl.Series([None if getattr(r, "old_key", None) is None else encode_key(r.old_key)
                              for r in rows], dtype=pl.String)
            key, before, after, tcols = batch.key, batch.before, batch.after, tokens.get(batch.table, frozenset())
        else:
            table_op = {"table": batch.column("table"), "op": batch.column("op")}
            names = batch.schema.names
            key = batch.column("key") if "key" in names else None
            okey = _old_keys(batch.column("old_key") if "old_key" in names else None, m)
            before = batch.column("before") if "before" in names else None
            after = batch.column("after") if "after" in names else None
            tables = pc.unique(batch.column("table")).to_pylist()
            tcols = frozenset().union(*(tokens.get(t, frozenset()) for t in tables))
        hashes = {"rbh": image_hash(before, m, tcols), "rah": image_hash(after, m, tcols)} if images else {}
        frames.append(pl.DataFrame({
            **table_op, "key": _encode_struct_like(key, m, False), "okey": okey, **hashes}).with_columns(
            pl.col("table").cast(pl.String), pl.col("op").cast(pl.String)))
    return pl.concat(frames) if len(frames) > 1 else frames[0]


def _old_keys(col: Any, n: int) -> pl.Series:
    """Canonical old keys of an Arrow ``old_key`` struct column (NULL where a row has none)."""
    if col is None or col.null_count == n:
        return pl.Series([None] * n, dtype=pl.String)
    out = encode_keys(col, n)
    if col.null_count:
        out = out.set(pl.Series(col.is_null().to_numpy(zero_copy_only=False)), None)  # type: ignore[arg-type]
    return out


#: consecutive Arrow parts of one schema are merged into one segment up to this many rows
_SEGMENT_ROWS = 65_536
#: Arrow parts this small are read as Python rows (a per-part cost would dwarf their rows')
_TINY = 64


class _Segments:
    """A log's parts with small consecutive Arrow parts of one schema merged (one per-part cost
    for many one-row batches): ``items`` (Python row lists or Arrow data), ``starts`` (first log
    row of each), ``members`` (the original parts of each)."""

    def __init__(self, log: RowLog) -> None:
        self.items: list[Any] = []
        self.members: list[list[Any]] = []
        starts: list[int] = []
        run: list[Any] = []
        self._strings: dict[int, tuple[pl.Series, pl.Series, pl.Series]] = {}
        self._runs: dict[int, list[tuple[int, int, Any]]] = {}
        rows: list[Any] = []
        for start, part in zip(log._starts, log.parts, strict=True):
            data = None if isinstance(part, list) else (part.data if hasattr(part, "data") else part)
            as_rows = part if isinstance(part, list) else _as_rows(log, part, len(data))
            if as_rows is not None:
                if run:
                    self._flush(run)
                    run = []
                if not rows:
                    starts.append(start)
                rows.extend(as_rows)
                continue
            if rows:
                self.items.append(rows)
                self.members.append([rows])
                rows = []
            if run and data is not None and data.schema == _data(run[0]).schema \
                    and sum(len(_data(r)) for r in run) + len(data) <= _SEGMENT_ROWS:
                run.append(part)
                continue
            if run:
                self._flush(run)
                run = []
            starts.append(start)
            run = [part]
        if run:
            self._flush(run)
        if rows:
            self.items.append(rows)
            self.members.append([rows])
        self.starts = np.asarray(starts, dtype=np.int64)

    def runs(self, i: int) -> list[tuple[int, int, Any]]:
        """Segment ``i`` as runs ``(start, stop, batch)`` of one table and shape, split once."""
        if i not in self._runs:
            self._runs[i] = _row_batches(self.items[i])
        return self._runs[i]

    def strings(self, i: int) -> tuple[pl.Series, pl.Series, pl.Series]:
        """Canonical (key, before, after) strings of a segment of Python rows, encoded once."""
        if i not in self._strings:
            parts = [encode_parts(b, stop - start) for start, stop, b in self.runs(i)]
            self._strings[i] = tuple(pl.concat([p[j] for p in parts]) for j in range(3))  # type: ignore[assignment]
        return self._strings[i]

    def _flush(self, run: list[Any]) -> None:
        datas = [_data(r) for r in run]
        if len(datas) == 1:
            merged = datas[0]
        else:
            merged = pa.Table.from_batches([b for d in datas for b in (
                d.to_batches() if isinstance(d, pa.Table) else [d])]).combine_chunks()
        self.items.append(merged)
        self.members.append(run)


def _as_rows(log: RowLog, part: Any, n: int) -> list[Any] | None:
    """A tiny Arrow part as Python rows; None when large, or when a value has no exact Python
    form (a timestamp with nanoseconds): then it stays Arrow."""
    if n >= _TINY:
        return None
    try:
        return [log._to_row(part, j) for j in range(n)]
    except (ValueError, TypeError, OverflowError, pa.ArrowException):
        return None


def _data(part: Any) -> Any:
    return part.data if hasattr(part, "data") else part


def _segments(log: RowLog) -> _Segments:
    cached = getattr(log, "_cdc_segments", None)
    if cached is not None and cached[0] == len(log.parts):
        return cached[1]
    segs = _Segments(log)
    log._cdc_segments = (len(log.parts), segs)  # type: ignore[attr-defined]
    return segs


def _ledger_segment(segs: _Segments, i: int, tokens: Mapping[str, frozenset[str]]) -> pl.DataFrame:
    item, members = segs.items[i], segs.members[i]
    if isinstance(item, list):
        return _ledger_part(item, tokens, segs.runs(i))
    sizes = [len(m) for m in members]

    def each(values: list) -> np.ndarray:
        return np.repeat(np.asarray(values), sizes)
    return _base(item, batch_len(item), tokens).with_columns(
        pl.Series("txid", each([m.txid for m in members]), pl.Int64),
        pl.Series("issued_at", each([m.commit_issued_at for m in members]), pl.Int64),
        pl.Series("rolled", each([m.rolled_back for m in members]), pl.Boolean))


def _ledger_part(part: Any, tokens: Mapping[str, frozenset[str]], runs: list | None = None) -> pl.DataFrame:
    if isinstance(part, list):
        return _base(part, len(part), tokens, runs).with_columns(
            pl.Series("txid", [c.txid for c in part], pl.Int64),
            pl.Series("issued_at", [c.commit_issued_at for c in part], pl.Int64),
            pl.Series("rolled", [c.rolled_back for c in part], pl.Boolean))
    return _base(part, len(part), tokens).with_columns(
        pl.lit(part.txid, pl.Int64).alias("txid"),
        pl.lit(part.commit_issued_at, pl.Int64).alias("issued_at"), pl.lit(part.rolled_back).alias("rolled"))


def _event_part(part: Any, tokens: Mapping[str, frozenset[str]], runs: list | None = None) -> pl.DataFrame:
    if isinstance(part, list):
        return _base(part, len(part), tokens, runs).with_columns(
            pl.Series("etx", [repr(e.txid) for e in part], pl.String),
            pl.Series("captured_at", [e.captured_at for e in part], pl.Int64))
    n = batch_len(part)
    names = part.schema.names
    captured = part.column("captured_at") if "captured_at" in names else pa.nulls(n, pa.int64())
    return _base(part, n, tokens).with_columns(
        values_repr(part.column("txid") if "txid" in names else None, n).alias("etx"),
        pl.Series("captured_at", captured).cast(pl.Int64).fill_null(0))


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
    """Wrap ledger changes and captured events for ``check``: their frames of keys and image
    hashes are encoded on demand, column by column (``harness.columnar``: Arrow batches as they
    are, Python rows run by run), and only when the general path needs them.

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

    return EncodedHistory(llog, elog, epochs, acked_at_epoch)


# -- content, read again for the few rows that need it --------------------------------------------

def _locate(log: RowLog, ridx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Part number and row within the part of each log row."""
    starts = _segments(log).starts
    p = np.searchsorted(starts, ridx, side="right") - 1
    return p, ridx - starts[p]


def _take(part: Any, local: np.ndarray) -> Any:
    """Rows of a part: a list of Python rows, or an Arrow batch of them."""
    if isinstance(part, list):
        return [part[int(j)] for j in local]
    data = part.data if hasattr(part, "data") else part
    return data.take(pa.array(local))


def _strings(log: RowLog, ridx: np.ndarray) -> tuple[list, list, list]:
    """Canonical (key, before, after) strings of log rows ``ridx``, in that order."""
    keys: list = [None] * len(ridx)
    befores: list = [None] * len(ridx)
    afters: list = [None] * len(ridx)
    if not len(ridx):
        return keys, befores, afters
    parts, local = _locate(log, ridx)
    segs = _segments(log)
    for p in np.unique(parts):
        at = np.flatnonzero(parts == p)
        k, b, a = _segment_strings(segs, int(p), local[at])
        for out, vals in ((keys, k), (befores, b), (afters, a)):
            for i, v in zip(at.tolist(), vals.to_list(), strict=True):
                out[i] = v
    return keys, befores, afters


def _segment_strings(segs: _Segments, p: int, local: np.ndarray) -> tuple[pl.Series, pl.Series, pl.Series]:
    """Canonical (key, before, after) strings of rows ``local`` of segment ``p``."""
    item = segs.items[p]
    if isinstance(item, list):
        idx = pl.Series(local)
        return tuple(s.gather(idx) for s in segs.strings(p))  # type: ignore[return-value]
    sub = _take(item, local)
    return encode_parts(sub, sub.num_rows)


def _with_content(df: pl.DataFrame, log: RowLog) -> pl.DataFrame:
    """``df`` with canonical ``before``/``after`` strings as its view has them (for the few rows
    the checker names or matches exactly)."""
    _, b, a = _strings(log, df["ridx"].to_numpy())
    return df.with_columns(pl.Series("before", b, pl.String), pl.Series("after", a, pl.String)).with_columns(
        pl.when(pl.col("vb")).then(pl.col("before")).alias("before"),
        pl.when(pl.col("va")).then(pl.col("after")).alias("after"))


def _side_take(part: Any, side: str, local: np.ndarray) -> Any:
    """The ``side`` image column of an Arrow part at rows ``local`` (None: the part has none)."""
    data = part.data if hasattr(part, "data") else part
    if side not in data.schema.names:
        return None
    col = data.column(side)
    if len(local) == len(col) and local[0] == 0 and local[-1] == len(col) - 1 \
            and np.array_equal(local, np.arange(len(col))):
        return col
    return col.take(pa.array(local))


def _same_side(log_a: RowLog, ra: np.ndarray, log_b: RowLog, rb: np.ndarray, side: str) -> np.ndarray:
    """Whether the ``side`` images of log rows ``ra`` and ``rb`` (pairwise) have equal canonical
    strings: native values compared part pair by part pair, canonical strings where the parts'
    shapes or kinds differ or a part holds Python rows."""
    out = np.zeros(len(ra), dtype=bool)
    if not len(ra):
        return out
    pa_, la = _locate(log_a, ra)
    pb, lb = _locate(log_b, rb)
    segs_a, segs_b = _segments(log_a), _segments(log_b)
    for p, q, at in _part_pairs(pa_, pb, len(segs_b.items)):
        part_a, part_b = segs_a.items[p], segs_b.items[q]
        if isinstance(part_a, list) or isinstance(part_b, list):
            same = _same_in_runs(segs_a, p, la[at], segs_b, q, lb[at], side)
        else:
            same = same_images(_side_take(part_a, side, la[at]), _side_take(part_b, side, lb[at]), len(at))
        if same is None:
            _, ba, aa = _segment_strings(_segments(log_a), p, la[at])
            _, bb, ab = _segment_strings(_segments(log_b), q, lb[at])
            x, y = (ba, bb) if side == "before" else (aa, ab)
            same = x.eq_missing(y)
        out[at] = same.to_numpy()
    return out


def _run_side(segs: _Segments, p: int, local: np.ndarray, side: str) -> tuple[np.ndarray, list[Any]]:
    """Run number of each row of segment ``p`` and, per run, (its first row, its ``side`` column)."""
    item = segs.items[p]
    if not isinstance(item, list):
        return np.zeros(len(local), dtype=np.int64), [(0, item.column(side) if side in item.schema.names else None)]
    runs = segs.runs(p)
    starts = np.asarray([r[0] for r in runs], dtype=np.int64)
    return np.searchsorted(starts, local, side="right") - 1, [(r[0], getattr(r[2], side)) for r in runs]


def _struct_take(s: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of a struct-like column (Arrow, or a run's columns of Python values)."""
    if s is None:
        return None
    if isinstance(s, _TokenStruct):
        arrays = [a.take(pa.array(idx)) if isinstance(a, (pa.Array, pa.ChunkedArray))
                  else Tokens([a.tokens[i] for i in idx]) for a in s.arrays]
        return _TokenStruct(s.names, arrays, [s.valid[i] for i in idx])
    return s.take(pa.array(idx))


def _same_in_runs(segs_a: _Segments, p: int, la: np.ndarray, segs_b: _Segments, q: int, lb: np.ndarray,
                  side: str) -> pl.Series | None:
    """``same_images`` run pair by run pair, where a segment holds Python rows (None: some run
    pair's shapes or kinds differ)."""
    run_a, cols_a = _run_side(segs_a, p, la, side)
    run_b, cols_b = _run_side(segs_b, q, lb, side)
    out = np.zeros(len(la), dtype=bool)
    for i, j, at in _part_pairs(run_a, run_b, len(cols_b)):
        (start_a, col_a), (start_b, col_b) = cols_a[i], cols_b[j]
        same = same_images(_struct_take(col_a, la[at] - start_a), _struct_take(col_b, lb[at] - start_b), len(at))
        if same is None:
            return None
        out[at] = same.to_numpy()
    return pl.Series(out)


def _part_pairs(pa_: np.ndarray, pb: np.ndarray, nb: int) -> list[tuple[int, int, np.ndarray]]:
    """Group pair positions by (part of a, part of b): (p, q, positions)."""
    key = pa_.astype(np.int64) * (nb + 1) + pb
    if key.min() == key.max():
        return [(int(pa_[0]), int(pb[0]), np.arange(len(key)))]
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    return [(int(pa_[g[0]]), int(pb[g[0]]), g) for g in np.split(order, bounds)]


def _same_view(df: pl.DataFrame, log_a: RowLog, log_b: RowLog, side: str, sfx: str = "_e") -> np.ndarray:
    """Pairwise equality of one image as each row's view has it (``vb``/``va`` False: none)."""
    v, r = ("vb", "rbh") if side == "before" else ("va", "rah")
    none_a = (~df[v] | df[r].is_null()).to_numpy()
    none_b = (~df[v + sfx] | df[r + sfx].is_null()).to_numpy()
    out = none_a & none_b
    both = np.flatnonzero(~none_a & ~none_b)
    if len(both):
        out[both] = _same_side(log_a, df["ridx"].to_numpy()[both], log_b, df["ridx" + sfx].to_numpy()[both], side)
    return out


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
    out = {"table": e.table, "op": e.op, "key": jsonable(e.key), "before": jsonable(e.before),
           "after": jsonable(e.after), "position": list(e.position), "txid": jsonable(e.txid)}
    if getattr(e, "old_key", None) is not None:
        out["old_key"] = jsonable(e.old_key)
    return out


def _change_json(c: LedgerChange) -> dict:
    out = {"table": c.table, "op": c.op, "key": jsonable(c.key), "before": jsonable(c.before),
           "after": jsonable(c.after), "txid": c.txid, "commit_seq": c.commit_seq}
    if c.old_key is not None:
        out["old_key"] = jsonable(c.old_key)
    return out


def _content(df: pl.DataFrame, order_col: str, log: RowLog) -> pl.DataFrame:
    """Add ``h0``, a u64 hash of the content (table, key, op, before, after), ``occ``, the
    occurrence number of that exact content (n-th pairs with n-th), and ``h``: ``h0`` for a
    first occurrence, else ``h0`` folded with ``occ``. Occurrences are counted on the content
    itself (canonical strings of the rows whose ``h0`` repeats), never on the hash alone."""
    content = _hash(pl.struct("kh", "okey", "op", *_view_hashes())).alias("h0")
    # slice by slice: hashing the struct builds a row form of its columns (about 1 GB at 10M rows)
    df = df.with_columns(pl.concat([df.slice(i, _CONFIRM_CHUNK).select(content).to_series()
                                    for i in range(0, df.height, _CONFIRM_CHUNK)])
                         if df.height > _CONFIRM_CHUNK else content)
    if _all_distinct(df["h0"]):
        return df.with_columns(pl.col("h0").alias("h"), pl.lit(1, pl.UInt32).alias("occ"), _UNIQUE)
    occ = pl.col(order_col).rank("ordinal").over(CONTENT).cast(pl.UInt32)
    rep = df["h0"].is_duplicated()
    ranked = _with_content(df.filter(rep), log).with_columns(occ.alias("occ")).with_columns(
        pl.when(pl.col("occ") == 1).then(pl.col("h0")).otherwise(_hash(pl.struct("h0", "occ"))).alias("h"))
    single = df.filter(~rep).with_columns(pl.col("h0").alias("h"), pl.lit(1, pl.UInt32).alias("occ"))
    return pl.concat([single, ranked.select(single.columns)]).sort(order_col).with_columns(
        pl.lit(False).alias("unique_h"))


_UNIQUE = pl.lit(True).alias("unique_h")


def _all_distinct(s: pl.Series) -> bool:
    """Whether no value repeats, by sorting a copy (a hash set of 10M u64 costs several times
    the 80 MB of the copy)."""
    if s.len() < 2:
        return True
    s = s.sort()
    return not (s.slice(1) == s.slice(0, s.len() - 1)).any()


#: hash matches are confirmed on their content this many pairs at a time (memory stays bounded)
_CONFIRM_CHUNK = 1 << 20
_IMG = ["ridx", "vb", "va", "rbh", "rah"]
_SAME = ["table", "key", "op", "occ"]


#: a history with at least this many committed changes or events joins ledger and events on their
#: content hash out of core (``spill_wanted``); below it the join runs in memory
SPILL_ROWS = 4_000_000
#: DuckDB's memory limit for that join (it spills to disk beyond it)
SPILL_MEMORY = "512MB"
#: ``CDC_CHECK_SPILL``: ``1`` spills every general-path check, ``0`` none, unset: from ``SPILL_ROWS``
SPILL_ENV = "CDC_CHECK_SPILL"


def size_switch(env: str, rows: int, threshold: int, verb: str) -> bool:
    """A general-path choice by size: the variable ``env`` (1 or 0) decides, else ``rows >=
    threshold``; any other value is refused with the fix (``verb``: what 1 does)."""
    forced = os.environ.get(env, "").strip()
    if forced not in ("", "0", "1"):
        raise ValueError(f"{env}={forced!r}: set it to 1 (always {verb}), 0 (never) or leave it unset "
                         f"({verb} from {threshold:,} rows)")
    return forced == "1" or (not forced and rows >= threshold)


def spill_wanted(rows: int) -> bool:
    """Whether a general-path check of ``rows`` (the larger side) joins out of core:
    ``CDC_CHECK_SPILL`` (1 or 0) decides, else ``rows >= SPILL_ROWS``."""
    return size_switch(SPILL_ENV, rows, SPILL_ROWS, "spill")


def _spilled_join(Lh: pl.DataFrame, Eh: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
    """The exact matching's join on the content hash, run by DuckDB out of core: each side's
    (hash, row position) written to Parquet in a temp directory (``CDC_CHECK_SPILL_DIR``, else
    the system's), joined under ``SPILL_MEMORY`` spilling there, the pairs read back in ledger
    order (as polars' join keeping the left order gives them). DuckDB was chosen for this on
    ``test_checker_spill_engines``: the only engine whose memory stayed bounded at 30M rows."""
    try:
        import duckdb
    except ImportError as e:  # pragma: no cover - duckdb is a dependency
        raise RuntimeError(f"the checker's spill path needs duckdb ({e}): reinstall the project "
                           f"(make setup), or set {SPILL_ENV}=0 to check in memory") from e
    with tempfile.TemporaryDirectory(prefix="cdc-check-spill-", dir=os.environ.get("CDC_CHECK_SPILL_DIR")) as d:
        root = Path(d)
        Lh.select("h").with_row_index("lp").write_parquet(root / "l.parquet")
        Eh.select("h").with_row_index("ep").write_parquet(root / "e.parquet")
        con = duckdb.connect()
        try:
            con.execute(f"SET memory_limit='{SPILL_MEMORY}'")
            con.execute(f"SET temp_directory='{root / 'spill'}'")
            con.execute(f"COPY (SELECT lp, ep FROM read_parquet('{root / 'l.parquet'}') "
                        f"JOIN read_parquet('{root / 'e.parquet'}') USING (h) ORDER BY lp, ep) "
                        f"TO '{root / 'pairs.parquet'}' (FORMAT parquet)")
        finally:
            con.close()
        pairs = pl.read_parquet(root / "pairs.parquet")
    return pairs["lp"].cast(pl.UInt32), pairs["ep"].cast(pl.UInt32)


def _confirm_chunk(pairs: pl.DataFrame, history: EncodedHistory) -> np.ndarray:
    """Which hash matches have equal content too (a collision is no match): table, key, op and
    occurrence as they are, images on their native values (``_same_view``)."""
    same = pairs.select(pl.all_horizontal([pl.col(c).eq_missing(pl.col(f"{c}_e")) for c in _SAME])).to_series()
    ok = same.to_numpy().copy()
    for side in ("before", "after"):
        at = np.flatnonzero(ok)
        if len(at) == len(ok):
            ok = _same_view(pairs, history.llog, history.elog, side)
        elif len(at):
            ok[at] = _same_view(pairs[at], history.llog, history.elog, side)
    return ok


def _rows(df: pl.DataFrame, cols: list[str], at: pl.Series | None, start: int, n: int) -> pl.DataFrame:
    """Rows of ``df`` (columns ``cols``) at positions ``at[start:start + n]``, or rows
    ``start:start + n`` when ``at`` is None."""
    if at is None:
        return df.select(cols).slice(start, n)
    return df.select(pl.col(cols).gather(at.slice(start, n)))


def _matched(Lh: pl.DataFrame, Eh: pl.DataFrame, lp: pl.Series | None, ep: pl.Series | None,
             history: EncodedHistory) -> tuple[pl.DataFrame, pl.Series]:
    """The confirmed pairs of ledger rows ``lp`` and event rows ``ep`` (positions in ``Lh`` /
    ``Eh``, paired on their content hash; None: row n with row n), in ledger order, with only
    what the later stages read (``lseq``, ``eidx``, ``va``), and their lags (ns). Candidates are
    confirmed ``_CONFIRM_CHUNK`` at a time, so the frames compared never hold both sides whole."""
    n = Lh.height if lp is None else lp.len()
    oks = []
    for start in range(0, n, _CONFIRM_CHUNK):
        m = min(_CONFIRM_CHUNK, n - start)
        a = _rows(Lh, [*_SAME, *_IMG], lp, start, m)
        b = _rows(Eh, [*_SAME, *_IMG], ep, start, m)
        oks.append(_confirm_chunk(pl.concat([a, b.rename({c: f"{c}_e" for c in b.columns})],
                                            how="horizontal"), history))
        del a, b
    ok = np.concatenate(oks) if oks else np.zeros(0, dtype=bool)
    if not ok.all():
        keep = pl.Series(ok)
        lp = (pl.int_range(n, eager=True, dtype=pl.UInt32) if lp is None else lp).filter(keep)
        ep = (pl.int_range(n, eager=True, dtype=pl.UInt32) if ep is None else ep).filter(keep)
        n = lp.len()
    issued = _rows(Lh, ["issued_at"], lp, 0, n).to_series()
    lag_ns = (_rows(Eh, ["captured_at"], ep, 0, n).to_series() - issued).filter(issued > 0)
    del issued
    return pl.concat([_rows(Lh, ["lseq", "va"], lp, 0, n), _rows(Eh, ["eidx"], ep, 0, n)], how="horizontal"), lag_ns


def _positions(df: pl.DataFrame, col: str, values: pl.Series) -> pl.Series:
    """Row positions in ``df`` of ``values`` of its ascending column ``col`` (``lseq``, ``eidx``)."""
    own = df[col]
    if own.len() and own[0] == 0 and own[-1] == own.len() - 1:
        return values  # the column is the row index
    return pl.Series(np.searchsorted(own.to_numpy(), values.to_numpy()), dtype=pl.UInt32)


def _pair_columns(pairs: pl.DataFrame, Lh: pl.DataFrame, Eh: pl.DataFrame, lcols: list[str],
                  ecols: list[str]) -> pl.DataFrame:
    """``pairs`` (``lseq``, ``eidx``) with the ledger columns ``lcols`` of their change and the
    event columns ``ecols`` of their event (a pair shares its table and key on both sides)."""
    out = [pairs]
    if lcols:
        out.append(Lh.select(pl.col(lcols).gather(_positions(Lh, "lseq", pairs["lseq"]))))
    if ecols:
        out.append(Eh.select(pl.col(ecols).gather(_positions(Eh, "eidx", pairs["eidx"]))))
    return pl.concat(out, how="horizontal") if len(out) > 1 else pairs


def _without(df: pl.DataFrame, col: str, used: pl.Series) -> pl.DataFrame:
    """Rows of ``df`` whose ``col`` is not in ``used``."""
    if used.len() == df.height:
        return df.clear()
    return df.filter(~pl.col(col).is_in(used.implode()))


def _capability_view(df: pl.DataFrame, capabilities: Capabilities) -> pl.DataFrame:
    """Ledger rows as the approach can give them: split updates (all, or only key-changing
    ones), no before image unless full."""
    if capabilities.splits_updates:
        df = _split_ledger_updates(df, only_key_changes=capabilities.updates != "delete+insert")
    if capabilities.before_image != "full":
        df = _no_before(df)
    return df


def _no_before(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(pl.lit(False).alias("vb"))


def check(
    history: EncodedHistory,
    capabilities: Capabilities,
    final_state: FinalState | None = None,
) -> Verdict:
    """Compare an encoded history under ``capabilities``; return the verdict with lag figures.

    ``final_state`` is the engine's state read after the run (rows by key tuple); when None the
    replay is compared with the ledger's own final state. Content is matched on 64-bit hashes
    of the native values and every match is confirmed on the content itself, so a hash
    collision cannot hide an anomaly (``tests/test_columnar.py::test_hash_collisions_are_told_apart``).
    A large history is checked one key partition at a time (``harness.partitioned``), with the
    same verdict.
    """
    found = _Anomalies()
    fast = aligned(history.llog, history.elog, capabilities)
    if fast is not None:
        return _check_aligned(found, fast, history, capabilities, final_state)
    from harness.partitioned import check_partitioned, partition_wanted

    if partition_wanted(max(len(history.llog), len(history.elog))):
        verdict = check_partitioned(history, capabilities, final_state)
        if verdict is not None:
            return verdict
    L = _capability_view(history.ledger, capabilities)
    E = history.events
    if capabilities.before_image != "full":
        E = _no_before(E)
    spill = spill_wanted(max(L.height, E.height))

    # 1. exact matching by content and occurrence (in ledger order)
    Lh = _content(L, "lseq", history.llog)
    Eh = _content(E, "eidx", history.elog)
    lp, ep = _hash_join(Lh, Eh, spill)
    matched, lag_ns = _matched(Lh, Eh, lp, ep, history)
    del lp, ep
    left = _leftovers(Lh, Eh, matched, history, capabilities)
    _report_duplicates(found, left, history)
    rest, l_unmatched = left.rest, left.l_unmatched

    # 2. updates captured as delete + insert
    if capabilities.updates == "update" and rest.height and l_unmatched.height:
        rest, l_unmatched = _split_updates(found, rest, l_unmatched, history)

    # 3. near matches, lost and phantoms (only anomalous rows reach this Python loop)
    paired = _classify_leftovers(found, rest, l_unmatched, history, capabilities)

    if capabilities.before_image == "key" and matched.height:
        _check_partial_before(found, matched, history, capabilities)

    # 4. order and transaction boundaries
    # (pairs are positions; the columns each check reads are gathered from Lh/Eh when it runs)
    pairs = _with_paired(matched.select("lseq", "eidx"), paired)
    _check_order(found, pairs, Lh, history)
    if capabilities.transactions:
        _check_transactions(found, _pair_columns(pairs.sort("eidx"), Lh, Eh, ["txid"], ["etx"]), history)

    # 5. replay
    split = capabilities.splits_updates
    ops = pl.col("op") == "truncate"
    if _replay_needed(found, final_state, l_unmatched.height, left.e_unmatched,
                      history.ledger.select(ops.any()).item() or E.select(ops.any()).item()):
        _check_replay(found, history, final_state, pairs, split, _confirmed(matched, split))

    measurements = lag_summary(lag_ns)
    measurements.update(events=E.height, committed=L.height, matched=matched.height, redelivered=left.redelivered,
                        check_path="general-spill" if spill else "general")
    return _verdict(found, measurements)


def _hash_join(Lh: pl.DataFrame, Eh: pl.DataFrame, spill: bool) -> tuple[pl.Series | None, pl.Series | None]:
    """Candidate pairs (positions in ``Lh``, ``Eh``) of equal content hash, in ledger order;
    (None, None) when the capture is in commit order with every hash unique (row n with row n)."""
    if (Lh.height == Eh.height and Lh.height and Lh["unique_h"][0] and Eh["unique_h"][0]
            and (Lh["h"] == Eh["h"]).all()):
        return None, None  # the join would pair row n with row n
    if spill:  # the join out of core (see ``spill_wanted``)
        return _spilled_join(Lh, Eh)
    # the join on the hash alone (positions only: the content is read chunk by chunk to confirm)
    j = Lh.select("h").with_row_index("lp").join(Eh.select("h").with_row_index("ep"), on="h", how="inner",
                                                 maintain_order="left")
    return j["lp"], j["ep"]


def _with_paired(pairs: pl.DataFrame, paired: pl.DataFrame) -> pl.DataFrame:
    """Matched pairs (``lseq``, ``eidx``) and the near pairs of ``_classify_leftovers``, in ledger order."""
    if not paired.height:
        return pairs
    return pl.concat([pairs, paired.select(pl.col("lseq").cast(pairs["lseq"].dtype),
                                           pl.col("eidx").cast(pairs["eidx"].dtype))]).sort("lseq")


def _confirmed(matched: pl.DataFrame, split: bool) -> pl.DataFrame:
    """Matched pairs whose after images are confirmed equal (``lseq`` of the unsplit ledger)."""
    return matched.filter("va").select(
        (pl.col("lseq") // 2 if split else pl.col("lseq")).cast(pl.UInt32).alias("lseq"), "eidx")


def _replay_needed(found: _Anomalies, final_state: FinalState | None, l_unmatched: int, e_unmatched: int,
                   truncates: bool) -> bool:
    """Against the ledger's own final state the replay is implied when every change matched its
    event on content (per key in order), nothing is anomalous and no truncate moves whole tables."""
    return bool(final_state is not None or found.counts or l_unmatched or e_unmatched or truncates)


def _verdict(found: _Anomalies, measurements: dict[str, Any]) -> Verdict:
    counts = {k: found.counts[k] for k in ANOMALIES if found.counts.get(k)}
    return Verdict(status="fail" if counts else "pass", anomalies=counts,
                   examples={k: found.examples[k] for k in counts}, measurements=measurements)


@dataclass
class _Leftovers:
    """What the exact matching left: events and changes unpaired (``rest``, ``l_unmatched``, with
    canonical images), surplus exact copies (``surplus``: of a committed change; ``repeats``: of
    an earlier event), how many of those were excused redelivery, and ``e_unmatched`` events
    unpaired before duplicates were taken out."""

    rest: pl.DataFrame
    l_unmatched: pl.DataFrame
    surplus: pl.DataFrame | None
    repeats: pl.DataFrame | None
    redelivered: int
    e_unmatched: int


def _leftovers(Lh: pl.DataFrame, Eh: pl.DataFrame, matched: pl.DataFrame, history: Any,
               caps: Capabilities) -> _Leftovers:
    """Split what the exact matching left into duplicates and the rest (each on its content:
    a duplicate's copies share its key, so this runs per key partition as well)."""
    e_unmatched = _without(Eh, "eidx", matched["eidx"])
    l_unmatched = _with_content(_without(Lh, "lseq", matched["lseq"]), history.llog)
    n_unmatched = e_unmatched.height
    if not n_unmatched:
        return _Leftovers(_with_content(e_unmatched, history.elog), l_unmatched, None, None, 0, 0)
    e_unmatched = _with_content(e_unmatched, history.elog)
    same_h0 = _with_content(Lh.filter(pl.col("h0").is_in(e_unmatched["h0"].implode())), history.llog)
    in_ledger = e_unmatched.join(same_h0.select(CONTENT).unique(), on=CONTENT, how="semi", nulls_equal=True,
                                 maintain_order="left")
    surplus, redelivered = in_ledger, 0
    if caps.delivery == "at-least-once" and in_ledger.height:
        surplus = _unbounded_repeats(in_ledger, Eh, history)
        redelivered = in_ledger.height - surplus.height
    rest = _without(e_unmatched, "eidx", in_ledger["eidx"])
    # repeats of an event that matches nothing committed (a partial image, say): the first
    # delivery is judged below; a repeat is redelivery or duplicate by the same rule
    repeats = _later_deliveries(rest, Eh, history)
    unexcused = repeats
    if repeats.height:
        if caps.delivery == "at-least-once":
            unexcused = _unbounded_repeats(repeats, Eh, history)
            redelivered += repeats.height - unexcused.height
        rest = _without(rest, "eidx", repeats["eidx"])
    return _Leftovers(rest, l_unmatched, surplus, unexcused, redelivered, n_unmatched)


def _report_duplicates(found: _Anomalies, left: _Leftovers, history: Any) -> None:
    if left.surplus is not None:
        _add_events(found, "duplicate", left.surplus, history, "captured more often than committed "
                    "(not a redelivery after a restart of an unacknowledged position)")
    if left.repeats is not None:
        _add_events(found, "duplicate", left.repeats, history, "captured again at the same position "
                    "(not a redelivery after a restart of an unacknowledged position)")


def _check_aligned(found: _Anomalies, fast: Aligned, history: EncodedHistory, capabilities: Capabilities,
                   final_state: FinalState | None) -> Verdict:
    """The verdict when every event equals the committed change of its rank (``harness.aligned``):
    only transaction boundaries and the engine's final state remain to be checked."""
    if capabilities.transactions and torn(fast):  # the general check names the torn transactions
        pairs = pl.DataFrame({"txid": fast.txid, "eidx": np.arange(fast.n, dtype=np.uint32), "etx": fast.etx})
        _check_transactions(found, pairs, history)
    if final_state is not None:  # without it, the replay is implied by the exact matches
        _check_replay(found, history, final_state)
    lag_ns = pl.Series(fast.captured_at - fast.issued_at).filter(pl.Series(fast.issued_at > 0))
    measurements = lag_summary(lag_ns)
    measurements.update(events=fast.n, committed=fast.n, matched=fast.n, redelivered=0, check_path="aligned")
    return _verdict(found, measurements)


def lag_summary(lag_ns: pl.Series | Sequence[float]) -> dict[str, Any]:
    """Lag percentiles in ms (p50/p95/p99 linearly interpolated, max) and a 200-point CDF of
    nanosecond lags (one sort). The one percentile function of the suite and the benchmarks."""
    if not isinstance(lag_ns, pl.Series):
        lag_ns = pl.Series(list(lag_ns), dtype=pl.Float64)
    ms = (lag_ns.cast(pl.Float64) / 1e6).sort()
    return lag_summary_at(ms.len(), lambda ranks: ms.gather(ranks).to_list())


def lag_summary_at(n: int, pick: Any) -> dict[str, Any]:
    """``lag_summary`` of ``n`` lags given ``pick(ranks)``: the lags in ms (nanoseconds / 1e6, as
    floats) at those ranks of their ascending order (the lags may live elsewhere: in DuckDB)."""
    if n == 0:
        return {"lag_cdf": [], "lag_ms": {"p50": None, "p95": None, "p99": None, "max": None}}
    fractions = [i / 200 for i in range(1, 201)]
    ranks = [int(f * (n - 1)) for f in fractions]
    qs = {q: (int(q * (n - 1)), min(int(q * (n - 1)) + 1, n - 1)) for q in (0.50, 0.95, 0.99)}
    wanted = sorted({*ranks, *(r for pair in qs.values() for r in pair), n - 1})
    at = dict(zip(wanted, pick(wanted), strict=True))
    cdf = [[round(float(at[r]), 4), f] for r, f in zip(ranks, fractions, strict=True)] if n > 1 else []

    def linear(q: float) -> float:
        x = q * (n - 1)
        lo = int(x)
        a, b = at[lo], at[min(lo + 1, n - 1)]
        return round(float(a + (b - a) * (x - lo)), 3)

    return {"lag_cdf": cdf, "lag_ms": {
        "p50": linear(0.50), "p95": linear(0.95), "p99": linear(0.99), "max": round(float(at[n - 1]), 3),
    }}


def _later_deliveries(rows: pl.DataFrame, events: pl.DataFrame, history: EncodedHistory) -> pl.DataFrame:
    """The rows of ``rows`` that repeat an earlier event exactly: same content, same position."""
    if not rows.height:
        return rows
    same = _with_content(events.filter(pl.col("h0").is_in(rows["h0"].implode())), history.elog)
    same = same.with_columns(pl.Series("pos", [repr(tuple(history.event_rows[i].position))
                                               for i in same["eidx"].to_list()], pl.String))
    later = same.sort("eidx").with_columns(
        pl.col("eidx").rank("ordinal").over([*CONTENT, "pos"]).alias("nth")).filter(pl.col("nth") > 1)
    return rows.filter(pl.col("eidx").is_in(later["eidx"].implode()))


def _unbounded_repeats(repeats: pl.DataFrame, events: pl.DataFrame, history: EncodedHistory) -> pl.DataFrame:
    """The repeated events at-least-once delivery does not excuse.

    A repeat is excused only when it is an exact repeat at the same position of the previous
    delivery of that content, a reader restart lies between the two (its epoch is higher), and
    its position had not been acknowledged before the restart that began its epoch.
    """
    same = _with_content(events.filter(pl.col("h0").is_in(repeats["h0"].implode())), history.elog)
    same = same.with_columns(pl.Series("pos", [repr(tuple(history.event_rows[i].position))
                                               for i in same["eidx"].to_list()], pl.String))
    prev = same.select("eidx", *CONTENT, "pos", "epoch").sort("eidx").with_columns(
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


def _split_ledger_updates(L: pl.DataFrame, only_key_changes: bool = False) -> pl.DataFrame:
    """Expand committed updates into delete(before) + insert(after) for delete+insert approaches
    (``only_key_changes``: only updates that changed the key; their delete is of the old key).
    Ledger positions are doubled (``lseq`` 2n: the change or its delete, 2n+1: its insert)."""
    is_split = pl.col("op") == "update"
    if only_key_changes:
        is_split = is_split & pl.col("okey").is_not_null()
    upd = L.filter(is_split)
    old = pl.col("okey").is_not_null()
    dels = upd.with_columns(pl.lit("delete").alias("op"), pl.lit(False).alias("va"),
                            (pl.col("lseq") * 2).alias("lseq2"),
                            pl.when(old).then(pl.col("okey")).otherwise(pl.col("key")).alias("key"),
                            pl.lit(None, pl.String).alias("okey")).with_columns(_key_hash())
    ins = upd.with_columns(pl.lit("insert").alias("op"), pl.lit(False).alias("vb"),
                           (pl.col("lseq") * 2 + 1).alias("lseq2"), pl.lit(None, pl.String).alias("okey"))
    keep = L.filter(~is_split).with_columns((pl.col("lseq") * 2).alias("lseq2"))
    out = pl.concat([keep, dels, ins]).sort("lseq2")
    return out.drop("lseq").rename({"lseq2": "lseq"}).with_columns(
        pl.col("lseq").cast(pl.UInt32))


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
    updates = l_un.filter(pl.col("op") == "update").select("table", "key", "okey", "before", "after", "lseq")
    hit = combos.join(updates.filter(pl.col("okey").is_null()).drop("okey"),
                      on=["table", "key", "before", "after"], how="inner", nulls_equal=True)
    moved = updates.filter(pl.col("okey").is_not_null())
    if moved.height:  # a key change: delete of the old key, insert of the new one
        dels = rest.filter(pl.col("op") == "delete").select(
            "table", pl.col("key").alias("okey"), "before", pl.col("eidx").alias("d_eidx"))
        ins = rest.filter(pl.col("op") == "insert").select("table", "key", "after", pl.col("eidx").alias("i_eidx"))
        both = moved.join(dels, on=["table", "okey", "before"], how="inner", nulls_equal=True).join(
            ins, on=["table", "key", "after"], how="inner", nulls_equal=True)
        hit = pl.concat([hit, both.select(hit.columns)])
    hit = hit.unique("lseq", keep="first").unique("d_eidx", keep="first").unique("i_eidx", keep="first")
    if not hit.height:
        return rest, l_un
    examples = [{"why": "update captured as delete + insert",
                 "committed": _change_json(history.ledger_rows[r]),
                 "captured": [_event_json(history.event_rows[r2]) for r2 in (d, i)]}
                for r, d, i in hit.select("lseq", "d_eidx", "i_eidx").head(MAX_EXAMPLES).iter_rows()]
    touched = list(zip(hit["table"].to_list(), hit["key"].to_list(), strict=False))
    touched += [(history.event_rows[d].table, encode_key(history.event_rows[d].key)) for d in hit["d_eidx"].to_list()]
    found.add("op-mismatch", hit.height, examples, touched)
    used = pl.concat([hit["d_eidx"], hit["i_eidx"]]).to_frame("eidx")
    return rest.join(used, on="eidx", how="anti"), l_un.join(hit.select("lseq"), on="lseq", how="anti")


def _ledger_row(history: EncodedHistory, lseq: int, split: bool) -> LedgerChange:
    return history.ledger_rows[lseq // 2 if split else lseq]


def _classify_leftovers(found: _Anomalies, rest: pl.DataFrame, l_un: pl.DataFrame,
                        history: EncodedHistory, caps: Capabilities) -> pl.DataFrame:
    """Pair leftover events and changes per key and name each anomaly; return the pairs."""
    split = caps.splits_updates
    by_key: dict[tuple[str, str], list[dict]] = defaultdict(list)
    key_at: dict[int, tuple[str, str]] = {}
    for row in l_un.select("table", "key", "okey", "op", "lseq", "txid").iter_rows(named=True):
        by_key[(row["table"], row["key"])].append(row)
        key_at[row["lseq"]] = (row["table"], row["key"])
    rolled_view: set | None = None
    pairs: list[tuple] = []
    for row in rest.select(*CONTENT, "eidx", "etx").iter_rows(named=True):
        k = (row["table"], row["key"])
        e = history.event_rows[row["eidx"]]
        cands = by_key.get(k)
        if not cands:
            content = tuple(row[c] for c in CONTENT)
            if rolled_view is None:
                rv = _capability_view(history.rolled_back, caps)
                rolled_view = set(_with_content(rv, history.llog).select(CONTENT).iter_rows()) if rv.height else set()
            why = "matches a rolled-back change" if content in rolled_view else "never committed"
            found.add("phantom", 1, [{"why": why, "event": _event_json(e)}], [k])
            continue
        # prefer the earliest change of the same op; else the earliest change
        pick = next((c for c in cands if c["op"] == row["op"]), cands[0])
        cands.remove(pick)
        if split and row["op"] == "update" and pick["op"] in ("delete", "insert"):
            # one committed update, split into delete + insert for a delete+insert approach, was
            # captured as an update: one op-mismatch, its other half (under the old key when the
            # update changed the key) is not also lost
            other = pick["lseq"] + 1 if pick["op"] == "delete" else pick["lseq"] - 1
            other_op = "insert" if pick["op"] == "delete" else "delete"
            others = by_key.get(key_at.get(other, k), [])
            half = next((c for c in others if c["lseq"] == other and c["op"] == other_op), None)
            if half is not None:
                others.remove(half)
        c = _ledger_row(history, pick["lseq"], split)
        pairs.append((row["table"], row["key"], pick["okey"], pick["lseq"], row["eidx"], pick["txid"], row["etx"]))
        # a key change also touches its old key (the committed one, and the one captured)
        touched = [k, *((row["table"], encode_key(o)) for o in (c.old_key, getattr(e, "old_key", None))
                        if o is not None)]
        for kind, why in _pair_kinds(c, e, pick["op"], caps):
            found.add(kind, 1, [{"why": why, "committed": _change_json(c), "captured": _event_json(e),
                                 "difference": jsonable(_diff_for(kind, c, e))}], touched)
    for cands in by_key.values():
        for pick in cands:
            c = _ledger_row(history, pick["lseq"], split)
            lost_keys = [(pick["table"], pick["key"])]
            if pick["op"] == "update" and c.old_key is not None:  # a lost key change leaves its old key
                lost_keys.append((pick["table"], encode_key(c.old_key)))
            found.add("lost", 1, [{"why": "committed, never captured", "committed": _change_json(c)}], lost_keys)
    return pl.DataFrame(pairs, schema={"table": pl.String, "key": pl.String, "okey": pl.String,
                                       "lseq": pl.UInt32, "eidx": pl.UInt32, "txid": pl.Int64, "etx": pl.String},
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
    if expected_op == "update" and c.old_key != e.old_key:
        old = "no key change" if c.old_key is None else f"a key change from {jsonable(c.old_key)}"
        got = "none" if e.old_key is None else f"one from {jsonable(e.old_key)}"
        return [("op-mismatch", f"committed {old}, captured {got}")]
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


def _images_at(log: RowLog, ridx: np.ndarray, side: str) -> list[Any]:
    """The ``side`` images of log rows ``ridx`` as the rows themselves give them (Python dicts,
    JSON columns parsed), read part by part in bulk."""
    out: list[Any] = [None] * len(ridx)
    if not len(ridx):
        return out
    parts, local = _locate(log, ridx)
    segs = _segments(log)
    for p in np.unique(parts):
        at = np.flatnonzero(parts == p)
        item = segs.items[int(p)]
        if isinstance(item, list):
            vals = [getattr(item[int(j)], side) for j in local[at]]
        else:
            col = _side_take(item, side, local[at])
            vals = [None] * len(at) if col is None else [_arrow_image(v, col.type) for v in col.to_pylist()]
        for i, v in zip(at.tolist(), vals, strict=True):
            out[i] = v
    return out


def _check_partial_before(found: _Anomalies, matched: pl.DataFrame, history: EncodedHistory,
                          caps: Capabilities) -> None:
    """Under a ``key`` before-image claim, a before image need only hold the key, but every other
    value it does hold (not NULL) must be the committed one: a value made up in place of the
    old one (a type default, a placeholder) is a ``before-mismatch``, not a silent pass."""
    split = caps.splits_updates
    ops = history.events.select("eidx", "op").filter(pl.col("op").is_in(["update", "delete"]))
    rows = matched.select("lseq", "eidx").join(ops.select("eidx"), on="eidx", how="semi")
    lseqs, eidxs = rows["lseq"].to_numpy(), rows["eidx"].to_numpy()
    # the images read in bulk, as the rows give them (a Python object per pair only for anomalies)
    got = _images_at(history.elog, history.event_keys["ridx"].to_numpy()[eidxs], "before")
    want = _images_at(history.llog, history.ledger["ridx"].to_numpy()[lseqs // 2 if split else lseqs],
                      "before")
    for k, (before, old) in enumerate(zip(got, want, strict=True)):
        if not before:
            continue
        committed = old or {}
        wrong = {col: v for col, v in before.items()
                 if v is not None and (col not in committed or canonical(v) != canonical(committed[col]))}
        if wrong:
            e = history.event_rows[int(eidxs[k])]
            c = _ledger_row(history, int(lseqs[k]), split)
            found.add("before-mismatch", 1, [{
                "why": "a before image holds a value the row did not have (only the key is claimed, but "
                       "what is given must be right)",
                "committed": _change_json(c), "captured": _event_json(e),
                "difference": jsonable({col: {"expected": committed.get(col), "got": v} for col, v in wrong.items()}),
            }], [(e.table, encode_key(e.key))])


def _check_order(found: _Anomalies, pairs: pl.DataFrame, Lh: pl.DataFrame, history: EncodedHistory) -> None:
    """Per key, capture order must follow commit order; a key-changing update stands in the
    order of its old key and of its new one (the key is followed across its change). ``pairs``
    (``lseq``, ``eidx``) in ledger order; keys are read from ``Lh``, the ledger view."""
    bad = _reordered(pairs, Lh)
    if bad.len():
        _add_events(found, "reordered", _event_rows(history, bad), history,
                    "captured before a change committed earlier on this key")


def _reordered(pairs: pl.DataFrame, Lh: pl.DataFrame) -> pl.Series:
    """``_check_order``'s finding: the events (``eidx``, ascending) captured before a change
    committed earlier on their key; the check is per key, so it can run per key partition."""
    none = pl.Series("eidx", [], pl.UInt32)
    if pairs["eidx"].is_sorted():
        return none  # captured in commit order: on every key too
    moves = Lh["okey"].null_count() < Lh.height
    if not moves:
        s = _pair_columns(pairs, Lh, Lh, ["kh"], []).select("kh", "eidx").sort("kh", maintain_order=True)
        same_key = pl.col("kh") == pl.col("kh").shift(1)
        if not s.select((same_key & (pl.col("eidx") < pl.col("eidx").shift(1))).any()).item():
            return none  # capture order increases along commit order on every key
        del s
    pairs = _pair_columns(pairs, Lh, Lh, ["kh", "table", "key", "okey"], [])
    moved = pairs.filter(pl.col("okey").is_not_null())
    if moved.height:
        moved = moved.with_columns(pl.col("okey").alias("key")).with_columns(_key_hash())
        pairs = pl.concat([pairs, moved.select(pairs.columns)]).sort("lseq", maintain_order=True)
    s = pairs.select("kh", "eidx").sort("kh", maintain_order=True)  # pairs are in lseq order
    same_key = pl.col("kh") == pl.col("kh").shift(1)
    if not s.select((same_key & (pl.col("eidx") < pl.col("eidx").shift(1))).any()).item():
        return none  # capture order increases along commit order on every key
    # a hash collision can only merge two keys here: look again on the keys themselves
    s = pairs.select("eidx", "table", "key")
    s = s.with_columns(pl.col("eidx").cum_max().shift(1).over(["table", "key"]).alias("prev_max"))
    return s.filter(pl.col("eidx") < pl.col("prev_max")).select("eidx").unique().sort("eidx")["eidx"]


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


def _alive(df: pl.DataFrame, order_col: str, truncs: pl.DataFrame | None = None) -> pl.DataFrame:
    """The last change per key after the table's last truncate, unless it is a delete; a
    key-changing update also ends its old key (as a delete would). ``truncs`` (table,
    ``order_col``): the truncates when ``df`` holds only some keys (None: ``df``'s own)."""
    df = df.select("table", "key", "okey", "op", order_col, "kh", "ridx")
    moved = df.filter(pl.col("okey").is_not_null() & (pl.col("op") == "update"))
    if moved.height:
        gone = moved.with_columns(pl.col("okey").alias("key"), pl.lit("delete").alias("op")).with_columns(_key_hash())
        df = pl.concat([df, gone.select(df.columns)]).sort(order_col, maintain_order=True)
    if truncs is None:
        truncs = df.filter(pl.col("op") == "truncate")
    rows = df.filter(pl.col("op") != "truncate") if truncs.height else df
    if truncs.height:
        cut = dict(truncs.group_by("table").agg(pl.col(order_col).max()).iter_rows())
        rows = rows.filter(pl.col(order_col) > pl.col("table").replace_strict(cut, default=-1,
                                                                              return_dtype=pl.Int64))
    last = rows.filter(pl.struct("table", "key").is_last_distinct())  # rows are in order_col order
    return last.filter(pl.col("op") != "delete").select(
        "kh", "table", "key", pl.col(order_col).alias("idx"), "ridx")


class _FinalRow:
    __slots__ = ("table", "key", "before", "after")

    def __init__(self, table: str, key: tuple, after: Mapping[str, Any]) -> None:
        self.table, self.key, self.before, self.after = table, key, None, after


def _final_frame(final_state: FinalState) -> tuple[pl.DataFrame, RowLog, RowLog]:
    """The engine's final rows: keys encoded column by column; the rows' log, where examples and
    images are read (a table held as ``ArrowRows`` stays Arrow; other tables are Python rows)."""
    log = RowLog()
    tables: list[pl.Series] = []
    keys: list[pl.Series] = []
    pending: list[_FinalRow] = []

    def flush() -> None:
        for start, stop, b in rows_to_batches(pending):
            keys.append(_encode_struct_like(b.key, stop - start, False))
        tables.append(pl.Series([r.table for r in pending], dtype=pl.String))
        log.append_part(pending[:])
        pending.clear()

    for t, by_key in final_state.items():
        if isinstance(by_key, ArrowRows):
            if pending:
                flush()
            batch = by_key.batch(t)
            log.append_part(batch)
            keys.append(encode_keys(batch.column("key"), batch.num_rows))
            tables.append(pl.Series([t] * batch.num_rows, dtype=pl.String))
        else:
            pending.extend(_FinalRow(t, k, row) for k, row in by_key.items())
    if pending:
        flush()
    df = pl.DataFrame({"table": pl.concat(tables) if tables else pl.Series([], dtype=pl.String),
                       "key": pl.concat(keys) if keys else pl.Series([], dtype=pl.String)})
    df = df.with_row_index("idx").with_columns(pl.col("idx").alias("ridx"), _key_hash()).select(
        "kh", "table", "key", "idx", "ridx")
    return df, log, log


def _check_replay(found: _Anomalies, history: EncodedHistory, final_state: FinalState | None,
                  pairs: pl.DataFrame | None = None, split: bool = False,
                  confirmed: pl.DataFrame | None = None) -> None:
    """Replay the events on the empty state; compare with the final state, per key not yet explained.

    Vectorized on the canonical final images (``_replay_diff``); only differing keys are looked
    at in Python (``_report_replay``).
    """
    final = None if final_state is None else _final_frame(final_state)
    diff, event_at = _replay_diff(history, final, pairs, split, confirmed)
    _report_replay(found, history, final, diff, event_at)


def _replay_diff(history: Any, final: tuple[pl.DataFrame, RowLog, RowLog] | None,
                 pairs: pl.DataFrame | None, split: bool, confirmed: pl.DataFrame | None,
                 truncs: tuple[pl.DataFrame, pl.DataFrame] | None = None) -> tuple[pl.DataFrame, dict[int, int]]:
    """The keys whose replayed state differs from the final state (``final``: the engine's,
    ``_final_frame``; None: the ledger's), sorted by (table, key), and for tables with DDL the
    ledger row each of their events was paired with. ``history.event_keys``/``history.ledger``
    may hold some keys only (a partition): ``truncs`` then gives every truncate (events, ledger)."""
    got = _alive(history.event_keys, "eidx", truncs[0] if truncs else None)
    if final is None:
        want = _alive(history.ledger, "lseq", truncs[1] if truncs else None)
        want_log = history.llog
    else:
        want, _, want_log = final
    j = want.join(got, on=["kh", "table", "key"], how="full", suffix="_got", coalesce=False)
    both = pl.col("idx").is_not_null() & pl.col("idx_got").is_not_null()
    j = j.with_columns(both.alias("both"))
    pairs_j = j.filter("both")
    same = np.zeros(pairs_j.height, dtype=bool)
    if final is None and confirmed is not None and confirmed.height:
        # a change and the event matched to it (after images confirmed equal) need no second look
        known = confirmed.select(pl.col("lseq").alias("idx"), pl.col("eidx").alias("idx_got"),
                                 pl.lit(True).alias("known"))
        same = pairs_j.select("idx", "idx_got").with_columns(pl.col("idx").cast(known["idx"].dtype),
                                                            pl.col("idx_got").cast(known["idx_got"].dtype)).join(
            known, on=["idx", "idx_got"], how="left", maintain_order="left")["known"].fill_null(False).to_numpy()
        same = same.copy()
    look = np.flatnonzero(~same)
    if len(look):
        same[look] = _same_side(want_log, pairs_j["ridx"].to_numpy()[look], history.elog,
                                pairs_j["ridx_got"].to_numpy()[look], "after")
    diff = pl.concat([j.filter(~pl.col("both")), pairs_j.filter(pl.Series(~same))]).select(
        "table", "key", "idx", "table_got", "key_got", "idx_got")
    if not diff.height:
        return diff, {}
    diff = diff.sort(pl.coalesce("table", "table_got"), pl.coalesce("key", "key_got"))
    ddl_tables = {c.table for c in history.ddl}
    ledger_at = getattr(history.ledger_rows, "ridx", None)
    event_at: dict[int, int] = {}
    if ddl_tables and ledger_at is not None and pairs is not None and pairs.height:
        got_idx = diff["idx_got"].drop_nulls().implode()
        for lseq, eidx in pairs.filter(pl.col("eidx").is_in(got_idx)).select("lseq", "eidx").iter_rows():
            event_at[eidx] = int(ledger_at[lseq // 2 if split else lseq])
    return diff, event_at


def _report_replay(found: _Anomalies, history: Any, final: tuple[pl.DataFrame, RowLog, RowLog] | None,
                   diff: pl.DataFrame, event_at: Mapping[int, int]) -> None:
    """Name the keys of ``diff`` (``_replay_diff``) no other anomaly explains ``divergence``;
    images of tables with DDL are brought to the table's final shape before comparing: each
    image gets only the DDL committed after the change that wrote it (an event: after the
    committed change it was paired with), so a column dropped and re-added under the same name
    keeps the value written after the re-add."""
    if not diff.height:
        return
    want_rows: Sequence[Any] = history.ledger_rows if final is None else final[1]
    ddl_tables = {c.table for c in history.ddl}
    ledger_at = getattr(history.ledger_rows, "ridx", None)
    never = 1 << 62  # after every DDL: apply none
    bad_keys: list[tuple[str, str]] = []
    examples: list[dict] = []
    for table, key, idx, table_g, key_g, idx_g in diff.iter_rows():
        tk = (table, key) if table is not None else (table_g, key_g)
        if found.explains(*tk):
            continue
        g = history.event_rows[idx_g].after if idx_g is not None else None
        w = want_rows[idx].after if idx is not None else None
        if tk[0] in ddl_tables:
            g_at = event_at.get(idx_g, -1) if idx_g is not None else -1
            if final is not None:
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


def _project(image: Mapping[str, Any], table: str, history: Any, at: int) -> dict[str, Any]:
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
