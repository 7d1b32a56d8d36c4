"""Recovery mutation tests on the real approaches: the checker holds each one to its acks.

For delta-cdf, iceberg-snapshot-diff, pg-pgoutput and pg-wal2json: repeats with no restart are
``duplicate``; redelivery of acknowledged events after a restart is ``duplicate``; an ack
beyond what was delivered, then a crash, is ``lost``; a crash before the first ack passes
(everything is redelivered, nothing was acknowledged). Deadlines are short: a lost change is
named within seconds (embedded approaches also say when they are caught up).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fixtures.session import case_engines
from harness.runner import Case, run_case
from tests.recovery_mutants import RECOVERY_FAULTS, RecoveryMutant

APPROACHES = ("delta-cdf", "iceberg-snapshot-diff", "pg-pgoutput", "pg-wal2json")
#: fault -> scenario it runs in (a repeat needs no crash; the others need restarts)
SCENARIO = {"repeat": "crud", "rewind": "reader-crash", "ack-ahead": "reader-crash"}


def _run(cdc_session: Any, tmp_path: Path, approach_id: str, scenario: str, factory: Any = None,
         backlog: bool = False) -> Any:
    cls = cdc_session.approaches.get(approach_id)
    family = cdc_session.families.get(cls.family)
    settings = tuple(sorted(family.variants_for(scenario)[0].items()))
    case = Case(cls, scenario, family, settings, cdc_session.families.roles_for(cls))
    with case_engines(cdc_session, case.roles) as engines:
        result = run_case(case, engines, cdc_session.scenarios.get(case.scenario), run_id=cdc_session.run_id,
                          worker=cdc_session.worker, workdir=tmp_path, seed=1, scale="smoke", timeout_s=30,
                          deadline_s=8, case_no=cdc_session.next_case_number(),
                          factory=factory and (lambda: factory(cls)), backlog=backlog)
    assert result.verdict.status != "unsupported", result.verdict.reason
    return result.verdict


@pytest.mark.parametrize("fault", list(RECOVERY_FAULTS))
@pytest.mark.parametrize("approach_id", APPROACHES)
def test_recovery_fault_is_named(cdc_session: Any, tmp_path: Path, approach_id: str, fault: str) -> None:
    store: dict[str, Any] = {}
    verdict = _run(cdc_session, tmp_path, approach_id, SCENARIO[fault],
                   lambda cls: RecoveryMutant(cls(), fault, store))
    assert store.get("applied"), f"{fault} found no place to apply"
    assert set(verdict.anomalies) == RECOVERY_FAULTS[fault], (verdict.summary(), verdict.examples)


@pytest.mark.parametrize("approach_id", APPROACHES)
def test_crash_before_the_first_ack_loses_nothing(cdc_session: Any, tmp_path: Path, approach_id: str) -> None:
    """Backlog mode: the reader reads nothing until the first crash (at ``begin``), so that crash
    comes before any ack; the restarted reader must still deliver what was written before it."""
    verdict = _run(cdc_session, tmp_path, approach_id, "reader-crash", backlog=True)
    assert verdict.passed, (verdict.summary(), verdict.examples)
    assert verdict.measurements["matched"] == verdict.measurements["committed"] > 0
