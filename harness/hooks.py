"""Hook specifications the harness adds to pytest (registered with ``pytest_addhooks``)."""

from __future__ import annotations

from typing import Any


def pytest_cdc_approaches(registry: Any) -> None:
    """Register CDC approaches: call ``registry.register(cls)`` for each (or wrap a built-in
    one: ``registry.register(wrap(registry.get("delta-cdf")))``). Every plugin's implementation
    is called; built-ins register first, so a user's plugin may replace them."""


def pytest_cdc_families(registry: Any) -> None:
    """Register engine families and roles: ``registry.register(Family(...))`` and
    ``registry.register_role(EngineRole(...))`` (see ``harness.families``). Built-ins first."""


def pytest_cdc_scenarios(registry: Any) -> None:
    """Register scenarios: ``registry.register(name, factory, families=None)`` where
    ``factory(seed, scale, supported_types) -> Scenario`` (see ``scenarios``). Built-ins first."""
