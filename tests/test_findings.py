"""The known-findings table: release-dependent entries apply only to the releases that show them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location("cdc_findings", Path(__file__).parents[1] / "suites" / "findings.py")
assert _SPEC is not None and _SPEC.loader is not None
findings = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(findings)

GENERATED_FULL = ("mysql-binlog", "generated-columns", (("binlog_row_image", "full"), ("binlog_row_metadata", "full")))


def test_a_release_dependent_finding_applies_from_its_release_only() -> None:
    """MariaDB 11.8 drops the stored generated column from update images; 10.11 does not, and an
    unknown version must not hide a failure."""
    approach, scenario, settings = GENERATED_FULL
    found = findings.known_finding(approach, scenario, settings, {"MariaDB": "11.8.9"})
    assert found is not None and found[0] == frozenset({"schema"})
    assert findings.known_finding(approach, scenario, settings, {"MariaDB": "10.11.19"}) is None
    assert findings.known_finding(approach, scenario, settings, {"PostgreSQL": "15.20"}) is None
    assert findings.known_finding(approach, scenario, settings) is None
    assert findings.known_finding(approach, scenario, settings, {"MariaDB": "unknown"}) is None


def test_release_parsing() -> None:
    assert findings._release("11.8.9") == (11, 8, 9)
    assert findings._release("10.11.19-log") == (10, 11, 19)
    assert findings._release("8.4.3") < (11,)
    assert findings._release("") is None and findings._release(None) is None


def test_release_dependent_entries_are_not_also_unconditional() -> None:
    """An entry in both tables would apply to every release: the version condition would be dead."""
    assert not set(findings.BY_VERSION) & set(findings.FINDINGS)
