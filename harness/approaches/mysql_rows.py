"""A faster row decoder for binlog rows events, used by ``mysql-binlog`` beside python-mysql-replication.

python-mysql-replication decodes every value through a chain of ``if column.type == …`` tests and
a buffered ``packet.read`` per value, into a dict per image, which the approach then copies into
its own image dict. Here a table's columns are compiled once (per table-map event) into one small
reader per column; a rows event's body is taken as one ``bytes`` object and each row image is
decoded straight into the dict the ``ChangeEvent`` carries, with the approach's conversions folded
into the readers (aware UTC ``TIMESTAMP``, parsed JSON).

Only the common column types are compiled: integers, FLOAT/DOUBLE, DECIMAL, CHAR/VARCHAR/BINARY/
VARBINARY, TEXT/BLOB, DATE, DATETIME(n), TIMESTAMP(n). A table with any other column (ENUM, SET,
BIT, TIME, YEAR, MySQL's binary JSON, GEOMETRY), without column names (``binlog_row_metadata=
MINIMAL``) or a MySQL partial-JSON update falls back to the library (``compile_columns`` returns
None). Values are the library's, bit for bit (``CDC_MYSQL_ROWS_CHECK=1`` decodes every event both
ways and raises on a difference; the conformance suite runs it in ``tests``).
"""

from __future__ import annotations

import codecs
import datetime as dt
import struct
from collections.abc import Callable
from decimal import Decimal
from typing import Any

# FIELD_TYPE codes (pymysqlreplication.constants.FIELD_TYPE)
DECIMAL, TINY, SHORT, LONG, FLOAT, DOUBLE, TIMESTAMP, LONGLONG, INT24, DATE = 0, 1, 2, 3, 4, 5, 7, 8, 9, 10
VARCHAR, TIMESTAMP2, DATETIME2, NEWDECIMAL, BLOB, VAR_STRING, STRING = 15, 17, 18, 246, 252, 253, 254

_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_COMPRESSED = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
Reader = Callable[[bytes, int], tuple[Any, int]]


def _fixed(fmt: str) -> Reader:
    st = struct.Struct(fmt)
    unpack, size = st.unpack_from, st.size

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        return unpack(buf, pos)[0], pos + size
    return read


def _int24(unsigned: bool) -> Reader:
    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        v = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
        if not unsigned and v >= 0x800000:
            v -= 0x1000000
        return v, pos + 3
    return read


def _string(length_size: int, charset: str | None) -> Reader:
    """A length-prefixed string decoded as the library does (its charset's Python codec; none: UTF-8;
    a charset without a codec, e.g. ``binary``: the bytes)."""
    from pymysqlreplication.row_event import RowsEvent

    encoding = RowsEvent.charset_to_encoding(charset) if charset is not None else "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = None
    from_bytes = int.from_bytes

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        end = pos + length_size
        n = buf[pos] if length_size == 1 else from_bytes(buf[pos:end], "little")
        raw = buf[end:end + n]
        return (raw.decode(encoding) if encoding is not None else raw), end + n
    return read


def _decimal(precision: int, decimals: int) -> Reader:
    """MySQL's packed DECIMAL, the library's digit string (then ``Decimal``)."""
    integral = precision - decimals
    ui, uf = integral // 9, decimals // 9
    ci, cf = integral - ui * 9, decimals - uf * 9
    ci_size, cf_size = _COMPRESSED[ci], _COMPRESSED[cf]
    size = ci_size + 4 * ui + 4 * uf + cf_size
    from_bytes = int.from_bytes

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        raw = bytearray(buf[pos:pos + size])
        negative = not raw[0] & 0x80
        raw[0] ^= 0x80
        if negative:
            raw = bytearray(b ^ 0xFF for b in raw)
        parts = ["-"] if negative else []
        i = 0
        if ci_size:
            parts.append(str(from_bytes(raw[:ci_size], "big")))
            i = ci_size
        for _ in range(ui):
            parts.append(f"{from_bytes(raw[i:i + 4], 'big'):09d}")
            i += 4
        parts.append(".")
        for _ in range(uf):
            parts.append(f"{from_bytes(raw[i:i + 4], 'big'):09d}")
            i += 4
        if cf_size:
            parts.append(f"{from_bytes(raw[i:i + cf_size], 'big'):0{cf}d}")
        return Decimal("".join(parts)), pos + size
    return read


def _fsp_reader(fsp: int) -> tuple[int, Callable[[bytes, int], int]]:
    """(bytes, micro(buf, pos)) for a fractional-seconds part of ``fsp`` digits."""
    n = (fsp + 1) // 2
    if n == 0:
        return 0, lambda buf, pos: 0
    scale, odd = 10 ** (6 - fsp), fsp % 2
    from_bytes = int.from_bytes

    def micro(buf: bytes, pos: int) -> int:
        v = from_bytes(buf[pos:pos + n], "big", signed=True)
        if odd:
            v = int(v / 10)
        return v * scale
    return n, micro


