"""Approach ``pg-pgoutput``: a logical replication slot read with psycopg2's replication protocol.

``LogicalSlotReader`` holds what every slot-based PostgreSQL approach shares (slot lifecycle,
replication connection, poll loop with timeouts, ack as flush LSN, abrupt crash); ``PgOutput``
adds the publication and the pgoutput decoder. ``pg-wal2json`` subclasses the reader too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import socket
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any, ClassVar

from containers.postgres import pg_name, require_postgres
from harness.approach import BaseApproach
from harness.capabilities import Capabilities
from harness.columnar import is_batch
from harness.context import RunContext
from harness.errors import EngineMisconfigured, EngineUnavailable, MissingDependency
from harness.events import ChangeEvent, Position

#: Session settings for the walsender: they fix the text format the converters parse.
SESSION_OPTIONS = "-c timezone=UTC -c datestyle=ISO,MDY -c bytea_output=hex -c extra_float_digits=1"
ALL_DDL = frozenset({"add", "drop", "rename", "type"})
#: TCP keepalives on the replication connection (libpq's parameters): a dead peer is noticed by the
#: kernel within idle + interval × count ≈ 11 s (the default, 2 h of silence, would leave the
#: reader waiting); a proxy or port forwarder in the path answers them itself, hence SILENT_S
TCP_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
#: after ``SILENT_S`` with nothing read the reader asks the walsender for a keepalive
#: (``send_feedback(reply=True)``, once a second). A live walsender sends something at the latest
#: ``wal_sender_timeout``/2 after the last reply it processed, even while it decodes a large
#: transaction that yields no output (it processes no reply then, but sends a keepalive), so a
#: stream silent for longer than that plus ``DEAD_MARGIN_S`` is dead — a half-open connection,
#: e.g. behind a forwarder after a network partition — and ``poll`` raises, so the reader
#: reconnects. With ``wal_sender_timeout = 0`` no keepalive is due and silence never counts.
SILENT_S = 2.0
DEAD_MARGIN_S = 5.0
#: case settings a slot reader applies to its walsender session
READER_SETTINGS = frozenset({"logical_decoding_work_mem"})


def session_options(settings: dict[str, Any]) -> str:
    """The walsender's options: ``SESSION_OPTIONS`` plus ``logical_decoding_work_mem`` when the
    case sets it (a large transaction then spills, or streams, at a small size)."""
    mem = settings.get("logical_decoding_work_mem")
    if mem is None:
        return SESSION_OPTIONS
    if not re.fullmatch(r"\d+(kB|MB|GB)?", str(mem)):
        raise EngineMisconfigured(f"logical_decoding_work_mem={mem!r} is not a size; fix: give e.g. 64kB or 4MB")
    return f"{SESSION_OPTIONS} -c logical_decoding_work_mem={mem}"


def _psycopg2() -> Any:
    try:
        import psycopg2
        import psycopg2.errors
        import psycopg2.extras
    except ImportError:  # pragma: no cover - depends on the install
        raise MissingDependency("psycopg2-binary", "postgres") from None
    return psycopg2


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class LogicalSlotReader(BaseApproach):
    """Shared machinery for approaches reading one logical slot per run.

    Contract: ``start(ctx)`` creates the run's slot; ``start(ctx, resume=True)`` (a restarted
    reader) streams from the slot's confirmed position and drops events at or before the exact
    position of the last ack, which ``ack`` keeps in the approach's checkpoint file (so an ack
    inside a transaction is honoured exactly). ``poll`` returns whole transactions; a lost
    connection raises (the capture loop restarts the reader). ``ack(pos)`` sends the flush LSN
    of the last *complete* transaction at or before ``pos`` (with the driver's next status
    message, at most ``status_interval`` = 1 s later; the checkpoint holds the exact position
    at once, so a reader resumed from an older slot position drops what it acked). ``crash()``
    shuts the socket down without feedback; ``stop()`` closes gracefully and drops the slot and any
