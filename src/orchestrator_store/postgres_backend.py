"""The PostgreSQL backend: an asyncpg pool behind the SQLite backend's interface.

How the store's contract maps onto PostgreSQL
* A write outside ``transaction()`` is one statement on a pool connection, in
  autocommit: it commits before it returns. Between statements the backend
  keeps its connections (``_Connections``): one round trip per statement, as
  on a bare connection, and no handing back and forth through the pool.
* ``transaction()`` takes one pool connection for the block and records the
  task that opened it (a ``ContextVar`` copied into child tasks is not enough
  to join). Nested blocks are savepoints. Inside a block every statement runs
  in its own savepoint, so a refused statement leaves the block usable, as on
  SQLite (PostgreSQL would otherwise abort the whole transaction).
* Other tasks use other pool connections: MVCC never makes their reads wait for
  an open transaction. ``add_agent_cost`` is one ``UPDATE ... SET x = x + $1``,
  atomic under the row lock.
* Values come back exactly as SQLite's do, through codecs set in the pool's
  ``init`` on every connection: UUIDs as canonical text, TIMESTAMPTZ as the
  store's fixed format (``2026-01-31T12:00:00.000000+00:00``), JSONB as JSON
  text (the manager encodes and decodes JSON, the same way for both backends),
  NUMERIC (which only ``sum()`` over integer columns produces) as ``int``.
* Driver exceptions are translated once, by ``_translate``; a lost connection
  (server restart, ``pg_terminate_backend``) is a ``ConnectionLostError`` on
  the call it broke; the pool discards that connection and opens a new one for
  the next call. A statement past ``command_timeout`` (or the server's
  ``statement_timeout``) is a ``StatementTimeoutError``, and no pooled
  connection free within ``acquire_timeout`` a ``BusyError``: the connection
  is fine in both cases, and the next call works.
* The URL may carry the pool's settings (``?statement_cache_size=0``, see
  ``location``); they are taken off before the driver sees the URL.
  A database the URL names that does not exist is created (``CREATE DATABASE``
  from the ``postgres`` maintenance database) when the role may; otherwise the
  error says which ``createdb`` command to run.
* Connections are named ``adw_orchestrator_store`` in ``pg_stat_activity``
  unless the URL names them (``?application_name=...``, as libpq allows).
* The schema version is the one row of ``adw_schema_version``. ``open()``
  migrates under ``pg_advisory_xact_lock``, so many processes connecting at
  once migrate exactly once, and refuses a newer database without writing to it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import asyncpg

from .backend import Row, WriteResult
from .dialect import POSTGRES, Dialect
from .errors import (
    NOT_CONNECTED,
    QUERY_IS_READ_ONLY,
    BusyError,
    ConnectionLostError,
    DatabaseError,
    IntegrityError,
    NotConnectedError,
    ReadOnlyError,
    SchemaError,
    StatementTimeoutError,
)
from .location import PoolSettings, pool_from_url, redact_text, redact_url
from .models import format_timestamp
from .ownership import TaskTransactions, Transaction
from .schema import LATEST_VERSION, TABLES, postgres_scripts_to_upgrade
from .shield import run_to_completion

__all__ = ["PostgresBackend"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Any 64-bit number works as long as every process uses the same one.
MIGRATION_LOCK = 0x6164775F73746F72  # "adw_stor"
VERSION_TABLE = "adw_schema_version"
APPLICATION_NAME = "adw_orchestrator_store"  # unless the URL sets application_name

# The driver's exceptions that the store translates (a timeout is an OSError).
DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)

# The one table that maps refused writes to IntegrityError.constraint (as on SQLite).
CONSTRAINT_KINDS: tuple[tuple[type[Exception], str], ...] = (
    (asyncpg.UniqueViolationError, "unique"),
    (asyncpg.ForeignKeyViolationError, "foreign_key"),
    (asyncpg.CheckViolationError, "check"),
    (asyncpg.NotNullViolationError, "not_null"),
    (asyncpg.IntegrityConstraintViolationError, "constraint"),
)
# The server's detail of a refused unique or primary key, naming its column
# (``IntegrityError.field``): ``Key (name)=(planner) already exists.``; a key
# of several columns (``Key (a, b)=...``) names no one field.
UNIQUE_KEY = re.compile(r"Key \((\w+)\)=")
# Faults that mean the connection or the server went away.
CONNECTION_LOST: tuple[type[Exception], ...] = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    OSError,
)
# The server rolled the transaction back so that a concurrent one could go on:
# running it again is the remedy (two transactions that write two agents of one
# session in opposite orders deadlock on the session's totals row).
ROLLED_BACK_FOR_ANOTHER = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
# A named prepared statement of the driver's cache that the server connection
# does not have (or has another of): the server side changed between two
# statements, as behind PgBouncer in transaction mode.
PREPARED_STATEMENT_LOST = (
    asyncpg.InvalidSQLStatementNameError,
    asyncpg.DuplicatePreparedStatementError,
)
# How the server (or PgBouncer, which forwards it as a protocol error) refuses
# a connection to a database that does not exist.
MISSING_DATABASE = re.compile(r'database "(.+)" does not exist')
# Where CREATE DATABASE is sent from, in createdb's order.
MAINTENANCE_DATABASES = ("postgres", "template1")


class _PoolExhausted(TimeoutError):
    """No pooled connection came free within ``acquire_timeout`` (a
    ``TimeoutError`` like the driver's, told apart from a statement's)."""


class _Transaction(Transaction):
    __slots__ = ("connection",)

    def __init__(self, connection: Any) -> None:  # an asyncpg.Connection
        super().__init__()
        self.connection = connection


_transactions: TaskTransactions[_Transaction] = TaskTransactions("adw_postgres_transaction")


# --- codecs: the store's value formats --------------------------------------------


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _timestamp_out(text: str) -> str:
    return format_timestamp(datetime.fromisoformat(text))


def _json_in(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("JSON columns take JSON text (the manager encodes values)")
    return value


def _sum_out(text: str) -> int | float:
    number = Decimal(text)
    return int(number) if number == number.to_integral_value() else float(number)


async def _set_codecs(connection: Any) -> None:
    """The pool's ``init``: run once on every new connection."""
    for type_name, encoder, decoder in (
        ("uuid", _text, str),
        ("timestamptz", _text, _timestamp_out),
        ("jsonb", _json_in, str),
        ("numeric", _text, _sum_out),
    ):
        await connection.set_type_codec(
            type_name, encoder=encoder, decoder=decoder, schema="pg_catalog", format="text"
        )


