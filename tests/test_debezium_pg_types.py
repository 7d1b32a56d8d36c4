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


# -- the typed parse (msgspec): the same values as the generic path, or a refusal ---------------
WIDE = [("id", "bigint", "b"), ("name", "text", "b"), ("qty", "integer", "b"), ("price", "numeric", "b"),
        ("fixed", "numeric(12,2)", "b"), ("at", "timestamp with time zone", "b"), ("body", "bytea", "b"),
        ("ok", "boolean", "b"), ("ratio", "double precision", "b"), ("small", "real", "b"),
        ("nums", "integer[]", "b"), ("doc", "jsonb", "b"), ("my col", "text", "b"), ("class", "smallint", "b")]


def _vsd(unscaled: int, scale: int) -> dict:
    raw = unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)
    return {"scale": scale, "value": base64.b64encode(raw).decode()}


ROW_IMAGES = [
    None,
    {"id": 1, "name": "a", "qty": 2, "price": _vsd(-123456789012345678901234567890, 12),
     "fixed": base64.b64encode((-5).to_bytes(1, "big", signed=True)).decode(), "at": "2026-11-27T06:00:00.5Z",
     "body": "AP8=", "ok": True, "ratio": 0.1, "small": 3.0517578e-05, "nums": [1, None], "doc": '{"a":[1,2]}',
     "my col": "x\n\u00e9\u2603", "class": -3},
    {"id": 2**70, "name": "__debezium_unavailable_value", "ratio": "NaN", "small": "-Infinity",
     "price": {"scale": 0, "value": "AA=="}, "doc": "__debezium_unavailable_value", "at": "2026-11-27T06:00:00Z"},
    {"id": 3, "extra": {"not": "a column"}},  # a column the types do not name: left out, as by row()
]


@pytest.mark.skipif(not TableTypes([("id", "bigint", "b")]).typed, reason="fix: pip install -e '.[kafka]' (msgspec)")
@pytest.mark.parametrize("image", ROW_IMAGES, ids=["null", "every-type", "placeholders-and-specials", "extra-field"])
@pytest.mark.parametrize("columns", [WIDE, [c for c in WIDE if c[0].isidentifier() and c[0] != "class"]],
                         ids=["names-renamed", "names-as-fields"])
def test_typed_row_parse_gives_the_generic_values(image: dict | None, columns: list) -> None:
    types = TableTypes(columns)
    raw = json.dumps(image).encode()
    typed, generic = types.row_json(raw), types.row(json.loads(raw))
    assert typed == generic or (typed is not None and generic is not None and _same_with_nan(typed, generic))
    if typed is not None:
        assert list(typed) == [name for name, _, _ in columns]
        assert [type(v) for v in typed.values()] == [type(v) for v in generic.values()]  # type: ignore[union-attr]


def _same_with_nan(a: dict, b: dict) -> bool:
    return all(x == y or (isinstance(x, float) and x != x and y != y)
               for x, y in zip(a.values(), b.values(), strict=True))


@pytest.mark.skipif(not TableTypes([("id", "bigint", "b")]).typed, reason="fix: pip install -e '.[kafka]' (msgspec)")
@pytest.mark.parametrize("text", [b'{"id": 1.0}', b'{"id": "1"}', b'{"ok": 1}', b'{"name": 5}', b'{"id": true}',
                                  b'{"id": 1', b'[1]', b'{"body": "__debezium_unavailable_value"}',
                                  b'{"fixed": "NaN"}', b'{"at": "infinity"}', b'{"at": 5}', b'{"body": "AP8"}'])
def test_typed_row_parse_refuses_a_value_not_of_its_column_type(text: bytes) -> None:
    """What msgspec's types refuse (the reader then takes the generic path): a value of another
    JSON type, the TOAST placeholder or a special value in a column msgspec parses itself."""
    import msgspec

    with pytest.raises(msgspec.DecodeError):
        TableTypes(WIDE).row_json(text)


