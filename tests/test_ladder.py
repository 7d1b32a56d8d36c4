"""The rate ladder's check and figures, its charts and pushed metrics, on synthetic offers and
a small synthetic pytest-benchmark JSON (no engine: the check is what is under test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from harness.columnar import RowLog
from harness.events import ChangeEvent
from harness.ladder import CaptureWrong, Step, check_capture, explain, ladder_points, sustainable
from harness.loadgen import Offer, Offered
from harness.results import ReportError
from reports import html as report_html
from reports.ladder import load_points, sustainable_figure, table_html


def _offered(commits: int = 40, rows: int = 1, rate: float = 1000.0) -> Offered:
    """``commits`` commits of ``rows`` keys, each issued 0.1 ms after its intended start."""
    plan = Offer(rate, commits * rows / rate, rows, 2)
    c = np.arange(commits, dtype=np.int64)
    due = plan.due_ns(1_000_000_000, c)
    records = np.stack([c * rows, np.full(commits, rows), due, due + 100_000, due + 200_000], axis=1)
    return Offered(plan, records)


def _events(keys: list[int], issued_of: dict[int, int], lag_ns: int = 1_000_000, op: str = "insert") -> RowLog:
    log = RowLog()
    log.append_part([ChangeEvent("load", op, (k,), None, {"id": k}, (k, 0), k, 0, issued_of[k] + lag_ns)
                     for k in keys])
    return log


def _issued(offered: Offered) -> dict[int, int]:
    keys, issued, _ = offered.issued_per_key()
    return dict(zip(keys.tolist(), issued.tolist(), strict=True))


def test_a_complete_capture_gives_figures() -> None:
    offered = _offered(rows=3)
    issued = _issued(offered)
    figures = check_capture(_events(sorted(issued, reverse=True), issued), offered)
    assert figures["captured"] == 120 and figures["bounded"]
    assert figures["lag_ms"]["p50"] == pytest.approx(1.0) and figures["lag_ms"]["max"] == pytest.approx(1.0)
    assert figures["lag_from_intended_ms"]["p50"] == pytest.approx(1.1)


def test_arrow_batches_are_read_as_they_are() -> None:
    offered = _offered()
    issued = _issued(offered)
    keys = sorted(issued)
    batch = pa.table({"table": ["load"] * len(keys), "op": ["insert"] * len(keys),
                      "key": pa.StructArray.from_arrays([pa.array(keys, pa.int64())], ["id"]),
                      "captured_at": pa.array([issued[k] + 2_000_000 for k in keys], pa.int64())})
    log = RowLog()
    log.append_part(batch)
    assert check_capture(log, offered)["lag_ms"]["p99"] == pytest.approx(2.0)


@pytest.mark.parametrize(("mutate", "says"), [
    (lambda keys: keys[:-1], "1 lost"),
    (lambda keys: [*keys, keys[0]], "1 keys repeated"),
    (lambda keys: [*keys[:-1], 10_000], "1 never written"),
])
def test_a_wrong_capture_gives_no_figures(mutate, says: str) -> None:
    offered = _offered()
    issued = _issued(offered)
    issued[10_000] = 0
    with pytest.raises(CaptureWrong, match=says):
        check_capture(_events(mutate(sorted(k for k in issued if k != 10_000)), issued), offered)


def test_an_update_is_not_an_insert() -> None:
    offered = _offered()
    issued = _issued(offered)
    with pytest.raises(CaptureWrong, match="40 not inserts"):
        check_capture(_events(sorted(issued), issued, op="update"), offered)


def test_growing_lag_is_unbounded() -> None:
    """A reader falling behind: each change later than the one before."""
    offered = _offered(commits=400)
    issued = _issued(offered)
    keys = sorted(issued)
    log = RowLog()
    log.append_part([ChangeEvent("load", "insert", (k,), None, {}, (k, 0), k, 0, issued[k] + 1_000_000 * (1 + k))
                     for k in keys])
    figures = check_capture(log, offered)
    assert not figures["bounded"]
    assert figures["lag_trend_ms"]["last_quarter_p50"] > figures["lag_trend_ms"]["first_quarter_p50"] * 2


def test_offer_figures_and_step_ids() -> None:
    offered = _offered(commits=10, rows=100, rate=100_000)
    assert offered.changes == 1000 and offered.offer.commits == 10
    assert offered.figures()["writes_late_over_1ms"] == 0
    keys, _, _ = offered.issued_per_key()
    assert keys.tolist() == list(range(1000))
    assert Step(5000).id == "5k" and Step(100_000, 100).id == "100k-x100" and Step(500).id == "500"


def _bench(approach: str, offered: int, p99: float, achieved: float, bounded: bool) -> dict:
    return {"name": f"test_rate_ladder[{approach}-{offered}]", "extra_info": {
        "ladder": True, "approach": approach, "offered_per_s": offered, "achieved_per_s": achieved,
        "rows_per_commit": 1, "bounded": bounded,
        "lag_ms": {"p50": p99 / 3, "p95": p99 / 2, "p99": p99, "max": p99 * 2}}}


BENCH = {"benchmarks": [
    _bench("pg-pgoutput", 1000, 0.5, 1000.0, True), _bench("pg-pgoutput", 5000, 0.9, 4990.0, True),
    _bench("pg-pgoutput", 20000, 900.0, 15000.0, False), _bench("mysql-binlog", 1000, 2.0, 998.0, True),
    _bench("delta-cdf", 1000, 800.0, 990.0, False),
    {"name": "test_load_generation", "extra_info": {"rows": 10}},
]}


def test_sustainable_is_the_highest_bounded_achieved_rate() -> None:
    points = ladder_points(BENCH["benchmarks"])
    assert sorted(points) == ["delta-cdf", "mysql-binlog", "pg-pgoutput"]
    assert sustainable(points["pg-pgoutput"]) == 4990.0
    assert sustainable(points["delta-cdf"]) is None


def test_html_report_draws_the_ladder(tmp_path: Path) -> None:
    from tests.test_reports import synthetic

    path = tmp_path / "bench.json"
    path.write_text(json.dumps(BENCH))
    points = load_points(path)
    page = report_html.render(synthetic(), points)
    assert 'id="ladder-lag"' in page and 'id="ladder-sustainable"' in page and 'id="ladder-table"' in page
    assert "<td>pg-pgoutput</td><td>20,000</td>" in table_html(points)
    bars = sustainable_figure(points).data[0]
    assert dict(zip(bars.x, bars.y, strict=True)) == {"pg-pgoutput": 4990.0, "mysql-binlog": 998.0, "delta-cdf": 0}


def test_a_file_that_is_not_a_benchmark_json_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": []}))
    with pytest.raises(ReportError, match="not a pytest-benchmark JSON"):
        load_points(path)
    with pytest.raises(ReportError, match="cannot read"):
        load_points(tmp_path / "missing.json")


def test_pushed_ladder_metrics() -> None:
    from prometheus_client import CollectorRegistry

    from reports.pushgateway import add_ladder

    registry = add_ladder(CollectorRegistry(), ladder_points(BENCH["benchmarks"]))
    value = registry.get_sample_value
    assert value("cdc_sustainable_throughput_per_second", {"approach": "pg-pgoutput"}) == 4990.0
    assert value("cdc_sustainable_throughput_per_second", {"approach": "delta-cdf"}) is None
    assert value("cdc_ladder_lag_seconds", {"approach": "pg-pgoutput", "offered": "5000", "quantile": "0.99"}) \
        == pytest.approx(0.0009)
    assert value("cdc_ladder_bounded", {"approach": "pg-pgoutput", "offered": "20000"}) == 0.0
    assert value("cdc_ladder_achieved_per_second", {"approach": "mysql-binlog", "offered": "1000"}) == 998.0


def test_a_wrong_capture_says_why_it_may_be() -> None:
    """A short capture carries its context: a dead sink's errors reach the failure, not only a count."""
    offered = _offered()
    issued = _issued(offered)
    why = explain(None, ["EngineUnavailable: sink incarnation died: AnalysisException: kafka"] * 3,
                  {"sink_errors": ["AnalysisException: kafka"], "hop_lag_ms": {"sink_iceberg": {"p99": None}}})
    with pytest.raises(CaptureWrong, match="40 lost.*3 reader errors \\(1 distinct\\).*sink incarnation died") as info:
        check_capture(_events([], issued), offered, why=why)
    assert "sink_errors=" in str(info.value) and "hop_lag_ms" not in str(info.value)


def test_explain_says_when_nothing_explains() -> None:
    assert explain(None, [], {}) == "no reader error"
    ended = explain("capture ended: task FAILED", [], {})
    assert ended == "the capture ended early (capture ended: task FAILED); no reader error"
