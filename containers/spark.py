"""The Spark engine: one session per worker, local (pyspark + the project's jars) or Spark Connect.

Local: a ``local[2]`` session in this process with Delta and Iceberg from ``.cache/jars/spark``
(``scripts/setup-jvm.sh``, offline at run time), bound to 127.0.0.1, UI off, its scratch space in
a private 0700 dir; ``stop()`` ends the session *and* its JVM (pyspark keeps the gateway JVM
alive otherwise). External: ``--cdc-engine-url spark=sc://host:port``, a Spark Connect server
whose session has the Delta and Iceberg extensions (docs/spark.md); it must see the warehouse
folders the harness writes (same machine or a shared mount). Delta tables are addressed by path
(``delta.`/path```); each Iceberg warehouse is registered at run time as its own Spark catalog,
named like the warehouse's pyiceberg catalog so both engines share its SQLite catalog.
"""

from __future__ import annotations

import contextlib
import glob
import shutil
import socket
import time
from pathlib import Path
from typing import Any, ClassVar

from containers.docker_api import ContainerLog
from containers.engine import private_dir
from containers.jvm import jar_dir
from harness.errors import EngineUnavailable, MissingDependency, Unsupported

#: session settings for a local run (measured in the issue: 2 partitions, Arrow on, UTC)
LOCAL_CONF = {
    "spark.driver.memory": "1g",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension,"
                            "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.databricks.delta.retentionDurationCheck.enabled": "false",
    # small-data settings: code generation and adaptive re-planning cost more than they save on the
    # scenarios' tiny commits (measured: a one-row Delta MERGE 11.9 s → 5.3 s median under load, 2.2×)
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.databricks.delta.merge.materializeSource": "none",
    "spark.databricks.delta.merge.repartitionBeforeWrite.enabled": "false",
}


def require_pyspark() -> Any:
    """The pyspark module, or ``MissingDependency`` naming the set-up."""
    try:
        import pyspark
    except ImportError:
        raise MissingDependency("pyspark", "spark") from None
    return pyspark


