"""The original module's helpers, on both backends: ``log_agent_event`` (never
raises, except cancellation), the log listings by type, ``cleanup_old_logs()``'s
default, ``query()`` (read-only SQL), the missing ``conn``, and the messages of
the deliberate differences (malformed ids, naive timestamps)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator_store import ReadOnlyError
from orchestrator_store import manager as manager_module
from orchestrator_store.manager import (
    DatabaseError,
    DatabaseManager,
    NotConnectedError,
    ValidationError,
)

MANAGER_LOGGER = "orchestrator_store.manager"


def stamp(moment: datetime) -> str:
    """A timestamp in the store's own format."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def days_ago(days: float) -> str:
    return stamp(datetime.now(UTC) - timedelta(days=days))


def mark(db: DatabaseManager, index: int) -> str:
    """The backend's placeholder for the ``index``-th parameter (from 1)."""
    return "?" if db.backend_name == "sqlite" else f"${index}"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == MANAGER_LOGGER and record.levelno == logging.WARNING
    ]


@pytest.fixture
async def other_agent_id(db: DatabaseManager, definition_id: str) -> str:
    return await db.create_agent(definition_id, "feature_Tac_14_Task_9")


# --- log_agent_event -------------------------------------------------------------


async def test_log_agent_event_writes_a_line_and_returns_its_id(
    db: DatabaseManager, agent_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = await db.log_agent_event(agent_id, "milestone", "plan ready", {"steps": 5})
    second = await db.log_agent_event(
        agent_id, "error", "tool failed", metadata=None, log_level="ERROR"
    )

    assert isinstance(first, int)
    assert isinstance(second, int)
    assert second > first
    rows = await db.get_agent_logs(agent_id)
    assert [(row["id"], row["log_level"], row["log_type"], row["message"]) for row in rows] == [
        (first, "INFO", "milestone", "plan ready"),
        (second, "ERROR", "error", "tool failed"),
    ]
    assert [row["details"] for row in rows] == [{"steps": 5}, None]
    assert warnings_of(caplog) == []


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("missing agent", "IntegrityError"),
        ("bad log_type", "ValidationError"),
        ("malformed agent id", "ValidationError"),
        ("blank message", "ValidationError"),
        ("metadata that is not JSON", "ValidationError"),
    ],
)
async def test_log_agent_event_returns_none_and_warns_instead_of_raising(
    db: DatabaseManager,
    agent_id: str,
    caplog: pytest.LogCaptureFixture,
    case: str,
    error: str,
) -> None:
    arguments: dict[str, Any] = {
        "agent_id": agent_id,
        "log_type": "milestone",
        "message": f"line for {case}",
    }
    if case == "missing agent":
        arguments["agent_id"] = str(uuid.uuid4())
    elif case == "bad log_type":
        arguments["log_type"] = "progress"
    elif case == "malformed agent id":
        arguments["agent_id"] = "adw-orchestrator"
    elif case == "blank message":
        arguments["message"] = "   "
    else:
        arguments["metadata"] = {"when": datetime.now(UTC)}
    before = await db.count_rows()

    with caplog.at_level(logging.WARNING, logger=MANAGER_LOGGER):
        assert await db.log_agent_event(**arguments) is None

    [warning] = warnings_of(caplog)
    assert repr(arguments["agent_id"]) in warning
    assert repr(arguments["message"]) in warning
    assert error in warning
    assert await db.count_rows() == before


async def test_log_agent_event_names_any_value_it_was_given(
    db: DatabaseManager, caplog: pytest.LogCaptureFixture
) -> None:
    """The warning shows what the caller passed, as error messages do
    (``models.shown``): an int as itself, a huge one by its size."""
    with caplog.at_level(logging.WARNING, logger=MANAGER_LOGGER):
        assert await db.log_agent_event(12345, "milestone", 2**70) is None  # type: ignore[arg-type]

    [warning] = warnings_of(caplog)
    assert "agent 12345:" in warning
    assert "log line an integer of 71 bits not written" in warning


