"""pg-debezium without record schemas: PostgreSQL types mapped to Debezium's Connect schemas, and
the event trigger that writes a run's column types into the logical decoding stream (on a real
PostgreSQL, read back through a ``test_decoding`` slot)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from decimal import Decimal

import pytest

from harness.approaches.debezium_pg_types import TableTypes, connect_field, event_trigger_sql, table_types, types_sql
from tests.pg_helpers import server


@pytest.mark.parametrize(("pg_type", "kind", "expected"), [
    ("integer", "b", {"type": "int32"}),
    ("bigint", "b", {"type": "int64"}),
    ("smallint", "b", {"type": "int16"}),
    ("numeric(38,10)", "b", {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
                             "parameters": {"scale": "10"}}),
    ("numeric(12)", "b", {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
                          "parameters": {"scale": "0"}}),
    ("numeric", "b", {"type": "struct", "name": "io.debezium.data.VariableScaleDecimal"}),
    ("double precision", "b", {"type": "double"}),
    ("real", "b", {"type": "float"}),
    ("timestamp without time zone", "b", {"type": "int64", "name": "io.debezium.time.MicroTimestamp"}),
    ("timestamp(3) without time zone", "b", {"type": "int64", "name": "io.debezium.time.Timestamp"}),
    ("timestamp(5) without time zone", "b", {"type": "int64", "name": "io.debezium.time.MicroTimestamp"}),
    ("timestamp with time zone", "b", {"type": "string", "name": "io.debezium.time.ZonedTimestamp"}),
    ("timestamp(2) with time zone", "b", {"type": "string", "name": "io.debezium.time.ZonedTimestamp"}),
    ("time without time zone", "b", {"type": "int64", "name": "io.debezium.time.MicroTime"}),
    ("time(0) without time zone", "b", {"type": "int32", "name": "io.debezium.time.Time"}),
    ("date", "b", {"type": "int32", "name": "io.debezium.time.Date"}),
    ("interval", "b", {"type": "int64", "name": "io.debezium.time.MicroDuration"}),
    ("interval day to second", "b", {"type": "int64", "name": "io.debezium.time.MicroDuration"}),
    ("bytea", "b", {"type": "bytes"}),
    ("jsonb", "b", {"type": "string", "name": "io.debezium.data.Json"}),
    ("uuid", "b", {"type": "string", "name": "io.debezium.data.Uuid"}),
    ("bit(1)", "b", {"type": "boolean"}),
    ("bit(10)", "b", {"type": "bytes", "name": "io.debezium.data.Bits"}),
    ("integer[]", "b", {"type": "array", "items": {"type": "int32"}}),
    ("mood", "e", {"type": "string", "name": "io.debezium.data.Enum"}),
    ("mood[]", "e", {"type": "array", "items": {"type": "string", "name": "io.debezium.data.Enum"}}),
    ("character varying(20)", "b", {"type": "string"}),
    ("text", "b", {"type": "string"}),
    ("inet", "b", {"type": "string"}),
])
def test_connect_field_of_each_type(pg_type: str, kind: str, expected: dict) -> None:
    assert connect_field(pg_type, kind) == expected


def test_table_types_decode_rows_and_keys_as_the_record_schema_would() -> None:
    types = TableTypes([("id", "bigint", "b"), ("price", "numeric(38,10)", "b"),
                        ("naive", "timestamp without time zone", "b"), ("body", "bytea", "b"),
                        ("doc", "jsonb", "b"), ("nums", "integer[]", "b"), ("ratio", "double precision", "b")])
    unscaled = base64.b64encode((12345).to_bytes(2, "big", signed=True)).decode()
    row = types.row({"id": 7, "price": unscaled, "naive": -315619199500000, "body": "AP8=",
                     "doc": '{"a":1}', "nums": [1, None], "ratio": "NaN"})
    assert row is not None
    assert row["price"] == Decimal("0.0000012345") and row["price"].as_tuple().exponent == -10
    assert row["naive"] == dt.datetime(1960, 1, 1, 0, 0, 0, 500000)
    assert row["body"] == b"\x00\xff" and row["doc"] == {"a": 1} and row["nums"] == [1, None]
    assert row["ratio"] != row["ratio"]  # NaN from the converter's string
    assert types.row(None) is None
    assert types.key({"id": 7, "__dbz__physicalTableIdentifier": "x"}, "__dbz__") == (7,)
    placeholder = types.row({"id": 1, "body": "__debezium_unavailable_value"})
    assert placeholder is not None and placeholder["body"] == "__debezium_unavailable_value"


def test_trigger_sql_refuses_names_that_would_need_quoting() -> None:
    with pytest.raises(ValueError, match="not a plain name"):
        event_trigger_sql("s", "t", "run'; DROP TABLE x; --")


def _messages(conn, slot: str) -> list[tuple[bool, str, dict]]:
    """(transactional, prefix, content) of the logical decoding messages in the slot's changes."""
    out = []
    for (data,) in conn.execute("SELECT data FROM pg_logical_slot_get_changes(%s, NULL, NULL)", (slot,)):
        m = re.match(r"message: transactional: (\d) prefix: (\S+), sz: \d+ content:(.*)$", data, re.S)
        if m:
            out.append((m[1] == "1", m[2], json.loads(m[3])))
    return out


