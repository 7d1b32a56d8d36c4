"""The plugin's user-facing behaviour: selection by id, bad input, and a user's own approach."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.chdir()
    env_path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    pytester._monkeypatch.setenv("PYTHONPATH", env_path)
    return pytester.runpytest_subprocess(str(ROOT / "suites" / "test_conformance.py"), "-p", "no:cacheprovider",
                                         "--rootdir", str(ROOT), *args, timeout=300)


def test_unknown_approach_lists_valid_ids(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--cdc-approaches=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown approach 'nope'; valid ids:*delta-cdf*iceberg-snapshot-diff*"])


def test_unknown_scenario_lists_valid_ids(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--cdc-scenarios=crud,bogus")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown scenario 'bogus'; valid ids:*crud*"])


@pytest.mark.parametrize("option, message", [
    ("--cdc-scale=huge", "*--cdc-scale must be one of smoke, default, large*"),
    ("--cdc-seed=abc", "*--cdc-seed must be an integer*"),
    ("--cdc-engines=cloud", "*--cdc-engines must be one of*"),
    ("--cdc-engine-url=postgres", "*--cdc-engine-url wants FAMILY=URL*"),
])
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, option: str, message: str) -> None:
    result = run(pytester, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_ids_select_with_k(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--collect-only", "-q", "-k", "delta and schema")
    out = result.stdout.str()
    assert "test_conformance[delta-cdf-schema-add]" in out
    assert "iceberg" not in out and "delta-cdf-crud" not in out


def test_user_approach_in_one_file(pytester: pytest.Pytester, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    result = run(pytester, "-p", "examples.my_approach", "--cdc-approaches=delta-cdf-batched",
                 "--cdc-scenarios=crud,txn", "--cdc-scale=smoke", f"--cdc-results={results}",
                 "-k", "not writer-spark")  # the tables delta-rs wrote (Spark's: the suite's interop cells)
    result.assert_outcomes(passed=2)
    doc = json.loads(results.read_text())
    assert doc["schema"] == 1
    assert [(r["approach"], r["scenario"], r["verdict"]) for r in doc["results"]] == [
        ("delta-cdf-batched", "crud", "pass"), ("delta-cdf-batched", "txn", "pass")]
    assert doc["results"][0]["events"] > 0 and doc["results"][0]["lag_ms"]["p50"] is not None
