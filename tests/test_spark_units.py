"""Spark's pieces that need no JVM: engine URL errors, writers, snapshot-schema projection, the sink's progress."""

from __future__ import annotations

from typing import Any

import pytest

from containers import spark
from harness.approaches.iceberg_changelog_spark import _project
from harness.errors import EngineUnavailable, UnknownId
from harness.families import builtin_registry


@pytest.mark.parametrize(("backend", "url", "fix"), [
    ("auto", "spark://host:7077", "sc://host:port"),
    ("external", None, "spark=sc://host:port"),
])
def test_engine_refuses_what_it_cannot_run_with_the_fix(backend: str, url: str | None, fix: str) -> None:
    with pytest.raises(EngineUnavailable, match="fix") as err:
        spark.engine_from_options(backend, url, 10.0)
    assert fix in str(err.value)


def test_docker_backend_is_a_connect_server_in_a_container() -> None:
    """``--cdc-engines=docker`` gives a (not yet started) Spark Connect container with the chosen image,
    whose server runs the local session's settings on 127.0.0.1 and the mounted jars."""
    engine = spark.engine_from_options("docker", None, 10.0, image="apache/spark:4.1.1")
    assert isinstance(engine, spark.DockerSpark) and engine.backend == "docker" and engine.image == "apache/spark:4.1.1"
    command = engine.command(15999, ["/x/delta-spark_4.1_2.13-4.4.0.jar"])
    assert command[:2] == ["/opt/spark/bin/spark-submit", "--master"]
    assert "spark.connect.grpc.binding.address=127.0.0.1" in command
    assert "spark.connect.grpc.binding.port=15999" in command
    assert f"{engine.JARS_IN_CONTAINER}/delta-spark_4.1_2.13-4.4.0.jar" in command


def test_unreachable_spark_connect_is_a_one_line_error() -> None:
    engine = spark.SparkEngine("sc://127.0.0.1:9", timeout_s=5)
    with pytest.raises(EngineUnavailable, match="does not answer.*fix"):
        engine.start()
    engine.stop()


def test_writer_setting_picks_the_source_and_its_roles() -> None:
    registry = builtin_registry()
    delta = registry.get("delta")
    assert delta.source_class({}).__name__ == "DeltaSource"
    assert delta.source_class({"writer": "spark"}).__name__ == "SparkDeltaSource"
    assert registry.get("iceberg").source_class({"writer": "spark"}).__name__ == "SparkIcebergSource"
    from harness.approaches.delta_cdf import DeltaCdf
    from harness.approaches.delta_cdf_spark import DeltaCdfSpark

    assert registry.roles_for(DeltaCdf) == ("delta",)
    assert registry.roles_for(DeltaCdf, {"writer": "spark"}) == ("delta", "spark")
    assert registry.roles_for(DeltaCdfSpark, {"writer": "spark"}) == ("delta", "spark")
    with pytest.raises(UnknownId, match="no writer 'duckdb'; known: spark"):
        delta.source_class({"writer": "duckdb"})


def test_interop_variants_cover_both_writers() -> None:
    registry = builtin_registry()
    from harness.approaches.iceberg_snapshot_diff import IcebergSnapshotDiff

    variants = registry.variants_for(IcebergSnapshotDiff, "crud")
    assert {} in variants and {"writer": "spark"} in variants
    assert {"writer": "spark", "write_mode": "merge-on-read"} in variants


def test_rows_are_projected_onto_the_schema_that_wrote_them() -> None:
    from pyiceberg import types as it
    from pyiceberg.schema import Schema

    written = Schema(it.NestedField(1, "id", it.IntegerType(), required=True),
                     it.NestedField(2, "qty", it.IntegerType()), it.NestedField(3, "name", it.StringType()),
                     schema_id=0)
    current = Schema(it.NestedField(1, "id", it.IntegerType(), required=True),
                     it.NestedField(2, "quantity", it.LongType()), it.NestedField(4, "color", it.StringType()),
                     schema_id=2)
    row = {"id": 1, "quantity": 5, "color": None}
    assert _project(row, current, written) == {"id": 1, "qty": 5}  # renamed back; dropped 'name' is gone
    assert _project(row, current, current) is row


def test_the_spark_sink_reads_its_query_progress_offsets_in_either_form() -> None:
    from harness.pipeline.spark_sink import _offsets, _Record

    # the JVM's JSON, and the str(dict) pyspark 4's SourceProgress.fromJson keeps
    assert _offsets('{"run_changes":{"0":91}}') == {"run_changes": {"0": 91}}
    assert _offsets("{'run_changes': {'0': 91}}") == {"run_changes": {"0": 91}}
    assert _offsets(None) == {} and _offsets("latest") == {}
    record = _Record({"key": b"k", "value": b"v", "offset": 7, "ts": 1_700_000_000_123})
    assert (record.error(), record.key(), record.value(), record.offset(), record.timestamp()) == (
        None, b"k", b"v", 7, (1, 1_700_000_000_123))


def test_the_stream_claims_drop_rename_type_only_on_column_mapped_tables_of_either_writer() -> None:
    from harness.approaches.delta_cdf_spark_stream import DeltaCdfSparkStream

    mapped = DeltaCdfSparkStream.capabilities_for({"writer": "spark", "column_mapping": "name"})
    assert mapped.ddl == frozenset({"add", "drop", "rename", "type"})
    assert DeltaCdfSparkStream.capabilities_for({}).ddl == frozenset({"add"})
    assert DeltaCdfSparkStream.capabilities_for({"writer": "spark"}).ddl == frozenset({"add"})
    variants = builtin_registry().variants_for(DeltaCdfSparkStream, "schema-rename")
    assert {} in variants and {"writer": "spark", "column_mapping": "name"} in variants


def test_the_stream_reads_a_versions_columns_from_its_log_entry(tmp_path) -> None:
    """On a real delta-rs table: version 0's ``metaData`` names the columns in schema order; an
    append's entry has none (None), and so has a version not written."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from harness.approaches.delta_cdf_spark_stream import _logged_columns

    write_deltalake(str(tmp_path), pa.table({"id": [1], "qty": [2], "name": ["a"]}))
    write_deltalake(str(tmp_path), pa.table({"id": [2], "qty": [3], "name": ["b"]}), mode="append")
    assert _logged_columns(tmp_path, 0) == ["id", "qty", "name"]
    assert _logged_columns(tmp_path, 1) is None
    assert _logged_columns(tmp_path, 2) is None


class _NoKafkaSession:
    """A session whose class path lacks a streaming source: ``load()`` fails as Spark's does."""

    @property
    def readStream(self) -> Any:  # noqa: N802 - pyspark's name
        return self

    def format(self, name: str) -> Any:
        self.name = name
        return self

    def option(self, *_: Any) -> Any:
        return self

    def load(self) -> None:
        raise RuntimeError(f"[DATA_SOURCE_NOT_FOUND] Failed to find the data source: {self.name}.\nJVM stack")


def test_a_session_without_the_kafka_source_is_refused_with_the_fix() -> None:
    """The Spark sink's start check (``require_kafka_source``) turns a missing Kafka source into one line
    naming ``make setup``; the positive side runs in every pg-kafka-iceberg-spark cell of the suite."""
    from types import SimpleNamespace

    from harness.pipeline.spark_sink import require_kafka_source

    with pytest.raises(EngineUnavailable, match=r"cannot load the 'kafka' streaming source \(\[DATA_SOURCE_NOT_FOUND\]"
                       r" Failed to find the data source: kafka\.\); fix: make setup"):
        require_kafka_source(SimpleNamespace(session=_NoKafkaSession()))
