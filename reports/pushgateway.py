"""Push a run's results to a Prometheus pushgateway: lag quantiles, throughput, anomalies, verdicts,
redelivered repeats and recovery time; and a rate ladder's figures (lag per offered rate, sustainable
throughput) from its pytest-benchmark JSON."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Any

from harness.results import ANOMALY_KINDS, ReportError, Results, load, validate, variant
from harness.secrets import mask_text, mask_url, register_url

JOB = "cdc-harness"
LAG_QUANTILES = (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99"), ("max", "1"))
VERDICT_VALUES = {"pass": 1.0, "fail": 0.0, "unsupported": -1.0}
DEFAULT_TIMEOUT_S = 2.0


class PushgatewayWarning(UserWarning):
    """The pushgateway could not be reached; the run goes on without pushing metrics."""


def build_registry(results: Results) -> Any:
    """A CollectorRegistry holding one sample set per result (labels: approach, scenario, variant)."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    base = ["approach", "scenario", "variant"]
    lag = Gauge("cdc_lag_seconds", "Capture lag (commit issued to captured) quantile, seconds",
                base + ["quantile"], registry=registry)
    tput = Gauge("cdc_throughput_events_per_second", "Events captured per second", base, registry=registry)
    anomalies = Gauge("cdc_anomalies", "Anomalies found by the checker, by kind", base + ["kind"],
                      registry=registry)
    verdict = Gauge("cdc_verdict", "Verdict: 1 pass, 0 fail, -1 unsupported", base, registry=registry)
    events = Gauge("cdc_events", "Events captured in the scenario", base, registry=registry)
    redelivered = Gauge("cdc_redelivered_events", "Repeats excused as at-least-once redelivery after a restart",
                        base, registry=registry)
    hop_lag = Gauge("cdc_hop_lag_seconds", "Lag of one hop of a pipeline (measurements.hop_lag_ms) quantile, seconds",
                    base + ["hop", "quantile"], registry=registry)
    recovery = Gauge("cdc_recovery_seconds", "Seconds from the last fault or write until the capture was complete",
                     base, registry=registry)
    for res in results["results"]:
        labels = {"approach": res["approach"], "scenario": res["scenario"], "variant": variant(res.get("settings"))}
        verdict.labels(**labels).set(VERDICT_VALUES[res["verdict"]])
        if res["verdict"] == "unsupported":
            continue  # nothing ran: no lag, throughput or anomalies to report
        events.labels(**labels).set(int(res.get("events") or 0))
        lag_ms = res.get("lag_ms") or {}
        for key, q in LAG_QUANTILES:
            if lag_ms.get(key) is not None:
                lag.labels(**labels, quantile=q).set(float(lag_ms[key]) / 1000.0)
        for hop, figures in ((res.get("measurements") or {}).get("hop_lag_ms") or {}).items():
            for key, q in LAG_QUANTILES:
                if (figures or {}).get(key) is not None:
                    hop_lag.labels(**labels, hop=hop, quantile=q).set(float(figures[key]) / 1000.0)
        if res.get("events_per_s") is not None:
            tput.labels(**labels).set(float(res["events_per_s"]))
        redelivered.labels(**labels).set(int(res.get("redelivered") or 0))
        if res.get("recovery_s") is not None:  # None: the capture never completed
            recovery.labels(**labels).set(float(res["recovery_s"]))
        counts = res.get("anomalies") or {}
        for kind in dict.fromkeys([*ANOMALY_KINDS, *counts]):
            anomalies.labels(**labels, kind=kind).set(int(counts.get(kind, 0)))
    return registry


