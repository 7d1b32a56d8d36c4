"""The checker's general path one key partition at a time: working memory bounded beyond the history.

A large history that is not aligned (``harness.aligned``) is checked without its whole-history
frames. Its ledger and events are encoded segment by segment (``harness.checker``'s encoders)
and written to Arrow IPC files, split by key hash into ``ceil(rows / PARTITION_ROWS)``
partitions, so no frame ever holds more than one partition (about ``PARTITION_ROWS`` rows) or
one flush (``_FLUSH_ROWS``). Then:

1. per partition, the exact matching, confirmation, duplicate detection and order check of the
   general path (the same functions: every copy of one content has one key, so one partition);
   the matched pairs (``lseq``, ``eidx``, ``va``, ``txid``, ``etx``) and the lags go to Parquet;
2. the leftovers of every partition (the anomalies and their candidates: few when the capture is
   right) are concatenated in ledger / capture order and named by the general path's own stages
   (split updates, near matches, lost, phantoms), so their examples are the same;
3. per partition again where near pairs joined its matched ones, the order check (per key);
4. the transaction check (contiguity across all keys) and the lag percentiles in DuckDB over the
   pairs' Parquet, out of core;
5. when a replay is due, per partition, with every truncate of its table applied to it.

Memory beyond the history: one partition's frames, the leftovers, the rolled-back changes and
the positions of the rows left out (DDL, rolled back): it does not grow with the number of
events (``10m-general`` / ``20m-general``: 1.25 / 1.46 GB beyond the history, against 3.6 / 6.0
GB whole; about 1.7x the CPU). A single key's changes cannot be split over partitions.

Not partitioned (the checker's whole-history path, ``general`` or ``general-spill``, checks
them): a history where some change or event changes its key (``old_key``; tables without a key
are keyed by their whole row, so their updates do too), since such a change stands in the order
and the final state of two keys, which may lie in two partitions; and a claim of ``key`` before
images, whose value-by-value check reads the matched pairs across partitions (not built).

``CDC_CHECK_PARTITION``: ``1`` partitions every general-path check, ``0`` none; unset: from
``PARTITION_FROM`` committed changes or events. The verdict's ``check_path`` is
``general-partitioned``; ``tests/test_checker_spill.py`` checks that it equals the whole-history
verdict on every mutation case with partitions of a few rows.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from harness import checker as ck
from harness.capabilities import Capabilities
from harness.columnar import RowLog
from harness.verdict import Verdict

#: a general-path check of at least this many committed changes or events is partitioned
PARTITION_FROM = 4_000_000
#: rows per partition (the larger side): one partition's frames are what the check holds
PARTITION_ROWS = 1_000_000
#: ``CDC_CHECK_PARTITION``: ``1`` partitions every general-path check, ``0`` none
PARTITION_ENV = "CDC_CHECK_PARTITION"
#: encoded rows are written to the partitions' Parquet files once this many are buffered
_FLUSH_ROWS = 1 << 19


def partition_wanted(rows: int) -> bool:
    """Whether a general-path check of ``rows`` (the larger side) is partitioned:
    ``CDC_CHECK_PARTITION`` (1 or 0) decides, else ``rows >= PARTITION_FROM``."""
    return ck.size_switch(PARTITION_ENV, rows, PARTITION_FROM, "partition")


class _Unpartitionable(Exception):
    """The history holds what the partitioned path does not check (a key change)."""


class _Gaps:
    """Maps the n-th kept row of a log to its log row, given the rows left out (ascending)."""

    def __init__(self, skipped: Sequence[int]) -> None:
        s = np.asarray(skipped, dtype=np.int64)
        self._shift = s - np.arange(len(s), dtype=np.int64)

    def __getitem__(self, i: Any) -> Any:
        return i + np.searchsorted(self._shift, i, side="right")


class _Rows(Sequence):
    """The n-th kept row of a log as the log's row (``ChangeEvent``/``LedgerChange``), with
    ``ridx`` (n -> log row) as ``harness.checker._Indexed`` has it."""

    def __init__(self, log: RowLog, ridx: _Gaps, n: int) -> None:
        self.log, self.ridx, self.n = log, ridx, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:  # type: ignore[override]
        if isinstance(i, slice):
            return [self.log[int(self.ridx[j])] for j in range(*i.indices(self.n))]
        return self.log[int(self.ridx[i])]


@dataclass
class _View:
    """What the checker's stages read of a history on this path: both logs, rows by position,
    the DDL, the rolled-back changes; ``ledger``/``event_keys``: one partition's frames."""

    llog: RowLog
    elog: RowLog
    epochs: Any
    acked_at_epoch: Sequence[Any]
    ledger_rows: _Rows
    event_rows: _Rows
    rolled_back: pl.DataFrame
    ddl_at: list[int]
    ddl: list[Any]
    ledger: pl.DataFrame | None = None
    event_keys: pl.DataFrame | None = None


