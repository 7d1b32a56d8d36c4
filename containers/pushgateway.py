"""Prometheus pushgateway engine: a local process, a testcontainers container, or an external URL."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any, ClassVar

from containers.engine import private_dir
from harness.errors import EngineUnavailable, MissingDependency
from harness.secrets import mask_url, register_url

INSTALL_HINT = "sudo apt-get install -y prometheus-pushgateway (or: bash scripts/setup-reports.sh)"
BINARIES = ("prometheus-pushgateway", "pushgateway")
START_TIMEOUT_S = 20.0


def find_binary() -> str | None:
    """Path of the pushgateway binary on PATH (Debian names it prometheus-pushgateway), or None."""
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    return None


def is_ready(url: str, timeout: float = 1.0) -> bool:
    """True when ``GET {url}/-/ready`` answers 200 within ``timeout`` seconds."""
    try:
        request = _request(f"{url.rstrip('/')}/-/ready")
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _request(url: str) -> urllib.request.Request:
    """A request for ``url`` with ``user:password@`` sent as HTTP basic auth (urllib ignores it)."""
    import base64
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.username is None:
        return urllib.request.Request(url)
    bare = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
    token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
    return urllib.request.Request(bare, headers={"Authorization": f"Basic {token}"})


def docker_answers(timeout: float = 3.0) -> str | None:
    """None when a Docker-compatible API answers a ping, else the reason it does not."""
    from containers.docker_api import docker_answers as answers

    return answers(timeout_s=timeout)


class PushgatewayEngine:
    """A pushgateway the reports push to; ``url`` is its base URL (``http://127.0.0.1:PORT``).

    ``backend`` is ``local`` (Debian's binary as a child process on a free loopback port, no
    persistence file, so ``restart()`` comes back empty like a fresh gateway), ``docker``
    (testcontainers on the Docker-compatible API that answers: the official image where it can be
    pulled, else ``localhost/cdc-pushgateway:1`` from ``scripts/setup-docker.sh``; ``image``
    overrides) or ``external`` (``url`` given).
    """

    family: ClassVar[str] = "pushgateway"

    def __init__(self, backend: str = "local", url: str | None = None, binary: str | None = None,
                 start_timeout: float = START_TIMEOUT_S, image: str | None = None) -> None:
        if backend not in ("local", "docker", "external"):
            raise ValueError(f"pushgateway backend must be local|docker|external, not {backend!r}")
        if backend == "external" and not url:
            raise ValueError("external pushgateway needs a URL (--cdc-engine-url pushgateway=http://host:9091)")
        self.backend = backend
        self.url = url or ""
        register_url(self.url)
        self.binary = binary
        self.image = image
        self.start_timeout = start_timeout
        self.port: int | None = None
        self._dir: Path | None = None
        self._log: IO[bytes] | None = None
        self._executor: Any = None
        self._container: Any = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self.backend == "local":
            self._start_local()
        elif self.backend == "docker":
            self._start_docker()
        elif not is_ready(self.url, timeout=3.0):
            raise EngineUnavailable(f"pushgateway at {mask_url(self.url)} does not answer GET /-/ready; "
                                    "check the URL")

    def stop(self) -> None:
        if self._executor is not None:
            try:
                self._executor.stop()
            finally:
                self._executor = None
                self._close_log()
        if self._container is not None:
            try:
                self._container.stop()
            finally:
                self._container = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def kill(self) -> None:
        if self._executor is not None:
            self._executor.kill(sig=signal.SIGKILL)
            self._executor = None
            self._close_log()
        elif self._container is not None:
            self._container.get_wrapped_container().kill()

    def restart(self) -> None:
        if self.backend == "local":
            if self._executor is not None:
                self._executor.stop()
                self._executor = None
                self._close_log()
            self._start_local(port=self.port)
        elif self.backend == "docker" and self._container is not None:
            self._container.get_wrapped_container().restart()
            self._wait_ready()

    def log_path(self) -> Path | None:
        return self._dir / "pushgateway.log" if self._dir is not None else None

    # -- backends --------------------------------------------------------------------------------
    def _start_local(self, port: int | None = None) -> None:
        try:
            import port_for
            from mirakuru import HTTPExecutor
            from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, TimeoutExpired
        except ImportError as exc:
            raise MissingDependency(exc.name or "mirakuru", "postgres") from exc
        binary = self.binary or find_binary()
        if binary is None:
            raise EngineUnavailable(f"prometheus-pushgateway binary not found on PATH; fix: {INSTALL_HINT}")
        self.port = port or port_for.select_random()
        self.url = f"http://127.0.0.1:{self.port}"
        if self._dir is None:
            self._dir = private_dir("pushgateway")
        self._log = open(self._dir / "pushgateway.log", "ab")  # noqa: SIM115 - closed in stop()/kill()
        # Debian's build defaults --persistence.file to /var/lib/prometheus/pushgateway.data: empty it,
        # so a test gateway keeps metrics in memory only and never mixes with another run's.
        command = [binary, f"--web.listen-address=127.0.0.1:{self.port}", "--persistence.file=",
                   "--log.level=warn"]
        executor = HTTPExecutor(
            command, url=f"{self.url}/-/ready", status=200, method="GET", timeout=self.start_timeout,
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        try:
            executor.start()
        except (TimeoutExpired, ProcessExitedWithError, AlreadyRunning) as exc:
            executor.kill()
            self._close_log()
            raise EngineUnavailable(
                f"pushgateway did not become ready on {mask_url(self.url)} within {self.start_timeout:.0f}s "
                f"({type(exc).__name__}); see {self.log_path()}"
            ) from exc
        self._executor = executor

    def _start_docker(self) -> None:
        reason = docker_answers()
        if reason is not None:
            raise EngineUnavailable(f"docker backend for pushgateway unavailable: {reason}; "
                                    f"use --cdc-engines=local ({INSTALL_HINT})")
        import port_for
        from testcontainers.core.container import DockerContainer

        from containers.docker_api import image_for, labels

        self.port = port_for.select_random()
        container = DockerContainer(image_for("pushgateway", self.image))
        container.ports["9091"] = ("127.0.0.1", self.port)  # loopback only (with_bind_ports takes no address)
        container.with_kwargs(labels=labels(f"cdc_pushgateway_{self.port}"))
        self._container = container
        try:
            container.start()
        except Exception as exc:  # noqa: BLE001 - one line, not a traceback wall
            self.stop()
            raise EngineUnavailable(f"the pushgateway container did not start: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0][:300] if str(exc) else ''}") from None
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if is_ready(self.url):
                return
            time.sleep(0.2)
        self.stop()
        raise EngineUnavailable(f"pushgateway container did not answer on {mask_url(self.url)} within "
                                f"{self.start_timeout:.0f}s")

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> PushgatewayEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
