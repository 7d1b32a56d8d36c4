"""Synthetic-history builders: a ledger plus the events a correct approach would capture from it."""

from __future__ import annotations

import copy
import datetime as dt
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from harness.capabilities import Capabilities
from harness.checker import check, encode_history
from harness.context import RunContext
from harness.events import ChangeEvent, Position
from harness.ledger import Ledger
from harness.verdict import Verdict

Row = dict[str, Any]
#: one change of a transaction: ("insert", table, row) | ("update", table, key, changes)
#: | ("delete", table, key) | ("truncate", table)
Op = tuple

_ABSENT = object()
_ALL = object()
FULL = Capabilities(truncate=True, ddl=frozenset({"add", "drop", "rename", "type"}))


def ins(table: str, **row: Any) -> Op:
    """An insert of ``row`` into ``table``."""
    return ("insert", table, row)


def upd(table: str, key: Any, **changes: Any) -> Op:
    """An update of the row with ``key`` (a scalar or a tuple)."""
    return ("update", table, key if isinstance(key, tuple) else (key,), changes)


def dele(table: str, key: Any) -> Op:
    """A delete of the row with ``key``."""
    return ("delete", table, key if isinstance(key, tuple) else (key,))


def trunc(table: str) -> Op:
    """A truncate of ``table``."""
    return ("truncate", table)


@dataclass
class History:
    """A finished synthetic history: ledger, captured events, capabilities and engine state."""

    ledger: Ledger
    events: list[ChangeEvent]
    caps: Capabilities
    final_state: dict[str, dict[tuple, Row]] = field(default_factory=dict)

    def verdict(self, events: list[ChangeEvent] | None = None, caps: Capabilities | None = None,
                final_state: Mapping | None = None, delivery: Any = None) -> Verdict:
        """Check ``events`` (default: the correct ones) against the ledger (``delivery``: the
        capture loop's record of epochs and restarts; None means no restart happened)."""
        evs = self.events if events is None else events
        return check(encode_history(self.ledger, evs, delivery), caps or self.caps, final_state=final_state)


class HistoryBuilder:
    """Builds a ledger through ``Ledger.begin/stage/commit/rollback`` and the matching events.

    Events follow ``caps``: before images full/key/none, updates as one event or delete+insert;
    positions are ``(commit number, ordinal)`` and the event txid is the commit number.
    """

    def __init__(self, caps: Capabilities = FULL, key_columns: Mapping[str, tuple[str, ...]] | None = None,
                 start_ns: int = 1_700_000_000_000_000_000, lag_ns: int = 2_000_000) -> None:
        self.caps = caps
        self.ledger = Ledger()
        self.events: list[ChangeEvent] = []
        self.rows: dict[str, dict[tuple, Row]] = {}
        self.key_columns = dict(key_columns or {})
        self.clock = start_ns
        self.lag_ns = lag_ns
        self.commits = 0

    def keys_of(self, table: str) -> tuple[str, ...]:
        """Key columns of ``table`` (``("id",)`` unless given)."""
        return self.key_columns.get(table, ("id",))

    def commit(self, *ops: Op) -> int:
        """Run ``ops`` as one committed transaction; return its commit number."""
        return self._txn(ops, commit=True)

    def rollback(self, *ops: Op) -> None:
        """Run ``ops`` as a rolled-back transaction (no events, model unchanged)."""
        self._txn(ops, commit=False)

    def ddl(self, table: str, info: Mapping[str, Any]) -> None:
        """Commit a DDL change (``{"kind": "add"|"drop"|"rename"|"type", ...}``) as sources do."""
        rows = self.rows.setdefault(table, {})
        kind = info["kind"]
        for key, old in rows.items():  # new dicts: the ledger keeps the old images
            r = dict(old)
            if kind == "add":
                r[info["column"]] = None
            elif kind == "drop":
                r.pop(info["column"], None)
            elif kind == "rename":
                r[info["new"]] = r.pop(info["old"])
            rows[key] = r
        txid = self.ledger.begin()
        self.ledger.stage(txid, table, "ddl", (), None, dict(info))
        issued = self._tick()
        self.ledger.commit(txid, issued, issued + 100)
        self.commits += 1
        self.events.append(ChangeEvent(table, "ddl", (), None, dict(info), (self.commits, 0), self.commits,
                                       captured_at=issued + self.lag_ns))

    def history(self) -> History:
        """The finished history (final state is the model's rows)."""
        return History(self.ledger, list(self.events), self.caps, copy.deepcopy(self.rows))

    # -- internals ----------------------------------------------------------------------------
    def _tick(self) -> int:
        self.clock += 1_000_000
        return self.clock

    def _txn(self, ops: Iterable[Op], commit: bool) -> int:
        undo: list[tuple] = []
        changes = [self._change(op, undo) for op in ops]
        txid = self.ledger.begin()
        for ch in changes:
            self.ledger.stage(txid, *ch)
        if not commit:
            self.ledger.rollback(txid)
            for table, key, prev in reversed(undo):
                if key is _ALL:
                    self.rows[table] = prev
                elif prev is _ABSENT:
                    del self.rows[table][key]
                else:
                    self.rows[table][key] = prev
            return 0
        issued = self._tick()
        self.ledger.commit(txid, issued, issued + 100)
        self.commits += 1
        ordinal = 0
        for table, op, key, before, after in changes:
            for ev_op, b, a in self._shape(table, op, before, after):
                self.events.append(ChangeEvent(table, ev_op, key, b, a, (self.commits, ordinal),
                                               self.commits, captured_at=issued + self.lag_ns))
                ordinal += 1
        return self.commits

    def _change(self, op: Op, undo: list[tuple]) -> tuple:
        """Apply one op to the model (recording how to undo it); return the ledger change."""
        kind, table = op[0], op[1]
        rows = self.rows.setdefault(table, {})
        if kind == "truncate":
            undo.append((table, _ALL, rows))
            self.rows[table] = {}
            return (table, "truncate", (), None, None)
        key = tuple(op[2][k] for k in self.keys_of(table)) if kind == "insert" else op[2]
        before = rows.get(key, _ABSENT)
        undo.append((table, key, before))
        if kind == "insert":
            if before is not _ABSENT:
                raise ValueError(f"insert of an existing key {key} into {table}")
            rows[key] = after = dict(op[2])
            return (table, "insert", key, None, after)
        if before is _ABSENT:
            raise ValueError(f"{kind} of a missing key {key} in {table}")
        if kind == "update":
            rows[key] = after = {**before, **op[3]}
            return (table, "update", key, before, after)
        del rows[key]
        return (table, "delete", key, before, None)

    def _shape(self, table: str, op: str, before: Row | None, after: Row | None) -> list[tuple]:
        if before is not None and self.caps.before_image != "full":
            before = ({k: before[k] for k in self.keys_of(table)} if self.caps.before_image == "key"
                      else None)
        if op == "update" and self.caps.updates == "delete+insert":
            return [("delete", before, None), ("insert", None, after)]
        return [(op, before, after)]


