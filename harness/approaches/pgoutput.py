"""Decoder of PostgreSQL's pgoutput logical replication protocol (versions 1 and 2 streaming).

Two entry points share one tuple parser:
- ``parse(payload, in_stream)`` turns one message into a small dataclass (tests, debugging);
- ``PgOutputDecoder.feed(payload, captured_at)`` is the hot path: it keeps Relation state,
  buffers one transaction's changes and returns its events at Commit (or Stream Commit), with
  ``position = (commit LSN, ordinal in the transaction)``: ``ChangeEvent``s, and for a run of
  at least ``arrow_min`` consecutive inserts into one relation whose columns all have an Arrow
  type here (``ARROW_TYPES``), one Arrow event batch (``harness.columnar``'s shape) built from
  the same converted values (a bulk load checks without a Python object per row).

Values arrive in the text format; they are converted by type OID with converters built once
per Relation message (``converter(oid)``). An unchanged TOAST value (``'u'``) is never
invented: it is filled from the old tuple of the same message when one was sent (REPLICA
IDENTITY FULL), otherwise the column is left out of the after image.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from struct import Struct
from types import CodeType
from typing import Any

import numpy as np
import pyarrow as pa

from harness.events import ChangeEvent

PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in µs since the Unix epoch

_I16 = Struct(">h")
_I32 = Struct(">i")
_U32 = Struct(">I")
_I64 = Struct(">q")
_BEGIN = Struct(">qqI")       # final lsn, commit ts, xid
_COMMIT = Struct(">bqqq")     # flags, commit lsn, end lsn, commit ts
_SCOMMIT = Struct(">Ibqqq")   # xid, flags, commit lsn, end lsn, commit ts
_COLTAIL = Struct(">Ii")      # type oid, typmod
_TRUNC = Struct(">ib")        # nrels, options



class _Unchanged:
    """Marker type of an unchanged TOAST value ('u') in a parsed tuple."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unchanged-toast>"


#: Marker for an unchanged TOAST value in a parsed tuple.
UNCHANGED = _Unchanged()


# -- text-format converters by type OID ---------------------------------------------------------
_bool: Callable[[bytes], bool] = b"t".__eq__


_text: Callable[[bytes], str] = bytes.decode  # a C call, no Python frame per value


def _numeric(b: bytes) -> Decimal:
    return Decimal(b.decode())


def _bytea(b: bytes) -> bytes:
    if b[:2] == b"\\x":
        return bytes.fromhex(b[2:].decode())
    return _bytea_escape(b)


