"""Move a SQLite store into PostgreSQL, keeping ids, timestamps, JSON and log ids.

Rows are read through the store's public streaming read (``iter_rows``, a
batch at a time, so memory stays flat) and written in batches with
``Backend.execute_many``, all in one PostgreSQL transaction: a failed copy
leaves the target as it was. Parents are copied before children; an agent's
parent is set in a second pass, since agents are read in id order, not in the
order they were created. Log identities are restarted past the highest copied id, so new logs
never collide with copied ones. Rows created in the same microsecond may list
in another order than on SQLite (ties break on the copy order there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .backend import Backend
from .dialect import COLUMNS, GENERATED_IDS, POSTGRES, SqlBuilder
from .errors import DatabaseError
from .json_codec import encode_json
from .location import PoolSettings, redact_url
from .manager import JSON_COLUMNS, DatabaseManager
from .postgres_backend import PostgresBackend
from .schema import DEFAULT_POSTGRES_SCHEMA_PATH, TABLES, TOTALS_FILL_POSTGRES
from .tables import TOTALS_TABLES

__all__ = ["BATCH_SIZE", "copy_sqlite_to_postgres"]

BATCH_SIZE = 500
SQL = SqlBuilder(POSTGRES)

# Called after each batch with the table and how many of its rows were copied so far.
ProgressCallback = Callable[[str, int], None]


def _encode(table: str, row: dict[str, Any]) -> list[Any]:
    """A decoded row back to the parameters of an INSERT (JSON as text,
    encoded as the store's own writes encode it)."""
    json_columns = JSON_COLUMNS.get(table, ())
    return [
        encode_json(row[column]) if column in json_columns else row[column]
        for column in COLUMNS[table]
    ]


async def _target_counts(target: Backend) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        rows = await target.fetch_all(f"SELECT count(*) AS n FROM {table}", (), table=table)
        counts[table] = int(rows[0]["n"])
    return counts


async def _copy_table(
    source: DatabaseManager,
    target: Backend,
    table: str,
    on_progress: ProgressCallback | None,
) -> int:
    columns = COLUMNS[table]
    insert = SQL.insert(table, columns)
    set_parent = SQL.update_by_id("agents", ["parent_agent_id"])
    batch: list[list[Any]] = []
    parents: list[tuple[str, str]] = []
    copied = 0

    async def flush() -> None:
        nonlocal copied
        await target.execute_many(insert, batch, table=table)
        copied += len(batch)
        batch.clear()
        if on_progress is not None:
            on_progress(table, copied)

    async for row in source.iter_rows(table, batch_size=BATCH_SIZE):
        if table == "agents" and row["parent_agent_id"] is not None:
            parents.append((row["parent_agent_id"], row["id"]))
            row = {**row, "parent_agent_id": None}  # set once every agent is there
        batch.append(_encode(table, row))
        if len(batch) >= BATCH_SIZE:
            await flush()
    if batch:
        await flush()
    if parents:
        await target.execute_many(set_parent, parents, table=table)
    if table in GENERATED_IDS:
        await target.fetch_all(SQL.restart_generated_ids(table), (), table=table)
    return copied


async def _set_triggers(target: Backend, state: str) -> None:
    """The totals' triggers on the store's tables, off for the copy (``DISABLE``)
    and on again (``ENABLE``), inside the copy's transaction, which holds the
    tables meanwhile. Row by row, a big transaction rewrites each totals row
    once per copied row, and PostgreSQL walks every version made in that
    transaction to find the latest: the copy's time would grow with its square.
    Foreign keys are checked as ever (``USER`` leaves their triggers alone)."""
    for table in TABLES:
        await target.execute(f"ALTER TABLE {table} {state} TRIGGER USER", (), table=table)


async def _recount_totals(target: Backend) -> None:
    """The totals counted again from every row (the copied ones, and with
    ``append`` those already there), as migration 3 counts them."""
    await target.execute(f"TRUNCATE {', '.join(TOTALS_TABLES)}", (), table="session_totals")
    await target.execute(TOTALS_FILL_POSTGRES, (), table="session_totals")


async def _settle(target: Backend) -> None:
    """After a bulk copy: compact the totals' tables (small; what the count left
    behind) and give the planner statistics for every table."""
    totals = ", ".join(TOTALS_TABLES)
    await target.execute(f"VACUUM (FULL, ANALYZE) {totals}", (), table="session_totals")
    await target.execute("ANALYZE", (), table="agents")


async def copy_sqlite_to_postgres(
    source_path: Path,
    url: str,
    *,
    append: bool = False,
    on_progress: ProgressCallback | None = None,
    pool: PoolSettings | None = None,
) -> dict[str, int]:
    """Copy every row of the SQLite store at ``source_path`` into the
    PostgreSQL store at ``url`` (created or upgraded as needed); return the
    rows copied per table. A target that already holds rows is refused unless
    ``append`` (ids that exist there then make the whole copy fail)."""
    if not await asyncio.to_thread(source_path.is_file):  # opening it would create it
        raise DatabaseError(f"no SQLite store at {source_path}")
    # Only what ``Backend`` declares is used from here on.
    target: Backend = PostgresBackend(
        url, schema_path=DEFAULT_POSTGRES_SCHEMA_PATH, pool=pool or PoolSettings()
    )
    async with DatabaseManager(source_path) as source:
        await target.open()
        try:
            existing = await _target_counts(target)
            if any(existing.values()) and not append:
                held = ", ".join(f"{table} {n}" for table, n in existing.items() if n)
                raise DatabaseError(
                    f"{redact_url(url)} already holds rows ({held}): copy into an empty "
                    "store, or pass append=True to add to it"
                )
            copied = {}
            async with target.transaction():  # all or nothing, the triggers' pause too
                await _set_triggers(target, "DISABLE")
                for table in TABLES:  # parents before children
                    copied[table] = await _copy_table(source, target, table, on_progress)
                await _recount_totals(target)
                await _set_triggers(target, "ENABLE")
            await _settle(target)
        finally:
            await target.close()
    return copied
