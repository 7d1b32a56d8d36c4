"""``--cdc-heavy-cells=core``: heavy cells sampled on interop, delivery and the Spark sink, every scenario kept."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness.breadth import (
    CORE_SPARK_SINK,
    CORE_SPARK_WRITTEN,
    DEFAULT_IDENTITY,
    KEY_SCENARIOS,
    LIGHT_FIRST,
    in_breadth,
)

ROOT = Path(__file__).resolve().parents[1]


def test_light_cells_and_all_breadth_keep_everything() -> None:
    spark_written = {"writer": "spark"}
    assert in_breadth("all", "delta-cdf", "types", spark_written, heavy=True)
    assert in_breadth("core", "pg-pgoutput", "crud", {"replica_identity": "default"}, heavy=False)


def test_core_samples_spark_written_and_debezium_faults_under_default_identity_only() -> None:
    for approach, scenario in CORE_SPARK_WRITTEN.items():
        assert in_breadth("core", approach, scenario, {"writer": "spark"}, heavy=True)
        assert not in_breadth("core", approach, "types" if scenario != "types" else "crud", {"writer": "spark"},
                              heavy=True)
    assert not in_breadth("core", "iceberg-changelog-spark", "crud",
                          {"writer": "spark", "write_mode": "merge-on-read"}, heavy=True)
    eos = {"delivery": "exactly-once", "connector": "tuned"}
    assert not in_breadth("core", "pg-debezium", "connect-crash", {**eos, "replica_identity": "default"}, heavy=True)
    assert in_breadth("core", "pg-debezium", "connect-crash", {**eos, "replica_identity": "full"}, heavy=True)
    assert not in_breadth("core", "pg-debezium", "connect-crash",
                          {"delivery": "at-least-once", "replica_identity": "default"}, heavy=True)
    assert not in_breadth("core", "mariadb-debezium", "reader-crash", eos, heavy=True)
    assert in_breadth("core", "pg-debezium", "toast", {"delivery": "at-least-once", "replica_identity": "default"},
                      heavy=True)
    assert not in_breadth("core", "pg-debezium", "schema-add",
                          {"delivery": "at-least-once", "replica_identity": "default"}, heavy=True)
    assert in_breadth("core", "pg-debezium", "schema-add", {"delivery": "at-least-once", "replica_identity": "full"},
                      heavy=True)


def test_core_runs_shapes_on_light_engines_and_keys_on_debezium_only() -> None:
    for scenario in LIGHT_FIRST:
        assert in_breadth("core", "pg-pgoutput", scenario, {}, heavy=False)
        assert not in_breadth("core", "pg-debezium", scenario, {}, heavy=True, roles=("postgres", "kafka", "connect"))
        assert in_breadth("all", "pg-debezium", scenario, {}, heavy=True, roles=("postgres", "kafka", "connect"))
    for scenario in KEY_SCENARIOS:
        assert in_breadth("core", "pg-debezium", scenario, {}, heavy=True, roles=("postgres", "kafka", "connect"))
        assert not in_breadth("core", "delta-cdf-spark", scenario, {}, heavy=True, roles=("delta", "spark"))
        assert in_breadth("all", "delta-cdf-spark", scenario, {}, heavy=True, roles=("delta", "spark"))


def test_core_keeps_two_cells_of_the_spark_sink() -> None:
    pipe = {"connector": "tuned", "delivery": "at-least-once", "replica_identity": "full"}
    assert len(CORE_SPARK_SINK) <= 2
    for scenario in CORE_SPARK_SINK:
        assert in_breadth("core", "pg-kafka-iceberg-spark", scenario, {**pipe, "sink": "exactly-once"}, heavy=True)
        assert not in_breadth("core", "pg-kafka-iceberg-spark", scenario, {**pipe, "sink": "offsets-after"},
                              heavy=True)
    assert not in_breadth("core", "pg-kafka-iceberg-spark", "crud",
                          {**pipe, "sink": "exactly-once", "sink_drop": "price"}, heavy=True)
    assert not in_breadth("core", "pg-kafka-iceberg-spark", "types", {**pipe, "sink": "exactly-once"}, heavy=True)
    assert in_breadth("all", "pg-kafka-iceberg-spark", "types", {**pipe, "sink": "exactly-once"}, heavy=True)
    assert in_breadth("core", "pg-kafka-iceberg", "types", {**pipe, "sink": "exactly-once"}, heavy=True)


def _collected(breadth: str) -> set[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "suites/test_conformance.py", "--collect-only", "-q",
                          "-p", "no:cacheprovider", f"--cdc-heavy-cells={breadth}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return {m.group(1) for m in re.finditer(r"test_conformance\[(.+?)\]", out.stdout)}


def _sampled_out(cell: str) -> bool:
    """A heavy cell core breadth leaves out on purpose: shapes on JVM engines, keys on Spark."""
    heavy = any(name in cell for name in ("debezium", "spark", "kafka"))
    return heavy and (any(f"-{s}" in cell for s in LIGHT_FIRST)
                      or ("spark" in cell and any(f"-{s}" in cell for s in KEY_SCENARIOS)))


def test_core_keeps_every_approach_and_scenario_pair_it_had_without_a_spark_writer() -> None:
    every, core = _collected("all"), _collected("core")
    assert core < every
    dropped = every - core
    spark_sink = {c for c in every if c.startswith("pg-kafka-iceberg-spark-")}
    assert len(spark_sink & core) == len(CORE_SPARK_SINK), sorted(spark_sink & core)
    assert all("writer-spark" in cell or ("replica-identity-default" in cell and not any(
                   re.match(rf"pg-debezium-{s}-", cell) for s in DEFAULT_IDENTITY))
               or ("reader-crash" in cell and "exactly-once" in cell) or _sampled_out(cell) or cell in spark_sink
               for cell in dropped), sorted(dropped)[:5]

    def pair(cell: str) -> str:  # approach-scenario without the settings suffix
        return re.sub(r"-(writer|connector|delivery|replica-identity|column-mapping|write-mode)-.*$", "", cell)

    kept = {pair(c) for c in every if "writer-spark" not in c and not _sampled_out(c) and c not in spark_sink}
    assert kept <= {pair(c) for c in core}
