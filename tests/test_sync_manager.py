"""SyncDatabaseManager: the async facade's methods, synchronous, with its
validation and errors; from several threads, from inside a running event
loop, through Ctrl-C, and beside async managers in other processes."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from orchestrator_store import (
    DatabaseManager,
    IntegrityError,
    NotConnectedError,
    SyncDatabaseManager,
    Transaction,
    ValidationError,
    sync_manager,
)
from orchestrator_store.errors import DatabaseError

PROCESS_HANG_GUARD = 180.0  # seconds; a guard against hanging, never a speed check
THREAD_HANG_GUARD = 120.0


@pytest.fixture
def sync_db(store_url: Any) -> Iterator[SyncDatabaseManager]:
    with SyncDatabaseManager(store_url) as manager:
        yield manager


def store_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name.startswith("orchestrator-")}


def join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_HANG_GUARD)
        assert not thread.is_alive(), f"{thread.name} hung"


# --- the same methods ------------------------------------------------------------------


def public_members(cls: type) -> dict[str, Any]:
    return {
        name: inspect.getattr_static(cls, name) for name in dir(cls) if not name.startswith("_")
    }


def parameter_shape(function: Any) -> list[tuple[str, Any, Any, Any]]:
    return [
        (parameter.name, parameter.kind, parameter.default, parameter.annotation)
        for parameter in inspect.signature(function).parameters.values()
    ]


def test_every_method_of_the_async_manager_has_a_synchronous_twin() -> None:
    """How a missing wrapper is found when DatabaseManager gains a method:
    same name, same parameters (names, kinds, defaults, annotations)."""
    async_members = public_members(DatabaseManager)
    sync_members = public_members(SyncDatabaseManager)
    missing = sorted(set(async_members) - set(sync_members))
    assert missing == [], f"SyncDatabaseManager lacks {missing}"
    for name, member in async_members.items():
        twin = sync_members[name]
        if isinstance(member, property):
            assert isinstance(twin, property), name
            continue
        assert callable(member), name
        assert parameter_shape(twin) == parameter_shape(member), name
        assert not inspect.iscoroutinefunction(twin), name
        assert not inspect.isasyncgenfunction(twin), name
    assert parameter_shape(SyncDatabaseManager.__init__) == parameter_shape(
        DatabaseManager.__init__
    )


def test_the_attributes_of_the_async_manager_are_there(tmp_path: Path) -> None:
    path = tmp_path / "attributes.db"
    manager = DatabaseManager(path, busy_timeout=2)
    twin = SyncDatabaseManager(path, busy_timeout=2)
    public = [name for name in vars(manager) if not name.startswith("_")]
    assert public  # db_path, database_url, location, schema_path
    for name in public:
        assert getattr(twin, name) == getattr(manager, name), name
    assert twin.backend_name == manager.backend_name == "sqlite"
    assert not path.exists()  # no I/O before connect()
    assert repr(twin) == f"<SyncDatabaseManager {str(path)!r} new>"


def usage_example(module: ModuleType) -> str:
    """The indented block after ``Usage::`` in a module docstring."""
    _, _, rest = (module.__doc__ or "").partition("Usage::\n")
    lines = []
    for line in rest.splitlines():
        if line and not line.startswith(" "):
            break
        lines.append(line)
    code = textwrap.dedent("\n".join(lines)).strip()
    assert code, f"no Usage:: block in {module.__name__}"
    return code


def test_the_module_docstrings_usage_example_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "example" / "orchestrator.db"
    code = usage_example(sync_manager)
    assert '"orchestrator.db"' in code
    code = code.replace('"orchestrator.db"', repr(str(path)))
    exec(compile(code, "<sync_manager usage example>", "exec"), {"__name__": "usage_example"})
    out = capsys.readouterr().out
    assert "'status': 'completed'" in out and "feature_Tac_14_Task_8" in out
    with SyncDatabaseManager(path) as db:
        assert [row["message"] for row in db.get_system_logs()] == ["session finished"]


# --- CRUD on both backends ---------------------------------------------------------------


def test_crud_through_every_table(sync_db: SyncDatabaseManager) -> None:
    db = sync_db
    planner = db.create_orchestrator_agent("planner", "Plans", "planner", default_model="m1")
    assert db.get_orchestrator_agent(planner)["name"] == "planner"  # type: ignore[index]
    assert db.update_orchestrator_agent(planner, description="Plans the work")
    assert [row["id"] for row in db.list_orchestrator_agents()] == [planner]

    agent = db.create_agent(planner, "session-1", context={"issue": 13})
    assert db.get_agent(agent)["context"] == {"issue": 13}  # type: ignore[index]
    assert db.update_agent(agent, status="executing")
    assert db.add_agent_cost(agent, 0.25)
    assert db.add_agent_cost(agent, 0.5)
    assert db.get_agent(agent)["cost_usd"] == 0.75  # type: ignore[index]
    assert [row["id"] for row in db.list_agents("session-1", status="executing")] == [agent]

    prompt = db.create_prompt(agent, "adw", "Plan issue 13")
    assert db.update_prompt(prompt, status="completed", tokens_input=10, response_text="ok")
    assert db.get_prompt(prompt)["tokens_input"] == 10  # type: ignore[index]
    assert [row["id"] for row in db.list_prompts(agent, status="completed")] == [prompt]

    first = db.create_agent_log(agent, "INFO", "milestone", "planned", {"steps": 3})
    batch = db.create_agent_logs(
        [
            {"agent_id": agent, "log_level": "DEBUG", "log_type": "tool_call", "message": f"t{i}"}
            for i in range(3)
        ]
    )
    assert batch == sorted(batch) and first < batch[0]
    assert [row["message"] for row in db.get_agent_logs(agent, log_type="tool_call")] == [
        "t0",
        "t1",
        "t2",
    ]
    assert db.list_recent_agent_logs(limit=1)[0]["message"] == "t2"
    system = db.create_system_log("WARNING", "scheduler", "slow", {"ms": 900})
    db.create_system_logs([{"log_level": "INFO", "component": "scheduler", "message": "ok"}])
    assert [row["id"] for row in db.get_system_logs("WARNING")] == [system]
    assert db.list_recent_system_logs(limit=1)[0]["message"] == "ok"

    message = db.create_chat_message(planner, "user", "orchestrator", "hello", agent_id=agent)
    assert db.update_chat_message(message, summary="greeting")
    assert db.get_chat_message(message)["summary"] == "greeting"  # type: ignore[index]
    assert [row["id"] for row in db.list_chat_messages(planner)] == [message]

    workflow = db.start_workflow("a1b2c3d4", "adw_plan", adw_id="a1b2c3d4", total_steps=2)
    assert db.update_workflow_step(workflow, "plan", completed_steps=1)
    assert db.end_workflow(workflow, "failed", error_message="boom")
    ended = db.get_workflow_by_adw_id("a1b2c3d4")
    assert ended is not None and ended["id"] == workflow
    assert (ended["status"], ended["error_count"], ended["current_step"]) == ("failed", 1, "plan")
    assert ended["duration_seconds"] >= 0
    assert db.update_workflow(workflow, description="retried")
    assert db.get_workflow(workflow)["description"] == "retried"  # type: ignore[index]
    assert [row["id"] for row in db.list_workflows(status="failed")] == [workflow]

    counts = db.count_rows()
    assert counts["agent_logs"] == 4 and counts["ai_developer_workflows"] == 1
    assert [row["id"] for row in db.iter_rows("agent_logs", batch_size=2)] == [first, *batch]
    assert db.schema_version() >= 2
    assert db.cost_totals()[0]["prompts"] == 1
    assert db.session_summaries()[0]["session_id"] == "session-1"
    bounds = db.log_bounds()
    assert len(db.list_logs(up_to=bounds["cursor"])) == 6
    assert db.logs_after(bounds["cursor"]) == ([], bounds["cursor"])
    assert [row["id"] for row in db.find_agents_by_prefix(agent[:12])] == [agent]
    assert [row["id"] for row in db.find_agents_by_suffix(agent[-12:])] == [agent]
    assert db.count_old_logs(0) == {"agent_logs": 4, "system_logs": 2}
    assert db.cleanup_old_logs(0) == 6
    assert set(db.storage()) >= {"file_bytes", "page_count"}
    assert set(db.checkpoint()) == {"busy", "wal_pages", "checkpointed_pages"}

    assert db.delete_chat_message(message)
    assert db.delete_workflow(workflow)
    assert db.delete_prompt(prompt)
    assert db.delete_agent(agent)
    assert db.delete_orchestrator_agent(planner)
    assert not db.delete_orchestrator_agent(planner)
    assert db.get_agent(agent) is None


def test_the_original_modules_helpers(
    sync_db: SyncDatabaseManager, caplog: pytest.LogCaptureFixture
) -> None:
    planner = sync_db.create_orchestrator_agent("planner", None, "planner")
    agent = sync_db.create_agent(planner, "s")
    first = sync_db.log_agent_event(agent, "milestone", "one", {"n": 1})
    second = sync_db.log_agent_event(agent, "tool_call", "two", log_level="DEBUG")
    assert first is not None and second is not None
    assert sync_db.log_agent_event(agent, "not-a-type", "three") is None  # never raises
    assert [row["id"] for row in sync_db.get_logs_by_type("milestone")] == [first]
    assert [row["id"] for row in sync_db.get_agent_logs_by_type(agent, "tool_call")] == [second]
    assert [row["id"] for row in sync_db.get_recent_logs()] == [second, first]
    placeholder = "?" if sync_db.backend_name == "sqlite" else "$1"
    rows = sync_db.query(
        f"SELECT message FROM agent_logs WHERE log_type = {placeholder}", ["milestone"]
    )
    assert rows == [{"message": "one"}]
    assert not hasattr(sync_db, "conn")
    with pytest.raises(AttributeError, match=r"db\.query"):
        _ = sync_db.conn

    closed = SyncDatabaseManager(sync_db.db_path or sync_db.database_url)
    assert closed.log_agent_event(agent, "milestone", "to a store never opened") is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert agent in warnings[-1] and "not connected" in warnings[-1]


def test_iter_rows_stopped_early_leaves_the_store_usable(sync_db: SyncDatabaseManager) -> None:
    sync_db.create_system_logs(
        [{"log_level": "INFO", "component": "c", "message": str(i)} for i in range(10)]
    )
    rows = sync_db.iter_rows("system_logs", batch_size=3)
    assert [next(rows)["message"] for _ in range(4)] == ["0", "1", "2", "3"]
    del rows
    assert sum(1 for _ in sync_db.iter_rows("system_logs")) == 10


def test_iter_rows_hands_rows_over_a_batch_at_a_time(
    sync_db: SyncDatabaseManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One hand-off to the loop per batch, not per row: a hand-off costs far more."""
    sync_db.create_system_logs(
        [{"log_level": "INFO", "component": "c", "message": str(i)} for i in range(20)]
    )
    runner = sync_db._runner
    assert runner is not None
    hand_offs: list[object] = []
    call = runner.call

    def counted(work: Any, timeout: float | None = None) -> Any:
        hand_offs.append(work)
        return call(work, timeout)

    monkeypatch.setattr(runner, "call", counted)
    rows = [row["message"] for row in sync_db.iter_rows("system_logs", batch_size=5)]
    assert rows == [str(i) for i in range(20)]
    assert len(hand_offs) <= 2 + 20 // 5  # the first asks for one row, the last may be empty
    with sync_db.transaction():  # inside a block too, where the block's task reads them
        sync_db.create_system_log("INFO", "c", "20")
        rows = [row["message"] for row in sync_db.iter_rows("system_logs", batch_size=5)]
    assert rows == [str(i) for i in range(21)]


