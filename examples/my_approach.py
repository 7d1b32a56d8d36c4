"""Add your own CDC approach in one file: ``pytest suites/ -p examples.my_approach -k batched``.

This one wraps the built-in ``delta-cdf`` into a consumer that hands out at most 100 events
per poll (as a bounded sink would), under its own id, without touching the harness.
"""

from __future__ import annotations

from harness.approaches.delta_cdf import DeltaCdf
from harness.events import ChangeEvent


class DeltaCdfBatched(DeltaCdf):
    """delta-cdf delivering at most 100 events per poll, buffering the rest."""

    name = "delta-cdf-batched"

    def start(self, ctx, resume: bool = False) -> None:
        super().start(ctx, resume)
        self.buffer: list[ChangeEvent] = []

    def poll(self, max_events: int, timeout_s: float) -> list[ChangeEvent]:
        if not self.buffer:
            self.buffer = super().poll(max_events, timeout_s)
        batch, self.buffer = self.buffer[:100], self.buffer[100:]
        return batch


def pytest_cdc_approaches(registry) -> None:
    """The harness calls this hook once; register (or wrap and re-register) approaches here."""
    registry.register(DeltaCdfBatched)
