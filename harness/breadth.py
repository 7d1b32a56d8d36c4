"""Which heavy-engine cells ``--cdc-heavy-cells=core`` keeps: fewer interop and delivery variants, fewer shapes.

``make test`` (CI, 20-minute budget on two cores) runs the cells on Kafka, Connect and Spark at
smoke scale and in this *core* breadth; ``make run`` and ``--cdc-heavy-cells=all`` run every cell.
What core leaves out is only a variant axis whose other values run beside it:

- Spark-written tables (``writer=spark``) read by each reader: one cell per reader (the writer ×
  reader interop with the scenario that matters most for it), not every scenario;
- Debezium's scenarios under ``replica_identity=default`` except those where the identity changes
  what Debezium sends (``DEFAULT_IDENTITY``: update and delete before images, the TOAST
  placeholder, every type; every scenario runs under ``full``, the faults with both deliveries),
  and ``reader-crash`` (a crash of the consumer, which the source's delivery mode does not change)
  with ``delivery=exactly-once``;
- the table-shape and large-transaction scenarios (``LIGHT_FIRST``) on heavy engines, and the key
  scenarios on Spark: they run on every light engine, and on the heavy ones in ``all`` breadth;
- the Spark sink of the pipeline (``pg-kafka-iceberg-spark``): one smoke cell with the
  exactly-once sink (``CORE_SPARK_SINK``: a crash after the Iceberg commit, the plain path before
  and after it; its cold start, the first Kafka micro-batch and MERGE, costs ~2 minutes); its
  other scenarios and sink modes are ``pg-kafka-iceberg``'s, which runs them all, with the same
  sink steps and another writer.

Light engines (PostgreSQL, MariaDB, delta-rs, pyiceberg) always run every cell.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

BREADTHS = ("all", "core")
#: the Spark-written cell each reader keeps in core breadth (approach → scenario)
CORE_SPARK_WRITTEN = {
    "delta-cdf": "compaction",           # delta-rs reads Spark's commits and its OPTIMIZE
    "delta-cdf-spark": "schema-drop",    # Spark's own CDF through a column-mapped DROP COLUMN
    "iceberg-changelog-spark": "crud",   # the changelog view on a table Spark wrote (copy-on-write)
    "iceberg-snapshot-diff": "schema-rename",  # pyiceberg reads Spark's rename
    # delta-cdf-spark-stream: none (its column-mapped drop/rename/type cells cost 55-90 s each)
}
#: the scenarios heavy cells run under REPLICA IDENTITY DEFAULT in core breadth (the others under
#: FULL only): where DEFAULT changes what is captured (updates without before images and deletes
#: with type defaults: crud, multi-table-txn; unchanged TOAST values: toast; every type: types)
DEFAULT_IDENTITY = frozenset({"crud", "multi-table-txn", "toast", "types"})
#: scenarios heavy cells run in ``all`` breadth only (table shapes, transactions past memory limits)
LIGHT_FIRST = frozenset({"partitioned", "generated-columns", "no-key", "large-txn-abort"})
#: scenarios Spark cells run in ``all`` breadth only (key changes and composite keys)
KEY_SCENARIOS = frozenset({"pk-update", "composite-key"})

#: the pipeline with the Spark sink: the cells core breadth keeps (every sink step is shared with
#: pg-kafka-iceberg; this one runs Spark's transport and MERGE, a crash and the resume from the table)
CORE_SPARK_SINK = frozenset({"sink-crash-after-commit"})


def in_breadth(breadth: str, approach: str, scenario: str, settings: dict[str, Any], heavy: bool,
               roles: Iterable[str] = ()) -> bool:
    """True when the cell runs at ``breadth`` (``all`` keeps everything; so does any light cell);
    ``roles``: the case's engine roles."""
    if breadth == "all" or not heavy:
        return True
    if approach == "pg-kafka-iceberg-spark":
        return (scenario in CORE_SPARK_SINK and settings.get("sink") == "exactly-once"
                and not settings.get("sink_drop"))
    if scenario in LIGHT_FIRST or (scenario in KEY_SCENARIOS and "spark" in set(roles)):
        return False
    if settings.get("writer") == "spark":
        return CORE_SPARK_WRITTEN.get(approach) == scenario and settings.get("write_mode") != "merge-on-read"
    if scenario == "reader-crash" and settings.get("delivery") == "exactly-once":
        return False
    return settings.get("replica_identity") != "default" or scenario in DEFAULT_IDENTITY
