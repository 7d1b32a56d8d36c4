"""The source contract and the model-tracking base every engine family builds on."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from harness.context import RunContext
from harness.errors import Unsupported
from harness.ledger import Ledger
from harness.steps import (
    AddColumn,
    AlterType,
    Column,
    Compact,
    Delete,
    DropColumn,
    Insert,
    InsertMany,
    RenameColumn,
    Savepoint,
    TableSpec,
    Truncate,
    Txn,
    Update,
    generated_value,
)

Row = dict[str, Any]


#: a run of at least this many changes is offered to ``Source.changes_batch`` (as
#: ``arrow_types.ARROW_LEDGER_MIN``, without importing pyarrow here)
_BATCH_MIN = 1_000


@dataclass
class RowChange:
    """One row-level change with its images, derived from the source's model of the table;
    ``old_key``: an update that changed the key from ``old_key`` to ``key`` (else None)."""

    table: str
    op: str  # insert | update | delete | truncate
    key: tuple
    before: Row | None
    after: Row | None
    set_cols: tuple[str, ...] = ()
    old_key: tuple | None = None

    @property
    def where_key(self) -> tuple:
        """The key the statement finds its row by (the old one for a key-changing update)."""
        return self.old_key if self.old_key is not None else self.key


@dataclass
class Statement:
    """One statement inside a transaction: ``kind`` is ``insert``, ``insert_many``, ``update``,
    ``delete``, ``truncate``, ``savepoint``, ``rollback_to`` or ``release``; ``changes`` are the
    row changes it makes (empty for savepoint commands)."""

    kind: str
    table: str = ""
    changes: list[RowChange] = field(default_factory=list)
    name: str = ""


class Source:
    """Applies scenario steps to one engine and records every committed change in the ledger.

    Subclasses implement the engine hooks (``create_table``, ``execute``, ``ddl``,
    ``read_table``). The base keeps a model of each table's rows, so before images come from
    what was committed, not from what the engine reports. Contract of ``execute``: run the
    statements as one transaction and return ``(issued_at, committed_at)`` — ``time.time_ns()``
    just before COMMIT is sent and right after it returns; with ``commit=False`` make the
    transaction fail or roll back leaving no trace, and return ``None``.
    """

    family: ClassVar[str] = ""
    #: True when the engine has no TRUNCATE event and truncation is a delete of every row.
    truncate_as_deletes: ClassVar[bool] = False
    #: True for table formats: one commit per table records one net change per key (see
    #: ``net_changes``); such sources implement ``commit_table`` instead of ``execute``.
    commits_net_changes: ClassVar[bool] = False

    def __init__(self, ctx: RunContext, ledger: Ledger) -> None:
        self.ctx = ctx
        self.ledger = ledger
        self.specs: dict[str, TableSpec] = {}
        self.rows: dict[str, dict[tuple, Row]] = {}

    # -- engine hooks -------------------------------------------------------------------------
    def create_table(self, spec: TableSpec) -> None:
        raise NotImplementedError

    def execute(self, statements: list[Statement], commit: bool) -> tuple[int, int] | None:
        raise NotImplementedError

    def ddl(self, step: Any) -> tuple[int, int]:
        """Run one DDL step (AddColumn/DropColumn/RenameColumn/AlterType); return commit times."""
        raise Unsupported(f"{type(self).__name__} cannot run {type(step).__name__}")

    def read_table(self, spec: TableSpec) -> Iterable[Row]:
        """All rows of a table as the engine has them now."""
        raise NotImplementedError

    def compact(self, table: str) -> int:
        """Rewrite the table's files without changing a row; return how many data files it removed
        (table formats; ``Unsupported`` elsewhere)."""
        raise Unsupported(f"{type(self).__name__} cannot compact a table")

    def close(self) -> None:
        """Release connections."""

    # -- driving ------------------------------------------------------------------------------
    def setup(self, specs: Iterable[TableSpec]) -> None:
        """Create the scenario's tables (not recorded: approaches start after this)."""
        for spec in specs:
            self.create_table(spec)
            self.specs[spec.name] = spec
            self.rows[spec.name] = {}

    def apply(self, step: Any) -> None:
        """Apply one step; row steps outside a Txn run as their own transaction."""
        if isinstance(step, (AddColumn, DropColumn, RenameColumn, AlterType)):
            self._apply_ddl(step)
        elif isinstance(step, Txn):
            self._apply_txn(step.steps, step.commit)
        elif isinstance(step, (Insert, InsertMany, Update, Delete, Truncate)):
            self._apply_txn((step,), True)
        elif isinstance(step, Compact):  # rows unchanged: nothing for the ledger
            if self.compact(step.table) < 1:
                raise AssertionError(f"compacting {step.table} rewrote no data file: the scenario tests nothing")
        else:
            raise Unsupported(f"{type(self).__name__} cannot apply {type(step).__name__}")

    def key_columns(self, table: str) -> tuple[str, ...]:
        """The columns that identify a row of ``table``: its key, or every column when it has
        none (a keyless table's identity is the whole row)."""
        spec = self.specs[table]
        return spec.key or tuple(c.name for c in spec.columns)

    def locate(self, table: str, step_key: tuple, rows: Mapping[tuple, Row]) -> tuple:
        """The identity of the row a step names: its key, or for a keyless table the identity
        of the row whose ``unique`` columns hold ``step_key``."""
        spec = self.specs[table]
        if spec.key or self.key_columns(table) == spec.unique:
            return step_key
        for key, row in rows.items():
            if tuple(row[c] for c in spec.unique) == step_key:
                return key
        raise KeyError(f"{table} has no row with {spec.unique} = {step_key}")

    def key_of(self, table: str, row: Mapping[str, Any]) -> tuple:
        """The key tuple of a row of ``table`` (``key_columns`` order)."""
        return tuple(row[k] for k in self.key_columns(table))

    def final_state(self) -> dict[str, Mapping[tuple, Row]]:
        """The engine's rows now, by key — what a replay of the captured events must give. A
        table with a primary key that the source reads as Arrow (``read_arrow``) stays Arrow
        (``harness.columnar.ArrowRows``, a mapping built on first lookup)."""
        from harness.columnar import ArrowRows

        out: dict[str, Mapping[tuple, Row]] = {}
        for name, spec in self.specs.items():
            data = self.read_arrow(spec) if spec.key else None
            if data is not None:
                out[name] = ArrowRows(data, self.key_columns(name))
            else:
                out[name] = {self.key_of(name, r): dict(r) for r in self.read_table(spec)}
        return out

    def read_arrow(self, spec: TableSpec) -> Any:
        """The table's rows as a ``pyarrow.Table`` (columns named as the spec's), or None when the
        source reads rows only (the default)."""
        return None

    # -- internals ----------------------------------------------------------------------------
    def _apply_txn(self, steps: Iterable[Any], commit: bool) -> None:
        overlay = {t: dict(rows) for t, rows in self.rows.items()}
        statements: list[Statement] = []
        savepoint_rollbacks: list[list[RowChange]] = []
        self._plan(steps, overlay, statements, savepoint_rollbacks, [0])
        if self.commits_net_changes:
            self._commit_per_table(net_changes(statements), commit)
            if commit:
                self.rows = overlay
            return
        txid = self.ledger.begin()
        if any(st.kind == "rollback_to" for st in statements):
            for st in statements:
                if st.kind == "rollback_to":  # its changes are the ones staged just before it
                    self.ledger.discard_last(txid, len(st.changes))
                    continue
                for ch in st.changes:
                    self.ledger.stage(txid, ch.table, ch.op, ch.key, ch.before, ch.after, ch.old_key)
        else:
            self._stage_runs(txid, statements)
        times = self.execute(statements, commit)
        if commit and times is not None:
            self.ledger.commit(txid, *times)
            self.rows = overlay
        else:
            self.ledger.rollback(txid)

    def _stage_runs(self, txid: int, statements: list[Statement]) -> None:
        """Stage a transaction's changes in order: each run of consecutive changes to one table
        as one Arrow batch when ``changes_batch`` gives one (a bulk load, a bulk update), the
        others row by row."""
        run: list[RowChange] = []

        def flush() -> None:
            batch = self.changes_batch(run[0].table, run) if len(run) >= _BATCH_MIN else None
            if batch is not None:
                self.ledger.stage_batch(txid, batch)
            else:
                for ch in run:
                    self.ledger.stage(txid, ch.table, ch.op, ch.key, ch.before, ch.after, ch.old_key)
            run.clear()

        for st in statements:
            for ch in st.changes:
                if run and ch.table != run[0].table:
                    flush()
                run.append(ch)
        if run:
            flush()

    def _commit_per_table(self, changes: list[RowChange], commit: bool) -> None:
        """Table formats commit one table at a time: one ledger transaction per table."""
        by_table: dict[str, list[RowChange]] = {}
        for ch in changes:
            by_table.setdefault(ch.table, []).append(ch)
        for table, group in by_table.items():
            txid = self.ledger.begin()
            batch = self.changes_batch(table, group)
            if batch is not None:  # a bulk commit: one Arrow batch, no Python object per change
                self.ledger.stage_batch(txid, batch)
            else:
                for ch in group:
                    self.ledger.stage(txid, ch.table, ch.op, ch.key, ch.before, ch.after, ch.old_key)
            times = self.commit_table(table, group, commit)
            if commit and times is not None:
                self.ledger.commit(txid, *times)
            else:
                self.ledger.rollback(txid)

    def changes_batch(self, table: str, changes: list[RowChange]) -> Any:
        """One commit's changes to ``table`` (a table format), or a run of one transaction's
        consecutive changes to it, as an Arrow ledger batch; None to stage them row by row (the
        default; ``arrow_types.changes_batch`` for sources with Arrow types)."""
        return None

    def commit_table(self, table: str, changes: list[RowChange], commit: bool) -> tuple[int, int] | None:
        """Table formats: write one table's net changes as one commit (``commit=False``: a
        write that fails before its commit and leaves no trace); return the commit times."""
        raise NotImplementedError

    def _plan(self, steps: Iterable[Any], overlay: dict[str, dict[tuple, Row]],
              out: list[Statement], sp_rollbacks: list, counter: list[int]) -> None:
        for step in steps:
            if isinstance(step, Savepoint):
                counter[0] += 1
                name = f"sp{counter[0]}"
                snapshot = {t: dict(rows) for t, rows in overlay.items()}
                out.append(Statement("savepoint", name=name))
                inner: list[Statement] = []
                self._plan(step.steps, overlay, inner, sp_rollbacks, counter)
                out.extend(inner)
                if step.rollback:
                    undone: list[RowChange] = []
                    for st in inner:  # changes still staged: minus those of inner rollbacks
                        if st.kind == "rollback_to":
                            gone = {id(c) for c in st.changes}
                            undone = [c for c in undone if id(c) not in gone]
                        else:
                            undone.extend(st.changes)
                    overlay.clear()
                    overlay.update(snapshot)
                    out.append(Statement("rollback_to", name=name, changes=undone))
                else:
                    out.append(Statement("release", name=name))
            else:
                out.append(self._statement(step, overlay))

    def _statement(self, step: Any, overlay: dict[str, dict[tuple, Row]]) -> Statement:
        rows = overlay[step.table]
        if isinstance(step, Insert):
            return Statement("insert", step.table, [self._insert(step.table, step.row, rows)])
        if isinstance(step, InsertMany):
            return Statement("insert_many", step.table, [self._insert(step.table, r, rows) for r in step.rows])
        if isinstance(step, (Update, Delete)) and not self.specs[step.table].key:
            step = replace(step, key=self.locate(step.table, step.key, rows))
        if isinstance(step, Update):
            before = rows[step.key]
            after = self._generate(step.table, {**before, **step.changes})
            key = self.key_of(step.table, after)
            if key != step.key:  # a key-changing update: the row moves to its new key
                if key in rows:
                    raise Unsupported(f"update of {step.table} {step.key} to key {key}, which exists")
                del rows[step.key]
            rows[key] = after
            return Statement("update", step.table, [RowChange(
                step.table, "update", key, before, after, tuple(step.changes),
                step.key if key != step.key else None)])
        if isinstance(step, Delete):
            before = rows.pop(step.key)
            return Statement("delete", step.table, [RowChange(step.table, "delete", step.key, before, None)])
        if isinstance(step, Truncate):
            if self.truncate_as_deletes:
                changes = [RowChange(step.table, "delete", k, r, None) for k, r in rows.items()]
            else:
                changes = [RowChange(step.table, "truncate", (), None, None)]
            rows.clear()
            return Statement("truncate", step.table, changes)
        raise Unsupported(f"{type(self).__name__} cannot apply {type(step).__name__} inside a transaction")

    def _generate(self, table: str, row: Row) -> Row:
        """Fill the table's generated columns from the row's other values (as the engine does)."""
        for c in self.specs[table].columns:
            if c.generated:
                row[c.name] = generated_value(c.generated, row)
        return row

    def written_columns(self, table: str, cols: Iterable[str]) -> tuple[str, ...]:
        """``cols`` without the table's generated columns (the engine computes those)."""
        gen = {c.name for c in self.specs[table].columns if c.generated}
        return tuple(c for c in cols if c not in gen)

    def _insert(self, table: str, row: Row, rows: dict[tuple, Row]) -> RowChange:
        full = self._generate(table, {c.name: row.get(c.name) for c in self.specs[table].columns})
        key = self.key_of(table, full)
        rows[key] = full
        return RowChange(table, "insert", key, None, full)

    def _apply_ddl(self, step: Any) -> None:
        spec = self.specs[step.table]
        issued_at, committed_at = self.ddl(step)
        cols = list(spec.columns)
        # fresh dicts: the ledger keeps references to the old images, which must not change
        rows = {k: dict(r) for k, r in self.rows[step.table].items()}
        self.rows[step.table] = rows
        if isinstance(step, AddColumn):
            cols.append(step.column)
            info = {"kind": "add", "column": step.column.name, "type": step.column.type}
            for r in rows.values():
                r[step.column.name] = None
        elif isinstance(step, DropColumn):
            cols = [c for c in cols if c.name != step.name]
            info = {"kind": "drop", "column": step.name}
            for r in rows.values():
                r.pop(step.name, None)
        elif isinstance(step, RenameColumn):
            cols = [Column(step.new, c.type, c.nullable) if c.name == step.old else c for c in cols]
            info = {"kind": "rename", "old": step.old, "new": step.new}
            for r in rows.values():
                r[step.new] = r.pop(step.old)
        else:
            cols = [Column(c.name, step.new_type, c.nullable) if c.name == step.name else c for c in cols]
            info = {"kind": "type", "column": step.name, "type": step.new_type}
        self.specs[step.table] = replace(spec, columns=tuple(cols))
        txid = self.ledger.begin()
        self.ledger.stage(txid, step.table, "ddl", (), None, info)
        self.ledger.commit(txid, issued_at, committed_at)


