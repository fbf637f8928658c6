"""The SQLite backend: one writer thread, a few reader connections, WAL.

How concurrency works
* Writes run on one stdlib ``sqlite3`` connection owned by its own thread
  (``sqlite_writer``), and writes from many tasks never interleave inside
  one transaction. At ``synchronous`` OFF or NORMAL, a write that finds the
  store idle runs on the event loop's thread instead (``inline_writes``):
  without waiting for any lock or syncing, and for at most
  ``INLINE_MAX_STEPS``, else it goes to the thread as usual; a lone write
  then pays no thread hop.
* A write outside ``transaction()`` joins whatever other writes are queued at
  that moment: they share one ``BEGIN IMMEDIATE`` ... ``COMMIT`` (group
  commit), each caller is answered after that commit, and a write that fails
  never undoes the others.
* ``transaction()`` is serialised by an ``asyncio.Lock`` and starts with
  ``BEGIN IMMEDIATE``, so it owns the database's write lock from the first
  statement on and can never deadlock on a lock upgrade. The task that opened
  it is recorded; only that task's writes join it. Other tasks' writes wait in
  the writer thread until it ends; tasks started inside the block are refused
  while it is open (``ownership``), since the block may be waiting for
  them. Nested blocks become savepoints.
* Cancellation never leaves the write connection inside a transaction: BEGIN
  waits for another connection's lock on the event loop, one try at a time
  (a cancelled wait holds nothing), and every statement queued on the writer
  runs before its caller's ``CancelledError`` propagates, so the block knows
  whether to roll back. A COMMIT that has started finishes; the block's
  ``Transaction`` says whether it committed.
* Reads use their own aiosqlite connections (WAL lets them run beside a
  writer), so they never wait for another task's open transaction. Reads by
  the task that owns the open transaction use the writer, and so see that
  transaction's writes.
* "database is locked" after the busy timeout is retried a bounded number of
  times with jitter; any failed write is rolled back before the lock is
  released, so no failure leaves the database write-locked.
* WAL housekeeping: ``journal_size_limit`` caps the WAL file left after a
  checkpoint, and ``close()`` checkpoints and truncates the WAL when no other
  connection is using the file. Past ``JOURNAL_SIZE_LIMIT`` the writer tries
  to restart the WAL without waiting: a reader holding an old snapshot makes
  the try fail at once (the WAL keeps growing until it lets go), never makes
  writes wait. Where every commit syncs (FULL, EXTRA), the writer also
  checkpoints the last frames itself every ``CATCH_UP_FRAMES``, so that the
  WAL is rewritten in place instead of growing (see ``_after_commit``).
* Every thread of the store is a daemon: a program that never reaches
  ``close()`` (it crashed) still exits. Writes are acknowledged only once
  committed, so that exit loses nothing acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiosqlite

from .checkpointer import Checkpointer
from .dialect import SQLITE, Dialect
from .errors import (
    NOT_CONNECTED,
    DatabaseError,
    NotConnectedError,
    SchemaError,
    ValidationError,
)
from .inline_writes import INLINE_SYNCHRONOUS, InlineWrites
from .location import SIDE_FILE_SUFFIXES
from .original_era import is_original_era, original_era_refusal, table_columns, user_version
from .ownership import TaskTransactions, Transaction
from .schema import LATEST_VERSION, TABLES, statements_to_upgrade
from .shield import run_to_completion
from .sqlite_errors import (
    BUSY_RETRIES,
    SQLITE_NOTADB,
    busy_error,
    busy_wait,
    is_busy,
    primary_code,
    retry_busy,
    retry_busy_async,
    translate,
)
from .sqlite_read_only import ReadOnlyGuard, fetch_read_only, refusal
from .sqlite_writer import Statement, WriteResult, WriterThread, run_statement
from .wal_index import WalIndex

__all__ = ["SQLiteBackend", "WriteResult", "foreign_tables", "is_sqlite_file"]

logger = logging.getLogger(__name__)

BUSY_LOOK_SECONDS = 5.0  # how long the look at a file's header waits for another writer
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
READ_CONNECTIONS = 2
MAX_QUEUED_WRITES = 4096  # writes waiting for the writer thread; more callers wait (backpressure)
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes of WAL kept after a checkpoint
WAL_CHECK_SECONDS = 0.02  # how stale the WAL size may be when a commit looks at it
CATCH_UP_FRAMES = 1000  # frames in the WAL before the writer checkpoints it (SQLite's default)
CHECKPOINT_INTERVAL = 0.05  # seconds between background checkpoints while commits come in
CHECKPOINT_RETRY_SECONDS = 0.02  # checkpoint() trying again while another connection checkpoints
BEGIN_FIRST_WAIT = 0.001  # seconds before BEGIN tries again for a lock another connection holds
BEGIN_LONGEST_WAIT = 0.05  # ... doubling up to this
READER_MMAP_BYTES = 256 * 1024 * 1024  # address space, not memory: pages load on use
INCREMENTAL_AUTO_VACUUM = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
INLINE_MAX_STEPS = 4_000  # SQLite VM steps a write may run on the event loop (~60-140 us)

Row = dict[str, Any]


class _Transaction(Transaction):
    __slots__ = ("savepoints",)

    def __init__(self) -> None:
        super().__init__()
        self.savepoints = 0


_transactions: TaskTransactions[_Transaction] = TaskTransactions("adw_sqlite_transaction")


def _as_dicts(rows: Sequence[sqlite3.Row]) -> list[Row]:
    """Rows come back as ``sqlite3.Row`` (built in C); the column names are
    read once per result, not once per row."""
    if not rows:
        return []
    names = rows[0].keys()
    return [dict(zip(names, row, strict=True)) for row in rows]


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _make_daemon(connection: aiosqlite.Connection) -> None:
    """aiosqlite's thread is not a daemon: a program that never closed the
    store would wait for it forever at exit. Set before the thread starts."""
    thread = getattr(connection, "_thread", connection)  # aiosqlite < 0.21: the connection
    if isinstance(thread, threading.Thread) and not thread.is_alive():
        thread.daemon = True


def _schema_columns(schema_path: Path) -> dict[str, set[str]]:
    """The tables and columns the schema file creates, read from a scratch
    database in memory (the file's own text is the one source)."""
    scratch = sqlite3.connect(":memory:")
    try:
        for statement in statements_to_upgrade(0, schema_path):
            scratch.execute(statement)
        return table_columns(scratch)
    except sqlite3.Error as exc:
        raise SchemaError(f"invalid schema file {schema_path}: {exc}") from exc
    finally:
        scratch.close()


def foreign_tables(
    found: Mapping[str, Collection[str]], expected: Mapping[str, Collection[str]]
) -> list[str]:
    """The tables of a file (``found``: their columns, by table) that the
    store's (``expected``) are not: another name, or a column the store's table
    of that name lacks. An unversioned file holding one is another
    application's database."""
    return sorted(
        name for name, columns in found.items() if not set(columns) <= set(expected.get(name, ()))
    )


def is_sqlite_file(path: Path) -> bool:
    """Whether a SQLite database is at ``path``, looked at before anything
    touches it: False when nothing is there or the file is empty (SQLite takes
    an empty file for a new database). ``DatabaseError`` for a folder, a pipe
    or device (opening one would block, and none is a database) and a file that
    does not start like a SQLite database; ``NotADirectoryError`` when a part
    of its folder is a file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        raise
    except OSError as exc:
        raise DatabaseError(f"cannot read {path}: {exc}") from exc
    if stat.S_ISDIR(mode):
        raise DatabaseError(f"{path} is a directory, not a SQLite database file")
    if not stat.S_ISREG(mode):
        raise DatabaseError(
            f"{path} is not a regular file (a pipe, socket or device?): "
            "the store needs a SQLite database file"
        )
    if path.stat().st_size == 0:
        return False
    _read_header_through_sqlite(path)
    return True


def _read_header_through_sqlite(path: Path) -> None:
    """Let SQLite read the file's header, read-only. Not with ``open()``: closing
    any descriptor of a file drops every POSIX lock this process holds on it,
    the locks of the store's other connections to it included (another store of
    the same file in this process, the dashboard beside a writer), and another
    process would then take itself for the file's last user and delete its WAL.
    SQLite shares one descriptor per file among its connections, so its own
    look is safe."""
    try:
        uri = path.resolve().as_uri() + "?mode=ro"
        connection = sqlite3.connect(uri, uri=True, timeout=BUSY_LOOK_SECONDS)
        try:
            connection.execute("PRAGMA schema_version").fetchone()
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        if primary_code(exc) == SQLITE_NOTADB:
            raise DatabaseError(
                f"{path} is not a SQLite database (the file was left untouched)"
            ) from None
        # Anything else (a read-only folder where a WAL file's -shm cannot be made,
        # a file that may not be read) the real open meets too, and reports in full.


def _fetch_all(sql: str, params: Sequence[Any]) -> Callable[[sqlite3.Connection], list[Row]]:
    return lambda connection: _as_dicts(connection.execute(sql, params).fetchall())


def _statement(sql: str) -> Callable[[sqlite3.Connection], None]:
    def run(connection: sqlite3.Connection) -> None:
        connection.execute(sql)

    return run


def _undo(statement: str) -> Callable[[sqlite3.Connection], None]:
    """Roll back unless SQLite already did (disk full, for example)."""

    def run(connection: sqlite3.Connection) -> None:
        if connection.in_transaction:
            connection.execute(statement)

    return run


def _commit(transaction: _Transaction) -> Callable[[sqlite3.Connection], None]:
    """COMMIT, recording success on ``transaction`` on the writer thread: a
    caller cancelled meanwhile reads it there once the statement has run."""

    def run(connection: sqlite3.Connection) -> None:
        connection.execute("COMMIT")
        transaction.state = "committed"

    return run


def _without_busy_wait(
    statement: str, busy_timeout_ms: int
) -> Callable[[sqlite3.Connection], list[Row]]:
    """``statement`` with SQLite's busy handler off: busy answers at once."""

    def run(connection: sqlite3.Connection) -> list[Row]:
        connection.execute("PRAGMA busy_timeout = 0")
        try:
            return _as_dicts(connection.execute(statement).fetchall())
        finally:
            connection.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")

    return run


