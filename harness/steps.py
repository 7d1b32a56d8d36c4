"""Engine-neutral scenario steps and table specs; sources turn them into real writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Logical column types every source maps to a native type.
LOGICAL_TYPES = (
    "int", "bigint", "decimal", "float", "text", "bool", "bytes", "date", "timestamp",
    "timestamptz", "json", "uuid", "int[]",
)


@dataclass(frozen=True)
class Column:
    """A column: name, logical type (see ``LOGICAL_TYPES``), nullability, and ``generated``: an
    arithmetic expression over other columns (``+ - *``, integers, column names; valid SQL and
    computed by the source's model with ``generated_value``) for a STORED generated column."""

    name: str
    type: str
    nullable: bool = True
    generated: str = ""


def generated_value(expr: str, row: dict[str, Any]) -> Any:
    """The value of a generated column's expression on ``row`` (NULL when an operand is NULL)."""
    import ast
    import operator

    ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            a, b = ev(node.left), ev(node.right)
            return None if a is None or b is None else ops[type(node.op)](a, b)
        if isinstance(node, ast.Name):
            return row[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        raise ValueError(f"generated expression {expr!r}: only + - * of columns and integers; fix the expression")
    return ev(ast.parse(expr, mode="eval").body)


@dataclass(frozen=True)
class TableSpec:
    """A table a scenario creates: columns and the key columns (identifier fields).

    ``key=()``: a table without a key, whose identity is the whole row (every column, in column
    order) — unless a source uses ``unique`` as its identity (PostgreSQL's REPLICA IDENTITY
    USING INDEX). ``unique``: NOT NULL columns whose values are unique (PostgreSQL indexes
    them); steps on a keyless table name their row by these values. ``partitions``: range
    bounds on the first key column — partition ``<name>_p<i>`` holds values below bound i and
    from bound i-1 on, the last one everything above (for engines that partition tables by
    range: PostgreSQL, MariaDB). ``partition_by``: identity partition columns, for engines that
    partition by column value (Delta, Iceberg); each family uses the one it has.
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ("id",)
    unique: tuple[str, ...] = ()
    partitions: tuple[int, ...] = ()
    partition_by: tuple[str, ...] = ()

    def column(self, name: str) -> Column:
        """The column called ``name``."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


@dataclass(frozen=True)
class Insert:
    """Insert one row (a full mapping of column → value)."""

    table: str
    row: dict[str, Any]


@dataclass(frozen=True)
class InsertMany:
    """Insert many rows in one statement (COPY / multi-row INSERT / one append)."""

    table: str
    rows: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Update:
    """Set ``changes`` on the row with key ``key``."""

    table: str
    key: tuple
    changes: dict[str, Any]


@dataclass(frozen=True)
class Delete:
    """Delete the row with key ``key``."""

    table: str
    key: tuple


@dataclass(frozen=True)
class Truncate:
    """Remove every row of a table."""

    table: str


@dataclass(frozen=True)
class Txn:
    """Several steps committed together; ``commit=False`` makes it fail/roll back with no trace."""

    steps: tuple[Any, ...]
    commit: bool = True


@dataclass(frozen=True)
class Savepoint:
    """Inside a Txn: steps under a savepoint, rolled back to it when ``rollback`` is True."""

    steps: tuple[Any, ...]
    rollback: bool = True


@dataclass(frozen=True)
class AddColumn:
    """ALTER TABLE ADD COLUMN (nullable, no default)."""

    table: str
    column: Column


@dataclass(frozen=True)
class DropColumn:
    """ALTER TABLE DROP COLUMN."""

    table: str
    name: str


@dataclass(frozen=True)
class RenameColumn:
    """ALTER TABLE RENAME COLUMN."""

    table: str
    old: str
    new: str


@dataclass(frozen=True)
class AlterType:
    """Widen a column's type (e.g. int → bigint, float → decimal is not a widening)."""

    table: str
    name: str
    new_type: str


@dataclass(frozen=True)
class Compact:
    """Rewrite a table's data files without changing its rows (Delta ``OPTIMIZE``, Iceberg
    ``rewrite_data_files``): no committed change, so a reader must emit nothing for it
    (pitfall 18)."""

    table: str


#: an engine fault's point: once the reader has received everything written so far (a running
#: pipeline that delivered, whatever it committed of its own progress by then)
AFTER_DELIVERY = "after-delivery"


@dataclass(frozen=True)
class Fault:
    """A fault the runner injects: ``kind`` (e.g. ``reader-crash``) at ``point`` on ``target``
    (``reader``, ``source``/``engine``, or an engine role). For an engine fault, point
    ``AFTER_DELIVERY`` waits until the reader received everything written so far; any other
    point injects at once."""

    kind: str
    point: str = ""
    target: str = "reader"


@dataclass
class Scenario:
    """A deterministic list of steps over some tables, with what it needs from an approach.

    ``requires`` lists capability requirements (``ddl:rename``, ``truncate``, ``resume``,
    ``before``) checked before running; a lacking approach gets ``unsupported``.
    """

    name: str
    tables: tuple[TableSpec, ...]
    steps: list[Any]
    requires: tuple[str, ...] = ()
    description: str = ""
