"""The store's file, its schema and its lifecycle: what connect() creates, what
it refuses (and leaves untouched), the SQLite settings of its connections, how
the database path is chosen, and what the library logs."""

from __future__ import annotations

import asyncio
import logging
import os
import pkgutil
import random
import re
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from original_era import write_original_era_file

import orchestrator_store
from orchestrator_store import sqlite_backend
from orchestrator_store.manager import (
    DatabaseError,
    DatabaseManager,
    IntegrityError,
    SchemaError,
    ValidationError,
)
from orchestrator_store.schema import DEFAULT_SCHEMA_PATH, LATEST_VERSION, TOTALS_PATH
from orchestrator_store.schema import TABLES as SCHEMA_TABLES

SCHEMA_FILE = DEFAULT_SCHEMA_PATH
TABLES = set(SCHEMA_TABLES)
# Every module of the package may log, under its own name.
LIBRARY_LOGGERS = tuple(
    f"orchestrator_store.{module.name}"
    for module in pkgutil.iter_modules(orchestrator_store.__path__)
)
SIDE_FILES = ("-wal", "-shm", "-journal")
HANG_GUARD = 60.0  # seconds; only ever a guard against hanging, never a speed check

MISSING_ID = str(uuid.uuid4())


# --- helpers -------------------------------------------------------------------


def raw_connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=10, isolation_level=None)


