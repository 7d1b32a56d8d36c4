"""The Docker backend on this machine: podman's service started and stopped by the session, the
project's PostgreSQL, MariaDB, Kafka and Connect images honouring the official images' contracts, labelled
containers removed at the end and by the next session's sweep, and one-line errors with the fix.

Needs podman and the images of ``scripts/setup-docker.sh`` (``make setup`` builds them); skips
with that command where they are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.pg_helpers import CASE, ROOT, Work, run, wait_for, work_fixture  # noqa: F401 - ``work`` fixture

LOCAL_IMAGE = "localhost/cdc-postgres:15"
BASE_IMAGE = "localhost/debian:bookworm"
MARIADB_IMAGE = "localhost/cdc-mariadb:11.8"
KAFKA_IMAGE = "localhost/cdc-kafka:4.3.1"
CONNECT_IMAGE = "localhost/cdc-connect:4.3.1"


def _podman_images() -> None:
    """Skip (with the fix) where podman or the project's images are missing."""
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("podman is not installed; fix: bash scripts/setup-docker.sh")
    for image in (BASE_IMAGE, LOCAL_IMAGE, "localhost/cdc-pushgateway:1"):
        if subprocess.run([podman, "image", "exists", image], timeout=30).returncode != 0:
            pytest.skip(f"image {image} is missing; fix: make setup-docker")


