"""Known findings: cells where a real CDC tool shows a real anomaly (not a harness bug).

Each entry names the exact anomaly kinds expected and why. The suite marks such a cell
``xfail`` only when the verdict fails with exactly these kinds; any other anomaly fails the
test, and a pass fails it too (the finding no longer reproduces: update this table).
"""

from __future__ import annotations

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


#: mysql-binlog under binlog_row_image MINIMAL / NOBLOB: partial images, left partial (pitfall 3)
_MYSQL_PARTIAL = ("crud", "txn", "types", "truncate", "reader-crash", "schema-add", "schema-drop", "schema-rename",
                  "schema-type", "schema-offline", "toast", "savepoint", "multi-table-txn", "mysql-types")
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


def known_finding(approach: str, scenario: str,
                  settings: tuple[tuple[str, str], ...]) -> tuple[frozenset[str], str] | None:
    """The expected anomaly kinds and the reason for a known finding, or None."""
    return FINDINGS.get((approach, scenario, tuple(settings)))
