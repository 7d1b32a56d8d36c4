"""Net changes per sink commit: the ledger coalesced at the boundaries a sink recorded, then checked.

A pipeline that applies the source's changes to a table format in batches (a sink) makes one
commit per batch and table; a reader of that table sees one *net* change per key per commit:
several source changes to a key inside one batch arrive as one (insert + update → insert of the
last row; insert + delete → nothing). Such an approach claims ``Capabilities.net_per_commit``
and records, in each commit itself, the source positions it applied (``SinkCommit``): the
source commit time of the first change it applied to the table (``first_ts``) and of the last
source transaction of the batch (``last_ts``, "applied up to").

``check_net`` holds it to that record:

1. every boundary is placed in the ledger: the committed transaction whose
   ``[commit_issued_at, committed_at]`` holds the recorded source commit time (writers are
   serial on one host clock, so that transaction is unique). A boundary that lies in no
   transaction raises ``BoundaryError``: the checker cannot judge it, and says so;
2. per table, the ledger is replayed and diffed at consecutive boundaries: the expected net
   change of each key in each window (insert, update, delete, or nothing), and the changes
   committed after the table's last boundary as a last window no commit shows (``lost`` when
   they were never made visible);
3. the net ledger is checked by ``harness.checker.check`` against the captured events (lost,
   duplicate, phantom, images, order, one commit per window, replay against the final state);
4. applied twice: a commit whose ``first_ts`` lies at or before a position an earlier commit of
   the table had already applied re-applied those source changes (a sink that resumed from an
   offset older than its last commit): each change of the table in that overlap is a
   ``duplicate``, although an upsert by key leaves the rows the same;
5. a declared projection (``Capabilities.dropped``) leaves those columns out of the net images
   and the final state: a column still delivered, or another one missing, is a ``schema``;
6. lag per source change: the first commit of its table whose boundary covers it became
   visible (``visible_ns``) minus the change's ``commit_issued_at`` (replaces the checker's
   per-event lag).

A source change whose effect a later change of the same key in the same window overwrites is
not observable in the table, and not judged: the claim is about the table's state at each
boundary. Every change whose effect is observable at a boundary is.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.capabilities import Capabilities
from harness.checker import check, encode_history, lag_summary
from harness.errors import HarnessError
from harness.events import ChangeEvent
from harness.ledger import Ledger, LedgerChange
from harness.values import encode_image, jsonable
from harness.verdict import MAX_EXAMPLES, Verdict

#: source commit times are microseconds: a boundary may sit up to this far below the true time
_US = 999


class BoundaryError(HarnessError):
    """A recorded boundary lies in no committed transaction: the checker cannot place it."""


@dataclass(frozen=True)
class SinkCommit:
    """One sink commit to one table, as the sink recorded it in that commit.

    ``seq`` orders the table's commits; ``last_ts`` (ns) is the source commit time of the last
    source transaction the batch applied; ``first_ts`` (ns) that of the first change applied to
    this table in the commit (None when it applied none); ``visible_ns`` when the commit became
    visible to readers (its snapshot time). ``info`` holds what else the sink recorded (offsets).
    """

    table: str
    seq: int
    last_ts: int
    first_ts: int | None = None
    visible_ns: int = 0
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _Txn:
    seq: int
    issued: int
    committed: int
    changes: list[LedgerChange]


def _transactions(changes: Sequence[LedgerChange]) -> tuple[list[_Txn], list[LedgerChange]]:
    """Committed transactions in commit order, and the rolled-back changes."""
    by_seq: dict[int, _Txn] = {}
    rolled: list[LedgerChange] = []
    for c in changes:
        if c.rolled_back:
            rolled.append(c)
            continue
        txn = by_seq.get(c.commit_seq)
        if txn is None:
            txn = by_seq[c.commit_seq] = _Txn(c.commit_seq, c.commit_issued_at, c.committed_at, [])
        txn.changes.append(c)
    return [by_seq[s] for s in sorted(by_seq)], rolled


class _Placer:
    """Places a source commit time in the ledger: the index of the transaction holding it."""

    def __init__(self, txns: list[_Txn]) -> None:
        self.txns = txns
        self.issued = [t.issued for t in txns]

    def index(self, ts: int, what: str) -> int:
        """1-based index of the transaction whose [issued, committed] holds ``ts``."""
        i = bisect.bisect_right(self.issued, ts + _US) - 1
        if i < 0 or ts > self.txns[i].committed:
            raise BoundaryError(f"{what} names source commit time {ts} ns, which lies in no committed "
                                "transaction's [issued, committed] interval: the checker cannot place it "
                                "(the writers must be serial, on this host's clock)")
        return i + 1


def _diff(table: str, a: Mapping[tuple, Any], b: Mapping[tuple, Any], keys: Any) -> list[tuple]:
    """Net changes from state ``a`` to state ``b`` over ``keys``: (op, key, before, after)."""
    out = []
    for k in keys:
        old, new = a.get(k), b.get(k)
        if old is None and new is None:
            continue
        if old is None:
            out.append(("insert", k, None, new))
        elif new is None:
            out.append(("delete", k, old, None))
        elif encode_image(old) != encode_image(new):
            out.append(("update", k, old, new))
    return out


class _Replay:
    """The table's state after the first ``n`` transactions (forward replay, restarted when a
    boundary goes back), and which keys transactions touched."""

    def __init__(self, table: str, txns: list[_Txn]) -> None:
        self.table = table
        self.txns = txns
        self.n = 0
        self.state: dict[tuple, Any] = {}

    def at(self, n: int) -> dict[tuple, Any]:
        if n < self.n:
            self.n, self.state = 0, {}
        for txn in self.txns[self.n:n]:
            for c in txn.changes:
                if c.table != self.table:
                    continue
                if c.op == "truncate":
                    self.state.clear()
                elif c.op == "ddl":
                    self.state = {k: _reshape(r, c.after or {}) for k, r in self.state.items()}
                elif c.op == "delete":
                    self.state.pop(c.key, None)
                elif c.op in ("insert", "update"):
                    self.state[c.key] = c.after
        self.n = n
        return dict(self.state)

    def touched(self, lo: int, hi: int) -> tuple[set, bool]:
        """Keys of this table changed by transactions lo+1..hi, and whether one truncated it."""
        keys: set = set()
        truncated = False
        for txn in self.txns[lo:hi]:
            for c in txn.changes:
                if c.table == self.table:
                    if c.op == "truncate":
                        truncated = True
                    elif c.op != "ddl":
                        keys.add(c.key)
        return keys, truncated


def _reshape(row: Mapping[str, Any], ddl: Mapping[str, Any]) -> dict[str, Any]:
    """A row after one DDL change (add: NULL; drop; rename), as the source's rows become."""
    out = dict(row)
    kind = ddl.get("kind")
    if kind == "add":
        out.setdefault(ddl["column"], None)
    elif kind == "drop":
        out.pop(ddl["column"], None)
    elif kind == "rename" and ddl["old"] in out:
        out[ddl["new"]] = out.pop(ddl["old"])
    return out


