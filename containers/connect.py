"""Kafka Connect engine: local distributed workers with the Debezium plugins (from the Maven
jars), the same workers in containers (``containers.connect_docker``), or an external Connect REST URL.

All backends share :class:`ConnectEngine`: ``url`` (the REST root of the worker a run uses),
``register(name, config)`` (returns when the connector's task is RUNNING), ``status``,
``restart_connector`` and ``delete`` (REST), and ``cleanup(prefix)``. The local engine runs one
worker per delivery mode (the docker engine too), started on first use on the session's broker: ``at-least-once``
(``exactly.once.source.support=disabled``) and ``exactly-once`` (``enabled``: transactional
source tasks, offsets committed in the same transaction). Faults: ``connect-crash`` (kill -9 the
worker, restart it; its tasks resume from the offsets in Kafka) and ``connector-restart`` (REST).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, ClassVar

from containers.jvm import PLUGIN_PATH, JvmServer, jar_dir, jars_root
from harness.errors import EngineMisconfigured, EngineUnavailable, Unsupported
from harness.secrets import mask_text, one_line

REST_TIMEOUT_S = 10.0
MODES = ("at-least-once", "exactly-once")
#: Connect plugin folders (one per connector family: the MariaDB connector is older than the
#: others and brings its own copies of Debezium's jars)
PLUGINS = ("debezium-postgres", "debezium-mysql", "debezium-mariadb")
WORKER_PROPERTIES = """\
bootstrap.servers={bootstrap}
group.id={group}
listeners=http://127.0.0.1:{port}
rest.advertised.host.name=127.0.0.1
rest.advertised.port={port}
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=true
value.converter.schemas.enable=true
config.storage.topic={group}-configs
offset.storage.topic={group}-offsets
status.storage.topic={group}-status
config.storage.replication.factor=1
offset.storage.replication.factor=1
status.storage.replication.factor=1
offset.storage.partitions=1
status.storage.partitions=1
offset.flush.interval.ms=60000
offset.flush.timeout.ms=5000
plugin.path={plugins}
plugin.discovery=service_load
connector.client.config.override.policy=All
exactly.once.source.support={eos}
scheduled.rebalance.max.delay.ms=0
task.shutdown.graceful.timeout.ms=2000
"""


def _requests() -> Any:
    import requests

    return requests


class ConnectEngine:
    """What every Connect backend offers besides the Engine contract.

    Contract: ``register`` creates a connector and returns when its one task is RUNNING (or
    raises ``EngineUnavailable`` with the task's trace, masked); ``delete`` removes it (its
    offsets stay in the worker's offsets topic); names are the run's prefix, so ``cleanup``
    removes only what the harness created.
    """

    family: ClassVar[str] = "connect"
    backend = ""
    faults: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.url = ""
        #: which worker URL runs which connector (local: one worker per delivery mode)
        self._owner: dict[str, str] = {}

    # -- REST -----------------------------------------------------------------------------------
    def worker_url(self, mode: str = "at-least-once") -> str:
        """The REST root of the worker for ``mode`` (one worker serves every mode by default)."""
        if mode not in MODES:
            raise EngineMisconfigured(f"unknown delivery mode {mode!r}; valid: {', '.join(MODES)}")
        return self.url

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        requests = _requests()
        try:
            return requests.request(method, url, timeout=REST_TIMEOUT_S, **kwargs)
        except requests.RequestException as exc:
            raise EngineUnavailable(f"Kafka Connect at {url.split('/connectors')[0]} does not answer: "
                                    f"{one_line(exc)}") from None

    def register(self, name: str, config: dict[str, Any], mode: str = "at-least-once",
                 timeout_s: float = 60.0) -> None:
        """Create connector ``name`` on the worker for ``mode``; return when its task RUNS."""
        base = self.worker_url(mode)
        answer = self._call("PUT", f"{base}/connectors/{name}/config", json=config)
        if answer.status_code >= 300:
            raise EngineMisconfigured(f"Connect refused connector {name}: {mask_text(answer.text)[:400]}")
        self._owner[name] = base
        self.wait_running(name, timeout_s)

    def status(self, name: str) -> dict[str, Any]:
        """The connector's REST status (``{}`` when it does not exist)."""
        answer = self._call("GET", f"{self._base(name)}/connectors/{name}/status")
        return answer.json() if answer.status_code == 200 else {}

    def task_state(self, name: str) -> tuple[str, str]:
        """(state of task 0, its trace) — ``("", "")`` while it has no task yet."""
        tasks = self.status(name).get("tasks") or []
        return (tasks[0].get("state", ""), tasks[0].get("trace", "")) if tasks else ("", "")

    def wait_running(self, name: str, timeout_s: float = 60.0) -> None:
        """Wait until task 0 of ``name`` is RUNNING; a FAILED task raises with its trace."""
        deadline = time.monotonic() + timeout_s
        while True:
            state, trace = self.task_state(name)
            if state == "RUNNING":
                return
            if state == "FAILED":
                raise EngineUnavailable(f"connector {name} failed: {mask_text(first_cause(trace))}")
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"connector {name} not RUNNING within {timeout_s:.0f} s (state "
                                        f"{state or 'no task'})")
            time.sleep(0.1)

    def restart_connector(self, name: str) -> None:
        """Restart the connector and its tasks through REST, and wait until it runs again."""
        answer = self._call("POST", f"{self._base(name)}/connectors/{name}/restart",
                            params={"includeTasks": "true", "onlyFailed": "false"})
        if answer.status_code >= 300:
            raise EngineUnavailable(f"Connect did not restart {name}: {mask_text(answer.text)[:300]}")
        time.sleep(0.2)
        self.wait_running(name)

    def delete(self, name: str) -> None:
        """Delete the connector (idempotent)."""
        with contextlib.suppress(EngineUnavailable):
            self._call("DELETE", f"{self._base(name)}/connectors/{name}")
        self._owner.pop(name, None)

    def connectors(self) -> list[tuple[str, str]]:
        """(worker URL, connector name) of every connector on the workers the engine knows."""
        out = []
        for base in self.worker_urls():
            with contextlib.suppress(EngineUnavailable, ValueError):
                out += [(base, n) for n in self._call("GET", f"{base}/connectors").json()]
        return out

    def worker_urls(self) -> list[str]:
        """The REST roots of the running workers."""
        return [self.url] if self.url else []

    def cleanup(self, prefix: str) -> list[str]:
        """Delete every connector named with ``prefix``; returns their names."""
        gone = []
        for base, name in self.connectors():
            if name.startswith(prefix):
                self._owner[name] = base
                self.delete(name)
                gone.append(f"connector {name}")
        return gone

    def _base(self, name: str) -> str:
        return self._owner.get(name, self.url)

    # -- faults ---------------------------------------------------------------------------------
    def inject(self, kind: str, point: str, names: str) -> None:
        """``connect-crash``: kill -9 the worker running the run's connector and restart it;
        ``connector-restart``: restart the run's connector through REST."""
        if kind not in self.faults:
            raise Unsupported(f"the {self.backend} Connect engine declares no fault {kind!r}")
        ours = [n for n in self._owner if n.startswith(names)]
        if not ours:
            raise Unsupported(f"no connector of this run ({names}) is registered to inject {kind!r} on")
        if kind == "connector-restart":
            for name in ours:
                self.restart_connector(name)
        else:
            self.crash_worker(self._owner[ours[0]])
            for name in ours:
                self.wait_running(name)

    def crash_worker(self, base: str) -> None:
        raise Unsupported(f"the {self.backend} Connect backend cannot crash a worker")


