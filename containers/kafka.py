"""Kafka broker engine: a private local KRaft node from the Maven jars, a testcontainers broker,
or an external cluster (``--cdc-engine-url kafka=host:port``).

All backends share :class:`KafkaEngine`: ``url``/``bootstrap`` (``host:port``), ``admin()`` (a
confluent-kafka AdminClient), ``topics(prefix)`` and ``cleanup(prefix)`` (delete the topics and
consumer groups a run created, every name starting with the run's prefix). The local broker
declares the ``broker-restart`` fault (kill -9, restart on the same log dirs).
"""

from __future__ import annotations

import base64
import contextlib
import socket
import uuid
from typing import Any, ClassVar

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


class DockerKafka(KafkaEngine):
    """A testcontainers Kafka broker (``CDC_KAFKA_IMAGE``), port on 127.0.0.1; ``EngineUnavailable``
    at once when no Docker engine answers."""

    backend = "docker"

    def __init__(self, image: str) -> None:
        super().__init__()
        self.image = image
        self._container: Any = None

    def start(self) -> None:
        from containers.docker_api import docker_answers

        why = docker_answers()
        if why:
            raise EngineUnavailable(f"{why}; fix: start Docker or use --cdc-engines=local")
        try:
            from testcontainers.community.kafka import KafkaContainer  # testcontainers >= 4.15
        except ImportError:
            from testcontainers.kafka import KafkaContainer

        from containers.docker_api import require_image

        require_image(self.image, "Kafka")
        try:
            self._container = KafkaContainer(self.image).with_kraft().start()
        except Exception as exc:  # docker raises many kinds here
            raise EngineUnavailable(f"the Kafka container ({self.image}) did not start: {one_line(exc)}") from None
        self.url = self._container.get_bootstrap_server()
        self.check()

    def stop(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.stop()
            self._container = None

    def log_path(self) -> None:
        return None


def engine_from_options(backend: str = "auto", url: str | None = None, name_prefix: str = "cdc_",
                        timeout_s: float = 60.0) -> KafkaEngine:
    """The Kafka engine for ``--cdc-engines`` and an optional URL (not started yet).

    ``auto``: the URL when given, else a Docker broker when Docker answers, else the local
    broker when java and the jars are there, else ``EngineUnavailable`` with the set-up command.
    """
    import os

    from containers import jvm

    image = os.environ.get("CDC_KAFKA_IMAGE", "apache/kafka:4.1.1")
    if backend == "external" or (backend == "auto" and url):
        if not url:
            raise EngineMisconfigured("--cdc-engines=external needs --cdc-engine-url kafka=host:port")
        return ExternalKafka(url, name_prefix)
    if backend == "docker":
        return DockerKafka(image)
    if backend == "auto":
        from containers.docker_api import docker_answers

        if docker_answers(timeout_s=2.0) is None:
            return DockerKafka(image)
        missing = jvm.available("kafka")
        if missing:
            raise EngineUnavailable(f"no Docker engine and {missing}")
    elif backend != "local":
        raise EngineMisconfigured(f"unknown engine backend {backend!r}; valid: auto, local, docker, external")
    return LocalKafka(start_timeout_s=max(timeout_s, 30.0))
