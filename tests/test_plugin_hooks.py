"""Plugins: malformed registrations are one-line usage errors; families and scenarios plug in."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.chdir()
    env_path = os.pathsep.join([str(pytester.path), str(ROOT), os.environ.get("PYTHONPATH", "")])
    pytester._monkeypatch.setenv("PYTHONPATH", env_path)
    return pytester.runpytest_subprocess(str(ROOT / "suites" / "test_conformance.py"), "-p", "no:cacheprovider",
                                         "--rootdir", str(ROOT), *args, timeout=300)


@pytest.mark.parametrize(("body", "message"), [
    ("class A(BaseApproach):\n    family = 'delta'\n    capabilities = Capabilities()\n",
     "*approach*needs a lowercase id in `name`*"),
    ("class A(BaseApproach):\n    name = 'mine'\n    family = 'nosuch'\n    capabilities = Capabilities()\n",
     "*approach 'mine' names family 'nosuch', which no plugin registers*"),
    ("class A(BaseApproach):\n    name = 'mine'\n    family = 'delta'\n    roles = ('zookeeper',)\n"
     "    capabilities = Capabilities()\n",
     "*approach 'mine' needs engine role 'zookeeper', which no plugin registers*"),
])
def test_malformed_approach_is_a_one_line_usage_error(pytester: pytest.Pytester, body: str, message: str) -> None:
    pytester.makepyfile(badplugin=(
        "from harness.approach import BaseApproach\nfrom harness.capabilities import Capabilities\n"
        f"{body}\ndef pytest_cdc_approaches(registry):\n    registry.register(A)\n"))
    result = run(pytester, "-p", "badplugin", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() and "INTERNALERROR" not in result.stdout.str()


def test_engine_url_for_an_unknown_role_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--cdc-engine-url", "nosuch=x://y", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--cdc-engine-url names 'nosuch', which is no engine role*"])


def test_family_and_scenario_from_a_plugin(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """A plugin adds an engine role + family (a second Delta warehouse under another name), a
    scenario, and an approach of that family: the case runs and passes, under the plugin's ids."""
    pytester.makepyfile(myplugin='''
from harness.approaches.delta_cdf import DeltaCdf
from harness.families import EngineRole, Family
from harness.steps import Insert, Scenario
from scenarios.tables import ITEMS, RowMaker


def lake(options, worker, run_id):
    from containers.engine import DeltaWarehouse
    engine = DeltaWarehouse()
    engine.start()
    return engine


class LakeCdf(DeltaCdf):
    name = "lake-cdf"
    family = "lake"


def three_inserts(seed, scale, types):
    maker = RowMaker(seed)
    return Scenario("three-inserts", (ITEMS,), [Insert("items", maker.item(k)) for k in (1, 2, 3)])


def pytest_cdc_families(registry):
    registry.register_role(EngineRole("lake", lake, per_run=True))
    registry.register(Family("lake", "harness.sources.delta:DeltaSource", ("lake",)))


def pytest_cdc_scenarios(registry):
    registry.register("three-inserts", three_inserts, families=frozenset({"lake"}))


def pytest_cdc_approaches(registry):
    registry.register(LakeCdf)
''')
    results = tmp_path / "results.json"
    result = run(pytester, "-p", "myplugin", "--cdc-approaches=lake-cdf", "--cdc-scenarios=three-inserts,crud",
                 "--cdc-scale=smoke", f"--cdc-results={results}")
    result.assert_outcomes(passed=2)
    rows = {(r["approach"], r["scenario"]): r["verdict"] for r in json.loads(results.read_text())["results"]}
    assert rows[("lake-cdf", "three-inserts")] == "pass"


def test_readme_plugin_example_survives_reader_crashes(pytester: pytest.Pytester, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    result = run(pytester, "-p", "examples.my_approach", "--cdc-approaches=delta-cdf-batched",
                 "--cdc-scenarios=reader-crash", "--cdc-scale=smoke", "--cdc-seed=1", f"--cdc-results={results}")
    result.assert_outcomes(passed=1)


def test_undeclared_fault_is_unsupported_before_any_write(tmp_path: Path) -> None:
    """An engine that does not declare a fault the scenario injects: ``unsupported`` with the
    reason, and the source never created a table (nothing was written)."""
    from containers.engine import DeltaWarehouse
    from harness.approaches.delta_cdf import DeltaCdf
    from harness.families import builtin_registry
    from harness.runner import Case, run_case
    from harness.steps import Fault, Insert, Scenario
    from scenarios.tables import ITEMS, RowMaker

    def scenario(seed: int, scale: str, types: frozenset) -> Scenario:
        return Scenario("restart", (ITEMS,), [Insert("items", RowMaker(1).item(1)),
                                               Fault("source-restart", "idle", target="source")])

    engine = DeltaWarehouse(root=tmp_path / "wh")
    engine.start()
    case = Case(DeltaCdf, "restart", builtin_registry().get("delta"), roles=("delta",))
    result = run_case(case, {"delta": engine}, scenario, run_id="t", worker="gw0", workdir=tmp_path)
    assert result.verdict.status == "unsupported"
    assert "does not inject 'source-restart' (declares: none)" in result.verdict.reason
    assert result.outcome is None and not any((tmp_path / "wh").iterdir())


def test_reader_settings_and_keyless_tables_need_a_claim() -> None:
    """A case setting the family marks as the reader's own (``Family.reader_settings``) needs an
    approach that applies it, and a keyless-table scenario one that claims ``keyless``: else the
    cell is ``unsupported`` with the reason, before any write."""
    from dataclasses import replace

    from harness.approaches.pg_debezium import PgDebezium
    from harness.approaches.pg_pgoutput import PgOutput
    from harness.families import builtin_registry
    from harness.runner import requirement_gap
    from harness.sources.postgres import PostgresSource
    from scenarios.postgres import large_txn_abort
    from scenarios.shapes import no_key

    family = builtin_registry().get("postgres")
    assert family.reader_settings == frozenset({"logical_decoding_work_mem"})
    big = large_txn_abort(1, "smoke")
    want = {"logical_decoding_work_mem"}
    assert requirement_gap(big, PgOutput, PostgresSource, PgOutput.capabilities, want) is None
    gap = requirement_gap(big, PgDebezium, PostgresSource, PgDebezium.capabilities, want)
    assert gap and "does not apply the setting 'logical_decoding_work_mem'" in gap
    assert requirement_gap(big, PgDebezium, PostgresSource, PgDebezium.capabilities) is None  # no such setting
    keyless = no_key(1, "smoke")
    assert requirement_gap(keyless, PgOutput, PostgresSource, PgOutput.capabilities) is None
    gap = requirement_gap(keyless, PgDebezium, PostgresSource, PgDebezium.capabilities)
    assert gap and "keys a table without a primary key its own way" in gap
    assert requirement_gap(keyless, PgDebezium, PostgresSource, replace(PgDebezium.capabilities, keyless=True)) is None
