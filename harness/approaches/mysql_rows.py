"""A faster row decoder for binlog rows events, used by ``mysql-binlog`` beside python-mysql-replication.

python-mysql-replication decodes every value through a chain of ``if column.type == …`` tests and
a buffered ``packet.read`` per value, into a dict per image, which the approach then copies into
its own image dict. Here a table's columns are compiled once per table-map event, and for each
columns-present bitmap (a pair for updates) one decoder is generated: straight-line Python that
walks a rows event's body (taken as one ``bytes``) row by row, with every column read inlined
(integers by ``struct``/shifts, strings by their length prefix and codec, DECIMAL as one ``struct``
unpack folded into the unscaled integer, TIMESTAMP from a cached UTC day plus the time of day) and
the image built as one dict display when no value is NULL; the approach's conversions are folded
in (aware UTC ``TIMESTAMP``, parsed JSON).

Only the common column types are compiled: integers, FLOAT/DOUBLE, DECIMAL, CHAR/VARCHAR/BINARY/
VARBINARY, TEXT/BLOB, DATE, DATETIME(n), TIMESTAMP(n). A table with any other column (ENUM, SET,
BIT, TIME, YEAR, MySQL's binary JSON, GEOMETRY), without column names (``binlog_row_metadata=
MINIMAL``) or a MySQL partial-JSON update falls back to the library (``compile_columns`` returns
None). Values are the library's, bit for bit (``CDC_MYSQL_ROWS_CHECK=1`` decodes every event both
ways and raises on a difference; ``tests/test_mysql_rows.py`` runs it through a real binlog).
"""

from __future__ import annotations

import codecs
import datetime as dt
import decimal
import struct
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

# FIELD_TYPE codes (pymysqlreplication.constants.FIELD_TYPE)
DECIMAL, TINY, SHORT, LONG, FLOAT, DOUBLE, TIMESTAMP, LONGLONG, INT24, DATE = 0, 1, 2, 3, 4, 5, 7, 8, 9, 10
VARCHAR, TIMESTAMP2, DATETIME2, NEWDECIMAL, BLOB, VAR_STRING, STRING = 15, 17, 18, 246, 252, 253, 254

_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_COMPRESSED = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
_WIDE = decimal.Context(prec=100)  # exact scaling of DECIMAL(65, n)
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


def _encoding(charset: str | None) -> str | None:
    """The Python codec the library decodes a string column with (its charset's; none: UTF-8), or
    None when the charset has no codec (e.g. ``binary``): the library then keeps the bytes."""
    from pymysqlreplication.row_event import RowsEvent

    encoding = RowsEvent.charset_to_encoding(charset) if charset is not None else "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        return None
    return encoding


def _string(length_size: int, encoding: str | None) -> Reader:
    """A length-prefixed string decoded as the library does (``_encoding``)."""
    from_bytes = int.from_bytes

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        end = pos + length_size
        n = buf[pos] if length_size == 1 else from_bytes(buf[pos:end], "little")
        raw = buf[end:end + n]
        return (raw.decode(encoding) if encoding is not None else raw), end + n
    return read


def _decimal(precision: int, decimals: int) -> Reader:
    """MySQL's packed DECIMAL as the library reads it (its digit string, then ``Decimal``), computed
    as one integer: the sign bit flipped (all bits inverted when negative), then the big-endian
    groups of 9 digits (4 bytes) and the leading/trailing partial groups folded into the
    unscaled value, whose exponent is ``-decimals`` like the library's string."""
    integral = precision - decimals
    ui, uf = integral // 9, decimals // 9
    ci, cf = integral - ui * 9, decimals - uf * 9
    ci_size, cf_size = _COMPRESSED[ci], _COMPRESSED[cf]
    size = ci_size + 4 * ui + 4 * uf + cf_size
    if size == 0:
        raise ValueError(f"decimal({precision},{decimals}) has no digits")
    # (shift, mask, scale) of each group, most significant first: unscaled = unscaled * scale + group
    groups, shift = [], size * 8
    for nbytes, digits in ((ci_size, ci), *((4, 9),) * (ui + uf), (cf_size, cf)):
        if nbytes:
            shift -= nbytes * 8
            groups.append((shift, (1 << nbytes * 8) - 1, 10 ** digits))
    steps = tuple(groups)
    top, full = 1 << (size * 8 - 1), (1 << size * 8) - 1
    suffix = f"E-{decimals}" if decimals else ""
    from_bytes = int.from_bytes

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        v = from_bytes(buf[pos:pos + size], "big")
        sign = ""
        if v & top:
            v ^= top
        else:
            v ^= top ^ full
            sign = "-"
        unscaled = 0
        for sh, mask, scale in steps:
            unscaled = unscaled * scale + (v >> sh & mask)
        return Decimal(f"{sign}{unscaled}{suffix}"), pos + size
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
        if n:
            us = micro(buf, pos + 5)
            if us > 0:
                t = t.replace(microsecond=us)
        return t, pos + 5 + n
    return read


