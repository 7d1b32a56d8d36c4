"""delta-cdf: Delta Lake Change Data Feed read with delta-rs ``load_cdf``."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import pyarrow as pa

from harness.approach import BaseApproach
from harness.approaches.delta_cdf_arrow import META, cdf_batch, in_position_order
from harness.capabilities import Capabilities
from harness.context import RunContext
from harness.events import ChangeEvent, Position


class DeltaCdf(BaseApproach):
    """Reads every table's CDF from the version after the last one delivered.

    Position: ``(commit_ms, table_index, version, ordinal)`` — totally ordered across the
    tables read. Versions are read with the table as of their own schema when a DDL lies in
    the range (delta-rs projects old rows onto the latest schema otherwise). Durable state: a
    checkpoint file holding each table's first version (written at ``start``) and the last
    acknowledged position (written on ``ack``); a resumed reader re-reads from the version of
    the acknowledged commit and skips what was acknowledged, or from the first versions when
    nothing was acknowledged yet.
    """

    name = "delta-cdf"
    family = "delta"
    #: events as Arrow batches (the Spark readers, which decode rows of their own, say False)
    columnar: ClassVar[bool] = True
    capabilities = Capabilities(
        before_image="full",
        updates="update",
        key_updates="delete+insert",
        transactions=True,
        delivery="at-least-once",
        ddl=frozenset({"add"}),
        truncate=False,
        resume=True,
        notes=("delta-rs has no column mapping: drop/rename/type change unsupported",
               "CDF links an update's pre- and post-image only by key: a key change arrives as delete + insert",
               "truncate arrives as per-row deletes"),
    )

    def start(self, ctx: RunContext, resume: bool = False) -> None:
        super().start(ctx, resume)
        self.tables = sorted(ctx.tables)
        # a table without a key: its rows are identified by all their columns
        self.keys = {t: tuple(ctx.tables[t].key) or tuple(c.name for c in ctx.tables[t].columns)
                     for t in self.tables}
        self.paths = {t: str(ctx.engine.table_path(t)) for t in self.tables}
        self.handles = {t: self._open(t) for t in self.tables}
        state = self.load_checkpoint() if resume else None
        if state is None:  # a fresh reader: from the next version of each table, durably noted
            self.first_version = {t: self._latest_version(t) + 1 for t in self.tables}
            self.resume_from: Position | None = None
            self.save_checkpoint({"first_version": self.first_version, "acked": None})
        else:
            self.first_version = {t: int(v) for t, v in state["first_version"].items()}
            self.resume_from = tuple(state["acked"]) if state.get("acked") else None
        self.next_version = dict(self.first_version)
        if self.resume_from is not None:
            for t in self.tables:
                self.next_version[t] = max(self.first_version[t], self._first_version_at(t, self.resume_from[0]))

    # -- the table's log, through delta-rs (delta-cdf-spark reads it through Spark) -------------------
    def _open(self, table: str) -> Any:
        from deltalake import DeltaTable

        return DeltaTable(self.paths[table])

    def _latest_version(self, table: str) -> int:
        handle = self.handles[table]
        handle.update_incremental()
        return int(handle.version())

    def _history(self, table: str) -> list[dict]:
        """The table's commits, newest first, each with ``version`` and ``timestamp`` (ms)."""
        return self.handles[table].history()

    def _first_version_at(self, table: str, commit_ms: int) -> int:
        for entry in self._history(table):  # newest first
            if entry.get("timestamp", 0) < commit_ms:
                return int(entry["version"]) + 1
        return 0

    def caught_up(self) -> bool:
        """True when no table has a version this reader has not read yet."""
        return all(self._latest_version(t) < self.next_version[t] for t in self.tables)

    def poll(self, max_events: int, timeout_s: float) -> list[Any]:
        """Events in position order: Arrow batches (``delta_cdf_arrow``) where the CDF rows allow
        it, ``ChangeEvent`` otherwise (and always when ``columnar`` is False)."""
        parts: list[Any] = []
        for idx, table in enumerate(self.tables):
            latest = self._latest_version(table)
            start = self.next_version[table]
            if latest < start:
                continue
            parts.extend(self._read(idx, table, start, latest))
            self.next_version[table] = latest + 1
        out = in_position_order(parts, self.resume_from)
        if not out:
            time.sleep(min(timeout_s, 0.05))
        return out

    def _read(self, idx: int, table: str, start: int, end: int) -> list[Any]:
        from deltalake import DeltaTable

        path = self.paths[table]
        if DeltaTable(path, version=start).schema() == self.handles[table].schema():
            return self._decode(idx, table, self.handles[table].load_cdf(start, end))
        out: list[Any] = []
        for v in range(start, end + 1):  # a DDL lies in the range: read each version as of itself
            out.extend(self._decode(idx, table, DeltaTable(path, version=v).load_cdf(v, v)))
        return out

    def _decode(self, idx: int, table: str, reader: Any) -> list[Any]:
        """One read's events: ``[batch]`` (columnar) or ``ChangeEvent`` objects."""
        data = pa.table(reader)
        captured_at = time.time_ns()
        if data.num_rows == 0:
            return []
        if self.columnar:
            batch = cdf_batch(data, table, idx, self.keys[table], captured_at)
            if batch is not None:
                return [batch]
        cols = [c for c in data.column_names if c not in META]
        rows = data.select(cols).to_pylist()
        kinds = data.column("_change_type").to_pylist()
        versions = data.column("_commit_version").to_pylist()
        stamps = data.column("_commit_timestamp").cast(pa.int64()).to_pylist()
        key_cols = self.keys[table]
        pre: dict[tuple, tuple[int, dict]] = {}
        ordinal: dict[int, int] = {}
        out: list[ChangeEvent] = []

        def emit(i: int, op: str, key: tuple, before: dict | None, after: dict | None) -> None:
            version = versions[i]
            n = ordinal[version] = ordinal.get(version, -1) + 1
            out.append(ChangeEvent(
                table=table, op=op, key=key, before=before, after=after, position=(stamps[i], idx, version, n),
                txid=(table, version), commit_ts=stamps[i] * 1_000_000, captured_at=captured_at,
            ))

        keys = [tuple(row[k] for k in key_cols) for row in rows]
        posts = {(versions[i], keys[i]) for i in range(len(rows)) if kinds[i] == "update_postimage"}
        # a pre-image with no post-image of its key: the key changed (the post-image is then an
        # insert of the new key), so the old key is deleted — first in its version, as the old
        # key may be taken again in the same commit
        moved = [i for i in range(len(rows)) if kinds[i] == "update_preimage" and (versions[i], keys[i]) not in posts]
        rank = {"update_preimage": 1}
        moved_set = set(moved)
        # ordinals must not depend on the order the reader returned rows in (a re-read after a
        # restart must give every change the same position): ties broken by key, then kind
        order = sorted(range(len(rows)), key=lambda i: (versions[i], 0 if i in moved_set else rank.get(kinds[i], 2),
                                                         repr(keys[i]), kinds[i]))
        for i in order:
            row, kind, version, key = rows[i], kinds[i], versions[i], keys[i]
            if i in moved_set:
                emit(i, "delete", key, row, None)
            elif kind == "update_preimage":
                pre[(version, key)] = (i, row)
            elif kind == "update_postimage":
                old = pre.pop((version, key), None)
                if old is None:  # the key changed: no pre-image under this key
                    emit(i, "insert", key, None, row)
                else:
                    emit(i, "update", key, old[1], row)
            else:
                emit(i, kind, key, row if kind == "delete" else None, None if kind == "delete" else row)
        return out

    def ack(self, position: Position) -> None:
        self.save_checkpoint({"first_version": self.first_version, "acked": list(position)})