def _checkpoint_if_alone(connection: sqlite3.Connection) -> None:
    """Fold the WAL into the file and truncate it, unless another connection
    is using the file (then it returns at once instead of waiting: the last
    connection to close checkpoints)."""
    with suppress(sqlite3.OperationalError):
        _without_busy_wait("PRAGMA wal_checkpoint(TRUNCATE)", 0)(connection)


def _after_commit(
    wal: Path,
    wal_index: WalIndex | None,
    checkpointer: Checkpointer,
    busy_timeout_ms: int,
) -> Callable[[sqlite3.Connection], None]:
    """After a commit: tell the checkpointer, and once the WAL outgrows
    ``JOURNAL_SIZE_LIMIT``, try to restart it. Passive checkpoints never wait,
    so with writers always appending (here or in other processes) they never
    find a moment to restart the WAL, and it would grow without bound;
    ``journal_size_limit`` then trims the file. The restart does not wait for
    readers: one holding an old snapshot (another process's long read) makes
    it answer busy at once, and it is tried again at the next look, so writes
    never wait for that reader. The size is looked at every
    ``WAL_CHECK_SECONDS`` at most: a look is a system call, and commits come
    thousands of times a second.

    With ``wal_index`` (where commits sync: FULL, EXTRA), before that bound:
    once ``CATCH_UP_FRAMES`` frames are in the WAL, the writer runs a passive
    checkpoint itself, between its commits. The background one has copied
    most frames already; with no commit going on, this one copies the rest,
    so that the next commit starts the WAL over from its start. A WAL that
    only grows costs every commit that syncs: the sync of a file that grew
    also writes the file system's metadata (measured here on ext4: 285 us a
    commit, against 167 us for a WAL rewritten in place). Where commits do not
    sync, that catch-up (which syncs) would cost more than it saves."""
    next_look = 0.0
    restart = _without_busy_wait("PRAGMA wal_checkpoint(RESTART)", busy_timeout_ms)
    catch_up = _without_busy_wait("PRAGMA wal_checkpoint(PASSIVE)", busy_timeout_ms)

    def housekeeping(connection: sqlite3.Connection) -> None:
        nonlocal next_look
        checkpointer.committed()
        now = time.monotonic()
        if now < next_look:
            return
        next_look = now + WAL_CHECK_SECONDS
        try:
            size = wal.stat().st_size
        except FileNotFoundError:
            return
        if size > JOURNAL_SIZE_LIMIT:
            with checkpointer.paused():  # a background checkpoint now would refuse this one
                restart(connection)
        elif wal_index is not None and wal_index.frames() >= CATCH_UP_FRAMES:
            with checkpointer.paused():
                catch_up(connection)

    return housekeeping


