"""Compare a run in the results history with a baseline, flagging what moved beyond the noise.

Commands (the history is the DuckDB file the suite appends to: ``reports/history_store.py``)::

    python -m reports.history [compare] [--history PATH] [--last N | --baseline RUN_ID] [--run RUN_ID]
                              [--fail-on-regression] [--all] [--k K] [--min-change FRACTION] [--lag-floor-ms MS]
    python -m reports.history runs [--history PATH] [--last N]
    python -m reports.history add RESULTS.json [--benchmark-json FILE] [--history PATH]

``compare`` takes the last run (or ``--run``) and, as its baseline, either one run
(``--baseline RUN_ID``) or, for each cell and benchmark figure, its last ``N`` values (``--last N``,
default 5) among the runs before it at the same scale — per figure, so a history that mixes
selections (``make test`` appends its Docker cells as a run of their own) still gives each cell its
own last N. It compares every approach × settings × scenario × engine cell both have, and every
benchmark:

- cells: lag p99 (lower is better) and events/s (higher is better);
- benchmarks: pytest-benchmark's median time (lower is better) and the ``extra_info`` figures
  named ``*events_per_s`` (higher is better) or ``*lag*…p99`` (lower is better, in ms).

**Noise rule.** For each figure, the baseline's values (one per baseline run that has the cell)
give a centre ``m`` (median) and a spread ``s = 1.4826 × MAD`` (the median absolute deviation,
scaled to estimate a standard deviation for normal noise). The current value ``x`` is flagged
when ``|x − m| > max(k × s, min_change × |m|, floor)`` — ``k`` = 3, ``min_change`` = 20 %,
``floor`` = 0.5 ms for lag figures (0 otherwise) — as a regression when it moved the bad way
and an improvement when it moved the good way. Why: the median and MAD ignore one outlier
run (a run on a loaded machine) that a mean and standard deviation would let widen or shift the
band; ``k`` = 3 keeps the false alarms of a steady figure rare; the relative minimum stands in
for the noise when the baseline cannot measure it (one baseline run, or identical values: MAD
= 0) and keeps changes too small to act on out of the table (a shared machine moves lag and
throughput between identical runs); the lag floor ignores moves below the scheduler's
resolution (0.2 → 0.4 ms is +100 % and meaningless). With ``--baseline RUN_ID``
the spread is 0 and only the relative and absolute minimums apply: on a loaded machine one run
is a poor baseline (two consecutive ``--benchmark-only`` runs of the 100k delta-cdf drain at
load 10–13 moved −21 % in events/s and −23 % in median time), so prefer ``--last N`` with N ≥ 3.

**Verdicts.** A cell whose verdict differs from the one in the latest baseline run that has
it is always flagged, whatever the figures: to ``fail`` from anything else is a regression,
``fail`` → ``pass`` an improvement, any other change (to or from ``unsupported``) "changed".

Exit status: 0 (regressions are printed), 1 with ``--fail-on-regression`` when there is one, 2 on
bad input (a missing file, an unknown run id, no baseline): one line on stderr naming the fix.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.history_store import DEFAULT_PATH, HistoryError, connect, import_files, list_runs

#: scales the median absolute deviation to estimate the standard deviation of normal noise
MAD_TO_SIGMA = 1.4826
REGRESSION, IMPROVEMENT, CHANGED = "REGRESSION", "improvement", "changed"


@dataclass(frozen=True)
class Rule:
    """The noise rule's parameters (module docstring): flag beyond ``max(k × 1.4826 × MAD,
    min_change × |median|, floor)``."""

    k: float = 3.0
    min_change: float = 0.2
    lag_floor_ms: float = 0.5


@dataclass(frozen=True)
class Baseline:
    """One figure across the baseline runs: median, (unscaled) MAD and how many runs had it."""

    median: float
    mad: float
    n: int


def judge(value: float | None, base: Baseline | None, rule: Rule, *, higher_is_better: bool,
          floor: float = 0.0) -> str | None:
    """``REGRESSION`` or ``IMPROVEMENT`` when ``value`` moved beyond the noise band around the
    baseline (module docstring), None within it or when either side is missing."""
    if value is None or base is None or base.n == 0 or base.median is None:
        return None
    delta = value - base.median
    band = max(rule.k * MAD_TO_SIGMA * (base.mad or 0.0), rule.min_change * abs(base.median), floor)
    if abs(delta) <= band:
        return None
    worse = delta < 0 if higher_is_better else delta > 0
    return REGRESSION if worse else IMPROVEMENT


def verdict_change(before: str | None, after: str) -> str | None:
    """How a verdict change is flagged (module docstring); None when unchanged or new."""
    if before is None or before == after:
        return None
    if after == "fail":
        return REGRESSION
    if before == "fail" and after == "pass":
        return IMPROVEMENT
    return CHANGED


def figure_direction(key: str) -> bool | None:
    """Whether a benchmark ``extra_info`` figure is better higher (True), lower (False), or is not
    compared (None): ``*events_per_s`` higher, a ``p99`` under a ``lag`` key lower."""
    last = key.rsplit(".", 1)[-1]
    if key.endswith("events_per_s"):
        return True
    if last == "p99" and "lag" in key:
        return False
    return None


@dataclass
class Finding:
    """One compared figure that was flagged (or, with ``--all``, every compared figure)."""

    flag: str | None
    what: str
    metric: str
    baseline: str
    current: str
    change: str


@dataclass
class Comparison:
    """What ``compare`` found: the runs compared, the findings and the counts."""

    current: dict[str, Any]
    baseline_runs: list[dict[str, Any]]
    #: each figure's baseline is its last ``per_key`` values among ``baseline_runs``
    per_key: int = 1
    findings: list[Finding] = field(default_factory=list)
    cells: int = 0
    benchmarks: int = 0
    new: int = 0
    gone: int = 0

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.flag == REGRESSION]


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    if metric == "events/s" or metric.endswith("events_per_s"):
        return f"{value:,.0f}"
    if metric == "median s":
        return f"{value:.4g}"
    return f"{value:,.2f}"


def _base_text(base: Baseline | None, metric: str) -> str:
    if base is None or base.median is None:
        return "—"
    if base.n == 1:
        return _fmt(base.median, metric)
    return f"{_fmt(base.median, metric)} ±{_fmt(MAD_TO_SIGMA * (base.mad or 0.0), metric)} (n={base.n})"


def _change(value: float | None, base: Baseline | None) -> str:
    if value is None or base is None or base.median is None:
        return ""
    if base.median == 0:
        return "+∞" if value else "0 %"
    return f"{100 * (value - base.median) / abs(base.median):+.0f} %"


def _pick_runs(runs: list[dict[str, Any]], run_id: str | None, baseline_id: str | None,
               path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run to compare and the runs its baseline is taken from (one, or every earlier run at its scale)."""
    if not runs:
        raise HistoryError(f"{path}: the history has no runs yet; fix: run the suite once or twice first")
    by_id = {r["run_id"]: r for r in runs}
    known = ", ".join(r["run_id"] for r in runs[-5:])
    for rid in (run_id, baseline_id):
        if rid is not None and rid not in by_id:
            raise HistoryError(f"run {rid!r} is not in {path}; the last runs: {known} "
                               "(fix: python -m reports.history runs lists them all)")
    current = by_id[run_id] if run_id else runs[-1]
    if baseline_id:
        if baseline_id == current["run_id"]:
            raise HistoryError(f"--baseline {baseline_id} is the run being compared; fix: name an earlier run")
        return current, [by_id[baseline_id]]
    before = [r for r in runs if r["position"] < current["position"] and r["scale"] == current["scale"]]
    if not before:
        raise HistoryError(f"{path}: no run before {current['run_id']} at scale {current['scale']}; "
                           "fix: run the suite again at that scale, or pass --baseline RUN_ID")
    return current, before


