"""The one place that knows SQL dialect details.

The store writes its queries once, through the builders below, and each
backend supplies a ``Dialect`` (placeholder style, how insertion order is
named, how an unbounded LIMIT is spelled). Identifiers are never taken from
callers: tables and columns come from the fixed allow-list ``COLUMNS``, so only
values are ever bound, and always as parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["COLUMNS", "SQLITE", "Dialect", "SqlBuilder"]

# Every column of every table, in schema order (the schema file is the source
# of truth; a test checks this list against it).
COLUMNS: dict[str, tuple[str, ...]] = {
    "orchestrator_agents": (
        "id",
        "name",
        "description",
        "agent_type",
        "capabilities",
        "default_model",
        "created_at",
        "updated_at",
    ),
    "agents": (
        "id",
        "orchestrator_agent_id",
        "session_id",
        "parent_agent_id",
        "status",
        "context",
        "config",
        "started_at",
        "completed_at",
        "cost_usd",
        "error_message",
    ),
    "prompts": (
        "id",
        "agent_id",
        "prompt_type",
        "prompt_name",
        "prompt_text",
        "response_text",
        "status",
        "model_used",
        "tokens_input",
        "tokens_output",
        "cost_usd",
        "latency_ms",
        "created_at",
        "completed_at",
        "error_message",
    ),
    "agent_logs": ("id", "agent_id", "log_level", "log_type", "message", "details", "created_at"),
    "system_logs": ("id", "log_level", "component", "message", "details", "created_at"),
}


@dataclass(frozen=True)
class Dialect:
    name: str
    placeholder: Callable[[int], str]  # 1-based parameter index -> "?" or "$1"
    insertion_order: str  # breaks ties between rows written in the same microsecond
    unbounded_limit: str  # what LIMIT takes when only an OFFSET is wanted


SQLITE = Dialect(
    name="sqlite",
    placeholder=lambda _index: "?",
    insertion_order="rowid",
    unbounded_limit="-1",
)


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
        _checked(table, columns)
        values = ", ".join(self._params(len(columns)))
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"

    def update_by_id(self, table: str, columns: Sequence[str]) -> str:
        _checked(table, columns)
        marks = self._params(len(columns) + 1)
        assignments = ", ".join(
            f"{column} = {mark}" for column, mark in zip(columns, marks[:-1], strict=True)
        )
        return f"UPDATE {table} SET {assignments} WHERE id = {marks[-1]}"

    def increment_by_id(self, table: str, column: str) -> str:
        _checked(table, [column])
        first, second = self._params(2)
        return f"UPDATE {table} SET {column} = {column} + {first} WHERE id = {second}"

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
            tie_break = self.dialect.insertion_order
            sql += f" ORDER BY {order_by} {direction}, {tie_break} {direction}"
        if limit:
            sql += f" LIMIT {next(marks)}"
        elif offset:
            sql += f" LIMIT {self.dialect.unbounded_limit}"
        if offset:
            sql += f" OFFSET {next(marks)}"
        return sql
