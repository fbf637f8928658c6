"""The SQLite backend opened to read only: ``DatabaseManager(path, read_only=True)``.

For tools that look and must never change what they look at (the dashboard,
inspection): no writer thread, no checkpointer, no schema work. The file must
exist and already be at this store's schema version; it is opened with
``mode=ro``, so SQLite itself refuses any write, and each connection runs
with ``query_only``. Every write method raises ``ReadOnlyError`` before
anything runs. Another process may write meanwhile: reads see its commits as
any reader does (WAL), and the dashboard's readers never block it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

from .errors import (
    NOT_CONNECTED,
    DatabaseError,
    NotConnectedError,
    SchemaError,
    read_only_refusal,
)
from .ownership import Transaction
from .schema import LATEST_VERSION
from .shield import run_to_completion
from .sqlite_backend import READ_CONNECTIONS, SQLiteBackend, _make_daemon
from .sqlite_read_only import ReadOnlyGuard, refusal
from .sqlite_writer import WriteResult

__all__ = ["SQLiteReaderBackend"]

Row = dict[str, Any]


class SQLiteReaderBackend(SQLiteBackend):
    """Reader connections only (see the module docstring)."""

    _reading = False
    _uri = ""

    @property
    def is_open(self) -> bool:
        return self._reading

    async def open(self) -> None:
        if not self.path.is_file():
            raise DatabaseError(
                f"no database at {self.path}: a store opened read-only does not create one"
            )
        self._refuse_foreign_file()
        # mode=ro: SQLite itself refuses to write, whatever a statement tries.
        self._uri = await asyncio.to_thread(lambda: self.path.resolve().as_uri() + "?mode=ro")
        try:
            for _ in range(READ_CONNECTIONS):
                reader = await self._connect()
                await reader.execute("PRAGMA query_only = ON")
                await reader.execute(f"PRAGMA mmap_size = {self.read_mmap_bytes}")
                self._readers.put_nowait(reader)
            self._reading = True  # _read() needs it; version is checked with a real read
            version = await self.schema_version()
            if version != LATEST_VERSION:
                raise SchemaError(self._version_refusal(version))
        except BaseException as exc:
            self._reading = False
            await run_to_completion(self._close_connections(None, None, before_close=None))
            if isinstance(exc, sqlite3.Error):
                raise self._translate(exc, "(database)", "open") from exc
            if isinstance(exc, OSError):
                raise DatabaseError(f"cannot open {self.path}: {exc}") from exc
            raise

    def _version_refusal(self, version: int) -> str:
        if version > LATEST_VERSION:
            return (
                f"{self.path} was written by schema version {version}, newer than this "
                f"store's version {LATEST_VERSION}: upgrade the store to read it"
            )
        return (
            f"{self.path} is at schema version {version}, this store reads version "
            f"{LATEST_VERSION}: open it once without read_only (any writer of this store "
            "version migrates it), then read it"
        )

    async def _connect(self) -> aiosqlite.Connection:
        connection = aiosqlite.connect(
            self._uri, uri=True, isolation_level=None, cached_statements=256
        )
        _make_daemon(connection)
        self._connections.append(connection)  # closed on failure even if the await fails
        await connection
        connection.row_factory = sqlite3.Row
        await connection.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        return connection

    async def close(self) -> None:
        if self._reading:
            self._reading = False
            await run_to_completion(self._close_connections(None, None, before_close=None))

    # --- reads -----------------------------------------------------------------

    def _require_open(self) -> None:
        if not self._reading:
            raise NotConnectedError(NOT_CONNECTED)

    async def fetch_all(self, sql: str, params: Sequence[Any], *, table: str) -> list[Row]:
        self._require_open()
        try:
            return await self._read(sql, params, table)
        except sqlite3.Error as exc:
            raise self._translate(exc, table, "read") from exc

    async def fetch_read_only(self, sql: str, params: Sequence[Any], *, table: str) -> list[Row]:
        self._require_open()
        guard = ReadOnlyGuard()
        try:
            return await self._read(sql, params, table, guard=guard)
        except (sqlite3.Error, sqlite3.Warning) as exc:
            refused = refusal(exc, guard, table)
            if refused is not None:
                raise refused from exc
            if isinstance(exc, sqlite3.Error):
                raise self._translate(exc, table, "query") from exc
            raise

    # --- what a reader refuses -------------------------------------------------

    async def execute(self, sql: str, params: Sequence[Any], *, table: str) -> WriteResult:
        read_only_refusal(str(self.path), table)

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]], *, table: str) -> None:
        read_only_refusal(str(self.path), table)

    async def insert_many(
        self, sql: str, rows: Sequence[Sequence[Any]], *, table: str
    ) -> list[int]:
        read_only_refusal(str(self.path), table)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        read_only_refusal(str(self.path), "transaction()")
        yield  # pragma: no cover  # unreachable: makes this a generator

    async def checkpoint(self) -> dict[str, int]:
        read_only_refusal(str(self.path), "checkpoint()")

    async def release_free_pages(self, limit: int) -> int:
        read_only_refusal(str(self.path), "prune()")

    async def vacuum(self) -> None:
        read_only_refusal(str(self.path), "vacuum")
