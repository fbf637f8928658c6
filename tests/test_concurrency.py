"""Concurrency: many tasks on one manager, transactions isolated per task,
reads beside an open write transaction (WAL), failures and cancellations that
release the write lock, busy handling against other processes, and several
real processes writing to one file at once.

Timeouts below are hang guards only: a correct store finishes far sooner, and
no assertion depends on how fast anything runs. Where a test checks that a
write is still *waiting*, the store's design makes that write unable to finish
at all until the test lets it (it is queued behind a lock the test holds).
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator_store.manager import BusyError, DatabaseManager, IntegrityError
from orchestrator_store.schema import DEFAULT_SCHEMA_PATH, LATEST_VERSION, TOTALS_PATH
from orchestrator_store.schema import TABLES as SCHEMA_TABLES

SCHEMA_FILE = DEFAULT_SCHEMA_PATH
TABLES = set(SCHEMA_TABLES)
HANG_GUARD = 60.0  # seconds; a guard against hanging, never a speed check
PROCESS_HANG_GUARD = 120.0
CHANCE_TO_MISBEHAVE = 0.5  # seconds a blocked write gets to (wrongly) finish


class Boom(Exception):
    """Raised inside transaction blocks to make them roll back."""


# --- helpers -------------------------------------------------------------------


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


@contextmanager
def raw_db(path: Path, timeout: float = 10.0) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection in autocommit mode, closed at the end."""
    connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def raw_system_log_messages(path: Path) -> list[str]:
    """What is committed to the file, as any other connection sees it."""
    with raw_db(path) as raw:
        rows = raw.execute("SELECT message FROM system_logs ORDER BY id").fetchall()
    return [message for (message,) in rows]


def raw_agent_log_messages(path: Path) -> list[str]:
    with raw_db(path) as raw:
        rows = raw.execute("SELECT message FROM agent_logs ORDER BY id").fetchall()
    return [message for (message,) in rows]


def assert_lock_is_free(path: Path) -> None:
    """Another connection that refuses to wait (timeout=0) takes the write
    lock and commits a write: nobody is holding the database."""
    with raw_db(path, timeout=0) as raw:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute(
            "INSERT INTO system_logs (log_level, component, message, created_at) "
            "VALUES ('INFO', 'outsider', 'outsider wrote', ?)",
            (now_text(),),
        )
        raw.execute("COMMIT")
    assert "outsider wrote" in raw_system_log_messages(path)


async def messages(db: DatabaseManager, agent_id: str) -> list[str]:
    """The agent's log messages, read by the calling task (inside its own
    transaction, if it has one open)."""
    return [row["message"] for row in await db.get_agent_logs(agent_id=agent_id)]


async def messages_from_another_task(db: DatabaseManager, agent_id: str) -> list[str]:
    """The same, read in a separate task, with a hang guard."""
    return await asyncio.wait_for(messages(db, agent_id), HANG_GUARD)


@asynccontextmanager
async def background(*events: asyncio.Event) -> AsyncIterator[list[asyncio.Task[Any]]]:
    """Tasks the test starts; at the end their events are set and any task
    still running is cancelled, so that a failed assertion never leaves a
    transaction open (the fixture's close() would wait for it forever)."""
    tasks: list[asyncio.Task[Any]] = []
    try:
        yield tasks
    finally:
        for event in events:
            event.set()
        pending = [task for task in tasks if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=HANG_GUARD)


async def log(db: DatabaseManager, agent_id: str, message: str) -> int:
    return await db.create_agent_log(
        agent_id=agent_id, log_level="INFO", log_type="milestone", message=message
    )


def subprocess_env() -> dict[str, str]:
    return dict(os.environ)


async def start_python(script: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=subprocess_env(),
    )


async def expect_line(process: asyncio.subprocess.Process, expected: str) -> None:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), PROCESS_HANG_GUARD)
    if line.decode().strip() != expected:
        process.kill()
        _, stderr = await process.communicate()
        pytest.fail(f"expected {expected!r} from the child, got {line!r}; stderr:\n{stderr!r}")


