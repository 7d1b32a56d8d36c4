"""A slot reader whose walsender stops answering on an open connection notices, reconnects and
loses nothing (``SILENT_S``, ``DEAD_MARGIN_S`` in ``harness.approaches.pg_pgoutput``)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from harness.approaches import pg_pgoutput
from tests.test_slow_reader import _run

FROZEN_S = 4.0


class FreezesItsWalsender:
    """pg-pgoutput, whose walsender is stopped (SIGSTOP) for ``FROZEN_S`` after the first events
    arrive: the TCP connection stays open and quiet, as behind a forwarder after a partition."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.family, self.capabilities = inner.name, inner.family, inner.capabilities

    def poll(self, max_events: int, timeout_s: float) -> Any:
        got = self.inner.poll(max_events, timeout_s)
        if got and not FROZEN:
            pid = self.inner._conn.info.backend_pid
            FROZEN.append(pid)
            os.kill(pid, signal.SIGSTOP)
            threading.Timer(FROZEN_S, os.kill, (pid, signal.SIGCONT)).start()
        return got

    def __getattr__(self, name: str) -> Any:  # start, ack, stop, crash, caught_up
        return getattr(self.inner, name)


FROZEN: list[int] = []


@pytest.mark.parametrize("liveness", ["on", "off"])
def test_silent_walsender_is_left_and_nothing_is_lost(cdc_session: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, liveness: str) -> None:
    monkeypatch.setattr(pg_pgoutput, "SILENT_S", 0.3)
    # the local server's wal_sender_timeout (60 s) would make the stream dead after 35 s: shortened
    margin = 1.0 - 30.0 if liveness == "on" else 1e9
    monkeypatch.setattr(pg_pgoutput, "DEAD_MARGIN_S", margin)
    FROZEN.clear()
    result = _run(cdc_session, tmp_path, "pg-pgoutput", "crud", lambda cls: FreezesItsWalsender(cls()),
                  deadline_s=60)
    assert FROZEN, "the walsender was never frozen: the test did not test anything"
    assert result.verdict.passed, (result.verdict.summary(), result.verdict.examples)
    errors = " ".join(result.outcome.reader_errors)
    if liveness == "on":  # left the silent stream well before the walsender woke up
        assert "answered no keepalive request" in errors
        assert result.outcome.restarts >= 1
    else:  # waited it out: the same stream went on once the walsender woke up
        assert "answered no keepalive request" not in errors
