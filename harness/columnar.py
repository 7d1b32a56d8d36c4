"""Columnar changes: the Arrow form of ledger changes and captured events, and their canonical
encoding computed with Arrow/polars expressions.

An **event batch** is a ``pyarrow.RecordBatch`` (or ``Table``) whose rows all belong to one
table and share one image shape::

    table: string        op: string           key: struct<key columns, in key order>
    before: struct<...>  after: struct<...>   (a NULL struct is "no image"; its fields are the
                                               image's columns, so a column's absence is kept)
    position: list<int64>   txid: any (optional)   captured_at: int64 (optional)
    old_key: struct<key columns> (optional: a key-changing update's old key, NULL elsewhere)

A **ledger batch** has the same ``table/op/key/before/after`` columns; the ledger adds txid,
commit order and commit times (``Ledger.stage_batch``).

``encode_values(array)`` gives, for every value, exactly the token ``harness.values.canonical``
gives the equal Python value (``tests/test_values.py`` checks both agree): the work is done per
column by type — integers, floats, exact decimals (decimal128/256, so decimal(65,30)), dates,
timestamps (UTC for zoned ones) and times at µs, intervals, strings (no Unicode
normalization), bytes, booleans. Only what no expression covers exactly goes through Python, per
*distinct* value: floats below 1e-4 in magnitude (polars prints them without an exponent),
decimals Arrow prints in exponent form (|v| < 1e-6), JSON, UUIDs, lists, nested structs.

Python inputs (``ChangeEvent`` and ``LedgerChange`` lists) are turned into such batches by
``rows_to_batches``: runs of one table and one image shape, each column built by
``pyarrow.array`` when its values share one plainly typed Python type, else kept as tokens
computed by ``canonical`` (mixed types — a captured int where a float was committed — must stay
told apart exactly as the Python encoder does).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from harness.values import SEP, canonical

#: Python types ``pyarrow.array`` turns into a column whose tokens are computed vectorized
_ARROW_OF: dict[type, pa.DataType | None] = {
    int: pa.int64(), float: pa.float64(), str: pa.large_string(), bytes: pa.large_binary(),
    bool: pa.bool_(), dt.date: pa.date32(), Decimal: None, dt.datetime: None,
}
#: field metadata marking a string column as JSON text (canonical JSON, token ``j:``)
JSON_META = {b"cdc.logical": b"json"}


class Tokens:
    """A column already encoded to canonical tokens (the Python fallback for mixed types)."""

    def __init__(self, tokens: list[str | None]) -> None:
        self.tokens = tokens


def _py_tokens(values: Iterable[Any], wrap: Callable[[Any], Any] = lambda v: v) -> pl.Series:
    return pl.Series([None if v is None else canonical(wrap(v)) for v in values], dtype=pl.String)


def _by_distinct(s: pl.Series, fn: Callable[[Any], str]) -> pl.Series:
    """Apply a Python function once per distinct non-null value of ``s`` (kept in place)."""
    uniq = s.drop_nulls().unique()
    if uniq.len() == 0:
        return pl.Series([None] * s.len(), dtype=pl.String)
    mapping = pl.DataFrame({"v": uniq, "t": pl.Series([fn(v) for v in uniq.to_list()], dtype=pl.String)})
    return s.to_frame("v").join(mapping, on="v", how="left", maintain_order="left", nulls_equal=False)["t"]


def _floats(s: pl.Series) -> pl.Series:
    s = s.cast(pl.Float64)
    text = (s + 0.0).cast(pl.String)
    tiny = (s.abs() < 1e-4) & (s != 0.0)
    out = pl.select(
        pl.when(s.is_nan()).then(pl.lit("f:nan"))
        .when(s == float("inf")).then(pl.lit("f:inf"))
        .when(s == float("-inf")).then(pl.lit("f:-inf"))
        .when(s == 0.0).then(pl.lit("f:0.0"))
        .otherwise(pl.lit("f:") + text)).to_series()
    if tiny.any():  # polars prints 1e-05 as 0.00001: Python's repr for those few
        fixed = _by_distinct(s.filter(tiny), lambda v: canonical(float(v)))
        out = out.scatter(tiny.arg_true(), fixed)
    return out


def _decimal_plain(arr: pa.Array) -> pl.Series:
    """Normalized digits of a decimal column (``canonical`` without its ``d:`` tag)."""
    text = pl.from_arrow(pc.cast(arr, pa.large_string()))
    assert isinstance(text, pl.Series)
    plain = text
    if arr.type.scale > 0:  # Arrow prints every scale digit: strip trailing zeros, then the point
        plain = plain.str.strip_chars_end("0").str.strip_chars_end(".")
    plain = pl.select(pl.when(plain == "-0").then(pl.lit("0")).otherwise(plain)).to_series()
    sci = text.str.contains("E", literal=True).fill_null(False)
    if sci.any():  # Arrow prints |v| < 1e-6 in exponent form: Decimal once per distinct value
        plain = plain.scatter(sci.arg_true(),
                              _by_distinct(text.filter(sci), lambda v: canonical(Decimal(v))[2:]))
    return plain


def _decimals(arr: pa.Array) -> pl.Series:
    return pl.select(pl.lit("d:") + _decimal_plain(arr)).to_series()


def _timestamps(arr: pa.Array) -> pl.Series:
    t: pa.TimestampType = arr.type
    micros = pl.from_arrow(arr.cast(pa.int64()))
    assert isinstance(micros, pl.Series)
    if t.unit == "s":
        micros = micros * 1_000_000
    elif t.unit == "ms":
        micros = micros * 1_000
    elif t.unit == "ns":
        micros = micros // 1_000
    text = micros.cast(pl.Datetime("us")).dt.strftime("%Y-%m-%dT%H:%M:%S%.6f")
    return pl.select(pl.lit("t:" if t.tz else "T:") + text).to_series()


def _encode_arrow(arr: pa.Array, meta: dict | None = None) -> pl.Series:
    t = arr.type
    if meta and meta.get(b"cdc.logical") == b"json":
        return _by_distinct(pl.Series(arr.to_pylist(), dtype=pl.String), lambda v: canonical(json.loads(v)))
    if isinstance(t, pa.ExtensionType):
        if t.extension_name == "arrow.uuid":
            return _by_distinct(_series(arr.storage), lambda v: "u:" + str(uuid.UUID(bytes=v)))
        if t.extension_name == "arrow.json":
            return _by_distinct(_series(arr.storage.cast(pa.large_string())),
                                lambda v: canonical(json.loads(v)))
        return _py_tokens(arr.to_pylist())
    if pa.types.is_boolean(t):
        s = _series(arr)
        return pl.select(pl.when(s).then(pl.lit("b:1")).otherwise(pl.lit("b:0"))).to_series()
    if pa.types.is_integer(t):
        return pl.select(pl.lit("i:") + _series(arr).cast(pl.String)).to_series()
    if pa.types.is_floating(t):
        return _floats(_series(arr))
    if pa.types.is_decimal(t):
        return _decimals(arr)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pl.select(pl.lit("s:") + _series(arr).cast(pl.String)).to_series()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pl.select(pl.lit("x:") + _series(arr).cast(pl.Binary).bin.encode("hex")).to_series()
    if pa.types.is_date(t):
        return pl.select(pl.lit("D:") + _series(arr.cast(pa.date32())).dt.strftime("%Y-%m-%d")).to_series()
    if pa.types.is_timestamp(t):
        return _timestamps(arr)
    if pa.types.is_time(t):
        return pl.select(pl.lit("h:") + _series(arr.cast(pa.time64("us"))).dt.strftime("%H:%M:%S%.6f")).to_series()
    if pa.types.is_duration(t):
        micros = _series(arr.cast(pa.duration("us")).cast(pa.int64()))
        return pl.select(pl.lit("I:") + micros.cast(pl.String)).to_series()
    if pa.types.is_null(t):
        return pl.Series([None] * len(arr), dtype=pl.String)
    return _py_tokens(arr.to_pylist())  # lists, maps, nested structs: rare, exact via Python


def _series(arr: pa.Array) -> pl.Series:
    s = pl.from_arrow(arr)
    assert isinstance(s, pl.Series)
    return s


def encode_values(arr: pa.Array | pa.ChunkedArray | Tokens, meta: dict | None = None) -> pl.Series:
    """Canonical tokens of a column (NULL stays NULL), equal to ``values.canonical`` per value."""
    if isinstance(arr, Tokens):
        return pl.Series(arr.tokens, dtype=pl.String)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    out = _encode_arrow(arr, meta)
    if arr.null_count:
        out = out.set(pl.Series(arr.is_null().to_numpy(zero_copy_only=False)), None)  # type: ignore[arg-type]
    return out


def _fields(struct: pa.StructArray | pa.ChunkedArray) -> list[tuple[str, pa.Array, dict | None]]:
    if isinstance(struct, pa.ChunkedArray):
        struct = struct.combine_chunks()
    return [(struct.type.field(i).name, struct.field(i), struct.type.field(i).metadata)
            for i in range(struct.type.num_fields)]


def encode_images(struct: pa.StructArray | pa.ChunkedArray | None, n: int) -> pl.Series:
    """Canonical image strings of a struct column (``encode_image``: columns sorted by name)."""
    if struct is None or (isinstance(struct, (pa.Array, pa.ChunkedArray)) and struct.null_count == n):
        return pl.Series([None] * n, dtype=pl.String)
    if isinstance(struct, pa.ChunkedArray):
        struct = struct.combine_chunks()
    parts = []
    for name, arr, meta in sorted(_fields(struct), key=lambda f: f[0]):
        parts.append(pl.lit(f"{name}=") + encode_values(arr, meta).fill_null("N"))
    if not parts:
        out = pl.Series([""] * n, dtype=pl.String)
    else:
        out = pl.select(pl.concat_str(parts, separator=SEP)).to_series()
    if struct.null_count:
        out = out.set(pl.Series(struct.is_null().to_numpy(zero_copy_only=False)), None)  # type: ignore[arg-type]
    return out


def encode_keys(struct: pa.StructArray | pa.ChunkedArray | None, n: int) -> pl.Series:
    """Canonical key strings of a struct column in key order (``encode_key``)."""
    fields = _fields(struct) if struct is not None else []
    if not fields:
        return pl.Series([""] * n, dtype=pl.String)
    parts = [encode_values(arr, meta).fill_null("N") for _, arr, meta in fields]
    if len(parts) == 1:
        return parts[0]
    return pl.select(pl.concat_str(parts, separator=SEP)).to_series()


# -- Python rows -> Arrow batches ---------------------------------------------------------------

def _column(values: list[Any]) -> pa.Array | Tokens:
    """An Arrow array for one column of Python values, or tokens when no one Arrow type fits."""
    kinds = {type(v) for v in values}
    kinds.discard(type(None))
    if not kinds:
        return pa.nulls(len(values))
    if len(kinds) == 1:
        kind = next(iter(kinds))
        if kind in _ARROW_OF:
            try:
                if kind is dt.datetime:
                    aware = {v.tzinfo is not None for v in values if v is not None}
                    if len(aware) != 1:
                        raise TypeError("aware and naive")
                    return pa.array(values, pa.timestamp("us", tz="UTC") if aware.pop() else pa.timestamp("us"))
                if kind is Decimal:
                    arr = pa.array(values)
                    if not pa.types.is_decimal(arr.type):
                        raise TypeError("not decimal")
                    return arr
                return pa.array(values, _ARROW_OF[kind])
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                pass  # NaN decimals, ints past int64, ...: tokens below
    return Tokens([None if v is None else canonical(v) for v in values])


def _struct(images: Sequence[Any], columns: tuple[str, ...]) -> _TokenStruct | None:
    valid = [img is not None for img in images]
    if not any(valid):
        return None
    arrays = [_column([img[c] if img is not None else None for img in images]) for c in columns]
    return _TokenStruct(columns, arrays, valid)


class _TokenStruct:
    """A struct column holding some token columns (Python fallback) — encoded like a struct."""

    def __init__(self, names: tuple[str, ...], arrays: list, valid: list[bool]) -> None:
        self.names = names
        self.arrays = arrays
        self.valid = valid


def _encode_struct_like(s: Any, n: int, image: bool) -> pl.Series:
    if s is None:
        return pl.Series([None] * n, dtype=pl.String) if image else pl.Series([""] * n, dtype=pl.String)
    if isinstance(s, _TokenStruct):
        cols = list(zip(s.names, s.arrays, strict=True))
        if image:
            cols.sort(key=lambda c: c[0])
            parts = [pl.lit(f"{name}=") + encode_values(a).fill_null("N") for name, a in cols]
        else:
            parts = [encode_values(a).fill_null("N") for _, a in cols]
        out = pl.select(pl.concat_str(parts, separator=SEP)).to_series() if parts else pl.Series([""] * n)
        if image and not all(s.valid):
            out = out.set(pl.Series([not v for v in s.valid]), None)  # type: ignore[arg-type]
        return out
    return encode_images(s, n) if image else encode_keys(s, n)


def encode_parts(part: Any, n: int) -> tuple[pl.Series, pl.Series, pl.Series]:
    """Canonical (key, before, after) strings of a batch from ``rows_to_batches`` or an Arrow one."""
    if isinstance(part, RowBatch):
        return (_encode_struct_like(part.key, n, False), _encode_struct_like(part.before, n, True),
                _encode_struct_like(part.after, n, True))
    names = part.schema.names
    before = part.column("before") if "before" in names else None
    after = part.column("after") if "after" in names else None
    key = part.column("key") if "key" in names else None
    return encode_keys(key, n), encode_images(before, n), encode_images(after, n)


class RowBatch:
    """Python rows of one table and one shape, turned into columns (``key``/``before``/``after``)."""

    def __init__(self, rows: Sequence[Any]) -> None:
        first = rows[0]
        self.table = first.table
        n_key = len(first.key)
        self.key = _TokenStruct(tuple(str(i) for i in range(n_key)),
                                [_column([r.key[i] for r in rows]) for i in range(n_key)],
                                [True] * len(rows)) if n_key else None
        bcols = _shape(rows, "before")
        acols = _shape(rows, "after")
        self.before = _struct([r.before for r in rows], bcols)
        self.after = _struct([r.after for r in rows], acols)


def _shape(rows: Sequence[Any], side: str) -> tuple[str, ...]:
    for r in rows:
        img = getattr(r, side)
        if img is not None:
            return tuple(img)
    return ()


def _signature(r: Any) -> tuple:
    b, a = r.before, r.after
    return (r.table, len(r.key), None if b is None else tuple(b), None if a is None else tuple(a))


def rows_to_batches(rows: Sequence[Any]) -> list[tuple[int, int, RowBatch]]:
    """Split Python rows (events or ledger changes) into runs ``(start, stop, RowBatch)`` of one
    table and one image shape (column names in the same order; a None image fits any shape)."""
    out: list[tuple[int, int, RowBatch]] = []
    start = 0
    n = len(rows)
    while start < n:
        table = rows[start].table
        nkey = len(rows[start].key)
        bshape: tuple | None = None
        ashape: tuple | None = None
        stop = start
        while stop < n:
            r = rows[stop]
            if r.table != table or len(r.key) != nkey:
                break
            if r.before is not None:
                s = tuple(r.before)
                if bshape is None:
                    bshape = s
                elif s != bshape:
                    break
            if r.after is not None:
                s = tuple(r.after)
                if ashape is None:
                    ashape = s
                elif s != ashape:
                    break
            stop += 1
        out.append((start, stop, RowBatch(rows[start:stop])))
        start = stop
    return out


def encode_rows(rows: Sequence[Any]) -> tuple[pl.Series, pl.Series, pl.Series]:
    """Canonical (key, before, after) strings of Python rows, column by column."""
    keys, befores, afters = [], [], []
    for start, stop, batch in rows_to_batches(rows):
        k, b, a = encode_parts(batch, stop - start)
        keys.append(k)
        befores.append(b)
        afters.append(a)
    if not keys:
        empty = pl.Series([], dtype=pl.String)
        return empty, empty, empty
    return pl.concat(keys), pl.concat(befores), pl.concat(afters)


# -- parts: Python rows and Arrow batches, in order ---------------------------------------------

def batch_len(part: Any) -> int:
    """Rows in a part (a list of Python rows, an Arrow batch/table, or a ``LedgerBatch``)."""
    return part.num_rows if isinstance(part, (pa.RecordBatch, pa.Table)) else len(part)


def _image(v: dict | None, struct_type: pa.StructType | None) -> dict | None:
    if v is None or struct_type is None:
        return v
    for i in range(struct_type.num_fields):
        f = struct_type.field(i)
        if f.metadata and f.metadata.get(b"cdc.logical") == b"json" and v.get(f.name) is not None:
            v[f.name] = json.loads(v[f.name])
    return v


def arrow_row(batch: pa.RecordBatch | pa.Table, i: int) -> dict[str, Any]:
    """Row ``i`` of an event or ledger batch as Python values (``key`` a tuple, images dicts)."""
    row = batch.slice(i, 1).to_pylist()[0]
    schema = batch.schema
    key = row.get("key")
    row["key"] = tuple(key.values()) if key else ()
    if row.get("old_key") is not None:
        row["old_key"] = tuple(row["old_key"].values())
    for side in ("before", "after"):
        t = schema.field(side).type if side in schema.names else None
        row[side] = _image(row.get(side), t)
    if row.get("position") is not None:
        row["position"] = tuple(row["position"])
    return row


def event_from_arrow(batch: pa.RecordBatch | pa.Table, i: int) -> Any:
    """Row ``i`` of an event batch as a ``ChangeEvent`` (for examples and redelivery checks)."""
    from harness.events import ChangeEvent

    r = arrow_row(batch, i)
    return ChangeEvent(r["table"], r["op"], r["key"], r["before"], r["after"], r.get("position") or (),
                       r.get("txid"), r.get("commit_ts"), r.get("captured_at") or 0, r.get("old_key"))


def is_batch(item: Any) -> bool:
    """Whether ``item`` is an Arrow event batch (``RecordBatch`` or ``Table``)."""
    return isinstance(item, (pa.RecordBatch, pa.Table))


def polled_parts(polled: Any) -> list[Any]:
    """A poll's result as parts in order: lists of ``ChangeEvent`` and Arrow batches (a poll
    returns a list of events and/or batches, or one batch; empty parts are left out)."""
    if is_batch(polled):
        return [polled] if polled.num_rows else []
    parts: list[Any] = []
    rows: list[Any] = []
    for item in polled:
        if is_batch(item):
            if rows:
                parts.append(rows)
                rows = []
            if item.num_rows:
                parts.append(item)
        else:
            rows.append(item)
    if rows:
        parts.append(rows)
    return parts


def events_of(polled: Any) -> list[Any]:
    """A poll's result as a list of ``ChangeEvent`` (Arrow rows turned into Python objects): for
    wrappers that rewrite events one by one, at a Python object's cost per row."""
    out: list[Any] = []
    for part in polled_parts(polled):
        out.extend(part if isinstance(part, list) else (event_from_arrow(part, i) for i in range(part.num_rows)))
    return out


