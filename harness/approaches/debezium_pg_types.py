"""PostgreSQL column types → the Connect schema Debezium's PostgreSQL connector gives them, for
records sent without their schema.

With ``value.converter.schemas.enable=false`` a Debezium record is only its payload; the values
are encoded exactly as with the schema (Connect's ``JsonConverter`` encodes by the record's Connect
schema either way), but the reader no longer sees the logical type names that say how to read a
value back (a decimal's scale, ``MicroTimestamp`` vs ``bigint``, bytes vs text). This module
rebuilds each column's Connect field schema from its PostgreSQL type (``format_type`` text) as
``PostgresValueConverter`` builds it under the connector's defaults (``time.precision.mode=
adaptive``, ``decimal.handling.mode=precise``, ``binary.handling.mode=bytes``,
``interval.handling.mode=numeric``, ``money.fraction.digits=2``), so the decoders of
``debezium_values`` read the payload as they read a record with its schema. A type it does not
know becomes a plain string schema: its JSON value is kept as it came, and a wrong reading shows
in the checker as a wrong value, never as a silent pass.

The column types come in stream order, as transactional logical decoding messages written by
an event trigger in the source (``types_sql``, ``event_trigger_sql``): see ``PgDebezium``.

Knowing each column's type ahead also lets the reader parse a row image with a typed msgspec
decoder (``TableTypes.row_json``: plain integers, strings and booleans checked by type as they
are parsed, the other values then given to the same per-field decoders), about a third of the
work of a parse to dicts followed by decoding; a text that does not fit the types raises
``msgspec.ValidationError`` and the caller reads it the generic way.
"""

from __future__ import annotations

import datetime as dt
import keyword
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from harness.approaches.debezium_values import UNAVAILABLE, compile_struct, field_decoder, unscaled_decimal

try:
    import msgspec
except ImportError:  # the kafka extra installs it; without it the generic decoding is used
    msgspec = None  # type: ignore[assignment]

_DECIMAL = "org.apache.kafka.connect.data.Decimal"
#: format_type names → Connect field schema (types whose schema has no parameter)
_PLAIN: dict[str, dict[str, Any]] = {
    "smallint": {"type": "int16"},
    "integer": {"type": "int32"},
    "bigint": {"type": "int64"},
    "boolean": {"type": "boolean"},
    "real": {"type": "float"},
    "double precision": {"type": "double"},
    "bytea": {"type": "bytes"},
    "date": {"type": "int32", "name": "io.debezium.time.Date"},
    "interval": {"type": "int64", "name": "io.debezium.time.MicroDuration"},
    "json": {"type": "string", "name": "io.debezium.data.Json"},
    "jsonb": {"type": "string", "name": "io.debezium.data.Json"},
    "uuid": {"type": "string", "name": "io.debezium.data.Uuid"},
    "xml": {"type": "string", "name": "io.debezium.data.Xml"},
    "money": {"type": "bytes", "name": _DECIMAL, "parameters": {"scale": "2"}},
    "numeric": {"type": "struct", "name": "io.debezium.data.VariableScaleDecimal"},
    "timestamp with time zone": {"type": "string", "name": "io.debezium.time.ZonedTimestamp"},
    "time with time zone": {"type": "string", "name": "io.debezium.time.ZonedTime"},
}
#: ``name(args) rest``: a type with a modifier, e.g. ``numeric(38,10)``, ``timestamp(3) without time zone``
_MODIFIED = re.compile(r"^(?P<name>[a-z ]+?)\((?P<args>[0-9, ]+)\)(?P<rest>.*)$")


def _temporal(base: str, precision: int) -> dict[str, Any] | None:
    """``time``/``timestamp`` without time zone at a precision (adaptive mode: milliseconds up to
    3 digits, microseconds above)."""
    if base == "timestamp without time zone":
        return {"type": "int64", "name": "io.debezium.time.Timestamp" if precision <= 3 else
                "io.debezium.time.MicroTimestamp"}
    if base == "time without time zone":
        return ({"type": "int32", "name": "io.debezium.time.Time"} if precision <= 3 else
                {"type": "int64", "name": "io.debezium.time.MicroTime"})
    return None


