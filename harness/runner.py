"""Runs one case (approach × scenario × settings): the one run path of suites and benchmarks.

``run_case`` builds the scenario, computes the approach's claims once, reports ``unsupported``
before any write when a capability or an engine fault is missing, writes through the source
while a capture loop reads, injects faults, drains until every committed change arrived or the
deadline passed, reads the engine's final state, and checks — returning the verdict with its
measurements.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.approach import Approach, claims
from harness.capabilities import Capabilities
from harness.capture import CaptureLoop, DeliveryRecord
from harness.checker import check, encode_history
from harness.context import RunContext
from harness.errors import Unsupported
from harness.families import Family
from harness.ledger import Ledger
from harness.netcommit import check_net
from harness.results import label
from harness.sources.base import Source
from harness.steps import AFTER_DELIVERY, Fault, Scenario, Truncate, Txn
from harness.verdict import Verdict

#: fault targets meaning "the engine the source writes to"
SOURCE_TARGETS = ("engine", "source")
#: where a reader crash is injected (see ``FaultInjector.reader_crash``)
CRASH_POINTS = ("begin", "mid-txn", "after-commit-before-ack", "after-ack")
#: faults on the reader itself: a crash with an immediate restart, or a stop and a later start
READER_FAULTS = ("reader-crash", "reader-stop", "reader-start")


@dataclass(frozen=True)
class Case:
    """One cell of the grid: an approach class, a scenario id, engine settings and the family."""

    approach: type
    scenario: str
    family: Family
    settings: tuple[tuple[str, Any], ...] = ()
    roles: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """Stable lowercase test id, e.g. ``delta-cdf-crud`` or ``pg-pgoutput-toast-replica-identity-full``."""
        suffix = "".join(f"-{k.replace('_', '-')}-{v}" for k, v in self.settings)
        return f"{self.approach.name}-{self.scenario}{suffix}".lower()

    @property
    def label(self) -> str:
        """The approach with its settings, as the matrix and reports show it (``harness.results.label``)."""
        return label(self.approach.name, self.settings)

    def claims(self) -> Capabilities:
        """The approach's capabilities under this case's settings (computed here, once)."""
        return claims(self.approach, dict(self.settings))


@dataclass
class RunOutcome:
    """What one run produced: the ledger, the captured events with their delivery record, the
    engine's final state, and timings (``recovery_s``: None when the capture never completed)."""

    ledger: Ledger
    #: the capture loop's ``RowLog`` (``ChangeEvent`` lists and Arrow event batches, in receipt order)
    events: Sequence
    delivery: DeliveryRecord
    final_state: dict
    write_s: float
    capture_s: float
    recovery_s: float | None = None
    reader_errors: list[str] = field(default_factory=list)
    #: a net-per-commit approach's record of its sink commits (``harness.netcommit.SinkCommit``)
    commits: list | None = None
    #: figures an approach reports about its run (``run_measurements(ctx)``, e.g. a pipeline's hops)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def restarts(self) -> int:
        """How many times the reader was crashed and restarted."""
        return len(self.delivery.restarts)


@dataclass
class CaseResult:
    """A case's verdict (``unsupported`` with the reason, or checked) and, when it ran, its outcome."""

    verdict: Verdict
    outcome: RunOutcome | None = None
    engines: Mapping[str, Any] = field(default_factory=dict)


def requirement_gap(scenario: Scenario, approach_cls: type, source_cls: type[Source],
                    caps: Capabilities, reader_settings: Iterable[str] = ()) -> str | None:
    """Why this approach (claiming ``caps``) cannot run this scenario on this source, or None;
    ``reader_settings``: the case's settings that its reader must apply to its own session."""
    needs = [*scenario.requires, *(f"setting:{name}" for name in sorted(reader_settings))]
    if not source_cls.truncate_as_deletes and _has(scenario.steps, Truncate):
        needs.append("truncate")
    for need in needs:
        lack = caps.lacks(need)
        if lack:
            notes = "; ".join(caps.notes)
            return f"{approach_cls.name} {lack}" + (f" ({notes})" if notes else "")
    return None


