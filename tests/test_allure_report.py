"""Allure as its users browse it: the tree, categories, environment, history and per-test content.

The unit tests check each piece on its own; ``test_allure_report_of_a_real_run`` runs a few real
embedded cases (delta-cdf, a mutant of it that drops changes, iceberg-snapshot-diff) at smoke
scale, builds the report with ``scripts/allure-report.sh`` on a previous report's history and reads
the generated report's data files, then screenshots its Suites tab with headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from containers import versions
from harness import outcomes
from harness.families import builtin_registry
from harness.runner import Case
from harness.verdict import ANOMALIES
from reports import (
    allure_categories,
    allure_content,
    allure_data,
    allure_environment,
    allure_history,
    allure_shot,
    allure_tree,
)
from scenarios import default_registry

ROOT = Path(__file__).resolve().parents[1]
SETUP = "bash scripts/setup-reports.sh"


def _matching(status: str, message: str) -> list[str]:
    """The categories a result falls in, as Allure decides it (Java ``matches()`` = fullmatch)."""
    return [c["name"] for c in allure_categories.categories()
            if status in c["matchedStatuses"] and re.fullmatch(c["messageRegex"], message)]


def test_categories_classify_by_marker_not_by_traceback() -> None:
    fail = outcomes.tagged(outcomes.anomaly_tokens({"phantom": 2, "lost": 1}), "x-crud: fail: lost=1, phantom=2")
    assert fail.startswith("[cdc:lost] [cdc:phantom] ")
    message = f"AssertionError: {fail}\n  lost: {{'why': 'committed, never captured'}}\nassert False"
    assert _matching("failed", message) == ["Lost changes", "Phantoms"]
    mismatch = outcomes.tagged(["before-mismatch", "op-mismatch"], "x: fail")
    assert _matching("failed", f"AssertionError: {mismatch}") == ["Image mismatches"]
    known = "XFAIL " + outcomes.tagged([outcomes.KNOWN_FINDING], "known finding: pitfall 1: fail: schema=3")
    assert _matching("skipped", known + "\n\nXFailed: [cdc:known-finding] …") == ["Known findings"]
    race = outcomes.tagged([outcomes.KNOWN_FINDING, outcomes.TIMING], "known finding (depends on timing): …")
    assert _matching("skipped", "XFAIL " + race) == ["Known findings"]
    gap = "Skipped: " + outcomes.tagged([outcomes.UNSUPPORTED], "unsupported: delta-cdf does not follow DDL 'drop'")
    assert _matching("skipped", gap) == ["Unsupported by the approach"]
    down = outcomes.tagged([outcomes.ENGINE_UNAVAILABLE], "postgres engine unavailable: fix: make setup")
    assert _matching("skipped", f"Skipped: {down}") == ["Engine not available"]
    gone = outcomes.tagged([outcomes.FINDING_GONE], "known finding no longer reproduces")
    assert _matching("failed", f"AssertionError: {gone}") == ["Known finding no longer reproduces"]
    # everything else: a driver's exception, a plain assertion, a traceback that quotes a marker-less text
    assert _matching("broken", "psycopg.OperationalError: connection refused") == ["Harness or engine error"]
    assert _matching("failed", "AssertionError: assert 1 == 2\n[lost] in a traceback") == ["Harness or engine error"]
    assert _matching("passed", "") == []


def test_every_anomaly_kind_has_exactly_one_category() -> None:
    kinds = [k for _, ks, _ in allure_categories.ANOMALY_CATEGORIES for k in ks]
    assert sorted(kinds) == sorted(ANOMALIES)
    for kind in ANOMALIES:
        names = _matching("failed", outcomes.tagged([kind], "case: fail"))
        assert len(names) == 1, (kind, names)
    with pytest.raises(ValueError, match="unknown outcome token"):
        outcomes.marker("lots")
    assert outcomes.tokens_in("[cdc:lost] [cdc:nope] [cdc:timing] x") == ["lost", "timing"]


def test_categories_json_written_into_the_results_dir(tmp_path: Path) -> None:
    path = allure_categories.write_categories(tmp_path / "results")
    data = json.loads(path.read_text())
    assert path.name == "categories.json" and [c["name"] for c in data] == [c["name"] for c in
                                                                             allure_categories.categories()]
    assert {"Lost changes", "Known findings", "Unsupported by the approach", "Harness or engine error"} <= {
        c["name"] for c in data}


def _case(approach: str, family: str, scenario: str, settings: tuple = (), extra_roles: tuple = ()) -> Case:
    fam = builtin_registry().get(family)
    return Case(type(approach, (), {"name": approach}), scenario, fam, settings, (*fam.roles, *extra_roles))


def test_place_mirrors_the_matrix() -> None:
    kinds = default_registry()
    case = _case("pg-pgoutput", "postgres", "toast", (("replica_identity", "full"),))
    where = allure_tree.place(case, kinds.kind("toast"), 1, "smoke")
    assert (where.parent_suite, where.suite, where.sub_suite) == ("postgres", "pg-pgoutput · replica_identity=full",
                                                                  "toast")
    assert (where.epic, where.feature, where.story) == ("postgres", "pg-pgoutput", "types")
    assert where.title == "pg-pgoutput · replica_identity=full · toast" and where.tags == ()
    assert dict(where.parameters) == {"approach": "pg-pgoutput", "scenario": "toast", "replica_identity": "full",
                                      "seed": 1, "scale": "smoke"}
    debezium = _case("pg-debezium", "postgres", "connect-crash", extra_roles=("kafka", "connect"))
    where = allure_tree.place(debezium, kinds.kind("connect-crash"), 1, "smoke")
    assert (where.parent_suite, where.story, where.tags) == ("postgres", "faults", ("kafka", "connect"))
    pipeline = _case("pg-kafka-iceberg", "postgres", "sink-crash-after-commit",
                     extra_roles=("kafka", "connect", "iceberg", "sink"))
    assert allure_tree.place(pipeline, "faults", 1, "smoke").parent_suite == "pipeline"
    spark = _case("delta-cdf", "delta", "schema-drop", (("column_mapping", "name"), ("writer", "spark")), ("spark",))
    where = allure_tree.place(spark, kinds.kind("schema-drop"), 7, "default")
    assert where.suite == "delta-cdf · column_mapping=name · writer=spark" and where.tags == ("spark",)
    assert where.story == "schema evolution"


def test_every_builtin_scenario_has_a_kind() -> None:
    kinds = default_registry()
    assert {name: kinds.kind(name) for name in kinds.names() if kinds.kind(name) == "other"} == {}
    kinds.register("my-scenario", lambda seed, scale, types=frozenset(): None, kind="faults")  # type: ignore[arg-type]
    assert kinds.kind("my-scenario") == "faults"
    kinds.register("schema-widen", lambda seed, scale, types=frozenset(): None)  # type: ignore[arg-type]
    assert kinds.kind("schema-widen") == "schema evolution"


def test_environment_properties_escape_as_java_reads_them(tmp_path: Path) -> None:
    header = {"run_id": "abc123", "started_at": "2025-01-01T00:00:00+00:00", "seed": 7, "scale": "smoke",
              "engines": "auto", "host": {"cpus": 2, "python": "3.11.7", "platform": "Linux"},
              "harness_version": "0.1.0"}
    props = allure_environment.environment(header, {"PostgreSQL": "15.8 (Debian 15.8-0+deb12u1)", "Spark": "4.1"},
                                           {"postgres": "local", "spark": "local"}, heavy_scale="smoke")
    assert list(props)[:5] == ["PostgreSQL", "Spark", "run id", "seed", "scale"]  # what the Overview shows
    assert props["engine backends"] == "postgres=local, spark=local" and props["machine cores"] == "2"
    assert "scale (Kafka, Connect, Spark cases)" not in props  # same as the scale
    path = allure_environment.write_environment(tmp_path, {**props, "odd key=x": "a:b µ 🦆"})
    lines = path.read_text(encoding="ascii").splitlines()
    assert "run\\ id=abc123" in lines and "PostgreSQL=15.8 (Debian 15.8-0+deb12u1)" in lines
    assert "odd\\ key\\=x=a\\:b \\u00b5 \\ud83e\\udd86" in lines


def test_engine_versions_are_probed_without_failing_a_run() -> None:
    class Spark:
        backend = "local"

        def version(self) -> str:
            return "4.1.1"

    class Broken:
        backend = "external"

        def connect(self) -> None:
            raise OSError("postgresql://u:s3cretpw@h/db refused")

    assert versions.probe("spark", Spark()) == {"Spark": "4.1.1"}
    assert versions.probe("postgres", Broken()) == {}  # a probe that fails reports nothing
    assert set(versions.probe("delta", object())) == {"delta-rs (deltalake)"}
    assert set(versions.probe("iceberg", object())) == {"pyiceberg"}
    assert versions.probe("kafka", Broken()) == {}  # an external broker says no version
    assert versions.probe("my-engine", Spark()) == {"my-engine": "4.1.1"}  # a plugin's engine with version()

    class Cursor:
        def __enter__(self) -> Cursor:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def execute(self, sql: str) -> None:
            assert sql == "SELECT VERSION()"

        def fetchone(self) -> tuple[str]:
            return ("10.11.14-MariaDB-0+deb12u2-log",)

    class Conn:
        closed = False

        def cursor(self) -> Cursor:
            return Cursor()

        def close(self) -> None:
            self.closed = True

    conn = Conn()
    assert versions.probe("mysql", type("MariaDB", (), {"connect": lambda self: conn})()) == {"MariaDB": "10.11.14"}
    assert conn.closed


def test_connect_probe_names_kafka_connect_and_debezium_versions() -> None:
    import http.server
    import threading

    answers = {"/": {"version": "4.3.1", "commit": "x"}, "/connector-plugins": [
        {"class": "io.debezium.connector.postgresql.PostgresConnector", "type": "source", "version": "3.5.0.Final"},
        {"class": "io.debezium.connector.mysql.MySqlConnector", "type": "source", "version": "3.5.0.Final"},
        {"class": "io.debezium.connector.mariadb.MariaDbConnector", "type": "source", "version": "3.6.1.Final"},
        {"class": "org.apache.kafka.connect.mirror.MirrorSourceConnector", "type": "source", "version": "4.3.1"}]}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = json.dumps(answers[self.path]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        connect = type("Connect", (), {"url": f"http://127.0.0.1:{server.server_port}", "backend": "local"})()
        assert versions.probe("connect", connect) == {
            "Kafka Connect": "4.3.1", "Debezium": "3.5.0.Final (mysql, postgresql), 3.6.1.Final (mariadb)"}
    finally:
        server.shutdown()


def test_executor_names_the_ci_run(tmp_path: Path) -> None:
    local = allure_environment.executor("abc123", env={})
    assert local["reportName"] == "cdc-harness conformance" and local["buildName"] == "run abc123"
    assert "buildOrder" not in local
    ci = allure_environment.executor("abc123", env={
        "GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "99", "GITHUB_RUN_NUMBER": "42", "GITHUB_WORKFLOW": "ci",
        "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/cdc-harness", "CDC_ENGINE": "postgres"})
    assert ci["buildOrder"] == 42 and ci["buildName"] == "ci #42 postgres (run abc123)"
    assert ci["buildUrl"] == "https://github.com/o/cdc-harness/actions/runs/99"
    path = allure_environment.write_executor(tmp_path, ci)
    assert json.loads(path.read_text())["buildOrder"] == 42


def test_description_and_examples_are_readable_and_masked() -> None:
    secret = "postgresql://u:s3cretpw@h/db"
    row = {"approach": "pg-pgoutput", "scenario": "crud", "settings": {"replica_identity": "full"},
           "engine": "local", "verdict": "fail", "reason": f"reader said {secret}", "anomalies": {"lost": 2},
           "events": 10, "events_per_s": 123.456, "lag_ms": {"p50": 1.5, "p95": 2.0, "p99": None, "max": 3.0},
           "redelivered": 0, "recovery_s": 0.25, "duration_s": 1.0,
           "examples": {"before-mismatch": [{
               "why": "differs <b>",
               "committed": {"table": "t", "op": "update", "key": [1], "before": {"id": 1, "n": 8}},
               "captured": {"table": "t", "op": "update", "key": [1], "before": {"id": 1, "n": 0}},
               "difference": {"n": {"expected": 8, "got": 0}}}]}}
    text = allure_content.description_html(row)
    assert "FAIL" in text and "replica_identity=full" in text and "s3cretpw" not in text
    assert "<li>throughput: 123.5 events/s</li>" in text and "anomalies: lost <b>2</b>" in text
    assert "<li>lag p50 / p95 / p99 / max: 1.50 / 2.00 / – / 3.00 ms</li>" in text
    table = allure_content.examples_html(row["examples"])
    assert "<h3>before-mismatch (1 shown)</h3>" in table and "differs &lt;b&gt;" in table
    assert "n: 8 → 0" in table and "t update key=[1]" in table
    assert dict(allure_content.figures(row))["recovery (s)"] == 0.25


def test_single_file_report_data_are_extracted(tmp_path: Path) -> None:
    def blob(value: Any) -> str:
        return base64.b64encode(json.dumps(value).encode()).decode()

    index = tmp_path / "index.html"
    index.write_text(f"<script>d('history/history.json','{blob({'a': 1})}')\n"
                     f"d('widgets/environment.json','{blob([{'name': 'seed', 'values': ['1']}])}')\n"
                     f"d('data/attachments/x.png','{base64.b64encode(b'png').decode()}')</script>")
    assert allure_data.read_json(tmp_path, "widgets/environment.json")[0]["name"] == "seed"  # from index.html
    assert allure_data.main([str(index)]) == 0
    assert json.loads((tmp_path / "history/history.json").read_text()) == {"a": 1}
    assert not (tmp_path / "data/attachments").exists()
    (tmp_path / "widgets/environment.json").write_text("[]")
    assert allure_data.read_json(tmp_path, "widgets/environment.json") == []  # a file wins
    index.write_text("<html>no data</html>")
    assert allure_data.main([str(index)]) == 1


def test_history_is_carried_once_per_run(tmp_path: Path) -> None:
    """A report built on the previous one's history; a rebuild from the same results reuses the
    history it was first built on (a run counts once in the trend)."""
    run1, run2, out = tmp_path / "r1", tmp_path / "r2", tmp_path / "report"
    for run_dir, name in ((run1, "a"), (run2, "b")):
        run_dir.mkdir()
        (run_dir / f"{name}-result.json").write_text("{}")

    def build(results: Path, entries: int) -> None:  # what allure generate + extraction leave in OUT
        staged = allure_history.prepare(results, out)
        seen = json.loads((staged / "history/history-trend.json").read_text()) if staged else []
        shutil.rmtree(out, ignore_errors=True)  # --clean
        (out / "history").mkdir(parents=True)
        (out / "history/history-trend.json").write_text(json.dumps([*seen, {"run": results.name}]))
        allure_history.keep(results, out, staged)
        assert len(json.loads((out / "history/history-trend.json").read_text())) == entries
        assert staged is None or not staged.exists()

    build(run1, 1)
    build(run1, 1)  # rebuilt: no history before run 1, still none
    build(run2, 2)
    build(run2, 2)  # rebuilt: on run 1's history again, not on its own
    build(run1, 3)  # another results folder: a new run
    assert allure_history.main(["prepare", str(run1), str(out)]) == 0


def test_workers_hand_their_engines_to_the_controller() -> None:
    """xdist: the controller writes the environment once, from what each worker's engines were
    (the real run below runs without xdist: two more workers would double its time here)."""
    from types import SimpleNamespace

    from fixtures.session import STASH
    from harness import plugin

    state = SimpleNamespace(engine_versions={"pyiceberg": "0.12.0"}, engine_backends={"iceberg": "embedded"})
    config = SimpleNamespace(stash={STASH: state})
    for out in ({plugin.WORKER_ENGINES: {"versions": {"PostgreSQL": "15.8"}, "backends": {"postgres": "local"}}},
                {}, {plugin.WORKER_ENGINES: {"versions": {"delta-rs (deltalake)": "1.6"},
                                             "backends": {"delta": "embedded", "postgres": "docker"}}}):
        plugin.pytest_testnodedown(SimpleNamespace(config=config, workeroutput=out), None)
    assert state.engine_versions == {"pyiceberg": "0.12.0", "PostgreSQL": "15.8", "delta-rs (deltalake)": "1.6"}
    assert state.engine_backends == {"iceberg": "embedded", "postgres": "local", "delta": "embedded"}


# -- a real run, a real report ----------------------------------------------------------------------

MUTANT = '''"""delta-cdf that drops changes (a mutant): its cells fail with lost changes."""
from harness.approaches.delta_cdf import DeltaCdf
from tests.mutants import mutant_class


def pytest_cdc_approaches(registry):
    registry.register(mutant_class(DeltaCdf, "drop", seed=3))
'''


def _paths(node: dict[str, Any], above: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Each leaf under an Allure tree node as (group names..., test name, status)."""
    out: list[tuple[str, ...]] = []
    for child in node.get("children", []):
        if "children" in child:
            out += _paths(child, (*above, child["name"]))
        else:
            out.append((*above, child["name"], child["status"]))
    return out


