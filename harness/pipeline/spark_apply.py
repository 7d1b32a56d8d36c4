"""The Spark sink's apply step: one ``MERGE INTO`` per batch and table, the sink's record as its commit properties.

``SparkIcebergWriter`` is the ``TableWriter`` (``harness.pipeline.apply``) of ``pg-kafka-iceberg-spark``:
Spark SQL on the worker's session, on the warehouse's SQLite catalog registered as a Spark catalog
(``SparkEngine.iceberg_catalog``), so pyiceberg reads what Spark wrote. The record goes into the
snapshot summary of the MERGE's own commit through Iceberg's ``CommitMetadata.withCommitProperties``
(the documented way for SQL statements; ``snapshot-property.*`` write options exist only for
DataFrame writes, not for ``MERGE INTO``), called over py4j: a local session only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from harness.pipeline.apply import PyIcebergWriter, stored_row, stored_spec
from harness.sources.arrow_types import rows_to_table
from harness.sources.spark_writes import column_sql, quoted
from harness.steps import Column, TableSpec

#: copy-on-write: iceberg-snapshot-diff (the approach's reader) refuses delete files (pitfall 17)
TABLE_PROPERTIES = {"format-version": "2", "write.delete.mode": "copy-on-write",
                    "write.update.mode": "copy-on-write", "write.merge.mode": "copy-on-write"}
_views = itertools.count(1)


class SparkIcebergWriter:
    """``TableWriter`` with Spark SQL: ``ensure`` is ``CREATE TABLE`` (format v2, copy-on-write,
    the key as identifier fields) or ``ADD COLUMNS``; ``apply`` is one ``MERGE INTO`` keyed by the
    table's key (a truncate adds ``WHEN NOT MATCHED BY SOURCE THEN DELETE``) committed with the
    record as commit properties; ``records`` reads the snapshot summaries (pyiceberg, metadata only).
    """

    def __init__(self, spark: Any, warehouse: Any) -> None:
        self.spark = spark
        self.warehouse = warehouse
        self.catalog = spark.iceberg_catalog(warehouse)
        self.meta = PyIcebergWriter(warehouse)  # the snapshot summaries: same catalog, same tables
        self.specs: dict[str, TableSpec] = {}

    def target(self, table: str) -> str:
        """The table's Spark SQL name."""
        return f"{quoted(self.catalog)}.{self.warehouse.namespace}.{quoted(table)}"

    def ensure(self, spec: TableSpec) -> None:
        stored = stored_spec(spec)
        target = self.target(spec.name)
        if not self.meta.catalog.table_exists(self.warehouse.identifier(spec.name)):
            cols = ", ".join(column_sql(c if c.name not in stored.key else _required(c)) for c in stored.columns)
            props = ", ".join(f"'{k}' = '{v}'" for k, v in TABLE_PROPERTIES.items())
            self.spark.sql(f"CREATE TABLE {target} ({cols}) USING iceberg TBLPROPERTIES ({props})")
            self.spark.sql(f"ALTER TABLE {target} SET IDENTIFIER FIELDS {', '.join(quoted(k) for k in stored.key)}")
        else:
            have = set(self.spark.session.table(target).columns)
            missing = [c for c in stored.columns if c.name not in have]
            if missing:
                self.spark.sql(f"ALTER TABLE {target} ADD COLUMNS ({', '.join(column_sql(c) for c in missing)})")
        self.specs[spec.name] = stored

    def apply(self, table: str, upserts: Sequence[Mapping[str, Any]], deletes: Sequence[tuple], truncate: bool,
              record: Mapping[str, str]) -> None:
        spec = self.specs[table]
        rows = [stored_row(spec, r) for r in upserts] + [dict(zip(spec.key, k, strict=True)) for k in deletes]
        data = rows_to_table(spec, rows, extra={"_op": ["upsert"] * len(upserts) + ["delete"] * len(deletes)})
        view = f"cdc_sink_{next(_views)}"
        self.spark.session.createDataFrame(data).createOrReplaceTempView(view)
        cols = [quoted(c.name) for c in spec.columns]
        on = " AND ".join(f"t.{quoted(k)} = s.{quoted(k)}" for k in spec.key)
        sets = ", ".join(f"t.{c} = s.{c}" for c in cols)
        merge = (f"MERGE INTO {self.target(table)} t USING {view} s ON {on} "
                 "WHEN MATCHED AND s._op = 'delete' THEN DELETE "
                 f"WHEN MATCHED THEN UPDATE SET {sets} "
                 f"WHEN NOT MATCHED AND s._op = 'upsert' THEN INSERT ({', '.join(cols)}) "
                 f"VALUES ({', '.join('s.' + c for c in cols)})"
                 + (" WHEN NOT MATCHED BY SOURCE THEN DELETE" if truncate else ""))
        try:
            with_commit_properties(self.spark, record, lambda: self.spark.sql(merge))
        finally:
            self.spark.session.catalog.dropTempView(view)

    def records(self, table: str) -> list[dict[str, Any]]:
        return self.meta.records(table)


def _required(col: Column) -> Column:
    return replace(col, nullable=False)


class _Callable:
    """A Python function as a ``java.util.concurrent.Callable`` (py4j callback)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.error: BaseException | None = None

    def call(self) -> None:
        try:
            self.fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the Python caller, not lost in py4j
            self.error = exc
            raise

    class Java:
        implements = ["java.util.concurrent.Callable"]  # noqa: RUF012 - py4j's declaration


def with_commit_properties(spark: Any, properties: Mapping[str, str], fn: Callable[[], Any]) -> None:
    """Run ``fn`` (Spark SQL that commits to Iceberg) with ``properties`` in its commit's snapshot
    summary: ``org.apache.iceberg.spark.CommitMetadata.withCommitProperties`` on the session's JVM
    (its thread-local holds them for Spark statements run inside ``fn``). Raises what ``fn`` raised."""
    from pyspark.java_gateway import ensure_callback_server_started

    gateway = spark.session.sparkContext._gateway
    ensure_callback_server_started(gateway)
    jvm = gateway.jvm
    props = jvm.java.util.HashMap()
    for key, value in properties.items():
        props.put(key, value)
    call = _Callable(fn)
    try:
        jvm.org.apache.iceberg.spark.CommitMetadata.withCommitProperties(
            props, call, jvm.java.lang.Class.forName("java.lang.RuntimeException"))
    except Exception:
        if call.error is not None:
            raise call.error from None
        raise
