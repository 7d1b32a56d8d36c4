"""Allure history across runs: which ``history/`` a new report is built on, counted once per run.

Allure draws its trend, duration and retries widgets from ``history/`` in the results it is
given. ``prepare`` picks the previous report's ``OUT/history`` and stages it in a temporary
results folder (the pytest results are never touched); ``keep`` records, after the build, which
history the report was built on and for which results. Building twice from the same results
(``make report`` run again, CI's fallback build) then reuses that same input instead of the
report's own new history, so a run is never counted twice in the trend.

    dir=$(python -m reports.allure_history prepare RESULTS OUT)   # prints a folder to add to `allure generate`
    python -m reports.allure_history keep RESULTS OUT "$dir"       # after the build (and extraction)
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

#: inside OUT: the history this report was built on, and the fingerprint of its results
KEPT = ".history-input"
FINGERPRINT = "results.sha256"


def fingerprint(results: str | Path) -> str:
    """Which run the results are: a hash of their test-result file names (one uuid per test)."""
    names = sorted(p.name for p in Path(results).glob("*-result.json"))
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def _input_history(results: Path, out: Path) -> Path | None:
    kept = out / KEPT
    if (kept / FINGERPRINT).is_file() and (kept / FINGERPRINT).read_text().strip() == fingerprint(results):
        return kept / "history" if (kept / "history").is_dir() else None  # the same run, built again
    history = out / "history"
    return history if history.is_dir() and any(history.iterdir()) else None


def prepare(results: str | Path, out: str | Path) -> Path | None:
    """A temporary results folder holding the history to build on (None: no history yet)."""
    source = _input_history(Path(results), Path(out))
    if source is None:
        return None
    staged = Path(tempfile.mkdtemp(prefix="cdc-allure-history-"))
    shutil.copytree(source, staged / "history")
    return staged


def keep(results: str | Path, out: str | Path, staged: str | Path | None) -> None:
    """Record in OUT the history the report was built on (from ``staged``) and its results'
    fingerprint; remove ``staged``."""
    kept = Path(out) / KEPT
    shutil.rmtree(kept, ignore_errors=True)
    kept.mkdir(parents=True)
    if staged and (Path(staged) / "history").is_dir():
        shutil.copytree(Path(staged) / "history", kept / "history")
    (kept / FINGERPRINT).write_text(fingerprint(results) + "\n")
    if staged:
        shutil.rmtree(staged, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``prepare RESULTS OUT`` (prints the staged folder, or nothing) / ``keep RESULTS OUT [STAGED]``."""
    parser = argparse.ArgumentParser(prog="python -m reports.allure_history", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("prepare", "keep"))
    parser.add_argument("results")
    parser.add_argument("out")
    parser.add_argument("staged", nargs="?", default="")
    args = parser.parse_args(argv)
    if args.action == "prepare":
        staged = prepare(args.results, args.out)
        if staged is not None:
            print(staged)
    else:
        keep(args.results, args.out, args.staged or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
