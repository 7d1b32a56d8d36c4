"""What one conformance result shows in Allure: verdict summary, figures, anomaly examples, lag CDF.

Built from the result row of ``harness.results`` (the same data as the results file): the
description is an HTML summary (verdict, reason, anomalies, throughput, lag quantiles, recovery);
the figures are also parameters (kept out of the history id); the anomaly examples are an HTML
table per kind; the lag CDF is a small PNG. Everything that may carry a URL is masked.
"""

from __future__ import annotations

import html
import io
import json
from typing import Any

from harness.secrets import mask_text

try:
    import allure
except ImportError:  # pragma: no cover - allure-pytest is a dependency
    allure = None

STYLE = ("<style>body{font:13px sans-serif;margin:8px}table{border-collapse:collapse;margin:4px 0 14px}"
         "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}"
         "th{background:#f2f2f2}code{font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}</style>")
#: a value longer than this is cut in the examples table (its length is shown)
LONG = 60


def _shorten(value: Any) -> Any:
    """``value`` with every long string or bytes-like text cut to ``LONG`` characters (TOAST rows)."""
    if isinstance(value, str) and len(value) > LONG:
        return f"{value[:LONG]}… ({len(value)} chars)"
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shorten(v) for v in value]
    return value


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def figures(row: dict[str, Any]) -> list[tuple[str, Any]]:
    """The result's figures as (name, value) pairs: events, events/s, lag quantiles, recovery, time
    (a value is None when the run did not measure it)."""
    lag = row.get("lag_ms") or {}
    out = [("events", row.get("events")), ("events/s", row.get("events_per_s"))]
    out += [(f"lag {q} (ms)", lag.get(q)) for q in ("p50", "p95", "p99", "max")]
    out += [("redelivered", row.get("redelivered", 0)), ("recovery (s)", row.get("recovery_s")),
            ("duration (s)", row.get("duration_s"))]
    return out


def description_html(row: dict[str, Any]) -> str:
    """The verdict summary shown as the test's description: verdict line, reason, anomaly counts,
    and the figures as a short list (Allure keeps tags but drops style attributes, so no table)."""
    head = (f"<p><b>{html.escape(row['verdict'].upper())}</b> — {html.escape(row['approach'])} on scenario "
            f"<b>{html.escape(row['scenario'])}</b>")
    if row.get("settings"):
        head += " (" + html.escape(", ".join(f"{k}={v}" for k, v in row["settings"].items())) + ")"
    parts = [head + f", engine {html.escape(str(row.get('engine', '')))}</p>"]
    counts = ", ".join(f"{k}={v}" for k, v in (row.get("anomalies") or {}).items())
    if row.get("reason") and row["reason"] not in (counts, f"fail: {counts}"):  # not the counts again
        parts.append(f"<p>{html.escape(mask_text(row['reason']))}</p>")
    if row.get("anomalies"):
        counts = ", ".join(f"{html.escape(k)} <b>{v:,}</b>" for k, v in row["anomalies"].items())
        parts.append(f"<p>anomalies: {counts}</p>")
    if row["verdict"] != "unsupported":
        values = dict(figures(row))
        lag = " / ".join(_num(values[f"lag {q} (ms)"], 2) for q in ("p50", "p95", "p99", "max"))
        items = [f"events: {_num(values['events'])}", f"throughput: {_num(values['events/s'], 1)} events/s",
                 f"lag p50 / p95 / p99 / max: {lag} ms", f"redelivered: {_num(values['redelivered'])}",
                 f"recovery: {_num(values['recovery (s)'], 2)} s", f"duration: {_num(values['duration (s)'], 2)} s"]
        parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")
    return "".join(parts)


