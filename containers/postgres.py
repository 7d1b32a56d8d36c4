"""PostgreSQL engine: a private local cluster, a testcontainers container, or an external server.

All three backends share :class:`PostgresEngine`: ``url`` (a libpq URL with the password),
``cleanup(prefix)`` (drop the harness's slots, publications and schemas), ``drop_connections``
(terminate walsenders/clients: the ``net-drop`` fault) and ``check()`` (the server settings CDC
needs, raising ``EngineMisconfigured`` naming the setting to change).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import time
import weakref
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from containers.docker_api import ContainerFaults, ContainerLog
from containers.engine import log_tail, private_dir
from containers.process import parent_death_guard, terminate
from harness.errors import EngineMisconfigured, EngineUnavailable, MissingDependency, Unsupported
from harness.secrets import mask_url, one_line, register, register_url

PG_BIN = Path(os.environ.get("CDC_PG_BIN", "/usr/lib/postgresql/15/bin"))
INSTALL_HINT = "apt-get install -y postgresql-15 postgresql-15-wal2json (or: bash scripts/setup-postgres.sh)"
#: Server settings every backend runs with (the docker one passes them as ``-c`` flags too).
SERVER_SETTINGS: dict[str, str] = {
    "wal_level": "logical",
    "max_replication_slots": "40",
    "max_wal_senders": "40",
    "max_connections": "200",
    "track_commit_timestamp": "on",
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "on",  # off would delay walsenders by up to wal_writer_delay
    "full_page_writes": "off",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "shared_buffers": "256MB",
    "wal_sender_timeout": "60s",
    "log_min_messages": "warning",
    "timezone": "UTC",
    "datestyle": "ISO, MDY",
}
CONNECT_TIMEOUT_S = 5
#: ``application_name`` of the connection a session holds on an external server while it runs;
#: objects named with a prefix no live lease covers are leftovers of a killed session
LEASE_APP = "cdc-lease "
#: the name prefix every object the harness creates starts with
HARNESS_PREFIX = "cdc_"


def pg_name(text: str) -> str:
    """A lowercase PostgreSQL identifier (≤ 63 bytes) derived from ``text``, stable and unique."""
    name = re.sub(r"[^a-z0-9_]", "_", text.lower())
    if len(name) > 63:
        name = name[:54] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


def drop_slot(admin: Any, slot: str, timeout_s: float = 30.0) -> None:
    """Drop replication slot ``slot`` (absent: nothing to do), terminating the walsender that
    still holds it; ``EngineUnavailable`` when it cannot be dropped within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = admin.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
        if row is None:
            return
        if time.monotonic() > deadline:
            raise EngineUnavailable(f"could not drop replication slot {slot} within {timeout_s:.0f} s")
        if row[0] is not None:  # its walsender is still exiting; hurry it
            admin.execute("SELECT pg_terminate_backend(%s)", (row[0],))
            time.sleep(0.02)
            continue
        with contextlib.suppress(Exception):
            admin.execute("SELECT pg_drop_replication_slot(%s)", (slot,))


def create_schema_publication(admin: Any, publication: str, schema: str, via_root: bool = False) -> None:
    """Create ``publication`` for every table of ``schema`` (FOR TABLES IN SCHEMA: tables created
    later are published too; without superuser, FOR TABLE on the tables that exist now).
    ``via_root``: ``publish_via_partition_root`` (changes of a partition under its root's name)."""
    if admin.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone():
        return
    psycopg = _psycopg()
    with_ = " WITH (publish_via_partition_root = true)" if via_root else ""
    try:
        admin.execute(f'CREATE PUBLICATION "{publication}" FOR TABLES IN SCHEMA "{schema}"{with_}')
    except psycopg.errors.InsufficientPrivilege:
        tables = [r[0] for r in admin.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)).fetchall()]
        if not tables:
            raise EngineMisconfigured(
                f"no tables in schema {schema} to publish and no privilege for FOR TABLES IN SCHEMA; "
                "fix: create the tables before start() or use a superuser") from None
        names = ", ".join(f'"{schema}"."{t}"' for t in tables)
        admin.execute(f'CREATE PUBLICATION "{publication}" FOR TABLE {names}{with_}')


