"""How big each scenario is at each scale (smoke for CI checks, default for the suite, large as a flag)."""

from __future__ import annotations

SIZES: dict[str, dict[str, int]] = {
    "smoke": {"rows": 12, "ops": 16, "txns": 4, "bulk": 2_000, "type_rows": 8},
    "default": {"rows": 40, "ops": 60, "txns": 16, "bulk": 20_000, "type_rows": 24},
    "large": {"rows": 1_000, "ops": 5_000, "txns": 500, "bulk": 1_000_000, "type_rows": 400},
}


def size(scale: str, what: str) -> int:
    """The count ``what`` at ``scale``."""
    return SIZES[scale][what]
