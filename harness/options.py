"""Command-line and ini options (``--cdc-x`` and ``cdc_x``), validated into one Options object."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from containers.engine import BACKENDS
from harness.breadth import BREADTHS
from harness.secrets import mask_text, register_url
from scenarios import SCALES

#: the results history's file name, beside the results file unless ``--cdc-history`` says otherwise
HISTORY_FILE = "history.duckdb"
#: ``--cdc-history`` values that turn the history off
HISTORY_OFF = ("off", "none", "no", "false", "0")
#: what an engine role's name looks like (``postgres``, ``kafka``, ``connect``, ...)
ROLE_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")

OPTIONS: tuple[tuple[str, str, str | None], ...] = (
    ("approaches", "comma-separated approach ids to run (default: all registered)", None),
    ("scenarios", "comma-separated scenario ids to run (default: all)", None),
    ("seed", "integer seed for every scenario", "1"),
    ("scale", "scenario size: smoke | default | large", "default"),
    ("heavy-scale", "scenario size for approaches on heavy engines (Kafka, Connect, Spark); default: --cdc-scale",
     None),
    ("heavy-cells", "breadth of the cells on heavy engines: all | core (interop and delivery variants "
     "sampled: harness/breadth.py)", "all"),
    ("engines", "engine backend: auto | local | docker | external", "auto"),
    ("results", "path of the results JSON file", "reports/out/results.json"),
    ("timeout", "seconds any single wait may take before the run fails", "120"),
    ("pushgateway", "Prometheus pushgateway URL to push metrics to (empty: off)", ""),
    ("history", "DuckDB file each run's results and benchmark figures are appended to (default: "
     "history.duckdb beside the results file; off: none)", None),
)


def add_options(parser: pytest.Parser) -> None:
    """Declare every option as ``--cdc-x`` and ini ``cdc_x``."""
    group = parser.getgroup("cdc", "cdc-harness")
    for name, help_text, default in OPTIONS:
        ini = f"cdc_{name.replace('-', '_')}"
        group.addoption(f"--cdc-{name}", dest=ini, default=None, help=f"{help_text} [ini: {ini}]")
        parser.addini(ini, help_text, default=default)
    group.addoption("--cdc-engine-url", dest="cdc_engine_url", action="append", default=[],
                    help="FAMILY=URL of an external engine, e.g. postgres=postgresql://u:p@host/db (repeatable)")
    group.addoption("--cdc-image", dest="cdc_image", action="append", default=[],
                    help="FAMILY=IMAGE the Docker backend runs for a family, e.g. postgres=postgres:15 "
                         "(default: the official image where it can be pulled, else the project's own build "
                         "from scripts/setup-docker.sh; repeatable)")


@dataclass
class Options:
    """Validated harness options."""

    approaches: list[str] | None
    scenarios: list[str] | None
    seed: int
    scale: str
    engines: str
    results: Path
    timeout_s: float
    pushgateway: str
    engine_urls: dict[str, str] = field(default_factory=dict)
    #: the scale of cases whose engines include a heavy role (``HEAVY_ROLES``)
    heavy_scale: str = ""
    #: ``all`` or ``core``: which cells of approaches on heavy engines run (``harness.breadth``)
    heavy_cells: str = "all"
    #: the image the Docker backend runs per family (``--cdc-image FAMILY=IMAGE``)
    images: dict[str, str] = field(default_factory=dict)
    #: the results history (``reports/history_store.py``); None: ``--cdc-history=off``
    history: Path | None = None

    def scale_for(self, roles: tuple[str, ...]) -> str:
        """The scale of a case running on ``roles``: ``heavy_scale`` when one of them is heavy."""
        return self.heavy_scale if self.heavy_scale and set(roles) & HEAVY_ROLES else self.scale


#: engine roles whose cases run at ``--cdc-heavy-scale`` (JVM engines: CI runs them at smoke scale)
HEAVY_ROLES = frozenset({"kafka", "connect", "spark"})


def _get(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(f"cdc_{name.replace('-', '_')}")
    if value is None:
        value = config.getini(f"cdc_{name.replace('-', '_')}")
    return value if value not in ("", None) else None


def _ids(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def parse(config: pytest.Config) -> Options:
    """Read and validate options; bad values raise ``pytest.UsageError`` naming the fix."""
    seed_text = _get(config, "seed") or "1"
    try:
        seed = int(seed_text)
    except ValueError:
        raise pytest.UsageError(f"--cdc-seed must be an integer, got {seed_text!r}") from None
    if seed < 0:
        raise pytest.UsageError(f"--cdc-seed must be >= 0, got {seed}")
    scale = _get(config, "scale") or "default"
    if scale not in SCALES:
        raise pytest.UsageError(f"--cdc-scale must be one of {', '.join(SCALES)}, got {scale!r}")
    heavy_scale = _get(config, "heavy-scale") or ""
    if heavy_scale and heavy_scale not in SCALES:
        raise pytest.UsageError(f"--cdc-heavy-scale must be one of {', '.join(SCALES)}, got {heavy_scale!r}")
    heavy_cells = _get(config, "heavy-cells") or "all"
    if heavy_cells not in BREADTHS:
        raise pytest.UsageError(f"--cdc-heavy-cells must be one of {', '.join(BREADTHS)}, got {heavy_cells!r}")
    engines = _get(config, "engines") or "auto"
    if engines not in BACKENDS:
        raise pytest.UsageError(f"--cdc-engines must be one of {', '.join(BACKENDS)}, got {engines!r}")
    timeout_text = _get(config, "timeout") or "120"
    try:
        timeout_s = float(timeout_text)
        assert timeout_s > 0
    except (ValueError, AssertionError):
        raise pytest.UsageError(f"--cdc-timeout must be a positive number of seconds, got {timeout_text!r}") from None
    urls: dict[str, str] = {}
    for item in config.getoption("cdc_engine_url") or []:
        family, sep, url = item.partition("=")
        family, url = family.strip(), url.strip()
        register_url(url if sep and ROLE_NAME.match(family) else item)  # mask it from here on
        if not sep or not ROLE_NAME.match(family) or not url:
            raise pytest.UsageError(f"--cdc-engine-url wants FAMILY=URL (e.g. postgres=postgresql://...), "
                                    f"got {mask_text(item)!r}")
        urls[family] = url
    images: dict[str, str] = {}
    for item in config.getoption("cdc_image") or []:
        family, sep, image = (part.strip() for part in item.partition("="))
        if not sep or not ROLE_NAME.match(family) or not image:
            raise pytest.UsageError(f"--cdc-image wants FAMILY=IMAGE (e.g. postgres=postgres:15), got {item!r}")
        images[family] = image
    pushgateway = _get(config, "pushgateway") or ""
    register_url(pushgateway)
    results = Path(_get(config, "results") or "reports/out/results.json")
    history_text = _get(config, "history")
    if history_text is None:
        history: Path | None = results.parent / HISTORY_FILE
    else:
        history = None if history_text.strip().lower() in HISTORY_OFF else Path(history_text)
    return Options(
        approaches=_ids(_get(config, "approaches")),
        scenarios=_ids(_get(config, "scenarios")),
        seed=seed,
        scale=scale,
        engines=engines,
        results=results,
        timeout_s=timeout_s,
        pushgateway=pushgateway,
        engine_urls=urls,
        heavy_scale=heavy_scale,
        heavy_cells=heavy_cells,
        images=images,
        history=history,
    )
