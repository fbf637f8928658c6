"""Group commit: concurrent writes share a commit, and a failing write never undoes the others."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from orchestrator_store.manager import DatabaseManager, IntegrityError
from orchestrator_store.sqlite_writer import Statement, WriterThread

MISSING_ID = "00000000-0000-4000-8000-000000000000"
HANG_GUARD = 60  # seconds; only stops a hung test, never measures speed


async def test_only_the_failing_writes_of_a_group_fail(db: DatabaseManager, agent_id: str) -> None:
    async def write(number: int) -> int:
        target = MISSING_ID if number % 5 == 0 else agent_id
        return await db.create_agent_log(target, "INFO", "milestone", f"write {number}")

    results = await asyncio.gather(*(write(n) for n in range(200)), return_exceptions=True)

    failures = {n: r for n, r in enumerate(results) if isinstance(r, BaseException)}
    assert sorted(failures) == list(range(0, 200, 5))
    assert all(isinstance(error, IntegrityError) for error in failures.values())
    assert len({id(error) for error in failures.values()}) == len(failures)  # one each
    assert all(MISSING_ID in str(error) for error in failures.values())
    stored = [row["message"] for row in await db.get_agent_logs(agent_id)]
    assert sorted(stored) == sorted(f"write {n}" for n in range(200) if n % 5)


@pytest.mark.backend("sqlite")  # PostgreSQL runs other tasks' writes beside the block
async def test_writes_of_other_tasks_wait_for_an_open_transaction(
    db: DatabaseManager, agent_id: str
) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()

    async def owner() -> None:
        async with db.transaction():
            await db.create_agent_log(agent_id, "INFO", "milestone", "in the transaction")
            inside.set()
            await release.wait()
            raise RuntimeError("roll the transaction back")

    task = asyncio.create_task(owner())
    await asyncio.wait_for(inside.wait(), HANG_GUARD)
    others = [
        asyncio.create_task(db.create_agent_log(agent_id, "INFO", "milestone", f"other {n}"))
        for n in range(20)
    ]
    await asyncio.sleep(0.05)  # give the other writes every chance to run early
    assert not any(other.done() for other in others)
    release.set()
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(task, HANG_GUARD)
    await asyncio.wait_for(asyncio.gather(*others), HANG_GUARD)

    stored = sorted(row["message"] for row in await db.get_agent_logs(agent_id))
    assert stored == sorted(f"other {n}" for n in range(20))  # the rollback kept them


async def test_a_full_write_queue_makes_writers_wait_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    sqlite3.connect(path).execute("CREATE TABLE t (n INTEGER NOT NULL)").connection.close()
    writer = WriterThread("test-writer", max_queued=4)

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    await writer.start(connect)
    try:
        writes = [
            asyncio.create_task(writer.write(Statement("INSERT INTO t VALUES (?)", (n,))))
            for n in range(100)
        ]
        await asyncio.sleep(0)  # every task has tried to queue its write
        assert writer.queued_writes <= 4
        results = await asyncio.wait_for(asyncio.gather(*writes), HANG_GUARD)
        assert all(result.rowcount == 1 for result in results)
        rows = await writer.call(lambda c: c.execute("SELECT n FROM t ORDER BY n").fetchall())
        assert [n for (n,) in rows] == list(range(100))
    finally:
        await writer.stop(lambda _connection: None)


async def test_close_truncates_the_wal_and_the_limit_is_set(db_path: Path) -> None:
    async with DatabaseManager(db_path) as db:
        definition = await db.create_orchestrator_agent("p", None, "planner")
        agent = await db.create_agent(definition, "s")
        await db.create_agent_logs(
            [{"agent_id": agent, "log_type": "milestone", "message": "m" * 500}] * 500
        )
        assert (await db.storage())["wal_bytes"] > 0
        limit = await db._backend._require_writer().call(
            lambda c: c.execute("PRAGMA journal_size_limit").fetchone()[0]
        )
        assert limit > 0
    wal = Path(f"{db_path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0


async def test_close_leaves_the_wal_to_a_connection_still_reading(db_path: Path) -> None:
    async with DatabaseManager(db_path) as db:
        await db.create_system_log("INFO", "test", "before")
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN")
        other.execute("SELECT count(*) FROM system_logs").fetchone()  # holds a read snapshot
        async with DatabaseManager(db_path) as db:
            await db.create_system_log("INFO", "test", "after")
        # close() returned at once (no wait on the reader) and the row is committed
        other.execute("COMMIT")
        count = other.execute("SELECT count(*) FROM system_logs").fetchone()[0]
        assert count == 2
    finally:
        other.close()
