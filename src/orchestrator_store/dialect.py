"""The one place that knows SQL dialect details.

The store writes its queries once, through the builders below, and each
backend supplies a ``Dialect`` (placeholder style, how insertion order is
named, how an unbounded LIMIT is spelled, how a generated log id comes back,
how an id is matched as text). Identifiers are never taken from
callers: tables and columns come from the fixed allow-list ``COLUMNS`` (derived
from ``tables``), so only values are ever bound, and always as parameters.

PostgreSQL's log tables also hold ``tx`` (schema version 5: the transaction
that inserted the row), which only the log cursor's statements read
(``log_bounds``, ``logs_after``, ``UpTo``); every select names its columns, so
no row the store returns carries it.
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
    "UpTo",
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


@dataclass(frozen=True)
class UpTo:
    """The rows of a log table at or before a log cursor's place in it (see
    ``models.LogCursor``). SQLite: ``id <= ?``. PostgreSQL, ``by_tx``: the
    rows from before schema version 5 (tx NULL) and those at or before (tx,
    id), two parameters; without: the rows from before version 5 up to an id."""

    by_tx: bool = False


# What a log cursor's transaction is bound as: a bigint, made xid8 through its text
# (xid8 has no cast from bigint; the drivers need no codec for it either way).
_TX_PARAMETER = "{mark}::bigint::text::xid8"
# Every transaction below it has ended: a row of such a transaction is final (the
# xmin of the statement's own snapshot, so that it agrees with what the statement sees).
_HORIZON = "pg_snapshot_xmin(pg_current_snapshot())"


def _checked_conditions(table: str, conditions: Sequence[Condition | UpTo]) -> None:
    if any(isinstance(condition, UpTo) for condition in conditions) and table not in LOG_TABLES:
        raise KeyError(f"{table} is not a log table: no cursor places its rows")
    plain = [condition for condition in conditions if isinstance(condition, Condition)]
    _checked(table, [condition.column for condition in plain])
    for condition in plain:
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

    def _where(self, conditions: Sequence[Condition | UpTo], marks: Iterator[str]) -> str:
        clauses = []
        for condition in conditions:
            if isinstance(condition, UpTo):
                clauses.append(self._up_to(condition, marks))
                continue
            column = condition.column
            if condition.operator == "IN":
                values = ", ".join(next(marks) for _ in range(condition.values))
                clauses.append(f"{column} IN ({values})")
            elif condition.operator == "LIKE":
                clauses.append(f"{self.dialect.as_text(column)} LIKE {next(marks)}")
            else:
                clauses.append(f"{column} {condition.operator} {next(marks)}")
        return " WHERE " + " AND ".join(clauses) if clauses else ""

    def _and(self, conditions: Sequence[Condition | UpTo], marks: Iterator[str]) -> str:
        """``conditions`` as more clauses of a WHERE: `` AND ...`` or nothing."""
        where = self._where(conditions, marks)
        return " AND " + where.removeprefix(" WHERE ") if where else ""

    def _up_to(self, up_to: UpTo, marks: Iterator[str]) -> str:
        if self.dialect is not POSTGRES:
            if up_to.by_tx:
                raise KeyError(f"{self.dialect.name} log rows have no transaction to place them")
            return f"id <= {next(marks)}"
        if not up_to.by_tx:
            return f"(tx IS NULL AND id <= {next(marks)})"
        tx = _TX_PARAMETER.format(mark=next(marks))
        return f"(tx IS NULL OR (tx, id) <= ({tx}, {next(marks)}))"

    def _marks(self) -> Iterator[str]:
        return (self.dialect.placeholder(index) for index in itertools.count(1))

    def select_matching(
        self,
        table: str,
        conditions: Sequence[Condition | UpTo],
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
        one statement (so in one snapshot); on PostgreSQL also ``horizon``,
        the snapshot's xmin as a bigint: the rows of every transaction below
        it are final, those of the others are still to come."""
        parts = []
        for table in LOG_TABLES:
            parts += [
                f"(SELECT min(created_at) FROM {table}) AS {table}_first",
                f"(SELECT max(created_at) FROM {table}) AS {table}_last",
                f"(SELECT coalesce(max(id), 0) FROM {table}) AS {table}_max_id",
            ]
        if self.dialect is POSTGRES:
            parts.append(f"{_HORIZON}::text::bigint AS horizon")
        return "SELECT " + ", ".join(parts)

    def logs_after(self, table: str, conditions: Sequence[Condition | UpTo], *, by_tx: bool) -> str:
        """The next rows of log ``table`` after a log cursor's place in it that
        match all ``conditions``, in the order a follow delivers them, LIMIT
        bound last. SQLite: after an id, in id order; parameters: the id, the
        conditions', LIMIT. PostgreSQL: the final rows only (their transaction
        has ended), each with ``tx`` (a bigint; None before schema version 5),
        in (tx, id) order with the rows from before version 5 first. ``by_tx``:
        after (tx, id); parameters: tx, id, the conditions', LIMIT. Without:
        after an id among the rows from before version 5, then every later
        row; parameters: the id, the conditions', LIMIT. One statement, so
        that the horizon and the rows come from one snapshot."""
        _checked_conditions(table, conditions)
        columns = ", ".join(COLUMNS[table])
        if self.dialect is not POSTGRES:
            if by_tx:
                raise KeyError(f"{self.dialect.name} log rows have no transaction to place them")
            return self.select_matching(table, [Condition("id", ">"), *conditions], limit=True)
        final = f"tx < {_HORIZON}"
        # Ordered by the column itself, not the bigint named alike: the index's order.
        order = f"ORDER BY {table}.tx, {table}.id"
        marks = self._marks()
        if by_tx:
            after = f"(tx, id) > ({_TX_PARAMETER.format(mark=next(marks))}, {next(marks)})"
            filters = self._and(conditions, marks)
            return (
                f"SELECT {columns}, tx::text::bigint AS tx FROM {table}"
                f" WHERE {after} AND {final}{filters} {order} LIMIT {next(marks)}"
            )
        # Both parts read the index on (tx, id) in order, and bind the same parameters.
        after = f"tx IS NULL AND id > {next(marks)}"
        filters = self._and(conditions, marks)
        limit = next(marks)
        return (
            f"SELECT * FROM ((SELECT {columns}, NULL::bigint AS tx FROM {table}"
            f" WHERE {after}{filters} {order} LIMIT {limit})"
            f" UNION ALL (SELECT {columns}, tx::text::bigint AS tx FROM {table}"
            f" WHERE {final}{filters} {order} LIMIT {limit}))"
            f" AS page ORDER BY tx NULLS FIRST, id LIMIT {limit}"
        )

    def interleaved_logs(
        self,
        agent_conditions: Sequence[Condition | UpTo] | None,
        system_conditions: Sequence[Condition | UpTo] | None,
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
