"""Headless-Chromium screenshots of a single-file Allure report's tabs, trees expanded.

Allure's trees open collapsed and a headless browser cannot click, so the page is copied with a
small script that opens every group of the tree, one per tick, before the screenshot is taken.

    python -m reports.allure_shot allure-report/index.html -o reports/out   # allure-{suites,categories,overview}.png
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
TABS = ("suites", "categories", "overview")
#: the URL fragment of a tab (the Overview is the report's root)
ROUTES = {"overview": ""}
#: opens each collapsed group of the tree (a click re-renders the tree: one per tick)
EXPAND = """<script>
(function () {
  var opened = new Set(), idle = 0;
  var timer = setInterval(function () {
    var titles = document.querySelectorAll('div.node[data-node-kind="group"] > div.node__title');
    for (var i = 0; i < titles.length; i++) {
      var uid = titles[i].getAttribute('data-uid');
      if (!opened.has(uid)) { opened.add(uid); titles[i].click(); idle = 0; return; }
    }
    if (++idle > 10) clearInterval(timer);  // all open (or no tree on this tab)
  }, 100);
})();
</script>"""


def chromium() -> str | None:
    """The Chromium executable, or None."""
    for name in CHROMIUM:
        path = shutil.which(name)
        if path:
            return path
    return None


def expanded_copy(index: str | Path, out: str | Path) -> Path:
    """A copy of ``index`` (beside it, so relative paths resolve) that opens every tree group."""
    text = Path(index).read_text(encoding="utf-8")
    at = text.rfind("</body>")
    page = Path(out)
    page.write_text(text[:at] + EXPAND + text[at:] if at >= 0 else text + EXPAND, encoding="utf-8")
    return page


def _browse(index: str | Path, tab: str, args: list[str], budget_ms: int, timeout_s: float,
            expand: bool = True) -> str:
    """Open the report (its expanded copy) at ``#tab`` in headless Chromium; return its stdout."""
    browser = chromium()
    if browser is None:
        raise FileNotFoundError("chromium not found; fix: bash scripts/setup-reports.sh")
    index = Path(index).resolve()
    page = expanded_copy(index, index.with_name(".shot.html")) if expand else index
    try:
        with tempfile.TemporaryDirectory(prefix="cdc-chromium-") as profile:
            proc = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                                   *args, f"{page.as_uri()}#{ROUTES.get(tab, tab)}"], capture_output=True, text=True,
                                  timeout=timeout_s)
    finally:
        if page != index:
            page.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium failed on #{tab}: {proc.stderr[-1000:]}")
    return proc.stdout


def screenshot(index: str | Path, tab: str, png: str | Path, size: str = "1400,1000",
               budget_ms: int = 12_000, timeout_s: float = 120, expand: bool = True) -> Path:
    """Screenshot one tab (``suites``, ``categories``, ``overview``, ``behaviors``, ...) of the report,
    or any route of it (``suites/<group uid>/<test uid>/``: one test, with ``expand=False``)."""
    png = Path(png).resolve()
    png.unlink(missing_ok=True)
    _browse(index, tab, [f"--window-size={size}", f"--screenshot={png}"], budget_ms, timeout_s, expand)
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot of #{tab}")
    return png


def dump_dom(index: str | Path, tab: str, budget_ms: int = 12_000, timeout_s: float = 120) -> str:
    """The DOM of one tab once its tree is open (what the screenshot shows, as HTML)."""
    return _browse(index, tab, ["--dump-dom"], budget_ms, timeout_s)


def main(argv: list[str] | None = None) -> int:
    """CLI: screenshots of the report's tabs into a folder."""
    parser = argparse.ArgumentParser(prog="python -m reports.allure_shot", description=__doc__.splitlines()[0])
    parser.add_argument("index", help="the single-file report's index.html")
    parser.add_argument("-o", "--out", default=".", help="folder for allure-<tab>.png (default: .)")
    parser.add_argument("--tabs", default=",".join(TABS), help=f"comma-separated tabs (default: {','.join(TABS)})")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        for tab in args.tabs.split(","):
            size = "1400,1800"  # tall: the Overview's widgets and the opened trees run long
            print(screenshot(args.index, tab, out / f"allure-{tab}.png", size=size))
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"allure_shot: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
