"""MariaDB/MySQL engine: a private local MariaDB, a testcontainers container, or an external server.

All backends share :class:`MySqlEngine`: ``url`` (``mysql://user:password@host:port/``),
``connect()`` (a pymysql connection), ``database_for(prefix)`` (the naming rule of a run's
database), ``check()`` (the binlog settings CDC needs, raising ``EngineMisconfigured`` naming the
setting to change), ``configure(settings)`` (a case's global binlog settings) and
``drop_connections`` (``KILL`` of a run's binlog dump threads: the ``net-drop`` fault).
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
import weakref
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlsplit

from containers.docker_api import ContainerFaults, ContainerLog
from containers.engine import log_tail, private_dir
from containers.process import parent_death_guard, stop_pid_file
from harness.errors import EngineMisconfigured, EngineUnavailable, MissingDependency, Unsupported
from harness.lifecycle import install_sigterm
from harness.secrets import mask_url, one_line, register, register_url

INSTALL_HINT = "apt-get install -y mariadb-server (or: bash scripts/setup-mariadb.sh)"
CONNECT_TIMEOUT_S = 5
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
#: the server settings every backend expects (the local one starts with them)
EXPECTED: dict[str, str] = {
    "log_bin": "ON",
    "binlog_format": "ROW",
    "binlog_row_image": "FULL",
    "binlog_row_metadata": "FULL",
}
#: ``mariadbd`` options of the local backend (besides paths and the port)
LOCAL_OPTIONS: tuple[str, ...] = (
    "--bind-address=127.0.0.1",
    "--skip-name-resolve",
    "--binlog-format=ROW",
    "--binlog-row-image=FULL",
    "--binlog-row-metadata=FULL",
    "--server-id=1",
    "--gtid-strict-mode=1",
    "--gtid-domain-id=0",
    # the harness kills processes, not the machine: the OS page cache survives a kill -9
    "--innodb-flush-log-at-trx-commit=2",
    "--sync-binlog=0",
    "--innodb-doublewrite=0",
    "--innodb-buffer-pool-size=256M",
    "--innodb-log-file-size=128M",
    "--max-connections=200",
    "--max-allowed-packet=256M",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_bin",
    "--default-time-zone=+00:00",
    "--local-infile=1",
    "--skip-log-slave-updates",
    "--performance-schema=0",
)
SETTING_VALUES = {"binlog_row_image": ("full", "minimal", "noblob"), "binlog_row_metadata": ("full", "minimal")}


def mysql_name(text: str) -> str:
    """A lowercase MySQL identifier (≤ 64 characters) derived from ``text``, stable and unique."""
    name = re.sub(r"[^a-z0-9_]", "_", text.lower())
    if len(name) > 64:
        name = name[:55] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


def _pymysql() -> Any:
    try:
        import pymysql
    except ImportError:  # pragma: no cover - depends on the install
        raise MissingDependency("pymysql", "mysql") from None
    return pymysql


def parse_url(url: str) -> dict[str, Any]:
    """pymysql connection keywords from ``mysql://user:password@host:port/db`` (no TLS on loopback)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb"):
        raise EngineMisconfigured(f"a MySQL URL must start with mysql://, got {mask_url(url)!r}")
    out: dict[str, Any] = {"host": parts.hostname or "127.0.0.1", "port": parts.port or 3306,
                           "user": unquote(parts.username or "root"), "password": unquote(parts.password or "")}
    db = parts.path.lstrip("/")
    if db:
        out["database"] = db
    if out["host"] in LOOPBACK:
        # pymysql ≥ 1.2 tries TLS by default and builds an SSL context (the system CA store, ~80 ms
        # of CPU holding the GIL) for every connection: nothing to protect on loopback
        out["ssl_disabled"] = True
    return out


def connect(url: str, **kwargs: Any) -> Any:
    """An autocommit pymysql connection in UTC, failing fast with a one-line reason."""
    pymysql = _pymysql()
    params = {**parse_url(url), "autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S, "charset": "utf8mb4",
              "init_command": "SET time_zone = '+00:00'", **kwargs}
    try:
        return pymysql.connect(**params)
    except pymysql.Error as exc:
        raise EngineUnavailable(f"cannot connect to MySQL at {mask_url(url)}: {one_line(exc)}; fix: check "
                                "host, port, user and password in the URL and that the server runs") from None