def test_a_transaction_commits_together_or_not_at_all(sync_db: SyncDatabaseManager) -> None:
    db = sync_db
    planner = db.create_orchestrator_agent("planner", None, "planner")
    agent = db.create_agent(planner, "s")
    with db.transaction() as committed:
        assert isinstance(committed, Transaction) and committed.state == "open"
        db.create_agent_log(agent, "INFO", "milestone", "kept")
        assert db.update_agent(agent, status="completed")
        with db.transaction():  # a savepoint that commits
            db.create_system_log("INFO", "nested", "kept too")
        with pytest.raises(KeyError), db.transaction():  # a savepoint that rolls back
            db.create_system_log("INFO", "nested", "undone")
            raise KeyError
        assert [row["message"] for row in db.get_system_logs()] == ["kept too"]  # seen inside
    assert committed.committed
    with pytest.raises(RuntimeError, match="abandon"), db.transaction() as rolled_back:
        db.create_agent_log(agent, "INFO", "milestone", "undone")
        db.create_system_log("INFO", "outer", "undone")
        raise RuntimeError("abandon")
    assert rolled_back.state == "rolled_back"
    assert [row["message"] for row in db.get_agent_logs(agent)] == ["kept"]
    assert [row["message"] for row in db.get_system_logs()] == ["kept too"]
    assert db.get_agent(agent)["status"] == "completed"  # type: ignore[index]