def _incremental_auto_vacuum_if_new(writer: sqlite3.Connection) -> None:
    """A new file keeps a map of its pages, so that ``release_free_pages`` can
    hand the pages deletes free back to the file system. SQLite fixes this when
    it writes the file's first page, which switching to WAL does: so before
    that, and only while the file holds no table (afterwards only ``VACUUM``
    changes it, see ``vacuum``)."""
    if writer.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
        writer.execute("PRAGMA auto_vacuum = INCREMENTAL")


def _release_pages(limit: int) -> Callable[[sqlite3.Connection], int]:
    """Up to ``limit`` free pages given back, on the writer inside a transaction.
    ``PRAGMA incremental_vacuum(N)`` frees one page per step of the statement,
    and Python's sqlite3 steps a statement that returns no columns only once:
    hence one page per execute (microseconds when the file's last page is
    free; moving a page in use there costs more: 500 took up to 0.23 s)."""

    def run(connection: sqlite3.Connection) -> int:
        if connection.execute("PRAGMA auto_vacuum").fetchone()[0] != INCREMENTAL_AUTO_VACUUM:
            return 0
        free = connection.execute("PRAGMA freelist_count").fetchone()[0]
        for _ in range(min(free, limit)):
            connection.execute("PRAGMA incremental_vacuum(1)").close()
        return int(free) - int(connection.execute("PRAGMA freelist_count").fetchone()[0])

    return run


