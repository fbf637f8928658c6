"""Cancellation, child tasks and exit: the store never hangs and never loses.

Where a test needs a cancellation to land at one exact moment (while BEGIN
waits for the lock, while COMMIT runs, while a write is queued), a gate on the
write connection's trace callback holds the writer thread inside that
statement until the test has cancelled the caller: the interleaving is forced,
not left to a sleep that usually wins. Timeouts are hang guards only.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_concurrency import (
    HANG_GUARD,
    assert_lock_is_free,
    expect_line,
    finish,
    raw_db,
    raw_system_log_messages,
    send_line,
    start_python,
)

from orchestrator_store.manager import (
    BusyError,
    DatabaseError,
    DatabaseManager,
    NotConnectedError,
    Transaction,
    TransactionScopeError,
)
from orchestrator_store.sqlite_backend import READ_CONNECTIONS


class WriterGate:
    """Holds the store's writer thread at the start of the first statement
    that ``stop_at`` matches, until ``release()``."""

    def __init__(self, stop_at: Callable[[str], bool]) -> None:
        self.stop_at = stop_at
        self.arrived = threading.Event()
        self.released = threading.Event()
        self.statements: list[str] = []

    def __call__(self, statement: str) -> None:  # on the writer thread
        self.statements.append(statement)
        if not self.arrived.is_set() and self.stop_at(statement):
            self.arrived.set()
            self.released.wait(HANG_GUARD)

    async def wait_until_held(self) -> None:
        arrived = await asyncio.to_thread(self.arrived.wait, HANG_GUARD)
        assert arrived, f"the writer never ran the statement; it ran {self.statements}"

    def release(self) -> None:
        self.released.set()


async def install(db: DatabaseManager, gate: WriterGate | None) -> None:
    writer = db._backend._writer  # type: ignore[attr-defined]
    # The gate holds the writer thread: lone writes must run there too, not on the loop.
    writer.inline_enabled = gate is None
    await writer.call(lambda connection: connection.set_trace_callback(gate))


async def writer_in_transaction(db: DatabaseManager) -> bool:
    writer = db._backend._writer  # type: ignore[attr-defined]
    return bool(await writer.call(lambda connection: connection.in_transaction))


async def assert_usable(db: DatabaseManager, note: str) -> None:
    """The manager writes and reads again, and (SQLite) holds no lock."""
    await asyncio.wait_for(db.create_system_log("INFO", "probe", note), HANG_GUARD)
    logs = await asyncio.wait_for(db.get_system_logs(component="probe"), HANG_GUARD)
    assert note in [row["message"] for row in logs]
    if db.db_path is not None:
        assert not await writer_in_transaction(db)
        await asyncio.to_thread(assert_lock_is_free, db.db_path)


async def cancel_after(task: asyncio.Task[Any], turns: int) -> None:
    """Cancel ``task`` after ``turns`` turns of the event loop; wait until it is done."""
    for _ in range(turns):
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait({task}, timeout=HANG_GUARD)
    assert task.done()


async def committed_messages(db: DatabaseManager, component: str) -> list[str]:
    return [row["message"] for row in await db.get_system_logs(component=component)]


# --- 1. transaction() cancelled at every step ------------------------------------


async def write_in_a_block(db: DatabaseManager, holder: list[Transaction]) -> None:
    """The issue's example block; ``holder`` receives its Transaction."""
    async with db.transaction() as transaction:
        holder.append(transaction)
        await db.create_system_log("INFO", "tx", "inside")


@pytest.mark.parametrize("turns", range(8))
async def test_cancel_while_transaction_starts_leaves_store_usable(
    db: DatabaseManager, turns: int
) -> None:
    """The issue's own example, with the cancellation landing after 0..7
    turns of the event loop: while the lock is awaited, while BEGIN is
    queued or running, inside the block, or during COMMIT."""
    holder: list[Transaction] = []
    task = asyncio.create_task(write_in_a_block(db, holder))
    await cancel_after(task, turns)
    await assert_usable(db, f"after {turns} turns")
    stored = await committed_messages(db, "tx")
    committed = bool(holder) and holder[0].committed
    assert stored == (["inside"] if committed else [])
    if not task.cancelled():  # the cancellation came too late to stop anything
        assert committed


