"""The rate ladder: one open-loop step per offered rate, captured through the suite's capture loop.

A step creates the load table with the family's source, starts the approach in a
``CaptureLoop`` (the conformance suite's reader thread: polls, acks each batch), offers load
with ``harness.loadgen``, waits until every change arrived (or the deadline), and checks the
capture: every offered change exactly once, as an insert of its key. Only a right capture gives
figures; a wrong one raises ``CaptureWrong`` naming what was wrong and the context (``explain``: how
the capture ended, the reader's errors, what the approach reports about its run).

Figures per step: lag per change = ``captured_at − issued`` (the reader's receipt time minus
the moment the writer sent the commit; the same clock), its p50/p95/p99/max; the same from the
*intended* start (what a user waiting for the change sees, including the writer's own delay);
the writer's offered and achieved rates; and ``bounded``.

**Sustainable throughput** (``sustainable``) is the highest *achieved* rate over the steps
whose lag stayed bounded. A step's lag is bounded when the reader kept up through it: the
median lag of the last quarter of its changes is at most twice the median of the first quarter
plus the commit interval plus ``GROWTH_SLACK_MS`` (a reader that falls behind shows lag growing
with time; one that keeps up shows a flat lag, however large its poll interval), and the
p99 lag is below ``LAG_BOUND_S``. A step whose writers achieved less than ``WRITER_SHORT`` of
the offered rate is marked ``writer_limited``: it measured the writer, its achieved rate still
counts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from harness.capture import CaptureLoop
from harness.checker import lag_summary
from harness.context import RunContext
from harness.errors import HarnessError
from harness.ledger import Ledger
from harness.loadgen import Offer, Offered, mysql_writer, offer, offer_source, pg_writer
from harness.steps import Column, TableSpec

#: the table every ladder step inserts into
LOAD_TABLE = TableSpec("offered", (Column("id", "bigint", nullable=False), Column("name", "text"),
                                   Column("qty", "int")))
#: a step's p99 lag above this (s) is unbounded, whatever its trend
LAG_BOUND_S = 10.0
#: allowed growth of the median lag from the first to the last quarter (ms), beyond the commit interval
GROWTH_SLACK_MS = 20.0
#: a step whose writers achieved less than this share of the offered rate is ``writer_limited``
WRITER_SHORT = 0.9


class CaptureWrong(HarnessError):
    """The ladder step's capture was not every offered change exactly once: no figures."""


@dataclass(frozen=True)
class Step:
    """One rung: ``rate`` changes/s offered for ``seconds``, ``rows`` changes per commit."""

    rate: int
    rows: int = 1
    seconds: float = 3.0

    @property
    def id(self) -> str:
        """Stable lowercase id, e.g. ``5k`` or ``100k-x100`` (100 changes per commit)."""
        rate = f"{self.rate // 1000}k" if self.rate >= 1000 and self.rate % 1000 == 0 else str(self.rate)
        return rate if self.rows == 1 else f"{rate}-x{self.rows}"


#: niceness increment of the load writer processes: they stand in for clients on other machines,
#: and at normal priority on 2 cores they took CPU from the server and the reader being measured
#: (pg-pgoutput's p99 at 5k/s 27 ms vs 1.1–1.5 ms with 10, one sitting; docs/ladder.md)
WRITER_NICE = 10

def _row(key: int) -> dict[str, Any]:
    return {"id": key, "name": "x", "qty": key % 1000}


