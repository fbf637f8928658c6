"""A read-only database and a full disk: a clear DatabaseError, and the file intact after.

Tests run as root here, where permission bits do not stop writes. A read-only
file is made with ``chattr +i`` (immutable: even root cannot write, create or
delete in an immutable folder), falling back to chmod when not root; the test
first proves that the file really cannot be written, and is skipped if neither
works. A full disk is a 512 KiB tmpfs when mounting is allowed, else SQLite's
``max_page_count`` on the store's write connection.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from orchestrator_store.manager import DatabaseError, DatabaseManager


def integrity_and_messages(path: Path) -> tuple[str, list[str]]:
    raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (status,) = raw.execute("PRAGMA integrity_check").fetchone()
        messages = [row[0] for row in raw.execute("SELECT message FROM system_logs ORDER BY id")]
    finally:
        raw.close()
    return status, messages


def _chattr(flag: str, *paths: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        return False
    done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, check=False)
    return done.returncode == 0


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    folder = path.parent
    immutable = _chattr("+i", path, folder)
    if not immutable:
        path.chmod(0o444)
        folder.chmod(0o555)
    try:
        try:
            with path.open("ab"):
                pass
        except PermissionError:
            pass
        else:
            pytest.skip("cannot make a file read-only on this machine")
        yield
    finally:
        if immutable:
            _chattr("-i", path, folder)
        else:
            folder.chmod(0o755)
            path.chmod(0o644)


async def test_read_only_database_gives_a_clear_error_and_stays_intact(db_path: Path) -> None:
    async with DatabaseManager(db_path) as db:
        await db.create_system_log("INFO", "test", "written before")
    before = db_path.read_bytes()

    with read_only(db_path):
        with pytest.raises(DatabaseError, match="read-only") as caught:
            await DatabaseManager(db_path).connect()
        assert isinstance(caught.value.__cause__, sqlite3.Error)

    assert db_path.read_bytes() == before
    assert integrity_and_messages(db_path) == ("ok", ["written before"])


@contextmanager
def small_disk(folder: Path) -> Iterator[bool]:
    """Yields True on a 512 KiB tmpfs, False when mounting is not allowed."""
    folder.mkdir()
    mounted = (
        os.geteuid() == 0
        and shutil.which("mount") is not None
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


async def test_full_disk_gives_a_clear_error_and_keeps_what_was_committed(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path / "disk") as on_tmpfs:
        path = tmp_path / "disk" / "orchestrator.db"
        committed: list[str] = []
        async with DatabaseManager(path) as db:
            if not on_tmpfs:
                limit = (await db.storage())["page_count"] + 40
                await db._backend._require_writer().call(
                    lambda c: c.execute(f"PRAGMA max_page_count = {limit}").fetchall()
                )
            with pytest.raises(DatabaseError, match="full") as caught:
                for number in range(10_000):
                    message = f"row {number} " + "x" * 2000
                    await db.create_system_log("INFO", "filler", message)
                    committed.append(message)
            assert isinstance(caught.value.__cause__, sqlite3.Error)
            assert committed, "some writes fit before the disk filled"
            # the store is still usable: reads work and the lock is free
            assert len(await db.get_system_logs()) == len(committed)
        status, stored = integrity_and_messages(path)
        assert status == "ok"
        assert stored == committed
