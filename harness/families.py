"""Engine families: which source writes to them and how their engine is obtained."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """A family of engines: its source class and engine provider, as import paths."""

    name: str
    source: str  # "module:Class"
    engine: str  # "module:function(options, worker, run_id) -> Engine"
    embedded: bool = False
    #: settings that change semantics, run as separate cases: scenario id (or "*") -> variants
    variants: tuple[tuple[str, tuple[dict, ...]], ...] = ()

    def variants_for(self, scenario: str) -> tuple[dict, ...]:
        """The settings variants a scenario runs with on this family (``({},)`` when none)."""
        table = dict(self.variants)
        return table.get(scenario) or table.get("*") or ({},)

    def source_class(self) -> type:
        """Import the source class."""
        return _load(self.source)

    def engine_provider(self):  # noqa: ANN201 - returns a callable
        """Import the engine provider function."""
        return _load(self.engine)


def _load(path: str):  # noqa: ANN202
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


FAMILIES: dict[str, Family] = {
    "delta": Family("delta", "harness.sources.delta:DeltaSource", "fixtures.engines:embedded_engine", True),
    "iceberg": Family("iceberg", "harness.sources.iceberg:IcebergSource", "fixtures.engines:embedded_engine", True),
    "postgres": Family(
        "postgres", "harness.sources.postgres:PostgresSource", "fixtures.engines:postgres_engine",
        variants=(("*", ({"replica_identity": "default"}, {"replica_identity": "full"})),),
    ),
}
