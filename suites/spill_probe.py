"""The checker's multiset comparison (ledger against events, by content hash) run out of process on
one engine — polars in memory, polars' streaming engine, or DuckDB under a memory limit spilling
to disk — printing its time, peak RSS and counts as JSON: the figures for choosing the engine
for histories beyond memory (``suites/test_checker_benchmark.py::test_checker_spill_engines``).

Usage: ``python suites/spill_probe.py write DIR N`` writes ``DIR/ledger.parquet`` and
``DIR/events.parquet`` (N committed changes; 0.1% of events lost, 0.1% duplicated, 0.1% with
changed content) and prints the expected counts; ``python suites/spill_probe.py ENGINE DIR
[MEMORY_LIMIT]`` compares them on ENGINE (``polars``, ``polars-streaming``, ``duckdb``).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CHUNK = 1_000_000


def write(root: Path, n: int, seed: int = 2024) -> dict[str, int]:
    """Write the two files chunk by chunk (bounded memory); return the counts a right engine finds."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    lw = ew = None
    expected = {"pairs": 0, "lost": 0, "unexpected": 0, "duplicate": 0}
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        lseq = np.arange(start, start + m, dtype=np.int64)
        h = rng.integers(0, 2**63 - 1, m, dtype=np.int64)
        kh = h % max(1, n // 5)
        ledger = pa.table({"h": h, "kh": kh, "lseq": lseq, "txid": lseq // 4})
        lost = lseq % 1000 == 0
        dup = lseq % 1000 == 1
        changed = lseq % 1000 == 2
        eh = np.where(changed, rng.integers(0, 2**63 - 1, m, dtype=np.int64), h)
        keep = ~lost
        eh = np.concatenate([eh[keep], h[dup]])
        order = rng.permutation(len(eh))
        eh = eh[order]
        events = pa.table({"h": eh, "kh": eh % max(1, n // 5),
                           "eidx": np.arange(start * 2, start * 2 + len(eh), dtype=np.int64),
                           "etx": np.concatenate([lseq[keep], lseq[dup]])[order] // 4})
        lw = lw or pq.ParquetWriter(root / "ledger.parquet", ledger.schema)
        ew = ew or pq.ParquetWriter(root / "events.parquet", events.schema)
        lw.write_table(ledger)
        ew.write_table(events)
        expected["lost"] += int(lost.sum() + changed.sum())
        expected["unexpected"] += int(changed.sum())
        expected["duplicate"] += int(dup.sum())
        expected["pairs"] += int(m - lost.sum() - changed.sum() + dup.sum())
    assert lw is not None and ew is not None
    lw.close()
    ew.close()
    return expected


def _polars(root: Path, streaming: bool) -> dict[str, int]:
    import polars as pl

    engine = "streaming" if streaming else "in-memory"
    if streaming:
        L, E = pl.scan_parquet(root / "ledger.parquet"), pl.scan_parquet(root / "events.parquet")
    else:
        L, E = pl.read_parquet(root / "ledger.parquet").lazy(), pl.read_parquet(root / "events.parquet").lazy()
    pairs = L.select("h", "lseq", "txid").join(E.select("h", "eidx", "etx"), on="h", how="inner")
    pairs.sink_parquet(root / f"pairs-{engine}.parquet", engine=engine)
    n_pairs = pl.scan_parquet(root / f"pairs-{engine}.parquet").select(pl.len()).collect().item()
    lost = L.join(E, on="h", how="anti").select(pl.len()).collect(engine=engine).item()
    unexpected = E.join(L, on="h", how="anti").select(pl.len()).collect(engine=engine).item()
    counts = L.group_by("h").agg(pl.len().alias("l")).join(
        E.group_by("h").agg(pl.len().alias("e")), on="h", how="inner")
    duplicate = counts.select((pl.col("e") - pl.col("l")).clip(0).sum()).collect(engine=engine).item()
    return {"pairs": n_pairs, "lost": lost, "unexpected": unexpected, "duplicate": int(duplicate)}


def _duckdb(root: Path, memory_limit: str) -> dict[str, int]:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit='{memory_limit}'")
    con.execute(f"SET temp_directory='{root / 'spill'}'")
    con.execute("SET preserve_insertion_order=false")
    con.execute(f"CREATE VIEW L AS SELECT * FROM read_parquet('{root / 'ledger.parquet'}')")
    con.execute(f"CREATE VIEW E AS SELECT * FROM read_parquet('{root / 'events.parquet'}')")
    out = root / "pairs-duckdb.parquet"
    con.execute(f"COPY (SELECT L.h, lseq, txid, eidx, etx FROM L JOIN E USING (h)) TO '{out}' (FORMAT parquet)")
    n_pairs = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    lost = con.execute("SELECT count(*) FROM L ANTI JOIN E USING (h)").fetchone()[0]
    unexpected = con.execute("SELECT count(*) FROM E ANTI JOIN L USING (h)").fetchone()[0]
    duplicate = con.execute(
        "SELECT coalesce(sum(greatest(e - l, 0)), 0) FROM (SELECT h, count(*) l FROM L GROUP BY h) "
        "JOIN (SELECT h, count(*) e FROM E GROUP BY h) USING (h)").fetchone()[0]
    return {"pairs": n_pairs, "lost": lost, "unexpected": unexpected, "duplicate": int(duplicate)}


def main(argv: list[str]) -> None:
    if argv[0] == "write":
        print(json.dumps(write(Path(argv[1]), int(argv[2]))))
        return
    engine, root = argv[0], Path(argv[1])
    t = time.perf_counter()
    if engine == "duckdb":
        counts = _duckdb(root, argv[2] if len(argv) > 2 else "1GB")
    elif engine in ("polars", "polars-streaming"):
        counts = _polars(root, engine == "polars-streaming")
    else:
        sys.exit(f"spill_probe: unknown engine {engine!r}: use polars, polars-streaming or duckdb")
    seconds = time.perf_counter() - t
    print(json.dumps({**counts, "seconds": round(seconds, 2),
                      "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3)}))


if __name__ == "__main__":
    main(sys.argv[1:])