def test_a_failed_write_inside_a_block_rolls_it_back(sync_db: SyncDatabaseManager) -> None:
    planner = sync_db.create_orchestrator_agent("planner", None, "planner")
    with pytest.raises(IntegrityError), sync_db.transaction():
        sync_db.create_system_log("INFO", "c", "undone")
        sync_db.create_orchestrator_agent("planner", None, "planner")  # name taken
    assert sync_db.get_system_logs() == []
    assert [row["id"] for row in sync_db.list_orchestrator_agents()] == [planner]


# --- the same errors -------------------------------------------------------------------------


def test_the_same_errors_as_the_async_facade(sync_db: SyncDatabaseManager) -> None:
    with pytest.raises(ValidationError, match="agent_type"):
        sync_db.create_orchestrator_agent("x", None, "not-a-type")
    with pytest.raises(ValidationError, match="UUID"):
        sync_db.get_agent("not-an-id")
    with pytest.raises(ValidationError, match="no fields to update"):
        sync_db.update_agent("0190a6c8-6c2e-7b4a-9e3f-0a1b2c3d4e5f")
    with pytest.raises(ValidationError, match="table"):
        list(sync_db.iter_rows("no_such_table"))
    sync_db.create_orchestrator_agent("dup", None, "planner")
    with pytest.raises(IntegrityError) as taken:
        sync_db.create_orchestrator_agent("dup", None, "planner")
    assert taken.value.constraint == "unique"
    with pytest.raises(IntegrityError) as missing:
        sync_db.create_agent("0190a6c8-6c2e-7b4a-9e3f-0a1b2c3d4e5f", "s")
    assert missing.value.field == "orchestrator_agent_id"
    assert sync_db.count_rows()["orchestrator_agents"] == 1  # nothing else was written


def test_calls_before_connect_and_after_close_raise_not_connected(tmp_path: Path) -> None:
    db = SyncDatabaseManager(tmp_path / "store.db")
    with pytest.raises(NotConnectedError, match=r"db\.connect\(\)"):
        db.count_rows()
    with pytest.raises(NotConnectedError):
        db.transaction()
    with pytest.raises(NotConnectedError):
        next(db.iter_rows("agents"))
    db.connect()
    db.create_system_log("INFO", "c", "one")
    db.close()
    with pytest.raises(NotConnectedError, match="closed"):
        db.create_system_log("INFO", "c", "two")
    assert repr(db).endswith("closed>")


