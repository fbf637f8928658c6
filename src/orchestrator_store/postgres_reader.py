"""The PostgreSQL backend opened to read only: ``DatabaseManager(url, read_only=True)``.

The same pool as the writable backend, minus everything that writes: no
database creation, no migration, no folding of the totals at connect. Every
read runs in a READ ONLY transaction, so the server itself refuses a write
(a session setting would not survive PgBouncer's transaction pooling), and
every write method raises ``ReadOnlyError`` before it reaches the server. The
database must exist and be at this store's schema version.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from .backend import Row, WriteResult
from .errors import DatabaseError, SchemaError, read_only_refusal
from .location import redact_text
from .ownership import Transaction
from .postgres_backend import DRIVER_ERRORS, MISSING_DATABASE, PostgresBackend, _Connections
from .schema import LATEST_VERSION

__all__ = ["PostgresReaderBackend"]


class PostgresReaderBackend(PostgresBackend):
    """Reads in READ ONLY transactions; writes refused (see the module docstring)."""

    async def open(self) -> None:
        settings = self.settings
        try:
            pool = await self._create_pool()
        except (*DRIVER_ERRORS, ValueError) as exc:
            missing = MISSING_DATABASE.fullmatch(getattr(exc, "message", ""))
            detail = (
                "the database does not exist, and a store opened read-only does not create it"
                if missing is not None
                else f"no connection within connect_timeout={settings.connect_timeout:g}s"
                if isinstance(exc, TimeoutError)
                else str(exc)
            )
            message = f"cannot connect to {self.location}: {detail}"
            raise DatabaseError(redact_text(message, self.given_url)) from exc
        try:
            async with (
                pool.acquire(timeout=settings.acquire_timeout) as connection,
                connection.transaction(readonly=True),
            ):
                version = await self._read_version(connection)
        except BaseException as exc:
            pool.terminate()
            if isinstance(exc, DRIVER_ERRORS):
                raise self._translate(exc, "(database)", "open") from exc
            raise
        if version != LATEST_VERSION:
            pool.terminate()
            raise SchemaError(
                f"{self.location} is at schema version {version}, this store reads version "
                f"{LATEST_VERSION}: "
                + (
                    "upgrade the store to read it"
                    if version > LATEST_VERSION
                    else "open it once without read_only (a writer migrates it), then read it"
                )
            )
        self._pool = pool
        self._connections = _Connections(pool, settings)

    async def fetch_all(self, sql: str, params: Sequence[Any], *, table: str) -> list[Row]:
        async def read(connection: Any) -> list[Any]:
            async with connection.transaction(readonly=True):
                return list(await connection.fetch(sql, *params))

        try:
            records = await self._run(read)
        except DRIVER_ERRORS as exc:
            raise self._translate(exc, table, "read") from exc
        return [dict(record) for record in records]

    # --- what a reader refuses -------------------------------------------------

    async def execute(self, sql: str, params: Sequence[Any], *, table: str) -> WriteResult:
        read_only_refusal(self.location, table)

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]], *, table: str) -> None:
        read_only_refusal(self.location, table)

    async def insert_many(
        self, sql: str, rows: Sequence[Sequence[Any]], *, table: str
    ) -> list[int]:
        read_only_refusal(self.location, table)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        read_only_refusal(self.location, "transaction()")
        yield  # pragma: no cover  # unreachable: makes this a generator

    async def checkpoint(self) -> dict[str, int]:
        read_only_refusal(self.location, "checkpoint()")
