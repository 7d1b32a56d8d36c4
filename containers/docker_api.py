"""The Docker-compatible API testcontainers talks to: a Docker daemon that answers, else a podman
service the session starts on a private socket (stopped at session end, swept when killed).

Every container the harness starts carries two labels: ``org.cdc-harness.owner`` (``pid:start``
of the process that started it, the same identity as a private dir's owner file) and
``org.cdc-harness.run`` (the run id). A container whose owner process is gone is a leftover; the
next session's sweep (``sweep_containers``) removes it, with or without a running API.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from containers.engine import private_dir
from containers.process import probed_executor, stop_pid_file
from harness.errors import EngineUnavailable

PODMAN_HINT = "apt-get install -y podman runc (or: bash scripts/setup-docker.sh)"
BUILD_HINT = "make setup-docker (or: bash scripts/setup-docker.sh)"
LABEL_OWNER = "org.cdc-harness.owner"
LABEL_RUN = "org.cdc-harness.run"
SOCKET = "podman.sock"
PID_FILE = "podman.pid"
#: the image of each engine family: the official one, and the project's own build (scripts/setup-docker.sh)
IMAGES: dict[str, tuple[str, str]] = {
    "postgres": ("docker.io/library/postgres:15", "localhost/cdc-postgres:15"),
    "mysql": ("docker.io/library/mariadb:11", "localhost/cdc-mariadb:11.8"),
    "pushgateway": ("docker.io/prom/pushgateway:v1.11.1", "localhost/cdc-pushgateway:1"),
    "kafka": ("apache/kafka:4.3.1", "localhost/cdc-kafka:4.3.1"),
    "connect": ("debezium/connect:3.6.1.Final", "localhost/cdc-connect:4.3.1"),
    "spark": ("apache/spark:4.1.1", "localhost/cdc-spark:4.1.1"),
}
_ENV = ("DOCKER_HOST", "TESTCONTAINERS_RYUK_DISABLED")


def require_docker(local_hint: str = "") -> None:
    """Raise ``EngineUnavailable`` naming the fix when no Docker-compatible engine answers
    (``local_hint``: how to get the local backend's binaries, appended to the fix)."""
    why = docker_answers()
    if why:
        local = f" ({local_hint})" if local_hint else ""
        raise EngineUnavailable(f"{why}; fix: install podman ({PODMAN_HINT}) and run with --cdc-engines=docker "
                                f"(it starts podman's service), or use --cdc-engines=local{local}")


def container_class(module: str, name: str, extra: str) -> Any:
    """testcontainers' ``name`` from ``testcontainers.community.<module>`` (>= 4.15) or
    ``testcontainers.<module>``; ``MissingDependency`` with the extra to install otherwise."""
    import importlib

    from harness.errors import MissingDependency

    for path in (f"testcontainers.community.{module}", f"testcontainers.{module}"):
        try:
            return getattr(importlib.import_module(path), name)
        except ImportError as exc:
            missing = exc
    raise MissingDependency(getattr(missing, "name", None) or "testcontainers", extra) from None


def docker_answers(timeout_s: float = 3.0, host: str | None = None) -> str | None:
    """None when a Docker-compatible API answers a ping (at ``host``, else the environment's), else why not."""
    try:
        import docker
    except ImportError:
        return "the 'docker' Python package is missing (pip install testcontainers)"
    host = host or os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        return "no Docker engine: DOCKER_HOST is unset and /var/run/docker.sock does not exist"
    try:
        client = docker.DockerClient(base_url=host) if host else docker.from_env()
        client.api.timeout = max(timeout_s, 1.0)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - docker raises many kinds here
        return f"no Docker engine answers at {host or 'unix:///var/run/docker.sock'}: {type(exc).__name__}"
    return None


def owner_token(pid: int | None = None) -> str:
    """``pid:start`` of this process (or ``pid``): the owner label of the containers it starts."""
    from harness.lifecycle import process_start_time

    pid = os.getpid() if pid is None else pid
    return f"{pid}:{process_start_time(pid) or ''}"


def owner_alive(token: str) -> bool:
    """True while the process named by an owner label runs (a malformed label counts as alive)."""
    from harness.lifecycle import pid_alive

    pid, _, start = token.partition(":")
    try:
        return pid_alive(int(pid), start or None)
    except ValueError:
        return True


def labels(run_id: str) -> dict[str, str]:
    """The labels of a container this process starts for run ``run_id``."""
    return {LABEL_OWNER: owner_token(), LABEL_RUN: run_id}


def client(timeout_s: float = 60.0) -> Any:
    """A docker SDK client for the environment's API (``DOCKER_HOST``)."""
    import docker

    return docker.from_env(timeout=int(timeout_s))


def is_podman(api: Any) -> bool:
    """True when the API answering ``api`` (a docker SDK client) is podman's."""
    with contextlib.suppress(Exception):
        return any("podman" in c.get("Name", "").lower() for c in api.version().get("Components", []))
    return False


def image_for(family: str, chosen: str | None = None) -> str:
    """The image to run for ``family``: ``chosen`` (``--cdc-image``), else the official one when it
    is in the engine's store or the engine is a Docker daemon (which can pull it), else the
    project's own build. Raises ``EngineUnavailable`` naming the fix when it is not there and
    cannot be pulled (podman here has no registry: pulling would only fail slowly)."""
    official, local = IMAGES[family]
    api = client(timeout_s=30)
    try:
        podman = is_podman(api)
        if chosen is None:
            if _present(api, official) or not podman:
                return official
            chosen = local
        if _present(api, chosen) or not podman:
            return chosen
    finally:
        api.close()
    if chosen == local:
        fix = BUILD_HINT
    else:
        local_name = chosen.startswith("localhost/")
        get = "podman build -t NAME DIR" if local_name else "podman pull it where a registry answers"
        fix = f"{get} or podman load -i FILE; or drop --cdc-image {family}=… to run {local}, built by {BUILD_HINT}"
    raise EngineUnavailable(f"image {chosen} is not in podman's image store; fix: {fix}")


def _present(api: Any, image: str) -> bool:
    import docker

    try:
        api.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def kill_container(container: Any, timeout_s: float = 30.0) -> None:
    """SIGKILL a started testcontainers container (its server is PID 1: no shutdown) and wait
    until it has exited."""
    wrapped = container.get_wrapped_container()
    wrapped.kill(signal="SIGKILL")
    wrapped.wait(timeout=timeout_s)


def start_again(container: Any, timeout_s: float = 30.0) -> None:
    """Start a killed (or running: stopped first) container again: same data, same ports."""
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    if wrapped.status == "running":
        wrapped.stop(timeout=int(timeout_s))
    wrapped.start()


def partition_network(container: Any, seconds: float) -> None:
    """Cut a started container off its networks for ``seconds``, then connect it again (a network
    partition, not a reset: the server inside sees no disconnect; clients outside lose their
    connections and new ones time out until it is connected again, at a new address behind the
    same published ports)."""
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    networks = [wrapped.client.networks.get(name) for name in wrapped.attrs["NetworkSettings"]["Networks"]]
    for network in networks:
        network.disconnect(wrapped)
    try:
        time.sleep(seconds)
    finally:
        for network in networks:
            network.connect(wrapped)


def wait_ready(ready: Any, timeout_s: float, failure: Any) -> None:
    """Poll ``ready()`` every 0.1 s; ``EngineUnavailable(failure())`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise EngineUnavailable(failure())
        time.sleep(0.1)


class ContainerFaults:
    """Kill, restart and removal of one testcontainers container (``self._container``) whose
    server is its PID 1; ``_wait_ready(what)`` is the engine's own readiness wait."""

    _container: Any
    #: how long a ``net-partition`` lasts
    PARTITION_S = 2.0

    def _wait_ready(self, what: str) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        """SIGKILL the container: no graceful shutdown of its server."""
        kill_container(self._container)

    def restart(self) -> None:
        """Start the killed container again (same data, same port); return when it answers."""
        start_again(self._container)
        self._wait_ready("restart")

    def partition(self) -> None:
        """Cut the container off its network for ``PARTITION_S`` (no reset: its server sees no
        disconnect), connect it again; return when it answers on its published port."""
        partition_network(self._container, self.PARTITION_S)
        self._wait_ready("a network partition")

    def _remove(self) -> None:
        """Remove the container. Idempotent."""
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(Exception):
                container.stop()


class ContainerLog:
    """``log_path()`` for an engine whose server runs in one container (``self._container``): the
    container's log (the server's stdout and stderr, its last ``LOG_LINES`` lines) copied into a
    file of this process's private temp dir at each call, so a failed cell attaches it like a
    local server's log; None while no container exists."""

    _container: Any
    LOG_LINES = 5000

    def log_path(self) -> Path | None:
        container = self._container
        if container is None:
            return None
        try:
            wrapped = container.get_wrapped_container()
            text = wrapped.logs(tail=self.LOG_LINES)
        except Exception:  # noqa: BLE001 - removed or never started: no log to attach
            return None
        path = _log_dir() / f"{wrapped.id[:12]}.log"
        path.write_bytes(text)
        return path


def _log_dir() -> Path:
    """This process's private dir for container log copies (removed when the process exits)."""
    global _LOG_DIR
    if _LOG_DIR is None or not _LOG_DIR.exists():
        _LOG_DIR = Path(tempfile.mkdtemp(prefix="cdc-container-logs-"))
        atexit.register(shutil.rmtree, _LOG_DIR, True)
    return _LOG_DIR


_LOG_DIR: Path | None = None


def log_tail(container: Any, lines: int = 3) -> str:
    """The last ``lines`` lines of a container's log on one line."""
    with contextlib.suppress(Exception):
        text = container.get_wrapped_container().logs(tail=lines).decode(errors="replace")
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty)"
    return "(none)"


