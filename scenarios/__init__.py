"""Scenarios: deterministic, seeded step lists (DML, transactions, DDL, faults) sized by scale."""

from __future__ import annotations

from collections.abc import Callable

from harness.errors import InvalidPlugin, UnknownId
from harness.steps import Scenario

SCALES = ("smoke", "default", "large")
#: A scenario factory: (seed, scale, supported logical types) -> Scenario.
Factory = Callable[[int, str, frozenset[str]], Scenario]

#: what a scenario exercises (Allure's "story"; one word group a user filters by)
DML, TRANSACTIONS, TYPES, SCHEMA, FAULTS = "DML", "transactions", "types", "schema evolution", "faults"
KEYS, SHAPES, MAINTENANCE, OTHER = "keys", "table shapes", "table maintenance", "other"
#: the built-in scenarios' kinds (a plugin passes ``kind=`` to ``register``)
KINDS: dict[str, str] = {
    **dict.fromkeys(("crud", "bulk", "bulk-copy", "truncate"), DML),
    **dict.fromkeys(("txn", "long-txn", "savepoint", "multi-table-txn", "large-txn-abort"), TRANSACTIONS),
    **dict.fromkeys(("types", "mysql-types", "toast"), TYPES),
    **dict.fromkeys(("reader-crash", "source-restart", "net-drop", "net-partition", "connect-crash", "broker-restart",
                     "sink-crash-before-commit", "sink-crash-after-commit"), FAULTS),
    **dict.fromkeys(("pk-update", "composite-key"), KEYS),
    **dict.fromkeys(("partitioned", "generated-columns", "no-key"), SHAPES),
    "compaction": MAINTENANCE,
}


class ScenarioRegistry:
    """Scenario factories by id; engine-specific modules add theirs with ``register``."""

    def __init__(self) -> None:
        self._by_name: dict[str, Factory] = {}
        self._families: dict[str, frozenset[str] | None] = {}
        self._roles: dict[str, frozenset[str]] = {}
        self._without: dict[str, frozenset[str]] = {}
        self._kinds: dict[str, str] = {}

    def register(self, name: str, factory: Factory, families: frozenset[str] | None = None,
                 roles: frozenset[str] = frozenset(), without_roles: frozenset[str] = frozenset(),
                 kind: str | None = None) -> None:
        """Add a scenario factory under a stable lowercase id (``families``: only these engines;
        ``roles``: only for approaches whose cases run these engine roles, e.g. ``connect``;
        ``without_roles``: not for approaches whose cases run one of these, e.g. the heavy ones;
        ``kind``: what it exercises, e.g. ``DML`` or ``faults`` — default from ``KINDS``)."""
        if not isinstance(name, str) or not name or name != name.lower() or " " in name or not callable(factory):
            raise InvalidPlugin(f"scenario registration wants a lowercase id and a factory, got {name!r}, {factory!r}")
        self._by_name[name] = factory
        self._families[name] = families
        self._roles[name] = frozenset(roles)
        self._without[name] = frozenset(without_roles)
        self._kinds[name] = kind or KINDS.get(name) or (SCHEMA if name.startswith("schema-") else OTHER)

    def kind(self, name: str) -> str:
        """What scenario ``name`` exercises (``DML``, ``transactions``, ``faults``, ...; ``other``)."""
        return self._kinds.get(name) or KINDS.get(name) or OTHER

    def applies(self, name: str, family: str, roles: tuple[str, ...] | None = None) -> bool:
        """True when scenario ``name`` runs on engine ``family`` with a case's ``roles``."""
        allowed = self._families.get(name)
        if allowed is not None and family not in allowed:
            return False
        if roles is None:
            return True
        have = set(roles)
        return self._roles.get(name, frozenset()) <= have and not self._without.get(name, frozenset()) & have

    def get(self, name: str) -> Factory:
        """The factory for ``name``; unknown ids raise with the list of valid ones."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownId(f"unknown scenario {name!r}; valid ids: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """All ids in registration order."""
        return list(self._by_name)


def register_builtin_scenarios(reg: ScenarioRegistry) -> None:
    """Add the built-in scenarios to ``reg`` (the plugin's ``pytest_cdc_scenarios``)."""
    from scenarios import core, faults, kafka, keys, pipeline, schema, shapes, tables_maintenance

    for module in (core, schema, faults):
        for name, factory in module.SCENARIOS.items():
            reg.register(name, factory)
    for name, factory in tables_maintenance.SCENARIOS.items():
        reg.register(name, factory, frozenset({"delta", "iceberg"}))
    for name, factory in keys.SCENARIOS.items():  # on Spark in all breadth only (harness.breadth)
        reg.register(name, factory)
    for name, (factory, families) in shapes.LIGHT_SCENARIOS.items():  # on JVM engines in all breadth only
        reg.register(name, factory, families)
    from scenarios.mysql import MYSQL_SCENARIOS, SHARED
    from scenarios.postgres import EVERY_FAMILY, POSTGRES_SCENARIOS

    for name, factory in POSTGRES_SCENARIOS.items():
        relational = frozenset({"postgres", "mysql"} if name in SHARED else {"postgres"})
        families = None if name in EVERY_FAMILY else relational
        reg.register(name, _adapt(factory), families)
    for name, factory in MYSQL_SCENARIOS.items():
        reg.register(name, _adapt(factory), frozenset({"mysql"}))
    for name, (factory, roles) in (*kafka.SCENARIOS.items(), *pipeline.SCENARIOS.items()):
        reg.register(name, factory, frozenset({"postgres", "mysql"}), roles=roles)


def default_registry() -> ScenarioRegistry:
    """A registry holding only the built-in scenarios (for tools and tests outside pytest)."""
    reg = ScenarioRegistry()
    register_builtin_scenarios(reg)
    return reg


def _adapt(factory: Callable[..., Scenario]) -> Factory:
    def build(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
        return factory(seed, scale)
    return build