def fault_gap(scenario: Scenario, engines: Mapping[str, Any], source_role: str) -> str | None:
    """Why the case's engines cannot inject a fault the scenario needs, or None."""
    for fault in _faults(scenario.steps):
        if fault.target == "reader":
            if fault.kind not in READER_FAULTS or (fault.kind == "reader-crash" and fault.point not in CRASH_POINTS):
                return f"unknown reader fault {fault.kind!r} at {fault.point!r}"
            continue
        role = source_role if fault.target in SOURCE_TARGETS else fault.target
        engine = engines.get(role)
        if engine is None:
            return f"fault {fault.kind!r} targets engine role {role!r}, which this case does not run"
        declared = getattr(engine, "faults", frozenset())
        if fault.kind not in declared:
            backend = getattr(engine, "backend", "?")
            return (f"the {backend} {role} engine does not inject {fault.kind!r} "
                    f"(declares: {', '.join(sorted(declared)) or 'none'})")
    return None


def _has(steps: Iterable[Any], kind: type) -> bool:
    return any(isinstance(s, kind) or (isinstance(s, Txn) and _has(s.steps, kind)) for s in steps)


def _faults(steps: Iterable[Any]) -> list[Fault]:
    out: list[Fault] = []
    for s in steps:
        if isinstance(s, Fault):
            out.append(s)
        elif isinstance(s, Txn):
            out.extend(_faults(s.steps))
    return out


def expected_events(ledger: Ledger, caps: Capabilities) -> int:
    """How many events a correct approach delivers for this ledger (drain target)."""
    rows, updates, _ = ledger.counts()
    if caps.updates == "delete+insert":
        return rows + updates
    return rows + ledger.key_changes() if caps.key_updates == "delete+insert" else rows


