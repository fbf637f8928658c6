"""Shared fixtures: every test gets its own real store.

``db`` runs each test on both backends: a SQLite file under ``tmp_path`` and a
throwaway schema on a real PostgreSQL server (``ORCHESTRATOR_TEST_POSTGRES_URL``,
default ``postgresql://postgres@127.0.0.1:5432/postgres``). Without a reachable
server the PostgreSQL cases skip, unless ``ORCHESTRATOR_REQUIRE_POSTGRES=1``
(as in CI) makes that a failure. ``@pytest.mark.backend("sqlite")`` keeps a
test to the named backends.

The URL may lead through PgBouncer in transaction mode (CI runs the PostgreSQL
tests a second time that way). A ``search_path`` in the URL does not survive
that (PgBouncer 1.18 refuses it; later ones need ``track_extra_parameters``),
so when the server does not keep it, each test gets a throwaway database
instead of a schema (the pooler must serve any database name: ``* = host=...``).
``@pytest.mark.direct_postgres`` skips a test there: one that counts or kills
the store's own server connections, which a pooler shares out.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from realistic_session import RecordedSession, record_realistic_session

from orchestrator_store.manager import DatabaseManager

BACKENDS = ("sqlite", "postgresql")
POSTGRES_URL = os.environ.get(
    "ORCHESTRATOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("ORCHESTRATOR_REQUIRE_POSTGRES") == "1"


def pytest_configure(config: pytest.Config) -> None:
    # Registered here, not in pyproject.toml, so that generated projects have it too.
    config.addinivalue_line(
        "markers", "backend(*names): run this test only on the named store backends"
    )
    config.addinivalue_line(
        "markers",
        "direct_postgres(why): needs its own server connections (skipped behind a pooler)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backend")
        metafunc.parametrize("backend", marker.args if marker else BACKENDS)


async def _admin(sql: str) -> None:
    # Imported here: the SQLite tests run without asyncpg.
    from pg_testing import run_sql

    await run_sql(POSTGRES_URL, sql)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The test server's URL; skips (or fails, when required) if it is unusable."""
    try:
        asyncio.run(_admin("SELECT 1"))
    except Exception as exc:
        reason = (
            f"PostgreSQL tests need a server at {POSTGRES_URL} ({type(exc).__name__}: {exc}); "
            "start one or set ORCHESTRATOR_TEST_POSTGRES_URL "
            "(ORCHESTRATOR_REQUIRE_POSTGRES=1 turns this skip into a failure)"
        )
        if REQUIRE_POSTGRES:
            pytest.fail(reason)
        pytest.skip(reason)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def postgres_traits(postgres_server: str) -> Any:
    """What the test server is (a ``pg_testing.ServerTraits``), asked once."""
    from pg_testing import probe

    return asyncio.run(probe(postgres_server))


@pytest.fixture(autouse=True)
def _direct_postgres_only(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("direct_postgres")
    if marker is None:
        return
    if "backend" in request.fixturenames and request.getfixturevalue("backend") != "postgresql":
        return
    if request.getfixturevalue("postgres_traits").pooled:
        why = marker.args[0] if marker.args else "it counts or kills the store's own connections"
        pytest.skip(f"{POSTGRES_URL} leads through a pooler that shares server connections: {why}")


@pytest.fixture
async def postgres_url(postgres_server: str, postgres_traits: Any) -> AsyncIterator[str]:
    """A URL whose tables live in a new, empty schema (or database, when the
    server does not keep a URL's search_path), dropped afterwards."""
    from pg_testing import database_url, schema_url

    name = f"adw_test_{uuid.uuid4().hex[:12]}"
    if postgres_traits.schemas_by_url:
        await _admin(f"CREATE SCHEMA {name}")
        try:
            yield schema_url(postgres_server, name)
        finally:
            await _admin(f"DROP SCHEMA {name} CASCADE")
        return
    # template0: copying template1 fails while another suite has a session on it.
    await _admin(f"CREATE DATABASE {name} TEMPLATE template0")
    try:
        yield database_url(postgres_server, name)
    finally:
        await _admin(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "orchestrator.db"


@pytest.fixture
def store_url(backend: str, db_path: Path, request: pytest.FixtureRequest) -> Any:
    """Where this test's store lives: the SQLite file, or a PostgreSQL URL."""
    if backend == "sqlite":
        return db_path
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def db(store_url: Any) -> AsyncIterator[DatabaseManager]:
    async with DatabaseManager(store_url) as manager:
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