#: the order runs ran in, newest first, for the window functions below
_NEWEST = "ORDER BY coalesce(r.finished_at, r.recorded_at) DESC, r.recorded_at DESC"


def compare(con: Any, current: dict[str, Any], baseline_runs: list[dict[str, Any]], rule: Rule,
            show_all: bool = False, per_key: int = 1) -> Comparison:
    """Compare ``current``'s cells and benchmarks with their last ``per_key`` values among the
    ``baseline_runs`` (module docstring)."""
    ids = [r["run_id"] for r in baseline_runs]
    marks = ", ".join("?" * len(ids))
    out = Comparison(current, baseline_runs, per_key)
    keys = "approach, settings, scenario, engine"
    base_cells = {row[:4]: row[4:] for row in con.execute(f"""
        WITH ranked AS (
          SELECT c.*, coalesce(r.finished_at, r.recorded_at) AS t,
                 row_number() OVER (PARTITION BY {keys} {_NEWEST}) AS recent
          FROM cells c JOIN runs r USING (run_id) WHERE run_id IN ({marks}))
        SELECT {keys}, median(lag_p99), mad(lag_p99), count(lag_p99),
               median(events_per_s), mad(events_per_s), count(events_per_s), arg_max(verdict, t)
        FROM ranked WHERE recent <= ? GROUP BY {keys}""", [*ids, per_key]).fetchall()}
    now_cells = con.execute(f"SELECT {keys}, label, verdict, lag_p99, events_per_s FROM cells WHERE run_id = ? "
                            "ORDER BY label, scenario, engine", [current["run_id"]]).fetchall()
    seen = set()
    for approach, settings, scenario, engine, label, verdict, p99, eps in now_cells:
        key = (approach, settings, scenario, engine)
        seen.add(key)
        base = base_cells.get(key)
        if base is None:
            out.new += 1
            continue
        out.cells += 1
        what = f"{label} × {scenario}" + (f" [{engine}]" if engine not in ("", "local", "embedded") else "")
        p99_base, eps_base = Baseline(*base[0:3]), Baseline(*base[3:6])
        flag = verdict_change(base[6], verdict)
        if flag or show_all:
            out.findings.append(Finding(flag, what, "verdict", base[6], verdict, ""))
        for metric, value, b, higher, floor in (("lag p99 ms", p99, p99_base, False, rule.lag_floor_ms),
                                                ("events/s", eps, eps_base, True, 0.0)):
            flag = judge(value, b, rule, higher_is_better=higher, floor=floor)
            if flag or (show_all and value is not None):
                out.findings.append(Finding(flag, what, metric, _base_text(b, metric), _fmt(value, metric),
                                            _change(value, b)))
    out.gone = len(set(base_cells) - seen)
    _compare_benchmarks(con, current["run_id"], ids, rule, show_all, out)
    return out


