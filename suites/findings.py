"""Known findings: cells where a real CDC tool shows a real anomaly (not a harness bug).

Each entry names the exact anomaly kinds expected and why. The suite marks such a cell
``xfail`` only when the verdict fails with exactly these kinds; any other anomaly fails the
test, and a pass fails it too (the finding no longer reproduces: update this table).
"""

from __future__ import annotations

from collections.abc import Mapping

FINDINGS: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[frozenset[str], str]] = {
    ("pg-pgoutput", "toast", (("replica_identity", "default"),)): (
        frozenset({"schema"}),
        "pitfall 1: pgoutput marks unchanged TOAST values 'u' and sends no value under REPLICA IDENTITY "
        "DEFAULT, so update after-images lack the column",
    ),
    ("pg-wal2json", "toast", (("replica_identity", "default"),)): (
        frozenset({"schema"}),
        "pitfall 1: wal2json drops unchanged TOAST values from update after-images (wal2json #98)",
    ),
    ("pg-wal2json", "types", (("replica_identity", "default"),)): (
        frozenset({"after-mismatch"}),
        "wal2json writes NaN and ±Infinity floats as JSON null",
    ),
    ("pg-wal2json", "types", (("replica_identity", "full"),)): (
        frozenset({"after-mismatch", "before-mismatch"}),
        "wal2json writes NaN and ±Infinity floats as JSON null (in before images too)",
    ),
}

for _identity in ("default", "full"):
    FINDINGS[("pg-pgoutput", "generated-columns", (("replica_identity", _identity),))] = (
        frozenset({"schema"}),
        "pitfall 24: pgoutput publishes no generated column before PostgreSQL 18 (publish_generated_columns): "
        "insert and update images lack the stored column the engine computed",
    )
for _identity in ("default", "nothing"):
    FINDINGS[("pg-wal2json", "no-key", (("replica_identity", _identity),))] = (
        frozenset({"lost"}),
        f"pitfall 21: on a table without a key under REPLICA IDENTITY {_identity.upper()} (no publication asks "
        "PostgreSQL to refuse the write) wal2json emits no UPDATE or DELETE, only a WARNING: every update and "
        "delete is lost, inserts arrive",
    )
_PARTED = (("publish_via_partition_root", "off"), ("replica_identity", "default"))
FINDINGS[("pg-pgoutput", "partitioned", _PARTED)] = (
    frozenset({"lost", "phantom"}),
    "pitfall 22: without publish_via_partition_root, pgoutput names every change by the leaf partition "
    "(items_p0, ...), not by the table written to: the root's changes are lost and the leaves' are phantoms",
)
FINDINGS[("pg-pgoutput", "partitioned", (("publish_via_partition_root", "on"), ("replica_identity", "default")))] = (
    frozenset({"op-mismatch"}),
    "pitfalls 20 and 22: an update that moves its row to another partition runs, and is decoded, as a delete "
    "from the old partition and an insert into the new one, although pgoutput sends a key change inside one "
    "partition as one update",
)
FINDINGS[("pg-wal2json", "partitioned", (("replica_identity", "default"),))] = (
    frozenset({"lost", "phantom"}),
    "pitfall 22: wal2json has no publish_via_partition_root: every change is named by its leaf partition "
    "(items_p0, ...), not by the table written to (wal2json #259)",
)
FINDINGS[("iceberg-snapshot-diff", "pk-update", ())] = (
    frozenset({"op-mismatch", "lost"}),
    "pitfall 20: a snapshot diff matches rows by key, so when one commit moves a row to a new key and a new "
    "row takes the old key, the diff sees an update of the old key (op-mismatch: the move's delete) and the "
    "new row's insert is never emitted (lost); the replayed state is still right",
)


#: mysql-binlog under binlog_row_image MINIMAL / NOBLOB: partial images, left partial (pitfall 3)
_MYSQL_PARTIAL = ("crud", "txn", "types", "truncate", "reader-crash", "schema-add", "schema-drop", "schema-rename",
                  "schema-type", "schema-offline", "toast", "savepoint", "multi-table-txn", "mysql-types",
                  "pk-update", "composite-key", "generated-columns")
for _scenario in _MYSQL_PARTIAL:
    FINDINGS[("mysql-binlog", _scenario, (("binlog_row_image", "minimal"), ("binlog_row_metadata", "full")))] = (
        frozenset({"schema"}),
        "pitfall 3: binlog_row_image=MINIMAL logs the key in before images and only the columns the statement "
        "set in after images (binlog2sql #71, maxwell #175)",
    )
    FINDINGS[("mysql-binlog", _scenario, (("binlog_row_image", "noblob"), ("binlog_row_metadata", "full")))] = (
        frozenset({"schema"}),
        "pitfall 3: binlog_row_image=NOBLOB leaves unchanged TEXT/BLOB/JSON columns out of before and after images",
    )
