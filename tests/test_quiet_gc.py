"""The capture window's hold on the cyclic garbage collector: taken, nested, and always given back."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from harness.quiet_gc import CAPTURE_FULL_THRESHOLD, QUIET_GC, QuietCollector
from tests.test_slow_reader import _run


def test_hold_freezes_and_defers_full_collections_then_restores() -> None:
    before, frozen_before = gc.get_threshold(), gc.get_freeze_count()
    quiet = QuietCollector()
    quiet.hold()
    try:
        assert quiet.held
        assert gc.get_threshold()[2] >= CAPTURE_FULL_THRESHOLD
        assert gc.get_freeze_count() > frozen_before  # what existed is no longer scanned
        quiet.hold()  # a second capture at the same time
        quiet.release()
        assert quiet.held and gc.get_threshold()[2] >= CAPTURE_FULL_THRESHOLD
    finally:
        quiet.release()
    assert not quiet.held
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    quiet.release()  # unmatched: ignored
    assert gc.get_threshold() == before


def test_switched_off_it_leaves_the_collector_alone() -> None:
    before = gc.get_threshold()
    quiet = QuietCollector(enabled=False)
    quiet.hold()
    assert not quiet.held and gc.get_threshold() == before and gc.get_freeze_count() == 0
    quiet.release()


class StopFails:
    """A real approach whose graceful stop raises: the run ends through the failure path."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.family, self.capabilities = inner.name, inner.family, inner.capabilities

    def stop(self) -> None:
        self.inner.stop()
        raise RuntimeError("stop failed on purpose")

    def __getattr__(self, name: str) -> Any:  # start, poll, ack, crash
        return getattr(self.inner, name)


def test_capture_gives_the_collector_back(cdc_session: Any, tmp_path: Path) -> None:
    before = gc.get_threshold()
    result = _run(cdc_session, tmp_path, "delta-cdf", "crud", lambda cls: cls(), deadline_s=30)
    assert result.verdict.passed, result.verdict.summary()
    assert not QUIET_GC.held and gc.get_threshold() == before


def test_a_failed_capture_gives_the_collector_back(cdc_session: Any, tmp_path: Path) -> None:
    before = gc.get_threshold()
    with pytest.raises(Exception, match="stop failed on purpose"):
        _run(cdc_session, tmp_path, "delta-cdf", "crud", lambda cls: StopFails(cls()), deadline_s=30)
    assert not QUIET_GC.held and gc.get_threshold() == before
