"""The WAL stays bounded: after a commit that leaves it larger than the
journal size limit, the writer restarts it, and SQLite trims the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator_store import sqlite_backend
from orchestrator_store.manager import DatabaseManager

LIMIT = 32 * 1024  # bytes; small so that a few commits outgrow it


def wal_bytes(db_path: Path) -> int:
    wal = Path(f"{db_path}-wal")
    return wal.stat().st_size if wal.exists() else 0


async def wal_sizes_over_200_commits(db_path: Path) -> list[int]:
    """The WAL's size after each of 200 commits of ~8 KiB: 1.6 MiB of frames,
    well under the 1000-page automatic checkpoint, so only the bound can keep
    it small. All 200 rows are there afterwards."""
    sizes = []
    async with DatabaseManager(db_path) as db:
        for index in range(200):
            await db.create_system_log("INFO", "wal", f"entry {index}", {"pad": "x" * 8192})
            sizes.append(wal_bytes(db_path))
        assert len(await db.get_system_logs(component="wal")) == 200
    return sizes


async def test_wal_is_restarted_once_it_outgrows_the_limit(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "JOURNAL_SIZE_LIMIT", LIMIT)
    monkeypatch.setattr(sqlite_backend, "WAL_CHECK_SECONDS", 0.0)  # look after every commit
    sizes = await wal_sizes_over_200_commits(db_path)
    assert max(sizes) < 8 * LIMIT, f"WAL grew to {max(sizes)} bytes"
    assert max(sizes) > LIMIT, "the workload must outgrow the limit to test anything"


async def test_wal_is_restarted_even_while_background_checkpoints_run_back_to_back(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite lets one connection checkpoint at a time and turns the others
    away at once: the writer's restart waits for the background checkpoint
    instead of being turned away, so the bound holds however busy that is."""
    monkeypatch.setattr(sqlite_backend, "JOURNAL_SIZE_LIMIT", LIMIT)
    monkeypatch.setattr(sqlite_backend, "WAL_CHECK_SECONDS", 0.0)
    monkeypatch.setattr(sqlite_backend, "CHECKPOINT_INTERVAL", 0.0)  # checkpoint all the time
    sizes = await wal_sizes_over_200_commits(db_path)
    assert max(sizes) < 8 * LIMIT, f"WAL grew to {max(sizes)} bytes"


async def test_wal_size_is_looked_at_once_per_interval(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Looking is a system call, so commits within ``WAL_CHECK_SECONDS`` of
    the last look skip it: with an interval longer than the test, only the
    first commit looks, and the WAL grows past the limit unchecked."""
    monkeypatch.setattr(sqlite_backend, "JOURNAL_SIZE_LIMIT", LIMIT)
    monkeypatch.setattr(sqlite_backend, "WAL_CHECK_SECONDS", 3600.0)
    # No background checkpoint either: one that caught up between two slow (loaded)
    # commits would let SQLite restart the WAL and trim it to the limit by itself.
    monkeypatch.setattr(sqlite_backend, "CHECKPOINT_INTERVAL", 3600.0)
    async with DatabaseManager(db_path) as db:
        for index in range(40):
            await db.create_system_log("INFO", "wal", f"entry {index}", {"pad": "x" * 8192})
        assert wal_bytes(db_path) > 8 * LIMIT


async def test_wal_is_left_alone_below_the_limit(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No background checkpoint: one that caught up between two slow (loaded) commits
    # would let SQLite restart the WAL from its start, and the file would grow less.
    monkeypatch.setattr(sqlite_backend, "CHECKPOINT_INTERVAL", 3600.0)
    async with DatabaseManager(db_path) as db:
        for index in range(50):
            await db.create_system_log("INFO", "wal", f"entry {index}", {"pad": "x" * 1024})
        # Below the (default, 64 MiB) limit the WAL only grows: no restart was forced.
        assert wal_bytes(db_path) > 50 * 1024


async def test_the_writer_catches_up_so_the_wal_starts_over(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no background checkpoint, once ``CATCH_UP_FRAMES`` frames are in
    the WAL the writer checkpoints them, and the next commit writes the WAL
    from its start again: the file is rewritten in place instead of growing
    (a growing WAL makes every sync at FULL dearer)."""
    from orchestrator_store.wal_index import WalIndex

    monkeypatch.setattr(sqlite_backend, "CATCH_UP_FRAMES", 20)
    monkeypatch.setattr(sqlite_backend, "WAL_CHECK_SECONDS", 0.0)
    monkeypatch.setattr(sqlite_backend, "CHECKPOINT_INTERVAL", 3600.0)
    index = WalIndex(Path(f"{db_path}-shm"))
    try:
        async with DatabaseManager(db_path, synchronous="FULL") as db:
            frames = []
            for number in range(200):
                await db.create_system_log("INFO", "wal", f"entry {number}")
                frames.append(index.frames())
    finally:
        index.close()
    assert max(frames[10:]) < 40  # a commit writes a few frames: never far past 20
    assert frames.count(min(frames)) > 1  # and it started over more than once