publication (the run is over). Every wait is bounded by ``ctx.timeout_s``.
    """

    family: ClassVar[str] = "postgres"
    plugin: ClassVar[str] = ""
    slot_suffix: ClassVar[str] = "slot"
    #: send each ack's flush LSN at once (True), or let the driver send the latest one with its
    #: next status message (``status_interval``, 1 s): see ``ack``
    force_feedback: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.slot = ""
        self.schema = ""
        self.url = ""
        self._conn: Any = None
        self._cur: Any = None
        #: when the walsender was last heard (``time.monotonic()``) and last asked for a keepalive
        self._heard_at = 0.0
        self._probed_at = 0.0
        #: silence (s) after which the stream is dead: from the server's wal_sender_timeout
        self._dead_after_s: float | None = None
        self._resume_from: Position | None = None
        self._ready: list[ChangeEvent] = []
        self._decoder: Any = None
        #: commit LSN of each emitted transaction → (its end LSN, ordinal of its last event)
        self._txn_last: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self._flushed = 0
        self._ack_file = AckFile()
        #: whether the decoder has emitted an Arrow batch (polls then count rows, not items)
        self._batches = False

    # -- hooks for subclasses -----------------------------------------------------------------
    def prepare(self, admin: Any, fresh: bool) -> None:
        """Create server-side objects the plugin needs (before the slot is created)."""

    def plugin_options(self) -> dict[str, str]:
        raise NotImplementedError

    def make_decoder(self) -> Any:
        """An object with ``feed(payload, captured_at) -> list[ChangeEvent] | None`` and ``reset()``."""
        raise NotImplementedError

    def drop_extra(self, admin: Any) -> None:
        """Drop server-side objects made by ``prepare`` (called by ``stop``)."""

    # -- lifecycle ----------------------------------------------------------------------------
    #: the notes that replace ``capabilities.notes`` under REPLICA IDENTITY FULL
    full_identity_notes: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def capabilities_for(cls, settings: dict[str, Any]) -> Capabilities:
        """Full before images under ``replica_identity=full``; the class's claims otherwise."""
        if str(settings.get("replica_identity", "default")).lower() == "full":
            return replace(cls.capabilities, before_image="full", notes=cls.full_identity_notes)
        return cls.capabilities

    def start(self, ctx: RunContext, resume: bool = False) -> None:
        super().start(ctx, resume)
        psycopg2 = _psycopg2()
        engine = ctx.role("postgres")
        self.url = require_postgres(engine)
        self.schema = engine.schema_for(ctx.name_prefix)
        self.slot = pg_name(f"{ctx.name_prefix}_{self.slot_suffix}")
        self.capabilities = self.capabilities_for(ctx.settings)
        checkpoint = self.load_checkpoint() if resume else None
        self._resume_from = tuple(checkpoint["acked"]) if checkpoint and checkpoint.get("acked") else None
        from containers.postgres import connect

        with connect(self.url) as admin:
            exists = admin.execute("SELECT plugin FROM pg_replication_slots WHERE slot_name = %s",
                                   (self.slot,)).fetchone()
            if resume and not exists:
                raise EngineUnavailable(
                    f"replication slot {self.slot} is gone, cannot resume after {self._resume_from} "
                    "(was the reader stopped, or the server restored without its slots?)")
            timeout_ms = admin.execute("SELECT setting::bigint FROM pg_settings "
                                       "WHERE name = 'wal_sender_timeout'").fetchone()[0]
            self._dead_after_s = timeout_ms / 2000 + DEAD_MARGIN_S if timeout_ms else None
            if exists and not resume:  # a stale slot of this name: start from now, not from it
                admin.execute("SELECT pg_drop_replication_slot(%s)", (self.slot,))
                exists = None
            self.prepare(admin, fresh=not exists)
        self._decoder = self.make_decoder()
        self._connect_replication(psycopg2)
        if not exists:
            self._create_slot(psycopg2)
        self._start_replication(psycopg2)

    def _connect_replication(self, psycopg2: Any) -> None:
        from psycopg2.extras import LogicalReplicationConnection

        try:
            self._conn = psycopg2.connect(self.url, connection_factory=LogicalReplicationConnection,
                                          connect_timeout=5, options=session_options(self.ctx.settings),
                                          application_name=f"{self.slot}"[:63], **TCP_KEEPALIVES)
        except psycopg2.OperationalError as exc:
            raise EngineUnavailable(f"replication connection failed: {_one_line(exc)}; fix: the role "
                                    "needs REPLICATION and pg_hba.conf a 'replication' line") from None
        self._cur = self._conn.cursor()

    def _create_slot(self, psycopg2: Any) -> None:
        try:
            self._cur.create_replication_slot(self.slot, output_plugin=self.plugin)
        except psycopg2.Error as exc:
            msg = _one_line(exc)
            self.close_connection()
            if "could not access file" in msg or ("does not exist" in msg and self.plugin in msg):
                raise EngineUnavailable(f"output plugin {self.plugin} is not installed on the server: {msg}; "
                                        "fix: apt-get install -y postgresql-15-wal2json on the server (Docker "
                                        "backend: --cdc-image postgres=localhost/cdc-postgres:15, built by "
                                        "make setup-docker)") from None
            if "all replication slots are in use" in msg:
                raise EngineMisconfigured(f"{msg}; fix: drop unused slots or raise max_replication_slots "
                                          "(ALTER SYSTEM SET max_replication_slots = 40; restart)") from None
            if "wal_level" in msg:
                raise EngineMisconfigured(
                    f"{msg}; fix: ALTER SYSTEM SET wal_level = logical; restart") from None
            raise EngineUnavailable(f"cannot create replication slot {self.slot}: {msg}") from None

    def _start_replication(self, psycopg2: Any) -> None:
        deadline = time.monotonic() + min(self.ctx.timeout_s, 30.0)
        while True:
            try:
                self._cur.start_replication(slot_name=self.slot, decode=False, start_lsn=0,
                                            options=self.plugin_options(), status_interval=1)
                self._heard_at = time.monotonic()
                return
            except psycopg2.errors.ObjectInUse:
                # the previous reader's walsender has not exited yet (crash, net-drop)
                if time.monotonic() > deadline:
                    raise EngineUnavailable(f"replication slot {self.slot} stayed active for 30 s") from None
                self.close_connection()
                self._terminate_slot_holder()
                time.sleep(0.05)
                self._connect_replication(psycopg2)
            except psycopg2.Error as exc:
                self.close_connection()
                raise EngineUnavailable(
                    f"START_REPLICATION on {self.slot} failed: {_one_line(exc)}") from None

    def _terminate_slot_holder(self) -> None:
        from containers.postgres import connect

        with connect(self.url) as admin:
            admin.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                          "WHERE slot_name = %s AND active_pid IS NOT NULL", (self.slot,))

    # -- reading ------------------------------------------------------------------------------
    def poll(self, max_events: int, timeout_s: float) -> list[Any]:
        """Whole transactions in commit order, waiting at most ``timeout_s`` for the first one:
        ``ChangeEvent``s and the Arrow event batches a decoder may emit (bulk inserts)."""
        cur = self._cur
        if cur is None:
            raise EngineUnavailable("poll() on a reader that is not started")
        decoder = self._decoder
        out = self._ready
        self._ready = []
        deadline = time.monotonic() + timeout_s
        read = cur.read_message
        fileno = self._conn.fileno()
        now_ns = time.time_ns
        count = len(out)
        while count < max_events:
            msg = read()
            if msg is None:
                if out:
                    break
                now = time.monotonic()
                self._check_alive(cur, now)
                remaining = deadline - now
                if remaining <= 0:
                    break
                select.select([fileno], [], [], remaining)
                continue
            self._heard_at = 0.0  # data: heard now (0 = "at the last data message", see _check_alive)
            captured = now_ns()
            events = decoder.feed(msg.payload, captured)
            if events:
                self._note_txn(events)
                out.extend(events)
                count += sum(len(e) if is_batch(e) else 1 for e in events) if self._batches else len(events)
        if self._resume_from is not None and out:
            out = self._drop_resumed(out)
        return out

    def _check_alive(self, cur: Any, now: float) -> None:
        """After a read that returned nothing: note whether the walsender was heard (a keepalive
        arrived after this reader's last status message), probe a silent stream, and raise when
        the stream stays silent past ``_dead_after_s`` (``SILENT_S``, ``DEAD_MARGIN_S``)."""
        if not self._heard_at or cur.io_timestamp > cur.feedback_timestamp:
            self._heard_at = now
            return
        silent = now - self._heard_at
        if silent < SILENT_S:
            return
        if self._dead_after_s is not None and silent > self._dead_after_s:
            raise EngineUnavailable(
                f"replication stream of {self.slot}: the walsender answered no keepalive request for "
                f"{silent:.0f} s (a half-open connection, e.g. a network partition); reconnecting")
        if now - self._probed_at >= 1.0:
            self._probed_at = now
            cur.send_feedback(reply=True)

    def caught_up(self) -> bool:
        """True when the walsender has streamed past the server's WAL flush position of the
        previous call, and nothing decoded is waiting: asked with a keepalive request, so the
        answer comes on the replication stream itself, after any data sent before it."""
        if self._cur is None or self._ready:
            return False
        from containers.postgres import connect

        with connect(self.url) as admin:
            flushed = admin.execute("SELECT pg_current_wal_flush_lsn() - '0/0'::pg_lsn").fetchone()[0]
        previous, self._caught_target = getattr(self, "_caught_target", None), int(flushed)
        self._cur.send_feedback(reply=True)
        return previous is not None and self._cur.wal_end >= previous

    def _note_txn(self, events: list[Any]) -> None:
        commit_lsn, end_lsn = self._decoder.last_commit
        last = events[-1]
        if is_batch(last):
            self._batches = True
            ordinal = last.column("position")[last.num_rows - 1].as_py()[1]
        else:
            ordinal = last.position[1]
        self._txn_last[commit_lsn] = (end_lsn, ordinal)

    def _drop_resumed(self, out: list[Any]) -> list[Any]:
        start = self._resume_from
        assert start is not None
        kept: list[Any] = []
        dropped = False
        for e in out:
            if not is_batch(e):
                if e.position > start:
                    kept.append(e)
                else:
                    dropped = True
                continue
            import pyarrow as pa

            pos = e.column("position").flatten().to_numpy().reshape(e.num_rows, 2)
            after = (pos[:, 0] > start[0]) | ((pos[:, 0] == start[0]) & (pos[:, 1] > start[1]))
            if not after.all():
                dropped = True
                e = e.filter(pa.array(after))
            if e.num_rows:
                kept.append(e)
        if not dropped:
            self._resume_from = None  # past the resume point: stop filtering
        return kept

    def ack(self, position: Position) -> None:
        """Confirm everything up to the last complete transaction at or before ``position``.

        Positions are ``(commit_lsn, ordinal)``; the server is sent the end LSN of the last
        transaction acked whole (an ack inside a transaction confirms only those before it).
        Not forced (``force_feedback``): a feedback message per ack cost the walsender and the
        reader enough to raise pg-pgoutput's lag p99 at 5k/s offered 2-5× in one run (load ~12);
        the driver sends the latest flush LSN with its next status message.
        """
        self._ack_file.write(self.checkpoint_path(), {"acked": list(position)})
        commit_lsn, ordinal = position[0], position[1]
        flush = self._flushed
        txns = self._txn_last
        while txns:
            first = next(iter(txns))
            end_lsn, last = txns[first]
            if first < commit_lsn or (first == commit_lsn and ordinal >= last):
                flush = max(flush, end_lsn)
                txns.popitem(last=False)
            else:
                break
        if flush <= self._flushed:
            return
        self._flushed = flush
        if self._cur is not None:
            self._cur.send_feedback(write_lsn=flush, flush_lsn=flush, force=self.force_feedback)

    # -- shutdown -----------------------------------------------------------------------------
    def close_connection(self) -> None:
        """Close the replication connection (no feedback beyond what was sent)."""
        conn, self._conn, self._cur = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def crash(self) -> None:
        """Abrupt: shut the socket down under the driver, send no feedback, keep the slot."""
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(OSError):
                sock = socket.socket(fileno=os.dup(conn.fileno()))
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        self.close_connection()
        self._ack_file.close()
        self._ready = []

    def stop(self) -> None:
        """Graceful: close the connection, then drop the run's slot and server-side objects."""
        self.close_connection()
        self._ack_file.close()
        if not self.slot or not self.url:
            return
        from containers.postgres import connect, drop_slot

        with connect(self.url) as admin:
            drop_slot(admin, self.slot, min(self.ctx.timeout_s if self.ctx else 30.0, 30.0))
            self.drop_extra(admin)
        self.slot = ""