for _scenario in ("crud", "schema-rename"):
    FINDINGS[("mysql-binlog", _scenario, (("binlog_row_image", "full"), ("binlog_row_metadata", "minimal")))] = (
        frozenset({"lost", "phantom"}),
        "pitfall 4: binlog_row_metadata=MINIMAL carries no column names: python-mysql-replication yields rows "
        "without names (keys come out as None), so every change is captured under the wrong key",
    )


def _dbz(connector: str = "tuned", delivery: str = "at-least-once", **engine: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"connector": connector, "delivery": delivery, **engine}.items()))


for _identity in ("default", "full"):
    FINDINGS[("pg-debezium", "net-partition", _dbz(replica_identity=_identity))] = (
        frozenset({"lost"}),
        "a network partition (Docker backend: the PostgreSQL container off its network for 2 s) leaves the "
        "connector's replication connection half-open: Debezium reads the stream without a timeout and its "
        "status updates still go out, so it never notices, logs nothing and captures nothing after the cut "
        "(12 of 24 lost at the 125 s deadline; its task did not even stop gracefully at teardown). pg-pgoutput "
        "and pg-wal2json pass the same cell by probing the silent stream with keepalive requests",
    )
FINDINGS[("pg-debezium", "toast", _dbz(replica_identity="default"))] = (
    frozenset({"after-mismatch"}),
    "pitfall 1: under REPLICA IDENTITY DEFAULT Debezium puts __debezium_unavailable_value in place of an "
    "unchanged TOASTed value it did not receive",
)
for _identity in ("default", "full"):
    FINDINGS[("pg-debezium", "generated-columns", _dbz(replica_identity=_identity))] = (
        frozenset({"schema"}),
        "pitfall 24: Debezium reads PostgreSQL 15 through pgoutput, which publishes no generated column before "
        "PostgreSQL 18: insert and update images lack the stored column the engine computed",
    )
FINDINGS[("pg-debezium", "partitioned", _dbz(replica_identity="default"))] = (
    frozenset({"lost", "phantom"}),
    "pitfall 22: Debezium streams the run's publication (FOR TABLES IN SCHEMA, without "
    "publish_via_partition_root), so every change is named by its leaf partition (items_p0, ...), not by the "
    "table written to: the root's changes are lost and the leaves' are phantoms (the fix: the publication's "
    "publish_via_partition_root, or a routing transform in the connector; no such variant runs yet)",
)
FINDINGS[("pg-debezium", "multi-table-txn", _dbz(replica_identity="default"))] = (
    frozenset({"before-mismatch"}),
    "under REPLICA IDENTITY DEFAULT a Debezium delete's before image holds the key and the type's default "
    "(0, 1970-01-01, '') for every NOT NULL column instead of nothing",
)
for _identity in ("default", "full"):
    FINDINGS[("pg-debezium", "connect-crash", _dbz(replica_identity=_identity))] = (
        frozenset({"duplicate"}),
        "at-least-once: a killed Connect worker never flushed its source offsets (offset.flush.interval.ms, "
        "60 s by default), so the restarted task streams again from the slot's position: changes already "
        "delivered and read come again at new offsets (none with exactly-once source support)",
    )
_DBZ_MARIADB = (("binlog_row_image", "full"), ("binlog_row_metadata", "full"))
FINDINGS[("mariadb-debezium", "types", tuple(sorted((*_DBZ_MARIADB, *_dbz()))))] = (
    frozenset({"schema"}),
    "MariaDB's JSON is LONGTEXT with a json_valid CHECK: Debezium's MariaDB connector sends JSON columns as "
    "plain strings, not io.debezium.data.Json",
)
FINDINGS[("mariadb-debezium", "mysql-types", tuple(sorted((*_DBZ_MARIADB, *_dbz()))))] = (
    frozenset({"schema", "after-mismatch"}),
    "JSON columns arrive as strings (MariaDB JSON is LONGTEXT), and BIGINT UNSIGNED values of 2^63 and more "
    "wrap to negative numbers under Debezium's default bigint.unsigned.handling.mode=long",
)


