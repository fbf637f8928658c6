"""Lone writes on the event loop's thread (``inline_writes``): taken when the
store is idle, never when the database is busy, a group is forming, the level is
FULL or the statement runs long; and the store goes on as before around them.

Which thread ran a statement is read from SQLite's trace callback on the write
connection. No assertion depends on how fast anything runs: a write that must
still be waiting is one that cannot finish until the test lets it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_concurrency import (
    CHANCE_TO_MISBEHAVE,
    HANG_GUARD,
    assert_lock_is_free,
    expect_line,
    lock_held_by_another_process,
    raw_system_log_messages,
    send_line,
)

from orchestrator_store import sqlite_backend, sqlite_writer
from orchestrator_store.inline_writes import InlineWrites
from orchestrator_store.manager import DatabaseManager, IntegrityError
from orchestrator_store.sqlite_writer import YIELD_EVERY, Statement, WriterThread
from orchestrator_store.wal_index import WalIndex

pytestmark = pytest.mark.backend("sqlite")

MISSING_ID = "00000000-0000-4000-8000-000000000000"


class Traced:
    """Every statement the write connection starts, with the thread that ran it.
    Python's callback gives the statement's text again for each trigger it
    fires, so statements are told apart by their text (with their values)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str]] = []

    def __call__(self, statement: str) -> None:
        self.seen.append((threading.get_ident(), statement))

    def on(self, thread: int, word: str) -> set[str]:
        return {sql for ident, sql in self.seen if ident == thread and word in sql}

    def off(self, thread: int, word: str) -> set[str]:
        return {sql for ident, sql in self.seen if ident != thread and word in sql}


def writer_of(db: DatabaseManager) -> WriterThread:
    writer: WriterThread = db._backend._writer  # type: ignore[attr-defined]
    return writer


async def traced(db: DatabaseManager) -> Traced:
    trace = Traced()
    await writer_of(db).call(lambda connection: connection.set_trace_callback(trace))
    return trace


async def system_log(db: DatabaseManager, message: str) -> int:
    return await db.create_system_log("INFO", "inline", message)


async def assert_usable(db: DatabaseManager, path: Path, note: str) -> None:
    """The store writes and reads again, holds no transaction and no lock."""
    await asyncio.wait_for(system_log(db, note), HANG_GUARD)
    assert note in [row["message"] for row in await db.get_system_logs(component="inline")]
    assert not await writer_of(db).call(lambda connection: connection.in_transaction)
    await asyncio.to_thread(assert_lock_is_free, path)


@pytest.fixture
async def store(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DatabaseManager]:
    """No background checkpoint: one that caught up with the WAL would send the
    next write to the thread, to start the WAL over (see the last test here)."""
    monkeypatch.setattr(sqlite_backend, "CHECKPOINT_INTERVAL", 3600.0)
    async with DatabaseManager(db_path, busy_timeout=HANG_GUARD) as manager:
        yield manager


async def test_a_lone_write_on_an_idle_store_runs_on_the_loops_thread(
    store: DatabaseManager, db_path: Path
) -> None:
    trace = await traced(store)
    loop_thread = threading.get_ident()
    before = writer_of(store).written_inline

    log_id = await system_log(store, "alone")

    assert writer_of(store).written_inline == before + 1
    assert len(trace.on(loop_thread, "INSERT")) == 1
    assert trace.off(loop_thread, "INSERT") == set()
    assert raw_system_log_messages(db_path) == ["alone"]  # committed: another connection sees it
    rows = await store.get_system_logs(component="inline")
    assert [(row["id"], row["message"]) for row in rows] == [(log_id, "alone")]
    # The writer thread waits for other processes' locks as configured again.
    timeout = await writer_of(store).call(
        lambda connection: connection.execute("PRAGMA busy_timeout").fetchone()[0]
    )
    assert timeout == HANG_GUARD * 1000


async def test_at_full_every_write_takes_the_writer_thread(db_path: Path) -> None:
    async with DatabaseManager(db_path, synchronous="FULL") as db:
        trace = await traced(db)
        loop_thread = threading.get_ident()
        await system_log(db, "synced on the thread")
        assert writer_of(db).written_inline == 0
        assert trace.on(loop_thread, "INSERT") == set()
        assert len(trace.off(loop_thread, "INSERT")) == 1
    assert raw_system_log_messages(db_path) == ["synced on the thread"]


