"""Create or open a store and show what it holds; ``--demo`` first records a
small example session (a planner handing over to a builder, run as a workflow
and talked through with the user). The command line
behind ``adws/adw_modules/adw_database.py`` and ``python -m orchestrator_store``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from .errors import DatabaseError
from .manager import DatabaseManager

__all__ = ["main"]


async def _record_demo_session(db: DatabaseManager) -> tuple[str, str]:
    """A small, realistic session: the user asks the orchestrator for a
    change, which runs it as a two-step workflow where a planner hands over to
    a builder. Returns the session's id and the workflow's."""
    session_id = f"demo_{datetime.now(UTC):%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:6]}"
    definitions = {row["name"]: row["id"] for row in await db.list_orchestrator_agents()}
    for name, kind, model in (
        ("orchestrator", "orchestrator", "claude-sonnet"),
        ("planner", "planner", "claude-sonnet"),
        ("builder", "builder", "claude-sonnet"),
    ):
        if name not in definitions:
            definitions[name] = await db.create_orchestrator_agent(
                name, f"Demo {name}", kind, default_model=model
            )
    orchestrator = definitions["orchestrator"]
    request = "Add a health check endpoint"
    await db.create_chat_message(orchestrator, "user", "orchestrator", request)
    await db.create_system_log("INFO", "orchestrator", f"session {session_id} started")
    workflow = await db.start_workflow(
        "plan_build",
        "plan_build",
        adw_id=session_id,
        total_steps=2,
        orchestrator_agent_id=orchestrator,
        input_data={"request": request},
    )
    parent = None
    for step, (name, prompt_text, cost) in enumerate(
        (
            ("planner", "Plan: add a health check endpoint", 0.0042),
            ("builder", "Build the plan's three steps", 0.0117),
        )
    ):
        await db.update_workflow_step(workflow, name, completed_steps=step)
        agent = await db.create_agent(
            definitions[name], session_id, parent_agent_id=parent, status="executing"
        )
        await db.create_chat_message(
            orchestrator, "orchestrator", "agent", prompt_text, agent_id=agent
        )
        prompt = await db.create_prompt(agent, "adw", prompt_text, model_used="claude-sonnet")
        async with db.transaction():
            await db.update_prompt(
                prompt,
                status="completed",
                response_text="done",
                tokens_input=900,
                tokens_output=300,
                cost_usd=cost,
                latency_ms=1800,
                completed_at=datetime.now(UTC),
            )
            await db.create_agent_log(agent, "INFO", "cost_update", f"+${cost}", {"usd": cost})
        await db.update_agent(agent, status="completed", completed_at=datetime.now(UTC))
        await db.create_agent_log(agent, "INFO", "state_change", "executing -> completed")
        parent = agent
    await db.update_workflow_step(workflow, "done", completed_steps=2)
    await db.end_workflow(workflow, "completed", output_data={"agents": 2})
    await db.create_chat_message(
        orchestrator, "orchestrator", "user", "Done: the endpoint is built and tested."
    )
    await db.create_system_log("INFO", "orchestrator", f"session {session_id} finished")
    return session_id, workflow


async def _report(db_path: str | None, demo: bool, default_database: str | Path | None) -> None:
    async with DatabaseManager(db_path, default_database=default_database) as db:
        print(f"database: {db.location}")
        print(f"schema version: {await db.schema_version()}")
        if demo:
            session_id, workflow_id = await _record_demo_session(db)
            agents = await db.agents_with_totals(await db.list_agents(session_id))
            print(f"recorded session {session_id}:")
            for agent in reversed(agents):
                tokens = agent["tokens_input"] + agent["tokens_output"]
                # An id's random end: time-ordered ids made together share their start.
                print(
                    f"  agent {agent['id'][-8:]} {agent['status']:<9} prompts={agent['prompts']} "
                    f"tokens={tokens} cost=${agent['total_cost_usd']:.4f}"
                )
            workflow = await db.get_workflow(workflow_id)
            assert workflow is not None  # recorded just now
            print(
                f"  workflow {workflow['adw_name']} {workflow['status']} "
                f"steps={workflow['completed_steps']}/{workflow['total_steps']}"
            )
        print("rows per table:")
        counts = await db.count_rows()
        width = max(map(len, counts))
        for table, count in counts.items():
            print(f"  {table:<{width}} {count}")


def main(argv: list[str] | None = None, *, default_database: str | Path | None = None) -> int:
    """The command line of a project's ``adw_database.py``: ``default_database``
    is the project's configured database."""
    parser = argparse.ArgumentParser(
        description="Create or open the orchestrator store and show what it holds."
    )
    parser.add_argument(
        "--db",
        metavar="PATH|URL",
        help="database file or postgresql:// URL (default: $ORCHESTRATOR_DATABASE_URL, "
        "else $ORCHESTRATOR_DB_PATH, else the configured default)",
    )
    parser.add_argument("--demo", action="store_true", help="record a small example session first")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_report(args.db, args.demo, default_database))
    except DatabaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`| head`): nothing to report
        # Python flushes stdout once more at exit; let that go nowhere, quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0