@dataclass
class NetLedger:
    """The ledger coalesced at the sink's boundaries, with what the coalescing found."""

    changes: list[LedgerChange]
    duplicates: list[dict]
    lag_ns: list[int]
    windows: int


def _without(image: Mapping[str, Any] | None, dropped: frozenset[str]) -> Any:
    if image is None or not dropped:
        return image
    return {k: v for k, v in image.items() if k not in dropped}


def net_ledger(ledger: Ledger | Sequence[LedgerChange], commits: Sequence[SinkCommit],
               dropped: frozenset[str] = frozenset()) -> NetLedger:
    """Coalesce the ledger per table at the recorded boundaries (see the module docstring),
    leaving the declared ``dropped`` columns out of every image."""
    rows = ledger.changes if isinstance(ledger, Ledger) else list(ledger)
    txns, rolled = _transactions(rows)
    placer = _Placer(txns)
    tables = sorted({c.table for t in txns for c in t.changes if c.op != "ddl"} | {c.table for c in commits})
    by_table: dict[str, list[SinkCommit]] = {t: [] for t in tables}
    for c in commits:
        by_table[c.table].append(c)
    entries: list[tuple[tuple, LedgerChange]] = []
    duplicates: list[dict] = []
    lag_ns: list[int] = []
    window_id = 0
    for order, table in enumerate(tables):
        replay = _Replay(table, txns)
        prev, high = 0, 0
        covered_until = 0  # transactions up to here are visible in some commit of this table
        seen = sorted(by_table[table], key=lambda c: c.seq)
        windows = [(c, placer.index(c.last_ts, f"sink commit {c.seq} of {table}")) for c in seen]
        windows.append((None, len(txns)))  # what no commit made visible
        for commit, upto in windows:
            window_id += 1
            if commit is not None and commit.first_ts is not None:
                first = placer.index(commit.first_ts, f"sink commit {commit.seq} of {table} (first change)")
                if first <= high:
                    dup = [c for t in txns[first - 1:min(upto, high)] for c in t.changes
                           if c.table == table and c.op != "ddl"]
                    duplicates.extend({"why": f"sink commit {commit.seq} of {table} applied again source "
                                              f"changes an earlier commit had applied (up to transaction {high})",
                                       "commit": jsonable(dict(commit.info)), "change": _json(c)} for c in dup)
            if commit is not None and upto > covered_until:
                for t in txns[covered_until:upto]:
                    lag_ns.extend(commit.visible_ns - t.issued for c in t.changes
                                  if c.table == table and c.op != "ddl")
                covered_until = upto
            lo, hi = sorted((prev, upto))
            keys, truncated = replay.touched(lo, hi)
            before, after = replay.at(prev), replay.at(upto)
            if truncated:
                keys |= set(before) | set(after)
            issued = txns[upto - 1].issued if upto else 0
            committed = txns[upto - 1].committed if upto else 0
            for n, (op, key, b, a) in enumerate(_diff(table, before, after, sorted(keys, key=repr))):
                entries.append(((upto, 1, order, window_id, n),
                                LedgerChange(table, op, key, _without(b, dropped), _without(a, dropped),
                                             window_id, window_id, issued, committed)))
            prev, high = upto, max(high, upto)
    for t in txns:  # DDL before the windows that apply it (images are projected from there)
        for c in t.changes:
            if c.op == "ddl":
                entries.append(((t.seq, 0, 0, 0, 0), c))
    entries.sort(key=lambda e: e[0])
    rolled = [replace(c, before=_without(c.before, dropped), after=_without(c.after, dropped)) for c in rolled]
    return NetLedger([c for _, c in entries] + rolled, duplicates, lag_ns, window_id)