@contextmanager
def raw_db(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection that is closed at the end of the block."""
    connection = raw_connect(path)
    try:
        yield connection
    finally:
        connection.close()


def table_names(path: Path) -> set[str]:
    with raw_db(path) as raw:
        rows = raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def user_version(path: Path) -> int:
    raw = raw_connect(path)
    try:
        return int(raw.execute("PRAGMA user_version").fetchone()[0])
    finally:
        raw.close()


def files_for(path: Path) -> list[Path]:
    """The database file and its side files that exist."""
    candidates = [path, *(Path(f"{path}{suffix}") for suffix in SIDE_FILES)]
    return [candidate for candidate in candidates if candidate.exists()]


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def make_newer_database(path: Path, version: int = 99) -> None:
    """A database another (newer) store wrote: rollback-journal mode, so that
    the file is complete on its own and any write to it would show."""
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        raw.executescript(SCHEMA_FILE.read_text(encoding="utf-8"))
        raw.execute("CREATE TABLE from_the_future (id INTEGER PRIMARY KEY, note TEXT)")
        raw.execute("INSERT INTO from_the_future (note) VALUES ('keep me')")
        raw.execute(f"PRAGMA user_version = {version}")
    finally:
        raw.close()


async def extra_threads(before: set[threading.Thread], settle: float = HANG_GUARD) -> set[Any]:
    """Threads alive now that were not alive before, allowing a settle for
    threads that are already on their way out (returns as soon as none is
    left: on a loaded machine an ending thread may wait long for a core)."""
    deadline = time.monotonic() + settle
    while True:
        extra = {thread for thread in threading.enumerate() if thread not in before}
        if not extra or time.monotonic() > deadline:
            return extra
        await asyncio.sleep(0.01)


def write_schema(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "schemas" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def schema_without_system_logs() -> str:
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    start = text.index("CREATE TABLE IF NOT EXISTS system_logs")
    # Drop the table and its indexes (everything after it in the file).
    trimmed = text[:start]
    assert "system_logs" not in trimmed
    return trimmed


# --- lifecycle -----------------------------------------------------------------


async def test_context_manager_opens_and_closes(db_path: Path) -> None:
    async with DatabaseManager(db_path) as db:
        definition = await db.create_orchestrator_agent(
            name="planner", description="Plans", agent_type="planner"
        )
        row = await db.get_orchestrator_agent(agent_id=definition)
        assert row is not None
        assert row["name"] == "planner"
    with pytest.raises(DatabaseError, match=r"connect\(\)"):
        await db.get_orchestrator_agent(agent_id=definition)
    # What was written is in the file, for anyone who opens it.
    with raw_db(db_path) as raw:
        names = raw.execute("SELECT name FROM orchestrator_agents").fetchall()
    assert names == [("planner",)]


async def test_context_manager_closes_when_the_block_raises(db_path: Path) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with DatabaseManager(db_path) as db:
            await db.create_system_log(log_level="INFO", component="test", message="kept")
            raise Boom
    with pytest.raises(DatabaseError, match=r"connect\(\)"):
        await db.list_recent_system_logs()
    with raw_db(db_path) as raw:
        assert raw.execute("SELECT message FROM system_logs").fetchall() == [("kept",)]


def _transaction_call(db: DatabaseManager) -> Awaitable[Any]:
    async def run() -> None:
        async with db.transaction():
            pass

    return run()


CALLS: dict[str, Callable[[DatabaseManager], Awaitable[Any]]] = {
    "create_orchestrator_agent": lambda db: db.create_orchestrator_agent(
        name="n", description=None, agent_type="planner"
    ),
    "get_orchestrator_agent": lambda db: db.get_orchestrator_agent(agent_id=MISSING_ID),
    "list_orchestrator_agents": lambda db: db.list_orchestrator_agents(),
    "update_orchestrator_agent": lambda db: db.update_orchestrator_agent(MISSING_ID, name="m"),
    "delete_orchestrator_agent": lambda db: db.delete_orchestrator_agent(agent_id=MISSING_ID),
    "create_agent": lambda db: db.create_agent(
        orchestrator_agent_id=MISSING_ID, session_id="feature_Tac_14_Task_8"
    ),
    "get_agent": lambda db: db.get_agent(agent_id=MISSING_ID),
    "list_agents": lambda db: db.list_agents(session_id="s"),
    "update_agent": lambda db: db.update_agent(MISSING_ID, status="failed"),
    "add_agent_cost": lambda db: db.add_agent_cost(agent_id=MISSING_ID, cost_usd=0.5),
    "delete_agent": lambda db: db.delete_agent(agent_id=MISSING_ID),
    "create_prompt": lambda db: db.create_prompt(
        agent_id=MISSING_ID, prompt_type="adw", prompt_text="hi"
    ),
    "get_prompt": lambda db: db.get_prompt(prompt_id=MISSING_ID),
    "list_prompts": lambda db: db.list_prompts(agent_id=MISSING_ID),
    "update_prompt": lambda db: db.update_prompt(MISSING_ID, status="completed"),
    "delete_prompt": lambda db: db.delete_prompt(prompt_id=MISSING_ID),
    "create_agent_log": lambda db: db.create_agent_log(
        agent_id=MISSING_ID, log_level="INFO", log_type="milestone", message="m"
    ),
    "get_agent_logs": lambda db: db.get_agent_logs(agent_id=MISSING_ID),
    "list_recent_agent_logs": lambda db: db.list_recent_agent_logs(limit=5),
    "create_system_log": lambda db: db.create_system_log(
        log_level="INFO", component="c", message="m"
    ),
    "get_system_logs": lambda db: db.get_system_logs(log_level="INFO"),
    "list_recent_system_logs": lambda db: db.list_recent_system_logs(limit=5),
    "cleanup_old_logs": lambda db: db.cleanup_old_logs(days=30),
    "transaction": _transaction_call,
}


@pytest.mark.parametrize("method", sorted(CALLS))
async def test_methods_before_connect_raise_saying_to_connect(db_path: Path, method: str) -> None:
    db = DatabaseManager(db_path)
    with pytest.raises(DatabaseError, match=r"connect\(\)"):
        await CALLS[method](db)
    assert not db_path.exists(), "a call before connect() must not create the file"


@pytest.mark.parametrize("method", sorted(CALLS))
async def test_methods_after_close_raise_saying_to_connect(db_path: Path, method: str) -> None:
    db = DatabaseManager(db_path)
    await db.connect()
    await db.close()
    before = snapshot(db_path)
    with pytest.raises(DatabaseError, match=r"connect\(\)"):
        await CALLS[method](db)
    assert snapshot(db_path) == before


async def test_connect_and_close_are_idempotent(db_path: Path) -> None:
    threads_before = set(threading.enumerate())
    db = DatabaseManager(db_path)
    await db.close()  # closing a store never opened is harmless
    await db.connect()
    threads_open = set(threading.enumerate())
    await db.connect()  # a second connect opens nothing more
    assert set(threading.enumerate()) == threads_open
    log_id = await db.create_system_log(log_level="INFO", component="test", message="once")
    assert [row["id"] for row in await db.get_system_logs()] == [log_id]
    await db.close()
    await db.close()
    assert await extra_threads(threads_before) == set()
    with pytest.raises(DatabaseError, match=r"connect\(\)"):
        await db.get_system_logs()


async def test_reconnect_after_close_sees_earlier_data(db_path: Path) -> None:
    db = DatabaseManager(db_path)
    await db.connect()
    definition = await db.create_orchestrator_agent(
        name="builder", description=None, agent_type="builder"
    )
    await db.close()
    await db.connect()
    try:
        row = await db.get_orchestrator_agent(agent_id=definition)
        assert row is not None
        assert row["agent_type"] == "builder"
        agent = await db.create_agent(orchestrator_agent_id=definition, session_id="s1")
        assert await db.add_agent_cost(agent_id=agent, cost_usd=0.25) is True
    finally:
        await db.close()
    async with DatabaseManager(db_path) as again:
        row = await again.get_agent(agent_id=agent)
        assert row is not None
        assert row["cost_usd"] == 0.25


async def test_close_and_reopen_many_times_leaves_no_threads(db_path: Path) -> None:
    threads_before = set(threading.enumerate())
    for round_number in range(5):
        async with DatabaseManager(db_path) as db:
            await db.create_system_log(
                log_level="DEBUG", component="test", message=f"round {round_number}"
            )
    assert await extra_threads(threads_before) == set()
    with raw_db(db_path) as raw:
        assert raw.execute("SELECT count(*) FROM system_logs").fetchone()[0] == 5


# --- the file ------------------------------------------------------------------


async def test_file_and_parent_folders_are_created_on_first_connect(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c" / "orchestrator.db"
    db = DatabaseManager(path)  # construction does no I/O
    assert not (tmp_path / "a").exists()
    await db.connect()
    try:
        assert path.is_file()
        assert await db.schema_version() == LATEST_VERSION
    finally:
        await db.close()
    assert table_names(path) >= TABLES
    assert user_version(path) == LATEST_VERSION


@pytest.mark.backend("sqlite")  # SQLite file settings, read through raw sqlite3
async def test_schema_initialisation_creates_tables_and_indexes(db: DatabaseManager) -> None:
    assert await db.schema_version() == LATEST_VERSION
    assert await db.count_rows() == dict.fromkeys(SCHEMA_TABLES, 0)
    with raw_db(db.db_path) as raw:
        indexes = {
            name
            for (name,) in raw.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }
    expected = {
        name
        for path in (SCHEMA_FILE, TOTALS_PATH)
        for name in re.findall(
            r"CREATE INDEX IF NOT EXISTS (\w+)", path.read_text(encoding="utf-8")
        )
    }
    assert expected  # the schema file declares indexes
    assert indexes == expected
    assert table_names(db.db_path) >= TABLES


@pytest.mark.backend("sqlite")  # SQLite file settings, read through raw sqlite3
async def test_journal_mode_is_wal_in_the_file(db: DatabaseManager) -> None:
    # journal_mode=WAL is persistent: any connection to the file reports it.
    raw = raw_connect(db.db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


async def test_journal_mode_is_wal_after_close(db_path: Path) -> None:
    async with DatabaseManager(db_path) as db:
        await db.create_system_log(log_level="INFO", component="test", message="m")
    raw = raw_connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


@pytest.mark.backend("sqlite")  # SQLite file settings, read through raw sqlite3
async def test_foreign_keys_are_enforced(db: DatabaseManager) -> None:
    writer = db._backend._writer
    assert writer is not None
    rows = await writer.call(lambda c: c.execute("PRAGMA foreign_keys").fetchall())
    assert rows[0]["foreign_keys"] == 1
    # ... and the store behaves accordingly.
    with pytest.raises(IntegrityError):
        await db.create_agent(orchestrator_agent_id=MISSING_ID, session_id="s")
    assert await db.list_agents() == []


@pytest.mark.parametrize(
    ("busy_timeout", "milliseconds"), [(0.25, 250), (1.5, 1500), (5.0, 5000), (0, 0)]
)
async def test_busy_timeout_is_set_on_the_connection(
    db_path: Path, busy_timeout: float, milliseconds: int
) -> None:
    async with DatabaseManager(db_path, busy_timeout=busy_timeout) as db:
        writer = db._backend._writer
        assert writer is not None
        rows = await writer.call(lambda c: c.execute("PRAGMA busy_timeout").fetchall())
        assert rows[0]["timeout"] == milliseconds


async def test_readers_are_read_only_and_map_the_file(db_path: Path) -> None:
    """Reads go through reader connections that cannot write and map the file."""
    async with DatabaseManager(db_path) as db:
        backend = db._backend
        mmap = await backend.fetch_all("PRAGMA mmap_size", (), table="(test)")
        query_only = await backend.fetch_all("PRAGMA query_only", (), table="(test)")
    assert mmap == [{"mmap_size": sqlite_backend.READER_MMAP_BYTES}]
    assert query_only == [{"query_only": 1}]


@pytest.mark.backend("sqlite")  # SQLite file settings, read through raw sqlite3
async def test_default_busy_timeout_is_five_seconds(db: DatabaseManager) -> None:
    writer = db._backend._writer
    assert writer is not None
    rows = await writer.call(lambda c: c.execute("PRAGMA busy_timeout").fetchall())
    assert rows[0]["timeout"] == 5000


@pytest.mark.parametrize(
    ("synchronous", "level"),
    [("OFF", 0), ("NORMAL", 1), ("FULL", 2), ("EXTRA", 3), ("full", 2)],
)
async def test_synchronous_is_set_on_the_connection(
    db_path: Path, synchronous: str, level: int
) -> None:
    async with DatabaseManager(db_path, synchronous=synchronous) as db:
        writer = db._backend._writer
        assert writer is not None
        rows = await writer.call(lambda c: c.execute("PRAGMA synchronous").fetchall())
        assert rows[0]["synchronous"] == level


@pytest.mark.backend("sqlite")  # SQLite file settings, read through raw sqlite3
async def test_default_synchronous_is_normal(db: DatabaseManager) -> None:
    writer = db._backend._writer
    assert writer is not None
    rows = await writer.call(lambda c: c.execute("PRAGMA synchronous").fetchall())
    assert rows[0]["synchronous"] == 1


# --- db_path resolution --------------------------------------------------------


def test_explicit_db_path_wins_over_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_DB_PATH", str(tmp_path / "from_env.db"))
    explicit = tmp_path / "explicit.db"
    assert Path(DatabaseManager(explicit).db_path).resolve() == explicit.resolve()
    assert Path(DatabaseManager(str(explicit)).db_path).resolve() == explicit.resolve()
    assert not explicit.exists()


def test_environment_db_path_wins_over_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = tmp_path / "env" / "from_env.db"
    monkeypatch.setenv("ORCHESTRATOR_DB_PATH", str(from_env))
    assert Path(DatabaseManager().db_path).resolve() == from_env.resolve()
    assert not from_env.exists()


def test_default_db_path_is_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package on its own: ``orchestrator.db`` in the current folder (a project's
    adw_database.py passes its configured file instead: test_store_smoke.py)."""
    monkeypatch.delenv("ORCHESTRATOR_DB_PATH", raising=False)
    monkeypatch.delenv("ORCHESTRATOR_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert DatabaseManager().db_path == tmp_path / "orchestrator.db"
    assert not (tmp_path / "orchestrator.db").exists()  # constructing does no I/O


async def test_environment_db_path_is_used_on_connect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = tmp_path / "env" / "store.db"
    monkeypatch.setenv("ORCHESTRATOR_DB_PATH", str(from_env))
    async with DatabaseManager() as db:
        await db.create_system_log(log_level="INFO", component="env", message="here")
    with raw_db(from_env) as raw:
        assert raw.execute("SELECT component FROM system_logs").fetchall() == [("env",)]


def test_memory_database_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        DatabaseManager(":memory:")
    assert isinstance(caught.value, ValueError)
    assert not Path(":memory:").exists()


@pytest.mark.parametrize("busy_timeout", [-1, -0.001, "5", None, float("nan"), float("inf")])
def test_bad_busy_timeout_is_rejected(db_path: Path, busy_timeout: Any) -> None:
    with pytest.raises(ValidationError, match="busy_timeout"):
        DatabaseManager(db_path, busy_timeout=busy_timeout)
    assert not db_path.exists()


@pytest.mark.parametrize("synchronous", ["SOMETIMES", "", "NORMAL; DROP TABLE agents", None])
def test_bad_synchronous_is_rejected(db_path: Path, synchronous: Any) -> None:
    with pytest.raises(ValidationError, match="synchronous"):
        DatabaseManager(db_path, synchronous=synchronous)
    assert not db_path.exists()


@pytest.mark.parametrize("read_mmap_bytes", [-1, 2**40 + 1, 1.5, "0", None, True])
def test_bad_read_mmap_bytes_is_rejected(db_path: Path, read_mmap_bytes: Any) -> None:
    with pytest.raises(ValidationError, match="read_mmap_bytes"):
        DatabaseManager(db_path, read_mmap_bytes=read_mmap_bytes)
    assert not db_path.exists()


@pytest.mark.parametrize("read_mmap_bytes", [None, 0, 4096 * 100])
async def test_readers_map_as_much_of_the_file_as_asked(
    db_path: Path, read_mmap_bytes: int | None
) -> None:
    """256 MiB by default; 0 keeps the file out of the process's RSS (the export's choice)."""
    options = {} if read_mmap_bytes is None else {"read_mmap_bytes": read_mmap_bytes}
    async with DatabaseManager(db_path, **options) as db:
        rows = await db.query("PRAGMA mmap_size")
    expected = 256 * 1024 * 1024 if read_mmap_bytes is None else read_mmap_bytes
    assert rows == [{"mmap_size": expected}]


# --- schema files --------------------------------------------------------------


async def test_missing_schema_file_is_a_schema_error_naming_it(
    db_path: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "schema_missing.sql"
    db = DatabaseManager(db_path, schema_path=missing)
    with pytest.raises(SchemaError) as caught:
        await db.connect()
    assert "schema_missing.sql" in str(caught.value)
    assert files_for(db_path) == []
    with pytest.raises(DatabaseError, match=r"connect\(\)"):
        await db.list_agents()


INVALID_SCHEMAS = {
    "syntax_error": "CREATE TABLE orchestrator_agents (id TEXT PRIMARY KEY,, name);\n",
    "not_sql": "this is not SQL at all;\n",
    "unknown_reference": (
        "CREATE TABLE orchestrator_agents (id TEXT PRIMARY KEY);\n"
        "CREATE INDEX idx_nothing ON no_such_table (id);\n"
    ),
    "incomplete_statement": "CREATE TABLE orchestrator_agents (id TEXT PRIMARY KEY\n",
    "empty": "-- nothing here\n",
}


@pytest.mark.parametrize("case", sorted(INVALID_SCHEMAS))
async def test_invalid_schema_sql_is_a_schema_error_naming_the_file(
    db_path: Path, tmp_path: Path, case: str
) -> None:
    schema = write_schema(tmp_path, f"broken_{case}.sql", INVALID_SCHEMAS[case])
    db = DatabaseManager(db_path, schema_path=schema)
    with pytest.raises(SchemaError) as caught:
        await db.connect()
    assert f"broken_{case}.sql" in str(caught.value)
    assert files_for(db_path) == []
    # Nothing half-made stays behind: the real schema still opens the path cleanly.
    async with DatabaseManager(db_path) as good:
        assert await good.schema_version() == LATEST_VERSION
        assert table_names(db_path) >= TABLES


async def test_schema_file_lacking_a_table_is_a_schema_error(db_path: Path, tmp_path: Path) -> None:
    schema = write_schema(tmp_path, "four_tables.sql", schema_without_system_logs())
    with pytest.raises(SchemaError) as caught:
        async with DatabaseManager(db_path, schema_path=schema):
            pass
    message = str(caught.value)
    assert "four_tables.sql" in message
    assert "system_logs" in message
    assert files_for(db_path) == []


async def test_schema_path_is_used_when_given(db_path: Path, tmp_path: Path) -> None:
    marked = SCHEMA_FILE.read_text(encoding="utf-8") + (
        "\nCREATE TABLE IF NOT EXISTS custom_marker (id INTEGER PRIMARY KEY);\n"
    )
    schema = write_schema(tmp_path, "custom.sql", marked)
    async with DatabaseManager(db_path, schema_path=schema) as db:
        assert await db.schema_version() == LATEST_VERSION
    assert "custom_marker" in table_names(db_path)


async def test_schema_is_found_whatever_the_current_directory(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    async with DatabaseManager(db_path) as db:
        assert await db.schema_version() == LATEST_VERSION
    assert table_names(db_path) >= TABLES


# --- files the store must refuse, untouched ------------------------------------

FOREIGN_FILES = {
    "random_bytes": random.Random(1234).randbytes(8192),
    "text": b"name,cost\nplanner,0.25\n" * 50,
    "sqlite_header_then_garbage": b"SQLite format 3\x00" + random.Random(99).randbytes(4080),
}


@pytest.mark.parametrize("case", sorted(FOREIGN_FILES))
async def test_file_that_is_not_a_database_is_refused_and_untouched(
    db_path: Path, case: str
) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    db_path.write_bytes(FOREIGN_FILES[case])
    before = snapshot(db_path)
    threads_before = set(threading.enumerate())
    db = DatabaseManager(db_path)
    with pytest.raises(DatabaseError) as caught:
        await db.connect()
    assert str(db_path) in str(caught.value) or db_path.name in str(caught.value)
    assert snapshot(db_path) == before
    assert files_for(db_path) == [db_path]
    assert await extra_threads(threads_before) == set()
    with pytest.raises(DatabaseError, match=r"connect\(\)"):
        await db.list_agents()


def make_other_applications_database(path: Path, tables: dict[str, str]) -> None:
    """A SQLite file in rollback-journal mode, as another program leaves it."""
    raw = sqlite3.connect(path)
    try:
        for name, columns in tables.items():
            raw.execute(f"CREATE TABLE {name} ({columns})")
            raw.execute(f"INSERT INTO {name} DEFAULT VALUES")
        raw.commit()
    finally:
        raw.close()


@pytest.mark.parametrize(
    "tables",
    [{"notes": "body TEXT"}, {"agents": "x TEXT", "notes": "body TEXT"}, {"agents": "x TEXT"}],
    ids=["unrelated_table", "store_name_and_unrelated", "store_name_other_columns"],
)
async def test_another_applications_sqlite_file_is_refused_before_anything_changes(
    db_path: Path, tables: dict[str, str]
) -> None:
    """Checked before the switch to WAL, which rewrites header bytes 18-19."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    make_other_applications_database(db_path, tables)
    before = snapshot(db_path)
    db = DatabaseManager(db_path)
    with pytest.raises(DatabaseError, match="another application's database") as caught:
        await db.connect()
    assert db_path.name in str(caught.value)
    assert f"({', '.join(sorted(tables))})" in str(caught.value)  # each table it does not take
    assert snapshot(db_path) == before
    assert db_path.read_bytes()[18:20] == b"\x01\x01"  # still rollback-journal mode
    assert files_for(db_path) == [db_path]


async def test_an_original_era_file_with_another_table_is_another_applications(
    db_path: Path,
) -> None:
    """Other tables are looked for first: such a file is not offered to adopt,
    which would leave them pointing at nothing."""
    write_original_era_file(db_path, journal_mode="delete")
    raw = raw_connect(db_path)
    raw.execute("CREATE TABLE notes (body TEXT)")
    raw.close()
    before = snapshot(db_path)
    with pytest.raises(DatabaseError, match="another application's database") as caught:
        await DatabaseManager(db_path).connect()
    assert "(notes)" in str(caught.value)
    assert snapshot(db_path) == before
    assert files_for(db_path) == [db_path]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
async def test_a_fifo_as_the_path_is_refused_without_blocking(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(db_path)
    db = DatabaseManager(db_path)
    with pytest.raises(DatabaseError, match="not a regular file"):
        await asyncio.wait_for(db.connect(), HANG_GUARD)  # it used to block the loop forever


async def test_a_file_where_a_folder_should_be_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    for path in (blocker / "store.db", blocker / "deeper" / "store.db"):
        with pytest.raises(DatabaseError, match="cannot create") as caught:
            await DatabaseManager(path).connect()
        assert f"{blocker} is a file, not a folder" in str(caught.value)
    assert blocker.read_text() == "not a folder"


async def test_newer_schema_version_is_refused_and_untouched(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    make_newer_database(db_path, version=99)
    before = snapshot(db_path)
    threads_before = set(threading.enumerate())
    db = DatabaseManager(db_path)
    with pytest.raises(SchemaError) as caught:
        await db.connect()
    message = str(caught.value)
    assert "99" in message
    assert db_path.name in message
    assert snapshot(db_path) == before
    assert files_for(db_path) == [db_path]
    assert await extra_threads(threads_before) == set()
    assert user_version(db_path) == 99
    with raw_db(db_path) as raw:
        assert raw.execute("SELECT note FROM from_the_future").fetchall() == [("keep me",)]
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


async def test_unversioned_database_with_tables_gets_versioned(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    raw = raw_connect(db_path)
    try:
        raw.executescript(SCHEMA_FILE.read_text(encoding="utf-8"))
        raw.execute(
            "INSERT INTO system_logs (log_level, component, message, created_at) "
            "VALUES ('INFO', 'legacy', 'written before versioning', "
            "'2025-01-02T03:04:05.000006+00:00')"
        )
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 0
    finally:
        raw.close()
    async with DatabaseManager(db_path) as db:
        assert await db.schema_version() == LATEST_VERSION
        legacy = await db.get_system_logs(component="legacy")
        assert [row["message"] for row in legacy] == ["written before versioning"]
        await db.create_system_log(log_level="INFO", component="new", message="after")
    assert user_version(db_path) == LATEST_VERSION
    assert table_names(db_path) >= TABLES


async def test_unversioned_database_missing_tables_gets_them(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    raw = raw_connect(db_path)
    try:
        raw.executescript(schema_without_system_logs())
    finally:
        raw.close()
    assert "system_logs" not in table_names(db_path)
    async with DatabaseManager(db_path) as db:
        assert await db.schema_version() == LATEST_VERSION
        log_id = await db.create_system_log(log_level="INFO", component="c", message="m")
        assert isinstance(log_id, int)
    assert table_names(db_path) >= TABLES


# --- a connect() that fails part-way -------------------------------------------


async def test_failed_connect_leaves_no_threads_missing_schema(
    db_path: Path, tmp_path: Path
) -> None:
    threads_before = set(threading.enumerate())
    db = DatabaseManager(db_path, schema_path=tmp_path / "absent.sql")
    with pytest.raises(SchemaError):
        await db.connect()
    assert await extra_threads(threads_before) == set()


async def test_failed_connect_leaves_no_threads_invalid_schema(
    db_path: Path, tmp_path: Path
) -> None:
    schema = write_schema(tmp_path, "bad.sql", INVALID_SCHEMAS["syntax_error"])
    threads_before = set(threading.enumerate())
    for _ in range(3):  # repeated failures do not accumulate threads either
        with pytest.raises(SchemaError):
            await DatabaseManager(db_path, schema_path=schema).connect()
    assert await extra_threads(threads_before) == set()


EXIT_SCRIPT = """
import asyncio
import sys

from orchestrator_store.manager import DatabaseError, DatabaseManager


async def main() -> None:
    db = DatabaseManager(sys.argv[1], schema_path=sys.argv[2])
    try:
        await db.connect()
    except DatabaseError as exc:
        print("refused:", type(exc).__name__, flush=True)
    else:
        print("connected", flush=True)


asyncio.run(main())
"""


@pytest.mark.parametrize("case", ["missing_schema", "invalid_schema", "newer_version"])
async def test_failed_connect_does_not_hang_the_interpreter_at_exit(
    db_path: Path, tmp_path: Path, case: str
) -> None:
    """A thread left running by a failed connect() would keep the process alive."""
    schema = SCHEMA_FILE
    if case == "missing_schema":
        schema = tmp_path / "absent.sql"
    elif case == "invalid_schema":
        schema = write_schema(tmp_path, "bad.sql", INVALID_SCHEMAS["syntax_error"])
    else:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        make_newer_database(db_path)
    env = dict(os.environ)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        EXIT_SCRIPT,
        str(db_path),
        str(schema),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), HANG_GUARD)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail("the process did not exit: a failed connect() left a thread running")
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().startswith("refused: SchemaError")
    assert "Traceback" not in stderr.decode()


# --- logging -------------------------------------------------------------------

QUIET_SCRIPT = """
import asyncio, sys
from orchestrator_store.manager import DatabaseManager, IntegrityError, ValidationError

async def refused(db, n):
    try:
        await db.create_system_log("LOUD", "c", f"m{n}")
    except ValidationError:
        return "caught"

async def main():
    async with DatabaseManager(sys.argv[1]) as db:
        results = await asyncio.gather(*(refused(db, n) for n in range(20)))
        await db.create_orchestrator_agent("dup", None, "planner")
        try:
            await db.create_orchestrator_agent("dup", None, "planner")
        except IntegrityError:
            pass
    print(results.count("caught"), flush=True)

asyncio.run(main())
"""


async def test_errors_the_application_catches_print_nothing(db_path: Path) -> None:
    """20 tasks each get a ValidationError and one an IntegrityError, all
    caught: with logging left unconfigured (Python's last-resort handler
    prints WARNING and above to stderr), stderr stays empty."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        QUIET_SCRIPT,
        str(db_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), HANG_GUARD)
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().strip() == "20"
    assert stderr.decode() == ""


async def test_library_never_adds_logging_handlers(db_path: Path) -> None:
    root = logging.getLogger()
    root_handlers = list(root.handlers)
    root_level = root.level
    async with DatabaseManager(db_path) as db:
        definition = await db.create_orchestrator_agent(
            name="planner", description=None, agent_type="planner"
        )
        agent = await db.create_agent(orchestrator_agent_id=definition, session_id="s")
        await db.create_agent_log(
            agent_id=agent, log_level="INFO", log_type="milestone", message="m"
        )
        with pytest.raises(IntegrityError):
            await db.create_orchestrator_agent(
                name="planner", description=None, agent_type="planner"
            )
        with pytest.raises(ValidationError):
            await db.get_agent(agent_id="../x")
    assert root.handlers == root_handlers
    assert root.level == root_level
    assert logging.getLogger("orchestrator_store.manager").handlers == []
    for name in LIBRARY_LOGGERS:
        if name in logging.root.manager.loggerDict:
            library_logger = logging.getLogger(name)
            assert library_logger.handlers == [], name
            assert library_logger.propagate, name


async def test_prompt_and_response_text_never_logged_above_debug(
    db: DatabaseManager, agent_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    prompt_secret = "PROMPT-TEXT-7f3a9c-do-not-log"
    response_secret = "RESPONSE-TEXT-b41e0d-do-not-log"
    prompt = await db.create_prompt(
        agent_id=agent_id, prompt_type="adw", prompt_text=f"Plan this: {prompt_secret}"
    )
    assert await db.update_prompt(
        prompt, response_text=f"Here: {response_secret}", status="completed"
    )
    # Failures that carry the texts alongside the faulty value.
    with pytest.raises(ValidationError):
        await db.create_prompt(
            agent_id=agent_id, prompt_type="not_a_type", prompt_text=prompt_secret
        )
    with pytest.raises(ValidationError):
        await db.update_prompt(prompt, response_text=response_secret, tokens_input=-1)
    with pytest.raises(IntegrityError):
        await db.create_prompt(
            agent_id=MISSING_ID, prompt_type="adw", prompt_text=f"orphan {prompt_secret}"
        )
    row = await db.get_prompt(prompt_id=prompt)
    assert row is not None
    assert prompt_secret in row["prompt_text"]

    library_records = [r for r in caplog.records if r.name in LIBRARY_LOGGERS]
    assert any(r.levelno == logging.DEBUG for r in library_records), "DEBUG per operation"
    formatter = logging.Formatter("%(message)s")
    for record in caplog.records:
        if record.levelno >= logging.INFO:
            text = formatter.format(record)
            assert prompt_secret not in text, record
            assert response_secret not in text, record


async def _fail_duplicate_name(db_path: Path, tmp_path: Path) -> None:
    async with DatabaseManager(db_path) as db:
        await db.create_orchestrator_agent(name="dup", description=None, agent_type="tester")
        with pytest.raises(IntegrityError):
            await db.create_orchestrator_agent(name="dup", description=None, agent_type="tester")


async def _fail_missing_reference(db_path: Path, tmp_path: Path) -> None:
    async with DatabaseManager(db_path) as db:
        with pytest.raises(IntegrityError):
            await db.create_agent_log(
                agent_id=MISSING_ID, log_level="INFO", log_type="error", message="m"
            )


async def _fail_bad_input(db_path: Path, tmp_path: Path) -> None:
    async with DatabaseManager(db_path) as db:
        with pytest.raises(ValidationError):
            await db.create_system_log(log_level="LOUD", component="c", message="m")


async def _fail_missing_schema(db_path: Path, tmp_path: Path) -> None:
    with pytest.raises(SchemaError):
        await DatabaseManager(db_path, schema_path=tmp_path / "absent.sql").connect()


async def _fail_invalid_schema(db_path: Path, tmp_path: Path) -> None:
    schema = write_schema(tmp_path, "bad.sql", INVALID_SCHEMAS["syntax_error"])
    with pytest.raises(SchemaError):
        await DatabaseManager(db_path, schema_path=schema).connect()


async def _fail_not_a_database(db_path: Path, tmp_path: Path) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    db_path.write_bytes(FOREIGN_FILES["random_bytes"])
    with pytest.raises(DatabaseError):
        await DatabaseManager(db_path).connect()


async def _fail_newer_version(db_path: Path, tmp_path: Path) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    make_newer_database(db_path)
    with pytest.raises(SchemaError):
        await DatabaseManager(db_path).connect()


FAILURES: dict[str, Callable[[Path, Path], Awaitable[None]]] = {
    "duplicate_name": _fail_duplicate_name,
    "missing_reference": _fail_missing_reference,
    "bad_input": _fail_bad_input,
    "missing_schema": _fail_missing_schema,
    "invalid_schema": _fail_invalid_schema,
    "not_a_database": _fail_not_a_database,
    "newer_version": _fail_newer_version,
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
async def test_failures_are_raised_not_logged(
    db_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, failure: str
) -> None:
    """A library does not print what it raises: the caller decides."""
    caplog.set_level(logging.DEBUG)
    await FAILURES[failure](db_path, tmp_path)
    loud = [
        record
        for record in caplog.records
        if record.name in LIBRARY_LOGGERS and record.levelno >= logging.WARNING
    ]
    assert loud == [], f"the {failure} failure was logged: {loud}"
