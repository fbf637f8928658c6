"""workflow_tracking: start, phases and end of a workflow recorded by its
adw_id, on both backends; and no failure of the database ever raises into
the workflow."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator_store import SyncDatabaseManager, workflow_tracking
from orchestrator_store.workflow_tracking import Tracked, WorkflowTracker

PROCESS_HANG_GUARD = 180.0  # seconds; a guard against hanging, never a speed check
LOGGER = "orchestrator_store.workflow_tracking"


@pytest.fixture
def tracker(store_url: Any) -> Iterator[WorkflowTracker]:
    tracker = WorkflowTracker(store_url)
    yield tracker
    tracker.close()


def workflow(store_url: Any, adw_id: str) -> dict[str, Any]:
    with SyncDatabaseManager(store_url) as db:
        row = db.get_workflow_by_adw_id(adw_id)
    assert row is not None
    return row


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == LOGGER and record.levelno == logging.WARNING
    ]


# --- what is recorded --------------------------------------------------------------------


def test_start_phases_and_end_are_recorded(tracker: WorkflowTracker, store_url: Any) -> None:
    started = tracker.track_workflow_start(
        "a1b2c3d4", "adw_plan_build", issue_number=42, total_steps=3, description="Issue 42"
    )
    assert started and started.ok and started.error is None
    row = workflow(store_url, "a1b2c3d4")
    assert row["id"] == started.workflow_id
    assert (row["adw_name"], row["workflow_type"], row["description"]) == (
        "a1b2c3d4",
        "adw_plan_build",
        "Issue 42",
    )
    assert (row["status"], row["total_steps"], row["completed_steps"]) == ("in_progress", 3, 0)
    assert row["metadata"] == {"issue_number": 42}
    assert row["started_at"] is not None and row["completed_at"] is None

    assert tracker.track_phase_update("a1b2c3d4", "plan", "completed", 1)
    assert tracker.track_phase_update("a1b2c3d4", "build", "in_progress", 1)
    row = workflow(store_url, "a1b2c3d4")
    assert (row["status"], row["current_step"], row["completed_steps"]) == (
        "in_progress",
        "build",
        1,
    )
    assert row["metadata"] == {
        "issue_number": 42,
        "phases": {"plan": "completed", "build": "in_progress"},
    }
    failed_phase = tracker.track_phase_update("a1b2c3d4", "build", "failed", 1)
    assert failed_phase.workflow_id == started.workflow_id
    assert workflow(store_url, "a1b2c3d4")["status"] == "in_progress"  # the workflow goes on

    ended = tracker.track_workflow_end("a1b2c3d4", "failed", "tests failed")
    assert ended == Tracked(ok=True, workflow_id=started.workflow_id)
    row = workflow(store_url, "a1b2c3d4")
    assert (row["status"], row["error_message"], row["error_count"]) == (
        "failed",
        "tests failed",
        1,
    )
    assert row["completed_at"] is not None
    assert row["completed_at"] >= row["started_at"]
    assert row["duration_seconds"] >= 0
    assert row["metadata"]["phases"] == {"plan": "completed", "build": "failed"}


def test_a_restart_with_the_same_adw_id_resets_its_row(
    tracker: WorkflowTracker, store_url: Any
) -> None:
    first = tracker.track_workflow_start("deadbeef", "adw_build", issue_number=7, total_steps=2)
    assert tracker.track_phase_update("deadbeef", "build", "failed", 1)
    assert tracker.track_workflow_end("deadbeef", "failed", "boom")
    before = workflow(store_url, "deadbeef")

    again = tracker.track_workflow_start(
        "deadbeef", "adw_build", issue_number=8, total_steps=4, adw_name="rerun"
    )
    assert again and again.workflow_id == first.workflow_id
    row = workflow(store_url, "deadbeef")
    assert row["created_at"] == before["created_at"]
    assert row["started_at"] >= before["started_at"]
    assert (row["status"], row["adw_name"], row["total_steps"]) == ("in_progress", "rerun", 4)
    assert (row["current_step"], row["completed_steps"], row["completed_at"]) == (None, 0, None)
    assert (row["error_message"], row["error_count"], row["duration_seconds"]) == (None, 0, None)
    assert row["metadata"] == {"issue_number": 8}
    with SyncDatabaseManager(store_url) as db:
        assert db.count_rows()["ai_developer_workflows"] == 1

    assert tracker.track_workflow_end("deadbeef", "completed")
    assert workflow(store_url, "deadbeef")["status"] == "completed"


def test_workflows_without_an_issue_number_keep_their_phases(
    tracker: WorkflowTracker, store_url: Any
) -> None:
    assert tracker.track_workflow_start("0a0b0c0d", "adw_document")
    assert tracker.track_phase_update("0a0b0c0d", "document", "completed", 1)
    row = workflow(store_url, "0a0b0c0d")
    assert row["metadata"] == {"phases": {"document": "completed"}}
    assert (row["total_steps"], row["description"]) == (0, None)


def test_starts_of_one_adw_id_racing_from_many_trackers_make_one_row(store_url: Any) -> None:
    trackers = [WorkflowTracker(store_url) for _ in range(6)]
    results: list[Tracked] = []
    go = threading.Barrier(len(trackers))

    def start(tracker: WorkflowTracker) -> None:
        go.wait()
        results.append(tracker.track_workflow_start("5ca1ab1e", "adw_race", total_steps=1))

    threads = [threading.Thread(target=start, args=(tracker,)) for tracker in trackers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PROCESS_HANG_GUARD)
    for tracker in trackers:
        tracker.close()
    assert len(results) == len(trackers) and all(results)
    assert len({result.workflow_id for result in results}) == 1
    with SyncDatabaseManager(store_url) as db:
        assert db.count_rows()["ai_developer_workflows"] == 1


def test_phases_of_one_run_updated_at_once_are_all_kept(store_url: Any) -> None:
    """Each update reads the phases and writes them back: done at once from
    several trackers (each its own connection), none may overwrite another's."""
    phases = [f"phase{n}" for n in range(8)]
    trackers = [WorkflowTracker(store_url) for _ in phases]
    assert trackers[0].track_workflow_start("0dd5a11e", "adw_race", total_steps=len(phases))
    for tracker in trackers:  # all open before they race
        assert tracker.track_phase_update("0dd5a11e", "warm-up", "completed", 0)
    results: list[Tracked] = []
    go = threading.Barrier(len(trackers))

    def update(tracker: WorkflowTracker, phase: str) -> None:
        go.wait()
        results.append(tracker.track_phase_update("0dd5a11e", phase, "completed", 1))

    threads = [
        threading.Thread(target=update, args=pair) for pair in zip(trackers, phases, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PROCESS_HANG_GUARD)
    for tracker in trackers:
        tracker.close()
    assert len(results) == len(phases) and all(results), [r.error for r in results]
    row = workflow(store_url, "0dd5a11e")
    assert row["metadata"]["phases"] == dict.fromkeys(["warm-up", *phases], "completed")
    assert row["current_step"] in phases and row["completed_steps"] == 1


def test_a_restart_whose_row_is_deleted_meanwhile_fails(
    tracker: WorkflowTracker, store_url: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tracker.track_workflow_start("deadbeef", "adw_build")
    update_workflow = SyncDatabaseManager.update_workflow

    def deleted_first(db: SyncDatabaseManager, workflow_id: str, **fields: Any) -> bool:
        assert db.delete_workflow(workflow_id)  # another process, between the read and the write
        return update_workflow(db, workflow_id, **fields)

    monkeypatch.setattr(SyncDatabaseManager, "update_workflow", deleted_first)
    again = tracker.track_workflow_start("deadbeef", "adw_build")
    assert not again and again.workflow_id is None
    assert "LookupError" in str(again.error) and "deleted meanwhile" in str(again.error)
    monkeypatch.undo()
    with SyncDatabaseManager(store_url) as db:
        assert db.get_workflow_by_adw_id("deadbeef") is None


@pytest.mark.backend("sqlite")
def test_metadata_that_is_not_an_object_fails_the_phase_and_is_kept(
    tracker: WorkflowTracker, store_url: Any
) -> None:
    started = tracker.track_workflow_start("a1b2c3d4", "adw_plan")
    with SyncDatabaseManager(store_url) as db:
        assert db.update_workflow(str(started.workflow_id), metadata=["someone", "else's"])
    phase = tracker.track_phase_update("a1b2c3d4", "plan", "completed", 1)
    assert not phase and "metadata" in str(phase.error)
    row = workflow(store_url, "a1b2c3d4")
    assert (row["metadata"], row["current_step"]) == (["someone", "else's"], None)


# --- failures are results, never exceptions ------------------------------------------------


@pytest.mark.backend("sqlite")
def test_an_unknown_adw_id_fails_with_a_warning(
    tracker: WorkflowTracker, store_url: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    ended = tracker.track_workflow_end("ffffffff", "completed")
    assert not ended and ended.workflow_id is None
    assert ended.error is not None and "ffffffff" in ended.error
    phase = tracker.track_phase_update("ffffffff", "plan", "completed", 1)
    assert not phase and "ffffffff" in str(phase.error)
    assert len(warnings(caplog)) == 2  # one line per failed call
    assert all("ffffffff" in line for line in warnings(caplog))
    assert not any(record.exc_info for record in caplog.records)  # no traceback
    with SyncDatabaseManager(store_url) as db:
        assert db.count_rows()["ai_developer_workflows"] == 0


@pytest.mark.backend("sqlite")
@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda t: t.track_workflow_start("", "adw_plan"), "adw_id"),
        (lambda t: t.track_workflow_start(None, "adw_plan"), "adw_id"),
        (lambda t: t.track_workflow_start("a1a1a1a1", "  "), "workflow_type"),
        (lambda t: t.track_workflow_start("a1a1a1a1", "adw_plan", total_steps=-1), "total_steps"),
        (lambda t: t.track_phase_update("a1b2c3d4", "plan", "done", 1), "phase status"),
        (lambda t: t.track_phase_update("a1b2c3d4", "plan", "completed", -2), "completed_steps"),
        (lambda t: t.track_phase_update("a1b2c3d4", " ", "completed", 1), "current_step"),
        (lambda t: t.track_workflow_end("a1b2c3d4", "in_progress"), "status"),
        (lambda t: t.track_workflow_end(None, "completed"), "adw_id"),
    ],
)
def test_bad_input_fails_naming_what_was_wrong_and_writes_nothing(
    tracker: WorkflowTracker, store_url: Any, call: Any, expected: str
) -> None:
    assert tracker.track_workflow_start("a1b2c3d4", "adw_plan", total_steps=2)
    before = workflow(store_url, "a1b2c3d4")
    result = call(tracker)
    assert isinstance(result, Tracked) and not result
    assert "ValidationError" in str(result.error) and expected in str(result.error)
    assert workflow(store_url, "a1b2c3d4") == before
    with SyncDatabaseManager(store_url) as db:
        assert db.count_rows()["ai_developer_workflows"] == 1


