"""The checker's fast path: a capture equal to the ledger transaction by transaction, confirmed
on Arrow values.

When every committed change and every captured event are Arrow rows (``LedgerBatch`` parts and
event batches), as many events as committed changes, and the n-th event equals the n-th change
in table, op, key, old key and images (compared on their values, column by column: the same
equality the hash matching confirms its candidates with, ``harness.columnar.same_images``),
then the exact matching pairs row n with row n and nothing is lost, duplicated, phantom,
reordered or mismatched. No hash, key string or join is computed for it.

Order tolerance. The checker requires capture order to follow commit order per key only (and,
with ``transactions`` claimed, one commit's events contiguous under one commit identity); no
claim orders the events of different keys inside one transaction. So when row-by-row equality
fails, the events lying at each transaction's ledger positions may still be that transaction's
changes in another order: per table, both sides are sorted stably by (transaction, key) and
compared row by row again. A stable sort keeps every key's changes in their own order on each
side, so a key whose changes are swapped inside a transaction differs after the sort (the
general path names it ``reordered``); transactions stay in ledger order, so order across them
is kept too. This applies only when no update changes its key (``old_key``: such an update
stands in two keys' order) and every key column has a type whose Arrow equality is identity
(integers, strings, binary, decimals, dates and times, booleans; a float key's -0.0 and 0.0
compare equal but sort apart).

Anything else — a Python row, a DDL, a truncate, a split update, a column type that cannot be
compared on its values, a single differing row — returns None, and the checker takes its
general path, which names every anomaly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from harness.capabilities import Capabilities
from harness.columnar import RowLog, same_images


@dataclass
class Aligned:
    """Row n of the ledger matched to event n, for all ``n`` rows: per pair the ledger txid,
    the event's commit identity ``etx``, and the times lag is computed from."""

    n: int
    txid: np.ndarray
    etx: pl.Series
    issued_at: np.ndarray
    captured_at: np.ndarray


def aligned(llog: RowLog, elog: RowLog, caps: Capabilities) -> Aligned | None:
    """The match of ``llog``'s committed changes and ``elog``'s events, pairing the events at
    each transaction's ledger positions with its changes, or None (see the module docstring)."""
    lparts = [p for p in llog.parts if not getattr(p, "rolled_back", False)]
    if not all(hasattr(p, "data") and hasattr(p, "txid") for p in llog.parts):
        return None
    if not all(isinstance(p, (pa.RecordBatch, pa.Table)) for p in elog.parts):
        return None
    n = sum(len(p) for p in lparts)
    if n == 0 or n != len(elog):
        return None
    ltables = _groups([p.data for p in lparts])
    etables = _groups(elog.parts)
    if ltables is None or etables is None:
        return None
    masks: list[tuple[Mask, int]] = []
    for lt, lo, et, eo, m in _ranges(ltables, etables):
        mask = _row_mask(lt.slice(lo, m), et.slice(eo, m), m, caps)
        if mask is False:
            return None
        masks.append((mask, m))
    if any(mask is not None for mask, _ in masks):  # some rows differ: reordered inside their transactions?
        same = np.concatenate([np.ones(m, dtype=bool) if mask is None else
                               np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)  # type: ignore[union-attr]
                               for mask, m in masks])
        if not _same_per_transaction(lparts, ltables, etables, ~same, caps):
            return None
    sizes = [len(p) for p in lparts]
    etx = _etx(etables)
    captured = [pc.fill_null(t.column("captured_at").cast(pa.int64()), 0).to_numpy()
                if "captured_at" in t.schema.names
                else np.zeros(t.num_rows, dtype=np.int64) for t in etables]
    return Aligned(n, np.repeat(np.asarray([p.txid for p in lparts], dtype=np.int64), sizes), etx,
                   np.repeat(np.asarray([p.commit_issued_at for p in lparts], dtype=np.int64), sizes),
                   np.concatenate(captured).astype(np.int64) if captured else np.zeros(0, np.int64))


