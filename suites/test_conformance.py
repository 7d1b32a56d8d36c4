"""The conformance suite: every approach × scenario (× engine settings), checked and measured.

Select with ``-k`` on the ids (``pytest suites/ -k iceberg``, ``-k "delta and schema"``) or with
``--cdc-approaches`` / ``--cdc-scenarios``.
"""

from __future__ import annotations

import time

import pytest
from findings import known_finding

from fixtures.recorder import record
from harness.approach import claims
from harness.context import RunContext
from harness.errors import EngineUnavailable, Unsupported
from harness.ledger import Ledger
from harness.runner import evaluate, requirement_gap, run
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
    lines = [f"{case_id}: {verdict.summary()}"]
    for kind, examples in verdict.examples.items():
        lines.append(f"  {kind}: {_short(examples[0])}")
    return "\n".join(lines)


@pytest.mark.cdc
def test_conformance(cdc_case, cdc_engine, cdc_session, tmp_path):
    """Write the scenario, capture it with the approach, and check every committed change."""
    opts = cdc_session.options
    approach_cls = cdc_case.approach
    source_cls = cdc_case.family.source_class()
    factory = cdc_session.scenarios.get(cdc_case.scenario)
    scenario = factory(opts.seed, opts.scale, getattr(source_cls, "supported_types", frozenset()))
    started = time.perf_counter()

    caps = claims(approach_cls, dict(cdc_case.settings))
    gap = requirement_gap(scenario, approach_cls, source_cls, caps)
    if gap:
        record(cdc_session, cdc_case, cdc_engine, Verdict.unsupported(gap), 0.0)
        pytest.skip(f"unsupported: {gap}")

    ctx = RunContext(run_id=cdc_session.run_id, worker=cdc_session.worker, workdir=tmp_path,
                     engine=cdc_engine, seed=opts.seed, scale=opts.scale, settings=dict(cdc_case.settings),
                     timeout_s=opts.timeout_s)
    try:
        source = source_cls(ctx, Ledger())
    except EngineUnavailable as exc:
        pytest.skip(f"{cdc_case.family.name} source unavailable: {exc}")
    try:
        with step(f"apply {cdc_case.scenario} and capture with {approach_cls.name}"):
            outcome = run(scenario, source, approach_cls, approach_cls, ctx, progress=cdc_session.progress)
    except Unsupported as exc:
        record(cdc_session, cdc_case, cdc_engine, Verdict.unsupported(str(exc)), time.perf_counter() - started)
        pytest.skip(f"unsupported: {exc}")
    finally:
        source.close()
    with step("check captured events against the ledger"):
        verdict = evaluate(outcome, caps)
    record(cdc_session, cdc_case, cdc_engine, verdict, time.perf_counter() - started)
    finding = known_finding(approach_cls.name, cdc_case.scenario, cdc_case.settings)
    if finding is not None:
        kinds, why = finding
        assert not verdict.passed, f"known finding no longer reproduces ({why}); update suites/findings.py"
        assert set(verdict.anomalies) == kinds, _failure_message(cdc_case.id, verdict)
        pytest.xfail(f"known finding: {why}: {verdict.summary()}")
    assert verdict.passed, _failure_message(cdc_case.id, verdict)
