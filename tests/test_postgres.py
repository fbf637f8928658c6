"""What only PostgreSQL has: choosing it by URL, the pool and its settings in
the URL, creating the database, migrations from many processes, lost
connections and timeouts, and copying a SQLite store into it.

The rest of the store's contract runs on PostgreSQL through the ``db`` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import pytest
from pg_testing import connect_raw, database_url, run_sql, with_parameter
from realistic_session import RecordedSession
from typer.testing import CliRunner

from orchestrator_store import copy_to_postgres, postgres_backend
from orchestrator_store.backend import Backend
from orchestrator_store.cli import app
from orchestrator_store.copy_to_postgres import copy_sqlite_to_postgres
from orchestrator_store.location import redact_text, redact_url
from orchestrator_store.manager import (
    BusyError,
    ConnectionLostError,
    DatabaseError,
    DatabaseManager,
    PoolSettings,
    SchemaError,
    StatementTimeoutError,
    ValidationError,
)
from orchestrator_store.postgres_backend import PostgresBackend
from orchestrator_store.schema import DEFAULT_POSTGRES_SCHEMA_PATH, LATEST_VERSION, TABLES

PROCESS_HANG_GUARD = 120.0
# How long an in-process wait for an expected state may take before the test
# counts it as hung: far above any time a loaded machine needs.
HANG_GUARD = 120.0


async def until(condition: Callable[[], Awaitable[bool]], guard: float = HANG_GUARD) -> None:
    """Poll ``condition`` until it holds; fail only if it never does within ``guard``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + guard
    while not await condition():
        assert loop.time() < deadline, f"not reached within {guard:g}s"
        await asyncio.sleep(0.05)


def run_python(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``script`` in a fresh interpreter with the store's modules importable."""
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=PROCESS_HANG_GUARD,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# --- choosing the backend (no server needed) -------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://postgres@127.0.0.1:5432/store", "postgresql"),
        ("postgres://postgres@127.0.0.1/store", "postgresql"),
        ("sqlite:///relative/store.db", "sqlite"),
        ("plain/path/store.db", "sqlite"),
    ],
)
def test_the_url_selects_the_backend(given: str, expected: str) -> None:
    assert DatabaseManager(given).backend_name == expected


def test_sqlite_urls_name_a_file_relative_or_absolute(tmp_path: Path) -> None:
    assert DatabaseManager(f"sqlite:///{tmp_path}/a.db").db_path == tmp_path / "a.db"
    assert DatabaseManager("sqlite:///rel/a.db").db_path == Path("rel/a.db").absolute()
    with pytest.raises(DatabaseError, match="names no file"):
        DatabaseManager("sqlite:///")
    with pytest.raises(DatabaseError, match="not a database URL the store accepts"):
        DatabaseManager("mysql://root:secret@host/db")


def test_database_url_env_takes_precedence_over_db_path_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_DB_PATH", str(tmp_path / "file.db"))
    assert DatabaseManager().db_path == tmp_path / "file.db"
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", "postgresql://u:secret@db.example/store")
    manager = DatabaseManager()
    assert manager.backend_name == "postgresql"
    assert manager.database_url == "postgresql://u:secret@db.example/store"
    assert "secret" not in manager.location
    assert "secret" not in repr(manager)


def test_default_database_url_is_used_when_no_env_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ORCHESTRATOR_DATABASE_URL", raising=False)
    monkeypatch.delenv("ORCHESTRATOR_DB_PATH", raising=False)
    configured = "postgresql://u@h/configured"
    assert DatabaseManager(default_database=configured).database_url == configured


@pytest.mark.parametrize(
    "settings",
    [
        {"min_size": 0},
        {"min_size": 5, "max_size": 2},
        {"command_timeout": -1},
        {"statement_cache_size": True},
        {"max_size": 2.5},
    ],
)
def test_bad_pool_settings_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(DatabaseError, match="pool"):
        PoolSettings(**settings)


# --- what the URL says (no server needed) ---------------------------------------------


def _backend(url: str, pool: PoolSettings | None = None) -> PostgresBackend:
    return PostgresBackend(
        url, schema_path=DEFAULT_POSTGRES_SCHEMA_PATH, pool=pool or PoolSettings()
    )


def test_pool_settings_in_the_url_are_taken_off_it() -> None:
    backend = _backend(
        "postgresql://u@h:5432/db?statement_cache_size=0&application_name=app"
        "&max_size=20&command_timeout=30&sslmode=disable"
    )
    assert backend.url == "postgresql://u@h:5432/db?application_name=app&sslmode=disable"
    assert backend.settings == PoolSettings(
        statement_cache_size=0, max_size=20, command_timeout=30.0
    )


