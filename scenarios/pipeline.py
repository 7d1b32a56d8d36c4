"""Fault scenarios of a pipeline's sink: a crash before its table commit, and after it (before the
consumer group's offset is committed: the classic duplicate/loss window, pitfall 9).

They run for approaches whose cases include the ``sink`` role. The fault arms the sink's
failpoint after the first writes; the next batch the sink applies (the writes after the fault)
dies there, and the sink's supervisor starts a fresh incarnation that resumes from its own
durable state. Expected: nothing lost, nothing applied twice, when the offsets are kept in the
table commit.
"""

from __future__ import annotations

from harness.steps import Fault, Scenario
from scenarios.kafka import _around_fault


def sink_crash_before_commit(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """The sink dies after reading a batch, before its table commit."""
    return _around_fault("sink-crash-before-commit", Fault("sink-crash", "before-commit", "sink"), seed, scale,
                         "the sink dies with a batch read and nothing of it committed")


def sink_crash_after_commit(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """The sink dies after its table commit, before it commits the consumer group's offset."""
    return _around_fault("sink-crash-after-commit", Fault("sink-crash", "after-commit", "sink"), seed, scale,
                         "the sink dies after its Iceberg commit, before the consumer group's offset commit")


#: id -> (factory, engine roles a case needs to run it)
SCENARIOS = {
    "sink-crash-before-commit": (sink_crash_before_commit, frozenset({"sink"})),
    "sink-crash-after-commit": (sink_crash_after_commit, frozenset({"sink"})),
}
