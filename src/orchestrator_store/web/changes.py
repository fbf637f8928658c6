"""The change marker: a cheap value that differs once anything wrote to the store.

``/events/changes`` reads it every live interval and tells the page to re-render
when it moved. It never says what changed, only that something may have.

- **SQLite**: ``PRAGMA data_version`` on a dedicated read-only connection of
  the marker's own. Its value changes when any other connection, in any
  process, commits; the store's own connections cannot serve, since the value
  is per connection and ignores that connection's own commits.
- **PostgreSQL**: ``pg_current_snapshot()``, which moves whenever a transaction
  of the server starts writing or ends. It over-reports on a busy server (other
  databases' writes count too); that costs only a re-render.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Protocol

from ..manager import DatabaseManager

__all__ = ["ChangeMarker", "PostgresChangeMarker", "SqliteChangeMarker", "open_change_marker"]


class ChangeMarker(Protocol):
    async def read(self) -> str:
        """The current value: a different one means the store may have changed."""
        ...

    def close(self) -> None:
        """Release what the marker holds; quick and safe to call while cancelled."""
        ...


class SqliteChangeMarker:
    """``PRAGMA data_version`` on one read-only connection, used from a worker thread."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._lock = threading.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteChangeMarker:
        return cls(await asyncio.to_thread(_read_only_connection, path))

    def _data_version(self) -> str:
        with self._lock:
            if self._connection is None:
                raise RuntimeError("the change marker is closed")
            return str(self._connection.execute("PRAGMA data_version").fetchone()[0])

    async def read(self) -> str:
        return await asyncio.to_thread(self._data_version)

    def close(self) -> None:
        # Waits, under the lock, for a read still running in its thread (a pragma: brief).
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def _read_only_connection(path: Path) -> sqlite3.Connection:
    uri = path.resolve().as_uri() + "?mode=ro"
    # Used from worker threads (never two at once: the marker's lock), closed from the loop.
    return sqlite3.connect(uri, uri=True, check_same_thread=False)


class PostgresChangeMarker:
    """The server's current snapshot, read through the store's own pool."""

    def __init__(self, db: DatabaseManager) -> None:
        self._db = db

    async def read(self) -> str:
        rows = await self._db.query("SELECT pg_current_snapshot()::text AS snapshot")
        return str(rows[0]["snapshot"])

    def close(self) -> None:
        pass  # holds nothing of its own


async def open_change_marker(db: DatabaseManager) -> ChangeMarker:
    """A marker for ``db``'s backend; the caller closes it."""
    if db.db_path is not None:
        return await SqliteChangeMarker.open(Path(db.db_path))
    return PostgresChangeMarker(db)
