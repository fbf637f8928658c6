"""The store's one exception hierarchy.

Every fault the store reports is a ``DatabaseError``. Driver exceptions are
translated once, at the backend boundary, and kept as ``__cause__``; callers
never need to import sqlite3 or asyncpg to handle a failure. Structured fields
(``table``, ``field``) say where the fault is, so nobody has to parse messages.
"""

from __future__ import annotations

__all__ = [
    "NOT_CONNECTED",
    "DatabaseError",
    "IntegrityError",
    "SchemaError",
    "ValidationError",
]

# What a call before connect() is told, by the manager and by either backend.
NOT_CONNECTED = (
    "the store is not connected: call `await db.connect()` first, "
    "or use `async with DatabaseManager(...) as db:`"
)


class DatabaseError(Exception):
    """Root of every error the store raises (also: the database itself failed)."""

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
