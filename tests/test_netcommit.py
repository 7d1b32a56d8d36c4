"""The net-per-commit rule (harness.netcommit): synthetic sink histories and their mutants."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from harness.capabilities import Capabilities
from harness.events import ChangeEvent
from harness.ledger import LedgerChange
from harness.netcommit import BoundaryError, SinkCommit, check_net, net_ledger
from harness.values import encode_image
from tests.histories import HistoryBuilder, dele, ins, trunc, upd

NET = Capabilities(before_image="full", updates="update", transactions=True, delivery="exactly-once",
                   truncate=True, net_per_commit=True)
SEEDS = [1, 2, 3, 4]


def _txns(changes: list[LedgerChange]) -> list[list[LedgerChange]]:
    by: dict[int, list[LedgerChange]] = {}
    for c in changes:
        if not c.rolled_back:
            by.setdefault(c.commit_seq, []).append(c)
    return [by[s] for s in sorted(by)]


def _apply(state: dict, txn: list[LedgerChange]) -> None:
    for c in txn:
        rows = state.setdefault(c.table, {})
        if c.op == "truncate":
            rows.clear()
        elif c.op == "delete":
            rows.pop(c.key, None)
        elif c.op in ("insert", "update"):
            rows[c.key] = c.after


class Sink:
    """A correct sink, simulated: applies batches of whole transactions, one commit per touched
    table, and yields the events a snapshot-diff reader sees plus the commits' records."""

    def __init__(self, builder: HistoryBuilder, ends: list[int]) -> None:
        self.txns = _txns(builder.ledger.changes)
        self.events: list[ChangeEvent] = []
        self.commits: list[SinkCommit] = []
        state: dict[str, dict] = {}
        start = 0
        for batch, end in enumerate(ends, 1):
            before = {t: dict(r) for t, r in state.items()}
            touched: dict[str, LedgerChange] = {}
            for txn in self.txns[start:end]:
                for c in txn:
                    touched.setdefault(c.table, c)
                _apply(state, txn)
            last = self.txns[end - 1][0]
            for idx, table in enumerate(sorted(touched)):
                old, new = before.get(table, {}), state.get(table, {})
                for key in sorted(set(old) | set(new), key=repr):
                    a, b = old.get(key), new.get(key)
                    if a is None and b is not None:
                        op = "insert"
                    elif b is None and a is not None:
                        op = "delete"
                    elif a is not None and encode_image(a) != encode_image(b):
                        op = "update"
                    else:
                        continue
                    self.events.append(ChangeEvent(table, op, key, a, b, (batch, idx, len(self.events)),
                                                   (table, batch), captured_at=last.committed_at + 5))
                self.commits.append(SinkCommit(table, batch, last.commit_issued_at + 50,
                                               touched[table].commit_issued_at + 50, last.committed_at + 1000,
                                               {"batch": batch}))
            start = end
        self.final = state


def history(seed: int, n: int = 80) -> tuple[HistoryBuilder, list[int]]:
    """Random single- and multi-change transactions on two tables, rollbacks, one truncate."""
    rng = random.Random(seed)
    b = HistoryBuilder(NET)
    live: dict[str, set] = {"a": set(), "b": set()}
    next_key = 1
    for i in range(n):
        ops = []
        if i == n // 2:
            b.commit(trunc("b"))
            live["b"].clear()
        for _ in range(rng.randint(1, 3)):
            t = rng.choice("ab")
            r = rng.random()
            if r < 0.4 or not live[t]:
                ops.append(ins(t, id=next_key, v=rng.randint(0, 9)))
                live[t].add(next_key)
                next_key += 1
            elif r < 0.8:
                ops.append(upd(t, rng.choice(sorted(live[t])), v=rng.randint(0, 9)))
            else:
                k = rng.choice(sorted(live[t]))
                live[t].discard(k)
                ops.append(dele(t, k))
        if i % 11 == 10:
            b.rollback(ins("a", id=10_000 + i, v=-1))
        b.commit(*ops)
    count = len(_txns(b.ledger.changes))
    ends = sorted(set(rng.sample(range(1, count), 12)) | {count})
    return b, ends