@pytest.mark.backend("sqlite")
@pytest.mark.parametrize(
    "stop_at", ["BEGIN IMMEDIATE", "INSERT", "COMMIT"], ids=["begin", "write", "commit"]
)
async def test_cancel_while_a_transaction_statement_runs(db: DatabaseManager, stop_at: str) -> None:
    """Cancelled while the writer runs BEGIN, a write of the block, or its
    COMMIT: the statement finishes, then the block ends as the Transaction
    says: committed only when the COMMIT had started, else rolled back."""
    gate = WriterGate(lambda statement: statement.startswith(stop_at))
    await install(db, gate)
    holder: list[Transaction] = []
    task = asyncio.create_task(write_in_a_block(db, holder))
    try:
        await gate.wait_until_held()
        task.cancel()
        await asyncio.sleep(0)  # the cancellation reaches the task first
    finally:
        gate.release()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, HANG_GUARD)
    await install(db, None)
    await assert_usable(db, "after the gate")
    if stop_at == "COMMIT":
        assert holder[0].state == "committed"
        assert await committed_messages(db, "tx") == ["inside"]
    else:
        assert not holder or holder[0].state == "rolled_back"
        assert await committed_messages(db, "tx") == []


@pytest.mark.backend("sqlite")
@pytest.mark.parametrize("stop_at", ["SAVEPOINT", "RELEASE"])
async def test_cancel_while_a_nested_block_starts_or_ends(
    db: DatabaseManager, stop_at: str
) -> None:
    """Cancelled while the writer runs a nested block's SAVEPOINT or RELEASE:
    the statement finishes, CancelledError leaves both blocks, and the outer
    one rolls back everything; the nested block gives the outer Transaction."""
    gate = WriterGate(lambda statement: statement.startswith(stop_at))
    await install(db, gate)
    seen: list[Transaction] = []

    async def nested() -> None:
        async with db.transaction() as outer:
            seen.append(outer)
            await db.create_system_log("INFO", "tx", "outer")
            async with db.transaction() as inner:
                seen.append(inner)
                await db.create_system_log("INFO", "tx", "inner")

    task = asyncio.create_task(nested())
    try:
        await gate.wait_until_held()
        task.cancel()
        await asyncio.sleep(0)
    finally:
        gate.release()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, HANG_GUARD)
    await install(db, None)
    assert seen[0].state == "rolled_back"
    assert all(transaction is seen[0] for transaction in seen)
    assert await committed_messages(db, "tx") == []
    await assert_usable(db, "after a cancelled nested block")


@pytest.mark.backend("sqlite")
async def test_cancel_while_checkpoint_runs(db: DatabaseManager) -> None:
    """checkpoint() holds the write lock while SQLite checkpoints: cancelled
    there, it lets go once the checkpoint has run, and writes go on."""
    await db.create_system_log("INFO", "probe", "a WAL to fold")
    gate = WriterGate(lambda statement: "wal_checkpoint(TRUNCATE)" in statement)
    await install(db, gate)
    task = asyncio.create_task(db.checkpoint())
    try:
        await gate.wait_until_held()
        task.cancel()
        await asyncio.sleep(0)
        assert not task.done()  # it waits for its statement, which the gate holds
    finally:
        gate.release()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, HANG_GUARD)
    await install(db, None)
    await assert_usable(db, "after a cancelled checkpoint")
    async with db.transaction():  # the write lock was let go
        await db.create_system_log("INFO", "probe", "in a block")


