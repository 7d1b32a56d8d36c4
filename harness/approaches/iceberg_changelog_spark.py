"""iceberg-changelog-spark: Iceberg changes read with Spark's ``create_changelog_view`` per snapshot range."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from typing import Any

from harness.approach import BaseApproach
from harness.capabilities import Capabilities
from harness.context import RunContext
from harness.errors import Unsupported
from harness.events import ChangeEvent, Position

META = ("_change_type", "_change_ordinal", "_commit_snapshot_id")
_views = itertools.count(1)


class IcebergChangelogSpark(BaseApproach):
    """Reads each table's new snapshots with ``CALL <catalog>.system.create_changelog_view``
    (identifier columns = the table's key, ``compute_updates``), the way Spark users do.

    Position ``(commit_ms, table_index, snapshot_sequence, ordinal)``; txid = the snapshot.
    Rows are projected by field id onto the schema of the snapshot that wrote them (the view
    reads with the table's current schema). Merge-on-read delete files make Spark's changelog
    scan fail (pitfall 17): the reader raises ``Unsupported`` with Spark's reason. Durable
    state: a checkpoint with each table's first snapshot sequence and the acknowledged position.
    """

    name = "iceberg-changelog-spark"
    family = "iceberg"
    roles = ("spark",)
    capabilities = Capabilities(
        before_image="full",
        updates="update",
        transactions=True,
        delivery="at-least-once",
        ddl=frozenset({"add", "drop", "rename", "type"}),
        truncate=False,
        resume=True,
        notes=("copy-on-write only: Spark's changelog scan refuses delete files",
               "updates are paired within one snapshot (compute_updates)",
               "truncate arrives as per-row deletes"),
    )

    @classmethod
    def capabilities_for(cls, settings: dict[str, Any]) -> Capabilities:
        """On tables pyiceberg wrote (no ``writer=spark``), updates arrive as delete + insert:
        pyiceberg commits an update as a delete snapshot and an append snapshot, and
        ``compute_updates`` pairs rows only within one snapshot."""
        if settings.get("writer") == "spark":
            return cls.capabilities
        return replace(cls.capabilities, updates="delete+insert", notes=(
            *cls.capabilities.notes, "pyiceberg-written tables: an update is a delete snapshot + an append "
            "snapshot, so it arrives as delete + insert"))

    def start(self, ctx: RunContext, resume: bool = False) -> None:
        super().start(ctx, resume)
        self.capabilities = self.capabilities_for(ctx.settings)
        self.spark = ctx.role("spark")
        self.catalog_name = self.spark.iceberg_catalog(ctx.engine)
        self.pyiceberg = ctx.engine.catalog()
        self.tables = sorted(ctx.tables)
        self.idents = {t: ctx.engine.identifier(t) for t in self.tables}
        self._schema_cache: dict[int, Any] = {}
        self._metadata_read: set[str] = set()
        state = self.load_checkpoint() if resume else None
        if state is None:
            self.first_seq = {t: self._newest_seq(t) + 1 for t in self.tables}
            self.resume_from: Position | None = None
            self.save_checkpoint({"first_seq": self.first_seq, "acked": None})
        else:
            self.first_seq = {t: int(v) for t, v in state["first_seq"].items()}
            self.resume_from = tuple(state["acked"]) if state.get("acked") else None
        self.next_seq = dict(self.first_seq)
        if self.resume_from is not None:
            for t in self.tables:  # re-read from the acknowledged commit's snapshot
                at = [s.sequence_number for s in self._snapshots(t) if s.timestamp_ms >= self.resume_from[0]]
                self.next_seq[t] = max(self.first_seq[t], min(at) if at else self._newest_seq(t) + 1)

    def _table(self, table: str) -> Any:
        return self.pyiceberg.load_table(self.idents[table])

    def _snapshots(self, table: str) -> list[Any]:
        """The table's current lineage, oldest first."""
        meta = self._table(table).metadata
        chain, snap = [], meta.snapshot_by_id(meta.current_snapshot_id) if meta.current_snapshot_id else None
        while snap is not None:
            chain.append(snap)
            snap = meta.snapshot_by_id(snap.parent_snapshot_id) if snap.parent_snapshot_id else None
        return list(reversed(chain))

    def _newest_seq(self, table: str) -> int:
        snaps = self._snapshots(table)
        return snaps[-1].sequence_number if snaps else 0

    def caught_up(self) -> bool:
        """True when no table has a snapshot this reader has not read yet."""
        return all(self._newest_seq(t) < self.next_seq[t] for t in self.tables)

    def poll(self, max_events: int, timeout_s: float) -> list[ChangeEvent]:
        events: list[ChangeEvent] = []
        for idx, table in enumerate(self.tables):
            tbl = self._table(table)
            snaps = [s for s in self._snapshots(table) if s.sequence_number >= self.next_seq[table]]
            if not snaps:
                continue
            events.extend(self._read(idx, table, tbl, snaps))
            self.next_seq[table] = snaps[-1].sequence_number + 1
        if not events:
            time.sleep(min(timeout_s, 0.05))
            return []
        events.sort(key=lambda e: e.position)
        if self.resume_from is not None:
            events = [e for e in events if e.position > self.resume_from]
        return events

    def _read(self, idx: int, table: str, tbl: Any, snaps: list[Any]) -> list[ChangeEvent]:
        meta = tbl.metadata
        key_cols = [meta.schema().find_field(i).name for i in meta.schema().identifier_field_ids]
        if not key_cols:  # a table without a key: a row is identified by all its columns
            key_cols = [f.name for f in meta.schema().fields]
        view = f"cdc_changelog_{next(_views)}"
        start = snaps[0].parent_snapshot_id
        options = f"'end-snapshot-id', '{snaps[-1].snapshot_id}'"
        if start is not None:
            options += f", 'start-snapshot-id', '{start}'"
        keys = ", ".join(f"'{k}'" for k in key_cols)
        try:
            self.spark.sql(f"CALL `{self.catalog_name}`.system.create_changelog_view(table => "
                           f"'{self.idents[table]}', options => map({options}), changelog_view => '{view}', "
                           f"identifier_columns => array({keys}), compute_updates => true)")
            data = self.spark.sql(f"SELECT * FROM {view}").toArrow()
        except Exception as exc:  # noqa: BLE001 - Spark's refusal of delete files is the finding
            if "delete" in str(exc).lower():
                raise Unsupported("Spark's changelog scan refuses merge-on-read delete files (pitfall 17): "
                                  f"{str(exc).splitlines()[0][:200]}") from None
            raise
        finally:
            self.spark.session.catalog.dropTempView(view)
        captured_at = time.time_ns()
        by_id = {s.snapshot_id: s for s in snaps}
        names = [c for c in data.column_names if c not in META]
        current = self._schema_named(table, names)
        rows = data.select(names).to_pylist()
        kinds = data.column("_change_type").to_pylist()
        snap_ids = data.column("_commit_snapshot_id").to_pylist()
        # ordinals independent of the order Spark returned rows in (a re-read after a restart must
        # give every change the same position): ties broken by key, then kind
        order = sorted(range(len(rows)), key=lambda i: (by_id[snap_ids[i]].sequence_number,
                                                         kinds[i] != "UPDATE_BEFORE",
                                                         repr(tuple(rows[i][k] for k in key_cols)), kinds[i]))
        pre: dict[tuple, dict] = {}
        out: list[ChangeEvent] = []
        counter: dict[int, int] = {}
        for i in order:
            snap = by_id[snap_ids[i]]
            row = _project(rows[i], current, self._schema_at(tbl, snap))
            key = tuple(rows[i][k] for k in key_cols)
            if kinds[i] == "UPDATE_BEFORE":
                pre[(snap.snapshot_id, key)] = row
                continue
            op = {"INSERT": "insert", "DELETE": "delete", "UPDATE_AFTER": "update"}[kinds[i]]
            n = counter[snap.snapshot_id] = counter.get(snap.snapshot_id, -1) + 1
            before = row if op == "delete" else pre.pop((snap.snapshot_id, key), None)
            out.append(ChangeEvent(table, op, key, before, None if op == "delete" else row,
                                   (snap.timestamp_ms, idx, snap.sequence_number, n), (table, snap.snapshot_id),
                                   snap.timestamp_ms * 1_000_000, captured_at))
        return out

    def _schema_named(self, table: str, names: list[str]) -> Any:
        """The schema Spark's view read with: the newest one with exactly these columns (a DDL may
        have landed between this reader's metadata load and Spark's)."""
        schemas = self._table(table).metadata.schemas
        for schema in sorted(schemas, key=lambda sc: sc.schema_id, reverse=True):
            if [f.name for f in schema.fields] == names:
                return schema
        raise RuntimeError(f"no schema of {table} has the columns Spark's changelog view returned: {names}")

    def _schema_at(self, tbl: Any, snap: Any) -> Any:
        """The schema a snapshot was written with: its ``schema-id``, or (pyiceberg leaves it unset
        on some snapshots) the current schema of the first metadata version that holds it."""
        meta = tbl.metadata
        if snap.schema_id is not None and meta.schema_by_id(snap.schema_id) is not None:
            return meta.schema_by_id(snap.schema_id)
        if snap.snapshot_id not in self._schema_cache:
            from pyiceberg.serializers import FromInputFile

            for entry in meta.metadata_log:  # each metadata file read once: its snapshot's schema
                if entry.metadata_file not in self._metadata_read:
                    old = FromInputFile.table_metadata(tbl.io.new_input(entry.metadata_file))
                    self._metadata_read.add(entry.metadata_file)
                    for added in old.snapshots:  # the first metadata version holding it added it
                        self._schema_cache.setdefault(added.snapshot_id, old.schema())
            self._schema_cache.setdefault(snap.snapshot_id, meta.schema())
        return self._schema_cache[snap.snapshot_id]

    def ack(self, position: Position) -> None:
        self.save_checkpoint({"first_seq": self.first_seq, "acked": list(position)})


def _project(row: dict, current: Any, written: Any) -> dict:
    """``row`` (current schema's names) renamed and trimmed to the schema a snapshot was written with."""
    if written.schema_id == current.schema_id:
        return row
    out = {}
    for field in written.fields:
        try:
            now = current.find_field(field.field_id)
        except ValueError:
            continue  # dropped since: Spark's view cannot read it any more
        out[field.name] = row.get(now.name)
    return out