def require_postgres(engine: Any) -> str:
    """The URL of a started PostgreSQL engine, or ``EngineUnavailable``."""
    url = getattr(engine, "url", "")
    if getattr(engine, "family", "") != "postgres" or not url:
        raise EngineUnavailable(f"expected a started PostgreSQL engine, got {engine!r}")
    return url


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - depends on the install
        raise MissingDependency("psycopg", "postgres") from None
    return psycopg


def connect(url: str, **kwargs: Any) -> Any:
    """An autocommit psycopg connection, failing fast with a one-line reason (never hangs).

    Any driver error (a refused connection, a wrong password, a malformed URL, which libpq
    quotes whole) becomes ``EngineUnavailable`` with the message masked and no traceback.
    """
    psycopg = _psycopg()
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, **kwargs)
    except psycopg.Error as exc:
        raise EngineUnavailable(
            f"cannot connect to PostgreSQL at {mask_url(url)}: {one_line(exc)}; "
            "fix: check host, port, user and password in the URL and that the server runs"
        ) from None


class PostgresEngine:
    """What every PostgreSQL backend offers besides the Engine contract.

    Contract: ``prefix`` starts every name the harness creates (slots, publications, schemas);
    ``stop()`` calls ``cleanup(prefix)`` before stopping, so no slot or publication survives.
    """

    family: ClassVar[str] = "postgres"
    backend: str = ""
    #: fault kinds this backend can inject (external servers: none — the harness does not own them)
    faults: frozenset[str] = frozenset()

    def __init__(self, prefix: str = "cdc_") -> None:
        self.prefix = prefix
        self.url = ""

    # -- Engine contract (backends override) ------------------------------------------------
    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        raise Unsupported(f"the {self.backend} PostgreSQL backend cannot be killed by the harness")

    def restart(self) -> None:
        raise Unsupported(f"the {self.backend} PostgreSQL backend cannot be restarted by the harness")

    def log_path(self) -> Path | None:
        return None

    # -- shared helpers ---------------------------------------------------------------------
    def connect(self, **kwargs: Any) -> Any:
        """An autocommit psycopg connection to the engine."""
        return connect(self.url, **kwargs)

    def check(self) -> None:
        """Raise ``EngineMisconfigured`` naming the setting when logical decoding cannot work."""
        with self.connect() as conn:
            check_server(conn, mask_url(self.url))

    def cleanup(self, prefix: str | None = None) -> None:
        """Drop every replication slot, publication and schema whose name starts with ``prefix``.

        Active slots are released first by terminating their walsender. Idempotent.
        """
        prefix = prefix or self.prefix
        like = prefix.replace("_", r"\_") + "%"
        with self.connect() as conn:
            deadline = time.monotonic() + 15
            while True:
                rows = conn.execute(
                    "SELECT slot_name, active_pid FROM pg_replication_slots WHERE slot_name LIKE %s",
                    (like,)).fetchall()
                if not rows:
                    break
                for slot, pid in rows:
                    if pid:
                        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                        continue
                    with contextlib.suppress(Exception):
                        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                if time.monotonic() > deadline:
                    raise EngineUnavailable(f"could not drop replication slots {[r[0] for r in rows]} "
                                            f"on {mask_url(self.url)} within 15 s")
                time.sleep(0.05)
            for (pub,) in conn.execute("SELECT pubname FROM pg_publication WHERE pubname LIKE %s",
                                       (like,)).fetchall():
                conn.execute(f'DROP PUBLICATION IF EXISTS "{pub}"')
            for (schema,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                          (like,)).fetchall():
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def drop_connections(self, prefix: str | None = None, clients: bool = False) -> int:
        """Terminate the walsenders of slots starting with ``prefix`` (the ``net-drop`` fault).

        With ``clients=True`` also the client backends whose application_name starts with
        ``prefix`` (the harness's sources and readers name their connections so).
        Returns how many backends were terminated. The slot survives; readers must reconnect.
        """
        prefix = prefix or self.prefix
        like = prefix.replace("_", r"\_") + "%"
        with self.connect() as conn:
            pids = [r[0] for r in conn.execute(
                "SELECT active_pid FROM pg_replication_slots "
                "WHERE slot_name LIKE %s AND active_pid IS NOT NULL",
                (like,)).fetchall()]
            if clients:
                pids += [r[0] for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
                    "AND pid <> pg_backend_pid() AND application_name LIKE %s", (like,)).fetchall()]
            for pid in pids:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return len(pids)

    def inject(self, kind: str, point: str, names: str) -> None:
        """Inject a declared fault (the runner pauses the capture loop around it).

        ``source-restart``: ``kill()`` (SIGKILL, no shutdown) then ``restart()`` (crash
        recovery); ``point`` ``idle`` or ``""``. ``net-drop``: terminate the walsenders of the
        run's slots (named with the run's prefix ``names``) and, with ``point='all'``, the run's
        client connections too (application_name starting with ``names``). Readers and the
        source must reconnect; the slot keeps the last confirmed position. ``net-partition``
        (engines that can cut the network, e.g. a container): every connection is lost without
        the server noticing; the reader must take its slot back from the walsender left behind.
        """
        if kind not in self.faults:
            raise Unsupported(f"the {self.backend} PostgreSQL engine does not inject {kind!r} "
                              f"(declares: {', '.join(sorted(self.faults)) or 'none'})")
        if kind == "source-restart":
            self.kill()
            self.restart()
        elif kind == "net-drop":
            self.drop_connections(names, clients=point == "all")
        elif kind == "net-partition":
            self.partition()

    # -- names ------------------------------------------------------------------------------
    @staticmethod
    def schema_for(names: str) -> str:
        """The schema one run's tables live in (what sources write and approaches filter on)."""
        return pg_name(names)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.backend} {mask_url(self.url)}>"