def _compare_benchmarks(con: Any, run_id: str, ids: list[str], rule: Rule, show_all: bool, out: Comparison) -> None:
    """The benchmark half of ``compare``: median time and the figures ``figure_direction`` names."""
    marks = ", ".join("?" * len(ids))
    figure = "(key LIKE '%events_per_s' OR (key LIKE '%p99' AND key LIKE '%lag%')) AND value IS NOT NULL"
    now = con.execute(f"""
        SELECT fullname, 'median s' AS key, median_s AS value FROM benchmarks WHERE run_id = ?
        UNION ALL SELECT fullname, key, value FROM benchmark_figures WHERE run_id = ? AND {figure}""",
                      [run_id, run_id]).fetchall()
    base = {(name, key): Baseline(m, d, n) for name, key, m, d, n in con.execute(f"""
        WITH figures AS (
          SELECT run_id, fullname, 'median s' AS key, median_s AS value FROM benchmarks
          UNION ALL SELECT run_id, fullname, key, value FROM benchmark_figures WHERE {figure}),
        ranked AS (
          SELECT f.*, row_number() OVER (PARTITION BY fullname, key {_NEWEST}) AS recent
          FROM figures f JOIN runs r USING (run_id) WHERE run_id IN ({marks}))
        SELECT fullname, key, median(value), mad(value), count(value) FROM ranked WHERE recent <= ?
        GROUP BY fullname, key""", [*ids, out.per_key]).fetchall()}
    names = set()
    for name, key, value in sorted(now):
        b = base.get((name, key))
        if b is None:
            continue
        names.add(name)
        higher = False if key == "median s" else figure_direction(key)
        if higher is None:
            continue
        floor = rule.lag_floor_ms if "lag" in key else 0.0
        flag = judge(value, b, rule, higher_is_better=higher, floor=floor)
        if flag or show_all:
            out.findings.append(Finding(flag, name, key, _base_text(b, key), _fmt(value, key), _change(value, b)))
    out.benchmarks = len(names)


