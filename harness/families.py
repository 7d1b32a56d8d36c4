"""Engine families and engine roles: which source writes to a family and which engines it needs.

A *role* (``postgres``, ``kafka``, ``connect``, ``delta``, ...) names one kind of engine and how
it is obtained: ``provider(options, worker, run_id) -> Engine`` (started), once per xdist worker
and shared by the runs, or fresh for every run when ``per_run`` (embedded folders). A *family*
names the source class that writes to it and the roles every case of it needs; an approach may
add roles of its own (``Approach.roles``, e.g. Debezium adds ``kafka`` and ``connect``) and
settings variants of its own (``Approach.variants``, combined with the family's). A role may
run on others (``EngineRole.needs``: Connect needs a Kafka broker). A family may have other
writers (``Family.writers``), chosen by a case's ``writer`` setting: their own source class and
extra roles (Spark writes Delta and Iceberg tables beside delta-rs and pyiceberg), so every
reader of the family is checked on tables each writer wrote.
Both are pluggable through the ``pytest_cdc_families`` hook.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import InvalidPlugin, UnknownId


@dataclass(frozen=True)
class EngineRole:
    """One kind of engine: its provider (``module:function`` or a callable) and its lifetime."""

    name: str
    provider: str | Callable[..., Any]
    per_run: bool = False
    #: roles this engine runs on (started first and passed as ``needs={role: engine}``)
    needs: tuple[str, ...] = ()

    def start(self, options: Any, worker: str, run_id: str, needs: dict[str, Any] | None = None) -> Any:
        """Obtain and start the engine (raises ``EngineUnavailable`` with the fix)."""
        make = _load(self.provider) if isinstance(self.provider, str) else self.provider
        if self.needs:
            return make(options, worker, run_id, needs=needs or {})
        return make(options, worker, run_id)


@dataclass(frozen=True)
class Family:
    """A family of engines: its source class (``module:Class``), roles and settings variants."""

    name: str
    source: str
    roles: tuple[str, ...]
    #: settings that change semantics, run as separate cases: scenario id (or "*") -> variants
    variants: tuple[tuple[str, tuple[dict, ...]], ...] = ()
    #: other writers, chosen by the ``writer`` setting: (name, source ``module:Class``, extra roles)
    writers: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    #: the name of the family's own writer (shown in the interop matrix), e.g. ``delta-rs``
    writer: str = ""
    #: settings of a variant that the reader must apply to its own session (a case carrying one
    #: needs an approach whose capabilities list it in ``settings``; else it is ``unsupported``)
    reader_settings: frozenset[str] = frozenset()

    def writer_name(self, settings: Mapping[str, Any] | None = None) -> str:
        """Which writer a case's tables come from (``""`` for a family without other writers)."""
        return dict(settings or {}).get("writer") or (self.writer if self.writers else "")

    @property
    def source_role(self) -> str:
        """The role of the engine the source writes to (the first one)."""
        return self.roles[0]

    def variants_for(self, scenario: str) -> tuple[dict, ...]:
        """The settings variants a scenario runs with on this family (``({},)`` when none)."""
        table = dict(self.variants)
        return table.get(scenario) or table.get("*") or ({},)

    def source_class(self, settings: Mapping[str, Any] | None = None) -> type:
        """Import the source class of the case's writer (the family's own without a ``writer``)."""
        return _load(self._writer(settings)[1])

    def writer_roles(self, settings: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        """The extra roles the case's writer needs (none for the family's own source)."""
        return self._writer(settings)[2]

    def _writer(self, settings: Mapping[str, Any] | None) -> tuple[str, str, tuple[str, ...]]:
        name = dict(settings or {}).get("writer")
        if name is None:
            return ("", self.source, ())
        for writer in self.writers:
            if writer[0] == name:
                return writer
        raise UnknownId(f"family {self.name!r} has no writer {name!r}; known: "
                        f"{', '.join(w[0] for w in self.writers) or 'none'}")


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


class FamilyRegistry:
    """Families and engine roles by name, filled through the ``pytest_cdc_families`` hook."""

    def __init__(self) -> None:
        self.families: dict[str, Family] = {}
        self.roles: dict[str, EngineRole] = {}

    def register(self, family: Family) -> Family:
        """Add (or replace) a family."""
        if not isinstance(family, Family) or not family.name or not family.roles:
            raise InvalidPlugin(f"registry.register() wants a Family with a name and roles, got {family!r}")
        self.families[family.name] = family
        return family

    def register_role(self, role: EngineRole) -> EngineRole:
        """Add (or replace) an engine role."""
        if not isinstance(role, EngineRole) or not role.name:
            raise InvalidPlugin(f"registry.register_role() wants an EngineRole, got {role!r}")
        self.roles[role.name] = role
        return role

    def get(self, name: str) -> Family:
        """The family ``name``; unknown names raise with the list of known ones."""
        try:
            return self.families[name]
        except KeyError:
            raise UnknownId(f"unknown engine family {name!r}; known: {', '.join(sorted(self.families))}") from None

    def role(self, name: str) -> EngineRole:
        """The engine role ``name``; unknown names raise with the list of known ones."""
        try:
            return self.roles[name]
        except KeyError:
            raise UnknownId(f"unknown engine role {name!r}; known: {', '.join(sorted(self.roles))}") from None

    def roles_for(self, approach_cls: type, settings: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        """Every role a case of this approach needs: its family's, then its own extra ones, then
        its writer's (``settings["writer"]``)."""
        family = self.get(approach_cls.family)
        out = list(family.roles)
        for role in (*getattr(approach_cls, "roles", ()), *family.writer_roles(settings)):
            if role not in out:
                out.append(role)
        return tuple(out)

    def variants_for(self, approach_cls: type, scenario: str) -> tuple[dict, ...]:
        """The settings variants of one approach × scenario: the family's for the scenario,
        each combined with the approach's own (``Approach.variants``, same shape)."""
        family = self.get(approach_cls.family).variants_for(scenario)
        own = Family("", "", ("",), getattr(approach_cls, "variants", ())).variants_for(scenario)
        writers = getattr(approach_cls, "writers", None)  # None: tables every writer of the family wrote
        out: list[dict] = []
        for merged in ({**f, **a} for f in family for a in own):  # an approach's value wins
            if merged not in out and (writers is None or merged.get("writer", "") in writers):
                out.append(merged)
        return tuple(out)

    def validate(self, approach_cls: type) -> None:
        """A one-line ``InvalidPlugin`` when the approach names an unknown family or role."""
        if approach_cls.family not in self.families:
            raise InvalidPlugin(f"approach {approach_cls.name!r} names family {approach_cls.family!r}, which no "
                                f"plugin registers (known: {', '.join(sorted(self.families))}); register it in "
                                "pytest_cdc_families(registry) or fix `family`")
        for role in self.roles_for(approach_cls):
            if role not in self.roles:
                raise InvalidPlugin(f"approach {approach_cls.name!r} needs engine role {role!r}, which no plugin "
                                    f"registers (known: {', '.join(sorted(self.roles))})")


def register_builtin(registry: FamilyRegistry) -> None:
    """The built-in families and engine roles."""
    registry.register_role(EngineRole("delta", "fixtures.engines:delta_warehouse", per_run=True))
    registry.register_role(EngineRole("iceberg", "fixtures.engines:iceberg_warehouse", per_run=True))
    registry.register_role(EngineRole("postgres", "fixtures.engines:postgres_engine"))
    registry.register_role(EngineRole("mysql", "fixtures.engines:mysql_engine"))
    registry.register_role(EngineRole("kafka", "fixtures.engines:kafka_engine"))
    registry.register_role(EngineRole("connect", "fixtures.engines:connect_engine", needs=("kafka",)))
    registry.register_role(EngineRole("spark", "fixtures.engines:spark_engine"))
    registry.register_role(EngineRole("sink", "containers.sink:sink_engine", per_run=True))
    registry.register(Family("delta", "harness.sources.delta:DeltaSource", ("delta",), variants=DELTA_VARIANTS,
                             writer="delta-rs",
                             writers=(("spark", "harness.sources.spark_delta:SparkDeltaSource", ("spark",)),)))
    registry.register(Family("iceberg", "harness.sources.iceberg:IcebergSource", ("iceberg",),
                             variants=ICEBERG_VARIANTS, writer="pyiceberg",
                             writers=(("spark", "harness.sources.spark_iceberg:SparkIcebergSource", ("spark",)),)))
    registry.register(Family(
        "postgres", "harness.sources.postgres:PostgresSource", ("postgres",),
        variants=(("*", ({"replica_identity": "default"}, {"replica_identity": "full"})),
                  ("partitioned", ({"replica_identity": "default"},)),
                  ("no-key", tuple({"replica_identity": r} for r in ("default", "full", "index", "nothing"))),
                  # a walsender memory of 64 kB: the large transactions spill (or stream) at smoke size
                  ("large-txn-abort", ({"replica_identity": "default", "logical_decoding_work_mem": "64kB"},))),
        reader_settings=frozenset({"logical_decoding_work_mem"}),
    ))
    registry.register(Family("mysql", "harness.sources.mysql:MySqlSource", ("mysql",), variants=MYSQL_VARIANTS))


#: the interop matrix: each Delta/Iceberg reader also reads tables Spark wrote, where the writer
#: matters — rows (crud), types, and DDL: Delta's drop/rename/type need column mapping, which only
#: Spark writes; Iceberg also merge-on-read (pitfall 17); compaction (pitfall 18; pyiceberg cannot
#: compact, Spark can). Kept small: every Spark write is a job.
_SPARK = {"writer": "spark"}
DELTA_VARIANTS: tuple[tuple[str, tuple[dict, ...]], ...] = (
    # not crud: its 50 single-row commits are 50 Spark jobs (3.5 min per reader here); types and
    # compaction write inserts, updates and deletes through Spark too
    *((name, ({}, _SPARK)) for name in ("types", "compaction")),
    *((name, ({}, {**_SPARK, "column_mapping": "name"})) for name in ("schema-drop", "schema-rename",
                                                                       "schema-type")),
)
ICEBERG_VARIANTS: tuple[tuple[str, tuple[dict, ...]], ...] = (
    ("crud", ({}, _SPARK, {**_SPARK, "write_mode": "merge-on-read"})),
    *((name, ({}, _SPARK)) for name in ("types", "schema-rename", "compaction")),
)


def _binlog(image: str, metadata: str) -> dict[str, str]:
    return {"binlog_row_image": image, "binlog_row_metadata": metadata}


#: mysql settings variants: binlog_row_image FULL/MINIMAL/NOBLOB (per session) × binlog_row_metadata
#: FULL/MINIMAL (global, set by the engine at case start). Row scenarios run every image with FULL
#: metadata; FULL image with MINIMAL metadata runs where names matter (crud, schema-rename);
#: the large and fault scenarios run FULL/FULL only (keeps the family's suite near two minutes).
_IMAGES = (_binlog("full", "full"), _binlog("minimal", "full"), _binlog("noblob", "full"))
MYSQL_VARIANTS: tuple[tuple[str, tuple[dict, ...]], ...] = (
    ("*", _IMAGES),
    *((name, (*_IMAGES, _binlog("full", "minimal"))) for name in ("crud", "schema-rename")),
    *((name, (_binlog("full", "full"),)) for name in ("bulk", "bulk-copy", "long-txn", "source-restart",
                                                       "net-drop", "net-partition", "partitioned",
                                                       "large-txn-abort")),
)


def builtin_registry() -> FamilyRegistry:
    """A registry holding only the built-ins (for tools and tests outside pytest)."""
    registry = FamilyRegistry()
    register_builtin(registry)
    return registry
