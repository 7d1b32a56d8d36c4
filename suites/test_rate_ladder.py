"""Latency vs offered load for every approach: one open-loop ladder of rates each, one benchmark.

``pytest suites/ --benchmark-only -k rate`` runs, for every registered approach, its ladder of
offered rates (``LADDERS``; an approach not listed gets its family's default ladder): each step
offers load open loop with ``harness.loadgen`` (intended start times, several writer processes,
PostgreSQL in pipeline mode with prepared statements), captures it through the conformance
suite's capture loop, checks that every change arrived exactly once (a wrong capture fails the
step and reports no figure), and records in ``extra_info``: lag p50/p95/p99/max (ms, from the
commit's issue and from its intended start), offered and achieved changes/s, ``bounded`` and
``ladder: true`` — what ``reports.html`` and ``reports.pushgateway`` chart. An approach's
**sustainable throughput** is the highest achieved rate of its bounded steps (definition in
``harness.ladder``); once a step is unbounded, the approach's higher steps with as many
changes per commit are skipped.

Table formats (and the Spark readers) are written in batches: their rate is changes/s with one
commit every ``TABLE_INTERVAL_S`` (``rows`` per commit = rate × interval). Every other step
commits one change per commit unless its id says ``-xN`` (N changes per commit).

Short ladders: ``--cdc-approaches=pg-pgoutput,pg-wal2json`` limits the approaches;
``CDC_LADDER_RATES=1000,5000`` keeps only those offered rates; ``CDC_LADDER_SECONDS`` (default 3)
sets each step's length; ``CDC_LADDER_SYNC_COMMIT`` sets ``synchronous_commit`` for PostgreSQL
writers (default: the server's, ``on``); ``CDC_LADDER_WRITER_NICE=N`` runs the PostgreSQL and
MariaDB writer processes N steps nicer (default ``harness.ladder.WRITER_NICE`` = 10: the writers stand in for
clients on other machines, and at normal priority on 2 cores they took CPU from the server and the
reader being measured: pg-pgoutput's p99 at 5k/s was 27 ms with 0 and 1.1–1.5 ms with 10, in one
sitting on a quiet machine, the writers achieving the offered rate both ways). The default ladder
for the whole list takes about 20 minutes on 2 cores (measured at load 10–13: 7 min for the
PostgreSQL, MariaDB and table-format ladders, 9 min for the JVM and Spark ones without their 50k
and 500 steps); a step that falls behind drains for at most ``--cdc-timeout`` and skips its
approach's higher steps. Without ``--benchmark-only`` one step runs (pg-pgoutput at 5k/s): the path
and its check, in seconds.
"""

from __future__ import annotations

import os

import pytest

from fixtures.session import STASH, case_engines
from harness.ladder import WRITER_NICE, CaptureWrong, Step, run_step

SECONDS = float(os.environ.get("CDC_LADDER_SECONDS", "3"))
#: commit interval of batched (table-format) writers, seconds
TABLE_INTERVAL_S = 0.5
STREAM = (1_000, 5_000, 10_000, 20_000, 30_000)
PG_STEPS = tuple(Step(r) for r in STREAM) + (Step(50_000, 10), Step(100_000, 100))
MYSQL_STEPS = tuple(Step(r) for r in (1_000, 2_000, 5_000, 10_000))
JVM_STEPS = tuple(Step(r) for r in (1_000, 5_000, 10_000))
PIPE_STEPS = tuple(Step(r) for r in (500, 2_000))


def _table(rates: tuple[int, ...]) -> tuple[Step, ...]:
    return tuple(Step(r, max(int(r * TABLE_INTERVAL_S), 1)) for r in rates)