def _datetime2(fsp: int) -> Reader:
    n, micro = _fsp_reader(fsp)
    from_bytes = int.from_bytes
    datetime = dt.datetime

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        v = from_bytes(buf[pos:pos + 5], "big")
        ym = (v >> 22) & 0x1FFFF
        try:
            t = datetime(ym // 13, ym % 13, (v >> 17) & 0x1F, (v >> 12) & 0x1F, (v >> 6) & 0x3F, v & 0x3F)
        except ValueError:
            return None, pos + 5 + n
        us = micro(buf, pos + 5)
        return (t.replace(microsecond=us) if us > 0 else t), pos + 5 + n
    return read


def _timestamp2(fsp: int) -> Reader:
    """TIMESTAMP(n) as an aware UTC datetime (the approach's conversion of the library's naive one)."""
    n, micro = _fsp_reader(fsp)
    unpack = struct.Struct(">i").unpack_from
    fromtimestamp = dt.datetime.fromtimestamp

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        t = fromtimestamp(unpack(buf, pos)[0], _UTC)
        us = micro(buf, pos + 4)
        return (t.replace(microsecond=us) if us > 0 else t), pos + 4 + n
    return read


def _date(buf: bytes, pos: int) -> tuple[Any, int]:
    v = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
    year, month, day = v >> 9 & 0x7FFF, v >> 5 & 0xF, v & 0x1F
    if v == 0 or not (year and month and day):
        return None, pos + 3
    return dt.date(year, month, day), pos + 3


def _converted(read: Reader, conv: Callable[[Any], Any]) -> Reader:
    def wrapped(buf: bytes, pos: int) -> tuple[Any, int]:
        v, pos = read(buf, pos)
        return (conv(v) if v is not None else None), pos
    return wrapped


def column_reader(col: Any) -> Reader | None:
    """The reader of one library ``Column`` (from a table-map event), or None if not compiled."""
    t, unsigned = col.type, bool(getattr(col, "unsigned", False))
    if t == TINY:
        return _fixed("<B" if unsigned else "<b")
    if t == SHORT:
        return _fixed("<H" if unsigned else "<h")
    if t == LONG:
        return _fixed("<I" if unsigned else "<i")
    if t == LONGLONG:
        return _fixed("<Q" if unsigned else "<q")
    if t == INT24:
        return _int24(unsigned)
    if t == FLOAT:
        return _fixed("<f")
    if t == DOUBLE:
        return _fixed("<d")
    if t == NEWDECIMAL:
        return _decimal(col.precision, col.decimals)
    if t in (VARCHAR, STRING):
        return _string(2 if col.max_length > 255 else 1, col.character_set_name)
    if t == BLOB:
        return _string(col.length_size, col.character_set_name)
    if t == DATE:
        return _date
    if t == DATETIME2:
        return _datetime2(col.fsp)
    if t == TIMESTAMP2:
        return _timestamp2(col.fsp)
    return None


class CompiledTable:
    """The readers and names of one table-map's columns; decodes row images from a body."""

    __slots__ = ("names", "readers")

    def __init__(self, names: tuple[str, ...], readers: tuple[Reader, ...]) -> None:
        self.names = names
        self.readers = readers

    def present(self, bitmap: bytes) -> tuple[tuple[str, Reader], ...]:
        """(name, reader) of the columns set in a columns-present bitmap, in column order."""
        return tuple((self.names[i], self.readers[i]) for i in range(len(self.names))
                     if bitmap[i >> 3] >> (i & 7) & 1)

    @staticmethod
    def image(buf: bytes, pos: int, cols: tuple[tuple[str, Reader], ...]) -> tuple[dict, int]:
        """One row image at ``pos``: its null bitmap, then the non-null values; columns absent from
        the image (``binlog_row_image`` MINIMAL/NOBLOB) are not keys of the dict."""
        nbytes = (len(cols) + 7) >> 3
        nulls = buf[pos:pos + nbytes]
        pos += nbytes
        out = {}
        if not any(nulls):
            for name, read in cols:
                out[name], pos = read(buf, pos)
            return out, pos
        for j, (name, read) in enumerate(cols):
            if nulls[j >> 3] >> (j & 7) & 1:
                out[name] = None
            else:
                out[name], pos = read(buf, pos)
        return out, pos


def compile_columns(columns: list[Any], converters: dict[str, Callable[[Any], Any]]) -> CompiledTable | None:
    """A ``CompiledTable`` for a table-map's columns (``converters``: the approach's conversion per
    column name, applied to non-null values), or None when a column is not compiled."""
    names, readers = [], []
    for col in columns:
        if not col.name:
            return None
        read = column_reader(col)
        if read is None:
            return None
        conv = converters.get(col.name)
        if conv is not None and col.type != TIMESTAMP2:  # TIMESTAMP2 is aware already
            read = _converted(read, conv)
        names.append(col.name)
        readers.append(read)
    return CompiledTable(tuple(names), tuple(readers))


def event_body(ev: Any) -> bytes | None:
    """The rows part of a rows event the library has read up to its first row, without consuming
    it (``ev.rows`` still works), or None when the packet is not in the expected state."""
    wrapper = ev.packet
    raw = getattr(wrapper, "packet", None)
    data, pos = getattr(raw, "_data", None), getattr(raw, "_position", None)
    if data is None or pos is None or getattr(wrapper, "_BinLogPacketWrapper__data_buffer", b"?"):
        return None
    n = ev.event_size - wrapper.read_bytes
    return bytes(data[pos:pos + n]) if 0 <= n <= len(data) - pos else None