def test_close_is_idempotent_and_a_closed_manager_reconnects(tmp_path: Path) -> None:
    before = store_threads()
    db = SyncDatabaseManager(tmp_path / "store.db")
    db.close()  # never opened: nothing to do
    db.connect()
    db.connect()  # already open: nothing to do
    assert len(store_threads() - before) == 1  # one loop thread
    db.create_system_log("INFO", "c", "first life")
    db.close()
    db.close()
    assert store_threads() == before  # the loop thread ended
    with db:
        # a fresh loop: contended calls from several threads work there too
        threads = [
            threading.Thread(target=db.create_system_log, args=("INFO", "c", f"again-{n}"))
            for n in range(8)
        ]
        join_all(threads)
        assert db.count_rows()["system_logs"] == 9
    assert store_threads() == before


def test_close_inside_a_transaction_block_is_refused(sync_db: SyncDatabaseManager) -> None:
    with sync_db.transaction():
        sync_db.create_system_log("INFO", "c", "kept")
        with pytest.raises(DatabaseError, match="inside transaction"):
            sync_db.close()
    assert len(sync_db.get_system_logs()) == 1


def test_a_connect_that_fails_leaves_the_manager_unopened(tmp_path: Path) -> None:
    folder = tmp_path / "a_folder.db"
    folder.mkdir()
    before = store_threads()
    db = SyncDatabaseManager(folder)
    with pytest.raises(DatabaseError, match="directory"):
        db.connect()
    assert store_threads() == before
    with pytest.raises(NotConnectedError):
        db.count_rows()


# --- threads and event loops -----------------------------------------------------------


def test_many_threads_write_at_once_with_exact_totals(sync_db: SyncDatabaseManager) -> None:
    planner = sync_db.create_orchestrator_agent("planner", None, "planner")
    agent = sync_db.create_agent(planner, "s")
    writes, workers = 25, 8

    def work(worker: int) -> None:
        for step in range(writes):
            message = f"{worker}-{step}"
            if step % 5 == 0:
                with sync_db.transaction():
                    sync_db.create_agent_log(agent, "INFO", "cost_update", message)
                    assert sync_db.add_agent_cost(agent, 0.25)
            else:
                sync_db.create_agent_log(agent, "INFO", "cost_update", message)
                assert sync_db.add_agent_cost(agent, 0.25)

    join_all([threading.Thread(target=work, args=(n,)) for n in range(workers)])
    messages = [row["message"] for row in sync_db.get_agent_logs(agent)]
    assert sorted(messages) == sorted(f"{w}-{s}" for w in range(workers) for s in range(writes))
    assert sync_db.get_agent(agent)["cost_usd"] == workers * writes * 0.25  # type: ignore[index]


def test_one_threads_rollback_leaves_other_threads_writes(sync_db: SyncDatabaseManager) -> None:
    inside = threading.Event()
    release = threading.Event()

    def doomed_block() -> None:
        with pytest.raises(RuntimeError), sync_db.transaction():
            sync_db.create_system_log("INFO", "doomed", "undone")
            inside.set()
            assert release.wait(THREAD_HANG_GUARD)
            raise RuntimeError("roll back")

    def outside_writer() -> None:
        assert inside.wait(THREAD_HANG_GUARD)
        # Reads run beside the open block and do not see its write.
        assert sync_db.get_system_logs(component="doomed") == []
        release.set()
        sync_db.create_system_log("INFO", "outside", "kept")  # waits for the block on SQLite

    join_all([threading.Thread(target=doomed_block), threading.Thread(target=outside_writer)])
    assert [row["message"] for row in sync_db.get_system_logs()] == ["kept"]


async def test_works_from_inside_a_running_event_loop(store_url: Any) -> None:
    asyncio.get_running_loop()  # this test runs inside one
    with SyncDatabaseManager(store_url) as db:
        planner = db.create_orchestrator_agent("planner", None, "planner")
        with db.transaction():
            db.create_agent(planner, "inside-a-loop")
        assert [row["session_id"] for row in db.list_agents()] == ["inside-a-loop"]
    # and what it wrote, the async facade reads
    async with DatabaseManager(store_url) as async_db:
        assert (await async_db.count_rows())["agents"] == 1


def test_works_from_asyncio_run_and_from_threads_running_their_own_loops(
    sync_db: SyncDatabaseManager,
) -> None:
    async def main(name: str) -> int:
        return sync_db.create_system_log("INFO", name, "from a coroutine")

    first = asyncio.run(main("main-thread"))
    threads = [threading.Thread(target=asyncio.run, args=(main(f"t{n}"),)) for n in range(4)]
    join_all(threads)
    assert first > 0
    assert sync_db.count_rows()["system_logs"] == 5


def test_a_call_still_waiting_when_another_thread_closes_gets_not_connected(
    db_path: Path,
) -> None:
    db = SyncDatabaseManager(db_path)
    db.connect()
    started = threading.Event()
    outcome: list[BaseException] = []

    async def never_ends() -> None:
        started.set()
        await asyncio.Event().wait()

    def waiter() -> None:
        try:
            db._run(never_ends())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert started.wait(THREAD_HANG_GUARD)
    db.close()
    thread.join(THREAD_HANG_GUARD)
    assert len(outcome) == 1 and isinstance(outcome[0], NotConnectedError)
    assert "closed while this call waited" in str(outcome[0])


