"""Consecutive single-row INSERTs of a write group run as one multi-row INSERT.

The merge must be invisible: every caller gets its own row's id, a refused
row fails only its own caller, and the rows keep the order they were queued in.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator_store.coalesce import BATCH_ROWS, MAX_ROWS, mergeable, merged_sql, runs
from orchestrator_store.sqlite_writer import Statement, WriterThread

HANG_GUARD = 60  # seconds; only stops a hung test, never measures speed
INSERT = "INSERT INTO logs (owner, message) VALUES (?, ?)"


@pytest.fixture
def traced() -> list[str]:
    """The statements the writer's connection runs, as SQLite sees them."""
    return []


@pytest.fixture
async def writer(tmp_path: Path, traced: list[str]) -> AsyncIterator[WriterThread]:
    """A writer on a file with a foreign key to break and an AUTOINCREMENT id."""
    path = tmp_path / "coalesce.db"
    setup = sqlite3.connect(path)
    setup.executescript(
        """
        PRAGMA journal_mode = WAL;
        CREATE TABLE owners (name TEXT PRIMARY KEY);
        CREATE TABLE logs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            owner TEXT NOT NULL REFERENCES owners (name),
            message TEXT NOT NULL
        );
        INSERT INTO owners VALUES ('ada');
        """
    )
    setup.close()

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA foreign_keys = ON")
        connection.set_trace_callback(traced.append)
        return connection

    thread = WriterThread("coalesce-test")
    await thread.start(connect)
    try:
        yield thread
    finally:
        await thread.stop(lambda _connection: None)


async def stored(writer: WriterThread) -> dict[int, str]:
    rows = await writer.call(lambda c: c.execute("SELECT id, message FROM logs").fetchall())
    return dict(rows)


async def test_each_caller_of_a_merged_insert_gets_its_own_rows_id(writer: WriterThread) -> None:
    results = await asyncio.wait_for(
        asyncio.gather(*(writer.write(Statement(INSERT, ("ada", f"m{n}"))) for n in range(150))),
        HANG_GUARD,
    )

    by_id = await stored(writer)
    assert [by_id[result.lastrowid] for result in results] == [f"m{n}" for n in range(150)]
    assert all(result.rowcount == 1 for result in results)
    assert sorted(by_id) == sorted(result.lastrowid for result in results)


async def test_a_refused_row_fails_only_its_caller_and_the_others_keep_their_ids(
    writer: WriterThread,
) -> None:
    def owner(number: int) -> str:
        return "nobody" if number in (0, 17, 63, 64, 99) else "ada"

    writes = [writer.write(Statement(INSERT, (owner(n), f"m{n}"))) for n in range(100)]
    results = await asyncio.wait_for(asyncio.gather(*writes, return_exceptions=True), HANG_GUARD)

    failed = [n for n, result in enumerate(results) if isinstance(result, BaseException)]
    assert failed == [0, 17, 63, 64, 99]
    assert all(isinstance(results[n], sqlite3.IntegrityError) for n in failed)
    by_id = await stored(writer)
    assert sorted(by_id.values()) == sorted(f"m{n}" for n in range(100) if n not in failed)
    for number, result in enumerate(results):
        if not isinstance(result, BaseException):
            assert by_id[result.lastrowid] == f"m{number}"


async def test_other_statements_between_inserts_keep_their_place(writer: WriterThread) -> None:
    statements = [
        Statement(INSERT, ("ada", "first")),
        Statement(INSERT, ("ada", "second")),
        Statement("UPDATE logs SET message = message || '!' WHERE message = ?", ("first",)),
        Statement(INSERT, ("ada", "third")),
        Statement("INSERT INTO owners (name) VALUES (?)", ("bob",)),
        Statement(INSERT, ("bob", "fourth")),  # needs the owner queued just before it
    ]
    results = await asyncio.wait_for(
        asyncio.gather(*(writer.write(statement) for statement in statements)), HANG_GUARD
    )

    assert results[2].rowcount == 1
    by_id = await stored(writer)
    assert [by_id[results[n].lastrowid] for n in (0, 1, 3, 5)] == [
        "first!",
        "second",
        "third",
        "fourth",
    ]


