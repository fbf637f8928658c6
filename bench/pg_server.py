"""The PostgreSQL server the benchmark uses, when one answers.

The benchmark never writes to the test suite's databases: it creates a database
of its own (``adw_bench_<random>``), gives every measurement a new schema in it
(as every SQLite measurement gets a new file) and drops the database at the
end. ``BENCH_POSTGRES_URL`` names the server; else the tests' server
(``ORCHESTRATOR_TEST_POSTGRES_URL``), else postgresql://postgres@127.0.0.1:5432/postgres.
The role needs the right to create databases.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg

from orchestrator_store.location import redact_url
from orchestrator_store.manager import DatabaseManager

SERVER_URL = (
    os.environ.get("BENCH_POSTGRES_URL")
    or os.environ.get("ORCHESTRATOR_TEST_POSTGRES_URL")
    or "postgresql://postgres@127.0.0.1:5432/postgres"
)
CONNECT_TIMEOUT = 5.0


async def unusable(server: str) -> str | None:
    """Why the benchmark cannot use ``server``, or None when it can."""
    try:
        connection = await asyncpg.connect(server, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"no server at {redact_url(server)}: {type(exc).__name__}: {exc}"
    try:
        may_create = await connection.fetchval(
            "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
        )
    finally:
        await connection.close()
    if not may_create:
        return f"the role of {redact_url(server)} may not create the benchmark's database"
    return None


def _in_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def _with_search_path(url: str, schema: str) -> str:
    separator = "&" if urlsplit(url).query else "?"
    return url + separator + urlencode({"search_path": schema})


@dataclass
class BenchDatabase:
    """The benchmark's own database; ``fresh_store`` gives each measurement
    an empty store of its own in it."""

    url: str
    name: str
    server_version: str
    schemas: int = 0

    async def fresh_store(self) -> tuple[str, str]:
        """A new schema holding the store's tables and one agent definition:
        (the store's URL, the definition's id)."""
        self.schemas += 1
        schema = f"measurement_{self.schemas}"
        connection = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT)
        try:
            await connection.execute(f"CREATE SCHEMA {schema}")
        finally:
            await connection.close()
        url = _with_search_path(self.url, schema)
        async with DatabaseManager(url) as db:
            return url, await db.create_orchestrator_agent("bench", "benchmark", "builder")

    def about(self) -> dict[str, Any]:
        return {
            "server": redact_url(self.url),
            "database": self.name,
            "server_version": self.server_version,
        }


@asynccontextmanager
async def bench_database(server: str) -> AsyncIterator[BenchDatabase]:
    """Create the benchmark's database on ``server``; drop it afterwards."""
    name = f"adw_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server, timeout=CONNECT_TIMEOUT)
    try:
        version = str(await admin.fetchval("SHOW server_version"))
        await admin.execute(f"CREATE DATABASE {name}")
        try:
            yield BenchDatabase(_in_database(server, name), name, version)
        finally:
            await admin.execute(f"DROP DATABASE IF EXISTS {name}")
    finally:
        await admin.close()