def _server_settings(url: str) -> dict[str, str]:
    """Name the connections, unless the URL's own ``application_name`` does
    (the driver passes the URL's query parameters to the server)."""
    if "application_name" in parse_qs(urlsplit(url).query):
        return {}
    return {"application_name": APPLICATION_NAME}


async def _nothing_to_reset(connection: Any) -> None:
    """The pool's ``reset``, run when a connection goes back to the pool (after
    the pool rolled back a transaction left open). The driver's default sends
    one more query (``RESET ALL``, ``UNLISTEN *``, ``CLOSE ALL``, advisory
    unlocks); the store changes none of that state, and nobody else gets its
    connections, so there is nothing to reset."""
    del connection


def _read_only_refusal(exc: BaseException, table: str) -> ReadOnlyError | None:
    """The store's error for what the server refused in ``query()``'s
    read-only transaction, or ``None`` for another fault."""
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return ReadOnlyError(
            f"{table}: query() is read-only: the server refused the statement "
            f"({exc}); nothing was written. {QUERY_IS_READ_ONLY}",
            table=table,
        )
    if isinstance(exc, asyncpg.PostgresSyntaxError) and "multiple commands" in str(exc):
        return ReadOnlyError(
            f"{table}: query() takes one statement at a time and got several; nothing ran: "
            "pass each statement in its own call",
            table=table,
        )
    return None


