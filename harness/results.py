"""The results file: one flat, versioned JSON record of every approach × scenario verdict.

This module owns the format: its schema, the label of a row ("approach + settings"), the writer
(part files and their merge) and the validator that ``reports/`` and users' tools read it with.

Format (``schema`` 1; fields may be added, never renamed or removed without a new schema)::

    {"schema": 1,
     "run": {"run_id", "started_at", "finished_at", "seed", "scale", "engines", "host",
             "harness_version", "interrupted", "interrupted_reason"},
     "capabilities": {label: {"before_image", "updates", "key_updates", "transactions", "delivery",
                              "ddl", "truncate", "resume", "net_per_commit", "keyless", "partition",
                              "dropped", "notes", "settings"}},
     "results": [{"approach", "scenario", "engine", "settings", "verdict", "reason",
                  "anomalies": {kind: n}, "examples": {kind: [...]}, "events", "events_per_s",
                  "lag_ms": {"p50", "p95", "p99", "max"}, "duration_s", "lag_cdf": [[ms, frac]],
                  "redelivered", "recovery_s", "measurements": {...}}]}

``capabilities`` is keyed by ``label(approach, settings)`` (claims may depend on settings).
``redelivered`` counts the repeats bounded at-least-once delivery excuses (a repeat after a
restart of an event not acknowledged before it); ``recovery_s`` is the seconds from the last
fault (or the last write) until every committed change was captured, ``null`` when the capture
never completed. ``run.interrupted`` is true when the run was cut short (Ctrl-C, SIGTERM, a
stop request): its results are partial.

Under pytest-xdist each worker writes ``<results>.parts/<run_id>-<worker>.json``; the
controller merges only its own run's parts. Parts of other runs are left alone (another run may
still be going) and removed once older than a day. A run with no result writes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.verdict import ANOMALIES, Verdict

SCHEMA = 1
VERDICTS = ("pass", "fail", "unsupported")
SCALES = ("smoke", "default", "large")
ANOMALY_KINDS = ANOMALIES  # one list of anomaly names: harness.verdict
QUANTILES = ("p50", "p95", "p99", "max")
#: parts of another run older than this are removed at merge time
STALE_PART_S = 24 * 3600

Results = dict[str, Any]
Settings = Mapping[str, Any] | Iterable[tuple[str, Any]]


class ReportError(Exception):
    """A results file that cannot be reported: the message names the file and what is wrong."""


# -- labels ------------------------------------------------------------------------------------------


def variant(settings: Settings | None) -> str:
    """A result's settings as ``k=v,k=v`` (sorted; "" when none): a stable metric label."""
    items = sorted(dict(settings or {}).items())
    return ",".join(f"{k}={v}" for k, v in items)


def label(approach: str, settings: Settings | None = None) -> str:
    """The approach with its settings, as the matrix and reports show it and capabilities are
    keyed: ``pg-pgoutput replica_identity=full`` (``delta-cdf`` when there are none)."""
    return approach + "".join(f" {k}={v}" for k, v in sorted(dict(settings or {}).items()))


def row_label(row: Mapping[str, Any]) -> str:
    """``label`` of one result row."""
    return label(row["approach"], row.get("settings"))


# -- rows and header -----------------------------------------------------------------------------------


def result_record(approach: str, scenario: str, engine: str, settings: dict[str, Any], verdict: Verdict,
                  duration_s: float) -> dict[str, Any]:
    """One flat result row (reasons and reader errors masked: they may quote a driver's words)."""
    from harness.secrets import mask_text

    m = dict(verdict.measurements)
    if m.get("reader_errors"):
        m["reader_errors"] = [mask_text(str(e)) for e in m["reader_errors"]]
    return {
        "approach": approach,
        "scenario": scenario,
        "engine": engine,
        "settings": settings,
        "verdict": verdict.status,
        "reason": mask_text(verdict.reason) or ", ".join(f"{k}={n}" for k, n in verdict.anomalies.items()),
        "anomalies": dict(verdict.anomalies),
        "examples": verdict.examples,
        "events": m.get("events", 0),
        "events_per_s": m.get("events_per_s"),
        "lag_ms": m.get("lag_ms", {"p50": None, "p95": None, "p99": None, "max": None}),
        "duration_s": round(duration_s, 3),
        "lag_cdf": m.get("lag_cdf", []),
        "redelivered": int(m.get("redelivered") or 0),
        "recovery_s": m.get("recovery_s"),
        "measurements": {k: v for k, v in m.items() if k not in ("lag_ms", "lag_cdf")},
    }