def run_step(cls: type, family: Any, settings: Mapping[str, Any], engines: Mapping[str, Any], step: Step, *,
             writers: int, run_id: str, worker: str, workdir: Path, case_no: int, timeout_s: float = 60.0,
             synchronous_commit: str | None = None, writer_nice: int | None = None) -> dict[str, Any]:
    """Run one ladder step of approach ``cls`` on started ``engines``; return its figures."""
    ctx = RunContext(run_id=run_id, worker=worker, workdir=workdir, engines=dict(engines),
                     source_role=family.source_role, settings=dict(settings), timeout_s=timeout_s,
                     deadline_s=max(timeout_s, float(getattr(cls, "recovery_s", 0.0))), case=case_no)
    source = family.source_class(dict(settings))(ctx, Ledger())
    nice = WRITER_NICE if writer_nice is None else writer_nice
    plan = Offer(step.rate, step.seconds, step.rows, writers, synchronous_commit, nice)
    try:
        source.setup((LOAD_TABLE,))
        ctx.tables = dict(source.specs)
        loop = CaptureLoop(cls, ctx)
        try:
            loop.start()
            started = time.monotonic()
            offered = _offer(family.name, source, ctx, plan)
            write_s = time.monotonic() - started
            loop.drain(offered.changes)
            measured = _measured(loop, ctx)
            loop.stop()
        except BaseException:
            loop.close_quietly()
            raise
    finally:
        source.close()
    figures = check_capture(loop.events, offered, why=explain(loop.failed, loop.reader_errors, measured))
    figures.update(offered.figures())
    achieved = figures.get("achieved_per_s") or 0.0
    figures["writer_limited"] = bool(achieved < WRITER_SHORT * step.rate)
    figures.update(write_s=round(write_s, 3), restarts=loop.restarts, reader_errors=loop.reader_errors[:3])
    return figures


def _measured(loop: CaptureLoop, ctx: RunContext) -> dict[str, Any]:
    """What the approach reports about its run (optional ``run_measurements(ctx)``), read before
    it stops; {} when it has none or cannot say."""
    read = getattr(loop.approach, "run_measurements", None)
    try:
        return dict(read(ctx)) if read is not None else {}
    except Exception as exc:  # noqa: BLE001 - a report about the run must not hide the run's own result
        return {"run_measurements_error": f"{type(exc).__name__}: {exc}"}


def explain(failed: str | None, reader_errors: Sequence[str], measured: Mapping[str, Any]) -> str:
    """Why a capture may be short or wrong, for ``CaptureWrong``: how the capture ended, the
    reader's errors (distinct ones, the first 3, with their count), and what the approach reported
    about its run (its values that are not tables of figures, e.g. a pipeline sink's errors and
    state); says so when there is none of these, so a wrong capture never comes without context."""
    parts = [f"the capture ended early ({failed})"] if failed else []
    distinct = list(dict.fromkeys(reader_errors))
    if reader_errors:
        parts.append(f"{len(reader_errors)} reader errors ({len(distinct)} distinct), e.g. "
                     + " | ".join(e[:300] for e in distinct[:3]))
    else:
        parts.append("no reader error")
    told = {k: v for k, v in measured.items()
            if not (isinstance(v, Mapping) and any(isinstance(x, Mapping) for x in v.values()))}
    if told:
        parts.append("the approach reports " + ", ".join(f"{k}={str(v)[:300]}" for k, v in told.items()))
    return "; ".join(parts)


def _offer(family: str, source: Any, ctx: RunContext, plan: Offer) -> Offered:
    if family == "postgres":
        return offer(pg_writer, {"url": source.url, "table": f'"{source.schema}".{LOAD_TABLE.name}'}, plan)
    if family == "mysql":
        return offer(mysql_writer, {"url": source.url, "database": source.database, "table": LOAD_TABLE.name}, plan)
    return offer_source(source, LOAD_TABLE.name, replace_writers(plan), _row)


def replace_writers(plan: Offer) -> Offer:
    """A table format is written by one writer (its commits are serialized anyway)."""
    return Offer(plan.rate, plan.seconds, plan.rows, 1, plan.synchronous_commit, plan.nice)


