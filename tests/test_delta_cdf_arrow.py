"""delta-cdf's Arrow decode gives the events its row-by-row decode gives, on real Delta tables."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from containers.engine import DeltaWarehouse
from harness.approaches.delta_cdf import DeltaCdf
from harness.columnar import events_of, is_batch
from harness.families import builtin_registry
from harness.runner import Case, run_case
from scenarios import default_registry

pytest.importorskip("deltalake")


class BothDecodes(DeltaCdf):
    """delta-cdf delivering its Arrow batches, keeping each read's row-by-row decode beside them."""

    reads: list[tuple[list[Any], list[Any]]] = []

    def _decode(self, idx: int, table: str, reader: Any) -> list[Any]:
        import pyarrow as pa

        data = pa.table(reader)
        self.columnar = False
        rows = super()._decode(idx, table, data)
        self.columnar = True
        got = super()._decode(idx, table, data)
        BothDecodes.reads.append((got, rows))
        return got


def _content(events: list[Any]) -> Counter:
    """Events without their ordinal and txid (a commit's ordinals follow key order: native in the
    Arrow decode, ``repr`` in the row one; txid is ``table@version`` against a tuple)."""
    return Counter((e.table, e.op, e.key, repr(e.before), repr(e.after), e.position[:3], e.commit_ts, e.old_key)
                   for e in events)


@pytest.mark.parametrize("scenario", ["txn", "bulk", "pk-update", "schema-add"])
def test_arrow_decode_gives_the_row_decode_events(tmp_path: Path, scenario: str) -> None:
    BothDecodes.reads = []
    engine = DeltaWarehouse(root=tmp_path / "warehouse")
    engine.start()
    try:
        case = Case(DeltaCdf, scenario, builtin_registry().get("delta"), roles=("delta",))
        result = run_case(case, {"delta": engine}, default_registry().get(scenario), run_id="arrow", worker="gw0",
                          workdir=tmp_path, scale="smoke", timeout_s=30, deadline_s=10, factory=BothDecodes)
    finally:
        engine.stop()
    assert result.verdict.passed, (result.verdict.summary(), result.verdict.examples)
    assert any(is_batch(part) for got, _ in BothDecodes.reads for part in got)
    for got, rows in BothDecodes.reads:
        arrow = events_of(got)
        assert _content(arrow) == _content(rows)
        ordinals = Counter(e.position[2] for e in arrow)
        assert sorted((e.position[2], e.position[3]) for e in arrow) == [
            (v, o) for v in sorted(ordinals) for o in range(ordinals[v])]
