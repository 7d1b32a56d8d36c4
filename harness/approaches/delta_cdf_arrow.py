"""delta-cdf's change rows as an Arrow event batch: pre- and post-images paired by key with polars,
images taken from the CDF's own Arrow columns (no Python object per row)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from harness.columnar import events_of, plain_views

META = ("_change_type", "_commit_version", "_commit_timestamp")


def cdf_batch(data: pa.Table, table: str, idx: int, key_cols: tuple[str, ...], captured_at: int) -> pa.Table | None:
    """The events of one table's CDF rows (``load_cdf``'s table), as ``DeltaCdf._decode`` gives
    them: an update's pre- and post-image of one key in one version are one ``update``; a
    pre-image whose key has no post-image is a ``delete`` (a key change: first in its version),
    a post-image without one an ``insert``. Position ``(commit_ms, idx, version, ordinal)``,
    ordinals in (version, that rank, key, kind) order, so a re-read gives the same positions.
    None when this cannot be done column-wise (a key repeated among one version's pre- or
    post-images, key columns polars cannot sort or join): the caller decodes row by row."""
    if data.num_rows == 0:
        return None
    try:
        return _batch(data, table, idx, key_cols, captured_at)
    except (pl.exceptions.PolarsError, pa.ArrowException, TypeError):
        return None


def _batch(data: pa.Table, table: str, idx: int, key_cols: tuple[str, ...], captured_at: int) -> pa.Table | None:
    keys = [f"k{j}" for j in range(len(key_cols))]
    frame = pl.from_arrow(data.select(list(key_cols)).rename_columns(keys))
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(
        pl.Series("kind", data.column("_change_type").cast(pa.string())),
        pl.Series("version", data.column("_commit_version").cast(pa.int64())),
        pl.Series("stamp", data.column("_commit_timestamp").cast(pa.int64())),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("i"))
    on = ["version", *keys]
    pre = frame.filter(pl.col("kind") == "update_preimage")
    post = frame.filter(pl.col("kind") == "update_postimage")
    if pre.select(on).is_duplicated().any() or post.select(on).is_duplicated().any():
        return None
    plain = frame.filter(~pl.col("kind").is_in(["update_preimage", "update_postimage"])).with_columns(
        pl.col("kind").alias("op"), pl.lit(2).alias("rank"),
        pl.when(pl.col("kind") == "delete").then(pl.col("i")).alias("b"),
        pl.when(pl.col("kind") != "delete").then(pl.col("i")).alias("a"))
    paired = post.join(pre.select(*on, pl.col("i").alias("b")), on=on, how="left", nulls_equal=True).with_columns(
        pl.when(pl.col("b").is_null()).then(pl.lit("insert")).otherwise(pl.lit("update")).alias("op"),
        pl.lit(2).alias("rank"), pl.col("i").alias("a"))
    moved = pre.join(post.select(on), on=on, how="anti", nulls_equal=True).with_columns(
        pl.lit("delete").alias("op"), pl.lit(0).alias("rank"), pl.col("i").alias("b"),
        pl.lit(None, pl.Int64).alias("a"))
    cols = ["version", "rank", *keys, "kind", "op", "i", "b", "a", "stamp"]
    events = pl.concat([plain.select(cols), paired.select(cols), moved.select(cols)]).sort(
        ["version", "rank", *keys, "kind"], nulls_last=False, maintain_order=True)
    events = events.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("version").alias("ordinal"))
    return _to_arrow(data, events, table, idx, key_cols, captured_at)


def _to_arrow(data: pa.Table, events: pl.DataFrame, table: str, idx: int, key_cols: tuple[str, ...],
              captured_at: int) -> pa.Table:
    n = events.height
    names = [c for c in data.column_names if c not in META]
    image = pa.StructArray.from_arrays([plain_views(data.column(c)) for c in names], names=names)
    key = pa.StructArray.from_arrays([plain_views(data.column(c)) for c in key_cols], names=list(key_cols))
    rows = events["i"].to_arrow()
    stamp = events["stamp"].to_numpy()
    version = events["version"].to_numpy()
    position = np.empty((n, 4), dtype=np.int64)
    position[:, 0] = stamp
    position[:, 1] = idx
    position[:, 2] = version
    position[:, 3] = events["ordinal"].to_numpy()
    offsets = pa.array(np.arange(0, 4 * n + 1, 4, dtype=np.int32))
    txid = pc.binary_join_element_wise(pa.array([table] * n), pc.cast(pa.array(version), pa.string()), "@")
    return pa.table({
        "table": pa.array([table] * n, pa.string()),
        "op": events["op"].to_arrow().cast(pa.string()),
        "key": key.take(rows),
        "before": image.take(events["b"].to_arrow()),
        "after": image.take(events["a"].to_arrow()),
        "position": pa.ListArray.from_arrays(offsets, pa.array(position.ravel())),
        "txid": txid,
        "commit_ts": pa.array(stamp * 1_000_000, pa.int64()),
        "captured_at": pa.array(np.full(n, captured_at, dtype=np.int64)),
    })


def in_position_order(parts: list[Any], after: tuple | None = None) -> list[Any]:
    """One poll's events — Arrow batches and/or ``ChangeEvent`` objects — in position order,
    only those after ``after`` (a resumed reader skips what it acknowledged). Batches stay
    batches: when several tables' batches interleave, each is cut into the runs that keep the
    whole in order; with a ``ChangeEvent`` among them, every event is a ``ChangeEvent``."""
    batches = [p for p in parts if isinstance(p, pa.Table)]
    if len(batches) < len(parts):
        events = events_of(parts) if batches else list(parts)
        events.sort(key=lambda e: e.position)
        return [e for e in events if after is None or e.position > after]
    kept = []
    for b in batches:
        pos = _positions(b)
        if after is not None:
            mask = _after(pos, np.asarray(after, dtype=np.int64))
            if not mask.all():
                b, pos = b.filter(pa.array(mask)), pos[mask]
        if b.num_rows:
            kept.append((b, pos))
    if not kept:
        return []
    every = np.concatenate([pos for _, pos in kept])
    if _after(every[1:], every[:-1]).all():
        return [b for b, _ in kept]
    part = np.concatenate([np.full(len(pos), j) for j, (_, pos) in enumerate(kept)])
    row = np.concatenate([np.arange(len(pos)) for _, pos in kept])
    order = np.lexsort(every.T[::-1])
    part, row = part[order], row[order]
    cuts = np.flatnonzero(np.diff(part)) + 1
    return [kept[int(p[0])][0].take(pa.array(r))
            for p, r in zip(np.split(part, cuts), np.split(row, cuts), strict=True)]


def _positions(batch: pa.Table) -> np.ndarray:
    col = batch.column("position").combine_chunks()
    return col.flatten().to_numpy().reshape(len(col), -1)


def _after(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row by row, whether position ``a`` is after ``b`` (lexicographic; ``b`` may be one row)."""
    diff = a - b
    nonzero = diff != 0
    first = nonzero.argmax(axis=1)
    return nonzero.any(axis=1) & (np.take_along_axis(diff, first[:, None], axis=1)[:, 0] > 0)