def _rowcount(status: str) -> int:
    """``UPDATE 3``, ``DELETE 0``, ``INSERT 0 1`` -> the number of rows."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def _alive(connection: Any) -> bool:
    """Open, and still lent out by the pool: a connection the server dropped
    goes back to the pool by itself (its methods then raise InterfaceError)."""
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:
        return False


class _Connections:
    """Lends the pool's connections out, one statement or one ``transaction()``
    block at a time, and keeps them between two.

    asyncpg's pool opens, initialises and bounds the connections. Giving a
    connection back to it after every statement costs a task, timers and a few
    event-loop turns, as much client time as a one-row statement itself; so a
    connection whose statement or block ended cleanly waits here instead (last
    in, first out) for the next one. It goes back to the pool when a task is
    waiting there (the pool hands it on), when the work failed or was
    cancelled (the pool rolls back, or replaces what was lost), and when the
    backend closes. One idle here for ``max_inactive_connection_lifetime`` is
    closed, as the pool does, as long as more than ``min_size`` are open.
    """

    def __init__(self, pool: Any, settings: PoolSettings) -> None:
        self._pool = pool
        self._settings = settings
        self._idle: list[tuple[Any, float]] = []  # (connection, idle since), oldest first
        self._waiting = 0  # tasks waiting for the pool
        self._closed = False
        self._expiry: asyncio.TimerHandle | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    async def take(self) -> Any:
        while self._idle:
            connection, _since = self._idle.pop()
            if _alive(connection):
                return connection
            await self._pool.release(connection)
        self._waiting += 1
        try:
            return await self._pool.acquire(timeout=self._settings.acquire_timeout)
        except TimeoutError as exc:
            raise _PoolExhausted(str(exc)) from exc
        finally:
            self._waiting -= 1

    async def put_back(self, connection: Any, *, clean: bool) -> None:
        """``clean``: the statement or block ended without an error."""
        reusable = clean and _alive(connection) and not connection.is_in_transaction()
        if reusable and not self._waiting and not self._closed:
            loop = asyncio.get_running_loop()
            self._idle.append((connection, loop.time()))
            if self._expiry is None and self._settings.max_inactive_connection_lifetime:
                self._expiry = loop.call_later(
                    self._settings.max_inactive_connection_lifetime, self._expire
                )
            return
        await asyncio.shield(self._pool.release(connection))

    def _expire(self) -> None:
        loop = asyncio.get_running_loop()
        lifetime = self._settings.max_inactive_connection_lifetime
        excess = self._pool.get_size() - self._pool.get_min_size() - len(self._retiring)
        while self._idle and excess > 0 and loop.time() - self._idle[0][1] >= lifetime:
            connection, _since = self._idle.pop(0)
            closing = connection.close(timeout=self._settings.connect_timeout or None)
            task = loop.create_task(closing)
            self._retiring.add(task)
            task.add_done_callback(self._retired)
            excess -= 1
        self._expiry = None
        if self._idle and not self._closed:
            delay = max(self._idle[0][1] + lifetime - loop.time(), lifetime / 10)
            self._expiry = loop.call_later(delay, self._expire)

    def _retired(self, task: asyncio.Task[None]) -> None:
        self._retiring.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("closing an idle connection failed: %s", task.exception())

    async def close(self) -> None:
        """Give every idle connection back to the pool, before it closes."""
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
        idle, self._idle = self._idle, []
        for connection, _since in idle:
            await self._pool.release(connection)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)


class PostgresBackend:
    dialect: Dialect = POSTGRES

    def __init__(self, url: str, *, schema_path: Path, pool: PoolSettings) -> None:
        """``pool``'s fields give way to the same parameters in ``url``; ``url``
        keeps the others (the driver's and the server's)."""
        self.given_url = url  # what error messages are redacted against
        self.url, self.settings = pool_from_url(url, pool)
        self.schema_path = schema_path
        self.location = redact_url(url)
        self._pool: Any = None  # asyncpg.Pool once open
        self._connections: _Connections | None = None

    # --- lifecycle -------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    async def _create_pool(self) -> Any:
        settings = self.settings
        return await asyncpg.create_pool(
            self.url,
            min_size=settings.min_size,
            max_size=settings.max_size,
            timeout=settings.connect_timeout,
            command_timeout=settings.command_timeout,
            max_inactive_connection_lifetime=settings.max_inactive_connection_lifetime,
            statement_cache_size=settings.statement_cache_size,
            init=_set_codecs,
            reset=_nothing_to_reset,
            server_settings=_server_settings(self.url),
        )

    async def open(self) -> None:
        """Start the pool (creating the database first if it does not exist)
        and bring the schema up to date; on failure, close everything opened."""
        settings = self.settings
        try:
            try:
                pool = await self._create_pool()
            except asyncpg.PostgresError as exc:
                missing = MISSING_DATABASE.fullmatch(getattr(exc, "message", ""))
                if missing is None:
                    raise
                await self._create_database(missing.group(1))
                pool = await self._create_pool()
        except (*DRIVER_ERRORS, ValueError) as exc:  # ValueError: the driver parsing the URL
            detail = (
                f"no connection within connect_timeout={settings.connect_timeout:g}s"
                if isinstance(exc, TimeoutError)
                else str(exc)
            )
            message = f"cannot connect to {self.location}: {detail}"
            raise DatabaseError(redact_text(message, self.given_url)) from exc
        try:
            async with pool.acquire(timeout=settings.acquire_timeout) as connection:
                await self._migrate(connection)
                await self._fold_shards(connection)
        except BaseException as exc:
            pool.terminate()
            if isinstance(exc, DRIVER_ERRORS):
                raise self._translate(exc, "(database)", "open") from exc
            raise
        self._pool = pool
        self._connections = _Connections(pool, settings)
        logger.debug("opened %s (schema version %s)", self.location, LATEST_VERSION)

    async def _create_database(self, name: str) -> None:
        """Zero setup: ``CREATE DATABASE`` when the role may, else an error
        naming the command to run. Another process creating it at the same
        time is success."""
        command = self._createdb_command(name)
        connection: Any = None
        failure: BaseException | None = None
        for maintenance in MAINTENANCE_DATABASES:
            try:
                connection = await asyncpg.connect(
                    self.url,
                    database=maintenance,
                    timeout=self.settings.connect_timeout,
                    statement_cache_size=0,
                    server_settings=_server_settings(self.url),
                )
                break
            except DRIVER_ERRORS as exc:
                failure = exc
        if connection is None:
            message = (
                f"{self.location}: database {name!r} does not exist, and connecting to the "
                f"postgres maintenance database to create it failed ({failure}): "
                f"create it with `{command}`"
            )
            raise DatabaseError(redact_text(message, self.given_url)) from failure
        try:
            # An identifier, quoted; CREATE DATABASE takes no parameters. From
            # template0: copying template1 fails while any session is connected to it.
            quoted = '"{}"'.format(name.replace('"', '""'))
            await connection.execute(f"CREATE DATABASE {quoted} TEMPLATE template0")
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            # Another process won the race (the unique index or the name check).
            logger.debug("%s: database %s was created by another process", self.location, name)
        except asyncpg.InsufficientPrivilegeError as exc:
            user = await connection.fetchval("SELECT current_user")
            raise DatabaseError(
                f"{self.location}: database {name!r} does not exist and role {user!r} may "
                f"not create databases: create it with `{command}` (-U naming a role that "
                f"may), or let this one (ALTER ROLE {user} CREATEDB)"
            ) from exc
        except asyncpg.PostgresError as exc:
            message = (
                f"{self.location}: database {name!r} does not exist and creating it failed "
                f"({exc}): create it with `{command}`"
            )
            raise DatabaseError(redact_text(message, self.given_url)) from exc
        else:
            logger.info("%s: created database %s", self.location, name)
        finally:
            await connection.close()

    def _createdb_command(self, name: str) -> str:
        """``createdb`` with what the URL says of host, port and user."""
        parts = urlsplit(self.url)
        words = ["createdb"]
        try:
            host, port, user = parts.hostname, parts.port, parts.username
        except ValueError:  # several hosts: no single -h/-p to give
            host = port = user = None
        for flag, value in (("-h", host), ("-p", port), ("-U", user)):
            if value is not None:
                words += [flag, str(value)]
        return shlex.join([*words, name])

    async def close(self) -> None:
        """Close the pool; a caller cancelled meanwhile waits until it is
        closed, so that no connection is left half open."""
        if self._owned_transaction() is not None:
            raise DatabaseError("close() called inside transaction(): leave the block first")
        _transactions.refuse_inherited(self, "close()")
        await run_to_completion(self._close())

    async def _close(self) -> None:
        pool, self._pool = self._pool, None
        connections, self._connections = self._connections, None
        if pool is None:
            return
        try:
            if connections is not None:
                await connections.close()
            await asyncio.wait_for(pool.close(), timeout=self.settings.acquire_timeout)
        except (TimeoutError, *DRIVER_ERRORS):
            logger.exception("%s: the pool did not close cleanly; terminating it", self.location)
            pool.terminate()
        logger.debug("closed %s", self.location)

    async def _read_version(self, connection: Any) -> int:
        # pg_tables, read with the statement's snapshot, sees a table another
        # process committed while this one waited for the migration lock;
        # to_regclass() may answer from a catalog cache that has not caught up.
        exists = await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_tables"
            " WHERE schemaname = current_schema() AND tablename = $1)",
            VERSION_TABLE,
        )
        if not exists:
            return 0
        version = await connection.fetchval(f"SELECT version FROM {VERSION_TABLE}")
        return int(version or 0)

    async def _migrate(self, connection: Any) -> None:
        """Refuse a newer database untouched; upgrade an older one under an
        advisory lock (the first process migrates, the others find it done)."""
        version = await self._read_version(connection)
        if version == LATEST_VERSION:
            return
        if version < LATEST_VERSION:
            async with connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                version = await self._read_version(connection)  # another process may have won
                if version < LATEST_VERSION:
                    await self._upgrade(connection, version)
                    return
        if version > LATEST_VERSION:
            raise SchemaError(
                f"{self.location} was written by schema version {version}, newer than this "
                f"store's version {LATEST_VERSION}: upgrade the store to open it "
                "(the database was left untouched)"
            )

    async def _fold_shards(self, connection: Any) -> None:
        """Fold the sums other server processes kept (see ``adw_fold_shards``
        in the totals file), so that they stay few however many processes come
        and go. It never waits for a writer; housekeeping, so a failure is
        logged and the store opens all the same."""
        try:
            folded = await connection.fetchval("SELECT adw_fold_shards()")
        except asyncpg.PostgresError as exc:
            if isinstance(exc, CONNECTION_LOST):
                raise
            logger.warning("%s: folding the totals' shards failed: %s", self.location, exc)
            return
        logger.debug("%s: folded %s rows of the totals' shards", self.location, folded)

    async def _run_script(self, connection: Any, script: str) -> None:
        try:
            await connection.execute(script)
        except asyncpg.PostgresError as exc:
            if isinstance(exc, CONNECTION_LOST):
                raise
            raise SchemaError(f"invalid schema file {self.schema_path}: {exc}") from exc

    async def _upgrade(self, connection: Any, version: int) -> None:
        first, *rest = postgres_scripts_to_upgrade(version, self.schema_path)
        await self._run_script(connection, first)
        present = {
            row["tablename"]
            for row in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        }
        missing = sorted(set(TABLES) - present)
        if missing:
            raise SchemaError(
                f"invalid schema file {self.schema_path}: it does not create {', '.join(missing)}"
            )
        for script in rest:
            await self._run_script(connection, script)
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} ("
            " one_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one_row),"
            " version INTEGER NOT NULL)"
        )
        await connection.execute(
            f"INSERT INTO {VERSION_TABLE} (version) VALUES ($1)"
            " ON CONFLICT (one_row) DO UPDATE SET version = EXCLUDED.version",
            LATEST_VERSION,
        )
        logger.info("%s: schema upgraded from %s to %s", self.location, version, LATEST_VERSION)

    # --- statements ------------------------------------------------------------

    def _require_open(self) -> _Connections:
        if self._connections is None:
            raise NotConnectedError(NOT_CONNECTED)
        return self._connections

    def _owned_transaction(self) -> _Transaction | None:
        return _transactions.owned(self)

    async def _run(self, work: Callable[[Any], Awaitable[T]], *, writes: str = "") -> T:
        """``work`` on a connection: the owning transaction's, in a savepoint
        of its own, else one lent for this statement alone. (A ``try`` rather
        than a context manager: it is every statement's path, and cheaper.)
        ``writes`` names the table of a write, which a task started inside
        another task's open transaction may not make."""
        connections = self._require_open()
        owned = self._owned_transaction()
        if owned is not None:
            return await self._in_savepoint(owned.connection, work)
        if writes:
            _transactions.refuse_inherited(self, "a write", writes)
        connection = await connections.take()
        clean = False
        try:
            result = await work(connection)
            clean = True
            return result
        finally:
            await connections.put_back(connection, clean=clean)

    async def _in_savepoint(self, connection: Any, work: Callable[[Any], Awaitable[T]]) -> T:
        try:
            async with connection.transaction():
                return await work(connection)
        except (asyncpg.InternalClientError, asyncpg.InterfaceError) as exc:
            # What the driver raises when the server dropped the connection
            # between two statements of a transaction (InterfaceError: the pool
            # took the closed connection back, as when PgBouncer closes the
            # client after losing its server): report it as lost.
            if not _alive(connection):
                raise asyncpg.ConnectionDoesNotExistError("the connection was closed") from exc
            raise

    async def execute(self, sql: str, params: Sequence[Any], *, table: str) -> WriteResult:
        """Run one write statement; it commits at once unless this task is
        inside ``transaction()``. An INSERT ending in the dialect's
        ``RETURNING id`` reports the new id as ``lastrowid``."""
        try:
            if self.dialect.returning_id and sql.endswith(self.dialect.returning_id):
                new_id = await self._run(
                    lambda connection: connection.fetchval(sql, *params), writes=table
                )
                return WriteResult(1, int(new_id))
            status = await self._run(
                lambda connection: connection.execute(sql, *params), writes=table
            )
            return WriteResult(_rowcount(status), None)
        except DRIVER_ERRORS as exc:
            raise self._translate(exc, table, "write") from exc

    async def fetch_all(self, sql: str, params: Sequence[Any], *, table: str) -> list[Row]:
        try:
            records = await self._run(lambda connection: connection.fetch(sql, *params))
        except DRIVER_ERRORS as exc:
            raise self._translate(exc, table, "read") from exc
        return [dict(record) for record in records]

    async def fetch_read_only(self, sql: str, params: Sequence[Any], *, table: str) -> list[Row]:
        """One statement that only reads (``query()``), in a READ ONLY
        transaction (inside this task's ``transaction()``, a savepoint made
        read-only) that is rolled back once the rows are read: nothing the
        statement did stays, not even a ``SET``. The server refuses writes and
        several statements; a statement that returns no rows (transaction
        control, ``SET``, ``LISTEN``, a write) is refused once prepared,
        before it runs."""
        try:
            records = await self._run(
                lambda connection: self._read_only(connection, sql, params, table)
            )
        except DRIVER_ERRORS as exc:
            refused = _read_only_refusal(exc, table)
            if refused is not None:
                raise refused from exc
            raise self._translate(exc, table, "query") from exc
        return [dict(record) for record in records]

    async def _read_only(
        self, connection: Any, sql: str, params: Sequence[Any], table: str
    ) -> list[Any]:
        nested = connection.is_in_transaction()  # this task's transaction(): a savepoint
        block = connection.transaction(readonly=not nested)
        await block.start()
        try:
            if nested:
                await connection.execute("SET TRANSACTION READ ONLY")
            statement = await connection.prepare(sql)
            if not statement.get_attributes():
                raise ReadOnlyError(
                    f"{table}: query() is read-only and runs statements that return rows "
                    "(SELECT, WITH, VALUES, SHOW, EXPLAIN); this one returns none (a write, "
                    "DDL, transaction control or a setting): nothing ran. "
                    f"{QUERY_IS_READ_ONLY}",
                    table=table,
                )
            return list(await statement.fetch(*params))
        finally:
            try:
                await self._rollback(block)
            finally:  # even when the rollback was cancelled
                await self._unlock_all(connection)

    async def _unlock_all(self, connection: Any) -> None:
        """Release the session-level advisory locks ``query()``'s statement
        may have taken, whether it returned, failed or was cancelled: they
        outlive the rollback and would stay with a pooled connection (the
        store's own locks are transaction-level). Runs to the end even if the
        caller is cancelled meanwhile. Should it fail, the connection is
        closed, which releases them too (the pool opens another); the error
        on its way, if any, is the one the caller gets."""
        try:
            await run_to_completion(connection.execute("SELECT pg_advisory_unlock_all()"))
        except DRIVER_ERRORS:
            logger.warning(
                "%s: releasing query()'s advisory locks failed; closing the connection",
                self.location,
                exc_info=True,
            )
            connection.terminate()

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]], *, table: str) -> None:
        """Run ``sql`` once per row, all or nothing (the driver's ``executemany``
        is atomic), pipelined in one round trip; joins this task's transaction,
        if any."""
        try:
            await self._run(lambda connection: connection.executemany(sql, rows), writes=table)
        except DRIVER_ERRORS as exc:
            raise self._translate(exc, table, "bulk write") from exc

    async def insert_many(
        self, sql: str, rows: Sequence[Sequence[Any]], *, table: str
    ) -> list[int]:
        """Insert every row or none; ``sql`` ends in ``RETURNING id``: the new
        ids, in input order. One pipelined ``fetchmany`` (the driver's
        ``executemany`` that keeps each row's result) sends every row at once
        and ends in one sync: outside ``transaction()`` that makes the batch
        one implicit transaction, committed in one round trip; inside, it runs
        in a savepoint of the block, like any statement. The identity hands
        out the ids row after row, as single inserts would."""
        try:
            records = await self._run(
                lambda connection: connection.fetchmany(sql, rows), writes=table
            )
        except DRIVER_ERRORS as exc:
            raise self._translate(exc, table, "write") from exc
        return [int(record[0]) for record in records]

    async def schema_version(self) -> int:
        rows = await self.fetch_all(f"SELECT version FROM {VERSION_TABLE}", (), table="(database)")
        return int(rows[0]["version"])

    async def checkpoint(self) -> dict[str, int]:
        """Nothing to do: the server manages its own write-ahead log, and space
        freed by deletes is reused by later writes (autovacuum). Returns the
        SQLite backend's keys, all zero, so reports read the same."""
        self._require_open()
        if self._owned_transaction() is not None:
            raise DatabaseError("checkpoint() called inside transaction(): leave the block first")
        _transactions.refuse_inherited(self, "checkpoint()")  # the same rule as SQLite's
        return {"busy": 0, "wal_pages": 0, "checkpointed_pages": 0}

    async def storage(self) -> dict[str, int]:
        """The store's tables on disk (with their indexes and TOAST) as
        ``file_bytes``; ``wal_bytes`` and ``freelist_count`` are 0 (the server's
        WAL is shared by every database; free space is the server's business)."""
        sizes = " + ".join(f"pg_total_relation_size('{table}')" for table in TABLES)
        rows = await self.fetch_all(
            f"SELECT ({sizes})::bigint AS file_bytes,"
            " current_setting('block_size')::int AS page_size",
            (),
            table="(database)",
        )
        file_bytes, page_size = int(rows[0]["file_bytes"]), int(rows[0]["page_size"])
        return {
            "page_size": page_size,
            "page_count": file_bytes // page_size,
            "freelist_count": 0,
            "file_bytes": file_bytes,
            "wal_bytes": 0,
        }

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        connections = self._require_open()
        current = self._owned_transaction()
        if current is not None:
            try:
                async with current.connection.transaction():  # a savepoint
                    yield current
            except DRIVER_ERRORS as exc:
                raise self._translate(exc, "(transaction)", "savepoint") from exc
            return
        _transactions.refuse_inherited(self, "transaction()")
        try:
            connection = await connections.take()
        except DRIVER_ERRORS as exc:
            raise self._translate(exc, "(transaction)", "begin") from exc
        clean = False
        try:
            block = connection.transaction()
            try:
                await block.start()
            except DRIVER_ERRORS as exc:
                raise self._translate(exc, "(transaction)", "begin") from exc
            transaction = _Transaction(connection)
            token = _transactions.enter(self, transaction)
            try:
                try:
                    yield transaction
                except BaseException:
                    transaction.state = "rolled_back"
                    await self._rollback(block)
                    raise
                await self._commit(block, transaction)
            finally:
                _transactions.leave(token)
            clean = True
        finally:
            await connections.put_back(connection, clean=clean)

    async def _commit(self, block: Any, transaction: _Transaction) -> None:
        """COMMIT, to the server's answer even if the caller is cancelled
        meanwhile: cut short, the client could not tell whether the server
        committed. ``transaction.state`` records the answer."""

        async def commit() -> None:
            try:
                await block.commit()
            except CONNECTION_LOST:
                transaction.state = "unknown"  # the server may have committed before it went
                raise
            except BaseException:
                transaction.state = "rolled_back"
                raise
            transaction.state = "committed"

        try:
            await run_to_completion(commit())
        except DRIVER_ERRORS as exc:
            raise self._translate(exc, "(transaction)", "commit") from exc

    async def _rollback(self, block: Any) -> None:
        """Undo, to the end even if the caller is cancelled meanwhile (the
        connection then goes back to the pool with nothing in flight). A lost
        connection has nothing left to undo: the server rolled back when it
        went away. Any other failure is logged: the error on its way is the
        one that made the block roll back."""
        try:
            await run_to_completion(block.rollback())
        except CONNECTION_LOST:
            logger.debug("%s: ROLLBACK on a lost connection", self.location)
        except DRIVER_ERRORS:
            logger.warning("%s: ROLLBACK failed", self.location, exc_info=True)

    # --- errors ----------------------------------------------------------------

    def _translate(self, exc: BaseException, table: str, action: str) -> DatabaseError:
        error: DatabaseError
        kind = next((kind for cls, kind in CONSTRAINT_KINDS if isinstance(exc, cls)), None)
        if kind is not None:
            if kind == "unique" and str(getattr(exc, "constraint_name", "")).endswith("_pkey"):
                kind = "primary_key"
            detail = getattr(exc, "detail", None)
            message = f"{table}: {getattr(exc, 'message', exc)}" + (
                f" ({detail})" if detail else ""
            )
            field = getattr(exc, "column_name", None)  # the server names it for NOT NULL
            if kind in ("unique", "primary_key") and (key := UNIQUE_KEY.match(detail or "")):
                field = key.group(1)
            error = IntegrityError(message, table=table, field=field, constraint=kind)
        elif isinstance(exc, _PoolExhausted):
            settings = self.settings
            error = BusyError(
                f"{table}: {action} failed: no connection of the pool came free within "
                f"acquire_timeout={settings.acquire_timeout:g}s (pool size max_size="
                f"{settings.max_size}, all in use): retry, hold transaction() blocks for "
                "less time, or raise max_size or acquire_timeout",
                table=table,
            )
        elif isinstance(exc, TimeoutError | asyncpg.QueryCanceledError):
            # Before CONNECTION_LOST: a TimeoutError is an OSError. The driver
            # cancels the statement on the server; the connection stays usable.
            limit = f"command_timeout={self.settings.command_timeout:g}s"
            cause = (
                f"the server cancelled it ({exc}; the store's limit is {limit})"
                if isinstance(exc, asyncpg.QueryCanceledError)
                else f"it ran longer than {limit} and was cancelled"
            )
            error = StatementTimeoutError(
                f"{table}: {action} failed: {cause}; raise command_timeout if such "
                "statements are expected to take that long",
                table=table,
            )
        elif isinstance(exc, ROLLED_BACK_FOR_ANOTHER):
            error = BusyError(
                f"{table}: {action} failed: {getattr(exc, 'message', exc)}: the server rolled "
                "this transaction back so that a concurrent one could go on, and nothing of "
                "it was written; run it again",
                table=table,
            )
        elif isinstance(exc, PREPARED_STATEMENT_LOST):
            error = DatabaseError(
                f"{table}: {action} failed: {getattr(exc, 'message', exc)}: the driver's "
                "cached prepared statements belong to one server connection and this is "
                "another, as behind PgBouncer in transaction mode; turn the cache off with "
                "statement_cache_size=0 in the URL (postgresql://...?statement_cache_size=0) "
                "or in PoolSettings",
                table=table,
            )
        elif isinstance(exc, CONNECTION_LOST):
            error = ConnectionLostError(
                f"{table}: {action} failed: the connection to {self.location} was lost "
                f"({exc}); the next call uses a new connection",
                table=table,
            )
        else:
            error = DatabaseError(f"{table}: {action} failed: {exc}", table=table)
        error.args = (redact_text(str(error), self.given_url),)  # driver text may quote the DSN
        return error
