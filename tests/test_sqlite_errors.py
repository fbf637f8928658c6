"""SQLite's errors: which ones are "busy", the one retry policy the writer
thread and the backend share (how many tries, how long the pauses, which error
is raised in the end), and what each error becomes for the caller."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator_store import sqlite_errors
from orchestrator_store.errors import BusyError, DatabaseError, IntegrityError
from orchestrator_store.manager import DatabaseManager
from orchestrator_store.sqlite_errors import (
    BUSY_RETRIES,
    busy_wait,
    is_busy,
    retry_busy,
    retry_busy_async,
    translate,
)


@pytest.fixture
def locked_error(tmp_path: Path) -> Iterator[Callable[[], sqlite3.OperationalError]]:
    """Makes the real error SQLite raises when another connection holds the write lock."""
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0)

    def make() -> sqlite3.OperationalError:
        try:
            waiter.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            return exc
        raise AssertionError("BEGIN IMMEDIATE got the lock another connection holds")

    try:
        yield make
    finally:
        waiter.close()
        holder.close()


def table_locked() -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("database table is locked")
    exc.sqlite_errorcode = 262  # type: ignore[attr-defined]  # SQLITE_LOCKED_SHAREDCACHE
    return exc


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the retry loops make, recorded instead of slept, with the
    jitter at its upper bound so that they are exact."""
    recorded: list[float] = []

    async def async_sleep(delay: float) -> None:
        recorded.append(delay)

    monkeypatch.setattr(sqlite_errors, "random", SimpleNamespace(uniform=lambda _a, b: b))
    monkeypatch.setattr(sqlite_errors, "time", SimpleNamespace(sleep=recorded.append))
    monkeypatch.setattr(sqlite_errors, "asyncio", SimpleNamespace(sleep=async_sleep))
    return recorded


class Attempts:
    """An operation that fails with ``errors`` one after another, then returns "done"."""

    def __init__(self, *errors: Callable[[], BaseException]) -> None:
        self.errors = list(errors)
        self.raised: list[BaseException] = []
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= len(self.errors):
            error = self.errors[self.calls - 1]()
            self.raised.append(error)
            raise error
        return "done"

    async def awaited(self) -> str:
        return self()


# --- what counts as busy --------------------------------------------------------------


def test_locked_database_and_locked_table_are_busy(
    locked_error: Callable[[], sqlite3.OperationalError],
) -> None:
    assert is_busy(locked_error())
    assert is_busy(table_locked())


def test_other_errors_are_not_busy(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "other.db")
    try:
        with pytest.raises(sqlite3.OperationalError) as no_table:
            connection.execute("SELECT * FROM missing")
        connection.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
        connection.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(sqlite3.IntegrityError) as duplicate:
            connection.execute("INSERT INTO t VALUES (1)")
    finally:
        connection.close()
    assert not is_busy(no_table.value)
    assert not is_busy(duplicate.value)
    assert not is_busy(TimeoutError("database is locked"))  # the code decides, not the text
    unlocked = sqlite3.IntegrityError("not an operational error")
    unlocked.sqlite_errorcode = 5  # type: ignore[attr-defined]
    assert not is_busy(unlocked)


def test_busy_waits_grow_with_each_try_and_stay_short() -> None:
    for tries in range(1, BUSY_RETRIES):
        samples = [busy_wait(tries) for _ in range(200)]
        assert all(0.005 * tries <= wait <= 0.05 * tries for wait in samples)
        assert len(set(samples)) > 1  # jitter: contending processes spread out


# --- the retry policy, on a thread and on the event loop ------------------------------


def test_busy_is_tried_busy_retries_times_then_the_last_error_is_raised(
    locked_error: Callable[[], sqlite3.OperationalError], waits: list[float]
) -> None:
    attempt = Attempts(*[locked_error] * BUSY_RETRIES)
    with pytest.raises(sqlite3.OperationalError) as caught:
        retry_busy(attempt, "test")
    assert attempt.calls == BUSY_RETRIES == 4
    assert caught.value is attempt.raised[-1]
    assert waits == pytest.approx([0.05, 0.10, 0.15])  # one pause between two tries