@pytest.mark.backend("sqlite")
@pytest.mark.parametrize("how", ["wait_for", "timeout"])
async def test_timed_out_transaction_waiting_for_another_connections_lock(
    db: DatabaseManager, db_path: Path, how: str
) -> None:
    """Another connection holds the write lock; the block's timeout expires
    while BEGIN waits for it. The caller gets TimeoutError while that lock is
    still held (the wait is not stuck in SQLite's busy handler), and once it
    is released the store holds nothing and writes again."""
    blocker = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    slow = DatabaseManager(db_path, busy_timeout=HANG_GUARD)
    await slow.connect()
    try:

        async def tx() -> None:
            async with slow.transaction():
                await slow.create_system_log("INFO", "tx", "inside")

        with pytest.raises(TimeoutError):
            if how == "wait_for":
                await asyncio.wait_for(tx(), 0.3)
            else:
                async with asyncio.timeout(0.3):
                    await tx()
        assert blocker.in_transaction  # TimeoutError came while the lock was held
        blocker.execute("ROLLBACK")
        await assert_usable(slow, "after the timeout")
        assert await committed_messages(slow, "tx") == []
    finally:
        blocker.close()
        await slow.close()


async def test_cancelled_cleanup_old_logs_leaves_store_usable(db: DatabaseManager) -> None:
    for turns in range(6):
        await cancel_after(asyncio.create_task(db.cleanup_old_logs(0)), turns)
        await assert_usable(db, f"cleanup cancelled after {turns} turns")


# What end_workflow leaves: (status, error_count, completed_at set, duration_seconds set).
WORKFLOW_UNTOUCHED = ("in_progress", 0, False, False)
WORKFLOW_ENDED = ("failed", 1, True, True)


async def workflow_state(db: DatabaseManager, workflow_id: str) -> tuple[Any, ...]:
    row = await db.get_workflow(workflow_id)
    assert row is not None
    return (
        row["status"],
        row["error_count"],
        row["completed_at"] is not None,
        row["duration_seconds"] is not None,
    )


@pytest.mark.parametrize("inside", [False, True], ids=["alone", "in_transaction"])
async def test_cancelled_end_workflow_ends_it_fully_or_not_at_all(
    db: DatabaseManager, inside: bool
) -> None:
    """end_workflow's UPDATEs are one transaction (its own, or the caller's
    block): cancelled at any turn, the workflow is untouched or fully ended,
    never ended without its duration or its error counted."""

    async def end(workflow_id: str) -> None:
        if inside:
            async with db.transaction():
                await db.end_workflow(workflow_id, "failed", error_message="boom")
        else:
            await db.end_workflow(workflow_id, "failed", error_message="boom")

    for turns in range(24):
        workflow_id = await db.start_workflow("adw_build", "build")
        task = asyncio.create_task(end(workflow_id))
        await cancel_after(task, turns)
        state = await workflow_state(db, workflow_id)
        assert state in (WORKFLOW_UNTOUCHED, WORKFLOW_ENDED), (turns, state)
        if not task.cancelled():  # the cancellation came too late to stop anything
            assert state == WORKFLOW_ENDED, turns
        await assert_usable(db, f"end_workflow cancelled after {turns} turns")
    # Not cancelled, it ends the workflow (the states above are the real ones).
    workflow_id = await db.start_workflow("adw_build", "build")
    await end(workflow_id)
    assert await workflow_state(db, workflow_id) == WORKFLOW_ENDED


async def assert_query_left_nothing(db: DatabaseManager, store_url: Any, lock_key: int) -> None:
    """What a cancelled query() must not leave behind. SQLite: no connection
    keeps its guard (the authorizer): every reader, and the writer, runs a
    statement the guard refuses (a setting set to the value it has, which
    changes nothing). PostgreSQL: no pooled connection keeps the session
    advisory lock its statement took."""
    if db.backend_name == "sqlite":
        backend: Any = db._backend
        readers = backend._readers
        assert readers.qsize() == READ_CONNECTIONS  # none in use: the read is over
        taken = [readers.get_nowait() for _ in range(READ_CONNECTIONS)]
        try:
            for reader in taken:
                await reader.execute("PRAGMA query_only = ON")
        finally:
            for reader in taken:
                readers.put_nowait(reader)
        await backend._writer.call(lambda connection: connection.execute("PRAGMA query_only = OFF"))
        return
    from pg_testing import connect_raw

    other = await connect_raw(store_url)
    try:
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", lock_key) is True
        await other.execute("SELECT pg_advisory_unlock($1)", lock_key)
    finally:
        await other.close()