async def test_writes_started_together_share_a_commit_on_the_thread(
    store: DatabaseManager,
) -> None:
    trace = await traced(store)
    loop_thread = threading.get_ident()
    before = writer_of(store).written_inline

    ids = await asyncio.gather(*(system_log(store, f"together {n}") for n in range(50)))

    assert writer_of(store).written_inline == before
    assert trace.on(loop_thread, "INSERT") == set()
    assert len(trace.off(loop_thread, "INSERT")) < 50  # merged: fewer statements than writes
    rows = await store.get_system_logs(component="inline")
    assert sorted((row["id"], row["message"]) for row in rows) == sorted(
        (log_id, f"together {n}") for n, log_id in enumerate(ids)
    )


async def test_a_busy_database_sends_the_write_to_the_thread_and_the_loop_runs_on(
    store: DatabaseManager, db_path: Path
) -> None:
    """Another process holds the write lock: the try on the loop answers busy
    at once, the write waits on the writer thread, and meanwhile the event loop
    keeps turning (a ticker task counts its turns)."""
    trace = await traced(store)
    loop_thread = threading.get_ident()
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    async with lock_held_by_another_process(db_path) as holder:
        write = asyncio.create_task(system_log(store, "after the holder"))
        ticking = asyncio.create_task(ticker())
        try:
            done, _ = await asyncio.wait({write}, timeout=CHANCE_TO_MISBEHAVE)
            assert not done, "the write did not wait for the other process's lock"
            assert turns > 0  # the loop ran on while the write waited
            await send_line(holder, "commit")
            await expect_line(holder, "released")
            await asyncio.wait_for(write, HANG_GUARD)
        finally:
            ticking.cancel()
    assert trace.on(loop_thread, "BEGIN IMMEDIATE")  # tried on the loop, refused at once
    assert trace.on(loop_thread, "INSERT") == set()
    assert len(trace.off(loop_thread, "INSERT")) == 1
    assert raw_system_log_messages(db_path) == ["held", "after the holder"]
    await assert_usable(store, db_path, "after the busy write")


@pytest.mark.parametrize("turns", range(4))
async def test_a_cancelled_lone_write_is_stored_or_never_run(
    store: DatabaseManager, db_path: Path, turns: int
) -> None:
    """Cancelled before its turn comes, the write never ran; once it has run on
    the loop, it returned before the cancellation could land."""
    task = asyncio.create_task(system_log(store, "maybe"))
    for _ in range(turns):
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait({task}, timeout=HANG_GUARD)
    stored = [row["message"] for row in await store.get_system_logs(component="inline")]
    assert stored == ([] if task.cancelled() else ["maybe"])
    await assert_usable(store, db_path, f"after a cancel at turn {turns}")


async def test_a_refused_write_on_the_loop_raises_and_leaves_the_store_idle(
    store: DatabaseManager, db_path: Path
) -> None:
    before = writer_of(store).written_inline
    with pytest.raises(IntegrityError, match=MISSING_ID) as refused:
        await store.create_agent_log(MISSING_ID, "INFO", "milestone", "no such agent")
    assert refused.value.constraint == "foreign_key"
    assert writer_of(store).written_inline == before
    await assert_usable(store, db_path, "after a refused write")
    assert writer_of(store).written_inline == before + 1  # the next one ran on the loop again


