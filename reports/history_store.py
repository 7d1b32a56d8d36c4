"""The results history: each run's results and benchmark figures appended to one DuckDB file.

This module owns the file's format (tables below, ``meta.schema``), the writer the plugin calls at
session end, the importer of results/benchmark JSON files and the queries the reports read with.
``reports/history.py`` compares runs; ``reports/html.py`` shows the trend.

Tables (``schema`` 1; columns may be added, never renamed or removed without a new schema)::

    runs(run_id PRIMARY KEY, started_at, finished_at, recorded_at  -- TIMESTAMP, UTC
         git_commit, git_dirty, harness_version, scale, heavy_scale, seed,
         engines                -- the backend choice (--cdc-engines)
         engine_versions JSON,  -- {engine: version} of the engines the run used
         engine_backends JSON,  -- {role: backend}
         host JSON, load_start, load_end,  -- 1-minute load average at session start and end
         interrupted, source)   -- "pytest" (written by the plugin) or the file it was imported from
    cells(run_id, approach, settings, label, scenario, engine, verdict, reason,
          anomalies JSON, anomaly_total, events, events_per_s,
          lag_p50, lag_p95, lag_p99, lag_max,  -- ms
          duration_s, redelivered, recovery_s)
    benchmarks(run_id, fullname, name, bench_group, params JSON,
               min_s, max_s, mean_s, median_s, stddev_s, iqr_s, ops, rounds, iterations)
    benchmark_figures(run_id, fullname, key, value, text)
        -- extra_info flattened: {"lag_ms": {"p99": 2}} -> key "lag_ms.p99", value 2.0;
        -- lists by index ("rates.0.p99"); a string or boolean goes to ``text``

``settings`` is ``harness.results.variant`` (``k=v,k=v``, "" when none) and ``label`` the matrix
row label; a cell is the same across runs when (approach, settings, scenario, engine) are.

Concurrent writers: DuckDB holds an OS lock on the file while a process has it open for writing
(and refuses a reader meanwhile). Every open here retries for ``wait_s`` seconds (the writer
holds it for milliseconds), then raises ``HistoryError`` naming the file and the fix. Each run is
appended in one transaction, so a killed writer leaves the file as it was before the run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.results import Results, row_label, variant

SCHEMA = 1
#: where the plugin and the CLIs keep the history when nothing else is said
DEFAULT_PATH = Path("reports/out/history.duckdb")
#: seconds an open waits for another process's lock on the file
WAIT_S = 30.0

DDL = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, started_at TIMESTAMP, finished_at TIMESTAMP, recorded_at TIMESTAMP,
    git_commit VARCHAR, git_dirty BOOLEAN, harness_version VARCHAR, scale VARCHAR, heavy_scale VARCHAR,
    seed BIGINT, engines VARCHAR, engine_versions JSON, engine_backends JSON, host JSON,
    load_start DOUBLE, load_end DOUBLE, interrupted BOOLEAN, source VARCHAR);
CREATE TABLE IF NOT EXISTS cells (
    run_id VARCHAR, approach VARCHAR, settings VARCHAR, label VARCHAR, scenario VARCHAR, engine VARCHAR,
    verdict VARCHAR, reason VARCHAR, anomalies JSON, anomaly_total BIGINT, events BIGINT,
    events_per_s DOUBLE, lag_p50 DOUBLE, lag_p95 DOUBLE, lag_p99 DOUBLE, lag_max DOUBLE,
    duration_s DOUBLE, redelivered BIGINT, recovery_s DOUBLE);
CREATE TABLE IF NOT EXISTS benchmarks (
    run_id VARCHAR, fullname VARCHAR, name VARCHAR, bench_group VARCHAR, params JSON,
    min_s DOUBLE, max_s DOUBLE, mean_s DOUBLE, median_s DOUBLE, stddev_s DOUBLE, iqr_s DOUBLE,
    ops DOUBLE, rounds BIGINT, iterations BIGINT);
CREATE TABLE IF NOT EXISTS benchmark_figures (
    run_id VARCHAR, fullname VARCHAR, key VARCHAR, value DOUBLE, text VARCHAR);
"""
TABLES = ("runs", "cells", "benchmarks", "benchmark_figures")


class HistoryError(Exception):
    """A history file that cannot be read or written: one line naming the file and the fix."""


# -- rows ----------------------------------------------------------------------------------------------