async def test_log_agent_event_on_a_closed_store_returns_none_and_warns(
    db: DatabaseManager, agent_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    await db.close()

    with caplog.at_level(logging.WARNING, logger=MANAGER_LOGGER):
        assert await db.log_agent_event(agent_id, "milestone", "after close") is None

    [warning] = warnings_of(caplog)
    assert "NotConnectedError" in warning
    assert agent_id in warning
    assert "'after close'" in warning
    await db.connect()
    assert [row["message"] for row in await db.get_agent_logs(agent_id)] == []


async def test_log_agent_event_lets_cancellation_through(
    db: DatabaseManager, agent_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A task cancelled while its log line waits for another task's
    transaction gets CancelledError, not None: the holder's transaction keeps
    the write waiting (SQLite: the write lock; PostgreSQL: the row lock of the
    agent it deletes, which the line's foreign key needs)."""
    locked, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        with contextlib.suppress(RuntimeError):
            async with db.transaction():
                await db.delete_agent(agent_id)
                locked.set()
                await release.wait()
                raise RuntimeError("roll back: the agent stays")

    holder = asyncio.create_task(hold())
    await asyncio.wait_for(locked.wait(), 30)
    logging_task = asyncio.create_task(db.log_agent_event(agent_id, "milestone", "cancelled"))
    await asyncio.sleep(0)  # it runs up to its first wait, inside the store
    assert not logging_task.done()

    logging_task.cancel()
    with (
        caplog.at_level(logging.WARNING, logger=MANAGER_LOGGER),
        pytest.raises(asyncio.CancelledError),
    ):
        await logging_task
    release.set()
    await asyncio.wait_for(holder, 30)

    assert warnings_of(caplog) == []
    assert await db.get_agent(agent_id) is not None
    assert isinstance(await db.log_agent_event(agent_id, "milestone", "after"), int)


# --- logs by type -------------------------------------------------------------------


async def test_get_logs_by_type_across_agents_newest_first(
    db: DatabaseManager,
    agent_id: str,
    other_agent_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ordered by created_at, newest first; lines written in the same
    microsecond by id, also newest first."""
    now = datetime.now(UTC)
    clock = iter(
        [stamp(now - timedelta(minutes=5)), stamp(now - timedelta(minutes=9))]
        + [stamp(now - timedelta(minutes=1))] * 3
    )
    monkeypatch.setattr(manager_module, "utc_now", lambda: next(clock))
    five_ago = await db.create_agent_log(agent_id, "INFO", "milestone", "5 minutes ago")
    nine_ago = await db.create_agent_log(other_agent_id, "INFO", "milestone", "9 minutes ago")
    tie_first = await db.create_agent_log(other_agent_id, "INFO", "milestone", "tie 1")
    await db.create_agent_log(agent_id, "INFO", "error", "another type")
    tie_second = await db.create_agent_log(agent_id, "INFO", "milestone", "tie 2")
    monkeypatch.undo()

    rows = await db.get_logs_by_type("milestone")

    assert [row["id"] for row in rows] == [tie_second, tie_first, five_ago, nine_ago]
    assert {row["agent_id"] for row in rows} == {agent_id, other_agent_id}
    assert [row["id"] for row in await db.get_logs_by_type("milestone", limit=2)] == [
        tie_second,
        tie_first,
    ]
    assert [row["message"] for row in await db.get_logs_by_type("error")] == ["another type"]
    assert await db.get_logs_by_type("tool_call") == []


async def test_get_agent_logs_by_type_is_one_agents_newest_first(
    db: DatabaseManager, agent_id: str, other_agent_id: str
) -> None:
    mine = [await db.create_agent_log(agent_id, "INFO", "tool_call", f"call {n}") for n in range(3)]
    await db.create_agent_log(other_agent_id, "INFO", "tool_call", "not mine")
    await db.create_agent_log(agent_id, "INFO", "milestone", "other type")

    rows = await db.get_agent_logs_by_type(agent_id, "tool_call")

    assert [row["id"] for row in rows] == mine[::-1]
    assert {row["agent_id"] for row in rows} == {agent_id}
    limited = await db.get_agent_logs_by_type(agent_id, "tool_call", limit=1)
    assert [row["id"] for row in limited] == [mine[-1]]
    assert await db.get_agent_logs_by_type(other_agent_id, "milestone") == []


async def test_get_recent_logs_is_list_recent_agent_logs(
    db: DatabaseManager, agent_id: str, other_agent_id: str
) -> None:
    ids = [
        await db.create_agent_log(owner, "INFO", "milestone", f"line {n}")
        for n, owner in enumerate([agent_id, other_agent_id, agent_id])
    ]
    await db.create_system_log("INFO", "orchestrator", "a system line is not an agent log")

    recent = await db.get_recent_logs()

    assert [row["id"] for row in recent] == ids[::-1]
    assert recent == await db.list_recent_agent_logs()
    assert [row["id"] for row in await db.get_recent_logs(limit=2)] == ids[:0:-1]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda db, agent: db.get_logs_by_type("progress"), "log_type"),
        (lambda db, agent: db.get_logs_by_type(None), "log_type"),
        (lambda db, agent: db.get_logs_by_type("milestone", limit=0), "limit"),
        (lambda db, agent: db.get_logs_by_type("milestone", limit="10"), "limit"),
        (lambda db, agent: db.get_agent_logs_by_type(agent, "progress"), "log_type"),
        (lambda db, agent: db.get_agent_logs_by_type(agent, "milestone", limit=-1), "limit"),
        (lambda db, agent: db.get_agent_logs_by_type("nonexistent-id", "milestone"), "agent_id"),
        (lambda db, agent: db.get_agent_logs_by_type(None, "milestone"), "agent_id"),
        (lambda db, agent: db.get_recent_logs(limit=0), "limit"),
    ],
)
async def test_log_listings_validate_their_arguments(
    db: DatabaseManager, agent_id: str, call: Any, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await call(db, agent_id)
    assert caught.value.table == "agent_logs"
    assert caught.value.field == field
    assert f"agent_logs.{field}" in str(caught.value)


# --- cleanup_old_logs() ----------------------------------------------------------------


async def test_cleanup_old_logs_keeps_30_days_by_default(
    db: DatabaseManager, agent_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old rows are written through the store with its clock set back, so this
    runs on both backends."""
    for age, message in [(31, "31 days"), (29, "29 days")]:
        monkeypatch.setattr(manager_module, "utc_now", lambda age=age: days_ago(age))
        await db.create_agent_log(agent_id, "INFO", "milestone", message)
        await db.create_system_log("INFO", "orchestrator", message)
    monkeypatch.undo()
    await db.create_agent_log(agent_id, "INFO", "milestone", "now")

    assert await db.count_old_logs(30) == {"agent_logs": 1, "system_logs": 1}
    assert await db.cleanup_old_logs() == 2

    assert [row["message"] for row in await db.get_agent_logs(agent_id)] == ["29 days", "now"]
    assert [row["message"] for row in await db.get_system_logs()] == ["29 days"]
    assert await db.cleanup_old_logs() == 0


# --- query() ---------------------------------------------------------------------


async def test_query_reads_rows_as_dicts_with_parameters(
    db: DatabaseManager, agent_id: str, other_agent_id: str
) -> None:
    await db.update_agent(agent_id, status="executing", context={"issue": 14})
    for n in range(3):
        await db.create_agent_log(agent_id, "INFO", "milestone", f"step {n}")
    await db.create_agent_log(other_agent_id, "INFO", "milestone", "elsewhere")

    rows = await db.query(
        f"SELECT message FROM agent_logs WHERE agent_id = {mark(db, 1)} "
        f"AND log_type = {mark(db, 2)} ORDER BY id DESC LIMIT {mark(db, 3)}",
        [agent_id, "milestone", 2],
    )
    assert rows == [{"message": "step 2"}, {"message": "step 1"}]

    [agent] = await db.query(
        f"SELECT id, status, context, started_at FROM agents WHERE id = {mark(db, 1)}",
        (agent_id,),
    )
    assert agent["id"] == agent_id
    assert agent["status"] == "executing"
    assert json.loads(agent["context"]) == {"issue": 14}  # JSON as text, as stored
    assert agent["started_at"] == (await db.get_agent(agent_id) or {})["started_at"]

    counts = await db.query(
        "SELECT status, count(*) AS n FROM agents GROUP BY status ORDER BY status"
    )
    assert counts == [{"status": "executing", "n": 1}, {"status": "initializing", "n": 1}]
    assert await db.query(f"SELECT id FROM agents WHERE id = {mark(db, 1)}", [None]) == []


COMMON_WRITES = [
    "INSERT INTO system_logs (log_level, component, message, created_at) "
    "VALUES ('INFO', 'c', 'm', '2026-01-01T00:00:00.000000+00:00')",
    "UPDATE agents SET status = 'failed'",
    "DELETE FROM agents",
    "DELETE FROM agent_logs",
    "DROP TABLE agent_logs",
    "CREATE TABLE extra (x INTEGER)",
    "CREATE INDEX idx_extra ON agents (status)",
    "ALTER TABLE agents ADD COLUMN extra TEXT",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SELECT 1 AS one; DELETE FROM agents",
    "DELETE FROM agents; SELECT 1 AS one",
]
SQLITE_WRITES = [
    "PRAGMA query_only = OFF",  # first: the deletes below must still be refused
    "PRAGMA foreign_keys = OFF",
    "PRAGMA user_version = 99",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "ATTACH DATABASE ':memory:' AS other",
    "SAVEPOINT s",
    "VACUUM",
    "REINDEX",
    "CREATE TEMP TABLE scratch (x INTEGER)",
]
POSTGRES_WRITES = [
    "SET search_path TO public",  # first: the statements below must still see the store
    "INSERT INTO system_logs (log_level, component, message) VALUES ('INFO', 'c', 'm') "
    "RETURNING id",
    "WITH gone AS (DELETE FROM agents RETURNING id) SELECT count(*) AS n FROM gone",
    "SELECT nextval(pg_get_serial_sequence('agent_logs', 'id'))",
    "LISTEN store_events",
    "SET TRANSACTION READ WRITE",
    "CREATE TEMP TABLE scratch (x INTEGER)",
]


async def test_query_refuses_anything_but_reading_and_writes_nothing(
    db: DatabaseManager, agent_id: str
) -> None:
    await db.create_agent_log(agent_id, "INFO", "milestone", "kept")
    extra = SQLITE_WRITES if db.backend_name == "sqlite" else POSTGRES_WRITES
    before = await db.count_rows()
    version = await db.schema_version()

    for sql in [*extra, *COMMON_WRITES]:
        with pytest.raises(ReadOnlyError) as caught:
            await db.query(sql)
        message = str(caught.value)
        assert "query()" in message, sql
        assert "nothing" in message, sql
        if "; " not in sql:  # several statements get their own advice
            assert "db.transaction()" in message, sql
            assert "read-only" in message, sql
        assert isinstance(caught.value, DatabaseError)

    assert await db.count_rows() == before
    assert await db.schema_version() == version
    assert await db.query("SELECT 1 AS one") == [{"one": 1}]
    # The store itself still writes (and, on SQLite, its readers are still read-only).
    assert isinstance(await db.log_agent_event(agent_id, "milestone", "still writable"), int)
    if db.backend_name == "sqlite":
        for _ in range(4):  # every reader connection
            assert await db.query("PRAGMA query_only") == [{"query_only": 1}]


async def test_query_refuses_several_statements(db: DatabaseManager) -> None:
    with pytest.raises(ReadOnlyError, match="one statement at a time"):
        await db.query("SELECT 1 AS one; SELECT 2 AS two")


async def test_query_sql_errors_are_store_errors(db: DatabaseManager) -> None:
    for sql in ["SELEC 1", "SELECT * FROM no_such_table", "SELECT no_such_column FROM agents"]:
        with pytest.raises(DatabaseError) as caught:
            await db.query(sql)
        assert not isinstance(caught.value, ReadOnlyError | ValidationError), sql
        assert caught.value.table == "(query)"
        assert caught.value.__cause__ is not None
    with pytest.raises(DatabaseError):  # one placeholder, no value
        await db.query(f"SELECT 1 AS one WHERE 1 = {mark(db, 1)}")
    assert await db.query("SELECT 2 AS two") == [{"two": 2}]


async def test_query_reads_the_tasks_own_transaction_and_leaves_it_usable(
    db: DatabaseManager,
) -> None:
    async with db.transaction():
        await db.create_system_log("INFO", "c", "inside")
        assert await db.query("SELECT count(*) AS n FROM system_logs") == [{"n": 1}]
        with pytest.raises(ReadOnlyError):
            await db.query("DELETE FROM system_logs")
        await db.create_system_log("INFO", "c", "after the refusal")  # still writable

    assert [row["message"] for row in await db.get_system_logs()] == [
        "inside",
        "after the refusal",
    ]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"sql": 42}, "sql"),
        ({"sql": "   "}, "sql"),
        ({"sql": "SELECT 1", "params": "abc"}, "params"),
        ({"sql": "SELECT 1", "params": {"a": 1}}, "params"),
        ({"sql": "SELECT 1", "params": [object()]}, "params.0"),
        ({"sql": "SELECT 1", "params": [1, datetime.now(UTC)]}, "params.1"),
        ({"sql": "SELECT 1", "params": [2**64]}, "params.0"),
        ({"sql": "SELECT 1", "params": [float("nan")]}, "params.0"),
    ],
)
async def test_query_validates_its_arguments(
    db: DatabaseManager, arguments: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await db.query(**arguments)
    assert caught.value.table == "query"
    assert caught.value.field == field
    assert f"query.{field}" in str(caught.value)


async def test_query_on_postgresql_leaves_no_session_lock_behind(postgres_url: str) -> None:
    """A pooled connection must not keep a session-level advisory lock that a
    query took: the transaction's rollback does not release those. Nor when
    the statement takes the lock and then fails, alone or inside the
    caller's block (which stays usable)."""
    from pg_testing import connect_raw

    failing = "SELECT pg_advisory_lock(4242) AS a, 1/((random()*0)::int) AS b"
    async with DatabaseManager(postgres_url) as db:
        other = await connect_raw(postgres_url)

        async def assert_lock_is_free() -> None:
            assert await other.fetchval("SELECT pg_try_advisory_lock(4242)") is True
            await other.execute("SELECT pg_advisory_unlock(4242)")

        try:
            taken = await db.query("SELECT pg_advisory_lock(4242) IS NULL AS taken")
            assert taken == [{"taken": False}]  # pg_advisory_lock returns void: not NULL
            await assert_lock_is_free()

            with pytest.raises(DatabaseError, match="division by zero"):
                await db.query(failing)
            await assert_lock_is_free()

            async with db.transaction():
                with pytest.raises(DatabaseError, match="division by zero"):
                    await db.query(failing)
                await assert_lock_is_free()  # at once, not when the block ends
                await db.create_system_log("INFO", "c", "after the failed query")
            assert [row["message"] for row in await db.get_system_logs()] == [
                "after the failed query"
            ]
        finally:
            await other.close()


async def test_query_refuses_writes_to_sqlites_catalog_as_a_database_error(
    db: DatabaseManager,
) -> None:
    """What query()'s docstring says of the one exception: SQLite itself
    refuses to prepare an UPDATE or DELETE of sqlite_master (plain
    DatabaseError, nothing ran); PostgreSQL's catalog is read-only here too."""
    if db.backend_name == "sqlite":
        catalog, column = "sqlite_master", "name"
    else:
        catalog, column = "pg_catalog.pg_class", "relname"
    before = await db.count_rows()
    for sql in [f"UPDATE {catalog} SET {column} = {column}", f"DELETE FROM {catalog}"]:
        with pytest.raises(DatabaseError) as caught:
            await db.query(sql)
        if db.backend_name == "sqlite":
            assert "may not be modified" in str(caught.value), sql
        else:
            assert isinstance(caught.value, ReadOnlyError), sql
    assert await db.count_rows() == before
    assert await db.query("SELECT 1 AS one") == [{"one": 1}]


async def test_query_on_a_closed_store(db: DatabaseManager) -> None:
    await db.close()
    with pytest.raises(NotConnectedError):
        await db.query("SELECT 1 AS one")


# --- conn ------------------------------------------------------------------------------


async def test_there_is_no_driver_connection(db: DatabaseManager) -> None:
    assert not hasattr(db, "conn")
    with pytest.raises(AttributeError) as caught:
        _ = db.conn
    message = str(caught.value)
    for advice in ("db.query(sql, params)", "db.transaction()", "schema_version()", "storage()"):
        assert advice in message


# --- the deliberate differences' messages -----------------------------------------------


async def test_a_made_up_id_says_where_ids_come_from(db: DatabaseManager, agent_id: str) -> None:
    for call in (
        lambda: db.get_agent("nonexistent-id"),
        lambda: db.get_orchestrator_agent("nonexistent-id"),
        lambda: db.get_prompt("nonexistent-id"),
        lambda: db.update_agent("nonexistent-id", status="failed"),
        lambda: db.delete_agent("nonexistent-id"),
    ):
        with pytest.raises(ValidationError) as caught:
            await call()
        message = str(caught.value)
        assert caught.value.field == "id"
        assert "'nonexistent-id'" in message
        assert "create_*" in message
        assert "made-up id" in message
        assert "catch ValidationError" in message


async def test_a_naive_timestamp_says_how_to_make_an_aware_one(
    db: DatabaseManager, agent_id: str
) -> None:
    naive = datetime.now(UTC).replace(tzinfo=None)  # what datetime.utcnow() returns
    for value in (naive.isoformat(), naive):
        with pytest.raises(ValidationError) as caught:
            await db.update_agent(agent_id, status="completed", completed_at=value)
        message = str(caught.value)
        assert caught.value.table == "agents"
        assert caught.value.field == "completed_at"
        assert "agents.completed_at" in message
        assert "ambiguous" in message
        assert "datetime.utcnow()" in message
        assert "datetime.now(UTC)" in message
        assert "+00:00" in message
    agent = await db.get_agent(agent_id)
    assert agent is not None
    assert agent["status"] == "initializing"
    assert agent["completed_at"] is None
