"""The one configuration object passed down from the suite to engines, sources and approaches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import EngineUnavailable


@dataclass
class RunContext:
    """Everything one approach × scenario run needs to know.

    ``run_id`` and ``worker`` (plus ``case``, one number per case in the session) make names
    (slots, tables, topics, consumer groups) unique across xdist workers and runs;
    ``workdir`` is a private directory of this run, kept across reader restarts (approaches
    keep their durable checkpoints there); ``engines`` are the started engines by role
    (``postgres``, ``kafka``, ``connect``, ``delta``, ...), ``source_role`` the one the source
    writes to; ``settings`` are the per-engine semantics parameters (e.g. ``replica_identity``);
    ``timeout_s`` bounds every single wait; ``deadline_s`` is how long the drain waits for a
    slow reader before the changes still missing are named ``lost``.
    """

    run_id: str
    worker: str
    workdir: Path
    engines: Mapping[str, Any] = field(default_factory=dict)
    source_role: str = ""
    seed: int = 0
    scale: str = "default"
    settings: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 60.0
    deadline_s: float = 60.0
    case: int = 0
    #: the scenario's tables (name -> TableSpec) once the source created them
    tables: dict[str, Any] = field(default_factory=dict)

    @property
    def engine(self) -> Any:
        """The engine the source writes to (``engines[source_role]``)."""
        return self.role(self.source_role or next(iter(self.engines), ""))

    def role(self, role: str) -> Any:
        """The started engine playing ``role``; a clear error when the case has none."""
        try:
            return self.engines[role]
        except KeyError:
            raise EngineUnavailable(f"this run has no {role!r} engine (roles: {', '.join(self.engines) or 'none'}); "
                                    "declare it in the approach's `roles` or its family's") from None

    @property
    def name_prefix(self) -> str:
        """A lowercase identifier safe for slot/table/topic names, unique per worker, run and case."""
        return f"cdc_{self.worker}_{self.run_id}_{self.case}".lower().replace("-", "_")