FINDINGS[("mariadb-debezium", "connect-crash", tuple(sorted((*_DBZ_MARIADB, *_dbz()))))] = (
    frozenset({"lost"}),
    "at-least-once with snapshot.mode=no_data: a worker killed before its first offset flush (60 s by default) "
    "left no offsets, so the restarted task takes a new schema snapshot and starts from the binlog position of "
    "that moment: every change committed between the crash and the new snapshot is lost (none with "
    "exactly-once source support, which commits offsets with each transaction)",
)


#: findings that show only when a fault meets an engine at a given moment: the cell passes, or
#: fails with some of these kinds and nothing else (anything else fails the test)
RACES: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[frozenset[str], str]] = {
    **{("pg-debezium", "net-drop", _dbz(replica_identity=_identity)): (
        frozenset({"duplicate"}),
        "at-least-once: when the dropped replication connection makes the task restart before it flushed its "
        "offsets, it streams again from the slot's position and changes already read come again (16-26 "
        "duplicates in most runs; none when the task reconnects without a restart)",
    ) for _identity in ("default", "full")},
    **{("pg-debezium", "source-restart", _dbz(replica_identity=_identity)): (
        frozenset({"duplicate"}),
        "at-least-once: when the server's crash makes the task restart (after retriable.restart.connector.wait.ms) "
        "from the offsets it last flushed to Kafka (offset.flush.interval.ms, 60 s by default), changes it had "
        "already produced, and the consumer had read, come again at new offsets (16 duplicates when it happens; "
        "5 of 6 cells run alone here had none, most cells in full suite runs had them)",
    ) for _identity in ("default", "full")},
    ("mariadb-debezium", "bulk", tuple(sorted((*_DBZ_MARIADB, *_dbz())))): (
        frozenset({"duplicate", "lost"}),
        "tuned's connect.keep.alive.interval.ms=1000: when the connector stalls for a second in the middle of the "
        "2,000-row transaction, the binlog client's keepalive thread drops the connection and reconnects from the "
        "last GTID before that transaction (server log: a second 'Start binlog_dump' with the same gtid), so its "
        "first rows come again (632 duplicates in a quiet run; 318 duplicates and 127 lost changes under load); "
        "without the stall nothing happens",
    ),
    ("mariadb-debezium", "large-txn-abort", tuple(sorted((*_DBZ_MARIADB, *_dbz())))): (
        frozenset({"duplicate", "lost"}),
        "the bulk race above, on the 3,000-row committed transaction: the binlog client's keepalive drops the "
        "connection while the connector's queue holds the client back, and reconnects from that transaction's "
        "GTID (server log: a second 'Start binlog_dump' with gtid 0-1-11, then 'Aborted connection'); in 3 of 4 "
        "runs here the restarted connector then delivered 13 more events and stopped: 2,850 changes lost, with "
        "a 2 s or a 10 s caught-up hold alike",
    ),
    ("delta-cdf-spark-stream", "reader-crash", ()): (
        frozenset({"lost"}),
        "Spark 4.1's new-checkpoint check (SPARK-53103, spark.sql.streaming.verifyCheckpointDirectoryEmptyOnStart): "
        "when the crash stops the query before its first batch is in the offset log but after a file landed in "
        "offsets/ (an interrupted write), every restart finds no batch and a non-empty directory and fails with "
        "STATE_STORE_CHECKPOINT_LOCATION_NOT_EMPTY 'should be empty on batch 0': all 38 changes lost in one CI run "
        "of three; when the crash meets a logged first batch the query resumes and the cell passes",
    ),
    ("mariadb-debezium", "broker-restart", tuple(sorted((*_DBZ_MARIADB, *_dbz())))): (
        frozenset({"lost"}),
        "at-least-once with snapshot.mode=no_data: when the broker restart makes the task fail and restart before "
        "its first offset flush (60 s by default), it takes a new snapshot and starts from the binlog position of "
        "that moment, losing the changes in between; when the task rides the restart out, nothing is lost",
    ),
}


def known_race(approach: str, scenario: str,
               settings: tuple[tuple[str, str], ...]) -> tuple[frozenset[str], str] | None:
    """The anomaly kinds a timing-dependent known finding may show, and why, or None."""
    return RACES.get((approach, scenario, tuple(settings)))


