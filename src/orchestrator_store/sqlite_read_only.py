"""``query()`` on SQLite: one statement that only reads.

The reader connections run with ``query_only = ON``, which stops writes to the
database file but not what else a statement can do to a connection: ``BEGIN``
(leaving a stale snapshot open for every later read), ``ATTACH``, or
``PRAGMA query_only = OFF`` itself. So ``query()``'s statement is prepared
under an authorizer (``ReadOnlyGuard``) that lets it read tables, call
functions and read settings, and refuses anything else before it runs;
``query_only`` stays on as the second line. Python's sqlite3 refuses a second
statement in the same text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from .errors import QUERY_IS_READ_ONLY, ReadOnlyError
from .sqlite_errors import SQLITE_READONLY, primary_code

__all__ = ["ReadOnlyGuard", "fetch_read_only", "refusal"]

_READS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
# Pragmas that act even without a value; any other pragma without one reports a setting.
_ACTING_PRAGMAS = frozenset({"incremental_vacuum", "optimize", "shrink_memory", "wal_checkpoint"})
# Pragmas whose value names what to report on, changing nothing.
_REPORTS_ON_A_NAME = frozenset(
    {
        "foreign_key_check",
        "foreign_key_list",
        "index_info",
        "index_list",
        "index_xinfo",
        "integrity_check",
        "quick_check",
        "table_info",
        "table_list",
        "table_xinfo",
    }
)
# What the authorizer is asked to allow -> its name, for error messages.
_ACTIONS = {
    getattr(sqlite3, f"SQLITE_{name}"): name
    for name in (
        "ALTER_TABLE",
        "ANALYZE",
        "ATTACH",
        "CREATE_INDEX",
        "CREATE_TABLE",
        "CREATE_TEMP_INDEX",
        "CREATE_TEMP_TABLE",
        "CREATE_TEMP_TRIGGER",
        "CREATE_TEMP_VIEW",
        "CREATE_TRIGGER",
        "CREATE_VIEW",
        "CREATE_VTABLE",
        "DELETE",
        "DETACH",
        "DROP_INDEX",
        "DROP_TABLE",
        "DROP_TEMP_INDEX",
        "DROP_TEMP_TABLE",
        "DROP_TEMP_TRIGGER",
        "DROP_TEMP_VIEW",
        "DROP_TRIGGER",
        "DROP_VIEW",
        "DROP_VTABLE",
        "INSERT",
        "PRAGMA",
        "REINDEX",
        "SAVEPOINT",
        "TRANSACTION",
        "UPDATE",
    )
}


def _reads(action: int, first: str | None, second: str | None) -> bool:
    if action in _READS:
        return True
    if action == sqlite3.SQLITE_PRAGMA:
        name = (first or "").lower()
        return name in _REPORTS_ON_A_NAME or (second is None and name not in _ACTING_PRAGMAS)
    # SQLite asks this while it sets up a table-valued pragma such as
    # pragma_table_info('agents'); no statement may write sqlite_master.
    return action == sqlite3.SQLITE_UPDATE and first == "sqlite_master"


class ReadOnlyGuard:
    """The authorizer of one ``query()``: allows reads, refuses the rest, and
    remembers the first thing it refused (for the error message)."""

    def __init__(self) -> None:
        self.refused: str | None = None

    def __call__(
        self,
        action: int,
        first: str | None,
        second: str | None,
        _database: str | None,
        _trigger: str | None,
    ) -> int:
        if _reads(action, first, second):
            return sqlite3.SQLITE_OK
        if self.refused is None:
            details = ", ".join(part for part in (first, second) if part)
            name = _ACTIONS.get(action, f"action {action}")
            self.refused = f"{name} ({details})" if details else name
        return sqlite3.SQLITE_DENY


def fetch_read_only(
    connection: sqlite3.Connection, sql: str, params: Sequence[Any], guard: ReadOnlyGuard
) -> list[sqlite3.Row]:
    """``sql`` on a connection that may write (the writer, inside the caller's
    own transaction, whose writes the query must see), made read-only for
    this one statement; runs on that connection's thread."""
    connection.execute("PRAGMA query_only = ON")
    connection.set_authorizer(guard)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.set_authorizer(None)
        connection.execute("PRAGMA query_only = OFF")


def _several_statements(exc: BaseException) -> bool:
    # sqlite3.Warning before Python 3.12 (not an sqlite3.Error), ProgrammingError since.
    return isinstance(exc, sqlite3.Warning) or "one statement at a time" in str(exc)


def refusal(exc: BaseException, guard: ReadOnlyGuard, table: str) -> ReadOnlyError | None:
    """The store's error for a statement ``query()`` refused, or ``None`` when
    ``exc`` is another fault (a syntax error, say)."""
    if guard.refused is not None:
        what = f"SQLite refused {guard.refused}"
    elif _several_statements(exc):
        return ReadOnlyError(
            f"{table}: query() takes one statement at a time and got several; nothing ran: "
            "pass each statement in its own call",
            table=table,
        )
    elif primary_code(exc) == SQLITE_READONLY:
        what = f"SQLite refused the write ({exc})"
    else:
        return None
    return ReadOnlyError(
        f"{table}: query() is read-only: {what}; nothing was written. {QUERY_IS_READ_ONLY}",
        table=table,
    )
