"""Build one static, self-contained HTML page (conformance matrix, capabilities, lag CDF, throughput)."""

from __future__ import annotations

import argparse
import bisect
import json
import sys
from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Any

from harness.results import QUANTILES, ReportError, Results, load, row_label, validate

COLORS = {"pass": "#1a7f37", "fail": "#cf222e", "unsupported": "#9a6700"}
BACKGROUNDS = {"pass": "#dafbe1", "fail": "#ffebe9", "unsupported": "#fff8c5"}
CAPABILITY_FIELDS = ("before_image", "updates", "key_updates", "keyless", "transactions", "delivery", "ddl",
                     "truncate", "resume", "settings")
MAX_EXAMPLES = 3

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#1f2328}
h1{font-size:1.5rem;margin-bottom:.25rem} h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0} th,td{border:1px solid #d0d7de;padding:.35rem .5rem;
vertical-align:top;text-align:left;font-size:.85rem} th{background:#f6f8fa}
td.cell{min-width:9rem;max-width:22rem} td.pass{background:#dafbe1} td.fail{background:#ffebe9}
td.unsupported{background:#fff8c5} td.empty{background:#f6f8fa;color:#8c959f}
.verdict{font-weight:700;text-transform:uppercase;font-size:.75rem}
.v-pass{color:#1a7f37}.v-fail{color:#cf222e}.v-unsupported{color:#9a6700}
.reason{margin:.2rem 0;font-size:.8rem} .anom{font-family:ui-monospace,monospace;font-size:.75rem}
.variant{font-size:.7rem;color:#57606a} .entry+.entry{border-top:1px dashed #d0d7de;margin-top:.3rem;
padding-top:.3rem} .summary span{margin-right:1rem;font-weight:600} .empty-run{padding:1rem;
background:#fff8c5;border:1px solid #d4a72c} pre{white-space:pre-wrap;font-size:.7rem;margin:.2rem 0}
details summary{cursor:pointer;font-size:.75rem} .scroll{overflow-x:auto}
#capabilities th[scope=row]{white-space:nowrap}
.interrupted{padding:.6rem 1rem;background:#ffebe9;border:1px solid #cf222e;font-weight:600}
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _num(value: Any, fmt: str = ",.2f") -> str:
    return "—" if value is None else format(value, fmt)


def _delivery_bits(res: dict[str, Any]) -> list[str]:
    """Redelivered repeats (when any) and recovery time (when measured), as short phrases."""
    bits = []
    if res.get("redelivered"):
        bits.append(f"redelivered {int(res['redelivered'])}")
    if res.get("recovery_s") is not None:
        bits.append(f"recovery {res['recovery_s']:,.2f} s")
    return bits


def _entry(res: dict[str, Any], show_variant: bool) -> str:
    verdict = res["verdict"]
    out = ['<div class="entry">']
    out.append(f'<div class="verdict v-{_e(verdict)}">{_e(verdict)}</div>')
    if show_variant:
        out.append(f'<div class="variant">{_e(res.get("engine", ""))}</div>')
    if res.get("reason"):
        out.append(f'<div class="reason">{_e(res["reason"])}</div>')
    anomalies = {k: v for k, v in (res.get("anomalies") or {}).items() if v}
    if anomalies:
        items = ", ".join(f"{_e(k)}: {int(v)}" for k, v in sorted(anomalies.items()))
        out.append(f'<div class="anom">{items}</div>')
    if verdict != "unsupported":
        eps = res.get("events_per_s")
        p99 = (res.get("lag_ms") or {}).get("p99")
        bits = [f"{int(res.get('events', 0))} events"]
        if eps is not None:
            bits.append(f"{eps:,.0f} ev/s")
        if p99 is not None:
            bits.append(f"p99 {p99:,.1f} ms")
        if res.get("redelivered"):
            bits.append(f"redelivered {int(res['redelivered'])}")
        out.append(f'<div class="variant">{_e(" · ".join(bits))}</div>')
    examples = res.get("examples") or {}
    if any(examples.values()):
        shown = {k: v[:MAX_EXAMPLES] for k, v in examples.items() if v}
        text = json.dumps(shown, indent=1, default=str, ensure_ascii=False)
        out.append(f"<details><summary>examples</summary><pre>{_e(text)}</pre></details>")
    out.append("</div>")
    return "".join(out)


def _cell_verdict(entries: list[dict[str, Any]]) -> str:
    verdicts = {r["verdict"] for r in entries}
    for v in ("fail", "pass", "unsupported"):
        if v in verdicts:
            return v
    return "empty"


def grid_html(results: Results) -> str:
    """The (approach + settings) × scenario matrix as an HTML table."""
    rows = results["results"]
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    approach_of: dict[str, str] = {}
    for r in rows:
        cells[(row_label(r), r["scenario"])].append(r)
        approach_of[row_label(r)] = r["approach"]
    out = ['<table id="grid" class="grid"><thead><tr><th>approach \\ scenario</th>']
    out += [f'<th scope="col">{_e(s)}</th>' for s in scenarios]
    out.append("</tr></thead><tbody>")
    for name in sorted(approach_of):
        out.append(f'<tr><th scope="row">{_e(name)}</th>')
        for s in scenarios:
            entries = cells.get((name, s), [])
            cls = _cell_verdict(entries)
            title = " · ".join([f"{name} × {s}: {cls}", *(b for r in entries for b in _delivery_bits(r))])
            body = "".join(_entry(r, len(entries) > 1) for r in entries) or "—"
            out.append(
                f'<td class="cell {cls}" data-approach="{_e(approach_of[name])}" data-scenario="{_e(s)}" '
                f'data-verdict="{cls}" data-label="{_e(name)}" title="{_e(title)}">{body}</td>'
            )
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def interop_html(results: Results) -> str:
    """Writer engine × reader approach per table format: each cell counts its scenarios' verdicts."""
    rows = [r for r in results["results"] if r.get("writer")]
    if not rows:
        return ""
    out = []
    for family in sorted({r.get("family", "") for r in rows}):
        mine = [r for r in rows if r.get("family", "") == family]
        writers = sorted({r["writer"] for r in mine})
        readers = sorted({r["approach"] for r in mine})
        out.append(f'<h3>{_e(family)}</h3><table class="interop" data-family="{_e(family)}"><thead><tr>'
                   '<th>reader \\ writer</th>' + "".join(f'<th scope="col">{_e(w)}</th>' for w in writers)
                   + "</tr></thead><tbody>")
        for reader in readers:
            out.append(f'<tr><th scope="row">{_e(reader)}</th>')
            for writer in writers:
                cell = [r for r in mine if r["approach"] == reader and r["writer"] == writer]
                counts: dict[str, int] = defaultdict(int)
                for r in cell:
                    counts[r["verdict"]] += 1
                text = " · ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "—"
                title = "; ".join(f"{r['scenario']}: {r['verdict']}{' (' + r['reason'] + ')' if r['reason'] else ''}"
                                  for r in cell)
                out.append(f'<td class="cell {_cell_verdict(cell)}" data-reader="{_e(reader)}" '
                           f'data-writer="{_e(writer)}" title="{_e(title)}">{_e(text)}</td>')
            out.append("</tr>")
        out.append("</tbody></table>")
    return "".join(out)


def capabilities_html(results: Results) -> str:
    """One row per approach and settings (claims may depend on settings) with what it claims."""
    caps = results.get("capabilities") or {}
    if not caps:
        return "<p>No capabilities recorded.</p>"
    keys = {row_label(r): (r["approach"], r.get("settings") or {}) for r in results["results"]}
    out = ['<table id="capabilities"><thead><tr><th>approach</th><th>settings</th>']
    out += [f"<th>{_e(f)}</th>" for f in CAPABILITY_FIELDS] + ["<th>notes</th></tr></thead><tbody>"]
    for key in sorted(caps):
        cap = caps[key]
        approach, settings = keys.get(key, (key, {}))
        shown = ", ".join(f"{k}={v}" for k, v in sorted(settings.items())) or "—"
        out.append(f'<tr><th scope="row">{_e(approach)}</th><td>{_e(shown)}</td>')
        for f in CAPABILITY_FIELDS:
            v = cap.get(f)
            if isinstance(v, bool):
                text = "yes" if v else "no"
            elif isinstance(v, list):
                text = ", ".join(str(x) for x in v) or "—"
            else:
                text = "—" if v is None else str(v)
            out.append(f"<td>{_e(text)}</td>")
        out.append(f"<td>{_e('; '.join(str(n) for n in cap.get('notes') or []))}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def run_html(results: Results) -> str:
    """The run's settings and host as a two-column table."""
    run = results["run"]
    rows = []
    for k, v in run.items():
        if isinstance(v, dict):
            v = ", ".join(f"{kk}={vv}" for kk, vv in v.items())
        elif isinstance(v, bool):
            v = "yes" if v else "no"
        elif v is None:
            v = "—"
        rows.append(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>")
    return f'<table id="run">{"".join(rows)}</table>'


def combined_cdf(entries: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """Merge several results' lag CDFs into one, each weighted by its event count."""
    curves = []
    for r in entries:
        pts = sorted((float(x), float(f)) for x, f in r.get("lag_cdf") or [])
        if pts:
            curves.append((max(int(r.get("events") or 0), 1), [p[0] for p in pts], [p[1] for p in pts]))
    if not curves:
        return []
    total = sum(w for w, _, _ in curves)
    xs = sorted({x for _, cx, _ in curves for x in cx})
    if len(xs) > 400:
        step = len(xs) / 400
        xs = sorted({xs[int(i * step)] for i in range(400)} | {xs[-1]})
    out = []
    for x in xs:
        f = 0.0
        for w, cx, cf in curves:
            i = bisect.bisect_right(cx, x)
            f += w * (cf[i - 1] if i else 0.0)
        out.append((x, f / total))
    return out


def lag_figure(results: Results) -> Any:
    """Lag CDF, one curve per approach + settings (its scenarios merged, weighted by events)."""
    import plotly.graph_objects as go

    by_approach: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results["results"]:
        by_approach[row_label(r)].append(r)
    fig = go.Figure()
    for a in sorted(by_approach):
        pts = combined_cdf(by_approach[a])
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines",
                                     name=a, line={"shape": "hv"}))
    fig.update_layout(title="Lag CDF per approach (commit issued → captured)", xaxis_title="lag (ms, log)",
                      yaxis_title="fraction of events", xaxis_type="log", yaxis_range=[0, 1.02],
                      height=420, margin={"t": 50, "l": 60, "r": 20, "b": 50}, legend_title="approach")
    return fig


def throughput_figure(results: Results) -> Any:
    """Grouped bars: events/s for each approach (+ settings) × scenario."""
    import plotly.graph_objects as go

    rows = results["results"]
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    fig = go.Figure()
    for a in sorted({row_label(r) for r in rows}):
        best: dict[str, float] = {}
        for r in rows:
            if row_label(r) == a and r.get("events_per_s") is not None:
                best[r["scenario"]] = max(best.get(r["scenario"], 0.0), float(r["events_per_s"]))
        if best:
            fig.add_trace(go.Bar(x=scenarios, y=[best.get(s) for s in scenarios], name=a))
    values = [v for t in fig.data for v in t.y if v]
    log = bool(values) and max(values) / min(values) > 100  # one fast scenario must not flatten the rest
    buttons = [{"label": label, "method": "relayout", "args": [{"yaxis.type": kind}]}
               for label, kind in (("linear", "linear"), ("log", "log"))]
    fig.update_layout(title="Throughput (events/s) per approach × scenario", barmode="group",
                      yaxis_title="events/s", yaxis_type="log" if log else "linear",
                      height=420, margin={"t": 50, "l": 60, "r": 20, "b": 50}, legend_title="approach",
                      updatemenus=[{"type": "buttons", "direction": "right", "x": 0.5, "y": 1.15,
                                    "xanchor": "center", "buttons": buttons, "active": 1 if log else 0}])
    return fig


def lag_table_html(results: Results) -> str:
    """Lag percentiles, throughput, redelivered repeats and recovery time per result (no JavaScript)."""
    out = ['<table id="lag-table"><thead><tr><th>approach</th><th>scenario</th><th>engine</th>']
    out += [f"<th>{q} ms</th>" for q in QUANTILES]
    out.append("<th>events</th><th>events/s</th><th>redelivered</th><th>recovery s</th></tr></thead><tbody>")
    for r in results["results"]:
        if r["verdict"] == "unsupported":
            continue
        lag = r.get("lag_ms") or {}
        out.append(
            f"<tr><td>{_e(row_label(r))}</td><td>{_e(r['scenario'])}</td><td>{_e(r.get('engine', ''))}</td>"
            + "".join(f"<td>{_num(lag.get(q))}</td>" for q in QUANTILES)
            + f"<td>{int(r.get('events') or 0)}</td><td>{_num(r.get('events_per_s'), ',.1f')}</td>"
            + f"<td>{int(r.get('redelivered') or 0)}</td><td>{_num(r.get('recovery_s'))}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def render(results: Results, ladder: dict[str, list[dict[str, Any]]] | None = None,
           history: Path | None = None) -> str:
    """The whole page as one string: inline CSS, inline plotly.js, no network needed to view it.
    ``ladder``: the rate ladder's steps by approach (``reports.ladder.load_points``), drawn as lag
    p99 vs offered rate and sustainable throughput; ``history`` (a DuckDB results history): the
    trend over its last runs."""
    validate(results)
    run = results["run"]
    rows = results["results"]
    counts = {v: sum(1 for r in rows if r["verdict"] == v) for v in ("pass", "fail", "unsupported")}
    title = f"CDC conformance — {run['run_id']}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>{_e(run['started_at'])} → {_e(run['finished_at'])} · scale {_e(run['scale'])} · "
        f"seed {_e(run['seed'])} · engines {_e(run['engines'])} · harness {_e(run['harness_version'])}</p>",
    ]
    if run.get("interrupted"):
        why = f" ({run['interrupted_reason']})" if run.get("interrupted_reason") else ""
        parts.append(f'<p class="interrupted" id="interrupted">Interrupted{_e(why)}: this run was cut short; '
                     "its results are partial.</p>")
    if not rows:
        parts.append('<p class="empty-run" id="no-tests">No tests ran: the results file has no results.</p>')
    else:
        parts.append(
            '<p class="summary" id="summary">'
            + "".join(f'<span class="v-{v}">{_e(v)}: {n}</span>' for v, n in counts.items())
            + f"<span>total: {len(rows)}</span></p>"
        )
        parts += ["<h2>Conformance matrix</h2>", f'<div class="scroll">{grid_html(results)}</div>']
    interop = interop_html(results)
    if interop:
        parts += ["<h2>Interop: writer engine × reader</h2>", interop]
    parts += ["<h2>Capabilities</h2>", capabilities_html(results)]
    if rows:
        lag_div = lag_figure(results).to_html(full_html=False, include_plotlyjs=True, div_id="lag-cdf")
        tp_div = throughput_figure(results).to_html(full_html=False, include_plotlyjs=False,
                                                    div_id="throughput")
        parts += ["<h2>Lag</h2>", lag_div, "<h2>Throughput</h2>", tp_div,
                  "<h2>Lag, throughput, redelivery and recovery per result</h2>", lag_table_html(results)]
    if ladder:
        from reports.ladder import section_html

        parts += section_html(ladder, include_plotlyjs=not rows)
    from reports.html_trend import trend_html  # the results history's trend (reports/html_trend.py)

    parts.append(trend_html(history, chart=bool(rows or ladder)))  # plotly.js is on the page then
    parts += ["<h2>Run settings</h2>", run_html(results), "</body></html>"]
    return "\n".join(parts)


def write(results: Results, out: str | Path, ladder: dict[str, list[dict[str, Any]]] | None = None,
          history: Path | None = None) -> Path:
    """Render ``results`` (with the rate ladder's steps and the trend of ``history``, when given)
    and write the page to ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(results, ladder, history), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m reports.html RESULTS.json -o OUT.html``."""
    parser = argparse.ArgumentParser(prog="python -m reports.html", description=__doc__)
    parser.add_argument("results", help="results JSON file written by the conformance suite")
    parser.add_argument("-o", "--output", default="reports/out/report.html", help="HTML file to write")
    parser.add_argument("--benchmark-json", help="pytest-benchmark JSON of a rate-ladder run (pytest suites "
                        "--benchmark-only -k rate --benchmark-json=PATH): adds lag vs offered rate charts")
    parser.add_argument("--history", default=None,
                        help="results history (DuckDB) whose trend the page shows (default: history.duckdb "
                             "beside the results file, when there; off: none)")
    args = parser.parse_args(argv)
    history = Path(args.results).parent / "history.duckdb" if args.history is None else (
        None if args.history == "off" else Path(args.history))
    try:
        ladder = None
        if args.benchmark_json:
            from reports.ladder import load_points

            ladder = load_points(args.benchmark_json)
        path = write(load(args.results), args.output, ladder, history)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} — open it in a browser: file://{path.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