def _run_text(run: dict[str, Any]) -> str:
    commit = (run.get("git_commit") or "")[:10] + ("+dirty" if run.get("git_dirty") else "")
    when = run["finished_at"].isoformat(sep=" ", timespec="minutes") if run.get("finished_at") else "?"
    return f"{run['run_id']} ({when} UTC, scale {run['scale']}{', ' + commit if commit else ''})"


def render(c: Comparison, rule: Rule) -> list[str]:
    """The comparison as lines: what was compared with what, a table of flagged figures, a summary."""
    base = c.baseline_runs
    lines = [f"run      {_run_text(c.current)}",
             "baseline " + (_run_text(base[0]) if c.per_key == 1 and len(base) == 1 else
                            f"each figure's median over its last {c.per_key} value(s) in the {len(base)} "
                            f"earlier run(s) at scale {c.current['scale']}: {_ids_text(base)}"),
             f"rule     flag beyond max({rule.k:g} × 1.4826 × MAD, {100 * rule.min_change:.0f} % of the median, "
             f"{rule.lag_floor_ms:g} ms for lag)", ""]
    order = {REGRESSION: 0, CHANGED: 1, IMPROVEMENT: 2, None: 3}
    rows = sorted(c.findings, key=lambda f: (order[f.flag], f.what, f.metric))
    if rows:
        lines += _table([("flag", "what", "metric", "baseline", "now", "change")]
                        + [(f.flag or "", f.what, f.metric, f.baseline, f.current, f.change) for f in rows])
        lines.append("")
    counts = {flag: sum(1 for f in c.findings if f.flag == flag) for flag in (REGRESSION, IMPROVEMENT, CHANGED)}
    lines.append(f"{counts[REGRESSION]} regression(s), {counts[IMPROVEMENT]} improvement(s), {counts[CHANGED]} "
                 f"other verdict change(s); compared {c.cells} cell(s) and {c.benchmarks} benchmark(s)"
                 + (f"; {c.new} cell(s) new in this run" if c.new else "")
                 + (f"; {c.gone} baseline cell(s) not in this run" if c.gone else ""))
    return lines


def _ids_text(runs: list[dict[str, Any]]) -> str:
    ids = [r["run_id"] for r in runs]
    return ", ".join(ids) if len(ids) <= 8 else f"{', '.join(ids[:3])}, … {', '.join(ids[-3:])}"


