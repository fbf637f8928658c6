"""The store behind PgBouncer in transaction mode: each transaction may run on
another server connection, so the driver's prepared statements do not carry
over from one to the next, and the URL says so (``statement_cache_size=0``).

Runs when PgBouncer answers in transaction mode at
``ORCHESTRATOR_TEST_PGBOUNCER_URL`` (default
``postgresql://postgres@127.0.0.1:6432/postgres``), serving any database name
(each test creates its own: ``* = host=...`` in ``[databases]``); skips
otherwise, unless ``ORCHESTRATOR_REQUIRE_PGBOUNCER=1`` (as in CI, which starts
one from ``.ci/pgbouncer.ini.in``) makes that a failure.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from pg_testing import connect_raw, database_url, driver_url, probe, run_sql, with_parameter

from orchestrator_store.location import redact_url
from orchestrator_store.manager import ConnectionLostError, DatabaseError, DatabaseManager

PGBOUNCER_URL = os.environ.get(
    "ORCHESTRATOR_TEST_PGBOUNCER_URL", "postgresql://postgres@127.0.0.1:6432/postgres"
)
REQUIRE_PGBOUNCER = os.environ.get("ORCHESTRATOR_REQUIRE_PGBOUNCER") == "1"
HANG_GUARD = 120.0
AGENTS = 20
STEPS = 5


@pytest.fixture(scope="module")
def pgbouncer() -> str:
    """PgBouncer's URL, without pool parameters (each test says its own)."""
    url = driver_url(PGBOUNCER_URL)
    try:
        pooled = asyncio.run(probe(url)).pooled
        problem = "" if pooled else "it answers, but gives every client a server connection"
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        reason = (
            f"these tests need PgBouncer in transaction mode at {redact_url(url)} ({problem}); "
            "start one (as .ci/run does) or set ORCHESTRATOR_TEST_PGBOUNCER_URL "
            "(ORCHESTRATOR_REQUIRE_PGBOUNCER=1 turns this skip into a failure)"
        )
        if REQUIRE_PGBOUNCER:
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@pytest.fixture
async def pgbouncer_url(pgbouncer: str) -> AsyncIterator[str]:
    """A new database behind PgBouncer, dropped afterwards. Only this test's
    store uses its pool of server connections."""
    name = f"adw_pgbouncer_{uuid.uuid4().hex[:12]}"
    await run_sql(pgbouncer, f"CREATE DATABASE {name} TEMPLATE template0")  # see conftest
    try:
        yield database_url(pgbouncer, name)
    finally:
        await run_sql(pgbouncer, f"DROP DATABASE {name} WITH (FORCE)")


async def test_a_concurrent_workload_runs_through_pgbouncer(pgbouncer_url: str) -> None:
    """20 agents at once: logs, cost increments, transaction() blocks that
    commit and blocks that roll back, all configured by the URL alone."""
    url = with_parameter(
        pgbouncer_url, statement_cache_size="0", max_size="20", command_timeout="30"
    )
    async with DatabaseManager(url) as db:
        definition_id = await db.create_orchestrator_agent("planner", None, "planner")

        async def agent(number: int) -> str:
            agent_id = await db.create_agent(definition_id, f"session_{number}")
            for step in range(STEPS):
                await db.create_agent_log(agent_id, "INFO", "milestone", f"step {step}")
                await db.add_agent_cost(agent_id, 0.25)
                async with db.transaction():
                    await db.create_agent_log(agent_id, "INFO", "milestone", f"block {step}")
                    await db.add_agent_cost(agent_id, 0.25)
                    await db.update_agent(agent_id, status="executing")
                with pytest.raises(RuntimeError):
                    async with db.transaction():
                        await db.create_agent_log(agent_id, "INFO", "milestone", "rolled back")
                        await db.add_agent_cost(agent_id, 100.0)
                        raise RuntimeError("roll back")
            return agent_id

        agent_ids = await asyncio.wait_for(
            asyncio.gather(*(agent(number) for number in range(AGENTS))), HANG_GUARD
        )
        for agent_id in agent_ids:
            messages = [row["message"] for row in await db.get_agent_logs(agent_id)]
            assert sorted(messages) == sorted(
                [f"step {step}" for step in range(STEPS)]
                + [f"block {step}" for step in range(STEPS)]
            )
            agent = await db.get_agent(agent_id) or {}
            assert agent["cost_usd"] == STEPS * 0.5
            assert agent["status"] == "executing"
        counts = await db.count_rows()
        assert counts["agents"] == AGENTS
        assert counts["agent_logs"] == AGENTS * STEPS * 2


async def _run_on_another_server_connection(url: str) -> None:
    """A statement run once, then again while another client holds the server
    connection it ran on, so that PgBouncer gives the store another one. (Only
    this test uses the database's pool, and with one client connection the
    store never needed more than that one server connection.)"""
    async with DatabaseManager(with_parameter(url, max_size="1")) as db:
        await db.create_system_log("INFO", "test", "first")
        other = await connect_raw(url)
        try:
            async with other.transaction():
                await other.execute("SELECT 1")
                await db.create_system_log("INFO", "test", "second")
        finally:
            await other.close()
        assert len(await db.get_system_logs(component="test")) == 2


async def test_with_the_statement_cache_on_the_error_says_what_to_change(
    pgbouncer_url: str,
) -> None:
    with pytest.raises(DatabaseError, match=r"statement_cache_size=0 in the URL") as caught:
        await _run_on_another_server_connection(pgbouncer_url)
    assert "prepared statement" in str(caught.value)
    assert "PgBouncer" in str(caught.value)


async def test_with_the_statement_cache_off_in_the_url_the_same_steps_work(
    pgbouncer_url: str,
) -> None:
    await _run_on_another_server_connection(with_parameter(pgbouncer_url, statement_cache_size="0"))


async def test_a_server_connection_lost_in_a_transaction_is_connection_lost(
    pgbouncer_url: str, pgbouncer: str
) -> None:
    name = f"adw_test_{uuid.uuid4().hex[:12]}"
    url = with_parameter(pgbouncer_url, statement_cache_size="0", max_size="1")
    async with DatabaseManager(with_parameter(url, application_name=name)) as db:
        with pytest.raises(ConnectionLostError, match="was lost") as caught:
            async with db.transaction():
                await db.create_system_log("INFO", "test", "lost with it")
                # PgBouncer names the server connection after the client it serves.
                admin = await connect_raw(pgbouncer)
                try:
                    killed = await admin.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE application_name = $1",
                        name,
                    )
                finally:
                    await admin.close()
                assert killed == 1
                # PgBouncer then closes the store's client connection; once the
                # driver has read that, the pool takes the connection back and
                # the block's next statement finds it gone (not only broken).
                await asyncio.sleep(0.5)
                await db.create_system_log("INFO", "test", "never written")
        assert caught.value.retryable
        await db.create_system_log("INFO", "test", "after")
        assert [row["message"] for row in await db.get_system_logs()] == ["after"]