class SparkEngine:
    """A Spark session shared by a worker's cases (``session``); declares no fault.

    Contract: ``start()`` returns with a working session or raises ``EngineUnavailable`` with
    the fix; ``stop()`` is idempotent and leaves no JVM running for a local session.
    """

    family: ClassVar[str] = "spark"
    faults: frozenset[str] = frozenset()

    def __init__(self, url: str | None = None, timeout_s: float = 60.0) -> None:
        self.backend = "external" if url else "local"
        self.url = url or "local[2]"
        self.timeout_s = timeout_s
        self.session: Any = None
        self.dir: Path | None = None
        self.started_s = 0.0
        self._catalogs: set[str] = set()

    def start(self) -> None:
        require_pyspark()
        from pyspark.sql import SparkSession

        began = time.monotonic()
        if self.backend != "local":  # Spark Connect: a user's server, or the Docker backend's container
            _probe(self.url, self.timeout_s)
            try:
                self.session = SparkSession.builder.remote(self.url).getOrCreate()
                self.session.sql("SELECT 1").collect()
            except Exception as exc:  # noqa: BLE001 - any client error means: not reachable
                raise EngineUnavailable(f"Spark Connect at {self.url} does not answer ({type(exc).__name__}: "
                                        f"{str(exc).splitlines()[0][:160]}); fix: start the Connect server "
                                        "(docs/spark.md) or correct --cdc-engine-url spark=sc://host:port") from None
        else:
            jars = sorted(glob.glob(str(jar_dir("spark") / "*.jar")))
            self.dir = private_dir("spark")
            builder = SparkSession.builder.master(self.url).appName("cdc-harness")
            for key, value in {**LOCAL_CONF, "spark.jars": ",".join(jars), "spark.local.dir": str(self.dir),
                               "spark.sql.warehouse.dir": str(self.dir / "warehouse"),
                               "spark.driver.extraJavaOptions": f"-Djava.io.tmpdir={self.dir} -Dderby.system.home="
                                                                f"{self.dir}"}.items():
                builder = builder.config(key, value)
            try:
                self.session = builder.getOrCreate()
            except Exception as exc:  # noqa: BLE001
                self.stop()
                raise EngineUnavailable(f"a local Spark session did not start ({type(exc).__name__}: "
                                        f"{str(exc).splitlines()[0][:160]}); fix: make setup (Java 17, pyspark, "
                                        "the jars in .cache/jars/spark)") from None
            self.session.sparkContext.setLogLevel("ERROR")
        self.started_s = time.monotonic() - began

    def stop(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            with contextlib.suppress(Exception):
                session.stop()
        if self.backend == "local":
            _stop_gateway()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def kill(self) -> None:
        raise Unsupported("the Spark engine declares no fault")

    def restart(self) -> None:
        raise Unsupported("the Spark engine declares no fault")

    def inject(self, kind: str, point: str, names: str) -> None:
        raise Unsupported(f"the Spark engine declares no fault (asked for {kind!r})")

    def log_path(self) -> Path | None:
        return None

    def version(self) -> str:
        """The Spark version the session runs."""
        return str(self.session.version)

    def sql(self, statement: str) -> Any:
        """Run one SQL statement and return its DataFrame."""
        return self.session.sql(statement)

    def iceberg_catalog(self, warehouse: Any) -> str:
        """Register ``warehouse`` (an ``IcebergWarehouse``) as a Spark catalog; return its name.

        Same name as its pyiceberg ``SqlCatalog`` (the catalog name is part of every row of the
        SQLite catalog), ``jdbc.schema-version=V1`` as pyiceberg writes it.
        """
        name = warehouse.catalog_name
        if name not in self._catalogs:
            prefix = f"spark.sql.catalog.{name}"
            for key, value in {"": "org.apache.iceberg.spark.SparkCatalog",
                               ".catalog-impl": "org.apache.iceberg.jdbc.JdbcCatalog",
                               ".uri": f"jdbc:sqlite:{warehouse.root}/catalog.db",
                               ".warehouse": Path(warehouse.root).as_uri(),
                               ".jdbc.schema-version": "V1",
                               ".cache-enabled": "false"}.items():
                self.session.conf.set(prefix + key, value)
            self._catalogs.add(name)
        return name


def _probe(url: str, timeout_s: float) -> None:
    """Fail fast when nothing listens at a Spark Connect URL (its client retries for minutes)."""
    host, _, port = url.removeprefix("sc://").split("/", 1)[0].split(";", 1)[0].partition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port or 15002)), timeout=min(timeout_s, 10)).close()
    except (OSError, ValueError) as exc:
        raise EngineUnavailable(f"Spark Connect at {url} does not answer ({exc}); fix: start the Connect server "
                                "(docs/spark.md) or correct --cdc-engine-url spark=sc://host:port") from None


def _stop_gateway() -> None:
    """End the py4j gateway JVM a local session started (``SparkSession.stop`` leaves it)."""
    with contextlib.suppress(ImportError):
        from pyspark import SparkContext

        gateway = SparkContext._gateway
        if gateway is None:
            return
        proc = getattr(gateway, "proc", None)
        with contextlib.suppress(Exception):
            gateway.shutdown()
        if proc is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()  # the JVM exits when its parent's pipe closes
                proc.terminate()
                proc.wait(timeout=10)
        SparkContext._gateway = None
        SparkContext._jvm = None


