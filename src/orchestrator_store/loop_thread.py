"""The event loop behind ``SyncDatabaseManager``: one daemon thread running a
private asyncio loop, and the calls other threads hand to it.

Why a loop of its own: a synchronous caller may be a plain script, one of
several threads, or code that already runs inside another event loop (where
``asyncio.run`` is refused). Handing each coroutine to a loop that belongs to
nobody else works the same in all three; the caller's thread just blocks.

Ctrl-C: ``KeyboardInterrupt`` reaches the main thread while it waits for a
call, or just as it hands one over. The call's task is then cancelled and
awaited to its end (the store finishes or rolls back what it started, so it
stays usable), and only then does ``KeyboardInterrupt`` propagate.

Transactions: an async ``transaction()`` belongs to the task that opened it,
so a synchronous block is held open by one task (``HeldTransaction``) that
runs every call the opening thread makes inside the block, nested blocks as
savepoints, until the thread leaves it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import DatabaseError, NotConnectedError
from .ownership import Transaction

__all__ = ["STORE_CLOSED", "Call", "HeldTransaction", "LoopThread", "discard"]

T = TypeVar("T")

INTERRUPT_CHECK_SECONDS = 0.1  # how late a Ctrl-C may be noticed at worst (see _wait_any)
STORE_CLOSED = "the store is closed: call `db.connect()` to reopen it"
CLOSED_WHILE_WAITING = "the store was closed while this call waited"
FORKED = (
    "this store was opened in the parent of this forked process, whose event "
    "loop thread does not run here: call `db.connect()` (or open a new manager) "
    "in this process"
)
# Cancellation reaches a caller as either class, depending on which future it waited on.
CANCELLED = (asyncio.CancelledError, concurrent.futures.CancelledError)


def discard(work: Awaitable[Any]) -> None:
    """Close a coroutine that will never run (no 'never awaited' warning)."""
    if inspect.iscoroutine(work):
        work.close()


def _cancel(future: concurrent.futures.Future[Any]) -> None:
    """Cancel a pending future so that ``concurrent.futures.wait`` sees it too
    (``cancel()`` alone wakes only ``result()``: an executor would notify the
    waiters when it picked the work up; asyncio's own hand-off does this too)."""
    if not future.done():
        future.cancel()
        future.set_running_or_notify_cancel()


def _wait_any(futures: list[concurrent.futures.Future[Any]], timeout: float | None = None) -> None:
    """Block until one of ``futures`` is done, or ``timeout`` seconds passed.

    The main thread waits in slices of ``INTERRUPT_CHECK_SECONDS``: CPython
    runs signal handlers between waits, and a Ctrl-C that lands just before a
    blocking wait starts does not interrupt it, so one long wait could hide
    it until the call ends (or forever)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    in_main_thread = threading.current_thread() is threading.main_thread()
    while True:
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        step = remaining
        if in_main_thread and (remaining is None or remaining > INTERRUPT_CHECK_SECONDS):
            step = INTERRUPT_CHECK_SECONDS
        done, _ = concurrent.futures.wait(
            futures, step, return_when=concurrent.futures.FIRST_COMPLETED
        )
        if done or remaining == 0.0:
            return


def _wait_through_interrupts(future: concurrent.futures.Future[Any]) -> None:
    """Wait until ``future`` is done, however often Ctrl-C comes meanwhile:
    the work it stands for is already cancelled and ends soon."""
    while not future.done():
        with suppress(KeyboardInterrupt):
            _wait_any([future])


class Later(Generic[T]):
    """An awaitable that makes its coroutine only when awaited. Ctrl-C can
    land between making a coroutine and handing it to a ``Call`` (CPython
    checks for signals as a Python function, here ``Call.__init__``, starts);
    a coroutine lost there is reported as never awaited. A ``Later`` lost
    there holds none."""

    def __init__(self, make: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._make = make

    def __await__(self) -> Generator[Any, None, T]:
        return self._make().__await__()


class Call(Generic[T]):
    """One awaitable run as a task on the loop for a thread that waits on
    ``future``, and may cancel it from outside.

    Not ``asyncio.run_coroutine_threadsafe``: its future exists only once it
    returns, so Ctrl-C arriving just after the hand-off would leave a task
    that nobody can cancel or wait for. Here the future exists first, and
    every step happens on the loop in the order the thread asked for it: a
    ``cancel`` that finds no task knows that ``start`` never reached the
    loop, and settles the future itself."""

    def __init__(self, work: Awaitable[T]) -> None:
        self._work = work
        self._task: asyncio.Future[T] | None = None
        self.future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def abandon(self) -> None:
        """Never handed to the loop: close the coroutine."""
        discard(self._work)

    def start(self) -> None:
        """On the loop."""
        self._task = asyncio.ensure_future(self._work)
        self._task.add_done_callback(self._settle)

    def _settle(self, task: asyncio.Future[T]) -> None:
        if task.cancelled():
            _cancel(self.future)
        elif (error := task.exception()) is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(task.result())

    def cancel(self) -> None:
        """On the loop, after ``start`` if that was handed over at all."""
        if self._task is not None:
            self._task.cancel()
        else:
            self.abandon()
            _cancel(self.future)


class LoopThread:
    """A private event loop in a daemon thread: a program that never stops it
    still exits. ``call`` runs a coroutine there and blocks until it ends."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()  # a hand-off never races stop()
        self._accepting = True
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            # Calls still running when the loop stops are cancelled and run to
            # their end, so no thread waits for an answer that never comes.
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            asyncio.set_event_loop(None)
            loop.close()

    @property
    def in_this_process(self) -> bool:
        """False in a child forked after the thread started: there it does not run."""
        return os.getpid() == self._pid

    def start(self, call: Call[Any]) -> None:
        """Hand ``call`` to the loop; ``NotConnectedError`` once stopped."""
        if not self.in_this_process:  # the call would wait forever for a loop that is not there
            call.abandon()
            raise NotConnectedError(FORKED)
        if threading.current_thread() is self._thread:
            call.abandon()
            raise RuntimeError(
                "a SyncDatabaseManager method was called on the manager's own event loop "
                "thread, where it would wait for itself: use the async DatabaseManager there"
            )
        with self._lock:
            if not self._accepting:
                call.abandon()
                raise NotConnectedError(STORE_CLOSED)
            self._loop.call_soon_threadsafe(call.start)

    def cancel_and_wait(self, call: Call[Any]) -> None:
        """Ctrl-C: cancel ``call`` and wait until it has ended."""
        try:
            self._loop.call_soon_threadsafe(call.cancel)
        except RuntimeError:  # the loop is closed: whatever was handed over has ended
            _cancel(call.future)
        _wait_through_interrupts(call.future)

    def call(self, work: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``work`` on the loop and return (or raise) what it did. On
        Ctrl-C, cancel it and wait for its end before ``KeyboardInterrupt``
        propagates. ``TimeoutError`` after ``timeout`` seconds, if given
        (``work`` goes on)."""
        call = Call(work)
        try:
            self.start(call)
            _wait_any([call.future], timeout)
            if not call.future.done():
                raise TimeoutError(f"the call did not end within {timeout} s (it goes on)")
            return call.future.result()
        except KeyboardInterrupt:
            self.cancel_and_wait(call)
            raise
        except CANCELLED:
            raise NotConnectedError(CLOSED_WHILE_WAITING) from None

    def post(self, callback: Callable[[], None]) -> None:
        self._loop.call_soon_threadsafe(callback)

    def stop(self, *, wait: bool = True) -> None:
        """Stop the loop (cancelling what still runs) and, if ``wait``, wait
        for its thread to end."""
        with self._lock:
            if self._accepting:
                self._accepting = False
                self._loop.call_soon_threadsafe(self._loop.stop)
        if wait and threading.current_thread() is not self._thread:
            self._thread.join()


# --- transactions ---------------------------------------------------------------------


class _RolledBack(Exception):
    """Raised inside the async block to roll it back: the sync block raised."""


@dataclass
class _Open:
    """Enter a (nested) block; ``entered`` gets its Transaction, ``left`` its end."""

    entered: concurrent.futures.Future[Transaction]
    left: concurrent.futures.Future[None]


@dataclass
class _Leave:
    failed: bool


@dataclass
class _Run:
    work: Awaitable[Any]
    answer: concurrent.futures.Future[Any]


class HeldTransaction:
    """One thread's ``transaction()`` block, held open by one task on the loop.

    The task enters the async block and then runs, one after another, what
    the thread sends it: the thread's calls (which so join the transaction),
    nested blocks (savepoints, entered recursively by the same task) and the
    end of each block (commit, or rollback when the sync block raised). If
    the thread is interrupted while it waits, the task is cancelled, which
    rolls everything back, and the block is dead: leaving it does nothing."""

    def __init__(
        self,
        runner: LoopThread,
        open_block: Callable[[], AbstractAsyncContextManager[Transaction]],
    ) -> None:
        self._runner = runner
        self._open_block = open_block
        self._inbox: asyncio.Queue[_Open | _Leave | _Run] = asyncio.Queue()  # read on the loop
        self._blocks: list[_Open] = []  # the open blocks, outermost first
        self._holder: Call[None] | None = None  # the task holding the block open
        self.dead = False

    @property
    def depth(self) -> int:
        return len(self._blocks)

    def enter(self) -> Transaction:
        block = _Open(concurrent.futures.Future(), concurrent.futures.Future())
        try:
            if self._holder is None:
                self._holder = Call(Later(lambda: self._hold(block)))
                self._runner.start(self._holder)
            else:
                self._send(block)
            transaction = self._wait(block.entered)
            self._blocks.append(block)
        except KeyboardInterrupt:  # wherever it came, no block is left open on the loop
            self._abandon()
            raise
        return transaction

    def leave(self, *, failed: bool) -> None:
        """End the innermost block: commit it, or roll it back if ``failed``.
        Raises what the commit raised."""
        if self.dead or not self._blocks:
            return
        try:
            block = self._blocks.pop()
            self._send(_Leave(failed))
            self._wait(block.left)
            if not self._blocks and self._holder is not None:
                self._wait(self._holder.future)  # the holding task has ended
        except KeyboardInterrupt:
            self._abandon()
            raise

    def call(self, work: Awaitable[T]) -> T:
        if self.dead and self._runner.in_this_process:  # a forked child hears why below
            discard(work)
            raise DatabaseError(
                "this transaction() block was interrupted and rolled back: leave it first"
            )
        try:
            answer: concurrent.futures.Future[T] = concurrent.futures.Future()
            self._send(_Run(work, answer))
            return self._wait(answer)
        except KeyboardInterrupt:
            self._abandon()
            raise

    def _abandon(self) -> None:
        """Ctrl-C: cancel the holding task (the store rolls the block back)
        and wait for it to end; the block is dead from now on."""
        self.dead = True
        if self._holder is not None:
            self._runner.cancel_and_wait(self._holder)

    def _send(self, item: _Open | _Leave | _Run) -> None:
        if not self._runner.in_this_process:
            # A child forked inside the block: the holding task is the parent's,
            # and nothing here would ever answer. The block is dead in this process.
            self.dead = True
            if isinstance(item, _Run):
                discard(item.work)
            raise NotConnectedError(FORKED)
        try:
            self._runner.post(lambda: self._inbox.put_nowait(item))
        except RuntimeError:  # the loop is closed
            if isinstance(item, _Run):
                discard(item.work)
            raise NotConnectedError(CLOSED_WHILE_WAITING) from None

    def _wait(self, future: concurrent.futures.Future[T]) -> T:
        """``future``'s result, or ``NotConnectedError`` if the holding task
        ended without answering (the store was closed and the loop stopped)."""
        assert self._holder is not None
        holder = self._holder.future
        try:
            either: list[concurrent.futures.Future[Any]] = [future, holder]
            _wait_any(either)
            if not future.done():
                self.dead = True
                raise NotConnectedError(CLOSED_WHILE_WAITING)
            return future.result()
        except CANCELLED:
            self.dead = True
            raise NotConnectedError(CLOSED_WHILE_WAITING) from None

    # --- on the loop -----------------------------------------------------------------

    async def _hold(self, block: _Open) -> None:
        """Enter ``block`` and serve the thread until it leaves; the answers go
        to the block's futures. Cancellation is passed on after answering."""
        try:
            async with self._open_block() as transaction:
                block.entered.set_result(transaction)
                await self._serve()
        except _RolledBack:
            block.left.set_result(None)
        except BaseException as exc:
            (block.left if block.entered.done() else block.entered).set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            block.left.set_result(None)

    async def _serve(self) -> None:
        while True:
            item = await self._inbox.get()
            if isinstance(item, _Leave):
                if item.failed:
                    raise _RolledBack
                return
            if isinstance(item, _Open):
                await self._hold(item)
                continue
            try:
                item.answer.set_result(await item.work)
            except BaseException as exc:
                item.answer.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
