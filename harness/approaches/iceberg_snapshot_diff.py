"""iceberg-snapshot-diff: changes derived by diffing each commit's added and removed data files.

pyiceberg has no changelog scan (its incremental scan sees appends only), so this approach
does what Spark's changelog view does: for each table commit (one metadata version, which may
hold several snapshots, e.g. delete + append of one transaction), read the rows of the data
files the commit removed (with the schema before it) and added (with its own schema), drop
copy-on-write carry-over rows present unchanged in both, and pair the rest by identifier
fields: in both → update, removed only → delete, added only → insert.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from harness.approach import BaseApproach
from harness.approaches.delta_cdf_arrow import in_position_order
from harness.approaches.iceberg_diff_arrow import diff_batch
from harness.capabilities import Capabilities
from harness.columnar import batch_len
from harness.context import RunContext
from harness.errors import Unsupported
from harness.events import ChangeEvent, Position
from harness.values import encode_image

ADDED, DELETED = 1, 2


class IcebergSnapshotDiff(BaseApproach):
    """Diffs commits of every table; position ``(commit_ms, table_index, metadata_version, ordinal)``.

    Merge-on-read delete files are refused (``Unsupported``): a diff of data files alone
    would miss their deletes. Durable state: a checkpoint file with each table's first commit
    (written at ``start``) and the last acknowledged position (on ``ack``); a resumed reader
    re-reads from the acknowledged commit, skipping what was acknowledged, or from the first
    commits when nothing was acknowledged yet.
    """

    name = "iceberg-snapshot-diff"
    family = "iceberg"
    #: events as Arrow batches (``iceberg_diff_arrow``); False decodes every commit row by row
    columnar: ClassVar[bool] = True
    capabilities = Capabilities(
        before_image="full",
        updates="update",
        key_updates="delete+insert",
        transactions=True,
        delivery="at-least-once",
        ddl=frozenset({"add", "drop", "rename", "type"}),
        truncate=False,
        resume=True,
        notes=("copy-on-write only: merge-on-read delete files are refused",
               "a diff by key: a key change arrives as delete (old key) + insert (new key)",
               "truncate arrives as per-row deletes"),
    )

    def start(self, ctx: RunContext, resume: bool = False) -> None:
        super().start(ctx, resume)
        warehouse = ctx.engine
        self.catalog = warehouse.catalog()
        self.tables = sorted(ctx.tables)
        self.idents = {t: warehouse.identifier(t) for t in self.tables}
        self.metadata_cache: dict[str, Any] = {}
        histories = {t: self._history(self.catalog.load_table(self.idents[t])) for t in self.tables}
        state = self.load_checkpoint() if resume else None
        if state is None:  # a fresh reader: from the next commit of each table, durably noted
            self.first_commit = {t: histories[t][-1][0] + 1 for t in self.tables}
            self.resume_from: Position | None = None
            self.save_checkpoint({"first_commit": self.first_commit, "acked": None})
        else:
            self.first_commit = {t: int(v) for t, v in state["first_commit"].items()}
            self.resume_from = tuple(state["acked"]) if state.get("acked") else None
        self.next_commit = dict(self.first_commit)
        if self.resume_from is not None:
            for t in self.tables:
                newest = histories[t][-1][0] + 1
                at = next((v for v, _, ms in histories[t] if ms >= self.resume_from[0]), newest)
                self.next_commit[t] = max(self.first_commit[t], at)

    def caught_up(self) -> bool:
        """True when no table has a commit this reader has not read yet."""
        return all(self._history(self.catalog.load_table(self.idents[t]))[-1][0] < self.next_commit[t]
                   for t in self.tables)

    @staticmethod
    def _history(table: Any) -> list[tuple[int, str, int]]:
        """The table's known metadata versions, oldest first: (version, location, last-updated ms).

        The version is the number the writer puts in front of each metadata file name
        (``00042-<uuid>.metadata.json``): stable even when old log entries are trimmed
        (``write.metadata.previous-versions-max``, default 100).
        """
        log = [(e.metadata_file, e.timestamp_ms) for e in table.metadata.metadata_log]
        entries = [*log, (table.metadata_location, table.metadata.last_updated_ms)]
        return [(int(Path(loc).name.split("-", 1)[0]), loc, ms) for loc, ms in entries]

    def _metadata(self, table: Any, location: str) -> Any:
        from pyiceberg.serializers import FromInputFile

        if location == table.metadata_location:
            return table.metadata
        if location not in self.metadata_cache:
            self.metadata_cache[location] = FromInputFile.table_metadata(table.io.new_input(location))
        return self.metadata_cache[location]

    def poll(self, max_events: int, timeout_s: float) -> list[Any]:
        """Events in position order: one Arrow batch per commit (``iceberg_diff_arrow``) where its
        rows allow it, ``ChangeEvent`` otherwise (and always when ``columnar`` is False)."""
        parts: list[Any] = []
        count = 0
        for idx, t in enumerate(self.tables):
            table = self.catalog.load_table(self.idents[t])
            history = self._history(table)
            for (_, prev_loc, _), (n, loc, _) in zip(history, history[1:], strict=False):
                if n < self.next_commit[t]:
                    continue
                prev = self._metadata(table, prev_loc)
                cur = self._metadata(table, loc)
                got = self._commit_events(table, idx, t, n, prev, cur)
                parts.extend(got)
                count += sum(batch_len(p) if isinstance(p, pa.Table) else 1 for p in got)
                self.next_commit[t] = n + 1
                if count >= max_events:
                    break
        out = in_position_order(parts, self.resume_from)
        if not out:
            time.sleep(min(timeout_s, 0.05))
        return out

    def _commit_events(self, table: Any, idx: int, name: str, n: int, prev: Any, cur: Any) -> list[Any]:
        if cur.current_snapshot_id == prev.current_snapshot_id:
            return []  # schema or property change only
        snapshots = self._snapshots_between(cur, prev.current_snapshot_id)
        added: dict[str, Any] = {}
        removed: dict[str, Any] = {}
        for snap in snapshots:
            for manifest in snap.manifests(table.io):
                if manifest.added_snapshot_id != snap.snapshot_id:
                    continue
                for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
                    f = entry.data_file
                    if f.content.value != 0:
                        raise Unsupported("merge-on-read delete files: a data-file diff would miss their deletes")
                    path = f.file_path
                    if entry.status.value == ADDED:
                        if path in removed:
                            removed.pop(path)
                        else:
                            added[path] = f
                    elif entry.status.value == DELETED:
                        if path in added:
                            added.pop(path)
                        else:
                            removed[path] = f
        before = self._read(table, prev, list(removed.values()))
        after = self._read(table, cur, list(added.values()))
        ids = list(cur.schema().identifier_field_ids)
        if not ids:  # no identifier fields: a row is identified by all its columns
            kept = {f.field_id for f in prev.schema().fields}
            ids = [f.field_id for f in cur.schema().fields if f.field_id in kept]
        key_cols = [cur.schema().find_field(i).name for i in ids]
        old_key_cols = [prev.schema().find_field(i).name for i in ids]
        return self._decode(idx, name, n, cur.last_updated_ms, before, after, key_cols, old_key_cols)

    def _decode(self, idx: int, name: str, n: int, commit_ms: int, before: pa.Table, after: pa.Table,
                key_cols: list[str], old_key_cols: list[str]) -> list[Any]:
        """One commit's events from its removed (``before``) and added (``after``) rows: ``[batch]``
        (columnar) or ``ChangeEvent`` objects."""
        captured_at = time.time_ns()
        if not before.num_rows and not after.num_rows:
            return []
        if self.columnar:
            batch = diff_batch(before, after, name, idx, n, key_cols, old_key_cols, commit_ms, captured_at)
            if batch is not None:
                return [batch]
        before_rows, after_rows = before.to_pylist(), after.to_pylist()
        before_by_key = {tuple(r[c] for c in old_key_cols): r for r in before_rows}
        out: list[ChangeEvent] = []

        def emit(op: str, key: tuple, b: Any, a: Any) -> None:
            out.append(ChangeEvent(name, op, key, b, a, (commit_ms, idx, n, len(out)), (name, n),
                                   commit_ms * 1_000_000, captured_at))

        for row in after_rows:
            key = tuple(row[c] for c in key_cols)
            old = before_by_key.pop(key, None)
            if old is None:
                emit("insert", key, None, row)
            elif encode_image(old) != encode_image(row):
                emit("update", key, old, row)
        for key, old in before_by_key.items():
            emit("delete", key, old, None)
        return out

    @staticmethod
    def _snapshots_between(meta: Any, stop_id: int | None) -> list[Any]:
        """Snapshots from ``stop_id`` (exclusive) to the current one, oldest first."""
        chain = []
        snap = meta.snapshot_by_id(meta.current_snapshot_id)
        while snap is not None and snap.snapshot_id != stop_id:
            chain.append(snap)
            snap = meta.snapshot_by_id(snap.parent_snapshot_id) if snap.parent_snapshot_id else None
        return list(reversed(chain))

    @staticmethod
    def _read(table: Any, meta: Any, files: list[Any]) -> pa.Table:
        """The rows of ``files`` under ``meta``'s schema (an empty table of that schema for none)."""
        from pyiceberg.io.pyarrow import ArrowScan, schema_to_pyarrow

        if not files:
            return schema_to_pyarrow(meta.schema(), include_field_ids=False).empty_table()
        from pyiceberg.expressions import AlwaysTrue
        from pyiceberg.table import FileScanTask

        scan = ArrowScan(meta, table.io, meta.schema(), AlwaysTrue())
        return scan.to_table([FileScanTask(f) for f in files])

    def ack(self, position: Position) -> None:
        self.save_checkpoint({"first_commit": self.first_commit, "acked": list(position)})
