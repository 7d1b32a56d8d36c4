"""Where a pg-debezium backlog drain spends its CPU: connector settings variants through one local
PostgreSQL, KRaft broker and Connect worker, with the CPU of each Connect thread, of the broker and
of the reading process, and the bytes per record (issue 10; figures in docs/kafka.md).

Usage: ``python suites/kafka_probe.py ROWS VARIANT[,VARIANT...]`` prints one JSON line per warm-up
round (``CDC_KPROBE_WARM_ROUNDS`` rounds of ``CDC_KPROBE_WARM`` rows, default 4 × 20000, through
the tuned connector: the Connect JVM's JIT) and per variant. A variant is a name of ``VARIANTS``
(connector settings over the tuned ones) or ``pgoutput`` (the yardstick: pg-pgoutput's checked
drain). A Debezium variant's drain is timed from the connector's resume (it is paused while ROWS
inserts are written in 1000-row transactions) to the last insert read; the reader counts the
records and parses each payload (``debezium._split``/``_loads``) but does not decode the values
or check them: it measures the pipeline. ``tuned`` sends records without their schema (the
approach's tuned connector), ``tuned-schema`` the same settings with the schema in every record.
``CDC_KPROBE_READER=decode`` makes the reader decode every record as the approach does
(``to_event``: a ``ChangeEvent`` with exact values) and ack after each batch, as the capture loop
does (the harness's reader cost, beside the pipeline's); ``CDC_KPROBE_PRICE`` is the price
column's type (default ``numeric(12,2)``; ``numeric``, as the suites' ``items`` table, sends
Debezium's variable-scale decimal).
``CDC_KPROBE_FETCH_MIN_BYTES`` sets the reader's ``fetch.min.bytes`` (``debezium.FETCH_MIN_BYTES``).
``CDC_KPROBE_CONNECT_OPTS`` and ``CDC_KPROBE_BROKER_OPTS`` (space-separated JVM options) replace
the Connect worker's and the broker's ``jvm_options`` (GC and JIT choices).
``python suites/kafka_probe.py lag RATE SECONDS VARIANT[,...]`` instead offers RATE single-row
commits/s for SECONDS through 4 writer processes (``harness.loadgen``, as the lag benchmark) and
splits each change's lag into hops: issued → committed (``source.ts_us``), → Debezium's event
(the envelope's ``ts_us``), → the Kafka record's timestamp (Debezium leaves it unset: the time
Connect's producer took the record), → read by this process; p50/p99/max of each. The reader
acks (a synchronous commit of the consumer group) after each poll, as the capture loop does;
``CDC_KPROBE_NO_ACK=1`` leaves that out.
``CDC_KPROBE_JFR=FILE`` records a JFR profile (``settings=profile``) of the worker over the
variants (it costs recompilation: rates under it are lower).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness.approaches.debezium as dbz  # noqa: E402
from containers.connect import LocalConnect  # noqa: E402
from containers.kafka import LocalKafka  # noqa: E402
from containers.postgres import LocalPostgres  # noqa: E402
from harness.context import RunContext  # noqa: E402

TUNED = dict(dbz.TUNED)
if os.environ.get("CDC_KPROBE_FETCH_MIN_BYTES"):
    dbz.FETCH_MIN_BYTES = int(os.environ["CDC_KPROBE_FETCH_MIN_BYTES"])
#: connector settings over the tuned variant's (``None``: Debezium's defaults; ``_schema=record``:
#: records with their schema, the approach decoding by it, as before the types messages)
VARIANTS: dict[str, dict[str, str] | None] = {
    "tuned": {},
    "defaults": None,
    "tuned-schema": {"_schema": "record"},
    "lz4": {"producer.override.compression.type": "lz4"},
    "batch-64k": {"producer.override.batch.size": "65536"},
    "max-batch-2048": {"max.batch.size": "2048"},
    # Debezium requires max.queue.size > max.batch.size (8192): at 8192 Connect answered 500 (an NPE in validation)
    "queue-16k": {"max.queue.size": "16384"},
}
TXN_ROWS = 1000


def _p99_by_second(issued_ns: Any, lag_ns: Any) -> list[float]:
    """The lag p99 (ms) of the changes issued in each second of the run: a tail at the start (a
    consumer still connecting) reads apart from one spread over the run (pauses, scheduling)."""
    import numpy as np

    second = (issued_ns - issued_ns.min()) // 1_000_000_000
    return [round(float(np.percentile(lag_ns[second == s], 99)) / 1e6, 1) for s in np.unique(second)]


def _top(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    grown = {k: round(v - before.get(k, 0.0), 2) for k, v in after.items()}
    return dict(sorted(((k, v) for k, v in grown.items() if v >= 0.05), key=lambda kv: -kv[1])[:8])


class Probe:
    """The three engines, started once; ``drain`` runs one variant on a fresh connector."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pg = LocalPostgres(prefix="cdc_kprobe_")
        self.kafka = LocalKafka()
        self.connect = LocalConnect(self.kafka, group="cdc_kprobe_connect")
        self.runs = 0

    def start(self) -> None:
        from containers.connect import ConnectWorker

        for cls, env in ((ConnectWorker, "CDC_KPROBE_CONNECT_OPTS"), (LocalKafka, "CDC_KPROBE_BROKER_OPTS")):
            if os.environ.get(env):
                cls.jvm_options = tuple(os.environ[env].split())
        self.pg.start()
        self.kafka.start()
        self.connect.start()

    def stop(self) -> None:
        for engine in (self.connect, self.kafka, self.pg):
            engine.stop()

    def server(self, engine: str) -> Any:
        return self.connect.workers["at-least-once"] if engine == "connect" else self.kafka

    def pid(self, engine: str) -> int:
        return self.server(engine)._executor.process.pid

    def _context(self, name: str, settings: dict[str, Any]) -> RunContext:
        return RunContext(run_id=name, worker="kprobe", workdir=self.workdir, source_role="postgres",
                          engines={"postgres": self.pg, "kafka": self.kafka, "connect": self.connect},
                          settings=settings, timeout_s=60)

    def _connector_state(self, approach: Any, verb: str, want: str) -> None:
        import requests

        answer = requests.put(f"{self.connect.url}/connectors/{approach.connector}/{verb}", timeout=10)
        answer.raise_for_status()
        deadline = time.monotonic() + 30
        while self.connect.task_state(approach.connector)[0] != want:
            if time.monotonic() > deadline:
                raise RuntimeError(f"connector {approach.connector} not {want} within 30 s")
            time.sleep(0.02)

    def _variant_table(self, variant: str, more_columns: str = "") -> tuple[Any, str]:
        """Connector settings of ``variant`` in force, a fresh run context, and its table
        ``t (id bigint key, name text, qty int[, more_columns])`` created: ``(ctx, table)``."""
        from harness.approaches.pg_debezium import PgDebezium
        from harness.sources.postgres import run_schema

        extra = VARIANTS[variant]
        PgDebezium.types_from_stream = (extra or {}).get("_schema") != "record"
        dbz.TUNED = {k: v for k, v in {**TUNED, **(extra or {})}.items() if not k.startswith("_")}
        self.runs += 1
        ctx = self._context(f"p{self.runs}", {"replica_identity": "default", "delivery": "at-least-once",
                                              "connector": "defaults" if extra is None else "tuned"})
        table = f'"{run_schema(ctx)}".t'
        with self.pg.connect() as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{run_schema(ctx)}"')
            conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, name text, qty int"
                         f"{', ' + more_columns if more_columns else ''})")
        return ctx, table

    def drain(self, variant: str, rows: int) -> dict[str, Any]:
        """ROWS inserts behind a paused connector of ``variant``, then resumed and read to the last."""
        from harness.approaches.pg_debezium import PgDebezium

        price = os.environ.get("CDC_KPROBE_PRICE", "numeric(12,2)")
        decode = os.environ.get("CDC_KPROBE_READER", "parse") == "decode"
        ctx, table = self._variant_table(variant, f"price {price}, at timestamptz")
        approach = PgDebezium()
        try:
            approach.start(ctx)
            self._connector_state(approach, "pause", "PAUSED")
            with self.pg.connect() as conn:
                cur = conn.cursor()
                for base in range(0, rows, TXN_ROWS):
                    cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, now())",
                                    [(i, f"name-{i}", i, i / 100) for i in range(base, min(base + TXN_ROWS, rows))])
                    conn.commit()
            connect, kafka = self.server("connect"), self.server("kafka")
            connect0, kafka0, self0 = connect.thread_cpu_s(), kafka.thread_cpu_s(), os.times()
            started = time.perf_counter()
            self._connector_state(approach, "resume", "RUNNING")
            got, size = 0, 0
            deadline = time.monotonic() + 300
            while got < rows and time.monotonic() < deadline:
                batch = approach._consumer.consume(num_messages=10_000, timeout=0.2)
                for msg in batch:
                    value = msg.value()
                    if value is None or msg.error() or b'"op":"c"' not in value:
                        continue
                    size += len(value)
                    got += 1
                    if decode:
                        approach.to_event(value, msg.key(), msg.offset(), 0)
                    elif value.startswith(b'{"schema":'):
                        dbz._split(value)
                    else:
                        dbz._loads(value)
                if decode and batch:
                    approach.ack((batch[-1].offset(),))
            seconds = time.perf_counter() - started
            connect1, kafka1, self1 = connect.thread_cpu_s(), kafka.thread_cpu_s(), os.times()
        finally:
            approach.stop()
        return {"variant": variant, "reader": "decode" if decode else "parse", "price": price, "rows": got,
                "seconds": round(seconds, 2), "events_per_s": round(got / seconds),
                "bytes_per_record": round(size / max(got, 1)),
                "connect_cpu_s": round(sum(connect1.values()) - sum(connect0.values()), 2),
                "broker_cpu_s": round(sum(kafka1.values()) - sum(kafka0.values()), 2),
                "reader_cpu_s": round(self1.user + self1.system - self0.user - self0.system, 2),
                "connect_threads_cpu_s": _top(connect0, connect1), "load_1m": round(os.getloadavg()[0], 2)}

    def lag(self, variant: str, rate: int, seconds: float) -> dict[str, Any]:
        """Open-loop single-row inserts at ``rate``/s through a running connector of ``variant``:
        per-hop lag percentiles (ms)."""
        import threading

        import numpy as np

        from harness.approaches.pg_debezium import PgDebezium
        from harness.loadgen import Offer, offer, pg_writer

        ctx, table = self._variant_table(variant)
        plan = Offer(rate, seconds, 1, 4)
        offered: list[Any] = []
        approach = PgDebezium()
        rows: list[tuple[int, int, int, int, int]] = []
        try:
            approach.start(ctx)
            writer = threading.Thread(target=lambda: offered.append(offer(pg_writer, {"url": self.pg.url,
                                                                                     "table": table}, plan)))
            writer.start()
            deadline = time.monotonic() + seconds + 60
            while len(rows) < plan.changes and time.monotonic() < deadline:
                first = approach._consumer.poll(0.05)
                if first is None:
                    continue
                got = time.time_ns()
                for msg in [first, *approach._consumer.consume(num_messages=10_000, timeout=0)]:
                    value = msg.value()
                    if value is None or msg.error() or b'"op":"c"' not in value:
                        continue
                    payload = dbz._split(value)[1] if value.startswith(b'{"schema":') else dbz._loads(value)
                    rows.append((payload["after"]["id"], payload["source"]["ts_us"], payload["ts_us"],
                                 msg.timestamp()[1], got))
                if not os.environ.get("CDC_KPROBE_NO_ACK"):
                    approach.ack((msg.offset(),))
            writer.join()
        finally:
            approach.stop()
        keys, issued, _ = offered[0].issued_per_key()
        seen = np.array(rows, dtype=np.int64)
        issued_ns = issued[np.searchsorted(keys, seen[:, 0])]
        hops = {"issued_to_committed": seen[:, 1] * 1000 - issued_ns,
                "committed_to_debezium": (seen[:, 2] - seen[:, 1]) * 1000,
                "debezium_to_record": seen[:, 3] * 1_000_000 - seen[:, 2] * 1000,
                "record_to_read": seen[:, 4] - seen[:, 3] * 1_000_000, "total": seen[:, 4] - issued_ns}
        return {"variant": variant, "offered_per_s": rate, "changes": plan.changes, "read": len(rows),
                "achieved_per_s": offered[0].achieved_per_s(), "late_over_1ms": offered[0].late_over(1.0),
                **{f"{hop}_ms": {q: round(float(np.percentile(v, p)) / 1e6, 2) for q, p in (("p50", 50), ("p99", 99))}
                   | {"max": round(float(v.max()) / 1e6, 1)} for hop, v in hops.items()},
                "total_p99_by_second_ms": _p99_by_second(issued_ns, hops["total"]),
                "load_1m": round(os.getloadavg()[0], 2)}

    def pgoutput(self, rows: int) -> dict[str, Any]:
        """pg-pgoutput's checked drain of the same backlog (the yardstick)."""
        from harness.approaches.pg_pgoutput import PgOutput
        from harness.families import builtin_registry
        from harness.runner import Case, run_case
        from harness.steps import InsertMany, Scenario
        from scenarios.tables import ITEMS, RowMaker

        maker = RowMaker(11)
        steps = [InsertMany("items", tuple(maker.item(k) for k in range(base + 1, min(base + TXN_ROWS, rows) + 1)))
                 for base in range(0, rows, TXN_ROWS)]
        self.runs += 1
        case = Case(PgOutput, "kafka-backlog", builtin_registry().get("postgres"), (("replica_identity", "default"),),
                    ("postgres",))
        result = run_case(case, {"postgres": self.pg}, lambda *_: Scenario("backlog", (ITEMS,), steps),
                          run_id=f"p{self.runs}", worker="kprobe", workdir=self.workdir, timeout_s=180, backlog=True)
        m = result.verdict.measurements
        return {"variant": "pgoutput", "verdict": result.verdict.status, "events": m.get("events"),
                "events_per_s": m.get("events_per_s"), "load_1m": round(os.getloadavg()[0], 2)}


