"""Approach ``pg-wal2json``: the wal2json output plugin, format version 2 (one JSON object per change)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

from harness.approaches.pg_pgoutput import ALL_DDL, READER_SETTINGS, LogicalSlotReader, _key_lookup
from harness.approaches.pgoutput import converter
from harness.capabilities import Capabilities
from harness.errors import EngineMisconfigured
from harness.events import ChangeEvent
from harness.secrets import one_line

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _lsn(text: str) -> int:
    hi, _, lo = text.partition("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def _ts_ns(text: str) -> int:
    v = dt.datetime.fromisoformat(text)
    if v.tzinfo is None:
        v = v.replace(tzinfo=dt.UTC)
    delta = v - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _number(kind: type) -> Callable[[Any], Any]:
    return lambda v: kind(v)


def _text_conv(oid: int) -> Callable[[Any], Any]:
    conv = converter(oid)
    return lambda v: conv(v.encode()) if isinstance(v, str) else v


#: JSON value → Python value by type OID (numbers arrive as JSON numbers, parsed exactly as str)
_W2J: dict[int, Callable[[Any], Any]] = {
    16: lambda v: v,                      # JSON true/false
    17: lambda v: bytes.fromhex(v),       # hex without the \x prefix
    20: int, 21: int, 23: int, 26: int,
    700: _number(float), 701: _number(float),
    1700: _number(Decimal),
    114: json.loads, 3802: json.loads,
}


def w2j_converter(oid: int) -> Callable[[Any], Any]:
    """Converter of one wal2json v2 column value (not None) of type ``oid``."""
    conv = _W2J.get(oid)
    if conv is None:
        conv = _W2J[oid] = _text_conv(oid)
    return conv


def _image(cols: list[dict] | None) -> dict[str, Any] | None:
    if cols is None:
        return None
    out = {}
    for c in cols:
        v = c.get("value")
        out[c["name"]] = None if v is None else w2j_converter(c["typeoid"])(v)
    return out


class Wal2JsonDecoder:
    """wal2json v2 messages → whole transactions of ``ChangeEvent`` (positions as pgoutput's).

    Contract: as ``PgOutputDecoder``: ``feed`` returns a transaction's events at its ``C``
    message; positions are ``(commit_lsn, ordinal)``; ``last_commit`` is ``(commit_lsn,
    end_lsn)``. Columns wal2json leaves out (unchanged TOAST values) are filled from a full
    old image in the same message (REPLICA IDENTITY FULL), else stay absent. NaN and ±Infinity
    arrive from wal2json as JSON null and are passed on as None (its output, not invented).
    """

    def __init__(self, schema: str, key_columns: Callable[[str, str], tuple[str, ...] | None]) -> None:
        self.schema = schema
        self.key_columns = key_columns
        self.last_commit: tuple[int, int] = (0, 0)
        self._events: list[ChangeEvent] = []
        self._xid = 0
        self._lsn = 0
        self._cts = 0
        self._full: dict[str, bool] = {}

    def reset(self) -> None:
        """Forget a half-received transaction."""
        self._events = []

    def feed(self, payload: bytes, captured_at: int) -> list[ChangeEvent] | None:
        """Decode one message; return a committed transaction's events or None."""
        m = json.loads(payload, parse_float=str)
        action = m["action"]
        if action == "B":
            self._xid = m["xid"]
            self._lsn = _lsn(m["lsn"])
            self._cts = _ts_ns(m["timestamp"])
            self._events = []
            return None
        if action == "C":
            self.last_commit = (_lsn(m["lsn"]), _lsn(m["nextlsn"]))
            events, self._events = self._events, []
            return events
        if action not in ("I", "U", "D", "T"):
            return None  # M (logical messages) and anything newer
        ns, name = m["schema"], m["table"]
        table = name if ns == self.schema else f"{ns}.{name}"
        events = self._events
        pos = (self._lsn, len(events))
        if action == "T":
            events.append(ChangeEvent(table, "truncate", (), None, None, pos, self._xid, self._cts,
                                      captured_at))
            return None
        keys = self._keys(ns, name, m)
        after = _image(m.get("columns"))
        old = _image(m.get("identity"))
        full = self._is_full(ns, name, m)
        before = old if old is not None and (full or action == "D") else None
        moved = None
        if action == "I":
            op, key, before = "insert", tuple(after[k] for k in keys), None
        elif action == "U":
            op, key = "update", tuple(after[k] for k in keys)
            if old is not None and all(k in old for k in keys):  # the identity names the old key
                old_key = tuple(old[k] for k in keys)
                moved = old_key if old_key != key else None
            if full and old is not None:
                for k, v in old.items():
                    after.setdefault(k, v)  # unchanged TOAST: fill from the full old row only
        else:
            op, key, after = "delete", tuple(old[k] for k in keys), None
        events.append(ChangeEvent(table, op, key, before, after, pos, self._xid, self._cts, captured_at, moved))
        return None

    def _keys(self, ns: str, name: str, m: dict) -> tuple[str, ...]:
        """Key columns in key order: wal2json's ``pk`` lists them in column order (pitfall 25),
        so the catalog's order comes first when the table has a primary key."""
        pk = m.get("pk")
        if pk and len(pk) == 1:
            return (pk[0]["name"],)
        found = self.key_columns(ns, name)
        if found:
            return found
        if pk:
            return tuple(c["name"] for c in pk)
        return tuple(c["name"] for c in m.get("identity") or m.get("columns") or [])

    def _is_full(self, ns: str, name: str, m: dict) -> bool:
        """True when the identity carries the whole old row (REPLICA IDENTITY FULL)."""
        ident = m.get("identity")
        cols = m.get("columns")
        if ident is None:
            return False
        if cols is not None:
            return len(ident) >= len(cols)
        key = f"{ns}.{name}"
        if key not in self._full:
            pk = {c["name"] for c in m.get("pk") or []}
            self._full[key] = len(ident) > len(pk)
        return self._full[key]


class Wal2Json(LogicalSlotReader):
    """``pg-wal2json``: wal2json format version 2 with xids, timestamps, LSNs, type OIDs and keys.

    Claims: as ``pg-pgoutput`` (whole transactions, at-least-once, DDL followed because each
    change carries its current columns, truncate events), except that it drops unchanged TOAST
    columns from update images (filled only from a full old row under REPLICA IDENTITY FULL)
    and writes NaN/±Infinity as JSON null. Old images need REPLICA IDENTITY FULL.
    """

    name: ClassVar[str] = "pg-wal2json"
    plugin: ClassVar[str] = "wal2json"
    slot_suffix: ClassVar[str] = "w2j"
    capabilities: ClassVar[Capabilities] = Capabilities(
        before_image="key",
        updates="update",
        transactions=True,
        delivery="at-least-once",
        ddl=ALL_DDL,
        truncate=True,
        resume=True,
        notes=(
            "before images: key-only for deletes (REPLICA IDENTITY DEFAULT); full with FULL",
            "drops unchanged TOAST columns from updates unless REPLICA IDENTITY FULL",
            "NaN and ±Infinity (float, numeric) arrive as JSON null",
        ),
        settings=READER_SETTINGS,
    )

    full_identity_notes = (
        "REPLICA IDENTITY FULL: full old rows; unchanged TOAST values filled from them",
        "NaN and ±Infinity (float, numeric) arrive as JSON null",
    )

    def plugin_options(self) -> dict[str, str]:
        return {
            "format-version": "2",
            "include-xids": "1",
            "include-timestamp": "1",
            "include-lsn": "1",
            "include-type-oids": "1",
            "include-pk": "1",
            "include-transaction": "1",
            "add-tables": f"{self.schema}.*",
        }

    def make_decoder(self) -> Any:
        return Wal2JsonDecoder(self.schema, _key_lookup(self.url, self.schema))

    def _create_slot(self, psycopg2: Any) -> None:
        try:
            super()._create_slot(psycopg2)
        except Exception as exc:
            if "may not be used as an output plugin" in str(exc):
                raise EngineMisconfigured(
                    f"{one_line(exc)}; fix (as a superuser): {allow_plugin_sql(self.url)}") from None
            raise


def allow_plugin_sql(url: str, plugin: str = "wal2json") -> str:
    """The command that adds ``plugin`` to ``output_plugin_libraries``, keeping what it allows.

    It is a list setting: each library is its own quoted item. One quoted string holding
    commas (``= 'pgoutput, wal2json'``) would be a single entry naming no library.
    """
    current = ["pgoutput", "test_decoding"]
    try:
        from containers.postgres import connect

        with connect(url) as conn:
            current = [v.strip().strip('"') for v in
                       conn.execute("SHOW output_plugin_libraries").fetchone()[0].split(",") if v.strip()]
    except Exception:  # noqa: BLE001 - the suggestion falls back to the defaults
        pass
    items = ", ".join("'" + v.replace("'", "''") + "'" for v in dict.fromkeys([*current, plugin]))
    return f"ALTER SYSTEM SET output_plugin_libraries = {items}; SELECT pg_reload_conf();"