def run_header(run_id: str, started_at: str, seed: int, scale: str, engines: str,
               interrupted: str | None = None) -> dict[str, Any]:
    """The ``run`` section (``interrupted``: why the run was cut short, None when it was not)."""
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
        "interrupted": bool(interrupted),
        "interrupted_reason": interrupted or None,
    }


def now_iso() -> str:
    """Current UTC time, ISO 8601."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# -- writer ------------------------------------------------------------------------------------------


def parts_dir(path: Path) -> Path:
    """Where the workers of a run put their part files."""
    return path.parent / (path.name + ".parts")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def check_writable(path: Path) -> str | None:
    """Why the results file cannot be written at ``path`` (nothing is created), or None."""
    if path.is_dir():
        return "it is a directory"
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is read-only"
    parent = path.absolute().parent
    while not parent.exists() and not parent.is_symlink():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"directory {parent} is not writable"
    return None


def write_part(path: Path, run_id: str, worker: str, records: list[dict], capabilities: dict[str, dict]) -> Path:
    """Write one worker's records as ``<results>.parts/<run_id>-<worker>.json``; return its path."""
    parts = parts_dir(path)
    parts.mkdir(parents=True, exist_ok=True)
    part = parts / f"{run_id}-{worker}.json"
    _write_atomic(part, json.dumps({"run_id": run_id, "results": records, "capabilities": capabilities},
                                   default=str))
    return part


def merge_parts(path: Path, header: dict[str, Any], records: Iterable[dict] = (),
                capabilities: Mapping[str, dict] | None = None,
                now: float | None = None) -> tuple[Results | None, list[str]]:
    """Merge ``records`` and this run's part files into the results file at ``path``.

    Returns the document written (None when the run has no result: the file is left as it was)
    and lines to show the user (parts of other runs ignored or removed as stale).
    """
    run_id = header["run_id"]
    results = list(records)
    caps = dict(capabilities or {})
    notes: list[str] = []
    parts = parts_dir(path)
    if parts.is_dir():
        now = time.time() if now is None else now
        others: list[Path] = []
        for part in sorted(parts.iterdir()):
            if part.name.startswith(f"{run_id}-") and part.suffix == ".json":
                data = json.loads(part.read_text(encoding="utf-8"))
                results.extend(data["results"])
                caps.update(data["capabilities"])
                part.unlink()
            else:
                others.append(part)
        stale = [p for p in others if now - p.stat().st_mtime > STALE_PART_S]
        for p in stale:
            p.unlink(missing_ok=True)
        if stale:
            notes.append(f"removed {len(stale)} stale part file(s) of other runs, older than a day, from {parts}: "
                         + ", ".join(p.name for p in stale))
        if len(others) > len(stale):
            notes.append(f"ignored {len(others) - len(stale)} part file(s) of other runs in {parts} "
                         "(not merged; removed once older than a day)")
        with contextlib.suppress(OSError):  # not empty: parts of other runs stay
            parts.rmdir()
    if not results:
        return None, notes
    results.sort(key=lambda r: (r["approach"], r["scenario"], json.dumps(r["settings"], sort_keys=True)))
    doc = {"schema": SCHEMA, "run": {**header, "finished_at": now_iso()}, "capabilities": caps,
           "results": results}
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, json.dumps(doc, indent=1, default=str))
    return doc, notes


# -- validator ---------------------------------------------------------------------------------------


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check(cond: bool, where: str, what: str, errors: list[str]) -> None:
    if not cond:
        errors.append(f"{where}: {what}")


def _check_run(run: Any, errors: list[str]) -> None:
    if not isinstance(run, dict):
        errors.append("run: must be an object")
        return
    for key in ("run_id", "started_at", "finished_at", "engines", "harness_version"):
        _check(isinstance(run.get(key), str), f"run.{key}", "must be a string", errors)
    _check(isinstance(run.get("seed"), int), "run.seed", "must be an integer", errors)
    _check(run.get("scale") in SCALES, "run.scale", f"must be one of {'|'.join(SCALES)}", errors)
    _check(isinstance(run.get("interrupted", False), bool), "run.interrupted", "must be true/false", errors)
    reason = run.get("interrupted_reason")
    _check(reason is None or isinstance(reason, str), "run.interrupted_reason", "must be a string or null", errors)
    if not isinstance(run.get("host"), dict):
        errors.append("run.host: must be an object")


