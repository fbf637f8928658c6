"""What ``Backend`` declares, both backends do alike: ``execute_many`` here
(the copy to PostgreSQL moves rows with it)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator_store.backend import Backend
from orchestrator_store.dialect import SqlBuilder
from orchestrator_store.manager import DatabaseManager, IntegrityError


def backend_of(db: DatabaseManager) -> Backend:
    return db._backend


async def messages(db: DatabaseManager) -> list[str]:
    return sorted(row["message"] for row in await db.get_system_logs())


async def two_logs(db: DatabaseManager) -> tuple[int, int]:
    first = await db.create_system_log("INFO", "test", "first")
    second = await db.create_system_log("INFO", "test", "second")
    return first, second


def rename(backend: Backend) -> str:
    return SqlBuilder(backend.dialect).update_by_id("system_logs", ["message"])


async def test_execute_many_returns_nothing_and_commits(db: DatabaseManager) -> None:
    first, second = await two_logs(db)
    backend = backend_of(db)

    result: Any = await backend.execute_many(
        rename(backend), [("one", first), ("two", second)], table="system_logs"
    )

    assert result is None  # the same on both backends: callers never depend on more
    assert await messages(db) == ["one", "two"]


async def test_execute_many_writes_every_row_or_none(db: DatabaseManager) -> None:
    first, second = await two_logs(db)
    backend = backend_of(db)

    with pytest.raises(IntegrityError) as caught:
        await backend.execute_many(
            rename(backend), [("one", first), (None, second)], table="system_logs"
        )

    assert caught.value.constraint == "not_null"
    assert await messages(db) == ["first", "second"]
    await backend.execute_many(rename(backend), [], table="system_logs")  # nothing to do


async def test_execute_many_joins_the_tasks_transaction(db: DatabaseManager) -> None:
    first, second = await two_logs(db)
    backend = backend_of(db)

    with pytest.raises(RuntimeError):
        async with db.transaction():
            await backend.execute_many(
                rename(backend), [("one", first), ("two", second)], table="system_logs"
            )
            assert await messages(db) == ["one", "two"]  # seen inside the block
            raise RuntimeError("roll back")

    assert await messages(db) == ["first", "second"]
