"""Backlog-drain benchmarks of the embedded approaches (delta-cdf, iceberg-snapshot-diff).

A backlog of changes is committed before the reader polls; the timed part drains it. Each
drain is then checked, so a fast but wrong drain cannot report a figure. Sizes: 10k changes
in a normal run; 100k and 1M under ``--benchmark-only`` (to see that cost grows linearly).
"""

from __future__ import annotations

import time

import pytest

from containers.engine import EmbeddedEngine
from harness.checker import check, encode_history
from harness.context import RunContext
from harness.families import FAMILIES
from harness.ledger import Ledger
from harness.steps import Delete, InsertMany, Txn, Update
from scenarios.tables import ITEMS, RowMaker

APPROACHES = ("delta-cdf", "iceberg-snapshot-diff")
BATCH = 50_000


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backlog" in metafunc.fixturenames:
        sizes = [100_000, 1_000_000] if metafunc.config.getoption("benchmark_only") else [10_000]
        metafunc.parametrize("backlog", sizes, ids=[f"{n // 1000}k" for n in sizes])


def write_backlog(source, n: int) -> None:
    """About ``n`` changes: 50k-row appends, each followed by one commit updating 10% and
    deleting 2% of that batch (recent rows are the hot ones)."""
    maker = RowMaker(7)
    key = 0
    written = 0
    while written < n:
        size = min(BATCH, int((n - written) / 1.12) + 1)
        rows = tuple(maker.item(k) for k in range(key + 1, key + size + 1))
        source.apply(InsertMany("items", rows))
        changes = [Update("items", (k,), {"qty": -k}) for k in range(key + 1, key + size + 1, 10)]
        changes += [Delete("items", (k,)) for k in range(key + 2, key + size + 1, 50)]
        source.apply(Txn(tuple(changes)))
        written += size + len(changes)
        key += size


@pytest.mark.benchmark(group="drain")
@pytest.mark.parametrize("approach_id", APPROACHES)
def test_drain_backlog(benchmark, approach_id: str, backlog: int, cdc_session, tmp_path) -> None:
    cls = cdc_session.approaches.get(approach_id)
    family = FAMILIES[cls.family]
    engine = EmbeddedEngine(family.name)
    engine.start()
    try:
        ctx = RunContext(run_id=cdc_session.run_id, worker=cdc_session.worker, workdir=tmp_path,
                         engine=engine, timeout_s=cdc_session.options.timeout_s)
        source = family.source_class()(ctx, Ledger())
        source.setup([ITEMS])
        ctx.tables = dict(source.specs)
        approach = cls()
        approach.start(ctx)
        write_backlog(source, backlog)
        expected = sum(1 for c in source.ledger.changes if not c.rolled_back)
        events: list = []

        def drain() -> None:
            deadline = time.monotonic() + ctx.timeout_s * 5
            while len(events) < expected and time.monotonic() < deadline:
                events.extend(approach.poll(1_000_000, 0.05))

        t0 = time.perf_counter()
        benchmark.pedantic(drain, rounds=1, iterations=1)
        seconds = time.perf_counter() - t0
        approach.stop()
        verdict = check(encode_history(source.ledger, events), cls.capabilities, source.final_state())
        benchmark.extra_info.update(
            approach=approach_id, changes=expected, events=len(events), seconds=round(seconds, 3),
            events_per_s=round(len(events) / seconds, 1), verdict=verdict.status,
            backlog_age_ms=verdict.measurements["lag_ms"],
        )
        assert verdict.passed, verdict.summary()
    finally:
        engine.stop()
