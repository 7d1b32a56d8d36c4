"""Counting the distinct positions a reader delivered, without a Python object per Arrow row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from harness.events import Position


class PositionCount:
    """How many distinct positions were delivered, poll by poll (``len``).

    Contract: ``add(polled)`` takes a poll's result — a ``ChangeEvent`` list or an Arrow event
    batch (``position: list<int64>``) — and returns its last position (the one to ack). A poll
    whose positions strictly increase and all lie after every position seen so far (an
    approach delivering in order) only adds its size; anything else (a redelivery after a
    restart, a repeat, positions out of order) switches, once, to an exact set of every
    position, built from what was delivered before.
    """

    def __init__(self) -> None:
        self._n = 0
        self._last: tuple | None = None
        self._set: set[tuple] | None = None
        #: what was delivered, kept until (if ever) the exact set is needed
        self._kept: list[Any] = []

    def __len__(self) -> int:
        return self._n if self._set is None else len(self._set)

    def add(self, polled: Any) -> Position:
        """Count a non-empty poll's positions; return its last position."""
        rows = _position_rows(polled)
        if isinstance(rows, np.ndarray):
            first, last = tuple(rows[0].tolist()), tuple(rows[-1].tolist())
            increasing = _increasing(rows)
        else:
            first, last = rows[0], rows[-1]
            increasing = all(a < b for a, b in zip(rows, rows[1:], strict=False))
        if self._set is None and increasing and (self._last is None or first > self._last):
            self._n += len(rows)
            self._last = last
            self._kept.append(rows)
            return last
        if self._set is None:
            self._set = {p for kept in self._kept for p in _tuples(kept)}
            self._kept = []
        self._set.update(_tuples(rows))
        return last


def _position_rows(polled: Any) -> np.ndarray | list[tuple]:
    """Positions as an (n, k) int64 array (an Arrow batch whose positions all have k parts), else
    as tuples."""
    if not isinstance(polled, (pa.RecordBatch, pa.Table)):
        return [tuple(e.position) for e in polled]
    col = polled.column("position")
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if col.null_count == 0 and (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)) \
            and pa.types.is_integer(col.type.value_type):
        offsets = col.offsets.to_numpy()
        widths = np.diff(offsets)
        if len(widths) and widths.min() == widths.max() and widths[0] > 0:
            values = col.flatten().to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
            return values.reshape(len(col), int(widths[0]))
    return [tuple(p) for p in col.to_pylist()]


def _increasing(rows: np.ndarray) -> bool:
    """Whether the rows of an (n, k) array strictly increase in lexicographic order."""
    if len(rows) < 2:
        return True
    diff = rows[1:] - rows[:-1]
    nonzero = diff != 0
    first = nonzero.argmax(axis=1)
    return bool(nonzero.any(axis=1).all() and (diff[np.arange(len(diff)), first] > 0).all())


def _tuples(rows: np.ndarray | list[tuple]) -> list[tuple]:
    return [tuple(r) for r in rows.tolist()] if isinstance(rows, np.ndarray) else rows
