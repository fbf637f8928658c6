"""Checkpoints run on their own thread, not inside the commits of callers.

Seen from outside: with the write connection's automatic checkpoints off,
only the checkpointer copies pages from the WAL into the database file, so
the file growing while the store is open is its work.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from orchestrator_store.checkpointer import Checkpointer
from orchestrator_store.manager import DatabaseManager

HANG_GUARD = 60  # seconds; only stops a hung test, never measures speed
PAD = "x" * 4000


def file_bytes(path: Path) -> int:
    return path.stat().st_size


async def wait_for_growth(path: Path, than: int) -> int:
    for _ in range(HANG_GUARD * 20):
        size = file_bytes(path)
        if size > than:
            return size
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path.name} stayed at {than} bytes: nothing was checkpointed")


async def test_commits_do_not_checkpoint_the_checkpointer_does(db_path: Path) -> None:
    async with DatabaseManager(db_path) as db:
        before = file_bytes(db_path)
        # ~1.2 MB of WAL frames: under SQLite's own automatic threshold (1000 pages)
        for index in range(300):
            await db.create_system_log("INFO", "checkpoint", f"entry {index}", {"pad": PAD})
        await wait_for_growth(db_path, before)
        assert len(await db.get_system_logs(component="checkpoint")) == 300


async def test_writes_inside_transactions_are_checkpointed_too(db_path: Path) -> None:
    async with DatabaseManager(db_path) as db:
        before = file_bytes(db_path)
        for index in range(30):
            async with db.transaction():
                for line in range(10):
                    await db.create_system_log("INFO", "tx", f"{index}.{line}", {"pad": PAD})
        await wait_for_growth(db_path, before)


async def test_close_ends_the_checkpointer_and_truncates_the_wal(db_path: Path) -> None:
    async with DatabaseManager(db_path) as db:
        for index in range(50):
            await db.create_system_log("INFO", "close", f"entry {index}", {"pad": PAD})
        assert any(t.name.startswith("adw-checkpointer") for t in threading.enumerate())

    assert not any(t.name.startswith("adw-checkpointer") for t in threading.enumerate())
    wal = Path(f"{db_path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    check = sqlite3.connect(db_path)
    try:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert check.execute("SELECT count(*) FROM system_logs").fetchone()[0] == 50
    finally:
        check.close()


class _StopLandsBeforeClear(threading.Event):
    """The checkpointer's wake-up event, with ``stop()`` landing in the instant
    between a round's wait and its ``clear()`` (the race, made certain)."""

    def __init__(self, checkpointer: Checkpointer, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.checkpointer = checkpointer
        self.loop = loop
        self.stop: concurrent.futures.Future[None] | None = None

    def clear(self) -> None:
        if self.stop is None:
            self.stop = asyncio.run_coroutine_threadsafe(self.checkpointer.stop(), self.loop)
            while not self.checkpointer._stopping.is_set():  # stop() has set both events
                time.sleep(0.001)
        super().clear()


async def test_stop_ends_the_thread_even_when_it_lands_just_before_a_round_clears(
    db_path: Path,
) -> None:
    async with DatabaseManager(db_path):
        pass  # the file and its schema
    checkpointer = Checkpointer(
        "adw-checkpointer:test", lambda: sqlite3.connect(db_path), interval=0.01
    )
    wake = _StopLandsBeforeClear(checkpointer, asyncio.get_running_loop())
    checkpointer._wake = wake
    checkpointer.start()
    checkpointer.committed()
    for _ in range(HANG_GUARD * 100):
        if wake.stop is not None:
            break
        await asyncio.sleep(0.01)
    assert wake.stop is not None
    await asyncio.wait_for(asyncio.wrap_future(wake.stop), HANG_GUARD)
    assert not checkpointer._thread.is_alive()


# Another process checkpointing holds SQLite's checkpoint lock: byte 121 of the
# -shm file (the WAL index's locks start at 120; the checkpoint lock is the second).
# It waits for the lock (no LOCK_NB): the store's background checkpoint may hold it briefly.
HOLD_CHECKPOINT_LOCK = """
import fcntl, os, sys
handle = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(handle, fcntl.LOCK_EX, 1, 121, os.SEEK_SET)
print("locked", flush=True)
sys.stdin.readline()
"""


@contextlib.asynccontextmanager
async def another_process_checkpointing(
    db_path: Path,
) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """A second process holding the checkpoint lock until the yielded
    ``release()`` is awaited (or the block ends)."""
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLD_CHECKPOINT_LOCK,
        f"{db_path}-shm",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdin is not None
    stdin = holder.stdin

    async def release() -> None:
        stdin.write(b"\n")
        await stdin.drain()

    try:
        assert (await holder.stdout.readline()).strip() == b"locked"
        yield release
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()


async def test_checkpoint_waits_for_another_process_checkpointing(db_path: Path) -> None:
    # busy_timeout is how long checkpoint() keeps trying: far longer than the lock is held.
    async with DatabaseManager(db_path, busy_timeout=HANG_GUARD) as db:
        for index in range(20):
            await db.create_system_log("INFO", "other", f"entry {index}", {"pad": PAD})
        async with another_process_checkpointing(db_path) as release:
            checkpoint = asyncio.create_task(db.checkpoint())
            await asyncio.sleep(0.3)
            waited = not checkpoint.done()  # SQLite itself answers at once: busy
            await release()
            result = await asyncio.wait_for(checkpoint, HANG_GUARD)
        assert waited
        assert result == {"busy": 0, "wal_pages": 0, "checkpointed_pages": 0}
        assert Path(f"{db_path}-wal").stat().st_size == 0


async def test_checkpoint_gives_up_after_busy_timeout_and_says_busy(db_path: Path) -> None:
    async with DatabaseManager(db_path, busy_timeout=0.2) as db:
        await db.create_system_log("INFO", "other", "entry", {"pad": PAD})
        async with another_process_checkpointing(db_path):
            result = await asyncio.wait_for(db.checkpoint(), HANG_GUARD)
        assert result == {"busy": 1, "wal_pages": -1, "checkpointed_pages": -1}
        assert len(await db.get_system_logs(component="other")) == 1