def check_server(conn: Any, where: str) -> None:
    """Check wal_level, free slots/walsenders and the REPLICATION privilege on ``conn``."""
    settings = dict(conn.execute(
        "SELECT name, setting FROM pg_settings WHERE name IN "
        "('wal_level', 'max_replication_slots', 'max_wal_senders')").fetchall())
    if settings.get("wal_level") != "logical":
        raise EngineMisconfigured(
            f"{where}: wal_level is '{settings.get('wal_level')}', logical decoding needs 'logical'; "
            "fix: ALTER SYSTEM SET wal_level = logical; then restart the server")
    used = conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0]
    if int(settings["max_replication_slots"]) - used < 2:
        raise EngineMisconfigured(
            f"{where}: {used} of max_replication_slots={settings['max_replication_slots']} are in use; "
            "fix: drop unused slots (SELECT pg_drop_replication_slot(name)) or raise "
            "max_replication_slots (ALTER SYSTEM SET max_replication_slots = 20; restart)")
    senders = conn.execute("SELECT count(*) FROM pg_stat_replication").fetchone()[0]
    if int(settings["max_wal_senders"]) - senders < 2:
        raise EngineMisconfigured(
            f"{where}: {senders} of max_wal_senders={settings['max_wal_senders']} are busy; "
            "fix: ALTER SYSTEM SET max_wal_senders = 20; then restart the server")
    user, can = conn.execute(
        "SELECT current_user, rolreplication OR rolsuper FROM pg_roles "
        "WHERE rolname = current_user").fetchone()
    if not can:
        raise EngineMisconfigured(
            f"{where}: role '{user}' lacks the REPLICATION privilege; fix: ALTER ROLE \"{user}\" REPLICATION")


