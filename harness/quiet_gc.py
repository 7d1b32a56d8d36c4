"""Full garbage collections kept out of capture windows: the harness's own heap must not pause the reader."""

from __future__ import annotations

import gc
import os
import threading

#: the oldest generation's threshold while a capture runs: a full collection then waits for about
#: 1,000 young (generation-1) collections, i.e. millions of allocations, instead of 10
CAPTURE_FULL_THRESHOLD = 1_000


class QuietCollector:
    """Process-wide hold on CPython's cyclic collector while at least one capture runs.

    Why: the reader thread shares the interpreter with the harness's bookkeeping (fixtures, the
    ledger, every event kept for the checker). A full (generation-2) collection scans all of it
    while holding the GIL: measured 100–240 ms pauses in a rate-ladder step, which a reader in a
    real deployment (which keeps nothing) would not have. That is the harness's cost, so it is
    moved out of the capture window instead of being reported as the approach's lag.

    Contract: ``hold()`` on the first holder freezes every object that exists (``gc.freeze``: never
    scanned again while held) and raises the oldest generation's threshold to
    ``CAPTURE_FULL_THRESHOLD``; young collections go on as usual, so memory stays bounded by
    reference counting and young collections, and a very long capture still gets (rarer) full
    collections of what it created. ``release()`` on the last holder restores the thresholds and
    unfreezes. Holds nest (reference-counted, thread-safe); an unmatched ``release`` is ignored.
    ``enabled=False`` (``CDC_QUIET_GC=0``, to measure what the collector costs) makes both no-ops.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._holders = 0
        self._saved: tuple[int, ...] | None = None

    @property
    def held(self) -> bool:
        """True while at least one capture holds the collector quiet."""
        return self._holders > 0

    def hold(self) -> None:
        """Enter a capture window."""
        if not self.enabled:
            return
        with self._lock:
            self._holders += 1
            if self._holders == 1:
                self._saved = gc.get_threshold()
                gc.freeze()
                young, middle, oldest = self._saved
                gc.set_threshold(young, middle, max(oldest, CAPTURE_FULL_THRESHOLD))

    def release(self) -> None:
        """Leave a capture window."""
        with self._lock:
            if self._holders == 0:
                return
            self._holders -= 1
            if self._holders == 0 and self._saved is not None:
                gc.set_threshold(*self._saved)
                self._saved = None
                gc.unfreeze()


#: the one collector hold of this process (``CDC_QUIET_GC=0`` turns it off)
QUIET_GC = QuietCollector(enabled=os.environ.get("CDC_QUIET_GC", "1") != "0")
