"""The pyiceberg ``Transaction.table_metadata`` cache: one value per staged state, a new one per update."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pyiceberg")
import pyarrow as pa  # noqa: E402

from containers.engine import IcebergWarehouse  # noqa: E402


def test_metadata_is_computed_once_per_staged_state_and_commits_stay_right(tmp_path: Path) -> None:
    warehouse = IcebergWarehouse(tmp_path)
    catalog = warehouse.catalog()  # installs the cache
    catalog.create_namespace_if_not_exists(warehouse.namespace)
    data = pa.table({"id": pa.array([1, 2], pa.int64())})
    table = catalog.create_table(warehouse.identifier("t"), schema=data.schema)
    table.append(data)
    tx = table.transaction()
    first = tx.table_metadata
    assert tx.table_metadata is first  # same staged state: no replay, no deep copy
    tx.set_properties(owner="cdc")
    staged = tx.table_metadata
    assert staged is not first and staged.properties["owner"] == "cdc" and "owner" not in first.properties
    tx.append(pa.table({"id": pa.array([3], pa.int64())}))
    tx.commit_transaction()
    table = catalog.load_table(warehouse.identifier("t"))
    assert sorted(table.scan().to_arrow()["id"].to_pylist()) == [1, 2, 3]
    assert table.metadata.properties["owner"] == "cdc" and len(table.metadata.snapshots) == 2