def require_mysql(engine: Any) -> str:
    """The URL of a started MySQL-family engine, or ``EngineUnavailable``."""
    url = getattr(engine, "url", "")
    if getattr(engine, "family", "") != "mysql" or not url:
        raise EngineUnavailable(f"expected a started MySQL/MariaDB engine, got {engine!r}")
    return url


def check_server(conn: Any, where: str) -> None:
    """Raise ``EngineMisconfigured`` naming the server setting when binlog CDC cannot work."""
    with conn.cursor() as cur:
        cur.execute("SELECT @@global.log_bin, @@global.binlog_format, @@global.binlog_row_image, "
                    "@@global.binlog_row_metadata")
        log_bin, fmt, image, meta = cur.fetchone()
    if str(log_bin) not in ("1", "ON"):
        raise EngineMisconfigured(f"{where}: the binary log is off (log_bin); fix: start the server with "
                                  "--log-bin and --binlog-format=ROW")
    if str(fmt).upper() != "ROW":
        raise EngineMisconfigured(f"{where}: binlog_format is {fmt}, row events need ROW; fix: "
                                  "SET GLOBAL binlog_format = 'ROW' (and binlog_format=ROW in the server config)")
    if str(image).upper() != "FULL":
        raise EngineMisconfigured(f"{where}: binlog_row_image is {image}, the harness expects FULL (variants set "
                                  "their own per session); fix: SET GLOBAL binlog_row_image = 'FULL'")
    if str(meta).upper() != "FULL":
        raise EngineMisconfigured(f"{where}: binlog_row_metadata is {meta}, column names need FULL; fix: "
                                  "SET GLOBAL binlog_row_metadata = 'FULL'")