def _timestamp2(fsp: int) -> Reader:
    """TIMESTAMP(n) as an aware UTC datetime (the approach's conversion of the library's naive one):
    the epoch plus a ``timedelta`` (a third of ``fromtimestamp`` + ``replace``)."""
    n, micro = _fsp_reader(fsp)
    unpack = struct.Struct(">i").unpack_from
    timedelta = dt.timedelta

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        seconds = unpack(buf, pos)[0]
        us = micro(buf, pos + 4) if n else 0
        return _EPOCH + timedelta(0, seconds, us if us > 0 else 0), pos + 4 + n
    return read


def _date(buf: bytes, pos: int) -> tuple[Any, int]:
    v = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
    year, month, day = v >> 9 & 0x7FFF, v >> 5 & 0xF, v & 0x1F
    if v == 0 or not (year and month and day):
        return None, pos + 3
    return dt.date(year, month, day), pos + 3


class Col:
    """One compiled column: its name, its reader, and the straight-line code that reads it inside a
    generated decoder (``lines(var, i)``: statements that set ``var`` and advance ``pos``)."""

    __slots__ = ("name", "read", "kind", "arg", "conv")

    def __init__(self, name: str, read: Reader, kind: str, arg: Any, conv: Callable[[Any], Any] | None) -> None:
        self.name, self.read, self.kind, self.arg, self.conv = name, read, kind, arg, conv

    def lines(self, var: str, i: int, ns: dict[str, Any]) -> list[str]:
        kind, arg = self.kind, self.arg
        if kind == "u8":
            out = [f"{var} = buf[pos]", "pos += 1"]
        elif kind == "struct":
            ns[f"_u{i}"] = arg.unpack_from
            out = [f"{var} = _u{i}(buf, pos)[0]", f"pos += {arg.size}"]
        elif kind == "int24":
            out = [f"{var} = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16", "pos += 3"]
            if arg:  # signed
                out += [f"if {var} >= 0x800000:", f"    {var} -= 0x1000000"]
        elif kind == "string":
            size, encoding = arg
            if size == 1:
                out = ["n = pos + 1 + buf[pos]"]
            elif size == 2:
                out = ["n = pos + 2 + (buf[pos] | buf[pos + 1] << 8)"]
            else:
                out = [f"n = pos + {size} + _fb(buf[pos:pos + {size}], 'little')"]
            decode = f".decode({encoding!r})" if encoding is not None else ""
            out += [f"{var} = buf[pos + {size}:n]{decode}", "pos = n"]
        elif kind == "decimal":
            out = _decimal_lines(var, i, arg[0], arg[1], ns)
        elif kind == "timestamp2":
            out = _timestamp2_lines(var, arg, ns)
        else:
            ns[f"_r{i}"] = self.read
            out = [f"{var}, pos = _r{i}(buf, pos)"]
        if self.conv is not None:
            ns[f"_c{i}"] = self.conv
            out += [f"if {var} is not None:", f"    {var} = _c{i}({var})"]
        return out


_BE = {1: "B", 2: "H", 4: "I"}  # big-endian struct codes of decimal groups


def _decimal_groups(precision: int, decimals: int) -> tuple[tuple[int, int, str], ...]:
    """(bytes, digits, part) of a packed DECIMAL's groups, most significant first; part is ``ci``
    (leading integral digits), ``int``/``frac`` (9 digits in 4 bytes) or ``cf`` (trailing)."""
    integral = precision - decimals
    ui, uf = integral // 9, decimals // 9
    ci, cf = integral - ui * 9, decimals - uf * 9
    groups = [(_COMPRESSED[ci], ci, "ci"), *[(4, 9, "int")] * ui, *[(4, 9, "frac")] * uf,
              (_COMPRESSED[cf], cf, "cf")]
    return tuple(g for g in groups if g[0])


