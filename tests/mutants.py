"""Fault injection for mutation tests: a wrapper that corrupts a correct approach's events one way."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from harness.capabilities import Capabilities
from harness.columnar import events_of
from harness.events import ChangeEvent, Position

#: fault class -> the one anomaly the checker must report for it
FAULTS: dict[str, str] = {
    "drop": "lost",
    "duplicate": "duplicate",
    "invent": "phantom",
    "reorder": "reordered",
    "corrupt-before": "before-mismatch",
    "corrupt-after": "after-mismatch",
    "lose-before": "missing-before",
    "split-update": "op-mismatch",
    "wrong-columns": "schema",
    "tear-txn": "torn-txn",
    "diverge": "divergence",
}
#: extra fault: an exact repeat at the *same* position (allowed for at-least-once delivery)
REDELIVER = "redeliver"
ROW_OPS = ("insert", "update", "delete")


def perturb(v: Any) -> Any:
    """A different value of the same logical type, or None when there is no safe one."""
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v + 1
    if isinstance(v, float):
        return v + 1.5 if v == v and abs(v) != float("inf") else None
    if isinstance(v, Decimal):
        return v + 1 if v.is_finite() else None
    if isinstance(v, str):
        return v + "~"
    if isinstance(v, bytes):
        return v + b"!"
    if isinstance(v, dt.datetime):
        return v + dt.timedelta(seconds=1)
    if isinstance(v, dt.date):
        return v + dt.timedelta(days=1)
    return None


def _after(p: Position) -> Position:
    """A position just after ``p`` and before any position that followed it."""
    return (*p, 1)


def _perturbable(image: dict | None, key_columns: Sequence[str]) -> list[str]:
    if not image:
        return []
    return sorted(c for c, v in image.items() if c not in key_columns and v is not None
                  and perturb(v) is not None)


def mutate(events: list[ChangeEvent], fault: str, rng: random.Random,
           key_columns: Sequence[str] = ("id",)) -> list[ChangeEvent] | None:
    """Return ``events`` with one ``fault`` injected, or None when this batch has no place for it."""
    out = list(events)
    rows = [i for i, e in enumerate(out) if e.op in ROW_OPS]
    sizes = Counter(e.txid for e in out)

    def pick(cands: list[int]) -> int | None:
        return rng.choice(cands) if cands else None

    if fault == "drop":
        i = pick(rows)
        return None if i is None else out[:i] + out[i + 1:]
    if fault in ("duplicate", REDELIVER):
        i = pick(rows)
        if i is None:
            return None
        pos = out[i].position if fault == REDELIVER else _after(out[-1].position)
        return [*out, replace(out[i], position=pos)]
    if fault == "invent":
        i = pick([i for i in rows if out[i].op == "insert" and out[i].after])
        if i is None:
            return None
        e = out[i]
        key = tuple(k + 1_000_000_007 if isinstance(k, int) else f"{k}-phantom" for k in e.key)
        after = dict(e.after or {})
        for col, k in zip(key_columns, key, strict=False):
            if col in after:
                after[col] = k
        return [*out, replace(e, key=key, after=after, position=_after(out[-1].position), txid="phantom")]
    if fault == "reorder":
        per_key = defaultdict(list)  # consecutive changes of one key, both alone in their commit
        for i in rows:
            per_key[(out[i].table, out[i].key)].append(i)
        alone = {i for i in rows if sizes[out[i].txid] == 1 and out[i].txid is not None}
        pairs = [(a, b) for idx in per_key.values() for a, b in zip(idx, idx[1:], strict=False)
                 if a in alone and b in alone
                 and (out[a].op, out[a].before, out[a].after) != (out[b].op, out[b].before, out[b].after)]
        if not pairs:
            return None
        a, b = rng.choice(pairs)
        ea, eb = out[a], out[b]
        out[a] = replace(eb, position=ea.position, txid=ea.txid, commit_ts=ea.commit_ts)
        out[b] = replace(ea, position=eb.position, txid=eb.txid, commit_ts=eb.commit_ts)
        return out
    if fault in ("corrupt-before", "corrupt-after"):
        side = "before" if fault == "corrupt-before" else "after"
        ops = ("update", "delete") if side == "before" else ("insert", "update")
        i = pick([i for i in rows if out[i].op in ops and _perturbable(getattr(out[i], side), key_columns)])
        if i is None:
            return None
        image = dict(getattr(out[i], side))
        col = rng.choice(_perturbable(image, key_columns))
        image[col] = perturb(image[col])
        out[i] = replace(out[i], **{side: image})
        return out
    if fault == "lose-before":
        i = pick([i for i in rows if out[i].op in ("update", "delete") and out[i].before is not None])
        if i is None:
            return None
        out[i] = replace(out[i], before=None)
        return out
    if fault == "split-update":
        i = pick([i for i in rows if out[i].op == "update"])
        if i is None:
            return None
        e = out[i]
        split = [replace(e, op="delete", after=None), replace(e, op="insert", before=None, position=_after(e.position))]
        return out[:i] + split + out[i + 1:]
    if fault == "wrong-columns":
        i = pick([i for i in rows if out[i].op in ("insert", "update")
                  and any(c not in key_columns for c in out[i].after or {})])
        if i is None:
            return None
        after = dict(out[i].after or {})
        del after[rng.choice(sorted(c for c in after if c not in key_columns))]
        out[i] = replace(out[i], after=after)
        return out
    if fault == "tear-txn":
        multi = sorted({out[i].txid for i in rows if out[i].txid is not None and sizes[out[i].txid] >= 2},
                       key=repr)
        if not multi:
            return None
        tx = rng.choice(multi)
        members = [i for i, e in enumerate(out) if e.txid == tx]
        for i in members[len(members) // 2:]:
            out[i] = replace(out[i], txid=f"{tx}/torn")
        return out
    if fault == "diverge":
        cands = [i for i, e in enumerate(out) if e.op == "truncate" and sizes[e.txid] == 1
                 and any(x.op == "insert" and x.table == e.table for x in out[i + 1:])]
        i = pick(cands)
        if i is None:
            return None
        moved = replace(out[i], position=_after(out[-1].position))
        return out[:i] + out[i + 1:] + [moved]
    raise ValueError(f"unknown fault {fault!r}; known: {', '.join([*FAULTS, REDELIVER])}")


class Mutant:
    """Wraps an approach (start/poll/ack/stop/crash) and injects one fault into its events, once.

    The fault goes into the first polled batch that has a place for it (``applied`` then holds
    the batch number). ``reorder`` streams across batches; ``diverge`` holds the truncate back
    until the wrapped approach has had nothing to give for ``release_after_s`` (0: its first
    empty poll; use about 0.5 s under the capture loop, which polls while the source writes).
    Positions the mutant invents are mapped back before ``ack`` reaches the wrapped approach.
    """

    def __init__(self, inner: Any, fault: str, seed: int = 0, key_columns: Sequence[str] = ("id",),
                 release_after_s: float = 0.0) -> None:
        if fault not in FAULTS and fault != REDELIVER:
            raise ValueError(f"unknown fault {fault!r}")
        self.inner = inner
        self.fault = fault
        self.rng = random.Random(seed)
        self.key_columns = tuple(key_columns)
        self.name = f"{inner.name}+{fault}"
        self.family = inner.family
        self.capabilities: Capabilities = inner.capabilities
        self.applied: int | None = None
        self._batches = 0
        self._real: dict[Position, Position] = {}
        self._held: ChangeEvent | None = None
        self._last: Position | None = None
        self.release_after_s = release_after_s
        self._quiet_since: float | None = None

    def start(self, ctx: Any, resume: bool = False) -> None:
        self.inner.start(ctx, resume)

    def caught_up(self) -> bool:
        """The wrapped approach's answer, and nothing held back here."""
        inner = getattr(self.inner, "caught_up", None)
        return self._held is None and inner is not None and inner()

    def poll(self, max_events: int, timeout_s: float) -> list[ChangeEvent]:
        got = events_of(self.inner.poll(max_events, timeout_s))  # rewritten one by one
        if got:
            self._last = got[-1].position
            self._quiet_since = None
        elif self._quiet_since is None:
            self._quiet_since = time.monotonic()
        if self.fault == "reorder" and self.applied is None:
            return self._reorder(got)
        if self._held is not None and self._quiet():
            # diverge: the truncate comes back once the stream is quiet, after the later inserts
            held, self._held = self._held, None
            moved = replace(held, position=_after(self._last or held.position))
            self._real[moved.position] = self._last or held.position
            self.applied = self._batches
            return [moved]
        if not got or self.applied is not None or self._held is not None:
            return got
        self._batches += 1
        out = mutate(got, self.fault, self.rng, self.key_columns)
        if out is None:
            return got
        if self.fault == "diverge":
            self._held, out = out[-1], out[:-1]
            return out
        self.applied = self._batches
        real = {e.position for e in got}
        for e in out:
            if e.position not in real:
                self._real[e.position] = got[-1].position
        return out

    def _reorder(self, got: list[ChangeEvent]) -> list[ChangeEvent]:
        """Streaming reorder: hold one change that is alone in its commit; when the next change
        of that key is also alone in its commit, deliver it first, swapping their positions.
        Anything else on that key (or a quiet stream) releases the held change unchanged."""
        if not got:
            if not self._quiet():
                return []
            held, self._held = self._held, None
            return [held] if held is not None else []
        sizes = Counter(e.txid for e in got)
        out: list[ChangeEvent] = []
        for e in got:
            alone = e.op in ROW_OPS and e.txid is not None and sizes[e.txid] == 1
            held = self._held
            if self.applied is not None:
                out.append(e)
            elif held is None:
                if alone and e.op != "delete" and self.rng.random() < 0.5:
                    self._held = e
                else:
                    out.append(e)
            elif (e.table, e.key) != (held.table, held.key) and not (e.op == "truncate" and e.table == held.table):
                out.append(e)
            else:
                self._held = None
                if alone and e.op != "truncate" and (e.op, e.before, e.after) != (held.op, held.before, held.after):
                    self._batches += 1
                    self.applied = self._batches
                    out.append(replace(e, position=held.position, txid=held.txid, commit_ts=held.commit_ts))
                    out.append(replace(held, position=e.position, txid=e.txid, commit_ts=e.commit_ts))
                else:  # release it before e's commit, so no commit is interleaved
                    j = len(out)
                    while j > 0 and out[j - 1].txid == e.txid:
                        j -= 1
                    out[j:j] = [held]
                    out.append(e)
        return out

    def _quiet(self) -> bool:
        """The wrapped approach has had nothing to give for ``release_after_s``."""
        return self._quiet_since is not None and time.monotonic() - self._quiet_since >= self.release_after_s

    def ack(self, position: Position) -> None:
        self.inner.ack(self._real.get(position, position))

    def stop(self) -> None:
        self.inner.stop()

    def crash(self) -> None:
        self.inner.crash()


def mutant_class(inner_cls: type, fault: str, seed: int = 0, key_columns: Sequence[str] = ("id",),
                 release_after_s: float = 0.0) -> type:
    """A registrable approach class (``<name>+<fault>``) that wraps ``inner_cls()`` in a ``Mutant``."""

    class _Wrapped(Mutant):
        name = f"{inner_cls.name}+{fault}"
        family = inner_cls.family
        capabilities = inner_cls.capabilities

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(inner_cls(*args, **kwargs), fault, seed, key_columns, release_after_s)

    _Wrapped.__name__ = _Wrapped.__qualname__ = f"Mutant_{inner_cls.__name__}_{fault.replace('-', '_')}"
    return _Wrapped
