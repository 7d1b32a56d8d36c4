"""The results history (reports/history_store.py, reports/history.py, reports/html_trend.py): runs
appended to a DuckDB file, compared against a baseline with the noise rule, the trend in the HTML page,
and a real pytest run appending itself. Every file goes to ``tmp_path``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.results import run_header
from reports import history as history_cli
from reports import history_store as store
from reports.history import IMPROVEMENT, REGRESSION, Baseline, Rule, judge, verdict_change

duckdb = pytest.importorskip("duckdb", reason="the results history needs duckdb; fix: pip install -e '.[reports]'")

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]


def row(approach: str, scenario: str, verdict: str = "pass", p99: float | None = 10.0, eps: float | None = 1000.0,
        **settings: Any) -> dict[str, Any]:
    """One result row of a results file, with the figures the history keeps."""
    return {"approach": approach, "scenario": scenario, "engine": "local", "settings": settings,
            "verdict": verdict, "reason": "" if verdict == "pass" else "lost=2",
            "anomalies": {} if verdict == "pass" else {"lost": 2}, "examples": {}, "events": 100,
            "events_per_s": eps, "lag_ms": {"p50": 1.0, "p95": 5.0, "p99": p99, "max": 20.0},
            "duration_s": 1.0, "lag_cdf": [], "redelivered": 0, "recovery_s": 0.1, "measurements": {}}


def results(run_id: str, rows: list[dict[str, Any]], finished: str, scale: str = "smoke") -> dict[str, Any]:
    header = run_header(run_id, finished, 1, scale, "auto")
    return {"schema": 1, "run": {**header, "finished_at": finished}, "capabilities": {}, "results": rows}


def add(path: Path, doc: dict[str, Any], bench: dict[str, Any] | None = None) -> None:
    run_id, added = store.import_files(path, doc, bench, "test")
    assert added and run_id == doc["run"]["run_id"]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = history_cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- the noise rule ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, base, higher, expected", [
    (25.0, Baseline(10.0, 0.0, 1), False, REGRESSION),    # p99 2.5× of one run
    (10.5, Baseline(10.0, 0.0, 1), False, None),          # +5 %: under the 20 % minimum
    (5.0, Baseline(10.0, 0.0, 1), False, IMPROVEMENT),    # lag halved
    (400.0, Baseline(1000.0, 0.0, 1), True, REGRESSION),  # events/s down 60 %
    (1300.0, Baseline(1000.0, 0.0, 1), True, IMPROVEMENT),
    (15.0, Baseline(11.0, 2.0, 4), False, None),          # +36 %, but within 3 × 1.4826 × MAD = 8.9
    (15.0, Baseline(10.0, 0.0, 4), False, REGRESSION),    # +50 % on a steady figure
    (0.45, Baseline(0.2, 0.0, 3), False, None),           # +125 % but 0.25 ms: under the 0.5 ms floor
    (None, Baseline(10.0, 0.0, 1), False, None),
    (10.0, None, False, None),
])
def test_judge_flags_beyond_the_noise_band_only(value: float | None, base: Baseline | None, higher: bool,
                                                expected: str | None) -> None:
    assert judge(value, base, Rule(), higher_is_better=higher, floor=0.5 if not higher else 0.0) == expected


def test_verdict_changes() -> None:
    assert verdict_change("pass", "fail") == REGRESSION
    assert verdict_change("unsupported", "fail") == REGRESSION
    assert verdict_change("fail", "pass") == IMPROVEMENT
    assert verdict_change("pass", "unsupported") == "changed"
    assert verdict_change("pass", "pass") is None and verdict_change(None, "fail") is None


# -- two synthetic runs --------------------------------------------------------------------------------


def test_compare_flags_a_moved_p99_and_a_verdict_change_not_noise(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "history.duckdb"
    add(path, results("base0001", [row("pg-pgoutput", "crud", replica_identity="full"), row("pg-wal2json", "crud"),
                                   row("delta-cdf", "crud"), row("delta-cdf", "txn")], "2026-01-01T00:00:00+00:00"))
    add(path, results("last0002", [row("pg-pgoutput", "crud", p99=25.0, replica_identity="full"),  # p99 2.5×
                                   row("pg-wal2json", "crud", verdict="fail"),                     # pass → fail
                                   row("delta-cdf", "crud", p99=10.6, eps=940.0),                  # noise
                                   row("delta-cdf", "txn", p99=4.0)],                              # better
                                  "2026-01-02T00:00:00+00:00"))
    code, out, err = cli(capsys, "--history", str(path), "--baseline", "base0001")
    assert code == 0 and err == ""
    flagged = [line for line in out.splitlines() if line.startswith((REGRESSION, IMPROVEMENT))]
    assert len(flagged) == 3, out
    assert any("pg-pgoutput replica_identity=full × crud" in line and "lag p99 ms" in line and "+150 %" in line
               for line in flagged if line.startswith(REGRESSION))
    assert any("pg-wal2json × crud" in line and "verdict" in line and "pass" in line and "fail" in line
               for line in flagged if line.startswith(REGRESSION))
    assert any("delta-cdf × txn" in line for line in flagged if line.startswith(IMPROVEMENT))
    assert not any("delta-cdf × crud" in line for line in flagged)  # -6 % events/s, +6 % p99: noise
    assert "2 regression(s), 1 improvement(s)" in out and "compared 4 cell(s)" in out
    code, _, _ = cli(capsys, "--history", str(path), "--baseline", "base0001", "--fail-on-regression")
    assert code == 1


def test_the_median_and_mad_of_the_last_runs_set_the_band(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A figure that wandered across the baseline runs may wander as far again; a steady one may not."""
    path = tmp_path / "history.duckdb"
    for i, (noisy, steady) in enumerate([(7.0, 10.0), (10.0, 10.0), (12.0, 10.0), (14.0, 10.0)]):
        add(path, results(f"run{i:04d}", [row("a", "crud", p99=noisy), row("b", "crud", p99=steady)],
                          f"2026-01-0{i + 1}T00:00:00+00:00"))
    add(path, results("run0004", [row("a", "crud", p99=15.0), row("b", "crud", p99=15.0)],
                      "2026-01-05T00:00:00+00:00"))
    add(path, results("other005", [row("b", "crud", p99=99.0)], "2026-01-06T00:00:00+00:00", scale="default"))
    code, out, _ = cli(capsys, "--history", str(path), "--run", "run0004", "--last", "4", "--fail-on-regression")
    assert code == 1
    assert "last 4 value(s) in the 4 earlier run(s) at scale smoke: run0000, run0001, run0002, run0003" in out
    flagged = [line for line in out.splitlines() if line.startswith(REGRESSION)]
    assert len(flagged) == 1 and "b × crud" in flagged[0] and "10.00 ±0.00 (n=4)" in flagged[0], out
    code, out, _ = cli(capsys, "--history", str(path), "--run", "run0004", "--last", "4", "--all")
    assert code == 0 and any(line.strip().startswith("a × crud") and "lag p99 ms" in line for line in out.splitlines())