async def send_line(process: asyncio.subprocess.Process, text: str) -> None:
    assert process.stdin is not None
    process.stdin.write(f"{text}\n".encode())
    await process.stdin.drain()


async def finish(process: asyncio.subprocess.Process) -> tuple[str, str]:
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), PROCESS_HANG_GUARD)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail("a child process hung")
    return stdout.decode(), stderr.decode()


# --- one process, many tasks ---------------------------------------------------


async def test_concurrent_reads_under_wal_while_writing(
    db: DatabaseManager, store_url: Any, agent_id: str
) -> None:
    seeded = [await log(db, agent_id, f"seed-{i}") for i in range(20)]
    writes = 60

    async def read_logs() -> list[dict[str, Any]]:
        return await db.get_agent_logs(agent_id=agent_id)

    async def read_recent() -> list[dict[str, Any]]:
        return await db.list_recent_agent_logs(limit=1000)

    async def read_agent() -> dict[str, Any] | None:
        return await db.get_agent(agent_id=agent_id)

    # A second manager on the same file reads as well (as another process would).
    async with DatabaseManager(store_url) as other:

        async def read_other() -> list[dict[str, Any]]:
            return await other.get_agent_logs(agent_id=agent_id)

        jobs: list[Any] = []
        for i in range(writes):
            jobs.append(log(db, agent_id, f"write-{i}"))
            jobs.extend([read_logs(), read_recent(), read_agent(), read_other()])
        results = await asyncio.wait_for(asyncio.gather(*jobs), HANG_GUARD)

    final = await db.get_agent_logs(agent_id=agent_id)
    final_ids = [row["id"] for row in final]
    assert len(final) == 20 + writes
    created = [row["created_at"] for row in final]
    assert created == sorted(created)  # oldest first
    assert final_ids[:20] == seeded
    reads = 0
    for result in results:
        if isinstance(result, list):  # a list read: a consistent snapshot
            reads += 1
            ids = sorted(row["id"] for row in result)
            assert set(seeded) <= set(ids)
            assert set(ids) <= set(final_ids)
            assert 20 <= len(ids) <= 20 + writes
        elif isinstance(result, dict):
            reads += 1
            assert result["id"] == agent_id
    assert reads == 4 * writes


async def test_many_tasks_share_one_manager_with_exact_counts(
    db: DatabaseManager, store_url: Any, agent_id: str
) -> None:
    tasks, rounds = 50, 4

    async def worker(n: int) -> None:
        for r in range(rounds):
            if (n + r) % 3 == 0:
                async with db.transaction():
                    await db.create_agent_log(
                        agent_id=agent_id,
                        log_level="INFO",
                        log_type="cost_update",
                        message=f"t{n}-r{r}",
                        details={"task": n, "round": r},
                    )
                    prompt = await db.create_prompt(
                        agent_id=agent_id, prompt_type="command", prompt_text=f"p{n}-{r}"
                    )
                    assert await db.update_prompt(
                        prompt, status="completed", cost_usd=0.25, tokens_input=3
                    )
                    assert await db.add_agent_cost(agent_id=agent_id, cost_usd=0.25)
            else:
                await db.create_agent_log(
                    agent_id=agent_id,
                    log_level="INFO",
                    log_type="cost_update",
                    message=f"t{n}-r{r}",
                    details={"task": n, "round": r},
                )
                prompt = await db.create_prompt(
                    agent_id=agent_id, prompt_type="command", prompt_text=f"p{n}-{r}"
                )
                assert await db.update_prompt(
                    prompt, status="completed", cost_usd=0.25, tokens_input=3
                )
                assert await db.add_agent_cost(agent_id=agent_id, cost_usd=0.25)
            await db.create_system_log(log_level="DEBUG", component=f"task-{n}", message="tick")

    await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(tasks))), HANG_GUARD)

    total = tasks * rounds
    logs = await db.get_agent_logs(agent_id=agent_id)
    assert len(logs) == total
    assert sorted(row["message"] for row in logs) == sorted(
        f"t{n}-r{r}" for n in range(tasks) for r in range(rounds)
    )
    assert all(
        row["message"] == f"t{row['details']['task']}-r{row['details']['round']}" for row in logs
    )
    prompts = await db.list_prompts(agent_id=agent_id)
    assert len(prompts) == total
    assert {row["status"] for row in prompts} == {"completed"}
    assert sum(row["cost_usd"] for row in prompts) == total * 0.25
    agent = await db.get_agent(agent_id=agent_id)
    assert agent is not None
    assert agent["cost_usd"] == total * 0.25
    assert len(await db.get_system_logs(log_level="DEBUG")) == total
    counts = await db.count_rows()
    assert counts["agent_logs"] == total
    assert counts["prompts"] == total
    assert counts["system_logs"] == total
    if isinstance(store_url, Path):  # what another connection sees in the file
        with raw_db(store_url) as raw:
            assert raw.execute("SELECT cost_usd FROM agents").fetchone()[0] == total * 0.25