TABLE_STEPS = _table((1_000, 10_000, 50_000, 100_000, 200_000))
SPARK_STEPS = _table((1_000, 10_000, 50_000))
#: every approach's ladder: (approach id, steps, writer processes). Adding an approach = one line.
LADDERS: tuple[tuple[str, tuple[Step, ...], int], ...] = (
    ("pg-pgoutput", PG_STEPS, 2),
    ("pg-wal2json", PG_STEPS, 2),
    ("mysql-binlog", MYSQL_STEPS, 4),
    ("pg-debezium", JVM_STEPS, 2),
    ("mariadb-debezium", JVM_STEPS, 4),
    ("delta-cdf", TABLE_STEPS, 1),
    ("iceberg-snapshot-diff", TABLE_STEPS, 1),
    ("delta-cdf-spark", SPARK_STEPS, 1),
    ("delta-cdf-spark-stream", SPARK_STEPS, 1),
    ("iceberg-changelog-spark", SPARK_STEPS, 1),
    ("pg-kafka-iceberg", PIPE_STEPS, 2),
    ("pg-kafka-iceberg-spark", PIPE_STEPS, 2),
)
#: the ladder of an approach not in ``LADDERS`` (a plugin's), by family
DEFAULT_BY_FAMILY = {"postgres": (JVM_STEPS, 2), "mysql": (MYSQL_STEPS[:2], 4)}
#: the one step of a plain run (``make test``): the path and its check, not the figures
CHECK = (("pg-pgoutput", Step(5_000)),)
#: (approach, changes per commit) → the offered rate of its first unbounded step (higher ones are skipped)
_BROKE: dict[tuple[str, int], int] = {}


def _ladders(config: pytest.Config) -> list[tuple[str, Step, int]]:
    session = config.stash[STASH]
    wanted = {cls.name for cls in session.approaches.select(session.options.approaches)}
    listed = {name: (steps, writers) for name, steps, writers in LADDERS}
    keep = {int(r) for r in os.environ.get("CDC_LADDER_RATES", "").split(",") if r.strip()}
    out = []
    for cls in session.approaches.select(None):
        if cls.name not in wanted:
            continue
        steps, writers = listed.get(cls.name) or DEFAULT_BY_FAMILY.get(cls.family, (_table((1_000, 10_000)), 1))
        out += [(cls.name, Step(s.rate, s.rows, SECONDS), writers) for s in steps if not keep or s.rate in keep]
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every approach's ladder under ``--benchmark-only``; the ``CHECK`` step otherwise."""
    if "ladder_step" not in metafunc.fixturenames:
        return
    if metafunc.config.getoption("benchmark_only"):
        cells = _ladders(metafunc.config)
    else:
        cells = [(name, Step(s.rate, s.rows, SECONDS), 2) for name, s in CHECK]
    metafunc.parametrize("ladder_step", cells, ids=[f"{name}-{step.id}" for name, step, _ in cells])


@pytest.mark.benchmark(group="rate-ladder")
def test_rate_ladder(benchmark, ladder_step: tuple[str, Step, int], cdc_session, tmp_path) -> None:
    """One ladder step of one approach: lag vs offered rate through the capture loop, checked."""
    name, step, writers = ladder_step
    broke = _BROKE.get((name, step.rows))
    if broke is not None and step.rate > broke:
        pytest.skip(f"{name}: lag was unbounded at {broke}/s offered ({step.rows} per commit); "
                    "higher rates are not sustainable")
    cls = cdc_session.approaches.get(name)
    family = cdc_session.families.get(cls.family)
    variants = cdc_session.families.variants_for(cls, "crud")
    settings = variants[0] if variants else {}
    roles = cdc_session.families.roles_for(cls, settings)
    figures: dict = {}
    with case_engines(cdc_session, roles) as engines:
        def once() -> None:
            figures.update(run_step(
                cls, family, settings, engines, step, writers=writers, run_id=cdc_session.run_id,
                worker=cdc_session.worker, workdir=tmp_path, case_no=cdc_session.next_case_number(),
                timeout_s=cdc_session.options.timeout_s, synchronous_commit=os.environ.get("CDC_LADDER_SYNC_COMMIT"),
                writer_nice=int(os.environ.get("CDC_LADDER_WRITER_NICE", str(WRITER_NICE)))))

        try:
            benchmark.pedantic(once, rounds=1, iterations=1)
        except CaptureWrong as exc:
            pytest.fail(f"{name} at {step.id}/s: {exc}")
    figures.pop("lag_cdf", None)
    benchmark.extra_info.update(ladder=True, approach=name, settings=dict(settings), step=step.id,
                                seconds=step.seconds, load_1m=round(os.getloadavg()[0], 2), **figures)
    if not figures["bounded"]:
        _BROKE[(name, step.rows)] = step.rate