def _labelled(label: str) -> list[dict]:
    out = subprocess.run(["podman", "ps", "-a", "--filter", f"label={label}", "--format", "json"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return json.loads(out or "[]")


@pytest.fixture
def api(request: pytest.FixtureRequest):
    """A started ``DockerApi`` (a podman service here), stopped afterwards whatever happens."""
    _podman_images()
    if (request.config.getoption("cdc_engines", None) or request.config.getini("cdc_engines")) == "docker":
        pytest.skip("this session runs its engines on the Docker backend, whose containers carry this "
                    "process's owner label too; run these tests without --cdc-engines=docker")
    from containers.docker_api import DockerApi

    service = DockerApi()
    service.start()
    try:
        yield service
    finally:
        service.stop()


def test_podman_service_runs_docker_postgres_and_leaves_nothing(api) -> None:  # noqa: ANN001
    """DockerPostgres on the podman service: a missing image is one line naming the make command;
    the project's image under testcontainers with its own
    user and database (POSTGRES_USER/POSTGRES_DB) and the CDC flags as the command, labelled;
    SIGKILL of the container and crash recovery on restart keep the committed rows; the API's
    stop() removes what this process labelled (even without the engine's stop), stops the service
    and restores the environment."""
    from containers.docker_api import LABEL_OWNER, LABEL_RUN, docker_answers, image_for, owner_token
    from containers.postgres import DockerPostgres
    from harness.errors import EngineUnavailable

    if api.started:  # a podman service started here, not a Docker daemon found running
        assert api.root is not None and os.environ["DOCKER_HOST"] == api.host
        assert os.environ["TESTCONTAINERS_RYUK_DISABLED"] == "true"
        assert image_for("postgres") == LOCAL_IMAGE  # the official one cannot be pulled here
        missing = DockerPostgres("cdc_test_dockerpg_", image="localhost/cdc-postgres:no-such-tag")
        with pytest.raises(EngineUnavailable, match=r"^image localhost/cdc-postgres:no-such-tag is not in podman's "
                                                    r"image store; fix: podman build .* built by make setup-docker"):
            missing.start()  # at once: podman is never asked to pull
    assert docker_answers(host=api.host) is None
    engine = DockerPostgres("cdc_test_dockerpg_", image=LOCAL_IMAGE)
    engine.start()
    try:
        assert [c["Labels"][LABEL_RUN] for c in _labelled(f"{LABEL_RUN}=cdc_test_dockerpg_")] == ["cdc_test_dockerpg_"]
        with engine.connect() as conn:
            row = conn.execute("SELECT current_user, current_database(), current_setting('wal_level'), "
                               "current_setting('datestyle')").fetchone()
            assert row == ("cdc", "cdc", "logical", "ISO, MDY")
            conn.execute("CREATE TABLE cdc_test_dockerpg_t (k int PRIMARY KEY)")
            conn.execute("INSERT INTO cdc_test_dockerpg_t VALUES (1), (2)")
        engine.kill()
        engine.restart()
        with engine.connect() as conn:
            assert conn.execute("SELECT count(*) FROM cdc_test_dockerpg_t").fetchone() == (2,)
    finally:
        engine._container = None  # leave the container to the API's stop()
    mine = f"{LABEL_OWNER}={owner_token()}"
    [container] = _labelled(mine)
    host, root = api.host, api.root
    pid = api._executor.process.pid if api.started else None
    api.stop()
    assert _labelled(mine) == []
    assert not [p for p in Path("/proc").glob("[0-9]*") if _cmdline_has(p, container["Id"])], \
        "a process of the removed container (a conmon of an exec session?) is still running"
    if pid is not None:
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, "the podman service to exit")
        assert not root.exists() and docker_answers(timeout_s=1.0, host=host) is not None
        assert os.environ.get("DOCKER_HOST") != host


def test_docker_mariadb_kill_and_restart_through_the_container_api(api) -> None:  # noqa: ANN001
    """DockerMySql on the project's MariaDB 11.8 image (the official image's contract under
    testcontainers' MySqlContainer): the binlog settings, committed rows through SIGKILL and
    restart of the container, the container's log as the engine's log, and no container left after stop()."""
    pytest.importorskip("pymysql", reason="fix: pip install -e '.[mysql]'")
    from containers.docker_api import LABEL_RUN
    from containers.mysql import DockerMySql

    if subprocess.run(["podman", "image", "exists", MARIADB_IMAGE], timeout=30).returncode != 0:
        pytest.skip(f"image {MARIADB_IMAGE} is missing; fix: make setup-docker")
    engine = DockerMySql("cdc_test_dockermy_", image=MARIADB_IMAGE)
    engine.start()
    try:
        assert len(_labelled(f"{LABEL_RUN}=cdc_test_dockermy_")) == 1
        conn = engine.connect()
        with conn.cursor() as cur:
            cur.execute("SELECT @@log_bin, @@binlog_format, @@binlog_row_metadata, @@gtid_strict_mode")
            assert cur.fetchone() == (1, "ROW", "FULL", 1)
            cur.execute("SELECT VERSION()")  # the official mariadb:11's series, not the local backend's 10.11
            assert cur.fetchone()[0].startswith("11.8."), "the image is not trixie's MariaDB 11.8"
            cur.execute("CREATE DATABASE cdc_test_dockermy_db")
            cur.execute("CREATE TABLE cdc_test_dockermy_db.t (k int PRIMARY KEY)")
            cur.execute("INSERT INTO cdc_test_dockermy_db.t VALUES (1), (2)")
        conn.close()
        engine.kill()
        engine.restart()
        conn = engine.connect()
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM cdc_test_dockermy_db.t")
            assert cur.fetchone() == (2,)
        conn.close()
        log = engine.log_path()  # the container's log, as a failed cell attaches it
        assert log is not None and "ready for connections" in log.read_text()
    finally:
        engine.stop()
    assert _labelled(f"{LABEL_RUN}=cdc_test_dockermy_") == []


def test_pushgateway_runs_on_the_local_image(api) -> None:  # noqa: ANN001
    """The pushgateway's Docker backend: the project's image (Debian's package, the official
    image's entrypoint contract) answers on 127.0.0.1, restarts, and stop() removes it."""
    from containers.docker_api import LABEL_RUN
    from containers.pushgateway import PushgatewayEngine, is_ready

    engine = PushgatewayEngine("docker", image="localhost/cdc-pushgateway:1")
    engine.start()
    try:
        assert engine.url.startswith("http://127.0.0.1:") and is_ready(engine.url)
        engine.restart()
        assert is_ready(engine.url)
    finally:
        engine.stop()
    assert _labelled(f"{LABEL_RUN}=cdc_pushgateway_{engine.port}") == []


@pytest.mark.jvm_containers
def test_docker_kafka_and_connect_capture_a_change_and_survive_their_faults(api) -> None:  # noqa: ANN001
    """DockerKafka and DockerConnect on the project's images (the local backend's jars): a missing
    image is one line naming make setup-docker; the broker advertises its published loopback port;
    a Debezium PostgreSQL connector on the Connect container reaches PostgreSQL (a container
    published on the host's 127.0.0.1) and the broker, and its change arrives on the host; after
    broker-restart and connect-crash (kill + start of the containers) the connector runs again and
    a second change arrives; stop() leaves no container."""
    ck = pytest.importorskip("confluent_kafka", reason="fix: pip install -e '.[kafka]'")
    import requests

    from containers.connect_docker import DockerConnect
    from containers.docker_api import LABEL_RUN
    from containers.kafka import DockerKafka
    from containers.postgres import DockerPostgres
    from harness.errors import EngineUnavailable

    for image in (KAFKA_IMAGE, CONNECT_IMAGE):
        if subprocess.run(["podman", "image", "exists", image], timeout=30).returncode != 0:
            pytest.skip(f"image {image} is missing; fix: make setup-docker")
    if api.started:
        with pytest.raises(EngineUnavailable, match=r"^image localhost/cdc-kafka:no-such-tag is not in podman's image "
                                                    r"store; fix: .* built by make setup-docker"):
            DockerKafka("cdc_test_dockerkc_", image="localhost/cdc-kafka:no-such-tag").start()
    prefix = "cdc_test_dockerkc"
    pg, kafka = DockerPostgres(f"{prefix}_", image=LOCAL_IMAGE), DockerKafka(f"{prefix}_", image=KAFKA_IMAGE)
    connect = DockerConnect(kafka, f"{prefix}_connect", image=CONNECT_IMAGE)
    consumer = None
    try:
        pg.start()
        kafka.start()
        assert kafka.url == f"127.0.0.1:{kafka.port}"
        broker = kafka.admin().list_topics(timeout=10).brokers
        assert [(b.host, b.port) for b in broker.values()] == [("127.0.0.1", kafka.port)]  # what it advertises
        connect.start()
        plugins = {p["class"] for p in requests.get(f"{connect.url}/connector-plugins", timeout=10).json()}
        assert "io.debezium.connector.postgresql.PostgresConnector" in plugins
        with pg.connect() as conn:
            conn.execute(f"CREATE TABLE {prefix}_t (k int PRIMARY KEY, v text)")
        db = urlsplit(pg.url)
        connect.register(f"{prefix}_pg", {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector", "tasks.max": "1",
            "database.hostname": db.hostname, "database.port": str(db.port), "database.user": db.username,
            "database.password": unquote(db.password or ""), "database.dbname": "cdc", "topic.prefix": prefix,
            "plugin.name": "pgoutput", "slot.name": prefix, "publication.name": prefix,
            "publication.autocreate.mode": "filtered", "table.include.list": f"public.{prefix}_t",
            "snapshot.mode": "no_data"}, timeout_s=120)
        consumer = ck.Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": f"{prefix}_g",
                                "auto.offset.reset": "earliest", "log_level": 0})
        consumer.subscribe([f"{prefix}.public.{prefix}_t"])

        def arrives(key: int) -> None:
            with pg.connect() as conn:
                conn.execute(f"INSERT INTO {prefix}_t VALUES ({key}, 'x')")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is not None and msg.error() is None and msg.value():
                    if json.loads(msg.value())["payload"]["after"]["k"] == key:
                        return
            pytest.fail(f"the change of key {key} did not arrive within 120 s")

        arrives(1)
        kafka.inject("broker-restart", "after-delivery", prefix)
        connect.inject("connect-crash", "after-delivery", prefix)
        arrives(2)
        assert len(_labelled(f"{LABEL_RUN}={prefix}_connect")) == 1
    finally:
        if consumer is not None:
            consumer.close()
        connect.stop()
        kafka.stop()
        pg.stop()
    assert _labelled(f"{LABEL_RUN}={prefix}_") == [] and _labelled(f"{LABEL_RUN}={prefix}_connect") == []


