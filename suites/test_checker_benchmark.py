"""Checker cost: ``check`` (vectorized) and ``encode_history`` (one Python pass) on a large correct history.

``pytest suites/ -k checker --benchmark-only`` runs the 1,000,000-event size; a normal run uses a
50,000-event smoke size so the test suite stays fast. Building the history is not timed.
"""

from __future__ import annotations

import time

import pytest

from harness.checker import EncodedHistory, check, encode_history
from tests.histories import FULL, History, random_history

FULL_SIZE = 1_000_000
SMOKE_SIZE = 50_000


@pytest.fixture(scope="module")
def big_history(request: pytest.FixtureRequest) -> History:
    """A correct history: keys = events / 5, transactions of 1-4 changes, rollbacks, five column types."""
    n = FULL_SIZE if request.config.getoption("benchmark_only", default=False) else SMOKE_SIZE
    return random_history(seed=2024, n_events=n, n_keys=n // 5, caps=FULL, txn_max=4)


@pytest.fixture(scope="module")
def encoded(big_history: History) -> EncodedHistory:
    return encode_history(big_history.ledger, big_history.events)


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
    """Time ``encode_history`` (ledger + events, one Python pass each) on the same history."""
    enc = benchmark.pedantic(encode_history, args=(big_history.ledger, big_history.events), rounds=1,
                             iterations=1, warmup_rounds=0)
    assert enc.events.height == len(big_history.events)
    seconds = benchmark.stats.stats.min if benchmark.stats else _time(
        lambda: encode_history(big_history.ledger, big_history.events))
    _rate(benchmark, enc.events.height, seconds)
    benchmark.extra_info["rows_encoded"] = enc.events.height + enc.ledger.height


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
