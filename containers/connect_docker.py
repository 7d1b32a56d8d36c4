"""Kafka Connect on the Docker backend: one Connect worker container per delivery mode, on the
host's network so that it reaches the broker and the source database where the host does."""

from __future__ import annotations

import contextlib
from typing import Any

from containers.connect import WORKER_PROPERTIES, ConnectWorker, ModeWorkers
from containers.docker_api import ContainerFaults, ContainerLog
from harness.errors import EngineUnavailable
from harness.secrets import one_line


class ConnectContainer(ContainerFaults, ContainerLog):
    """One distributed Connect worker in a container (the project's ``localhost/cdc-connect``
    image or the official Debezium one): the local worker's ``WORKER_PROPERTIES`` as Debezium's
    variables (``containers.jvm_env.connect_env``), without ``plugin.path`` (the image's own).

    Addressing: the container runs on the host's network namespace (``network_mode=host``), its
    REST listener bound to 127.0.0.1 on a free port; so the broker's advertised ``127.0.0.1:P``
    and a source database on the host's 127.0.0.1 (local backend, or another container's port
    published there) are the same addresses for it as for the harness. It binds nothing else.
    ``kill()`` SIGKILLs the container, ``restart()`` starts the same container again.
    """

    def __init__(self, image: str, bootstrap: str, group: str, exactly_once: bool, labels: dict[str, str],
                 start_timeout_s: float = 90.0) -> None:
        self.image = image
        self.bootstrap = bootstrap
        self.group = group
        self.exactly_once = exactly_once
        self.labels = labels
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self.url = ""
        self._container: Any = None

    def environment(self) -> dict[str, str]:
        """The container's variables for a worker listening on ``self.port``."""
        from containers.jvm_env import connect_env, parse_properties

        props = parse_properties(WORKER_PROPERTIES.format(
            bootstrap=self.bootstrap, group=self.group, port=self.port, plugins="",
            eos="enabled" if self.exactly_once else "disabled"))
        del props["plugin.path"]
        heap = f"-Xmx{ConnectWorker.heap} -Xms{ConnectWorker.heap}"
        return {**connect_env(props), "KAFKA_HEAP_OPTS": heap, "HEAP_OPTS": heap,
                "KAFKA_JVM_PERFORMANCE_OPTS": " ".join(ConnectWorker.jvm_options)}

    def start(self) -> None:
        """Create and start the container; return when its REST API lists connectors."""
        import port_for
        from testcontainers.core.container import DockerContainer

        self.port = port_for.select_random()
        self.url = f"http://127.0.0.1:{self.port}"
        container = DockerContainer(self.image)
        for name, value in self.environment().items():
            container.with_env(name, value)
        container.with_kwargs(labels=self.labels, network_mode="host")
        self._container = container
        try:
            container.start()
        except Exception as exc:  # noqa: BLE001 - docker/testcontainers raise many kinds: one line each
            logs = self._logs()
            self.shutdown()
            raise EngineUnavailable(f"the Connect container ({self.image}) did not start: {type(exc).__name__}: "
                                    f"{one_line(exc)[:300]}; container log: {logs}") from None
        self._wait_ready("start")

    def ready(self) -> bool:
        """True when the worker's REST API answers ``GET /connectors``."""
        import requests

        try:
            return requests.get(f"{self.url}/connectors", timeout=1.0).status_code == 200
        except requests.RequestException:
            return False

    def _logs(self, lines: int = 3) -> str:
        from containers.docker_api import log_tail

        return log_tail(self._container, lines)

    def _wait_ready(self, what: str) -> None:
        from containers.docker_api import wait_ready

        wait_ready(self.ready, self.start_timeout_s,
                   lambda: f"the Connect container did not answer on {self.url} after {what} within "
                           f"{self.start_timeout_s:.0f} s; container log: {self._logs()}")

    def running(self) -> bool:
        """True while the container runs."""
        if self._container is None:
            return False
        with contextlib.suppress(Exception):
            wrapped = self._container.get_wrapped_container()
            wrapped.reload()
            return wrapped.status == "running"
        return False

    def shutdown(self) -> None:
        """Remove the container. Idempotent."""
        self._remove()


class DockerConnect(ModeWorkers):
    """Connect workers in containers on the session's broker, one per delivery mode like the
    local engine (``at-least-once``, ``exactly-once``), each labelled with the run and removed at
    ``stop()`` (or by the next session's sweep). Image: ``--cdc-image connect=NAME``, else the
    official one where it can be had, else ``localhost/cdc-connect:4.3.1``
    (``containers.docker_api.image_for``). Faults: ``connect-crash`` (kill the container, start
    it again), ``connector-restart`` (REST)."""

    backend = "docker"

    def __init__(self, kafka: Any, group: str, image: str | None = None, start_timeout_s: float = 90.0) -> None:
        super().__init__(kafka, group, start_timeout_s)
        self.image = image
        self._resolved = ""

    def start(self) -> None:
        from containers.docker_api import image_for, require_docker

        require_docker()
        self._resolved = image_for("connect", self.image)
        super().start()

    def new_worker(self, group: str, exactly_once: bool) -> ConnectContainer:
        from containers.docker_api import labels

        return ConnectContainer(self._resolved or self.image or "", self.kafka.bootstrap, group, exactly_once,
                                labels(self.group), start_timeout_s=self.start_timeout_s)
