"""The one place that knows SQL dialect details.

The store writes its queries once, through the builders below, and each
backend supplies a ``Dialect`` (placeholder style, how insertion order is
named, how an unbounded LIMIT is spelled, how a generated log id comes back,
how an id is matched as text). Identifiers are never taken from
callers: tables and columns come from the fixed allow-list ``COLUMNS`` (derived
from ``tables``), so only values are ever bound, and always as parameters.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .tables import LOG_TABLES, TABLES

__all__ = [
    "COLUMNS",
    "GENERATED_IDS",
    "POSTGRES",
    "SQLITE",
    "Condition",
    "Dialect",
    "SqlBuilder",
]

# Every column of every table, in schema order: the allow-list of identifiers.
COLUMNS: dict[str, tuple[str, ...]] = {name: table.columns for name, table in TABLES.items()}

# Tables whose integer id the database assigns (the others get UUIDs from the store).
GENERATED_IDS: tuple[str, ...] = tuple(name for name, table in TABLES.items() if table.generated_id)


@dataclass(frozen=True, eq=False)  # one instance per dialect: compared and hashed by identity
class Dialect:
    name: str
    placeholder: Callable[[int], str]  # 1-based parameter index -> "?" or "$1"
    # A table -> the hidden column that breaks ties between rows written in the
    # same microsecond (ordered by, never selected).
    insertion_order: Callable[[str], str]
    unbounded_limit: str  # what LIMIT takes when only an OFFSET is wanted
    day_of: Callable[[str], str]  # a timestamp column -> its UTC day as YYYY-MM-DD text
    # Appended to an INSERT into a GENERATED_IDS table when the driver has no
    # lastrowid: the backend reads the new id from the one row it returns.
    returning_id: str
    as_text: Callable[[str], str]  # a column as text (what LIKE compares)


SQLITE = Dialect(
    name="sqlite",
    placeholder=lambda _index: "?",
    insertion_order=lambda _table: "rowid",
    unbounded_limit="-1",
    # Timestamps are fixed-width UTC text, so the day is their first ten characters.
    day_of=lambda column: f"substr({column}, 1, 10)",
    returning_id="",
    as_text=lambda column: column,
)

POSTGRES = Dialect(
    name="postgresql",
    placeholder=lambda index: f"${index}",
    # PostgreSQL has no rowid: log ids are identity columns, the other tables
    # carry a hidden identity column (see schema_orchestrator_postgres.sql).
    insertion_order=lambda table: "id" if table in GENERATED_IDS else "row_order",
    unbounded_limit="ALL",
    day_of=lambda column: f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    returning_id=" RETURNING id",
    as_text=lambda column: f"{column}::text",
)

OPERATORS = ("=", "<", "<=", ">", ">=", "IN", "LIKE")


@dataclass(frozen=True)
class Condition:
    """``column operator value``; ``IN`` binds ``values`` parameters. Callers
    pass the parameters in the order of their conditions."""

    column: str
    operator: str = "="
    values: int = 1


def _checked_conditions(table: str, conditions: Sequence[Condition]) -> None:
    _checked(table, [condition.column for condition in conditions])
    for condition in conditions:
        if condition.operator not in OPERATORS:
            raise KeyError(f"{condition.operator!r} is not an operator the store uses")


def _checked(table: str, columns: Sequence[str]) -> None:
    known = COLUMNS[table]
    for column in columns:
        if column not in known:
            raise KeyError(f"{table}.{column} is not a column of the schema")


@dataclass(frozen=True)
class SqlBuilder:
    """Builds the store's statements for one dialect."""

    dialect: Dialect

    def _params(self, count: int, start: int = 1) -> list[str]:
        return [self.dialect.placeholder(index) for index in range(start, start + count)]

    def insert(self, table: str, columns: Sequence[str]) -> str:
        return self._insert(table, tuple(columns))

    @functools.lru_cache(maxsize=256)  # noqa: B019  # builders live as long as the program
    def _insert(self, table: str, columns: tuple[str, ...]) -> str:
        """Every write builds the same few statements: build each once."""
        _checked(table, columns)
        values = ", ".join(self._params(len(columns)))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"
        if table in GENERATED_IDS and "id" not in columns:
            sql += self.dialect.returning_id
        return sql

    def restart_generated_ids(self, table: str) -> str:
        """PostgreSQL: make the identity of ``table`` continue after its highest
        id (after rows were copied in with their ids)."""
        if table not in GENERATED_IDS or self.dialect is not POSTGRES:
            raise KeyError(f"{table} has no identity column to restart in {self.dialect.name}")
        return (
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
            f" coalesce(max(id), 0) + 1, false) FROM {table}"
        )

    def update_by_id(self, table: str, columns: Sequence[str]) -> str:
        return self._update_by_id(table, tuple(columns))

    @functools.lru_cache(maxsize=256)  # noqa: B019  # builders live as long as the program
    def _update_by_id(self, table: str, columns: tuple[str, ...]) -> str:
        _checked(table, columns)
        marks = self._params(len(columns) + 1)
        assignments = ", ".join(
            f"{column} = {mark}" for column, mark in zip(columns, marks[:-1], strict=True)
        )
        return f"UPDATE {table} SET {assignments} WHERE id = {marks[-1]}"

    def increment_by_id(self, table: str, column: str) -> str:
        """Parameters: amount, id, amount again, bound. Adds the amount to
        ``column`` of that row unless the sum would pass the bound, checked by
        the UPDATE itself, so racing increments cannot pass it together."""
        _checked(table, [column])
        amount, key, same_amount, bound = self._params(4)
        return (
            f"UPDATE {table} SET {column} = {column} + {amount} "
            f"WHERE id = {key} AND {column} + {same_amount} <= {bound}"
        )

    def delete_by_id(self, table: str) -> str:
        return f"DELETE FROM {table} WHERE id = {self.dialect.placeholder(1)}"

    def delete_older_than(self, table: str, time_column: str) -> str:
        _checked(table, [time_column])
        return f"DELETE FROM {table} WHERE {time_column} < {self.dialect.placeholder(1)}"

    def select(
        self,
        table: str,
        *,
        where: Sequence[str] = (),
        order_by: str | None = None,
        newest_first: bool = False,
        limit: bool = False,
        offset: bool = False,
    ) -> str:
        """``SELECT`` every column; ``where`` columns are matched for equality
        (their values bound in order, then LIMIT, then OFFSET)."""
        _checked(table, where)
        marks = iter(self._params(len(where) + int(limit) + int(offset)))
        sql = f"SELECT {', '.join(COLUMNS[table])} FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(f"{column} = {next(marks)}" for column in where)
        if order_by is not None:
            _checked(table, [order_by])
            direction = "DESC" if newest_first else "ASC"
            tie_break = self.dialect.insertion_order(table)
            sql += f" ORDER BY {order_by} {direction}, {tie_break} {direction}"
        if limit:
            sql += f" LIMIT {next(marks)}"
        elif offset:
            sql += f" LIMIT {self.dialect.unbounded_limit}"
        if offset:
            sql += f" OFFSET {next(marks)}"
        return sql

    # --- filtered reads and reports ------------------------------------------------

    def _where(self, conditions: Sequence[Condition], marks: Iterator[str]) -> str:
        clauses = []
        for condition in conditions:
            column = condition.column
            if condition.operator == "IN":
                values = ", ".join(next(marks) for _ in range(condition.values))
                clauses.append(f"{column} IN ({values})")
            elif condition.operator == "LIKE":
                clauses.append(f"{self.dialect.as_text(column)} LIKE {next(marks)}")
            else:
                clauses.append(f"{column} {condition.operator} {next(marks)}")
        return " WHERE " + " AND ".join(clauses) if clauses else ""

    def _marks(self) -> Iterator[str]:
        return (self.dialect.placeholder(index) for index in itertools.count(1))

    def select_matching(
        self,
        table: str,
        conditions: Sequence[Condition],
        *,
        order_by: str = "id",
        limit: bool = False,
    ) -> str:
        """Every column of the rows matching all ``conditions``, in ascending
        ``order_by`` (a unique column, so pages never overlap); LIMIT bound last."""
        _checked_conditions(table, conditions)
        _checked(table, [order_by])
        marks = self._marks()
        sql = f"SELECT {', '.join(COLUMNS[table])} FROM {table}"
        sql += self._where(conditions, marks) + f" ORDER BY {order_by}"
        if limit:
            sql += f" LIMIT {next(marks)}"
        return sql

    def count_matching(self, table: str, conditions: Sequence[Condition]) -> str:
        _checked_conditions(table, conditions)
        return f"SELECT count(*) AS n FROM {table}" + self._where(conditions, self._marks())

    def log_bounds(self) -> str:
        """The first and last time and the highest id of both log tables, in
        one statement (so in one snapshot)."""
        parts = []
        for table in LOG_TABLES:
            parts += [
                f"(SELECT min(created_at) FROM {table}) AS {table}_first",
                f"(SELECT max(created_at) FROM {table}) AS {table}_last",
                f"(SELECT coalesce(max(id), 0) FROM {table}) AS {table}_max_id",
            ]
        return "SELECT " + ", ".join(parts)

    def interleaved_logs(
        self,
        agent_conditions: Sequence[Condition] | None,
        system_conditions: Sequence[Condition] | None,
        *,
        limit: bool,
    ) -> str:
        """Agent and system logs in one time line, oldest first; with ``limit``,
        the latest rows. ``None`` leaves a table out. Parameters: the agent
        conditions', the system conditions', then LIMIT."""
        marks = self._marks()
        parts = []
        if agent_conditions is not None:
            _checked_conditions("agent_logs", agent_conditions)
            parts.append(
                "SELECT 'agent' AS source, id, created_at, log_level, agent_id, log_type,"
                " NULL AS component, message, details FROM agent_logs"
                + self._where(agent_conditions, marks)
            )
        if system_conditions is not None:
            _checked_conditions("system_logs", system_conditions)
            parts.append(
                "SELECT 'system' AS source, id, created_at, log_level, NULL AS agent_id,"
                " NULL AS log_type, component, message, details FROM system_logs"
                + self._where(system_conditions, marks)
            )
        if not parts:
            raise KeyError("interleaved_logs needs at least one table")
        union = " UNION ALL ".join(parts)
        if not limit:
            return f"{union} ORDER BY created_at, source, id"
        return (
            f"SELECT * FROM ({union} ORDER BY created_at DESC, source DESC, id DESC"
            f" LIMIT {next(marks)}) AS latest ORDER BY created_at, source, id"
        )
