"""iceberg-snapshot-diff's commit diff as an Arrow event batch: removed and added rows paired by
key with polars, carry-over rows dropped by a column-wise image comparison (no Python object per row)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from harness.columnar import encode_images, plain_views, same_images


def diff_batch(before: pa.Table, after: pa.Table, table: str, idx: int, version: int,
               key_cols: list[str], old_key_cols: list[str], commit_ms: int, captured_at: int) -> pa.Table | None:
    """The events of one commit, as ``IcebergSnapshotDiff``'s row decode gives them: an added row
    whose key (``key_cols``) no removed row has (``old_key_cols``, the same fields under the prior
    schema's names) is an ``insert``; a removed row whose key no added row has a ``delete``; a key
    in both is an ``update`` unless both images are equal (a copy-on-write carry-over: dropped).
    Ordinals: added rows in read order, then removed-only rows in read order. Position
    ``(commit_ms, idx, version, ordinal)``, txid ``table@version``.
    None when there is nothing to emit, or when this cannot be done column-wise (a key repeated
    on one side, key columns polars cannot join): the caller then decodes row by row."""
    try:
        return _batch(before, after, table, idx, version, key_cols, old_key_cols, commit_ms, captured_at)
    except (pl.exceptions.PolarsError, pa.ArrowException, TypeError):
        return None


def _keys(data: pa.Table, cols: list[str], index: str) -> pl.DataFrame:
    names = [f"k{j}" for j in range(len(cols))]
    frame = pl.from_arrow(data.select(cols).rename_columns(names))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(index))


def _image(data: pa.Table) -> pa.StructArray:
    return pa.StructArray.from_arrays([plain_views(data.column(c)) for c in data.column_names],
                                      names=data.column_names)


def _batch(before: pa.Table, after: pa.Table, table: str, idx: int, version: int, key_cols: list[str],
           old_key_cols: list[str], commit_ms: int, captured_at: int) -> pa.Table | None:
    keys = [f"k{j}" for j in range(len(key_cols))]
    a = _keys(after, key_cols, "a")
    b = _keys(before, old_key_cols, "b")
    if a.select(keys).is_duplicated().any() or b.select(keys).is_duplicated().any():
        return None
    pairs = a.join(b, on=keys, how="full", nulls_equal=True, coalesce=True).select("a", "b")
    both = pairs.filter(pl.col("a").is_not_null() & pl.col("b").is_not_null())
    b_img, a_img = _image(before), _image(after)
    if both.height:
        old, new = b_img.take(both["b"].to_arrow()), a_img.take(both["a"].to_arrow())
        same = same_images(old, new, both.height)
        if same is None:
            same = encode_images(old, both.height) == encode_images(new, both.height)
        both = both.filter(~same.fill_null(False))
    added = pl.concat([both, pairs.filter(pl.col("b").is_null())]).sort("a")
    removed = pairs.filter(pl.col("a").is_null()).sort("b")
    events = pl.concat([added, removed])
    n = events.height
    if not n:
        return None
    ia, ib = events["a"].to_arrow(), events["b"].to_arrow()
    op = events.select(pl.when(pl.col("a").is_null()).then(pl.lit("delete"))
                       .when(pl.col("b").is_null()).then(pl.lit("insert"))
                       .otherwise(pl.lit("update")))
    key = pa.StructArray.from_arrays(
        [pa.concat_arrays([plain_views(after.column(c)).take(added["a"].to_arrow()),
                           plain_views(before.column(o)).take(removed["b"].to_arrow()).cast(
                               plain_views(after.column(c)).type)])
         for c, o in zip(key_cols, old_key_cols, strict=True)], names=key_cols)
    position = np.empty((n, 4), dtype=np.int64)
    position[:, 0] = commit_ms
    position[:, 1] = idx
    position[:, 2] = version
    position[:, 3] = np.arange(n)
    offsets = pa.array(np.arange(0, 4 * n + 1, 4, dtype=np.int32))
    return pa.table({
        "table": pa.repeat(pa.scalar(table, pa.string()), n),
        "op": op.to_series().to_arrow().cast(pa.string()),
        "key": key,
        "before": b_img.take(ib),
        "after": a_img.take(ia),
        "position": pa.ListArray.from_arrays(offsets, pa.array(position.ravel())),
        "txid": pa.repeat(pa.scalar(f"{table}@{version}", pa.string()), n),
        "commit_ts": pa.array(np.full(n, commit_ms * 1_000_000, dtype=np.int64)),
        "captured_at": pa.array(np.full(n, captured_at, dtype=np.int64)),
    })