async def test_a_batch_of_rows_runs_as_merged_inserts_all_or_nothing(writer: WriterThread) -> None:
    good = [("ada", f"b{n}") for n in range(BATCH_ROWS * 2 + 37)]
    result = await writer.write(Statement(INSERT, good, many=True))
    assert result.rowcount == len(good)
    by_id = await stored(writer)
    assert [by_id[i] for i in sorted(by_id)] == [message for _, message in good]
    assert result.lastrowid == max(by_id)

    bad = [*good[:300], ("nobody", "refused"), *good[:5]]
    with pytest.raises(sqlite3.IntegrityError):
        await writer.write(Statement(INSERT, bad, many=True))
    assert await stored(writer) == by_id  # nothing of the refused batch was kept


async def test_writes_queued_together_share_one_merged_insert_and_one_commit(
    writer: WriterThread, traced: list[str]
) -> None:
    gate = threading.Event()  # holds the writer until all ten writes are queued
    held = asyncio.ensure_future(writer.call(lambda _connection: gate.wait(HANG_GUARD)))
    writes = [
        asyncio.ensure_future(writer.write(Statement(INSERT, ("ada", f"m{n}")))) for n in range(10)
    ]
    await asyncio.sleep(0)
    traced.clear()
    gate.set()
    await asyncio.wait_for(asyncio.gather(held, *writes), HANG_GUARD)

    inserts = [sql for sql in traced if sql.startswith("INSERT INTO logs")]
    assert [sql.count("), (") + 1 for sql in inserts] == [8, 2]  # power-of-two pieces
    assert traced.count("BEGIN IMMEDIATE") == 1 and traced.count("COMMIT") == 1


async def test_a_write_alone_is_one_autocommit_statement(
    writer: WriterThread, traced: list[str]
) -> None:
    traced.clear()
    result = await asyncio.wait_for(writer.write(Statement(INSERT, ("ada", "alone"))), HANG_GUARD)

    assert traced == ["INSERT INTO logs (owner, message) VALUES ('ada', 'alone')"]
    assert (await stored(writer))[result.lastrowid] == "alone"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (INSERT, True),
        ("INSERT INTO t (a) VALUES (?)", True),
        ("INSERT OR IGNORE INTO t (a) VALUES (?)", False),
        ("INSERT INTO t (a) VALUES (?) RETURNING id", False),
        ("INSERT INTO t (a) VALUES (?), (?)", False),
        ("INSERT INTO t (a) SELECT a FROM u", False),
        ("INSERT INTO t (a, b) VALUES (?, 1)", False),
        ("UPDATE t SET a = ? WHERE id = ?", False),
    ],
)
def test_only_plain_single_row_inserts_merge(sql: str, expected: bool) -> None:
    assert mergeable(sql) is expected


def test_merged_sql_repeats_the_value_tuple() -> None:
    assert merged_sql(INSERT, 3) == (
        "INSERT INTO logs (owner, message) VALUES (?, ?), (?, ?), (?, ?)"
    )
    with pytest.raises(ValueError, match="cannot merge"):
        merged_sql("UPDATE t SET a = ?", 2)


def test_runs_keep_order_and_use_power_of_two_pieces() -> None:
    other = "UPDATE t SET a = ?"
    items = [INSERT] * 100 + [other, other] + [INSERT] * 3

    pieces = list(runs(items, lambda sql: sql))

    assert [len(piece) for piece in pieces] == [MAX_ROWS, 32, 4, 1, 1, 2, 1]
    assert [sql for piece in pieces for sql in piece] == items
    assert all(len(set(piece)) == 1 for piece in pieces)
    assert [len(p) for p in runs([INSERT] * 5, lambda _s: None)] == [1] * 5
