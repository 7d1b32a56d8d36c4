"""delta-cdf-spark: Delta Lake Change Data Feed read with Spark (``readChangeFeed`` by version range)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pyarrow as pa

from harness.approaches.delta_cdf import DeltaCdf
from harness.capabilities import Capabilities
from harness.context import RunContext
from harness.errors import Unsupported

#: Delta history operations that change only rows (any other one may change the schema)
ROW_OPERATIONS = frozenset({"WRITE", "MERGE", "UPDATE", "DELETE", "STREAMING UPDATE", "TRUNCATE"})


class DeltaCdfSpark(DeltaCdf):
    """Reads every table's CDF with the worker's Spark session, from the version after the last
    one delivered (same positions, checkpoint and resume as ``delta-cdf``).

    A range of versions holding a schema change is read one version at a time, each projected
    onto the columns of that version's snapshot (``versionAsOf``) and, on column-mapped
    tables, with the end version's schema (Spark's default refuses to read CDF across a
    RENAME/DROP: ``DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE``). Commit time is the
    commit's ``commitInfo.timestamp`` as Spark reports it.
    """

    name = "delta-cdf-spark"
    columnar = False  # Spark hands rows over: decoded row by row
    family = "delta"
    roles = ("spark",)
    capabilities = Capabilities(
        before_image="full",
        updates="update",
        key_updates="delete+insert",
        transactions=True,
        delivery="at-least-once",
        ddl=frozenset({"add"}),
        truncate=False,
        resume=True,
        notes=("drop/rename/type change need column mapping (column_mapping=name, Spark-written tables)",
               "truncate arrives as per-row deletes",
               "CDF links an update's pre- and post-image only by key: a key change arrives as delete + insert"),
    )

    @classmethod
    def capabilities_for(cls, settings: dict[str, Any]) -> Capabilities:
        """Column-mapped tables (``column_mapping=name``) are read through drop, rename and widening."""
        if settings.get("column_mapping") == "name":
            return replace(cls.capabilities, ddl=frozenset({"add", "drop", "rename", "type"}),
                           notes=("truncate arrives as per-row deletes", cls.capabilities.notes[-1]))
        return cls.capabilities

    def start(self, ctx: RunContext, resume: bool = False) -> None:
        self.spark = ctx.role("spark")
        self._recent: dict[str, list[dict]] = {}
        self.spark.session.conf.set("spark.databricks.delta.changeDataFeed.defaultSchemaModeForColumnMappingTable",
                                    "endVersion")
        try:
            super().start(ctx, resume)
        except Exception as exc:  # noqa: BLE001 - Spark refusing a table another writer made is the finding
            if "DELTA_FEATURES_PROTOCOL_METADATA_MISMATCH" not in str(exc):
                raise
            raise Unsupported("delta-spark refuses to open this table (DELTA_FEATURES_PROTOCOL_METADATA_MISMATCH: "
                              "a table feature is enabled in its metadata but not listed in its protocol, as "
                              "the writer left it): " + _first_line(exc)) from None

    # -- what delta-cdf reads with delta-rs, read with Spark ----------------------------------------
    def _open(self, table: str) -> Any:
        return self.paths[table]

    def _latest_version(self, table: str) -> int:
        self._recent[table] = self._history(table)  # one history read per table and poll, reused by _read
        return int(self._recent[table][0]["version"])

    def _history(self, table: str) -> list[dict]:
        """The table's commits, newest first (``version``, ``timestamp`` in ms, ``operation``)."""
        rows = self.spark.sql(f"DESCRIBE HISTORY delta.`{self.paths[table]}`").select(
            "version", "timestamp", "operation").toArrow()
        stamps = rows.column("timestamp").cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_pylist()
        return [{"version": v, "timestamp": ms, "operation": op}
                for v, ms, op in zip(rows.column("version").to_pylist(), stamps,
                                     rows.column("operation").to_pylist(), strict=True)]

    def _read(self, idx: int, table: str, start: int, end: int) -> list[Any]:
        history = self._recent.get(table) or self._history(table)
        ops = {h["version"]: h["operation"] for h in history if start <= h["version"] <= end}
        if all(op in ROW_OPERATIONS for op in ops.values()):
            return self._decode(idx, table, self._projected(table, start, end))
        out: list[Any] = []
        for v in range(start, end + 1):  # a DDL lies in the range: read each version as of itself
            out.extend(self._decode(idx, table, self._projected(table, v, v)))
        return out

    def _projected(self, table: str, start: int, end: int) -> pa.Table:
        """The CDF of versions ``start..end`` with the columns of version ``end``'s snapshot (Spark
        reads with the schema of the table *now*, which a later ADD COLUMN may have widened)."""
        data = self._cdf(table, start, end)
        columns = self._snapshot_columns(table, end)
        return data.select([*(c for c in columns if c in data.column_names), *_meta(data)])

    def _cdf(self, table: str, start: int, end: int) -> pa.Table:
        frame = (self.spark.session.read.format("delta").option("readChangeFeed", "true")
                 .option("startingVersion", start).option("endingVersion", end).load(self.paths[table]))
        data = frame.toArrow()
        stamps = data.column("_commit_timestamp").cast(pa.timestamp("ms", tz="UTC"))
        return data.set_column(data.schema.get_field_index("_commit_timestamp"), "_commit_timestamp", stamps)

    def _snapshot_columns(self, table: str, version: int) -> list[str]:
        frame = self.spark.session.read.format("delta").option("versionAsOf", version).load(self.paths[table])
        return list(frame.columns)


def _first_line(exc: Exception) -> str:
    text = str(exc)
    at = text.find("[DELTA_")
    return (text[at:] if at >= 0 else text).splitlines()[0][:240]


def _meta(data: pa.Table) -> list[str]:
    return [c for c in ("_change_type", "_commit_version", "_commit_timestamp") if c in data.column_names]