class _Writer:
    """Frames split by key hash into ``n`` partitions, buffered and written to Arrow IPC files
    (uncompressed: several times faster to write and read back than Parquet)."""

    def __init__(self, root: Path, name: str, n: int) -> None:
        self.root, self.name, self.n = root, name, n
        self.files: list[list[Path]] = [[] for _ in range(n)]
        self.buffer: list[pl.DataFrame] = []
        self.rows = 0
        self.empty: pl.DataFrame | None = None

    def add(self, frame: pl.DataFrame) -> None:
        if self.empty is None:
            self.empty = frame.clear()
        self.buffer.append(frame)
        self.rows += frame.height
        if self.rows >= _FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        frame = pl.concat(self.buffer, rechunk=True)  # a gather from one chunk is twice as fast
        self.buffer, self.rows = [], 0
        for p, part in self._split(frame):
            path = self.root / f"{self.name}{p}-{len(self.files[p])}.arrow"
            part.write_ipc(path, compression="uncompressed")
            self.files[p].append(path)

    def _split(self, frame: pl.DataFrame) -> list[tuple[int, pl.DataFrame]]:
        """The rows of each partition, in order (a stable radix sort on the partition number)."""
        if self.n == 1:
            return [(0, frame)]
        part = (frame["kh"].to_numpy() % self.n).astype(np.uint16 if self.n < 1 << 16 else np.uint32)
        order = np.argsort(part, kind="stable")
        bounds = np.r_[0, np.cumsum(np.bincount(part, minlength=self.n))]
        frame = frame.select(pl.all().gather(pl.Series(order)))  # a gather per column, in parallel
        return [(p, frame.slice(int(bounds[p]), int(bounds[p + 1] - bounds[p]))) for p in range(self.n)
                if bounds[p + 1] > bounds[p]]

    def read(self, p: int, columns: list[str] | None = None) -> pl.DataFrame:
        """Partition ``p``'s rows in the order they were added."""
        assert self.empty is not None
        if not self.files[p]:
            return self.empty.select(columns) if columns else self.empty
        scan = pl.scan_ipc(self.files[p])  # files read in parallel, in order
        return (scan.select(columns) if columns else scan).collect().rechunk()


@dataclass
class _Layout:
    """A history written out by partition, and what the path keeps of it whole."""

    n: int
    ledger: _Writer
    events: _Writer
    rolled: list[pl.DataFrame] = field(default_factory=list)
    ddl_at: list[int] = field(default_factory=list)
    l_skipped: list[int] = field(default_factory=list)
    e_skipped: list[int] = field(default_factory=list)
    l_truncs: list[pl.DataFrame] = field(default_factory=list)
    e_truncs: list[pl.DataFrame] = field(default_factory=list)
    committed: int = 0
    events_n: int = 0


def _no_key_change(frame: pl.DataFrame) -> None:
    if frame["okey"].null_count() < frame.height:
        raise _Unpartitionable("a change or event changes its key")


def _spill_ledger(history: ck.EncodedHistory, out: _Layout) -> None:
    """Encode the ledger segment by segment (``EncodedHistory.ledger``'s columns) into partitions."""
    segs = ck._segments(history.llog)
    tokens = history._tokens
    for i in range(len(segs.items)):
        f = ck._ledger_segment(segs, i, tokens).with_row_index("ridx", offset=int(segs.starts[i]))
        _no_key_change(f)
        row = ck._NOT_DDL
        if f.select(pl.col("rolled").any() | (~row).any()).item():
            out.ddl_at += f.filter(~pl.col("rolled") & ~row)["ridx"].to_list()
            out.l_skipped += f.filter(pl.col("rolled") | ~row)["ridx"].to_list()
            out.rolled.append(f.filter(pl.col("rolled") & row))
            f = f.filter(~pl.col("rolled") & row)
        f = f.drop("rolled").with_row_index("lseq", offset=out.committed).with_columns(ck._key_hash())
        out.committed += f.height
        out.l_truncs.append(f.filter(pl.col("op") == "truncate").select("table", "lseq"))
        out.ledger.add(f)
    out.ledger.flush()