# SQLite has one writer at a time: other tasks' writes queue behind an open
# transaction. PostgreSQL runs them beside it (test_postgres checks that).
@pytest.mark.backend("sqlite")
@pytest.mark.parametrize("b_uses_transaction", [False, True], ids=["b_plain", "b_transaction"])
async def test_rollback_is_isolated_from_another_tasks_writes(
    db: DatabaseManager,
    db_path: Path,
    agent_id: str,
    b_uses_transaction: bool,
) -> None:
    """Task A opens a transaction, writes, and later raises. Task B writes while
    A's transaction is open. B's write must wait for A's transaction instead of
    joining it: while A is open, B has not finished and nothing of B is
    committed; when A rolls back, A's rows vanish and B's row is committed.
    (A task started inside A's block is refused instead: test_cancellation.)"""
    a_wrote = asyncio.Event()
    b_started = asyncio.Event()
    release_a = asyncio.Event()

    async def task_b() -> None:
        b_started.set()  # B runs on into the store until it has to wait
        if b_uses_transaction:
            async with db.transaction():
                await log(db, agent_id, "B-1")
                await log(db, agent_id, "B-2")
        else:
            await log(db, agent_id, "B-1")

    async def task_a() -> None:
        async with db.transaction():
            await log(db, agent_id, "A-1")
            await db.add_agent_cost(agent_id=agent_id, cost_usd=8.0)
            a_wrote.set()
            await release_a.wait()
            await log(db, agent_id, "A-2")  # A keeps writing after B queued up
            raise Boom

    async with background(release_a) as tasks:
        a = asyncio.create_task(task_a())
        tasks.append(a)
        await asyncio.wait_for(a_wrote.wait(), HANG_GUARD)
        tasks.append(asyncio.create_task(task_b()))
        await asyncio.wait_for(b_started.wait(), HANG_GUARD)
        b = tasks[1]

        # Had B joined A's transaction, it would now finish; it must stay queued.
        done, _ = await asyncio.wait({b}, timeout=CHANCE_TO_MISBEHAVE)
        assert not done, "B's write finished while A's transaction was open"
        assert not a.done()
        # Nothing of A or B is committed while A is open.
        assert await messages_from_another_task(db, agent_id) == []
        assert raw_agent_log_messages(db_path) == []

        release_a.set()
        with pytest.raises(Boom):
            await asyncio.wait_for(a, HANG_GUARD)
        await asyncio.wait_for(b, HANG_GUARD)

    expected = ["B-1", "B-2"] if b_uses_transaction else ["B-1"]
    assert await messages(db, agent_id) == expected
    assert raw_agent_log_messages(db_path) == expected
    agent = await db.get_agent(agent_id=agent_id)
    assert agent is not None
    assert agent["cost_usd"] == 0.0  # A's increment was rolled back too


