"""The checker's verdict: pass/fail/unsupported, anomaly counts, examples and measurements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ANOMALIES: tuple[str, ...] = (
    "lost",
    "duplicate",
    "phantom",
    "reordered",
    "torn-txn",
    "before-mismatch",
    "after-mismatch",
    "missing-before",
    "op-mismatch",
    "schema",
    "divergence",
)
MAX_EXAMPLES = 5


@dataclass
class Verdict:
    """Outcome of one approach × scenario run.

    ``status`` is ``pass`` when no anomaly was counted, ``fail`` otherwise, ``unsupported``
    when the scenario needs something the approach or engine cannot do (``reason`` says what).
    ``anomalies`` maps anomaly name to count (only non-zero ones); ``examples`` holds the first
    few of each; ``measurements`` holds lag percentiles, event counts and rates.
    """

    status: str
    reason: str = ""
    anomalies: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[Any]] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def unsupported(cls, reason: str) -> Verdict:
        """A verdict for a scenario the approach or engine cannot run."""
        return cls(status="unsupported", reason=reason)

    @property
    def passed(self) -> bool:
        """True for a pass (an unsupported run is not a pass)."""
        return self.status == "pass"

    def summary(self) -> str:
        """One line: status and anomaly counts."""
        if self.status == "unsupported":
            return f"unsupported: {self.reason}"
        if not self.anomalies:
            return "pass"
        return "fail: " + ", ".join(f"{k}={v}" for k, v in self.anomalies.items())