def _final(sink: Sink) -> dict:
    return {t: dict(rows) for t, rows in sink.final.items()}


@pytest.mark.parametrize("seed", SEEDS)
def test_a_correct_sink_passes(seed: int) -> None:
    b, ends = history(seed)
    sink = Sink(b, ends)
    verdict = check_net(b.ledger, sink.events, sink.commits, NET, _final(sink))
    assert verdict.passed, verdict.summary() + repr(verdict.examples)
    assert verdict.measurements["lag_ms"]["p50"] is not None


def test_coalescing_inside_one_commit() -> None:
    b = HistoryBuilder(NET)
    b.commit(ins("a", id=1, v=1))
    b.commit(upd("a", 1, v=2))
    b.commit(ins("a", id=2, v=1))
    b.commit(dele("a", 2))
    b.commit(upd("a", 1, v=1), upd("a", 1, v=2))
    sink = Sink(b, [5])
    assert [(e.op, e.key, e.after) for e in sink.events] == [("insert", (1,), {"id": 1, "v": 2})]
    net = net_ledger(b.ledger, sink.commits)
    assert [(c.op, c.key, c.after) for c in net.changes] == [("insert", (1,), {"id": 1, "v": 2})]
    assert check_net(b.ledger, sink.events, sink.commits, NET, _final(sink)).passed


@pytest.mark.parametrize("seed", SEEDS)
def test_a_dropped_change_is_lost(seed: int) -> None:
    b, ends = history(seed)
    sink = Sink(b, ends)
    victim = random.Random(seed).randrange(len(sink.events))
    events = sink.events[:victim] + sink.events[victim + 1:]
    verdict = check_net(b.ledger, events, sink.commits, NET, _final(sink))
    assert set(verdict.anomalies) == {"lost"}, verdict.summary()


def test_a_tail_never_committed_is_lost() -> None:
    b, ends = history(1)
    sink = Sink(b, ends)
    last = sink.commits[-1]
    events = [e for e in sink.events if e.position[0] != last.seq]
    commits = [c for c in sink.commits if c.seq != last.seq]
    verdict = check_net(b.ledger, events, commits, NET)
    assert set(verdict.anomalies) == {"lost"}, verdict.summary()


@pytest.mark.parametrize("seed", SEEDS)
def test_a_batch_applied_twice_is_a_duplicate(seed: int) -> None:
    """A sink that resumed from an offset older than its last commit: the next commit's first
    applied change lies inside what an earlier commit applied. The rows come out the same
    (upsert by key), the commit record shows the second application."""
    b, ends = history(seed)
    sink = Sink(b, ends)
    seqs = sorted({c.seq for c in sink.commits if c.table == "a"})
    earlier, later = seqs[2], seqs[3]
    first = next(c for c in sink.commits if c.table == "a" and c.seq == earlier).first_ts
    commits = [replace(c, first_ts=first) if c.table == "a" and c.seq == later else c for c in sink.commits]
    verdict = check_net(b.ledger, sink.events, commits, NET, _final(sink))
    assert set(verdict.anomalies) == {"duplicate"}, verdict.summary()
    assert verdict.examples["duplicate"][0]["why"].startswith(f"sink commit {later} of a applied again")


def test_an_event_delivered_twice_is_a_duplicate() -> None:
    b, ends = history(2)
    sink = Sink(b, ends)
    events = [*sink.events, sink.events[3]]
    verdict = check_net(b.ledger, events, sink.commits, NET, _final(sink))
    assert set(verdict.anomalies) == {"duplicate"}, verdict.summary()


@pytest.mark.parametrize("seed", SEEDS)
def test_a_phantom_is_named(seed: int) -> None:
    b, ends = history(seed)
    sink = Sink(b, ends)
    last = sink.events[-1]
    ghost = ChangeEvent("a", "insert", (99_999,), None, {"id": 99_999, "v": 7},
                        (*last.position[:2], last.position[2] + 1), last.txid, captured_at=last.captured_at)
    verdict = check_net(b.ledger, [*sink.events, ghost], sink.commits, NET)
    assert set(verdict.anomalies) == {"phantom"}, verdict.summary()