class PgOutput(LogicalSlotReader):
    """``pg-pgoutput``: the built-in pgoutput plugin, a publication for the run's schema.

    Claims: updates as one event; whole transactions at one commit position; at-least-once
    (after a crash the slot replays from its confirmed position, which the server persists
    only at checkpoints); follows add/drop/rename/type DDL through Relation messages;
    truncate events. Before images: key-only for deletes (none for updates) under REPLICA
    IDENTITY DEFAULT, the full old row under FULL. Unchanged TOAST values are never invented:
    filled from the old row under FULL, otherwise absent from the update's after image.
    """

    name: ClassVar[str] = "pg-pgoutput"
    plugin: ClassVar[str] = "pgoutput"
    slot_suffix: ClassVar[str] = "pgo"
    proto_version: ClassVar[int] = 1
    streaming: ClassVar[bool] = False
    capabilities: ClassVar[Capabilities] = Capabilities(
        before_image="key",
        updates="update",
        transactions=True,
        delivery="at-least-once",
        ddl=ALL_DDL,
        truncate=True,
        resume=True,
        notes=(
            "before images: key-only (REPLICA IDENTITY DEFAULT); full with REPLICA IDENTITY FULL",
            "unchanged TOAST values are absent from update after-images unless REPLICA IDENTITY FULL",
        ),
        settings=READER_SETTINGS,
    )
    #: large-txn-abort runs with protocol 2 streaming off (spilled to disk) and on (streamed)
    variants: ClassVar[tuple[tuple[str, tuple[dict, ...]], ...]] = (
        ("large-txn-abort", ({"streaming": "off"}, {"streaming": "on"})),
        ("partitioned", ({"publish_via_partition_root": "off"}, {"publish_via_partition_root": "on"})),
    )

    full_identity_notes = ("REPLICA IDENTITY FULL: full old rows; unchanged TOAST values filled from them",)

    def __init__(self) -> None:
        super().__init__()
        self.publication = ""

    def start(self, ctx: RunContext, resume: bool = False) -> None:
        self.publication = pg_name(f"{ctx.name_prefix}_pub")
        streaming = str(ctx.settings.get("streaming", "off")).lower()
        if streaming not in ("on", "off"):
            raise EngineMisconfigured(f"streaming={streaming!r}; fix: give streaming=on or streaming=off")
        if streaming == "on":  # protocol 2: large transactions arrive in chunks before their commit
            self.streaming, self.proto_version = True, 2
        super().start(ctx, resume)

    def prepare(self, admin: Any, fresh: bool) -> None:
        """Create the run's publication (FOR TABLES IN SCHEMA; FOR TABLE … without superuser)."""
        from containers.postgres import create_schema_publication

        via_root = str(self.ctx.settings.get("publish_via_partition_root", "off")).lower()
        if via_root not in ("on", "off"):
            raise EngineMisconfigured(f"publish_via_partition_root={via_root!r}; fix: give on or off")
        create_schema_publication(admin, self.publication, self.schema, via_root=via_root == "on")

    def drop_extra(self, admin: Any) -> None:
        if self.publication:
            admin.execute(f'DROP PUBLICATION IF EXISTS "{self.publication}"')

    def plugin_options(self) -> dict[str, str]:
        opts = {"proto_version": str(self.proto_version), "publication_names": self.publication}
        if self.streaming:
            opts["streaming"] = "on"
        return opts

    def make_decoder(self) -> Any:
        from containers.postgres import connect
        from harness.approaches.pgoutput import PgOutputDecoder, warm_arrow

        warm_arrow()  # before the first poll: its first batch would pay for it
        with connect(self.url) as conn:  # one catalog connection for the keys and the row shapes
            keys = _key_lookup(self.url, self.schema, conn)
            if self.schema:
                _precompile_known(conn, self.schema, keys)
        return PgOutputDecoder(schema=self.schema, key_columns=keys)