def test_each_cell_takes_its_own_last_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Runs that select different cells (make test's Docker step is a run of its own): --last N takes
    each cell's last N values, not the last N runs."""
    path = tmp_path / "history.duckdb"
    for i in range(6):
        rows = [row("a", "crud", p99=10.0 + i)] if i % 2 == 0 else [row("b", "crud")]
        add(path, results(f"mix{i:05d}", rows, f"2026-01-0{i + 1}T00:00:00+00:00"))
    add(path, results("mix00006", [row("a", "crud", p99=12.0), row("b", "crud")], "2026-01-07T00:00:00+00:00"))
    code, out, _ = cli(capsys, "--history", str(path), "--last", "2", "--all")
    assert code == 0
    a_p99 = [line for line in out.splitlines() if line.strip().startswith("a × crud") and "lag p99 ms" in line]
    b_p99 = [line for line in out.splitlines() if line.strip().startswith("b × crud") and "lag p99 ms" in line]
    assert len(a_p99) == 1 and "13.00 ±1.48 (n=2)" in a_p99[0], out  # runs 2 and 4: 12 and 14
    assert len(b_p99) == 1 and "(n=2)" in b_p99[0], out


def test_benchmarks_are_compared_by_their_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "history.duckdb"

    def bench(eps: float, p99: float) -> dict[str, Any]:
        return {"datetime": "2026-01-01T00:00:00", "benchmarks": [{
            "name": "test_rate[pg-pgoutput]", "fullname": "suites/t.py::test_rate[pg-pgoutput]", "group": "rate",
            "params": {"approach": "pg-pgoutput"}, "stats": {"median": 1.0, "min": 1.0, "max": 1.0, "rounds": 1},
            "extra_info": {"events_per_s": eps, "ladder": [{"offered": 1000, "lag_ms": {"p99": p99}}],
                           "writers": 4}}]}

    add(path, results("b0000001", [row("a", "crud")], "2026-01-01T00:00:00+00:00"), bench(10000, 2.0))
    add(path, results("b0000002", [row("a", "crud")], "2026-01-02T00:00:00+00:00"), bench(4000, 2.1))
    code, out, _ = cli(capsys, "--history", str(path), "--baseline", "b0000001")
    flagged = [line for line in out.splitlines() if line.startswith(REGRESSION)]
    assert len(flagged) == 1 and "test_rate[pg-pgoutput]" in flagged[0] and "events_per_s" in flagged[0], out
    assert "compared 1 cell(s) and 1 benchmark(s)" in out
    with store.connect(path, read_only=True) as con:
        figures = dict(con.execute("SELECT key, coalesce(CAST(value AS VARCHAR), text) FROM benchmark_figures "
                                   "WHERE run_id = 'b0000002'").fetchall())
    assert figures == {"events_per_s": "4000.0", "ladder.0.offered": "1000.0", "ladder.0.lag_ms.p99": "2.1",
                       "writers": "4.0"}


# -- bad input -----------------------------------------------------------------------------------------


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "history.duckdb"
    code, out, err = cli(capsys, "--history", str(tmp_path / "missing.duckdb"))
    assert code == 2 and out == "" and err.count("\n") == 1 and "no history file" in err and "fix:" in err
    add(path, results("only0001", [row("a", "crud")], "2026-01-01T00:00:00+00:00"))
    code, _, err = cli(capsys, "--history", str(path), "--baseline", "nosuchrun")
    assert code == 2 and err.count("\n") == 1 and "'nosuchrun' is not in" in err and "only0001" in err
    code, _, err = cli(capsys, "--history", str(path))  # one run: nothing to compare it with
    assert code == 2 and err.count("\n") == 1 and "no run before only0001" in err
    (tmp_path / "junk.duckdb").write_text("not a database")
    code, _, err = cli(capsys, "runs", "--history", str(tmp_path / "junk.duckdb"))
    assert code == 2 and err.count("\n") == 1 and "not a usable history file" in err
    code, _, err = cli(capsys, "add", str(tmp_path / "nope.json"), "--history", str(path))
    assert code == 2 and err.count("\n") == 1 and "cannot read results file" in err


def test_a_second_writer_waits_for_the_lock_or_says_why(tmp_path: Path) -> None:
    """DuckDB's file lock: another process holding the file makes an append wait, then fail with the fix."""
    path = tmp_path / "history.duckdb"
    add(path, results("first001", [row("a", "crud")], "2026-01-01T00:00:00+00:00"))
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                               "print('locked', flush=True); sys.stdin.read(); c.close()", str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        doc = results("second02", [row("a", "crud")], "2026-01-02T00:00:00+00:00")
        with pytest.raises(store.HistoryError, match="still locked by another process .*fix: wait"):
            store.import_files(path, doc, None, "test", wait_s=0.3)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    assert store.import_files(path, doc, None, "test", wait_s=10) == ("second02", True)
    assert store.import_files(path, doc, None, "test", wait_s=10) == ("second02", False)  # once per run id
    with store.connect(path, read_only=True) as con:
        assert [r["run_id"] for r in store.list_runs(con)] == ["first001", "second02"]


# -- the HTML trend ------------------------------------------------------------------------------------


def test_the_html_page_shows_the_trend_per_approach(tmp_path: Path) -> None:
    from reports import html as report_html

    path = tmp_path / "history.duckdb"
    docs = [results("t0000001", [row("a", "crud"), row("a", "txn", p99=30.0)], "2026-01-01T00:00:00+00:00"),
            results("t0000002", [row("a", "crud", verdict="fail"), row("a", "txn")], "2026-01-02T00:00:00+00:00")]
    for doc in docs:
        add(path, doc)
    page = report_html.render(docs[-1], history=path)
    assert 'id="trend"' in page and 'id="trend-chart"' in page
    assert 'data-label="a" data-run="t0000001" data-passed="2" data-ran="2">2/2 pass' in page
    assert 'data-label="a" data-run="t0000002" data-passed="1" data-ran="2">1/2 pass' in page
    assert "p99 20.0 ms" in page  # the median of 10 and 30
    assert 'id="trend"' not in report_html.render(docs[-1], history=tmp_path / "none.duckdb")


# -- options and a real run ----------------------------------------------------------------------------


def test_history_option(pytester: pytest.Pytester) -> None:
    from harness.options import parse

    results_path = pytester.path / "out" / "r.json"
    default = parse(pytester.parseconfig(f"--cdc-results={results_path}")).history
    assert default == results_path.parent / "history.duckdb"
    assert parse(pytester.parseconfig("--cdc-history=off")).history is None
    assert parse(pytester.parseconfig("--cdc-history=h/x.duckdb")).history == Path("h/x.duckdb")


BENCH_TEST = '''
def test_tiny(benchmark):
    benchmark.pedantic(lambda: sum(range(1000)), rounds=3, iterations=1)
    benchmark.extra_info.update(events_per_s=1000.0, lag_ms={"p99": 1.5}, path="aligned")
'''


def test_a_real_run_appends_its_cell_and_benchmark(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """One delta-cdf crud cell at smoke scale and one tiny benchmark in one session: the controller
    appends both; --benchmark-json is still written and pytest-benchmark compare reads it."""
    pytester.chdir()
    pytester.makepyfile(test_tinybench=BENCH_TEST)
    pytester._monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    pytester._monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # else pytest-benchmark disables itself
    out = tmp_path / "out"
    result = pytester.runpytest_inprocess(  # in this process: no second interpreter start-up and imports
        str(ROOT / "suites" / "test_conformance.py"), str(pytester.path / "test_tinybench.py"),
        "-p", "no:cacheprovider", "--rootdir", str(ROOT), "--cdc-approaches=delta-cdf", "--cdc-scenarios=crud",
        "--cdc-scale=smoke",
        "-k", "delta-cdf-crud or tiny", f"--cdc-results={out / 'results.json'}",
        f"--benchmark-json={tmp_path / 'bench.json'}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"history: run * appended to {out / 'history.duckdb'} (1 cells, 1 benchmarks), * ms"])
    with store.connect(out / "history.duckdb", read_only=True) as con:
        (run,) = store.list_runs(con)
        assert (run["cells"], run["passed"], run["benchmarks"], run["scale"]) == (1, 1, 1, "smoke")
        assert run["load_start"] is not None and run["load_end"] is not None
        versions, backends = con.execute("SELECT engine_versions, engine_backends FROM runs").fetchone()
        assert "delta-rs (deltalake)" in json.loads(versions) and json.loads(backends) == {"delta": "embedded"}
        cell = con.execute("SELECT approach, scenario, verdict, events, lag_p99 FROM cells").fetchone()
        assert cell[:3] == ("delta-cdf", "crud", "pass") and cell[3] > 0 and cell[4] is not None
        bench = con.execute("SELECT name, rounds, median_s FROM benchmarks").fetchone()
        assert bench[0] == "test_tiny" and bench[1] == 3 and bench[2] > 0
        assert con.execute("SELECT value FROM benchmark_figures WHERE key = 'lag_ms.p99'").fetchone() == (1.5,)
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert [b["name"] for b in doc["benchmarks"]] == ["test_tiny"]
    compare = subprocess.run([str(Path(sys.executable).with_name("pytest-benchmark")), "compare",
                              str(tmp_path / "bench.json")], capture_output=True, text=True, timeout=120)
    assert compare.returncode == 0 and "test_tiny" in compare.stdout, compare.stderr