#: findings that only some releases of an engine show: a FINDINGS key → (the product's name as
#: ``containers.versions.probe`` reports it, the first release that shows it, kinds, why)
BY_VERSION: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[str, tuple[int, ...], frozenset[str], str]] = {
    ("mysql-binlog", "generated-columns", (("binlog_row_image", "full"), ("binlog_row_metadata", "full"))): (
        "MariaDB", (11,), frozenset({"schema"}),
        "MariaDB 11 (seen with 11.8.9 from Debian trixie; 10.11 logs the column) leaves a STORED generated column "
        "out of UPDATE row images under binlog_row_image=FULL, before and after image alike (mariadb-binlog -vv "
        "shows @1 @2 @3 @5 without @4); inserts carry it: update images lack the column the engine computed",
    ),
}
for _connector in ("tuned", "defaults"):
    for _delivery in ("at-least-once", "exactly-once"):
        BY_VERSION[("mariadb-debezium", "generated-columns", _dbz(_connector, _delivery, **dict(_DBZ_MARIADB)))] = (
            "MariaDB", (11,), frozenset({"lost"}),
            "MariaDB 11 leaves a STORED generated column out of UPDATE row images (see mysql-binlog); Debezium's "
            "MariaDB connector stops at the first such update ('Error processing row in lines, internal schema "
            "size 5, but row size 4, restart connector with schema recovery mode'; the task FAILED): every change "
            "after it is lost until someone restarts the connector",
        )


def _release(version: str | None) -> tuple[int, ...] | None:
    """``"11.8.9"`` → ``(11, 8, 9)``; None when there is no leading number."""
    parts = []
    for part in (version or "").split("."):
        digits = "".join(ch for ch in part if ch.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or None


def known_finding(approach: str, scenario: str, settings: tuple[tuple[str, str], ...],
                  versions: Mapping[str, str] | None = None) -> tuple[frozenset[str], str] | None:
    """The expected anomaly kinds and the reason for a known finding, or None. ``versions`` are the
    run's engine versions (``{"MariaDB": "11.8.9", ...}``): a ``BY_VERSION`` entry applies only from
    the release it names (on an unknown version it does not apply, so the cell fails loudly)."""
    key = (approach, scenario, tuple(settings))
    if key in FINDINGS:
        return FINDINGS[key]
    if key in BY_VERSION:
        product, since, kinds, why = BY_VERSION[key]
        release = _release((versions or {}).get(product))
        if release is not None and release >= since:
            return kinds, why
    return None


#: the pipelines' naive sinks (known-bad references beside the exactly-once sink)
_PIPE = (("connector", "tuned"), ("delivery", "at-least-once"), ("replica_identity", "full"))
for _pipeline in ("pg-kafka-iceberg", "pg-kafka-iceberg-spark"):  # the same sink steps, two writers
    FINDINGS[(_pipeline, "sink-crash-after-commit", (*_PIPE, ("sink", "offsets-after")))] = (
        frozenset({"duplicate"}),
        "pitfall 10 (the window pitfall 9 describes, seen from the other side): the naive sink commits the consumer "
        "group's offset after its Iceberg commit; killed between the two, it restarts from the old offset and "
        "applies the batch again (its second commit records the same source changes; the rows come out the same "
        "only because an upsert by key is idempotent). None with the offsets in the Iceberg commit",
    )
    FINDINGS[(_pipeline, "sink-crash-before-commit", (*_PIPE, ("sink", "offsets-before")))] = (
        frozenset({"lost"}),
        "pitfall 9: the naive sink commits the consumer group's offset before its Iceberg commit; killed between the "
        "two, it restarts after a batch it never wrote: the batch's changes are lost (airbyte #12821, risingwave "
        "#14060). None with the offsets in the Iceberg commit",
    )


#: Spark's changelog view on tables pyiceberg wrote (the interop matrix: pyiceberg writer × Spark reader)
_PYICEBERG_TORN = (
    "pyiceberg commits a transaction that deletes or updates rows as several snapshots (a delete, then an "
    "append) of one metadata commit; Spark's changelog view has no boundary above the snapshot "
    "(_change_ordinal, _commit_snapshot_id), so one source transaction arrives as several commits. Tables Spark "
    "wrote (writer=spark: one MERGE, one snapshot) pass"
)
for _scenario in ("crud", "txn", "types", "bulk", "truncate", "schema-add", "schema-rename", "schema-type",
                  "schema-offline", "reader-crash", "pk-update", "composite-key", "partitioned", "no-key",
                  "large-txn-abort"):
    FINDINGS[("iceberg-changelog-spark", _scenario, ())] = (frozenset({"torn-txn"}), _PYICEBERG_TORN)
FINDINGS[("iceberg-changelog-spark", "schema-drop", ())] = (
    frozenset({"torn-txn", "schema"}),
    _PYICEBERG_TORN + "; and the view reads every snapshot with the table's current schema, so the values of a "
    "dropped column are gone from the before images of rows written before the drop",
)
