"""Schema version 2 reaches existing databases: a version-1 SQLite file or
PostgreSQL schema, holding data, is upgraded in place by the next
``connect()`` (by one process, or by several connecting at once), keeps every
row, and ends exactly as a new version-2 database starts; version-1 code
refuses a version-2 database and leaves it as it was.

How the version-1 databases are made: the store creates a version-2 database
and writes data through its API; then the two version-2 tables are dropped and
the version set back to 1. That is an honest version-1 database because
version 2 only added those two tables (``schema.MIGRATIONS[1]`` creates them
and nothing else), and the test checks it: the SQLite file's schema is
fingerprinted against the schema file as released in version 1."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from orchestrator_store import DatabaseManager, schema, tables

NEW_TABLES = ("orchestrator_chat", "ai_developer_workflows")
VERSION_1_TABLES = ("orchestrator_agents", "agents", "prompts", "agent_logs", "system_logs")
PROCESSES = 6
PROCESS_HANG_GUARD = 120.0  # seconds; a guard against hanging, never a speed check

# sha256 of ``sqlite_fingerprint_text`` of a database made from
# src/orchestrator_store/sql/schema_orchestrator.sql as released with schema
# version 1 (commit aece866): the five tables, their indexes and sqlite_sequence.
VERSION_1_FINGERPRINT = "569a4971fe251a65b738ec4efb00900f12e80293a9751f4a5678a969b6970c4b"
# Migration 2 as released: ``sqlite_fingerprint`` of an empty database after
# its SQLite statements (the two tables and their indexes; SQLite does not
# check foreign-key targets at CREATE), and sha256 of its PostgreSQL text,
# whitespace normalised. A released migration never changes.
MIGRATION_2_SQLITE_HASH = "c0093968b8480f36b8b6800e8d6a55156e1a75122b3260453976482a31ec9fa6"
MIGRATION_2_POSTGRES_HASH = "1605a023485574966ce508bd137f60ede76e729a2344253a9fc4ddd4360674a3"


# --- helpers -------------------------------------------------------------------------------


@contextmanager
def raw_db(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def sqlite_schema(connection: sqlite3.Connection) -> list[tuple[str, str, str, str]]:
    """Every table and index with its SQL, whitespace normalised (the text a
    CREATE statement leaves in sqlite_master)."""
    rows = connection.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL"
        " ORDER BY type, name"
    ).fetchall()
    return [(kind, name, table, " ".join(sql.split())) for kind, name, table, sql in rows]


def sqlite_fingerprint(connection: sqlite3.Connection) -> str:
    text = "\n".join(" ".join(row) for row in sqlite_schema(connection))
    return hashlib.sha256(text.encode()).hexdigest()


def sqlite_rows(path: Path, tables: tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
    with raw_db(path) as raw:
        return {
            table: raw.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            for table in tables
        }


async def write_version_1_data(db: DatabaseManager) -> None:
    """Rows in every version-1 table, through the store's API."""
    planner = await db.create_orchestrator_agent("planner", "Plans", "planner", "claude-opus")
    builder = await db.create_orchestrator_agent("builder", None, "builder")
    parent = await db.create_agent(planner, "feature_13", context={"issue": 13})
    child = await db.create_agent(builder, "feature_13", parent_agent_id=parent, status="executing")
    prompt = await db.create_prompt(child, "adw", "Build it", model_used="claude-sonnet")
    await db.update_prompt(prompt, status="completed", tokens_input=10, cost_usd=0.5)
    await db.add_agent_cost(parent, 0.5)  # a cost of its own: version 3 keeps it as it is
    await db.create_agent_log(parent, "INFO", "milestone", "plan ready", {"steps": [1, 2]})
    await db.create_agent_log(child, "ERROR", "error", "tests failed")
    await db.create_system_log("INFO", "orchestrator", "session started", {"pid": 1})


TOTALS_TABLES = tuple(tables.TOTALS_TABLES)


def drop_version_3_sqlite(raw: sqlite3.Connection) -> None:
    """What version 3 added: the totals' triggers and tables (see test_totals.py)."""
    triggers = raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for (trigger,) in triggers:
        raw.execute(f"DROP TRIGGER {trigger}")
    for table in TOTALS_TABLES:
        raw.execute(f"DROP TABLE {table}")


