"""The sink engine's supervisor: restarts a dead incarnation, fires an armed failpoint once."""

from __future__ import annotations

import threading
import time

import pytest

from containers.sink import SinkEngine
from harness.errors import Unsupported
from harness.pipeline.sink import SinkCrashed


class Incarnation:
    """Stands in for a sink incarnation: loops until stopped, dies at a fired failpoint."""

    def __init__(self, n: int, log: list) -> None:
        self.n, self.log = n, log
        self.idle, self.position, self.applied_to, self.read_to = True, 5, 1, 1

    def run(self, stop: threading.Event, fire) -> None:
        self.log.append(("start", self.n))
        while not stop.wait(0.01):
            if fire("after-commit"):
                raise SinkCrashed("after-commit")


def test_an_armed_crash_fires_once_and_a_fresh_incarnation_follows() -> None:
    engine, log = SinkEngine(), []
    engine.restart_delay_s = 0.01
    engine.supervise(lambda n: Incarnation(n, log))
    try:
        time.sleep(0.05)
        assert engine.caught_up(5) and not engine.caught_up(6), "caught up only at the partition's end"
        engine.inject("sink-crash", "after-commit", "names")
        deadline = time.monotonic() + 5
        while len(log) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert log == [("start", 0), ("start", 1)]
        assert engine.crashes == ["SinkCrashed: after-commit"] and engine.incarnations == 2
        time.sleep(0.05)
        assert len(log) == 2, "the failpoint fired once"
    finally:
        engine.stop()
    assert not engine.caught_up(0), "a stopped sink is not caught up"


def test_caught_up_waits_for_an_armed_failpoint() -> None:
    engine = SinkEngine()
    engine.supervise(lambda n: Incarnation(n, []))
    try:
        time.sleep(0.02)
        engine._armed = "before-commit"  # armed, not fired: the run still has its fault to come
        assert not engine.caught_up(0)
    finally:
        engine.stop()


def test_unknown_faults_are_refused() -> None:
    with pytest.raises(Unsupported, match="sink-crash at before-commit or after-commit"):
        SinkEngine().inject("sink-crash", "mid-air", "names")
