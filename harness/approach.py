"""The approach contract (start/poll/ack/stop/crash), its base class and the registry."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

from harness.capabilities import Capabilities
from harness.context import RunContext
from harness.errors import UnknownId
from harness.events import ChangeEvent, Position


@runtime_checkable
class Approach(Protocol):
    """One CDC method under test.

    Contract:
    - ``start(ctx, resume_from)``: connect and begin capturing. With ``resume_from=None`` the
      approach captures every change committed *after* ``start`` returns (table creation
      excluded); with a position it delivers every change after that acknowledged position.
    - ``poll(max_events, timeout_s)``: return captured events in position order, waiting at
      most ``timeout_s``; ``[]`` means nothing arrived in that time. May return more than
      ``max_events`` to keep one commit whole. Each event's ``captured_at`` is stamped on receipt.
    - ``ack(position)``: durable progress; a later ``start(resume_from=position)`` resumes after it.
    - ``stop()``: graceful shutdown, releasing connections. ``crash()``: abrupt, no ack, no flush.
    Adapters contain no metric code: lag and throughput are derived by the suite.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def start(self, ctx: RunContext, resume_from: Position | None = None) -> None: ...
    def poll(self, max_events: int, timeout_s: float) -> list[ChangeEvent]: ...
    def ack(self, position: Position) -> None: ...
    def stop(self) -> None: ...
    def crash(self) -> None: ...


class BaseApproach:
    """Convenience base: stores the context; ``crash`` defaults to dropping state without ack."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: Python packages the approach imports, checked before start (missing → skip with hint).
    requires_packages: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None

    def __init__(self) -> None:
        self.ctx: RunContext | None = None

    def start(self, ctx: RunContext, resume_from: Position | None = None) -> None:
        self.ctx = ctx

    def poll(self, max_events: int, timeout_s: float) -> list[ChangeEvent]:
        raise NotImplementedError

    def ack(self, position: Position) -> None:
        pass

    def persist_offset(self, position: Position) -> None:
        """Durably record an acknowledged position in the run's workdir (``<name>.offset``)."""
        assert self.ctx is not None, "start() first"
        (Path(self.ctx.workdir) / f"{self.name}.offset").write_text(json.dumps(list(position)))

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
        name = getattr(cls, "name", "")
        if not name or name != name.lower() or " " in name:
            raise ValueError(f"approach {cls!r} needs a lowercase id in `name`, got {name!r}")
        for attr in ("family", "capabilities"):
            if not getattr(cls, attr, None):
                raise ValueError(f"approach {name!r} must set `{attr}`")
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