@pytest.mark.parametrize("inside", [False, True], ids=["alone", "in_transaction"])
async def test_cancelled_query_leaves_store_usable(
    db: DatabaseManager, store_url: Any, inside: bool
) -> None:
    """query() cancelled at any turn, alone or inside the caller's block:
    the store reads and writes again, the block is stored or not as a whole,
    and the query left nothing on a connection (``assert_query_left_nothing``)."""
    lock_key = random.randrange(1, 2**31)  # not another test run's, on a shared server
    if db.backend_name == "sqlite":
        sql = "SELECT count(*) AS n FROM agents"
    else:
        sql = f"SELECT pg_advisory_lock({lock_key}) IS NULL AS locked, count(*) AS n FROM agents"

    async def read() -> None:
        if inside:
            async with db.transaction():
                await db.create_system_log("INFO", "tx", "before")
                await db.query(sql)
                await db.create_system_log("INFO", "tx", "after")
        else:
            await db.query(sql)

    for turns in range(24):
        await cancel_after(asyncio.create_task(read()), turns)
        await assert_usable(db, f"query cancelled after {turns} turns")
        await assert_query_left_nothing(db, store_url, lock_key)
        assert await db.query("SELECT 1 AS one") == [{"one": 1}]
    stored = await committed_messages(db, "tx")
    assert stored.count("before") == stored.count("after")


# --- autocommit writes -----------------------------------------------------------


@pytest.mark.backend("sqlite")
async def test_cancelled_write_still_queued_is_withdrawn(db: DatabaseManager) -> None:
    """The writer is held inside another write; a second write queued behind
    it is cancelled: it never runs, and the first one commits."""
    gate = WriterGate(lambda statement: "INSERT" in statement)
    await install(db, gate)
    first = asyncio.create_task(db.create_system_log("INFO", "w", "first"))
    try:
        await gate.wait_until_held()
        second = asyncio.create_task(db.create_system_log("INFO", "w", "second"))
        await asyncio.sleep(0)  # queued
        second.cancel()
        await asyncio.wait({second}, timeout=HANG_GUARD)
        assert second.cancelled()
    finally:
        gate.release()
    await asyncio.wait_for(first, HANG_GUARD)
    await install(db, None)
    assert await committed_messages(db, "w") == ["first"]
    await assert_usable(db, "after a withdrawn write")


@pytest.mark.backend("sqlite")
async def test_cancelled_write_already_running_commits_before_cancelling(
    db: DatabaseManager,
) -> None:
    gate = WriterGate(lambda statement: "INSERT" in statement)
    await install(db, gate)
    write = asyncio.create_task(db.create_system_log("INFO", "w", "running"))
    try:
        await gate.wait_until_held()
        write.cancel()
        await asyncio.sleep(0)
        assert not write.done()  # it waits for its statement, which the gate holds
    finally:
        gate.release()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(write, HANG_GUARD)
    await install(db, None)
    assert await committed_messages(db, "w") == ["running"]


@pytest.mark.backend("sqlite")
async def test_cancelled_write_that_fails_while_running_writes_nothing(
    db: DatabaseManager,
) -> None:
    """The caller is cancelled while its refused write runs: the refusal
    is read before CancelledError goes on, and nothing is stored."""
    await db.create_orchestrator_agent("taken", None, "planner")
    gate = WriterGate(lambda statement: "INSERT" in statement)
    await install(db, gate)
    duplicate = asyncio.create_task(db.create_orchestrator_agent("taken", None, "planner"))
    try:
        await gate.wait_until_held()
        duplicate.cancel()
        await asyncio.sleep(0)
    finally:
        gate.release()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(duplicate, HANG_GUARD)
    await install(db, None)
    assert [row["name"] for row in await db.list_orchestrator_agents()] == ["taken"]
    await assert_usable(db, "after a refused, cancelled write")