def captured_columns(parts: Iterable[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(keys, captured_at, is_insert)`` of captured events (``ChangeEvent`` lists and Arrow
    batches of the load table, whose key is one integer column)."""
    keys, stamps, inserts = [], [], []
    for part in parts:
        if isinstance(part, list):
            keys.append(np.fromiter((e.key[0] for e in part), dtype=np.int64, count=len(part)))
            stamps.append(np.fromiter((e.captured_at for e in part), dtype=np.int64, count=len(part)))
            inserts.append(np.fromiter((e.op == "insert" for e in part), dtype=bool, count=len(part)))
        else:
            batch = pa.table(part) if isinstance(part, pa.RecordBatch) else part
            key = batch.column("key").combine_chunks()
            keys.append(key.field(0).to_numpy(zero_copy_only=False).astype(np.int64))
            stamps.append(batch.column("captured_at").to_numpy().astype(np.int64))
            inserts.append(np.asarray(batch.column("op").to_numpy(zero_copy_only=False) == "insert"))
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    return np.concatenate(keys), np.concatenate(stamps), np.concatenate(inserts)


def check_capture(events: Any, offered: Offered, why: str = "") -> dict[str, Any]:
    """Every offered change captured exactly once as an insert, else ``CaptureWrong`` (its message
    ends with ``why``: ``explain``'s context); then the lag figures (ms) from issue and from
    intended start, and ``bounded``."""
    keys, stamps, inserts = captured_columns(events.parts)
    want, issued, intended = offered.issued_per_key()
    order = np.argsort(keys, kind="stable")
    keys, stamps, inserts = keys[order], stamps[order], inserts[order]
    if len(keys) != len(want) or not np.array_equal(keys, want) or not inserts.all():
        missing = np.setdiff1d(want, keys)
        uniq, counts = np.unique(keys, return_counts=True)
        extra = np.setdiff1d(keys, want)
        raise CaptureWrong(f"captured {len(keys)} events for {len(want)} changes: {len(missing)} lost "
                           f"(e.g. {missing[:3].tolist()}), {int((counts > 1).sum())} keys repeated "
                           f"(e.g. {uniq[counts > 1][:3].tolist()}), {len(extra)} never written, "
                           f"{int((~inserts).sum())} not inserts" + (f"; {why}" if why else ""))
    lag = stamps - issued
    interval_ms = offered.offer.rows / offered.offer.rate * 1e3
    figures = {"captured": len(keys), **lag_summary(lag)}
    figures["lag_from_intended_ms"] = lag_summary(stamps - intended)["lag_ms"]
    by_time = lag[np.argsort(issued, kind="stable")] / 1e6
    q = max(len(by_time) // 4, 1)
    first, last = float(np.median(by_time[:q])), float(np.median(by_time[-q:]))
    figures["lag_trend_ms"] = {"first_quarter_p50": round(first, 3), "last_quarter_p50": round(last, 3)}
    p99 = figures["lag_ms"]["p99"]
    figures["bounded"] = bool(last <= 2 * first + interval_ms + GROWTH_SLACK_MS and p99 is not None
                              and p99 <= LAG_BOUND_S * 1e3)
    return figures


def sustainable(points: Iterable[Mapping[str, Any]]) -> float | None:
    """The highest achieved rate (changes/s) of the bounded steps among ``points`` (ladder
    figures of one approach), or None when no step was bounded."""
    rates = [p.get("achieved_per_s") or 0.0 for p in points if p.get("bounded")]
    return max(rates) if rates else None


def ladder_points(benchmarks: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Ladder steps by approach label from a pytest-benchmark JSON's ``benchmarks`` list (the
    entries whose ``extra_info`` has ``ladder: true``), each sorted by offered rate."""
    out: dict[str, list[dict[str, Any]]] = {}
    for bench in benchmarks:
        info = bench.get("extra_info") or {}
        if info.get("ladder"):
            out.setdefault(str(info.get("approach")), []).append(dict(info))
    for points in out.values():
        points.sort(key=lambda p: (p.get("offered_per_s") or 0, p.get("rows_per_commit") or 1))
    return out


