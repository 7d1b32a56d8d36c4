"""An approach whose upstream stopped for good (``CaptureEnded``) ends the capture at once: no
restart, the reason kept, and what it did not deliver named ``lost``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import CaptureEnded
from tests.test_slow_reader import _run


class UpstreamFailsAfterFirstPoll:
    """A real approach (delta-cdf) whose feed reports a permanent failure after its first
    non-empty poll, the way a Debezium connector's task goes FAILED."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.family, self.capabilities = inner.name, inner.family, inner.capabilities
        self.delivered = False

    def poll(self, max_events: int, timeout_s: float) -> Any:
        if self.delivered:
            raise CaptureEnded("the feed's task FAILED (on purpose)")
        got = self.inner.poll(1, timeout_s)
        self.delivered = bool(got)
        return got

    def __getattr__(self, name: str) -> Any:  # start, ack, stop, crash
        return getattr(self.inner, name)


def test_capture_ended_is_lost_without_restarts(cdc_session: Any, tmp_path: Path) -> None:
    result = _run(cdc_session, tmp_path, "delta-cdf", "crud", lambda cls: UpstreamFailsAfterFirstPoll(cls()),
                  deadline_s=60)
    verdict = result.verdict
    assert not verdict.passed and "lost" in verdict.anomalies, verdict.summary()
    assert result.outcome.restarts == 0
    assert any("capture ended: the feed's task FAILED" in e for e in result.outcome.reader_errors)