_TZ = dt.timezone(dt.timedelta(hours=2))


def random_row(rng: random.Random, key: int) -> Row:
    """A row of the synthetic ``t`` table: int, text, float, exact decimal, aware timestamp."""
    n = rng.randrange(1_000_000)
    return {"id": key, "n": n, "s": f"s{n}-é", "f": n / 7, "amount": Decimal(n) / 100,
            "ts": dt.datetime(2024, 1, 1, tzinfo=_TZ) + dt.timedelta(microseconds=n)}


def random_history(seed: int, n_events: int, n_keys: int, caps: Capabilities = FULL, txn_max: int = 4,
                   rollback_every: int = 50, table: str = "t", truncate_every: int = 0) -> History:
    """About ``n_events`` committed changes over ``n_keys`` keys of ``table``.

    Transactions of 1..``txn_max`` changes (distinct keys); inserts on absent keys, else an
    update (75%) or delete; every ``rollback_every``-th transaction is rolled back, and every
    ``truncate_every``-th (when non-zero) is a lone truncate.
    """
    rng = random.Random(seed)
    b = HistoryBuilder(caps)
    done = 0
    ntx = 0
    while done < n_events:
        ntx += 1
        if truncate_every and ntx % truncate_every == 0:
            b.commit(trunc(table))
            done += 1
            continue
        size = rng.randint(1, txn_max)
        keys = {rng.randrange(n_keys) for _ in range(size)}
        ops: list[Op] = []
        rows = b.rows.setdefault(table, {})
        for k in keys:
            if (k,) not in rows:
                ops.append(ins(table, **random_row(rng, k)))
            elif rng.random() < 0.75:
                n = rng.randrange(1_000_000)
                ops.append(upd(table, k, n=n, s=f"u{n}", amount=Decimal(n) / 1000))
            else:
                ops.append(dele(table, k))
        if ntx % rollback_every == 0:
            b.rollback(*ops)
        else:
            b.commit(*ops)
            done += len(ops)
    return b.history()


class MemoryApproach:
    """A correct in-memory approach that replays a synthetic history's events.

    ``poll`` returns whole commits (position prefix ``(commit, ...)``) up to ``max_events``;
    ``ack`` writes the position to ``store`` (its durable state, shared by the instances of one
    run); ``start(resume=True)`` resumes after it.
    """

    name: ClassVar[str] = "memory"
    family: ClassVar[str] = "memory"
    capabilities: ClassVar[Capabilities] = FULL

    def __init__(self, events: list[ChangeEvent], capabilities: Capabilities | None = None,
                 store: dict | None = None) -> None:
        self._events = events
        if capabilities is not None:
            self.capabilities = capabilities  # type: ignore[misc]
        self._cursor = 0
        self.store = store if store is not None else {}

    def start(self, ctx: RunContext | None = None, resume: bool = False) -> None:
        self._cursor = 0
        acked: Position | None = self.store.get("acked") if resume else None
        if acked is not None:
            while self._cursor < len(self._events) and self._events[self._cursor].position <= acked:
                self._cursor += 1

    def caught_up(self) -> bool:
        """True when every event of the history was handed out."""
        return self._cursor >= len(self._events)

    def poll(self, max_events: int, timeout_s: float) -> list[ChangeEvent]:
        out: list[ChangeEvent] = []
        evs = self._events
        while self._cursor < len(evs):
            commit = evs[self._cursor].position[0]
            if len(out) >= max_events and out[-1].position[0] != commit:
                break
            out.append(evs[self._cursor])
            self._cursor += 1
        return out

    def ack(self, position: Position) -> None:
        self.store["acked"] = position

    def stop(self) -> None:
        pass

    def crash(self) -> None:
        pass


def drain(approach: Any, max_events: int = 500, timeout_s: float = 0.0) -> list[ChangeEvent]:
    """Poll until an empty poll; return every event in order."""
    out: list[ChangeEvent] = []
    while True:
        got = approach.poll(max_events, timeout_s)
        if not got:
            return out
        out.extend(got)
