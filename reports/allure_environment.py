"""Allure's Environment and Executors widgets: engine versions, the run (id, seed, scale, backends),
the machine, and who ran it.

Written once per session by the controller into the results directory: ``environment.properties``
(Java properties: keys and values escaped, non-ASCII as ``\\uXXXX``) and ``executor.json`` (the
report's name; on GitHub Actions the workflow run, numbered, which labels the trend). The engine
versions are the ones the session's workers actually used (``containers.versions``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.secrets import mask_text


def memory_gib() -> float | None:
    """The machine's physical memory in GiB, or None where the OS does not say."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def environment(header: Mapping[str, Any], versions: Mapping[str, str], backends: Mapping[str, str],
                heavy_scale: str = "") -> dict[str, str]:
    """The properties, in display order (the Overview shows the first five): engine versions,
    the run (id, seed, scale, backends), the machine."""
    host = header.get("host") or {}
    props: dict[str, str] = {name: versions[name] for name in sorted(versions)}
    props.update({
        "run id": str(header.get("run_id", "")),
        "seed": str(header.get("seed", "")),
        "scale": str(header.get("scale", "")),
    })
    if heavy_scale and heavy_scale != header.get("scale"):
        props["scale (Kafka, Connect, Spark cases)"] = heavy_scale
    if backends:
        props["engine backends"] = ", ".join(f"{role}={b}" for role, b in sorted(backends.items()))
    props["engines option"] = str(header.get("engines", ""))
    props["started at"] = str(header.get("started_at", ""))
    memory = memory_gib()
    props.update({
        "machine cores": str(host.get("cpus") or os.cpu_count()),
        "machine memory (GiB)": "" if memory is None else str(memory),
        "platform": str(host.get("platform", "")),
        "Python": str(host.get("python", "")),
        "cdc-harness": str(header.get("harness_version", "")),
    })
    return {k: mask_text(v) for k, v in props.items() if v}


def _escape(text: str, key: bool) -> str:
    out = []
    for ch in text:
        if ch in "\\=:#!" or (key and ch == " "):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) > 0xFFFF:  # a UTF-16 surrogate pair, as Java reads it
            code = ord(ch) - 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        elif ord(ch) > 126 or ord(ch) < 32:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def write_environment(results_dir: str | Path, props: Mapping[str, str]) -> Path:
    """Write ``environment.properties`` into an Allure results directory; return its path."""
    path = Path(results_dir) / "environment.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{_escape(k, True)}={_escape(v, False)}\n" for k, v in props.items())
    path.write_text(text, encoding="ascii")
    return path


def executor(run_id: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Executors widget's entry: the harness and run; on GitHub Actions the workflow run
    (``buildOrder`` = its number, so the trend's points are labelled ``#N``)."""
    env = os.environ if env is None else env
    out: dict[str, Any] = {"name": "cdc-harness", "type": "pytest", "reportName": "cdc-harness conformance",
                           "buildName": f"run {run_id}"}
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_ID"):
        url = f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env.get('GITHUB_REPOSITORY', '')}"
        build = f"{env.get('GITHUB_WORKFLOW', 'ci')} #{env.get('GITHUB_RUN_NUMBER', '')}"
        if env.get("CDC_ENGINE"):
            build += f" {env['CDC_ENGINE']}"
        out.update({"name": "GitHub Actions", "type": "github", "buildName": f"{build} (run {run_id})",
                    "buildUrl": f"{url}/actions/runs/{env['GITHUB_RUN_ID']}"})
        if env.get("GITHUB_RUN_NUMBER", "").isdigit():
            out["buildOrder"] = int(env["GITHUB_RUN_NUMBER"])
    return out


def write_executor(results_dir: str | Path, info: Mapping[str, Any]) -> Path:
    """Write ``executor.json`` into an Allure results directory; return its path."""
    path = Path(results_dir) / "executor.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(info), indent=1), encoding="utf-8")
    return path
