"""What version each engine of a run is: one cheap probe per engine role, never raising.

Servers are asked (``SHOW server_version``, ``SELECT VERSION()``, Kafka Connect's REST root and
its connector plugins, the Spark session); embedded engines report their library's version
(delta-rs, pyiceberg); a local Kafka broker, which has no version request, reports its jars'.
``probe(role, engine)`` returns ``{name: version}`` — empty when the engine does not say.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from importlib import metadata
from typing import Any

from harness.secrets import mask_text


def _library(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _postgres(engine: Any) -> dict[str, str]:
    with engine.connect() as conn:
        return {"PostgreSQL": str(conn.execute("SHOW server_version").fetchone()[0])}


def _mysql(engine: Any) -> dict[str, str]:
    conn = engine.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            version = str(cur.fetchone()[0])
    finally:
        conn.close()
    name = "MariaDB" if "mariadb" in version.lower() else "MySQL"
    return {name: version.split("-MariaDB")[0] if name == "MariaDB" else version}


def _kafka(engine: Any) -> dict[str, str]:
    if getattr(engine, "backend", "") != "local":
        return {}
    from containers.jvm import jar_dir

    for jar in sorted(jar_dir("kafka").glob("kafka-clients-*.jar")):
        match = re.match(r"kafka-clients-(.+)\.jar$", jar.name)
        if match:
            return {"Kafka": match.group(1)}
    return {}


def _connect(engine: Any) -> dict[str, str]:
    import requests

    out: dict[str, str] = {}
    root = requests.get(f"{engine.url}/", timeout=5).json()
    if root.get("version"):
        out["Kafka Connect"] = str(root["version"])
    plugins = requests.get(f"{engine.url}/connector-plugins", timeout=5).json()
    by_version: dict[str, list[str]] = {}
    for plugin in plugins:
        parts = str(plugin.get("class", "")).split(".")
        if parts[:3] == ["io", "debezium", "connector"] and len(parts) > 4:  # io.debezium.connector.<db>.<Class>
            by_version.setdefault(str(plugin.get("version")), []).append(parts[3])
    if by_version:  # e.g. 3.5.0.Final (mysql, postgresql), 3.6.1.Final (mariadb)
        out["Debezium"] = ", ".join(f"{v} ({', '.join(sorted(set(dbs)))})" for v, dbs in sorted(by_version.items()))
    return out


def _spark(engine: Any) -> dict[str, str]:
    return {"Spark": engine.version()}


def _delta(engine: Any) -> dict[str, str]:
    version = _library("deltalake")
    return {"delta-rs (deltalake)": version} if version else {}


def _iceberg(engine: Any) -> dict[str, str]:
    version = _library("pyiceberg")
    return {"pyiceberg": version} if version else {}


PROBES: dict[str, Callable[[Any], dict[str, str]]] = {
    "postgres": _postgres, "mysql": _mysql, "kafka": _kafka, "connect": _connect, "spark": _spark,
    "delta": _delta, "iceberg": _iceberg, "sink": _iceberg,
}


def probe(role: str, engine: Any) -> dict[str, str]:
    """``{name: version}`` of the engine playing ``role`` (empty when unknown or it does not answer)."""
    fn = PROBES.get(role)
    if fn is None:
        version = getattr(engine, "version", None)
        with contextlib.suppress(Exception):
            return {role: str(version() if callable(version) else version)} if version else {}
        return {}
    try:
        return {k: mask_text(v) for k, v in fn(engine).items() if v}
    except Exception:  # a probe never fails a run: the version is simply not reported
        return {}