@pytest.mark.skipif(not TableTypes([("id", "bigint", "b")]).typed, reason="fix: pip install -e '.[kafka]' (msgspec)")
def test_typed_key_parse_gives_the_generic_values() -> None:
    types = TableTypes(WIDE)
    for key in ({"id": 7, "__dbz__physicalTableIdentifier": "s.t"}, {"fixed": "AQ==", "at": "2026-01-01T00:00:00Z"},
                {"__dbz__x": 1, "class": 2, "id": 2**65}, {}):
        raw = json.dumps(key).encode()
        assert types.key_json(raw, "__dbz__") == types.key(json.loads(raw), "__dbz__")
        assert types.key_json(raw, "__dbz__") == types.key(json.loads(raw), "__dbz__")  # the cached plan
    assert types.key_json(b"null", "__dbz__") == ()
    # one shape again and again (the learnt typed decoder), a value it refuses, another shape
    zoned = TableTypes([("at", "timestamp with time zone", "b"), ("n", "bigint", "b")])
    for key in ({"at": "2026-01-01T00:00:00Z", "n": 1, "__dbz__t": "s.t"},
                {"at": "2026-01-02T00:00:00.5Z", "n": 2, "__dbz__t": "s.t"},
                {"at": "__debezium_unavailable_value", "n": "x", "__dbz__t": "s.t"},
                {"at": "2026-01-03T00:00:00Z", "n": 3, "__dbz__t": "s.t"}, {"n": 4, "__dbz__t": "s.t"},
                {"n": 5, "__dbz__t": "s.t"}, {"n": 6, "at": None, "__dbz__t": "s.t", "extra": 1}):
        raw = json.dumps(key).encode()
        assert zoned.key_json(raw, "__dbz__") == zoned.key(json.loads(raw), "__dbz__"), key


def _record(op: str, before: dict | None, after: dict | None, table: str = "items", **extra: object) -> bytes:
    return json.dumps({"before": before, "after": after, "source": {
        "version": "3.6.1.Final", "connector": "postgresql", "name": "p", "ts_ms": 1, "snapshot": "false",
        "db": "postgres", "sequence": '["1","2"]', "ts_us": 1764223200123456, "ts_ns": 1764223200123456000,
        "schema": "s", "table": table, "txId": 777, "lsn": 42, "xmin": None}, "transaction": None,
        "op": op, "ts_ms": 2, **extra}).encode()


@pytest.mark.skipif(not TableTypes([("id", "bigint", "b")]).typed, reason="fix: pip install -e '.[kafka]' (msgspec)")
def test_pg_debezium_fast_path_gives_the_generic_event_or_none() -> None:
    from harness.approaches.pg_debezium import PgDebezium

    reader = PgDebezium()
    reader.types_in_stream = True
    reader._types = table_types({"items": [list(c) for c in WIDE]})
    key = json.dumps({"id": 1, "__dbz__physicalTableIdentifier": "s.items"}).encode()
    images = [i for i in ROW_IMAGES if i is not None]
    for op, before, after in (("c", None, images[0]), ("u", images[1], images[0]), ("d", images[2], None),
                              ("r", None, images[1])):
        raw = _record(op, before, after)
        fast = reader.fast_event(raw, key, 5, 9)
        assert fast is not None
        generic = replace_fast(reader, raw, key)
        assert (fast.table, fast.op, fast.key, fast.position, fast.txid, fast.commit_ts, fast.captured_at) == \
            (generic.table, generic.op, generic.key, generic.position, generic.txid, generic.commit_ts,
             generic.captured_at) == ("items", {"c": "insert", "u": "update", "d": "delete", "r": "insert"}[op],
                                      (1,), (5,), 777, 1764223200123456000, 9)
        for a, b in ((fast.before, generic.before), (fast.after, generic.after)):
            assert a == b or _same_with_nan(a, b)  # type: ignore[arg-type]
    # not for the fast path: messages, truncates, a value not of its column's type
    message = json.dumps({"op": "m", "source": {"table": ""}, "message": {"prefix": "p", "content": "eA=="}}).encode()
    assert reader.fast_event(message, None, 1, 0) is None
    assert reader.fast_event(_record("t", None, None), None, 1, 0) is None
    misfit = _record("c", None, {"id": "seven"})
    assert reader.fast_event(misfit, key, 1, 0) is None
    assert reader.to_event(misfit, key, 1, 0).after["id"] == "seven"  # type: ignore[union-attr]


def replace_fast(reader: object, raw: bytes, key: bytes) -> object:
    """The generic path's event of a record (the fast path turned off on this one reader)."""
    reader.fast_event = lambda *_: None  # type: ignore[attr-defined]
    try:
        return reader.to_event(raw, key, 5, 9)  # type: ignore[attr-defined]
    finally:
        del reader.fast_event  # type: ignore[attr-defined]
