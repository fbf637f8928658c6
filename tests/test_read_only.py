"""A store opened ``read_only=True`` (``sqlite_reader``, ``postgres_reader``).

It reads what writers write (also what they commit after it opened, from this
process or another), refuses every write with ``ReadOnlyError`` and changes
nothing doing so, creates no file or database, migrates nothing, and never
blocks a writer. Where the database itself refuses a write (SQLite's
``mode=ro`` and ``query_only``, PostgreSQL's READ ONLY transactions) the tests
reach past the store's Python refusal to show it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sqlite3
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_schema_v2_migration import UNDO_VERSION_5, postgres_catalog

from orchestrator_store import schema
from orchestrator_store.manager import (
    DatabaseError,
    DatabaseManager,
    NotConnectedError,
    ReadOnlyError,
    SchemaError,
    ValidationError,
)
from orchestrator_store.models import RetentionPolicy
from orchestrator_store.sqlite_backend import READ_CONNECTIONS
from orchestrator_store.tables import TABLES, TOTALS_TABLES

SESSION = "feature_Tac_14_Task_8"
HANG_GUARD = 120.0  # seconds; a guard against a hung child process, never a speed check
# What every refusal of a read-only store says (errors.read_only_refusal).
REFUSED = r"was opened read-only \(read_only=True\): open it without read_only to write"
# Every rule at its widest: a real run would delete every log and every finished session.
EVERYTHING = RetentionPolicy(agent_log_days=0, system_log_days=0, keep_sessions=0)


# --- the store the tests read --------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    planner: str
    builder: str
    agent: str
    child: str
    prompt: str
    agent_log: int
    system_log: int
    chat: str
    workflow: str


async def seed(db: DatabaseManager) -> Seeded:
    """A row in every table, written by a writable store: a finished planner and
    its builder (with a costed prompt), logs, a chat message and a workflow."""
    planner = await db.create_orchestrator_agent(
        "planner", "Plans the work", "planner", default_model="claude-opus"
    )
    builder = await db.create_orchestrator_agent("builder", None, "builder")
    agent = await db.create_agent(planner, SESSION, context={"issue": 14})
    child = await db.create_agent(builder, SESSION, parent_agent_id=agent, status="executing")
    prompt = await db.create_prompt(child, "adw", "Implement step 1", model_used="claude-sonnet")
    await db.update_prompt(
        prompt,
        status="completed",
        response_text="done",
        tokens_input=1200,
        tokens_output=300,
        cost_usd=0.012,
        latency_ms=900,
    )
    await db.add_agent_cost(agent, 0.002)
    await db.update_agent(agent, status="completed", completed_at=datetime.now(UTC))
    agent_log = await db.create_agent_log(agent, "INFO", "milestone", "plan ready", {"steps": 3})
    await db.create_agent_log(child, "ERROR", "error", "tests failed")
    system_log = await db.create_system_log("INFO", "orchestrator", "session started", {"pid": 1})
    chat = await db.create_chat_message(
        planner, "user", "orchestrator", "build issue 14", agent_id=agent
    )
    workflow = await db.start_workflow(
        "adw_build", "build", adw_id="a1b2c3d4", total_steps=3, orchestrator_agent_id=planner
    )
    await db.update_workflow_step(workflow, "plan", completed_steps=1)
    return Seeded(planner, builder, agent, child, prompt, agent_log, system_log, chat, workflow)


@pytest.fixture
async def seeded(db: DatabaseManager) -> Seeded:
    return await seed(db)


@asynccontextmanager
async def read_only(store_url: Any) -> AsyncIterator[DatabaseManager]:
    async with DatabaseManager(store_url, read_only=True) as store:
        yield store


# --- what the database holds, read around the store -----------------------------------

ALL_TABLES = (*TABLES, *TOTALS_TABLES)


def sqlite_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, through a connection of its own opened read-only."""
    uri = path.resolve().as_uri() + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as raw:
        return {
            table: sorted(raw.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in ALL_TABLES
        }


async def postgres_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (the totals' per-process shards included) and the version."""
    from pg_testing import connect_raw

    connection = await connect_raw(url)
    try:
        return {
            table: sorted(
                (tuple(row) for row in await connection.fetch(f"SELECT * FROM {table}")), key=repr
            )
            for table in (*ALL_TABLES, "adw_schema_version")
        }
    finally:
        await connection.close()


def sqlite_file(path: Path) -> dict[str, Any]:
    """The database file's bytes and modification time, and its WAL's bytes (a
    read-only open may create an empty WAL; SQLite does that, and an empty WAL
    holds nothing). The -shm is shared memory every reader writes its read
    marks to: not the database. Reading the file drops this process's SQLite
    locks on it (POSIX), harmless while no other process uses it: the tests
    that call this have none."""
    wal = Path(f"{path}-wal")
    return {
        "file": (path.read_bytes(), path.stat().st_mtime_ns),
        "wal": wal.read_bytes() if wal.exists() else b"",
    }


async def stored_state(backend: str, store_url: Any) -> Any:
    """What a write would change: on SQLite the file itself and every row, on
    PostgreSQL every row."""
    if backend == "sqlite":
        return {**sqlite_file(store_url), "rows": sqlite_rows(store_url)}
    return await postgres_rows(store_url)


# --- every read ------------------------------------------------------------------------

READ_METHODS = frozenset(
    {
        "schema_version",
        "count_rows",
        "get_orchestrator_agent",
        "list_orchestrator_agents",
        "get_agent",
        "list_agents",
        "get_prompt",
        "list_prompts",
        "get_agent_logs",
        "list_recent_agent_logs",
        "get_system_logs",
        "list_recent_system_logs",
        "get_chat_message",
        "list_chat_messages",
        "get_workflow",
        "get_workflow_by_adw_id",
        "list_workflows",
        "count_old_logs",
        "storage",
        "iter_rows",
        "session_summaries",
        "session_summary",
        "session_tree",
        "agent_totals",
        "agents_with_totals",
        "cost_totals",
        "log_bounds",
        "list_logs",
        "logs_after",
        "find_agents_by_prefix",
        "find_agents_by_suffix",
        "find_workflows_by_prefix",
        "find_workflows_by_suffix",
        "get_logs_by_type",
        "get_agent_logs_by_type",
        "get_recent_logs",
        "query",
        "prune",  # dry_run=True only counts
    }
)


def without_horizon(bounds: dict[str, Any]) -> dict[str, Any]:
    """``log_bounds`` without PostgreSQL's ``*_tx`` places: the server's
    transaction horizon, which any other session of the server moves."""
    cursor = {key: value for key, value in bounds["cursor"].items() if not key.endswith("_tx")}
    return {**bounds, "cursor": cursor}


async def read_everything(store: DatabaseManager, s: Seeded) -> dict[str, Any]:
    """Each read method of READ_METHODS (with the variants that matter), by name."""
    scans = {}
    for table in TABLES:
        scans[table] = [row async for row in store.iter_rows(table, batch_size=2)]
    agents = await store.list_agents(SESSION)
    dry_run = await store.prune(EVERYTHING, dry_run=True)
    return {
        "schema_version": await store.schema_version(),
        "count_rows": await store.count_rows(),
        "get_orchestrator_agent": await store.get_orchestrator_agent(s.planner),
        "list_orchestrator_agents": await store.list_orchestrator_agents(limit=5),
        "get_agent": await store.get_agent(s.child),
        "list_agents": (agents, await store.list_agents(status="executing")),
        "get_prompt": await store.get_prompt(s.prompt),
        "list_prompts": (
            await store.list_prompts(s.child),
            await store.list_prompts(session_id=SESSION, status="completed"),
        ),
        "get_agent_logs": await store.get_agent_logs(s.agent),
        "list_recent_agent_logs": await store.list_recent_agent_logs(10),
        "get_system_logs": await store.get_system_logs(component="orchestrator"),
        "list_recent_system_logs": await store.list_recent_system_logs(10),
        "get_chat_message": await store.get_chat_message(s.chat),
        "list_chat_messages": await store.list_chat_messages(s.planner),
        "get_workflow": await store.get_workflow(s.workflow),
        "get_workflow_by_adw_id": await store.get_workflow_by_adw_id("a1b2c3d4"),
        "list_workflows": await store.list_workflows(status="in_progress"),
        "count_old_logs": await store.count_old_logs(0),
        # Its keys only: the WAL's size moves with the writer's checkpoints.
        "storage": sorted(await store.storage()),
        "iter_rows": scans,
        "session_summaries": await store.session_summaries(limit=10),
        "session_summary": await store.session_summary(SESSION),
        "session_tree": await store.session_tree(SESSION),
        "agent_totals": await store.agent_totals(s.child),
        "agents_with_totals": await store.agents_with_totals(agents),
        "cost_totals": [
            await store.cost_totals(by) for by in (None, "session", "model", "agent_type", "day")
        ],
        "log_bounds": without_horizon(await store.log_bounds()),
        "list_logs": await store.list_logs(min_level="INFO", limit=10),
        "logs_after": await store.logs_after({"agent_logs": 0, "system_logs": 0}),
        "find_agents_by_prefix": await store.find_agents_by_prefix(s.child[:13]),
        "find_agents_by_suffix": await store.find_agents_by_suffix(s.child[-12:]),
        "find_workflows_by_prefix": await store.find_workflows_by_prefix(s.workflow[:13]),
        "find_workflows_by_suffix": await store.find_workflows_by_suffix(s.workflow[-12:]),
        "get_logs_by_type": await store.get_logs_by_type("error"),
        "get_agent_logs_by_type": await store.get_agent_logs_by_type(s.agent, "milestone"),
        "get_recent_logs": await store.get_recent_logs(10),
        "query": await store.query(
            "SELECT session_id, count(*) AS agents FROM agents GROUP BY session_id"
        ),
        "prune": (dry_run.dry_run, dict(dry_run.rows), dry_run.sessions),
    }


async def test_every_read_answers_as_the_writable_store_does(
    backend: str, store_url: Any, db: DatabaseManager, seeded: Seeded
) -> None:
    expected = await read_everything(db, seeded)
    await db.close()

    async with read_only(store_url) as store:
        assert store.backend_name == backend
        assert repr(store).endswith(" open>")
        got = await read_everything(store, seeded)

    assert set(got) == READ_METHODS
    assert got == expected
    assert got["schema_version"] == schema.LATEST_VERSION
    assert got["count_rows"] == {
        "orchestrator_agents": 2,
        "agents": 2,
        "prompts": 1,
        "agent_logs": 2,
        "system_logs": 1,
        "orchestrator_chat": 1,
        "ai_developer_workflows": 1,
    }
    assert got["prune"] == (True, {"agent_logs": 2, "system_logs": 1}, 0)  # builder still runs


@pytest.mark.direct_postgres("needs two writers on two server processes: their shards of the sums")
async def test_opening_reading_and_closing_change_nothing(
    backend: str, store_url: Any, db: DatabaseManager, seeded: Seeded
) -> None:
    async with DatabaseManager(store_url) as other:  # a second writer: on PostgreSQL, own shards
        await other.create_system_log("INFO", "orchestrator", "from a second writer")
    await db.close()
    before = await stored_state(backend, store_url)
    if backend == "postgresql":
        # Per-process rows of the totals: what a writable connect folds into one.
        shards = [row[0] for row in before["row_counts"] if row[0] == "system_logs"]
        assert len(shards) > 1

    async with read_only(store_url) as store:
        await read_everything(store, seeded)
    assert await stored_state(backend, store_url) == before

    async with DatabaseManager(store_url):  # what read_only must not do: a writer's connect
        pass
    if backend == "postgresql":
        assert await stored_state(backend, store_url) != before  # it folded the shards


async def test_reads_see_what_another_manager_commits_after_the_store_opened(
    store_url: Any, db: DatabaseManager, seeded: Seeded
) -> None:
    async with read_only(store_url) as store:
        assert (await store.count_rows())["system_logs"] == 1

        await db.create_system_log("WARNING", "orchestrator", "after the reader opened")
        async with db.transaction():
            await db.update_agent(seeded.child, status="failed", error_message="tests failed")
            await db.create_agent_log(seeded.child, "ERROR", "error", "gave up")

        logs = await store.get_system_logs(component="orchestrator")
        assert [row["message"] for row in logs] == ["session started", "after the reader opened"]
        child = await store.get_agent(seeded.child)
        assert child is not None
        assert (child["status"], child["error_message"]) == ("failed", "tests failed")
        summary = await store.session_summary(SESSION)
        assert summary is not None
        assert (summary["failed_agents"], summary["active_agents"]) == (1, 0)
        assert [row["message"] for row in await store.get_logs_by_type("error")] == [
            "gave up",
            "tests failed",
        ]


async def test_reads_see_what_another_process_commits_after_the_store_opened(
    store_url: Any, db: DatabaseManager, seeded: Seeded
) -> None:
    # One store of the file in this process: see test_a_second_store_in_the_process_keeps_...
    await db.close()
    async with read_only(store_url) as store:
        assert await store.session_summary("written_elsewhere") is None

        await run_writer_process(store_url, "written_elsewhere")  # opens, writes, closes

        elsewhere = await store.session_summary("written_elsewhere")
        assert elsewhere is not None
        assert elsewhere["agents"] == 1
        (agent,) = await store.list_agents("written_elsewhere")
        messages = [row["message"] for row in await store.get_agent_logs(agent["id"])]
        assert messages == ["written by another process"]
        assert (await store.count_rows())["agents"] == 3


WRITER_PROCESS = """
import asyncio
import sys

from orchestrator_store import DatabaseManager


async def main() -> None:
    async with DatabaseManager(sys.argv[1], busy_timeout=1) as db:
        async with db.transaction():
            definition = await db.create_orchestrator_agent(sys.argv[2], None, "utility")
            agent = await db.create_agent(definition, sys.argv[2])
        await db.create_agent_log(agent, "INFO", "milestone", "written by another process")
        busy = (await db.checkpoint())["busy"]
    print("written", busy, flush=True)


asyncio.run(main())
"""


async def run_writer_process(store_url: Any, session_id: str) -> int:
    """A real process (this Python) that writes a definition and an agent of
    ``session_id`` (in one transaction), then a log line, with a writable store
    of its own and a busy timeout of 1 s, and closes it. Returns the ``busy``
    of the checkpoint it ran before closing (1: a reader kept part of the WAL)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER_PROCESS,
        str(store_url),
        session_id,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ),
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), HANG_GUARD)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail("the writer process hung")
    assert process.returncode == 0, stderr.decode()
    word, busy = stdout.decode().split()
    assert word == "written"
    return int(busy)


async def test_a_closed_store_says_so_and_connects_again(
    store_url: Any, db: DatabaseManager, seeded: Seeded
) -> None:
    store = DatabaseManager(store_url, read_only=True)
    with pytest.raises(NotConnectedError):
        await store.count_rows()
    await store.connect()
    await store.close()
    with pytest.raises(NotConnectedError, match="closed"):
        await store.get_agent(seeded.agent)
    await store.connect()  # again, as a writable store does
    try:
        assert (await store.get_agent(seeded.agent) or {})["session_id"] == SESSION
    finally:
        await store.close()


# --- every write is refused, and changes nothing ---------------------------------------

Write = Callable[[DatabaseManager, Seeded], Awaitable[object]]


async def _in_transaction(store: DatabaseManager, s: Seeded) -> None:
    async with store.transaction():
        await store.create_system_log("INFO", "orchestrator", "inside a transaction")


def _write(method: str, call: Write, label: str | None = None, **marks: Any) -> Any:
    return pytest.param(method, call, id=label or method, **marks)


# Every public method that writes (enumerated from manager.py), each with
# arguments that would change rows if the write got through: real ids, valid values.
WRITES = [
    _write(
        "create_orchestrator_agent",
        lambda store, s: store.create_orchestrator_agent("reviewer", "Reviews", "reviewer"),
    ),
    _write(
        "update_orchestrator_agent",
        lambda store, s: store.update_orchestrator_agent(s.planner, description="changed"),
    ),
    _write(
        "delete_orchestrator_agent", lambda store, s: store.delete_orchestrator_agent(s.planner)
    ),
    _write("create_agent", lambda store, s: store.create_agent(s.planner, "another_session")),
    _write("update_agent", lambda store, s: store.update_agent(s.child, status="completed")),
    _write("add_agent_cost", lambda store, s: store.add_agent_cost(s.child, 0.5)),
    _write("delete_agent", lambda store, s: store.delete_agent(s.agent)),
    _write("create_prompt", lambda store, s: store.create_prompt(s.child, "adw", "Step 2")),
    _write("update_prompt", lambda store, s: store.update_prompt(s.prompt, status="failed")),
    _write("delete_prompt", lambda store, s: store.delete_prompt(s.prompt)),
    _write(
        "create_agent_log",
        lambda store, s: store.create_agent_log(s.child, "INFO", "milestone", "step 2"),
    ),
    _write(
        "create_agent_logs",
        lambda store, s: store.create_agent_logs(
            [
                {"agent_id": s.child, "log_level": "INFO", "log_type": "milestone", "message": m}
                for m in ("one", "two")
            ]
        ),
    ),
    _write(
        "create_system_log",
        lambda store, s: store.create_system_log("INFO", "orchestrator", "more"),
    ),
    _write(
        "create_system_logs",
        lambda store, s: store.create_system_logs(
            [{"log_level": "INFO", "component": "orchestrator", "message": "batch"}]
        ),
    ),
    _write(
        "create_chat_message",
        lambda store, s: store.create_chat_message(s.planner, "orchestrator", "user", "ok"),
    ),
    _write("update_chat_message", lambda store, s: store.update_chat_message(s.chat, summary="x")),
    _write("delete_chat_message", lambda store, s: store.delete_chat_message(s.chat)),
    _write("start_workflow", lambda store, s: store.start_workflow("adw_plan", "plan")),
    _write(
        "update_workflow_step",
        lambda store, s: store.update_workflow_step(s.workflow, "build", completed_steps=2),
    ),
    _write("end_workflow", lambda store, s: store.end_workflow(s.workflow, "completed")),
    _write(
        "end_workflow",
        lambda store, s: store.end_workflow(s.workflow, "failed", error_message="broke"),
        "end_workflow(error_message=...)",
    ),
    _write("update_workflow", lambda store, s: store.update_workflow(s.workflow, total_steps=9)),
    _write("delete_workflow", lambda store, s: store.delete_workflow(s.workflow)),
    _write("cleanup_old_logs", lambda store, s: store.cleanup_old_logs(0)),  # every log is older
    _write("prune", lambda store, s: store.prune(EVERYTHING), "prune(dry_run=False)"),
    # On PostgreSQL, reclaiming folds the totals' shards through a read, which a
    # READ ONLY transaction refuses with a plain DatabaseError: prune() refuses first.
    _write(
        "prune",
        lambda store, s: store.prune(RetentionPolicy(), vacuum=True),
        "prune(vacuum=True)",
    ),
    # Refused even when nothing would go: "nothing to delete" would be an answer to a
    # question the store could not have acted on.
    _write(
        "prune",
        lambda store, s: store.prune(RetentionPolicy(keep_sessions=100)),
        "prune(dry_run=False) finding nothing to delete",
    ),
    _write("checkpoint", lambda store, s: store.checkpoint()),
    _write("transaction", _in_transaction),
]


@pytest.mark.parametrize(("method", "write"), WRITES)
async def test_every_write_is_refused_and_changes_nothing(
    backend: str, store_url: Any, db: DatabaseManager, seeded: Seeded, method: str, write: Write
) -> None:
    await db.close()  # nothing else writes (on SQLite, no checkpointer moves the file)
    async with read_only(store_url) as store:
        counts = await store.count_rows()
        before = await stored_state(backend, store_url)

        with pytest.raises(ReadOnlyError, match=REFUSED) as refused:
            await write(store, seeded)

        assert str(store.location) in str(refused.value)
        assert await stored_state(backend, store_url) == before
        assert await store.count_rows() == counts  # and the store reads on


async def test_log_agent_event_never_raises_and_writes_nothing(
    backend: str,
    store_url: Any,
    db: DatabaseManager,
    seeded: Seeded,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """It never raises by contract (a log line must not break the work it
    records): on a read-only store it returns None and warns."""
    await db.close()
    async with read_only(store_url) as store:
        before = await stored_state(backend, store_url)
        with caplog.at_level(logging.WARNING, logger="orchestrator_store.manager"):
            assert await store.log_agent_event(seeded.agent, "milestone", "never stored") is None
        assert await stored_state(backend, store_url) == before
    (record,) = caplog.records
    assert "ReadOnlyError" in record.getMessage()
    assert "read_only=True" in record.getMessage()


def test_every_public_method_is_a_read_or_a_write_here() -> None:
    """A new public method must join READ_METHODS or WRITES (and so be tested)."""
    public = {
        name
        for name, member in vars(DatabaseManager).items()
        if not name.startswith("_") and callable(member)
    }
    written = {param.values[0] for param in WRITES}
    assert written.isdisjoint(READ_METHODS - {"prune"})
    assert public == READ_METHODS | written | {"connect", "close", "log_agent_event"}


async def test_query_runs_reads_and_refuses_writes(
    backend: str, store_url: Any, db: DatabaseManager, seeded: Seeded
) -> None:
    await db.close()
    placeholder = "?" if backend == "sqlite" else "$1"
    async with read_only(store_url) as store:
        before = await stored_state(backend, store_url)
        rows = await store.query(
            f"SELECT count(*) AS n FROM agents WHERE session_id = {placeholder}", [SESSION]
        )
        assert rows == [{"n": 2}]
        for sql in (
            "INSERT INTO system_logs (log_level, component, message, created_at)"
            " SELECT log_level, component, message, created_at FROM system_logs",
            "UPDATE agents SET status = 'failed'",
            "DELETE FROM agent_logs",
            "DROP TABLE agent_logs",
            "CREATE TABLE intruder (x INTEGER)",
        ):
            with pytest.raises(ReadOnlyError, match="read-only"):
                await store.query(sql)
        assert await stored_state(backend, store_url) == before


# --- the database itself refuses writes --------------------------------------------------

SQL_INSERT = (
    "INSERT INTO system_logs (log_level, component, message, created_at)"
    " SELECT 'INFO', 'intruder', 'written past the store', created_at FROM system_logs"
)


async def test_sql_that_writes_is_refused_by_the_database(
    backend: str, store_url: Any, db: DatabaseManager, seeded: Seeded
) -> None:
    """Past the store's Python refusals: a write sent as a read, through the
    read-only backend's own connections (SQLite: ``mode=ro`` and
    ``query_only``; PostgreSQL: every read in a READ ONLY transaction)."""
    await db.close()
    refusal = "readonly database" if backend == "sqlite" else "read-only transaction"
    async with read_only(store_url) as store:
        before = await stored_state(backend, store_url)
        reader = store._backend  # the store's connections, without its refusals
        for sql in (SQL_INSERT, "DELETE FROM agent_logs", "UPDATE agents SET status = 'failed'"):
            with pytest.raises(DatabaseError, match=refusal) as refused:
                await reader.fetch_all(sql, (), table="system_logs")
            assert not isinstance(refused.value, ReadOnlyError)  # the database said no
        assert await stored_state(backend, store_url) == before
        assert await store.get_system_logs(component="intruder") == []


@pytest.mark.backend("sqlite")
async def test_sqlite_mode_ro_refuses_writes_even_with_query_only_off(
    store_url: Any, db: DatabaseManager, seeded: Seeded
) -> None:
    """``query_only`` is a setting a statement can turn off; ``mode=ro`` is how
    the file was opened and stays."""
    await db.close()
    async with read_only(store_url) as store:
        before = await stored_state("sqlite", store_url)
        reader = store._backend
        assert await store.query("PRAGMA query_only") == [{"query_only": 1}]
        # The reader connections take turns (a queue): one call per connection each time.
        for _ in range(READ_CONNECTIONS):
            await reader.fetch_all("PRAGMA query_only = OFF", (), table="(test)")
        settings = [
            (await reader.fetch_all("PRAGMA query_only", (), table="(test)"))[0]["query_only"]
            for _ in range(READ_CONNECTIONS)
        ]
        assert settings == [0] * READ_CONNECTIONS
        for _ in range(READ_CONNECTIONS):
            with pytest.raises(DatabaseError, match="readonly database"):
                await reader.fetch_all(SQL_INSERT, (), table="system_logs")
        assert await stored_state("sqlite", store_url) == before


@pytest.mark.backend("sqlite")
async def test_sqlite_runs_no_writer_or_checkpointer_thread(
    db_path: Path, db: DatabaseManager, seeded: Seeded
) -> None:
    await db.close()
    mine = (f"adw-writer:{db_path.name}", f"adw-checkpointer:{db_path.name}")
    assert not [thread for thread in threading.enumerate() if thread.name in mine]
    async with read_only(db_path) as store:
        assert await store.get_agent(seeded.agent) is not None
        assert not [thread for thread in threading.enumerate() if thread.name in mine]


# --- nothing is created, nothing migrated -----------------------------------------------


@pytest.mark.backend("sqlite")
@pytest.mark.parametrize("folder_exists", [False, True], ids=["no folder", "empty folder"])
async def test_a_missing_sqlite_file_is_an_error_and_not_created(
    db_path: Path, folder_exists: bool
) -> None:
    if folder_exists:
        db_path.parent.mkdir(parents=True)
    store = DatabaseManager(db_path, read_only=True)

    with pytest.raises(DatabaseError, match="does not create one") as refused:
        await store.connect()

    assert str(db_path) in str(refused.value)
    assert not isinstance(refused.value, ReadOnlyError | SchemaError)
    if folder_exists:
        assert list(db_path.parent.iterdir()) == []  # no file, -wal or -shm
    else:
        assert not db_path.parent.exists()
    with pytest.raises(NotConnectedError):
        await store.count_rows()


async def test_a_missing_postgres_database_is_an_error_and_not_created(
    postgres_server: str,
) -> None:
    from pg_testing import connect_raw, database_url

    name = f"adw_missing_{uuid.uuid4().hex[:12]}"
    store = DatabaseManager(database_url(postgres_server, name), read_only=True)

    with pytest.raises(DatabaseError, match="does not exist") as refused:
        await store.connect()

    assert "read-only does not create it" in str(refused.value)
    connection = await connect_raw(postgres_server)
    try:
        found = await connection.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname = $1", name
        )
    finally:
        await connection.close()
    assert found == 0


async def test_a_database_without_the_store_is_refused_and_left_empty(
    backend: str, store_url: Any
) -> None:
    """An empty SQLite file, or a PostgreSQL schema without the store's tables:
    nothing to read, and nothing created to read."""
    if backend == "sqlite":
        store_url.parent.mkdir(parents=True)
        store_url.touch()

    with pytest.raises(SchemaError, match="open it once without read_only"):
        await DatabaseManager(store_url, read_only=True).connect()

    if backend == "sqlite":
        assert store_url.stat().st_size == 0
        assert sorted(path.name for path in store_url.parent.iterdir()) == [store_url.name]
    else:
        from pg_testing import connect_raw

        connection = await connect_raw(store_url)
        try:
            tables = await connection.fetchval(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
            )
        finally:
            await connection.close()
        assert tables == 0


# An honest store of version 4 (see test_schema_v2_migration): version 5 added the
# log rows' transaction column on PostgreSQL and changed nothing on SQLite.
OLDER_VERSION = 4
UNDO_TO_OLDER = {"sqlite": "", "postgresql": UNDO_VERSION_5}


async def set_version(backend: str, store_url: Any, version: int) -> None:
    """The store at ``version``: the older one made honestly, a newer one
    being a number this code does not know."""
    undo = UNDO_TO_OLDER[backend] if version == OLDER_VERSION else ""
    if backend == "sqlite":
        with closing(sqlite3.connect(store_url, isolation_level=None)) as raw:
            raw.executescript(f"{undo} PRAGMA user_version = {version};")
        return
    from pg_testing import run_sql

    await run_sql(store_url, f"{undo} UPDATE adw_schema_version SET version = {version}")


async def schema_and_rows(backend: str, store_url: Any) -> Any:
    if backend == "sqlite":
        return sqlite_file(store_url), sqlite_rows(store_url)
    return await postgres_catalog(store_url), await postgres_rows(store_url)


@pytest.mark.parametrize(
    ("version", "advice"),
    [
        (OLDER_VERSION, "open it once without read_only"),
        (schema.LATEST_VERSION + 1, "upgrade the store to read it"),
    ],
    ids=["older", "newer"],
)
async def test_a_store_at_another_version_is_refused_untouched(
    backend: str, store_url: Any, db: DatabaseManager, seeded: Seeded, version: int, advice: str
) -> None:
    await db.close()
    await set_version(backend, store_url, version)
    before = await schema_and_rows(backend, store_url)

    with pytest.raises(SchemaError, match=advice) as refused:
        await DatabaseManager(store_url, read_only=True).connect()

    assert f"schema version {version}" in str(refused.value)
    assert await schema_and_rows(backend, store_url) == before
    if version == OLDER_VERSION:  # the advice works: a writer migrates, then it reads
        async with DatabaseManager(store_url):
            pass
        async with read_only(store_url) as store:
            assert await store.schema_version() == schema.LATEST_VERSION
            assert await store.get_agent(seeded.child) is not None


def test_read_only_with_retention_is_a_validation_error(store_url: Any) -> None:
    policy = RetentionPolicy(agent_log_days=30, every=60)
    with pytest.raises(ValidationError, match="read_only=True") as refused:
        DatabaseManager(store_url, read_only=True, retention=policy)
    assert refused.value.field == "retention"
    if isinstance(store_url, Path):
        assert not store_url.parent.exists()


# --- a read held open blocks no writer ----------------------------------------------------


@asynccontextmanager
async def sqlite_read_held(store: DatabaseManager) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """One of the read-only store's reader connections inside an open read
    transaction, as a long report holds one; yields a count of agents in that
    snapshot. The store has no public way to keep a read open, so this takes a
    reader from its pool (``_readers``) and gives it back."""
    readers = store._backend._readers
    reader = await readers.get()
    assert reader is not None

    async def count() -> int:
        return int((await reader.execute_fetchall("SELECT count(*) FROM agents"))[0][0])

    try:
        await reader.execute("BEGIN")
        await count()  # the snapshot starts with the first read
        yield count
    finally:
        await reader.execute("COMMIT")
        readers.put_nowait(reader)


@pytest.mark.backend("sqlite")
async def test_a_sqlite_read_held_open_blocks_no_writer(
    db_path: Path, db: DatabaseManager, seeded: Seeded
) -> None:
    await db.close()
    async with read_only(db_path) as store, sqlite_read_held(store) as held_count:
        assert await held_count() == 2

        # Writers with a busy timeout of 1 s: a write the read blocked would fail.
        busy = [await run_writer_process(db_path, f"elsewhere_{n}") for n in range(2)]

        assert busy == [1, 1]  # their checkpoints found the read open, keeping its snapshot
        assert await held_count() == 2  # that snapshot
        assert (await store.count_rows())["agents"] == 4  # the store's other reader
    async with read_only(db_path) as store:
        assert (await store.count_rows())["agents"] == 4


# A second store of the same file opened in one process (the dashboard beside a
# writer) must keep the process's POSIX locks on it. Reading the file's header with
# Python's open() and close() dropped them all (closing any descriptor of a file
# releases every fcntl lock the process holds on it): another process closing its
# store then took itself for the last one, checkpointed past this process's open
# read and deleted the -wal and -shm under the open stores (the held snapshot moved,
# the next read failed with "disk I/O error"). The header is now read through SQLite.
@pytest.mark.backend("sqlite")
async def test_a_second_store_in_the_process_keeps_the_files_and_the_snapshot(
    db_path: Path, db: DatabaseManager, seeded: Seeded
) -> None:
    async with read_only(db_path) as store, sqlite_read_held(store) as held_count:
        assert await held_count() == 2

        assert await run_writer_process(db_path, "written_elsewhere") == 1

        assert await held_count() == 2  # the snapshot of an open read does not move
        assert Path(f"{db_path}-wal").exists()
        assert Path(f"{db_path}-shm").exists()
        await db.create_system_log("INFO", "orchestrator", "after the other process")
        assert (await store.count_rows())["system_logs"] == 2


async def waiting_for_lock(watcher: Any, call: str) -> None:
    """Until a server process waits for a lock in a statement that makes ``call``."""
    async with asyncio.timeout(HANG_GUARD):
        while True:
            waiting = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND query LIKE $1",
                f"%{call}%",
            )
            if waiting:
                return
            await asyncio.sleep(0.01)


@pytest.mark.backend("postgresql")
@pytest.mark.direct_postgres("a raw session's advisory lock, watched in pg_stat_activity")
async def test_a_postgres_read_held_open_blocks_no_writer(
    store_url: str, postgres_server: str, db: DatabaseManager, seeded: Seeded
) -> None:
    """The read-only store's read waits on an advisory lock this test holds,
    inside its READ ONLY transaction and after its snapshot was taken; writers
    commit meanwhile."""
    from pg_testing import connect_raw

    key = random.randrange(1, 2**62)
    gate = await connect_raw(postgres_server)
    try:
        await gate.execute(f"SELECT pg_advisory_lock({key})")
        async with read_only(store_url) as store:
            held = asyncio.create_task(
                store.query(
                    "SELECT (SELECT count(*) FROM system_logs) AS n"
                    f" FROM (SELECT pg_advisory_xact_lock_shared({key})) AS gate"
                )
            )
            await waiting_for_lock(gate, f"pg_advisory_xact_lock_shared({key})")

            await db.create_system_log("INFO", "orchestrator", "while a read is open")
            async with db.transaction():
                await db.create_system_log("INFO", "orchestrator", "in a transaction")
            await run_writer_process(store_url, "written_elsewhere")
            counts = await store.count_rows()
            assert (counts["system_logs"], counts["agents"]) == (3, 3)
            assert not held.done()  # it waits for the gate, which only this test opens

            await gate.execute(f"SELECT pg_advisory_unlock({key})")
            assert await held == [{"n": 1}]  # its snapshot, taken before the writes
    finally:
        await gate.close()
