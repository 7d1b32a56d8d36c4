"""Stable markers in a conformance test's failure, xfail and skip messages, so reports classify by cause.

A message starts with one or more ``[cdc:TOKEN]`` markers, then the human text:
``[cdc:lost] [cdc:phantom] delta-cdf-crud: fail: lost=2, phantom=2``. The tokens are the anomaly
kinds of ``harness.verdict.ANOMALIES`` and the outcome tokens below. Allure's categories
(``reports/allure_categories.py``) match them with ``messageRegex``; a message without a marker is
a harness or engine error. The tokens are public: renaming one is a breaking change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from harness.verdict import ANOMALIES

#: a strict expected failure of ``suites/findings.py`` (a real tool's real anomaly)
KNOWN_FINDING = "known-finding"
#: a known finding that shows up only on some runs (``RACES``)
TIMING = "timing"
#: a known finding that no longer reproduces (the findings table needs an update)
FINDING_GONE = "finding-gone"
#: the scenario needs a capability the approach does not claim (or a fault the engine lacks)
UNSUPPORTED = "unsupported"
#: an engine the case needs could not be started or reached (a skip under ``--cdc-engines=auto``)
ENGINE_UNAVAILABLE = "engine-unavailable"
OUTCOMES: tuple[str, ...] = (KNOWN_FINDING, TIMING, FINDING_GONE, UNSUPPORTED, ENGINE_UNAVAILABLE)
TOKENS: tuple[str, ...] = (*ANOMALIES, *OUTCOMES)

_MARKER = re.compile(r"\[cdc:([a-z-]+)\]")


def marker(token: str) -> str:
    """``[cdc:TOKEN]`` for one known token (an unknown one raises ``ValueError``)."""
    if token not in TOKENS:
        raise ValueError(f"unknown outcome token {token!r}; known: {', '.join(TOKENS)}")
    return f"[cdc:{token}]"


def tagged(tokens: Iterable[str], text: str) -> str:
    """``text`` prefixed with the markers of ``tokens`` (in the given order, without repeats)."""
    seen = list(dict.fromkeys(tokens))
    return " ".join([*(marker(t) for t in seen), text]) if seen else text


def anomaly_tokens(kinds: Iterable[str]) -> list[str]:
    """The anomaly kinds of a verdict, in the checker's order."""
    have = set(kinds)
    return [k for k in ANOMALIES if k in have]


def tokens_in(message: str | None) -> list[str]:
    """The known tokens a message carries (for tests and tools)."""
    return [t for t in _MARKER.findall(message or "") if t in TOKENS]


def regex_for(*tokens: str) -> str:
    """A Java/Python regex matching a whole message (Allure uses ``matches()``) that holds the
    marker of one of ``tokens``."""
    alternatives = "|".join(re.escape(marker(t)) for t in tokens)
    return rf"(?s).*(?:{alternatives}).*"


def regex_without_markers() -> str:
    """A regex matching a whole message that carries no known marker: a harness or engine error."""
    alternatives = "|".join(re.escape(t) for t in TOKENS)
    return rf"(?s)(?!.*\[cdc:(?:{alternatives})\]).*"
