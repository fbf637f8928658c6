"""The store's one exception hierarchy.

Every fault the store reports is a ``DatabaseError``. Driver exceptions are
translated once, at the backend boundary, and kept as ``__cause__``; callers
never need to import sqlite3 or asyncpg to handle a failure. Structured fields
(``table``, ``field``) say where the fault is, and the class says what kind of
fault it is, so nobody has to parse messages. ``retryable`` is true where the
same call may succeed if made again later (busy, connection lost, timed out).

The store raises what it reports and does not log it: whether an error is
worth a line on stderr is the application's call.
"""

from __future__ import annotations

from typing import NoReturn

__all__ = [
    "NOT_CONNECTED",
    "QUERY_IS_READ_ONLY",
    "BusyError",
    "ConnectionLostError",
    "DatabaseError",
    "IntegrityError",
    "NotConnectedError",
    "ReadOnlyError",
    "ReceiverError",
    "SchemaError",
    "StatementTimeoutError",
    "TransactionScopeError",
    "ValidationError",
    "read_only_refusal",
]

# What a call before connect() is told, by the manager and by either backend.
NOT_CONNECTED = (
    "the store is not connected: call `await db.connect()` first, "
    "or use `async with DatabaseManager(...) as db:`"
)
# What a refused ``query()`` is told to do instead, on either backend.
QUERY_IS_READ_ONLY = (
    "query() runs one read-only statement; write through the store's methods "
    "(create_*, update_*, delete_*) and group writes with `async with db.transaction():`"
)


class DatabaseError(Exception):
    """Root of every error the store raises (also: the database itself failed)."""

    retryable = False  # the same call may succeed later (set on the subclasses that can)

    def __init__(self, message: str, *, table: str | None = None, field: str | None = None):
        super().__init__(message)
        self.table = table
        self.field = field


class ValidationError(DatabaseError, ValueError):
    """Bad input, caught before any SQL ran: nothing was written."""


class IntegrityError(DatabaseError):
    """The database refused the write (duplicate name, missing foreign-key target).

    ``constraint`` names the kind of rule that refused it: ``unique``,
    ``foreign_key``, ``primary_key``, ``check``, ``not_null`` or ``constraint``.
    """

    def __init__(
        self,
        message: str,
        *,
        table: str | None = None,
        field: str | None = None,
        constraint: str = "constraint",
    ):
        super().__init__(message, table=table, field=field)
        self.constraint = constraint


class SchemaError(DatabaseError):
    """The schema file is missing or invalid, or the database is of a newer version."""


class BusyError(DatabaseError):
    """The database stayed locked by another connection or process for longer
    than the store waits (SQLite's "database is locked"), no pooled
    connection came free in time (PostgreSQL), or PostgreSQL rolled the
    transaction back to break a deadlock or a serialization conflict with
    another: nothing was written; retry later (a ``transaction()`` block: run
    it again)."""

    retryable = True


class ConnectionLostError(DatabaseError):
    """The connection to the server broke during the call (server restart,
    terminated backend, network): the call's transaction was rolled back by
    the server; the next call uses a new connection."""

    retryable = True


class StatementTimeoutError(DatabaseError):
    """One statement ran longer than its time limit (PostgreSQL's
    ``command_timeout``) and was stopped: nothing of it was written."""

    retryable = True


class ReadOnlyError(DatabaseError):
    """``query()`` refused the SQL before it changed anything: it would write,
    control a transaction or change the connection's settings, or it is more
    than one statement; or a write was asked of a store opened
    ``read_only=True``. Nothing was written."""


class NotConnectedError(DatabaseError):
    """The store is not open: ``connect()`` was never called, ``close()`` was,
    or the store was closed while the call waited."""


class TransactionScopeError(DatabaseError):
    """A ``transaction()`` belongs to the task that opened it. A task started
    inside the block (``asyncio.gather``, ``create_task``, a ``TaskGroup``)
    that writes, or opens a transaction, while the block is still open gets
    this error at once instead of a deadlock (SQLite) or a write outside the
    transaction (PostgreSQL): nothing was written."""


class ReceiverError(Exception):
    """An OpenTelemetry receiver did not accept a batch of spans (down, refusing, or
    slower than the timeout). Not a database error: the store was only read."""


def read_only_refusal(location: str, what: str) -> NoReturn:
    """The error of every write to a store opened read-only."""
    raise ReadOnlyError(
        f"{what}: {location} was opened read-only (read_only=True): "
        "open it without read_only to write"
    )
