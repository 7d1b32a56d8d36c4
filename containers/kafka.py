"""Kafka broker engine: a private local KRaft node from the Maven jars, a KRaft node in a container,
or an external cluster (``--cdc-engine-url kafka=host:port``).

All backends share :class:`KafkaEngine`: ``url``/``bootstrap`` (``host:port``), ``admin()`` (a
confluent-kafka AdminClient), ``topics(prefix)`` and ``cleanup(prefix)`` (delete the topics and
consumer groups a run created, every name starting with the run's prefix). The local and the
Docker broker declare the ``broker-restart`` fault (kill -9, restart on the same log dirs).
"""

from __future__ import annotations

import base64
import contextlib
import socket
import uuid
from typing import Any, ClassVar

from containers.docker_api import ContainerFaults, ContainerLog
from containers.jvm import JvmServer, require_confluent_kafka
from harness.errors import EngineMisconfigured, EngineUnavailable, Unsupported
from harness.secrets import one_line

ADMIN_TIMEOUT_S = 10.0
#: broker settings of the local node: one combined broker+controller, every internal topic RF 1
SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={logs}
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
log.cleaner.dedupe.buffer.size=16777216
num.network.threads=2
num.io.threads=4
"""


def _quiet(level: int, facility: str, message: str) -> None:
    """librdkafka log sink: the harness reports failures itself (no stderr noise)."""


def client_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """confluent-kafka settings for ``bootstrap`` (quiet logs, bounded socket timeouts)."""
    return {"bootstrap.servers": bootstrap, "socket.timeout.ms": 10_000, "log_level": 0, **extra}


def broker_answers(bootstrap: str, timeout_s: float = 1.0) -> bool:
    """True when the broker answers a metadata request within ``timeout_s``."""
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError):
        return False
    ck = require_confluent_kafka()
    admin = ck.admin.AdminClient(client_config(bootstrap))
    try:
        admin.list_topics(timeout=timeout_s)
        return True
    except ck.KafkaException:
        return False


def named_with(name: str, prefix: str) -> bool:
    """True when ``name`` is ``prefix`` or starts with it followed by ``.`` or ``_`` (so run 1's
    prefix never matches run 10's names)."""
    return name == prefix or name.startswith((prefix + ".", prefix + "_")) or prefix.endswith("_") and \
        name.startswith(prefix)


def cluster_id() -> str:
    """A random Kafka cluster id (url-safe base64 of 16 bytes, as ``StorageTool random-uuid``)."""
    while True:
        out = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not out.startswith("-"):
            return out


class KafkaEngine:
    """What every Kafka backend offers besides the Engine contract."""

    family: ClassVar[str] = "kafka"
    backend = ""
    faults: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.url = ""

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the broker (what clients and Connect use)."""
        return self.url

    def admin(self) -> Any:
        """A confluent-kafka AdminClient on the broker."""
        return require_confluent_kafka().admin.AdminClient(client_config(self.bootstrap))

    def check(self) -> None:
        """Raise ``EngineUnavailable`` when the broker does not answer a metadata request."""
        if not broker_answers(self.bootstrap, timeout_s=ADMIN_TIMEOUT_S):
            raise EngineUnavailable(f"no Kafka broker answers at {self.bootstrap}; fix: check the address "
                                    "(--cdc-engine-url kafka=host:port) and that the broker runs")

    def topics(self, prefix: str) -> list[str]:
        """The topics named ``prefix`` or ``prefix`` followed by ``.`` or ``_``."""
        meta = self.admin().list_topics(timeout=ADMIN_TIMEOUT_S)
        return sorted(t for t in meta.topics if named_with(t, prefix))

    def cleanup(self, prefix: str) -> list[str]:
        """Delete the topics and consumer groups named with ``prefix`` (``named_with``); returns
        what went."""
        ck = require_confluent_kafka()
        admin = self.admin()
        removed: list[str] = []
        topics = self.topics(prefix)
        if topics:
            for name, future in admin.delete_topics(topics, operation_timeout=ADMIN_TIMEOUT_S).items():
                with contextlib.suppress(ck.KafkaException):
                    future.result(timeout=ADMIN_TIMEOUT_S)
                    removed.append(f"topic {name}")
        with contextlib.suppress(ck.KafkaException, AttributeError):
            groups = admin.list_consumer_groups(request_timeout=ADMIN_TIMEOUT_S).result(timeout=ADMIN_TIMEOUT_S)
            ours = [g.group_id for g in groups.valid if named_with(g.group_id, prefix)]
            if ours:
                for name, future in admin.delete_consumer_groups(ours, request_timeout=ADMIN_TIMEOUT_S).items():
                    with contextlib.suppress(ck.KafkaException):
                        future.result(timeout=ADMIN_TIMEOUT_S)
                        removed.append(f"consumer group {name}")
        return removed

    def inject(self, kind: str, point: str, names: str) -> None:
        """``broker-restart``: kill -9 the broker and start it again on the same log dirs."""
        if kind not in self.faults:
            raise Unsupported(f"the {self.backend} Kafka engine declares no fault {kind!r}")
        self.kill()
        self.restart()

    def kill(self) -> None:
        raise Unsupported(f"the {self.backend} Kafka backend cannot be killed by the harness")

    def restart(self) -> None:
        raise Unsupported(f"the {self.backend} Kafka backend cannot be restarted by the harness")


class LocalKafka(KafkaEngine, JvmServer):
    """A private single-node KRaft broker (combined broker + controller) on loopback ports.

    The storage is formatted with ``StorageTool format --standalone`` on first start; readiness
    is a metadata request answered. ``kill()`` SIGKILLs the JVM; ``restart()`` reopens the same
    log dirs (what was written before the kill is in the OS cache, as after a process crash).
    """

    backend = "local"
    faults = frozenset({"broker-restart"})
    label = "kafka broker"
    profiles = ("kafka",)
    main_class = "kafka.Kafka"
    heap = "256m"

    def __init__(self, start_timeout_s: float = 60.0) -> None:
        KafkaEngine.__init__(self)
        JvmServer.__init__(self, start_timeout_s)
        self.port = 0
        self.controller_port = 0

    def prepare(self) -> None:
        import port_for

        assert self.root is not None
        self.port = port_for.select_random()
        self.controller_port = port_for.select_random(exclude_ports=[self.port])
        self.url = f"127.0.0.1:{self.port}"
        (self.root / "server.properties").write_text(SERVER_PROPERTIES.format(
            port=self.port, controller=self.controller_port, logs=self.root / "logs"))
        self.run_tool("kafka.tools.StorageTool", ["format", "-t", cluster_id(), "-c",
                                                  str(self.root / "server.properties"), "--standalone"])

    def arguments(self) -> list[str]:
        assert self.root is not None
        return [str(self.root / "server.properties")]

    def ready(self) -> bool:
        return broker_answers(self.url, timeout_s=1.0)

    def stop(self) -> None:
        """Shut the broker down and remove its dir (topics go with it). Idempotent."""
        self.shutdown()

    def kill(self) -> None:
        JvmServer.kill(self)

    def restart(self) -> None:
        JvmServer.restart(self)


class ExternalKafka(KafkaEngine):
    """A user-given broker (``--cdc-engine-url kafka=host:port``): checked at start, declares no
    fault, and ``stop()`` deletes only the topics and groups the session named."""

    backend = "external"

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__()
        if "://" in url:
            url = url.split("://", 1)[1]
        if ":" not in url:
            raise EngineMisconfigured(f"a Kafka URL is host:port, got {url!r}")
        self.url = url.rstrip("/")
        self.prefix = prefix

    def start(self) -> None:
        self.check()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.cleanup(self.prefix)

    def log_path(self) -> None:
        return None


class DockerKafka(ContainerFaults, ContainerLog, KafkaEngine):
    """A single-node KRaft broker in a container: the project's image ``localhost/cdc-kafka:4.3.1``
    (the local backend's jars, ``scripts/setup-docker.sh``) or the official one where it can be
    had (``--cdc-image kafka=NAME``, ``containers.docker_api.image_for``); both read the local
    broker's ``SERVER_PROPERTIES`` as apache/kafka's ``KAFKA_*`` variables.

    Addressing: a free loopback port P is chosen at start; the container listens on P (all of its
    own interfaces), P is published on the host's 127.0.0.1 only, and the broker advertises
    ``127.0.0.1:P``: clients on the host and containers on the host's network (Connect) reach it
    at the address it advertises. The controller listens on the container's own loopback.
    ``broker-restart``: SIGKILL of the container, then the same container started again (same
    log dirs, same port). Labelled per run, removed by ``stop()`` or the next session's sweep.
    """

    backend = "docker"
    faults = frozenset({"broker-restart"})
    #: the log dirs inside the container (apache/kafka's default, writable by its user too)
    LOG_DIRS = "/tmp/kraft-combined-logs"

    def __init__(self, prefix: str = "cdc_", image: str | None = None, start_timeout_s: float = 120.0) -> None:
        super().__init__()
        self.prefix = prefix
        self.image = image
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self._container: Any = None

    def environment(self, port: int) -> dict[str, str]:
        """The container's variables: the local broker's properties for a broker on ``port``."""
        from containers.jvm_env import kafka_env, parse_properties

        controller = 9093 if port != 9093 else 9094
        props = parse_properties(SERVER_PROPERTIES.format(port=port, controller=controller, logs=self.LOG_DIRS))
        del props["controller.quorum.bootstrap.servers"]  # a static voter: formatted without --standalone
        props["controller.quorum.voters"] = f"1@127.0.0.1:{controller}"
        props["listeners"] = f"PLAINTEXT://0.0.0.0:{port},CONTROLLER://127.0.0.1:{controller}"
        props["advertised.listeners"] = f"PLAINTEXT://127.0.0.1:{port}"
        jvm = " ".join(LocalKafka.jvm_options)
        return {**kafka_env(props), "CLUSTER_ID": cluster_id(), "KAFKA_HEAP_OPTS": f"-Xmx{LocalKafka.heap} "
                f"-Xms{LocalKafka.heap}", "KAFKA_JVM_PERFORMANCE_OPTS": jvm}

    def start(self) -> None:
        """Create and start the container; return when the broker answers a metadata request."""
        if self._container is not None:
            return
        import port_for
        from testcontainers.core.container import DockerContainer

        from containers.docker_api import image_for, labels, require_docker

        require_docker()
        image = image_for("kafka", self.image)
        self.port = port_for.select_random()
        container = DockerContainer(image)
        for name, value in self.environment(self.port).items():
            container.with_env(name, value)
        container.ports[f"{self.port}/tcp"] = ("127.0.0.1", self.port)  # loopback only
        container.with_kwargs(labels=labels(self.prefix))
        self._container = container
        try:
            container.start()
        except Exception as exc:  # noqa: BLE001 - docker/testcontainers raise many kinds: one line each
            logs = self._logs()
            self.stop()
            raise EngineUnavailable(f"the Kafka container ({image}) did not start: {type(exc).__name__}: "
                                    f"{one_line(exc)[:300]}; container log: {logs}") from None
        self.url = f"127.0.0.1:{self.port}"
        self._wait_ready("start")

    def _logs(self) -> str:
        from containers.docker_api import log_tail

        return log_tail(self._container)

    def _wait_ready(self, what: str) -> None:
        from containers.docker_api import wait_ready

        wait_ready(lambda: broker_answers(self.url, timeout_s=1.0), self.start_timeout_s,
                   lambda: f"the Kafka container did not answer on {self.url} after {what} within "
                           f"{self.start_timeout_s:.0f} s; container log: {self._logs()}")

    def stop(self) -> None:
        """Remove the container (its topics go with it). Idempotent."""
        self._remove()


def engine_from_options(backend: str = "auto", url: str | None = None, name_prefix: str = "cdc_",
                        timeout_s: float = 60.0, image: str | None = None) -> KafkaEngine:
    """The Kafka engine for ``--cdc-engines`` and an optional URL (not started yet).

    ``auto``: the URL when given, else a Docker broker when Docker answers, else the local
    broker when java and the jars are there, else ``EngineUnavailable`` with the set-up command.
    """
    from containers import jvm

    if backend == "external" or (backend == "auto" and url):
        if not url:
            raise EngineMisconfigured("--cdc-engines=external needs --cdc-engine-url kafka=host:port")
        return ExternalKafka(url, name_prefix)
    if backend == "docker":
        return DockerKafka(name_prefix, image, start_timeout_s=max(timeout_s, 60.0))
    if backend == "auto":
        from containers.docker_api import docker_answers

        if docker_answers(timeout_s=2.0) is None:
            return DockerKafka(name_prefix, image, start_timeout_s=max(timeout_s, 60.0))
        missing = jvm.available("kafka")
        if missing:
            raise EngineUnavailable(f"no Docker engine and {missing}")
    elif backend != "local":
        raise EngineMisconfigured(f"unknown engine backend {backend!r}; valid: auto, local, docker, external")
    return LocalKafka(start_timeout_s=max(timeout_s, 30.0))
