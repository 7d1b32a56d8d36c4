"""Tests for the results file (harness.results) and reports/: validation, writer and merge, the plugin's
results handling, terminal matrix, HTML page, pushgateway metrics, alert rules, Allure, CI.

Nothing here writes under the user's ``reports/out``: every file goes to ``tmp_path``."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import pytest

from harness import results as results_mod
from harness.matrix import render_matrix
from harness.results import ANOMALY_KINDS, SCHEMA, VERDICTS, ReportError, dump, label, load, validate
from reports import html as report_html

ROOT = Path(__file__).resolve().parents[1]
SETUP = "bash scripts/setup-reports.sh"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def synthetic(
    approaches: tuple[str, ...] = ("pg-pgoutput", "delta-cdf", "iceberg-snapshot-diff"),
    scenarios: tuple[str, ...] = ("crud", "txn", "truncate"),
    seed: int = 7,
) -> dict[str, Any]:
    """A small, deterministic, valid results dict (pass, fail and unsupported cells)."""
    rng = random.Random(seed)
    caps = {
        a: {
            "before_image": ("full", "key", "none")[i % 3],
            "updates": "update" if i % 2 == 0 else "delete+insert",
            "transactions": i % 2 == 0,
            "delivery": "exactly-once" if i % 2 == 0 else "at-least-once",
            "ddl": ["add_column"] if i % 3 != 2 else [],
            "truncate": i % 3 == 0,
            "resume": True,
            "notes": [f"synthetic approach #{i}"],
        }
        for i, a in enumerate(approaches)
    }
    results = []
    for i, a in enumerate(approaches):
        settings = {"replica_identity": "full"} if a.startswith("pg") else {}
        caps[label(a, settings)] = caps.pop(a)
        for j, s in enumerate(scenarios):
            k = i * len(scenarios) + j
            verdict = VERDICTS[(i + j) % 3]
            anomalies: dict[str, int] = {}
            examples: dict[str, list[dict[str, Any]]] = {}
            reason = ""
            if verdict == "fail":
                anomalies = {"lost": 1 + k, "reordered": k % 4}
                anomalies = {kk: v for kk, v in anomalies.items() if v}
                examples = {"lost": [{"table": "t", "key": [k], "op": "insert", "note": "<b>&x</b>"}]}
                reason = f"{anomalies['lost']} committed change(s) never captured"
            elif verdict == "unsupported":
                reason = f"scenario '{s}' needs truncate; approach '{a}' does not claim it"
            ran = verdict != "unsupported"
            events = 1000 + 100 * k if ran else 0
            lags = sorted(rng.expovariate(1 / (2.0 + 3.0 * i)) for _ in range(200))
            duration = 1.5 + 0.25 * k
            results.append({
                "approach": a,
                "scenario": s,
                "engine": "embedded" if not a.startswith("pg") else "local",
                "settings": settings,
                "verdict": verdict,
                "reason": reason,
                "anomalies": anomalies,
                "examples": examples,
                "events": events,
                "events_per_s": round(events / duration, 3) if ran else None,
                "lag_ms": ({"p50": round(lags[99], 3), "p95": round(lags[189], 3), "p99": round(lags[197], 3),
                            "max": round(lags[-1], 3)} if ran
                           else {"p50": None, "p95": None, "p99": None, "max": None}),
                "duration_s": duration,
                "lag_cdf": [[round(v, 3), round((n + 1) / len(lags), 4)] for n, v in enumerate(lags)] if ran else [],
                "redelivered": k % 4 if ran else 0,
                "recovery_s": round(0.1 * (k + 1), 3) if ran and k % 5 else None,
            })
    return {
        "schema": SCHEMA,
        "run": {
            "run_id": f"synthetic-{seed}",
            "started_at": "2025-01-01T00:00:00+00:00",
            "finished_at": "2025-01-01T00:01:00+00:00",
            "seed": seed,
            "scale": "smoke",
            "engines": "auto",
            "host": {"cpus": 2, "python": "3.11", "platform": "linux"},
            "harness_version": "0.1.0",
            "interrupted": False,
            "interrupted_reason": None,
        },
        "capabilities": caps,
        "results": results,
    }


# -- the results file: schema and validator ---------------------------------------------------------


def test_synthetic_results_are_valid_and_round_trip(tmp_path: Path) -> None:
    data = synthetic()
    path = dump(data, tmp_path / "results.json")
    assert load(path) == data
    assert {r["verdict"] for r in data["results"]} == {"pass", "fail", "unsupported"}


def test_old_schema_is_a_clear_error(tmp_path: Path) -> None:
    data = synthetic()
    data["schema"] = 0
    path = write_json(tmp_path / "old.json", data)
    with pytest.raises(ReportError) as err:
        load(path)
    assert str(path) in str(err.value)
    assert "schema 0" in str(err.value) and "schema 1" in str(err.value)


def test_missing_schema_is_a_clear_error(tmp_path: Path) -> None:
    data = synthetic()
    del data["schema"]
    path = write_json(tmp_path / "noschema.json", data)
    with pytest.raises(ReportError, match="schema None is not supported"):
        load(path)


def test_malformed_json_names_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"schema": 1, "run": ', encoding="utf-8")
    with pytest.raises(ReportError) as err:
        load(path)
    assert str(path) in str(err.value) and "malformed JSON at line 1" in str(err.value)


def test_missing_file_is_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="cannot read results file"):
        load(tmp_path / "nope.json")


def test_not_an_object_is_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="top level must be a JSON object"):
        load(write_json(tmp_path / "list.json", [1, 2]))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["results"][0].update(verdict="maybe"), "results[0].verdict"),
        (lambda d: d["results"][1].update(anomalies={"lost": -1}), "results[1].anomalies['lost']"),
        (lambda d: d["results"][0].update(lag_ms="fast"), "results[0].lag_ms"),
        (lambda d: d["results"][0].update(lag_cdf=[[1.0]]), "results[0].lag_cdf"),
        (lambda d: d["results"][0].pop("approach"), "results[0].approach"),
        (lambda d: d["run"].update(scale="huge"), "run.scale"),
        (lambda d: d["run"].pop("run_id"), "run.run_id"),
        (lambda d: d.update(results={}), "results: must be a list"),
        (lambda d: next(iter(d["capabilities"].values())).update(delivery="maybe"), ".delivery"),
        (lambda d: d["results"][0].update(redelivered=-1), "results[0].redelivered"),
        (lambda d: d["results"][0].update(redelivered=True), "results[0].redelivered"),
        (lambda d: d["results"][0].update(recovery_s="slow"), "results[0].recovery_s"),
        (lambda d: d["run"].update(interrupted="yes"), "run.interrupted"),
    ],
)
def test_invalid_fields_are_named(tmp_path: Path, mutate, expected: str) -> None:
    data = synthetic()
    mutate(data)
    path = write_json(tmp_path / "bad.json", data)
    with pytest.raises(ReportError) as err:
        load(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_empty_results_are_valid_and_page_says_no_tests_ran(tmp_path: Path) -> None:
    data = synthetic()
    data["results"] = []
    data["capabilities"] = {}
    validate(data)
    page = report_html.render(data)
    assert 'id="no-tests"' in page and "No tests ran" in page
    assert 'id="grid"' not in page


# -- HTML --------------------------------------------------------------------------------------------


def test_html_has_grid_capabilities_charts_and_settings() -> None:
    data = synthetic()
    page = report_html.render(data)
    assert 'id="grid"' in page and 'id="capabilities"' in page and 'id="run"' in page
    for res in data["results"]:
        a, sc, v = res["approach"], res["scenario"], res["verdict"]
        cell = f'data-approach="{a}" data-scenario="{sc}" data-verdict="{v}"'
        assert cell in page
    fail = next(r for r in data["results"] if r["verdict"] == "fail")
    assert f"lost: {fail['anomalies']['lost']}" in page
    unsupported = next(r for r in data["results"] if r["verdict"] == "unsupported")
    assert report_html.escape(unsupported["reason"]) in page
    # plotly charts, with plotly.js inline: the page works offline
    assert 'id="lag-cdf"' in page and 'id="throughput"' in page
    assert "Plotly.newPlot" in page
    assert not re.search(r"<script[^>]+src=", page), "page must not load scripts from the network"


def test_html_escapes_every_string() -> None:
    data = synthetic(approaches=("<script>alert(1)</script>",), scenarios=("a&b", "txn"))
    data["results"][0]["reason"] = '<img src=x onerror="alert(2)">'
    data["run"]["run_id"] = "</title><script>x()</script>"
    page = report_html.render(data)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<img src=x onerror="alert(2)">' not in page
    assert "</title><script>x()</script>" not in page
    assert "a&amp;b" in page
    # example payloads (escaped JSON) cannot open tags either
    assert "<b>&x</b>" not in page


def test_combined_cdf_is_monotone_and_weighted() -> None:
    a = {"events": 100, "lag_cdf": [[1.0, 0.5], [2.0, 1.0]]}
    b = {"events": 300, "lag_cdf": [[4.0, 1.0]]}
    pts = report_html.combined_cdf([a, b])
    assert [x for x, _ in pts] == [1.0, 2.0, 4.0]
    assert [f for _, f in pts] == pytest.approx([0.125, 0.25, 1.0])
    assert report_html.combined_cdf([{"events": 1, "lag_cdf": []}]) == []


def test_html_cli_writes_page_and_rejects_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = dump(synthetic(), tmp_path / "results.json")
    out = tmp_path / "out" / "report.html"
    assert report_html.main([str(results), "-o", str(out)]) == 0
    assert 'id="grid"' in out.read_text(encoding="utf-8")
    bad = write_json(tmp_path / "bad.json", {"schema": 99})
    assert report_html.main([str(bad), "-o", str(tmp_path / "x.html")]) == 2
    assert str(bad) in capsys.readouterr().err


def test_html_cli_as_module(tmp_path: Path) -> None:
    results = dump(synthetic(), tmp_path / "results.json")
    out = tmp_path / "report.html"
    proc = subprocess.run([sys.executable, "-m", "reports.html", str(results), "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 1_000_000  # plotly.js is inline


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"chromium missing; fix: {SETUP}")
def test_headless_chromium_renders_grid_and_charts(tmp_path: Path) -> None:
    page = report_html.write(synthetic(), tmp_path / "report.html")
    url = page.resolve().as_uri()
    png = tmp_path / "report.png"
    shot = _chromium(["--window-size=1400,2600", "--virtual-time-budget=5000", f"--screenshot={png}", url],
                     tmp_path / "profile-shot")
    assert png.exists() and png.stat().st_size > 20_000, shot.stderr[-2000:]
    dom = _chromium(["--virtual-time-budget=5000", "--dump-dom", url], tmp_path / "profile-dom").stdout
    assert '<table id="grid"' in dom
    assert len(re.findall(r'<td class="cell (?:pass|fail|unsupported)"', dom)) == 9
    # plotly.js ran: it marks each graph div and draws one trace group per approach
    assert re.search(r'<div id="lag-cdf" class="[^"]*js-plotly-plot', dom)
    assert re.search(r'<div id="throughput" class="[^"]*js-plotly-plot', dom)
    assert len(re.findall(r'<g class="trace scatter', dom)) == 3
    assert len(re.findall(r'<g class="trace bars"', dom)) == 3


# -- Prometheus rules and Grafana ---------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("promtool") is None, reason=f"promtool missing; fix: {SETUP}")
def test_promtool_rule_unit_tests_pass() -> None:
    check = subprocess.run(["promtool", "check", "rules", "reports/prometheus/alerts.yml"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    proc = subprocess.run(["promtool", "test", "rules", "reports/prometheus/alerts_test.yml"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_alert_rules_and_tests_cover_each_alert() -> None:
    rules = (ROOT / "reports/prometheus/alerts.yml").read_text(encoding="utf-8")
    tests = (ROOT / "reports/prometheus/alerts_test.yml").read_text(encoding="utf-8")
    for name in ("CDCLagHigh", "CDCDataLoss", "CDCApproachStalled"):
        assert f"alert: {name}" in rules
        assert f"alertname: {name}" in tests


def test_grafana_dashboard_uses_pushed_metric_names() -> None:
    dash = json.loads((ROOT / "reports/grafana/cdc-harness.json").read_text(encoding="utf-8"))
    assert dash["uid"] == "cdc-harness" and dash["panels"]
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    known = {"cdc_lag_seconds", "cdc_throughput_events_per_second", "cdc_anomalies", "cdc_verdict"}
    used = {m for e in exprs for m in re.findall(r"\b(cdc_[a-z_]+)\b", e)}
    assert used == known
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


# -- pushgateway ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway():
    from containers.pushgateway import PushgatewayEngine, find_binary

    if find_binary() is None:
        pytest.skip(f"prometheus-pushgateway missing; fix: {SETUP}")
    engine = PushgatewayEngine("local")
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("cdc_"):
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_pushed_metrics_equal_results(gateway) -> None:
    from reports.pushgateway import push_results

    data = synthetic()
    data["run"]["run_id"] = "test-push-1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert push_results(gateway.url, data) is True
    got = _scrape(gateway.url)

    def key(name: str, res: dict, **extra: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        labels = {"job": "cdc-harness", "instance": "", "run_id": "test-push-1", "approach": res["approach"],
                  "scenario": res["scenario"], "variant": results_mod.variant(res["settings"]), **extra}
        return name, tuple(sorted(labels.items()))

    expected = {}
    for res in data["results"]:
        expected[key("cdc_verdict", res)] = {"pass": 1, "fail": 0, "unsupported": -1}[res["verdict"]]
        if res["verdict"] == "unsupported":
            continue
        expected[key("cdc_events", res)] = res["events"]
        expected[key("cdc_throughput_events_per_second", res)] = res["events_per_s"]
        for q, quantile in (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99"), ("max", "1")):
            expected[key("cdc_lag_seconds", res, quantile=quantile)] = res["lag_ms"][q] / 1000
        for kind in ANOMALY_KINDS:
            expected[key("cdc_anomalies", res, kind=kind)] = res["anomalies"].get(kind, 0)
        expected[key("cdc_redelivered_events", res)] = res["redelivered"]
        if res["recovery_s"] is not None:
            expected[key("cdc_recovery_seconds", res)] = res["recovery_s"]
    assert any(r["recovery_s"] is None and r["verdict"] != "unsupported" for r in data["results"])
    assert set(got) == set(expected)
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, rel=1e-12), k
    assert any(n == "cdc_anomalies" and v > 0 for (n, _), v in got.items())
    assert any(n == "cdc_redelivered_events" and v > 0 for (n, _), v in got.items())


def test_push_replaces_the_runs_group(gateway) -> None:
    from reports.pushgateway import push_results

    data = synthetic()
    data["run"]["run_id"] = "test-push-2"
    assert push_results(gateway.url, data)
    data["results"] = data["results"][:1]
    assert push_results(gateway.url, data)
    mine = [k for k in _scrape(gateway.url) if ("run_id", "test-push-2") in k[1] and k[0] == "cdc_verdict"]
    assert len(mine) == 1


def test_pushgateway_kill_and_restart(gateway) -> None:
    from reports.pushgateway import PushgatewayWarning, push_results

    gateway.kill()
    with pytest.warns(PushgatewayWarning, match=re.escape(gateway.url)):
        assert push_results(gateway.url, synthetic(), timeout=1) is False
    gateway.restart()
    assert push_results(gateway.url, synthetic())


def test_pushgateway_stop_leaves_nothing_running() -> None:
    from containers.pushgateway import PushgatewayEngine, find_binary, is_ready

    if find_binary() is None:
        pytest.skip(f"prometheus-pushgateway missing; fix: {SETUP}")
    engine = PushgatewayEngine("local")
    engine.start()
    url, log_dir = engine.url, engine.log_path().parent
    pid = engine._executor.process.pid
    assert url.startswith("http://127.0.0.1:") and is_ready(url)
    assert _scrape(url) == {}, "a fresh gateway must start empty (no persistence file)"
    engine.stop()
    engine.stop()  # idempotent
    assert not is_ready(url)
    assert not log_dir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_unreachable_gateway_warns_once_and_returns_quickly() -> None:
    from reports.pushgateway import push_results

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert push_results(url, synthetic(), timeout=1) is False
    assert time.monotonic() - started < 2
    assert len(caught) == 1 and url in str(caught[0].message)


def test_silent_gateway_times_out_instead_of_hanging() -> None:
    from reports.pushgateway import push_results

    with socket.socket() as server:  # accepts connections (kernel backlog) but never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        started = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert push_results(url, synthetic(), timeout=0.5) is False
        elapsed = time.monotonic() - started
    assert elapsed < 3, elapsed
    assert len(caught) == 1 and url in str(caught[0].message)


def test_invalid_results_warn_instead_of_raising() -> None:
    from reports.pushgateway import PushgatewayWarning, push_results

    data = synthetic()
    data["results"][0]["events"] = "12"
    with pytest.warns(PushgatewayWarning, match=r"results\[0\]\.events"):
        assert push_results("http://127.0.0.1:9", data) is False


def test_pushgateway_cli(tmp_path: Path) -> None:
    results = dump(synthetic(), tmp_path / "results.json")
    proc = subprocess.run([sys.executable, "-m", "reports.pushgateway", str(results), "--url",
                           "http://127.0.0.1:9", "--timeout", "0.5"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "http://127.0.0.1:9" in proc.stderr


def test_docker_and_external_backends_say_why_they_are_unavailable() -> None:
    from containers.pushgateway import PushgatewayEngine, docker_answers
    from harness.errors import EngineUnavailable

    if docker_answers() is None:
        pytest.skip("a Docker engine answers here; the docker backend would really start")
    with pytest.raises(EngineUnavailable, match="docker backend for pushgateway unavailable"):
        PushgatewayEngine("docker").start()
    with pytest.raises(EngineUnavailable, match="does not answer"):
        PushgatewayEngine("external", url="http://127.0.0.1:9").start()
    with pytest.raises(ValueError):
        PushgatewayEngine("external")


# -- Allure, setup scripts, CI -----------------------------------------------------------------------


# scripts/allure-report.sh building a report: tests/test_allure_report.py (from a real run)


def test_allure_script_explains_missing_results(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(ROOT / "scripts/allure-report.sh"), str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "npm ci" in proc.stderr or "--alluredir" in proc.stderr


def test_scripts_are_valid_bash() -> None:
    for script in ("scripts/setup-reports.sh", "scripts/allure-report.sh"):
        proc = subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr


def test_ci_workflow_runs_each_engine_and_uploads_reports() -> None:
    yaml = pytest.importorskip("yaml")
    wf = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text(encoding="utf-8"))
    job = next(iter(wf["jobs"].values()))
    engines = [e["engine"] for e in job["strategy"]["matrix"]["include"]]
    assert {"embedded", "postgres"} <= set(engines)
    text = json.dumps(job)
    assert "make setup" in text and "make test ENGINE=" in text
    assert "allure-report" in text and "reports/out/" in text
    assert "reports/out/history.duckdb" in text and "reports.history" in text  # the results history kept and compared


def test_synthetic_is_deterministic_and_fresh() -> None:
    a, b = synthetic(), synthetic()
    a["results"].clear()
    assert b["results"] and copy.deepcopy(b) == synthetic()
    assert synthetic(seed=1) != synthetic(seed=2)


# -- labels, terminal matrix, HTML details --------------------------------------------------------------


def test_one_label_for_approach_and_settings() -> None:
    from harness.runner import Case

    assert label("delta-cdf", {}) == "delta-cdf"
    assert label("pg-pgoutput", {"replica_identity": "full", "a": 1}) == "pg-pgoutput a=1 replica_identity=full"
    assert label("pg-pgoutput", (("replica_identity", "full"),)) == "pg-pgoutput replica_identity=full"
    approach = type("Fake", (), {"name": "pg-pgoutput"})
    case = Case(approach, "crud", None, (("replica_identity", "default"),))  # type: ignore[arg-type]
    assert case.label == label("pg-pgoutput", {"replica_identity": "default"})
    assert results_mod.variant({"b": 2, "a": 1}) == "a=1,b=2" and results_mod.variant(None) == ""


def test_matrix_cells_show_redelivered_and_interruption() -> None:
    data = synthetic()
    row = next(r for r in data["results"] if r["verdict"] == "pass" and r["redelivered"])
    lines = render_matrix(data)
    assert f"pass(redelivered:{row['redelivered']})" in "\n".join(lines)
    assert not lines[0].startswith("INTERRUPTED")
    assert any(line.startswith("pg-pgoutput replica_identity=full ") for line in lines)
    data["run"].update(interrupted=True, interrupted_reason="KeyboardInterrupt")
    assert render_matrix(data)[0] == "INTERRUPTED (KeyboardInterrupt): the results are partial"


def _pg_variants() -> dict[str, Any]:
    data = synthetic(approaches=("pg-pgoutput",), scenarios=("crud",))
    full = data["results"][0]
    default = {**copy.deepcopy(full), "settings": {"replica_identity": "default"}, "verdict": "fail",
               "anomalies": {"missing-before": 2}, "reason": "missing-before=2"}
    data["results"].append(default)
    cap = data["capabilities"]["pg-pgoutput replica_identity=full"]
    data["capabilities"]["pg-pgoutput replica_identity=default"] = {**cap, "before_image": "key"}
    return data


def test_html_rows_and_capabilities_are_keyed_by_approach_and_settings() -> None:
    data = _pg_variants()
    validate(data)
    page = report_html.render(data)
    grid = page[page.index('id="grid"'):page.index("</table>", page.index('id="grid"'))]
    rows = re.findall(r'<th scope="row">([^<]*)</th>', grid)
    assert rows == ["pg-pgoutput replica_identity=default", "pg-pgoutput replica_identity=full"]
    assert "—</td>" not in grid, "no empty rows or cells"
    caps = page[page.index('id="capabilities"'):page.index("</table>", page.index('id="capabilities"'))]
    assert re.findall(r'<tr><th scope="row">([^<]*)</th><td>([^<]*)</td><td>([^<]*)</td>', caps) == [
        ("pg-pgoutput", "replica_identity=default", "key"), ("pg-pgoutput", "replica_identity=full", "full")]


def test_html_shows_redelivered_recovery_and_interruption() -> None:
    data = synthetic()
    row = next(r for r in data["results"] if r["verdict"] == "pass" and r["redelivered"] and r["recovery_s"])
    page = report_html.render(data)
    cell = re.search(rf'<td class="cell pass" data-approach="{row["approach"]}" '
                     rf'data-scenario="{row["scenario"]}"[^>]*title="([^"]*)">(.*?)</td>', page)
    assert cell, "the pass cell"
    title, body = cell.group(1), cell.group(2)
    assert f"redelivered {row['redelivered']}" in title and f"recovery {row['recovery_s']:,.2f} s" in title
    assert f"redelivered {row['redelivered']}" in body
    table = page[page.index('id="lag-table"'):]
    assert "<th>redelivered</th><th>recovery s</th>" in table
    assert f"<td>{row['redelivered']}</td><td>{row['recovery_s']:,.2f}</td></tr>" in table
    assert 'id="interrupted"' not in page
    data["run"].update(interrupted=True, interrupted_reason="SIGTERM")
    page = report_html.render(data)
    assert re.search(r'<p class="interrupted" id="interrupted">Interrupted \(SIGTERM\)', page)


def test_old_rows_without_new_fields_still_render() -> None:
    data = synthetic()
    for r in data["results"]:
        del r["redelivered"], r["recovery_s"]
    del data["run"]["interrupted"], data["run"]["interrupted_reason"]
    validate(data)
    assert 'id="grid"' in report_html.render(data) and render_matrix(data)


# -- writer: part files by run id ----------------------------------------------------------------------


def _header(run_id: str) -> dict[str, Any]:
    return results_mod.run_header(run_id, "2025-01-01T00:00:00+00:00", 1, "smoke", "auto")


def test_merge_takes_only_its_own_parts_and_removes_stale_ones(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    rows = synthetic()["results"]
    results_mod.write_part(path, "run1", "gw0", rows[:2], {"a": {}})
    results_mod.write_part(path, "run1", "gw1", rows[2:3], {"b": {}})
    fresh = results_mod.write_part(path, "run0", "gw0", rows[3:5], {"c": {}})
    old = results_mod.write_part(path, "runx", "gw0", rows[5:6], {"d": {}})
    day_ago = time.time() - results_mod.STALE_PART_S - 60
    os.utime(old, (day_ago, day_ago))
    doc, notes = results_mod.merge_parts(path, _header("run1"), rows[6:7], {"e": {}})
    assert doc is not None and json.loads(path.read_text()) == json.loads(json.dumps(doc))
    assert len(doc["results"]) == 4 and set(doc["capabilities"]) == {"a", "b", "e"}
    assert doc["run"]["run_id"] == "run1" and doc["run"]["interrupted"] is False
    assert fresh.exists() and not old.exists()
    assert sorted(p.name for p in path.parent.joinpath("results.json.parts").iterdir()) == ["run0-gw0.json"]
    assert any("removed 1 stale part file(s)" in n and "runx-gw0.json" in n for n in notes)
    assert any("ignored 1 part file(s) of other runs" in n for n in notes)
    # the other run, finishing later, gets its own rows only, and the folder goes
    doc0, notes0 = results_mod.merge_parts(path, _header("run0"))
    assert doc0 is not None and len(doc0["results"]) == 2 and notes0 == []
    assert not path.parent.joinpath("results.json.parts").exists()


def test_a_run_without_results_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("previous run", encoding="utf-8")
    assert results_mod.merge_parts(path, _header("run2")) == (None, [])
    assert path.read_text() == "previous run"


def test_check_writable_names_the_problem(tmp_path: Path) -> None:
    assert results_mod.check_writable(tmp_path / "new" / "deeper" / "results.json") is None
    assert not (tmp_path / "new").exists(), "the check creates nothing"
    (tmp_path / "file").write_text("x")
    assert "is not a directory" in results_mod.check_writable(tmp_path / "file" / "results.json")
    assert results_mod.check_writable(tmp_path) == "it is a directory"


# -- the plugin: results of a real run (subprocess) ------------------------------------------------------


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_run_without_cdc_tests_leaves_the_results_file_alone(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text("def test_ok():\n    assert True\n", encoding="utf-8")
    default = tmp_path / "reports" / "out" / "results.json"
    default.parent.mkdir(parents=True)
    default.write_text("users results", encoding="utf-8")
    proc = _pytest(tmp_path, "test_plain.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert default.read_text() == "users results"
    assert "cdc conformance matrix" not in proc.stdout
    assert sorted(p.name for p in default.parent.iterdir()) == ["results.json"]


def test_unwritable_results_path_is_a_usage_error_before_any_test(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "test_plain.py").write_text(f"def test_ok():\n    open({str(marker)!r}, 'w').close()\n")
    (tmp_path / "afile").write_text("x")
    bad = tmp_path / "afile" / "results.json"
    proc = _pytest(tmp_path, "test_plain.py", f"--cdc-results={bad}")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and str(bad) in errors[0] and "fix: pass --cdc-results=PATH" in errors[0]
    assert not marker.exists()


INTERRUPT_PLUGIN = '''
def pytest_runtest_teardown(item):
    if item.name.endswith("-crud]"):
        raise KeyboardInterrupt
'''


def test_interrupted_run_is_marked_in_results_matrix_and_page(tmp_path: Path) -> None:
    (tmp_path / "ctrl_c.py").write_text(INTERRUPT_PLUGIN, encoding="utf-8")
    results = tmp_path / "out" / "results.json"
    proc = _pytest(tmp_path, str(ROOT / "suites" / "test_conformance.py"), "--rootdir", str(ROOT), "-p", "ctrl_c",
                   "--cdc-approaches=delta-cdf", "--cdc-scenarios=crud,txn", "--cdc-scale=smoke",
                   f"--cdc-results={results}")
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, proc.stdout + proc.stderr
    doc = load(results)
    assert doc["run"]["interrupted"] is True and doc["run"]["interrupted_reason"]
    assert [(r["approach"], r["scenario"]) for r in doc["results"]] == [("delta-cdf", "crud")]
    assert "INTERRUPTED (" in proc.stdout and "the results are partial" in proc.stdout
    assert 'id="interrupted"' in report_html.render(doc)


def test_xdist_run_merges_its_own_parts_only(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    results = tmp_path / "results.json"
    parts = tmp_path / "results.json.parts"
    parts.mkdir()
    other = parts / "0ther000-gw0.json"
    other.write_text(json.dumps({"results": [synthetic()["results"][0]], "capabilities": {}}))
    stale = parts / "01d00000-gw1.json"
    stale.write_text(other.read_text())
    day_ago = time.time() - results_mod.STALE_PART_S - 60
    os.utime(stale, (day_ago, day_ago))
    proc = _pytest(tmp_path, str(ROOT / "suites" / "test_conformance.py"), "--rootdir", str(ROOT), "-n", "2",
                   "--cdc-approaches=delta-cdf", "--cdc-scenarios=crud,txn", "--cdc-scale=smoke",
                   f"--cdc-results={results}", "-k", "not writer-spark")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = load(results)
    assert [(r["approach"], r["scenario"]) for r in doc["results"]] == [("delta-cdf", "crud"), ("delta-cdf", "txn")]
    assert doc["run"]["interrupted"] is False
    assert all(isinstance(r["redelivered"], int) and "recovery_s" in r for r in doc["results"])
    assert list(doc["capabilities"]) == ["delta-cdf"]
    assert sorted(p.name for p in parts.iterdir()) == [other.name]
    out = proc.stdout
    assert "removed 1 stale part file(s)" in out and "01d00000-gw1.json" in out
    assert "ignored 1 part file(s) of other runs" in out
    if importlib.util.find_spec("duckdb"):  # the controller alone appends the run to the history, once
        from reports.history_store import connect, list_runs

        with connect(tmp_path / "history.duckdb", read_only=True) as con:
            assert [(r["run_id"], r["cells"]) for r in list_runs(con)] == [(doc["run"]["run_id"], 2)]



def test_one_percentile_function_for_suite_and_benchmarks() -> None:
    """``harness.checker.lag_summary`` gives the lag_ms of every row, from a polars Series or a list."""
    import polars as pl

    from harness.checker import lag_summary

    ns = [1_000_000, 2_000_000, 3_000_000, 10_000_000]
    want = {"p50": 2.5, "p95": 8.95, "p99": 9.79, "max": 10.0}
    assert lag_summary(ns)["lag_ms"] == want == lag_summary(pl.Series(ns))["lag_ms"]
    assert lag_summary([])["lag_ms"] == {"p50": None, "p95": None, "p99": None, "max": None}
    assert lag_summary([5_000_000])["lag_ms"] == {"p50": 5.0, "p95": 5.0, "p99": 5.0, "max": 5.0}
