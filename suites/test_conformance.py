"""The conformance suite: every approach × scenario (× engine settings), checked and measured.

Select with ``-k`` on the ids (``pytest suites/ -k iceberg``, ``-k "delta and schema"``) or with
``--cdc-approaches`` / ``--cdc-scenarios``.
"""

from __future__ import annotations

import time

import pytest
from findings import known_finding, known_race

from fixtures.recorder import record
from harness import outcomes
from harness.errors import EngineUnavailable
from harness.runner import run_case
from harness.verdict import Verdict

try:
    import allure
    step = allure.step
except ImportError:  # pragma: no cover
    import contextlib
    step = contextlib.nullcontext  # type: ignore[assignment]


def _short(value: object, limit: int = 400) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _failure_message(case_id: str, verdict: Verdict) -> str:
    """``[cdc:KIND]`` markers of the anomaly kinds (Allure's categories match them), then the summary."""
    lines = [outcomes.tagged(outcomes.anomaly_tokens(verdict.anomalies), f"{case_id}: {verdict.summary()}")]
    for kind, examples in verdict.examples.items():
        lines.append(f"  {kind}: {_short(examples[0])}")
    return "\n".join(lines)


@pytest.mark.cdc
def test_conformance(cdc_case, cdc_engines, cdc_session, tmp_path):
    """Write the scenario, capture it with the approach, and check every committed change."""
    opts = cdc_session.options
    started = time.perf_counter()
    try:
        with step(f"apply {cdc_case.scenario}, capture with {cdc_case.approach.name}, check"):
            result = run_case(cdc_case, cdc_engines, cdc_session.scenarios.get(cdc_case.scenario),
                              run_id=cdc_session.run_id, worker=cdc_session.worker, workdir=tmp_path,
                              seed=opts.seed, scale=opts.scale_for(cdc_case.roles), timeout_s=opts.timeout_s,
                              case_no=cdc_session.next_case_number(), progress=cdc_session.progress)
    except EngineUnavailable as exc:
        pytest.skip(outcomes.tagged([outcomes.ENGINE_UNAVAILABLE], f"{cdc_case.family.name} engine unavailable: {exc}"))
    verdict = result.verdict
    record(cdc_session, cdc_case, cdc_engines, verdict, time.perf_counter() - started)
    if verdict.status == "unsupported":
        pytest.skip(outcomes.tagged([outcomes.UNSUPPORTED], f"unsupported: {verdict.reason}"))
    finding = known_finding(cdc_case.approach.name, cdc_case.scenario, cdc_case.settings, cdc_session.engine_versions)
    if finding is not None:
        kinds, why = finding
        if verdict.passed:
            pytest.fail(outcomes.tagged([outcomes.FINDING_GONE], f"known finding no longer reproduces ({why}); "
                                        "update suites/findings.py"), pytrace=False)
        if set(verdict.anomalies) != kinds:
            pytest.fail(_failure_message(cdc_case.id, verdict), pytrace=False)
        pytest.xfail(outcomes.tagged([outcomes.KNOWN_FINDING], f"known finding: {why}: {verdict.summary()}"))
    race = known_race(cdc_case.approach.name, cdc_case.scenario, cdc_case.settings)
    if race is not None and not verdict.passed:
        kinds, why = race
        if not set(verdict.anomalies) <= kinds:
            pytest.fail(_failure_message(cdc_case.id, verdict), pytrace=False)
        pytest.xfail(outcomes.tagged([outcomes.KNOWN_FINDING, outcomes.TIMING],
                                     f"known finding (depends on timing): {why}: {verdict.summary()}"))
    if not verdict.passed:  # pytest.fail: the message is the verdict, not an assertion's rewrite
        pytest.fail(_failure_message(cdc_case.id, verdict), pytrace=False)