def _runs_lines(runs: list[dict[str, Any]]) -> list[str]:
    table = [("#", "run", "finished (UTC)", "scale", "cells", "pass", "fail", "benchmarks", "commit", "load")]
    for r in runs:
        when = r["finished_at"].isoformat(sep=" ", timespec="minutes") if r.get("finished_at") else "?"
        commit = (r.get("git_commit") or "—")[:10] + ("+dirty" if r.get("git_dirty") else "")
        load = "—" if r.get("load_start") is None else f"{r['load_start']:.1f}→{r.get('load_end') or 0:.1f}"
        table.append((str(r["position"]), r["run_id"], when, str(r["scale"]), str(r["cells"]), str(r["passed"]),
                      str(r["failed"]), str(r["benchmarks"]), commit, load))
    return _table(table)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows of strings as left-aligned columns (the first row is the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _add(args: argparse.Namespace) -> str:
    from harness.results import ReportError, load

    try:
        results = load(args.results) if args.results else None
    except ReportError as exc:
        raise HistoryError(str(exc)) from None
    bench = None
    if args.benchmark_json:
        try:
            bench = json.loads(Path(args.benchmark_json).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise HistoryError(f"{args.benchmark_json}: cannot read a --benchmark-json file: {exc}") from None
        if not isinstance(bench, dict) or not isinstance(bench.get("benchmarks"), list):
            raise HistoryError(f"{args.benchmark_json}: not a pytest-benchmark JSON file (no \"benchmarks\" list); "
                               "fix: pass the file --benchmark-json or --benchmark-autosave wrote")
    if results is None and bench is None:
        raise HistoryError("add needs a results file or --benchmark-json FILE")
    source = str(args.results or args.benchmark_json)
    run_id, added = import_files(Path(args.history), results, bench, source)
    return f"run {run_id} {'appended to' if added else 'already in'} {args.history}"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI (module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("compare", "runs", "add", "-h", "--help"):
        argv.insert(0, "compare")
    parser = argparse.ArgumentParser(prog="python -m reports.history", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmp_p = sub.add_parser("compare", help="compare the last run with a baseline (the default command)")
    group = cmp_p.add_mutually_exclusive_group()
    group.add_argument("--baseline", metavar="RUN_ID", help="compare with this one run")
    group.add_argument("--last", type=int, default=5, metavar="N",
                       help="compare each figure with the median of its last N values in the runs before, "
                            "at the same scale (default 5)")
    cmp_p.add_argument("--run", metavar="RUN_ID", help="the run to compare (default: the last one)")
    cmp_p.add_argument("--fail-on-regression", action="store_true", help="exit 1 when something regressed")
    cmp_p.add_argument("--all", action="store_true", help="list every compared figure, not only the flagged ones")
    cmp_p.add_argument("--k", type=float, default=Rule.k, help="noise band in scaled MADs (default 3)")
    cmp_p.add_argument("--min-change", type=float, default=Rule.min_change,
                       help="smallest relative change flagged (default 0.2: 20 %%)")
    cmp_p.add_argument("--lag-floor-ms", type=float, default=Rule.lag_floor_ms,
                       help="smallest lag change flagged, ms (default 0.5)")
    runs_p = sub.add_parser("runs", help="list the runs in the history, oldest first")
    runs_p.add_argument("--last", type=int, default=None, metavar="N", help="only the last N")
    add_p = sub.add_parser("add", help="append a results file and/or a --benchmark-json file as one run")
    add_p.add_argument("results", nargs="?", help="a results JSON file (reports/out/results.json)")
    add_p.add_argument("--benchmark-json", metavar="FILE", help="a pytest-benchmark JSON file")
    for p in (cmp_p, runs_p, add_p):
        p.add_argument("--history", default=str(DEFAULT_PATH), help=f"the history file (default {DEFAULT_PATH})")
    args = parser.parse_args(argv)
    if getattr(args, "last", None) is not None and args.last < 1:
        parser.error("--last must be at least 1")
    try:
        if args.command == "add":
            print(_add(args))
            return 0
        path = Path(args.history)
        with connect(path, read_only=True) as con:
            runs = list_runs(con)
            if args.command == "runs":
                print("\n".join(_runs_lines(runs[-args.last:] if args.last else runs)))
                return 0
            rule = Rule(args.k, args.min_change, args.lag_floor_ms)
            current, baseline = _pick_runs(runs, args.run, args.baseline, path)
            result = compare(con, current, baseline, rule, args.all, 1 if args.baseline else args.last)
    except HistoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(render(result, rule)))
    return 1 if args.fail_on_regression and result.regressions else 0


if __name__ == "__main__":
    sys.exit(main())
