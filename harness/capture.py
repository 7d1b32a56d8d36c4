"""The capture loop: a reader thread that polls an approach, keeps every event, acks, restarts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tenacity import Retrying, stop_after_delay, wait_exponential

from harness.approach import Approach, Polled
from harness.columnar import RowLog, batch_len, polled_parts
from harness.context import RunContext
from harness.errors import CaptureEnded, ReaderFailed, Unsupported
from harness.events import Position
from harness.positions import PositionCount
from harness.quiet_gc import QUIET_GC

#: how often (s) the reader asks an approach that offers ``caught_up()`` during a drain
CAUGHT_UP_EVERY_S = 0.5


@dataclass
class Restart:
    """One crash + restart of the reader: how many events were delivered before it, the last
    position acknowledged before it, and when it happened (``time.monotonic()``)."""

    at_event: int
    acked: Position | None
    at: float


@dataclass
class DeliveryRecord:
    """What the checker needs to hold an approach to its acks: per event the reader epoch
    (restarts before it), and per restart the position acknowledged before it."""

    epochs: list[int] = field(default_factory=list)
    restarts: list[Restart] = field(default_factory=list)


class CaptureLoop:
    """Runs ``approach.poll`` in a background thread, appending events and acking each batch
    (or, for an approach with ``ack_every_s``, the last batch polled at most that often while
    events keep coming, at once when a poll comes back empty, and before the thread stops).

    Contract: events are kept in receipt order across crashes and restarts, in ``events`` (a
    ``RowLog``: a poll's ``ChangeEvent`` list, or its Arrow event batch as it is, never turned
    into Python objects; indexing a row of a batch gives a ``ChangeEvent``); ``acked`` is the
    last position passed to ``ack``; ``record`` holds each event's epoch and each restart's
    acked position (the harness never hands that position to the approach: a restarted
    approach finds it in its own durable state). ``pause()``/``resume()`` hand the approach to
    the caller (for fault choreography); a poll that raises (connection cut, server restart)
    makes the loop crash the approach and start a fresh one with ``resume=True`` — a real
    reader's reconnect. A reader that cannot be restarted within ``ctx.timeout_s``, or that raises
    ``CaptureEnded`` (what feeds it stopped for good), ends the capture (``failed`` says why); what
    it did not deliver is then missing.
    """

    def __init__(self, factory: Callable[[], Approach], ctx: RunContext, batch: int = 50_000,
                 poll_timeout_s: float = 0.05) -> None:
        self.factory = factory
        self.ctx = ctx
        self.batch = batch
        self.poll_timeout_s = poll_timeout_s
        self.events = RowLog()
        self.record = DeliveryRecord()
        self._positions = PositionCount()
        self.acked: Position | None = None
        self.reader_errors: list[str] = []
        #: set when the reader raised ``Unsupported`` (e.g. delete files it cannot read): the run ends so
        self.unsupported: Unsupported | None = None
        self.failed: str | None = None
        self.approach: Approach | None = None
        self.last_event_at = time.monotonic()
        self.expected: int | None = None
        self.complete_at: float | None = None
        self._caught_up: tuple[float, int, bool] | None = None  # (checked at, events then, answer)
        self._want_caught_up = False
        self._caught_twice = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._quiet = False  # holds QUIET_GC between start and stop
        #: the reader thread's last position polled but not yet acked (``ack_every_s``), and when
        #: it last acked
        self._pending: Position | None = None
        self._acked_at = 0.0

    @property
    def restarts(self) -> int:
        """How many times the reader was crashed and restarted."""
        return len(self.record.restarts)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, read: bool = True) -> None:
        """Create and start the approach (capturing from now) and, when ``read``, the reader thread.
        Until ``stop``/``close_quietly`` no full garbage collection pauses the reader (``QUIET_GC``)."""
        if not self._quiet:
            QUIET_GC.hold()
            self._quiet = True
        self.approach = self.factory()
        self.approach.start(self.ctx)
        if read:
            self.resume()

    def resume(self) -> None:
        """(Re)start the reader thread (no-op while it runs, while the reader is stopped, or after
        the reader failed for good)."""
        if self.failed or self.approach is None or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cdc-reader", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        """Stop the reader thread (the approach stays started; what it polled is acked before it
        stops)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ctx.timeout_s)
            if self._thread.is_alive():
                raise ReaderFailed(f"reader thread did not stop within {self.ctx.timeout_s}s (poll hung?)")
            self._thread = None

    def stop(self) -> None:
        """Pause and stop the approach gracefully."""
        try:
            self.pause()
        finally:
            self._release_gc()
            if self.approach is not None:
                approach, self.approach = self.approach, None
                approach.stop()

    def _release_gc(self) -> None:
        if self._quiet:
            self._quiet = False
            QUIET_GC.release()

    def close_quietly(self) -> None:
        """Teardown on failure: stop everything, swallowing errors."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._release_gc()
        if self.approach is not None:
            try:
                self.approach.stop()
            except Exception:  # noqa: BLE001 - best-effort teardown
                pass
            self.approach = None

    # -- reading ------------------------------------------------------------------------------
    def poll_once(self, max_events: int | None = None, ack: bool = True, coalesce: bool = False) -> Polled:
        """One poll on the caller's thread (loop paused); keeps the events, acks if asked (at once,
        or, with ``coalesce``, as the approach's ``ack_every_s`` allows: the reader thread's way).
        Returns what the approach returned (a ``ChangeEvent`` list or an Arrow event batch)."""
        if self.approach is None:
            return []
        got = self.approach.poll(max_events or self.batch, self.poll_timeout_s)
        self._keep(got, ack, coalesce)
        return got

    def crash_and_resume(self) -> None:
        """Crash the approach abruptly and start a fresh one that resumes from its own state."""
        self.crash()
        self.restart()

    def crash(self) -> None:
        """Crash the approach abruptly (no ack, no flush) and leave the reader down; the next
        delivery belongs to a new epoch."""
        if self.approach is not None:
            try:
                self.approach.crash()
            except Exception as exc:  # noqa: BLE001 - a crash may fail on a dead connection
                self.reader_errors.append(f"crash: {exc}")
        self.approach = None
        self._pending = None  # polled, never acked: may come again
        self.record.restarts.append(Restart(len(self.events), self.acked, time.monotonic()))

    def restart(self) -> None:
        """Start a fresh approach with ``resume=True`` (retried within the timeout)."""
        try:
            for attempt in Retrying(stop=stop_after_delay(self.ctx.timeout_s), reraise=True,
                                    wait=wait_exponential(multiplier=0.05, max=2)):
                with attempt:
                    fresh = self.factory()
                    fresh.start(self.ctx, resume=True)
                    self.approach = fresh
        except Exception as exc:  # noqa: BLE001 - the run goes on: what is missing is named lost
            self.failed = f"reader could not restart within {self.ctx.timeout_s:.0f}s: {type(exc).__name__}: {exc}"
            self.reader_errors.append(self.failed)
            self._stop.set()

    def wait_delivered(self, expected: int, timeout_s: float) -> bool:
        """Wait (the loop reading) until ``expected`` distinct positions arrived or ``timeout_s``
        passed; True when they did. A fault injected after it hits a pipeline that delivered."""
        deadline = time.monotonic() + timeout_s
        while len(self._positions) < expected and not self.failed:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return len(self._positions) >= expected

    def wait_caught_up(self, timeout_s: float) -> bool:
        """Wait (the loop reading) until the approach's ``caught_up()`` holds or ``timeout_s``
        passed; True when it held (for approaches whose event count cannot be known ahead)."""
        deadline = time.monotonic() + timeout_s
        while not self.failed and time.monotonic() < deadline:
            approach = self.approach
            caught_up = getattr(approach, "caught_up", None)
            if caught_up is not None and caught_up():
                return True
            time.sleep(0.1)
        return False

    def drain(self, expected: int, settle_s: float = 0.2) -> float:
        """Read until ``expected`` distinct positions arrived and none came for ``settle_s``,
        or the run's deadline (``ctx.deadline_s``) passed, or what is missing is explained: the
        reader failed for good, or the approach said twice, ``CAUGHT_UP_EVERY_S`` apart and
        with nothing new between, that it has read everything. A slow reader is waited for:
        silence alone never ends a drain early. Returns when the last event arrived (ns)."""
        began = time.monotonic()
        deadline = began + self.ctx.deadline_s
        self.expected = expected
        if self.complete_at is None and len(self._positions) >= expected:
            self.complete_at = self.last_event_at
        self._want_caught_up = True
        while time.monotonic() < deadline and not self.failed:
            idle = time.monotonic() - max(self.last_event_at, began)
            if len(self._positions) >= expected:
                if idle >= settle_s:
                    break
            elif self._explained_short():
                break
            time.sleep(0.02)
        self._want_caught_up = False
        return self.events[-1].captured_at if self.events else 0

    def _explained_short(self) -> bool:
        """True when the approach has said it is caught up twice with nothing new between."""
        seen = self._caught_up
        return self._caught_twice and seen is not None and seen[1] == len(self.events)

    def _check_caught_up(self) -> None:
        caught_up = getattr(self.approach, "caught_up", None)
        now = time.monotonic()
        if caught_up is None or (self._caught_up and now - self._caught_up[0] < CAUGHT_UP_EVERY_S):
            return
        answer = bool(caught_up())
        previous = self._caught_up
        self._caught_twice = bool(answer and previous and previous[2] and previous[1] == len(self.events))
        self._caught_up = (now, len(self.events), answer)

    def _keep(self, got: Polled, ack: bool, coalesce: bool = False) -> None:
        parts = polled_parts(got)
        if not parts:
            return
        for part in parts:
            self.events.append_part(part)
            self.record.epochs.extend([self.restarts] * batch_len(part))
            last = self._positions.add(part)
        self.last_event_at = time.monotonic()
        if self.expected is not None and self.complete_at is None and len(self._positions) >= self.expected:
            self.complete_at = self.last_event_at
        if ack:
            every = getattr(self.approach, "ack_every_s", 0.0) if coalesce else 0.0
            if every and time.monotonic() - self._acked_at < every:
                self._pending = last
            else:
                self._ack(last)

    def _ack(self, position: Position) -> None:
        assert self.approach is not None
        self.approach.ack(position)
        self.acked = position
        self._pending = None
        self._acked_at = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                got = self.poll_once(coalesce=True)
                if not got and self._pending is not None:
                    self._ack(self._pending)
                if not got and self._want_caught_up:
                    self._check_caught_up()
            except Unsupported as exc:  # the reader refuses what the engine holds: the case is unsupported
                self.unsupported = exc
                self.failed = f"unsupported: {exc}"
                return
            except CaptureEnded as exc:  # upstream stopped for good: no restart can help
                self.failed = f"capture ended: {exc}"
                self.reader_errors.append(self.failed)
                return
            except Exception as exc:  # noqa: BLE001 - a reader failure is data, then a restart
                self.reader_errors.append(f"{type(exc).__name__}: {exc}")
                self.crash_and_resume()
        if self._pending is not None and self.approach is not None:  # stopping: ack what was polled
            try:
                self._ack(self._pending)
            except Exception as exc:  # noqa: BLE001 - not acked: it may come again, as after a crash
                self.reader_errors.append(f"ack on pause: {type(exc).__name__}: {exc}")
