"""The capture loop's acks: after every poll by default; coalesced for an approach with
``ack_every_s`` (at most that often while events keep coming, at once when a poll comes back
empty, before the reader thread stops, and never for what a crash dropped)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from harness.approach import BaseApproach
from harness.capture import CaptureLoop
from harness.context import RunContext
from harness.events import ChangeEvent


class Feed(BaseApproach):
    """The loop's counterpart for these tests: one event a poll from a list (then empty polls),
    or endlessly; records every ack. Not a CDC method: the loop's bookkeeping is under test."""

    name = "feed"

    def __init__(self, events: int | None, ack_every_s: float) -> None:
        super().__init__()
        self.ack_every_s = ack_every_s  # type: ignore[misc]
        self.keys = iter(range(events)) if events is not None else itertools.count()
        self.acks: list[tuple] = []
        #: the key at which one poll raises (a connection cut), once
        self.fail_at: int | None = None

    def poll(self, max_events: int, timeout_s: float) -> Any:
        key = next(self.keys, None)
        if key is not None and key == self.fail_at:
            self.fail_at = None
            raise ConnectionError("cut on purpose")
        if key is None:
            time.sleep(timeout_s)
            return []
        return [ChangeEvent("t", "insert", (key,), None, {"id": key}, (key,))]

    def ack(self, position: Any) -> None:
        self.acks.append(tuple(position))


def _loop(tmp_path: Path, feed: Feed) -> CaptureLoop:
    ctx = RunContext(run_id="acks", worker="w", workdir=tmp_path, engines={}, source_role="none", settings={},
                     timeout_s=10)
    loop = CaptureLoop(lambda: feed, ctx, poll_timeout_s=0.01)
    loop.start()
    return loop


def _wait(loop: CaptureLoop, events: int) -> None:
    deadline = time.monotonic() + 10
    while len(loop.events) < events and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(loop.events) >= events


def test_acks_after_every_poll_by_default(tmp_path: Path) -> None:
    feed = Feed(5, ack_every_s=0.0)
    loop = _loop(tmp_path, feed)
    _wait(loop, 5)
    loop.stop()
    assert feed.acks == [(0,), (1,), (2,), (3,), (4,)]


def test_coalesced_acks_flush_on_an_empty_poll(tmp_path: Path) -> None:
    feed = Feed(5, ack_every_s=60.0)
    loop = _loop(tmp_path, feed)
    _wait(loop, 5)
    deadline = time.monotonic() + 5
    while feed.acks[-1:] != [(4,)] and time.monotonic() < deadline:
        time.sleep(0.005)
    loop.stop()
    assert feed.acks == [(0,), (4,)]  # the first poll's at once, the rest when the feed ran dry
    assert loop.acked == (4,)


def test_coalesced_acks_flush_before_the_thread_stops(tmp_path: Path) -> None:
    feed = Feed(None, ack_every_s=60.0)  # never an empty poll
    loop = _loop(tmp_path, feed)
    _wait(loop, 50)
    loop.pause()
    last = loop.events[len(loop.events) - 1].position
    assert feed.acks[0] == (0,) and feed.acks[-1] == tuple(last) and len(feed.acks) == 2
    assert loop.acked == tuple(last)
    loop.stop()


def test_a_crash_drops_what_was_polled_but_not_acked(tmp_path: Path) -> None:
    """A poll that raises makes the loop crash and restart the reader: positions polled since the
    last ack were never acknowledged (they may come again), and the restart records that ack."""
    feed = Feed(None, ack_every_s=60.0)
    feed.fail_at = 30
    loop = _loop(tmp_path, feed)
    _wait(loop, 40)
    loop.stop()
    assert loop.restarts == 1 and loop.record.restarts[0].acked == (0,)
    assert feed.acks[0] == (0,) and (29,) not in feed.acks  # 1..29: polled, never acked, dropped
    assert feed.acks[-1] == tuple(loop.events[len(loop.events) - 1].position)  # flushed at stop