def test_event_trigger_writes_the_run_schemas_types_in_the_ddl_transaction() -> None:
    """The trigger's message is transactional (in the DDL's transaction, before the changes
    after it), holds every table of the run's schema with its types as of the DDL (an enum, a
    domain as its base type, an array's element kind), and is written for the run's schema only."""
    with server() as (_, url):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA run1; CREATE SCHEMA other")
            conn.execute("CREATE TYPE run1.mood AS ENUM ('ok', 'sad')")
            conn.execute("CREATE DOMAIN run1.cents AS numeric(12,2)")
            conn.execute("CREATE TABLE run1.items (id int PRIMARY KEY, qty int, m run1.mood[], c run1.cents)")
            conn.execute("CREATE TABLE other.items (id int PRIMARY KEY)")
            conn.execute("SELECT pg_create_logical_replication_slot('types_probe', 'test_decoding')")
            for statement in event_trigger_sql("run1", "run1_types", "run1.types"):
                conn.execute(statement)
            with conn.transaction():
                conn.execute("INSERT INTO run1.items (id, qty) VALUES (1, 1)")
                conn.execute("ALTER TABLE run1.items ALTER COLUMN qty TYPE bigint")
                conn.execute("INSERT INTO run1.items (id, qty) VALUES (2, 2)")
            conn.execute("ALTER TABLE other.items ADD COLUMN x int")  # not the run's schema: no message
            conn.execute("CREATE TABLE run1.more (k text PRIMARY KEY)")
            messages = _messages(conn, "types_probe")
            changes = [d for (d,) in conn.execute(
                "SELECT data FROM pg_logical_slot_peek_changes('types_probe', NULL, NULL)")]
            now = json.loads(conn.execute(types_sql("%s"), ("run1",)).fetchone()[0])
            conn.execute("SELECT pg_drop_replication_slot('types_probe')")
            conn.execute("DROP SCHEMA run1 CASCADE")  # what the leftover sweep does: the trigger goes too
            triggers = conn.execute("SELECT evtname FROM pg_event_trigger").fetchall()
    assert triggers == []
    assert changes == []  # all consumed by the get above
    assert [(t, p) for t, p, _ in messages] == [(True, "run1.types"), (True, "run1.types")]
    first, second = messages[0][2], messages[1][2]
    assert first == {"items": [["id", "integer", "b"], ["qty", "bigint", "b"], ["m", "run1.mood[]", "e"],
                               ["c", "numeric(12,2)", "b"]]}
    assert set(second) == {"items", "more"} and second["more"] == [["k", "text", "b"]]
    assert now == second
    assert table_types(second)["items"].row({"id": 1, "qty": 2**40, "m": ["ok"], "c": None}) == \
        {"id": 1, "qty": 2**40, "m": ["ok"], "c": None}


def test_event_trigger_messages_sit_between_the_changes_around_the_ddl() -> None:
    """In the stream, the message comes after the changes before the ALTER and before those after it."""
    with server() as (_, url):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA run2; CREATE TABLE run2.t (id int PRIMARY KEY, v int)")
            conn.execute("SELECT pg_create_logical_replication_slot('order_probe', 'test_decoding')")
            for statement in event_trigger_sql("run2", "run2_types", "run2.types"):
                conn.execute(statement)
            conn.execute("INSERT INTO run2.t VALUES (1, 1)")
            with conn.transaction():
                conn.execute("INSERT INTO run2.t VALUES (2, 2)")
                conn.execute("ALTER TABLE run2.t ALTER COLUMN v TYPE numeric(10,3)")
                conn.execute("INSERT INTO run2.t VALUES (3, 3)")
            kinds = []
            for (data,) in conn.execute("SELECT data FROM pg_logical_slot_get_changes('order_probe', NULL, NULL)"):
                if data.startswith("message:"):
                    kinds.append("types")
                elif data.startswith("table run2.t: INSERT"):
                    kinds.append(re.search(r"id\[integer\]:(\d+)", data)[1])
            conn.execute("DROP EVENT TRIGGER run2_types")
            conn.execute("SELECT pg_drop_replication_slot('order_probe')")
    assert kinds == ["1", "2", "types", "3"]


def test_without_superuser_the_tuned_connector_names_the_fix() -> None:
    """Creating an event trigger takes a superuser: a plain role gets one message with the fix."""
    from harness.approaches.pg_debezium import PgDebezium
    from harness.errors import EngineMisconfigured

    with server() as (_, url):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE ROLE plain LOGIN PASSWORD 'plainpw'")
            conn.execute("CREATE SCHEMA run3 AUTHORIZATION plain")
        approach = PgDebezium()
        approach.schema, approach.trigger, approach.connector = "run3", "run3_types", "run3"
        plain_url = url.replace(url.split("//")[1].split("@")[0], "plain:plainpw")
        with psycopg.connect(plain_url, autocommit=True) as conn, \
                pytest.raises(EngineMisconfigured, match="connect as a superuser.*connector=defaults"):
            approach._create_types_trigger(conn)
