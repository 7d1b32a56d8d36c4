"""Approach ``mysql-binlog``: the MariaDB/MySQL binary log read with python-mysql-replication.

A reader thread blocks on the binlog dump connection (``blocking=True``: never the non-blocking
mode that replays the whole binlog on every reconnect, pitfall 19) and hands whole transactions
(GTID event … XID event) to ``poll``, which waits for them at most its timeout. Positions are
``(gtid domain, gtid sequence, row ordinal)``; the checkpoint holds the GTID of the last
transaction acknowledged whole (MariaDB ``slave_connect_state`` / MySQL ``auto_position``) and the
exact acked position, so a restarted reader resumes from its own durable state.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import socket
import threading
import time
import zlib
from collections import OrderedDict, deque
from dataclasses import replace
from typing import Any, ClassVar

from containers.mysql import require_mysql
from harness.approach import BaseApproach
from harness.approaches.mysql_rows import compile_columns, event_body
from harness.capabilities import Capabilities
from harness.context import RunContext
from harness.errors import EngineUnavailable, MissingDependency
from harness.events import ChangeEvent, Position

ALL_DDL = frozenset({"add", "drop", "rename", "type"})
#: the server sends a heartbeat event after this many seconds without binlog events
#: (``@master_heartbeat_period``), and a read waits at most ``READ_TIMEOUT_S``: a dump connection
#: gone silent — half-open, e.g. behind a forwarder after a network partition — then times out and
#: the library reconnects, instead of the reader waiting on it for ever
HEARTBEAT_S = 1.0
READ_TIMEOUT_S = 5
_UTC = dt.UTC
_TRUNCATE = re.compile(r"^\s*truncate\s+(?:table\s+)?(?:`?(\w+)`?\s*\.\s*)?`?(\w+)`?", re.I)
_DDL_TABLE = re.compile(r"^\s*(?:alter|create|drop|rename)\s+table\s+(?:if\s+(?:not\s+)?exists\s+)?"
                        r"(?:`?(\w+)`?\s*\.\s*)?`?(\w+)`?", re.I)
_JSON_CHECK = re.compile(r"json_valid\(`?(\w+)`?\)", re.I)
_PARTIAL_UPDATE_ROWS = 39  # MySQL's PARTIAL_UPDATE_ROWS_EVENT (partial JSON): left to the library
#: CDC_MYSQL_ROWS_CHECK=1: decode every rows event both ways and fail on a difference
ROWS_CHECK = os.environ.get("CDC_MYSQL_ROWS_CHECK", "") not in ("", "0")


def _replication() -> Any:
    try:
        import pymysqlreplication
        from pymysqlreplication import event, row_event
    except ImportError:  # pragma: no cover - depends on the install
        raise MissingDependency("mysql-replication", "mysql") from None
    return pymysqlreplication, event, row_event


def _bit(bitmap: bytes, i: int) -> bool:
    return bool(bitmap[i >> 3] & (1 << (i & 7)))


def _json_value(v: Any) -> Any:
    """JSON from the binlog as plain Python (MySQL's binary JSON may carry bytes keys/strings)."""
    if isinstance(v, (str, bytes)):
        try:
            return json.loads(v)
        except ValueError:
            return v.decode() if isinstance(v, bytes) else v
    return _plain(v)


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {(k.decode() if isinstance(k, bytes) else k): _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, bytes):
        return v.decode()
    return v


def _aware(v: Any) -> Any:
    return v.replace(tzinfo=_UTC) if isinstance(v, dt.datetime) else v


def _bits(v: Any) -> Any:
    return int(v, 2) if isinstance(v, str) else v


def _binary(v: Any) -> Any:
    return v.encode() if isinstance(v, str) else v


def _set_converter(order: tuple[str, ...]) -> Any:
    """A SET value (a Python set from the library) as MySQL writes it: members in declared order."""
    def conv(v: Any) -> Any:
        return ",".join(x for x in order if x in v) if isinstance(v, set) else v
    return conv


def _constructor(cls: type) -> Any:
    """``cls(*fields)`` for the frozen, slotted ``ChangeEvent`` without the frozen dataclass
    ``__init__`` (one ``object.__setattr__`` by name per field): each slot set through its
    descriptor, about half the cost per event. Falls back to the class itself when it is not a
    plain slotted dataclass (a ``__post_init__``, a field without a slot or outside ``__init__``)
    or when the two disagree on a probe."""
    import dataclasses

    try:
        fields = dataclasses.fields(cls)
        slots = [cls.__dict__[f.name] for f in fields]
    except (TypeError, KeyError):
        return cls
    if (hasattr(cls, "__post_init__") or any(not hasattr(d, "__set__") for d in slots)
            or any(not f.init for f in fields)):
        return cls
    if any(f.default_factory is not dataclasses.MISSING for f in fields):
        return cls
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    ns.update({f"_d{i}": f.default for i, f in enumerate(fields) if f.default is not dataclasses.MISSING})
    args = ", ".join(f"a{i}=_d{i}" if f"_d{i}" in ns else f"a{i}" for i in range(len(fields)))
    body = [f"def make({args}):", "    o = _new(_cls)"]
    for i, d in enumerate(slots):
        ns[f"_s{i}"] = d.__set__
        body.append(f"    _s{i}(o, a{i})")
    body.append("    return o")
    exec(compile("\n".join(body) + "\n", "<ChangeEvent constructor>", "exec"), ns)  # noqa: S102
    make = ns["make"]
    probe = tuple(range(len(fields)))
    return make if make(*probe) == cls(*probe) else cls


def _no_reconnect() -> None:
    raise EngineUnavailable("the reader is stopped")


#: ChangeEvent(table, op, key, before, after, position, txid, commit_ts, captured_at), faster
_event = _constructor(ChangeEvent)


class _Handoff:
    """The reader thread's read-ahead: whole transactions handed to ``poll``, bounded in events.

    ``put`` blocks (back-pressure on the binlog connection) while the transactions waiting hold
    ``limit`` events or more and adding this one would pass it; a transaction larger than the
    limit goes in alone once the queue is empty (transactions are never split). ``take`` hands
    over, under one lock, every waiting transaction up to ``max_events`` (at least one)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._items: deque = deque()
        self._events = 0
        self._cond = threading.Condition(threading.Lock())

    def put(self, txn: _Txn, stopping: threading.Event) -> bool:
        """Queue a transaction; False (dropped) when ``stopping`` was set while waiting for room."""
        n = len(txn.events)
        with self._cond:
            while self._items and self._events + n > self.limit:
                if stopping.is_set():
                    return False
                self._cond.wait(0.2)
            self._items.append(txn)
            self._events += n
            self._cond.notify_all()
        return True

    def put_error(self, exc: BaseException) -> None:
        """Queue the reader's failure after what it read (never blocks)."""
        with self._cond:
            self._items.append(exc)
            self._cond.notify_all()

    def take(self, max_events: int, timeout_s: float) -> list:
        """Transactions (and at most one failure, last) waiting now, or the first to arrive within
        ``timeout_s``; up to ``max_events`` events, at least one transaction."""
        with self._cond:
            if not self._items and timeout_s > 0:
                self._cond.wait_for(lambda: self._items, timeout_s)
            items, out, n = self._items, [], 0
            while items and n < max_events:
                item = items[0]
                if isinstance(item, BaseException):
                    if not out:
                        out.append(items.popleft())
                    break  # a failure is handed over alone, after what was read before it
                out.append(items.popleft())
                n += len(item.events)
            if n:
                self._events -= n
                self._cond.notify_all()
            return out

    def empty(self) -> bool:
        return not self._items

    @property
    def events(self) -> int:
        """Events waiting."""
        return self._events

    def wake(self) -> None:
        """Wake a ``put`` waiting for room (the reader is stopping)."""
        with self._cond:
            self._cond.notify_all()


class _Txn:
    __slots__ = ("gtid", "domain", "seq", "events", "captured_at", "commit_ts")

    def __init__(self, gtid: str, domain: int, seq: int, captured_at: int, commit_ts: int | None) -> None:
        self.gtid = gtid
        self.domain = domain
        self.seq = seq
        self.events: list[ChangeEvent] = []
        self.captured_at = captured_at
        self.commit_ts = commit_ts


class MySqlBinlog(BaseApproach):
    """``mysql-binlog``: python-mysql-replication on the run's database, GTID positions.

    Claims: updates as one event; whole transactions at one GTID; at-least-once (a restarted
    reader replays from the last transaction acknowledged whole); follows add/drop/rename/type
    DDL (each row event is decoded with the column names its table-map event carries under
    ``binlog_row_metadata=FULL``); truncate events (from the ``TRUNCATE`` query event); resume.
    Before images: full under ``binlog_row_image=FULL``/``NOBLOB`` (NOBLOB leaves unchanged
    TEXT/BLOB columns out of both images), key-only under MINIMAL (whose after images hold only
    the columns the statement set). Columns absent from an image are left out, never set to NULL.
    """

    name: ClassVar[str] = "mysql-binlog"
    family: ClassVar[str] = "mysql"
    recovery_s: ClassVar[float] = 30.0
    #: True: decode every value with python-mysql-replication (no compiled readers), for comparison
    slow_rows: ClassVar[bool] = False
    #: the reader's read-ahead bound, in row events (``CDC_MYSQL_READ_AHEAD``): it stops reading the
    #: binlog while this many wait for ``poll`` (a larger transaction waits alone)
    read_ahead_events: ClassVar[int] = int(os.environ.get("CDC_MYSQL_READ_AHEAD", "100000"))
    capabilities: ClassVar[Capabilities] = Capabilities(
        before_image="full",
        updates="update",
        transactions=True,
        delivery="at-least-once",
        ddl=ALL_DDL,
        truncate=True,
        resume=True,
        notes=("binlog_row_image=FULL: full before and after images",),
    )

    @classmethod
    def capabilities_for(cls, settings: dict[str, Any]) -> Capabilities:
        """Key-only before images under ``binlog_row_image=MINIMAL``; the class's claims otherwise."""
        image = str(settings.get("binlog_row_image", "full")).lower()
        notes = list(cls.capabilities.notes)
        if image == "minimal":
            return replace(cls.capabilities, before_image="key",
                           notes=("binlog_row_image=MINIMAL: before images hold the key, after images only "
                                  "the columns the statement set",))
        if image == "noblob":
            notes = ["binlog_row_image=NOBLOB: unchanged TEXT/BLOB columns are absent from both images"]
        if str(settings.get("binlog_row_metadata", "full")).lower() == "minimal":
            notes.append("binlog_row_metadata=MINIMAL: no column names in the binlog; python-mysql-replication "
                         "reads them from information_schema (the current schema, pitfalls 4 and 5)")
        return replace(cls.capabilities, notes=tuple(notes))

    def __init__(self) -> None:
        super().__init__()
        self.url = ""
        self.database = ""
        self.engine: Any = None
        self.flavor = "mariadb"
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self._queue = _Handoff(self.read_ahead_events)
        self._stopping = threading.Event()
        self._ready: list[ChangeEvent] = []
        self._resume_from: Position | None = None
        #: (domain, seq) of each delivered transaction → (its GTID, ordinal of its last event)
        self._txn_last: OrderedDict[tuple[int, int], tuple[str, int]] = OrderedDict()
        self._connect_state = ""
        self._last_seen: tuple[int, int] | None = None
        self._caught_target: tuple[int, int] | None = None
        self._tables: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {}
        self._gtid_base: dict[str, int] = {}
        #: table id → (columns, names, converters, compiled table): one per table-map parse
        self._plans: dict[int, tuple] = {}
        self._update_cls: Any = None
        self._write_cls: Any = None
        self._status: Any = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, ctx: RunContext, resume: bool = False) -> None:
        super().start(ctx, resume)
        pymysqlreplication, _, row_event = _replication()
        self._update_cls, self._write_cls = row_event.UpdateRowsEvent, row_event.WriteRowsEvent
        self.engine = ctx.role("mysql")
        self.url = require_mysql(self.engine)
        self.database = self.engine.database_for(ctx.name_prefix)
        self.flavor = getattr(self.engine, "flavor", "mariadb")
        self.capabilities = self.capabilities_for(ctx.settings)
        checkpoint = self.load_checkpoint() if resume else None
        if checkpoint:
            self._connect_state = checkpoint["connect"]
            acked = checkpoint.get("acked")
            self._resume_from = tuple(acked) if acked else None
        else:
            self._connect_state = self.engine.gtid_position()
            self.save_checkpoint({"connect": self._connect_state, "acked": None})
        self._last_seen = self._max_seq(self._connect_state)
        from containers.mysql import parse_url

        params = parse_url(self.url)
        settings = {"host": params["host"], "port": params["port"], "user": params["user"],
                    "password": params["password"], "database": self.database, "connect_timeout": 5,
                    "read_timeout": READ_TIMEOUT_S, "charset": "utf8mb4",
                    **({"ssl_disabled": True} if params.get("ssl_disabled") else {})}
        server_id = 100_000 + zlib.crc32(ctx.name_prefix.encode()) % 1_000_000_000
        self._stopping.clear()
        self._queue = _Handoff(self.read_ahead_events)
        self._stream = pymysqlreplication.BinLogStreamReader(
            connection_settings=settings, server_id=server_id, blocking=True, resume_stream=True,
            is_mariadb=self.flavor == "mariadb", auto_position=self._connect_state or None,
            only_schemas=[self.database], enable_logging=False, freeze_schema=True,
            slave_heartbeat=HEARTBEAT_S)
        self._thread = threading.Thread(target=self._read_loop, args=(self._stream,), daemon=True,
                                        name=f"{self.name}-{ctx.name_prefix}")
        self._thread.start()

    def _max_seq(self, state: str) -> tuple[int, int] | None:
        """The (domain, seq) a GTID position ends at (domain 0 / the first server uuid)."""
        best: tuple[int, int] | None = None
        for part in filter(None, (p.strip() for p in state.split(","))):
            if self.flavor == "mariadb":
                domain, _, seq = part.split("-")
                cand = (int(domain), int(seq))
            else:
                uuid, _, ranges = part.partition(":")
                self._gtid_base.setdefault(uuid.lower(), 0)
                cand = (0, int(ranges.split(":")[-1].split("-")[-1]))
            best = cand if best is None or cand > best else best
        return best

    # -- the reader thread --------------------------------------------------------------------
    def _read_loop(self, stream: Any) -> None:
        _, event, row_event = _replication()
        write, update, delete = row_event.WriteRowsEvent, row_event.UpdateRowsEvent, row_event.DeleteRowsEvent
        mariadb_gtid, mysql_gtid = event.MariadbGtidEvent, event.GtidEvent
        xid, query = event.XidEvent, event.QueryEvent
        now = time.time_ns
        txn: _Txn | None = None
        try:
            while not self._stopping.is_set():
                ev = stream.fetchone()
                captured = now()
                if ev is None:
                    raise EngineUnavailable("the binlog stream ended (EOF)")
                if isinstance(ev, (write, update, delete)):
                    if txn is not None and ev.schema == self.database:
                        self._rows(txn, ev, captured)
                elif isinstance(ev, mariadb_gtid):
                    txn = _Txn(ev.gtid, ev.domain_id, ev.gtid_seq_no, captured, ev.timestamp * 10**9)
                elif isinstance(ev, mysql_gtid):
                    gtid = ev.gtid
                    txn = _Txn(gtid, 0, int(gtid.rsplit(":", 1)[1]), captured, ev.timestamp * 10**9)
                elif isinstance(ev, xid):
                    txn = self._commit(txn, stream)
                elif isinstance(ev, query):
                    txn = self._query(txn, ev, stream, captured)
        except BaseException as exc:  # noqa: BLE001 - handed to poll()
            if not self._stopping.is_set():
                self._queue.put_error(exc)

    def _query(self, txn: _Txn | None, ev: Any, stream: Any, captured: int) -> _Txn | None:
        sql = ev.query if isinstance(ev.query, str) else ev.query.decode(errors="replace")
        head = sql.lstrip()[:16].upper()
        if head.startswith("BEGIN") or head.startswith("SAVEPOINT") or head.startswith("XA "):
            return txn
        if head.startswith("COMMIT"):
            return self._commit(txn, stream)
        schema = ev.schema.decode() if isinstance(ev.schema, bytes) else str(ev.schema or "")
        match = _TRUNCATE.match(sql)
        if match and txn is not None and (match.group(1) or schema) == self.database:
            table = match.group(2)
            txn.events.append(ChangeEvent(table, "truncate", (), None, None, (txn.domain, txn.seq, 0),
                                          txn.gtid, txn.commit_ts, captured))
        else:
            match = _DDL_TABLE.match(sql)
            if match and (match.group(1) or schema) == self.database:
                self._tables.pop(match.group(2), None)  # key/JSON columns read again on next use
                self._plans.clear()
        return self._commit(txn, stream)  # a DDL statement is a transaction of its own

    def _commit(self, txn: _Txn | None, stream: Any) -> None:
        if txn is None:
            return None
        self._last_seen = (txn.domain, txn.seq)
        if self.flavor == "mariadb":
            stream.auto_position = txn.gtid  # the library's own reconnect resumes after it
        if txn.events:
            self._queue.put(txn, self._stopping)
        return None

    def _table_info(self, table: str) -> tuple[tuple[str, ...], frozenset[str]]:
        """Key columns (all columns, in order, for a table without a primary key) and JSON
        columns of a table of the run's database (information_schema).

        MariaDB's JSON is LONGTEXT with a ``json_valid`` CHECK: the binlog carries text, so JSON
        columns are known from the catalog and parsed; read again after each DDL on the table."""
        info = self._tables.get(table)
        if info is None:
            from containers.mysql import connect

            conn = connect(self.url)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s "
                                "AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
                                (self.database, table))
                    key = tuple(r[0] for r in cur.fetchall())
                    if not key:  # no primary key: a row is identified by all its columns
                        cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                                    "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (self.database, table))
                        key = tuple(r[0] for r in cur.fetchall())
                    cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                                "AND TABLE_NAME = %s AND DATA_TYPE = 'json'", (self.database, table))
                    js = {r[0] for r in cur.fetchall()}
                    if self.flavor == "mariadb":
                        cur.execute("SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                                    "WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s", (self.database, table))
                        for (clause,) in cur.fetchall():
                            js.update(_JSON_CHECK.findall(str(clause)))
            finally:
                conn.close()
            info = self._tables[table] = (key, frozenset(js))
        return info

    def _plan(self, ev: Any, json_cols: frozenset[str]) -> tuple:
        """(columns, names, converters, compiled table or None) of a rows event's table map."""
        from pymysqlreplication.constants import FIELD_TYPE

        columns = ev.columns
        convert: dict[str, Any] = {}
        for c in columns:
            if c.type == FIELD_TYPE.TIMESTAMP2 or c.type == FIELD_TYPE.TIMESTAMP:
                convert[c.name] = _aware
            elif c.type == FIELD_TYPE.SET:
                convert[c.name] = _set_converter(tuple(c.set_values or ()))
            elif c.type == FIELD_TYPE.BIT:
                convert[c.name] = _bits
            elif c.type == FIELD_TYPE.JSON or c.name in json_cols:
                convert[c.name] = _json_value
            elif getattr(c, "character_set_name", None) == "binary":  # '' comes back as str
                convert[c.name] = _binary
        compiled = None if self.slow_rows else compile_columns(columns, convert)
        # no names in the table map (binlog_row_metadata=MINIMAL): the library's UNKNOWN_COL<i>
        names = [c.name or f"UNKNOWN_COL{i}" for i, c in enumerate(columns)]
        plan = (columns, names, convert, compiled)
        self._plans[ev.table_id] = plan
        return plan

    def _rows(self, txn: _Txn, ev: Any, captured: int) -> None:
        table = ev.table
        key_cols, json_cols = self._table_info(table)
        plan = self._plans.get(ev.table_id)
        if plan is None or plan[0] is not ev.columns:
            plan = self._plan(ev, json_cols)
        _, names, convert, compiled = plan
        body = None
        if compiled is not None and ev.complete and ev.event_type != _PARTIAL_UPDATE_ROWS:
            body = event_body(ev)
        kind = ("update" if isinstance(ev, self._update_cls) else
                "insert" if isinstance(ev, self._write_cls) else "delete")
        if body is not None:
            if kind == "update":
                images = compiled.decoder(ev.columns_present_bitmap, ev.columns_present_bitmap2)(body)
            else:
                images = compiled.decoder(ev.columns_present_bitmap)(body)
            if ROWS_CHECK:
                slow = self._library_images(ev, names, convert, kind)
                if slow != images:
                    raise AssertionError(f"fast row decoder differs from the library on {table}: "
                                         f"{images!r} != {slow!r}")
        else:
            images = self._library_images(ev, names, convert, kind)
        if not images:
            return
        events = txn.events
        base, domain, seq, gtid, ts = len(events), txn.domain, txn.seq, txn.gtid, txn.commit_ts
        single = key_cols[0] if len(key_cols) == 1 else None
        if kind == "update":
            # the key: each key column from the after image when it holds it (binlog_row_image
            # MINIMAL logs only the columns set), else from the before image; a key that differs
            # from the before image's is a key change (old_key)
            old_src = all(k in images[0][0] for k in key_cols)
            for i, (b, a) in enumerate(images):
                key = tuple(a[k] if k in a else b.get(k) for k in key_cols)
                old = tuple(b.get(k) for k in key_cols) if old_src else key
                events.append(_event(table, "update", key, b, a, (domain, seq, base + i), gtid, ts, captured,
                                     old if old != key else None))
        elif kind == "insert":
            if single is not None:
                events += [_event(table, "insert", (im.get(single),), None, im, (domain, seq, base + i), gtid, ts,
                                  captured) for i, im in enumerate(images)]
            else:
                events += [_event(table, "insert", tuple(im.get(k) for k in key_cols), None, im,
                                  (domain, seq, base + i), gtid, ts, captured) for i, im in enumerate(images)]
        elif single is not None:
            events += [_event(table, "delete", (im.get(single),), im, None, (domain, seq, base + i), gtid, ts,
                              captured) for i, im in enumerate(images)]
        else:
            events += [_event(table, "delete", tuple(im.get(k) for k in key_cols), im, None,
                              (domain, seq, base + i), gtid, ts, captured) for i, im in enumerate(images)]

    @staticmethod
    def _library_images(ev: Any, names: list[str], convert: dict[str, Any], kind: str) -> list:
        """Row images from python-mysql-replication's own decoding (``ev.rows``), converted."""
        def image(values: dict, bitmap: bytes) -> dict:
            out = {}
            for i, n in enumerate(names):
                if not _bit(bitmap, i):
                    continue  # not in this image (binlog_row_image MINIMAL/NOBLOB): left out
                v = values.get(n)
                if v is not None and n in convert:
                    v = convert[n](v)
                out[n] = v
            return out

        if kind == "update":
            b1, b2 = ev.columns_present_bitmap, ev.columns_present_bitmap2
            return [(image(row["before_values"], b1), image(row["after_values"], b2)) for row in ev.rows]
        b = ev.columns_present_bitmap
        return [image(row["values"], b) for row in ev.rows]

    # -- reading ------------------------------------------------------------------------------
    def poll(self, max_events: int, timeout_s: float) -> list[ChangeEvent]:
        """Whole transactions in commit order, waiting at most ``timeout_s`` for the first one."""
        if self._thread is None:
            raise EngineUnavailable("poll() on a reader that is not started")
        out, self._ready = self._ready, []
        txn_last = self._txn_last
        for item in self._queue.take(max_events - len(out), timeout_s):
            if isinstance(item, BaseException):  # handed over alone, after what was read before it
                raise EngineUnavailable(f"binlog stream failed: {type(item).__name__}: {item}") from item
            events = item.events
            txn_last[(item.domain, item.seq)] = (item.gtid, events[-1].position[2])
            if out:
                out += events
            else:
                out = events if isinstance(events, list) else list(events)
        if self._resume_from is not None and out:
            start = self._resume_from
            kept = [e for e in out if e.position > start]
            if len(kept) == len(out):
                self._resume_from = None
            out = kept
        return out

    def caught_up(self) -> bool:
        """True when the reader has read past the server's GTID position of the previous call and
        nothing read is waiting (the position is asked on a separate connection)."""
        if self._ready or not self._queue.empty() or self._thread is None or not self._thread.is_alive():
            return False
        target = self._max_seq(self._server_position())
        previous, self._caught_target = self._caught_target, target
        if previous is None:
            return False
        return self._last_seen is not None and self._last_seen >= previous

    def _server_position(self) -> str:
        """The server's GTID position on a connection held between calls (reopened once on error)."""
        from containers.mysql import connect

        sql = "SELECT @@global.gtid_binlog_pos" if self.flavor == "mariadb" else "SELECT @@global.gtid_executed"
        for attempt in (0, 1):
            if self._status is None:
                self._status = connect(self.url)
            try:
                with self._status.cursor() as cur:
                    cur.execute(sql)
                    return str(cur.fetchone()[0] or "")
            except Exception:
                self._close_status()
                if attempt:
                    raise
        return ""

    def _close_status(self) -> None:
        conn, self._status = self._status, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def ack(self, position: Position) -> None:
        """Durably record ``position``; the connect GTID advances to the last transaction at or
        before it that was acknowledged whole."""
        domain, seq, ordinal = position[0], position[1], position[2]
        txns = self._txn_last
        while txns:
            first = next(iter(txns))
            gtid, last = txns[first]
            if first < (domain, seq) or (first == (domain, seq) and ordinal >= last):
                self._connect_state = self._advance(gtid)
                txns.popitem(last=False)
            else:
                break
        self.save_checkpoint({"connect": self._connect_state, "acked": list(position)})

    def _advance(self, gtid: str) -> str:
        """The connect state after transaction ``gtid``: MariaDB a GTID; MySQL a GTID set."""
        if self.flavor == "mariadb":
            return gtid
        uuid, _, n = gtid.rpartition(":")
        parts = {}
        for part in filter(None, (p.strip() for p in self._connect_state.split(","))):
            u, _, ranges = part.partition(":")
            parts[u.lower()] = ranges
        parts[uuid.lower()] = f"1-{n}"
        return ",".join(f"{u}:{r}" for u, r in parts.items())

    # -- shutdown -----------------------------------------------------------------------------
    def _close_stream(self, abrupt: bool) -> None:
        self._stopping.set()
        self._queue.wake()  # a reader waiting for room in the read-ahead
        stream, self._stream = self._stream, None
        if stream is not None:
            # the library reconnects on a lost connection (what net-drop needs); a stopped reader must
            # not: its thread would open a new dump connection before it sees ``_stopping``
            stream._BinLogStreamReader__connect_to_stream = _no_reconnect
            conn = getattr(stream, "_stream_connection", None)
            sock = getattr(conn, "_sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(Exception):
                stream.close()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        self._close_status()
        self._ready = []

    def crash(self) -> None:
        """Abrupt: shut the dump connection's socket down; no checkpoint beyond the acks."""
        self._close_stream(abrupt=True)

    def stop(self) -> None:
        """Graceful: close the dump connection (nothing is kept on the server)."""
        self._close_stream(abrupt=False)
