"""The capture loop: a reader thread that polls an approach, keeps every event, and acks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tenacity import Retrying, stop_after_delay, wait_exponential

from harness.approach import Approach
from harness.context import RunContext
from harness.errors import HarnessError
from harness.events import ChangeEvent, Position


class ReaderFailed(HarnessError):
    """The approach kept failing to (re)start within the run's timeout."""


class CaptureLoop:
    """Runs ``approach.poll`` in a background thread, appending events and acking each batch.

    Contract: events are kept in receipt order across crashes and restarts; ``acked`` is the
    last position passed to ``ack``. ``pause()``/``resume()`` hand the approach to the caller
    (for fault choreography); a poll that raises (connection cut, server restart) makes the
    loop crash the approach and start a fresh one from ``acked`` — a real reader's reconnect.
    """

    def __init__(self, factory: Callable[[], Approach], ctx: RunContext, batch: int = 50_000,
                 poll_timeout_s: float = 0.05) -> None:
        self.factory = factory
        self.ctx = ctx
        self.batch = batch
        self.poll_timeout_s = poll_timeout_s
        self.events: list[ChangeEvent] = []
        self._positions: set = set()
        self.acked: Position | None = None
        self.restarts = 0
        self.reader_errors: list[str] = []
        self.approach: Approach | None = None
        self.last_event_at = time.monotonic()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Create and start the approach (capturing from now) and the reader thread."""
        self.approach = self.factory()
        self.approach.start(self.ctx, None)
        self.resume()

    def resume(self) -> None:
        """(Re)start the reader thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cdc-reader", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        """Stop the reader thread (the approach stays started); re-raise a reader failure."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ctx.timeout_s)
            if self._thread.is_alive():
                raise ReaderFailed(f"reader thread did not stop within {self.ctx.timeout_s}s (poll hung?)")
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def stop(self) -> None:
        """Pause and stop the approach gracefully."""
        try:
            self.pause()
        finally:
            if self.approach is not None:
                self.approach.stop()
                self.approach = None

    def close_quietly(self) -> None:
        """Teardown on failure: stop everything, swallowing errors."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.approach is not None:
            try:
                self.approach.stop()
            except Exception:  # noqa: BLE001 - best-effort teardown
                pass
            self.approach = None

    # -- reading ------------------------------------------------------------------------------
    def poll_once(self, max_events: int | None = None, ack: bool = True) -> list[ChangeEvent]:
        """One poll on the caller's thread (loop paused); keeps the events, acks if asked."""
        assert self.approach is not None
        got = self.approach.poll(max_events or self.batch, self.poll_timeout_s)
        self._keep(got, ack)
        return got

    def crash_and_resume(self) -> None:
        """Crash the approach abruptly and start a fresh one after the last acked position."""
        if self.approach is not None:
            try:
                self.approach.crash()
            except Exception as exc:  # noqa: BLE001 - a crash may fail on a dead connection
                self.reader_errors.append(f"crash: {exc}")
        self.approach = None
        for attempt in Retrying(stop=stop_after_delay(self.ctx.timeout_s), reraise=True,
                                wait=wait_exponential(multiplier=0.05, max=2)):
            with attempt:
                fresh = self.factory()
                fresh.start(self.ctx, self.acked)
                self.approach = fresh
        self.restarts += 1

    def drain(self, expected: int, quiet_s: float, settle_s: float = 0.2) -> float:
        """Wait until ``expected`` distinct positions arrived (repeats after a restart do not
        count) and none came for ``settle_s``, or none came
        for ``quiet_s``, or the run timeout passed; return when the last event arrived (ns)."""
        began = time.monotonic()
        deadline = began + self.ctx.timeout_s
        while time.monotonic() < deadline:
            if self._error is not None:
                self.pause()
            idle = time.monotonic() - max(self.last_event_at, began)
            if (len(self._positions) >= expected and idle >= settle_s) or idle >= quiet_s:
                break
            time.sleep(0.02)
        return self.events[-1].captured_at if self.events else 0

    def _keep(self, got: list[ChangeEvent], ack: bool) -> None:
        if not got:
            return
        self.events.extend(got)
        self._positions.update(e.position for e in got)
        self.last_event_at = time.monotonic()
        if ack:
            assert self.approach is not None
            self.approach.ack(got[-1].position)
            self.acked = got[-1].position

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - a reader failure is data, then a restart
                self.reader_errors.append(f"{type(exc).__name__}: {exc}")
                try:
                    self.crash_and_resume()
                except BaseException as fatal:  # noqa: BLE001 - surfaced by pause()/drain()
                    self._error = fatal
                    return
