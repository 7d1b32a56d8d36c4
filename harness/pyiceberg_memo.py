"""pyiceberg write speed: ``Transaction.table_metadata`` computed once per staged state, not per read.

pyiceberg (0.10-0.12) recomputes the property on every read by replaying the staged updates and
deep-copying the whole table metadata, snapshot list included; a single append reads it about twenty
times, so a commit's cost grows with the table's history (100 commits on one table: 46 of 70 s in
``copy.deepcopy`` here). Upstream's fix (apache/iceberg-python #3302, carried on by #3784) keys a
cache on the identity of the two inputs; this module does the same for versions without it. The
inputs are a frozen pydantic model and an immutable tuple that pyiceberg rebinds on every staged
update, so an identity match means the same value; the result is a frozen model as well. What
changes: ``last_updated_ms`` is the same on repeated reads of one state (the written metadata is
stamped at commit as before).
"""

from __future__ import annotations

from typing import Any

_MEMO = "_cdc_table_metadata_memo"


def install() -> None:
    """Wrap ``pyiceberg.table.Transaction.table_metadata`` in the identity cache (idempotent; a
    no-op when pyiceberg is missing or the property is not the plain one this wraps)."""
    try:
        from pyiceberg.table import Transaction
    except ImportError:  # pragma: no cover - pyiceberg is an optional extra
        return
    current = Transaction.__dict__.get("table_metadata")
    if not isinstance(current, property) or getattr(current.fget, "_cdc_memo", False):
        return
    compute = current.fget

    def table_metadata(self: Any) -> Any:
        base, updates = self._table.metadata, self._updates
        hit = self.__dict__.get(_MEMO)
        if hit is not None and hit[0] is base and hit[1] is updates:
            return hit[2]
        value = compute(self)
        self.__dict__[_MEMO] = (base, updates, value)
        return value

    table_metadata._cdc_memo = True  # type: ignore[attr-defined]
    table_metadata.__doc__ = compute.__doc__
    Transaction.table_metadata = property(table_metadata)  # type: ignore[method-assign]