def _groups(parts: list[Any]) -> list[pa.Table] | None:
    """Consecutive parts of one schema as one table each (None: a part holds no ``op`` column)."""
    out: list[pa.Table] = []
    run: list[pa.RecordBatch] = []
    for part in parts:
        if "op" not in part.schema.names:
            return None
        batches = part.to_batches() if isinstance(part, pa.Table) else [part]
        if run and part.schema != run[0].schema:
            out.append(pa.Table.from_batches(run))
            run = []
        run.extend(b for b in batches if b.num_rows)
    if run:
        out.append(pa.Table.from_batches(run))
    return out


def _same_per_transaction(lparts: list[Any], ltables: list[pa.Table], etables: list[pa.Table],
                          differs: np.ndarray, caps: Capabilities) -> bool:
    """Whether the events at the ledger positions of each transaction holding a differing row
    (``differs``, by position) are its changes in an order that keeps every key's own order
    (see the module docstring): per table, both sides sorted stably by (transaction, key) are
    equal row by row. The other transactions are equal row by row already."""
    sizes = np.fromiter((len(p) for p in lparts), np.int64, len(lparts))
    txids = np.fromiter((p.txid for p in lparts), np.int64, len(lparts))
    starts = np.r_[True, txids[1:] != txids[:-1]]
    block = np.repeat(np.cumsum(starts) - 1, sizes)  # ledger position -> transaction number
    bad = np.zeros(int(block[-1]) + 1, dtype=bool)
    bad[np.unique(block[differs])] = True
    # those transactions a group at a time (up to _GROUP_ROWS positions, whole transactions): the
    # rows compared are copies, and a capture that is not reordered fails on its first group
    bad_tx = np.flatnonzero(bad)
    tx_rows = np.bincount(block, minlength=len(bad))[bad_tx]
    group = np.cumsum(tx_rows) // _GROUP_ROWS
    for g in np.unique(group):
        chosen = np.zeros(len(bad), dtype=bool)
        chosen[bad_tx[group == g]] = True
        if not _same_in(ltables, etables, block, np.flatnonzero(chosen[block]), caps):
            return False
    return True


#: the order-tolerant comparison copies at most about this many rows per side at a time
_GROUP_ROWS = 1 << 18


def _same_in(ltables: list[pa.Table], etables: list[pa.Table], block: np.ndarray, sel: np.ndarray,
             caps: Capabilities) -> bool:
    """``_same_per_transaction`` for the transactions at positions ``sel`` (ascending, whole
    transactions)."""
    lby, eby = _by_table(ltables, block, sel), _by_table(etables, block, sel)
    if lby is None or eby is None or lby.keys() != eby.keys():
        return False
    for name, (lt, lb) in lby.items():
        et, eb = eby[name]
        # both in position order: equal arrays mean as many rows of this table in every transaction
        if lt.num_rows != et.num_rows or not np.array_equal(lb, eb):
            return False
        lo, eo = _order(lt, lb), _order(et, eb)
        if lo is None or eo is None:
            return False
        mask = _row_mask(lt.take(lo), et.take(eo), lt.num_rows, caps)
        if mask is not None:
            return False
    return True


def _exact(t: pa.DataType) -> bool:
    """Whether Arrow equality on this key type is identity (sorting and comparing agree)."""
    return (pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)
            or pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_decimal(t)
            or pa.types.is_temporal(t) or pa.types.is_boolean(t))


def _by_table(tables: list[pa.Table], block: np.ndarray,
              sel: np.ndarray) -> dict[str, tuple[pa.Table, np.ndarray]] | None:
    """The rows at positions ``sel`` (ascending) per table name, in position order, with each
    row's transaction number (None: one table's rows have two column types)."""
    pieces: dict[str, list[tuple[pa.Table, np.ndarray]]] = {}
    off = 0
    for t in tables:
        n = t.num_rows
        lo, hi = np.searchsorted(sel, [off, off + n])
        local = sel[lo:hi] - off
        if len(local) < n:
            t = t.take(local) if len(local) else None
        off += n
        if t is None:
            continue
        col = t.column("table")
        names = pc.unique(col).to_pylist()
        if len(names) == 1:
            pieces.setdefault(names[0], []).append((t, block[off - n + local]))
            continue
        for name in names:
            idx = np.flatnonzero(pc.equal(col, name).to_numpy(zero_copy_only=False))
            pieces.setdefault(name, []).append((t.take(idx), block[off - n + local[idx]]))
    out: dict[str, tuple[pa.Table, np.ndarray]] = {}
    for name, ps in pieces.items():
        if len(ps) == 1:
            out[name] = ps[0]
            continue
        try:  # a column absent or of NULL type in some pieces (no before image, say) is NULL there
            t = pa.concat_tables([p for p, _ in ps], promote_options="default")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return None
        out[name] = (t, np.concatenate([b for _, b in ps]))
    return out