class MySqlEngine:
    """What every MariaDB/MySQL backend offers besides the Engine contract.

    Contract: ``prefix`` starts every name the harness creates (databases); ``stop()`` drops
    them. ``flavor`` is ``mariadb`` or ``mysql`` (read from ``VERSION()`` at start).
    """

    family: ClassVar[str] = "mysql"
    backend: str = ""
    faults: frozenset[str] = frozenset()

    def __init__(self, prefix: str = "cdc_") -> None:
        self.prefix = prefix
        self.url = ""
        self.flavor = "mariadb"
        #: global settings a case asked for (re-applied after a restart)
        self.globals: dict[str, str] = {}

    # -- Engine contract (backends override) ------------------------------------------------
    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        raise Unsupported(f"the {self.backend} MySQL backend cannot be killed by the harness")

    def restart(self) -> None:
        raise Unsupported(f"the {self.backend} MySQL backend cannot be restarted by the harness")

    def log_path(self) -> Path | None:
        return None

    def inject(self, kind: str, point: str, names: str) -> None:
        """``source-restart``: kill -9 and restart (crash recovery); ``net-drop``: KILL the run's
        binlog dump threads (and, for point ``all``, its client connections); ``net-partition``
        (engines that can cut the network, e.g. a container): every connection is lost without
        the server noticing."""
        if kind not in self.faults:
            raise Unsupported(f"the {self.backend} MySQL engine declares no fault {kind!r}")
        if kind == "source-restart":
            self.kill()
            self.restart()
        elif kind == "net-drop":
            self.drop_connections(names, clients=point == "all")
        elif kind == "net-partition":
            self.partition()

    # -- shared helpers ---------------------------------------------------------------------
    @staticmethod
    def database_for(prefix: str) -> str:
        """The database a run's tables live in (sources write there, readers filter on it)."""
        return mysql_name(prefix)

    def connect(self, **kwargs: Any) -> Any:
        """An autocommit pymysql connection to the engine (session time zone UTC)."""
        return connect(self.url, **kwargs)

    def check(self) -> None:
        """Raise ``EngineMisconfigured`` naming the setting when binlog CDC cannot work."""
        conn = self.connect()
        try:
            check_server(conn, mask_url(self.url))
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                self.flavor = "mariadb" if "mariadb" in str(cur.fetchone()[0]).lower() else "mysql"
        finally:
            conn.close()

    def configure(self, settings: dict[str, Any]) -> None:
        """Apply a case's *global* binlog settings (``binlog_row_metadata``) before it writes.

        ``binlog_row_image`` is per session (the source sets it); ``binlog_row_metadata`` is
        global only, so the engine sets it, remembers it and re-applies it after a restart.
        External servers are not reconfigured: a variant they do not run is ``Unsupported``.
        """
        meta = str(settings.get("binlog_row_metadata", "full")).upper()
        if meta.lower() not in SETTING_VALUES["binlog_row_metadata"]:
            raise Unsupported(f"binlog_row_metadata must be one of {SETTING_VALUES['binlog_row_metadata']}")
        self.globals["binlog_row_metadata"] = meta
        self._apply_globals()

    def _apply_globals(self) -> None:
        if not self.globals:
            return
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                for name, value in self.globals.items():
                    cur.execute(f"SET GLOBAL {name} = %s", (value,))
        finally:
            conn.close()

    def gtid_position(self) -> str:
        """The server's current binlog GTID position (MariaDB ``@@gtid_binlog_pos``, MySQL
        ``@@gtid_executed``)."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@global.gtid_binlog_pos" if self.flavor == "mariadb"
                            else "SELECT @@global.gtid_executed")
                return str(cur.fetchone()[0] or "")
        finally:
            conn.close()

    def drop_connections(self, prefix: str, clients: bool = False) -> int:
        """KILL the binlog dump threads whose current database is the run's (readers connect
        with it), and with ``clients`` the run's other connections (the source's). Returns how
        many were killed."""
        db = self.database_for(prefix)
        conn = self.connect()
        killed = 0
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT ID, COMMAND FROM information_schema.PROCESSLIST WHERE DB = %s "
                            "AND ID <> CONNECTION_ID()", (db,))
                for pid, command in cur.fetchall():
                    if "binlog dump" in str(command).lower() or clients:
                        with contextlib.suppress(Exception):
                            cur.execute(f"KILL {int(pid)}")
                            killed += 1
        finally:
            conn.close()
        return killed

    def cleanup(self, prefix: str | None = None) -> None:
        """Drop every database whose name starts with ``prefix``. Idempotent."""
        prefix = mysql_name(prefix or self.prefix)
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
                            (prefix.replace("_", r"\_") + "%",))
                for (name,) in cur.fetchall():
                    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            conn.close()


def _accepts_queries(url: str) -> bool:
    pymysql = _pymysql()
    try:
        conn = pymysql.connect(**parse_url(url), connect_timeout=1)
    except pymysql.Error:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        return True
    except pymysql.Error:
        return False
    finally:
        conn.close()


#: the signal a local mariadbd gets when the process that started it dies (kill -9 included)
PARENT_DEATH_SIGNAL = signal.SIGKILL


def _parent_death_guard() -> Any:
    """The ``preexec_fn`` of the server process: ``containers.process.parent_death_guard``."""
    return parent_death_guard(PARENT_DEATH_SIGNAL)


def stop_leftover_server(root: Path) -> list[str]:
    """Stop the mariadbd still running in a dead session's private dir ``root`` (if any).

    Only a process whose pid is in ``root/mariadbd.pid`` and whose command line names
    ``--datadir=root/data`` is signalled: SIGTERM (shutdown), SIGKILL if it is still there after
    10 s. Returns what was stopped.
    """
    return stop_pid_file(Path(root) / "mariadbd.pid", f"--datadir={Path(root) / 'data'}", "mariadb server")


def _finalize_local(executor: Any, root: Path | None) -> None:
    if executor is not None:
        with contextlib.suppress(Exception):
            executor.kill(sig=signal.SIGKILL)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


def _find(exe: str) -> str | None:
    return shutil.which(exe) or next((str(p) for p in (Path("/usr/sbin") / exe, Path("/usr/bin") / exe)
                                      if p.exists()), None)


class LocalMariaDb(MySqlEngine):
    """A private MariaDB server from the machine's binaries on a free loopback port.

    ``mariadb-install-db`` into a 0700 temp dir (owned by the ``mysql`` system user when running
    as root), then ``mariadbd`` as a child process (mirakuru; readiness = a real query) with the
    binlog settings in ``LOCAL_OPTIONS``; a user ``cdc``@``127.0.0.1`` with a random password is
    created by an init file. ``kill()`` SIGKILLs it; ``restart()`` starts the same data dir, which
    runs crash recovery. ``stop()`` drops the harness's databases, shuts down and removes the dir.
    """

    backend = "local"
    faults = frozenset({"source-restart", "net-drop"})

    def __init__(self, prefix: str = "cdc_", user: str = "mysql", start_timeout_s: float = 60.0) -> None:
        super().__init__(prefix)
        self.user = user
        self.start_timeout_s = start_timeout_s
        self.root: Path | None = None
        self.port = 0
        self._executor: Any = None
        self._log: Any = None
        self._finalizer: weakref.finalize | None = None

    @staticmethod
    def available() -> str | None:
        """None when the binaries exist, else why not (with the install command)."""
        for exe in ("mariadb-install-db", "mariadbd"):
            if _find(exe) is None:
                return f"MariaDB binary {exe} not found; fix: {INSTALL_HINT}"
        return None

    def _owner(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        try:
            pw = pwd.getpwnam(self.user)
        except KeyError:
            raise EngineUnavailable(f"running as root needs the system user '{self.user}' for MariaDB; "
                                    f"fix: {INSTALL_HINT} (creates it)") from None
        return pw.pw_uid, pw.pw_gid

    def start(self) -> None:
        """Install the data dir (first time) and start the server; return when it answers queries."""
        if self._executor is not None and self._executor.running():
            return
        missing = self.available()
        if missing:
            raise EngineUnavailable(missing)
        try:
            import port_for
        except ImportError:  # pragma: no cover
            raise MissingDependency("port-for", "mysql") from None
        owner = self._owner()
        if self.root is None:
            self.root = private_dir("mariadb")
            self._finalizer = weakref.finalize(self, _finalize_local, None, self.root)
            self.port = port_for.select_random()
            self._install(owner)
        install_sigterm()
        self._launch(owner)
        self.check()
        self._apply_globals()

    def _install(self, owner: tuple[int, int] | None) -> None:
        assert self.root is not None
        password = secrets.token_urlsafe(18)
        register(password)
        (self.root / "data").mkdir()
        (self.root / "binlog").mkdir()
        init = self.root / "init.sql"
        init.write_text(
            f"CREATE USER IF NOT EXISTS 'cdc'@'127.0.0.1' IDENTIFIED BY '{password}';\n"
            "GRANT ALL PRIVILEGES ON *.* TO 'cdc'@'127.0.0.1' WITH GRANT OPTION;\n")
        os.chmod(init, 0o600)
        if owner:
            for path in (self.root, self.root / "data", self.root / "binlog", init):
                os.chown(path, *owner)
        cmd = [str(_find("mariadb-install-db")), "--no-defaults", f"--datadir={self.root / 'data'}",
               "--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve"]
        if owner:
            cmd.append(f"--user={self.user}")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.root)
        except subprocess.TimeoutExpired:
            raise EngineUnavailable("mariadb-install-db did not finish within 120 s") from None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise EngineUnavailable(f"mariadb-install-db failed: {' | '.join(tail)}")
        self.url = f"mysql://cdc:{quote(password, safe='')}@127.0.0.1:{self.port}/"
        register_url(self.url)

    def _command(self, owner: tuple[int, int] | None) -> list[str]:
        assert self.root is not None
        cmd = [str(_find("mariadbd")), "--no-defaults", f"--datadir={self.root / 'data'}",
               f"--port={self.port}", f"--socket={self.root / 'mysqld.sock'}",
               f"--pid-file={self.root / 'mariadbd.pid'}", f"--log-bin={self.root / 'binlog' / 'bin'}",
               f"--log-error={self.root / 'server.log'}", f"--init-file={self.root / 'init.sql'}",
               f"--tmpdir={self.root}", *LOCAL_OPTIONS]
        return cmd

    def _launch(self, owner: tuple[int, int] | None) -> None:
        from mirakuru import Executor
        from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, TimeoutExpired

        url = self.url

        class MariaDbExecutor(Executor):
            def pre_start_check(self) -> bool:
                return _accepts_queries(url)

            def after_start_check(self) -> bool:
                return _accepts_queries(url)

            @property
            def _popen_kwargs(self) -> dict[str, Any]:
                kwargs = super()._popen_kwargs
                kwargs["preexec_fn"] = _parent_death_guard()
                return kwargs

        # as root, Popen switches to the mysql user before the guard runs (mariadbd's own --user
        # would switch after it and clear the parent-death signal)
        popen = {"user": owner[0], "group": owner[1], "extra_groups": []} if owner else {}
        self._executor = MariaDbExecutor(self._command(owner), timeout=self.start_timeout_s, sleep=0.05,
                                         stop_signal=signal.SIGTERM, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, popen_kwargs=popen)
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _finalize_local, self._executor, self.root)
        try:
            self._executor.start()
        except (ProcessExitedWithError, TimeoutExpired) as exc:
            self._executor.kill()
            raise EngineUnavailable(f"MariaDB did not start ({type(exc).__name__}); "
                                    f"server log: {log_tail(self.log_path())}") from None
        except AlreadyRunning:
            raise EngineUnavailable(f"port {self.port} is already taken by another server") from None

    def kill(self) -> None:
        """Crash the server: SIGKILL to mariadbd (no shutdown, no flush beyond the OS cache)."""
        if self._executor is not None:
            self._executor.kill(sig=signal.SIGKILL)

    def restart(self) -> None:
        """Start the server again on the same port and data; crash recovery runs if it was killed."""
        if self.root is None:
            raise EngineUnavailable("restart() before start()")
        if self._executor is not None and self._executor.running():
            self._executor.stop()
        self._launch(self._owner())
        self._apply_globals()

    def stop(self) -> None:
        """Drop the harness's databases, shut down, remove the folder. Idempotent."""
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
            if self._finalizer is not None:
                self._finalizer()
                self._finalizer = None
            self.root = None

    def log_path(self) -> Path | None:
        return self.root / "server.log" if self.root else None


