"""A smoke test of this project's orchestrator store: it installs, opens the
configured database, records a session, and its command lines run.

Rendered by tac-bootstrap; the store's own full suite lives with the
``orchestrator-store`` package. Run with ``uv run pytest``.
"""

from __future__ import annotations

import asyncio
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator_store import DatabaseManager, IntegrityError, ValidationError, workflow_tracking

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SEED_MODULE = PROJECT_ROOT / "adws" / "adw_modules" / "adw_database.py"
TIMEOUT = 120  # seconds; a guard against a hang, never a speed check


def clean_env() -> dict[str, str]:
    """The environment without a database chosen by the caller's shell."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}


async def record_session(db: DatabaseManager) -> str:
    planner = await db.create_orchestrator_agent("planner", "Plans", "planner")
    agent = await db.create_agent(planner, "smoke_session", context={"step": 1})
    prompt = await db.create_prompt(agent, "adw", "Plan the work", model_used="claude-sonnet")
    async with db.transaction():
        await db.update_prompt(
            prompt, status="completed", tokens_input=100, tokens_output=20, cost_usd=0.002
        )
        await db.update_agent(agent, status="completed")
        await db.create_agent_log(agent, "INFO", "milestone", "planned", {"steps": 3})
    return agent


def test_a_session_is_recorded_and_read_back(tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        async with DatabaseManager(tmp_path / "smoke.db") as db:
            agent = await record_session(db)
            with pytest.raises(IntegrityError):
                await db.create_orchestrator_agent("planner", None, "planner")
            with pytest.raises(ValidationError):
                await db.create_agent_log(agent, "LOUD", "milestone", "not a level")
            row = await db.get_agent(agent)
            assert row is not None
            return {
                "status": row["status"],
                "context": row["context"],
                "rows": await db.count_rows(),
                "logs": await db.get_agent_logs(agent),
            }

    seen = asyncio.run(scenario())
    assert seen["status"] == "completed"
    assert seen["context"] == {"step": 1}
    assert seen["rows"]["prompts"] == 1
    assert [log["details"] for log in seen["logs"]] == [{"steps": 3}]


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    async def scenario() -> dict[str, int]:
        async with DatabaseManager(tmp_path / "smoke.db") as db:
            with pytest.raises(RuntimeError):
                async with db.transaction():
                    await db.create_system_log("INFO", "smoke", "rolled back")
                    raise RuntimeError("the block fails")
            return await db.count_rows()

    assert asyncio.run(scenario())["system_logs"] == 0


def test_the_seed_module_opens_the_configured_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("ORCHESTRATOR_DATABASE_URL", "ORCHESTRATOR_DB_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # the package's own default would be a file here
    seed = runpy.run_path(str(SEED_MODULE))
    manager = seed["DatabaseManager"]()
    if seed["DEFAULT_DATABASE_URL"] is None:
        assert manager.db_path == PROJECT_ROOT / seed["DEFAULT_DB_PATH"]
    else:
        assert manager.location.startswith(("postgres", "/"))
    assert isinstance(manager, DatabaseManager)
    # The synchronous manager and the workflow tracking open the same database
    # (nothing is opened here: neither does any I/O before its first call).
    configured = seed["configured_database"]()
    sync_manager = seed["SyncDatabaseManager"]()
    if isinstance(configured, Path):
        assert sync_manager.db_path == configured
    else:
        assert sync_manager.location == DatabaseManager(configured).location
    assert sync_manager.location == manager.location
    tracker = seed["init_tracking"]()
    try:
        assert tracker.location == manager.location
    finally:
        workflow_tracking.close_tracking()


def test_the_seed_module_runs_its_demo(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    done = subprocess.run(
        [sys.executable, str(SEED_MODULE), "--db", str(database), "--demo"],
        cwd=PROJECT_ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "recorded session demo_" in done.stdout
    assert database.is_file()


def test_the_inspection_command_line_reads_the_store(tmp_path: Path) -> None:
    database = tmp_path / "cli.db"

    async def prepare() -> None:
        async with DatabaseManager(database) as db:
            await record_session(db)

    asyncio.run(prepare())
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator_store.cli", "--db", str(database), "stats", "--json"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"]["agents"] == 1


WORKFLOW_SCRIPT = """
import runpy, sys
seed = runpy.run_path(sys.argv[1])
seed["init_tracking"](sys.argv[2])
from orchestrator_store import workflow_tracking as tracking
results = [
    tracking.track_workflow_start("a1b2c3d4", "plan_build", issue_number=7, total_steps=2),
    tracking.track_phase_update("a1b2c3d4", "plan", "completed", 1),
    tracking.track_phase_update("a1b2c3d4", "build", "completed", 2),
    tracking.track_workflow_end("a1b2c3d4", "completed"),
    tracking.track_workflow_end("no-such-run", "completed"),  # fails, never raises
]
print([bool(result) for result in results])
"""


def test_a_workflow_process_tracks_its_phases(tmp_path: Path) -> None:
    """A workflow that is a plain subprocess records its run through the
    project's tracking, and never fails because of the database."""
    database = tmp_path / "workflows.db"
    done = subprocess.run(
        [sys.executable, "-c", WORKFLOW_SCRIPT, str(SEED_MODULE), str(database)],
        cwd=PROJECT_ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[True, True, True, True, False]"
    seed = runpy.run_path(str(SEED_MODULE))
    with seed["SyncDatabaseManager"](database) as db:
        run = db.get_workflow_by_adw_id("a1b2c3d4")
    assert run is not None
    assert (run["status"], run["current_step"], run["completed_steps"]) == ("completed", "build", 2)
    assert run["metadata"]["issue_number"] == 7
