"""PostgreSQL-only scenarios: TOAST, COPY, long transactions, savepoints, multi-table, faults.

``POSTGRES_SCENARIOS`` maps a stable id to ``factory(seed, scale) -> Scenario``. Each one runs
under both REPLICA IDENTITY DEFAULT and FULL (the postgres family's settings variants in
``harness/families.py``), so the matrix shows what the identity changes (old images, unchanged
TOAST values).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from harness.steps import (
    AFTER_DELIVERY,
    Column,
    Delete,
    Fault,
    Insert,
    InsertMany,
    Savepoint,
    Scenario,
    TableSpec,
    Txn,
    Update,
)
from scenarios.sizes import size
from scenarios.tables import ITEMS, ORDERS, RowMaker

DOCS = TableSpec(
    "docs",
    (
        Column("id", "bigint", nullable=False),
        Column("title", "text"),
        Column("body", "text"),
        Column("rev", "int"),
    ),
)
#: changes in the one transaction of ``long-txn`` per scale
LONG_TXN = {"smoke": 5_000, "default": 120_000, "large": 1_000_000}


def _big_text(rng: random.Random, nbytes: int = 12_000) -> str:
    """Incompressible text (random hex) well over the 8 KB page, so PostgreSQL stores it out of line."""
    return rng.getrandbits(nbytes * 4).to_bytes(nbytes // 2, "big").hex()


def toast(seed: int, scale: str) -> Scenario:
    """Rows with >8 KB bodies, then updates of *other* columns (body unchanged, stays TOASTed),
    updates of the body itself, and deletes. Exposes approaches that drop or invent unchanged
    TOAST values (pitfall 1); under REPLICA IDENTITY FULL the old row carries them."""
    rng = random.Random(seed)
    n = max(size(scale, "rows") // 4, 4)
    steps: list[Any] = [Insert("docs", {"id": k, "title": f"doc {k}", "body": _big_text(rng), "rev": 0})
                        for k in range(1, n + 1)]
    for k in range(1, n + 1):
        steps.append(Update("docs", (k,), {"rev": 1}))                    # body untouched
    for k in range(1, n + 1, 2):
        steps.append(Txn((Update("docs", (k,), {"title": f"doc {k} v2"}),
                          Update("docs", (k,), {"rev": 2}))))             # twice in one txn
    for k in range(2, n + 1, 3):
        steps.append(Update("docs", (k,), {"body": _big_text(rng), "rev": 3}))  # body changed
    for k in range(1, n + 1, 4):
        steps.append(Delete("docs", (k,)))
    return Scenario("toast", (DOCS,), steps,
                    description="values > 8 KB left unchanged by updates of other columns")


def bulk_copy(seed: int, scale: str) -> Scenario:
    """Large COPY statements (many changes sharing one commit LSN and, for multi-inserts, one
    WAL record LSN), in single- and multi-statement transactions, then updates and deletes of
    copied rows (pitfall 7)."""
    maker = RowMaker(seed)
    total = size(scale, "bulk")
    chunk = max(total // 4, 1)
    key = 0
    steps: list[Any] = []
    for part in range(4):
        rows = []
        for _ in range(chunk):
            key += 1
            rows.append(maker.item(key))
        if part < 2:
            steps.append(InsertMany("items", tuple(rows)))
        else:
            half = len(rows) // 2
            steps.append(Txn((InsertMany("items", tuple(rows[:half])),
                              InsertMany("items", tuple(rows[half:])))))
    for k in range(1, key + 1, max(key // 50, 1)):
        steps.append(Update("items", (k,), maker.item_change()))
    steps.append(Txn(tuple(Delete("items", (k,)) for k in range(2, key + 1, max(key // 20, 1)))))
    return Scenario("bulk-copy", (ITEMS,), steps,
                    description="COPY / multi-row inserts: many changes sharing one LSN")


def long_txn(seed: int, scale: str) -> Scenario:
    """One transaction with 100k+ changes (default scale): COPY chunks, updates and deletes,
    larger than logical_decoding_work_mem so the server spills it to disk (or streams it)."""
    maker = RowMaker(seed)
    total = LONG_TXN[scale]
    inserts = total * 8 // 10
    body: list[Any] = []
    key = 0
    chunk = 10_000
    while key < inserts:
        rows = []
        for _ in range(min(chunk, inserts - key)):
            key += 1
            rows.append(maker.item(key))
        body.append(InsertMany("items", tuple(rows)))
    rest = total - inserts
    for i in range(rest * 3 // 4):
        body.append(Update("items", (1 + (i * 7919) % inserts,), maker.item_change()))
    for k in range(1, rest // 4 + 1):
        body.append(Delete("items", (inserts - k + 1,)))
    steps: list[Any] = [Insert("items", maker.item(inserts + 1)), Txn(tuple(body)),
                        Update("items", (inserts + 1,), maker.item_change())]
    return Scenario("long-txn", (ITEMS,), steps, description=f"one transaction with {total} changes")


def savepoint(seed: int, scale: str) -> Scenario:
    """Savepoints rolled back and released inside committed transactions, nested, touching keys
    changed before the savepoint; rolled-back work must never be captured."""
    maker = RowMaker(seed)
    n = size(scale, "txns")
    steps: list[Any] = [Insert("items", maker.item(k)) for k in range(1, n + 1)]
    key = n
    for i in range(n):
        k = i + 1
        key += 2
        inner = Savepoint((Insert("items", maker.item(key)), Update("items", (k,), maker.item_change())),
                          rollback=i % 2 == 0)
        nested = Savepoint((Update("items", (k,), maker.item_change()),
                            Savepoint((Delete("items", (k,)),), rollback=True)), rollback=i % 3 == 0)
        steps.append(Txn((Update("items", (k,), maker.item_change()), inner, nested,
                          Insert("items", maker.item(key - 1)))))
    return Scenario("savepoint", (ITEMS,), steps, description="savepoints rolled back and released")


def multi_table_txn(seed: int, scale: str) -> Scenario:
    """Transactions spanning two tables (orders referencing items), interleaved statements,
    some rolled back; one commit's changes must arrive together at one position."""
    maker = RowMaker(seed)
    n = size(scale, "txns")
    steps: list[Any] = []
    order_key = 0
    for i in range(1, n + 1):
        order_key += 1
        body: list[Any] = [Insert("items", maker.item(i)), Insert("orders", maker.order(order_key, i))]
        if i > 1 and (i - 1) % 5 != 0:  # the previous transaction committed
            body += [Update("items", (i - 1,), maker.item_change()),
                     Update("orders", (order_key - 1,), {"note": f"follow-up {i}"})]
        steps.append(Txn(tuple(body), commit=i % 5 != 0))
    committed = [i for i in range(1, n + 1) if i % 5 != 0]
    if committed:
        k = committed[len(committed) // 2]
        steps.append(Txn((Delete("orders", (k,)), Delete("items", (k,)))))
    return Scenario("multi-table-txn", (ITEMS, ORDERS), steps,
                    description="transactions across two tables, some rolled back")


def _writes(maker: RowMaker, start: int, n: int) -> tuple[list[Any], int]:
    steps: list[Any] = []
    key = start
    for _ in range(n):
        key += 1
        steps.append(Insert("items", maker.item(key)))
    steps.append(Txn(tuple(Insert("items", maker.item(key + j + 1)) for j in range(5))
                     + (Update("items", (key,), maker.item_change()),)))
    return steps, key + 5


def source_restart(seed: int, scale: str) -> Scenario:
    """Immediate server shutdown (SIGKILL, no checkpoint) and crash recovery between writes:
    the slot must survive, and the reader must resume without a gap (at-least-once)."""
    maker = RowMaker(seed)
    n = size(scale, "rows") // 2 or 1
    steps: list[Any] = []
    key = 0
    for _ in range(2):
        more, key = _writes(maker, key, n)
        steps += more
        steps.append(Fault("source-restart", "idle", target="engine"))
    more, key = _writes(maker, key, n)
    steps += more
    steps.extend(Update("items", (k,), maker.item_change()) for k in range(1, key + 1, 4))
    return Scenario("source-restart", (ITEMS,), steps, requires=("resume",),
                    description="kill -9 the server, restart with crash recovery, resume")


def net_drop(seed: int, scale: str) -> Scenario:
    """The reader's replication connection is killed (pg_terminate_backend of its walsender),
    then the reader's and the writer's; both reconnect and the reader resumes from its slot."""
    maker = RowMaker(seed)
    n = size(scale, "rows") // 2 or 1
    steps: list[Any] = []
    key = 0
    for point in ("reader", "all"):
        more, key = _writes(maker, key, n)
        steps += more
        steps.append(Fault("net-drop", point, target="engine"))
    more, key = _writes(maker, key, n)
    steps += more
    return Scenario("net-drop", (ITEMS,), steps, requires=("resume",),
                    description="connections terminated under the reader (and the writer)")


def net_partition(seed: int, scale: str) -> Scenario:
    """The server's network is cut for a moment (between writes): the harness's connections
    are lost and the server does not notice, so the reader's old walsender keeps its slot active
    until ``wal_sender_timeout``; the reader must reconnect, take the slot back and resume from
    it without a gap. The cut comes once the reader has delivered what was committed (it is
    streaming, not starting). Needs an engine that can cut the network (the Docker backend)."""
    maker = RowMaker(seed)
    n = size(scale, "rows") // 2 or 1
    steps: list[Any] = []
    key = 0
    more, key = _writes(maker, key, n)
    steps += more
    steps.append(Fault("net-partition", AFTER_DELIVERY, target="engine"))  # a reader that streams
    more, key = _writes(maker, key, n)
    steps += more
    return Scenario("net-partition", (ITEMS,), steps, requires=("resume", "partition"),
                    description="the server's network cut and restored under the reader (no reset)")


#: rows in each large transaction of ``large-txn-abort`` per scale (~150 bytes each: far past 64 kB)
LARGE_TXN = {"smoke": 3_000, "default": 6_000, "large": 200_000}


def large_txn_abort(seed: int, scale: str) -> Scenario:
    """Transactions far beyond what the server keeps in memory for them: one rolled back after
    its changes were spilled or streamed, one committed with a large savepoint rolled back inside
    it; none of the rolled-back changes may be delivered (pitfall 23). On PostgreSQL past
    ``logical_decoding_work_mem`` (the family's variant gives the walsender 64 kB: decoding
    spills, or streams with protocol-2 ``streaming``); on MariaDB past ``binlog_cache_size``
    (32 kB by default: the transaction's binlog cache spills to a temporary file)."""
    maker = RowMaker(seed)
    n = LARGE_TXN[scale]
    steps: list[Any] = [Insert("items", maker.item(k)) for k in range(1, 6)]

    def rows(start: int) -> tuple[dict[str, Any], ...]:
        return tuple(maker.item(k) for k in range(start, start + n))

    steps.append(Txn((InsertMany("items", rows(100)), *(Update("items", (k,), maker.item_change()) for k in (1, 2)),
                      Delete("items", (3,))), commit=False))
    steps.append(Txn((Update("items", (1,), maker.item_change()),
                      Savepoint((InsertMany("items", rows(100 + n)), Update("items", (2,), maker.item_change()))),
                      InsertMany("items", rows(100 + 2 * n)), Delete("items", (4,)))))
    steps.append(Update("items", (5,), maker.item_change()))
    return Scenario("large-txn-abort", (ITEMS,), steps,
                    description=f"transactions of {n}+ changes past the server's in-memory limit, one rolled back")


#: the scenarios of this module whose steps every family can write (table formats: the aborted
#: transaction is a write that fails before its commit, the savepoint's rollback is planned away)
EVERY_FAMILY = frozenset({"large-txn-abort"})

POSTGRES_SCENARIOS: dict[str, Callable[[int, str], Scenario]] = {
    "toast": toast,
    "bulk-copy": bulk_copy,
    "long-txn": long_txn,
    "savepoint": savepoint,
    "multi-table-txn": multi_table_txn,
    "source-restart": source_restart,
    "net-drop": net_drop,
    "net-partition": net_partition,
    "large-txn-abort": large_txn_abort,
}
