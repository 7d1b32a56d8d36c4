"""Local JVM servers (Kafka broker, Kafka Connect) from the jars the set-up resolved with Maven.

``scripts/setup-jvm.sh`` copies the jars of each profile of ``containers/jvm/pom.xml`` into
``.cache/jars/<folder>`` (``FOLDERS``) (``CDC_JARS`` overrides the folder); nothing is downloaded at run time.
:class:`JvmServer` runs one ``java`` main class as a child process in a private 0700 dir with its
own log4j2 file log, a small heap and a parent-death guard; ``kill()`` is SIGKILL, ``restart()``
starts the same dir again, ``stop()`` shuts down and removes the dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from containers.engine import log_tail, private_dir
from containers.process import probed_executor, stop_pid_file
from harness.errors import EngineUnavailable, MissingDependency
from harness.lifecycle import install_sigterm

SETUP_HINT = "bash scripts/setup-jvm.sh (or: make setup)"
PROJECT = Path(__file__).resolve().parent.parent
#: the profiles of containers/jvm/pom.xml and the folder (under ``jars_root()``) each is copied
#: into: Connect plugins sit together in one folder, which is the worker's ``plugin.path``
FOLDERS = {"kafka": "kafka", "debezium-postgres": "connect-plugins/debezium-postgres",
           "debezium-mysql": "connect-plugins/debezium-mysql",
           "debezium-mariadb": "connect-plugins/debezium-mariadb"}
PLUGIN_PATH = "connect-plugins"
PID_FILE = "server.pid"
#: the log4j2 configuration of every JVM engine (a file appender to ``-Dcdc.log``); the project's
#: Kafka and Connect images copy it too (``scripts/setup-docker.sh``)
LOG4J2 = PROJECT / "containers" / "jvm" / "log4j2.properties"


def jars_root() -> Path:
    """Where the set-up put the jars (``CDC_JARS`` or ``.cache/jars`` in the project)."""
    return Path(os.environ.get("CDC_JARS") or PROJECT / ".cache" / "jars")


#: what the jars are resolved from: ``scripts/setup-jvm.sh`` stamps ``<jars>/.stamp`` with a hash of these
RESOLVED_FROM = ("containers/jvm/pom.xml", "scripts/setup-jvm.sh")


def jars_hash(project: Path = PROJECT) -> str | None:
    """The stamp ``scripts/setup-jvm.sh`` writes for this checkout's pom and script
    (``sha256sum pom script | sha256sum | cut -c1-16``); None when either file is absent."""
    try:
        lines = "".join(f"{hashlib.sha256((project / name).read_bytes()).hexdigest()}  {name}\n"
                        for name in RESOLVED_FROM)
    except OSError:
        return None
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def check_jars_current(root: Path, project: Path = PROJECT) -> None:
    """``EngineUnavailable`` when the jars in ``root`` were resolved from another pom or set-up
    script than this checkout's (its ``.stamp`` differs): a jar added since (e.g. Spark's Kafka
    source) would be missing at run time, and the engine would fail late, inside a run. A folder
    without a stamp (filled by hand, ``CDC_JARS``) is taken as it is."""
    try:
        stamp = (root / ".stamp").read_text().strip()
    except OSError:
        return
    want = jars_hash(project)
    if want is not None and stamp != want:
        raise EngineUnavailable(f"the jars in {root} are out of date (resolved from another containers/jvm/pom.xml "
                                f"or scripts/setup-jvm.sh: stamp {stamp}, this checkout's {want}); fix: make setup")


def jar_dir(profile: str) -> Path:
    """The folder of one profile's jars, or ``EngineUnavailable`` naming the set-up command
    (missing, or resolved from another pom: ``check_jars_current``)."""
    root = jars_root()
    path = root / FOLDERS.get(profile, profile)
    if not path.is_dir() or not any(path.glob("*.jar")):
        raise EngineUnavailable(f"the {profile} jars are not in {path}; fix: {SETUP_HINT}")
    check_jars_current(root)
    return path


def java() -> str:
    """The ``java`` executable (``JAVA_HOME`` first), or ``EngineUnavailable`` with the fix."""
    home = os.environ.get("JAVA_HOME")
    candidates = [Path(home) / "bin" / "java"] if home else []
    found = next((str(p) for p in candidates if p.exists()), None) or shutil.which("java")
    if not found:
        raise EngineUnavailable("no java found (JAVA_HOME unset, none on PATH); fix: apt-get install -y "
                                "openjdk-17-jre-headless (or: make setup)")
    return found


def available(*profiles: str) -> str | None:
    """None when java and the jars of ``profiles`` are there, else why not (with the fix)."""
    try:
        java()
        for profile in profiles:
            jar_dir(profile)
    except EngineUnavailable as exc:
        return str(exc)
    return None


def classpath(*profiles: str) -> str:
    """The class path of the jars of ``profiles`` (folder wildcards, so it stays short)."""
    return os.pathsep.join(f"{jar_dir(p)}/*" for p in profiles)


def stop_leftover_server(root: Path) -> list[str]:
    """Stop the JVM still running in a dead session's private dir ``root`` (if any)."""
    return stop_pid_file(Path(root) / PID_FILE, f"-Dcdc.home={root}", f"java server in {root}")