def _bytea_escape(b: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(b):
        c = b[i]
        if c == 0x5C and b[i + 1:i + 2] == b"\\":
            out.append(0x5C)
            i += 2
        elif c == 0x5C:
            out.append(int(b[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(c)
            i += 1
    return bytes(out)


def _guard(fn: Callable[[str], Any]) -> Callable[[bytes], Any]:
    """Wrap a str parser: values Python cannot represent (BC dates, infinity) stay strings."""
    def conv(b: bytes) -> Any:
        s = b.decode()
        try:
            return fn(s)
        except ValueError:
            return s
    return conv


def _timestamptz(s: str) -> dt.datetime:
    v = dt.datetime.fromisoformat(s)
    if v.tzinfo is None:  # the session runs with TimeZone=UTC; be safe anyway
        v = v.replace(tzinfo=dt.UTC)
    return v


def _array(elem: Callable[[bytes], Any]) -> Callable[[bytes], list]:
    """Parser of a 1-D or nested array of unquoted elements (numbers, booleans)."""
    def conv(b: bytes) -> list:
        if b == b"{}":
            return []
        if b.count(b"{") == 1:
            return [None if x == b"NULL" else elem(x) for x in b[1:-1].split(b",")]
        nested = json.loads(b.replace(b"{", b"[").replace(b"}", b"]").replace(b"NULL", b"null").decode())
        return nested
    return conv


def _text_array(b: bytes) -> list:
    """Parser of a 1-D text array, with PostgreSQL's quoting (``{a,"b c",NULL}``)."""
    s = b.decode()
    out: list[Any] = []
    i, n = 1, len(s) - 1
    while i < n:
        if s[i] == '"':
            j, buf = i + 1, []
            while s[j] != '"':
                if s[j] == "\\":
                    j += 1
                buf.append(s[j])
                j += 1
            out.append("".join(buf))
            i = j + 2
        else:
            j = s.find(",", i)
            j = n if j < 0 else j
            tok = s[i:j]
            out.append(None if tok == "NULL" else tok)
            i = j + 1
    return out


_CONVERTERS: dict[int, Callable[[bytes], Any]] = {
    16: _bool,
    17: _bytea,
    18: _text, 19: _text, 25: _text, 1042: _text, 1043: _text, 705: _text,
    20: int, 21: int, 23: int, 26: int,
    700: float, 701: float,
    1700: _numeric,
    114: json.loads, 3802: json.loads,
    2950: lambda b: uuid.UUID(b.decode()),
    1082: _guard(dt.date.fromisoformat),
    1114: _guard(dt.datetime.fromisoformat),
    1184: _guard(_timestamptz),
    1083: _guard(dt.time.fromisoformat),
    1000: _array(_bool), 1005: _array(int), 1007: _array(int), 1016: _array(int),
    1021: _array(float), 1022: _array(float), 1231: _array(_numeric),
    1009: _text_array, 1015: _text_array,
}


def converter(type_oid: int) -> Callable[[bytes], Any]:
    """The text-format converter of a type OID (unknown types stay strings)."""
    return _CONVERTERS.get(type_oid, _text)


#: the Arrow type of each type OID whose converted values an insert batch holds (None: inferred,
#: numeric's precision and scale); a relation with a column of another type keeps the row path
ARROW_TYPES: dict[int, pa.DataType | None] = {
    16: pa.bool_(), 17: pa.binary(),
    18: pa.string(), 19: pa.string(), 25: pa.string(), 1042: pa.string(), 1043: pa.string(), 705: pa.string(),
    20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 26: pa.int64(),
    700: pa.float64(), 701: pa.float64(), 1700: None,
    1082: pa.date32(), 1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"),
}
#: the fewest consecutive inserts into one relation of one transaction emitted as an Arrow batch
ARROW_MIN = 1_000


def warm_arrow() -> None:
    """Pay pyarrow's one-time cost of a first conversion from Python values (it imports pandas:
    seconds on a loaded machine) now, not in the middle of a poll."""
    pa.array([0], pa.int64())


# -- parsed messages (for tests and debugging) --------------------------------------------------
@dataclass
class Column:
    """One column of a Relation message."""

    flags: int
    name: str
    type_oid: int
    typmod: int

    @property
    def is_key(self) -> bool:
        """Part of the replica identity."""
        return bool(self.flags & 1)


@dataclass
class Message:
    """One decoded pgoutput message: ``kind`` is the message byte; fields depend on it."""

    kind: str
    xid: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def _cstr(buf: bytes, off: int) -> tuple[str, int]:
    end = buf.index(b"\0", off)
    return buf[off:end].decode(), end + 1


def _raw_tuple(buf: bytes, off: int) -> tuple[list[Any], int]:
    """Parse TupleData into raw values: bytes (text/binary), None (null) or UNCHANGED."""
    (n,) = _I16.unpack_from(buf, off)
    off += 2
    vals: list[Any] = []
    for _ in range(n):
        kind = buf[off]
        off += 1
        if kind == 0x74 or kind == 0x62:  # 't' / 'b'
            (ln,) = _I32.unpack_from(buf, off)
            off += 4
            vals.append(buf[off:off + ln])
            off += ln
        elif kind == 0x6E:  # 'n'
            vals.append(None)
        elif kind == 0x75:  # 'u'
            vals.append(UNCHANGED)
        else:
            raise ValueError(f"bad tuple column kind {kind!r} at offset {off - 1}")
    return vals, off


_STREAMED_KINDS = frozenset(b"RYIUDTM")


def parse(payload: bytes, in_stream: bool = False) -> Message:
    """Decode one pgoutput message (raw tuple values; no type conversion).

    ``in_stream``: inside a Stream Start/Stop block (protocol 2), where data messages carry
    the transaction id first.
    """
    buf = bytes(payload)
    kind = buf[0]
    off = 1
    xid = None
    if in_stream and kind in _STREAMED_KINDS:
        (xid,) = _U32.unpack_from(buf, off)
        off += 4
    k = chr(kind)
    f: dict[str, Any] = {}
    if k == "B":
        f["final_lsn"], ts, xid = _BEGIN.unpack_from(buf, off)
        f["commit_ts_us"] = ts + PG_EPOCH_US
    elif k == "C":
        f["flags"], f["commit_lsn"], f["end_lsn"], ts = _COMMIT.unpack_from(buf, off)
        f["commit_ts_us"] = ts + PG_EPOCH_US
    elif k == "O":
        (f["origin_lsn"],) = _I64.unpack_from(buf, off)
        f["name"], _ = _cstr(buf, off + 8)
    elif k == "R":
        (f["relid"],) = _U32.unpack_from(buf, off)
        f["namespace"], off = _cstr(buf, off + 4)
        f["name"], off = _cstr(buf, off)
        f["replica_identity"] = chr(buf[off])
        (ncols,) = _I16.unpack_from(buf, off + 1)
        off += 3
        cols = []
        for _ in range(ncols):
            flags = buf[off]
            name, off = _cstr(buf, off + 1)
            oid, typmod = _COLTAIL.unpack_from(buf, off)
            off += 8
            cols.append(Column(flags, name, oid, typmod))
        f["columns"] = cols
    elif k == "Y":
        (f["type_oid"],) = _U32.unpack_from(buf, off)
        f["namespace"], off = _cstr(buf, off + 4)
        f["name"], _ = _cstr(buf, off)
    elif k in "IUD":
        (f["relid"],) = _U32.unpack_from(buf, off)
        off += 4
        sub = chr(buf[off])
        if sub in "KO":
            f["old_kind"] = sub
            f["old"], off = _raw_tuple(buf, off + 1)
            sub = chr(buf[off]) if off < len(buf) else ""
        if sub == "N":
            f["new"], off = _raw_tuple(buf, off + 1)
    elif k == "T":
        nrels, f["options"] = _TRUNC.unpack_from(buf, off)
        off += 5
        f["relids"] = [_U32.unpack_from(buf, off + 4 * i)[0] for i in range(nrels)]
    elif k == "M":
        f["flags"] = buf[off]
        (f["lsn"],) = _I64.unpack_from(buf, off + 1)
        f["prefix"], off = _cstr(buf, off + 9)
        (ln,) = _I32.unpack_from(buf, off)
        f["content"] = buf[off + 4:off + 4 + ln]
    elif k == "S":
        (xid,) = _U32.unpack_from(buf, off)
        f["first_segment"] = bool(buf[off + 4])
    elif k == "E":
        pass
    elif k == "c":
        xid, f["flags"], f["commit_lsn"], f["end_lsn"], ts = _SCOMMIT.unpack_from(buf, off)
        f["commit_ts_us"] = ts + PG_EPOCH_US
    elif k == "A":
        xid, f["subxid"] = _U32.unpack_from(buf, off)[0], _U32.unpack_from(buf, off + 4)[0]
    else:
        raise ValueError(f"unknown pgoutput message {k!r}")
    return Message(k, xid, f)


# -- the hot path -------------------------------------------------------------------------------
class Relation:
    """A Relation message with its converters, built once per message (not per row)."""

    __slots__ = ("relid", "namespace", "name", "table", "names", "convs", "key_idx", "ident_idx", "row", "arrow")

    def __init__(self, relid: int, namespace: str, name: str, columns: list[Column],
                 table: str, key_names: tuple[str, ...] | None) -> None:
        self.relid = relid
        self.namespace = namespace
        self.name = name
        self.table = table
        self.names = [c.name for c in columns]
        self.convs = [converter(c.type_oid) for c in columns]
        self.ident_idx = [i for i, c in enumerate(columns) if c.is_key]
        if key_names and all(k in self.names for k in key_names):
            self.key_idx = [self.names.index(k) for k in key_names]
        else:
            self.key_idx = self.ident_idx
        #: ``row(buf, off) -> (key, image, has_unchanged, next_off)``, compiled for this shape
        self.row: Callable[[bytes, int], tuple[tuple, dict[str, Any], bool, int]] = _compile_row(self)
        #: the columns' Arrow types, when every one has one and the relation has a key (else None)
        self.arrow: list[pa.DataType | None] | None = (
            [ARROW_TYPES[c.type_oid] for c in columns]
            if self.key_idx and all(c.type_oid in ARROW_TYPES for c in columns) else None)


#: ``key_columns(namespace, name) -> key column names or None`` (None: use the replica identity).
KeyLookup = Callable[[str, str], "tuple[str, ...] | None"]


class _Run:
    """Consecutive changes of one op into one relation of the open transaction, with one kind of
    old tuple (``old``: ``N`` none, ``K`` key columns, ``O`` the whole row): their keys, images
    and receipt times, from ordinal ``start`` on."""

    __slots__ = ("rel", "op", "old", "start", "keys", "befores", "afters", "captured")

    def __init__(self, rel: Relation, op: str, old: int, start: int) -> None:
        self.rel, self.op, self.old, self.start = rel, op, old, start
        self.keys: list[tuple] = []
        self.befores: list[dict[str, Any] | None] = []
        self.afters: list[dict[str, Any] | None] = []
        self.captured: list[int] = []


class PgOutputDecoder:
    """Turns a stream of pgoutput payloads into whole transactions of events.

    Contract: ``feed(payload, captured_at)`` returns the events of a transaction when its
    Commit (or Stream Commit) arrives, else None: ``ChangeEvent``s, except that a run of at
    least ``arrow_min`` consecutive inserts into one relation with Arrow-typed columns
    (``Relation.arrow``) is one Arrow event batch, holding what the ``ChangeEvent``s would
    (same converted values, positions, ``captured_at`` per row); a run whose values Arrow
    cannot hold (e.g. ``infinity`` dates kept as strings) stays ``ChangeEvent``s. Positions are
    ``(commit_lsn, ordinal)`` (the commit LSN is known from Begin, so events are built as they arrive); after each
    commit ``last_commit`` is ``(commit_lsn, end_lsn)`` — the end LSN is what a reader
    confirms. ``txid`` is the xid; ``commit_ts`` is ns since the Unix epoch; ``captured_at``
    is the receipt time of each change message (for streamed transactions: of the Stream
    Commit, since earlier chunks arrive before the source commits). Tables in ``schema`` are
    named by relation name alone, others ``namespace.name``. ``reset()`` forgets a
    half-received transaction (after a reconnect the server resends it, and Relations).
    """

    def __init__(self, schema: str | None = None, key_columns: KeyLookup | None = None) -> None:
        self.schema = schema
        self.key_columns = key_columns
        self.relations: dict[int, Relation] = {}
        self.types: dict[int, tuple[str, str]] = {}
        self.last_commit: tuple[int, int] = (0, 0)
        self._xid = 0
        self._lsn = 0
        self._cts = 0
        self._events: list[Any] = []
        #: the open transaction's next ordinal, and its pending run of inserts
        self._n = 0
        self._run: _Run | None = None
        self.arrow_min = ARROW_MIN
        self._in_stream = False
        self._stream_xid = 0
        #: streamed (protocol 2) transactions: xid -> [(table, op, key, before, after, subxid, old key)]
        self._streams: dict[int, list[tuple]] = {}

    def reset(self) -> None:
        """Drop any partially received transaction (the server will resend it)."""
        self._events = []
        self._run = None
        self._n = 0
        self._in_stream = False
        self._streams.clear()

    def feed(self, payload: bytes, captured_at: int) -> list[ChangeEvent] | None:
        """Decode one message; return a committed transaction's events or None."""
        kind = payload[0]
        if kind == 0x49 or kind == 0x55 or kind == 0x44:  # I U D
            if self._in_stream:
                self._streamed_dml(payload, kind)
                return None
            rel = self.relations[_U32.unpack_from(payload, 1)[0]]
            op, key, before, after, old_key = _change(payload, 5, kind, rel)
            run = self._run
            if rel.arrow is not None and old_key is None and _whole(before, after, rel):
                old = payload[5]  # N (an insert, or an update without old tuple), K or O
                if run is None or run.rel is not rel or run.op != op or run.old != old:
                    if run is not None:
                        self._flush_run()
                    run = self._run = _Run(rel, op, old, self._n)
                run.keys.append(key)
                run.befores.append(before)
                run.afters.append(after)
                run.captured.append(captured_at)
                self._n += 1
                return None
            if run is not None:
                self._flush_run()
            self._events.append(ChangeEvent(rel.table, op, key, before, after, (self._lsn, self._n),
                                            self._xid, self._cts, captured_at, old_key))
            self._n += 1
            return None
        if kind == 0x42:  # B
            self._lsn, ts, self._xid = _BEGIN.unpack_from(payload, 1)
            self._cts = (ts + PG_EPOCH_US) * 1000
            self._events = []
            self._run = None
            self._n = 0
            return None
        if kind == 0x43:  # C
            _, commit_lsn, end_lsn, _ = _COMMIT.unpack_from(payload, 1)
            self.last_commit = (commit_lsn, end_lsn)
            if self._run is not None:
                self._flush_run()
            events, self._events = self._events, []
            return events
        if kind == 0x52:  # R
            self._relation(payload)
            return None
        if kind == 0x54:  # T
            self._truncate(payload, captured_at)
            return None
        if kind == 0x53:  # S stream start
            (self._stream_xid,) = _U32.unpack_from(payload, 1)
            self._in_stream = True
            self._streams.setdefault(self._stream_xid, [])
            return None
        if kind == 0x45:  # E stream stop
            self._in_stream = False
            return None
        if kind == 0x63:  # c stream commit
            xid, _, commit_lsn, end_lsn, ts = _SCOMMIT.unpack_from(payload, 1)
            self.last_commit = (commit_lsn, end_lsn)
            rows = self._streams.pop(xid, [])
            cts = (ts + PG_EPOCH_US) * 1000
            return [ChangeEvent(t, op, key, before, after, (commit_lsn, i), xid, cts, captured_at, old_key)
                    for i, (t, op, key, before, after, _sub, old_key) in enumerate(rows)]
        if kind == 0x41:  # A stream abort
            xid, subxid = _U32.unpack_from(payload, 1)[0], _U32.unpack_from(payload, 5)[0]
            if xid == subxid:
                self._streams.pop(xid, None)
            elif xid in self._streams:
                self._streams[xid] = [r for r in self._streams[xid] if r[5] != subxid]
            return None
        if kind == 0x59:  # Y
            m = parse(payload, self._in_stream)
            self.types[m.fields["type_oid"]] = (m.fields["namespace"], m.fields["name"])
            return None
        if kind in (0x4F, 0x4D):  # Origin, logical Message: nothing to emit
            return None
        raise ValueError(f"unknown pgoutput message {chr(kind)!r}")

    def _flush_run(self) -> None:
        """Emit the pending run: one Arrow batch when long enough, else events."""
        run, self._run = self._run, None
        assert run is not None
        rel, lsn, xid, cts = run.rel, self._lsn, self._xid, self._cts
        if len(run.keys) >= self.arrow_min:
            batch = _run_batch(run, lsn, xid, cts)
            if batch is not None:
                self._events.append(batch)
                return
        table, op, start = rel.table, run.op, run.start
        self._events.extend(
            ChangeEvent(table, op, key, before, after, (lsn, start + j), xid, cts, captured)
            for j, (key, before, after, captured) in enumerate(
                zip(run.keys, run.befores, run.afters, run.captured, strict=True)))

    def _relation(self, payload: bytes) -> None:
        m = parse(payload, self._in_stream)
        f = m.fields
        ns, name = f["namespace"], f["name"]
        table = name if ns == self.schema or self.schema is None else f"{ns}.{name}"
        keys = self.key_columns(ns, name) if self.key_columns else None
        self.relations[f["relid"]] = Relation(f["relid"], ns, name, f["columns"], table, keys)

    def _streamed_dml(self, buf: bytes, kind: int) -> None:
        subxid, relid = _U32.unpack_from(buf, 1)[0], _U32.unpack_from(buf, 5)[0]
        rel = self.relations[relid]
        op, key, before, after, old_key = _change(buf, 9, kind, rel)
        self._streams[self._stream_xid].append((rel.table, op, key, before, after, subxid, old_key))

    def _truncate(self, buf: bytes, captured_at: int) -> None:
        off = 1
        subxid = 0
        if self._in_stream:
            (subxid,) = _U32.unpack_from(buf, 1)
            off = 5
        nrels, _ = _TRUNC.unpack_from(buf, off)
        off += 5
        for i in range(nrels):
            (relid,) = _U32.unpack_from(buf, off + 4 * i)
            rel = self.relations.get(relid)
            table = rel.table if rel else str(relid)
            if self._in_stream:
                self._streams[self._stream_xid].append((table, "truncate", (), None, None, subxid, None))
            else:
                if self._run is not None:
                    self._flush_run()
                self._events.append(ChangeEvent(table, "truncate", (), None, None, (self._lsn, self._n),
                                                self._xid, self._cts, captured_at))
                self._n += 1


def _whole(before: dict[str, Any] | None, after: dict[str, Any] | None, rel: Relation) -> bool:
    """Whether a change's images have every column they should (an unchanged TOAST value left
    out of an image keeps the change a ``ChangeEvent``)."""
    n = len(rel.names)
    return (after is None or len(after) == n) and (before is None or len(before) in (n, len(rel.ident_idx)))


def _run_batch(run: _Run, lsn: int, xid: int, cts: int) -> pa.RecordBatch | None:
    """A run as an Arrow event batch, or None when a value has no place in its column's Arrow
    type (a date kept as a string, a numeric NaN, ...) or the old images differ in shape."""
    rel, n = run.rel, len(run.keys)
    types = rel.arrow
    assert types is not None
    try:
        key = pa.StructArray.from_arrays(
            [pa.array([k[j] for k in run.keys], type=types[i]) for j, i in enumerate(rel.key_idx)],
            names=[rel.names[i] for i in rel.key_idx])
        after = _images(run.afters, list(range(len(rel.names))), rel)
        before = _images(run.befores, rel.ident_idx if run.old == 0x4B else list(range(len(rel.names))), rel)
    except (pa.ArrowException, TypeError, ValueError, OverflowError, KeyError):
        return None
    flat = np.empty(2 * n, dtype=np.int64)
    flat[0::2] = lsn
    flat[1::2] = np.arange(run.start, run.start + n, dtype=np.int64)
    return pa.RecordBatch.from_arrays(
        [pa.array([rel.table] * n, pa.string()), pa.array([run.op] * n, pa.string()), key, before, after,
         pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)), pa.array(flat)),
         pa.array([xid] * n, pa.int64()), pa.array([cts] * n, pa.int64()), pa.array(run.captured, pa.int64())],
        names=["table", "op", "key", "before", "after", "position", "txid", "commit_ts", "captured_at"])


def _images(images: list[dict[str, Any] | None], idx: list[int], rel: Relation) -> pa.Array:
    """The images of a run as a struct column of the columns ``idx`` (NULL: the run has none);
    an image with other columns raises ``KeyError`` or ``ValueError``."""
    n = len(images)
    if images[0] is None:
        if any(img is not None for img in images):
            raise ValueError("a run mixes changes with and without an image")
        return pa.nulls(n)
    names = [rel.names[i] for i in idx]
    if any(img is None or len(img) != len(names) for img in images):
        raise ValueError("a run's images differ in shape")
    types = rel.arrow
    assert types is not None
    return pa.StructArray.from_arrays([pa.array([img[c] for img in images], type=types[i])  # type: ignore[index]
                                       for c, i in zip(names, idx, strict=True)], names=names)


def _change(buf: bytes, off: int, kind: int, rel: Relation) -> tuple[str, tuple, Any, Any, tuple | None]:
    """Decode the body of an Insert/Update/Delete after its relation id: (op, key, before, after,
    old key) — the old key only for an update whose old tuple holds a different key."""
    sub = buf[off]
    if kind == 0x49:  # insert: 'N' tuple
        key, after, _, _ = rel.row(buf, off + 1)
        return "insert", key, None, after, None
    before = old_key = None
    old_full = sub == 0x4F
    if sub == 0x4B or old_full:  # K / O
        old_key, old, _, off = rel.row(buf, off + 1)
        before = _image(old, rel, old_full)
        if kind == 0x44:
            return "delete", old_key, before, None, None
    key, after, unchanged, _ = rel.row(buf, off + 1)
    if unchanged:
        after = _fill_unchanged(after, before if old_full else None)
    return "update", key, before, after, (old_key if old_key is not None and old_key != key else None)


def _compile_row(rel: Relation) -> Callable[[bytes, int], tuple[tuple, dict[str, Any], bool, int]]:
    """A TupleData parser unrolled for this relation's columns, bound to its converters.

    The code (``_row_source``, compiled once per shape) is built from the column count, the key
    positions and ``repr`` of the column names only; it parses each column inline (no per-column
    loop, list or zip) and builds the image dict directly.
    A tuple with another column count falls back to the generic loop.
    """

    def generic(buf: bytes, off: int) -> tuple[tuple, dict[str, Any], bool, int]:
        vals, off = _conv_tuple(buf, off, rel.convs)
        image = dict(zip(rel.names, vals, strict=False))
        return tuple(vals[i] for i in rel.key_idx), image, UNCHANGED in vals, off

    env: dict[str, Any] = {"unpack": _I32.unpack_from, "unpack16": _I16.unpack_from, "UNCH": UNCHANGED,
                           "other": _other_kind, "generic": generic}
    env.update({f"c{i}": c for i, c in enumerate(rel.convs)})
    exec(_row_code(tuple(rel.names), tuple(rel.key_idx)), env)  # noqa: S102 - generated from repr'd names
    return env["row"]


def _row_source(names: tuple[str, ...], key_idx: tuple[int, ...]) -> str:
    """The source of a TupleData parser unrolled for ``names`` (converters ``c0``… bound later)."""
    n = len(names)
    lines = ["def row(buf, off):",
             f"    if unpack16(buf, off)[0] != {n}:",
             "        return generic(buf, off)",
             "    off += 2",
             "    u = False"]
    for i in range(n):
        lines += [
            "    k = buf[off]",
            "    if k == 116:",
            "        e = off + 5 + unpack(buf, off + 1)[0]",
            f"        v{i} = c{i}(buf[off + 5:e])",
            "        off = e",
            "    elif k == 110:",
            f"        v{i} = None",
            "        off += 1",
            "    elif k == 117:",
            f"        v{i} = UNCH",
            "        u = True",
            "        off += 1",
            "    else:",
            f"        v{i}, off = other(buf, off)",
        ]
    key = "(" + "".join(f"v{i}, " for i in key_idx) + ")"
    image = "{" + ", ".join(f"{name!r}: v{i}" for i, name in enumerate(names)) + "}"
    lines.append(f"    return {key}, {image}, u, off")
    return "\n".join(lines)


#: compiled row parsers by shape (column names, key positions): compiling one costs about 1 ms, paid
#: once per shape (``precompile_rows`` pays it before streaming), not on the stream
_ROW_CODE: dict[tuple[tuple[str, ...], tuple[int, ...]], CodeType] = {}


def _row_code(names: tuple[str, ...], key_idx: tuple[int, ...]) -> CodeType:
    """The compiled ``row`` function's code for a relation of columns ``names`` keyed at ``key_idx``
    (the converters are bound at ``exec``: one code object serves every type of those columns)."""
    code = _ROW_CODE.get((names, key_idx))
    if code is None:
        code = compile(_row_source(names, key_idx), "<pgoutput-row>", "exec")
        _ROW_CODE[(names, key_idx)] = code
    return code


def precompile_rows(shapes: Iterable[tuple[tuple[str, ...], tuple[int, ...]]]) -> None:
    """Compile the row parsers of these (column names, key positions) shapes now: the reader calls
    it for the tables it knows before streaming, so a Relation message does not stall the stream."""
    for names, key_idx in shapes:
        _row_code(tuple(names), tuple(key_idx))


def _other_kind(buf: bytes, off: int) -> tuple[Any, int]:
    """A column that is neither text, null nor unchanged: binary ('b') keeps its raw bytes."""
    if buf[off] == 0x62:
        end = off + 5 + _I32.unpack_from(buf, off + 1)[0]
        return buf[off + 5:end], end
    raise ValueError(f"bad tuple column kind {buf[off]!r} at offset {off}")


def _conv_tuple(buf: bytes, off: int, convs: list[Callable[[bytes], Any]]) -> tuple[list[Any], int]:
    """Parse TupleData converting each text value with the relation's converters."""
    n = _I16.unpack_from(buf, off)[0]
    off += 2
    vals: list[Any] = []
    app = vals.append
    unpack = _I32.unpack_from
    for i in range(n):
        kind = buf[off]
        if kind == 0x74:  # 't'
            end = off + 5 + unpack(buf, off + 1)[0]
            app(convs[i](buf[off + 5:end]))
            off = end
        elif kind == 0x6E:  # 'n'
            app(None)
            off += 1
        elif kind == 0x75:  # 'u'
            app(UNCHANGED)
            off += 1
        elif kind == 0x62:  # 'b' (binary mode is not requested; keep the raw bytes)
            end = off + 5 + unpack(buf, off + 1)[0]
            app(buf[off + 5:end])
            off = end
        else:
            raise ValueError(f"bad tuple column kind {kind!r} at offset {off}")
    return vals, off


def _image(old: dict[str, Any], rel: Relation, full: bool) -> dict[str, Any]:
    """An old image: the whole row for 'O', only the replica-identity columns for 'K'."""
    if full:
        return {n: v for n, v in old.items() if v is not UNCHANGED}
    names = rel.names
    return {names[i]: old[names[i]] for i in rel.ident_idx}


def _fill_unchanged(after: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """Replace unchanged-TOAST markers from the full old image, or leave the column out."""
    out = {}
    for k, v in after.items():
        if v is UNCHANGED:
            if old is not None and k in old:
                out[k] = old[k]
        else:
            out[k] = v
    return out
