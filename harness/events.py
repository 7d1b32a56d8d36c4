"""The captured change event: what every approach normalizes its native records to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Op = Literal["insert", "update", "delete", "truncate", "ddl"]
OPS: tuple[str, ...] = ("insert", "update", "delete", "truncate", "ddl")

#: A source-native position, totally ordered within one approach (LSN, binlog pos, Delta
#: (version, ordinal), Iceberg (snapshot ordinal, ordinal), Kafka (partition, offset)).
Position = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change as an approach captured it.

    Contract: ``key`` is the tuple of the table's key column values in key-column order
    (``()`` for a truncate); ``before``/``after`` map column name to a Python value (Decimal,
    aware datetime, bytes, ...) or are None when the approach gives no image; ``position``
    is totally ordered within one approach; ``captured_at`` is ``time.time_ns()`` taken by
    the reader when it received the record, before decoding. ``old_key``: for an update that
    changed the key (``key`` is then the new one), the key before it; None otherwise.
    """

    table: str
    op: str
    key: tuple
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    position: Position
    txid: Any = None
    commit_ts: int | None = None
    captured_at: int = 0
    old_key: tuple | None = None
