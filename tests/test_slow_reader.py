"""Lost means lost: a reader that is slow to come back is waited for, and reported late, not lossy.

``SlowRestart`` wraps a correct approach and goes silent for ``SILENCE_S`` seconds after every
restart (a reconnect backoff, a Connect task restarting, a consumer-group rebalance). It must
pass ``reader-crash`` (delta-cdf), ``net-drop`` and ``source-restart`` (pg-pgoutput), with
``recovery_s`` at least that silence. A mutant that drops a change is still ``lost``, and is
named well before its deadline because the approach says it has read everything.

pg-debezium says so exactly, through a caught-up marker (a logical decoding message behind every
earlier commit in the run's one partition): a dropped change ends the drain through the marker and
is ``lost``; a reader that takes one event per poll, slowly, reaches the marker only after every
change, so it passes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from fixtures.session import case_engines
from harness.events import ChangeEvent
from harness.runner import Case, run_case
from tests.mutants import mutant_class

SILENCE_S = 8.0


class SlowRestart:
    """A correct approach that delivers nothing for ``SILENCE_S`` after each restart."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.family, self.capabilities = inner.name, inner.family, inner.capabilities
        self._silent_until = 0.0

    def start(self, ctx: Any, resume: bool = False) -> None:
        self.inner.start(ctx, resume)
        if resume:
            self._silent_until = time.monotonic() + SILENCE_S

    def poll(self, max_events: int, timeout_s: float) -> list[ChangeEvent]:
        if time.monotonic() < self._silent_until:
            time.sleep(timeout_s)
            return []
        return self.inner.poll(max_events, timeout_s)

    def caught_up(self) -> bool:
        """Never while silent: it has not read what was committed meanwhile."""
        inner = getattr(self.inner, "caught_up", None)
        return time.monotonic() >= self._silent_until and inner is not None and bool(inner())

    def ack(self, position: Any) -> None:
        self.inner.ack(position)

    def stop(self) -> None:
        self.inner.stop()

    def crash(self) -> None:
        self.inner.crash()


def _run(cdc_session: Any, tmp_path: Path, approach_id: str, scenario: str, factory: Any,
         deadline_s: float) -> Any:
    cls = cdc_session.approaches.get(approach_id)
    family = cdc_session.families.get(cls.family)
    settings = tuple(sorted(family.variants_for(scenario)[0].items()))
    case = Case(cls, scenario, family, settings, cdc_session.families.roles_for(cls))
    with case_engines(cdc_session, case.roles) as engines:
        result = run_case(case, engines, cdc_session.scenarios.get(scenario), run_id=cdc_session.run_id,
                          worker=cdc_session.worker, workdir=tmp_path, seed=1, scale="smoke", timeout_s=60,
                          deadline_s=deadline_s, case_no=cdc_session.next_case_number(),
                          factory=lambda: factory(cls))
    assert result.verdict.status != "unsupported", result.verdict.reason
    return result


@pytest.mark.slow
@pytest.mark.parametrize(("approach_id", "scenario"), [
    ("delta-cdf", "reader-crash"), ("pg-pgoutput", "net-drop"), ("pg-pgoutput", "source-restart")])
def test_slow_restarting_reader_is_late_not_lossy(cdc_session: Any, tmp_path: Path, approach_id: str,
                                                  scenario: str) -> None:
    result = _run(cdc_session, tmp_path, approach_id, scenario, lambda cls: SlowRestart(cls()), deadline_s=60)
    verdict = result.verdict
    assert verdict.passed, (verdict.summary(), verdict.examples)
    assert result.outcome is not None and result.outcome.restarts > 0
    # measured from the later of the last fault and the last write: the silence began at the last
    # restart, so the writes after it overlap part of it; what is left is still seconds, not ms
    assert verdict.measurements["recovery_s"] is not None
    assert verdict.measurements["recovery_s"] >= 2.0


class OneAtATime:
    """A correct approach read slowly: one event per poll, ``PAUSE_S`` before each."""

    PAUSE_S = 0.05

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.family, self.capabilities = inner.name, inner.family, inner.capabilities

    def start(self, ctx: Any, resume: bool = False) -> None:
        self.inner.start(ctx, resume)
        self.capabilities = self.inner.capabilities

    def poll(self, max_events: int, timeout_s: float) -> list[ChangeEvent]:
        time.sleep(self.PAUSE_S)
        return self.inner.poll(1, timeout_s)

    def __getattr__(self, name: str) -> Any:  # ack, stop, crash, caught_up
        return getattr(self.inner, name)


def test_debezium_dropped_change_is_lost_through_the_marker(cdc_session: Any, tmp_path: Path) -> None:
    made: list = []
    result = _run(cdc_session, tmp_path, "pg-debezium", "crud",
                  lambda cls: made.append(mutant_class(cls, "drop", seed=1)()) or made[-1], deadline_s=120)
    assert result.verdict.anomalies == {"lost": 1}, result.verdict.summary()
    assert made[-1].inner.marker_answers > 0, "the drain should end through a caught-up marker"


def test_debezium_slow_reader_is_not_lossy(cdc_session: Any, tmp_path: Path) -> None:
    made: list = []
    result = _run(cdc_session, tmp_path, "pg-debezium", "crud",
                  lambda cls: made.append(OneAtATime(cls())) or made[-1], deadline_s=120)
    assert result.verdict.passed, (result.verdict.summary(), result.verdict.examples)


def test_dropped_change_is_lost_before_the_deadline(cdc_session: Any, tmp_path: Path) -> None:
    began = time.monotonic()
    result = _run(cdc_session, tmp_path, "delta-cdf", "crud",
                  lambda cls: mutant_class(cls, "drop", seed=1)(), deadline_s=60)
    assert result.verdict.anomalies == {"lost": 1}, result.verdict.summary()
    assert result.verdict.measurements["recovery_s"] is None
    assert time.monotonic() - began < 30, "caught_up() should end a short drain well before the deadline"
