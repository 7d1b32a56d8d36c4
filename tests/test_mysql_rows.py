"""mysql-binlog's compiled row decoder (``harness.approaches.mysql_rows``) and its read-ahead queue.

Without a server: row images encoded here in the binlog's row format (MariaDB/MySQL ``WRITE_ROWS``
body: a null bitmap per image, then the non-null values) are decoded by the generated decoders and
the per-column readers and compared with the values written, for every compiled type, NULL
patterns, partial images (columns-present bitmaps) and update pairs; the bounded read-ahead
(``_Handoff``) is checked for back-pressure in events. With a local MariaDB (skipped when the
binaries are missing): every compiled type with edge values goes through the real binlog with
``ROWS_CHECK`` on (each event decoded by the library too, a difference raises).
"""

from __future__ import annotations

import datetime as dt
import decimal
import random
import struct
import threading
import time
import types
from decimal import Decimal

import pytest

from harness.approaches import mysql_rows as mr
from harness.approaches.mysql_binlog import _event, _Handoff, _Txn
from harness.events import ChangeEvent

UTC = dt.UTC
_WIDE = decimal.Context(prec=200)


def col(name: str, type_: int, **kw) -> types.SimpleNamespace:
    return types.SimpleNamespace(name=name, type=type_, **kw)


# -- encoders: the binlog's row format ---------------------------------------------------------
def enc_decimal(v: Decimal, precision: int, decimals: int) -> bytes:
    integral = precision - decimals
    ui, uf = integral // 9, decimals // 9
    ci, cf = integral - ui * 9, decimals - uf * 9
    neg = v.is_signed()
    ip, _, fp = format(v.copy_abs(), "f").partition(".")
    ip, fp = ip.rjust(integral, "0"), fp.ljust(decimals, "0")
    out = bytearray()
    if ci:
        out += int(ip[:ci]).to_bytes(mr._COMPRESSED[ci], "big")
    for k in range(ui):
        out += int(ip[ci + 9 * k:ci + 9 * k + 9]).to_bytes(4, "big")
    for k in range(uf):
        out += int(fp[9 * k:9 * k + 9]).to_bytes(4, "big")
    if cf:
        out += int(fp[9 * uf:]).to_bytes(mr._COMPRESSED[cf], "big")
    out[0] ^= 0x80
    return bytes(b ^ 0xFF for b in out) if neg else bytes(out)