_COLUMNS_SQL = (
    "SELECT c.relname, array_agg(a.attname ORDER BY a.attnum) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid "
    "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped "
    "AND a.attgenerated = '' GROUP BY c.relname")


def _precompile_known(conn: Any, schema: str, keys: Any) -> None:
    """Compile the row parsers of ``schema``'s keyed tables before streaming (their columns as a
    Relation message will list them: attnum order, no dropped or generated column), so the first
    change of each does not wait about 1 ms behind its Relation message. A guess that turns out
    wrong (the table changed since) only leaves that Relation to compile on the stream. ``conn``:
    an open catalog connection."""
    from harness.approaches.pgoutput import precompile_rows

    rows = conn.execute(_COLUMNS_SQL, (schema,)).fetchall()
    shapes = []
    for rel, names in rows:
        key = keys(schema, rel)
        if key and all(k in names for k in key):
            shapes.append((tuple(names), tuple(names.index(k) for k in key)))
    precompile_rows(shapes)


_KEYS_SQL = (
    "SELECT n.nspname, c.relname, a.attname, i.indexrelid FROM pg_index i "
    "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true "
    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
    "WHERE (i.indisprimary OR i.indisreplident) AND n.nspname = %s {table} "
    "ORDER BY c.relname, i.indisprimary DESC, i.indexrelid, k.ord")