class DockerApi:
    """The API this session's containers run on: a Docker daemon that answers, else a podman
    service started here (``podman system service --time=0`` on a socket in a private dir).

    ``start()`` sets ``DOCKER_HOST`` (and ``TESTCONTAINERS_RYUK_DISABLED=true``: Ryuk's image
    cannot be pulled; the harness removes its containers itself) for this process; ``stop()``
    removes the containers this process labelled, stops the service and restores the environment.
    """

    def __init__(self, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self.host = ""
        self.root: Path | None = None
        self._executor: Any = None
        self._log: Any = None
        self._saved: dict[str, str | None] = {}

    @property
    def started(self) -> bool:
        """True while a podman service started by this object runs."""
        return self._executor is not None

    def start(self) -> None:
        """Use the Docker daemon that answers, else start podman's service; ``EngineUnavailable``
        with the install command when neither can be had."""
        why = docker_answers(timeout_s=2.0)
        if why is None:
            self.host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
            self._ryuk_only_if_present()
            return
        podman = shutil.which("podman")
        if podman is None:
            raise EngineUnavailable(f"{why}, and podman is not installed; fix: {PODMAN_HINT}")
        from mirakuru.exceptions import ProcessExitedWithError, TimeoutExpired

        self.root = private_dir("podman")
        host = f"unix://{self.root / SOCKET}"
        self._log = open(self.root / "service.log", "ab")  # noqa: SIM115 - closed in stop()
        self._executor = probed_executor(
            [podman, "system", "service", "--time=0", host], lambda: docker_answers(1.0, host) is None,
            timeout=self.timeout_s, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self._executor.start()
        except (ProcessExitedWithError, TimeoutExpired) as exc:
            tail = (self.root / "service.log").read_text(errors="replace").strip().splitlines()[-1:]
            self.stop()
            raise EngineUnavailable(f"podman system service did not answer within {self.timeout_s:.0f} s "
                                    f"({type(exc).__name__}: {' '.join(tail) or 'no output'}); "
                                    f"fix: bash scripts/setup-docker.sh (writes /etc/containers/containers.conf)"
                                    ) from None
        (self.root / PID_FILE).write_text(str(self._executor.process.pid))
        self.host = host
        self._saved = {name: os.environ.get(name) for name in _ENV}
        os.environ["DOCKER_HOST"] = host
        os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
        with contextlib.suppress(ImportError):
            from testcontainers.core.config import testcontainers_config

            testcontainers_config.ryuk_disabled = True

    def _ryuk_only_if_present(self) -> None:
        """On a podman API found running, Ryuk only when its image is there (it cannot be pulled)."""
        with contextlib.suppress(Exception):
            from testcontainers.core.config import testcontainers_config

            api = client(timeout_s=30)
            try:
                if is_podman(api) and not _present(api, testcontainers_config.ryuk_image):
                    testcontainers_config.ryuk_disabled = True
            finally:
                api.close()

    def remove_containers(self) -> list[str]:
        """Remove every container this process labelled (idempotent); returns their names."""
        if not self.host:
            return []
        return _remove(owner_token(), lambda: client(timeout_s=30))

    def stop(self) -> None:
        """Remove this process's containers, stop the podman service, restore the environment."""
        try:
            if self._executor is not None:
                with contextlib.suppress(Exception):
                    self.remove_containers()
                try:
                    self._executor.stop()
                except Exception:  # noqa: BLE001 - it must go either way
                    self._executor.kill()
        finally:
            self._executor = None
            for name, value in self._saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self._saved = {}
            if self._log is not None:
                self._log.close()
                self._log = None
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None
            self.host = ""


def _remove(owner: str | None, make_client: Any) -> list[str]:
    """Remove containers labelled with ``owner`` (None: every harness container whose owner is gone)."""
    api = make_client()
    try:
        flt = {"label": f"{LABEL_OWNER}={owner}"} if owner else {"label": LABEL_OWNER}
        removed = []
        for container in api.containers.list(all=True, filters=flt):
            if owner is None and owner_alive(container.labels.get(LABEL_OWNER, "")):
                continue
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
                removed.append(container.name)
        return removed
    finally:
        api.close()


def stop_leftover_server(root: Path) -> list[str]:
    """Stop the podman service still running in a dead session's private dir ``root`` (if any)."""
    return stop_pid_file(Path(root) / PID_FILE, f"unix://{Path(root) / SOCKET}", f"podman service in {root}")


def sweep_containers() -> list[str]:
    """Remove the containers of killed sessions: in podman's store (its CLI, no service needed)
    and on a Docker daemon that answers. Never raises; returns what was removed."""
    removed: list[str] = []
    podman = shutil.which("podman")
    if podman is not None:
        with contextlib.suppress(Exception):
            out = subprocess.run([podman, "ps", "-a", "--filter", f"label={LABEL_OWNER}", "--format", "json"],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
            dead = [c for c in json.loads(out or "[]") if not owner_alive((c.get("Labels") or {}).get(LABEL_OWNER, ""))]
            if dead:
                subprocess.run([podman, "rm", "-f", "-v", *(c["Id"] for c in dead)], capture_output=True,
                               timeout=60, check=False)
                removed += [f"container {(c.get('Names') or [c['Id'][:12]])[0]}" for c in dead]
    if os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists():
        with contextlib.suppress(Exception):
            if docker_answers(timeout_s=2.0) is None:
                removed += [f"container {n}" for n in _remove(None, lambda: client(timeout_s=30))]
    return removed
