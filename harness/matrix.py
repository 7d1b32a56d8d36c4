"""The plain-text conformance matrix printed at the end of a run (approach × scenario)."""

from __future__ import annotations

from typing import Any

SYMBOL = {"pass": "pass", "fail": "FAIL", "unsupported": "n/a"}


def render_matrix(doc: dict[str, Any]) -> list[str]:
    """Lines of a fixed-width grid: one row per approach (+settings), one column per scenario."""
    rows: dict[str, dict[str, str]] = {}
    scenarios: list[str] = []
    for r in doc["results"]:
        label = r["approach"] + "".join(f" {k}={v}" for k, v in sorted(r["settings"].items()))
        cell = SYMBOL.get(r["verdict"], r["verdict"])
        if r["verdict"] == "fail":
            cell += "(" + ",".join(f"{k}:{v}" for k, v in r["anomalies"].items()) + ")"
        rows.setdefault(label, {})[r["scenario"]] = cell
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
    width0 = max(len("approach"), *(len(k) for k in rows))
    widths = [max(len(s), *(len(rows[k].get(s, "")) for k in rows)) for s in scenarios]
    header = "approach".ljust(width0) + " | " + " | ".join(s.ljust(w) for s, w in zip(scenarios, widths, strict=True))
    lines = [header, "-" * len(header)]
    for label in sorted(rows):
        cells = [rows[label].get(s, "-").ljust(w) for s, w in zip(scenarios, widths, strict=True)]
        lines.append(label.ljust(width0) + " | " + " | ".join(cells))
    lines.append("")
    for r in doc["results"]:
        if r["verdict"] != "pass" and r["reason"]:
            lines.append(f"{r['approach']}-{r['scenario']}: {r['verdict']}: {r['reason']}")
    return lines