async def test_cancellation_storm_leaves_a_consistent_store(db: DatabaseManager) -> None:
    """Hundreds of writes and transactions cancelled at random moments: every
    call that returned is stored, every transaction stored or not as its
    Transaction says, and the store works afterwards. The invariants hold
    whatever the interleaving, so the randomness cannot make it flaky."""
    rng = random.Random(20261130)
    returned: list[str] = []
    transactions: list[tuple[str, Transaction]] = []

    async def plain(n: int) -> None:
        await db.create_system_log("INFO", "storm", f"plain-{n}")
        returned.append(f"plain-{n}")

    async def block(n: int) -> None:
        async with db.transaction() as transaction:
            transactions.append((f"tx-{n}", transaction))
            await db.create_system_log("INFO", "storm", f"tx-{n}")
            await db.add_agent_cost(await agent(), 0.5)

    agent_ids: list[str] = []

    async def agent() -> str:
        return agent_ids[0]

    definition = await db.create_orchestrator_agent("storm", None, "orchestrator")
    agent_ids.append(await db.create_agent(definition, "storm-session"))
    for _round in range(10):
        tasks = [
            asyncio.create_task(plain(n) if n % 3 else block(n))
            for n in range(_round * 30, _round * 30 + 30)
        ]
        for _ in range(rng.randint(0, 6)):
            await asyncio.sleep(0)
        for task in tasks:
            if rng.random() < 0.5:
                task.cancel()
        _done, pending = await asyncio.wait(tasks, timeout=HANG_GUARD)
        assert not pending
    stored = set(await committed_messages(db, "storm"))
    assert set(returned) <= stored
    committed = {name for name, transaction in transactions if transaction.committed}
    tx_rows = {message for message in stored if message.startswith("tx-")}
    assert tx_rows == committed
    assert all(t.state in ("committed", "rolled_back") for _, t in transactions)
    row = await db.get_agent(agent_ids[0])
    assert row is not None
    assert row["cost_usd"] == pytest.approx(0.5 * len(committed))
    await assert_usable(db, "after the storm")


# --- connect() cancelled -----------------------------------------------------------


async def store_connections(store_url: str, name: str) -> int:
    """How many server connections the store opened as ``name`` still has."""
    from pg_testing import connect_raw

    watcher = await connect_raw(store_url)
    try:
        return int(
            await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name
            )
        )
    finally:
        await watcher.close()


@pytest.mark.direct_postgres("counts the store's own server connections")
@pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only"])
@pytest.mark.parametrize("delay", [0, 0.001, 0.003, 0.006, 0.012, 0.025, 0.05])
async def test_connect_cancelled_at_any_point_leaves_nothing_open(
    store_url: Any, read_only: bool, delay: float
) -> None:
    """Opening takes tens of milliseconds (threads, a pool, the schema); a
    cancellation anywhere in it closes what was opened. The delays spread the
    cancellation over that time: whichever step it lands in, no thread, lock
    or server connection is left, and the store opens again."""
    async with DatabaseManager(store_url) as seed:
        await seed.create_system_log("INFO", "seed", "kept")
    name = f"adw_cancel_{uuid.uuid4().hex[:12]}"
    if isinstance(store_url, Path):
        url: Any = store_url
    else:
        from pg_testing import with_parameter

        url = with_parameter(store_url, application_name=name)
    db = DatabaseManager(url, read_only=read_only)
    opening = asyncio.create_task(db.connect())
    await asyncio.sleep(delay)
    opening.cancel()
    await asyncio.wait({opening}, timeout=HANG_GUARD)
    assert opening.done()
    if not opening.cancelled():
        await db.close()  # it had opened before the cancellation came: close as usual

    if isinstance(store_url, Path):
        threads = [t.name for t in threading.enumerate() if t.is_alive()]
        assert not [t for t in threads if t.startswith("adw-")], threads
        await asyncio.to_thread(assert_lock_is_free, store_url)
    else:
        assert await store_connections(store_url, name) == 0
    with pytest.raises(NotConnectedError):
        await db.list_agents()
    await asyncio.wait_for(db.connect(), HANG_GUARD)
    try:
        logs = await db.get_system_logs(component="seed")
        assert [row["message"] for row in logs] == ["kept"]
    finally:
        await db.close()