def test_a_call_from_the_managers_own_loop_thread_is_refused(
    sync_db: SyncDatabaseManager,
) -> None:
    async def calls_back() -> int:
        return sync_db.create_system_log("INFO", "c", "from the loop thread")

    with pytest.raises(RuntimeError, match="own event loop thread"):
        sync_db._run(calls_back())
    assert sync_db.get_system_logs() == []


def test_a_call_that_outlives_its_timeout_goes_on(sync_db: SyncDatabaseManager) -> None:
    release = threading.Event()

    async def slow() -> str:
        await asyncio.to_thread(release.wait, THREAD_HANG_GUARD)
        return "done"

    runner = sync_db._runner
    assert runner is not None
    with pytest.raises(TimeoutError, match="did not end"):
        runner.call(slow(), timeout=0.01)
    release.set()
    assert runner.call(slow()) == "done"


# --- Ctrl-C ---------------------------------------------------------------------------------


def interrupt_main_thread_once(started: threading.Event) -> threading.Thread:
    """A real SIGINT to this (main) thread once ``started`` is set."""

    def interrupt() -> None:
        assert started.wait(THREAD_HANG_GUARD)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    thread = threading.Thread(target=interrupt)
    thread.start()
    return thread


needs_main_thread_signals = pytest.mark.skipif(
    not hasattr(signal, "pthread_kill")
    or threading.current_thread() is not threading.main_thread(),
    reason="sends SIGINT to the main thread",
)


@needs_main_thread_signals
@pytest.mark.parametrize("inside_a_block", [False, True])
def test_ctrl_c_in_this_process_cancels_waits_and_leaves_the_store_usable(
    sync_db: SyncDatabaseManager, inside_a_block: bool
) -> None:
    started = threading.Event()
    cleaned_up: list[bool] = []

    async def slow_call() -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.2)  # cleanup that takes a few turns of the loop
            cleaned_up.append(True)

    interrupter = interrupt_main_thread_once(started)
    with pytest.raises(KeyboardInterrupt):
        if inside_a_block:
            with sync_db.transaction() as tx:
                sync_db.create_system_log("INFO", "c", "in the interrupted block")
                try:
                    sync_db._run(slow_call())
                finally:
                    # the block is dead: nothing more joins it
                    with pytest.raises(DatabaseError, match="interrupted"):
                        sync_db.create_system_log("INFO", "c", "too late")
        else:
            sync_db._run(slow_call())
    interrupter.join(THREAD_HANG_GUARD)
    assert cleaned_up == [True]  # finished before KeyboardInterrupt was raised
    if inside_a_block:
        assert tx.state == "rolled_back"
    sync_db.create_system_log("INFO", "c", "after")
    assert [row["message"] for row in sync_db.get_system_logs()] == ["after"]