def _key_lookup(url: str, schema: str | None = None, conn: Any = None) -> Any:
    """``(namespace, table) -> key column names`` read from the catalog (cached): the primary
    key's in index order, else the replica identity index's (a table without a primary key),
    else None (the relation's identity columns then: every column under REPLICA IDENTITY FULL).

    The tables of ``schema`` (the run's, created before the reader starts) are read in one
    query here, before streaming: a lookup on the stream would open a connection while the
    changes queue up behind it (one such stall per table was most of pg-pgoutput's lag in the
    suite). A table not seen then (created later, or elsewhere) is read when first asked, on a
    connection of its own; ``conn``, an open connection, serves the first read only."""
    cache: dict[tuple[str, str], tuple[str, ...] | None] = {}

    def query(c: Any, namespace: str, name: str | None) -> list[Any]:
        return c.execute(_KEYS_SQL.format(table="AND c.relname = %s" if name else ""),
                         (namespace, name) if name else (namespace,)).fetchall()

    def read(namespace: str, name: str | None, given: Any = None) -> None:
        from containers.postgres import connect

        if given is not None:
            rows = query(given, namespace, name)
        else:
            with connect(url) as c:
                rows = query(c, namespace, name)
        by_table: dict[str, list[tuple[str, int]]] = {}
        for _, rel, att, index in rows:
            by_table.setdefault(rel, []).append((att, index))
        for rel, cols in by_table.items():
            cache[(namespace, rel)] = tuple(att for att, index in cols if index == cols[0][1])
        if name is not None:
            cache.setdefault((namespace, name), None)

    def lookup(namespace: str, name: str) -> tuple[str, ...] | None:
        k = (namespace, name)
        if k not in cache:
            read(namespace, name)
        return cache[k]

    if schema:
        read(schema, None, conn)
    return lookup


class AckFile:
    """The reader's acknowledged position, overwritten in place on every ack.

    Contract: ``write(path, state)`` replaces the file's JSON document with one ``pwrite`` at offset 0,
    padded with spaces to the longest document written (``BaseApproach.load_checkpoint`` reads
    it back): it survives a crash of the reader process (the write is in the kernel's page cache
    once ``pwrite`` returns; a killed process cannot tear it), which is the crash the harness
    injects — not a crash of the host, which nothing here simulates. No fsync and no rename on
    the hot path: an fsync + rename took 1.9 ms (p99 13 ms), a rename alone 0.3 ms (p99 3 ms) per
    ack on this machine's disk, and the reader reads nothing while it waits.
    """

    def __init__(self) -> None:
        self._fd: int | None = None
        self._width = 128

    def write(self, path: Any, state: dict[str, Any]) -> None:
        """Replace the document in ``path`` (opened, or created, on the first write) with ``state``."""
        if self._fd is None:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            self._width = max(128, os.fstat(self._fd).st_size)
        doc = json.dumps(state)
        self._width = max(self._width, len(doc))
        os.pwrite(self._fd, doc.ljust(self._width).encode(), 0)

    def close(self) -> None:
        """Close the file (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