def _cleanup_quietly(url: str, prefix: str) -> None:
    """Last-resort cleanup of an external server: drop the harness's slots/publications/schemas."""
    engine = PostgresEngine(prefix)
    engine.url = url
    with contextlib.suppress(Exception):
        engine.cleanup()


def _finalize_local(executor: Any, root: Path) -> None:
    """Last-resort teardown (atexit / garbage collection): kill the cluster, remove its folder."""
    with contextlib.suppress(Exception):
        if executor is not None and executor.running():
            executor.kill(sig=signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)


#: the signal a local postmaster gets when the process that started it dies (kill -9 included):
#: SIGQUIT is PostgreSQL's immediate shutdown, which still removes its shared memory
PARENT_DEATH_SIGNAL = signal.SIGQUIT


def _parent_death_guard() -> Any:
    """The ``preexec_fn`` of the server process: ``containers.process.parent_death_guard``."""
    return parent_death_guard(PARENT_DEATH_SIGNAL)


def _make_executor(command: list[str], url: str, log: Any, user: tuple[int, int] | None,
                   timeout: float) -> Any:
    """A mirakuru executor whose readiness probe is a real query, not just an open port, and
    whose postmaster cannot outlive the process that started it (``_parent_death_guard``)."""
    from mirakuru import Executor

    class PgExecutor(Executor):
        def pre_start_check(self) -> bool:
            return _accepts_queries(url)

        def after_start_check(self) -> bool:
            return _accepts_queries(url)

        @property
        def _popen_kwargs(self) -> dict[str, Any]:
            kwargs = super()._popen_kwargs
            kwargs["preexec_fn"] = _parent_death_guard()
            return kwargs

    popen: dict[str, Any] = {}
    if user is not None:
        popen = {"user": user[0], "group": user[1], "extra_groups": []}
    return PgExecutor(command, timeout=timeout, sleep=0.05, stop_signal=signal.SIGINT,
                      stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, popen_kwargs=popen)


