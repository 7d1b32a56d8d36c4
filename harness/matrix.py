"""The plain-text conformance matrix printed at the end of a run (approach × scenario)."""

from __future__ import annotations

from typing import Any

from harness.results import row_label

SYMBOL = {"pass": "pass", "fail": "FAIL", "unsupported": "n/a"}


def cell(row: dict[str, Any]) -> str:
    """One short cell: ``pass``, ``pass(redelivered:3)``, ``FAIL(lost:2,redelivered:1)``, ``n/a``."""
    text = SYMBOL.get(row["verdict"], row["verdict"])
    details = [f"{k}:{v}" for k, v in row["anomalies"].items()] if row["verdict"] == "fail" else []
    if row.get("redelivered"):
        details.append(f"redelivered:{row['redelivered']}")
    return text + (f"({','.join(details)})" if details else "")


def render_matrix(doc: dict[str, Any]) -> list[str]:
    """Lines of a fixed-width grid: one row per approach (+settings), one column per scenario."""
    rows: dict[str, dict[str, str]] = {}
    scenarios: list[str] = []
    for r in doc["results"]:
        rows.setdefault(row_label(r), {})[r["scenario"]] = cell(r)
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
    lines = []
    run = doc.get("run") or {}
    if run.get("interrupted"):
        why = f" ({run['interrupted_reason']})" if run.get("interrupted_reason") else ""
        lines.append(f"INTERRUPTED{why}: the results are partial")
    if not rows:
        return lines
    width0 = max(len("approach"), *(len(k) for k in rows))
    widths = [max(len(s), *(len(rows[k].get(s, "")) for k in rows)) for s in scenarios]
    header = "approach".ljust(width0) + " | " + " | ".join(s.ljust(w) for s, w in zip(scenarios, widths, strict=True))
    lines += [header, "-" * len(header)]
    for name in sorted(rows):
        cells = [rows[name].get(s, "-").ljust(w) for s, w in zip(scenarios, widths, strict=True)]
        lines.append(name.ljust(width0) + " | " + " | ".join(cells))
    lines.append("")
    for r in doc["results"]:
        if r["verdict"] != "pass" and r["reason"]:
            lines.append(f"{row_label(r)} {r['scenario']}: {r['verdict']}: {r['reason']}")
    return lines