def test_the_urls_pool_settings_win_over_pool_field_by_field() -> None:
    pool = PoolSettings(max_size=5, command_timeout=7.0, acquire_timeout=3.0)
    backend = _backend("postgresql://u@h/db?max_size=20&acquire_timeout=1.5", pool)
    assert backend.settings == PoolSettings(max_size=20, command_timeout=7.0, acquire_timeout=1.5)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("max_size=lots", "max_size"),
        ("statement_cache_size=0.5", "statement_cache_size"),
        ("command_timeout=", "command_timeout"),
        ("command_timeout=-1", "command_timeout"),
        ("acquire_timeout=nan", "acquire_timeout"),
        ("min_size=5&max_size=2", "max_size"),
        ("max_size=2&max_size=3", "max_size"),
    ],
)
def test_bad_pool_settings_in_the_url_are_refused_naming_the_parameter(
    query: str, field: str
) -> None:
    with pytest.raises(ValidationError, match=field) as caught:
        DatabaseManager(f"postgresql://u@h/db?{query}")
    assert caught.value.field == field


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://agent:hunter2@db.example:5432/store",
        "postgresql://agent@db.example/store?password=hunter2",
        "postgresql://agent@db.example/store?sslmode=require&password=hunter2&max_size=3",
        "postgresql://agent:hun%74er2@db.example/store",
        "postgresql://agent:hunter2@db1.example:5432,db2.example:5433/store",
    ],
)
def test_redact_url_hides_every_password(url: str) -> None:
    for shown in (
        redact_url(url),
        redact_text(f"connecting to {url} failed (password hunter2 refused)", url),
        DatabaseManager(url).location,
        repr(DatabaseManager(url)),
    ):
        assert "hunter2" not in shown
        assert "hun%74er2" not in shown
        assert "***" in shown
        assert "db.example" in shown or "db1.example" in shown


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:hunter2@127.0.0.1:1/nowhere",
        "postgresql://postgres@127.0.0.1:1/nowhere?password=hunter2",
        "postgresql://postgres:hunter2@127.0.0.1:notaport/nowhere",
    ],
)
async def test_connection_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(DatabaseError, match="cannot connect") as caught:
        await DatabaseManager(url, pool=PoolSettings(connect_timeout=2)).connect()
    assert "hunter2" not in str(caught.value)


async def test_a_server_that_never_answers_is_a_connect_timeout_naming_it() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts the connection and never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        manager = DatabaseManager(
            f"postgresql://postgres@127.0.0.1:{port}/store", pool=PoolSettings(connect_timeout=0.5)
        )
        with pytest.raises(DatabaseError, match=r"connect_timeout=0\.5s"):
            await manager.connect()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "given",
    [
        "postgres:/oops",
        "postgresql:x",
        "POSTGRES:relative/store",
        "sqlite:/x.db",
        "sqlite://x.db",
        "mysql://root@db.example/store",
        "postgresql+asyncpg://u@h/db",
    ],
)
def test_strings_that_look_like_urls_but_are_not_are_refused(
    given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError, match="not a database URL") as caught:
        DatabaseManager(given)
    for accepted in ("postgresql://", "sqlite:///", "file path"):
        assert accepted in str(caught.value)
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", given)
    with pytest.raises(ValidationError, match="not a database URL"):
        DatabaseManager()
    assert list(tmp_path.iterdir()) == []  # no folder named after the scheme


@pytest.mark.parametrize(
    "given",
    [
        "C:\\data\\store.db",  # one letter: a Windows drive, not a scheme
        "C:/data/store.db",
        "runs/12:00/store.db",
        "store:v2.db",
        "file-store.db",
    ],
)
def test_paths_with_colons_stay_sqlite_files(given: str) -> None:
    manager = DatabaseManager(given)
    assert manager.backend_name == "sqlite"
    assert manager.db_path == Path(given).absolute()


def test_without_asyncpg_sqlite_works_and_postgresql_says_what_to_install(
    tmp_path: Path,
) -> None:
    script = """
import asyncio, sys
sys.modules["asyncpg"] = None  # as if it were not installed
from orchestrator_store.manager import DatabaseError, DatabaseManager

async def main() -> None:
    async with DatabaseManager(sys.argv[1]) as db:
        await db.create_system_log("INFO", "test", "sqlite needs no asyncpg")
    try:
        DatabaseManager("postgresql://postgres@127.0.0.1/store")
    except DatabaseError as exc:
        print(exc)

asyncio.run(main())
"""
    output = run_python(script, str(tmp_path / "store.db"))
    assert "pip install asyncpg" in output
    assert "uv add asyncpg" in output


# --- on a real server ------------------------------------------------------------------