@pytest.mark.skipif(not (ROOT / "node_modules/.bin/allure").exists() or shutil.which("java") is None,
                    reason=f"Allure CLI or Java missing; fix: npm ci (or {SETUP})")
def test_allure_report_of_a_real_run(tmp_path: Path) -> None:
    (tmp_path / "cdc_drop_plugin.py").write_text(MUTANT, encoding="utf-8")
    results, report = tmp_path / "allure-results", tmp_path / "allure-report"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/test_conformance.py", "-p", "cdc_drop_plugin",
         "-p", "no:cacheprovider",
         "--cdc-approaches=delta-cdf,delta-cdf+drop,iceberg-snapshot-diff", "--cdc-scenarios=pk-update,schema-drop",
         "-k", "not writer-spark and not iceberg-snapshot-diff-schema-drop and not drop-schema-drop",
         "--cdc-scale=smoke",
         f"--cdc-results={tmp_path / 'results.json'}", f"--alluredir={results}", "--clean-alluredir", "-q"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]  # the mutant's cell fails
    counts = dict((kind, int(n)) for n, kind in re.findall(r"(\d+) (failed|passed|skipped|xfailed)", run.stdout))
    assert counts == {"failed": 1, "passed": 1, "skipped": 1, "xfailed": 1}, run.stdout[-3000:]
    # the previous report's history (one earlier run of three passing tests): this build carries it
    previous = {"data": {"failed": 0, "broken": 0, "skipped": 0, "passed": 3, "unknown": 0, "total": 3}}
    (report / "history").mkdir(parents=True)
    (report / "history/history-trend.json").write_text(json.dumps([previous]))
    build = subprocess.run(["bash", "scripts/allure-report.sh", str(results), str(report)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    assert "history of the previous report carried over" in build.stdout
    assert (report / "index.html").exists() and "file://" in build.stdout  # single-file: opens from disk
    assert not (results / "history").exists()  # the results stay as pytest wrote them
    trend = json.loads((report / "history/history-trend.json").read_text())  # written out for the next run
    assert len(trend) == 2 and trend[1]["data"] == previous["data"] and trend[0]["data"]["total"] == 4

    suites = allure_data.read_json(report, "data/suites.json")
    assert set(_paths(suites)) == {
        ("delta", "delta-cdf", "pk-update", "delta-cdf · pk-update", "passed"),
        ("delta", "delta-cdf", "schema-drop", "delta-cdf · schema-drop", "skipped"),
        ("delta", "delta-cdf+drop", "pk-update", "delta-cdf+drop · pk-update", "failed"),
        ("iceberg", "iceberg-snapshot-diff", "pk-update", "iceberg-snapshot-diff · pk-update", "skipped"),
    }, _paths(suites)
    behaviors = _paths(allure_data.read_json(report, "data/behaviors.json"))
    assert {p[:3] for p in behaviors} == {("delta", "delta-cdf", "keys"), ("delta", "delta-cdf", "schema evolution"),
                                          ("delta", "delta-cdf+drop", "keys"),
                                          ("iceberg", "iceberg-snapshot-diff", "keys")}, behaviors

    categories = {c["name"]: [p[-2] for p in _paths(c)] for c in
                  allure_data.read_json(report, "data/categories.json")["children"]}
    assert categories == {"Lost changes": ["delta-cdf+drop · pk-update"],
                          "Known findings": ["iceberg-snapshot-diff · pk-update"],
                          "Unsupported by the approach": ["delta-cdf · schema-drop"]}, categories

    env_widget = {e["name"]: e["values"][0] for e in allure_data.read_json(report, "widgets/environment.json")}
    assert env_widget["scale"] == "smoke" and env_widget["seed"] == "1" and env_widget["run id"]
    assert env_widget["engine backends"] == "delta=embedded, iceberg=embedded"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", env_widget["delta-rs (deltalake)"]) and env_widget["pyiceberg"]
    assert int(env_widget["machine cores"]) >= 1 and float(env_widget["machine memory (GiB)"]) > 0
    assert len(allure_data.read_json(report, "widgets/history-trend.json")) == 2  # the Overview's trend
    assert allure_data.read_json(report, "widgets/summary.json")["reportName"] == "cdc-harness conformance"

    if allure_shot.chromium() is None:
        pytest.skip(f"chromium missing (no screenshot of the Suites tab); fix: {SETUP}")
    png = allure_shot.screenshot(report / "index.html", "suites", tmp_path / "allure-suites.png", size="1200,800")
    assert png.stat().st_size > 20_000
    dom = allure_shot.dump_dom(report / "index.html", "suites")  # the tree opened down to the tests
    for name in ("delta", "delta-cdf", "delta-cdf+drop", "iceberg-snapshot-diff", "pk-update", "schema-drop",
                 "delta-cdf+drop · pk-update", "iceberg-snapshot-diff · pk-update"):
        assert f'<div class="node__name">{name}' in dom or f">{name}<" in dom, name



def test_failed_cell_attaches_every_engine_log_source_first(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from fixtures.recorder import engine_logs

    def engine(name: str | None) -> SimpleNamespace:
        path = tmp_path / f"{name}.log" if name else None
        if path is not None:
            path.write_text("x" * 50 + f"end of {name}")
        return SimpleNamespace(log_path=lambda: path)

    case = SimpleNamespace(family=SimpleNamespace(source_role="mysql"), roles=("kafka", "connect", "mysql"))
    engines = {"mysql": engine("mysql"), "kafka": engine(None), "connect": engine("connect"), "spark": engine("spark")}
    logs = engine_logs(case, engines, tail=20)
    assert list(logs) == ["mysql", "connect"]  # the source first; no log (kafka) and no role (spark) left out
    assert logs["connect"].endswith("end of connect") and len(logs["connect"]) == 20


def test_examples_table_takes_every_shape_the_checker_writes() -> None:
    """An op-mismatch names the committed change and the captured pair (a list); other shapes are plain values."""
    from reports import allure_content

    pair = [{"table": "items", "op": "delete", "key": [101], "before": {"id": 101}, "after": None},
            {"table": "items", "op": "insert", "key": [250], "before": None, "after": {"id": 250}}]
    examples = {"op-mismatch": [{"why": "update captured as delete + insert",
                                 "committed": {"table": "items", "op": "update", "key": [250], "after": {"id": 250}},
                                 "captured": pair}],
                "reorder": [{"why": "out of order", "captured": [1, 2]}, "a bare string", ["a", "list"]]}
    html_text = allure_content.examples_html(examples)
    assert "delete key=[101]" in html_text and "insert key=[250]" in html_text
    assert "a bare string" in html_text and "out of order" in html_text