async def test_async_busy_is_tried_busy_retries_times_then_the_last_error_is_raised(
    locked_error: Callable[[], sqlite3.OperationalError], waits: list[float]
) -> None:
    attempt = Attempts(*[locked_error] * BUSY_RETRIES)
    with pytest.raises(sqlite3.OperationalError) as caught:
        await retry_busy_async(attempt.awaited, "test")
    assert attempt.calls == BUSY_RETRIES
    assert caught.value is attempt.raised[-1]
    assert waits == pytest.approx([0.05, 0.10, 0.15])


@pytest.mark.parametrize("awaited", [False, True], ids=["thread", "event_loop"])
async def test_busy_then_success_returns_the_result(
    locked_error: Callable[[], sqlite3.OperationalError], waits: list[float], awaited: bool
) -> None:
    attempt = Attempts(locked_error, table_locked, *[locked_error] * (BUSY_RETRIES - 3))
    if awaited:
        result = await retry_busy_async(attempt.awaited, "test")
    else:
        result = retry_busy(attempt, "test")
    assert result == "done"
    assert attempt.calls == BUSY_RETRIES
    assert len(waits) == BUSY_RETRIES - 1


@pytest.mark.parametrize("awaited", [False, True], ids=["thread", "event_loop"])
@pytest.mark.parametrize(
    "error",
    [
        lambda: sqlite3.OperationalError("no such table: t"),
        lambda: sqlite3.IntegrityError("UNIQUE constraint failed"),
        lambda: RuntimeError("not SQLite's"),
    ],
    ids=["operational", "integrity", "other"],
)
async def test_an_error_that_is_not_busy_is_raised_at_once(
    waits: list[float], awaited: bool, error: Callable[[], BaseException]
) -> None:
    attempt = Attempts(error)
    with pytest.raises(type(error())) as caught:
        if awaited:
            await retry_busy_async(attempt.awaited, "test")
        else:
            retry_busy(attempt, "test")
    assert caught.value is attempt.raised[0]
    assert attempt.calls == 1
    assert waits == []


async def test_a_write_against_a_held_lock_follows_the_shared_policy(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer thread's write retries with this module's policy, and what
    it gives up with is a BusyError naming the tries."""
    paused_after: list[int] = []

    def recorded_wait(tries: int) -> float:
        paused_after.append(tries)
        return 0.0

    async with DatabaseManager(db_path, busy_timeout=0) as db:
        monkeypatch.setattr(sqlite_errors, "busy_wait", recorded_wait)
        holder = sqlite3.connect(db_path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(BusyError, match=f"on {BUSY_RETRIES} tries") as caught:
                await db.create_system_log("INFO", "test", "never written")
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        assert is_busy(caught.value.__cause__ or Exception())
        assert paused_after == [1, 2, 3]
        assert await db.get_system_logs() == []


# --- what each error becomes ----------------------------------------------------------


def translated(exc: sqlite3.Error) -> DatabaseError:
    return translate(exc, "agents", "write", path=Path("/data/store.db"), busy_timeout=2.5)


def with_code(cls: type[sqlite3.Error], code: int, message: str = "boom") -> sqlite3.Error:
    exc = cls(message)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


def test_busy_becomes_a_retryable_busy_error(
    locked_error: Callable[[], sqlite3.OperationalError],
) -> None:
    for exc in (locked_error(), table_locked()):
        error = translated(exc)
        assert type(error) is BusyError and error.retryable
        assert error.table == "agents"
        assert "busy_timeout (2.5s) on 4 tries" in str(error)


@pytest.mark.parametrize(
    ("code", "kind"),
    [(787, "foreign_key"), (2067, "unique"), (1555, "primary_key"), (275, "check"),
     (1299, "not_null"), (19, "constraint")],
)  # fmt: skip
def test_refused_constraints_name_their_kind(code: int, kind: str) -> None:
    error = translated(with_code(sqlite3.IntegrityError, code))
    assert isinstance(error, IntegrityError)
    assert error.constraint == kind


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (8, "/data/store.db is read-only"),
        (14, "cannot open /data/store.db"),
        (13, "the disk or database is full"),
        (26, "/data/store.db is not a SQLite database"),
        (10, "agents: write failed: boom"),  # SQLITE_IOERR: no message of its own
    ],
)
def test_other_errors_say_what_happened(code: int, says: str) -> None:
    error: Any = translated(with_code(sqlite3.OperationalError, code))
    assert type(error) is DatabaseError
    assert says in str(error)
    assert not error.retryable