def _order(t: pa.Table, block: np.ndarray) -> np.ndarray | None:
    """Row order of ``t`` sorted stably by (transaction, key); None when a row changes its key
    or a key column's type is not ``_exact``."""
    if _column(t, "old_key") is not None or "key" not in t.schema.names:
        return None
    key = t.column("key")
    if not pa.types.is_struct(key.type) or not all(_exact(f.type) for f in key.type):
        return None
    try:
        frame = pl.DataFrame({"b": block, "k": pl.from_arrow(key)})
        return frame.select(pl.arg_sort_by("b", "k", maintain_order=True)).to_series().to_numpy()
    except (pl.exceptions.PolarsError, TypeError, ValueError, pa.ArrowException):
        return None


def _ranges(a: list[pa.Table], b: list[pa.Table]) -> Iterator[tuple[pa.Table, int, pa.Table, int, int]]:
    """Walk two equally long sequences of tables together: (table of a, offset, table of b,
    offset, rows) for each stretch lying in one table on both sides."""
    i = j = ia = jb = 0
    while i < len(a) and j < len(b):
        m = min(a[i].num_rows - ia, b[j].num_rows - jb)
        yield a[i], ia, b[j], jb, m
        ia += m
        jb += m
        if ia == a[i].num_rows:
            i, ia = i + 1, 0
        if jb == b[j].num_rows:
            j, jb = j + 1, 0


#: a ``_row_mask`` answer: every row equal (None), the stretch not judged here (False), or per row
Mask = pa.ChunkedArray | pa.Array | bool | None


def _row_mask(lt: pa.Table, et: pa.Table, m: int, caps: Capabilities) -> Mask:
    """Whether each row of the ledger stretch ``lt`` equals the event row beside it in ``et``:
    None when every row does, a boolean array when some does not, False when the stretch holds
    what the fast path does not judge (DDL, truncates, split updates, partial before images)."""
    ops = lt.column("op")
    if pc.any(pc.is_in(ops, pa.array(["ddl", "truncate"]))).as_py():
        return False  # DDL and truncates take the general path (projection, whole-table replay)
    updates = pc.any(pc.equal(ops, "update")).as_py()
    old_l, old_e = _column(lt, "old_key"), _column(et, "old_key")
    if updates and caps.splits_updates and (caps.updates == "delete+insert" or old_l is not None):
        return False  # the ledger view splits these updates
    if caps.before_image == "key" and (updates or pc.any(pc.equal(ops, "delete")).as_py()):
        return False  # partial before images are checked value by value on the general path
    masks = [_same_strings(ops, et.column("op"), m), _same_strings(lt.column("table"), et.column("table"), m),
             _same_keys(_column(lt, "key"), _column(et, "key"), m), _same_keys(old_l, old_e, m)]
    sides = ("before", "after") if caps.before_image == "full" else ("after",)
    masks += [_same_structs(_column(lt, side), _column(et, side), m, by_name=True) for side in sides]
    return _and(masks, m)


def _and(masks: list[Mask], m: int) -> Mask:
    """The rows equal under every mask (None: all of them)."""
    arrays = [x for x in masks if x is not None]
    if not arrays:
        return None
    if any(x is False for x in arrays):
        return pa.chunked_array([pa.array(np.zeros(m, dtype=bool))])
    out = arrays[0]
    for x in arrays[1:]:
        out = pc.and_(out, x)
    return None if pc.all(out).as_py() else out


def _column(t: pa.Table, name: str) -> pa.ChunkedArray | None:
    """A column, None when absent or NULL on every row (no image, no old key)."""
    if name not in t.schema.names:
        return None
    col = t.column(name)
    return None if col.null_count == len(col) else col


def _differing(eq: Any) -> Mask:
    """A per-row equality as a mask (NULL: not equal); None when every row is equal."""
    eq = pc.fill_null(eq, False)
    return None if pc.all(eq).as_py() else eq


