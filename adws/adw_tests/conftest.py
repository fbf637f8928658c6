"""Shared fixtures: every test gets its own real SQLite file under tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from adw_database import DatabaseManager
from realistic_session import RecordedSession, record_realistic_session


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "orchestrator.db"


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[DatabaseManager]:
    async with DatabaseManager(db_path) as manager:
        yield manager


@pytest.fixture
async def definition_id(db: DatabaseManager) -> str:
    return await db.create_orchestrator_agent("planner", "Plans the work", "planner")


@pytest.fixture
async def agent_id(db: DatabaseManager, definition_id: str) -> str:
    return await db.create_agent(definition_id, "feature_Tac_14_Task_8")


@pytest.fixture
async def recorded(tmp_path: Path) -> RecordedSession:
    """A closed store file holding the realistic session of ``realistic_session``."""
    return await record_realistic_session(tmp_path / "recorded" / "orchestrator.db")
