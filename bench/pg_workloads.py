"""W1, W2 and W5 on PostgreSQL: raw asyncpg (the limits) against the store.

W1: one coroutine; the limit commits every statement on one raw connection.
The two take turns over ``W1_ROUNDS`` rounds (their totals are compared), so a
change in the machine's load during the run weighs on both alike.
W2: 64 coroutines on one store; the limit writes the same sessions one after
another in one transaction on one connection (as raw sqlite3 does for SQLite).
W5: the batch method with 10,000 logs; the limit is one ``executemany`` in one
transaction. Every measurement gets a new, empty store (``pg_server``).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import implementations as impl
import pg_raw
import sessions
from pg_server import BenchDatabase
from workloads import W2_COROUTINES, W5_ROWS, Result, clock, concurrent_sessions

from orchestrator_store.manager import DatabaseManager

RAW_PER_OP = "raw asyncpg commit/op"
RAW_ONE_TXN = "raw asyncpg one txn"
STORE = "store (PostgreSQL)"
W1_ROUNDS = 6  # more, shorter turns: the server's own background work averages out


@asynccontextmanager
async def raw_connection(url: str) -> AsyncIterator[Any]:
    connection = await asyncpg.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


def _add(total: Result | None, part: Result) -> Result:
    if total is None:
        return part
    total.operations += part.operations
    total.seconds += part.seconds
    total.latencies += part.latencies
    total.extra["errors"] = total.extra.get("errors", 0) + part.extra.get("errors", 0)
    return total


async def raw_sessions(
    postgres: BenchDatabase, count: int, *, one_transaction: bool, name: str
) -> Result:
    url, definition_id = await postgres.fresh_store()
    async with raw_connection(url) as connection:
        writer = pg_raw.RawAsyncpg(connection)
        if one_transaction:
            start = clock()
            async with connection.transaction():
                ops, _seconds, latencies, errors = await concurrent_sessions(
                    writer, definition_id, count, 1
                )
            seconds = clock() - start  # with the commit
        else:
            ops, seconds, latencies, errors = await concurrent_sessions(
                writer, definition_id, count, 1
            )
    return Result("", name, ops, seconds, latencies, {"errors": errors})


async def store_sessions(postgres: BenchDatabase, count: int, coroutines: int) -> Result:
    url, definition_id = await postgres.fresh_store()
    async with DatabaseManager(url) as db:
        ops, seconds, latencies, errors = await concurrent_sessions(
            impl.StoreSession(db), definition_id, count, coroutines
        )
    return Result("", STORE, ops, seconds, latencies, {"errors": errors})


async def w1(postgres: BenchDatabase, sessions_count: int) -> list[Result]:
    raw: Result | None = None
    store: Result | None = None
    for number in range(W1_ROUNDS):
        count = sessions_count * (number + 1) // W1_ROUNDS - sessions_count * number // W1_ROUNDS
        raw = _add(raw, await raw_sessions(postgres, count, one_transaction=False, name=RAW_PER_OP))
        store = _add(store, await store_sessions(postgres, count, 1))
    assert raw is not None and store is not None
    return _named("W1", [raw, store])


async def w2(postgres: BenchDatabase, sessions_count: int) -> list[Result]:
    raw = await raw_sessions(postgres, sessions_count, one_transaction=True, name=RAW_ONE_TXN)
    store = await store_sessions(postgres, sessions_count, W2_COROUTINES)
    return _named("W2", [raw, store])


def _named(workload: str, results: list[Result]) -> list[Result]:
    for result in results:
        result.workload = workload
    return results


async def w5(postgres: BenchDatabase, repeats: int) -> list[Result]:
    url, definition_id = await postgres.fresh_store()
    async with DatabaseManager(url) as db:
        agent_id = await db.create_agent(definition_id, "batch")
    rows = sessions.batch_rows(agent_id, W5_ROWS)

    raw_times = []
    async with raw_connection(url) as connection:
        for _ in range(repeats):
            start = clock()
            created = pg_raw.now()
            params = [
                (row["agent_id"], row["message"], json.dumps(row["details"]), created)
                for row in rows
            ]
            async with connection.transaction():
                await connection.executemany(pg_raw.BATCH_LOG_SQL, params)
            raw_times.append(clock() - start)

    store_times = []
    async with DatabaseManager(url) as db:
        for _ in range(repeats):
            start = clock()
            ids = await db.create_agent_logs(rows)
            store_times.append(clock() - start)
            assert len(ids) == W5_ROWS
    return [
        Result("W5", RAW_ONE_TXN, W5_ROWS, statistics.median(raw_times), raw_times),
        Result("W5", STORE, W5_ROWS, statistics.median(store_times), store_times),
    ]
