"""Checkpoints off the write path: a thread of their own, with a connection of their own.

SQLite's automatic checkpoint runs inside the COMMIT that crosses its
threshold: that commit copies megabytes of WAL back into the database and
syncs both files before its callers hear back, so every few hundred writes one
waits several milliseconds, and the writer does nothing else meanwhile. The
write connection turns automatic checkpoints off, and this thread runs a
PASSIVE checkpoint (it never waits for readers or writers) at most every
``interval`` seconds while commits come in, in parallel with the writer.

A PASSIVE checkpoint cannot finish while the writer keeps appending, so under
a steady stream the WAL grows until the writer's bound
(``sqlite_backend.JOURNAL_SIZE_LIMIT``) restarts it; by then nearly every frame
has been copied already, so the restart has little left to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator

__all__ = ["Checkpointer"]

logger = logging.getLogger(__name__)


def _answer(future: asyncio.Future[None]) -> None:
    """From the thread: resolve ``future`` on its event loop, if that still runs."""

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
        future.get_loop().call_soon_threadsafe(resolve)


class Checkpointer:
    """``start()``, then ``committed()`` after each commit, ``stop()`` before the store closes."""

    def __init__(
        self, name: str, connect: Callable[[], sqlite3.Connection], *, interval: float
    ) -> None:
        self._connect = connect
        self._interval = interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._pending = False  # commits since the last checkpoint started
        self._running = threading.Lock()  # held while a checkpoint runs (see paused())
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._ended: asyncio.Future[None] | None = None  # answered as the thread ends
        self._opened: asyncio.Future[None] | None = None  # answered once it tried to connect

    def start(self) -> None:
        """Start the thread; call it on the event loop that will ``stop()`` it."""
        self._ended = asyncio.get_running_loop().create_future()
        self._opened = asyncio.get_running_loop().create_future()
        self._thread.start()

    async def connected(self) -> None:
        """Wait until the thread has opened its connection (or failed to, which
        it logs). Opening reads the schema, a read that holds off restarting
        the WAL meanwhile: better done before the store's first writes."""
        if self._opened is not None:
            await asyncio.shield(self._opened)

    def committed(self) -> None:
        """Called on the writer thread after a commit. Wakes the checkpointer
        only when it is idle: one event per checkpoint, not per commit."""
        if not self._pending:
            self._pending = True
            self._wake.set()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No background checkpoint runs inside this block (one running now is
        waited for). SQLite lets one connection checkpoint at a time and turns
        the others away at once, so the writer's own checkpoint goes here."""
        with self._running:
            yield

    async def stop(self) -> None:
        """Let a running checkpoint finish, close the connection, end the
        thread. Safe to call when it never started."""
        self._stopping.set()
        self._wake.set()
        if self._ended is not None:
            await asyncio.shield(self._ended)
            self._thread.join()  # it has answered as it ended: this returns at once

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            try:
                connection = self._open()
            finally:
                if self._opened is not None:
                    _answer(self._opened)
            if connection is None:
                return  # logged; the writer's bound still keeps the WAL in check
            # The loop's test, not only the wait below: a stop() that lands just
            # before clear() has its wake-up cleared, and would be waited for forever.
            while not self._stopping.is_set():
                self._wake.wait()
                # Let commits gather (one checkpoint per interval); stop() cuts it short.
                if self._stopping.wait(self._interval):
                    return
                self._wake.clear()  # before _pending: a commit now wakes the next round
                self._pending = False
                self._checkpoint(connection)
        finally:
            if connection is not None:
                connection.close()
            if self._ended is not None:
                _answer(self._ended)

    def _open(self) -> sqlite3.Connection | None:
        try:
            return self._connect()
        except sqlite3.Error:
            logger.exception("%s: cannot open the checkpoint connection", self._thread.name)
            return None

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            with self._running:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # another process checkpointing, a full disk: next round
            logger.debug("%s: checkpoint skipped: %s", self._thread.name, exc)
