"""No secret is written: every masking form, and a planted password grepped for in every artifact."""

from __future__ import annotations

import base64
import json
import threading
import warnings
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from harness.secrets import MASK, known, mask_text, mask_url, one_line, register, register_url
from tests.pg_helpers import CASE, Work, env, run, server, work_fixture  # noqa: F401

SECRET = "Pl4ntedS3cret"


# -- the forms --------------------------------------------------------------------------------
@pytest.mark.parametrize("url, masked", [
    ("postgresql://u:pw-1@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("postgresql://u:pw-1@h/db?password=pw-2&sslmode=require", "postgresql://u:***@h/db?password=***&sslmode=require"),
    ("postgresql://h/db?sslmode=require&PASSWORD=pw-2", "postgresql://h/db?sslmode=require&PASSWORD=***"),
    ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),                      # '@' not %-encoded
    ("postgresql://u:pw-1@[127.0.0.1/db", "postgresql://u:***@[127.0.0.1/db"),    # urlsplit raises
    ("postgresql//u:pw-1@h/db", "postgresql//u:***@h/db"),                        # not a URL at all
    ("http://admin:pw-3@gateway:9091", "http://admin:***@gateway:9091"),
    ("http://127.0.0.1:9091", "http://127.0.0.1:9091"),
    ("postgresql://u@h/db?options=-c%20x", "postgresql://u@h/db?options=-c%20x"),
], ids=["userinfo", "query", "query-only", "at-sign", "bracket", "no-colon", "http", "plain", "no-password"])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize("text, masked", [
    ("host=h port=5 password=pw-1 user=u", "host=h port=5 password=*** user=u"),
    ("host=h password='p w 1' user=u", "host=h password='***' user=u"),
    ("dbname=x sslpassword=pw-1", "dbname=x sslpassword=***"),
    ("PGPASSWORD=pw-1 psql", "PGPASSWORD=*** psql"),
    ('missing "=" after "postgresql//u:pw-1@h/db" in connection info string',
     'missing "=" after "postgresql//u:***@h/db" in connection info string'),
    ('invalid percent-encoded token: "pw%ZZ1"', 'invalid percent-encoded token: "***"'),
    ('FATAL:  password authentication failed for user "u"', 'FATAL:  password authentication failed for user "u"'),
    ("see https://example.com/docs?x=1", "see https://example.com/docs?x=1"),
], ids=["libpq", "libpq-quoted", "sslpassword", "env", "driver-dsn", "driver-token", "auth-failed", "plain-url"])
def test_mask_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_registered_secrets_are_masked_anywhere() -> None:
    register_url("postgresql://u:Reg1stered%2Fpw@h/db?password=Reg1steredQ")
    assert {"Reg1stered%2Fpw", "Reg1stered/pw", "Reg1steredQ"} <= known()
    assert mask_text("a Reg1stered/pw b Reg1steredQ c") == f"a {MASK} b {MASK} c"
    register("abc")  # too short to be registered (it would mangle ordinary words)
    assert "abc" not in known()


def test_one_line_is_masked_and_flat() -> None:
    assert one_line(ValueError("bad\n  postgresql://u:pw-1@h/db\n")) == "bad postgresql://u:***@h/db"
    assert one_line(ValueError()) == "ValueError"


def test_connect_errors_are_masked_without_traceback_text() -> None:
    pytest.importorskip("psycopg")
    from containers.postgres import connect
    from harness.errors import EngineUnavailable

    for url in (f"postgresql://u:{SECRET}@[127.0.0.1/db", "postgresql://u:Pl4nted%ZZS3cret@127.0.0.1:1/db",
                f"postgresql://u:{SECRET}@127.0.0.1:1/db?password={SECRET}"):
        with pytest.raises(EngineUnavailable) as info:
            connect(url)
        assert SECRET not in str(info.value) and "ZZS3cret" not in str(info.value)
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_external_engine_repr_and_bad_scheme_are_masked() -> None:
    pytest.importorskip("psycopg")
    from containers.postgres import ExternalPostgres
    from harness.errors import EngineMisconfigured

    assert SECRET not in repr(ExternalPostgres(f"postgresql://u:{SECRET}@h/db?password={SECRET}"))
    with pytest.raises(EngineMisconfigured) as info:
        ExternalPostgres(f"mysql://u:{SECRET}@h/db")
    assert SECRET not in str(info.value)