def connect_field(pg_type: str, kind: str = "b") -> dict[str, Any]:
    """The Connect field schema (without ``field``) of a column of PostgreSQL type ``pg_type``
    (``format_type`` text; a domain's base type) whose ``pg_type.typtype`` (of the array's
    element for an array) is ``kind`` (``e``: an enum)."""
    if pg_type.endswith("[]"):
        return {"type": "array", "items": connect_field(pg_type[:-2], kind)}
    if kind == "e":
        return {"type": "string", "name": "io.debezium.data.Enum"}
    if pg_type in _PLAIN:
        return dict(_PLAIN[pg_type])
    if pg_type.startswith("interval"):  # interval fields and precision: the same microseconds
        return dict(_PLAIN["interval"])
    timed = _temporal(pg_type, 6)
    if timed is not None:
        return timed
    m = _MODIFIED.match(pg_type)
    if m:
        name, args = m["name"].strip(), [int(a) for a in m["args"].split(",")]
        if name == "numeric":
            return {"type": "bytes", "name": _DECIMAL, "parameters": {"scale": str(args[1] if len(args) > 1 else 0)}}
        if name == "bit" and args[0] == 1:
            return {"type": "boolean"}
        if name in ("bit", "bit varying"):
            return {"type": "bytes", "name": "io.debezium.data.Bits"}
        timed = _temporal(f"{name}{m['rest']}", args[0])
        if timed is not None:
            return timed
        if name in ("timestamp", "time") and m["rest"].strip() == "with time zone":
            return connect_field(f"{name} with time zone")
    if pg_type in ("bit", "bit varying"):
        return {"type": "bytes", "name": "io.debezium.data.Bits"}
    return {"type": "string"}  # text, varchar, char, name, inet, …: their JSON value as it is


#: the Python type a plain field's JSON value must have (a field with a decoder takes any JSON)
_PLAIN_TYPES: dict[str, type] = {"int8": int, "int16": int, "int32": int, "int64": int, "string": str,
                                 "boolean": bool}


def typed_field(field: Mapping[str, Any]) -> tuple[Any, Callable[[Any], Any] | None]:
    """How ``TableTypes.row_json`` reads a field: the type msgspec parses its JSON value as, and
    the decoder then applied to it (``None``: the parsed value is the value). Plain integers,
    strings and booleans, bytes (base64), a decimal's unscaled bytes and zoned timestamps
    (ISO 8601) are parsed by msgspec itself, the rest as JSON for ``field_decoder``'s decoder."""
    fn = field_decoder(field)
    if fn is None:
        return _PLAIN_TYPES[field["type"]], None
    name = field.get("name")
    if name is None and field["type"] == "bytes":
        return bytes, None
    if name == _DECIMAL:
        return bytes, unscaled_decimal(int((field.get("parameters") or {}).get("scale", 0)))
    if name == "io.debezium.time.ZonedTimestamp":
        return dt.datetime, None
    return Any, fn


def plain_name(name: str) -> bool:
    """True when a column's name can be a struct field's own name (``msgspec.structs.asdict``
    then gives the image dict directly)."""
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")


def _image_decoder(fields: list[dict[str, Any]]) -> Any:
    """A msgspec decoder of a row image's JSON (an object with these fields, or null) into a
    struct whose fields are in column order, named as the columns (when every name is
    ``plain_name``, else ``c0``, ``c1``, …); ``None`` without msgspec."""
    if msgspec is None:
        return None
    names = [f["field"] if plain_name(f["field"]) else f"c{i}" for i, f in enumerate(fields)]
    if len(set(names)) < len(names) or names != [f["field"] for f in fields]:
        names = [f"c{i}" for i in range(len(fields))]
    spec = [(attr, typed_field(f)[0] | None, None) for attr, f in zip(names, fields, strict=True)]
    image = msgspec.defstruct("Image", spec, rename={attr: f["field"] for attr, f in zip(names, fields, strict=True)})
    return msgspec.json.Decoder(image | None)


