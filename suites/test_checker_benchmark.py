"""Checker cost: ``check`` and encoding (columnar: keys as canonical strings, images as hashes of
native values) on a large correct history of Python rows, and end to end on Arrow batches.

``pytest suites/ -k checker --benchmark-only`` runs the 1,000,000-event size; a normal run uses a
50,000-event smoke size so the test suite stays fast. Building the history is not timed.
"""

from __future__ import annotations

import os
import time

import pytest

from harness.checker import EncodedHistory, check, encode_history
from tests.histories import FULL, History, random_history

FULL_SIZE = 1_000_000
SMOKE_SIZE = 50_000
#: ``CDC_BENCH_20M=1`` runs ``test_checker_end_to_end_arrow[20m-general]`` (skipped otherwise)
BENCH_20M_ENV = "CDC_BENCH_20M"


@pytest.fixture(scope="module")
def big_history(request: pytest.FixtureRequest) -> History:
    """A correct history: keys = events / 5, transactions of 1-4 changes, rollbacks, five column types."""
    n = FULL_SIZE if request.config.getoption("benchmark_only", default=False) else SMOKE_SIZE
    return random_history(seed=2024, n_events=n, n_keys=n // 5, caps=FULL, txn_max=4)


@pytest.fixture(scope="module")
def encoded(big_history: History) -> EncodedHistory:
    return _encoded(big_history)


def _encoded(h: History) -> EncodedHistory:
    """The history encoded into its frames (``encode_history`` encodes on demand: forced here)."""
    enc = encode_history(h.ledger, h.events)
    assert enc.ledger.height and enc.events.height
    return enc


def _rate(benchmark, events: int, seconds: float) -> None:
    benchmark.extra_info.update(events=events, seconds=round(seconds, 4),
                                events_per_s=round(events / seconds) if seconds else None)


@pytest.mark.benchmark(group="checker")
def test_checker_1m_events(benchmark, encoded: EncodedHistory) -> None:
    """Time ``check`` on the encoded history (best of up to 3 rounds)."""
    verdict = benchmark.pedantic(check, args=(encoded, FULL), rounds=3, iterations=1, warmup_rounds=0)
    assert verdict.passed, verdict.summary()
    events = encoded.events.height
    seconds = benchmark.stats.stats.min if benchmark.stats else _time(lambda: check(encoded, FULL))
    _rate(benchmark, events, seconds)
    benchmark.extra_info["committed"] = encoded.ledger.height


@pytest.mark.benchmark(group="checker")
def test_checker_encode_history(benchmark, big_history: History) -> None:
    """Time encoding the ledger and events of Python rows into frames, column by column, on the
    same history."""
    enc = benchmark.pedantic(_encoded, args=(big_history,), rounds=1, iterations=1, warmup_rounds=0)
    assert enc.events.height == len(big_history.events)
    seconds = benchmark.stats.stats.min if benchmark.stats else _time(lambda: _encoded(big_history))
    _rate(benchmark, enc.events.height, seconds)
    benchmark.extra_info["rows_encoded"] = enc.events.height + enc.ledger.height


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def arrow_history(n: int, per_batch: int = 100_000, seed: int = 2024):
    """``n`` committed inserts staged as Arrow batches (one ledger transaction per batch, as a
    source's bulk write) and the matching Arrow event batches (as an approach's ``poll``):
    int, text, float, decimal(38,2), timestamptz columns."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from harness.ledger import Ledger

    rng = np.random.default_rng(seed)
    ledger = Ledger()
    batches = []
    for start in range(0, n, per_batch):
        m = min(per_batch, n - start)
        ids = pa.array(np.arange(start, start + m))
        nn = pa.array(rng.integers(0, 1_000_000, m))
        after = pa.StructArray.from_arrays(
            [ids, nn, pc.binary_join_element_wise("s", nn.cast(pa.string()), ""), pc.divide(nn.cast(pa.float64()), 7.0),
             nn.cast(pa.decimal128(38, 2)), pc.add(nn, 1_704_060_000_000_000).cast(pa.timestamp("us", tz="UTC"))],
            names=["id", "n", "s", "f", "amount", "ts"])
        key = pa.StructArray.from_arrays([ids], names=["id"])
        head = [pa.array(["t"] * m), pa.array(["insert"] * m), key, pa.nulls(m), after]
        names = ["table", "op", "key", "before", "after"]
        txid = ledger.begin()
        ledger.stage_batch(txid, pa.RecordBatch.from_arrays(head, names=names))
        t = time.time_ns()
        ledger.commit(txid, t, t + 100)
        ordinal = pa.array(np.arange(m))
        position = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * m + 1, 2), pa.int32()),
                                            _interleave(pa.array([txid] * m, pa.int64()), ordinal))
        batches.append(pa.RecordBatch.from_arrays(
            [*head, position, pa.array([txid] * m, pa.int64()), pa.array([t + 2_000_000] * m, pa.int64())],
            names=[*names, "position", "txid", "captured_at"]))
    return ledger, batches


def _interleave(a, b):
    import numpy as np
    import pyarrow as pa

    out = np.empty(2 * len(a), dtype=np.int64)
    out[0::2] = a.to_numpy()
    out[1::2] = b.to_numpy()
    return pa.array(out)


@pytest.mark.benchmark(group="checker")
@pytest.mark.parametrize(("size", "order"), [
    pytest.param(1_000_000, "commit", id="1m"), pytest.param(10_000_000, "commit", id="10m"),
    pytest.param(1_000_000, "reversed", id="1m-unaligned"),
    pytest.param(1_000_000, "transactions-reversed", id="1m-general"),
    pytest.param(3_000_000, "transactions-reversed", id="3m-general"),
    pytest.param(10_000_000, "transactions-reversed", id="10m-general"),
    pytest.param(20_000_000, "transactions-reversed", id="20m-general", marks=pytest.mark.skipif(
        os.environ.get(BENCH_20M_ENV) != "1",
        reason=f"20M events hold about 3 GB of history and check in about a minute: set {BENCH_20M_ENV}=1 "
               f"to run it (one case per process)"))])
def test_checker_end_to_end_arrow(benchmark, size: int, order: str, request: pytest.FixtureRequest) -> None:
    """Encode + check of an Arrow-staged history (ledger batches + event batches), end to end.

    In order, every event equals the committed change of its rank: the checker's aligned path
    (``harness.aligned``). ``unaligned``: each batch's events in reverse order (still correct:
    one transaction, distinct keys), which the aligned path accepts after sorting each
    transaction's rows by key. ``general``: the transactions in reverse order (each one's events
    contiguous and in order: still correct, distinct keys), which takes the general path
    (hashes, join, confirmation); ``10m-general`` is the bounded-memory case (goal: peak RSS
    ≤ 6 GB; from ``harness.partitioned.PARTITION_FROM`` rows it is checked one key partition at
    a time: path ``general-partitioned``), and ``20m-general`` (``CDC_BENCH_20M=1``) shows that
    the check's memory beyond the history does not grow with it.
    ``encode_history`` encodes on demand: the frames the general path needs are built, and
    timed, inside ``check``.
    extra_info: encode_s, check_s, events_per_s (encode + check), cpu_s (the process's CPU
    seconds over both, every thread's: on a loaded machine wall time stretches), peak_rss_gb (the process's
    peak, history building included), load_1m (the machine's load average: figures from a
    shared machine are only comparable at a like load) and path. A normal run uses 20,000 events.
    """
    import resource

    if not request.config.getoption("benchmark_only", default=False):
        size = 20_000
    ledger, batches = arrow_history(size)
    if order == "reversed":
        batches = [b.take(list(range(b.num_rows - 1, -1, -1))) for b in batches]
    elif order == "transactions-reversed":
        batches = batches[::-1]
    timings: dict[str, float] = {}

    def run():
        timings["cpu0"] = time.process_time()
        t = time.perf_counter()
        h = encode_history(ledger, batches)
        timings["encode_s"] = time.perf_counter() - t
        t = time.perf_counter()
        v = check(h, FULL)
        timings["check_s"] = time.perf_counter() - t
        timings["cpu_s"] = time.process_time() - timings["cpu0"]
        return v

    verdict = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    path = verdict.measurements.get("check_path")
    assert verdict.passed, verdict.summary()
    total = timings["encode_s"] + timings["check_s"]
    benchmark.extra_info.update(events=size, encode_s=round(timings["encode_s"], 3),
                                check_s=round(timings["check_s"], 3), events_per_s=round(size / total),
                                cpu_s=round(timings["cpu_s"], 3),
                                peak_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3),
                                load_1m=round(os.getloadavg()[0], 2), path=path)


SPILL_ENGINES = ("polars", "polars-streaming", "duckdb")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``test_checker_spill_engines``: every engine at 10M and 30M changes under
    ``--benchmark-only``; a normal run checks the probe on DuckDB (the engine chosen) at 20k."""
    if "spill_engine" in metafunc.fixturenames:
        bench = metafunc.config.getoption("benchmark_only", default=False)
        sizes = [10_000_000, 30_000_000] if bench else [20_000]
        metafunc.parametrize("spill_size", sizes, ids=[f"{n // 1_000_000}m" if n >= 1_000_000 else f"{n // 1000}k"
                                                       for n in sizes])
        metafunc.parametrize("spill_engine", SPILL_ENGINES if bench else ("duckdb",))