def _check_capabilities(caps: Any, errors: list[str]) -> None:
    if not isinstance(caps, dict):
        errors.append("capabilities: must be an object keyed by approach (+ settings) label")
        return
    for key, cap in caps.items():
        where = f"capabilities[{key!r}]"
        if not isinstance(cap, dict):
            errors.append(f"{where}: must be an object")
            continue
        _check(cap.get("before_image") in ("full", "key", "none"), f"{where}.before_image",
               "must be full|key|none", errors)
        _check(cap.get("updates") in ("update", "delete+insert"), f"{where}.updates",
               "must be update|delete+insert", errors)
        _check(cap.get("key_updates", "update") in ("update", "delete+insert"), f"{where}.key_updates",
               "must be update|delete+insert", errors)
        _check(cap.get("delivery") in ("exactly-once", "at-least-once"), f"{where}.delivery",
               "must be exactly-once|at-least-once", errors)
        for flag in ("transactions", "truncate", "resume"):
            _check(isinstance(cap.get(flag), bool), f"{where}.{flag}", "must be true/false", errors)
        _check(isinstance(cap.get("ddl", []), list), f"{where}.ddl", "must be a list", errors)


def _check_result(i: int, res: Any, errors: list[str]) -> None:
    where = f"results[{i}]"
    if not isinstance(res, dict):
        errors.append(f"{where}: must be an object")
        return
    for key in ("approach", "scenario", "engine"):
        _check(isinstance(res.get(key), str) and res.get(key) != "", f"{where}.{key}",
               "must be a non-empty string", errors)
    _check(res.get("verdict") in VERDICTS, f"{where}.verdict", f"must be one of {'|'.join(VERDICTS)}", errors)
    _check(isinstance(res.get("reason", ""), str), f"{where}.reason", "must be a string", errors)
    _check(isinstance(res.get("settings", {}), dict), f"{where}.settings", "must be an object", errors)
    anomalies = res.get("anomalies", {})
    if isinstance(anomalies, dict):
        for kind, count in anomalies.items():
            _check(_count(count), f"{where}.anomalies[{kind!r}]", "must be a non-negative integer", errors)
    else:
        errors.append(f"{where}.anomalies: must be an object of kind -> count")
    _check(isinstance(res.get("examples", {}), dict), f"{where}.examples", "must be an object", errors)
    events = res.get("events", 0)
    _check(isinstance(events, int) and not isinstance(events, bool), f"{where}.events",
           "must be an integer", errors)
    eps = res.get("events_per_s")
    _check(eps is None or _num(eps), f"{where}.events_per_s", "must be a number or null", errors)
    _check(_num(res.get("duration_s", 0.0)), f"{where}.duration_s", "must be a number", errors)
    _check(_count(res.get("redelivered", 0)), f"{where}.redelivered", "must be a non-negative integer", errors)
    rec = res.get("recovery_s")
    _check(rec is None or (_num(rec) and rec >= 0), f"{where}.recovery_s",
           "must be a non-negative number or null", errors)
    lag = res.get("lag_ms", {})
    if isinstance(lag, dict):
        for q in QUANTILES:
            v = lag.get(q)
            _check(v is None or _num(v), f"{where}.lag_ms.{q}", "must be a number or null", errors)
    else:
        errors.append(f"{where}.lag_ms: must be an object with p50/p95/p99/max")
    cdf = res.get("lag_cdf", [])
    ok = isinstance(cdf, list) and all(
        isinstance(p, list | tuple) and len(p) == 2 and _num(p[0]) and _num(p[1]) for p in cdf
    )
    _check(ok, f"{where}.lag_cdf", "must be a list of [lag_ms, fraction] pairs", errors)


def validate(data: Any, source: str = "<results>") -> Results:
    """Check ``data`` against schema 1 and return it; raise ReportError listing every problem."""
    if not isinstance(data, dict):
        raise ReportError(f"{source}: not a results file (top level must be a JSON object)")
    schema = data.get("schema")
    if schema != SCHEMA:
        raise ReportError(
            f"{source}: results schema {schema!r} is not supported (this reporter reads schema {SCHEMA}); "
            "re-run the suite with this harness version to regenerate it"
        )
    errors: list[str] = []
    _check_run(data.get("run"), errors)
    _check_capabilities(data.get("capabilities", {}), errors)
    results = data.get("results")
    if isinstance(results, list):
        for i, res in enumerate(results):
            _check_result(i, res, errors)
    else:
        errors.append("results: must be a list")
    if errors:
        shown = "; ".join(errors[:20]) + (f"; ... {len(errors) - 20} more" if len(errors) > 20 else "")
        raise ReportError(f"{source}: invalid results file: {shown}")
    return data


def load(path: str | Path) -> Results:
    """Read and validate a results file; any problem is a ReportError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{path}: cannot read results file: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ReportError(f"{path}: malformed JSON at {where}: {exc.msg}") from exc
    return validate(data, str(path))


def dump(results: Results, path: str | Path) -> Path:
    """Write a results dict as JSON (validated first) and return the path."""
    path = Path(path)
    validate(results, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False), encoding="utf-8")
    return path
