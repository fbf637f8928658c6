"""What the PostgreSQL tests share: raw connections beside the store's, and
finding out what the test server is (a server, or a pooler in front of one).

A URL may lead through PgBouncer in transaction mode
(``ORCHESTRATOR_TEST_POSTGRES_URL=postgresql://...:6432/postgres?statement_cache_size=0``):
raw connections then take the store's pool parameters off the URL (the driver
would send them to the server) and keep no prepared statements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg

from orchestrator_store.location import pool_from_url

CONNECT_TIMEOUT = 10.0


def driver_url(url: str) -> str:
    """``url`` without the store's pool parameters: what asyncpg itself takes."""
    return pool_from_url(url)[0]


async def connect_raw(url: str) -> Any:
    """A plain asyncpg connection (no statement cache: it may go through a pooler)."""
    return await asyncpg.connect(driver_url(url), statement_cache_size=0, timeout=CONNECT_TIMEOUT)


async def run_sql(url: str, sql: str) -> None:
    connection = await connect_raw(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def with_parameter(url: str, **parameters: str) -> str:
    separator = "&" if urlsplit(url).query else "?"
    return url + separator + urlencode(parameters)


def schema_url(server: str, schema: str) -> str:
    """``server`` with every connection's search_path set to ``schema``."""
    return with_parameter(server, search_path=schema)


def database_url(server: str, database: str) -> str:
    """``server``, naming another database."""
    return urlunsplit(urlsplit(server)._replace(path=f"/{database}"))


@dataclass(frozen=True)
class ServerTraits:
    # A search_path in the URL reaches the statements. PgBouncer before 1.20
    # refuses it as a startup parameter, and later ones drop it between
    # transactions unless told to track it (track_extra_parameters).
    schemas_by_url: bool
    # Clients share server connections (a pooler in transaction or statement
    # mode): counting or killing "the store's connections" on the server means
    # nothing there.
    pooled: bool


async def probe(url: str) -> ServerTraits:
    try:
        connection = await connect_raw(schema_url(url, "pg_catalog"))
    except asyncpg.PostgresError:  # "unsupported startup parameter: search_path"
        schemas_by_url = False
    else:
        try:
            schemas_by_url = await connection.fetchval("SHOW search_path") == "pg_catalog"
        finally:
            await connection.close()
    first, second = await connect_raw(url), await connect_raw(url)
    try:
        # Two direct connections never share a backend; behind a transaction
        # pooler the second client gets the server connection the first just
        # gave back (PgBouncer hands out the last one released first).
        pooled = False
        for _ in range(3):
            pid = await first.fetchval("SELECT pg_backend_pid()")
            if await second.fetchval("SELECT pg_backend_pid()") == pid:
                pooled = True
                break
    finally:
        await first.close()
        await second.close()
    return ServerTraits(schemas_by_url=schemas_by_url, pooled=pooled)
