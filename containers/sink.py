"""The pipeline's sink worker as an engine: runs sink incarnations under a supervisor, injects sink crashes.

Per run (role ``sink``, ``per_run``): the approach hands it a factory of sink incarnations
(``supervise``); the supervisor thread runs one, and when it dies (a crash at a failpoint, or an
error) starts a fresh one after ``restart_delay_s`` that resumes from its own durable state, as
a process manager restarts a killed worker. Faults: ``sink-crash`` at point ``before-commit`` or
``after-commit`` arms the failpoint; the next batch dies there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from harness.errors import EngineUnavailable, Unsupported

FAULT_POINTS = ("before-commit", "after-commit")


class SinkEngine:
    """Supervises the sink's incarnations (see the module docstring); bound to nothing, no port."""

    family: ClassVar[str] = "sink"
    backend = "local"
    url = "sink://in-process"
    faults: frozenset[str] = frozenset({"sink-crash"})
    restart_delay_s = 0.2

    def __init__(self) -> None:
        self._make: Callable[[int], Any] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._armed: str | None = None
        self._lock = threading.Lock()
        self.current: Any = None
        self.incarnations = 0
        self.crashes: list[str] = []
        self.errors: list[str] = []
        self.hops: list = []
        self._marker = -1

    def start(self) -> None:
        """Nothing runs until ``supervise``."""

    def supervise(self, make: Callable[[int], Any]) -> None:
        """Run ``make(incarnation)``'s ``run(stop, fire)`` until ``stop``, restarting it when it dies."""
        self.stop()
        self._make, self._stop = make, threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cdc-sink", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            assert self._make is not None
            self.current = self._make(self.incarnations)
            self.incarnations += 1
            try:
                self.current.run(self._stop, self._fire)
            except Exception as exc:  # noqa: BLE001 - a dead incarnation is restarted, its death recorded
                from harness.pipeline.sink import SinkCrashed

                (self.crashes if isinstance(exc, SinkCrashed) else self.errors).append(f"{type(exc).__name__}: {exc}")
                self._stop.wait(self.restart_delay_s)
            finally:
                self._marker = max(self._marker, getattr(self.current, "marker", -1))

    def _fire(self, point: str) -> bool:
        with self._lock:
            if self._armed == point:
                self._armed = None
                return True
        return False

    def inject(self, kind: str, point: str, names: str) -> None:
        """``sink-crash`` at ``before-commit``/``after-commit``: the next batch dies there."""
        if kind not in self.faults or point not in FAULT_POINTS:
            raise Unsupported(f"the sink injects sink-crash at {' or '.join(FAULT_POINTS)}, not {kind!r} at {point!r}")
        if self._thread is None or not self._thread.is_alive():
            raise EngineUnavailable("no sink is running to crash")
        with self._lock:
            self._armed = point

    def stop(self) -> None:
        """Stop the running incarnation (graceful) and the supervisor. Idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)

    def kill(self) -> None:
        """Make the next batch die before its commit (the in-process kill)."""
        with self._lock:
            self._armed = "before-commit"

    def restart(self) -> None:
        """The supervisor restarts a dead incarnation by itself."""

    @property
    def marker(self) -> int:
        """The highest flush-marker id any incarnation applied (``harness.pipeline.sink.MARKER_TABLE``)."""
        return max(self._marker, getattr(self.current, "marker", -1))

    def log_path(self) -> Path | None:
        return None

    def state(self) -> dict[str, Any]:
        """Where the running incarnation is (for a report when a capture comes up short): its
        number, alive or not, and its own ``state()`` (positions, batches, idle)."""
        sink = self.current
        out: dict[str, Any] = {"incarnations": self.incarnations,
                               "alive": bool(self._thread is not None and self._thread.is_alive())}
        if sink is not None and hasattr(sink, "state"):
            out.update(sink.state())
        return out

    def caught_up(self, high: int) -> bool:
        """True when the running incarnation is idle at offset ``high`` or past it (the partition's
        end, read live by the caller) with everything it read applied, and no failpoint waits to
        fire (an armed fault is part of the run still to come)."""
        sink = self.current
        return bool(sink is not None and self._armed is None and self._thread is not None
                    and self._thread.is_alive() and sink.idle and sink.position >= high
                    and sink.applied_to >= sink.read_to >= 0)


def sink_engine(options: Any, worker: str, run_id: str) -> SinkEngine:
    """A fresh sink supervisor for one run."""
    return SinkEngine()