def _same_strings(a: pa.ChunkedArray, b: pa.ChunkedArray, m: int) -> Mask:
    if a.type != b.type:
        a, b = a.cast(pa.large_string()), b.cast(pa.large_string())
    return _differing(pc.equal(a, b))


def _same_keys(a: pa.ChunkedArray | None, b: pa.ChunkedArray | None, m: int) -> Mask:
    """Keys compare in key order, whatever their columns' names: both sides must name them alike
    (else no row is equal)."""
    if a is None or b is None:
        return _one_side(a, b)
    if [f.name for f in a.type] != [f.name for f in b.type]:
        return False
    return _same_structs(a, b, m, by_name=False)


def _one_side(a: pa.ChunkedArray | None, b: pa.ChunkedArray | None) -> Mask:
    """Rows equal when one column is absent (or NULL throughout): those NULL in the other."""
    if a is None and b is None:
        return None
    return _differing(pc.is_null(b if a is None else a))


def _same_structs(a: pa.ChunkedArray | None, b: pa.ChunkedArray | None, m: int, by_name: bool) -> Mask:
    """Whether two struct columns hold equal values, row by row (NULL rows alike). Same types:
    Arrow's equality per field (field metadata such as JSON's included in the type), which
    implies equal canonical tokens (NaN equal to NaN; a value
    it cannot compare, or a difference it cannot judge, is not equal: the general path decides).
    Other types: ``same_images`` on native forms."""
    if a is None or b is None:
        return _one_side(a, b)
    if not _same_fields(a.type, b.type):
        if not by_name:
            return False
        same = same_images(a, b, m)
        return False if same is None else _differing(same.to_arrow())
    null_a = pc.is_null(a)
    eqs: list[Any] = []
    if a.null_count or b.null_count:
        eqs.append(pc.equal(null_a, pc.is_null(b)))
    for i in range(a.type.num_fields):
        x, y = pc.struct_field(a, [i]), pc.struct_field(b, [i])
        try:
            eq = pc.equal(x, y)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            return False
        if eq.null_count:
            eq = pc.or_kleene(eq, pc.and_(pc.is_null(x), pc.is_null(y)))
        if pa.types.is_floating(x.type) and not pc.all(eq).as_py():
            eq = pc.or_kleene(eq, pc.and_kleene(pc.is_nan(x), pc.is_nan(y)))
        if a.null_count:
            eq = pc.or_kleene(eq, null_a)
        eqs.append(pc.fill_null(eq, False))
    return _and([_differing(e) for e in eqs], m)


def _same_fields(a: pa.StructType, b: pa.StructType) -> bool:
    """Same field names, types and metadata, in one order (whether a field may be NULL aside)."""
    return a.num_fields == b.num_fields and all(
        x.name == y.name and x.type.equals(y.type, check_metadata=True) and x.metadata == y.metadata
        for x, y in zip(a, b, strict=True))


def _etx(tables: list[pa.Table]) -> pl.Series:
    """Each event's commit identity (``txid``): its values when every table has one integer or
    string type and no NULL, else ``repr`` strings as the general path has them."""
    from harness.columnar import values_repr

    cols = [t.column("txid") if "txid" in t.schema.names else None for t in tables]
    types = {c.type for c in cols if c is not None}
    if None not in cols and len(types) == 1 and not any(c.null_count for c in cols):
        t = types.pop()
        if pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
            s = pl.from_arrow(pa.chunked_array([ch for c in cols for ch in c.chunks], t))
            assert isinstance(s, pl.Series)
            return s.cast(pl.String) if s.dtype != pl.Int64 and s.dtype != pl.String else s
    return pl.concat([values_repr(c, t.num_rows) for c, t in zip(cols, tables, strict=True)])


def torn(fast: Aligned) -> bool:
    """Whether some transaction's events do not share one commit identity (its changes are
    contiguous on both sides: the ledger keeps a transaction's changes together)."""
    if fast.n < 2:
        return False
    same_tx = fast.txid[1:] == fast.txid[:-1]
    etx = fast.etx
    changed = etx.slice(1).ne_missing(etx.slice(0, fast.n - 1)).to_numpy()
    return bool((same_tx & changed).any())
