"""Building the scale benchmark's stores fast, through the store's own schema.

Each build first opens a ``DatabaseManager`` on the new file or database, so that the
store creates its schema (with whatever triggers keep its aggregates) and the six agent
definitions are written through the API; then the history of ``scale_data`` goes in
with raw ``sqlite3`` (``executemany``, a transaction per ``SQLITE_SESSIONS_PER_TXN``
sessions) or raw asyncpg (``COPY``, a transaction per ``POSTGRES_SESSIONS_PER_TXN``
sessions). Both fire the schema's triggers as the store's own writes would.

SQLite files are cached in the output folder, keyed by prompt count, schema version and
a fingerprint of the schema's files and the generator: a rerun skips the build. A file is
built under a temporary name and renamed when complete, beside a JSON note of how it was
built (seconds, its "now"). PostgreSQL stores are a schema of the benchmark's own
database (``pg_server``), built every run and dropped after measuring; the server here
runs without autovacuum, so the build ends with ``VACUUM (ANALYZE)``, timed on its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import asyncpg
import pg_server
import scale_data

from orchestrator_store import schema
from orchestrator_store.manager import DatabaseManager
from orchestrator_store.schema import DEFAULT_SCHEMA_PATH, LATEST_VERSION, TOTALS_FILL_POSTGRES

SQLITE_SESSIONS_PER_TXN = 500
POSTGRES_SESSIONS_PER_TXN = 200  # rows per COPY transaction (the triggers are off)
BUILD_CACHE_BYTES = 512 * 2**20  # the builder's page cache: indexes stay in memory
clock = time.perf_counter


@dataclass
class Built:
    backend: str
    sessions: int
    prompts: int
    end: str  # the build's "now": the history ends before it
    build_seconds: float
    bytes: int  # SQLite: the file; PostgreSQL: pg_total_relation_size of every table
    table_bytes: dict[str, int] | None = None
    vacuum_analyze_seconds: float | None = None
    cached: bool = False
    target: str = ""  # the path or URL the store opens

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _now_us() -> int:
    return time.time_ns() // 1000


def _end_text(end_us: int) -> str:
    return scale_data.sqlite_stamp(end_us)


async def _definitions(target: str | Path) -> list[str]:
    """Open the store (it creates its schema) and define the six agents through it."""
    async with DatabaseManager(target) as db:
        return [
            await db.create_orchestrator_agent(
                d.name, d.description, d.agent_type, default_model=d.model.name
            )
            for d in scale_data.DEFINITIONS
        ]


class _Progress:
    """A line at every tenth of the sessions written."""

    def __init__(self, label: str, total: int, started: float) -> None:
        self.label, self.total, self.started = label, total, started
        self.shown = 0

    def done(self, sessions: int) -> None:
        tenth = sessions * 10 // self.total
        if tenth > self.shown and sessions < self.total:
            self.shown = tenth
            seconds = clock() - self.started
            print(
                f"  {self.label}: {sessions:,} of {self.total:,} sessions, {seconds:.0f} s",
                flush=True,
            )


def _check_counts(counts: dict[str, int], sessions: int, where: str) -> None:
    expected = scale_data.expected_counts(sessions)
    if counts != expected:
        raise RuntimeError(f"{where} holds {counts}, expected {expected}")


# --- SQLite ------------------------------------------------------------------------


def _fingerprint() -> str:
    """What a cached file was made from: the schema's SQL files, the migrations, the rows."""
    digest = hashlib.sha256()
    for source in [*sorted(DEFAULT_SCHEMA_PATH.parent.glob("*.sql")), Path(schema.__file__)]:
        digest.update(source.read_bytes())
    digest.update(f"generator {scale_data.GENERATOR_VERSION}".encode())
    return digest.hexdigest()[:10]


def sqlite_paths(folder: Path, sessions: int) -> tuple[Path, Path]:
    """The cached file for this size and schema, and its JSON note."""
    prompts = sessions * scale_data.PROMPTS_PER_SESSION
    stem = f"scale_{prompts}_v{LATEST_VERSION}_{_fingerprint()}"
    return folder / f"{stem}.db", folder / f"{stem}.json"


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _free_bytes_needed(sessions: int) -> int:
    return sessions * scale_data.PROMPTS_PER_SESSION * 1_000  # 730 B a prompt at 100k, and room


async def sqlite_store(folder: Path, sessions: int) -> Built:
    """The cached SQLite store of ``sessions`` sessions, built if missing."""
    path, note = sqlite_paths(folder, sessions)
    if path.exists() and note.exists() and not Path(f"{path}-wal").exists():
        built = Built(**json.loads(note.read_text(encoding="utf-8")))
        built.cached, built.target, built.bytes = True, str(path), path.stat().st_size
        return built
    prompts = sessions * scale_data.PROMPTS_PER_SESSION
    for stale in folder.glob(f"scale_{prompts}_v*"):  # an older schema's: reclaim the space
        stale.unlink()
    free = shutil.disk_usage(folder).free
    if free < _free_bytes_needed(sessions):
        raise RuntimeError(
            f"{free / 2**30:.1f} GiB free in {folder}: too little for {prompts:,} prompts"
        )
    building = path.with_suffix(".building.db")
    _remove(building)
    started = clock()
    end_us = _now_us()
    definition_ids = await _definitions(building)
    await asyncio.to_thread(_fill_sqlite, building, sessions, end_us, definition_ids, started)
    seconds = clock() - started
    if Path(f"{building}-wal").exists():
        raise RuntimeError(f"{building}: a WAL remains after the build")
    building.rename(path)
    built = Built(
        "sqlite", sessions, prompts, _end_text(end_us), round(seconds, 1), path.stat().st_size
    )
    note.write_text(json.dumps(built.as_json(), indent=2) + "\n", encoding="utf-8")
    built.target = str(path)
    return built