# SQLite has one writer at a time: other tasks' writes queue behind an open
# transaction. PostgreSQL runs them beside it (test_postgres checks that).
@pytest.mark.backend("sqlite")
async def test_committed_transaction_and_waiting_task_both_land(
    db: DatabaseManager, agent_id: str
) -> None:
    """The counterpart: when A commits, B's queued write lands after it."""
    a_wrote = asyncio.Event()
    release_a = asyncio.Event()

    async def task_a() -> None:
        async with db.transaction():
            await log(db, agent_id, "A-1")
            a_wrote.set()
            await release_a.wait()
            await log(db, agent_id, "A-2")

    async with background(release_a) as tasks:
        a = asyncio.create_task(task_a())
        tasks.append(a)
        await asyncio.wait_for(a_wrote.wait(), HANG_GUARD)
        b = asyncio.create_task(log(db, agent_id, "B-1"))
        tasks.append(b)
        done, _ = await asyncio.wait({b}, timeout=CHANCE_TO_MISBEHAVE)
        assert not done
        release_a.set()
        await asyncio.wait_for(a, HANG_GUARD)
        await asyncio.wait_for(b, HANG_GUARD)
    rows = await db.get_agent_logs(agent_id=agent_id)
    ids = {row["message"]: row["id"] for row in rows}
    assert sorted(ids) == ["A-1", "A-2", "B-1"]
    # B's row was inserted after A's whole transaction (created_at records when
    # B asked, so the listing order may differ; insertion order shows in the ids).
    assert ids["A-1"] < ids["A-2"] < ids["B-1"]


# Checks the file's write lock through a raw sqlite3 connection.
@pytest.mark.backend("sqlite")
async def test_reads_are_not_blocked_by_another_tasks_open_transaction(
    db: DatabaseManager, db_path: Path, agent_id: str, definition_id: str
) -> None:
    await log(db, agent_id, "committed before")
    opened = asyncio.Event()
    release = asyncio.Event()

    async def task_a() -> None:
        async with db.transaction():
            await log(db, agent_id, "uncommitted")
            await db.update_agent(agent_id, status="executing")
            await db.create_system_log(log_level="INFO", component="a", message="uncommitted")
            opened.set()
            await release.wait()

    async with background(release) as tasks:
        a = asyncio.create_task(task_a())
        tasks.append(a)
        await asyncio.wait_for(opened.wait(), HANG_GUARD)
        # More reads at once than the store has read connections.
        reads = await asyncio.wait_for(
            asyncio.gather(
                db.get_agent_logs(agent_id=agent_id),
                db.list_recent_agent_logs(limit=10),
                db.get_agent(agent_id=agent_id),
                db.list_agents(session_id="feature_Tac_14_Task_8"),
                db.get_system_logs(),
                db.list_recent_system_logs(limit=10),
                db.get_orchestrator_agent(agent_id=definition_id),
                db.count_rows(),
                *(db.get_agent_logs(agent_id=agent_id) for _ in range(8)),
            ),
            HANG_GUARD,
        )
        assert not a.done(), "A's transaction must still be open while B reads"
        logs, recent, agent, agents, system, recent_system, definition, counts, *more = reads
        assert [row["message"] for row in logs] == ["committed before"]
        assert [row["message"] for row in recent] == ["committed before"]
        assert agent is not None
        assert agent["status"] == "initializing"
        assert [row["status"] for row in agents] == ["initializing"]
        assert system == []
        assert recent_system == []
        assert definition is not None
        assert counts["agent_logs"] == 1
        assert counts["system_logs"] == 0
        assert all([row["message"] for row in rows] == ["committed before"] for rows in more)

        release.set()
        await asyncio.wait_for(a, HANG_GUARD)
    assert await messages(db, agent_id) == ["committed before", "uncommitted"]
    agent = await db.get_agent(agent_id=agent_id)
    assert agent is not None
    assert agent["status"] == "executing"
    assert raw_system_log_messages(db_path) == ["uncommitted"]