def _ts(value: Any) -> dt.datetime | None:
    """An ISO 8601 time as a naive UTC datetime (None stays None)."""
    if not value:
        return None
    t = dt.datetime.fromisoformat(str(value))
    return (t.astimezone(dt.UTC) if t.tzinfo else t).replace(tzinfo=None)


def git_info(where: Path) -> tuple[str | None, bool | None]:
    """The commit checked out at ``where`` and whether tracked files differ from it; (None, None)
    outside a git work tree or without git."""
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head or None, bool(dirty)


def run_row(header: Mapping[str, Any], *, git: tuple[str | None, bool | None] = (None, None),
            engine_versions: Mapping[str, str] | None = None, engine_backends: Mapping[str, str] | None = None,
            heavy_scale: str = "", load_start: float | None = None, load_end: float | None = None,
            source: str = "pytest") -> dict[str, Any]:
    """The ``runs`` row of a results file's ``run`` header and what the session knows besides."""
    return {
        "run_id": header["run_id"],
        "started_at": _ts(header.get("started_at")),
        "finished_at": _ts(header.get("finished_at")),
        "recorded_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        "git_commit": git[0], "git_dirty": git[1],
        "harness_version": header.get("harness_version"),
        "scale": header.get("scale"), "heavy_scale": heavy_scale or header.get("scale"),
        "seed": header.get("seed"), "engines": header.get("engines"),
        "engine_versions": dict(engine_versions or {}), "engine_backends": dict(engine_backends or {}),
        "host": dict(header.get("host") or {}),
        "load_start": load_start, "load_end": load_end,
        "interrupted": bool(header.get("interrupted")), "source": source,
    }


