"""The one configuration object passed down from the suite to engines, sources and approaches."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunContext:
    """Everything one approach × scenario run needs to know.

    ``run_id`` and ``worker`` make names (slots, tables, topics) unique across xdist workers
    and runs; ``workdir`` is a private 0700 directory removed after the run; ``engine`` is the
    started engine the source writes to and the approach reads from; ``settings`` are the
    per-engine semantics parameters (e.g. ``replica_identity``); ``timeout_s`` bounds every wait.
    """

    run_id: str
    worker: str
    workdir: Path
    engine: Any
    seed: int = 0
    scale: str = "default"
    settings: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 60.0
    #: the scenario's tables (name -> TableSpec) once the source created them
    tables: dict[str, Any] = field(default_factory=dict)

    @property
    def name_prefix(self) -> str:
        """A lowercase identifier safe for slot/table/topic names, unique per worker and run."""
        return f"cdc_{self.worker}_{self.run_id}".lower().replace("-", "_")