async def test_reads_inside_a_transaction_see_its_own_writes(
    db: DatabaseManager, agent_id: str, definition_id: str
) -> None:
    seen_by_child: list[Any] = []

    async def child_reader() -> None:
        seen_by_child.append(await db.get_agent(agent_id=agent_id))
        seen_by_child.append(await messages(db, agent_id))

    with pytest.raises(Boom):
        async with db.transaction():
            log_id = await log(db, agent_id, "inside")
            assert await messages(db, agent_id) == ["inside"]
            assert [row["id"] for row in await db.list_recent_agent_logs(limit=5)] == [log_id]
            assert await db.update_agent(agent_id, status="reviewing", context={"step": 2})
            agent = await db.get_agent(agent_id=agent_id)
            assert agent is not None
            assert agent["status"] == "reviewing"
            assert agent["context"] == {"step": 2}
            child = await db.create_agent(
                orchestrator_agent_id=definition_id, session_id="s2", parent_agent_id=agent_id
            )
            assert await db.list_agents(session_id="s2") != []
            prompt = await db.create_prompt(
                agent_id=child, prompt_type="adw", prompt_text="inside the block"
            )
            row = await db.get_prompt(prompt_id=prompt)
            assert row is not None
            assert row["prompt_text"] == "inside the block"
            assert (await db.count_rows())["prompts"] == 1
            # Another task (even one that inherits this context) sees only what is committed.
            await asyncio.wait_for(asyncio.create_task(child_reader()), HANG_GUARD)
            raise Boom

    agent_seen, logs_seen = seen_by_child
    assert agent_seen is not None
    assert agent_seen["status"] == "initializing"
    assert logs_seen == []
    # And after the rollback, the store is as before the block.
    assert await messages(db, agent_id) == []
    assert await db.list_agents(session_id="s2") == []
    agent = await db.get_agent(agent_id=agent_id)
    assert agent is not None
    assert agent["status"] == "initializing"
    assert (await db.count_rows())["prompts"] == 0


async def test_nested_block_rolls_back_alone(db: DatabaseManager, agent_id: str) -> None:
    async with db.transaction():
        await log(db, agent_id, "outer-1")
        with pytest.raises(Boom):
            async with db.transaction():
                await log(db, agent_id, "inner")
                assert await messages(db, agent_id) == ["outer-1", "inner"]
                raise Boom
        assert await messages(db, agent_id) == ["outer-1"]
        await log(db, agent_id, "outer-2")
    assert await messages(db, agent_id) == ["outer-1", "outer-2"]


# --- failures and cancellation release the lock --------------------------------


async def _fail_missing_reference(db: DatabaseManager, agent_id: str) -> None:
    with pytest.raises(IntegrityError):
        await db.create_agent_log(
            agent_id=str(uuid.uuid4()), log_level="INFO", log_type="error", message="orphan"
        )


async def _fail_duplicate_name(db: DatabaseManager, agent_id: str) -> None:
    with pytest.raises(IntegrityError):
        await db.create_orchestrator_agent(name="planner", description=None, agent_type="planner")


async def _fail_transaction_block_raises(db: DatabaseManager, agent_id: str) -> None:
    with pytest.raises(Boom):
        async with db.transaction():
            await log(db, agent_id, "rolled back")
            await db.add_agent_cost(agent_id=agent_id, cost_usd=1.0)
            raise Boom


async def _fail_integrity_error_inside_transaction(db: DatabaseManager, agent_id: str) -> None:
    with pytest.raises(IntegrityError):
        async with db.transaction():
            await log(db, agent_id, "rolled back")
            await db.create_prompt(
                agent_id=str(uuid.uuid4()), prompt_type="adw", prompt_text="orphan"
            )


async def _fail_nested_block_raises(db: DatabaseManager, agent_id: str) -> None:
    with pytest.raises(Boom):
        async with db.transaction():
            await log(db, agent_id, "rolled back")
            async with db.transaction():
                await log(db, agent_id, "rolled back too")
                raise Boom


FAILED_WRITES = {
    "missing_reference": _fail_missing_reference,
    "duplicate_name": _fail_duplicate_name,
    "transaction_block_raises": _fail_transaction_block_raises,
    "integrity_error_inside_transaction": _fail_integrity_error_inside_transaction,
    "nested_block_raises": _fail_nested_block_raises,
}