def _vacuum_to_incremental(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA auto_vacuum = INCREMENTAL")  # VACUUM applies it
    connection.execute("VACUUM")


class SQLiteBackend:
    dialect: Dialect = SQLITE

    def __init__(
        self,
        path: Path,
        *,
        schema_path: Path,
        busy_timeout: float,
        synchronous: str,
        read_mmap_bytes: int = READER_MMAP_BYTES,
    ) -> None:
        if (
            isinstance(read_mmap_bytes, bool)
            or not isinstance(read_mmap_bytes, int)
            or not 0 <= read_mmap_bytes <= 2**40
        ):
            raise ValidationError(
                "read_mmap_bytes must be a number of bytes from 0 to 2**40, "
                f"got {read_mmap_bytes!r}",
                field="read_mmap_bytes",
            )
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
        self.read_mmap_bytes = read_mmap_bytes
        self._writer: WriterThread | None = None
        self._checkpointer: Checkpointer | None = None
        # None in the queue means "closed": each waiter that takes it passes it on.
        self._readers: asyncio.Queue[aiosqlite.Connection | None] = asyncio.Queue()
        self._connections: list[aiosqlite.Connection] = []
        self._reads_in_flight = 0
        self._no_reads_in_flight = asyncio.Event()
        self._no_reads_in_flight.set()
        self._write_lock = asyncio.Lock()  # one transaction() (or checkpoint, close) at a time
        self._wal_index = WalIndex(Path(f"{path}-shm"))  # replaced at each open()

    @property
    def _busy_ms(self) -> int:
        return int(self.busy_timeout * 1000)

    # --- lifecycle -------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    async def open(self) -> None:
        """Open the file (creating it and its folders if needed), bring its
        schema up to date and start the reader connections. On failure,
        everything opened is closed and a file this call created is removed."""
        created = not self.path.exists()
        checkpointer = Checkpointer(
            f"adw-checkpointer:{self.path.name}",
            self._open_checkpoint_connection,
            interval=CHECKPOINT_INTERVAL,
        )
        self._wal_index = WalIndex(Path(f"{self.path}-shm"))
        writer = self._new_writer(checkpointer, self._wal_index)
        try:
            self._refuse_foreign_file()
            self._create_folder()
            await writer.start(self._open_write_connection)
            version = await writer.call(user_version)
            if version > LATEST_VERSION:
                raise SchemaError(
                    f"{self.path} was written by schema version {version}, newer than this "
                    f"store's version {LATEST_VERSION}: upgrade the store to open it "
                    "(the file was left untouched)"
                )
            await writer.call(self._initialise)
            for _ in range(READ_CONNECTIONS):
                reader = await self._connect()
                await reader.execute("PRAGMA query_only = ON")
                # Reads map the file instead of copying pages through read():
                # large log tables answer in a fraction of the time. The pages
                # mapped count in the process's RSS (0: reads copy pages instead).
                await reader.execute(f"PRAGMA mmap_size = {self.read_mmap_bytes}")
                self._readers.put_nowait(reader)
            checkpointer.start()
            await checkpointer.connected()
        except BaseException as exc:
            await run_to_completion(
                self._close_connections(writer, checkpointer, before_close=None)
            )
            if created:
                self._remove_created_files()
            if isinstance(exc, sqlite3.Error):
                raise self._translate(exc, "(database)", "open") from exc
            if isinstance(exc, OSError):
                raise DatabaseError(f"cannot open {self.path}: {exc}") from exc
            raise
        self._writer = writer
        self._checkpointer = checkpointer
        logger.debug("opened %s (schema version %s)", self.path, LATEST_VERSION)

    def _new_writer(self, checkpointer: Checkpointer, wal_index: WalIndex) -> WriterThread:
        """The writer thread, with writes on the loop where ``synchronous``
        allows them. ``wal_index`` is used under the writer's connection lock
        only (by its housekeeping and its writes on the loop)."""
        inline = None
        if self.synchronous in INLINE_SYNCHRONOUS:
            inline = InlineWrites(
                max_steps=INLINE_MAX_STEPS, busy_timeout_ms=self._busy_ms, wal_index=wal_index
            )
        return WriterThread(
            f"adw-writer:{self.path.name}",
            max_queued=MAX_QUEUED_WRITES,
            after_commit=_after_commit(
                Path(f"{self.path}-wal"),
                None if self.synchronous in INLINE_SYNCHRONOUS else wal_index,
                checkpointer,
                self._busy_ms,
            ),
            inline=inline,
            housekeeping_interval=WAL_CHECK_SECONDS,
        )

    async def close(self) -> None:
        """Close everything; a caller cancelled meanwhile waits until the
        store is closed, so that no connection or thread is left half open."""
        if self._owned_transaction() is not None:
            raise DatabaseError("close() called inside transaction(): leave the block first")
        _transactions.refuse_inherited(self, "close()")
        await run_to_completion(self._close())

    async def _close(self) -> None:
        async with self._write_lock:
            writer, self._writer = self._writer, None
            checkpointer, self._checkpointer = self._checkpointer, None
            await self._close_connections(writer, checkpointer, before_close=_checkpoint_if_alone)
        logger.debug("closed %s", self.path)

    def _refuse_foreign_file(self) -> None:
        """Look before touching anything: only a regular file that starts
        like a SQLite database (or no file yet) may be opened."""
        try:
            is_sqlite_file(self.path)
        except NotADirectoryError:
            raise DatabaseError(self._blocked_folder_message()) from None

    def _blocked_folder_message(self) -> str:
        """Which part of the path is a file where a folder has to be."""
        for ancestor in reversed(self.path.parents):
            if ancestor.exists() and not ancestor.is_dir():
                return (
                    f"cannot create {self.path}: {ancestor} is a file, not a folder "
                    "(choose another path, or move that file)"
                )
        return f"cannot create {self.path}: a part of its folder is not a folder"

    def _create_folder(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise DatabaseError(self._blocked_folder_message()) from None

    def _settings(self) -> list[str]:
        """Per-connection settings; none of them writes to the file."""
        return [
            f"PRAGMA busy_timeout = {self._busy_ms}",
            "PRAGMA foreign_keys = ON",
            f"PRAGMA synchronous = {self.synchronous}",
            f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}",
        ]

    def _open_write_connection(self) -> sqlite3.Connection:
        """Runs on the writer thread, which then owns the connection."""
        connection = self._open_connection(cached_statements=256)
        connection.row_factory = sqlite3.Row
        return connection

    def _open_checkpoint_connection(self) -> sqlite3.Connection:
        """Runs on the checkpointer's thread, which then owns the connection.
        Its ``synchronous`` decides how checkpoints sync."""
        return self._open_connection()

    def _open_connection(self, *, cached_statements: int = 128) -> sqlite3.Connection:
        """A connection for a thread of the store's own, in autocommit, with
        the store's settings; automatic checkpoints are the checkpointer's job."""
        connection = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=cached_statements,
        )
        try:
            for setting in [*self._settings(), "PRAGMA wal_autocheckpoint = 0"]:
                connection.execute(setting)
        except BaseException:
            connection.close()
            raise
        return connection

    async def _connect(self) -> aiosqlite.Connection:
        connection = aiosqlite.connect(self.path, isolation_level=None, cached_statements=256)
        _make_daemon(connection)
        self._connections.append(connection)  # closed on failure even if the await fails
        await connection
        connection.row_factory = sqlite3.Row
        for setting in self._settings():
            await connection.execute(setting)
        return connection

    def _initialise(self, writer: sqlite3.Connection) -> None:
        """WAL, then the schema (on the writer thread). A brand-new file is in
        rollback-journal mode until the first process switches it, and there two
        processes initialising at once can deadlock; SQLite then answers one of
        them "busy" at once instead of waiting. That one lets go and retries."""
        deadline = time.monotonic() + max(self.busy_timeout, 1.0) * BUSY_RETRIES
        while True:
            try:
                version = user_version(writer)
                # Both before WAL changes the header. Foreign tables first: the
                # original-era check assumes the store's tables and columns.
                if version == 0:
                    self._refuse_foreign_tables(writer)
                self._refuse_original_era(writer, version)
                if version == 0:
                    _incremental_auto_vacuum_if_new(writer)
                self._use_wal(writer)
                if user_version(writer) < LATEST_VERSION:
                    self._migrate(writer)
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(busy_wait(1))  # the first pause each time: the deadline bounds the tries

    def _refuse_original_era(self, writer: sqlite3.Connection, version: int) -> None:
        """A file of the original adw_database module (or one an earlier store
        stamped without converting it) is migrated by ``orchestrator-store
        adopt``, which converts its rows and keeps a backup, never silently
        here: its naive timestamps and non-UUID ids would come back as they are."""
        if is_original_era(writer):
            raise SchemaError(original_era_refusal(self.path, version))

    def _refuse_foreign_tables(self, writer: sqlite3.Connection) -> None:
        """An unversioned file may be taken over only if every table in it is
        one of the store's, with the store's columns: anything else is another
        application's database, left as it is."""
        found = table_columns(writer)
        foreign = foreign_tables(found, _schema_columns(self.schema_path)) if found else []
        if foreign:
            raise DatabaseError(
                f"{self.path} holds tables that are not the store's, by name or columns "
                f"({', '.join(foreign)}): it looks like another application's database "
                "(the file was left untouched; use another path for the store)"
            )

    def _use_wal(self, writer: sqlite3.Connection) -> None:
        """WAL is a property of the file: set once, after the version check, so
        that a refused file is never rewritten."""
        mode = writer.execute("PRAGMA journal_mode = WAL").fetchone()["journal_mode"]
        if mode != "wal":
            raise DatabaseError(f"{self.path}: cannot switch to WAL journal mode (got {mode!r})")

    def _migrate(self, writer: sqlite3.Connection) -> None:
        """Upgrade under the write lock, so concurrent processes migrate once
        (runs on the writer thread)."""
        retry_busy(lambda: writer.execute("BEGIN IMMEDIATE"), str(self.path))
        try:
            version = user_version(writer)  # another process may have won
            if version < LATEST_VERSION:
                for statement in statements_to_upgrade(version, self.schema_path):
                    try:
                        writer.execute(statement)
                    except sqlite3.Error as exc:
                        if is_busy(exc):
                            raise
                        raise SchemaError(
                            f"invalid schema file {self.schema_path}: {exc} "
                            f"(in: {statement[:120]!r})"
                        ) from exc
                self._check_tables(writer)
                writer.execute(f"PRAGMA user_version = {LATEST_VERSION}")
                logger.info("%s: schema upgraded from %s to %s", self.path, version, LATEST_VERSION)
            writer.execute("COMMIT")
        except BaseException:
            with suppress(sqlite3.Error):
                _undo("ROLLBACK")(writer)
            raise

    def _check_tables(self, writer: sqlite3.Connection) -> None:
        rows = writer.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        missing = sorted(set(TABLES) - {row["name"] for row in rows})
        if missing:
            raise SchemaError(
                f"invalid schema file {self.schema_path}: it does not create {', '.join(missing)}"
            )

    async def _close_connections(
        self,
        writer: WriterThread | None,
        checkpointer: Checkpointer | None,
        *,
        before_close: Callable[[sqlite3.Connection], None] | None,
    ) -> None:
        """Readers and the checkpointer first, so that the writer may find
        itself alone and checkpoint; then the writer thread, which ends."""
        connections, self._connections = self._connections, []
        readers, self._readers = self._readers, asyncio.Queue()
        readers.put_nowait(None)  # wakes reads still waiting for a connection
        await self._no_reads_in_flight.wait()  # reads already running finish first
        for connection in connections:
            try:
                await connection.close()
            except Exception:  # closing must reach every connection
                logger.exception("%s: error while closing a connection", self.path)
        if checkpointer is not None:
            await checkpointer.stop()
        if writer is not None:
            await writer.stop(before_close or (lambda _connection: None))
        self._wal_index.close()

    def _remove_created_files(self) -> None:
        for suffix in ("", *SIDE_FILE_SUFFIXES):
            with suppress(OSError):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    # --- statements ------------------------------------------------------------

    def _require_writer(self) -> WriterThread:
        if self._writer is None:
            raise NotConnectedError(NOT_CONNECTED)
        return self._writer

    def _owned_transaction(self) -> _Transaction | None:
        return _transactions.owned(self)

    async def execute(self, sql: str, params: Sequence[Any], *, table: str) -> WriteResult:
        """Run one write statement; it commits before this returns unless this
        task is inside ``transaction()``."""
        return await self._write(Statement(sql, params), table)

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]], *, table: str) -> None:
        """Run ``sql`` once per row, all or nothing. Commits before this returns
        unless inside ``transaction()``."""
        await self._write(Statement(sql, rows, many=True), table)

    async def insert_many(
        self, sql: str, rows: Sequence[Sequence[Any]], *, table: str
    ) -> list[int]:
        """Insert every row or none; the new ids in input order. One writer runs
        the rows one after another in one transaction, so AUTOINCREMENT hands
        out consecutive ids."""
        if not rows:
            return []
        written = await self._write(Statement(sql, rows, many=True), table)
        last = int(written.lastrowid or 0)  # a many-row statement reports its last row's id
        return list(range(last - len(rows) + 1, last + 1))

    async def _write(self, statement: Statement, table: str) -> WriteResult:
        writer = self._require_writer()
        try:
            if self._owned_transaction() is not None:
                return await writer.call(lambda connection: run_statement(connection, statement))
            _transactions.refuse_inherited(self, "a write", table)
            return await writer.write(statement)
        except sqlite3.Error as exc:
            raise self._translate(exc, table, "write") from exc

    async def fetch_all(self, sql: str, params: Sequence[Any], *, table: str) -> list[Row]:
        writer = self._require_writer()
        try:
            if self._owned_transaction() is not None:
                return await writer.call(_fetch_all(sql, params))
            return await self._read(sql, params, table)
        except sqlite3.Error as exc:
            raise self._translate(exc, table, "read") from exc

    async def fetch_read_only(self, sql: str, params: Sequence[Any], *, table: str) -> list[Row]:
        """One statement that only reads (``query()``); any other is refused
        with ``ReadOnlyError`` before it runs (``sqlite_read_only``). Inside
        this task's ``transaction()`` it runs on the writer, as ``fetch_all``
        does, and sees the block's writes."""
        writer = self._require_writer()
        guard = ReadOnlyGuard()
        try:
            if self._owned_transaction() is not None:
                rows = await writer.call(
                    lambda connection: fetch_read_only(connection, sql, params, guard)
                )
                return _as_dicts(rows)
            return await self._read(sql, params, table, guard=guard)
        except (sqlite3.Error, sqlite3.Warning) as exc:
            refused = refusal(exc, guard, table)
            if refused is not None:
                raise refused from exc
            if isinstance(exc, sqlite3.Error):
                raise self._translate(exc, table, "query") from exc
            raise

    async def _read(
        self, sql: str, params: Sequence[Any], table: str, *, guard: ReadOnlyGuard | None = None
    ) -> list[Row]:
        """On a reader connection, under ``guard`` when given. Counted from
        before the wait for a connection, so that close() lets every read that
        got one finish."""
        self._reads_in_flight += 1
        self._no_reads_in_flight.clear()
        try:
            readers = self._readers
            reader = await readers.get()
            if reader is None:
                readers.put_nowait(None)
                raise NotConnectedError(f"{table}: the store was closed while this read waited")
            try:
                if guard is not None:
                    await reader.set_authorizer(guard)
                rows = await reader.execute_fetchall(sql, params)
                return _as_dicts(rows)  # type: ignore[arg-type]  # rows are sqlite3.Row
            finally:
                try:
                    if guard is not None:  # off before the reader serves another read
                        await run_to_completion(reader.set_authorizer(None))
                finally:
                    readers.put_nowait(reader)
        finally:
            self._reads_in_flight -= 1
            if not self._reads_in_flight:
                self._no_reads_in_flight.set()

    async def schema_version(self) -> int:
        rows = await self.fetch_all("PRAGMA user_version", (), table="(database)")
        return int(rows[0]["user_version"])

    async def checkpoint(self) -> dict[str, int]:
        """Copy the WAL into the database file and truncate the WAL to zero
        bytes. ``busy`` is 1 when another connection's open read kept part of
        the WAL from being copied (the next checkpoint finishes the job).

        While another connection checkpoints (this store's own background
        checkpointer, or another process), SQLite answers at once with busy
        and no page counts, without waiting ``busy_timeout``: that wait is
        done here, a try every ``CHECKPOINT_RETRY_SECONDS``."""
        writer = self._require_writer()
        if self._owned_transaction() is not None:
            raise DatabaseError("checkpoint() called inside transaction(): leave the block first")
        _transactions.refuse_inherited(self, "checkpoint()")
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                async with self._write_lock:
                    rows = await retry_busy_async(
                        lambda: writer.call(_fetch_all("PRAGMA wal_checkpoint(TRUNCATE)", ())),
                        str(self.path),
                    )
            except sqlite3.Error as exc:
                raise self._translate(exc, "(database)", "checkpoint") from exc
            busy, wal_pages, checkpointed = (int(value) for value in rows[0].values())
            another_checkpointing = busy == 1 and wal_pages == -1
            if not another_checkpointing or time.monotonic() >= deadline:
                return {"busy": busy, "wal_pages": wal_pages, "checkpointed_pages": checkpointed}
            await asyncio.sleep(CHECKPOINT_RETRY_SECONDS)

    async def storage(self) -> dict[str, int]:
        """Bytes on disk (the file and its WAL) and how the file's pages are used."""
        sizes = {}
        for pragma in ("page_size", "page_count", "freelist_count"):
            rows = await self.fetch_all(f"PRAGMA {pragma}", (), table="(database)")
            sizes[pragma] = int(rows[0][pragma])
        sizes["file_bytes"] = _size_of(self.path)
        sizes["wal_bytes"] = _size_of(Path(f"{self.path}-wal"))
        return sizes

    async def release_free_pages(self, limit: int) -> int:
        """Give up to ``limit`` of the file's free pages back to the file system
        (the file shrinks at the next checkpoint), in one short write
        transaction; the number given back. Only a file with
        ``auto_vacuum=INCREMENTAL`` can (new files are); others keep their free
        pages for new rows, and this returns 0."""
        writer = self._require_writer()
        if self._owned_transaction() is not None:
            raise DatabaseError("prune() called inside transaction(): leave the block first")
        async with self.transaction():
            try:
                return await writer.call(_release_pages(limit))
            except sqlite3.Error as exc:
                raise self._translate(exc, "(database)", "incremental vacuum") from exc

    async def vacuum(self) -> None:
        """Rewrite the whole file without its free pages (``VACUUM``), switching
        it to ``auto_vacuum=INCREMENTAL`` on the way. It holds the write lock
        until done (other processes' writes wait, up to their busy timeout),
        writes the whole file into the WAL and needs free disk space about the
        file's size."""
        writer = self._require_writer()
        if self._owned_transaction() is not None:
            raise DatabaseError("vacuum called inside transaction(): leave the block first")
        _transactions.refuse_inherited(self, "vacuum")
        try:
            async with self._write_lock:
                await retry_busy_async(lambda: writer.call(_vacuum_to_incremental), str(self.path))
        except sqlite3.Error as exc:
            raise self._translate(exc, "(database)", "vacuum") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        writer = self._require_writer()
        current = self._owned_transaction()
        if current is not None:
            async with self._savepoint(writer, current):
                yield current
            return
        _transactions.refuse_inherited(self, "transaction()")
        async with self._write_lock:
            await self._begin(writer)
            transaction = _Transaction()
            token = _transactions.enter(self, transaction)
            try:
                try:
                    yield transaction
                except BaseException:
                    transaction.state = "rolled_back"
                    await self._rollback(writer, "ROLLBACK")
                    raise
                try:
                    await writer.call(_commit(transaction))
                except BaseException as exc:
                    if not transaction.committed:  # the COMMIT failed: nothing was stored
                        transaction.state = "rolled_back"
                        await self._rollback(writer, "ROLLBACK")
                    if isinstance(exc, sqlite3.Error):
                        raise self._translate(exc, "(transaction)", "commit") from exc
                    raise
            finally:
                _transactions.leave(token)

    async def _begin(self, writer: WriterThread) -> None:
        """BEGIN IMMEDIATE. While another connection holds the write lock, the
        wait is here, on the event loop, one try at a time, instead of in
        SQLite's busy handler on the writer thread: a task cancelled while it
        waits (``wait_for``, ``asyncio.timeout``) leaves at once, holding
        nothing, and the writer thread stays free meanwhile."""
        loop = asyncio.get_running_loop()
        # Not ``retry_busy_async``: with the busy handler off each try answers
        # at once, so the budget is the time those tries would have waited.
        deadline = loop.time() + self.busy_timeout * BUSY_RETRIES
        wait = BEGIN_FIRST_WAIT
        begin = _without_busy_wait("BEGIN IMMEDIATE", self._busy_ms)
        while True:
            try:
                await writer.call(begin)
                return
            except sqlite3.Error as exc:
                if not is_busy(exc):
                    raise self._translate(exc, "(transaction)", "begin") from exc
                if loop.time() >= deadline:
                    raise busy_error(
                        "(transaction)", path=self.path, busy_timeout=self.busy_timeout
                    ) from exc
            except asyncio.CancelledError:
                # The try ran before the cancellation got through: undo it if it won.
                await self._rollback(writer, "ROLLBACK")
                raise
            await asyncio.sleep(random.uniform(0.5, 1.0) * wait)
            wait = min(wait * 2, BEGIN_LONGEST_WAIT)

    @asynccontextmanager
    async def _savepoint(
        self, writer: WriterThread, transaction: _Transaction
    ) -> AsyncIterator[None]:
        transaction.savepoints += 1
        name = f"adw_savepoint_{transaction.savepoints}"
        try:
            try:
                await writer.call(_statement(f"SAVEPOINT {name}"))
                yield
            except BaseException:
                await self._rollback(writer, f"ROLLBACK TO {name}")
                await self._rollback(writer, f"RELEASE {name}")
                raise
            await writer.call(_statement(f"RELEASE {name}"))
        finally:
            transaction.savepoints -= 1

    async def _rollback(self, writer: WriterThread, statement: str) -> None:
        """Undo; a caller cancelled meanwhile still waits for the statement
        (``WriterThread.call`` runs it to its end). SQLite may already have
        rolled back by itself (disk full, for example), which is fine."""
        try:
            await writer.call(_undo(statement))
        except sqlite3.Error:
            logger.warning("%s: %s failed", self.path, statement, exc_info=True)

    # --- errors ----------------------------------------------------------------

    def _translate(self, exc: sqlite3.Error, table: str, action: str) -> DatabaseError:
        return translate(exc, table, action, path=self.path, busy_timeout=self.busy_timeout)
