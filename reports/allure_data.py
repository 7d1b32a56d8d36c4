"""The data files inside a single-file Allure report: read them, or write them out beside it.

``allure generate --single-file`` embeds every file of the report in ``index.html`` as
``d('history/history.json','<base64>')``; nothing else is written. The next run's trend needs
``history/`` as files, and tools and tests read ``data/`` and ``widgets/``: ``extract`` writes
them next to ``index.html`` (not the attachments and per-test files, which stay inside it).

    python -m reports.allure_data allure-report/index.html     # writes allure-report/{history,data,widgets}/
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from pathlib import Path
from typing import Any

_EMBEDDED = re.compile(r"d\('([^']+)','([A-Za-z0-9+/=]*)'\)")
#: what ``extract`` leaves inside index.html (bulky, and nothing reads them as files)
SKIP = ("data/attachments/", "data/test-cases/")


def embedded(index: str | Path) -> dict[str, bytes]:
    """Every file embedded in a single-file report, by its path inside the report."""
    text = Path(index).read_text(encoding="utf-8", errors="replace")
    return {path: base64.b64decode(data) for path, data in _EMBEDDED.findall(text)}


def read_json(report: str | Path, path: str) -> Any:
    """One JSON file of a report: the file under ``report`` when it is there, else the one
    embedded in ``report/index.html``; ``KeyError`` when neither has it."""
    file = Path(report) / path
    if file.is_file():
        return json.loads(file.read_text(encoding="utf-8"))
    return json.loads(embedded(Path(report) / "index.html")[path])


def extract(index: str | Path, out: str | Path | None = None, skip: tuple[str, ...] = SKIP) -> list[Path]:
    """Write the embedded files (but ``skip``) under ``out`` (default: beside ``index``); return them."""
    root = Path(out) if out is not None else Path(index).parent
    written = []
    for path, data in embedded(index).items():
        if path.startswith(skip) or ".." in Path(path).parts:
            continue
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """CLI: extract a single-file report's history, data and widgets beside it."""
    parser = argparse.ArgumentParser(prog="python -m reports.allure_data", description=__doc__.splitlines()[0])
    parser.add_argument("index", help="the single-file report's index.html")
    parser.add_argument("-o", "--out", help="where to write (default: the folder of index.html)")
    args = parser.parse_args(argv)
    if not Path(args.index).is_file():
        print(f"allure_data: no such file {args.index}", file=sys.stderr)
        return 2
    written = extract(args.index, args.out)
    if not any(p.parts[-2] == "history" for p in written):
        print(f"allure_data: {args.index} embeds no history/ (not a single-file Allure report?)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