# Checks the file's write lock through a raw sqlite3 connection.
@pytest.mark.backend("sqlite")
@pytest.mark.parametrize("failure", sorted(FAILED_WRITES))
async def test_failed_write_does_not_hold_the_lock(
    db: DatabaseManager, db_path: Path, agent_id: str, failure: str
) -> None:
    await FAILED_WRITES[failure](db, agent_id)
    # Right after the failure, with no waiting: another connection writes.
    assert_lock_is_free(db_path)
    assert await messages(db, agent_id) == []
    agent = await db.get_agent(agent_id=agent_id)
    assert agent is not None
    assert agent["cost_usd"] == 0.0
    # ... and the store itself still writes, in and out of transactions.
    await asyncio.wait_for(log(db, agent_id, "after"), HANG_GUARD)
    async with db.transaction():
        await log(db, agent_id, "after, in a transaction")
    assert raw_agent_log_messages(db_path) == ["after", "after, in a transaction"]


# SQLite has one writer at a time: other tasks' writes queue behind an open
# transaction. PostgreSQL runs them beside it (test_postgres checks that).
@pytest.mark.backend("sqlite")
@pytest.mark.parametrize("while_", ["waiting_in_block", "writing_in_a_loop"])
async def test_cancelled_transaction_rolls_back_and_releases_the_lock(
    db: DatabaseManager, db_path: Path, agent_id: str, while_: str
) -> None:
    started = asyncio.Event()
    never = asyncio.Event()
    written = 0

    async def task_a() -> None:
        nonlocal written
        async with db.transaction():
            await db.add_agent_cost(agent_id=agent_id, cost_usd=4.0)
            while True:
                await log(db, agent_id, f"A-{written}")
                written += 1
                started.set()
                if while_ == "waiting_in_block":
                    await never.wait()

    async with background(never) as tasks:
        a = asyncio.create_task(task_a())
        tasks.append(a)
        await asyncio.wait_for(started.wait(), HANG_GUARD)
        for _ in range(5):  # let A get well into its next statement
            await asyncio.sleep(0)
        # Another task queues a write behind A's transaction.
        b = asyncio.create_task(log(db, agent_id, "B"))
        tasks.append(b)
        await asyncio.sleep(0)
        a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(a, HANG_GUARD)
        assert written >= 1
        await asyncio.wait_for(b, HANG_GUARD)

    assert await messages(db, agent_id) == ["B"]
    assert raw_agent_log_messages(db_path) == ["B"]
    agent = await db.get_agent(agent_id=agent_id)
    assert agent is not None
    assert agent["cost_usd"] == 0.0
    assert_lock_is_free(db_path)
    async with db.transaction():
        await log(db, agent_id, "after")
    assert raw_agent_log_messages(db_path) == ["B", "after"]


# SQLite has one writer at a time: other tasks' writes queue behind an open
# transaction. PostgreSQL runs them beside it (test_postgres checks that).
@pytest.mark.backend("sqlite")
async def test_cancelled_waiter_does_not_disturb_the_open_transaction(
    db: DatabaseManager, agent_id: str
) -> None:
    opened = asyncio.Event()
    release = asyncio.Event()

    async def task_a() -> None:
        async with db.transaction():
            await log(db, agent_id, "A")
            opened.set()
            await release.wait()

    async with background(release) as tasks:
        a = asyncio.create_task(task_a())
        tasks.append(a)
        await asyncio.wait_for(opened.wait(), HANG_GUARD)
        waiter = asyncio.create_task(log(db, agent_id, "never written"))
        tasks.append(waiter)
        done, _ = await asyncio.wait({waiter}, timeout=CHANCE_TO_MISBEHAVE)
        assert not done
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiter, HANG_GUARD)
        release.set()
        await asyncio.wait_for(a, HANG_GUARD)
    assert await messages(db, agent_id) == ["A"]
    await asyncio.wait_for(log(db, agent_id, "later"), HANG_GUARD)
    assert await messages(db, agent_id) == ["A", "later"]


# --- busy handling across processes --------------------------------------------