def _accepts_queries(url: str) -> bool:
    psycopg = _psycopg()
    try:
        with psycopg.connect(url, connect_timeout=1, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


class LocalPostgres(PostgresEngine):
    """A private cluster from the machine's PostgreSQL 15 binaries on a free loopback port.

    Data lives in a 0700 temp dir owned by an unprivileged user (``postgres`` when running as
    root). ``kill()`` SIGKILLs the postmaster's process group; ``restart()`` starts it again,
    which runs crash recovery. ``stop()`` drops the harness's slots and publications, shuts the
    server down fast and removes the directory; it is idempotent and also runs at exit.
    """

    backend = "local"
    faults = frozenset({"source-restart", "net-drop"})

    def __init__(self, prefix: str = "cdc_", bin_dir: Path | None = None, user: str = "postgres",
                 start_timeout_s: float = 60.0, settings: dict[str, str] | None = None) -> None:
        super().__init__(prefix)
        self.bin_dir = bin_dir or PG_BIN
        self.user = user
        self.start_timeout_s = start_timeout_s
        #: server settings over ``SERVER_SETTINGS`` (e.g. ``{"wal_level": "replica"}`` in tests)
        self.settings = dict(settings or {})
        self.root: Path | None = None
        self.port = 0
        self._executor: Any = None
        self._log: Any = None
        self._finalizer: weakref.finalize | None = None

    @staticmethod
    def available(bin_dir: Path | None = None) -> str | None:
        """None when the binaries exist, else why not (with the install command)."""
        bin_dir = bin_dir or PG_BIN
        for exe in ("initdb", "postgres"):
            if not (bin_dir / exe).exists():
                return f"PostgreSQL binary {bin_dir / exe} not found; fix: {INSTALL_HINT}"
        return None

    def _owner(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        try:
            pw = pwd.getpwnam(self.user)
        except KeyError:
            raise EngineUnavailable(
                f"running as root needs an unprivileged system user '{self.user}' for PostgreSQL; "
                f"fix: {INSTALL_HINT} (creates it) or useradd --system {self.user}") from None
        return pw.pw_uid, pw.pw_gid

    def start(self) -> None:
        """initdb (first time) and start the server; return when it answers queries."""
        if self._executor is not None and self._executor.running():
            return
        missing = self.available(self.bin_dir)
        if missing:
            raise EngineUnavailable(missing)
        try:
            import port_for
        except ImportError:  # pragma: no cover
            raise MissingDependency("port-for", "postgres") from None
        owner = self._owner()
        if self.root is None:
            from harness.lifecycle import write_owner

            self.root = private_dir("postgres")
            write_owner(self.root, engine="postgres")  # before anything else: the sweep's key
            self._finalizer = weakref.finalize(self, _finalize_local, None, self.root)
            self.port = port_for.select_random()
            self._initdb(owner)
        from harness.lifecycle import install_sigterm

        install_sigterm()  # outside pytest too: SIGTERM unwinds, so stop() and finalizers run
        self._launch(owner)

    def _initdb(self, owner: tuple[int, int] | None) -> None:
        assert self.root is not None
        password = secrets.token_urlsafe(18)
        register(password)
        pwfile = self.root / "pwfile"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        if owner:
            os.chown(self.root, *owner)
            os.chown(pwfile, *owner)
        data = self.root / "data"
        cmd = [str(self.bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
               "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
               f"--pwfile={pwfile}", "--no-sync", "--no-instructions"]
        kwargs: dict[str, Any] = {"user": owner[0], "group": owner[1], "extra_groups": []} if owner else {}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.root, **kwargs)
        except subprocess.TimeoutExpired:
            raise EngineUnavailable("initdb did not finish within 120 s") from None
        pwfile.unlink()
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise EngineUnavailable(f"initdb failed: {' | '.join(tail)}")
        self.url = f"postgresql://postgres:{quote(password, safe='')}@127.0.0.1:{self.port}/postgres"

    def _launch(self, owner: tuple[int, int] | None) -> None:
        assert self.root is not None
        settings = {**SERVER_SETTINGS, "port": str(self.port), "unix_socket_directories": ""}
        if self._has_setting("output_plugin_libraries"):  # some builds restrict output plugins
            settings["output_plugin_libraries"] = "pgoutput, test_decoding, wal2json"
        settings.update(self.settings)
        cmd = [str(self.bin_dir / "postgres"), "-D", str(self.root / "data")]
        for k, v in settings.items():
            cmd += ["-c", f"{k}={v}"]
        if self._log is None:
            self._log = open(self.root / "server.log", "ab")  # noqa: SIM115 - closed in stop()
        self._executor = _make_executor(cmd, self.url, self._log, owner, self.start_timeout_s)
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _finalize_local, self._executor, self.root)
        from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, TimeoutExpired
        try:
            self._executor.start()
        except (ProcessExitedWithError, TimeoutExpired) as exc:
            self._executor.kill()
            raise EngineUnavailable(f"PostgreSQL did not start ({type(exc).__name__}); "
                                    f"server log: {log_tail(self.log_path())}") from None
        except AlreadyRunning:
            raise EngineUnavailable(f"port {self.port} is already taken by another server") from None

    def _has_setting(self, name: str) -> bool:
        """True when this server build knows the setting ``name`` (``postgres --describe-config``)."""
        try:
            out = subprocess.run([str(self.bin_dir / "postgres"), "--describe-config"], capture_output=True,
                                 text=True, timeout=30, user=None if os.geteuid() else self.user)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return any(line.split("\t", 1)[0] == name for line in out.stdout.splitlines())

    def kill(self) -> None:
        """Crash the server: SIGKILL to the postmaster and all its backends (no shutdown)."""
        if self._executor is not None:
            self._executor.kill(sig=signal.SIGKILL)

    def restart(self) -> None:
        """Start the server again on the same port and data; crash recovery runs if it was killed."""
        if self.root is None:
            raise EngineUnavailable("restart() before start()")
        if self._executor is not None and self._executor.running():
            self._executor.stop()
        self._launch(self._owner())

    def stop(self) -> None:
        """Drop the harness's slots/publications/schemas, shut down fast, remove the folder."""
        try:
            if self._executor is not None and self._executor.running():
                with contextlib.suppress(Exception):
                    self.cleanup()
                try:
                    self._executor.stop()
                except Exception:
                    self._executor.kill(sig=signal.SIGKILL)
        finally:
            self._executor = None
            if self._log is not None:
                self._log.close()
                self._log = None
            if self._finalizer is not None:
                self._finalizer()  # removes the folder (the process is gone already)
                self._finalizer = None
            self.root = None

    def log_path(self) -> Path | None:
        return self.root / "server.log" if self.root else None


#: the Docker server's settings over ``SERVER_SETTINGS``: a shorter ``wal_sender_timeout`` (20 s),
#: so a slot reader takes a silent stream as dead after 15 s instead of 35 s (``net-partition``,
#: the fault only a container takes; the local server keeps 60 s for the JVM readers under load)
DOCKER_SETTINGS: dict[str, str] = {"wal_sender_timeout": "20s"}

class DockerPostgres(ContainerFaults, ContainerLog, PostgresEngine):
    """PostgreSQL 15 in a testcontainers ``PostgresContainer``, bound to 127.0.0.1, with the CDC
    settings as server flags; on any Docker-compatible API (a Docker daemon, or the podman
    service ``--cdc-engines=docker`` starts: ``containers.docker_api``).

    The image is ``image`` (``--cdc-image postgres=NAME``), else the official ``postgres:15``
    where it can be pulled, else the project's own build ``localhost/cdc-postgres:15``
    (``scripts/setup-docker.sh``); both honour the same environment contract. Faults go through
    the container API: ``kill()`` SIGKILLs the container, ``restart()`` starts it again (crash
    recovery on the same data and port); ``net-drop`` terminates the run's connections;
    ``net-partition`` cuts the container off its network for ``PARTITION_S`` (the server sees no
    disconnect: the walsender of a reader's slot lives on, the slot stays active, until
    ``wal_sender_timeout`` — a reader coming back finds "replication slot ... is active for PID").
    The container carries the run's labels and is removed by ``stop()`` (or by the next
    session's sweep when this process was killed).
    """

    backend = "docker"
    faults = frozenset({"source-restart", "net-drop", "net-partition"})

    def __init__(self, prefix: str = "cdc_", image: str | None = None, start_timeout_s: float = 120.0) -> None:
        super().__init__(prefix)
        self.image = image
        self.start_timeout_s = start_timeout_s
        self._container: Any = None

    def start(self) -> None:
        """Create and start the container; return when PostgreSQL answers queries over TCP."""
        if self._container is not None:
            return
        import port_for

        from containers.docker_api import container_class, image_for, labels, require_docker

        require_docker()
        PostgresContainer = container_class("postgres", "PostgresContainer", "postgres")  # noqa: N806 - a class
        image = image_for("postgres", self.image)

        class Container(PostgresContainer):
            def _connect(self) -> None:
                """No ``psql`` run inside (each exec leaves a podman conmon for 5 minutes):
                readiness is a real query over the published port (``_wait_ready``)."""

        password = secrets.token_urlsafe(18)
        register(password)
        settings = {**SERVER_SETTINGS, **DOCKER_SETTINGS}
        flags = [f"-c{k}={v}" for k, v in settings.items() if k != "listen_addresses"]
        port = port_for.select_random()
        # a user and database of their own: the image's POSTGRES_USER/POSTGRES_DB contract, every run
        container = Container(image, username="cdc", password=password, dbname="cdc", driver=None)
        container.with_command(["postgres", "-clisten_addresses=*", *flags])
        container.ports["5432"] = ("127.0.0.1", port)  # loopback only (with_bind_ports takes no address)
        container.with_kwargs(labels=labels(self.prefix))
        self._container = container
        try:
            container.start()
        except Exception as exc:  # noqa: BLE001 - docker/testcontainers raise many kinds: one line each
            logs = self._logs()
            self.stop()
            raise EngineUnavailable(f"the PostgreSQL container ({image}) did not start: {type(exc).__name__}: "
                                    f"{one_line(exc)[:300]}; container log: {logs}") from None
        self.url = f"postgresql://cdc:{quote(password, safe='')}@127.0.0.1:{port}/cdc"
        self._wait_ready("start")
        self.check()

    def _logs(self) -> str:
        from containers.docker_api import log_tail

        return log_tail(self._container)

    def _wait_ready(self, what: str) -> None:
        from containers.docker_api import wait_ready

        wait_ready(lambda: _accepts_queries(self.url), self.start_timeout_s,
                   lambda: f"the PostgreSQL container did not answer on 127.0.0.1 after {what} within "
                           f"{self.start_timeout_s:.0f} s; container log: {self._logs()}")

    def stop(self) -> None:
        """Drop the harness's slots/publications/schemas and remove the container (and its volume)."""
        container, self._container = self._container, None
        if container is None:
            return
        if self.url:
            with contextlib.suppress(Exception):
                self.cleanup()
        try:
            container.stop()
        except Exception:  # noqa: BLE001 - already gone: nothing left to remove
            pass


class ExternalPostgres(PostgresEngine):
    """A user-given server (``--cdc-engine-url postgres=postgresql://…``); checked up front.

    ``kill``/``restart`` are unsupported (fault scenarios report ``unsupported``). ``stop()``
    only drops what the harness created (names starting with ``prefix``). While started it
    holds a *lease*: a connection named ``cdc-lease <prefix>``, so that another session's
    leftover sweep (``sweep_external``) knows these names are in use.
    """

    backend = "external"

    def __init__(self, url: str, prefix: str = "cdc_") -> None:
        super().__init__(prefix)
        register_url(url)
        if not url.startswith(("postgresql://", "postgres://")):
            raise EngineMisconfigured(f"external PostgreSQL URL must start with postgresql://, got "
                                      f"{mask_url(url)!r}")
        self.url = url
        self._started = False
        self._lease: Any = None

    def start(self) -> None:
        lease = connect(self.url, application_name=(LEASE_APP + self.prefix)[:63])
        try:
            check_server(lease, mask_url(self.url))
        except BaseException:
            lease.close()
            raise
        self._lease = lease
        self._started = True
        # at exit (or if the engine is dropped without stop), still drop what the harness made
        self._finalizer = weakref.finalize(self, _cleanup_quietly, self.url, self.prefix)

    def stop(self) -> None:
        if self._started:
            self._started = False
            self._finalizer.detach()
            try:
                self.cleanup()
            finally:
                lease, self._lease = self._lease, None
                if lease is not None:
                    with contextlib.suppress(Exception):
                        lease.close()


def sweep_external(url: str, prefix: str = HARNESS_PREFIX, wait_s: float = 5.0) -> list[str]:
    """Drop the slots, publications and schemas of killed sessions on an external server.

    Candidates are names starting with ``prefix`` in the URL's database (slots: those of that
    database); a name is in use while a live session's lease (``cdc-lease <its prefix>``) covers
    it, and is then left alone whoever owns it, on whatever machine. Walsenders still holding a
    leftover slot are terminated first; a slot still busy after ``wait_s`` is left for next time.
    Returns what was removed, as one phrase (empty list: nothing).
    """
    like = prefix.replace("_", r"\_") + "%"
    with connect(url, application_name="cdc-sweep") as conn:
        leases = [row[0][len(LEASE_APP):] for row in conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE %s",
            (LEASE_APP.replace("_", r"\_") + "%",)).fetchall()]

        def leftover(name: str) -> bool:
            return not any(name.startswith(p) for p in leases if p.startswith(prefix))

        slots: list[str] = []
        deadline = time.monotonic() + wait_s
        while True:
            rows = [(n, pid) for n, pid in conn.execute(
                "SELECT slot_name, active_pid FROM pg_replication_slots "
                "WHERE slot_name LIKE %s AND database = current_database()", (like,)).fetchall()
                if leftover(n) and n not in slots]
            busy = False
            for name, pid in rows:
                if pid:
                    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    busy = True
                    continue
                with contextlib.suppress(Exception):
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
                    slots.append(name)
            if not busy or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        pubs = [n for (n,) in conn.execute("SELECT pubname FROM pg_publication WHERE pubname LIKE %s",
                                           (like,)).fetchall() if leftover(n)]
        for name in pubs:
            conn.execute(f'DROP PUBLICATION IF EXISTS "{name}"')
        schemas = [n for (n,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                              (like,)).fetchall() if leftover(n)]
        for name in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    if not (slots or pubs or schemas):
        return []
    parts = [_count(len(slots), "replication slot"), _count(len(pubs), "publication"),
             _count(len(schemas), "schema")]
    return [f"on {mask_url(url)}: " + ", ".join(p for p in parts if p)]


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}" if n else ""