def cell_rows(run_id: str, results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One ``cells`` row per result row of a results file."""
    out = []
    for r in results:
        lag = r.get("lag_ms") or {}
        anomalies = {k: int(v) for k, v in (r.get("anomalies") or {}).items()}
        out.append({
            "run_id": run_id, "approach": r["approach"], "settings": variant(r.get("settings")),
            "label": row_label(r), "scenario": r["scenario"], "engine": r.get("engine", ""),
            "verdict": r["verdict"], "reason": r.get("reason", ""),
            "anomalies": anomalies, "anomaly_total": sum(anomalies.values()),
            "events": int(r.get("events") or 0), "events_per_s": _float(r.get("events_per_s")),
            "lag_p50": _float(lag.get("p50")), "lag_p95": _float(lag.get("p95")),
            "lag_p99": _float(lag.get("p99")), "lag_max": _float(lag.get("max")),
            "duration_s": _float(r.get("duration_s")), "redelivered": int(r.get("redelivered") or 0),
            "recovery_s": _float(r.get("recovery_s")),
        })
    return out


def _float(value: Any) -> float | None:
    return None if value is None or isinstance(value, bool) else float(value)


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, float | None, str | None]]:
    """``(key, number, text)`` for each leaf of nested dicts/lists: numbers in ``number``,
    strings, booleans and None in ``text`` (``"true"``, ``"null"``)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from flatten(v, f"{prefix}.{i}" if prefix else str(i))
    elif isinstance(value, bool) or value is None:
        yield prefix, None, json.dumps(value)
    elif isinstance(value, int | float):
        yield prefix, float(value), None
    else:
        yield prefix, None, str(value)


def benchmark_rows(run_id: str, benchmarks: Iterable[Mapping[str, Any]]
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``benchmarks`` and ``benchmark_figures`` rows from pytest-benchmark's per-benchmark dicts
    (``Metadata.as_dict(include_data=False)``, or an entry of ``--benchmark-json``'s "benchmarks")."""
    rows, figures = [], []
    for b in benchmarks:
        stats = b.get("stats") or {}
        fullname = b.get("fullname") or b["name"]
        rows.append({
            "run_id": run_id, "fullname": fullname, "name": b["name"], "bench_group": b.get("group"),
            "params": b.get("params"),
            **{f"{k}_s": _float(stats.get(k)) for k in ("min", "max", "mean", "median", "stddev", "iqr")},
            "ops": _float(stats.get("ops")), "rounds": stats.get("rounds"), "iterations": stats.get("iterations"),
        })
        figures += [{"run_id": run_id, "fullname": fullname, "key": k, "value": v, "text": t}
                    for k, v, t in flatten(b.get("extra_info") or {})]
    return rows, figures


# -- connections ---------------------------------------------------------------------------------------


def _is_lock(exc: BaseException) -> bool:
    """DuckDB's words for a file another process holds: ``Could not set lock on file "…": Conflicting lock …``."""
    return "could not set lock" in str(exc).lower()


@contextmanager
def connect(path: Path, *, read_only: bool = False, wait_s: float = WAIT_S) -> Iterator[Any]:
    """A DuckDB connection to the history at ``path`` (created when writing and absent), retried
    while another process holds its lock; closed on exit. Raises ``HistoryError``."""
    try:
        import duckdb
    except ImportError:
        raise HistoryError("Python package 'duckdb' is not installed; fix: pip install -e '.[reports]'") from None
    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

    path = Path(path)
    if read_only and not path.is_file():
        raise HistoryError(f"{path}: no history file; fix: run the suite (it appends to "
                           f"{DEFAULT_PATH} unless --cdc-history says otherwise) or pass --history PATH")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        for attempt in Retrying(retry=retry_if_exception(lambda e: isinstance(e, duckdb.Error) and _is_lock(e)),
                                stop=stop_after_delay(wait_s), wait=wait_random_exponential(0.02, 1.0),
                                reraise=True):
            with attempt:
                con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if _is_lock(exc):
            raise HistoryError(f"{path}: still locked by another process after {wait_s:.0f} s ({first}); "
                               "fix: wait for it to finish and retry") from None
        raise HistoryError(f"{path}: not a usable history file ({first}); "
                           "fix: pass another --cdc-history/--history PATH or move this file away") from None
    try:
        _check_schema(con, path, read_only)
        yield con
    finally:
        con.close()


def _check_schema(con: Any, path: Path, read_only: bool) -> None:
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "meta" not in tables:
        if read_only:
            raise HistoryError(f"{path}: a DuckDB file but no results history (no meta table); "
                               "fix: pass the --history PATH the suite wrote")
        con.execute("BEGIN")
        con.execute(DDL)
        con.execute("INSERT INTO meta VALUES ('schema', ?)", [str(SCHEMA)])
        con.execute("COMMIT")
        return
    row = con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if row is None or row[0] != str(SCHEMA):
        raise HistoryError(f"{path}: history schema {row and row[0]!r} is not supported (this harness "
                           f"reads schema {SCHEMA}); fix: start a new file with --cdc-history=PATH")


# -- writer --------------------------------------------------------------------------------------------


def append(path: Path, run: Mapping[str, Any], cells: Sequence[Mapping[str, Any]] = (),
           benchmarks: Sequence[Mapping[str, Any]] = (), figures: Sequence[Mapping[str, Any]] = (),
           wait_s: float = WAIT_S) -> bool:
    """Append one run and its rows in one transaction; False (nothing written) when the run id
    is already in the history. Raises ``HistoryError``."""
    import duckdb

    with connect(path, wait_s=wait_s) as con:
        try:
            con.execute("BEGIN")
            if con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run["run_id"]]).fetchone():
                con.execute("ROLLBACK")
                return False
            for table, rows in zip(TABLES, ([run], cells, benchmarks, figures), strict=True):
                if rows:
                    _insert(con, table, rows)
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise HistoryError(f"{path}: run {run['run_id']} not appended: {str(exc).splitlines()[0]}") from None
    return True


def _insert(con: Any, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts keyed by column) with one statement: the rows go in as one JSON
    parameter that DuckDB parses into the table's column types (a JSON column takes the value as
    it is). Measured for 222 cells on the loaded 2-core machine: 55 ms; row by row
    (``executemany``) 1.1 s; an Arrow table registration 5 s, because DuckDB imports pandas first."""
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = ?", [table]).fetchall())
    structure = json.dumps([{k: types[k] for k in rows[0]}])
    con.execute(f"INSERT INTO {table} BY NAME SELECT unnest(from_json(?::JSON, ?), recursive := true)",
                [json.dumps(rows, default=str), structure])


def record_session(path: Path, header: Mapping[str, Any], doc: Results | None, benchmarks: list[Mapping[str, Any]],
                   *, engine_versions: Mapping[str, str], engine_backends: Mapping[str, str], heavy_scale: str,
                   load_start: float | None, git_dir: Path, wait_s: float = WAIT_S) -> str | None:
    """The plugin's session-end write: the run, its cells (``doc``, the merged results file, may be
    None) and its benchmarks. Returns a line for the terminal, or None when the run has neither
    results nor benchmarks (nothing written). Raises ``HistoryError``."""
    if not doc and not benchmarks:
        return None
    run_header = doc["run"] if doc else header
    run = run_row(run_header, git=git_info(git_dir), engine_versions=engine_versions,
                  engine_backends=engine_backends, heavy_scale=heavy_scale, load_start=load_start,
                  load_end=os.getloadavg()[0])
    if run["finished_at"] is None:
        run["finished_at"] = run["recorded_at"]
    cells = cell_rows(run["run_id"], doc["results"] if doc else [])
    rows, figures = benchmark_rows(run["run_id"], benchmarks)
    append(path, run, cells, rows, figures, wait_s=wait_s)
    return f"history: run {run['run_id']} appended to {path} ({len(cells)} cells, {len(rows)} benchmarks)"


def import_files(path: Path, results: Results | None, bench_json: Mapping[str, Any] | None,
                 source: str, wait_s: float = WAIT_S) -> tuple[str, bool]:
    """Append a results file and/or a ``--benchmark-json`` file as one run (``python -m
    reports.history add``); the run id is the results file's, else the benchmark file's time.
    Returns (run id, appended)."""
    if results:
        header = dict(results["run"])
    else:
        stamp = str((bench_json or {}).get("datetime") or dt.datetime.now(dt.UTC).isoformat())
        header = {"run_id": "bench-" + "".join(c for c in stamp if c.isalnum())[:15], "started_at": stamp,
                  "finished_at": stamp, "scale": None, "seed": None, "engines": None,
                  "harness_version": None, "host": (bench_json or {}).get("machine_info") or {}}
    commit = ((bench_json or {}).get("commit_info") or {})
    run = run_row(header, git=(commit.get("id"), commit.get("dirty")), source=source)
    cells = cell_rows(header["run_id"], results["results"] if results else [])
    rows, figures = benchmark_rows(header["run_id"], (bench_json or {}).get("benchmarks") or [])
    return header["run_id"], append(path, run, cells, rows, figures, wait_s=wait_s)


# -- queries -------------------------------------------------------------------------------------------

def list_runs(con: Any, last: int | None = None) -> list[dict[str, Any]]:
    """Runs in the order they ran (finish time, then append time), oldest first, the last ``last``
    when given, with their cell, pass, fail and benchmark counts and ``position`` (1 = oldest)."""
    limit = f"LIMIT {int(last)}" if last else ""
    cur = con.execute(f"""
        WITH c AS (SELECT run_id, count(*) AS cells, count(*) FILTER (WHERE verdict = 'pass') AS passed,
                          count(*) FILTER (WHERE verdict = 'fail') AS failed FROM cells GROUP BY run_id),
             b AS (SELECT run_id, count(*) AS benchmarks FROM benchmarks GROUP BY run_id)
        SELECT r.run_id, r.finished_at, r.scale, r.seed, r.engines, r.git_commit, r.git_dirty, r.load_start,
               r.load_end, r.interrupted, r.source, coalesce(c.cells, 0) AS cells,
               coalesce(c.passed, 0) AS passed, coalesce(c.failed, 0) AS failed,
               coalesce(b.benchmarks, 0) AS benchmarks,
               row_number() OVER (ORDER BY coalesce(r.finished_at, r.recorded_at), r.recorded_at) AS position
        FROM runs r LEFT JOIN c USING (run_id) LEFT JOIN b USING (run_id)
        ORDER BY position DESC {limit}""")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in reversed(cur.fetchall())]


def trend(con: Any, last: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The last ``last`` runs (oldest first) and, per run and row label, the pass count, the count
    of cells that ran (not unsupported) and the median of their lag p99: what the HTML trend shows."""
    runs = [r for r in list_runs(con, last) if r["cells"]]
    if not runs:
        return [], []
    ids = [r["run_id"] for r in runs]
    cur = con.execute(f"""
        SELECT run_id, label, count(*) FILTER (WHERE verdict = 'pass') AS passed,
               count(*) FILTER (WHERE verdict <> 'unsupported') AS ran, median(lag_p99) AS p99_median,
               max(lag_p99) AS p99_max
        FROM cells WHERE run_id IN ({", ".join("?" * len(ids))}) GROUP BY run_id, label""", ids)
    names = [d[0] for d in cur.description]
    return runs, [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