def _spill_events(history: ck.EncodedHistory, out: _Layout) -> None:
    """Encode the events segment by segment (``EncodedHistory.events``' columns) into partitions."""
    segs = ck._segments(history.elog)
    tokens = history._tokens
    epochs = None if history.epochs is None else np.asarray(history.epochs, dtype=np.int32)
    for i, p in enumerate(segs.items):
        start = int(segs.starts[i])
        f = ck._event_part(p, tokens, segs.runs(i) if isinstance(p, list) else None).with_row_index(
            "ridx", offset=start)
        _no_key_change(f)
        f = f.with_columns(pl.lit(0, pl.Int32).alias("epoch") if epochs is None
                           else pl.Series("epoch", epochs[start:start + f.height], dtype=pl.Int32))
        if f.select((~ck._NOT_DDL).any()).item():
            out.e_skipped += f.filter(~ck._NOT_DDL)["ridx"].to_list()
            f = f.filter(ck._NOT_DDL)
        f = f.with_row_index("eidx", offset=out.events_n).with_columns(ck._key_hash())
        out.events_n += f.height
        out.e_truncs.append(f.filter(pl.col("op") == "truncate").select("table", "eidx"))
        out.events.add(f)
    out.events.flush()


def _layout(history: ck.EncodedHistory, root: Path) -> _Layout:
    rows = max(len(history.llog), len(history.elog))
    n = max(1, math.ceil(rows / PARTITION_ROWS))
    out = _Layout(n, _Writer(root, "l", n), _Writer(root, "e", n))
    _spill_ledger(history, out)
    _spill_events(history, out)
    if out.ledger.empty is None or out.events.empty is None:
        raise _Unpartitionable("a side holds no row")
    return out


def _view(history: ck.EncodedHistory, lay: _Layout) -> _View:
    rolled = pl.concat(lay.rolled) if lay.rolled else pl.DataFrame(schema=ck._LEDGER_SCHEMA).with_row_index("ridx")
    llog, elog = history.llog, history.elog
    return _View(llog, elog, history.epochs, history.acked_at_epoch,
                 _Rows(llog, _Gaps(sorted(lay.l_skipped)), lay.committed),
                 _Rows(elog, _Gaps(sorted(lay.e_skipped)), lay.events_n),
                 ck._ledger_frame(rolled), lay.ddl_at, [llog[i] for i in lay.ddl_at])