def _compact(value: Any, limit: int = 600) -> str:
    text = json.dumps(_shorten(value), default=str, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


def _change(example: dict[str, Any]) -> dict[str, Any]:
    """The change an example is about (the first one where it names several, e.g. a delete + insert pair)."""
    change = example.get("committed") or example.get("event") or example.get("captured") or {}
    if isinstance(change, list):
        change = next((c for c in change if isinstance(c, dict)), {})
    return change if isinstance(change, dict) else {}


def _image(change: Any) -> str:
    """A change's before/after images; several changes (a list) one after the other with their op and key."""
    if not change:
        return ""
    if isinstance(change, list):
        return " | ".join(f"{c.get('op', '')} key={_compact(c.get('key'), 60)} {_image(c)}" if isinstance(c, dict)
                          else _compact(c) for c in change)
    if not isinstance(change, dict):
        return _compact(change)
    image = {k: change[k] for k in ("before", "after") if change.get(k) is not None}
    return _compact(image) if image else _compact({k: v for k, v in change.items() if k not in ("table", "key")})


def _difference(example: dict[str, Any]) -> str:
    diff = example.get("difference")
    if isinstance(diff, dict):
        return "; ".join(f"{k}: {_compact(v.get('expected'), 80)} → {_compact(v.get('got'), 80)}"
                         if isinstance(v, dict) else f"{k}: {_compact(v, 80)}" for k, v in diff.items())
    rest = {k: v for k, v in example.items() if k not in ("why", "committed", "captured", "event")}
    return _compact(rest) if rest else ""


def examples_html(examples: dict[str, list[Any]]) -> str:
    """One table per anomaly kind: why, where (table, op, key), committed, captured, difference."""
    parts = [STYLE]
    for kind, items in examples.items():
        rows = []
        for ex in items:
            if not isinstance(ex, dict):
                rows.append(f'<tr><td colspan="5"><code>{html.escape(_compact(ex))}</code></td></tr>')
                continue
            change = _change(ex)
            where = f"{change.get('table', '')} {change.get('op', '')} key={_compact(change.get('key'), 120)}"
            committed = _image(ex.get("committed"))
            captured = _image(ex.get("captured") or ex.get("event"))
            rows.append("<tr>" + "".join(f"<td><code>{html.escape(c)}</code></td>" for c in (
                ex.get("why", ""), where, committed, captured, _difference(ex))) + "</tr>")
        parts.append(f"<h3>{html.escape(kind)} ({len(items)} shown)</h3><table><tr><th>why</th><th>where</th>"
                     f"<th>committed</th><th>captured</th><th>difference</th></tr>{''.join(rows)}</table>")
    return mask_text("".join(parts))


def lag_chart_png(row: dict[str, Any]) -> bytes | None:
    """A small PNG of the lag CDF (matplotlib), or None when there is no lag or no matplotlib."""
    cdf = row.get("lag_cdf") or []
    if len(cdf) < 2:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.plot([p[0] for p in cdf], [p[1] for p in cdf])
    ax.set_xlabel("lag (ms, captured_at - commit issued)")
    ax.set_ylabel("fraction of events")
    ax.set_title(f"{row['approach']} / {row['scenario']}")
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def attach_result(row: dict[str, Any], logs: dict[str, str] | None = None) -> None:
    """Describe the running test with its result row: description, figures, attachments
    (``logs``: the tail of each engine's log by role, attached as "<role> log")."""
    if allure is None:
        return
    allure.dynamic.description_html(description_html(row))
    summary = {k: row.get(k) for k in ("verdict", "reason", "anomalies", "events", "events_per_s", "lag_ms",
                                       "redelivered", "recovery_s")}
    allure.attach(mask_text(json.dumps(summary, indent=1, default=str)), "verdict", allure.attachment_type.JSON)
    if row.get("examples"):
        allure.attach(examples_html(row["examples"]), "anomaly examples", allure.attachment_type.HTML)
        allure.attach(mask_text(json.dumps(row["examples"], indent=1, default=str)), "anomaly examples (JSON)",
                      allure.attachment_type.JSON)
    chart = lag_chart_png(row)
    if chart is not None:
        allure.attach(chart, "lag CDF", allure.attachment_type.PNG)
    for role, text in (logs or {}).items():
        allure.attach(mask_text(text), f"{role} log", allure.attachment_type.TEXT)