def plain_views(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column in one chunk, string and binary views as plain strings and bytes (``take`` has
    no kernel for views here; sources stage plain types)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    for is_view, plain, large in ((pa.types.is_string_view, pa.string(), pa.large_string()),
                                  (pa.types.is_binary_view, pa.binary(), pa.large_binary())):
        if is_view(arr.type):
            try:
                return arr.cast(plain)
            except pa.ArrowInvalid:  # past 2 GB of values: 64-bit offsets
                return arr.cast(large)
    return arr


class ArrowRows(Mapping):
    """A table's rows held as Arrow (``data``), read as a mapping key tuple -> row dict (built
    on first lookup). ``key_columns`` must identify each row (a primary key): the checker
    compares them with the replay column by column, never as Python rows."""

    def __init__(self, data: pa.Table, key_columns: Sequence[str]) -> None:
        self.data = data
        self.key_columns = tuple(key_columns)
        self._rows: dict[tuple, dict] | None = None

    def _by_key(self) -> dict[tuple, dict]:
        if self._rows is None:
            self._rows = {tuple(r[k] for k in self.key_columns): r for r in self.data.to_pylist()}
        return self._rows

    def __getitem__(self, key: tuple) -> dict:
        return self._by_key()[key]

    def __iter__(self) -> Iterator[tuple]:
        return iter(self._by_key())

    def __len__(self) -> int:
        return self.data.num_rows

    def batch(self, table: str) -> pa.RecordBatch:
        """The rows as an event-shaped batch (``table``, ``op`` insert, ``key``, ``after``)."""
        n = self.data.num_rows
        cols = {name: plain_views(self.data.column(name)) for name in self.data.column_names}
        after = pa.StructArray.from_arrays(list(cols.values()), names=list(cols)) if cols else pa.nulls(n)
        key = pa.StructArray.from_arrays([cols[k] for k in self.key_columns], names=list(self.key_columns))
        return pa.RecordBatch.from_arrays(
            [pa.array([table] * n, pa.string()), pa.array(["insert"] * n, pa.string()), key, pa.nulls(n), after],
            names=["table", "op", "key", "before", "after"])


class RowLog(Sequence):
    """Rows kept as parts — lists of Python rows and Arrow batches — in order.

    ``len`` and indexing are over rows; an Arrow row is turned into a Python one only when it is
    looked at (``to_row(part, i)``), so millions of rows stay columnar.
    """

    def __init__(self, to_row: Callable[[Any, int], Any] = event_from_arrow) -> None:
        self.parts: list[Any] = []
        self._starts: list[int] = []
        self._n = 0
        self._to_row = to_row

    def append_part(self, part: Any) -> None:
        """Add a list of Python rows or an Arrow batch (empty ones are skipped)."""
        n = batch_len(part)
        if not n:
            return
        if isinstance(part, list) and self.parts and isinstance(self.parts[-1], list):
            self.parts[-1].extend(part)
        else:
            self._starts.append(self._n)
            self.parts.append(list(part) if isinstance(part, (list, tuple)) else part)
        self._n += n

    def extend(self, rows: Iterable[Any]) -> None:
        self.append_part(list(rows))

    def append(self, row: Any) -> None:
        self.append_part([row])

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        import bisect

        p = bisect.bisect_right(self._starts, i) - 1
        part = self.parts[p]
        j = i - self._starts[p]
        return part[j] if isinstance(part, list) else self._to_row(part, j)

    def __iter__(self):
        for part in self.parts:
            if isinstance(part, list):
                yield from part
            else:
                for j in range(batch_len(part)):
                    yield self._to_row(part, j)


def values_repr(col: pa.Array | pa.ChunkedArray | None, n: int) -> pl.Series:
    """``repr(v)`` of an int or string column (txids), vectorized; None gives ``'None'``."""
    if col is None:
        return pl.Series(["None"] * n, dtype=pl.String)
    s = _series(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col)
    if s.dtype == pl.String:
        return pl.select((pl.lit("'") + s + pl.lit("'")).fill_null("None")).to_series()
    return s.cast(pl.String).fill_null("None")


# -- native form: content hashes and exact comparison without canonical strings -------------------
#
# The checker matches millions of rows without building their canonical strings. Every value is
# brought to one native form per logical type (its *kind*: the letter of its canonical token),
# such that two values have equal canonical tokens exactly when they have the same kind and equal
# native forms: integers of any width as Int64, floats as Float64 (-0.0 equal to 0.0, NaN equal
# to NaN), decimals as their normalized digits, timestamps, times and durations as Int64
# microseconds (zoned ones in UTC), dates as days, strings and bytes as they are. What has no
# native form (JSON, UUIDs, lists, nested structs, integers past int64, a column of mixed Python
# types) is of kind ``tok`` and its native form is the canonical token itself. A column that is
# ``tok`` in one part of a history is hashed as tokens in every part (``token_columns``), so equal
# content always hashes alike; comparisons fall back to canonical strings where two parts'
# kinds differ.

_KINDS = ("N", "b", "i", "f", "d", "s", "x", "D", "t", "T", "h", "I", "tok")
_NULL_H = 0x2545F4914F6CDD1D


def _kind_seed(kind: str) -> int:
    return 0x9E3779B1 + 7919 * _KINDS.index(kind)


def _names_hash(names: Sequence[str]) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(SEP.join(names).encode(), digest_size=8).digest(), "little")