def _with_views(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(*ck._VIEWS)


@dataclass
class _Pass:
    """What the matching of every partition left for the global stages."""

    files: list[Path] = field(default_factory=list)
    lag_files: list[Path] = field(default_factory=list)
    left: list[ck._Leftovers] = field(default_factory=list)
    #: per partition, the events out of key order among its matched pairs
    reordered: list[pl.Series] = field(default_factory=list)
    events: int = 0
    committed: int = 0
    matched: int = 0
    redelivered: int = 0
    e_unmatched: int = 0


def _match(lay: _Layout, view: _View, caps: Capabilities, root: Path) -> _Pass:
    """Stage 1 per partition: exact matching, confirmation, duplicates; pairs and lags to Parquet."""
    out = _Pass()
    for p in range(lay.n):
        L = ck._capability_view(_with_views(lay.ledger.read(p)), caps)
        E = _with_views(lay.events.read(p))
        if caps.before_image != "full":
            E = ck._no_before(E)
        Lh = ck._content(L, "lseq", view.llog)
        Eh = ck._content(E, "eidx", view.elog)
        del L, E
        lp, ep = ck._hash_join(Lh, Eh, False)
        matched, lag_ns = ck._matched(Lh, Eh, lp, ep, view)  # type: ignore[arg-type]
        del lp, ep
        left = ck._leftovers(Lh, Eh, matched, view, caps)
        out.left.append(left)
        out.events += Eh.height
        out.committed += Lh.height
        out.matched += matched.height
        out.redelivered += left.redelivered
        out.e_unmatched += left.e_unmatched
        out.reordered.append(ck._reordered(matched.select("lseq", "eidx"), Lh))
        pairs = ck._pair_columns(matched, Lh, Eh, ["txid"], ["etx"])
        out.files.append(root / f"m{p}.parquet")
        pairs.write_parquet(out.files[-1], compression="lz4")
        out.lag_files.append(root / f"lag{p}.parquet")
        lag_ns.rename("lag").to_frame().write_parquet(out.lag_files[-1], compression="lz4")
    return out


def _concat(frames: list[pl.DataFrame | None], col: str) -> pl.DataFrame | None:
    got = [f for f in frames if f is not None]
    return pl.concat(got).sort(col) if got else None


def _name_leftovers(found: ck._Anomalies, run: _Pass, view: _View, caps: Capabilities) -> tuple[pl.DataFrame, int]:
    """Stages 2 and 3 on every partition's leftovers at once, as the whole-history path names
    them; returns the near pairs and the changes left unpaired."""
    left = ck._Leftovers(
        _concat([x.rest for x in run.left], "eidx"), _concat([x.l_unmatched for x in run.left], "lseq"),
        _concat([x.surplus for x in run.left], "eidx"), _concat([x.repeats for x in run.left], "eidx"),
        run.redelivered, run.e_unmatched)  # type: ignore[arg-type]
    run.left = []
    ck._report_duplicates(found, left, view)
    rest, l_unmatched = left.rest, left.l_unmatched
    if caps.updates == "update" and rest.height and l_unmatched.height:
        rest, l_unmatched = ck._split_updates(found, rest, l_unmatched, view)  # type: ignore[arg-type]
    return ck._classify_leftovers(found, rest, l_unmatched, view, caps), l_unmatched.height  # type: ignore[arg-type]


def _part_of(df: pl.DataFrame, n: int) -> pl.Series:
    """The partition of each row of a frame with ``table`` and ``key``."""
    return df.select(ck._key_hash()).to_series() % n


def _pairs(run: _Pass, paired: pl.DataFrame, near_part: pl.Series, p: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Partition ``p``'s matched pairs (``lseq``, ``eidx``, ``va``) and those with its near pairs
    (``lseq``, ``eidx``), in ledger order."""
    m = pl.read_parquet(run.files[p], columns=["lseq", "eidx", "va"])
    return m, ck._with_paired(m.select("lseq", "eidx"), paired.filter(near_part == p) if paired.height else paired)


def _near_parts(paired: pl.DataFrame, n: int) -> pl.Series:
    return _part_of(paired, n) if paired.height else pl.Series([], dtype=pl.UInt64)


def _order(found: ck._Anomalies, lay: _Layout, run: _Pass, paired: pl.DataFrame, caps: Capabilities,
           torn: list[int], view: _View) -> None:
    """Stage 4: per partition, keys captured out of commit order (found on the matched pairs
    while matching, looked for again where near pairs join them); then the transactions' torn
    ones (``torn``, from DuckDB); both named on the events' rows."""
    near_part = _near_parts(paired, lay.n)
    bad, torn_rows = [], []
    torn_s = pl.Series("eidx", torn, pl.UInt32)
    for p in range(lay.n):
        found_p = run.reordered[p]
        if paired.height and (near_part == p).any():  # near pairs joined the matched ones: look again
            _, pairs = _pairs(run, paired, near_part, p)
            L = ck._capability_view(_with_views(lay.ledger.read(p, ["lseq", "table", "key", "okey", "op", "kh"])),
                                    caps)
            found_p = ck._reordered(pairs, L)
        if found_p.len() or torn:
            E = lay.events.read(p, ["eidx", "table", "key"])
            bad.append(E.filter(pl.col("eidx").is_in(found_p.implode())))
            torn_rows.append(E.filter(pl.col("eidx").is_in(torn_s.implode())))
    if bad:
        ck._add_events(found, "reordered", pl.concat(bad).sort("eidx"), view,  # type: ignore[arg-type]
                       "captured before a change committed earlier on this key")
    if torn_rows:
        ck._add_events(found, "torn-txn", pl.concat(torn_rows).sort("eidx"), view,  # type: ignore[arg-type]
                       "one transaction's changes split across commit positions or interleaved")


def _duck(root: Path) -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit='{ck.SPILL_MEMORY}'")
    con.execute(f"SET temp_directory='{root / 'duck'}'")
    return con


def _files(paths: list[Path]) -> str:
    return "[" + ", ".join(f"'{p}'" for p in paths) + "]"


def _torn(con: Any, run: _Pass, paired: pl.DataFrame) -> list[int]:
    """``harness.checker._check_transactions`` in DuckDB over every pair: the first event of each
    transaction whose events are not one contiguous run under one commit identity."""
    con.register("near", paired.select(pl.col("eidx").cast(pl.UInt32), "txid", "etx").to_arrow())
    pairs = f"""(SELECT eidx, txid, etx FROM read_parquet({_files(run.files)}) UNION ALL
                 SELECT eidx, txid, etx FROM near)"""
    runs, n_tx, split = con.execute(f"""SELECT count(*) FILTER (WHERE ptx IS NULL OR txid <> ptx),
        count(DISTINCT txid), coalesce(bool_or(txid = ptx AND etx <> petx), false)
        FROM (SELECT txid, etx, lag(txid) OVER w AS ptx, lag(etx) OVER w AS petx FROM {pairs}
              WINDOW w AS (ORDER BY eidx))""").fetchone()
    if runs == n_tx and not split:
        return []  # every transaction is one run of events with one commit identity
    rows = con.execute(f"""SELECT min(eidx) FROM (SELECT eidx, txid, etx, row_number() OVER (ORDER BY eidx) AS pos
        FROM {pairs}) GROUP BY txid HAVING min(etx) <> max(etx) OR max(pos) - min(pos) + 1 <> count(*)""").fetchall()
    return sorted(int(r[0]) for r in rows)


def _lags(con: Any, run: _Pass) -> dict[str, Any]:
    """``harness.checker.lag_summary`` of every partition's lags, sorted by DuckDB out of core."""
    src = f"read_parquet({_files(run.lag_files)})"
    n = con.execute(f"SELECT count(*) FROM {src}").fetchone()[0]

    def pick(ranks: list[int]) -> list[float]:
        got = dict(con.execute(f"""SELECT r, v FROM (SELECT CAST(lag AS DOUBLE) / 1e6 AS v,
            row_number() OVER (ORDER BY lag) - 1 AS r FROM {src}) WHERE r IN ({", ".join(map(str, ranks))})""")
                   .fetchall())
        return [got[r] for r in ranks]

    return ck.lag_summary_at(n, pick)


def _replay(found: ck._Anomalies, lay: _Layout, run: _Pass, paired: pl.DataFrame, caps: Capabilities,
            view: _View, final_state: ck.FinalState | None) -> None:
    """Stage 5 per partition (every truncate applied to each), named at once in key order."""
    split = caps.splits_updates
    final = None if final_state is None else ck._final_frame(final_state)
    truncs = (pl.concat(lay.e_truncs), pl.concat(lay.l_truncs))
    near_part = _near_parts(paired, lay.n)
    diffs, event_at = [], {}
    for p in range(lay.n):
        m, pairs = _pairs(run, paired, near_part, p)
        mine = None if final is None else (final[0].filter(_part_of(final[0], lay.n) == p), final[1], final[2])
        part = replace(view, ledger=lay.ledger.read(p, ["lseq", "table", "key", "okey", "op", "kh", "ridx"]),
                       event_keys=lay.events.read(p, ["eidx", "table", "key", "okey", "op", "kh", "ridx"]))
        diff, at = ck._replay_diff(part, mine, pairs, split, ck._confirmed(m, split), truncs)
        diffs.append(diff)
        event_at.update(at)
    diff = pl.concat(diffs).sort(pl.coalesce("table", "table_got"), pl.coalesce("key", "key_got"))
    ck._report_replay(found, view, final, diff, event_at)


def _partitioned(history: ck.EncodedHistory, caps: Capabilities, final_state: ck.FinalState | None,
                 root: Path) -> Verdict:
    lay = _layout(history, root)
    view = _view(history, lay)
    run = _match(lay, view, caps, root)
    found = ck._Anomalies()
    paired, l_unmatched = _name_leftovers(found, run, view, caps)
    con = _duck(root)
    try:
        torn = _torn(con, run, paired) if caps.transactions else []
        _order(found, lay, run, paired, caps, torn, view)
        truncates = any(t.height for t in lay.l_truncs) or any(t.height for t in lay.e_truncs)
        if ck._replay_needed(found, final_state, l_unmatched, run.e_unmatched, truncates):
            _replay(found, lay, run, paired, caps, view, final_state)
        measurements = _lags(con, run)
    finally:
        con.close()
    measurements.update(events=run.events, committed=run.committed, matched=run.matched,
                        redelivered=run.redelivered, check_path="general-partitioned", partitions=lay.n)
    return ck._verdict(found, measurements)


def check_partitioned(history: ck.EncodedHistory, caps: Capabilities,
                      final_state: ck.FinalState | None = None) -> Verdict | None:
    """``harness.checker.check``'s general path, partition by partition (see the module
    docstring), in a temp directory (``CDC_CHECK_SPILL_DIR``, else the system's); None when the
    history cannot be partitioned (the caller checks it whole)."""
    if caps.before_image == "key":
        return None
    with tempfile.TemporaryDirectory(prefix="cdc-check-part-", dir=os.environ.get("CDC_CHECK_SPILL_DIR")) as d:
        try:
            return _partitioned(history, caps, final_state, Path(d))
        except _Unpartitionable:
            return None
