"""Backlog-drain benchmarks of the table-format readers (delta-cdf, iceberg-snapshot-diff, and
under ``--benchmark-only`` their Spark counterparts delta-cdf-spark and iceberg-changelog-spark).

A backlog of changes is committed before the reader polls; the timed part drains it. Each
drain is then checked, so a fast but wrong drain cannot report a figure. Sizes: 10k changes
in a normal run; 100k and 1M under ``--benchmark-only`` (to see that cost grows linearly).
Each drain is one ``run_case`` with ``backlog=True``: the same run path as the conformance suite.
The Iceberg pair is compared on a table Spark wrote (``writer=spark``): Spark's changelog pairs an
update only within one snapshot, and pyiceberg writes an update as two.
"""

from __future__ import annotations

import pytest

from fixtures.session import case_engines
from harness.runner import Case, run_case
from harness.steps import Delete, InsertMany, Scenario, Txn, Update
from scenarios.tables import ITEMS, RowMaker

#: (approach, settings) drained in every run; the Spark ones only under --benchmark-only
APPROACHES = (("delta-cdf", ()), ("iceberg-snapshot-diff", ()))
SPARK_APPROACHES = (("delta-cdf-spark", ()), ("iceberg-snapshot-diff", (("writer", "spark"),)),
                    ("iceberg-changelog-spark", (("writer", "spark"),)))
BATCH = 50_000


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    bench = metafunc.config.getoption("benchmark_only")
    if "backlog" in metafunc.fixturenames:
        sizes = [100_000, 1_000_000] if bench else [10_000]
        metafunc.parametrize("backlog", sizes, ids=[f"{n // 1000}k" for n in sizes])
    if "approach_id" in metafunc.fixturenames:
        cells = APPROACHES + (SPARK_APPROACHES if bench else ())
        metafunc.parametrize(("approach_id", "settings"), cells,
                             ids=[a + "".join(f"-{k}-{v}" for k, v in s) for a, s in cells])


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
def test_drain_backlog(benchmark, approach_id: str, settings: tuple, backlog: int, cdc_session, tmp_path) -> None:
    cls = cdc_session.approaches.get(approach_id)
    family = cdc_session.families.get(cls.family)
    roles = cdc_session.families.roles_for(cls, dict(settings))
    case = Case(cls, f"backlog-{backlog}", family, settings, roles=roles)
    with case_engines(cdc_session, roles) as engines:
        result = run_case(case, engines, lambda *_: backlog_scenario(backlog),
                          run_id=cdc_session.run_id, worker=cdc_session.worker, workdir=tmp_path,
                          timeout_s=cdc_session.options.timeout_s * 5, case_no=cdc_session.next_case_number(),
                          backlog=True, timer=lambda fn: benchmark.pedantic(fn, rounds=1, iterations=1),
                          progress=cdc_session.progress)
    verdict = result.verdict
    m = verdict.measurements
    benchmark.extra_info.update(
        approach=approach_id, settings=dict(settings), changes=m.get("committed"), events=m.get("events"),
        seconds=m.get("capture_s"),
        events_per_s=m.get("events_per_s"), verdict=verdict.status, backlog_age_ms=m.get("lag_ms"),
        check_s=m.get("check_s"), check_path=m.get("check_path"),
    )
    assert verdict.passed, verdict.summary()