def _decimal_lines(var: str, i: int, groups: tuple[tuple[int, int, str], ...], decimals: int,
                   ns: dict[str, Any]) -> list[str]:
    """A packed DECIMAL read inline: its groups unpacked by one struct (the sign bit flipped, every
    bit inverted when negative: the sign bit was clear), folded into the unscaled integer, and
    scaled exactly (a context wide enough for 65 digits) to the library's exponent,
    ``-decimals``; negative values by ``copy_negate`` (a negative zero stays negative)."""
    st = struct.Struct(">" + "".join(_BE[n] for n, _, _ in groups))
    ns[f"_u{i}"], ns["_D"], ns["_WIDE"] = st.unpack_from, Decimal, _WIDE

    def unscaled(negative: bool) -> str:
        expr = ""
        for k, (nbytes, ndigits, _) in enumerate(groups):
            xor = (1 << (nbytes * 8 - 1) if k == 0 else 0) ^ ((1 << nbytes * 8) - 1 if negative else 0)
            g = f"(g[{k}] ^ {xor})" if xor else f"g[{k}]"
            expr = f"({expr}) * {10 ** ndigits} + {g}" if expr else g
        return expr

    return [f"g = _u{i}(buf, pos)", "if buf[pos] & 0x80:",
            f"    {var} = _D({unscaled(False)}).scaleb({-decimals}, _WIDE)", "else:",
            f"    {var} = _D({unscaled(True)}).scaleb({-decimals}, _WIDE).copy_negate()", f"pos += {st.size}"]


def _timestamp2_lines(var: str, fsp: int, ns: dict[str, Any]) -> list[str]:
    """TIMESTAMP(fsp) read inline as an aware UTC datetime: the seconds split into the day (its
    date cached: a TIMESTAMP spans 1970-2038, at most ~25k days) and the time of day."""
    ns["_i4"], ns["_dt"], ns["_UTC"], ns["_day"] = struct.Struct(">i").unpack_from, dt.datetime, _UTC, _utc_day
    n = (fsp + 1) // 2
    out = ["day, t = divmod(_i4(buf, pos)[0], 86400)", "ymd = _day(day)", "h, t = divmod(t, 3600)"]
    if n == 0:
        return [*out, f"{var} = _dt(ymd[0], ymd[1], ymd[2], h, t // 60, t % 60, 0, _UTC)", "pos += 4"]
    us = " | ".join(f"buf[pos + {4 + k}] << {8 * (n - 1 - k)}" if k < n - 1 else f"buf[pos + {4 + k}]"
                    for k in range(n))
    out += [f"us = {us}", f"if us >= {1 << (8 * n - 1)}:", "    us = 0"]  # negative (signed): no microseconds
    if fsp % 2:
        out.append("us = us // 10")  # non-negative here: int(us / 10)
    if fsp < 6:
        out.append(f"us *= {10 ** (6 - fsp)}")
    return [*out, f"{var} = _dt(ymd[0], ymd[1], ymd[2], h, t // 60, t % 60, us, _UTC)", f"pos += {4 + n}"]


_UTC_DAYS: dict[int, tuple[int, int, int]] = {}


def _utc_day(day: int) -> tuple[int, int, int]:
    """(year, month, day) of a day number since 1970-01-01 (cached)."""
    ymd = _UTC_DAYS.get(day)
    if ymd is None:
        d = _EPOCH + dt.timedelta(days=day)
        ymd = _UTC_DAYS[day] = (d.year, d.month, d.day)
    return ymd


def column_reader(col: Any) -> tuple[Reader, str, Any] | None:
    """(reader, inline kind, its argument) of one library ``Column`` (from a table-map event), or
    None if the type is not compiled."""
    t, unsigned = col.type, bool(getattr(col, "unsigned", False))
    fmt = {TINY: "<B" if unsigned else "<b", SHORT: "<H" if unsigned else "<h", LONG: "<I" if unsigned else "<i",
           LONGLONG: "<Q" if unsigned else "<q", FLOAT: "<f", DOUBLE: "<d"}.get(t)
    if fmt is not None:
        return _fixed(fmt), ("u8" if fmt == "<B" else "struct"), struct.Struct(fmt)
    if t == INT24:
        return _int24(unsigned), "int24", not unsigned
    if t == NEWDECIMAL:
        groups = _decimal_groups(col.precision, col.decimals)
        inline = all(nbytes in _BE for nbytes, _, _ in groups)
        return _decimal(col.precision, col.decimals), ("decimal" if inline else "call"), (groups, col.decimals)
    if t in (VARCHAR, STRING, BLOB):
        size = col.length_size if t == BLOB else (2 if col.max_length > 255 else 1)
        encoding = _encoding(col.character_set_name)
        return _string(size, encoding), "string", (size, encoding)
    if t == DATE:
        return _date, "call", None
    if t == DATETIME2:
        return _datetime2(col.fsp), "call", None
    if t == TIMESTAMP2:
        return _timestamp2(col.fsp), "timestamp2", col.fsp
    return None