def _finalize(executor: Any, root: Path | None) -> None:
    if executor is not None:
        with contextlib.suppress(Exception):
            executor.kill(sig=signal.SIGKILL)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


class JvmServer:
    """One local JVM server process: a main class on the jars of some profiles, in a private dir.

    Subclasses set ``label`` (for errors), ``profiles``, ``main_class``, ``heap`` and implement
    ``prepare()`` (write config into ``self.root`` before the first start), ``arguments()``
    (after the main class) and ``ready()`` (a real request). ``start()`` returns when ready or
    raises ``EngineUnavailable`` with the end of the server log.
    """

    label = "java server"
    profiles: tuple[str, ...] = ()
    main_class = ""
    heap = "256m"
    jvm_options: tuple[str, ...] = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")

    def __init__(self, start_timeout_s: float = 60.0) -> None:
        self.start_timeout_s = start_timeout_s
        self.root: Path | None = None
        self._executor: Any = None
        self._finalizer: weakref.finalize | None = None

    # -- subclass hooks -----------------------------------------------------------------------
    def prepare(self) -> None:
        """Write configuration and format storage in ``self.root`` (first start only)."""

    def arguments(self) -> list[str]:
        """Arguments after the main class."""
        return []

    def ready(self) -> bool:
        """True when the server answers a real request."""
        raise NotImplementedError

    # -- lifecycle ------------------------------------------------------------------------------
    def java_command(self, main_class: str, args: Sequence[str], *extra_options: str) -> list[str]:
        """``java`` with the class path, heap, log4j2 file config and the owner marker."""
        assert self.root is not None
        return [java(), f"-Xmx{self.heap}", f"-Xms{self.heap}", *self.jvm_options, "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={LOG4J2}", f"-Dcdc.log={self.root / 'server.log'}",
                f"-Dcdc.home={self.root}",
                *extra_options, "-cp", classpath(*self.profiles), main_class, *args]

    def run_tool(self, main_class: str, args: Sequence[str], timeout_s: float = 60.0) -> str:
        """Run a short-lived tool class of the same jars; its output, or ``EngineUnavailable``."""
        cmd = self.java_command(main_class, args)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise EngineUnavailable(f"{main_class} did not finish within {timeout_s:.0f} s") from None
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise EngineUnavailable(f"{main_class} failed: {tail}")
        return proc.stdout

    def start(self) -> None:
        """Prepare the dir (first time) and start the server; return when it is ready."""
        if self._executor is not None and self._executor.running():
            return
        java()
        for profile in self.profiles:
            jar_dir(profile)
        if self.root is None:
            self.root = private_dir(self.label.replace(" ", "-"))
            self._finalizer = weakref.finalize(self, _finalize, None, self.root)
            self.prepare()
        install_sigterm()
        self._launch()

    def _launch(self) -> None:
        assert self.root is not None
        # the child inherits the file; the parent closes its copy once the server is up
        with open(self.root / "stdout.log", "ab") as out:
            self._executor = probed_executor(
                self.java_command(self.main_class, self.arguments()), self.ready, timeout=self.start_timeout_s,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            self._start_executor()
        (self.root / PID_FILE).write_text(str(self._executor.process.pid))

    def _start_executor(self) -> None:
        from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, TimeoutExpired

        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _finalize, self._executor, self.root)
        try:
            self._executor.start()
        except (ProcessExitedWithError, TimeoutExpired) as exc:
            self._executor.kill(sig=signal.SIGKILL)
            raise EngineUnavailable(f"{self.label} did not start within {self.start_timeout_s:.0f} s "
                                    f"({type(exc).__name__}); log: {self.log_excerpt()}") from None
        except AlreadyRunning:
            raise EngineUnavailable(f"{self.label}: its port is already taken by another server") from None

    def running(self) -> bool:
        """True while the process runs."""
        return self._executor is not None and self._executor.running()

    def cpu_s(self) -> float | None:
        """CPU seconds (user + system) the running JVM has used so far (``None`` when it is not
        running or ``/proc`` cannot tell): for benchmarks' per-engine CPU figures."""
        if not self.running():
            return None
        try:
            stat = Path(f"/proc/{self._executor.process.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def thread_cpu_s(self) -> dict[str, float]:
        """CPU seconds of the running JVM's threads by name (digits at the end dropped, threads
        of one name summed; ``C2 CompilerThre`` is the JIT's optimizing compiler), ``{}`` when it
        is not running: where a benchmark's CPU goes, and whether the JIT is still compiling."""
        if not self.running():
            return {}
        out: dict[str, float] = {}
        for task in Path(f"/proc/{self._executor.process.pid}/task").iterdir():
            try:
                raw = (task / "stat").read_text()
            except OSError:
                continue
            fields = raw[raw.rindex(")") + 2:].split()
            name = raw[raw.index("(") + 1:raw.rindex(")")].rstrip("0123456789-#")
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return out

    def kill(self) -> None:
        """Crash the server: SIGKILL (no shutdown hook, no flush beyond the OS cache)."""
        if self._executor is not None:
            self._executor.kill(sig=signal.SIGKILL)

    def restart(self) -> None:
        """Start the server again on the same dir and ports."""
        if self.root is None:
            raise EngineUnavailable("restart() before start()")
        if self.running():
            self._executor.stop()
        self._launch()

    def shutdown(self) -> None:
        """Graceful stop (SIGTERM, SIGKILL if it hangs) and remove the dir. Idempotent."""
        try:
            if self.running():
                try:
                    self._executor.stop(timeout=30)
                except Exception:
                    self._executor.kill(sig=signal.SIGKILL)
        finally:
            self._executor = None
            if self._finalizer is not None:
                self._finalizer()
                self._finalizer = None
            self.root = None

    def log_path(self) -> Path | None:
        """The server's log4j2 file (the JVM's own stdout is in ``stdout.log`` beside it)."""
        return self.root / "server.log" if self.root else None

    def log_excerpt(self) -> str:
        """The end of the log and of stdout, on one line (for errors)."""
        if self.root is None:
            return "(no log)"
        return f"{log_tail(self.log_path())} | stdout: {log_tail(self.root / 'stdout.log')}"


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, sleep_s: float = 0.1) -> None:
    """Poll ``predicate`` until true or raise ``EngineUnavailable`` naming ``what``."""
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise EngineUnavailable(f"{what} not within {timeout_s:.0f} s")
        time.sleep(sleep_s)


def require_confluent_kafka() -> Any:
    """The confluent_kafka module, or ``MissingDependency`` with the install command."""
    try:
        import confluent_kafka
        import confluent_kafka.admin
    except ImportError:
        raise MissingDependency("confluent-kafka", "kafka") from None
    return confluent_kafka