def add_ladder(registry: Any, points: dict[str, list[dict[str, Any]]]) -> Any:
    """Add the rate ladder's figures to ``registry`` (and return it): ``cdc_ladder_lag_seconds{approach,
    offered,quantile}``, ``cdc_ladder_achieved_per_second{approach,offered}``,
    ``cdc_ladder_bounded{approach,offered}`` (1/0) and ``cdc_sustainable_throughput_per_second{approach}``
    (the highest achieved rate with bounded lag; absent when no step was bounded)."""
    from prometheus_client import Gauge

    from harness.ladder import sustainable

    base = ["approach", "offered"]
    lag = Gauge("cdc_ladder_lag_seconds", "Capture lag at an offered rate (rate ladder) quantile, seconds",
                base + ["quantile"], registry=registry)
    achieved = Gauge("cdc_ladder_achieved_per_second", "Changes/s the writers achieved at an offered rate",
                     base, registry=registry)
    bounded = Gauge("cdc_ladder_bounded", "1 when the reader kept up at the offered rate, else 0", base,
                    registry=registry)
    best = Gauge("cdc_sustainable_throughput_per_second", "Highest achieved changes/s with bounded lag",
                 ["approach"], registry=registry)
    for approach, steps in points.items():
        for p in steps:
            labels = {"approach": approach, "offered": str(p.get("offered_per_s"))}
            for key, q in LAG_QUANTILES:
                value = (p.get("lag_ms") or {}).get(key)
                if value is not None:
                    lag.labels(**labels, quantile=q).set(float(value) / 1000.0)
            if p.get("achieved_per_s") is not None:
                achieved.labels(**labels).set(float(p["achieved_per_s"]))
            bounded.labels(**labels).set(1.0 if p.get("bounded") else 0.0)
        rate = sustainable(steps)
        if rate is not None:
            best.labels(approach=approach).set(float(rate))
    return registry


def push_results(url: str, results: Results, *, job: str = JOB, timeout: float = DEFAULT_TIMEOUT_S,
                 replace: bool = True, ladder: dict[str, list[dict[str, Any]]] | None = None) -> bool:
    """Push ``results`` to the pushgateway at ``url`` under {job, run_id}; True when pushed.

    Never raises for network trouble and never waits longer than about ``timeout`` seconds per
    request: an unreachable gateway gives one ``PushgatewayWarning`` naming the URL and returns
    False; so does a results dict that is not valid schema 1. ``replace`` uses PUT (the run's
    group is replaced); otherwise POST (pushadd). ``ladder``: rate ladder steps by approach
    (``reports.ladder.load_points``), pushed in the same group (``add_ladder``).
    """
    from prometheus_client import push_to_gateway, pushadd_to_gateway

    try:
        validate(results, "results")
    except ReportError as exc:
        warnings.warn(f"metrics not pushed to {mask_url(url)}: {exc}", PushgatewayWarning, stacklevel=2)
        return False
    registry = build_registry(results)
    if ladder:
        add_ladder(registry, ladder)
    grouping = {"run_id": results["run"]["run_id"]}
    push = push_to_gateway if replace else pushadd_to_gateway
    started = time.monotonic()
    try:
        target, handler = _with_auth(url)
        push(target, job=job, registry=registry, grouping_key=grouping, timeout=timeout, handler=handler)
    except Exception as exc:  # noqa: BLE001 - any failure to push must not fail the run
        warnings.warn(
            f"pushgateway at {mask_url(url)} not reachable ({type(exc).__name__}: {mask_text(str(exc))}) after "
            f"{time.monotonic() - started:.1f}s; metrics for run {grouping['run_id']} were not pushed",
            PushgatewayWarning,
            stacklevel=2,
        )
        return False
    return True


def _with_auth(url: str) -> tuple[str, Any]:
    """``(url without credentials, handler)``: ``user:password@`` in the URL becomes HTTP basic auth
    (urllib cannot send it from the URL); the password is registered so it is masked everywhere."""
    from urllib.parse import unquote, urlsplit

    from prometheus_client.exposition import basic_auth_handler, default_handler

    register_url(url)
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.username is None:
        return url, default_handler
    user, password = unquote(parts.username), unquote(parts.password or "")
    bare = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()

    def handler(url: str, method: str, timeout: float | None, headers: list, data: bytes) -> Any:
        return basic_auth_handler(url, method, timeout, headers, data, user, password)

    return bare, handler


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m reports.pushgateway RESULTS.json --url http://127.0.0.1:9091``."""
    parser = argparse.ArgumentParser(prog="python -m reports.pushgateway", description=__doc__)
    parser.add_argument("results", help="results JSON file written by the conformance suite")
    parser.add_argument("--url", required=True, help="pushgateway URL, e.g. http://127.0.0.1:9091")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    parser.add_argument("--benchmark-json", help="pytest-benchmark JSON of a rate-ladder run: its lag per "
                        "offered rate and sustainable throughput are pushed too")
    args = parser.parse_args(argv)
    try:
        results = load(args.results)
        ladder = None
        if args.benchmark_json:
            from reports.ladder import load_points

            ladder = load_points(args.benchmark_json)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ok = push_results(args.url, results, timeout=args.timeout, ladder=ladder)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if ok:
        print(f"pushed {len(results['results'])} result(s) to {mask_url(args.url)} "
              f"(run_id={results['run']['run_id']})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