def first_cause(trace: str) -> str:
    """The most telling lines of a Java trace: the first line and the last 'Caused by'."""
    lines = [ln.strip() for ln in trace.splitlines() if ln.strip()]
    causes = [ln for ln in lines if ln.startswith("Caused by")]
    return " | ".join(x for x in (lines[0] if lines else "", causes[-1] if causes else "") if x)[:600]


class ConnectWorker(JvmServer):
    """One local distributed Connect worker (offsets, configs and status in Kafka topics)."""

    label = "kafka connect"
    profiles = ("kafka",)
    main_class = "org.apache.kafka.connect.cli.ConnectDistributed"
    heap = "512m"
    jvm_options = ("-XX:+UseSerialGC",)

    def __init__(self, bootstrap: str, group: str, exactly_once: bool, start_timeout_s: float = 90.0) -> None:
        super().__init__(start_timeout_s)
        self.bootstrap = bootstrap
        self.group = group
        self.exactly_once = exactly_once
        self.port = 0
        self.url = ""

    def prepare(self) -> None:
        import port_for

        assert self.root is not None
        self.port = port_for.select_random()
        self.url = f"http://127.0.0.1:{self.port}"
        for plugin in PLUGINS:
            jar_dir(plugin)
        plugins = str(jars_root() / PLUGIN_PATH)
        (self.root / "worker.properties").write_text(WORKER_PROPERTIES.format(
            bootstrap=self.bootstrap, group=self.group, port=self.port, plugins=plugins,
            eos="enabled" if self.exactly_once else "disabled"))

    def arguments(self) -> list[str]:
        assert self.root is not None
        return [str(self.root / "worker.properties")]

    def ready(self) -> bool:
        requests = _requests()
        try:
            answer = requests.get(f"{self.url}/connectors", timeout=1.0)
        except requests.RequestException:
            return False
        return answer.status_code == 200


