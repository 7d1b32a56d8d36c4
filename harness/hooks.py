"""Hook specifications the harness adds to pytest (registered with ``pytest_addhooks``)."""

from __future__ import annotations

from harness.approach import ApproachRegistry


def pytest_cdc_approaches(registry: ApproachRegistry) -> None:
    """Register CDC approaches: call ``registry.register(cls)`` for each (or wrap a built-in
    one: ``registry.register(wrap(registry.get("delta-cdf")))``). Every plugin's implementation
    is called; built-ins register first, so a user's plugin may replace them."""