def test_a_database_that_cannot_be_opened_gives_failures(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "a_folder.db"
    folder.mkdir()
    notes = tmp_path / "notes.db"
    content = b"these are my notes, not a database\n" * 100
    notes.write_bytes(content)
    for path, why in ((folder, "directory"), (notes, "not a SQLite database")):
        tracker = WorkflowTracker(path)
        results = [
            tracker.track_workflow_start("a1b2c3d4", "adw_plan", issue_number=1),
            tracker.track_phase_update("a1b2c3d4", "plan", "completed", 1),
            tracker.track_workflow_end("a1b2c3d4", "completed"),
        ]
        tracker.close()
        for result in results:
            assert not result and why in str(result.error)
    assert list(folder.iterdir()) == []
    assert notes.read_bytes() == content
    assert len(warnings(caplog)) == 6


def test_a_locked_database_gives_a_failure_then_works_again(db_path: Path) -> None:
    with SyncDatabaseManager(db_path):
        pass  # the file exists, with its schema
    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process writing, and taking its time
        tracker = WorkflowTracker(db_path, busy_timeout=0.05)
        locked = tracker.track_workflow_start("a1b2c3d4", "adw_plan")
        assert not locked and "BusyError" in str(locked.error)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert tracker.track_workflow_start("a1b2c3d4", "adw_plan")
    tracker.close()
    tracker.close()  # idempotent, and never raises


# --- the module-level functions ------------------------------------------------------------


def test_module_functions_use_the_database_init_tracking_names(db_path: Path) -> None:
    workflow_tracking.init_tracking(db_path)
    try:
        assert workflow_tracking.track_workflow_start("a1b2c3d4", "adw_plan", 12, 2)
        assert workflow_tracking.track_phase_update("a1b2c3d4", "plan", "completed", 1)
        assert workflow_tracking.track_workflow_end("a1b2c3d4", "completed")
    finally:
        workflow_tracking.close_tracking()
    row = workflow(db_path, "a1b2c3d4")
    assert (row["status"], row["completed_steps"], row["metadata"]["issue_number"]) == (
        "completed",
        1,
        12,
    )


def test_module_functions_open_the_default_database_without_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORCHESTRATOR_DATABASE_URL", raising=False)
    monkeypatch.delenv("ORCHESTRATOR_DB_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    workflow_tracking.close_tracking()
    try:
        assert workflow_tracking.track_workflow_start("a1b2c3d4", "adw_plan")
    finally:
        workflow_tracking.close_tracking()
    assert workflow(tmp_path / "orchestrator.db", "a1b2c3d4")["status"] == "in_progress"


def test_the_module_docstrings_usage_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_sync_manager import usage_example

    path = tmp_path / "example.db"
    monkeypatch.setenv("ORCHESTRATOR_DB_PATH", str(path))
    monkeypatch.delenv("ORCHESTRATOR_DATABASE_URL", raising=False)
    workflow_tracking.close_tracking()
    try:
        code = usage_example(workflow_tracking)
        exec(compile(code, "<workflow_tracking usage>", "exec"), {"__name__": "usage_example"})
    finally:
        workflow_tracking.close_tracking()
    row = workflow(path, "a1b2c3d4")
    assert (row["status"], row["completed_steps"], row["total_steps"]) == ("completed", 1, 3)
    assert row["metadata"] == {"issue_number": 42, "phases": {"plan": "completed"}}


# A workflow that forks after tracking started (multiprocessing's default on
# Linux): the child tracks through the inherited module-level tracker.
FORKING_WORKFLOW = """
import json, os, sys, warnings
from orchestrator_store import workflow_tracking as tracking

warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() with threads running
tracking.init_tracking(sys.argv[1])
results = [tracking.track_workflow_start("f0f0f0f0", "adw_fork", 5, 2)]
pid = os.fork()
if pid == 0:
    in_child = tracking.track_phase_update("f0f0f0f0", "build", "completed", 1)
    tracking.close_tracking()
    os._exit(0 if in_child else 1)
_, status = os.waitpid(pid, 0)
results.append(tracking.track_phase_update("f0f0f0f0", "test", "completed", 2))
results.append(tracking.track_workflow_end("f0f0f0f0", "completed"))
print(json.dumps({"child": os.waitstatus_to_exitcode(status), "parent": [r.ok for r in results]}))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_tracks_through_the_inherited_tracker(db_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORKING_WORKFLOW, str(db_path)],
        capture_output=True,
        text=True,
        timeout=PROCESS_HANG_GUARD,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == {"child": 0, "parent": [True, True, True]}
    row = workflow(db_path, "f0f0f0f0")
    assert (row["status"], row["current_step"], row["completed_steps"]) == ("completed", "test", 2)
    assert row["metadata"]["phases"] == {"build": "completed", "test": "completed"}


# A workflow script: plain (not async) code in its own process, with the default database.
WORKFLOW_SCRIPT = """
import json, sys
from orchestrator_store import workflow_tracking as tracking

adw_id, phases = sys.argv[1], sys.argv[2:]
results = [tracking.track_workflow_start(adw_id, "adw_sdlc", 13, len(phases))]
for done, phase in enumerate(phases, start=1):
    results.append(tracking.track_phase_update(adw_id, phase, "in_progress", done - 1))
    results.append(tracking.track_phase_update(adw_id, phase, "completed", done))
results.append(tracking.track_workflow_end(adw_id, "completed"))
print(json.dumps([result.ok for result in results]))
"""

# Another process writing through the async facade meanwhile, until told to stop.
ASYNC_WRITER = """
import asyncio, sys
from orchestrator_store import DatabaseManager

async def main() -> None:
    async with DatabaseManager(sys.argv[1], busy_timeout=60) as db:
        definition = await db.create_orchestrator_agent("writer", None, "utility")
        agent = await db.create_agent(definition, "busy")
        stop = asyncio.ensure_future(asyncio.to_thread(sys.stdin.readline))
        print("writing", flush=True)
        written = 0
        while not stop.done() or written < 50:
            async with db.transaction():
                await db.create_agent_log(agent, "INFO", "milestone", f"w{written}")
                await db.create_system_log("INFO", "writer", f"w{written}")
            written += 1
        await stop
    print(written, flush=True)

asyncio.run(main())
"""


@pytest.mark.backend("sqlite")
def test_a_workflow_process_tracks_while_another_process_writes(db_path: Path) -> None:
    with SyncDatabaseManager(db_path):
        pass  # both children find the schema in place
    env = {**os.environ, "ORCHESTRATOR_DB_PATH": str(db_path)}
    env.pop("ORCHESTRATOR_DATABASE_URL", None)
    writer = subprocess.Popen(
        [sys.executable, "-c", ASYNC_WRITER, str(db_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdin is not None
        line = writer.stdout.readline().strip()
        if line != "writing":
            writer.kill()
            pytest.fail(f"the writer did not start: {writer.communicate()[1]}")
        phases = ["plan", "build", "test", "review", "document"]
        tracked = subprocess.run(
            [sys.executable, "-c", WORKFLOW_SCRIPT, "c0ffee00", *phases],
            capture_output=True,
            text=True,
            env=env,
            timeout=PROCESS_HANG_GUARD,
        )
        stdout, stderr = writer.communicate("stop\n", timeout=PROCESS_HANG_GUARD)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert (tracked.returncode, tracked.stderr) == (0, "")
    assert json.loads(tracked.stdout) == [True] * (2 + 2 * len(phases))
    assert (writer.returncode, stderr) == (0, "")
    written = int(stdout.strip())

    row = workflow(db_path, "c0ffee00")
    assert (row["status"], row["current_step"], row["completed_steps"]) == (
        "completed",
        "document",
        5,
    )
    assert row["metadata"] == {
        "issue_number": 13,
        "phases": dict.fromkeys(phases, "completed"),
    }
    with SyncDatabaseManager(db_path) as db:
        counts = db.count_rows()
    assert counts["agent_logs"] == counts["system_logs"] == written