class _KeyPlan:
    """A typed decoder of one shape of record key (its fields, in order, all required, no
    other) and the pick of the key columns' values from the parsed struct."""

    def __init__(self, names: tuple[str, ...], schemas: Mapping[str, Mapping[str, Any]], skip_prefix: str) -> None:
        self.names = names
        self.skip_prefix = skip_prefix
        typed = [typed_field(schemas[n]) if n in schemas and not n.startswith(skip_prefix) else (Any, None)
                 for n in names]
        spec = [(f"k{i}", kind | None) for i, (kind, _) in enumerate(typed)]
        key = msgspec.defstruct("Key", spec, rename={f"k{i}": n for i, n in enumerate(names)},
                                forbid_unknown_fields=True)
        self.decoder = msgspec.json.Decoder(key)
        picked = [(i, typed[i][1]) for i, n in enumerate(names) if not n.startswith(skip_prefix)]
        if any(fn is not None for _, fn in picked):
            def pick(values: tuple) -> tuple:
                return tuple(v if (v := values[i]) is None or fn is None or v == UNAVAILABLE else fn(v)
                             for i, fn in picked)
            self.pick: Callable[[tuple], tuple] = pick
        elif len(picked) == 1:
            only = picked[0][0]
            self.pick = lambda values: (values[only],)
        else:
            self.pick = operator.itemgetter(*(i for i, _ in picked)) if picked else (lambda values: ())


class TableTypes:
    """One table's columns as the reader decodes them: a row decoder (``before``/``after``) and a
    key decoder (the record key's fields, routing fields left out), built once per types message."""

    def __init__(self, columns: Iterable[tuple[str, str, str]]) -> None:
        fields = [{"field": name, **connect_field(pg_type, kind)} for name, pg_type, kind in columns]
        self.row: Callable[[Mapping[str, Any] | None], dict[str, Any] | None] = compile_struct({"fields": fields})
        self._fields: dict[str, Callable[[Any], Any] | None] = {f["field"]: field_decoder(f) for f in fields}
        self._names = tuple(f["field"] for f in fields)
        self._image = _image_decoder(fields)
        #: True when ``row_json`` and ``key_json`` can be used (msgspec is installed)
        self.typed = self._image is not None
        self._special = tuple((f["field"], fn) for f in fields if (fn := typed_field(f)[1]) is not None)
        self._as_dict = all(plain_name(name) for name in self._names)
        self._field_schemas = {f["field"]: f for f in fields}
        self._key_plan: _KeyPlan | None = None

    def row_json(self, raw: bytes) -> dict[str, Any] | None:
        """``row`` of a row image given as JSON text (``null``: None), the same values as
        ``row(json.loads(raw))``; raises ``msgspec.ValidationError`` (a ``DecodeError``) when a
        plain column's value is not of its type, ``DecodeError`` on text that is not JSON."""
        image = self._image.decode(raw)
        if image is None:
            return None
        out = (msgspec.structs.asdict(image) if self._as_dict
               else dict(zip(self._names, msgspec.structs.astuple(image), strict=True)))
        for name, fn in self._special:
            v = out[name]
            if v is not None and v != UNAVAILABLE:
                out[name] = fn(v)
        return out

    def key_json(self, raw: bytes, skip_prefix: str) -> tuple:
        """``key`` of a record key given as JSON text (the same values as ``key(json.loads(raw))``):
        parsed by a typed decoder of the key's fields, learnt from the first key (a key of other
        fields is parsed as JSON and teaches the decoder anew)."""
        plan = self._key_plan
        if plan is not None and plan.skip_prefix == skip_prefix:
            try:
                return plan.pick(msgspec.structs.astuple(plan.decoder.decode(raw)))
            except msgspec.DecodeError:
                pass
        value = msgspec.json.decode(raw)
        if not isinstance(value, dict) or not value:
            return self.key(value, skip_prefix)
        names = tuple(value)
        if plan is None or plan.names != names or plan.skip_prefix != skip_prefix:  # a value it refused: same plan
            self._key_plan = _KeyPlan(names, self._field_schemas, skip_prefix)
        return self.key(value, skip_prefix)

    def key(self, value: Mapping[str, Any] | None, skip_prefix: str) -> tuple:
        """The key columns' values in the key's field order (a schema-less key keeps it)."""
        if value is None:
            return ()
        out = []
        for name, v in value.items():
            if name.startswith(skip_prefix):
                continue
            fn = self._fields.get(name)
            out.append(v if v is None or fn is None or v == UNAVAILABLE else fn(v))
        return tuple(out)