@pytest.mark.backend("postgresql")
async def test_rows_have_native_types_in_the_database(
    db: DatabaseManager, store_url: str, agent_id: str
) -> None:
    await db.create_agent_log(agent_id, "INFO", "milestone", "m", {"k": [1, 2]})
    connection = await connect_raw(store_url)
    try:
        types = dict(
            await connection.fetch(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_name = 'agent_logs' AND table_schema = current_schema()"
            )
        )
        details = await connection.fetchval("SELECT details->'k'->>1 FROM agent_logs")
    finally:
        await connection.close()
    assert types["id"] == "bigint"
    assert types["agent_id"] == "uuid"
    assert types["details"] == "jsonb"
    assert types["created_at"] == "timestamp with time zone"
    assert details == "2"


@pytest.mark.backend("postgresql")
async def test_statement_cache_can_be_off_for_pgbouncer(store_url: str) -> None:
    async with DatabaseManager(store_url, pool=PoolSettings(statement_cache_size=0)) as db:
        definition = await db.create_orchestrator_agent("p", None, "planner")
        assert (await db.get_orchestrator_agent(definition) or {})["name"] == "p"


@pytest.mark.backend("postgresql")
async def test_newer_schema_version_is_refused_untouched(store_url: str) -> None:
    async with DatabaseManager(store_url) as db:
        await db.create_system_log("INFO", "test", "before")
    connection = await connect_raw(store_url)
    try:
        await connection.execute("UPDATE adw_schema_version SET version = 99")
        with pytest.raises(SchemaError, match="newer"):
            await DatabaseManager(store_url).connect()
        assert await connection.fetchval("SELECT version FROM adw_schema_version") == 99
        assert await connection.fetchval("SELECT count(*) FROM system_logs") == 1
    finally:
        await connection.close()


@pytest.mark.backend("postgresql")
async def test_invalid_schema_file_is_a_schema_error_naming_it(
    store_url: str, tmp_path: Path
) -> None:
    schema = tmp_path / "broken.sql"
    schema.write_text("CREATE TABLE agents (id UUID PRIMARY KEY;\n")
    with pytest.raises(SchemaError, match=r"broken\.sql"):
        await DatabaseManager(store_url, schema_path=schema).connect()
    schema.write_text("CREATE TABLE agents (id UUID PRIMARY KEY);\n")
    with pytest.raises(SchemaError, match="does not create"):
        await DatabaseManager(store_url, schema_path=schema).connect()


@pytest.mark.backend("postgresql")
async def test_unreachable_server_is_a_database_error() -> None:
    url = "postgresql://postgres@127.0.0.1:1/nowhere"
    with pytest.raises(DatabaseError, match="cannot connect") as caught:
        await DatabaseManager(url, pool=PoolSettings(connect_timeout=2)).connect()
    assert caught.value.__cause__ is not None


CONNECTOR_SCRIPT = """
import asyncio, sys
from orchestrator_store.manager import DatabaseManager
from orchestrator_store.schema import LATEST_VERSION

async def main() -> None:
    async with DatabaseManager(sys.argv[1]) as db:
        assert await db.schema_version() == LATEST_VERSION
        await db.create_system_log("INFO", "connector", f"process {sys.argv[2]}")
    print("done")

asyncio.run(main())
"""