class DockerSpark(ContainerLog, SparkEngine):
    """A Spark Connect server in a container (the project's ``localhost/cdc-spark:4.1.1``: the Spark
    that pyspark ships, or ``--cdc-image spark=NAME``, e.g. the official ``apache/spark:4.1.1``, whose
    ``/opt/spark`` has the same layout), with the local session's settings and the project's Delta
    and Iceberg jars (``.cache/jars/spark``, mounted read-only at ``/opt/cdc-jars``); the harness's
    session is a Spark Connect client, as against a cluster.

    Addressing and files: the container runs on the host's network namespace, the server bound to
    127.0.0.1 on a free port; the temp dir (where every warehouse and case folder lives) is mounted
    at the same path, so tables are addressed by the harness's own paths; the server runs as this
    process's user, so the files it writes are the harness's. Declares no fault. Labelled per run,
    removed by ``stop()`` or the next session's sweep.
    """

    backend = "docker"
    JARS_IN_CONTAINER = "/opt/cdc-jars"

    def __init__(self, image: str | None = None, timeout_s: float = 60.0, prefix: str = "cdc_",
                 start_timeout_s: float = 180.0) -> None:
        super().__init__(None, timeout_s)
        self.backend = "docker"
        self.image = image
        self.prefix = prefix
        self.start_timeout_s = start_timeout_s
        self._container: Any = None

    def command(self, port: int, jars: list[str]) -> list[str]:
        """``spark-submit`` of the Connect server with the local session's settings on ``port``."""
        conf = {**LOCAL_CONF, "spark.connect.grpc.binding.address": "127.0.0.1",
                "spark.connect.grpc.binding.port": str(port), "spark.driver.extraJavaOptions": "-Duser.home=/tmp"}
        args = ["/opt/spark/bin/spark-submit", "--master", "local[2]", "--name", "cdc-harness-connect",
                "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
                "--jars", ",".join(f"{self.JARS_IN_CONTAINER}/{Path(j).name}" for j in jars)]
        for key, value in conf.items():
            args += ["--conf", f"{key}={value}"]
        return args

    def start(self) -> None:
        if self._container is not None:
            return
        import os
        import tempfile

        import port_for
        from testcontainers.core.container import DockerContainer

        from containers.docker_api import image_for, labels, log_tail, require_docker, wait_ready

        require_pyspark()  # the client
        require_docker()
        jars = sorted(glob.glob(str(jar_dir("spark") / "*.jar")))
        if not jars:
            raise EngineUnavailable(f"no Delta/Iceberg jars in {jar_dir('spark')}; fix: make setup "
                                    "(scripts/setup-jvm.sh fetches them)")
        image = image_for("spark", self.image)
        port = port_for.select_random()
        temp = tempfile.gettempdir()
        container = DockerContainer(image)
        container.with_command(self.command(port, jars))
        container.with_env("SPARK_LOCAL_IP", "127.0.0.1").with_env("HOME", "/tmp")
        container.with_env("SPARK_USER", "cdc").with_env("HADOOP_USER_NAME", "cdc")
        container.with_volume_mapping(str(jar_dir("spark")), self.JARS_IN_CONTAINER, "ro")
        container.with_volume_mapping(temp, temp, "rw")
        container.with_kwargs(labels=labels(self.prefix), network_mode="host", user=f"{os.getuid()}:{os.getgid()}")
        self._container = container
        try:
            container.start()
        except Exception as exc:  # noqa: BLE001 - docker/testcontainers raise many kinds: one line each
            logs = log_tail(container)
            self.stop()
            raise EngineUnavailable(f"the Spark container ({image}) did not start: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0][:300] if str(exc) else ''}; "
                                    f"container log: {logs}") from None
        self.url = f"sc://127.0.0.1:{port}"
        wait_ready(lambda: _listening(port), self.start_timeout_s,
                   lambda: f"the Spark Connect container did not listen on 127.0.0.1:{port} within "
                           f"{self.start_timeout_s:.0f} s; container log: {log_tail(container)}")
        try:
            super().start()
        except EngineUnavailable:
            self.stop()
            raise

    def stop(self) -> None:
        super().stop()
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(Exception):
                container.stop()


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
        return True
    return False


def engine_from_options(backend: str, url: str | None, timeout_s: float,
                        image: str | None = None) -> SparkEngine:
    """A Spark engine for ``--cdc-engines``/``--cdc-engine-url spark=...`` (not started)."""
    if url and not url.startswith("sc://"):
        raise EngineUnavailable(f"--cdc-engine-url spark={url}: only Spark Connect URLs (sc://host:port) are "
                                "supported; fix: start a Spark Connect server and pass its sc:// URL")
    if backend == "external" and not url:
        raise EngineUnavailable("--cdc-engines=external has no Spark to use; fix: pass --cdc-engine-url "
                                "spark=sc://host:port (a Spark Connect server)")
    if backend == "docker" and not url:
        return DockerSpark(image, timeout_s)
    return SparkEngine(url, timeout_s)