# -- pushgateway ------------------------------------------------------------------------------
class _Gateway(BaseHTTPRequestHandler):
    """A pushgateway stand-in that wants basic auth admin/<SECRET>."""

    seen: list[tuple[str, str]] = []

    def _authorized(self) -> bool:
        want = "Basic " + base64.b64encode(f"admin:{SECRET}".encode()).decode()
        return self.headers.get("Authorization") == want

    def _answer(self) -> None:
        self.seen.append((self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200 if self._authorized() else 401)
        self.end_headers()

    do_GET = do_PUT = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway():
    httpd = HTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Gateway.seen = []
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()


def _results() -> dict:
    from harness.results import run_header

    run = {**run_header("r1", "2026-01-01T00:00:00Z", 1, "smoke", "auto"), "finished_at": "2026-01-01T00:00:01Z"}
    return {"schema": 1, "run": run, "results": []}


def test_pushgateway_credentials_are_sent_as_basic_auth_and_never_shown(gateway: int) -> None:
    pytest.importorskip("prometheus_client")
    from containers.pushgateway import PushgatewayEngine
    from reports.pushgateway import push_results

    url = f"http://admin:{SECRET}@127.0.0.1:{gateway}"
    engine = PushgatewayEngine("external", url)
    engine.start()  # GET /-/ready with the credentials
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert push_results(url, _results()) is True
    assert [m for m, _ in _Gateway.seen] == ["GET", "PUT"]


def test_pushgateway_failures_are_masked(gateway: int) -> None:
    pytest.importorskip("prometheus_client")
    from containers.pushgateway import PushgatewayEngine
    from harness.errors import EngineUnavailable
    from reports.pushgateway import PushgatewayWarning, push_results

    wrong = f"http://admin:Wr0ngSecret@127.0.0.1:{gateway}"
    with pytest.raises(EngineUnavailable) as info:
        PushgatewayEngine("external", wrong).start()
    assert "Wr0ngSecret" not in str(info.value) and "admin:***@" in str(info.value)
    for url in (wrong, f"http://admin:{SECRET}@127.0.0.1:1", f"http://admin:{SECRET}@[127.0.0.1:1"):
        with pytest.warns(PushgatewayWarning) as caught:
            assert push_results(url, _results(), timeout=2) is False
        text = " ".join(str(w.message) for w in caught)
        assert "not reachable" in text and SECRET not in text and "Wr0ngSecret" not in text, text


# -- a planted password, grepped for in everything a run writes ---------------------------------
def _grep(root: Path, needle: str) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            hits.append(str(path))
    return hits


def test_planted_password_is_in_no_artifact(work: Work) -> None:
    """Run a real case against an external URL carrying the password twice (userinfo and
    ``?password=``); the results JSON, the Allure results, the JUnit XML, the engine's data dir
    and the terminal output must not hold it."""
    with server() as (_, url):
        url = f"{url}?password={SECRET}"
        proc = run(work, "-k", CASE, "--cdc-scale=smoke", "-rA", "--cdc-engines=external",
                   f"--cdc-engine-url=postgres={url}", f"--junitxml={work.out / 'junit.xml'}",
                   f"--alluredir={work.out / 'allure'}")
    (work.out / "terminal.txt").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    assert (work.out / "results.json").exists() and (work.out / "junit.xml").exists()
    allure = [json.loads(p.read_text()) for p in (work.out / "allure").glob("*-result.json")]
    params = {p["name"]: p["value"] for r in allure for p in r.get("parameters", [])}
    assert "cdcuser:***@" in params["engine_url"] and "password=***" in params["engine_url"], params
    assert _grep(work.out, SECRET) == [] and _grep(work.tmpdir, SECRET) == []


def test_reports_mask_a_secret_a_test_prints_or_raises(work: Work) -> None:
    """The last line of defence: a failure or output quoting a URL is masked in the terminal and JUnit."""
    test = work.out / "test_leaky.py"
    half = len(SECRET) // 2  # the source must not hold the secret: only what the run writes counts
    test.write_text(
        f"SECRET = {SECRET[:half]!r} + {SECRET[half:]!r}\n"
        "def test_leaky():\n"
        "    print(f'connecting to postgresql://u:{SECRET}@h/db password={SECRET}')\n"
        "    raise RuntimeError(f'driver said: postgresql://u:{SECRET}@h/db')\n")
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "pytest", str(test), "-p", "no:cacheprovider", "-rA",
                           f"--cdc-results={work.out / 'r.json'}", f"--junitxml={work.out / 'junit.xml'}",
                           f"--alluredir={work.out / 'allure'}"],
                          cwd=work.out, env=env(work), capture_output=True, text=True, timeout=120)
    (work.out / "terminal.txt").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 1 and "postgresql://u:***@h/db" in proc.stdout, proc.stdout
    assert _grep(work.out, SECRET) == [], (proc.stdout, _grep(work.out, SECRET))
