"""close() while other tasks still use the store: nothing hangs, nothing leaks."""

from __future__ import annotations

import asyncio
from pathlib import Path

from orchestrator_store.manager import DatabaseError, DatabaseManager

HANG_GUARD = 60  # seconds; only stops a hung test, never measures speed


async def test_close_wakes_reads_waiting_for_a_reader_connection(db_path: Path) -> None:
    db = DatabaseManager(db_path)
    await db.connect()
    await db.create_system_log("INFO", "test", "one row to read")
    reads = [asyncio.create_task(db.list_recent_system_logs()) for _ in range(20)]
    await asyncio.sleep(0)  # every read starts; most queue for the two reader connections

    await db.close()
    results = await asyncio.wait_for(asyncio.gather(*reads, return_exceptions=True), HANG_GUARD)

    finished = [result for result in results if isinstance(result, list)]
    refused = [result for result in results if isinstance(result, DatabaseError)]
    assert len(finished) + len(refused) == len(reads)
    assert refused, "reads that were still waiting must be told the store closed"
    assert all("closed" in str(error) for error in refused)
    assert all(rows[0]["message"] == "one row to read" for rows in finished)


async def test_close_waits_for_an_open_transaction_to_finish(db_path: Path) -> None:
    db = DatabaseManager(db_path)
    await db.connect()
    inside = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        async with db.transaction():
            await db.create_system_log("INFO", "test", "written before close")
            inside.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await inside.wait()
    closing = asyncio.create_task(db.close())
    await asyncio.sleep(0.05)
    assert not closing.done(), "close() must not pull the connection from under a transaction"
    release.set()
    await asyncio.wait_for(asyncio.gather(task, closing), HANG_GUARD)

    async with DatabaseManager(db_path) as reopened:
        logs = await reopened.get_system_logs()
    assert [row["message"] for row in logs] == ["written before close"]
