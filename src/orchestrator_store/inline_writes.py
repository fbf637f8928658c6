"""A lone write run on the event loop's own thread, when that cannot block it.

Handing a write to the writer thread and its answer back costs two thread
wake-ups (each tens of microseconds, about as long as SQLite's own commit at
``synchronous=NORMAL``). A write that nobody else's write could share a commit
with gains nothing from the hop, so the writer (``sqlite_writer``) may run it
here, on its own connection, while its thread is idle. Only on terms that keep
the loop free:

* SQLite's busy handler is off: a write lock held by another connection (another
  process) answers "busy" at once, and the write goes to the writer thread,
  which waits for the lock there. Nothing here ever waits for a lock. After a
  busy answer, writes go to the thread for ``busy_pause`` seconds: while other
  processes write, a commit per group takes the contended lock fewer times
  than a commit per write.
* The write runs in a transaction of its own (``BEGIN IMMEDIATE``: a busy
  lock shows before any work), and a progress handler stops the statement once
  it has run more than ``max_steps`` instructions of SQLite's virtual machine
  (the store's own row writes, triggers included, run a few hundred; a step
  takes some 15-35 ns): it is rolled back and run again on the writer thread,
  and for the next ``retry_after`` seconds that statement goes straight there.
  Steps, not time: a busy machine slows every statement alike, and a quick one
  moved to the thread would not give the loop its time back.
* Only at ``synchronous`` OFF or NORMAL: there a WAL commit writes but does
  not sync (the write connection never checkpoints by itself), except the
  commit that starts the WAL over, which syncs its new header: the WAL index
  tells when that one comes (``wal_index``), and it goes to the thread. At
  FULL every commit syncs the disk, which must not happen on the loop.

What the caller must guarantee: the connection is not in use elsewhere (the
writer holds a lock for that), and it is not inside a transaction.
"""

from __future__ import annotations

import sqlite3
import time

from .backend import WriteResult
from .sqlite_errors import is_busy, primary_code
from .wal_index import WalIndex

__all__ = ["INLINE_SYNCHRONOUS", "InlineWrites"]

INLINE_SYNCHRONOUS = frozenset({"OFF", "NORMAL"})  # levels at which a commit never syncs
# VM instructions between calls of the progress handler. SQLite counts them over
# every run of a cached statement, so a run's first call comes after 1 to
# CHECK_EVERY instructions, and a short statement gets none in most runs.
CHECK_EVERY = 500
SQLITE_INTERRUPT = 9  # the result code of a statement the progress handler stopped
MAX_REMEMBERED = 256  # statements stopped lately (the store builds few distinct ones)


class InlineWrites:
    """Runs single statements in autocommit mode without waiting for locks or
    for long; ``None`` from ``try_write`` means: give it to the writer thread."""

    def __init__(
        self,
        *,
        max_steps: int,
        busy_timeout_ms: int,
        wal_index: WalIndex,
        retry_after: float = 1.0,
        busy_pause: float = 0.1,
    ) -> None:
        self._allowed_calls = max_steps // CHECK_EVERY  # a run stops at the call after these
        self._busy_timeout_ms = busy_timeout_ms
        self._wal_index = wal_index
        self._retry_after = retry_after
        self._busy_pause = busy_pause
        self._paused_until = 0.0  # after a busy answer: no try here until then
        self._busy_handler_off = False  # the connection's busy_timeout is 0 now
        self._stopped: dict[str, float] = {}  # statement -> when to try it here again
        self._calls = 0

    def suits(self, sql: str) -> bool:
        """Whether ``sql`` is worth a try: it was not stopped lately, and the
        database was not busy lately."""
        again = self._stopped.get(sql)
        if again is None and not self._paused_until:
            return True
        now = time.monotonic()
        return now >= self._paused_until and (again is None or now >= again)

    def try_write(
        self, connection: sqlite3.Connection, sql: str, params: object
    ) -> WriteResult | None:
        """Run ``sql`` in a transaction of its own; its result, or ``None``
        when it would have had to wait for a lock, sync the WAL's header or run
        past ``max_steps`` (nothing was written). Other errors are raised, as the
        writer thread would raise them, after the transaction was rolled back."""
        if not self._busy_handler_off:
            connection.execute("PRAGMA busy_timeout = 0")
            self._busy_handler_off = True
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                self._paused_until = time.monotonic() + self._busy_pause
                return None
            raise
        try:
            # Looked at under the write lock: nobody can add frames meanwhile.
            if self._wal_index.next_commit_starts_the_wal():
                _roll_back(connection)
                return None
            cursor = self._run_bounded(connection, sql, params)
            if cursor is None:
                _roll_back(connection)
                return None
            connection.execute("COMMIT")
        except BaseException:
            _roll_back(connection)
            raise
        return WriteResult(cursor.rowcount, cursor.lastrowid)

    def _run_bounded(
        self, connection: sqlite3.Connection, sql: str, params: object
    ) -> sqlite3.Cursor | None:
        """``sql`` stopped once past ``max_steps`` (``None`` then). Not the COMMIT:
        SQLite may report a statement interrupted after it has committed (its
        last look at the progress handler comes after the statement ends), so
        the handler is never on while a commit can happen."""
        self._calls = 0
        connection.set_progress_handler(self._past_max_steps, CHECK_EVERY)
        try:
            return connection.execute(sql, params)  # type: ignore[arg-type]
        except sqlite3.OperationalError as exc:
            if primary_code(exc) != SQLITE_INTERRUPT:
                raise
            if len(self._stopped) >= MAX_REMEMBERED:
                self._stopped.clear()
            self._stopped[sql] = time.monotonic() + self._retry_after
            return None
        finally:
            connection.set_progress_handler(None, 0)

    def restore(self, connection: sqlite3.Connection) -> None:
        """Give the connection its busy timeout back, before the writer thread
        runs anything on it (there, waiting for a lock is the point)."""
        if self._busy_handler_off:
            connection.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            self._busy_handler_off = False

    def _past_max_steps(self) -> bool:
        self._calls += 1
        return self._calls > self._allowed_calls


def _roll_back(connection: sqlite3.Connection) -> None:
    """Undo, unless SQLite already did (an interrupted or failed write may end
    the transaction by itself)."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")
