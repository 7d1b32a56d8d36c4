"""Recovery mutants: wrappers that break an approach's delivery or ack discipline one way.

Each wraps a real approach (``start/poll/ack/stop/crash``) and shares a ``store`` across the
instances of one run — the wrapper's own "durable" state, as a restarted process would have:

- ``repeat``: delivers every 11th event twice in a row at the same position, with no restart.
- ``rewind``: after a restart, first re-delivers every event it had acknowledged before it.
- ``ack-ahead``: holds back the last event of each batch but acknowledges up to it (an ack
  beyond what was delivered); the held event comes with the next batch, or after 0.5 s of quiet.

The fourth case of the recovery tests, a crash before the first ack, needs no mutant: the
harness runs the unmutated approach in backlog mode, so its first crash comes before any poll.
"""

from __future__ import annotations

import time
from typing import Any

from harness.columnar import events_of
from harness.events import ChangeEvent, Position

#: recovery fault -> the verdict's anomaly kinds (empty: the run must pass)
RECOVERY_FAULTS: dict[str, frozenset[str]] = {
    "repeat": frozenset({"duplicate"}),
    "rewind": frozenset({"duplicate"}),
    "ack-ahead": frozenset({"lost"}),
}


class RecoveryMutant:
    """One approach instance wrapped with one recovery fault (see the module docstring)."""

    def __init__(self, inner: Any, fault: str, store: dict[str, Any], release_after_s: float = 0.5) -> None:
        if fault not in RECOVERY_FAULTS:
            raise ValueError(f"unknown recovery fault {fault!r}; known: {', '.join(RECOVERY_FAULTS)}")
        self.inner = inner
        self.fault = fault
        self.store = store
        self.name = f"{inner.name}+{fault}"
        self.family = inner.family
        self.capabilities = inner.capabilities
        self.release_after_s = release_after_s
        self._pending: list[ChangeEvent] = []
        self._held: ChangeEvent | None = None
        self._quiet_since: float | None = None
        self._delivered: list[ChangeEvent] = []
        self._count = 0

    def start(self, ctx: Any, resume: bool = False) -> None:
        self.inner.start(ctx, resume)
        self.store["starts"] = self.store.get("starts", 0) + 1
        if self.fault == "rewind" and resume:
            self._pending = list(self.store.get("acked_events", []))

    def poll(self, max_events: int, timeout_s: float) -> list[ChangeEvent]:
        got = events_of(self.inner.poll(max_events, timeout_s))  # rewritten one by one
        if self.fault == "repeat":
            out = []
            for e in got:
                out.append(e)
                self._count += 1
                if self._count % 11 == 0:
                    out.append(e)
            self.store["applied"] = self.store.get("applied", 0) + (len(out) - len(got))
            return out
        if self.fault == "rewind":
            out, self._pending = self._pending + got, []
            self._delivered.extend(out)
            return out
        if self.fault == "ack-ahead":
            return self._hold_last(got)
        return got

    def _hold_last(self, got: list[ChangeEvent]) -> list[ChangeEvent]:
        if not got:
            if self._held is None:
                return []
            if self._quiet_since is None:
                self._quiet_since = time.monotonic()
            if time.monotonic() - self._quiet_since < self.release_after_s:
                return []
            held, self._held = self._held, None
            return [held]
        self._quiet_since = None
        combined = ([self._held] if self._held is not None else []) + got
        self._held = combined[-1]
        return combined[:-1]

    def ack(self, position: Position) -> None:
        if self.fault == "ack-ahead" and self._held is not None:
            self.store["applied"] = self.store.get("applied", 0) + 1
            self.inner.ack(self._held.position)
            return
        if self.fault == "rewind":
            acked = [e for e in self._delivered if e.position <= position]
            self._delivered = [e for e in self._delivered if e.position > position]
            kept = self.store.setdefault("acked_events", [])
            known = {(e.position, e.table, e.key) for e in kept}
            kept.extend(e for e in acked if (e.position, e.table, e.key) not in known)
            if self.store.get("starts", 0) > 1 and acked:
                self.store["applied"] = 1
        self.inner.ack(position)

    def caught_up(self) -> bool:
        """The wrapped approach's answer, and nothing held or pending here."""
        inner = getattr(self.inner, "caught_up", None)
        return self._held is None and not self._pending and inner is not None and bool(inner())

    def stop(self) -> None:
        self.inner.stop()

    def crash(self) -> None:
        self.inner.crash()