def main(argv: list[str]) -> None:
    lag = argv[:1] == ["lag"]
    if lag:
        rate, seconds, argv = int(argv[1]), float(argv[2]), ["0", *argv[3:]]
    if len(argv) != 2 or any(v not in VARIANTS and (lag or v != "pgoutput") for v in argv[1].split(",")):
        sys.exit(f"usage: python suites/kafka_probe.py ROWS|lag RATE SECONDS VARIANT[,VARIANT...]; variants: "
                 f"pgoutput (drain only), "
                 f"{', '.join(VARIANTS)}")
    rows = int(argv[0])
    jfr = os.environ.get("CDC_KPROBE_JFR")
    with tempfile.TemporaryDirectory(prefix="cdc_kprobe_") as tmp:
        probe = Probe(Path(tmp))
        try:
            probe.start()
            for n in range(int(os.environ.get("CDC_KPROBE_WARM_ROUNDS", "4"))):
                print(json.dumps({"warm_round": n, **probe.drain("tuned", int(os.environ.get("CDC_KPROBE_WARM",
                                                                                            "20000")))}), flush=True)
            if jfr:
                subprocess.run(["jcmd", str(probe.pid("connect")), "JFR.start", "name=kprobe", "settings=profile",
                                f"filename={jfr}"], check=True, capture_output=True)
            for variant in argv[1].split(","):
                if lag:
                    print(json.dumps(probe.lag(variant, rate, seconds)), flush=True)
                else:
                    print(json.dumps(probe.pgoutput(rows) if variant == "pgoutput" else probe.drain(variant, rows)),
                          flush=True)
            if jfr:
                subprocess.run(["jcmd", str(probe.pid("connect")), "JFR.stop", "name=kprobe"], check=True,
                               capture_output=True)
        finally:
            probe.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