@needs_main_thread_signals
@pytest.mark.parametrize("where", ["nested-enter", "commit"])
def test_ctrl_c_entering_a_nested_block_or_committing_rolls_back_the_whole_block(
    sync_db: SyncDatabaseManager, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Ctrl-C while a savepoint is being taken, or while the outermost block
    commits: the block's task is cancelled and ends, nothing is stored, and
    the next write goes through."""
    real = sync_db._db.transaction
    started = threading.Event()
    cleaned_up: list[bool] = []
    depth = [0]

    async def slow_moment() -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.2)  # cleanup that takes a few turns of the loop
            cleaned_up.append(True)

    @asynccontextmanager
    async def slow_transaction() -> AsyncIterator[Transaction]:
        depth[0] += 1
        try:
            if where == "nested-enter" and depth[0] == 2:
                await slow_moment()  # before the savepoint
            async with real() as transaction:
                yield transaction
                if where == "commit" and depth[0] == 1:
                    await slow_moment()  # before the commit
        finally:
            depth[0] -= 1

    monkeypatch.setattr(sync_db._db, "transaction", slow_transaction)
    interrupter = interrupt_main_thread_once(started)
    with pytest.raises(KeyboardInterrupt), sync_db.transaction() as tx:
        sync_db.create_system_log("INFO", "c", "undone")
        with sync_db.transaction():
            sync_db.create_system_log("INFO", "c", "undone too")
    interrupter.join(THREAD_HANG_GUARD)
    monkeypatch.undo()
    assert cleaned_up == [True]  # finished before KeyboardInterrupt was raised
    assert tx.state == "rolled_back"
    sync_db.create_system_log("INFO", "c", "after")
    assert [row["message"] for row in sync_db.get_system_logs()] == ["after"]


# The child waits in a call whose coroutine says "started" from the loop
# thread; the test sends SIGINT; the child reports whether the coroutine had
# finished its cleanup before KeyboardInterrupt reached it, then uses the store.
INTERRUPTED_CHILD = """
import asyncio, json, sys
from orchestrator_store import SyncDatabaseManager

cleaned_up = []

async def slow_call() -> None:
    try:
        print("started", flush=True)
        await asyncio.sleep(3600)
    finally:
        await asyncio.sleep(0.2)  # cleanup that takes a few turns of the loop
        cleaned_up.append(True)

with SyncDatabaseManager(sys.argv[1]) as db:
    interrupted = False
    in_block = sys.argv[2] == "in-block"
    try:
        if in_block:
            with db.transaction():
                db.create_system_log("INFO", "child", "in the interrupted block")
                db._run(slow_call())
        else:
            db._run(slow_call())
    except KeyboardInterrupt:
        interrupted = True
    db.create_system_log("INFO", "child", "after")
    messages = [row["message"] for row in db.get_system_logs()]
print(json.dumps({"interrupted": interrupted, "cleaned_up": cleaned_up, "messages": messages}))
"""

# The child waits for the write lock another connection holds; SIGINT cancels
# the wait. A transaction's BEGIN waits on the event loop (cancelled at once); a
# plain write already handed to the writer thread ends first (busy_timeout).
BLOCKED_CHILD = """
import json, sqlite3, sys
from orchestrator_store import SyncDatabaseManager

path, how = sys.argv[1], sys.argv[2]
with SyncDatabaseManager(path, busy_timeout=1 if how == "write" else 60) as db:
    db.create_system_log("INFO", "child", "before")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    interrupted = False
    try:
        print("started", flush=True)
        if how == "write":
            db.create_system_log("INFO", "child", "cancelled")
        else:
            with db.transaction():
                db.create_system_log("INFO", "child", "cancelled")
    except KeyboardInterrupt:
        interrupted = True
    holder.execute("ROLLBACK")
    holder.close()
    db.create_system_log("INFO", "child", "after")
    messages = [row["message"] for row in db.get_system_logs()]
print(json.dumps({"interrupted": interrupted, "messages": messages}))
"""


def interrupt_child(script: str, *args: str) -> dict[str, Any]:
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "started"
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=PROCESS_HANG_GUARD)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, stderr
    assert stderr == ""
    result: dict[str, Any] = json.loads(stdout)
    return result


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or sys.platform == "win32", reason="POSIX")
@pytest.mark.parametrize("where", ["plain", "in-block"])
def test_ctrl_c_cancels_the_call_waits_for_it_and_keeps_the_store_usable(
    db_path: Path, where: str
) -> None:
    result = interrupt_child(INTERRUPTED_CHILD, str(db_path), where)
    assert result["interrupted"]
    assert result["cleaned_up"] == [True]  # finished before KeyboardInterrupt was raised
    assert result["messages"] == ["after"]  # the interrupted block was rolled back


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("how", ["write", "transaction"])
def test_ctrl_c_while_waiting_for_the_lock_writes_nothing(db_path: Path, how: str) -> None:
    result = interrupt_child(BLOCKED_CHILD, str(db_path), how)
    assert result == {"interrupted": True, "messages": ["before", "after"]}


# Ctrl-C at many different moments of entering a block (before the hand-off
# to the loop, during it, while BEGIN waits for the lock): each time the
# block is cancelled and ends, and the next write goes through.
CTRL_C_ANYWHERE_CHILD = """
import signal, sqlite3, sys, threading
from orchestrator_store import SyncDatabaseManager

path, rounds = sys.argv[1], int(sys.argv[2])
main = threading.main_thread().ident
with SyncDatabaseManager(path, busy_timeout=60) as db:
    for round in range(rounds):
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        go = threading.Event()

        def interrupt(spins: int = (round % 40) * 50) -> None:
            go.wait()
            for _ in range(spins):  # a different moment each round
                pass
            signal.pthread_kill(main, signal.SIGINT)

        interrupter = threading.Thread(target=interrupt)
        interrupter.start()
        try:
            go.set()
            with db.transaction():
                db.create_system_log("INFO", "child", "cancelled")
            print("not interrupted", flush=True)
        except KeyboardInterrupt:
            pass
        interrupter.join()
        holder.execute("ROLLBACK")
        holder.close()
        db.create_system_log("INFO", "child", f"after {round}")
    print(sorted(row["message"] for row in db.get_system_logs()) == sorted(
        f"after {round}" for round in range(rounds)
    ))
"""


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="POSIX signals")
def test_ctrl_c_at_any_moment_of_entering_a_block_leaves_nothing_open(db_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_ANYWHERE_CHILD, str(db_path), "80"],
        capture_output=True,
        text=True,
        timeout=PROCESS_HANG_GUARD,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.split("\n")[-2] == "True"


# Ctrl-C just after a block opened, before the `with` statement has taken it (so
# that its __exit__ would run): CPython runs a signal handler when a call
# returns, so KeyboardInterrupt is raised here, by a trace function, before each
# instruction that follows a call in the block's __enter__ and in
# HeldTransaction.enter, one place per round (more places than CPython checks:
# not after a call of a Python function). Each time the block must end: the
# store closes (it refuses inside a block) and each except handler's write is
# committed, not lost in a block left open; and nothing warns of a coroutine
# never awaited (one made and then lost before it was handed over).
CTRL_C_AFTER_EACH_CALL_CHILD = """
import dis, json, sqlite3, sys
from orchestrator_store import SyncDatabaseManager
from orchestrator_store.loop_thread import HeldTransaction

def after_calls(code):
    instructions = list(dis.get_instructions(code))
    return {b.offset for a, b in zip(instructions, instructions[1:]) if a.opname.startswith("CALL")}

def interrupt_at(target):
    seen = [0]

    def on_call(frame, event, arg):
        points = watched.get(frame.f_code)
        if points is None:
            return None
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False

        def on_opcode(frame, event, arg):
            if event == "opcode" and frame.f_lasti in points:
                seen[0] += 1
                if seen[0] == target:
                    raise KeyboardInterrupt
            return on_opcode

        return on_opcode

    sys.settrace(on_call)
    return seen

path, nested = sys.argv[1], sys.argv[2] == "nested"
with SyncDatabaseManager(path) as db:
    block_enter = type(db.transaction()).__enter__.__code__
    watched = {code: after_calls(code) for code in (block_enter, HeldTransaction.enter.__code__)}

    def enter_blocks():
        with db.transaction():
            if nested:
                with db.transaction():
                    pass

    places = interrupt_at(0)  # counts them
    enter_blocks()
    sys.settrace(None)
    interrupted = []
    for target in range(1, places[0] + 1):
        interrupt_at(target)
        try:
            enter_blocks()
        except KeyboardInterrupt:
            interrupted.append(target)
            db.create_system_log("INFO", "c", f"handler {target}")
        finally:
            sys.settrace(None)
raw = sqlite3.connect(path)
messages = raw.execute("SELECT message FROM system_logs").fetchall()
handled = sorted(int(message.split()[1]) for message, in messages)
print(json.dumps({"places": places[0], "interrupted": interrupted, "handled": handled}))
"""


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="CPython's signal checks")
@pytest.mark.skipif(
    sys.version_info >= (3, 12),
    reason="injects by opcode tracing switched on at a frame's call event, which Python 3.12's "
    "settrace (built on sys.monitoring) no longer delivers; the main pass runs it on 3.11",
)
@pytest.mark.parametrize("blocks", ["outermost", "nested"])
def test_ctrl_c_just_after_a_block_opened_still_ends_it(db_path: Path, blocks: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_AFTER_EACH_CALL_CHILD, str(db_path), blocks],
        capture_output=True,
        text=True,
        timeout=PROCESS_HANG_GUARD,
    )
    assert (done.returncode, done.stderr) == (0, "")
    result = json.loads(done.stdout)
    assert result["places"] >= 4
    assert result["interrupted"] == list(range(1, result["places"] + 1))
    assert result["handled"] == result["interrupted"]


FORKING_SCRIPT = """
import os, sys, warnings
from orchestrator_store import NotConnectedError, SyncDatabaseManager

warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() with threads running
db = SyncDatabaseManager(sys.argv[1])
db.connect()
db.create_system_log("INFO", "parent", "before the fork")
pid = os.fork()
if pid == 0:
    try:
        db.create_system_log("INFO", "child", "through the parent's loop")
        os._exit(1)
    except NotConnectedError as exc:
        refused = "forked" in str(exc)
    db.connect()  # this process's own loop and connections
    db.create_system_log("INFO", "child", "after connect")
    db.close()
    os._exit(0 if refused else 2)
_, status = os.waitpid(pid, 0)
db.create_system_log("INFO", "parent", "after the child")
print(os.waitstatus_to_exitcode(status), sorted(r["message"] for r in db.get_system_logs()))
db.close()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_is_refused_at_once_and_then_connects_its_own(db_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORKING_SCRIPT, str(db_path)],
        capture_output=True,
        text=True,
        timeout=PROCESS_HANG_GUARD,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.strip() == ("0 ['after connect', 'after the child', 'before the fork']")


# Forked inside a transaction() block: the child's calls would go to the block's
# task, which is the parent's. SIGALRM ends a child that hangs instead.
FORKING_IN_A_BLOCK_SCRIPT = """
import os, signal, sys, warnings
from orchestrator_store import NotConnectedError, SyncDatabaseManager

warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() with threads running
db = SyncDatabaseManager(sys.argv[1])
db.connect()
with db.transaction():
    db.create_system_log("INFO", "parent", "in the block")
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)
        refused = []
        for _ in range(2):  # and again: still refused, still for that reason
            try:
                db.create_system_log("INFO", "child", "through the parent's block")
                os._exit(1)
            except NotConnectedError as exc:
                refused.append("forked" in str(exc))
        try:
            with db.transaction():  # a nested block: refused too
                os._exit(1)
        except NotConnectedError as exc:
            refused.append("forked" in str(exc))
        db.connect()  # this process's own loop and connections
        # (a read: the parent holds the write lock until the child ends)
        committed = db.count_rows()["system_logs"]
        db.close()
        os._exit(0 if refused == [True, True, True] and committed == 0 else 2)
    _, status = os.waitpid(pid, 0)
    db.create_system_log("INFO", "parent", "still in the block")
print(os.waitstatus_to_exitcode(status), sorted(r["message"] for r in db.get_system_logs()))
db.close()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_child_forked_inside_a_block_is_refused_at_once(db_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORKING_IN_A_BLOCK_SCRIPT, str(db_path)],
        capture_output=True,
        text=True,
        timeout=PROCESS_HANG_GUARD,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.strip() == "0 ['in the block', 'still in the block']"


def test_a_forgotten_close_neither_hangs_nor_loses_writes(db_path: Path) -> None:
    dropped = db_path.with_name("dropped.db")
    script = (
        "import gc, sys\n"
        "from orchestrator_store import SyncDatabaseManager\n"
        "def dropped() -> None:  # the program keeps no reference to this one\n"
        "    db = SyncDatabaseManager(sys.argv[2])\n"
        "    db.connect()\n"
        "    db.create_system_log('INFO', 'child', 'dropped unclosed')\n"
        "dropped()\n"
        "gc.collect()\n"
        "db = SyncDatabaseManager(sys.argv[1])\n"
        "db.connect()\n"
        "db.create_system_log('INFO', 'child', 'never closed')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(db_path), str(dropped)],
        capture_output=True,
        text=True,
        timeout=PROCESS_HANG_GUARD,
    )
    assert (done.returncode, done.stderr) == (0, "")
    # Before any connection here: closing the last one would fold a WAL left behind in.
    assert not Path(f"{dropped}-wal").exists()  # the dropped one was closed at exit too
    assert not Path(f"{db_path}-wal").exists()
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("SELECT message FROM system_logs").fetchall() == [("never closed",)]
    finally:
        raw.close()
    assert not Path(f"{db_path}-wal").exists()  # closed at exit: the WAL was folded in
    raw = sqlite3.connect(dropped)
    try:
        messages = raw.execute("SELECT message FROM system_logs").fetchall()
        assert messages == [("dropped unclosed",)]
    finally:
        raw.close()


def test_exit_does_not_wait_forever_for_a_block_that_never_ends(db_path: Path) -> None:
    """A daemon thread left inside a transaction() block when the program
    ends: closing at exit gives up (with a warning) instead of hanging."""
    script = (
        "import sys, threading\n"
        "from orchestrator_store import SyncDatabaseManager, sync_manager\n"
        "sync_manager.EXIT_CLOSE_TIMEOUT = 0.5\n"
        "db = SyncDatabaseManager(sys.argv[1])\n"
        "db.connect()\n"
        "db.create_system_log('INFO', 'child', 'committed')\n"
        "inside = threading.Event()\n"
        "def stuck() -> None:\n"
        "    with db.transaction():\n"
        "        db.create_system_log('INFO', 'child', 'never committed')\n"
        "        inside.set()\n"
        "        threading.Event().wait()\n"
        "threading.Thread(target=stuck, daemon=True).start()\n"
        "inside.wait()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(db_path)],
        capture_output=True,
        text=True,
        timeout=PROCESS_HANG_GUARD,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("\n") == 1 and f"closing {db_path} at exit failed" in done.stderr
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("SELECT message FROM system_logs").fetchall() == [("committed",)]
    finally:
        raw.close()


# --- processes -------------------------------------------------------------------------------

ASYNC_WRITER = """
import asyncio, sys
from orchestrator_store import DatabaseManager

async def main() -> None:
    path, agent_id, worker, writes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    async with DatabaseManager(path, busy_timeout=60) as db:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)

        async def task(number: int) -> None:
            for step in range(writes):
                message = f"async-{worker}-{number}-{step}"
                if step % 5 == 0:
                    async with db.transaction():
                        await db.create_agent_log(agent_id, "INFO", "cost_update", message)
                        assert await db.add_agent_cost(agent_id, 0.25)
                else:
                    await db.create_agent_log(agent_id, "INFO", "cost_update", message)
                    assert await db.add_agent_cost(agent_id, 0.25)

        await asyncio.gather(*(task(n) for n in range(3)))
    print("done", flush=True)

