"""The SQLite backend: one writer connection, a few reader connections, WAL.

How concurrency works
* Writes go through one aiosqlite connection guarded by an ``asyncio.Lock``,
  so writes from many tasks never interleave inside one transaction.
* A write outside ``transaction()`` is one statement in autocommit mode: it
  takes the write lock as it starts (waiting up to ``busy_timeout`` for other
  processes), commits as it ends, and costs one thread hop.
* ``transaction()`` holds the lock for the block and starts with
  ``BEGIN IMMEDIATE``, so it owns the database's write lock from the first
  statement on and can never deadlock on a lock upgrade. The task that opened
  it is recorded; only that task's writes join it (a ``ContextVar`` copied into
  child tasks is not enough to join). Nested blocks become savepoints.
* Reads use their own connections (WAL lets them run beside a writer), so they
  never wait for another task's open transaction. Reads by the task that owns
  the open transaction use the writer, and so see that transaction's writes.
* "database is locked" after the busy timeout is retried a bounded number of
  times with jitter; any failed write is rolled back before the lock is
  released, so no failure leaves the database write-locked.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite
from adw_db_errors import DatabaseError, IntegrityError, SchemaError, ValidationError
from adw_db_schema import LATEST_VERSION, TABLES, statements_to_upgrade
from adw_db_sql import SQLITE, Dialect

__all__ = ["SQLiteBackend", "WriteResult"]

logger = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
BUSY_RETRIES = 4
READ_CONNECTIONS = 2

# Primary result codes (sqlite3 exposes the extended code; the low byte is the primary).
_BUSY, _LOCKED, _READONLY, _FULL, _NOTADB = 5, 6, 8, 13, 26
_CONSTRAINT_KINDS = {
    787: "foreign_key",
    2067: "unique",
    1555: "primary_key",
    275: "check",
    1299: "not_null",
}

T = TypeVar("T")
Row = dict[str, Any]


@dataclass(frozen=True)
class WriteResult:
    rowcount: int
    lastrowid: int | None


@dataclass
class _Transaction:
    backend: SQLiteBackend
    task: asyncio.Task[Any] | None
    savepoints: int = 0


_current_transaction: contextvars.ContextVar[_Transaction | None] = contextvars.ContextVar(
    "adw_current_transaction", default=None
)


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _primary_code(exc: sqlite3.Error) -> int:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and _primary_code(exc) in (_BUSY, _LOCKED)


class SQLiteBackend:
    dialect: Dialect = SQLITE

    def __init__(
        self,
        path: Path,
        *,
        schema_path: Path,
        busy_timeout: float,
        synchronous: str,
    ) -> None:
        if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, int | float):
            raise ValidationError("busy_timeout must be a number of seconds", field="busy_timeout")
        if not 0 <= busy_timeout <= 3600:
            raise ValidationError(
                f"busy_timeout must be between 0 and 3600 seconds, got {busy_timeout}",
                field="busy_timeout",
            )
        mode = str(synchronous).upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValidationError(
                f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, got {synchronous!r}",
                field="synchronous",
            )
        self.path = path
        self.schema_path = schema_path
        self.busy_timeout = float(busy_timeout)
        self.synchronous = mode
        self._writer: aiosqlite.Connection | None = None
        # None in the queue means "closed": each waiter that takes it passes it on.
        self._readers: asyncio.Queue[aiosqlite.Connection | None] = asyncio.Queue()
        self._connections: list[aiosqlite.Connection] = []
        self._write_lock = asyncio.Lock()

    # --- lifecycle -------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    async def open(self) -> None:
        """Open the file (creating it and its folders if needed), bring its
        schema up to date and start the reader connections. On failure,
        everything opened is closed and a file this call created is removed."""
        created = not self.path.exists()
        try:
            self._refuse_foreign_file()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            writer = await self._connect()
            version = await self._read_version(writer)
            if version > LATEST_VERSION:
                raise SchemaError(
                    f"{self.path} was written by schema version {version}, newer than this "
                    f"store's version {LATEST_VERSION}: upgrade the store to open it "
                    "(the file was left untouched)"
                )
            await self._use_wal(writer)
            if version < LATEST_VERSION:
                await self._migrate(writer)
            for _ in range(READ_CONNECTIONS):
                reader = await self._connect()
                await reader.execute("PRAGMA query_only = ON")
                self._readers.put_nowait(reader)
        except BaseException as exc:
            await self._close_connections()
            if created:
                self._remove_created_files()
            if isinstance(exc, sqlite3.Error):
                raise self._translate(exc, "(database)", "open") from exc
            if isinstance(exc, OSError):
                error = DatabaseError(f"cannot open {self.path}: {exc}")
                logger.error("%s", error)
                raise error from exc
            if isinstance(exc, DatabaseError):
                logger.error("%s", exc)
            raise
        self._writer = writer
        logger.debug("opened %s (schema version %s)", self.path, LATEST_VERSION)

    async def close(self) -> None:
        if self._owned_transaction() is not None:
            raise DatabaseError("close() called inside transaction(): leave the block first")
        async with self._write_lock:
            self._writer = None
            await self._close_connections()
        logger.debug("closed %s", self.path)

    def _refuse_foreign_file(self) -> None:
        if self.path.is_dir():
            raise DatabaseError(f"{self.path} is a directory, not a SQLite database file")
        try:
            with self.path.open("rb") as handle:
                header = handle.read(len(SQLITE_MAGIC))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise DatabaseError(f"cannot read {self.path}: {exc}") from exc
        if header and header != SQLITE_MAGIC:
            raise DatabaseError(
                f"{self.path} is not a SQLite database (the file was left untouched)"
            )

    async def _connect(self) -> aiosqlite.Connection:
        connection = aiosqlite.connect(self.path, isolation_level=None, cached_statements=256)
        self._connections.append(connection)  # closed on failure even if the await fails
        await connection
        # aiosqlite annotates row_factory narrower than sqlite3, which takes any callable.
        connection.row_factory = _dict_row  # type: ignore[assignment]
        # Per-connection settings; none of them writes to the file.
        await connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        await connection.execute("PRAGMA foreign_keys = ON")
        await connection.execute(f"PRAGMA synchronous = {self.synchronous}")
        return connection

    async def _read_version(self, connection: aiosqlite.Connection) -> int:
        rows = await connection.execute_fetchall("PRAGMA user_version")
        return int(next(iter(rows))["user_version"])

    async def _use_wal(self, writer: aiosqlite.Connection) -> None:
        """WAL is a property of the file: set once, after the version check, so
        that a refused file is never rewritten."""
        rows = await writer.execute_fetchall("PRAGMA journal_mode = WAL")
        mode = next(iter(rows))["journal_mode"]
        if mode != "wal":
            raise DatabaseError(f"{self.path}: cannot switch to WAL journal mode (got {mode!r})")

    async def _migrate(self, writer: aiosqlite.Connection) -> None:
        """Upgrade under the write lock, so concurrent processes migrate once."""
        await self._retry_busy(lambda: writer.execute("BEGIN IMMEDIATE"))
        try:
            version = await self._read_version(writer)  # another process may have won
            if version < LATEST_VERSION:
                for statement in statements_to_upgrade(version, self.schema_path):
                    try:
                        await writer.execute(statement)
                    except sqlite3.Error as exc:
                        if _is_busy(exc):
                            raise
                        raise SchemaError(
                            f"invalid schema file {self.schema_path}: {exc} "
                            f"(in: {statement[:120]!r})"
                        ) from exc
                await self._check_tables(writer)
                await writer.execute(f"PRAGMA user_version = {LATEST_VERSION}")
                logger.info("%s: schema upgraded from %s to %s", self.path, version, LATEST_VERSION)
            await writer.execute("COMMIT")
        except BaseException:
            with suppress(sqlite3.Error, ValueError):
                await asyncio.shield(writer.execute("ROLLBACK"))
            raise

    async def _check_tables(self, writer: aiosqlite.Connection) -> None:
        rows = await writer.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
        missing = sorted(set(TABLES) - {row["name"] for row in rows})
        if missing:
            raise SchemaError(
                f"invalid schema file {self.schema_path}: it does not create {', '.join(missing)}"
            )

    async def _close_connections(self) -> None:
        connections, self._connections = self._connections, []
        readers, self._readers = self._readers, asyncio.Queue()
        readers.put_nowait(None)  # wakes reads still waiting for a connection
        for connection in connections:
            try:
                await connection.close()
            except Exception:  # closing must reach every connection
                logger.exception("%s: error while closing a connection", self.path)

    def _remove_created_files(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with suppress(OSError):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    # --- statements ------------------------------------------------------------

    def _require_writer(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise DatabaseError(
                "the store is not connected: call `await db.connect()` first, "
                "or use `async with DatabaseManager(...) as db:`"
            )
        return self._writer

    def _owned_transaction(self) -> _Transaction | None:
        transaction = _current_transaction.get()
        if transaction is None or transaction.backend is not self:
            return None
        if transaction.task is not asyncio.current_task():
            return None
        return transaction

    async def execute(self, sql: str, params: Sequence[Any], *, table: str) -> WriteResult:
        """Run one write statement; it commits at once unless this task is
        inside ``transaction()``."""
        writer = self._require_writer()

        async def run() -> WriteResult:
            cursor = await writer.execute(sql, params)
            return WriteResult(cursor.rowcount, cursor.lastrowid)

        try:
            if self._owned_transaction() is not None:
                return await run()
            async with self._write_lock:
                return await self._retry_busy(run)
        except sqlite3.Error as exc:
            raise self._translate(exc, table, "write") from exc

    async def fetch_all(self, sql: str, params: Sequence[Any], *, table: str) -> list[Row]:
        writer = self._require_writer()
        try:
            if self._owned_transaction() is not None:
                return cast(list[Row], list(await writer.execute_fetchall(sql, params)))
            readers = self._readers
            reader = await readers.get()
            if reader is None:
                readers.put_nowait(None)
                raise DatabaseError(f"{table}: the store was closed while this read waited")
            try:
                return cast(list[Row], list(await reader.execute_fetchall(sql, params)))
            finally:
                readers.put_nowait(reader)
        except sqlite3.Error as exc:
            raise self._translate(exc, table, "read") from exc

    async def schema_version(self) -> int:
        rows = await self.fetch_all("PRAGMA user_version", (), table="(database)")
        return int(rows[0]["user_version"])

    async def checkpoint(self) -> dict[str, int]:
        """Copy the WAL into the database file and truncate the WAL to zero
        bytes. ``busy`` is 1 when another connection's open read kept part of
        the WAL from being copied (the next checkpoint finishes the job)."""
        writer = self._require_writer()
        if self._owned_transaction() is not None:
            raise DatabaseError("checkpoint() called inside transaction(): leave the block first")
        try:
            async with self._write_lock:
                rows = await self._retry_busy(
                    lambda: writer.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
                )
        except sqlite3.Error as exc:
            raise self._translate(exc, "(database)", "checkpoint") from exc
        result = cast(Row, next(iter(rows)))
        busy, wal_pages, checkpointed = (int(value) for value in result.values())
        return {"busy": busy, "wal_pages": wal_pages, "checkpointed_pages": checkpointed}

    async def storage(self) -> dict[str, int]:
        """Bytes on disk (the file and its WAL) and how the file's pages are used."""
        sizes = {}
        for pragma in ("page_size", "page_count", "freelist_count"):
            rows = await self.fetch_all(f"PRAGMA {pragma}", (), table="(database)")
            sizes[pragma] = int(rows[0][pragma])
        sizes["file_bytes"] = _size_of(self.path)
        sizes["wal_bytes"] = _size_of(Path(f"{self.path}-wal"))
        return sizes

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        writer = self._require_writer()
        current = self._owned_transaction()
        if current is not None:
            async with self._savepoint(writer, current):
                yield
            return
        async with self._write_lock:
            try:
                await self._retry_busy(lambda: writer.execute("BEGIN IMMEDIATE"))
            except sqlite3.Error as exc:
                raise self._translate(exc, "(transaction)", "begin") from exc
            token = _current_transaction.set(_Transaction(self, asyncio.current_task()))
            try:
                yield
                try:
                    await writer.execute("COMMIT")
                except sqlite3.Error as exc:
                    raise self._translate(exc, "(transaction)", "commit") from exc
            except BaseException:
                await self._rollback(writer, "ROLLBACK")
                raise
            finally:
                _current_transaction.reset(token)

    @asynccontextmanager
    async def _savepoint(
        self, writer: aiosqlite.Connection, transaction: _Transaction
    ) -> AsyncIterator[None]:
        transaction.savepoints += 1
        name = f"adw_savepoint_{transaction.savepoints}"
        await writer.execute(f"SAVEPOINT {name}")
        try:
            yield
            await writer.execute(f"RELEASE {name}")
        except BaseException:
            await self._rollback(writer, f"ROLLBACK TO {name}")
            await self._rollback(writer, f"RELEASE {name}")
            raise
        finally:
            transaction.savepoints -= 1

    async def _rollback(self, writer: aiosqlite.Connection, statement: str) -> None:
        """Undo, even if the caller is being cancelled; SQLite may already have
        rolled back by itself (disk full, for example), which is fine."""
        if not writer.in_transaction:
            return
        try:
            await asyncio.shield(writer.execute(statement))
        except (sqlite3.Error, ValueError):
            logger.exception("%s: %s failed", self.path, statement)

    async def _retry_busy(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """SQLite already waited ``busy_timeout`` inside each attempt; retry a
        few times with jitter so that contending processes spread out."""
        for tries in range(1, BUSY_RETRIES + 1):
            try:
                return await attempt()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or tries == BUSY_RETRIES:
                    raise
                delay = random.uniform(0.005, 0.05) * tries
                logger.debug("%s: busy (try %s), retrying in %.3fs", self.path, tries, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- errors ----------------------------------------------------------------

    def _translate(self, exc: sqlite3.Error, table: str, action: str) -> DatabaseError:
        code = _primary_code(exc)
        error: DatabaseError
        if isinstance(exc, sqlite3.IntegrityError):
            kind = _CONSTRAINT_KINDS.get(getattr(exc, "sqlite_errorcode", 0), "constraint")
            error = IntegrityError(f"{table}: {exc}", table=table, constraint=kind)
        elif code in (_BUSY, _LOCKED):
            error = DatabaseError(
                f"{table}: database is locked: another connection held {self.path} for longer "
                f"than busy_timeout ({self.busy_timeout:g}s) on {BUSY_RETRIES} tries",
                table=table,
            )
        elif code == _READONLY:
            error = DatabaseError(f"{table}: {self.path} is read-only: {exc}", table=table)
        elif code == _FULL:
            error = DatabaseError(f"{table}: the disk or database is full: {exc}", table=table)
        elif code == _NOTADB:
            error = DatabaseError(f"{self.path} is not a SQLite database: {exc}", table=table)
        else:
            error = DatabaseError(f"{table}: {action} failed: {exc}", table=table)
        logger.error("%s", error)
        return error