# --- close() cancelled -------------------------------------------------------------


@pytest.mark.backend("sqlite")
async def test_close_cancelled_while_it_checkpoints_still_closes(db_path: Path) -> None:
    db = DatabaseManager(db_path)
    await db.connect()
    await db.create_system_log("INFO", "close", "kept")
    gate = WriterGate(lambda statement: "wal_checkpoint(TRUNCATE)" in statement)
    await install(db, gate)
    closing = asyncio.create_task(db.close())
    try:
        await gate.wait_until_held()
        closing.cancel()
        await asyncio.sleep(0)
        assert not closing.done()  # close() goes on to the end first
    finally:
        gate.release()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(closing, HANG_GUARD)
    with pytest.raises(NotConnectedError):
        await db.create_system_log("INFO", "close", "refused")
    assert not any(t.name.startswith("adw-") for t in threading.enumerate() if t.is_alive())
    assert raw_system_log_messages(db_path) == ["kept"]
    await asyncio.to_thread(assert_lock_is_free, db_path)


@pytest.mark.parametrize("turns", range(1, 5))  # at 0 close() never starts: nothing to test
async def test_close_cancelled_at_any_turn_leaves_a_closed_store(
    store_url: Any, turns: int
) -> None:
    db = DatabaseManager(store_url)
    await db.connect()
    await cancel_after(asyncio.create_task(db.close()), turns)
    with pytest.raises(NotConnectedError):
        await db.list_agents()
    await db.connect()  # and it opens again
    await assert_usable(db, "reopened")
    await db.close()


# --- 4. child tasks inside transaction() -------------------------------------------


async def test_child_tasks_writing_inside_transaction_are_refused_not_hung(
    db: DatabaseManager,
) -> None:
    """The issue's example: gather() of two writes inside the block. On SQLite
    it hung forever; now both backends refuse the children at once, the block
    rolls back, and nothing of it is stored."""
    with pytest.raises(TransactionScopeError, match="task started inside"):
        async with asyncio.timeout(HANG_GUARD), db.transaction():
            await db.create_system_log("INFO", "child", "by the owner")
            await asyncio.gather(
                db.create_system_log("INFO", "child", "child 1"),
                db.create_system_log("INFO", "child", "child 2"),
            )
    assert await committed_messages(db, "child") == []
    await assert_usable(db, "after refused children")


async def test_child_task_may_read_inside_and_write_after_the_block(
    db: DatabaseManager,
) -> None:
    async def reader() -> int:
        return len(await db.get_system_logs())

    async def later_writer(block_done: asyncio.Event) -> None:
        await block_done.wait()
        await db.create_system_log("INFO", "child", "after the block")

    block_done = asyncio.Event()
    async with asyncio.timeout(HANG_GUARD):
        async with db.transaction():
            assert await asyncio.create_task(reader()) >= 0
            writer = asyncio.create_task(later_writer(block_done))
            with pytest.raises(TransactionScopeError):
                await asyncio.create_task(db.transaction().__aenter__())
            with pytest.raises(TransactionScopeError, match="checkpoint"):
                await asyncio.create_task(db.checkpoint())
            with pytest.raises(TransactionScopeError, match="close"):
                await asyncio.create_task(db.close())
        block_done.set()
        await writer
    assert await committed_messages(db, "child") == ["after the block"]


# --- error classes -------------------------------------------------------------------