def net_changes(statements: list[Statement]) -> list[RowChange]:
    """Collapse a transaction to one net change per key, as one table-format commit records it.

    insert+update → insert, insert+delete → nothing, update+update → update (first before, last
    after), update+delete → delete, delete+insert → update. Rolled-back savepoints are removed.
    A key-changing update follows its row: the net change of the row's first key becomes the
    row's under its new key (an update from the first key, or an insert of the new one).
    """
    flat: list[RowChange] = []
    for st in statements:
        if st.kind == "rollback_to":
            undone = {id(c) for c in st.changes}
            flat = [c for c in flat if id(c) not in undone]
        else:
            flat.extend(st.changes)
    net: dict[tuple[str, tuple], RowChange] = {}
    for ch in flat:
        k = (ch.table, ch.key)
        if ch.old_key is not None:
            if k in net:
                raise Unsupported(f"a key change onto {ch.key} of {ch.table}, changed earlier in the same commit")
            prev = net.pop((ch.table, ch.old_key), None)
        else:
            prev = net.get(k)
        if prev is None:
            net[k] = RowChange(ch.table, ch.op, ch.key, ch.before, ch.after, old_key=ch.old_key)
            continue
        before = prev.before
        origin = prev.old_key if prev.old_key is not None else (prev.key if prev.op != "insert" else None)
        if prev.op == "insert":
            op = "insert" if ch.op != "delete" else None
        elif ch.op == "delete":
            op = "delete"
        else:
            op = "update"
        net.pop(k, None)
        if op == "delete" and origin is not None:
            net[(ch.table, origin)] = RowChange(ch.table, "delete", origin, before, None)
        elif op is not None:
            old = origin if op == "update" and origin != ch.key else None
            net[k] = RowChange(ch.table, op, ch.key, before if op != "insert" else None,
                               ch.after if op != "delete" else None, old_key=old)
    return list(net.values())


def now_ns() -> int:
    """The clock every commit time and capture time uses (same host, ns)."""
    return time.time_ns()