class DockerMySql(ContainerFaults, ContainerLog, MySqlEngine):
    """MariaDB (or MySQL 8.4) in a testcontainers ``MySqlContainer``, port bound to 127.0.0.1, with
    the binlog settings as server flags, labelled with its owner process and run (see
    ``containers.docker_api``). The image is ``image`` (``--cdc-image mysql=NAME``, or the
    ``CDC_MYSQL_IMAGE`` environment variable), else ``mariadb:11`` where it can be pulled, else the
    project's ``localhost/cdc-mariadb:11.8`` (Debian trixie's MariaDB 11.8; the local backend runs 10.11).
    ``kill()``/``restart()`` go through the container API; ``net-partition`` cuts the container off
    its network for ``PARTITION_S`` (``ContainerFaults.partition``)."""

    backend = "docker"
    faults = frozenset({"source-restart", "net-drop", "net-partition"})

    def __init__(self, prefix: str = "cdc_", image: str | None = None, start_timeout_s: float = 120.0) -> None:
        super().__init__(prefix)
        self.image = image
        self.start_timeout_s = start_timeout_s
        self._container: Any = None

    def start(self) -> None:
        if self._container is not None:
            return
        import port_for

        from containers.docker_api import container_class, image_for, labels, require_docker

        require_docker(INSTALL_HINT)
        MySqlContainer = container_class("mysql", "MySqlContainer", "mysql")  # noqa: N806 - a class
        image = image_for("mysql", self.image)
        password = secrets.token_urlsafe(18)
        register(password)
        flags = ["--log-bin=bin", "--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL",
                 "--server-id=1", "--character-set-server=utf8mb4", "--default-time-zone=+00:00"]
        flags += ["--gtid-strict-mode=1"] if "mariadb" in image else ["--gtid-mode=ON", "--enforce-gtid-consistency=ON"]
        port = port_for.select_random()
        container = MySqlContainer(image, username="cdc", password=password, root_password=password)
        container.with_command(flags)
        container.ports["3306"] = ("127.0.0.1", port)  # loopback only (with_bind_ports takes no address)
        container.with_kwargs(labels=labels(self.prefix))
        self._container = container
        try:
            container.start()
        except Exception as exc:  # noqa: BLE001 - docker/testcontainers raise many kinds: one line each
            self.stop()
            raise EngineUnavailable(f"the MariaDB/MySQL container ({image}) did not start: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0][:300] if str(exc) else ''}") from None
        self.url = f"mysql://root:{quote(password, safe='')}@127.0.0.1:{port}/"
        register_url(self.url)
        self._wait_ready("start")
        self.check()

    def _wait_ready(self, what: str) -> None:
        from containers.docker_api import log_tail, wait_ready

        wait_ready(lambda: _accepts_queries(self.url), self.start_timeout_s,
                   lambda: f"the MariaDB/MySQL container did not answer on 127.0.0.1 after {what} within "
                           f"{self.start_timeout_s:.0f} s; container log: {log_tail(self._container)}")

    def restart(self) -> None:
        """Start the killed container again (same data, same port; the server runs crash recovery),
        wait until it answers, and set the binlog globals again."""
        super().restart()
        self._apply_globals()

    def stop(self) -> None:
        """Drop the harness's databases and remove the container (and its volume)."""
        container, self._container = self._container, None
        if container is None:
            return
        if self.url:
            with contextlib.suppress(Exception):
                self.cleanup()
        with contextlib.suppress(Exception):
            container.stop()