def _fill_sqlite(
    path: Path, sessions: int, end_us: int, definition_ids: list[str], started: float
) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        # A discarded file is all a crash would cost: no journal, no fsync while building
        # (the WAL doubled the writes and the build's time); WAL again at the end.
        for pragma in (
            "journal_mode = OFF",
            "synchronous = OFF",
            "foreign_keys = ON",
            f"cache_size = -{BUILD_CACHE_BYTES // 1024}",
        ):
            connection.execute(f"PRAGMA {pragma}")
        inserts = {
            table: f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})"
            for table, columns in scale_data.COLUMNS.items()
        }
        progress = _Progress("SQLite", sessions, started)
        for first in range(0, sessions, SQLITE_SESSIONS_PER_TXN):
            rows = scale_data.chunk(
                first,
                SQLITE_SESSIONS_PER_TXN,
                sessions,
                end_us,
                definition_ids,
                scale_data.sqlite_stamp,
            )
            connection.execute("BEGIN")
            for table, table_rows in rows.tables().items():
                connection.executemany(inserts[table], table_rows)
            connection.execute("COMMIT")
            progress.done(min(first + SQLITE_SESSIONS_PER_TXN, sessions))
        connection.execute("PRAGMA journal_mode = WAL")
        counts = {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in scale_data.expected_counts(sessions)
        }
        _check_counts(counts, sessions, str(path))
    finally:
        connection.close()


# --- PostgreSQL --------------------------------------------------------------------


def _schema_url(url: str, schema: str) -> str:
    separator = "&" if urlsplit(url).query else "?"
    return url + separator + urlencode({"search_path": schema})


async def postgres_store(database: pg_server.BenchDatabase, sessions: int) -> Built:
    """A new schema of the benchmark's database holding ``sessions`` sessions."""
    prompts = sessions * scale_data.PROMPTS_PER_SESSION
    schema = f"scale_{prompts}"
    # The store's URL names its schema; the triggers' functions find their tables by it.
    connection = await asyncpg.connect(
        database.url,
        timeout=pg_server.CONNECT_TIMEOUT,
        server_settings={"search_path": schema},
    )
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await connection.execute(f"CREATE SCHEMA {schema}")
        url = _schema_url(database.url, schema)
        started = clock()
        end_us = _now_us()
        definition_ids = await _definitions(url)
        await _fill_postgres(connection, schema, sessions, end_us, definition_ids, started)
        seconds = clock() - started
        started = clock()
        # As copy-to-postgres does after a bulk load: the totals' rows were rewritten
        # once per row copied, inside big transactions; compact them (they are small).
        await connection.execute(
            "VACUUM (FULL) session_totals, daily_costs, model_costs, session_daily_costs,"
            " row_counts"
        )
        await connection.execute("VACUUM (ANALYZE)")
        vacuum_seconds = clock() - started
        table_bytes = await _table_bytes(connection, schema)
    finally:
        await connection.close()
    return Built(
        "postgresql",
        sessions,
        prompts,
        _end_text(end_us),
        round(seconds, 1),
        sum(table_bytes.values()),
        table_bytes=table_bytes,
        vacuum_analyze_seconds=round(vacuum_seconds, 1),
        target=url,
    )


async def _fill_postgres(
    connection: Any,
    schema: str,
    sessions: int,
    end_us: int,
    definition_ids: list[str],
    started: float,
) -> None:
    per = POSTGRES_SESSIONS_PER_TXN

    def make(first: int) -> scale_data.Chunk:
        return scale_data.chunk(
            first, per, sessions, end_us, definition_ids, scale_data.postgres_stamp
        )

    progress = _Progress("PostgreSQL", sessions, started)
    # A bulk load: rows go in with the triggers (and foreign-key checks) off, and the
    # totals are counted from them once at the end, as migration 3 counts them. Row by
    # row through the triggers took about 21 s per 1,000 sessions here (7x longer).
    await connection.execute("SET session_replication_role = replica")
    upcoming = asyncio.ensure_future(asyncio.to_thread(make, 0))
    for first in range(0, sessions, per):
        rows = await upcoming
        if first + per < sessions:  # made in a thread while the server takes this one
            upcoming = asyncio.ensure_future(asyncio.to_thread(make, first + per))
        async with connection.transaction():
            for table, table_rows in rows.tables().items():
                await connection.copy_records_to_table(
                    table,
                    records=table_rows,
                    columns=scale_data.COLUMNS[table],
                    schema_name=schema,
                )
        progress.done(min(first + per, sessions))
    await connection.execute("SET session_replication_role = DEFAULT")
    async with connection.transaction():
        await connection.execute(
            "TRUNCATE session_totals, daily_costs, model_costs, session_daily_costs, row_counts"
        )
        await connection.execute(TOTALS_FILL_POSTGRES)
    counts = {
        table: await connection.fetchval(f"SELECT count(*) FROM {schema}.{table}")
        for table in scale_data.expected_counts(sessions)
    }
    _check_counts(counts, sessions, f"schema {schema}")


async def _table_bytes(connection: Any, schema: str) -> dict[str, int]:
    rows = await connection.fetch(
        "SELECT c.relname, pg_total_relation_size(c.oid) AS bytes FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname",
        schema,
    )
    return {row["relname"]: int(row["bytes"]) for row in rows}


async def drop_postgres_store(database: pg_server.BenchDatabase, built: Built) -> None:
    connection = await asyncpg.connect(database.url, timeout=pg_server.CONNECT_TIMEOUT)
    try:
        schema = f"scale_{built.prompts}"
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await connection.close()


def data_end(built: Built) -> datetime:
    return datetime.fromisoformat(built.end).astimezone(UTC)