DROP_VERSION_3_POSTGRES = (
    "".join(f"DROP TABLE {table}; " for table in TOTALS_TABLES)
    + "DROP FUNCTION adw_agents_totals, adw_prompts_totals, adw_count_rows,"
    " adw_daily_costs_follow CASCADE;"
    " DROP FUNCTION adw_add_prompt, adw_recount_sessions, adw_session_bounds,"
    " adw_add_agent_prompts, adw_add_costs, adw_is_active, adw_shard, adw_day, adw_nano,"
    " adw_fold_shards, adw_fold, adw_add_model_costs;"
)


# Version 4 replaced this index of versions 1 to 3 by a wider one.
VERSION_3_INDEX = "CREATE INDEX idx_prompts_agent_created ON prompts (agent_id, created_at)"
UNDO_VERSION_4 = f"DROP INDEX idx_prompts_agent_totals; {VERSION_3_INDEX};"
# Version 5 gave PostgreSQL's log tables their transaction column (and its index, which
# goes with it); on SQLite it changed nothing, so there is nothing to undo.
UNDO_VERSION_5 = "ALTER TABLE agent_logs DROP COLUMN tx; ALTER TABLE system_logs DROP COLUMN tx;"


async def make_sqlite_version_1(path: Path) -> None:
    async with DatabaseManager(path) as db:
        await write_version_1_data(db)
    with raw_db(path) as raw:
        raw.executescript(UNDO_VERSION_4)
        drop_version_3_sqlite(raw)
        for table in NEW_TABLES:
            raw.execute(f"DROP TABLE {table}")  # drops its indexes too
        raw.execute("PRAGMA user_version = 1")
        assert sqlite_fingerprint(raw) == VERSION_1_FINGERPRINT
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # as the store left it


async def postgres_catalog(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Tables, columns, constraints and indexes of the URL's schema. A column's
    position is counted among the table's columns as they are (a dropped column
    leaves a gap in ``ordinal_position``, and taking a version back drops some)."""
    from pg_testing import connect_raw

    queries = {
        "columns": (
            "SELECT table_name,"
            " row_number() OVER (PARTITION BY table_name ORDER BY ordinal_position),"
            " column_name, data_type, is_nullable,"
            " column_default, is_identity, identity_generation FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY 1, 2"
        ),
        "constraints": (
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
            " FROM pg_constraint WHERE connamespace = current_schema()::regnamespace"
            " ORDER BY 1, 2"
        ),
        "indexes": (
            "SELECT tablename, indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = current_schema() ORDER BY 1, 2"
        ),
    }
    connection = await connect_raw(url)
    try:
        return {
            name: [tuple(row) for row in await connection.fetch(sql)]
            for name, sql in queries.items()
        }
    finally:
        await connection.close()


async def postgres_rows(url: str, names: tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of the tables ``names``, their columns as ``tables`` describes them
    (not the hidden ones: a log row's transaction, which version 5 added)."""
    from pg_testing import connect_raw

    connection = await connect_raw(url)
    try:
        return {
            table: [
                tuple(row)
                for row in await connection.fetch(
                    f"SELECT {', '.join(tables.TABLES[table].columns)} FROM {table} ORDER BY id"
                )
            ]
            for table in names
        }
    finally:
        await connection.close()


async def postgres_version(url: str) -> int:
    from pg_testing import connect_raw

    connection = await connect_raw(url)
    try:
        return int(await connection.fetchval("SELECT version FROM adw_schema_version"))
    finally:
        await connection.close()


async def make_postgres_version_1(url: str) -> None:
    from pg_testing import run_sql

    async with DatabaseManager(url) as db:
        await write_version_1_data(db)
    await run_sql(
        url,
        UNDO_VERSION_5
        + UNDO_VERSION_4
        + DROP_VERSION_3_POSTGRES
        + "DROP TABLE orchestrator_chat; DROP TABLE ai_developer_workflows;"
        " UPDATE adw_schema_version SET version = 1",
    )
    catalog = await postgres_catalog(url)
    assert {row[0] for row in catalog["columns"]} == {*VERSION_1_TABLES, "adw_schema_version"}


async def make_version_1(backend: str, store_url: Any) -> None:
    if backend == "sqlite":
        await make_sqlite_version_1(store_url)
    else:
        await make_postgres_version_1(store_url)


async def version_1_rows(backend: str, store_url: Any) -> dict[str, list[tuple[Any, ...]]]:
    if backend == "sqlite":
        return sqlite_rows(store_url, VERSION_1_TABLES)
    return await postgres_rows(store_url, VERSION_1_TABLES)


async def stored_version(backend: str, store_url: Any) -> int:
    if backend == "sqlite":
        with raw_db(store_url) as raw:
            return int(raw.execute("PRAGMA user_version").fetchone()[0])
    return await postgres_version(store_url)


async def start_python(script: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ),
    )