class ModeWorkers(ConnectEngine):
    """Connect workers on the session's Kafka broker, one per delivery mode, each started on first
    use (the at-least-once one at ``start()``); subclasses make the worker (``new_worker``): an
    object with ``url``, ``start``, ``kill``, ``restart``, ``running``, ``shutdown``, ``log_path``.
    The worker groups and their topics are named per session, so sessions sharing an external
    broker never collide."""

    faults = frozenset({"connect-crash", "connector-restart"})

    def __init__(self, kafka: Any, group: str, start_timeout_s: float = 90.0) -> None:
        super().__init__()
        self.kafka = kafka
        self.group = group
        self.start_timeout_s = start_timeout_s
        self.workers: dict[str, Any] = {}
        self.last_mode = "at-least-once"  # the mode a case last asked for: whose log a failure attaches

    def new_worker(self, group: str, exactly_once: bool) -> Any:
        """A worker (not started) of ``group`` with exactly-once source support or without."""
        raise NotImplementedError

    def start(self) -> None:
        self.worker_url("at-least-once")

    def worker_url(self, mode: str = "at-least-once") -> str:
        if mode not in MODES:
            raise EngineMisconfigured(f"unknown delivery mode {mode!r}; valid: {', '.join(MODES)}")
        worker = self.workers.get(mode)
        if worker is None:
            worker = self.new_worker(f"{self.group}_{mode.replace('-', '_')}", exactly_once=mode == "exactly-once")
            worker.start()
            self.workers[mode] = worker
            if not self.url:
                self.url = worker.url
        self.last_mode = mode
        return worker.url

    def worker_urls(self) -> list[str]:
        return [w.url for w in self.workers.values() if w.running()]

    def crash_worker(self, base: str) -> None:
        """kill -9 the worker at ``base`` and start it again (same group: it rejoins and its
        connectors' tasks resume from the offsets committed in Kafka)."""
        worker = next(w for w in self.workers.values() if w.url == base)
        worker.kill()
        worker.restart()

    def log_path(self) -> Any:
        """The log of the worker the last case used (its delivery mode's)."""
        worker = self.workers.get(self.last_mode) or self.workers.get("at-least-once")
        return worker.log_path() if worker else None

    def kill(self) -> None:
        for worker in self.workers.values():
            worker.kill()

    def restart(self) -> None:
        for worker in self.workers.values():
            worker.restart()

    def stop(self) -> None:
        """Delete the harness's connectors, stop the workers, remove their dirs. Idempotent."""
        with contextlib.suppress(Exception):
            self.cleanup("cdc_")
        while self.workers:
            _, worker = self.workers.popitem()
            worker.shutdown()
        self.url = ""


class LocalConnect(ModeWorkers):
    """Local Connect workers (``ConnectWorker``: JVM processes from the jars), one per delivery mode."""

    backend = "local"

    def new_worker(self, group: str, exactly_once: bool) -> ConnectWorker:
        return ConnectWorker(self.kafka.bootstrap, group, exactly_once=exactly_once,
                             start_timeout_s=self.start_timeout_s)


class ExternalConnect(ConnectEngine):
    """A user-given Connect REST URL (``--cdc-engine-url connect=http://…``): checked at start,
    declares no fault; ``stop()`` deletes the connectors the session created."""

    backend = "external"

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__()
        if not url.startswith(("http://", "https://")):
            raise EngineMisconfigured(f"a Connect URL is http(s)://host:port, got {url!r}")
        self.url = url.rstrip("/")
        self.prefix = prefix

    def start(self) -> None:
        answer = self._call("GET", f"{self.url}/connector-plugins")
        if answer.status_code != 200:
            raise EngineUnavailable(f"Kafka Connect at {self.url} answered {answer.status_code}")
        classes = {p.get("class", "") for p in answer.json()}
        if not any(c.startswith("io.debezium.connector") for c in classes):
            raise EngineMisconfigured(f"Kafka Connect at {self.url} has no Debezium connector plugin; fix: add "
                                      "the Debezium connectors to its plugin.path")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.cleanup(self.prefix)

    def log_path(self) -> None:
        return None


def engine_from_options(kafka: Any, backend: str = "auto", url: str | None = None, name_prefix: str = "cdc_",
                        timeout_s: float = 60.0, image: str | None = None) -> ConnectEngine:
    """The Connect engine for ``--cdc-engines`` and an optional URL, on the ``kafka`` engine
    (``image``: ``--cdc-image connect=NAME`` for the docker backend)."""
    if backend == "external" or (backend == "auto" and url):
        if not url:
            raise EngineMisconfigured("--cdc-engines=external needs --cdc-engine-url connect=http://host:port")
        return ExternalConnect(url, name_prefix)
    if backend == "docker":
        from containers.connect_docker import DockerConnect

        return DockerConnect(kafka, group=f"{name_prefix}_connect", image=image,
                             start_timeout_s=max(timeout_s, 60.0))
    if backend not in ("auto", "local"):
        raise EngineMisconfigured(f"unknown engine backend {backend!r}; valid: auto, local, docker, external")
    from containers import jvm

    missing = jvm.available("kafka", *PLUGINS)
    if missing:
        raise EngineUnavailable(missing)
    return LocalConnect(kafka, group=f"{name_prefix}_connect", start_timeout_s=max(timeout_s, 60.0))


