"""A realistic store to report on: two sessions, ten and two days ago.

Session ``feature_Tac_14_Task_8`` (ten days ago, 09:00 UTC): a planner, a builder
that fails after a failed correction prompt, a reviewer; the orchestrator's chat
with the user and the builder, and a workflow run that fails at its build step.
Session ``bug_Tac_15_Task_2`` (two days ago, 09:00 UTC): a planner and a builder
still executing with a streaming prompt, in a workflow run still in progress.
The store writes every row; past times are then set with stdlib sqlite3, in
the store's exact timestamp format. Logs are written in time order, so their
ids follow time as they would in real use.

The figures the tests expect are written out by hand in ``EXPECTED`` below.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator_store.manager import DatabaseManager
from orchestrator_store.models import format_timestamp

SESSION_A = "feature_Tac_14_Task_8"
SESSION_B = "bug_Tac_15_Task_2"


def _nine_am(days_ago: int) -> datetime:
    day = datetime.now(UTC) - timedelta(days=days_ago)
    return day.replace(hour=9, minute=0, second=0, microsecond=0)


@dataclass
class RecordedSession:
    path: Path
    base_a: datetime
    base_b: datetime
    agents: dict[str, str] = field(default_factory=dict)  # a1, a2, a3, b1, b2 -> id

    def day(self, base: datetime) -> str:
        return base.strftime("%Y-%m-%d")


# (key, definition, session, parent, status, start minute, end minute, error, cost)
AGENTS = (
    ("a1", "planner", SESSION_A, None, "completed", 0, 5, None, 0.0),
    ("a2", "builder", SESSION_A, "a1", "failed", 6, 20, "tests failed", 0.002),
    ("a3", "reviewer", SESSION_A, "a1", "completed", 21, 25, None, 0.0),
    ("b1", "planner", SESSION_B, None, "completed", 0, 3, None, 0.0),
    ("b2", "builder", SESSION_B, "b1", "executing", 4, None, None, 0.0),
)
# (agent, type, text, model, status, tokens in, tokens out, cost, latency, error)
PROMPTS = (
    ("a1", "adw", "Plan issue 14", "claude-opus", "completed", 1000, 200, 0.03, 2000, None),
    ("a2", "adw", "Implement step 1", "claude-sonnet", "completed", 2000, 500, 0.012, 5000, None),
    (
        "a2",
        "correction",
        "Fix the failing test",
        "claude-sonnet",
        "failed",
        300,
        0,
        0.001,
        800,
        "rate limited",
    ),
    ("a3", "command", "Review the diff", "claude-haiku", "completed", 500, 100, 0.0005, 900, None),
    ("b1", "adw", "Plan bug 15", "claude-opus", "completed", 800, 150, 0.025, 1500, None),
    ("b2", "adw", "Fix bug 15", "claude-sonnet", "streaming", 0, 0, 0.0, None, None),
)
# Logs in time order: (seconds after the session's 09:00, agent key or component, level,
# log type or None for a system log, message, details)
LOGS_A = (
    (-1, "orchestrator", "INFO", None, f"session {SESSION_A} started", None),
    (0, "a1", "INFO", "state_change", "initializing -> planning", None),
    (240, "a1", "INFO", "milestone", "plan ready", {"steps": 3}),
    (300, "a1", "INFO", "state_change", "planning -> completed", None),
    (360, "a2", "INFO", "state_change", "initializing -> executing", None),
    (900, "a2", "WARNING", "performance", "slow test run", {"seconds": 412}),
    (1200, "a2", "ERROR", "error", "tests failed", {"failed": 2}),
    (1201, "scheduler", "ERROR", None, "builder failed, retry budget exhausted", None),
    (1260, "a3", "INFO", "state_change", "initializing -> reviewing", None),
    (1500, "a3", "INFO", "milestone", "review done", None),
    (1560, "orchestrator", "INFO", None, f"session {SESSION_A} finished", None),
)
LOGS_B = (
    (-1, "orchestrator", "INFO", None, f"session {SESSION_B} started", None),
    (0, "b1", "INFO", "state_change", "initializing -> planning", None),
    (180, "b1", "INFO", "state_change", "planning -> completed", None),
    (240, "b2", "INFO", "state_change", "initializing -> executing", None),
    (241, "scheduler", "WARNING", None, "queue depth 12", {"depth": 12}),
    (300, "b2", "DEBUG", "tool_call", "read src/health.py", None),
)
# The planner definition's chat in session A: (seconds after 09:00, sender, receiver,
# agent key or None, message)
CHAT_A = (
    (-2, "user", "orchestrator", None, "Implement issue 14"),
    (360, "orchestrator", "agent", "a2", "Build step 1 of the plan"),
    (1200, "agent", "orchestrator", "a2", "tests failed"),
)
# (adw id, name, type, session, steps, steps done, final status or None, minutes, error)
WORKFLOWS = (
    ("a1b2c3d4", "adw_plan_build", "plan_build", SESSION_A, 3, 2, "failed", 25, "tests failed"),
    ("e5f6a7b8", "adw_plan_build", "plan_build", SESSION_B, 3, 1, None, None, None),
)

EXPECTED: dict[str, Any] = {
    "rows": {
        "orchestrator_agents": 3,
        "agents": 5,
        "prompts": 6,
        "agent_logs": 12,
        "system_logs": 5,
        "orchestrator_chat": 3,
        "ai_developer_workflows": 2,
    },
    "sessions": {
        SESSION_A: {
            "agents": 3,
            "active_agents": 0,
            "failed_agents": 1,
            "prompts": 4,
            "failed_prompts": 1,
            "tokens_input": 3800,
            "tokens_output": 800,
            "cost_usd": 0.0455,
        },
        SESSION_B: {
            "agents": 2,
            "active_agents": 1,
            "failed_agents": 0,
            "prompts": 2,
            "failed_prompts": 0,
            "tokens_input": 800,
            "tokens_output": 150,
            "cost_usd": 0.025,
        },
    },
    "by_model": {
        None: (0, 0, 0, 0.002),  # a2's own cost (a sandbox), under no model
        "claude-haiku": (1, 500, 100, 0.0005),
        "claude-opus": (2, 1800, 350, 0.055),
        "claude-sonnet": (3, 2300, 500, 0.013),
    },
    "by_agent_type": {
        "builder": (3, 2300, 500, 0.015),
        "planner": (2, 1800, 350, 0.055),
        "reviewer": (1, 500, 100, 0.0005),
    },
    "total": (6, 4600, 950, 0.0705),
    "logs_older_than_5_days": {"agent_logs": 8, "system_logs": 3},
}


async def record_realistic_session(path: Path) -> RecordedSession:
    recorded = RecordedSession(path, base_a=_nine_am(10), base_b=_nine_am(2))
    bases = {SESSION_A: recorded.base_a, SESSION_B: recorded.base_b}
    agent_times: dict[str, tuple[str, str | None]] = {}
    prompt_times: list[tuple[str, str, str | None]] = []
    log_times: list[tuple[str, int, str]] = []
    chat_times: list[tuple[str, str]] = []  # (id, created_at)
    # (id, started_at, completed_at, duration_seconds)
    workflow_times: list[tuple[str, str, str | None, float | None]] = []
    async with DatabaseManager(path) as db:
        definitions = {
            name: await db.create_orchestrator_agent(name, f"The {name}", name, default_model=model)
            for name, model in (
                ("planner", "claude-opus"),
                ("builder", "claude-sonnet"),
                ("reviewer", "claude-haiku"),
            )
        }
        for key, definition, session, parent, status, start, end, error, cost in AGENTS:
            agent = await db.create_agent(
                definitions[definition],
                session,
                parent_agent_id=recorded.agents.get(parent or ""),
                status=status,
                context={"issue": 14 if session == SESSION_A else 15},
            )
            recorded.agents[key] = agent
            base = bases[session]
            ended = format_timestamp(base + timedelta(minutes=end)) if end is not None else None
            agent_times[agent] = (format_timestamp(base + timedelta(minutes=start)), ended)
            if error:
                await db.update_agent(agent, error_message=error)
            if cost:
                await db.add_agent_cost(agent, cost)
        for key, kind, text, model, status, tokens_in, tokens_out, cost, latency, error in PROMPTS:
            agent = recorded.agents[key]
            prompt = await db.create_prompt(agent, kind, text, status=status, model_used=model)
            await db.update_prompt(
                prompt,
                tokens_input=tokens_in,
                tokens_output=tokens_out,
                cost_usd=cost,
                latency_ms=latency,
                error_message=error,
                response_text="done" if status == "completed" else None,
            )
            started = datetime.fromisoformat(agent_times[agent][0])
            completed = None
            if status in ("completed", "failed"):
                completed = format_timestamp(started + timedelta(minutes=2))
            prompt_times.append(
                (prompt, format_timestamp(started + timedelta(minutes=1)), completed)
            )
        for session, logs in ((SESSION_A, LOGS_A), (SESSION_B, LOGS_B)):
            for seconds, who, level, log_type, message, details in logs:
                at = format_timestamp(bases[session] + timedelta(seconds=seconds))
                if log_type is None:
                    log_id = await db.create_system_log(level, who, message, details)
                    log_times.append(("system_logs", log_id, at))
                else:
                    agent = recorded.agents[who]
                    log_id = await db.create_agent_log(agent, level, log_type, message, details)
                    log_times.append(("agent_logs", log_id, at))
        for seconds, sender, receiver, who, message in CHAT_A:
            chat_id = await db.create_chat_message(
                definitions["planner"],
                sender,
                receiver,
                message,
                agent_id=recorded.agents.get(who or ""),
                metadata={"issue": 14},
            )
            at = format_timestamp(recorded.base_a + timedelta(seconds=seconds))
            chat_times.append((chat_id, at))
        for adw_id, name, kind, session, steps, done, status, minutes, error in WORKFLOWS:
            workflow = await db.start_workflow(
                name,
                kind,
                adw_id=adw_id,
                total_steps=steps,
                orchestrator_agent_id=definitions["planner"],
                input_data={"session": session},
            )
            await db.update_workflow_step(workflow, "build", completed_steps=done)
            if status is not None:
                await db.end_workflow(
                    workflow, status, error_message=error, error_step="build", output_data=None
                )
            started = format_timestamp(bases[session])
            ended = None
            if minutes is not None:
                ended = format_timestamp(bases[session] + timedelta(minutes=minutes))
            workflow_times.append(
                (workflow, started, ended, None if minutes is None else minutes * 60.0)
            )
    with sqlite3.connect(path) as raw:
        for agent, (started_at, completed_at) in agent_times.items():
            raw.execute(
                "UPDATE agents SET started_at = ?, completed_at = ? WHERE id = ?",
                (started_at, completed_at, agent),
            )
        for prompt, created_at, completed_at in prompt_times:
            raw.execute(
                "UPDATE prompts SET created_at = ?, completed_at = ? WHERE id = ?",
                (created_at, completed_at, prompt),
            )
        for table, log_id, created_at in log_times:
            raw.execute(f"UPDATE {table} SET created_at = ? WHERE id = ?", (created_at, log_id))
        for chat_id, created_at in chat_times:
            raw.execute(
                "UPDATE orchestrator_chat SET created_at = ?, updated_at = ? WHERE id = ?",
                (created_at, created_at, chat_id),
            )
        for workflow, started_at, completed_at, duration in workflow_times:
            updated_at = completed_at or started_at
            raw.execute(
                "UPDATE ai_developer_workflows SET started_at = ?, created_at = ?,"
                " completed_at = ?, duration_seconds = ?, updated_at = ? WHERE id = ?",
                (started_at, started_at, completed_at, duration, updated_at, workflow),
            )
    raw.close()
    return recorded
