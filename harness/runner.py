"""Runs one approach × scenario: writes through the source, captures, checks, measures."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.approach import Approach, claims
from harness.capabilities import Capabilities
from harness.capture import CaptureLoop
from harness.checker import check, encode_history
from harness.context import RunContext
from harness.errors import Unsupported
from harness.ledger import Ledger
from harness.sources.base import Source
from harness.steps import Fault, Scenario, Truncate, Txn
from harness.verdict import Verdict


@dataclass
class RunOutcome:
    """What one run produced: the ledger, the captured events, the engine's final state, timings."""

    ledger: Ledger
    events: list
    final_state: dict
    write_s: float
    capture_s: float
    restarts: int = 0
    reader_errors: list[str] = field(default_factory=list)


def requirement_gap(scenario: Scenario, approach_cls: type, source_cls: type[Source],
                    caps: Capabilities | None = None) -> str | None:
    """Why this approach (claiming ``caps``) cannot run this scenario on this source, or None."""
    caps = caps or approach_cls.capabilities
    needs = list(scenario.requires)
    if not source_cls.truncate_as_deletes and _has_truncate(scenario.steps):
        needs.append("truncate")
    for need in needs:
        lack = caps.lacks(need)
        if lack:
            notes = "; ".join(caps.notes)
            return f"{approach_cls.name} {lack}" + (f" ({notes})" if notes else "")
    return None


def _has_truncate(steps: Any) -> bool:
    return any(isinstance(s, Truncate) or (isinstance(s, Txn) and _has_truncate(s.steps)) for s in steps)


def expected_events(ledger: Ledger, caps: Capabilities) -> int:
    """How many events a correct approach delivers for this ledger (drain target)."""
    n = 0
    split = caps.updates == "delete+insert"
    for c in ledger.changes:
        if c.rolled_back or c.op == "ddl":
            continue
        n += 2 if (split and c.op == "update") else 1
    return n


class FaultInjector:
    """Executes Fault steps: reader crashes here; engine faults through ``engine.inject``."""

    def __init__(self, loop: CaptureLoop, source: Source, ctx: RunContext) -> None:
        self.loop = loop
        self.source = source
        self.ctx = ctx

    def __call__(self, fault: Fault) -> None:
        if fault.kind == "reader-crash":
            self.reader_crash(fault.point)
            return
        inject = getattr(self.ctx.engine, "inject", None)
        if inject is None:
            raise Unsupported(f"engine {type(self.ctx.engine).__name__} cannot inject fault {fault.kind!r}")
        self.loop.pause()
        try:
            inject(fault.kind, fault.point, self.loop)
            reconnect = getattr(self.source, "reconnect", None)
            if reconnect is not None:
                reconnect()
        finally:
            self.loop.resume()

    def reader_crash(self, point: str) -> None:
        """Crash the reader at ``point`` and resume from the last ack.

        ``begin``: crash before reading what was just written. ``mid-txn``: read one event
        (part of a transaction where the approach streams them) and crash without ack.
        ``after-commit-before-ack``: read everything, crash before ack. ``after-ack``: read
        and ack everything, then crash.
        """
        loop = self.loop
        loop.pause()
        if point == "mid-txn":
            loop.poll_once(max_events=1, ack=False)
        elif point == "after-commit-before-ack":
            _poll_until_quiet(loop, ack=False)
        elif point == "after-ack":
            _poll_until_quiet(loop, ack=True)
        elif point != "begin":
            raise Unsupported(f"unknown reader-crash point {point!r}")
        loop.crash_and_resume()
        loop.resume()


def _poll_until_quiet(loop: CaptureLoop, ack: bool, quiet_polls: int = 3) -> None:
    empty = 0
    deadline = time.monotonic() + loop.ctx.timeout_s
    while empty < quiet_polls and time.monotonic() < deadline:
        empty = 0 if loop.poll_once(ack=ack) else empty + 1


def run(scenario: Scenario, source: Source, factory: Callable[[], Approach], approach_cls: type,
        ctx: RunContext, quiet_s: float = 3.0, progress: Callable[[str], None] | None = None) -> RunOutcome:
    """Apply the scenario through ``source`` while a capture loop reads; drain; read final state."""
    source.setup(scenario.tables)
    ctx.tables = dict(source.specs)
    loop = CaptureLoop(factory, ctx)
    inject = FaultInjector(loop, source, ctx)
    try:
        loop.start()
        t0 = time.perf_counter()
        for step in scenario.steps:
            if isinstance(step, Fault):
                inject(step)
            else:
                source.apply(step)
        write_s = time.perf_counter() - t0
        expected = expected_events(source.ledger, claims(approach_cls, ctx.settings))
        if progress and write_s > 1:
            progress(f"{approach_cls.name}/{scenario.name}: wrote {expected} changes in {write_s:.1f}s "
                     f"({expected / write_s:,.0f}/s); captured {len(loop.events)} so far, draining")
        first_commit = min((c.commit_issued_at for c in source.ledger.changes if c.commit_issued_at), default=0)
        t1 = time.perf_counter()
        last_capture = loop.drain(expected, quiet_s)
        drain_s = time.perf_counter() - t1
        if progress and drain_s > 1:
            progress(f"{approach_cls.name}/{scenario.name}: drained to {len(loop.events)} events "
                     f"in {drain_s:.1f}s")
        loop.stop()
    except BaseException:
        loop.close_quietly()
        raise
    capture_s = max((last_capture - first_commit) / 1e9, 1e-9) if first_commit and last_capture else 0.0
    return RunOutcome(
        ledger=source.ledger,
        events=loop.events,
        final_state=source.final_state(),
        write_s=write_s,
        capture_s=capture_s,
        restarts=loop.restarts,
        reader_errors=loop.reader_errors,
    )


def evaluate(outcome: RunOutcome, caps: Capabilities) -> Verdict:
    """Check the outcome under the approach's claims and add throughput figures."""
    history = encode_history(outcome.ledger, outcome.events)
    t0 = time.perf_counter()
    verdict = check(history, caps, outcome.final_state)
    m = verdict.measurements
    m["check_s"] = round(time.perf_counter() - t0, 4)
    m["write_s"] = round(outcome.write_s, 4)
    m["capture_s"] = round(outcome.capture_s, 4)
    m["events_per_s"] = round(len(outcome.events) / outcome.capture_s, 1) if outcome.capture_s else None
    m["restarts"] = outcome.restarts
    if outcome.reader_errors:
        m["reader_errors"] = outcome.reader_errors[:5]
    return verdict
