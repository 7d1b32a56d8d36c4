"""What the source committed, in commit order, plus what it rolled back (to name phantoms)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class LedgerChange:
    """One committed (or rolled-back) change with the times around its COMMIT."""

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


@dataclass
class _Pending:
    changes: list[tuple] = field(default_factory=list)


class Ledger:
    """Append-only record of committed changes, filled by a source.

    Contract: a source calls ``begin()``, ``stage(...)`` for every change in statement order,
    then ``commit(txid, issued_at, committed_at)`` with ``time.time_ns()`` read just before
    COMMIT was sent and right after it returned, or ``rollback(txid)``. Only committed
    changes count as expected; rolled-back ones are kept so the checker can name phantoms.
    ``commit_seq`` numbers transactions in commit order.
    """

    def __init__(self) -> None:
        self.changes: list[LedgerChange] = []
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
              before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> None:
        """Record one change of an open transaction (not yet committed)."""
        self._pending[txid].changes.append((table, op, key, before, after))

    def discard_last(self, txid: int, count: int) -> None:
        """Forget the last ``count`` staged changes (a savepoint rolled back)."""
        changes = self._pending[txid].changes
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
        self.changes.extend(
            LedgerChange(t, op, k, b, a, txid, seq, issued_at, committed_at, rolled_back)
            for (t, op, k, b, a) in changes
        )

    @property
    def committed(self) -> list[LedgerChange]:
        """Committed changes in commit order."""
        return [c for c in self.changes if not c.rolled_back]

    def __len__(self) -> int:
        return len(self.changes)