def enc_frac(us: int, fsp: int) -> bytes:
    n = (fsp + 1) // 2
    if not n:
        return b""
    return ((us // 10 ** (6 - fsp)) * (10 if fsp % 2 else 1)).to_bytes(n, "big")


def enc_timestamp2(v: dt.datetime, fsp: int) -> bytes:
    return struct.pack(">i", int((v - mr._EPOCH).total_seconds() // 1)) + enc_frac(v.microsecond, fsp)


def enc_datetime2(v: dt.datetime, fsp: int) -> bytes:
    packed = (1 << 39 | (v.year * 13 + v.month) << 22 | v.day << 17 | v.hour << 12 | v.minute << 6 | v.second)
    return packed.to_bytes(5, "big") + enc_frac(v.microsecond, fsp)


def enc_date(v: dt.date) -> bytes:
    return (v.year << 9 | v.month << 5 | v.day).to_bytes(3, "little")


def enc_string(v: str | bytes, size: int) -> bytes:
    raw = v.encode() if isinstance(v, str) else v
    return len(raw).to_bytes(size, "little") + raw


COLUMNS = [
    (col("id", mr.LONGLONG, unsigned=False), lambda v: struct.pack("<q", v)),
    (col("u64", mr.LONGLONG, unsigned=True), lambda v: struct.pack("<Q", v)),
    (col("i8", mr.TINY, unsigned=False), lambda v: struct.pack("<b", v)),
    (col("u8", mr.TINY, unsigned=True), lambda v: struct.pack("<B", v)),
    (col("i16", mr.SHORT, unsigned=False), lambda v: struct.pack("<h", v)),
    (col("i24", mr.INT24, unsigned=False), lambda v: (v & 0xFFFFFF).to_bytes(3, "little")),
    (col("u24", mr.INT24, unsigned=True), lambda v: v.to_bytes(3, "little")),
    (col("i32", mr.LONG, unsigned=False), lambda v: struct.pack("<i", v)),
    (col("f64", mr.DOUBLE), lambda v: struct.pack("<d", v)),
    (col("f32", mr.FLOAT), lambda v: struct.pack("<f", v)),
    (col("d38", mr.NEWDECIMAL, precision=38, decimals=10), lambda v: enc_decimal(v, 38, 10)),
    (col("d65", mr.NEWDECIMAL, precision=65, decimals=30), lambda v: enc_decimal(v, 65, 30)),
    (col("d10", mr.NEWDECIMAL, precision=10, decimals=0), lambda v: enc_decimal(v, 10, 0)),
    (col("d55", mr.NEWDECIMAL, precision=5, decimals=5), lambda v: enc_decimal(v, 5, 5)),
    (col("d7", mr.NEWDECIMAL, precision=7, decimals=3), lambda v: enc_decimal(v, 7, 3)),  # 3-byte group
    (col("vc", mr.VARCHAR, max_length=40, character_set_name="utf8mb4"), lambda v: enc_string(v, 1)),
    (col("vcl", mr.VARCHAR, max_length=1020, character_set_name="utf8mb4"), lambda v: enc_string(v, 2)),
    (col("txt", mr.BLOB, length_size=2, character_set_name="utf8mb4"), lambda v: enc_string(v, 2)),
    (col("lb", mr.BLOB, length_size=4, character_set_name="binary"), lambda v: enc_string(v, 4)),
    (col("day", mr.DATE), enc_date),
    *[(col(f"dt{f}", mr.DATETIME2, fsp=f), lambda v, f=f: enc_datetime2(v, f)) for f in range(7)],
    *[(col(f"ts{f}", mr.TIMESTAMP2, fsp=f), lambda v, f=f: enc_timestamp2(v, f)) for f in range(7)],
]


def random_value(rng: random.Random, c) -> object:
    t, name = c.type, c.name
    if t == mr.LONGLONG:
        return rng.randint(0, 2**64 - 1) if c.unsigned else rng.randint(-2**63, 2**63 - 1)
    if t == mr.TINY:
        return rng.randint(0, 255) if c.unsigned else rng.randint(-128, 127)
    if t == mr.SHORT:
        return rng.randint(-2**15, 2**15 - 1)
    if t == mr.INT24:
        return rng.randint(0, 2**24 - 1) if c.unsigned else rng.randint(-2**23, 2**23 - 1)
    if t == mr.LONG:
        return rng.randint(-2**31, 2**31 - 1)
    if t == mr.DOUBLE:
        return rng.choice([0.0, -0.0, 1e308, -2.5e-308, rng.uniform(-1e9, 1e9)])
    if t == mr.FLOAT:
        return struct.unpack("<f", struct.pack("<f", rng.uniform(-1e6, 1e6)))[0]
    if t == mr.NEWDECIMAL:
        p, d = c.precision, c.decimals
        digits = rng.choice([0, 1, p // 2, p])
        v = Decimal(rng.randint(-10**digits + 1, 10**digits - 1)).scaleb(-d, _WIDE)
        return rng.choice([v, Decimal(0).scaleb(-d), (Decimal(10**p - 1).scaleb(-d, _WIDE)).copy_negate()])
    if t in (mr.VARCHAR, mr.BLOB):
        if c.character_set_name == "binary":
            return bytes(rng.randrange(256) for _ in range(rng.choice([0, 3, 300])))
        return rng.choice(["", "a", "żółw 🐢", "x" * (rng.choice([10, 30]) if name == "vc" else 300)])
    if t == mr.DATE:
        return rng.choice([dt.date(1000, 1, 1), dt.date(1969, 12, 31), dt.date(9999, 12, 31), dt.date(2024, 2, 29)])
    fsp = c.fsp
    us = rng.randrange(10**6) // 10 ** (6 - fsp) * 10 ** (6 - fsp)
    if t == mr.DATETIME2:
        return dt.datetime(rng.randint(1000, 9999), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                           rng.randint(0, 59), rng.randint(0, 59), us)
    seconds = rng.choice([0, 1, 86399, 86400, 2**31 - 1, rng.randint(0, 2**31 - 1)])
    return mr._EPOCH + dt.timedelta(seconds=seconds, microseconds=us)


def encode_image(row: dict, cols: list) -> bytes:
    """One row image of the present columns ``cols``: null bitmap, then the non-null values."""
    nulls = sum(1 << j for j, (c, _) in enumerate(cols) if row[c.name] is None)
    out = bytearray(nulls.to_bytes((len(cols) + 7) // 8, "little"))
    for c, enc in cols:
        if row[c.name] is not None:
            out += enc(row[c.name])
    return bytes(out)


def bitmap(present: list[int], n: int) -> bytes:
    return sum(1 << i for i in present).to_bytes((n + 7) // 8, "little")


def rows(rng: random.Random, count: int, null_rate: float) -> list[dict]:
    out = []
    for _ in range(count):
        out.append({c.name: (None if c.name != "id" and rng.random() < null_rate else random_value(rng, c))
                    for c, _ in COLUMNS})
    return out


def same(a: dict, b: dict) -> bool:
    """Equal images, decimals also in exponent and sign (the library's exact ``Decimal``)."""
    if a.keys() != b.keys():
        return False
    for k, v in a.items():
        w = b[k]
        if isinstance(v, Decimal) or isinstance(w, Decimal):
            if not (isinstance(v, Decimal) and isinstance(w, Decimal) and v.as_tuple() == w.as_tuple()):
                return False
        elif isinstance(v, float) and v != v:
            return w != w
        elif v != w or type(v) is not type(w):
            return False
    return True


@pytest.fixture(scope="module")
def table() -> mr.CompiledTable:
    compiled = mr.compile_columns([c for c, _ in COLUMNS], {})
    assert compiled is not None
    return compiled


@pytest.mark.parametrize("null_rate", [0.0, 0.3, 1.0])
def test_decoder_matches_written_values(table, null_rate) -> None:
    rng = random.Random(7)
    written = rows(rng, 400, null_rate)
    for r in written:  # DECIMAL's exponent is the column's scale
        for c, _ in COLUMNS:
            if c.type == mr.NEWDECIMAL and r[c.name] is not None:
                r[c.name] = r[c.name].quantize(Decimal(1).scaleb(-c.decimals), context=_WIDE)
    body = b"".join(encode_image(r, COLUMNS) for r in written)
    full = bitmap(list(range(len(COLUMNS))), len(COLUMNS))
    got = table.decoder(full)(body)
    assert len(got) == len(written)
    for a, b in zip(got, written, strict=True):
        assert same(a, b), (a, b)
    # the per-column readers (used for the types not inlined) agree value by value
    for r in written[:50]:
        for c, enc in COLUMNS:
            if r[c.name] is not None:
                compiled = mr.column_reader(c)
                assert compiled is not None
                value, end = compiled[0](b"xx" + enc(r[c.name]), 2)
                assert end == 2 + len(enc(r[c.name]))
                assert same({c.name: value}, {c.name: r[c.name]}), (c.name, value, r[c.name])


def test_partial_images_and_update_pairs(table) -> None:
    """MINIMAL/NOBLOB-like images: absent columns are not keys; an update's before and after
    images have bitmaps of their own; one decoder per bitmap pair."""
    rng = random.Random(11)
    n = len(COLUMNS)
    before_cols = [0, 3, 10, 17, 25]
    after_cols = [0, 1, 2, 11, 16, 19, 30, 33]
    pairs = []
    body = bytearray()
    for b_row, a_row in zip(rows(rng, 60, 0.2), rows(rng, 60, 0.2), strict=True):
        for r in (b_row, a_row):
            for c, _ in COLUMNS:
                if c.type == mr.NEWDECIMAL and r[c.name] is not None:
                    r[c.name] = r[c.name].quantize(Decimal(1).scaleb(-c.decimals), context=_WIDE)
        bsel, asel = [COLUMNS[i] for i in before_cols], [COLUMNS[i] for i in after_cols]
        body += encode_image(b_row, bsel) + encode_image(a_row, asel)
        pairs.append(({c.name: b_row[c.name] for c, _ in bsel}, {c.name: a_row[c.name] for c, _ in asel}))
    got = table.decoder(bitmap(before_cols, n), bitmap(after_cols, n))(bytes(body))
    assert len(got) == len(pairs)
    for (gb, ga), (wb, wa) in zip(got, pairs, strict=True):
        assert same(gb, wb) and same(ga, wa)
    assert table.decoder(bitmap(before_cols, n), bitmap(after_cols, n)) is table.decoder(
        bitmap(before_cols, n), bitmap(after_cols, n))
    assert table.decoder(bitmap([], n))(b"\x00" * 0) == []


def test_timestamp_every_fraction_and_boundary() -> None:
    for fsp in range(7):
        c = col("t", mr.TIMESTAMP2, fsp=fsp)
        compiled = mr.compile_columns([c], {})
        decode = compiled.decoder(b"\x01")
        for seconds in (0, 1, 59, 86399, 86400, 951782400, 2**31 - 1):
            for us in (0, 1, 999999, 123456):
                us = us // 10 ** (6 - fsp) * 10 ** (6 - fsp)
                want = dt.datetime.fromtimestamp(seconds, UTC).replace(microsecond=us)
                body = b"\x00" + struct.pack(">i", seconds) + enc_frac(us, fsp)
                assert decode(body) == [{"t": want}], (fsp, seconds, us)
                assert compiled.cols[0].read(body, 1)[0] == want


def test_decimal_library_string() -> None:
    """The inline and the per-column DECIMAL both give the library's ``Decimal``: its digit string
    (exponent ``-decimals``, a negative zero negative)."""
    rng = random.Random(3)
    for precision, decimals in [(1, 0), (1, 1), (2, 1), (9, 0), (10, 2), (18, 9), (20, 2), (38, 10), (65, 0),
                                (65, 30), (30, 30), (12, 3), (7, 3)]:
        c = col("d", mr.NEWDECIMAL, precision=precision, decimals=decimals)
        compiled = mr.compile_columns([c], {})
        decode, read = compiled.decoder(b"\x01"), compiled.cols[0].read
        values = [Decimal(0), Decimal("-0")]
        for _ in range(300):
            digits = rng.randint(0, precision)
            values.append(Decimal(rng.randint(-10**digits + 1, 10**digits - 1)).scaleb(-decimals, _WIDE))
        for v in values:
            if v.copy_abs() >= Decimal(10) ** (precision - decimals):
                continue
            raw = enc_decimal(v, precision, decimals)
            ip, _, fp = format(v.copy_abs(), "f").partition(".")
            want = Decimal(("-" if v.is_signed() else "") + ip + "." + fp.ljust(decimals, "0")[:decimals])
            for got in (decode(b"\x00" + raw)[0]["d"], read(raw, 0)[0]):
                assert got.as_tuple() == want.as_tuple(), (precision, decimals, v, got, want)


def test_columns_not_compiled() -> None:
    assert mr.compile_columns([col("e", 247)], {}) is None  # ENUM: the library decodes the table
    assert mr.compile_columns([col("", mr.LONG, unsigned=False)], {}) is None  # no names (MINIMAL metadata)


def test_event_constructor_is_the_dataclass() -> None:
    args = ("t", "insert", (1,), None, {"id": 1}, (0, 5, 2), "0-1-5", 10, 20)
    e = _event(*args)
    assert type(e) is ChangeEvent and e == ChangeEvent(*args) and repr(e) == repr(ChangeEvent(*args))
    with pytest.raises(AttributeError):
        e.op = "delete"  # still frozen


def _txn(n: int, seq: int) -> _Txn:
    t = _Txn(f"0-1-{seq}", 0, seq, 0, 0)
    t.events = [ChangeEvent("t", "insert", (i,), None, {}, (0, seq, i)) for i in range(n)]
    return t


def test_read_ahead_is_bounded_in_events() -> None:
    """``put`` waits while the queued events would pass the limit; ``take`` frees room and hands
    over whole transactions up to ``max_events``; a transaction over the limit goes in alone."""
    h, stopping = _Handoff(10), threading.Event()
    assert h.put(_txn(6, 1), stopping) and h.events == 6
    done = threading.Event()

    def producer() -> None:
        h.put(_txn(6, 2), stopping)
        h.put(_txn(25, 3), stopping)  # larger than the limit: waits for an empty queue
        done.set()

    t = threading.Thread(target=producer, daemon=True)
    t.start()
    time.sleep(0.3)
    assert h.events == 6 and not done.is_set()  # back-pressure: the second waits
    got = h.take(100, 1.0)
    assert [x.seq for x in got] == [1]
    deadline = time.monotonic() + 5
    while h.events != 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert h.events == 6 and not done.is_set()
    assert [x.seq for x in h.take(1, 1.0)] == [2]
    assert done.wait(5) and h.events == 25
    assert [x.seq for x in h.take(5, 1.0)] == [3]  # whole transactions, never split
    assert h.take(5, 0.05) == [] and h.empty()
    t.join(5)


def test_read_ahead_stop_and_failure() -> None:
    h, stopping = _Handoff(5), threading.Event()
    h.put(_txn(5, 1), stopping)
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(h.put(_txn(1, 2), stopping)), daemon=True)
    t.start()
    time.sleep(0.1)
    stopping.set()
    h.wake()
    t.join(5)
    assert result == [False]  # a stopping reader does not wait for room
    h.put_error(RuntimeError("eof"))
    got = h.take(100, 0.1)
    assert [x.seq for x in got] == [1]  # what was read first
    failure = h.take(100, 0.1)
    assert len(failure) == 1 and isinstance(failure[0], RuntimeError)


# -- through a real binlog ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def mariadb():
    pytest.importorskip("pymysql", reason="fix: pip install -e '.[mysql]'")
    pytest.importorskip("pymysqlreplication", reason="fix: pip install -e '.[mysql]'")
    from containers.mysql import LocalMariaDb

    missing = LocalMariaDb.available()
    if missing:
        pytest.skip(missing)
    engine = LocalMariaDb(prefix="cdc_rows_")
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


SQL_TYPES = {
    "u64": "bigint unsigned", "i8": "tinyint", "u8": "tinyint unsigned", "i16": "smallint", "i24": "mediumint",
    "u24": "mediumint unsigned", "i32": "int", "f64": "double", "f32": "float", "d38": "decimal(38,10)",
    "d65": "decimal(65,30)", "d10": "decimal(10,0)", "d55": "decimal(5,5)", "d7": "decimal(7,3)",
    "vc": "varchar(10)", "vcl": "varchar(255)", "txt": "text", "bin": "varbinary(20)", "fbin": "binary(4)",
    "lb": "longblob", "day": "date", "dt0": "datetime", "dt3": "datetime(3)", "dt6": "datetime(6)",
    "ts0": "timestamp NULL", "ts1": "timestamp(1) NULL", "ts6": "timestamp(6) NULL", "js": "json",
}


def test_real_binlog_all_compiled_types(mariadb, tmp_path, monkeypatch) -> None:
    """Inserts, updates (NULL ↔ value) and deletes of every compiled type with edge values, read by
    ``mysql-binlog`` with the library cross-check on, and compared with what was written."""
    from harness.approaches import mysql_binlog
    from harness.context import RunContext

    monkeypatch.setattr(mysql_binlog, "ROWS_CHECK", True)
    ctx = RunContext(run_id="rows", worker="t", workdir=tmp_path, engines={"mysql": mariadb}, source_role="mysql",
                     settings={"binlog_row_image": "full", "binlog_row_metadata": "full"}, timeout_s=30)
    db = mariadb.database_for(ctx.name_prefix)
    conn = mariadb.connect()
    cols = ", ".join(f"`{k}` {v}" for k, v in SQL_TYPES.items())
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{db}`")
        cur.execute(f"CREATE TABLE `{db}`.t (id bigint PRIMARY KEY, {cols})")
    values = [
        dict(u64=2**64 - 1, i8=-128, u8=255, i16=-32768, i24=-8388608, u24=16777215, i32=-2**31, f64=-1.5e300,
             f32=0.5, d38=Decimal("-1234567890123456789012345678.0123456789"),
             d65=Decimal("-" + "9" * 35 + "." + "9" * 30),
             d10=Decimal("-9999999999"), d55=Decimal("-0.99999"), d7=Decimal("-9999.999"), vc="żółw🐢", vcl="x" * 255,
             txt="", bin=b"", fbin=b"\x00\x01\x02\x03", lb=b"\xff" * 300, day=dt.date(1000, 1, 1),
             dt0=dt.datetime(1000, 1, 1), dt3=dt.datetime(9999, 12, 31, 23, 59, 59, 999000),
             dt6=dt.datetime(1969, 12, 31, 23, 59, 59, 999999), ts0=dt.datetime(1970, 1, 1, 0, 0, 1),
             ts1=dt.datetime(2038, 1, 19, 3, 14, 7, 900000), ts6=dt.datetime(2000, 2, 29, 12, 0, 0, 1),
             js='{"a": [1, 2.5, null]}'),
        dict(u64=0, i8=0, u8=0, i16=0, i24=0, u24=0, i32=0, f64=0.0, f32=0.0, d38=Decimal("0"), d65=Decimal("0"),
             d10=Decimal("0"), d55=Decimal("0"), d7=Decimal("0.001"), vc="a", vcl="", txt="t" * 65535,
             bin=b"\x00", fbin=b"ab", lb=b"", day=dt.date(2024, 2, 29), dt0=dt.datetime(2024, 1, 1),
             dt3=dt.datetime(2024, 1, 1, 0, 0, 0, 1000), dt6=dt.datetime(2024, 1, 1), ts0=dt.datetime(2024, 6, 1),
             ts1=dt.datetime(2024, 6, 1, 0, 0, 0, 100000), ts6=dt.datetime(2024, 6, 1, 0, 0, 0, 999999), js="[]"),
        {k: None for k in SQL_TYPES},
    ]
    reader = mysql_binlog.MySqlBinlog()
    reader.start(ctx)
    try:
        names = list(SQL_TYPES)
        with conn.cursor() as cur:
            sql = (f"INSERT INTO `{db}`.t (id, {', '.join(f'`{n}`' for n in names)}) "
                   f"VALUES (%s, {', '.join(['%s'] * len(names))})")
            conn.begin()
            cur.executemany(sql, [(i + 1, *(v[n] for n in names)) for i, v in enumerate(values)])
            conn.commit()
            conn.begin()
            cur.execute(f"UPDATE `{db}`.t SET d38 = NULL, ts6 = NULL WHERE id = 1")
            cur.execute(f"UPDATE `{db}`.t SET d38 = 1.5, ts6 = '2001-01-01 00:00:00.5' WHERE id = 3")
            cur.execute(f"DELETE FROM `{db}`.t WHERE id = 2")
            conn.commit()
        got: list[ChangeEvent] = []
        deadline = time.monotonic() + 30
        while len(got) < 6 and time.monotonic() < deadline:
            got += reader.poll(100, 0.5)
        plans = list(reader._plans.values())
    finally:
        reader.stop()
        conn.close()
    assert [(e.op, e.key) for e in got] == [("insert", (1,)), ("insert", (2,)), ("insert", (3,)),
                                            ("update", (1,)), ("update", (3,)), ("delete", (2,))]

    assert plans and all(p[3] is not None for p in plans)  # decoded by the compiled readers

    def expected(i: int, v: dict) -> dict:
        """What was written as the binlog carries it: TIMESTAMP aware UTC, JSON parsed, FLOAT at
        single precision; BINARY(4) 'ab' is stored padded but the binlog (and so the library)
        carries it without its trailing zero bytes."""
        out = {"id": i}
        for n, x in v.items():
            if x is not None and n.startswith("ts"):
                x = x.replace(tzinfo=UTC)
            elif x is not None and n == "js":
                import json

                x = json.loads(x)
            elif n == "f32" and x is not None:
                x = struct.unpack("<f", struct.pack("<f", x))[0]
            out[n] = x
        return out

    for e, (i, v) in zip(got[:3], enumerate(values, 1), strict=True):
        want = expected(i, v)
        assert e.after == want, {k: (e.after.get(k), want[k]) for k in want if e.after.get(k) != want[k]}
    assert got[3].before["d38"] == values[0]["d38"] and got[3].after["d38"] is None and got[3].after["ts6"] is None
    assert got[4].after["d38"] == Decimal("1.5")
    assert got[4].after["ts6"] == dt.datetime(2001, 1, 1, 0, 0, 0, 500000, UTC)
    assert got[4].after["d38"].as_tuple().exponent == -10
    assert got[5].before == got[1].after
