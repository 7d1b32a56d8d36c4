"""Open-loop offered load: writer processes that commit at intended start times, per engine family.

A load generator for rate benchmarks, apart from ``harness/sources`` because it is not a
scenario's client: it writes one shape (inserts of fresh keys into one table) as fast as the
engine takes, from several processes, and records per commit only what lag needs. The scenario
sources keep a model and a ledger per change, which is what makes them too slow to find a
reader's limit.

Contract (``offer``): commit ``c`` (``c = 0, 1, …``) holds keys ``c*rows … c*rows+rows-1`` and is
due at ``t0 + c*rows/rate`` (its *intended* start). Commit ``c`` belongs to writer ``c % writers``,
which sends it at its due time even when earlier ones were late (no coordinated omission: a
slow engine shows as ``issued − intended``). Each record is ``(first key, rows, intended_ns,
issued_ns, committed_ns)`` on the host clock (``time.time_ns``): issued just before the commit
is sent, committed when its acknowledgment arrived.

- PostgreSQL (``pg_writer``): psycopg's libpq pipeline mode on one connection per writer process,
  a server-side prepared statement, one Sync per commit (a Sync ends the implicit transaction,
  so each is its own commit) sent without waiting for the previous ones (at most
  ``MAX_IN_FLIGHT`` commits unacknowledged per connection). ``rows > 1`` inserts the commit's
  keys with one ``generate_series`` statement. ``synchronous_commit`` is set per session when
  the offer names it, and the value in force is reported.
- MariaDB (``mysql_writer``): pymysql, autocommit, one statement per commit (a multi-row
  INSERT for ``rows > 1``); pymysql has no pipelining or server-side prepare, so each writer
  has one commit in flight.
- Table formats (``offer_source``): the family's own source (delta-rs, pyiceberg) appends each
  commit in the calling process at its due time (one writer: a table format serializes
  commits anyway).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import HarnessError

#: unacknowledged commits one pipelined PostgreSQL connection may have in flight
MAX_IN_FLIGHT = 2_000
#: how long the writers are given to start and connect before the offer fails (s)
START_TIMEOUT_S = 60.0
#: record columns
FIRST, ROWS, INTENDED, ISSUED, COMMITTED = range(5)


@dataclass(frozen=True)
class Offer:
    """An open-loop offer: ``rate`` changes/s for ``seconds``, ``rows`` changes per commit,
    spread over ``writers`` processes; ``synchronous_commit`` (PostgreSQL) as a session setting
    (None: the server's); ``nice``: the writer processes' CPU niceness increment (0: as the
    caller), so on a small machine the load generator — which stands in for clients on other
    machines — does not take CPU from the reader it measures."""

    rate: float
    seconds: float
    rows: int = 1
    writers: int = 2
    synchronous_commit: str | None = None
    nice: int = 0

    @property
    def commits(self) -> int:
        """How many commits the offer holds."""
        return max(int(self.rate * self.seconds / self.rows), 1)

    @property
    def changes(self) -> int:
        """How many changes (rows) the offer holds."""
        return self.commits * self.rows

    def due_ns(self, t0_ns: int, commit: np.ndarray | int) -> Any:
        """Intended start (ns) of commit number(s) ``commit``."""
        return t0_ns + (np.asarray(commit, dtype=np.int64) * self.rows * 1e9 / self.rate).astype(np.int64)


@dataclass
class Offered:
    """What the writers did: one row per commit (``FIRST, ROWS, INTENDED, ISSUED, COMMITTED``),
    sorted by first key, and the settings in force (``settings``, e.g. ``synchronous_commit``)."""

    offer: Offer
    records: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def changes(self) -> int:
        """How many changes were committed."""
        return int(self.records[:, ROWS].sum()) if len(self.records) else 0

    def achieved_per_s(self) -> float | None:
        """Changes/s committed: changes over the span from the first intended start to the last
        acknowledgment plus one commit interval (``rows/rate``: the last commit's share of the
        offer), so a writer that commits everything on time achieves exactly the offered rate."""
        if not len(self.records):
            return None
        span = (self.records[:, COMMITTED].max() - self.records[:, INTENDED].min()) / 1e9 \
            + self.offer.rows / self.offer.rate
        return round(float(self.changes / span), 1) if span > 0 else None

    def commits_per_s(self) -> float | None:
        """Commits/s over the same span as ``achieved_per_s``."""
        achieved = self.achieved_per_s()
        return round(float(achieved * len(self.records) / self.changes), 1) if achieved else None

    def late_over(self, ms: float) -> int:
        """How many commits were sent more than ``ms`` after their intended start."""
        late = self.records[:, ISSUED] - self.records[:, INTENDED]
        return int((late > ms * 1e6).sum())

    def issued_per_key(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(keys, issued_ns, intended_ns)`` per change, sorted by key."""
        rows = self.records[:, ROWS]
        keys = np.repeat(self.records[:, FIRST], rows) + _ranks(rows)
        return keys, np.repeat(self.records[:, ISSUED], rows), np.repeat(self.records[:, INTENDED], rows)

    def figures(self) -> dict[str, Any]:
        """The writer's figures for a benchmark's ``extra_info``."""
        late = (self.records[:, ISSUED] - self.records[:, INTENDED]) / 1e6 if len(self.records) else np.zeros(0)
        return {
            "offered_per_s": self.offer.rate, "rows_per_commit": self.offer.rows, "writers": self.offer.writers,
            "changes": self.changes, "commits": len(self.records), "achieved_per_s": self.achieved_per_s(),
            "commits_per_s": self.commits_per_s(), "writes_late_over_1ms": self.late_over(1.0),
            "send_delay_p99_ms": round(float(np.percentile(late, 99)), 3) if len(late) else None,
            **self.settings,
        }


def _ranks(rows: np.ndarray) -> np.ndarray:
    """0..n-1 within each run of ``rows`` (the offset of each change in its commit)."""
    total = int(rows.sum())
    starts = np.repeat(np.cumsum(rows) - rows, rows)
    return np.arange(total, dtype=np.int64) - starts


Writer = Callable[..., None]


def offer(writer: Writer, target: dict[str, Any], plan: Offer) -> Offered:
    """Run ``plan`` with ``plan.writers`` processes of ``writer`` (``pg_writer``/``mysql_writer``)
    against ``target`` (the writer's connection arguments); they connect, then start together."""
    spawn = mp.get_context("spawn")
    out, ready = spawn.Queue(), spawn.Queue()
    t0, go = spawn.Value("q", 0), spawn.Event()
    procs = [spawn.Process(target=_run_writer, args=(writer, target, plan, w, t0, go, ready, out), daemon=True)
             for w in range(plan.writers)]
    for p in procs:
        p.start()
    try:
        settings: dict[str, Any] = {}
        for _ in procs:
            got = _get(ready, procs, START_TIMEOUT_S)
            if isinstance(got, str):
                raise HarnessError(f"load writer failed to start: {got}")
            settings.update(got)
        if plan.nice:
            settings["writer_nice"] = plan.nice
        t0.value = time.time_ns() + 50_000_000
        go.set()
        parts = []
        for _ in procs:
            got = _get(out, procs, plan.seconds + START_TIMEOUT_S)
            if isinstance(got, str):
                raise HarnessError(f"load writer failed: {got}")
            parts.append(got)
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    records = np.concatenate(parts) if parts else np.zeros((0, 5), dtype=np.int64)
    return Offered(plan, records[np.argsort(records[:, FIRST], kind="stable")], settings)


def _get(queue: Any, procs: list[Any], timeout_s: float) -> Any:
    """The next item of ``queue``; fails at once when a writer process died without reporting."""
    import queue as queues

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return queue.get(timeout=0.2)
        except queues.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise HarnessError(f"a load writer process exited with code {dead[0]}") from None
            if time.monotonic() > deadline:
                raise HarnessError(f"load writers reported nothing within {timeout_s:.0f}s") from None


def _run_writer(writer: Writer, target: dict[str, Any], plan: Offer, w: int, t0: Any, go: Any,
                ready: Any, out: Any) -> None:
    try:
        if plan.nice:
            os.nice(plan.nice)
        writer(target, plan, w, t0, go, ready, out)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        msg = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        ready.put(msg)
        out.put(msg)


def _mine(plan: Offer, w: int) -> np.ndarray:
    return np.arange(w, plan.commits, plan.writers, dtype=np.int64)


def pg_writer(target: dict[str, Any], plan: Offer, w: int, t0: Any, go: Any, ready: Any, out: Any) -> None:
    """One PostgreSQL writer process (``target``: ``url``, ``table`` quoted and qualified)."""
    import psycopg
    from psycopg import pq

    conn = psycopg.connect(target["url"], autocommit=True)
    if plan.synchronous_commit:
        conn.execute(f"SET synchronous_commit = {psycopg.sql.quote(plan.synchronous_commit)}")
    in_force = conn.execute("SHOW synchronous_commit").fetchone()[0]
    table = target["table"]
    if plan.rows == 1:
        sql = f"INSERT INTO {table} (id, name, qty) VALUES ($1, 'x', $2)"
    else:
        sql = (f"INSERT INTO {table} (id, name, qty) SELECT k, 'x', (k % 1000)::int "
               "FROM generate_series($1::bigint, $2::bigint) k")
    pg = conn.pgconn
    res = pg.prepare(b"cdc_offer", sql.encode())
    if res.status != pq.ExecStatus.COMMAND_OK:
        raise HarnessError(f"PREPARE failed: {res.error_message.decode(errors='replace')}")
    commits = _mine(plan, w)
    records = np.zeros((len(commits), 5), dtype=np.int64)
    records[:, FIRST] = commits * plan.rows
    records[:, ROWS] = plan.rows
    params = [[str(c * plan.rows).encode(), str(c * plan.rows + plan.rows - 1 if plan.rows > 1 else c % 1000).encode()]
              for c in commits.tolist()]
    ready.put({"synchronous_commit": in_force, "pipeline": True, "prepared": True})
    go.wait(START_TIMEOUT_S)
    due = plan.due_ns(t0.value, commits)
    records[:, INTENDED] = due
    due_list = due.tolist()
    n, sent, done = len(commits), 0, 0
    pg.enter_pipeline_mode()
    pg.nonblocking = 1
    fileno = pg.socket
    send, sync, now_ns = pg.send_query_prepared, pg.pipeline_sync, time.time_ns
    issued = records[:, ISSUED]
    committed = records[:, COMMITTED]
    PIPELINE_SYNC, FATAL = pq.ExecStatus.PIPELINE_SYNC, pq.ExecStatus.FATAL_ERROR
    while done < n:
        now = now_ns()
        while sent < n and sent - done < MAX_IN_FLIGHT and due_list[sent] <= now:
            issued[sent] = now_ns()
            send(b"cdc_offer", params[sent])
            sync()
            sent += 1
        flushing = pg.flush() != 0
        pg.consume_input()
        nulls = 0
        while done < sent and not pg.is_busy():
            r = pg.get_result()
            if r is None:
                nulls += 1
                if nulls > 1:
                    break
                continue
            nulls = 0
            if r.status == PIPELINE_SYNC:
                committed[done] = now_ns()
                done += 1
            elif r.status == FATAL:
                raise HarnessError(f"INSERT failed: {r.error_message.decode(errors='replace')}")
        if done >= n:
            break
        wait = (due_list[sent] - now_ns()) / 1e9 if sent < n and sent - done < MAX_IN_FLIGHT else 0.05
        if wait > 0 or done < sent:
            select.select([fileno], [fileno] if flushing else [], [], max(min(wait, 0.05), 0) if sent < n else 0.05)
    pg.exit_pipeline_mode()
    conn.close()
    out.put(records)


def mysql_writer(target: dict[str, Any], plan: Offer, w: int, t0: Any, go: Any, ready: Any, out: Any) -> None:
    """One MariaDB writer process (``target``: ``url``, ``database``, ``table``)."""
    from containers.mysql import connect

    conn = connect(target["url"], database=target["database"], autocommit=True)
    table = target["table"]
    commits = _mine(plan, w)
    records = np.zeros((len(commits), 5), dtype=np.int64)
    records[:, FIRST] = commits * plan.rows
    records[:, ROWS] = plan.rows
    ready.put({"autocommit": True, "pipeline": False, "prepared": False})
    go.wait(START_TIMEOUT_S)
    due = plan.due_ns(t0.value, commits)
    records[:, INTENDED] = due
    try:
        with conn.cursor() as cur:
            for i, c in enumerate(commits.tolist()):
                wait = (int(due[i]) - time.time_ns()) / 1e9
                if wait > 0:
                    time.sleep(wait)
                first = c * plan.rows
                values = ",".join(f"({k},'x',{k % 1000})" for k in range(first, first + plan.rows))
                records[i, ISSUED] = time.time_ns()
                cur.execute(f"INSERT INTO {table} (id, name, qty) VALUES {values}")
                records[i, COMMITTED] = time.time_ns()
    finally:
        conn.close()
    out.put(records)


def offer_source(source: Any, table: str, plan: Offer, make_row: Callable[[int], dict[str, Any]]) -> Offered:
    """Run ``plan`` in this process through a scenario source (a table format's own writer):
    each commit appends ``plan.rows`` rows (``make_row(key)``) at its due time; issued and
    committed times are the ledger's."""
    from harness.steps import InsertMany

    commits = np.arange(plan.commits, dtype=np.int64)
    records = np.zeros((len(commits), 5), dtype=np.int64)
    records[:, FIRST] = commits * plan.rows
    records[:, ROWS] = plan.rows
    due = plan.due_ns(time.time_ns() + 10_000_000, commits)
    records[:, INTENDED] = due
    for i, c in enumerate(commits.tolist()):
        wait = (int(due[i]) - time.time_ns()) / 1e9
        if wait > 0:
            time.sleep(wait)
        first = c * plan.rows
        records[i, ISSUED] = time.time_ns()
        source.apply(InsertMany(table, tuple(make_row(k) for k in range(first, first + plan.rows))))
        issued, committed = _last_commit(source.ledger)
        records[i, ISSUED] = issued or records[i, ISSUED]
        records[i, COMMITTED] = committed or time.time_ns()
    return Offered(plan, records, {"writer": type(source).__name__, "commit_interval_s": plan.rows / plan.rate})


def _last_commit(ledger: Any) -> tuple[int, int]:
    """``(commit_issued_at, committed_at)`` of the ledger's last commit (0s when none)."""
    for part in reversed(ledger.log.parts):
        if isinstance(part, list):
            if part:
                return part[-1].commit_issued_at, part[-1].committed_at
        else:
            return part.commit_issued_at, part.committed_at
    return 0, 0
