"""The workload's unit: one agent session, written the same way by every implementation.

A session is what the issue defines: create an agent, then 4 prompts each created
and later completed, and 20 agent logs (5 per prompt) = 29 writes. ``with_costs``
adds one ``add_agent_cost`` per completed prompt (W3 checks no increment is lost).
Every implementation writes the same rows as the store (its own time-ordered
ids, its timestamp format, compact JSON), so only the write path differs. (Raw
PostgreSQL passes its timestamps as ``datetime``: ``now`` picks the value.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator_store.ids import new_id
from orchestrator_store.models import utc_now

PROMPTS_PER_SESSION = 4
LOGS_PER_PROMPT = 5
COST_PER_PROMPT = 0.25  # exact in binary floating point, so sums compare exactly


def writes_per_session(with_costs: bool) -> int:
    per_prompt = 2 + LOGS_PER_PROMPT + (1 if with_costs else 0)
    return 1 + PROMPTS_PER_SESSION * per_prompt


class SessionWriter(Protocol):
    """What an implementation offers a session (one call = one timed operation)."""

    async def create_agent(self, definition_id: str, session_id: str) -> str: ...
    async def create_prompt(self, agent_id: str, text: str) -> str: ...
    async def complete_prompt(self, prompt_id: str) -> None: ...
    async def create_agent_log(self, agent_id: str, message: str, details: Any) -> None: ...
    async def add_agent_cost(self, agent_id: str, cost_usd: float) -> None: ...


@dataclass
class Latencies:
    """Per-operation latencies in seconds, kept compactly."""

    values: list[float]

    def percentile(self, fraction: float) -> float:
        if not self.values:
            return float("nan")
        ordered = sorted(self.values)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run_session(
    writer: SessionWriter,
    definition_id: str,
    session_id: str,
    *,
    with_costs: bool = False,
    latencies: list[float] | None = None,
    clock: Any = None,
) -> None:
    """Write one session; append each operation's latency when asked."""

    async def timed(operation: Any) -> Any:
        if latencies is None:
            return await operation
        start = clock()
        result = await operation
        latencies.append(clock() - start)
        return result

    agent_id = await timed(writer.create_agent(definition_id, session_id))
    for number in range(PROMPTS_PER_SESSION):
        prompt_id = await timed(writer.create_prompt(agent_id, f"step {number} of {session_id}"))
        for line in range(LOGS_PER_PROMPT):
            await timed(
                writer.create_agent_log(agent_id, f"prompt {number} line {line}", {"line": line})
            )
        await timed(writer.complete_prompt(prompt_id))
        if with_costs:
            await timed(writer.add_agent_cost(agent_id, COST_PER_PROMPT))


# --- the rows, as the store writes them (for implementations that bypass it) ----

AGENT_SQL = (
    "INSERT INTO agents (id, orchestrator_agent_id, session_id, parent_agent_id, status,"
    " context, config, started_at) VALUES (?, ?, ?, NULL, 'executing', NULL, NULL, ?)"
)
PROMPT_SQL = (
    "INSERT INTO prompts (id, agent_id, prompt_type, prompt_name, prompt_text, status,"
    " model_used, created_at) VALUES (?, ?, 'adw', NULL, ?, 'pending', 'claude-sonnet', ?)"
)
COMPLETE_SQL = (
    "UPDATE prompts SET status = 'completed', response_text = 'done', tokens_input = 900,"
    " tokens_output = 300, cost_usd = 0.25, latency_ms = 1800, completed_at = ? WHERE id = ?"
)
LOG_SQL = (
    "INSERT INTO agent_logs (agent_id, log_level, log_type, message, details, created_at)"
    " VALUES (?, 'INFO', 'milestone', ?, ?, ?)"
)


def batch_rows(agent_id: str, count: int) -> list[dict[str, Any]]:
    """W5's batch: ``count`` tool-call logs of one agent, as the batch methods take them."""
    return [
        {
            "agent_id": agent_id,
            "log_level": "INFO",
            "log_type": "tool_call",
            "message": f"tool call {number}",
            "details": {"tool": "bash", "number": number},
        }
        for number in range(count)
    ]


BATCH_LOG_SQL = (  # W5's rows, for the raw executemany
    "INSERT INTO agent_logs (agent_id, log_level, log_type, message, details, created_at)"
    " VALUES (?, 'INFO', 'tool_call', ?, ?, ?)"
)
COST_SQL = "UPDATE agents SET cost_usd = cost_usd + ? WHERE id = ?"


def agent_params(
    definition_id: str, session_id: str, now: Callable[[], Any] = utc_now
) -> tuple[str, tuple[Any, ...]]:
    agent_id = new_id()
    return agent_id, (agent_id, definition_id, session_id, now())


def prompt_params(
    agent_id: str, text: str, now: Callable[[], Any] = utc_now
) -> tuple[str, tuple[Any, ...]]:
    prompt_id = new_id()
    return prompt_id, (prompt_id, agent_id, text, now())


def log_params(
    agent_id: str, message: str, details: Any, now: Callable[[], Any] = utc_now
) -> tuple[Any, ...]:
    return (agent_id, message, json.dumps(details, separators=(",", ":")), now())