HOLDER_SCRIPT = """
import sqlite3
import sys
from datetime import UTC, datetime

connection = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
connection.execute(
    "INSERT INTO system_logs (log_level, component, message, created_at) "
    "VALUES ('INFO', 'holder', 'held', ?)",
    (datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"),),
)
print("locked", flush=True)
command = sys.stdin.readline().strip()
connection.execute("COMMIT" if command == "commit" else "ROLLBACK")
connection.close()
print("released", flush=True)
"""


@asynccontextmanager
async def lock_held_by_another_process(path: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    holder = await start_python(HOLDER_SCRIPT, str(path))
    try:
        await expect_line(holder, "locked")
        yield holder
    finally:
        if holder.returncode is None:
            # The holder reads one line: if the test already sent one, this is unread.
            with suppress(BrokenPipeError, ConnectionResetError):
                await send_line(holder, "rollback")
        _stdout, stderr = await finish(holder)
        assert holder.returncode == 0, stderr
        assert "Traceback" not in stderr


async def store_write(db: DatabaseManager, in_transaction: bool) -> None:
    if in_transaction:
        async with db.transaction():
            await db.create_system_log(log_level="INFO", component="store", message="store-1")
            await db.create_system_log(log_level="INFO", component="store", message="store-2")
    else:
        await db.create_system_log(log_level="INFO", component="store", message="store-1")


@pytest.mark.parametrize("in_transaction", [False, True], ids=["single_write", "transaction"])
async def test_write_waits_for_another_process_and_succeeds(
    db_path: Path, in_transaction: bool
) -> None:
    async with DatabaseManager(db_path, busy_timeout=20.0) as db:
        async with lock_held_by_another_process(db_path) as holder:
            write = asyncio.create_task(store_write(db, in_transaction))
            # The holder has the write lock: the store's write cannot finish
            # (and, with busy_timeout far away, must not fail) until it lets go.
            done, _ = await asyncio.wait({write}, timeout=CHANCE_TO_MISBEHAVE)
            assert not done, "the store's write did not wait for the lock"
            await send_line(holder, "commit")
            await expect_line(holder, "released")
            await asyncio.wait_for(write, HANG_GUARD)
        rows = await db.get_system_logs()
    expected = ["held", "store-1", "store-2"] if in_transaction else ["held", "store-1"]
    # The holder's row comes first: the store wrote after the holder committed.
    assert [row["message"] for row in rows] == expected
    assert raw_system_log_messages(db_path) == expected


@pytest.mark.parametrize("in_transaction", [False, True], ids=["single_write", "transaction"])
async def test_write_gives_up_when_held_longer_than_busy_timeout(
    db_path: Path, in_transaction: bool
) -> None:
    async with DatabaseManager(db_path, busy_timeout=0.2) as db:
        async with lock_held_by_another_process(db_path) as holder:
            with pytest.raises(BusyError, match="locked") as caught:
                await asyncio.wait_for(store_write(db, in_transaction), HANG_GUARD)
            assert caught.value.retryable
            assert isinstance(caught.value.__cause__, sqlite3.Error)
            await send_line(holder, "rollback")
            await expect_line(holder, "released")
        # Nothing of the store's was written, and the store holds no lock.
        assert await db.get_system_logs() == []
        assert raw_system_log_messages(db_path) == []
        assert_lock_is_free(db_path)
        # Once the other process is gone, the store writes again.
        await asyncio.wait_for(store_write(db, in_transaction), HANG_GUARD)
        rows = await db.get_system_logs(component="store")
    assert [row["message"] for row in rows] == (
        ["store-1", "store-2"] if in_transaction else ["store-1"]
    )


# --- many real processes on one file -------------------------------------------

WRITER_SCRIPT = """
import asyncio
import sys

from orchestrator_store.manager import DatabaseManager


async def main() -> None:
    path, agent_id, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    # A hang guard, not the 5 s default: on a loaded machine five writers may wait longer.
    async with DatabaseManager(path, busy_timeout=60) as db:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # start together
        for i in range(count):
            cost = 0.25 if i % 2 else 1.0
            if i % 10 == 0:
                async with db.transaction():
                    await db.create_agent_log(
                        agent_id, "INFO", "cost_update", f"w{worker}-{i}",
                        {"worker": worker, "i": i},
                    )
                    assert await db.add_agent_cost(agent_id, cost)
            else:
                await db.create_agent_log(
                    agent_id, "INFO", "cost_update", f"w{worker}-{i}", {"worker": worker, "i": i}
                )
                assert await db.add_agent_cost(agent_id, cost)
    print("done", flush=True)


asyncio.run(main())
"""


async def test_several_processes_write_and_add_cost_exactly(
    db: DatabaseManager, store_url: Any, agent_id: str
) -> None:
    workers, count = 5, 120
    processes = [
        await start_python(WRITER_SCRIPT, str(store_url), agent_id, str(worker), str(count))
        for worker in range(workers)
    ]
    for process in processes:
        await expect_line(process, "ready")
    for process in processes:  # every process is connected: go
        await send_line(process, "go")
    outcomes = [await finish(process) for process in processes]

    for process, (stdout, stderr) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
        assert "locked" not in stderr, stderr
        assert stdout.split() == ["done"]  # "ready" was read already

    logs = await db.get_agent_logs(agent_id=agent_id)
    assert len(logs) == workers * count
    assert sorted(row["message"] for row in logs) == sorted(
        f"w{worker}-{i}" for worker in range(workers) for i in range(count)
    )
    # Each process's own rows are in its order.
    for worker in range(workers):
        mine = [row["details"]["i"] for row in logs if row["details"]["worker"] == worker]
        assert mine == list(range(count))
    expected_cost = workers * sum(0.25 if i % 2 else 1.0 for i in range(count))
    agent = await db.get_agent(agent_id=agent_id)
    assert agent is not None
    assert agent["cost_usd"] == expected_cost
    if not isinstance(store_url, Path):
        return
    with raw_db(store_url) as raw:
        assert raw.execute("SELECT count(*) FROM agent_logs").fetchone()[0] == workers * count
        assert raw.execute("SELECT cost_usd FROM agents").fetchone()[0] == expected_cost
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


CONNECTOR_SCRIPT = """
import asyncio
import sys

from orchestrator_store.manager import DatabaseManager
from orchestrator_store.schema import LATEST_VERSION


async def main() -> None:
    path, index = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # connect together
    async with DatabaseManager(path) as db:
        assert await db.schema_version() == LATEST_VERSION
        await db.create_system_log("INFO", "connector", f"process {index}")
        definition = await db.create_orchestrator_agent(f"agent-{index}", None, "utility")
        assert await db.get_orchestrator_agent(definition) is not None
    print("done", flush=True)


asyncio.run(main())
"""


async def test_several_processes_create_a_new_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "nested" / "orchestrator.db"
    processes_count = 6
    processes = [
        await start_python(CONNECTOR_SCRIPT, str(path), str(index))
        for index in range(processes_count)
    ]
    for process in processes:
        await expect_line(process, "ready")
    assert not path.exists()
    for process in processes:
        await send_line(process, "go")
    outcomes = [await finish(process) for process in processes]
    for process, (stdout, stderr) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
        assert stdout.split() == ["done"]  # "ready" was read already

    with raw_db(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = [
            name
            for (name,) in raw.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        indexes = {
            name
            for (name,) in raw.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }
        messages_ = sorted(m for (m,) in raw.execute("SELECT message FROM system_logs"))
        names = sorted(n for (n,) in raw.execute("SELECT name FROM orchestrator_agents"))
    assert set(tables) >= TABLES
    assert len(tables) == len(set(tables))
    assert indexes == {
        name
        for source in (SCHEMA_FILE, TOTALS_PATH)
        for name in re.findall(
            r"CREATE INDEX IF NOT EXISTS (\w+)", source.read_text(encoding="utf-8")
        )
    }
    assert messages_ == sorted(f"process {index}" for index in range(processes_count))
    assert names == sorted(f"agent-{index}" for index in range(processes_count))
    async with DatabaseManager(path) as db:
        assert await db.schema_version() == LATEST_VERSION
