"""The write connection's own thread, with group commit.

One thread owns one stdlib ``sqlite3`` connection (aiosqlite's design: a queue
of jobs, results handed back to the event loop with ``call_soon_threadsafe``),
so a job costs one thread hop (a lone write may skip it: see the end). Two
kinds of job:

* ``call(fn)`` runs ``fn(connection)`` as is. The backend uses it for
  ``transaction()`` statements, migrations and maintenance.
* ``write(statement)`` is an autocommit write. Writes queued at the same time
  share one ``BEGIN IMMEDIATE`` ... ``COMMIT`` (group commit), and each caller
  is answered only after that commit; consecutive single-row INSERTs of the
  group run as one multi-row INSERT (``coalesce``). A write that fails
  does not undo the others: SQLite's default conflict resolution (ABORT) rolls
  back just the failing statement (a merged INSERT that fails is run again row
  by row, so that only the bad row's caller gets the error), and a statement
  that runs many rows gets its own savepoint. Errors that make SQLite roll back
  the whole transaction (disk full, I/O error) fail every write of the group,
  since none of them was committed. A write queued alone runs as one
  autocommit statement, which SQLite makes atomic by itself.

While a ``call`` has left a transaction open (a task's ``transaction()``
block), queued writes are held back and committed after it ends, so they never
join another task's transaction.

Cancellation: a job the thread has not taken yet can be withdrawn by its
caller; one it has taken runs to its end. Both sides claim the job with one
atomic ``list.pop`` (whoever pops first wins), so a cancelled caller always
knows which happened. A cancelled ``write`` that was still queued is withdrawn
and never runs; one already taken is committed (or fails) before the caller's
``CancelledError`` propagates. A ``call`` is never withdrawn: the backend's
statements (BEGIN, COMMIT, ROLLBACK, SAVEPOINT) must run in the order they
were queued, and a caller that is cancelled first waits for its statement to
finish, so that the connection's state is known when ``CancelledError``
propagates.

At most ``max_queued`` writes wait at a time; further callers wait for a slot
(backpressure), so a burst of writers cannot grow memory without bound.

Writes on the loop's thread (``inline``, see ``inline_writes``): a write
that finds the thread idle, no write queued or about to be, and no transaction
open, runs on the event loop's own thread instead of paying the hop, unless
the database is busy or the statement runs long (then it is queued as usual).
A lock says who uses the connection: the thread holds it for each job, the
loop only ever tries it without waiting. Before the try, the writer yields
once to the other tasks: a task that writes in a loop cannot starve them, a
cancellation there means the write never ran, and writes that other tasks
start in that turn are seen, so they are queued and share one commit instead.
It does not yield when the task that made the store's previous write makes
this one too and yielded less than ``YIELD_EVERY`` ago: one task writing
alone has nobody's write to share a commit with, and a turn of the loop (a
system call) cost it some 2-4 us of a 60 us write; others wait a millisecond
at most.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar, cast

from .backend import WriteResult
from .coalesce import BATCH_ROWS, mergeable, merged_sql, runs
from .inline_writes import InlineWrites
from .shield import run_to_completion
from .sqlite_errors import retry_busy

__all__ = ["Statement", "WriteResult", "WriterThread", "run_statement"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_GROUP = 1024  # writes per commit; bounds how long one commit holds the lock
YIELD_EVERY = 0.001  # seconds a task writing alone may go without yielding


class Statement(NamedTuple):  # a tuple: one is made per write, on the event loop
    """One write: ``params`` is one row, or with ``many`` a sequence of rows."""

    sql: str
    params: Sequence[Any]
    many: bool = False


@dataclass
class _Job(Generic[T]):
    future: asyncio.Future[T]
    # [True] until the thread takes the job or its caller withdraws it: see ``_claim``.
    unclaimed: list[bool] = field(default_factory=lambda: [True], kw_only=True)
    # The outcome, kept when it arrived after the caller stopped awaiting ``future``.
    late: tuple[Any, BaseException | None] | None = field(default=None, kw_only=True)


@dataclass
class _Call(_Job[Any]):
    fn: Callable[[sqlite3.Connection], Any] = field(kw_only=True)


@dataclass
class _Write(_Job[WriteResult]):
    statement: Statement = field(kw_only=True)


_Outcome = tuple[_Job[Any], Any, BaseException | None]
_STOP = None


class _Housekeeping:
    """The queued request to run ``after_commit`` for writes committed on the loop."""


_HOUSEKEEPING = _Housekeeping()
_Queued = _Call | _Write | _Housekeeping | None


def _claim(job: _Job[Any]) -> bool:
    """Take ``job`` for the thread, or withdraw it for its caller: true for
    whichever side asks first. ``list.pop`` is atomic, so the writer thread
    and the event loop never both win."""
    try:
        job.unclaimed.pop()
    except IndexError:
        return False
    return True


def _deliver(outcomes: list[_Outcome]) -> None:
    """On the event loop: answer each caller. A caller that was cancelled
    no longer awaits its future; its outcome is kept on the job instead (a
    cancelled await must not crash the thread or the loop)."""
    for job, result, error in outcomes:
        future = job.future
        if future.done():
            job.late = (result, error)
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


async def _outcome_after_cancel(job: _Job[T]) -> T:
    """The outcome of a job its caller was cancelled while awaiting: waits,
    however often the caller is cancelled again, until the thread answers."""
    loop = asyncio.get_running_loop()
    while job.late is None and not (job.future.done() and not job.future.cancelled()):
        if job.future.done():  # cancelled: the thread answers on a fresh future
            job.future = loop.create_future()
        with suppress(asyncio.CancelledError, Exception):  # the outcome is read below
            await asyncio.shield(job.future)
    if job.late is None:
        return job.future.result()
    result, error = job.late
    if error is not None:
        raise error
    return cast(T, result)


def run_statement(connection: sqlite3.Connection, statement: Statement) -> WriteResult:
    """Run one write; a many-row statement is all or nothing (its own savepoint),
    and reports the id of its last row."""
    if not statement.many:
        cursor = connection.execute(statement.sql, statement.params)
        return WriteResult(cursor.rowcount, cursor.lastrowid)
    connection.execute("SAVEPOINT adw_many")
    try:
        rowcount = _run_rows(connection, statement.sql, statement.params)
        connection.execute("RELEASE adw_many")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK TO adw_many")
            connection.execute("RELEASE adw_many")
        raise
    last = connection.execute("SELECT last_insert_rowid()").fetchone()[0]
    return WriteResult(rowcount, int(last))


def _run_rows(connection: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> int:
    """``executemany``, but a single-row INSERT runs as multi-row INSERTs
    (fewer, larger statements: about twice as fast)."""
    if not mergeable(sql):
        return int(connection.executemany(sql, rows).rowcount)
    changed = 0
    for piece in runs(rows, lambda _row: sql, max_rows=BATCH_ROWS):
        params = [value for row in piece for value in row]
        changed += connection.execute(merged_sql(sql, len(piece)), params).rowcount
    return changed


def _mergeable_sql(write: _Write) -> str | None:
    return None if write.statement.many else write.statement.sql


def _hand_back(loop: asyncio.AbstractEventLoop, outcomes: list[_Outcome]) -> None:
    try:
        loop.call_soon_threadsafe(_deliver, outcomes)
    except RuntimeError:  # the loop is closed: nobody is left to answer
        logger.debug("event loop closed; %s result(s) dropped", len(outcomes))


def _closed_error() -> sqlite3.ProgrammingError:
    return sqlite3.ProgrammingError("Cannot operate on a closed database.")


class WriterThread:
    """Runs jobs on one connection in its own thread; see the module docstring."""

    def __init__(
        self,
        name: str,
        *,
        max_queued: int = 4096,
        after_commit: Callable[[sqlite3.Connection], None] | None = None,
        inline: InlineWrites | None = None,
        housekeeping_interval: float = 0.01,
    ) -> None:
        self._name = name
        self._after_commit = after_commit  # on the thread, after jobs that changed rows
        self._jobs: queue.SimpleQueue[_Queued] = queue.SimpleQueue()
        self._max_queued = max_queued
        self._has_room = asyncio.Event()
        self._has_room.set()
        self._queued_writes = 0
        self._connection: sqlite3.Connection | None = None
        self._held_back: list[_Write] = []
        self._answers: list[_Outcome] = []  # write outcomes of the job running now
        self._changes_seen = 0  # the connection's total_changes at the last housekeeping
        self._thread: threading.Thread | None = None
        self._closing = False  # set on the loop, so no job is queued behind the stop
        self._ended: asyncio.Future[None] | None = None  # answered as the thread ends
        self._inline = inline
        self.inline_enabled = inline is not None  # off: every write takes the thread
        self._in_use = threading.Lock()  # whoever runs statements on the connection holds it
        self._about_to_write = 0  # writers yielding before a try on the loop
        self._last_writer: asyncio.Task[Any] | None = None  # the task of the latest write()
        self._yield_due = 0.0  # when that task, writing alone, yields again
        self._written_inline = 0
        # Commits on the loop ask the thread for ``after_commit`` at most this often.
        self._housekeeping_interval = housekeeping_interval
        self._housekeeping_queued = False
        self._next_housekeeping = 0.0

    async def start(self, connect: Callable[[], sqlite3.Connection]) -> None:
        """Start the thread and open the connection on it; if opening fails,
        the thread has ended by the time this raises."""
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        self._ended = loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(connect, opened), name=self._name, daemon=True
        )
        self._thread.start()
        try:
            await asyncio.shield(opened)
        except BaseException:
            await run_to_completion(self._end_after_start(opened))
            raise

    async def _end_after_start(self, opened: asyncio.Future[None]) -> None:
        """End the thread of a start that failed or was cancelled. Cancelled
        while the thread connects, it waits for the connection; one opened is
        then closed (the thread would otherwise wait for jobs, and ``_join``
        for it, forever)."""
        await asyncio.wait({opened})
        if opened.exception() is None:
            self._jobs.put(_STOP)
        await self._join()

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the thread and return what it returns.
        If the caller is cancelled, ``fn`` still runs, and ``CancelledError``
        propagates once it has."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        job = _Call(future, fn=fn)
        self._put(job)
        try:
            return await future
        except asyncio.CancelledError:
            with suppress(Exception):
                await _outcome_after_cancel(job)
            raise

    @property
    def queued_writes(self) -> int:
        """Writes queued or running now (never more than ``max_queued``)."""
        return self._queued_writes

    @property
    def written_inline(self) -> int:
        """How many writes ran on the event loop's thread (see the module docstring)."""
        return self._written_inline

    async def write(self, statement: Statement) -> WriteResult:
        """Run one autocommit write; return once it is committed. Waits for
        room first when ``max_queued`` writes are already queued."""
        task = asyncio.current_task()
        alone, self._last_writer = task is self._last_writer, task
        inline = self._inline
        if (
            inline is not None
            and self.inline_enabled
            and not (self._queued_writes or self._about_to_write)  # a group is forming
            and not statement.many
            and inline.suits(statement.sql)
        ):
            result = await self._write_inline(inline, statement, alone=alone)
            if result is not None:
                return result
        while self._queued_writes >= self._max_queued:
            await self._has_room.wait()
        self._queued_writes += 1
        if self._queued_writes >= self._max_queued:
            self._has_room.clear()
        try:
            future: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
            job = _Write(future, statement=statement)
            self._put(job)
            try:
                return await future
            except asyncio.CancelledError:
                if not _claim(job):  # taken: it commits or fails before we go
                    with suppress(Exception):
                        await _outcome_after_cancel(job)
                raise
        finally:
            self._queued_writes -= 1
            self._has_room.set()

    async def _write_inline(
        self, inline: InlineWrites, statement: Statement, *, alone: bool
    ) -> WriteResult | None:
        """``statement`` run on the loop's thread, or ``None`` when it is to
        be queued: the thread is busy, other writes are queued or starting, a
        transaction is open, or ``inline`` declined it. ``alone``: this task
        made the previous write too."""
        now = time.monotonic()
        if not alone or now >= self._yield_due:  # see the module docstring
            self._yield_due = now + YIELD_EVERY
            self._about_to_write += 1
            try:
                await asyncio.sleep(0)
            finally:
                self._about_to_write -= 1
        if (
            self._about_to_write
            or self._queued_writes
            or self._housekeeping_queued  # it may restart the WAL: writes come after it
            or self._thread is None
            or self._closing
        ):
            return None
        if not self._in_use.acquire(blocking=False):
            return None
        try:
            connection = self._connection
            if connection is None or connection.in_transaction or self._held_back:
                return None
            result = inline.try_write(connection, statement.sql, statement.params)
        finally:
            self._in_use.release()
        if result is not None:
            self._written_inline += 1
            self._ask_for_housekeeping()
        return result

    def _ask_for_housekeeping(self) -> None:
        """``after_commit`` may checkpoint (and sync): the thread runs it, for
        the commits made on the loop, at most every ``housekeeping_interval``."""
        if self._after_commit is None or self._housekeeping_queued:
            return
        now = time.monotonic()
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + self._housekeeping_interval
            self._housekeeping_queued = True
            self._jobs.put(_HOUSEKEEPING)

    def _put(self, job: _Call | _Write) -> None:
        if self._thread is None or self._closing:
            raise _closed_error()
        self._jobs.put(job)

    async def stop(self, before_close: Callable[[sqlite3.Connection], None]) -> None:
        """Finish queued jobs, run ``before_close`` on the connection, close it
        and end the thread. Safe to call after a failed start."""
        if self._thread is None or self._closing:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._put(_Call(future, fn=before_close))
        self._closing = True
        self._jobs.put(_STOP)
        try:
            await asyncio.shield(future)
        except Exception:  # closing goes on whatever the last job did
            logger.exception("%s: error before closing the write connection", self._name)
        finally:
            await self._join()

    async def _join(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None and self._ended is not None:
            await asyncio.shield(self._ended)
            thread.join()  # the thread has handed back its last result: it is ending

    # --- on the thread ---------------------------------------------------------

    def _run(self, connect: Callable[[], sqlite3.Connection], opened: asyncio.Future[None]) -> None:
        assert self._ended is not None
        try:
            self._connection = connect()
        except BaseException as exc:
            ended = _Job(self._ended)
            _hand_back(opened.get_loop(), [(_Job(opened), None, exc), (ended, None, None)])
            return
        _hand_back(opened.get_loop(), [(_Job(opened), None, None)])
        try:
            while True:
                job = self._jobs.get()
                if job is _STOP:
                    return
                with self._in_use:
                    self._run_job(job)
                self._send_answers()
                if self._follow_up_due():
                    with self._in_use:
                        self._follow_up()
                    self._send_answers()
        finally:
            with self._in_use:
                self._shut_down()

    def _run_job(self, job: _Call | _Write | _Housekeeping) -> None:
        self._restore_busy_timeout()
        if isinstance(job, _Housekeeping):
            self._housekeeping_queued = False  # _follow_up sees the loop's commits
        elif isinstance(job, _Call):
            self._run_call(job)
        else:
            writes = [job]
            following = self._take_more_writes(writes)
            self._commit_or_hold_back(writes)
            if following is not None:
                self._run_call(following)

    def _restore_busy_timeout(self) -> None:
        if self._inline is not None and self._connection is not None:
            try:
                self._inline.restore(self._connection)
            except sqlite3.Error:  # then busy writes are retried without SQLite's wait
                logger.exception("%s: cannot restore busy_timeout", self._name)

    def _take_more_writes(self, writes: list[_Write]) -> _Call | None:
        """Add the writes already queued to ``writes``; return the first call
        met on the way (it runs after the group), or the stop sentinel."""
        while len(writes) < MAX_GROUP and not self._jobs.empty():
            job = self._jobs.get_nowait()  # only this thread takes jobs: one is there
            if job is _STOP:
                self._jobs.put(_STOP)  # seen again by the loop after the group
                return None
            if isinstance(job, _Housekeeping):  # the group's follow-up runs it
                self._housekeeping_queued = False
                continue
            if isinstance(job, _Call):
                return job
            writes.append(job)
        return None

    def _run_call(self, job: _Call) -> None:
        _claim(job)  # a call is never withdrawn; claimed all the same, for one rule
        try:
            result = job.fn(self._require_connection())
            outcome: _Outcome = (job, result, None)
        except BaseException as exc:  # handed to the caller, never raised here
            outcome = (job, None, exc)
        self._answer([outcome])

    def _follow_up_due(self) -> bool:
        connection = self._connection
        return connection is not None and (
            bool(self._held_back) or connection.total_changes != self._changes_seen
        )

    def _follow_up(self) -> None:
        """After a job, once its callers have their answers: the writes held
        back for a transaction that has ended, then housekeeping if rows
        changed since the last (here or on the loop). Apart from the job, so
        that neither delays the answers; a job that changed nothing (a read
        in a transaction, a setting) has none."""
        connection = self._connection
        if connection is None or connection.in_transaction:
            return
        self._restore_busy_timeout()  # a write on the loop may have run meanwhile
        if self._held_back:
            held, self._held_back = self._held_back, []
            for start in range(0, len(held), MAX_GROUP):
                self._commit_group(held[start : start + MAX_GROUP])
        if connection.total_changes != self._changes_seen:
            self._changes_seen = connection.total_changes
            self._housekeeping(connection)

    def _in_transaction(self) -> bool:
        return self._connection is not None and self._connection.in_transaction

    def _require_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise _closed_error()
        return self._connection

    def _commit_or_hold_back(self, writes: list[_Write]) -> None:
        if self._in_transaction():
            self._held_back.extend(writes)
        else:
            self._commit_group(writes)

    def _commit_group(self, writes: list[_Write]) -> None:
        # A caller that withdrew its write (cancelled) before this does not get it.
        writes = [write for write in writes if _claim(write)]
        if not writes:
            return
        try:
            connection = self._require_connection()
            if len(writes) == 1 and not writes[0].statement.many:
                self._answer([self._write_alone(connection, writes[0])])
                return
            self._begin_immediate(connection)
        except sqlite3.Error as exc:
            self._answer([(write, None, exc) for write in writes])
            return
        outcomes: list[_Outcome] = []
        remaining: list[_Write] = []
        for piece in runs(writes, _mergeable_sql):
            outcomes += self._run_piece(connection, piece)
            if not connection.in_transaction:
                # SQLite rolled the whole transaction back (disk full, I/O
                # error): nothing before this write was committed either.
                error = next(error for _, _, error in reversed(outcomes) if error is not None)
                outcomes = [(write, None, error) for write, _, _ in outcomes]
                remaining = writes[len(outcomes) :]
                break
        else:
            try:
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(connection)
                outcomes = [(write, None, error or exc) for write, _, error in outcomes]
        self._answer(outcomes)
        if remaining:
            self._commit_group(remaining)

    def _write_alone(self, connection: sqlite3.Connection, write: _Write) -> _Outcome:
        """One statement in autocommit mode: the same lock and the same atomic
        commit as a group of one, without two more statements."""
        try:
            result = retry_busy(lambda: run_statement(connection, write.statement), self._name)
        except sqlite3.Error as exc:
            return (write, None, exc)
        return (write, result, None)

    def _run_piece(self, connection: sqlite3.Connection, piece: Sequence[_Write]) -> list[_Outcome]:
        """Run one piece of a group (see ``runs``): several writes as one
        merged INSERT, or one by one. Stops early if the transaction is lost."""
        if len(piece) > 1:
            params = [value for write in piece for value in write.statement.params]
            try:
                last = connection.execute(merged_sql(piece[0].statement.sql, len(piece)), params)
            except sqlite3.Error as exc:
                if not connection.in_transaction:  # none of them was written
                    return [(write, None, exc) for write in piece]
                # ABORT undid the whole statement; the rows one by one tell
                # which caller's row was refused.
            else:
                first_id = (last.lastrowid or 0) - len(piece) + 1  # one writer: consecutive ids
                return [
                    (write, WriteResult(1, first_id + index), None)
                    for index, write in enumerate(piece)
                ]
        outcomes: list[_Outcome] = []
        for write in piece:
            try:
                outcomes.append((write, run_statement(connection, write.statement), None))
            except sqlite3.Error as exc:
                outcomes.append((write, None, exc))
                if not connection.in_transaction:
                    break
        return outcomes

    def _housekeeping(self, connection: sqlite3.Connection) -> None:
        if self._after_commit is not None:
            try:
                self._after_commit(connection)
            except sqlite3.Error:
                logger.exception("%s: housekeeping after a commit failed", self._name)

    def _answer(self, outcomes: list[_Outcome]) -> None:
        """Kept until the job ends (``_send_answers``): a caller woken while
        this thread still holds the connection would find it taken, and queue
        its next write instead of running it on the loop."""
        self._answers += outcomes

    def _send_answers(self) -> None:
        outcomes, self._answers = self._answers, []
        if not outcomes:
            return
        if len(outcomes) == 1:
            _hand_back(outcomes[0][0].future.get_loop(), outcomes)
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].future.get_loop(), []).append(outcome)
        for loop, answered in by_loop.items():  # one wake-up per loop and group
            _hand_back(loop, answered)

    def _begin_immediate(self, connection: sqlite3.Connection) -> None:
        retry_busy(lambda: connection.execute("BEGIN IMMEDIATE"), self._name)

    @staticmethod
    def _rollback(connection: sqlite3.Connection) -> None:
        if connection.in_transaction:
            try:
                connection.execute("ROLLBACK")
            except sqlite3.Error:
                logger.exception("rollback of a write group failed")

    def _shut_down(self) -> None:
        """Fail whatever is still queued, then close the connection."""
        leftovers: list[_Call | _Write] = list(self._held_back)
        self._held_back = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if isinstance(job, _Call | _Write):
                leftovers.append(job)
        for job in leftovers:
            if _claim(job):  # a withdrawn write has nobody waiting for it
                _hand_back(job.future.get_loop(), [(job, None, _closed_error())])
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except sqlite3.Error:
                logger.exception("%s: closing the write connection failed", self._name)
        if self._ended is not None:
            _hand_back(self._ended.get_loop(), [(_Job(self._ended), None, None)])