async def finish(process: asyncio.subprocess.Process) -> tuple[str, str]:
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), PROCESS_HANG_GUARD)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail("a child process hung")
    return stdout.decode(), stderr.decode()


# --- the upgrade is what a new database gets -------------------------------------------------


def test_the_migration_creates_what_the_schema_file_adds() -> None:
    """Version 1 (the schema file as released) plus migration 2 equals the
    schema file now, statement for statement in sqlite_master."""
    text = schema.DEFAULT_SCHEMA_PATH.read_text(encoding="utf-8")
    fresh = sqlite3.connect(":memory:")
    upgraded = sqlite3.connect(":memory:")
    try:
        fresh.executescript(text)
        fresh.executescript(schema.TOTALS_PATH.read_text(encoding="utf-8"))
        upgraded.executescript(text[: text.index("CREATE TABLE IF NOT EXISTS orchestrator_chat")])
        upgraded.executescript(UNDO_VERSION_4)
        assert sqlite_fingerprint(upgraded) == VERSION_1_FINGERPRINT
        for statement in schema.statements_to_upgrade(1, schema.DEFAULT_SCHEMA_PATH):
            upgraded.execute(statement)
        assert sqlite_schema(upgraded) == sqlite_schema(fresh)
    finally:
        fresh.close()
        upgraded.close()
    assert schema.LATEST_VERSION == 5
    assert [migration.version for migration in schema.MIGRATIONS] == [1, 2, 3, 4, 5]


def test_migration_2_is_as_released() -> None:
    """Migration 2's texts are frozen: nothing the schema files or the code
    around them become later may change what it does."""
    (migration,) = [m for m in schema.MIGRATIONS if m.version == 2]
    migrated = sqlite3.connect(":memory:")
    try:
        for statement in schema.split_statements(migration.sql, "migration 2"):
            migrated.execute(statement)
        assert sqlite_fingerprint(migrated) == MIGRATION_2_SQLITE_HASH
    finally:
        migrated.close()
    postgres_text = " ".join(migration.postgres_sql.split())
    assert hashlib.sha256(postgres_text.encode()).hexdigest() == MIGRATION_2_POSTGRES_HASH


async def test_an_upgraded_database_is_exactly_a_new_one(backend: str, store_url: Any) -> None:
    async with DatabaseManager(store_url):
        pass
    if backend == "sqlite":
        with raw_db(store_url) as raw:
            fresh: Any = sqlite_schema(raw)
    else:
        fresh = await postgres_catalog(store_url)
    await make_version_1(backend, store_url)

    async with DatabaseManager(store_url) as db:
        assert await db.schema_version() == schema.LATEST_VERSION

    if backend == "sqlite":
        with raw_db(store_url) as raw:
            assert sqlite_schema(raw) == fresh
    else:
        assert await postgres_catalog(store_url) == fresh


# --- one process upgrades a version-1 database with data ------------------------------------


async def test_connect_upgrades_a_version_1_database_in_place(backend: str, store_url: Any) -> None:
    await make_version_1(backend, store_url)
    before = await version_1_rows(backend, store_url)
    assert all(before.values())
    assert await stored_version(backend, store_url) == 1

    async with DatabaseManager(store_url) as db:
        assert await db.schema_version() == schema.LATEST_VERSION
        counts = await db.count_rows()
        assert {table: counts[table] for table in NEW_TABLES} == dict.fromkeys(NEW_TABLES, 0)
        # The old rows read as before, and the new tables take rows that refer to them.
        (planner,) = [
            row for row in await db.list_orchestrator_agents() if row["name"] == "planner"
        ]
        (child,) = await db.list_agents(status="executing")
        await db.create_chat_message(
            planner["id"], "orchestrator", "agent", "go", agent_id=child["id"]
        )
        workflow = await db.start_workflow(
            "adw_build", "build", adw_id="a1b2c3d4", orchestrator_agent_id=planner["id"]
        )
        assert await db.end_workflow(workflow, "completed")

    assert await version_1_rows(backend, store_url) == before
    assert await stored_version(backend, store_url) == schema.LATEST_VERSION
    if backend == "sqlite":
        with raw_db(store_url) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
    async with DatabaseManager(store_url) as db:  # a second connect finds nothing to do
        assert await db.schema_version() == schema.LATEST_VERSION
        assert (await db.count_rows())["orchestrator_chat"] == 1


# --- several processes connect to a version-1 database at once ------------------------------

