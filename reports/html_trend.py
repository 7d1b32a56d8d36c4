"""The HTML report's trend section: per approach (+ settings), pass counts and lag p99 over the
last runs of the results history (``reports/history_store.py``)."""

from __future__ import annotations

from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Any

from reports.history_store import HistoryError, connect, trend

#: how many runs the section shows
TREND_RUNS = 10


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def trend_figure(runs: list[dict[str, Any]], cells: list[dict[str, Any]]) -> Any:
    """One line per approach (+ settings): the median over its scenarios of lag p99, per run."""
    import plotly.graph_objects as go

    ids = [r["run_id"] for r in runs]
    by_label: dict[str, dict[str, float]] = defaultdict(dict)
    for c in cells:
        if c["p99_median"] is not None:
            by_label[c["label"]][c["run_id"]] = c["p99_median"]
    fig = go.Figure()
    for label in sorted(by_label):
        fig.add_trace(go.Scatter(x=ids, y=[by_label[label].get(i) for i in ids], mode="lines+markers", name=label))
    fig.update_layout(title="Lag p99 per run (median over the approach's scenarios)", xaxis_title="run",
                      yaxis_title="lag p99 (ms, log)", yaxis_type="log", xaxis_type="category", height=560,
                      margin={"t": 50, "l": 60, "r": 20, "b": 50}, legend_title="approach",
                      legend={"orientation": "h", "yanchor": "top", "y": -0.2})  # long labels: below the plot
    return fig


def trend_html(history: Path | None, last: int = TREND_RUNS, *, chart: bool = True) -> str:
    """The section (heading, table and, with ``chart`` and two runs or more, a plotly chart that
    expects plotly.js already on the page); "" without a history file, a one-line note when it
    cannot be read."""
    if history is None or not Path(history).is_file():
        return ""
    try:
        with connect(Path(history), read_only=True, wait_s=5) as con:
            runs, cells = trend(con, last)
    except HistoryError as exc:
        return f'<h2>Trend</h2><p class="empty-run" id="trend-error">{_e(exc)}</p>'
    if not runs:
        return ""
    at = {(c["run_id"], c["label"]): c for c in cells}
    labels = sorted({c["label"] for c in cells})
    out = [f'<h2>Trend: the last {len(runs)} run(s) in {_e(history)}</h2>',
           "<p>Per approach (+ settings) and run: cells passed of those that ran (unsupported left out) "
           "and the median over its scenarios of lag p99. <code>python -m reports.history</code> flags what "
           "moved beyond the noise.</p>",
           '<div class="scroll"><table id="trend"><thead><tr><th>approach</th>']
    for r in runs:
        when = r["finished_at"].strftime("%m-%d %H:%M") if r.get("finished_at") else ""
        out.append(f'<th scope="col" data-run="{_e(r["run_id"])}">{_e(r["run_id"])}<br>'
                   f'<span class="variant">{_e(when)} · {_e(r["scale"])}</span></th>')
    out.append("</tr></thead><tbody>")
    for label in labels:
        out.append(f'<tr><th scope="row">{_e(label)}</th>')
        for r in runs:
            c = at.get((r["run_id"], label))
            if c is None or not c["ran"]:
                out.append('<td class="empty">—</td>')
                continue
            cls = "pass" if c["passed"] == c["ran"] else "fail"
            p99 = "" if c["p99_median"] is None else f'<br><span class="variant">p99 {c["p99_median"]:,.1f} ms</span>'
            out.append(f'<td class="{cls}" data-label="{_e(label)}" data-run="{_e(r["run_id"])}" '
                       f'data-passed="{c["passed"]}" data-ran="{c["ran"]}">{c["passed"]}/{c["ran"]} pass{p99}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    if chart and len(runs) > 1:
        out.append(trend_figure(runs, cells).to_html(full_html=False, include_plotlyjs=False, div_id="trend-chart"))
    return "".join(out)
