"""The approach contract (start/poll/ack/stop/crash), its base class and the registry."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from harness.capabilities import Capabilities
from harness.context import RunContext
from harness.errors import InvalidPlugin, UnknownId
from harness.events import ChangeEvent, Position

#: what ``poll`` returns: ChangeEvents and/or Arrow event batches (``pyarrow.RecordBatch``/``Table``)
Polled = list[ChangeEvent] | Any


@runtime_checkable
class Approach(Protocol):
    """One CDC method under test.

    Contract:
    - ``start(ctx, resume=False)``: connect and begin capturing every change committed *after*
      ``start`` returns (table creation excluded). ``start(ctx, resume=True)`` is a restarted
      process: the approach finds its position in its *own* durable state (a replication slot,
      Kafka/Connect offsets, a checkpoint it wrote in ``ctx.workdir`` at ``start`` and on every
      ``ack``) and delivers every change after it. The harness never hands it a position.
    - ``poll(max_events, timeout_s)``: return captured events in position order, waiting at
      most ``timeout_s``; ``[]`` means nothing arrived in that time. May return more than
      ``max_events`` to keep one commit whole. Each event's ``captured_at`` is stamped on receipt.
      The events are a list of ``ChangeEvent`` and/or Arrow event batches, or one batch
      (``pyarrow.RecordBatch`` or ``Table`` in the shape ``harness.columnar`` documents:
      ``table``, ``op``, ``key``, ``before``, ``after``, ``position`` as ``list<int64>``,
      optional ``txid``, ``commit_ts``, ``captured_at``, ``old_key``), which the harness keeps
      and checks without a Python object per row. A wrapper that rewrites events one by one
      takes them as ``ChangeEvent`` with ``harness.columnar.events_of``.
    - ``ack(position)``: durable progress: after a crash, ``start(resume=True)`` resumes after it.
    - ``stop()``: graceful shutdown, releasing connections. ``crash()``: abrupt, no ack, no flush.
    - optional ``caught_up() -> bool``: True when the approach has read everything its source
      has committed so far (lets a failing run end before its deadline).
    - optional, for ``Capabilities.net_per_commit``: ``commit_log(ctx)``, the boundaries its sink
      recorded in each commit (``harness.netcommit.SinkCommit``); optional
      ``run_measurements(ctx) -> dict``: figures about the run added to the verdict's measurements.
    Adapters contain no metric code: lag and throughput are derived by the suite.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def start(self, ctx: RunContext, resume: bool = False) -> None: ...
    def poll(self, max_events: int, timeout_s: float) -> Polled: ...
    def ack(self, position: Position) -> None: ...
    def stop(self) -> None: ...
    def crash(self) -> None: ...


class BaseApproach:
    """Convenience base: stores the context, keeps a durable checkpoint file in the workdir.

    ``save_checkpoint(state)`` writes a JSON document atomically (temp file, rename) to
    ``ctx.workdir/<name>.checkpoint.json``; ``load_checkpoint()`` reads it back after a restart
    (None when the process never wrote one). ``crash`` defaults to dropping state without ack.

    Durable against what the harness injects: a crash of the reader process (the renamed file is
    in the kernel's page cache, a killed process cannot undo it) and of the engines. Not fsynced
    unless ``checkpoint_fsync`` (no fault here crashes the host): an fsync per ack took 1.9 ms
    (p99 13 ms) on this machine's disk and, paid on every ack of the capture loop, raised
    mysql-binlog's lag p50 at 1k changes/s offered from 5 ms to 760 ms in one run (load 12–14).
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: extra engine roles the approach reads from besides its family's (e.g. ``("kafka",)``)
    roles: ClassVar[tuple[str, ...]] = ()
    #: fsync the checkpoint before its rename (durable across a host crash, at a disk flush per ack)
    checkpoint_fsync: ClassVar[bool] = False
    #: the capture loop's reader thread acks at most this often while events keep coming (at once
    #: when a poll comes back empty and before the loop pauses); 0: after every poll. For an
    #: approach whose ``ack`` is a round trip in its read path (a Kafka commit)
    ack_every_s: ClassVar[float] = 0.0

    def __init__(self) -> None:
        self.ctx: RunContext | None = None

    def start(self, ctx: RunContext, resume: bool = False) -> None:
        self.ctx = ctx

    def poll(self, max_events: int, timeout_s: float) -> Polled:
        raise NotImplementedError

    def ack(self, position: Position) -> None:
        pass

    def checkpoint_path(self) -> Path:
        """This approach's durable state file in the run's workdir."""
        assert self.ctx is not None, "start() first"
        return Path(self.ctx.workdir) / f"{self.name}.checkpoint.json"

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Atomically replace the checkpoint with ``state`` (JSON; tuples become lists)."""
        path = self.checkpoint_path()
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            json.dump(state, fh)
            if self.checkpoint_fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last saved checkpoint, or None when there is none."""
        path = self.checkpoint_path()
        if not path.exists():
            return None
        return json.loads(path.read_text())

    def stop(self) -> None:
        pass

    def crash(self) -> None:
        self.stop()


def claims(approach_cls: type, settings: dict | None = None) -> Capabilities:
    """An approach's capabilities under engine settings (``capabilities_for`` when it has one)."""
    for_settings = getattr(approach_cls, "capabilities_for", None)
    if for_settings is not None:
        return for_settings(dict(settings or {}))
    return approach_cls.capabilities


class ApproachRegistry:
    """Approach classes by id, filled through the ``pytest_cdc_approaches`` hook."""

    def __init__(self) -> None:
        self._by_name: dict[str, type] = {}

    def register(self, cls: type) -> type:
        """Add (or replace, for wrapping) an approach class; returns it, so it works as decorator."""
        where = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)!s}"
        if not isinstance(cls, type):
            raise InvalidPlugin(f"registry.register() wants an approach class, got {cls!r}")
        name = getattr(cls, "name", "")
        if not isinstance(name, str) or not name or name != name.lower() or " " in name:
            raise InvalidPlugin(f"approach {where} needs a lowercase id in `name` (e.g. name = \"my-cdc\"), "
                                f"got {name!r}")
        for attr in ("family", "capabilities"):
            if not getattr(cls, attr, None):
                raise InvalidPlugin(f"approach {name!r} ({where}) must set `{attr}`")
        for method in ("start", "poll", "ack", "stop", "crash"):
            if not callable(getattr(cls, method, None)):
                raise InvalidPlugin(f"approach {name!r} ({where}) lacks the method `{method}`")
        self._by_name[name] = cls
        return cls

    def get(self, name: str) -> type:
        """The class registered under ``name``; unknown ids raise with the list of valid ones."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownId(f"unknown approach {name!r}; valid ids: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """All registered ids, sorted."""
        return sorted(self._by_name)

    def select(self, wanted: Iterable[str] | None) -> list[type]:
        """Classes for ``wanted`` ids (all when None), validating every id."""
        if not wanted:
            return [self._by_name[n] for n in self.names()]
        return [self.get(n) for n in wanted]
