"""Backlog-drain benchmarks of the embedded approaches (delta-cdf, iceberg-snapshot-diff).

A backlog of changes is committed before the reader polls; the timed part drains it. Each
drain is then checked, so a fast but wrong drain cannot report a figure. Sizes: 10k changes
in a normal run; 100k and 1M under ``--benchmark-only`` (to see that cost grows linearly).
Each drain is one ``run_case`` with ``backlog=True``: the same run path as the conformance suite.
"""

from __future__ import annotations

import pytest

from harness.runner import Case, run_case
from harness.steps import Delete, InsertMany, Scenario, Txn, Update
from scenarios.tables import ITEMS, RowMaker

APPROACHES = ("delta-cdf", "iceberg-snapshot-diff")
BATCH = 50_000


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backlog" in metafunc.fixturenames:
        sizes = [100_000, 1_000_000] if metafunc.config.getoption("benchmark_only") else [10_000]
        metafunc.parametrize("backlog", sizes, ids=[f"{n // 1000}k" for n in sizes])


def backlog_scenario(n: int) -> Scenario:
    """About ``n`` changes: 50k-row appends, each followed by one commit updating 10% and
    deleting 2% of that batch (recent rows are the hot ones)."""
    maker = RowMaker(7)
    key = 0
    written = 0
    steps: list = []
    while written < n:
        size = min(BATCH, int((n - written) / 1.12) + 1)
        steps.append(InsertMany("items", tuple(maker.item(k) for k in range(key + 1, key + size + 1))))
        changes = [Update("items", (k,), {"qty": -k}) for k in range(key + 1, key + size + 1, 10)]
        changes += [Delete("items", (k,)) for k in range(key + 2, key + size + 1, 50)]
        steps.append(Txn(tuple(changes)))
        written += size + len(changes)
        key += size
    return Scenario(f"backlog-{n}", (ITEMS,), steps, description=f"a backlog of ~{n} changes")


@pytest.mark.benchmark(group="drain")
@pytest.mark.parametrize("approach_id", APPROACHES)
def test_drain_backlog(benchmark, approach_id: str, backlog: int, cdc_session, tmp_path) -> None:
    cls = cdc_session.approaches.get(approach_id)
    family = cdc_session.families.get(cls.family)
    case = Case(cls, f"backlog-{backlog}", family, roles=cdc_session.families.roles_for(cls))
    role = cdc_session.families.role(family.source_role)
    engine = role.start(cdc_session.options, cdc_session.worker, cdc_session.run_id)
    try:
        result = run_case(case, {family.source_role: engine}, lambda *_: backlog_scenario(backlog),
                          run_id=cdc_session.run_id, worker=cdc_session.worker, workdir=tmp_path,
                          timeout_s=cdc_session.options.timeout_s * 5, case_no=cdc_session.next_case_number(),
                          backlog=True, timer=lambda fn: benchmark.pedantic(fn, rounds=1, iterations=1),
                          progress=cdc_session.progress)
    finally:
        engine.stop()
    verdict = result.verdict
    m = verdict.measurements
    benchmark.extra_info.update(
        approach=approach_id, changes=m.get("committed"), events=m.get("events"), seconds=m.get("capture_s"),
        events_per_s=m.get("events_per_s"), verdict=verdict.status, backlog_age_ms=m.get("lag_ms"),
    )
    assert verdict.passed, verdict.summary()