asyncio.run(main())
"""

SYNC_WRITER = """
import sys, threading
from orchestrator_store import SyncDatabaseManager

path, agent_id, worker, writes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with SyncDatabaseManager(path, busy_timeout=60) as db:
    print("ready", flush=True)
    sys.stdin.readline()

    def thread(number: int) -> None:
        for step in range(writes):
            message = f"sync-{worker}-{number}-{step}"
            if step % 5 == 0:
                with db.transaction():
                    db.create_agent_log(agent_id, "INFO", "cost_update", message)
                    assert db.add_agent_cost(agent_id, 0.25)
            else:
                db.create_agent_log(agent_id, "INFO", "cost_update", message)
                assert db.add_agent_cost(agent_id, 0.25)

    threads = [threading.Thread(target=thread, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
print("done", flush=True)
"""


@pytest.mark.backend("sqlite")  # processes sharing one file
def test_sync_and_async_writers_in_several_processes_lose_nothing(db_path: Path) -> None:
    with SyncDatabaseManager(db_path) as db:
        planner = db.create_orchestrator_agent("planner", None, "planner")
        agent = db.create_agent(planner, "shared")
    writes, per_process = 20, 3  # per thread or task; three of them per process
    kinds = ["async", "sync", "async", "sync", "async", "sync"]
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                ASYNC_WRITER if kind == "async" else SYNC_WRITER,
                str(db_path),
                agent,
                str(number),
                str(writes),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for number, kind in enumerate(kinds)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:  # start together
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=PROCESS_HANG_GUARD) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, (stdout, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stderr
        assert stdout.split() == ["done"]
        assert stderr == ""  # no 'database is locked', not even a logged one

    expected = {
        f"{kind}-{number}-{unit}-{step}"
        for number, kind in enumerate(kinds)
        for unit in range(per_process)
        for step in range(writes)
    }
    with SyncDatabaseManager(db_path) as db:
        messages = [row["message"] for row in db.get_agent_logs(agent)]
        assert len(messages) == len(expected)
        assert set(messages) == expected  # each write exactly once
        assert db.get_agent(agent)["cost_usd"] == len(expected) * 0.25  # type: ignore[index]