def stop_leftover_server(root: Path) -> list[str]:
    """Stop the postmaster still running in a dead session's private dir ``root`` (if any).

    Only a process whose working directory is ``root/data`` and whose pid is in its
    ``postmaster.pid`` is signalled: SIGQUIT (immediate shutdown, shared memory released),
    SIGKILL if it is still there after 10 s. Returns what was stopped.
    """
    from harness.lifecycle import pid_alive

    data = Path(root) / "data"
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return []
    if not pid_alive(pid):
        return []
    try:
        if Path(os.readlink(f"/proc/{pid}/cwd")).resolve() != data.resolve():
            return []
    except OSError:
        return []
    return terminate(pid, signal.SIGQUIT, "postgres server")


def build_postgres_engine(backend: str = "auto", url: str | None = None,
                          prefix: str = "cdc_", image: str | None = None) -> PostgresEngine:
    """The engine for ``--cdc-engines`` (``auto|local|docker|external``) and an optional URL.

    ``auto``: an external URL when given, else docker when it answers, else local when the
    binaries exist, else ``EngineUnavailable`` with the install command. Not started yet.
    """
    if backend == "external" or (backend == "auto" and url):
        if not url:
            raise EngineMisconfigured("--cdc-engines=external needs --cdc-engine-url postgres=postgresql://…")
        return ExternalPostgres(url, prefix)
    if backend == "docker":
        return DockerPostgres(prefix, image=image)
    if backend == "local":
        return LocalPostgres(prefix)
    if backend != "auto":
        raise EngineMisconfigured(f"unknown engine backend {backend!r}; valid: auto, local, docker, external")
    from containers.docker_api import docker_answers

    if docker_answers(timeout_s=2.0) is None:
        return DockerPostgres(prefix, image=image)
    missing = LocalPostgres.available()
    if missing is None:
        return LocalPostgres(prefix)
    raise EngineUnavailable(f"no Docker engine and {missing}")


def engine_from_options(backend: str = "auto", url: str | None = None, name_prefix: str = "cdc_",
                        timeout_s: float = 60.0, image: str | None = None) -> PostgresEngine:
    """``build_postgres_engine`` with the plugin's option names; ``timeout_s`` bounds startup,
    ``image`` is the Docker backend's (``--cdc-image postgres=NAME``)."""
    engine = build_postgres_engine(backend, url, prefix=_sanitize(name_prefix), image=image)
    if isinstance(engine, LocalPostgres | DockerPostgres):
        engine.start_timeout_s = max(timeout_s, 10.0)
    return engine


def _sanitize(prefix: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", prefix.lower())