@pytest.fixture(scope="module")
def spill_files() -> dict[int, tuple]:
    """Histories written for ``test_checker_spill_engines``, one per size, made on first use."""
    return {}


@pytest.mark.benchmark(group="checker-spill")
def test_checker_spill_engines(benchmark, spill_engine: str, spill_size: int, spill_files: dict,
                               tmp_path_factory: pytest.TempPathFactory) -> None:
    """The general path's multiset comparison (a join of ledger and events on content hash,
    written out as pairs; anti-joins for lost and unexpected; per-hash counts for duplicates) on
    each candidate engine for histories beyond memory, each in a fresh process so its peak RSS is
    its own: polars in memory, polars' streaming engine, DuckDB with ``memory_limit=1GB``
    spilling to its temp directory (``suites/spill_probe.py``). Every engine must find exactly the
    lost, unexpected and duplicated changes the history holds.
    extra_info: seconds, peak_rss_gb, events_per_s, load_1m."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    engine, size = spill_engine, spill_size
    probe = str(Path(__file__).with_name("spill_probe.py"))
    if size not in spill_files:  # written in this process: chunk by chunk, bounded memory
        from suites.spill_probe import write

        root = tmp_path_factory.mktemp(f"spill-{size}")
        spill_files[size] = (root, write(root, size))
    root, expected = spill_files[size]
    got: dict = {}

    def run() -> None:
        out = subprocess.run([sys.executable, probe, engine, str(root), "1GB"],
                             check=True, capture_output=True, text=True).stdout
        got.update(json.loads(out))

    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    assert {k: got[k] for k in expected} == expected
    benchmark.extra_info.update(engine=engine, events=size, seconds=got["seconds"], peak_rss_gb=got["peak_rss_gb"],
                                events_per_s=round(size / got["seconds"]) if got["seconds"] else None,
                                load_1m=round(os.getloadavg()[0], 2))