def test_a_rolled_back_change_is_a_phantom() -> None:
    b = HistoryBuilder(NET)
    b.commit(ins("a", id=1, v=1))
    b.rollback(ins("a", id=2, v=5))
    b.commit(upd("a", 1, v=2))
    sink = Sink(b, [1, 2])
    ghost = ChangeEvent("a", "insert", (2,), None, {"id": 2, "v": 5}, (2, 0, 9), ("a", 2))
    verdict = check_net(b.ledger, [*sink.events, ghost], sink.commits, NET)
    assert set(verdict.anomalies) == {"phantom"}
    assert verdict.examples["phantom"][0]["why"] == "matches a rolled-back change"


def test_a_wrong_value_is_named_and_the_table_diverges() -> None:
    b, ends = history(3)
    sink = Sink(b, ends)
    i = next(i for i, e in enumerate(sink.events) if e.op == "insert")
    e = sink.events[i]
    bad = replace(e, after={**e.after, "v": 123})
    verdict = check_net(b.ledger, [*sink.events[:i], bad, *sink.events[i + 1:]], sink.commits, NET)
    assert "after-mismatch" in verdict.anomalies


def test_a_boundary_in_no_transaction_cannot_be_placed() -> None:
    b, ends = history(1)
    sink = Sink(b, ends)
    lost_in_time = [replace(sink.commits[0], last_ts=1)]
    with pytest.raises(BoundaryError, match="lies in no committed transaction"):
        check_net(b.ledger, sink.events, lost_in_time, NET)


def test_lag_is_per_source_change_until_its_commit_is_visible() -> None:
    b = HistoryBuilder(NET)
    b.commit(ins("a", id=1, v=1))
    b.commit(ins("a", id=2, v=1), ins("a", id=3, v=1))
    sink = Sink(b, [2])
    verdict = check_net(b.ledger, sink.events, sink.commits, NET)
    txns = _txns(b.ledger.changes)
    visible = sink.commits[0].visible_ns
    want = sorted((visible - t[0].commit_issued_at) / 1e6 for t in txns for _ in t)
    assert verdict.measurements["lag_ms"]["max"] == round(want[-1], 3)
    assert verdict.measurements["lag_ms"]["p50"] == round(want[1], 3)


def test_rows_written_before_an_added_column_have_it_at_the_next_boundary() -> None:
    b = HistoryBuilder(NET)
    b.commit(ins("a", id=1, v=1))
    b.ddl("a", {"kind": "add", "column": "c"})
    b.commit(ins("a", id=2, v=1, c="x"))
    sink = Sink(b, [2])
    net = net_ledger(b.ledger, sink.commits)
    rows = {c.key: c.after for c in net.changes if c.op == "insert"}
    assert rows == {(1,): {"id": 1, "v": 1, "c": None}, (2,): {"id": 2, "v": 1, "c": "x"}}


def _drop(events: list[ChangeEvent], column: str) -> list[ChangeEvent]:
    def cut(image):
        return None if image is None else {k: v for k, v in image.items() if k != column}
    return [replace(e, before=cut(e.before), after=cut(e.after)) for e in events]


def test_a_declared_projection_is_checked_both_ways() -> None:
    b, ends = history(2)
    sink = Sink(b, ends)
    declared = replace(NET, dropped=frozenset({"v"}))
    final = {t: {k: {c: x for c, x in r.items() if c != "v"} for k, r in rows.items()}
             for t, rows in _final(sink).items()}
    assert check_net(b.ledger, _drop(sink.events, "v"), sink.commits, declared, _final(sink)).passed
    still_there = check_net(b.ledger, sink.events, sink.commits, declared, _final(sink))
    assert "schema" in still_there.anomalies, "a declared-dropped column still delivered"
    undeclared = check_net(b.ledger, _drop(sink.events, "v"), sink.commits, NET, final)
    assert "schema" in undeclared.anomalies, "a column dropped without being declared"
