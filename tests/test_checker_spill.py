"""The general path's out-of-core join (``CDC_CHECK_SPILL``) and chunked confirmation, and its
key-partitioned form (``CDC_CHECK_PARTITION``, ``harness.partitioned``: forced here with
partitions of a few dozen rows), give the verdicts of the whole-history in-memory path, case by
case: the mutation histories (every fault class, with and without the engine's final state,
under several claims), key changes (not partitioned: checked whole), and Arrow histories
reordered across transactions with planted faults."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pytest

import harness.checker as checker
import harness.partitioned as partitioned
from harness.checker import SPILL_ENV, check, encode_history, spill_wanted
from harness.partitioned import PARTITION_ENV, partition_wanted
from harness.verdict import Verdict
from suites.test_checker_benchmark import arrow_history
from tests.histories import FULL, random_history
from tests.mutants import FAULTS, REDELIVER
from tests.test_checker import ddl_history, readded_column_history
from tests.test_checker_keys import pk_history
from tests.test_checker_mutations import captured

#: partitions of this many rows (a 240-change history: about 3), written this many rows at a time
TINY_PARTITION, TINY_FLUSH = 100, 60


def _both(monkeypatch: pytest.MonkeyPatch, ledger: Any, events: Any, caps, final_state=None,
          partition: bool = False, rows: int = TINY_PARTITION) -> tuple[Verdict, Verdict]:
    """The verdict in memory, then with the join spilled and confirmation 97 pairs at a time
    (``partition``: checked by key partitions of ``rows`` rows instead)."""
    monkeypatch.setenv(PARTITION_ENV, "0")
    monkeypatch.setenv(SPILL_ENV, "0")
    mem = check(encode_history(ledger, events), caps, final_state=final_state)
    if partition:
        monkeypatch.setenv(PARTITION_ENV, "1")
        monkeypatch.setattr(partitioned, "PARTITION_ROWS", rows)
        monkeypatch.setattr(partitioned, "_FLUSH_ROWS", TINY_FLUSH)
    else:
        monkeypatch.setenv(SPILL_ENV, "1")
    monkeypatch.setattr(checker, "_CONFIRM_CHUNK", 97)
    spilled = check(encode_history(ledger, events), caps, final_state=final_state)
    monkeypatch.undo()
    return mem, spilled


def _same(mem: Verdict, spilled: Verdict, path: str = "general-spill") -> None:
    assert mem.measurements["check_path"] == "general"
    assert spilled.measurements["check_path"] == path
    assert (spilled.status, spilled.anomalies, spilled.examples) == (mem.status, mem.anomalies, mem.examples)
    for k in ("events", "committed", "matched", "redelivered", "lag_ms", "lag_cdf"):
        assert spilled.measurements[k] == mem.measurements[k], k


#: per claim, the faults whose naming depends on it (every fault under FULL); one spilled check
#: costs a DuckDB connection and two Parquet files, so the list stays short
CLAIMS = {
    "full": (FULL, [*FAULTS, REDELIVER]),
    "key-before": (replace(FULL, before_image="key"), ["lose-before", "corrupt-before", "corrupt-after"]),
    "no-before": (replace(FULL, before_image="none"), ["corrupt-before", "corrupt-after", "drop"]),
    "delete-insert": (replace(FULL, updates="delete+insert"), ["split-update", "drop", "reorder"]),
    "at-least-once": (replace(FULL, delivery="at-least-once"), [REDELIVER, "duplicate"]),
}


@pytest.mark.parametrize("claim", list(CLAIMS))
def test_mutation_histories_get_the_same_verdict_spilled(monkeypatch: pytest.MonkeyPatch, claim: str) -> None:
    _mutation_histories(monkeypatch, claim, partition=False)


@pytest.mark.parametrize("claim", list(CLAIMS))
def test_mutation_histories_get_the_same_verdict_partitioned(monkeypatch: pytest.MonkeyPatch, claim: str) -> None:
    """Every fault checked by key partitions of a few dozen rows; a ``key`` before-image claim
    is not partitioned (``harness.partitioned``): it is checked whole."""
    _mutation_histories(monkeypatch, claim, partition=True)


def _mutation_histories(monkeypatch: pytest.MonkeyPatch, claim: str, partition: bool) -> None:
    caps, faults = CLAIMS[claim]
    h = random_history(3, 240, 30, caps, txn_max=2, rollback_every=9, truncate_every=53)
    path = ("general" if caps.before_image == "key" else "general-partitioned") if partition else "general-spill"
    names: set[str] = set()
    for fault in [None, *(dict.fromkeys([*FAULTS, REDELIVER, *faults]) if partition else faults)]:
        events, m = captured(h, fault, 3)
        if fault is not None and not (m is not None and m.applied):
            continue
        for final_state in ((None, h.final_state) if fault in (None, "diverge") else (None,)):
            mem, spilled = _both(monkeypatch, h.ledger, events, caps, final_state, partition)
            _same(mem, spilled, path)
            names |= set(mem.anomalies)
    if claim == "full":  # the cases the brief names were all exercised, and named
        assert {"lost", "duplicate", "reordered", "torn-txn", "op-mismatch", "before-mismatch"} <= names


@pytest.mark.parametrize("key_updates", ["update", "delete+insert"])
def test_key_changes_get_the_same_verdict_spilled(monkeypatch: pytest.MonkeyPatch, key_updates: str) -> None:
    h = pk_history()
    caps = replace(FULL, key_updates=key_updates)
    events = h.events(key_updates)
    for evs in (events, events[:3] + events[4:], events + events[2:3], events[::-1]):
        _same(*_both(monkeypatch, h.ledger, evs, caps))
        _same(*_both(monkeypatch, h.ledger, evs, caps, h.state))
        # a key change stands in two keys' order and state: such a history is checked whole
        _same(*_both(monkeypatch, h.ledger, evs, caps, h.state, partition=True), "general")


def _modified(batch: pa.RecordBatch, i: int) -> pa.RecordBatch:
    """``batch`` with row ``i``'s ``n`` changed in its after image."""
    after = batch.column("after")
    n = after.field("n").to_pylist()
    n[i] += 1
    fields = [pa.array(n, after.field("n").type) if f.name == "n" else after.field(f.name) for f in after.type]
    new = pa.StructArray.from_arrays(fields, names=[f.name for f in after.type])
    return batch.set_column(batch.schema.get_field_index("after"), "after", new)