@pytest.mark.backend("postgresql")
async def test_several_processes_connect_and_migrate_once(store_url: str) -> None:
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CONNECTOR_SCRIPT,
            store_url,
            str(index),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for index in range(6)
    ]
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(process.communicate() for process in processes)), PROCESS_HANG_GUARD
    )
    for process, (stdout, stderr) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, stderr.decode()
        assert stdout.decode().split() == ["done"]
    async with DatabaseManager(store_url) as db:
        assert len(await db.get_system_logs(component="connector")) == 6
        assert await db.schema_version() == LATEST_VERSION
    connection = await connect_raw(store_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM adw_schema_version") == 1
    finally:
        await connection.close()


def named(url: str) -> tuple[str, str]:
    """``url`` with a name of its own for the store's connections, and that
    name: what lets a test find its store's connections, and no other test's,
    in ``pg_stat_activity``."""
    name = f"adw_test_{uuid.uuid4().hex[:12]}"
    separator = "&" if urlsplit(url).query else "?"
    return url + separator + urlencode({"application_name": name}), name


async def _store_connections(server: str, name: str, *, terminate: bool = False) -> int:
    """How many connections named ``name`` the server has (terminating them
    when asked): the connections of the one store opened with that name."""
    action = "pg_terminate_backend(pid)" if terminate else "pid"
    connection = await connect_raw(server)
    try:
        return int(
            await connection.fetchval(
                f"SELECT count({action}) FROM pg_stat_activity"
                " WHERE application_name = $1 AND pid <> pg_backend_pid()",
                name,
            )
        )
    finally:
        await connection.close()


@pytest.mark.backend("postgresql")
@pytest.mark.direct_postgres
async def test_the_urls_application_name_names_the_stores_connections(
    store_url: str, postgres_server: str
) -> None:
    url, name = named(store_url)
    async with DatabaseManager(url, pool=PoolSettings(min_size=2, max_size=2)) as db:
        await db.create_system_log("INFO", "test", "named")
        assert await _store_connections(postgres_server, name) == 2
    assert await _store_connections(postgres_server, name) == 0


@pytest.mark.backend("postgresql")
@pytest.mark.direct_postgres
async def test_killed_connection_fails_the_call_and_the_pool_recovers(
    store_url: str, postgres_server: str
) -> None:
    url, name = named(store_url)  # so that only this store's connections are killed
    async with DatabaseManager(url) as db:
        definition_id = await db.create_orchestrator_agent("planner", None, "planner")
        agent_id = await db.create_agent(definition_id, "feature_Tac_14_Task_8")
        with pytest.raises(ConnectionLostError, match="was lost") as caught:
            async with db.transaction():
                await db.create_agent_log(agent_id, "INFO", "milestone", "lost with it")
                assert await _store_connections(postgres_server, name, terminate=True) >= 1
                await db.create_agent_log(agent_id, "INFO", "milestone", "never written")
        assert caught.value.__cause__ is not None
        assert caught.value.retryable
        # Idle ones too.
        assert await _store_connections(postgres_server, name, terminate=True) >= 1
        # A call that picks a killed idle connection before the driver noticed fails
        # on its own; the pool replaces that connection, and calls succeed again.
        for attempt in range(2):
            try:
                await db.create_agent_log(agent_id, "INFO", "milestone", "after")
                break
            except DatabaseError as exc:
                assert attempt == 0, exc
        assert [row["message"] for row in await db.get_agent_logs(agent_id)] == ["after"]
        assert await db.add_agent_cost(agent_id, 1.5)


@pytest.mark.backend("postgresql")
@pytest.mark.direct_postgres("a pooler keeps the server session, and its lock, after the close")
async def test_query_whose_locks_cannot_be_released_closes_its_connection(
    store_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Should ``pg_advisory_unlock_all()`` after a query fail, the connection
    is closed (the server then releases the session's locks) rather than
    pooled with them; the query's rows still reach the caller."""
    import asyncpg

    key = 4244
    execute = asyncpg.Connection.execute

    async def unlock_refused(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if "pg_advisory_unlock_all" in query:
            raise asyncpg.InterfaceError("refused by the test")
        return await execute(self, query, *args, **kwargs)

    async with DatabaseManager(store_url) as db:
        monkeypatch.setattr(asyncpg.Connection, "execute", unlock_refused)
        with caplog.at_level(logging.WARNING, logger=postgres_backend.__name__):
            rows = await db.query(f"SELECT pg_advisory_lock({key}) IS NULL AS taken")
        monkeypatch.undo()
        assert rows == [{"taken": False}]
        assert "closing the connection" in caplog.text
        other = await connect_raw(store_url)
        try:
            await until(lambda: other.fetchval("SELECT pg_try_advisory_lock($1)", key))
            await other.execute("SELECT pg_advisory_unlock($1)", key)
        finally:
            await other.close()
        assert await db.query("SELECT 1 AS one") == [{"one": 1}]  # on another connection


@pytest.mark.backend("postgresql")
@pytest.mark.direct_postgres
async def test_pool_settings_in_the_url_reach_the_pool_not_the_server(
    store_url: str, postgres_server: str
) -> None:
    pool = {"min_size": "2", "max_size": "2", "statement_cache_size": "0", "command_timeout": "30"}
    url, name = named(with_parameter(store_url, **pool))
    async with DatabaseManager(url) as db:
        await db.create_system_log("INFO", "test", "configured by its URL")
        assert await _store_connections(postgres_server, name) == 2


# --- a database that does not exist yet ------------------------------------------------


async def _drop_database(server: str, name: str) -> None:
    quoted = '"' + name.replace('"', '""') + '"'
    await run_sql(server, f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")


async def _database_exists(server: str, name: str) -> bool:
    connection = await connect_raw(server)
    try:
        return bool(
            await connection.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name)
        )
    finally:
        await connection.close()


@pytest.mark.backend("postgresql")
async def test_a_missing_database_is_created_once_by_concurrent_first_connects(
    backend: str, postgres_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"Adw-Created-{uuid.uuid4().hex[:8]}"  # capitals and dashes: it must be quoted
    url = database_url(postgres_server, name)
    caplog.set_level(logging.INFO, logger="orchestrator_store.postgres_backend")
    managers = [DatabaseManager(url, pool=PoolSettings(max_size=2)) for _ in range(4)]
    try:
        await asyncio.wait_for(
            asyncio.gather(*(manager.connect() for manager in managers)), PROCESS_HANG_GUARD
        )
        await managers[0].create_system_log("INFO", "test", "in a database of its own")
        assert len(await managers[3].get_system_logs()) == 1
    finally:
        for manager in managers:
            await manager.close()
        await _drop_database(postgres_server, name)
    created = [record for record in caplog.records if "created database" in record.getMessage()]
    assert len(created) == 1
    assert created[0].levelno == logging.INFO
    assert name in created[0].getMessage()


@pytest.mark.backend("postgresql")
@pytest.mark.direct_postgres(
    "PgBouncer 1.18 runs its auth_query in the database asked for, which does not exist"
)
async def test_a_role_that_may_not_create_databases_is_told_the_command(
    backend: str, postgres_server: str
) -> None:
    role = f"adw_test_role_{uuid.uuid4().hex[:8]}"
    name = f"adw_missing_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(postgres_server)
    url = urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}"))
    await run_sql(postgres_server, f"CREATE ROLE {role} LOGIN NOCREATEDB")
    try:
        with pytest.raises(DatabaseError, match="may not create databases") as caught:
            await DatabaseManager(database_url(url, name)).connect()
        assert not await _database_exists(postgres_server, name)
    finally:
        await run_sql(postgres_server, f"DROP ROLE {role}")
    host = ["-h", parts.hostname] if parts.hostname else []
    port = ["-p", str(parts.port)] if parts.port else []
    assert " ".join(["createdb", *host, *port, "-U", role, name]) in str(caught.value)


@pytest.mark.backend("postgresql")
@pytest.mark.direct_postgres("an idle client holds no server connection to template1 there")
async def test_a_session_on_template1_does_not_stop_the_database_being_created(
    backend: str, postgres_server: str
) -> None:
    """Copying template1 fails while anyone is connected to it (a GUI client,
    another createdb): the store creates its database from template0."""
    name = f"adw_missing_{uuid.uuid4().hex[:8]}"
    template = await connect_raw(database_url(postgres_server, "template1"))
    try:
        async with DatabaseManager(database_url(postgres_server, name)) as db:
            assert await db.schema_version() == LATEST_VERSION
        assert await _database_exists(postgres_server, name)
    finally:
        await template.close()
        await _drop_database(postgres_server, name)


# --- timeouts: a statement's, and waiting for the pool ----------------------------------


@contextlib.asynccontextmanager
async def row_locked(url: str, agent_id: str) -> Any:
    """The agent's row locked by another connection, for as long as the block runs:
    the store's next update of it waits (inserts that reference it do not)."""
    connection = await connect_raw(url)
    try:
        async with connection.transaction():
            await connection.execute(
                "SELECT 1 FROM agents WHERE id = $1 FOR NO KEY UPDATE", agent_id
            )
            yield
    finally:
        await connection.close()


@pytest.mark.backend("postgresql")
async def test_a_statement_past_command_timeout_is_a_statement_timeout_and_the_pool_recovers(
    store_url: str,
) -> None:
    async with DatabaseManager(store_url) as setup:  # the schema and rows, without the limit
        definition_id = await setup.create_orchestrator_agent("planner", None, "planner")
        agent_id = await setup.create_agent(definition_id, "s")
    url = with_parameter(store_url, command_timeout="2", max_size="1")
    async with DatabaseManager(url) as db:
        async with row_locked(store_url, agent_id):  # blocked by design: only it times out
            with pytest.raises(StatementTimeoutError, match=r"command_timeout=2s") as caught:
                await db.add_agent_cost(agent_id, 1.0)
            assert caught.value.retryable
            assert caught.value.table == "agents"
            # In a transaction() block, the block goes on without the statement.
            async with db.transaction():
                with pytest.raises(StatementTimeoutError, match="command_timeout"):
                    await db.add_agent_cost(agent_id, 1.0)
                await db.create_agent_log(agent_id, "INFO", "milestone", "kept")
        assert await db.add_agent_cost(agent_id, 1.0)  # the pool's one connection works
        assert (await db.get_agent(agent_id) or {})["cost_usd"] == 1.0
        assert [row["message"] for row in await db.get_agent_logs(agent_id)] == ["kept"]


@pytest.mark.backend("postgresql")
@pytest.mark.direct_postgres("PgBouncer refuses statement_timeout as a startup parameter")
async def test_the_servers_statement_timeout_is_a_statement_timeout(store_url: str) -> None:
    async with DatabaseManager(store_url) as setup:  # the schema and rows, without the limit
        definition_id = await setup.create_orchestrator_agent("planner", None, "planner")
        agent_id = await setup.create_agent(definition_id, "s")
    url = with_parameter(store_url, statement_timeout="2000")  # a server setting, in ms
    async with DatabaseManager(url) as db:
        async with row_locked(store_url, agent_id):
            with pytest.raises(StatementTimeoutError, match="statement timeout") as caught:
                await db.add_agent_cost(agent_id, 1.0)
        assert "command_timeout=60s" in str(caught.value)
        assert await db.add_agent_cost(agent_id, 1.0)


@pytest.mark.backend("postgresql")
async def test_no_free_connection_within_acquire_timeout_is_busy_naming_the_pool_size(
    store_url: str,
) -> None:
    url = with_parameter(store_url, max_size="1", acquire_timeout="2")
    async with DatabaseManager(url) as db:
        opened, release = asyncio.Event(), asyncio.Event()

        async def hold_the_only_connection() -> None:
            async with db.transaction():
                await db.create_system_log("INFO", "test", "holding")
                opened.set()
                await release.wait()

        holder = asyncio.create_task(hold_the_only_connection())
        await opened.wait()
        try:
            with pytest.raises(BusyError, match=r"acquire_timeout=2s") as caught:
                await db.create_system_log("INFO", "test", "no connection came free")
        finally:
            release.set()
            await holder
        assert "max_size=1" in str(caught.value)
        assert caught.value.retryable
        await db.create_system_log("INFO", "test", "after")
        messages = [row["message"] for row in await db.get_system_logs(component="test")]
        assert messages == ["holding", "after"]


# --- connections kept between statements --------------------------------------------


@pytest.mark.backend("postgresql")
async def test_a_kept_connection_serves_the_next_block_when_the_pool_has_no_other(
    store_url: str,
) -> None:
    """The backend keeps a connection between statements; with a pool of one,
    transaction() must get that one rather than wait for the pool."""
    pool = PoolSettings(min_size=1, max_size=1, acquire_timeout=2.0)
    async with DatabaseManager(store_url, pool=pool) as db:
        definition_id = await db.create_orchestrator_agent("planner", None, "planner")
        async with db.transaction():
            agent_id = await db.create_agent(definition_id, "s")
        await db.create_agent_log(agent_id, "INFO", "milestone", "after the block")
        assert len(await db.get_agent_logs(agent_id)) == 1


@pytest.mark.backend("postgresql")
async def test_many_tasks_share_a_small_pool_without_waiting_forever(
    store_url: str, postgres_server: str
) -> None:
    """Statements and blocks from more tasks than connections: connections
    go where tasks wait for them, and never more than max_size are open."""
    url, name = named(store_url)
    pool = PoolSettings(min_size=1, max_size=3, acquire_timeout=60.0)
    async with DatabaseManager(url, pool=pool) as db:
        definition_id = await db.create_orchestrator_agent("planner", None, "planner")
        agent_id = await db.create_agent(definition_id, "s")
        most = 0

        async def task(number: int) -> None:
            nonlocal most
            for step in range(5):
                if (number + step) % 3 == 0:
                    async with db.transaction():
                        await db.create_agent_log(agent_id, "INFO", "milestone", f"{number}")
                        await db.add_agent_cost(agent_id, 0.5)
                else:
                    await db.create_agent_log(agent_id, "INFO", "milestone", f"{number}")
                    await db.add_agent_cost(agent_id, 0.5)
            most = max(most, await _store_connections(postgres_server, name))

        await asyncio.wait_for(asyncio.gather(*(task(n) for n in range(24))), HANG_GUARD)
        assert len(await db.get_agent_logs(agent_id)) == 24 * 5
        assert (await db.get_agent(agent_id) or {})["cost_usd"] == 24 * 5 * 0.5
        assert 1 <= most <= 3


@pytest.mark.backend("postgresql")
@pytest.mark.direct_postgres  # behind a pooler the store's own connection is not the one dropped
async def test_a_kept_connection_the_server_dropped_is_not_used_again(
    store_url: str, postgres_server: str
) -> None:
    url, name = named(store_url)
    async with DatabaseManager(url, pool=PoolSettings(min_size=1, max_size=1)) as db:
        await db.create_system_log("INFO", "test", "before")  # its connection is kept
        assert await _store_connections(postgres_server, name, terminate=True) == 1
        kept = db._backend._connections._idle  # type: ignore[attr-defined]
        assert kept  # the connection the server dropped, kept for the next statement

        async def driver_saw_the_end() -> bool:
            return not any(postgres_backend._alive(connection) for connection, _since in kept)

        await until(driver_saw_the_end)  # the driver read the end of the connection
        await db.create_system_log("INFO", "test", "after")  # on a new connection
        assert [row["message"] for row in await db.get_system_logs()] == ["before", "after"]


@pytest.mark.backend("postgresql")
async def test_cancelled_statements_leave_the_store_usable(store_url: str) -> None:
    async with DatabaseManager(store_url, pool=PoolSettings(max_size=2)) as db:
        definition_id = await db.create_orchestrator_agent("planner", None, "planner")
        agent_id = await db.create_agent(definition_id, "s")
        for turns in range(12):  # cancelled at different points of the call
            task = asyncio.create_task(db.create_agent_log(agent_id, "INFO", "milestone", "maybe"))
            for _ in range(turns):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await db.create_agent_log(agent_id, "INFO", "milestone", f"kept {turns}")
        messages = [row["message"] for row in await db.get_agent_logs(agent_id)]
        assert [m for m in messages if m != "maybe"] == [f"kept {n}" for n in range(12)]


@pytest.mark.backend("postgresql")
@pytest.mark.direct_postgres
async def test_idle_connections_close_after_their_lifetime_down_to_min_size(
    store_url: str, postgres_server: str
) -> None:
    url, name = named(store_url)
    pool = PoolSettings(min_size=1, max_size=4, max_inactive_connection_lifetime=0.3)
    async with DatabaseManager(url, pool=pool) as db:
        opened, release = asyncio.Barrier(5), asyncio.Event()  # four blocks and this test

        async def block(number: int) -> None:
            async with db.transaction():  # four blocks open at once: four connections
                await db.create_system_log("INFO", "test", f"block {number}")
                await opened.wait()
                await release.wait()

        blocks = asyncio.gather(*(block(n) for n in range(4)))
        try:
            await asyncio.wait_for(opened.wait(), HANG_GUARD)
            # Counted while all four are held: none is idle, so none can expire yet.
            assert await _store_connections(postgres_server, name) == 4
        finally:
            release.set()
            await blocks

        async def down_to_min_size() -> bool:
            return await _store_connections(postgres_server, name) == 1

        await until(down_to_min_size)
        await db.create_system_log("INFO", "test", "after")
        assert len(await db.get_system_logs(component="test")) == 5
    assert await _store_connections(postgres_server, name) == 0


@pytest.mark.backend("postgresql")
async def test_another_tasks_writes_commit_while_a_transaction_is_open(
    db: DatabaseManager, agent_id: str
) -> None:
    """Tasks write on their own connections: B commits while A's block is
    open, and A's rollback takes back only A's writes."""
    opened, release = asyncio.Event(), asyncio.Event()

    async def task_a() -> None:
        async with db.transaction():
            await db.create_agent_log(agent_id, "INFO", "milestone", "A")
            await db.add_agent_cost(agent_id, 8.0)
            opened.set()
            await release.wait()
            raise RuntimeError("roll A back")

    a = asyncio.create_task(task_a())
    await opened.wait()
    await db.create_agent_log(agent_id, "INFO", "milestone", "B")
    assert [row["message"] for row in await db.get_agent_logs(agent_id)] == ["B"]
    release.set()
    with pytest.raises(RuntimeError):
        await a
    assert [row["message"] for row in await db.get_agent_logs(agent_id)] == ["B"]
    assert (await db.get_agent(agent_id) or {})["cost_usd"] == 0.0


# --- copying a SQLite store -------------------------------------------------------------


async def _every_row(database: Path | str) -> dict[str, list[dict[str, Any]]]:
    async with DatabaseManager(database) as db:
        return {table: [row async for row in db.iter_rows(table)] for table in TABLES}


@pytest.mark.backend("postgresql")
async def test_copy_round_trips_every_row_exactly(
    recorded: RecordedSession, store_url: str
) -> None:
    source = await _every_row(recorded.path)
    copied = await copy_sqlite_to_postgres(recorded.path, store_url)
    assert copied == {table: len(rows) for table, rows in source.items()}
    assert all(copied.values())
    assert await _every_row(store_url) == source
    async with DatabaseManager(store_url) as db:
        # Identities continue after the copied log ids.
        agent = source["agents"][0]["id"]
        new_log = await db.create_agent_log(agent, "INFO", "milestone", "after the copy")
        assert new_log == max(row["id"] for row in source["agent_logs"]) + 1
        new_system = await db.create_system_log("INFO", "copy", "after the copy")
        assert new_system == max(row["id"] for row in source["system_logs"]) + 1


# Every public name ``Backend`` declares (methods and properties).
BACKEND_MEMBERS = frozenset(name for name in vars(Backend) if not name.startswith("_"))


class OnlyTheInterface:
    """A backend seen through ``Backend`` alone: whatever else it has is refused."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.used: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        if name not in BACKEND_MEMBERS:
            raise AttributeError(f"{name!r} is not declared by Backend")
        self.used.add(name)
        return getattr(self._backend, name)


@pytest.mark.backend("postgresql")
async def test_copy_uses_only_what_backend_declares(
    recorded: RecordedSession, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets: list[OnlyTheInterface] = []

    def seen_through_the_interface(*args: Any, **kwargs: Any) -> OnlyTheInterface:
        targets.append(OnlyTheInterface(PostgresBackend(*args, **kwargs)))
        return targets[-1]

    monkeypatch.setattr(copy_to_postgres, "PostgresBackend", seen_through_the_interface)
    source = await _every_row(recorded.path)

    copied = await copy_sqlite_to_postgres(recorded.path, store_url)

    assert copied == {table: len(rows) for table, rows in source.items()}
    [target] = targets
    assert {"open", "close", "transaction", "fetch_all", "execute_many"} <= target.used
    assert await _every_row(store_url) == source


@pytest.mark.backend("postgresql")
async def test_copy_keeps_json_values_and_their_types(db_path: Path, store_url: str) -> None:
    """JSON is copied as the store writes it: a float of 1e16 or more stays a
    float (JSONB prints numbers without an exponent, so ``1e+16`` would come
    back as an int), text stays UTF-8."""
    context = {"big": 1e16, "negative": -2.5e20, "small": 1e-7, "text": "naïve ☃ 𝄞"}
    config = [1, 1.0, None, {"nested": [True, 12345678901234567890.0]}]
    async with DatabaseManager(db_path) as db:
        definition = await db.create_orchestrator_agent("planner", None, "planner")
        agent = await db.create_agent(definition, "session", context=context, config=config)
        await db.create_agent_log(agent, "INFO", "milestone", "m", details={"cost": 1e300})

    await copy_sqlite_to_postgres(db_path, store_url)

    async with DatabaseManager(store_url) as db:
        row = await db.get_agent(agent)
        [log] = await db.get_agent_logs(agent)
    assert row is not None

    def typed(value: Any) -> str:  # 1e16 == 10**16, but not as text; JSONB orders keys its way
        return json.dumps(value, sort_keys=True)

    assert typed(row["context"]) == typed(context)
    assert typed(row["config"]) == typed(config)
    assert typed(log["details"]) == typed({"cost": 1e300})


@pytest.mark.backend("postgresql")
def test_copy_command_refuses_a_non_empty_target_unless_append(
    recorded: RecordedSession, postgres_url: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["copy-to-postgres", str(recorded.path), postgres_url, "--json"])
    assert first.exit_code == 0, first.output
    counts = json.loads(first.stdout)
    assert list(counts) == list(TABLES)

    again = runner.invoke(app, ["copy-to-postgres", str(recorded.path), postgres_url])
    assert again.exit_code == 1
    assert "already holds rows" in again.stderr

    # --append adds rows; the same ids again make the whole copy fail and change nothing.
    clash = runner.invoke(app, ["copy-to-postgres", str(recorded.path), postgres_url, "--append"])
    assert clash.exit_code == 1
    assert "duplicate key" in clash.stderr
    stats = runner.invoke(app, ["--db", postgres_url, "stats", "--json"])
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.stdout)["rows"] == counts


@pytest.mark.backend("postgresql")
def test_copy_command_shows_counts_and_refuses_bad_input(
    recorded: RecordedSession, postgres_url: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["copy-to-postgres", str(recorded.path), postgres_url], env={"COLUMNS": "120"}
    )
    assert result.exit_code == 0, result.output
    assert "agent_logs" in result.stdout
    assert "copied" in result.stdout
    missing = runner.invoke(app, ["copy-to-postgres", str(tmp_path / "none.db"), postgres_url])
    assert missing.exit_code == 1
    assert "no database" in missing.stderr
    wrong = runner.invoke(app, ["copy-to-postgres", str(recorded.path), "mysql://x/y"])
    assert wrong.exit_code == 1
    assert "postgresql://" in wrong.stderr


@pytest.mark.backend("postgresql")
async def test_copy_appends_into_a_store_with_other_rows(
    recorded: RecordedSession, store_url: str
) -> None:
    async with DatabaseManager(store_url) as db:
        await db.create_orchestrator_agent("already-there", None, "utility")
    with pytest.raises(DatabaseError, match="already holds rows"):
        await copy_sqlite_to_postgres(recorded.path, store_url)
    copied = await copy_sqlite_to_postgres(recorded.path, store_url, append=True)
    async with DatabaseManager(store_url) as db:
        counts = await db.count_rows()
    assert counts["orchestrator_agents"] == copied["orchestrator_agents"] + 1