def native(arr: pa.Array | pa.ChunkedArray | Tokens, meta: dict | None = None,
           as_tokens: bool = False) -> tuple[str, pl.Series]:
    """The kind and native form of a column (see above); ``as_tokens``: canonical tokens."""
    if isinstance(arr, Tokens):
        return "tok", pl.Series(arr.tokens, dtype=pl.String)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    if as_tokens or (meta and meta.get(b"cdc.logical") == b"json") or isinstance(t, pa.ExtensionType):
        return "tok", encode_values(arr, meta)
    if pa.types.is_null(t):
        return "N", pl.Series([None] * len(arr), dtype=pl.Int64)
    if pa.types.is_boolean(t):
        return "b", _series(arr)
    if pa.types.is_integer(t):
        if t == pa.uint64() and (pc.max(arr).as_py() or 0) > 2**63 - 1:
            return "tok", encode_values(arr)
        return "i", _series(arr).cast(pl.Int64)
    if pa.types.is_floating(t):
        return "f", _series(arr).cast(pl.Float64) + 0.0
    if pa.types.is_decimal(t):
        plain = _decimal_plain(arr)
        return "d", plain.set(pl.Series(arr.is_null().to_numpy(zero_copy_only=False)), None) \
            if arr.null_count else plain  # type: ignore[arg-type]
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "s", _series(arr).cast(pl.String)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return "x", _series(arr).cast(pl.Binary)
    if pa.types.is_date(t):
        return "D", _series(arr.cast(pa.date32()).cast(pa.int32()))
    if pa.types.is_timestamp(t):
        micros = _series(arr.cast(pa.int64()))
        micros = {"s": micros * 1_000_000, "ms": micros * 1_000, "ns": micros // 1_000}.get(t.unit, micros)
        return ("t" if t.tz else "T"), micros
    if pa.types.is_time(t):
        return "h", _series(arr.cast(pa.time64("us")).cast(pa.int64()))
    if pa.types.is_duration(t):
        return "I", _series(arr.cast(pa.duration("us")).cast(pa.int64()))
    return "tok", encode_values(arr, meta)


def _decimal_parts(arr: pa.Array) -> tuple[pl.Series, pl.Series] | None:
    """(mantissa without trailing zeros, digits after the point) of a decimal128 column read
    from its buffer; None when an unscaled value does not fit int64."""
    t = arr.type
    if not isinstance(t, pa.Decimal128Type) or t.scale < 0 or not len(arr):
        return None
    words = np.frombuffer(arr.buffers()[1], dtype="<i8")[2 * arr.offset:2 * (arr.offset + len(arr))]
    lo, hi = words[0::2], words[1::2]
    valid = np.ones(len(arr), dtype=bool) if not arr.null_count else ~arr.is_null().to_numpy(zero_copy_only=False)
    fits = hi == (lo >> 63)
    if not (fits.all() if not arr.null_count else fits[valid].all()):
        return None
    m = np.where(valid, lo, 0)
    e = np.full(len(m), t.scale, dtype=np.int32)
    for _ in range(t.scale):
        z = (e > 0) & (m % 10 == 0)
        if not z.any():
            break
        m = np.where(z, m // 10, m)
        e = e - z
    mask = pl.Series(~valid) if arr.null_count else None
    ms, es = pl.Series("m", m), pl.Series("e", e)
    if mask is not None:
        ms, es = ms.set(mask, None), es.set(mask, None)  # type: ignore[arg-type]
    return ms, es


def _decimal_hash(arr: pa.Array) -> pl.Series:
    """Hash of each decimal's value, whatever its scale: (mantissa, exponent) when the mantissa
    without trailing zeros fits int64, else its normalized digits."""
    seed = _kind_seed("d")
    parts = _decimal_parts(arr)
    if parts is not None:
        m, e = parts
        return pl.select(pl.when(m.is_null()).then(pl.lit(_NULL_H, pl.UInt64))
                         .otherwise(pl.struct(m, e).hash(seed))).to_series()
    plain = _decimal_plain(arr)
    digits = plain.str.replace(".", "", literal=True)
    m = digits.cast(pl.Int64, strict=False)
    e = plain.str.split(".").list.get(1, null_on_oob=True).str.len_chars().fill_null(0).cast(pl.Int32)
    null = pl.Series(arr.is_null().to_numpy(zero_copy_only=False))
    return pl.select(pl.when(null).then(pl.lit(_NULL_H, pl.UInt64))
                     .when(m.is_not_null()).then(pl.struct(m.alias("m"), e.alias("e")).hash(seed))
                     .otherwise(plain.hash(seed + 1))).to_series()


def native_hash(arr: Any, meta: dict | None = None, as_tokens: bool = False) -> pl.Series:
    """u64 hash of each value's kind and native form (``column_hash``), decimals by value."""
    if isinstance(arr, (pa.Array, pa.ChunkedArray)) and pa.types.is_dictionary(arr.type):
        arr = (arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr).dictionary_decode()
    if not as_tokens and isinstance(arr, (pa.Array, pa.ChunkedArray)) and pa.types.is_decimal(arr.type) \
            and not (meta and meta.get(b"cdc.logical")):
        return _decimal_hash(arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr)
    kind, values = native(arr, meta, as_tokens)
    if kind == "d":  # a token column cannot be of kind d; kept for completeness
        kind = "tok"
    return pl.select(column_hash(kind, values)).to_series()


def column_hash(kind: str, s: pl.Series) -> pl.Expr:
    """u64 hash of each value's (kind, native form); NULL hashes alike whatever the kind."""
    if kind == "N":
        return pl.repeat(pl.lit(_NULL_H, pl.UInt64), s.len())
    return pl.when(s.is_null()).then(pl.lit(_NULL_H, pl.UInt64)).otherwise(s.hash(_kind_seed(kind)))


def _struct_columns(s: Any) -> tuple[list[tuple[str, Any, dict | None]], pl.Series | None]:
    """(name, array, field metadata) of a struct-like column, and its null mask (None: no nulls)."""
    if isinstance(s, _TokenStruct):
        mask = None if all(s.valid) else pl.Series([not v for v in s.valid])
        return [(n, a, None) for n, a in zip(s.names, s.arrays, strict=True)], mask
    if isinstance(s, pa.ChunkedArray):
        s = s.combine_chunks()
    mask = pl.Series(s.is_null().to_numpy(zero_copy_only=False)) if s.null_count else None
    return _fields(s), mask


def image_hash(s: Any, n: int, table_tokens: frozenset[str] = frozenset()) -> pl.Series:
    """u64 content hash of each image of a struct-like column (NULL where there is no image):
    equal exactly when the canonical image strings are equal, up to hash collisions.
    ``table_tokens``: the table's columns hashed as canonical tokens (``token_columns``)."""
    if s is None or (isinstance(s, (pa.Array, pa.ChunkedArray)) and s.null_count == n):
        return pl.Series([None] * n, dtype=pl.UInt64)
    cols, mask = _struct_columns(s)
    cols.sort(key=lambda c: c[0])
    h = np.full(n, _names_hash([c[0] for c in cols]), dtype=np.uint64)
    for name, arr, meta in cols:
        h = _mix(h * _K + native_hash(arr, meta, as_tokens=name in table_tokens).to_numpy())
    out = pl.Series(h, dtype=pl.UInt64)
    if mask is not None:
        out = out.set(mask, None)  # type: ignore[arg-type]
    return out


_K = np.uint64(0x9E3779B97F4A7C15)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer (wrapping u64 arithmetic): folds one column's hash into a row's."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def token_columns(batches: Iterable[Any]) -> dict[str, frozenset[str]]:
    """Per table, the image columns some batch holds only as canonical tokens (mixed Python
    types, values without an Arrow type): hashed as tokens in every part, to hash alike."""
    out: dict[str, set[str]] = {}
    for batch in batches:
        if isinstance(batch, RowBatch):
            for side in (batch.before, batch.after):
                if isinstance(side, _TokenStruct):
                    for name, arr in zip(side.names, side.arrays, strict=True):
                        if isinstance(arr, Tokens):
                            out.setdefault(batch.table, set()).add(name)
    return {t: frozenset(c) for t, c in out.items()}


def _row_batches(part: Any) -> list[tuple[int, int, Any]]:
    """A part as runs ``(start, stop, batch)``: Python rows split by shape, an Arrow batch whole.
    Cached on list parts (``RowLog`` keeps them) so a history is split once."""
    if isinstance(part, list):
        return rows_to_batches(part)
    data = part.data if hasattr(part, "data") else part
    return [(0, batch_len(data), data)]


def _native_image(s: Any) -> tuple[tuple[str, ...], tuple[str, ...], list[pl.Series], pl.Series | None]:
    cols, mask = _struct_columns(s)
    cols.sort(key=lambda c: c[0])
    kinds, values = [], []
    for _, arr, meta in cols:
        k, v = native(arr, meta)
        kinds.append(k)
        values.append(v)
    return tuple(c[0] for c in cols), tuple(kinds), values, mask


def same_images(a: Any, b: Any, n: int) -> pl.Series | None:
    """Row by row, whether two struct-like columns of ``n`` rows hold images with equal canonical
    strings, compared on native forms; None when their shapes or kinds differ (the caller then
    compares canonical strings)."""
    a_none = a is None or (isinstance(a, (pa.Array, pa.ChunkedArray)) and a.null_count == n)
    b_none = b is None or (isinstance(b, (pa.Array, pa.ChunkedArray)) and b.null_count == n)
    if a_none or b_none:
        if a_none and b_none:
            return pl.Series([True] * n)
        return None
    if isinstance(a, (pa.Array, pa.ChunkedArray)) and isinstance(b, (pa.Array, pa.ChunkedArray)):
        raw = _same_raw(a, b, n)
        if raw is not None:
            return raw
    na, ka, va, ma = _native_image(a)
    nb, kb, vb, mb = _native_image(b)
    if na != nb:
        return None
    eqs = []
    for x, y, kx, ky in zip(va, vb, ka, kb, strict=True):
        if kx == ky:
            eqs.append(x.eq_missing(y))
        elif kx == "N" or ky == "N":
            eqs.append(x.is_null() & y.is_null())
        else:
            return None
    null_a = ma if ma is not None else pl.Series([False] * n)
    null_b = mb if mb is not None else pl.Series([False] * n)
    same = pl.select(pl.all_horizontal(eqs) if eqs else pl.lit(True, pl.Boolean)).to_series()
    if same.len() != n:
        same = pl.Series([bool(same[0])] * n)
    return pl.select(pl.when(null_a | null_b).then(null_a == null_b).otherwise(same)).to_series()


def _raw_comparable(t: pa.DataType) -> bool:
    """Types whose stored values are equal exactly when their canonical tokens are."""
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or pa.types.is_date32(t) or pa.types.is_decimal128(t)
            or (pa.types.is_timestamp(t) and t.unit in ("s", "ms", "us"))
            or pa.types.is_null(t))


def _same_field_types(a: pa.DataType, b: pa.DataType) -> bool:
    """Two struct types with the same field names and types in one order (nullability aside)."""
    return a.num_fields == b.num_fields and all(x.name == y.name and x.type == y.type
                                                for x, y in zip(a, b, strict=True))


def _same_raw(a: Any, b: Any, n: int) -> pl.Series | None:
    """``same_images`` of two struct columns of one type, on their stored values (floats: NaN
    equal to NaN, -0.0 to 0.0); None when the types differ or one needs its native form."""
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks()
    if isinstance(b, pa.ChunkedArray):
        b = b.combine_chunks()
    if not _same_field_types(a.type, b.type) or any(f.metadata for f in (*a.type, *b.type)) \
            or not all(_raw_comparable(f.type) for f in a.type):
        return None
    eqs = []
    for i in range(a.type.num_fields):
        x, y = a.field(i), b.field(i)
        if pa.types.is_decimal(x.type):
            eq = pc.equal(x, y)
            both_null = pc.and_(x.is_null(), y.is_null())
            eqs.append(_series(pc.or_kleene(pc.fill_null(eq, False), both_null)))
        else:
            eqs.append(_series(x).eq_missing(_series(y)))
    same = pl.select(pl.all_horizontal(eqs)).to_series() if eqs else pl.Series([True] * n)
    null_a = _series(a.is_null())
    null_b = _series(b.is_null())
    return pl.select(pl.when(null_a | null_b).then(null_a == null_b).otherwise(same)).to_series()
