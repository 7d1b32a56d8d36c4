"""Mutation tests: each injected fault class is reported as exactly its anomaly; no fault, no anomaly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from containers.engine import DeltaWarehouse
from harness.capabilities import Capabilities
from harness.families import builtin_registry
from harness.runner import Case, run_case
from scenarios.core import SCENARIOS
from tests.histories import FULL, History, MemoryApproach, drain, random_history
from tests.mutants import FAULTS, REDELIVER, Mutant, mutant_class

SEEDS = [1, 2, 3, 4, 5]


def history(seed: int, caps: Capabilities = FULL) -> History:
    """A few hundred changes on 60 keys with multi-change txns, rollbacks and truncates."""
    return random_history(seed, 600, 60, caps, txn_max=2, rollback_every=9, truncate_every=53)


def captured(h: History, fault: str | None, seed: int, batch: int = 64) -> tuple[list, Mutant | None]:
    inner = MemoryApproach(h.events, h.caps)
    approach = inner if fault is None else Mutant(inner, fault, seed)
    approach.start(None)
    events = drain(approach, batch)
    approach.stop()
    return events, (approach if fault is not None else None)


@pytest.mark.parametrize("seed", SEEDS)
def test_unmutated_approach_passes_run_after_run(seed: int) -> None:
    h = history(seed)
    for _ in range(2):
        events, _m = captured(h, None, seed)
        assert events == h.events
        assert h.verdict(events).passed
        assert h.verdict(events, final_state=h.final_state).passed


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_is_reported_as_exactly_its_anomaly(fault: str, seed: int) -> None:
    h = history(seed)
    events, m = captured(h, fault, seed)
    assert m is not None and m.applied, f"{fault} found no place in the history"
    want = FAULTS[fault]
    for final_state in (None, h.final_state):
        v = h.verdict(events, final_state=final_state)
        assert set(v.anomalies) == {want}, (v.summary(), v.examples)
        assert v.examples[want]
        if fault == "diverge":
            assert v.anomalies[want] == len(h.final_state["t"])
        else:
            assert v.anomalies[want] == 1


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_mutant_is_deterministic(seed: int) -> None:
    h = history(seed)
    for fault in FAULTS:
        assert captured(h, fault, seed)[0] == captured(h, fault, seed)[0]


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_repeat_at_the_same_position_without_a_restart_is_a_duplicate(delivery: str) -> None:
    h = history(7, replace(FULL, delivery=delivery))
    events, m = captured(h, REDELIVER, 7)
    assert m is not None and m.applied
    v = h.verdict(events)
    assert v.anomalies == {"duplicate": 1}, v.summary()
    assert v.measurements["redelivered"] == 0
    dup, _ = captured(h, "duplicate", 7)
    assert h.verdict(dup).anomalies == {"duplicate": 1}


def test_torn_txn_is_benign_without_a_transaction_claim() -> None:
    h = history(8, replace(FULL, transactions=False))
    events, _m = captured(h, "tear-txn", 8)
    assert h.verdict(events).passed
    assert h.verdict(events, caps=FULL).anomalies == {"torn-txn": 1}


def test_lose_before_is_benign_when_before_images_are_not_claimed() -> None:
    h = history(9, replace(FULL, before_image="key"))
    events, m = captured(h, "lose-before", 9)
    assert m is not None and m.applied
    assert h.verdict(events).passed


def test_mutant_class_registers_like_an_approach() -> None:
    h = history(10)

    class Fixed(MemoryApproach):
        name = "memory-fixed"

        def __init__(self) -> None:
            super().__init__(h.events, h.caps)

    cls = mutant_class(Fixed, "drop", seed=10)
    assert cls.name == "memory-fixed+drop" and cls.family == "memory" and cls.capabilities == FULL
    approach = cls()
    approach.start(None)
    events = drain(approach)
    approach.ack(events[-1].position)
    assert h.verdict(events).anomalies == {"lost": 1}


# -- the real delta-cdf approach on real Delta tables --------------------------------------------

try:
    import deltalake  # noqa: F401
    HAVE_DELTA = True
except ImportError:  # pragma: no cover
    HAVE_DELTA = False

needs_delta = pytest.mark.skipif(not HAVE_DELTA, reason="deltalake not installed: pip install 'deltalake>=1.1,<2'")
#: fault -> the crud/txn scenario that has a place for it (tear-txn needs multi-change commits)
DELTA_FAULTS = [
    pytest.param(f, "txn" if f == "tear-txn" else "crud", id=f,
                 marks=[pytest.mark.skip(reason="delta-cdf emits a truncate as per-row deletes: no truncate event "
                                                "to move")] if f == "diverge" else [])
    for f in FAULTS
]


def delta_run(tmp_path: Path, scenario: str, fault: str | None, seed: int = 1) -> tuple[Any, Mutant | None]:
    """Write ``scenario`` to a fresh Delta warehouse while delta-cdf (maybe mutated) captures it."""
    from harness.approaches.delta_cdf import DeltaCdf

    engine = DeltaWarehouse(root=tmp_path / "warehouse")
    engine.start()
    cls = DeltaCdf if fault is None else mutant_class(DeltaCdf, fault, seed=seed, release_after_s=0.5)
    made: list[Any] = []

    def factory() -> Any:
        made.append(cls())
        return made[-1]

    case = Case(DeltaCdf, scenario, builtin_registry().get("delta"), roles=("delta",))
    try:
        result = run_case(case, {"delta": engine}, SCENARIOS[scenario], run_id=f"mut{seed}", worker="gw0",
                          workdir=tmp_path, seed=seed, scale="smoke", timeout_s=30, deadline_s=10,
                          factory=factory)
    finally:
        engine.stop()
    return result.verdict, (made[0] if fault is not None else None)


@needs_delta
@pytest.mark.parametrize("scenario", ["crud", "txn", "truncate"])
def test_delta_cdf_unmutated_passes_run_after_run(tmp_path: Path, scenario: str) -> None:
    for run_no in range(2):
        verdict, _m = delta_run(tmp_path / str(run_no), scenario, None)
        assert verdict.passed, (verdict.summary(), verdict.examples)
        assert verdict.measurements["matched"] == verdict.measurements["committed"] > 0


@needs_delta
@pytest.mark.parametrize(("fault", "scenario"), DELTA_FAULTS)
def test_delta_cdf_fault_is_reported_as_exactly_its_anomaly(tmp_path: Path, fault: str, scenario: str) -> None:
    verdict, m = delta_run(tmp_path, scenario, fault)
    assert m is not None and m.applied, f"{fault} found no place in delta-cdf's events for {scenario}"
    want = FAULTS[fault]
    assert set(verdict.anomalies) == {want}, (verdict.summary(), verdict.examples)
    assert verdict.anomalies[want] == 1
    assert verdict.examples[want]
