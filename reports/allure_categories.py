"""Allure's Categories tab for CDC: one category per anomaly kind, known findings, gaps, errors.

Written as ``categories.json`` into the results directory. Every category matches the stable
``[cdc:…]`` markers of ``harness/outcomes.py`` in the status message, never the traceback: a
failure is classified by what went wrong. Allure puts a result in every category it matches, so a
failure with two anomaly kinds shows under both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import outcomes

#: (category name, anomaly kinds it gathers, what it means) — every kind of the checker once
ANOMALY_CATEGORIES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Lost changes", ("lost",), "a committed change never captured by the deadline"),
    ("Duplicates", ("duplicate",), "a change captured more than once (beyond allowed redelivery)"),
    ("Phantoms", ("phantom",), "a change captured that was never committed"),
    ("Reordering", ("reordered",), "per-key order differs from commit order"),
    ("Torn transactions", ("torn-txn",), "a transaction split across positions or interleaved"),
    ("Image mismatches", ("before-mismatch", "after-mismatch", "missing-before", "op-mismatch"),
     "a before/after image or the operation differs from what was committed"),
    ("Schema", ("schema",), "after DDL (or a partial image) events carry the wrong columns"),
    ("Divergence", ("divergence",), "replaying the events does not give the source's final table"),
)
KNOWN_FINDINGS = "Known findings"
FINDING_GONE = "Known finding no longer reproduces"
UNSUPPORTED = "Unsupported by the approach"
ENGINE_UNAVAILABLE = "Engine not available"
HARNESS_ERROR = "Harness or engine error"


def categories() -> list[dict[str, Any]]:
    """The categories, in the order the Categories tab lists them."""
    out: list[dict[str, Any]] = [
        {"name": name, "description": what, "matchedStatuses": ["failed"], "messageRegex": outcomes.regex_for(*kinds)}
        for name, kinds, what in ANOMALY_CATEGORIES
    ]
    out += [
        {"name": KNOWN_FINDINGS, "matchedStatuses": ["skipped"],
         "messageRegex": outcomes.regex_for(outcomes.KNOWN_FINDING),
         "description": "strict expected failures of suites/findings.py: a real tool's real anomaly"},
        {"name": FINDING_GONE, "matchedStatuses": ["failed"],
         "messageRegex": outcomes.regex_for(outcomes.FINDING_GONE),
         "description": "a known finding passed: update suites/findings.py"},
        {"name": UNSUPPORTED, "matchedStatuses": ["skipped"],
         "messageRegex": outcomes.regex_for(outcomes.UNSUPPORTED),
         "description": "the scenario needs a capability the approach does not claim (the reason says which)"},
        {"name": ENGINE_UNAVAILABLE, "matchedStatuses": ["skipped"],
         "messageRegex": outcomes.regex_for(outcomes.ENGINE_UNAVAILABLE),
         "description": "an engine the case needs could not be started or reached (the reason has the fix)"},
        {"name": HARNESS_ERROR, "matchedStatuses": ["failed", "broken"],
         "messageRegex": outcomes.regex_without_markers(),
         "description": "anything else: an exception in the harness, a driver or an engine"},
    ]
    return out


def write_categories(results_dir: str | Path) -> Path:
    """Write ``categories.json`` into an Allure results directory (made if missing); return its path."""
    path = Path(results_dir) / "categories.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(categories(), indent=1), encoding="utf-8")
    return path