class FaultInjector:
    """Executes Fault steps: reader crashes on the capture loop, engine faults through the
    declaring engine's ``inject`` (the loop paused around it, the source reconnected after)."""

    def __init__(self, loop: CaptureLoop, source: Source, ctx: RunContext,
                 caps: Capabilities | None = None) -> None:
        self.loop = loop
        self.source = source
        self.ctx = ctx
        self.caps = caps or Capabilities()
        self.last_fault_at: float | None = None

    def __call__(self, fault: Fault) -> None:
        if fault.kind == "reader-stop":
            self.reader_stop()
        elif fault.kind == "reader-start":
            self.loop.restart()
            self.loop.resume()
        elif fault.target == "reader":
            self.reader_crash(fault.point)
        else:
            role = self.ctx.source_role if fault.target in SOURCE_TARGETS else fault.target
            if fault.point == AFTER_DELIVERY and self.caps.net_per_commit:
                self.loop.wait_caught_up(self.ctx.timeout_s)  # net changes: no count to wait for
            elif fault.point == AFTER_DELIVERY:
                self.loop.wait_delivered(expected_events(self.source.ledger, self.caps), self.ctx.timeout_s)
            self.loop.pause()
            try:
                self.ctx.role(role).inject(fault.kind, fault.point, self.ctx.name_prefix)
                reconnect = getattr(self.source, "reconnect", None)
                if reconnect is not None:
                    reconnect()
            finally:
                self.loop.resume()
        self.last_fault_at = time.monotonic()

    def reader_crash(self, point: str) -> None:
        """Crash the reader at ``point``; a fresh reader resumes from its own durable state.

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
        loop.crash_and_resume()
        loop.resume()


    def reader_stop(self) -> None:
        """Take the reader down the way an operator's stop does to a process: it reads and
        acknowledges what is there, then exits without any cleanup (a replication slot stays);
        it stays down, missing what is written, until a ``reader-start`` step."""
        self.loop.pause()
        _poll_until_quiet(self.loop, ack=True)
        self.loop.crash()


def _poll_until_quiet(loop: CaptureLoop, ack: bool, quiet_polls: int = 3) -> None:
    empty = 0
    deadline = time.monotonic() + loop.ctx.timeout_s
    while empty < quiet_polls and time.monotonic() < deadline:
        empty = 0 if loop.poll_once(ack=ack) else empty + 1


def run(scenario: Scenario, source: Source, factory: Callable[[], Approach], caps: Capabilities,
        ctx: RunContext, progress: Callable[[str], None] | None = None, label: str = "",
        backlog: bool = False, timer: Callable[[Callable[[], Any]], Any] | None = None) -> RunOutcome:
    """Apply the scenario through ``source`` while a capture loop reads; drain; read final state.

    ``backlog``: the approach starts before the writes but reads nothing until they are done,
    so the drain measures how fast it works through a backlog. ``timer`` wraps the drain call
    (a benchmark's ``pedantic``), so a benchmark times exactly the drain.
    """
    source.setup(scenario.tables)
    ctx.tables = dict(source.specs)
    loop = CaptureLoop(factory, ctx)
    inject = FaultInjector(loop, source, ctx, caps)
    label = label or scenario.name
    try:
        loop.start(read=not backlog)
        t0 = time.perf_counter()
        for step in scenario.steps:
            if isinstance(step, Fault):
                inject(step)
            else:
                source.apply(step)
        write_s = time.perf_counter() - t0
        writes_done = time.monotonic()
        expected = expected_events(source.ledger, caps)
        if progress and write_s > 1:
            progress(f"{label}: wrote {expected} changes in {write_s:.1f}s "
                     f"({expected / write_s:,.0f}/s); captured {len(loop.events)} so far, draining")
        first_commit = source.ledger.counts()[2]
        t1 = time.perf_counter()
        drain_began_ns = time.time_ns()
        if backlog:
            loop.resume()
        drained: list[float] = []
        (timer or (lambda fn: fn()))(lambda: drained.append(loop.drain(expected)))
        last_capture = drained[0]
        drain_s = time.perf_counter() - t1
        if progress and drain_s > 1:
            progress(f"{label}: drained to {len(loop.events)} events in {drain_s:.1f}s")
        commits = _commit_log(loop, factory, ctx) if caps.net_per_commit else None
        extra = _run_measurements(loop, factory, ctx)
        loop.stop()
        if loop.unsupported is not None:
            raise loop.unsupported
    except BaseException:
        loop.close_quietly()
        raise
    if backlog:
        capture_s = max((last_capture - drain_began_ns) / 1e9, 1e-9) if last_capture else 0.0
    else:
        capture_s = max((last_capture - first_commit) / 1e9, 1e-9) if first_commit and last_capture else 0.0
    since = max(writes_done, inject.last_fault_at or 0.0)  # the later of the last write and the last fault
    recovery_s = max(loop.complete_at - since, 0.0) if loop.complete_at is not None else None
    return RunOutcome(
        ledger=source.ledger,
        events=loop.events,
        delivery=loop.record,
        final_state=source.final_state(),
        write_s=write_s,
        capture_s=capture_s,
        recovery_s=recovery_s,
        reader_errors=loop.reader_errors,
        commits=commits,
        extra=extra,
    )


def _run_measurements(loop: CaptureLoop, factory: Callable[[], Approach], ctx: RunContext) -> dict[str, Any]:
    """Figures the approach reports about its run (optional ``run_measurements(ctx)``)."""
    approach = loop.approach if loop.approach is not None else factory()
    read = getattr(approach, "run_measurements", None)
    return dict(read(ctx)) if read is not None else {}


def _commit_log(loop: CaptureLoop, factory: Callable[[], Approach], ctx: RunContext) -> list:
    """A net-per-commit approach's record of its sink commits, read from where the sink keeps it
    (a fresh instance when the reader is down): ``commit_log(ctx)``."""
    approach = loop.approach if loop.approach is not None else factory()
    read = getattr(approach, "commit_log", None)
    if read is None:
        raise Unsupported(f"{getattr(approach, 'name', approach)} claims net_per_commit but has no "
                          "commit_log(ctx): the checker cannot place its commits")
    return list(read(ctx))


def evaluate(outcome: RunOutcome, caps: Capabilities) -> Verdict:
    """Check the outcome under the approach's claims and add throughput and recovery figures."""
    if caps.net_per_commit:
        t0 = time.perf_counter()
        verdict = check_net(outcome.ledger, outcome.events, outcome.commits or [], caps, outcome.final_state,
                            outcome.delivery)
    else:
        history = encode_history(outcome.ledger, outcome.events, outcome.delivery)
        t0 = time.perf_counter()
        verdict = check(history, caps, outcome.final_state)
    m = verdict.measurements
    m["check_s"] = round(time.perf_counter() - t0, 4)
    m["write_s"] = round(outcome.write_s, 4)
    m["capture_s"] = round(outcome.capture_s, 4)
    m["events_per_s"] = round(len(outcome.events) / outcome.capture_s, 1) if outcome.capture_s else None
    m["restarts"] = outcome.restarts
    for key, value in outcome.extra.items():
        m.setdefault(key, value)
    m["recovery_s"] = round(outcome.recovery_s, 3) if outcome.recovery_s is not None else None
    if outcome.reader_errors:
        m["reader_errors"] = outcome.reader_errors[:5]
    return verdict


def run_case(case: Case, engines: Mapping[str, Any], scenario_factory: Callable[..., Scenario], *,
             run_id: str, worker: str, workdir: Path, seed: int = 1, scale: str = "default",
             timeout_s: float = 60.0, deadline_s: float | None = None, case_no: int = 0,
             factory: Callable[[], Approach] | None = None,
             progress: Callable[[str], None] | None = None, backlog: bool = False,
             timer: Callable[[Callable[[], Any]], Any] | None = None) -> CaseResult:
    """Run one case on started ``engines`` (by role) and return its verdict.

    ``unsupported`` (with the reason) is decided before any write when the approach lacks a
    capability the scenario needs or the engines do not declare a fault it injects; a step the
    engine refuses mid-run (``Unsupported``) also ends as ``unsupported``. The deadline for a
    slow reader is ``deadline_s`` or the larger of ``timeout_s`` and the approach's declared
    ``recovery_s``. ``factory`` builds the approach (default: the case's class); ``backlog``
    and ``timer`` are for drain benchmarks (see ``run``).
    """
    family = case.family
    source_cls = family.source_class(dict(case.settings))
    scenario = scenario_factory(seed, scale, getattr(source_cls, "supported_types", frozenset()))
    caps = case.claims()
    reader_settings = family.reader_settings & {name for name, _ in case.settings}
    gap = requirement_gap(scenario, case.approach, source_cls, caps, reader_settings) or fault_gap(
        scenario, engines, family.source_role)
    if gap:
        return CaseResult(Verdict.unsupported(gap), engines=engines)
    if deadline_s is None:
        deadline_s = max(timeout_s, float(getattr(case.approach, "recovery_s", 0.0)))
    ctx = RunContext(run_id=run_id, worker=worker, workdir=workdir, engines=dict(engines),
                     source_role=family.source_role, seed=seed, scale=scale, settings=dict(case.settings),
                     timeout_s=timeout_s, deadline_s=deadline_s, case=case_no)
    source = source_cls(ctx, Ledger())
    try:
        outcome = run(scenario, source, factory or case.approach, caps, ctx, progress, case.id, backlog, timer)
    except Unsupported as exc:
        return CaseResult(Verdict.unsupported(str(exc)), engines=engines)
    finally:
        source.close()
    return CaseResult(evaluate(outcome, caps), outcome, engines)