class ExternalMySql(MySqlEngine):
    """A user-given server (``--cdc-engine-url mysql=mysql://…``), checked at start.

    Declares no fault (the harness never kills what it does not own) and never changes a global
    setting: a case asking for another ``binlog_row_metadata`` than the server's is unsupported.
    """

    backend = "external"

    def __init__(self, url: str, prefix: str = "cdc_") -> None:
        super().__init__(prefix)
        register_url(url)
        parse_url(url)
        self.url = url
        self._started = False

    def start(self) -> None:
        self.check()
        self._started = True

    def configure(self, settings: dict[str, Any]) -> None:
        """Only check: an external server's global settings are the user's."""
        want = str(settings.get("binlog_row_metadata", "full")).upper()
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@global.binlog_row_metadata")
                have = str(cur.fetchone()[0]).upper()
        finally:
            conn.close()
        if have != want:
            raise Unsupported(f"the external server runs binlog_row_metadata={have}; this variant needs {want} "
                              "(a global setting the harness does not change on a server it does not own)")

    def stop(self) -> None:
        if self._started:
            self._started = False
            with contextlib.suppress(Exception):
                self.cleanup()


def build_mysql_engine(backend: str = "auto", url: str | None = None, prefix: str = "cdc_",
                       image: str | None = None) -> MySqlEngine:
    """The engine for ``--cdc-engines`` (``auto|local|docker|external``) and an optional URL.

    ``auto``: an external URL when given, else docker when it answers, else local when the
    binaries exist, else ``EngineUnavailable`` with the install command. Not started yet.
    """
    if backend == "external" or (backend == "auto" and url):
        if not url:
            raise EngineMisconfigured("--cdc-engines=external needs --cdc-engine-url mysql=mysql://…")
        return ExternalMySql(url, prefix)
    if backend == "docker":
        return DockerMySql(prefix, image=image or os.environ.get("CDC_MYSQL_IMAGE") or None)
    if backend == "local":
        return LocalMariaDb(prefix)
    if backend != "auto":
        raise EngineMisconfigured(f"unknown engine backend {backend!r}; valid: auto, local, docker, external")
    from containers.docker_api import docker_answers

    if docker_answers(timeout_s=2.0) is None:
        return DockerMySql(prefix, image=image or os.environ.get("CDC_MYSQL_IMAGE") or None)
    missing = LocalMariaDb.available()
    if missing is None:
        return LocalMariaDb(prefix)
    raise EngineUnavailable(f"no Docker engine and {missing}")


def engine_from_options(backend: str = "auto", url: str | None = None, name_prefix: str = "cdc_",
                        timeout_s: float = 60.0, image: str | None = None) -> MySqlEngine:
    """``build_mysql_engine`` with the plugin's option names; ``timeout_s`` bounds startup,
    ``image`` is the Docker backend's (``--cdc-image mysql=NAME``)."""
    engine = build_mysql_engine(backend, url, prefix=mysql_name(name_prefix), image=image)
    if isinstance(engine, LocalMariaDb | DockerMySql):
        engine.start_timeout_s = max(timeout_s, 10.0)
    return engine