async def test_not_connected_and_closed_are_their_own_class(store_url: Any) -> None:
    db = DatabaseManager(store_url)
    with pytest.raises(NotConnectedError, match="connect"):
        await db.list_agents()
    await db.connect()
    await db.close()
    with pytest.raises(NotConnectedError, match="closed"):
        await db.create_system_log("INFO", "c", "m")
    assert not NotConnectedError("x").retryable


@pytest.mark.backend("sqlite")
async def test_locked_database_is_a_retryable_busy_error(db_path: Path) -> None:
    async with DatabaseManager(db_path, busy_timeout=0) as db:
        with raw_db(db_path) as blocker:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(BusyError) as caught:
                await db.create_system_log("INFO", "c", "m")
            with pytest.raises(BusyError):
                async with db.transaction():
                    pass
            blocker.execute("ROLLBACK")
        assert caught.value.retryable
        assert isinstance(caught.value, DatabaseError)
        await assert_usable(db, "after busy")


# --- 3. a program that never calls close() ---------------------------------------------

CRASH_SCRIPT = """
import asyncio, sys
from orchestrator_store.manager import DatabaseManager

async def main():
    db = DatabaseManager(sys.argv[1])
    await db.connect()
    for n in range(50):
        await db.create_system_log("INFO", "crash", f"row {n}")
    await db.get_system_logs()  # the reader threads are running
    print("written", flush=True)
    raise RuntimeError("the orchestrator crashed")

asyncio.run(main())
"""


@pytest.mark.backend("sqlite")
async def test_program_that_crashes_without_close_exits_and_keeps_its_rows(
    db_path: Path,
) -> None:
    process = await start_python(CRASH_SCRIPT, str(db_path))
    await expect_line(process, "written")
    _stdout, stderr = await finish(process)  # fails the test if the process hangs
    assert process.returncode == 1
    assert "RuntimeError: the orchestrator crashed" in stderr
    assert raw_system_log_messages(db_path) == [f"row {n}" for n in range(50)]


# --- 5. the WAL bound with a reader holding an old snapshot ---------------------------

READER_SCRIPT = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN")
connection.execute("SELECT count(*) FROM system_logs").fetchall()
print("reading", flush=True)
sys.stdin.readline()
connection.execute("COMMIT")
print("done", flush=True)
"""


@pytest.mark.backend("sqlite")
async def test_writes_go_on_past_the_wal_bound_while_another_process_reads(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the WAL past its bound and another process holding a read
    snapshot, each restart of the WAL used to wait busy_timeout: here HANG_GUARD,
    so 100 writes could never finish under the hang guard. They do, while
    the reader still holds; once it lets go, the WAL is restarted and trimmed."""
    from orchestrator_store import sqlite_backend

    limit = 32 * 1024
    monkeypatch.setattr(sqlite_backend, "JOURNAL_SIZE_LIMIT", limit)
    monkeypatch.setattr(sqlite_backend, "WAL_CHECK_SECONDS", 0.0)
    async with DatabaseManager(db_path, busy_timeout=HANG_GUARD) as db:
        await db.create_system_log("INFO", "wal", "before the reader")
        reader = await start_python(READER_SCRIPT, str(db_path))
        await expect_line(reader, "reading")
        try:

            async def burst() -> None:
                for n in range(100):
                    await db.create_system_log("INFO", "wal", f"row {n}", {"pad": "x" * 4096})

            await asyncio.wait_for(burst(), HANG_GUARD)
            pinned = Path(f"{db_path}-wal").stat().st_size
            assert pinned > 8 * limit  # the reader pins the WAL: it cannot restart
        finally:
            await send_line(reader, "")
        await expect_line(reader, "done")
        await finish(reader)
        for n in range(5):
            await db.create_system_log("INFO", "wal", f"after {n}", {"pad": "x" * 4096})
        assert Path(f"{db_path}-wal").stat().st_size < 8 * limit
        assert len(await db.get_system_logs(component="wal")) == 106