def table_types(message: Mapping[str, Any]) -> dict[str, TableTypes]:
    """The tables of one types message (``{"table": [[column, type, kind], …], …}``)."""
    return {table: TableTypes((str(c[0]), str(c[1]), str(c[2]) if len(c) > 2 else "b") for c in cols)
            for table, cols in message.items()}


def types_sql(schema_literal: str) -> str:
    """A query giving one JSON text: every table of the schema (a SQL string literal) with its
    columns as ``[name, type, kind]`` in column order (a domain as its base type; ``kind``: the
    ``typtype`` of the type, of an array's element, of a domain's base type)."""
    return f"""
SELECT coalesce(json_object_agg(relname, cols), '{{}}')::text FROM (
  SELECT c.relname, json_agg(json_build_array(a.attname,
           CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod)
                ELSE format_type(a.atttypid, a.atttypmod) END,
           coalesce(e.typtype, b.typtype, t.typtype)) ORDER BY a.attnum) AS cols
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
  LEFT JOIN pg_type b ON b.oid = t.typbasetype AND t.typtype = 'd'
  WHERE n.nspname = {schema_literal} AND c.relkind IN ('r', 'p')
  GROUP BY c.relname) AS tables"""


def event_trigger_sql(schema: str, trigger: str, prefix: str) -> list[str]:
    """Statements that make the run's types messages: a function in the run's schema giving the
    types JSON, and an event trigger (``ddl_command_end``, database-wide, so it tests that the
    command touched the run's schema) that writes it as a transactional logical decoding message
    with ``prefix``, in the DDL's transaction: in the stream after the DDL's commit and before
    every change that uses the new types. ``schema``, ``trigger`` and ``prefix`` are the run's
    own names (letters, digits, ``_``, ``-`` and ``.``: nothing to quote)."""
    for name in (schema, trigger, prefix):
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
            raise ValueError(f"not a plain name: {name!r}")
    lit = f"'{schema}'"
    return [
        f'CREATE OR REPLACE FUNCTION "{schema}".cdc_types() RETURNS text LANGUAGE sql STABLE AS $$'
        f"{types_sql(lit)}$$",
        f'CREATE OR REPLACE FUNCTION "{schema}".cdc_types_emit() RETURNS event_trigger LANGUAGE plpgsql AS $$\n'
        f"BEGIN\n"
        f"  IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() WHERE schema_name = {lit}) THEN\n"
        f"    PERFORM pg_logical_emit_message(true, '{prefix}', \"{schema}\".cdc_types());\n"
        f"  END IF;\n"
        f"END $$",
        f'DROP EVENT TRIGGER IF EXISTS "{trigger}"',
        f'CREATE EVENT TRIGGER "{trigger}" ON ddl_command_end EXECUTE FUNCTION "{schema}".cdc_types_emit()',
    ]