_CHILD = """
import sys, time
from containers.docker_api import DockerApi, labels
from testcontainers.core.container import DockerContainer
api = DockerApi(); api.start()
c = DockerContainer(sys.argv[1]).with_command(["sleep", "600"]).with_kwargs(labels=labels("cdc_test_killed_"))
c.start()
print(api.root, c.get_wrapped_container().id, flush=True)
time.sleep(600)
"""


def test_killed_session_leaves_nothing_after_the_next_sweep(work: Work) -> None:  # noqa: F811
    """kill -9 of a session: its podman service dies with it (parent-death signal); its container
    survives until the next session's sweep removes it, and the private dir with it."""
    _podman_images()
    from harness.lifecycle import sweep_leftovers

    env = {**os.environ, "TMPDIR": str(work.tmpdir), "PYTHONPATH": str(ROOT)}
    env.pop("DOCKER_HOST", None)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, BASE_IMAGE], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline().split()
        assert len(line) == 2, "the child did not start its container"
        root, cid = Path(line[0]), line[1]
        service = [int(p.name) for p in Path("/proc").glob("[0-9]*") if _cmdline_has(p, str(root))]
        assert service, "no podman service runs from the child's private dir"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    wait_for(lambda: not any(Path(f"/proc/{p}").exists() and _cmdline_has(Path(f"/proc/{p}"), str(root))
                             for p in service), 15, "the podman service to die with its session")
    assert [c["Id"] for c in _labelled("org.cdc-harness.run=cdc_test_killed_")] == [cid]
    removed = sweep_leftovers(None, tmp=work.tmpdir)
    assert _labelled("org.cdc-harness.run=cdc_test_killed_") == []
    assert not root.exists()
    assert any("container" in r for r in removed) and any(str(root) in r for r in removed), removed


