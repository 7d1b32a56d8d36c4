"""Load and validate the public, versioned results file (schema 1) that the conformance suite writes."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from harness.verdict import ANOMALIES

SCHEMA = 1
VERDICTS = ("pass", "fail", "unsupported")
SCALES = ("smoke", "default", "large")
ANOMALY_KINDS = ANOMALIES  # one list of anomaly names: harness.verdict
QUANTILES = ("p50", "p95", "p99", "max")

Results = dict[str, Any]


class ReportError(Exception):
    """A results file that cannot be reported: the message names the file and what is wrong."""


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
    host = run.get("host")
    if not isinstance(host, dict):
        errors.append("run.host: must be an object")


def _check_capabilities(caps: Any, errors: list[str]) -> None:
    if not isinstance(caps, dict):
        errors.append("capabilities: must be an object keyed by approach id")
        return
    for approach, cap in caps.items():
        where = f"capabilities[{approach!r}]"
        if not isinstance(cap, dict):
            errors.append(f"{where}: must be an object")
            continue
        _check(cap.get("before_image") in ("full", "key", "none"), f"{where}.before_image",
               "must be full|key|none", errors)
        _check(cap.get("updates") in ("update", "delete+insert"), f"{where}.updates",
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
            _check(isinstance(count, int) and not isinstance(count, bool) and count >= 0,
                   f"{where}.anomalies[{kind!r}]", "must be a non-negative integer", errors)
    else:
        errors.append(f"{where}.anomalies: must be an object of kind -> count")
    _check(isinstance(res.get("examples", {}), dict), f"{where}.examples", "must be an object", errors)
    events = res.get("events", 0)
    _check(isinstance(events, int) and not isinstance(events, bool), f"{where}.events",
           "must be an integer", errors)
    eps = res.get("events_per_s")
    _check(eps is None or _num(eps), f"{where}.events_per_s", "must be a number or null", errors)
    _check(_num(res.get("duration_s", 0.0)), f"{where}.duration_s", "must be a number", errors)
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


def synthetic(
    approaches: tuple[str, ...] = ("pg-pgoutput", "delta-cdf", "iceberg-snapshot-diff"),
    scenarios: tuple[str, ...] = ("crud", "txn", "truncate"),
    seed: int = 7,
) -> Results:
    """A small, deterministic, valid results dict for tests and demos (pass, fail and unsupported cells)."""
    rng = random.Random(seed)
    caps = {
        a: {
            "before_image": ("full", "key", "none")[i % 3],
            "updates": "update" if i % 2 == 0 else "delete+insert",
            "transactions": i % 2 == 0,
            "delivery": "exactly-once" if i % 2 == 0 else "at-least-once",
            "ddl": ["add_column"] if i % 3 != 2 else [],
            "truncate": i % 3 == 0,
            "resume": True,
            "notes": [f"synthetic approach #{i}"],
        }
        for i, a in enumerate(approaches)
    }
    results = []
    for i, a in enumerate(approaches):
        for j, s in enumerate(scenarios):
            k = i * len(scenarios) + j
            verdict = VERDICTS[(i + j) % 3]
            anomalies: dict[str, int] = {}
            examples: dict[str, list[dict[str, Any]]] = {}
            reason = ""
            if verdict == "fail":
                anomalies = {"lost": 1 + k, "reordered": k % 4}
                anomalies = {kk: v for kk, v in anomalies.items() if v}
                examples = {"lost": [{"table": "t", "key": [k], "op": "insert", "note": "<b>&x</b>"}]}
                reason = f"{anomalies['lost']} committed change(s) never captured"
            elif verdict == "unsupported":
                reason = f"scenario '{s}' needs truncate; approach '{a}' does not claim it"
            events = 0 if verdict == "unsupported" else 1000 + 100 * k
            base = 2.0 + 3.0 * i
            lags = sorted(rng.expovariate(1 / base) for _ in range(200))
            cdf = [[round(v, 3), round((n + 1) / len(lags), 4)] for n, v in enumerate(lags)]
            duration = 1.5 + 0.25 * k
            results.append({
                "approach": a,
                "scenario": s,
                "engine": "embedded" if not a.startswith("pg") else "local",
                "settings": {"replica_identity": "full"} if a.startswith("pg") else {},
                "verdict": verdict,
                "reason": reason,
                "anomalies": anomalies,
                "examples": examples,
                "events": events,
                "events_per_s": None if verdict == "unsupported" else round(events / duration, 3),
                "lag_ms": (
                    {"p50": None, "p95": None, "p99": None, "max": None}
                    if verdict == "unsupported"
                    else {
                        "p50": round(lags[99], 3),
                        "p95": round(lags[189], 3),
                        "p99": round(lags[197], 3),
                        "max": round(lags[-1], 3),
                    }
                ),
                "duration_s": duration,
                "lag_cdf": [] if verdict == "unsupported" else cdf,
            })
    return {
        "schema": SCHEMA,
        "run": {
            "run_id": f"synthetic-{seed}",
            "started_at": "2025-01-01T00:00:00+00:00",
            "finished_at": "2025-01-01T00:01:00+00:00",
            "seed": seed,
            "scale": "smoke",
            "engines": "auto",
            "host": {"cpus": 2, "python": "3.11", "platform": "linux"},
            "harness_version": "0.1.0",
        },
        "capabilities": caps,
        "results": results,
    }
