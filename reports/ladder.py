"""The rate ladder's figures from a pytest-benchmark JSON: lag p99 vs offered rate, sustainable throughput.

Input: the file ``pytest suites/ --benchmark-only -k rate --benchmark-json=bench.json`` writes;
its ladder entries (``extra_info.ladder``, see ``suites/test_rate_ladder.py``) are grouped by
approach with ``harness.ladder.ladder_points``. ``reports.html`` draws them (``--benchmark-json``),
``reports.pushgateway`` pushes them.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from harness.ladder import ladder_points, sustainable
from harness.results import ReportError

Points = dict[str, list[dict[str, Any]]]


def load_points(path: str | Path) -> Points:
    """Ladder steps by approach from a pytest-benchmark JSON file (a one-line error otherwise)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read benchmark JSON {path}: {exc}; fix: give the file "
                          "--benchmark-json=PATH wrote") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ReportError(f"{path} is not a pytest-benchmark JSON (no 'benchmarks' list); fix: give the file "
                          "pytest --benchmark-json=PATH wrote")
    return ladder_points(data["benchmarks"])


def lag_vs_rate_figure(points: Points) -> Any:
    """Lag p99 (ms, log) vs offered changes/s (log), one line per approach; unbounded steps open."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    palette = qualitative.Dark24  # one colour per approach: the default ten repeat with a dozen approaches
    fig = go.Figure()
    for n, approach in enumerate(sorted(points)):
        steps = [p for p in points[approach] if (p.get("lag_ms") or {}).get("p99") is not None]
        if not steps:
            continue
        fig.add_trace(go.Scatter(
            x=[p["offered_per_s"] for p in steps], y=[p["lag_ms"]["p99"] for p in steps], name=approach,
            mode="lines+markers", line={"color": palette[n % len(palette)]},
            marker={"color": palette[n % len(palette)], "size": 9,
                    "symbol": ["circle" if p.get("bounded") else "circle-open" for p in steps]},
            customdata=[[p.get("achieved_per_s"), p["lag_ms"].get("p50"), p.get("rows_per_commit", 1)]
                        for p in steps],
            hovertemplate=("offered %{x:,}/s · achieved %{customdata[0]:,.0f}/s<br>p99 %{y:,.2f} ms · "
                           "p50 %{customdata[1]:,.2f} ms · %{customdata[2]} per commit<extra>%{fullData.name}</extra>"),
        ))
    fig.update_layout(title="Lag p99 vs offered rate (open marker: lag unbounded)",
                      xaxis_title="offered changes/s (log)", yaxis_title="lag p99 (ms, log)",
                      xaxis_type="log", yaxis_type="log", height=440,
                      margin={"t": 50, "l": 60, "r": 20, "b": 50}, legend_title="approach")
    return fig


def sustainable_figure(points: Points) -> Any:
    """Bars: each approach's sustainable throughput (highest achieved rate with bounded lag), log."""
    import plotly.graph_objects as go

    rows = sorted(((a, sustainable(p)) for a, p in points.items()), key=lambda r: -(r[1] or 0))
    fig = go.Figure(go.Bar(x=[a for a, _ in rows], y=[v or 0 for _, v in rows],
                           text=[f"{v:,.0f}/s" if v else "none bounded" for _, v in rows], textposition="outside"))
    fig.update_layout(title="Sustainable throughput (changes/s with bounded lag)", yaxis_type="log",
                      yaxis_title="changes/s (log)", height=420, margin={"t": 50, "l": 60, "r": 20, "b": 80})
    return fig


def table_html(points: Points) -> str:
    """The ladder as a table: one row per approach × step (no JavaScript)."""
    def num(v: Any, fmt: str = ",.2f") -> str:
        return "—" if v is None else format(v, fmt)

    out = ['<table id="ladder-table"><thead><tr><th>approach</th><th>offered/s</th><th>per commit</th>'
           "<th>achieved/s</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th><th>bounded</th>"
           "<th>sustainable/s</th></tr></thead><tbody>"]
    for approach in sorted(points):
        best = sustainable(points[approach])
        for p in points[approach]:
            lag = p.get("lag_ms") or {}
            out.append(
                f"<tr><td>{escape(approach)}</td><td>{num(p.get('offered_per_s'), ',')}</td>"
                f"<td>{num(p.get('rows_per_commit'), ',')}</td><td>{num(p.get('achieved_per_s'), ',.0f')}</td>"
                + "".join(f"<td>{num(lag.get(q))}</td>" for q in ("p50", "p95", "p99", "max"))
                + f"<td>{'yes' if p.get('bounded') else 'no'}</td><td>{num(best, ',.0f')}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def section_html(points: Points, include_plotlyjs: bool) -> list[str]:
    """The report's ladder section: both charts and the table (empty when no ladder step ran)."""
    if not points:
        return []
    lag = lag_vs_rate_figure(points).to_html(full_html=False, include_plotlyjs=include_plotlyjs,
                                             div_id="ladder-lag")
    bars = sustainable_figure(points).to_html(full_html=False, include_plotlyjs=False, div_id="ladder-sustainable")
    return ["<h2>Latency vs offered load (rate ladder)</h2>", lag, bars, table_html(points)]