class CompiledTable:
    """The compiled columns of one table map. ``decoder(bitmap[, bitmap2])`` is a function
    ``body -> list`` of row images (dicts) — or of (before, after) pairs when given the update
    event's second bitmap — generated once per columns-present bitmap: one straight-line block
    per image with the column reads inlined and the dict built as one display when no value is
    NULL."""

    __slots__ = ("names", "cols", "_decoders")
    MAX_DECODERS: ClassVar[int] = 256

    def __init__(self, cols: tuple[Col, ...]) -> None:
        self.cols = cols
        self.names = tuple(c.name for c in cols)
        self._decoders: dict[tuple[bytes, bytes | None], Callable[[bytes], list]] = {}

    def present(self, bitmap: bytes) -> tuple[tuple[int, Col], ...]:
        """(index, column) of the columns set in a columns-present bitmap, in column order."""
        return tuple((i, c) for i, c in enumerate(self.cols) if bitmap[i >> 3] >> (i & 7) & 1)

    def decoder(self, bitmap: bytes, bitmap2: bytes | None = None) -> Callable[[bytes], list]:
        key = (bytes(bitmap), None if bitmap2 is None else bytes(bitmap2))
        fn = self._decoders.get(key)
        if fn is None:
            if len(self._decoders) >= self.MAX_DECODERS:  # MINIMAL images: one per set of columns
                self._decoders.clear()
            fn = self._decoders[key] = self._generate(self.present(key[0]),
                                                      None if bitmap2 is None else self.present(key[1]))
        return fn

    @staticmethod
    def _generate(cols: tuple[tuple[int, Col], ...], cols2: tuple[tuple[int, Col], ...] | None) -> Callable:
        ns: dict[str, Any] = {"_fb": int.from_bytes}
        src = ["def decode(buf):", "    pos = 0", "    end = len(buf)", "    out = []", "    append = out.append",
               "    while pos < end:"]
        src += _image_lines(cols, "d", "        ", ns)
        if cols2 is None:
            src.append("        append(d)")
        else:
            src += _image_lines(cols2, "a", "        ", ns)
            src.append("        append((d, a))")
        src.append("    return out")
        exec(compile("\n".join(src) + "\n", "<mysql_rows decoder>", "exec"), ns)  # noqa: S102 - our own code
        return ns["decode"]


def _image_lines(cols: tuple[tuple[int, Col], ...], target: str, ind: str, ns: dict[str, Any]) -> list[str]:
    """Statements decoding one row image at ``pos`` into the dict ``target``: its null bitmap
    (one bit per present column), then the non-null values; columns absent from the image
    (``binlog_row_image`` MINIMAL/NOBLOB) are not keys of the dict."""
    nbytes = (len(cols) + 7) >> 3
    if nbytes == 0:
        return [f"{ind}{target} = {{}}"]
    out = [f"{ind}nulls = buf[pos]" if nbytes == 1 else f"{ind}nulls = _fb(buf[pos:pos + {nbytes}], 'little')",
           f"{ind}pos += {nbytes}", f"{ind}if not nulls:"]
    for j, (i, col) in enumerate(cols):
        out += [f"{ind}    {line}" for line in col.lines(f"v{j}", i, ns)]
    out.append(f"{ind}    {target} = {{" + ", ".join(f"{col.name!r}: v{j}" for j, (_, col) in enumerate(cols)) + "}")
    out += [f"{ind}else:", f"{ind}    {target} = {{}}"]
    for j, (i, col) in enumerate(cols):
        out += [f"{ind}    if nulls & {1 << j}:", f"{ind}        {target}[{col.name!r}] = None", f"{ind}    else:"]
        out += [f"{ind}        {line}" for line in col.lines(f"v{j}", i, ns)]
        out.append(f"{ind}        {target}[{col.name!r}] = v{j}")
    return out


def compile_columns(columns: list[Any], converters: dict[str, Callable[[Any], Any]]) -> CompiledTable | None:
    """A ``CompiledTable`` for a table-map's columns (``converters``: the approach's conversion per
    column name, applied to non-null values), or None when a column is not compiled."""
    cols = []
    for col in columns:
        if not col.name or not isinstance(col.name, str):
            return None
        compiled = column_reader(col)
        if compiled is None:
            return None
        read, kind, arg = compiled
        conv = converters.get(col.name)
        if col.type == TIMESTAMP2:  # aware already
            conv = None
        cols.append(Col(col.name, read, kind, arg, conv))
    return CompiledTable(tuple(cols))


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
