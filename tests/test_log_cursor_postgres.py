"""The log cursor follows the logs in commit order on PostgreSQL (schema version 5).

PostgreSQL's identities hand out ids before commit: a transaction that inserted
id 10 can commit after another one's id 11 was delivered. A cursor on ids alone
then passes over id 10 for good. Each log row now records its transaction
(``tx``), and ``log_bounds``/``list_logs(up_to=...)``/``logs_after`` place rows
by (tx, id), delivering a row once its transaction and every older one have
ended. These tests hold real transactions open on real connections and check
that every committed row is listed or delivered exactly once, and that SQLite
behaves as before.

The server is shared (other suites may run on it): a transaction of theirs holds
the horizon back like one of ours, so the tests poll until the rows they expect
have come, with a guard against hanging, never a speed check.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import closing
from pathlib import Path
from typing import IO, Any

import pytest
from test_cli import CLI
from test_schema_v2_migration import UNDO_VERSION_5, postgres_catalog, sqlite_schema

from orchestrator_store import schema
from orchestrator_store.copy_to_postgres import copy_sqlite_to_postgres
from orchestrator_store.manager import DatabaseManager, ValidationError
from orchestrator_store.tables import TABLES

Row = dict[str, Any]
Cursor = Mapping[str, int]
HANG_GUARD_S = 120.0  # how long rows may take to come: a guard, never a speed check
POLL_PAUSE_S = 0.02


# --- helpers ------------------------------------------------------------------------------


async def follow_until(
    db: DatabaseManager, cursor: Cursor, count: int, **options: Any
) -> tuple[list[Row], Cursor]:
    """``logs_after`` polled until ``count`` rows came, in delivery order, and the
    cursor after them. A transaction anywhere on the server holds rows back while
    it runs, so this waits for them (up to ``HANG_GUARD_S``)."""
    rows: list[Row] = []
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        page, cursor = await db.logs_after(cursor, **options)
        rows += page
        if len(rows) >= count:
            return rows, cursor
        assert time.monotonic() < deadline, f"{len(rows)} of {count} rows came: {rows}"
        await asyncio.sleep(POLL_PAUSE_S)


async def settle(db: DatabaseManager) -> None:
    """Wait until every row written so far is final: listed up to the cursor
    ``log_bounds`` gives (a transaction of another suite on the server, older
    than them, holds them back while it runs)."""
    deadline = time.monotonic() + HANG_GUARD_S
    while await db.list_logs(up_to=(await db.log_bounds())["cursor"]) != await db.list_logs():
        assert time.monotonic() < deadline, "the rows written so far never became final"
        await asyncio.sleep(POLL_PAUSE_S)


def messages(rows: list[Row]) -> list[str]:
    return [row["message"] for row in rows]


class HeldTransaction:
    """``write`` inside ``db.transaction()`` on a task of its own, the transaction
    left open until ``commit()`` (or ``roll_back()``): a writer that is slow to commit."""

    def __init__(self, db: DatabaseManager, write: Callable[[], Awaitable[None]]) -> None:
        self._db, self._write = db, write
        self._written = asyncio.Event()
        self._release = asyncio.Event()
        self._fail = False
        self._task: asyncio.Task[None] | None = None

    async def _hold(self) -> None:
        try:
            async with self._db.transaction():
                await self._write()
                self._written.set()
                await self._release.wait()
                if self._fail:
                    raise _RollBack
        except _RollBack:
            pass

    async def __aenter__(self) -> HeldTransaction:
        self._task = asyncio.create_task(self._hold())
        written = asyncio.create_task(self._written.wait())
        await asyncio.wait([self._task, written], return_when=asyncio.FIRST_COMPLETED)
        written.cancel()
        if self._task.done():
            self._task.result()  # the write failed: raise it here
        return self

    async def commit(self) -> None:
        assert self._task is not None
        self._release.set()
        await self._task

    async def roll_back(self) -> None:
        self._fail = True
        await self.commit()

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None and not self._task.done():
            await self.roll_back()


class _RollBack(Exception):
    """Raised in a transaction block to roll it back."""


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[DatabaseManager]:
    async with DatabaseManager(postgres_url) as manager:
        yield manager


async def new_agent(db: DatabaseManager) -> str:
    definition = await db.create_orchestrator_agent("planner", None, "planner")
    return await db.create_agent(definition, "session-1", status="executing")


async def raw_sql(url: str, sql: str, *params: Any) -> list[Any]:
    from pg_testing import connect_raw

    connection = await connect_raw(url)
    try:
        return list(await connection.fetch(sql, *params))
    finally:
        await connection.close()


# --- a transaction that commits late --------------------------------------------------------


async def test_a_row_committed_late_comes_once_its_transaction_ends(
    pg: DatabaseManager, postgres_url: str
) -> None:
    agent = await new_agent(pg)
    cursor = (await pg.log_bounds())["cursor"]
    ids: dict[str, int] = {}

    async def write_a() -> None:
        ids["A"] = await pg.create_agent_log(agent, "INFO", "milestone", "A")

    async with HeldTransaction(pg, write_a) as held:
        ids["B"] = await pg.create_agent_log(agent, "INFO", "milestone", "B")  # commits now
        assert ids["A"] < ids["B"]  # the case: B's higher id is visible first
        assert messages(await pg.list_logs()) == ["B"]

        rows, cursor = await pg.logs_after(cursor)
        assert rows == []  # B waits for A, which may still commit below it
        rows, cursor = await pg.logs_after(cursor)
        assert rows == []

        await held.commit()

    rows, cursor = await follow_until(pg, cursor, 2)
    assert messages(rows) == ["A", "B"]
    assert [row["id"] for row in rows] == [ids["A"], ids["B"]]
    assert await pg.logs_after(cursor) == ([], cursor)  # nothing twice
    tx = await raw_sql(
        postgres_url, "SELECT id, tx::text::bigint AS tx FROM agent_logs ORDER BY id"
    )
    assert cursor["agent_logs"] == ids["B"]
    assert cursor["agent_logs_tx"] == {row["id"]: row["tx"] for row in tx}[ids["B"]]
    assert tx[0]["tx"] < tx[1]["tx"]  # A's transaction began (wrote) first


async def test_a_rolled_back_transaction_delivers_nothing_and_holds_nothing_back(
    pg: DatabaseManager,
) -> None:
    agent = await new_agent(pg)
    cursor = (await pg.log_bounds())["cursor"]

    async def write() -> None:
        await pg.create_agent_log(agent, "INFO", "milestone", "never")
        await pg.create_system_log("INFO", "scheduler", "never either")

    async with HeldTransaction(pg, write) as held:
        await pg.create_system_log("INFO", "scheduler", "after")
        await held.roll_back()

    rows, cursor = await follow_until(pg, cursor, 1)
    assert messages(rows) == ["after"]
    await pg.create_agent_log(agent, "INFO", "milestone", "later")
    rows, cursor = await follow_until(pg, cursor, 1)
    assert messages(rows) == ["later"]
    assert await pg.logs_after(cursor) == ([], cursor)


async def test_listing_up_to_the_bounds_then_following_shows_each_row_once(
    pg: DatabaseManager, postgres_url: str
) -> None:
    agent = await new_agent(pg)
    await pg.create_agent_log(agent, "INFO", "milestone", "before")
    await settle(pg)

    async def write_a() -> None:
        await pg.create_agent_log(agent, "WARNING", "error", "A")
        await pg.create_system_log("INFO", "scheduler", "A system")

    async with (
        DatabaseManager(postgres_url, read_only=True) as reader,  # as the dashboard reads
        HeldTransaction(pg, write_a) as held,
    ):
        await pg.create_agent_log(agent, "INFO", "milestone", "B")
        await pg.create_system_log("INFO", "scheduler", "B system")
        bounds = await reader.log_bounds()
        cursor = bounds["cursor"]
        assert set(cursor) == {"agent_logs", "system_logs", "agent_logs_tx", "system_logs_tx"}
        assert bounds["last"] is not None

        listed = await reader.list_logs(up_to=cursor)
        # B's rows are there but not final (A, older, still runs): the follow's to show.
        assert messages(listed) == ["before"]
        assert (await reader.logs_after(cursor))[0] == []

        await held.commit()

    async with DatabaseManager(postgres_url, read_only=True) as reader:
        followed, cursor = await follow_until(reader, cursor, 4)
        assert await reader.logs_after(cursor) == ([], cursor)
        everything = await reader.list_logs()
        # The listing up to where the follow stands holds every row, as one.
        assert await reader.list_logs(up_to=cursor) == everything

    shown = listed + followed
    keys = [(row["source"], row["id"]) for row in shown]
    assert len(keys) == len(set(keys)) == 5
    assert sorted(messages(shown)) == sorted(messages(everything))
    assert messages(followed) == ["A", "A system", "B", "B system"]  # A's transaction first


async def test_a_filtered_follow_pages_in_commit_order(pg: DatabaseManager) -> None:
    agent = await new_agent(pg)
    cursor = (await pg.log_bounds())["cursor"]

    async def write_a() -> None:
        for n in range(3):
            await pg.create_agent_log(agent, "ERROR", "error", f"A{n}")
            await pg.create_agent_log(agent, "DEBUG", "milestone", f"quiet A{n}")

    async with HeldTransaction(pg, write_a) as held:
        for n in range(3):
            await pg.create_agent_log(agent, "ERROR", "error", f"B{n}")
        await held.commit()

    seen: list[Row] = []
    for _ in range(6):  # one row a call: the cursor moves row by row through (tx, id)
        rows, cursor = await follow_until(pg, cursor, 1, min_level="ERROR", limit=1)
        seen += rows
    assert messages(seen) == ["A0", "A1", "A2", "B0", "B1", "B2"]
    assert await pg.logs_after(cursor, min_level="ERROR") == ([], cursor)


# --- several writers and a follower at once ------------------------------------------------

WRITERS = 6
WRITES_PER_WRITER = 20
MAX_HOLD_S = 0.02  # how long a writer may hold its transaction open after each row
FOLLOW_PAUSE_S = 0.002  # the followers poll often, to land between commits


async def test_concurrent_writers_and_followers_deliver_every_committed_row_once(
    postgres_url: str,
) -> None:
    async with DatabaseManager(postgres_url) as setup:
        agent = await new_agent(setup)
        start = (await setup.log_bounds())["cursor"]
    committed: set[str] = set()
    rolled_back: set[str] = set()
    writers_done = asyncio.Event()

    async def writer(index: int) -> None:
        chance = random.Random(index)  # the choices are the same every run
        async with DatabaseManager(postgres_url) as db:
            for n in range(WRITES_PER_WRITER):
                names = [f"w{index}-{n}-{k}" for k in range(chance.randint(1, 3))]
                if chance.random() < 0.3:  # one row on its own, committed at once
                    names = names[:1]
                    await write_one(db, names[0], chance)
                    committed.update(names)
                    continue
                fail = chance.random() < 0.15
                try:
                    async with db.transaction():
                        for name in names:
                            await write_one(db, name, chance)
                            # Others commit meanwhile, rows with higher ids among them.
                            await asyncio.sleep(chance.random() * MAX_HOLD_S)
                        if fail:
                            raise _RollBack
                except _RollBack:
                    rolled_back.update(names)
                else:
                    committed.update(names)

    async def write_one(db: DatabaseManager, name: str, chance: random.Random) -> None:
        if chance.random() < 0.5:
            await db.create_agent_log(agent, "INFO", "milestone", name)
        else:
            await db.create_system_log("INFO", "writer", name)

    async def follow(cursor: Cursor, limit: int, listed: int = 0) -> list[Row]:
        """Polls (through JSON, as the dashboard's cursor travels) while the
        writers run, then until every committed row but the ``listed`` ones
        has come."""
        rows: list[Row] = []
        async with DatabaseManager(postgres_url, read_only=True) as db:
            while not writers_done.is_set():
                page, cursor = await db.logs_after(cursor, limit=limit)
                cursor = json.loads(json.dumps(cursor))
                rows += page
                await asyncio.sleep(FOLLOW_PAUSE_S)
            missing = len(committed) - listed - len(rows)
            rest, cursor = await follow_until(db, cursor, missing, limit=limit)
            rows += rest
            assert await db.logs_after(cursor) == ([], cursor)
        return rows

    async def list_then_follow() -> list[Row]:
        """The CLI's way in, started while the writers run."""
        await asyncio.sleep(0.2)
        async with DatabaseManager(postgres_url, read_only=True) as db:
            cursor = (await db.log_bounds())["cursor"]
            listed = await db.list_logs(up_to=cursor)
        return listed + await follow(cursor, 5, len(listed))

    async def run_writers() -> None:
        await asyncio.gather(*(writer(index) for index in range(WRITERS)))
        writers_done.set()

    _, from_start, joined = await asyncio.gather(
        run_writers(), follow(start, 7), list_then_follow()
    )

    assert committed and rolled_back  # both kinds happened
    for rows in (from_start, joined):
        names = messages(rows)
        assert len(names) == len(set(names))  # nothing twice
        assert set(names) == committed  # nothing skipped, nothing rolled back


# --- rows from before version 5 ------------------------------------------------------------


async def make_version_4(backend: str, store_url: Any) -> None:
    """Version 4 as it was: on PostgreSQL without the log tables' transaction
    column (its index goes with it); on SQLite version 5 changed nothing."""
    if backend == "sqlite":
        with closing(sqlite3.connect(store_url, isolation_level=None)) as raw:
            raw.execute("PRAGMA user_version = 4")
        return
    from pg_testing import run_sql

    await run_sql(store_url, UNDO_VERSION_5 + " UPDATE adw_schema_version SET version = 4")


async def schema_of(backend: str, store_url: Any) -> Any:
    if backend == "sqlite":
        with closing(sqlite3.connect(store_url)) as raw:
            return sqlite_schema(raw)
    return await postgres_catalog(store_url)


async def write_old_rows(db: DatabaseManager) -> str:
    agent = await new_agent(db)
    await db.create_agent_log(agent, "INFO", "milestone", "old 1")
    await db.create_agent_log(agent, "ERROR", "error", "old 2")
    await db.create_system_log("INFO", "scheduler", "old system")
    return agent


async def test_upgrading_from_version_4_keeps_the_logs_and_follows_after_them(
    backend: str, store_url: Any
) -> None:
    async with DatabaseManager(store_url) as db:
        agent = await write_old_rows(db)
        before = await db.list_logs()
    fresh = await schema_of(backend, store_url)
    await make_version_4(backend, store_url)
    if backend == "postgresql":
        columns = await raw_sql(
            store_url,
            "SELECT count(*) AS n FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND column_name = 'tx'",
        )
        assert columns[0]["n"] == 0  # an honest version 4

    async with DatabaseManager(store_url) as db:
        assert await db.schema_version() == schema.LATEST_VERSION == 5
        assert await db.list_logs() == before
        bounds = await db.log_bounds()
        assert await db.list_logs(up_to=bounds["cursor"]) == before  # the old rows are listed
        await db.create_agent_log(agent, "INFO", "milestone", "new")
        rows, cursor = await follow_until(db, bounds["cursor"], 1)
        assert messages(rows) == ["new"]  # and never followed
        assert await db.logs_after(cursor) == ([], cursor)

    assert await schema_of(backend, store_url) == fresh  # exactly what a new database gets
    if backend == "postgresql":
        tx = await raw_sql(store_url, "SELECT message, tx IS NULL AS old FROM agent_logs")
        assert {row["message"]: row["old"] for row in tx} == {
            "old 1": True,
            "old 2": True,
            "new": False,
        }


@pytest.mark.backend("postgresql")
async def test_a_cursor_without_transactions_places_itself_among_the_old_rows(
    backend: str, store_url: Any
) -> None:
    """A cursor of version 4 (ids only), or ``{}``: the rows from before version 5
    after its ids come first, by id, then every later row; none twice."""
    async with DatabaseManager(store_url) as db:
        agent = await write_old_rows(db)
    await make_version_4(backend, store_url)

    async with DatabaseManager(store_url) as db:
        await db.create_agent_log(agent, "INFO", "milestone", "new")
        await db.create_system_log("INFO", "scheduler", "new system")

        # One row of each table a call: the cursor moves row by row.
        seen, cursor = await follow_until(db, {}, 5, limit=1)
        assert [row["message"] for row in seen if row["source"] == "agent"] == [
            "old 1",
            "old 2",
            "new",
        ]
        assert [row["message"] for row in seen if row["source"] == "system"] == [
            "old system",
            "new system",
        ]
        assert await db.logs_after(cursor) == ([], cursor)
        assert "agent_logs_tx" in cursor and "system_logs_tx" in cursor

        # Where a follow of version 4 stood: past old 1 and the old system row.
        old_cursor = {"agent_logs": 1, "system_logs": 1}
        assert messages(await db.list_logs(up_to=old_cursor)) == ["old 1", "old system"]
        rows, cursor = await follow_until(db, old_cursor, 3)
        assert sorted(messages(rows)) == ["new", "new system", "old 2"]
        assert await db.logs_after(cursor) == ([], cursor)


# --- the cursor: shape and validation --------------------------------------------------------


async def test_the_cursor_is_plain_json_and_sqlite_keeps_its_shape(
    backend: str, db: DatabaseManager
) -> None:
    agent = await new_agent(db)
    await db.create_agent_log(agent, "INFO", "milestone", "listed")
    await settle(db)
    cursor = (await db.log_bounds())["cursor"]
    await db.create_agent_log(agent, "INFO", "milestone", "followed")

    assert json.loads(json.dumps(cursor)) == cursor
    assert all(type(value) is int for value in cursor.values())
    rows, after = await follow_until(db, json.loads(json.dumps(cursor)), 1)
    assert messages(rows) == ["followed"]
    assert json.loads(json.dumps(after)) == after
    if backend == "sqlite":
        assert cursor == {"agent_logs": 1, "system_logs": 0}
        assert after == {"agent_logs": 2, "system_logs": 0}
    else:
        assert after["agent_logs"] == 2 and after["agent_logs_tx"] >= cursor["agent_logs_tx"]
        assert after["system_logs_tx"] == cursor["system_logs_tx"]  # untouched: no new row


@pytest.mark.backend("sqlite")
async def test_sqlite_refuses_a_postgresql_cursor(db: DatabaseManager) -> None:
    postgres_cursor = {"agent_logs": 0, "system_logs": 0, "agent_logs_tx": 900}
    with pytest.raises(ValidationError, match="agent_logs_tx: a PostgreSQL store's cursor") as e:
        await db.logs_after(postgres_cursor)
    assert e.value.field == "cursor"
    with pytest.raises(ValidationError, match="PostgreSQL") as e:
        await db.list_logs(up_to={"system_logs_tx": 3})
    assert e.value.field == "up_to"


@pytest.mark.parametrize(
    ("cursor", "named"),
    [
        ({"agent_logs_tx": "12"}, "agent_logs_tx"),
        ({"agent_logs_tx": -1}, "agent_logs_tx"),
        ({"system_logs_tx": 1.5}, "system_logs_tx"),
        ({"horizon": 12}, "horizon: unknown field"),
        ({"agent_logs": [1, 2]}, "agent_logs"),
    ],
)
async def test_a_malformed_cursor_is_a_validation_error_naming_its_key(
    db: DatabaseManager, cursor: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        await db.logs_after(cursor)
    with pytest.raises(ValidationError, match=named):
        await db.list_logs(up_to=cursor)


# --- the transaction column never shows ------------------------------------------------------


async def test_no_row_the_store_returns_carries_the_transaction(db: DatabaseManager) -> None:
    agent = await new_agent(db)
    await db.create_agent_log(agent, "INFO", "milestone", "m", {"k": 1})
    batch = {"agent_id": agent, "log_level": "INFO", "log_type": "error", "message": "batch"}
    await db.create_agent_logs([batch])
    await db.create_system_log("INFO", "scheduler", "s")
    agent_columns = set(TABLES["agent_logs"].columns)
    system_columns = set(TABLES["system_logs"].columns)
    line_keys = {"source", "id", "created_at", "log_level", "agent_id", "log_type"}
    line_keys |= {"component", "message", "details"}

    agent_rows = [
        *await db.get_agent_logs(agent),
        *await db.list_recent_agent_logs(),
        *await db.get_recent_logs(),
        *await db.get_logs_by_type("milestone"),
        *await db.get_agent_logs_by_type(agent, "milestone"),
        *[row async for row in db.iter_rows("agent_logs")],
    ]
    system_rows = [
        *await db.get_system_logs(),
        *await db.list_recent_system_logs(),
        *[row async for row in db.iter_rows("system_logs")],
    ]
    followed, _ = await follow_until(db, {}, 3)
    lines = [*await db.list_logs(), *await db.list_logs(up_to=(await db.log_bounds())["cursor"])]

    assert agent_rows and all(set(row) == agent_columns for row in agent_rows)
    assert system_rows and all(set(row) == system_columns for row in system_rows)
    assert all(set(row) == line_keys for row in [*followed, *lines])


async def test_copy_to_postgres_copies_the_columns_and_the_copy_is_followed(
    tmp_path: Path, postgres_url: str
) -> None:
    source = tmp_path / "source.db"
    async with DatabaseManager(source) as db:
        await write_old_rows(db)
        expected = {
            table: [row async for row in db.iter_rows(table)]
            for table in ("agent_logs", "system_logs")
        }

    await copy_sqlite_to_postgres(source, postgres_url)

    async with DatabaseManager(postgres_url) as db:
        for table in ("agent_logs", "system_logs"):
            assert [row async for row in db.iter_rows(table)] == expected[table]
        # The copied rows are the copy's transaction's: after a cursor from before it.
        rows, cursor = await follow_until(db, {}, 3)
        assert sorted(messages(rows)) == ["old 1", "old 2", "old system"]
        assert await db.logs_after(cursor) == ([], cursor)
    untagged = await raw_sql(
        postgres_url,
        "SELECT (SELECT count(*) FROM agent_logs WHERE tx IS NULL)"
        " + (SELECT count(*) FROM system_logs WHERE tx IS NULL) AS n",
    )
    assert untagged[0]["n"] == 0


# --- the command line -------------------------------------------------------------------------

HOLDER = """
import asyncio, sys
from orchestrator_store.manager import DatabaseManager

async def main(url, agent):
    async with DatabaseManager(url) as db:
        async with db.transaction():
            await db.create_agent_log(agent, "ERROR", "error", "held")
            print("holding", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
    print("committed", flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


class Lines:
    """A process's output read line by line on a thread of its own, so that a
    line that never comes fails the test after ``HANG_GUARD_S`` instead of hanging."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)

    def next(self) -> str:
        try:
            return self._lines.get(timeout=HANG_GUARD_S)
        except queue.Empty:
            pytest.fail("a line the test waits for never came")

    def messages(self, count: int) -> list[str]:
        return [json.loads(self.next())["message"] for _ in range(count)]


def test_logs_follow_on_postgresql_prints_a_late_commit_once(
    postgres_url: str, tmp_path: Path
) -> None:
    async def write(*names: str, agent: str | None = None) -> str:
        async with DatabaseManager(postgres_url) as db:
            agent = agent or await new_agent(db)
            for name in names:
                await db.create_agent_log(agent, "INFO", "milestone", name)
        return agent

    agent = asyncio.run(write("listed 1", "listed 2"))
    script = tmp_path / "holder.py"
    script.write_text(HOLDER, encoding="utf-8")
    holder = subprocess.Popen(
        [sys.executable, str(script), postgres_url, agent],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    errors = tmp_path / "follower.stderr"
    with errors.open("w", encoding="utf-8") as stderr:
        follower = subprocess.Popen(
            [str(CLI), "--db", postgres_url, "logs", "--follow", "--json", "--interval", "0.05"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        assert holder.stdin is not None and holder.stdout is not None
        assert follower.stdout is not None
        held, printed = Lines(holder.stdout), Lines(follower.stdout)
        assert held.next() == "holding\n"  # "held" has its id, uncommitted
        listed = printed.messages(2)
        asyncio.run(write("after", agent=agent))  # a higher id, committed first
        # Polls go by meanwhile (an id cursor would pass "held" in them). However
        # many there are, the outcome below is the same: this only gives them time.
        time.sleep(0.5)
        holder.stdin.write("commit\n")
        holder.stdin.flush()
        assert held.next() == "committed\n"
        followed = printed.messages(2)
        asyncio.run(write("last", agent=agent))
        # The next line is the last row: nothing was printed twice meanwhile.
        final = printed.messages(1)
    finally:
        follower.kill()
        follower.wait(timeout=30)
        holder.kill()
        holder.wait(timeout=30)

    assert "Traceback" not in errors.read_text(encoding="utf-8")
    assert listed == ["listed 1", "listed 2"]
    assert followed == ["held", "after"]  # the late commit is not skipped
    assert final == ["last"]