async def test_the_commit_that_starts_the_wal_runs_on_the_thread(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It syncs the WAL's new header even at NORMAL: after ``checkpoint()``
    empties the WAL, the next write goes to the thread, the one after it (on
    an idle thread) not."""
    monkeypatch.setattr(sqlite_backend, "CHECKPOINT_INTERVAL", 3600.0)  # no background one
    async with DatabaseManager(db_path) as db:
        await system_log(db, "before")
        await db.checkpoint()
        trace = await traced(db)
        loop_thread = threading.get_ident()
        await system_log(db, "starts the WAL")
        # The thread's housekeeping after that commit holds its connection a
        # moment longer; a write then would go to the thread too. Its next job
        # runs once the housekeeping is done.
        await writer_of(db).call(lambda _connection: None)
        await system_log(db, "appends to it")
        assert trace.off(loop_thread, "INSERT") == trace.off(loop_thread, "starts the WAL") != set()
        assert trace.on(loop_thread, "INSERT") == trace.on(loop_thread, "appends to it") != set()


# --- the writer alone, with a statement that runs long -------------------------


@pytest.fixture
async def bounded_writer(tmp_path: Path) -> AsyncIterator[tuple[WriterThread, Traced]]:
    """A writer that allows no steps on the loop: any statement that reaches
    SQLite's first call of the progress handler is stopped there (a one-row
    INSERT never does)."""
    path = tmp_path / "bounded.db"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode = WAL")
    setup.execute("CREATE TABLE t (n INTEGER NOT NULL)")
    setup.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(5_000)])
    setup.close()
    trace = Traced()

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.set_trace_callback(trace)
        return connection

    wal_index = WalIndex(Path(f"{path}-shm"))
    inline = InlineWrites(
        max_steps=0,
        busy_timeout_ms=5000,
        wal_index=wal_index,
        retry_after=HANG_GUARD,  # within the test, a stopped statement stays on the thread
    )
    writer = WriterThread("bounded", inline=inline)
    await writer.start(connect)
    try:
        yield writer, trace
    finally:
        await writer.stop(lambda _connection: None)
        wal_index.close()


async def test_a_statement_past_its_steps_is_undone_and_run_on_the_thread(
    bounded_writer: tuple[WriterThread, Traced],
) -> None:
    writer, trace = bounded_writer
    loop_thread = threading.get_ident()

    # The first commit starts the WAL (the setup's connection removed it): the thread's.
    first = await writer.write(Statement("INSERT INTO t VALUES (?)", (-1,)))
    small = await writer.write(Statement("INSERT INTO t VALUES (?)", (-2,)))
    deleted = await writer.write(Statement("DELETE FROM t WHERE n >= ?", (0,)))
    again = await writer.write(Statement("DELETE FROM t WHERE n >= ?", (0,)))

    assert first.rowcount == small.rowcount == 1
    assert writer.written_inline == 1  # the second one, short, ran on the loop
    assert deleted.rowcount == 5_000  # stopped on the loop, rolled back, run once on the thread
    assert again.rowcount == 0
    delete = "DELETE FROM t WHERE n >= 0"  # as traced: with its parameter
    assert trace.on(loop_thread, delete) == {delete}
    assert [sql for _, sql in trace.seen if sql == delete] == [delete] * 3  # loop, thread, thread
    rows = await writer.call(lambda connection: connection.execute("SELECT n FROM t").fetchall())
    assert sorted(rows) == [(-2,), (-1,)]
    assert not await writer.call(lambda connection: connection.in_transaction)


class SteppedClock:
    """The writer's clock (``time.monotonic`` in ``sqlite_writer``), moved by the
    test alone: when a turn is due depends on the rule, not on how fast this
    machine writes."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_a_task_writing_alone_skips_turns_but_never_starves_the_others(
    store: DatabaseManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One task's writes in a row go without a turn of the loop before each
    (nobody's write could share their commit), but the writer still yields
    once ``YIELD_EVERY`` has passed since its last turn, and each time the
    other tasks run. Each write here takes a quarter of ``YIELD_EVERY`` on
    the writer's clock: a turn every fourth write, or every fifth where
    rounding lands a step short."""
    real_sleep = asyncio.sleep
    yields = 0

    async def counted_sleep(delay: float, *args: object) -> object:
        nonlocal yields
        yields += delay == 0
        return await real_sleep(delay, *args)

    writes, ticks, writing = 2000, 0, True

    async def ticker() -> None:  # yields through the real sleep: not counted
        nonlocal ticks
        while writing:
            await real_sleep(0)
            ticks += 1

    clock = SteppedClock()
    ticking = asyncio.create_task(ticker())
    await real_sleep(0)  # the ticker is running
    monkeypatch.setattr(sqlite_writer, "time", clock)
    monkeypatch.setattr(asyncio, "sleep", counted_sleep)
    try:
        for n in range(writes):
            await system_log(store, f"alone {n}")
            clock.now += YIELD_EVERY / 4
    finally:
        monkeypatch.undo()
        writing = False
        await ticking
    assert writes // 5 <= yields <= writes // 4 + 1, yields
    assert ticks >= yields  # each turn the writer gave, the ticker took
