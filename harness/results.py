"""The results file: a flat, versioned JSON record of every approach × scenario verdict.

Format (``schema`` 1), read by ``reports/`` and by users' own tools::

    {"schema": 1, "run": {...}, "capabilities": {approach: {...}},
     "results": [{"approach", "scenario", "engine", "settings", "verdict", "reason",
                  "anomalies": {kind: n}, "examples": {kind: [...]}, "events", "events_per_s",
                  "lag_ms": {"p50", "p95", "p99", "max"}, "duration_s", "lag_cdf": [[ms, frac]]}]}

Under pytest-xdist each worker writes a part file; the controller merges them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from harness.verdict import Verdict

SCHEMA = 1


def result_record(approach: str, scenario: str, engine: str, settings: dict[str, Any], verdict: Verdict,
                  duration_s: float, lag_cdf: list[list[float]] | None = None) -> dict[str, Any]:
    """One flat result row."""
    m = verdict.measurements
    return {
        "approach": approach,
        "scenario": scenario,
        "engine": engine,
        "settings": settings,
        "verdict": verdict.status,
        "reason": verdict.reason or ", ".join(f"{k}={n}" for k, n in verdict.anomalies.items()),
        "anomalies": dict(verdict.anomalies),
        "examples": verdict.examples,
        "events": m.get("events", 0),
        "events_per_s": m.get("events_per_s"),
        "lag_ms": m.get("lag_ms", {"p50": None, "p95": None, "p99": None, "max": None}),
        "duration_s": round(duration_s, 3),
        "lag_cdf": lag_cdf if lag_cdf is not None else m.get("lag_cdf", []),
        "measurements": {k: v for k, v in m.items() if k not in ("lag_ms", "lag_cdf")},
    }


def run_header(run_id: str, started_at: str, seed: int, scale: str, engines: str) -> dict[str, Any]:
    """The ``run`` section."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        harness_version = version("cdc-harness")
    except PackageNotFoundError:
        harness_version = "dev"
    return {
        "run_id": run_id,
        "started_at": started_at,
        "finished_at": None,
        "seed": seed,
        "scale": scale,
        "engines": engines,
        "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "harness_version": harness_version,
    }


def now_iso() -> str:
    """Current UTC time, ISO 8601."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_part(path: Path, worker: str, records: list[dict], capabilities: dict[str, dict]) -> Path:
    """Write one worker's records next to the results file; return the part's path."""
    parts = path.parent / (path.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    part = parts / f"{worker}.json"
    part.write_text(json.dumps({"results": records, "capabilities": capabilities}, default=str))
    return part


def merge_parts(path: Path, header: dict[str, Any]) -> dict[str, Any]:
    """Merge every part file into the results file (sorted by approach, scenario); return it."""
    parts = path.parent / (path.name + ".parts")
    results: list[dict] = []
    capabilities: dict[str, dict] = {}
    if parts.is_dir():
        for part in sorted(parts.glob("*.json")):
            data = json.loads(part.read_text())
            results.extend(data["results"])
            capabilities.update(data["capabilities"])
            part.unlink()
        parts.rmdir()
    results.sort(key=lambda r: (r["approach"], r["scenario"], json.dumps(r["settings"], sort_keys=True)))
    header = {**header, "finished_at": now_iso()}
    doc = {"schema": SCHEMA, "run": header, "capabilities": capabilities, "results": results}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    tmp.replace(path)
    return doc
