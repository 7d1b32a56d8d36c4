"""What the source committed, in commit order, plus what it rolled back (to name phantoms)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class LedgerChange:
    """One committed (or rolled-back) change with the times around its COMMIT. ``old_key``: for
    an update that changed the key (``key`` is the new one), the key before it; else None."""

    table: str
    op: str
    key: tuple
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    txid: int
    commit_seq: int
    commit_issued_at: int
    committed_at: int
    rolled_back: bool = False
    old_key: tuple | None = None


@dataclass
class _Pending:
    changes: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class LedgerBatch:
    """Changes of one transaction staged as one Arrow batch (``harness.columnar``: ``table``,
    ``op``, ``key``, ``before``, ``after`` columns), committed (or rolled back) together."""

    data: Any  # pyarrow.RecordBatch | pyarrow.Table
    txid: int
    commit_seq: int
    commit_issued_at: int
    committed_at: int
    rolled_back: bool = False

    def __len__(self) -> int:
        return self.data.num_rows

    def row(self, i: int) -> LedgerChange:
        """Row ``i`` as a ``LedgerChange`` (for examples)."""
        from harness.columnar import arrow_row

        r = arrow_row(self.data, i)
        return LedgerChange(r["table"], r["op"], r["key"], r["before"], r["after"], self.txid,
                            self.commit_seq, self.commit_issued_at, self.committed_at, self.rolled_back,
                            r.get("old_key"))


def _ledger_row(part: LedgerBatch, i: int) -> LedgerChange:
    return part.row(i)


class Ledger:
    """Append-only record of committed changes, filled by a source.

    Contract: a source calls ``begin()``, ``stage(...)`` for every change in statement order,
    then ``commit(txid, issued_at, committed_at)`` with ``time.time_ns()`` read just before
    COMMIT was sent and right after it returned, or ``rollback(txid)``. Only committed
    changes count as expected; rolled-back ones are kept so the checker can name phantoms.
    ``commit_seq`` numbers transactions in commit order.
    """

    def __init__(self) -> None:
        from harness.columnar import RowLog

        #: every change in order: lists of ``LedgerChange`` and ``LedgerBatch`` parts
        self.log = RowLog(_ledger_row)
        self._pending: dict[int, _Pending] = {}
        self._next_txid = 1
        self._next_seq = 1

    def begin(self) -> int:
        """Open a transaction and return its ledger txid."""
        txid = self._next_txid
        self._next_txid += 1
        self._pending[txid] = _Pending()
        return txid

    def stage(self, txid: int, table: str, op: str, key: tuple,
              before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
              old_key: tuple | None = None) -> None:
        """Record one change of an open transaction (not yet committed); ``old_key``: an update
        that changed the key from ``old_key`` to ``key``."""
        self._pending[txid].changes.append((table, op, key, before, after,
                                            old_key if old_key != key else None))

    def stage_batch(self, txid: int, batch: Any) -> None:
        """Record many changes of an open transaction at once, as an Arrow batch (see
        ``harness.columnar``): how a source stages bulk writes without a Python object per row."""
        if batch.num_rows:
            self._pending[txid].changes.append(batch)

    def discard_last(self, txid: int, count: int) -> None:
        """Forget the last ``count`` staged changes (a savepoint rolled back)."""
        changes = self._pending[txid].changes
        if any(not isinstance(c, tuple) for c in changes[len(changes) - count:]):
            raise ValueError("discard_last counts rows staged one by one, not batches")
        rolled = changes[len(changes) - count:] if count else []
        del changes[len(changes) - count:]
        self._append(txid, rolled, 0, 0, rolled_back=True)

    def commit(self, txid: int, issued_at: int, committed_at: int) -> None:
        """Mark the transaction committed at the given times (ns)."""
        pending = self._pending.pop(txid)
        self._append(txid, pending.changes, issued_at, committed_at, rolled_back=False)

    def rollback(self, txid: int) -> None:
        """Mark the transaction rolled back: its changes must never be captured."""
        pending = self._pending.pop(txid)
        self._append(txid, pending.changes, 0, 0, rolled_back=True)

    def _append(self, txid: int, changes: list[tuple], issued_at: int, committed_at: int,
                rolled_back: bool) -> None:
        seq = 0
        if not rolled_back:
            seq = self._next_seq
            self._next_seq += 1
        rows: list[LedgerChange] = []
        for ch in changes:
            if isinstance(ch, tuple):
                t, op, k, b, a, ok = ch if len(ch) == 6 else (*ch, None)
                rows.append(LedgerChange(t, op, k, b, a, txid, seq, issued_at, committed_at, rolled_back, ok))
                continue
            self.log.append_part(rows)
            rows = []
            self.log.append_part(LedgerBatch(ch, txid, seq, issued_at, committed_at, rolled_back))
        self.log.append_part(rows)

    @property
    def changes(self) -> list[LedgerChange]:
        """Every change in order as ``LedgerChange`` objects (Arrow batches turned into rows:
        use ``log`` or ``counts`` on large ledgers)."""
        if len(self.log.parts) == 1 and isinstance(self.log.parts[0], list):
            return self.log.parts[0]
        return list(self.log)

    @property
    def committed(self) -> list[LedgerChange]:
        """Committed changes in commit order."""
        return [c for c in self.changes if not c.rolled_back]

    def counts(self) -> tuple[int, int, int]:
        """(committed row changes, committed updates, earliest ``commit_issued_at`` or 0)."""
        import pyarrow.compute as pc

        rows = updates = 0
        first = 0
        for part in self.log.parts:
            if isinstance(part, list):
                for c in part:
                    if not c.rolled_back and c.op != "ddl":
                        rows += 1
                        updates += c.op == "update"
                    if c.commit_issued_at and (not first or c.commit_issued_at < first):
                        first = c.commit_issued_at
            elif not part.rolled_back:
                ops = part.data.column("op")
                ddl = pc.sum(pc.equal(ops, "ddl")).as_py() or 0
                rows += len(part) - ddl
                updates += pc.sum(pc.equal(ops, "update")).as_py() or 0
                if part.commit_issued_at and (not first or part.commit_issued_at < first):
                    first = part.commit_issued_at
        return rows, updates, first

    def key_changes(self) -> int:
        """Committed updates that changed their row's key (``old_key`` set)."""
        return sum(1 for part in self.log.parts if isinstance(part, list)
                   for c in part if c.old_key is not None and not c.rolled_back)

    def __len__(self) -> int:
        return len(self.log)