def test_arrow_histories_across_transactions_get_the_same_verdict_spilled(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger, batches = arrow_history(2_000, per_batch=500)
    rev = batches[::-1]  # each transaction whole and in order, the transactions reversed: the general path
    cases = {
        "reversed": (rev, {}),
        "lost": ([rev[0].slice(1), *rev[1:]], {"lost": 1}),
        "duplicate": ([*rev, rev[2].slice(7, 1)], {"duplicate": 1}),
        "after-mismatch": ([_modified(rev[0], 5), *rev[1:]], {"after-mismatch": 1}),
        "torn-txn": ([rev[0].slice(0, 250), rev[1], rev[0].slice(250), *rev[2:]], {"torn-txn": 1}),
        "reordered": ([rev[0].take(pa.array([1, 0, *range(2, 500)])), *rev[1:]], {}),
    }
    for name, (events, want) in cases.items():
        mem, spilled = _both(monkeypatch, ledger, events, FULL)
        _same(mem, spilled)
        assert mem.anomalies == want, (name, mem.summary())
        _same(*_both(monkeypatch, ledger, events, FULL, partition=True), "general-partitioned")


def test_ddl_histories_get_the_same_verdict_partitioned(monkeypatch: pytest.MonkeyPatch) -> None:
    """DDL (projection by commit order, a column dropped and re-added) on partitions of 2 rows."""
    h, r = ddl_history(), readded_column_history()
    ev = list(h.events)
    i = next(j for j, e in enumerate(ev) if e.op == "insert" and e.key == (4,))
    ev[i] = replace(ev[i], after={"id": 4, "v": "d", "n": 4, "c": None})  # the rename not followed
    state = copy.deepcopy(r.final_state)
    state["t"][(1,)]["n"] = 6
    reordered = [e for e in h.events if e.op != "ddl"][::-1]
    for hist, events, final_state in ((h, h.events, None), (h, h.events, h.final_state), (h, ev, None),
                                      (h, reordered, h.final_state), (r, r.events, r.final_state),
                                      (r, r.events, state)):
        mem, part = _both(monkeypatch, hist.ledger, events, FULL, final_state, partition=True, rows=2)
        _same(mem, part, "general-partitioned")
        assert part.measurements["partitions"] > 1


@pytest.mark.parametrize(("env", "wanted", "threshold", "verb"), [
    (SPILL_ENV, spill_wanted, lambda: checker.SPILL_ROWS, "spill"),
    (PARTITION_ENV, partition_wanted, lambda: partitioned.PARTITION_FROM, "partition"),
])
def test_out_of_core_paths_are_chosen_by_size_unless_forced(monkeypatch: pytest.MonkeyPatch, env: str,
                                                             wanted: Any, threshold: Any, verb: str) -> None:
    monkeypatch.delenv(env, raising=False)
    assert not wanted(threshold() - 1) and wanted(threshold())
    monkeypatch.setenv(env, "0")
    assert not wanted(10 * threshold())
    monkeypatch.setenv(env, "1")
    assert wanted(1)
    monkeypatch.setenv(env, "maybe")
    with pytest.raises(ValueError, match=f"{env}='maybe': set it to 1 \\(always {verb}\\)"):
        wanted(1)