def _json(c: LedgerChange) -> dict:
    return {"table": c.table, "op": c.op, "key": jsonable(c.key), "after": jsonable(c.after),
            "commit_seq": c.commit_seq}


def check_net(ledger: Ledger | Sequence[LedgerChange], events: Sequence[ChangeEvent] | Any,
              commits: Sequence[SinkCommit], capabilities: Capabilities, final_state: Any = None,
              delivery: Any = None) -> Verdict:
    """The verdict of a net-per-commit approach: ``check`` on the net ledger, plus changes the
    sink applied twice (``duplicate``) and the end-to-end lag per source change."""
    net = net_ledger(ledger, commits, capabilities.dropped)
    if final_state is not None and capabilities.dropped:
        final_state = {t: {k: _without(r, capabilities.dropped) for k, r in rows.items()}
                       for t, rows in final_state.items()}
    verdict = check(encode_history(net.changes, events, delivery), capabilities, final_state)
    if net.duplicates:
        verdict.anomalies["duplicate"] = verdict.anomalies.get("duplicate", 0) + len(net.duplicates)
        examples = verdict.examples.setdefault("duplicate", [])
        examples.extend(net.duplicates[:max(MAX_EXAMPLES - len(examples), 0)])
        verdict.status = "fail"
    m = verdict.measurements
    m.update(lag_summary(net.lag_ns))
    m.update(sink_commits=len(commits), net_windows=net.windows, net_changes=sum(
        1 for c in net.changes if not c.rolled_back and c.op != "ddl"))
    incarnations: dict[Any, int] = {}  # what the sink says it skipped (redeliveries), per incarnation
    for c in commits:
        if c.info.get("incarnation") is not None:
            incarnations[c.info["incarnation"]] = max(incarnations.get(c.info["incarnation"], 0),
                                                      int(c.info.get("skipped") or 0))
    if incarnations:
        m.update(sink_incarnations=len(incarnations), sink_skipped=sum(incarnations.values()))
    return verdict