def _cmdline_has(proc: Path, text: str) -> bool:
    try:
        return any(text in arg for arg in (proc / "cmdline").read_bytes().decode(errors="replace").split("\0"))
    except OSError:
        return False


def test_without_podman_the_line_says_how_to_install_it(work: Work, tmp_path: Path) -> None:  # noqa: F811
    """No Docker daemon and no podman on PATH: one line with the install command."""
    pytest.importorskip("testcontainers")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    proc = run(work, "-k", CASE, "--cdc-scale=smoke", "--cdc-engines=docker", PATH=str(bin_dir),
               DOCKER_HOST="unix:///nonexistent/docker.sock")
    out = proc.stdout + proc.stderr
    errors = [line for line in out.splitlines() if line.startswith("ERROR: ")]
    assert proc.returncode != 0 and "Traceback" not in out and len(errors) == 1, out
    assert "podman is not installed" in errors[0] and "apt-get install -y podman" in errors[0], errors[0]


def test_image_option_is_validated(work: Work) -> None:  # noqa: F811
    """``--cdc-image`` names a family that has a Docker backend."""
    proc = run(work, "--collect-only", "-q", "--cdc-image", "delta=some/delta")  # embedded: no container
    assert proc.returncode == 4 and "has no Docker backend" in proc.stderr, proc.stderr


def test_properties_become_the_official_images_variables() -> None:
    """The local backend's properties as apache/kafka's and Debezium's variables (the names each
    image's entrypoint turns back into the same properties)."""
    from containers.jvm_env import connect_env, kafka_env, parse_properties

    props = parse_properties("# c\nnode.id=1\nlog.dirs=/tmp/k\nsome_name-x.y=a=b\n")
    assert props == {"node.id": "1", "log.dirs": "/tmp/k", "some_name-x.y": "a=b"}
    assert kafka_env(props) == {"KAFKA_NODE_ID": "1", "KAFKA_LOG_DIRS": "/tmp/k", "KAFKA_SOME___NAME__X_Y": "a=b"}
    assert connect_env({"bootstrap.servers": "127.0.0.1:9", "group.id": "g", "listeners": "http://127.0.0.1:8",
                        "exactly.once.source.support": "enabled"}) == {
        "BOOTSTRAP_SERVERS": "127.0.0.1:9", "GROUP_ID": "g", "CONNECT_LISTENERS": "http://127.0.0.1:8",
        "CONNECT_EXACTLY_ONCE_SOURCE_SUPPORT": "enabled"}
    with pytest.raises(ValueError, match="no CONNECT_ variable"):
        connect_env({"a_b": "1"})


@pytest.mark.jvm_containers
def test_docker_spark_connect_writes_where_the_harness_reads(api, tmp_path) -> None:  # noqa: ANN001
    """DockerSpark on the project's image: a Spark Connect server in a container whose client is
    this process; a Delta table it writes under the temp dir (mounted at the same path) is read
    back by delta-rs on the host, owned by this process's user; the container's log is the engine's
    log; stop() leaves no container."""
    pytest.importorskip("pyspark", reason="fix: pip install -e '.[spark]'")
    from deltalake import DeltaTable

    from containers.docker_api import LABEL_RUN
    from containers.spark import DockerSpark

    if subprocess.run(["podman", "image", "exists", "localhost/cdc-spark:4.1.1"], timeout=30).returncode != 0:
        pytest.skip("image localhost/cdc-spark:4.1.1 is missing; fix: make setup-docker")
    engine = DockerSpark("localhost/cdc-spark:4.1.1", prefix="cdc_test_dockerspark_")
    engine.start()
    try:
        assert engine.url.startswith("sc://127.0.0.1:") and engine.version() == "4.1.1"
        assert len(_labelled(f"{LABEL_RUN}=cdc_test_dockerspark_")) == 1
        path = tmp_path / "t"
        engine.sql(f"CREATE TABLE delta.`{path}` (id BIGINT, name STRING) USING delta")
        engine.sql(f"INSERT INTO delta.`{path}` VALUES (1, 'a'), (2, 'b')")
        assert sorted(DeltaTable(str(path)).to_pyarrow_table().column("id").to_pylist()) == [1, 2]
        assert (path / "_delta_log").stat().st_uid == os.getuid()
        log = engine.log_path()
        assert log is not None and "SparkConnectServer" in log.read_text()
    finally:
        engine.stop()
    assert _labelled(f"{LABEL_RUN}=cdc_test_dockerspark_") == []
