"""SQLite's errors as the store sees them: the result codes it acts on, which
errors mean "busy", how a busy operation is tried again, and which of the
store's errors (``errors``) each one becomes.

Busy retries: SQLite has already waited ``busy_timeout`` inside each try (its
busy handler); the store tries ``BUSY_RETRIES`` times in all, pausing a little
longer after each busy answer, with jitter so that contending processes
spread out. The writer thread and the backend's event loop share that policy
(``retry_busy`` and ``retry_busy_async``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from .errors import BusyError, DatabaseError, IntegrityError

__all__ = [
    "BUSY_RETRIES",
    "CONSTRAINT_KINDS",
    "busy_error",
    "busy_wait",
    "is_busy",
    "primary_code",
    "retry_busy",
    "retry_busy_async",
    "translate",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_RETRIES = 4  # tries in all of a busy operation; the last one's error is raised

# Primary result codes (sqlite3 gives the extended code; its low byte is the primary).
SQLITE_BUSY = 5  # another connection holds the lock: "database is locked"
SQLITE_LOCKED = 6  # a conflict within one connection or shared cache: "table is locked"
SQLITE_READONLY = 8
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26
BUSY_CODES = frozenset({SQLITE_BUSY, SQLITE_LOCKED})

# Extended codes of a refused constraint -> ``IntegrityError.constraint``.
CONSTRAINT_KINDS = {
    787: "foreign_key",
    2067: "unique",
    1555: "primary_key",
    275: "check",
    1299: "not_null",
}
# How SQLite names the column of a refused unique or primary key
# (``IntegrityError.field``); a key of several columns lists them all and
# names no one field.
UNIQUE_COLUMN = re.compile(r"UNIQUE constraint failed: \w+\.(\w+)")


def primary_code(exc: BaseException) -> int:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF


def is_busy(exc: BaseException) -> bool:
    """ "database is locked" or "table is locked": the same call may succeed later."""
    return isinstance(exc, sqlite3.OperationalError) and primary_code(exc) in BUSY_CODES


def busy_wait(tries: int) -> float:
    """Seconds to pause after the ``tries``-th busy answer (from 1)."""
    return random.uniform(0.005, 0.05) * tries


def _wait_before_next_try(exc: sqlite3.OperationalError, tries: int, name: str) -> float | None:
    """The policy of both loops below: the pause before another try, or
    ``None`` when ``exc`` is to be raised (not busy, or the last try)."""
    if not is_busy(exc) or tries >= BUSY_RETRIES:
        return None
    delay = busy_wait(tries)
    logger.debug("%s: busy (try %s), retrying in %.3fs", name, tries, delay)
    return delay


# Two loops around one policy: the writer thread must block while it pauses
# (nothing else may use its connection meanwhile), while the event loop must
# await, so that other tasks run and a cancelled caller leaves during the pause.


def retry_busy(attempt: Callable[[], T], name: str) -> T:
    """``attempt()``, on the calling thread, tried again while it is busy."""
    for tries in range(1, BUSY_RETRIES + 1):
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            delay = _wait_before_next_try(exc, tries, name)
            if delay is None:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover  # the last try returns or raises


async def retry_busy_async(attempt: Callable[[], Awaitable[T]], name: str) -> T:
    """``await attempt()``, tried again while it is busy; pauses on the event loop."""
    for tries in range(1, BUSY_RETRIES + 1):
        try:
            return await attempt()
        except sqlite3.OperationalError as exc:
            delay = _wait_before_next_try(exc, tries, name)
            if delay is None:
                raise
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover  # the last try returns or raises


def busy_error(table: str, *, path: Path, busy_timeout: float) -> BusyError:
    return BusyError(
        f"{table}: database is locked: another connection held {path} for longer "
        f"than busy_timeout ({busy_timeout:g}s) on {BUSY_RETRIES} tries",
        table=table,
    )


def translate(
    exc: sqlite3.Error, table: str, action: str, *, path: Path, busy_timeout: float
) -> DatabaseError:
    """The store's error for ``exc``, raised by ``action`` on ``table`` of the
    database at ``path``."""
    code = primary_code(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        kind = CONSTRAINT_KINDS.get(getattr(exc, "sqlite_errorcode", 0), "constraint")
        taken = UNIQUE_COLUMN.fullmatch(str(exc))
        field = taken.group(1) if taken else None
        return IntegrityError(f"{table}: {exc}", table=table, field=field, constraint=kind)
    if code in BUSY_CODES:
        return busy_error(table, path=path, busy_timeout=busy_timeout)
    if code == SQLITE_READONLY:
        return DatabaseError(f"{table}: {path} is read-only: {exc}", table=table)
    if code == SQLITE_CANTOPEN:
        return DatabaseError(
            f"{table}: cannot open {path}: {exc} (is the file or its folder "
            "read-only? the store writes the database and its -wal and -shm files)",
            table=table,
        )
    if code == SQLITE_FULL:
        return DatabaseError(f"{table}: the disk or database is full: {exc}", table=table)
    if code == SQLITE_NOTADB:
        return DatabaseError(f"{path} is not a SQLite database: {exc}", table=table)
    return DatabaseError(f"{table}: {action} failed: {exc}", table=table)