CONNECTOR_SCRIPT = """
import asyncio
import sys

from orchestrator_store import DatabaseManager, schema


async def main() -> None:
    url, index = sys.argv[1], int(sys.argv[2])
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # connect together
    async with DatabaseManager(url) as db:
        assert await db.schema_version() == schema.LATEST_VERSION
        definitions = {row["name"]: row["id"] for row in await db.list_orchestrator_agents()}
        await db.create_chat_message(definitions["planner"], "user", "orchestrator", f"p{index}")
        await db.start_workflow("adw_plan", "plan", adw_id=f"proc{index:04d}")
    print("done", flush=True)


asyncio.run(main())
"""


async def test_processes_connecting_at_once_upgrade_once_and_all_succeed(
    backend: str, store_url: Any
) -> None:
    await make_version_1(backend, store_url)
    before = await version_1_rows(backend, store_url)
    processes = [
        await start_python(CONNECTOR_SCRIPT, str(store_url), str(index))
        for index in range(PROCESSES)
    ]
    for process in processes:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), PROCESS_HANG_GUARD)
        assert line.decode().strip() == "ready", (await finish(process))[1]
    assert await stored_version(backend, store_url) == 1  # nobody has connected yet
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
    outcomes = [await finish(process) for process in processes]
    for process, (stdout, stderr) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
        assert stdout.split() == ["done"]

    assert await stored_version(backend, store_url) == schema.LATEST_VERSION
    assert await version_1_rows(backend, store_url) == before
    async with DatabaseManager(store_url) as db:
        messages = sorted(row["message"] for row in await db.list_chat_messages())
        assert messages == sorted(f"p{index}" for index in range(PROCESSES))
        adw_ids = sorted(row["adw_id"] for row in await db.list_workflows())
        assert adw_ids == [f"proc{index:04d}" for index in range(PROCESSES)]
    if backend == "sqlite":
        with raw_db(store_url) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            names = [name for (_kind, name, *_rest) in sqlite_schema(raw)]
            assert len(names) == len(set(names))
    else:
        from pg_testing import connect_raw

        connection = await connect_raw(store_url)
        try:
            assert await connection.fetchval("SELECT count(*) FROM adw_schema_version") == 1
        finally:
            await connection.close()


# --- version-1 code refuses a version-2 database ---------------------------------------------

VERSION_1_CODE = """
import asyncio
import sys

from orchestrator_store import DatabaseManager, SchemaError, schema

if sys.argv[1].startswith("postgres"):
    import orchestrator_store.postgres_backend  # loaded now, so that it is patched too

# The store as it was at version 1: its migrations and version end at 1, in
# every module that took them by name.
VERSION_1 = schema.MIGRATIONS[:1]
for name, module in list(sys.modules.items()):
    if name.startswith("orchestrator_store"):
        if hasattr(module, "LATEST_VERSION"):
            module.LATEST_VERSION = 1
        if hasattr(module, "MIGRATIONS"):
            module.MIGRATIONS = VERSION_1


async def main() -> None:
    db = DatabaseManager(sys.argv[1])
    try:
        await db.connect()
    except SchemaError as exc:
        print(f"refused: {exc}")
        return
    await db.close()
    print("opened")


asyncio.run(main())
"""


async def test_version_1_code_refuses_a_version_2_database_untouched(
    backend: str, store_url: Any
) -> None:
    async with DatabaseManager(store_url) as db:
        await write_version_1_data(db)
        definition = (await db.list_orchestrator_agents())[0]["id"]
        await db.create_chat_message(definition, "user", "orchestrator", "from version 2")
        await db.start_workflow("adw_plan", "plan", adw_id="a1b2c3d4")
    tables = (*VERSION_1_TABLES, *NEW_TABLES)
    if backend == "sqlite":
        before: Any = store_url.read_bytes()
    else:
        before = (await postgres_catalog(store_url), await postgres_rows(store_url, tables))

    process = await start_python(VERSION_1_CODE, str(store_url))
    stdout, stderr = await finish(process)

    assert process.returncode == 0, stderr
    assert stdout.startswith("refused: "), stdout + stderr
    assert f"schema version {schema.LATEST_VERSION}, newer than this store's version 1" in stdout
    assert await stored_version(backend, store_url) == schema.LATEST_VERSION
    if backend == "sqlite":
        assert store_url.read_bytes() == before
        assert not Path(f"{store_url}-wal").exists()
    else:
        after = (await postgres_catalog(store_url), await postgres_rows(store_url, tables))
        assert after == before
    async with DatabaseManager(store_url) as db:  # and the current code still opens it
        assert (await db.get_workflow_by_adw_id("a1b2c3d4") or {})["adw_name"] == "adw_plan"
