"""The large database W4 reads: built once with raw executemany, then cached.

1,000,000 agent logs over 1,000 agents in 100 sessions and 100,000 system logs
(smaller with --quick). The file is kept under the output folder and reused
while its row counts match.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import implementations as impl

from orchestrator_store.ids import new_id
from orchestrator_store.manager import DatabaseManager
from orchestrator_store.models import format_timestamp

AGENTS = 1_000
AGENTS_PER_SESSION = 10
CHUNK = 50_000
LEVELS = ("DEBUG", "INFO", "INFO", "INFO", "WARNING", "ERROR")
TYPES = ("state_change", "milestone", "performance", "tool_call", "cost_update")


def _counts(path: Path) -> tuple[int, int] | None:
    if not path.exists():
        return None
    connection = sqlite3.connect(path)
    try:
        return (
            connection.execute("SELECT count(*) FROM agent_logs").fetchone()[0],
            connection.execute("SELECT count(*) FROM system_logs").fetchone()[0],
        )
    except sqlite3.Error:
        return None
    finally:
        connection.close()


async def ensure(path: Path, agent_logs: int, system_logs: int) -> tuple[list[str], list[str]]:
    """Build the file unless a cached one has these counts; the agent and session ids."""
    if _counts(path) != (agent_logs, system_logs):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        async with DatabaseManager(path) as db:  # the store's schema
            definition_id = await db.create_orchestrator_agent("reader", "W4", "builder")
        _build(path, definition_id, agent_logs, system_logs)
    connection = sqlite3.connect(path)
    try:
        agent_ids = [row[0] for row in connection.execute("SELECT id FROM agents ORDER BY id")]
        session_ids = [
            row[0] for row in connection.execute("SELECT DISTINCT session_id FROM agents")
        ]
    finally:
        connection.close()
    return agent_ids, session_ids


def _build(path: Path, definition_id: str, agent_logs: int, system_logs: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    stamp = lambda seconds: format_timestamp(start + timedelta(seconds=seconds))  # noqa: E731
    agents = [
        (new_id(), definition_id, f"session-{n // AGENTS_PER_SESSION:04d}", stamp(n))
        for n in range(AGENTS)
    ]
    connection = impl.raw_connect(path)
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO agents (id, orchestrator_agent_id, session_id, started_at)"
        " VALUES (?, ?, ?, ?)",
        agents,
    )
    for first in range(0, agent_logs, CHUNK):
        connection.executemany(
            "INSERT INTO agent_logs (agent_id, log_level, log_type, message, details, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                (
                    agents[n % AGENTS][0],
                    LEVELS[n % len(LEVELS)],
                    TYPES[n % len(TYPES)],
                    f"event {n}",
                    json.dumps({"n": n}),
                    stamp(n // 10),
                )
                for n in range(first, min(first + CHUNK, agent_logs))
            ),
        )
    connection.executemany(
        "INSERT INTO system_logs (log_level, component, message, details, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (
            (LEVELS[n % len(LEVELS)], f"component-{n % 7}", f"system {n}", None, stamp(n))
            for n in range(system_logs)
        ),
    )
    connection.execute("COMMIT")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
