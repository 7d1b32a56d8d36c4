#!/usr/bin/env bash
# Build the Allure HTML report from pytest's --alluredir results with the npm-pinned Allure 2 CLI.
# Usage: scripts/allure-report.sh [RESULTS_DIR=allure-results] [OUT_DIR=allure-report]
# History: the previous report's OUT_DIR/history/ goes into the build (reports/allure_history.py), so
# the trend, duration and retries widgets span runs; after a single-file build the new history/ (and
# data/, widgets/) are written out beside index.html for the next run (reports/allure_data.py).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# Paths given on the command line are relative to where the script was called from.
results=$(realpath -m "${1:-$root/allure-results}")
out=$(realpath -m "${2:-$root/allure-report}")
cd "$root"

if [[ ! -x node_modules/.bin/allure ]]; then
  echo "allure-report: Allure CLI not installed; fix: npm ci (or: bash scripts/setup-reports.sh)" >&2
  exit 2
fi
if ! command -v java >/dev/null 2>&1; then
  echo "allure-report: Allure needs Java 11+; fix: sudo apt-get install -y default-jre-headless (or: bash scripts/setup-reports.sh)" >&2
  exit 2
fi
if [[ ! -d $results ]] || [[ -z $(ls -A "$results" 2>/dev/null) ]]; then
  echo "allure-report: no results in '$results'; run pytest with --alluredir=$results first" >&2
  exit 2
fi

python=python3
[[ -x .venv/bin/python ]] && python=.venv/bin/python
# the previous report's history, staged apart (the results stay as pytest wrote them); a rebuild
# from the same results reuses the history it was first built on: a run counts once in the trend
staged=$("$python" -m reports.allure_history prepare "$results" "$out")
trap 'if [[ -n $staged ]]; then rm -rf "$staged"; fi' EXIT
if [[ -n $staged ]]; then
  echo "allure-report: history of the previous report carried over from $out"
fi

args=(generate "$results" ${staged:+"$staged"} --clean -o "$out")
# --single-file (Allure >= 2.14) makes one self-contained index.html that opens from file://.
if node_modules/.bin/allure --help 2>&1 | grep -q -- "--single-file"; then
  args+=(--single-file)
  single=1
else
  single=0
fi
# --no-install: never download anything at run time; the CLI comes from package-lock.json via npm ci.
npx --no-install allure "${args[@]}"

if [[ $single == 1 ]]; then
  # one self-contained index.html: write its history/ (and data/, widgets/) out for the next run
  "$python" -m reports.allure_data "$out/index.html"
fi
# remember which history this report was built on (a rebuild from the same results reuses it)
"$python" -m reports.allure_history keep "$results" "$out" "$staged"

if [[ $single == 1 ]]; then
  echo "allure-report: open file://$(realpath "$out")/index.html in a browser"
else
  echo "allure-report: serve it (file:// does not work for a multi-file report): npx allure open $out"
fi
