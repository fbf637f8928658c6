"""The implementations the benchmark compares, one class each.

An ``Implementation`` says which backend it writes to and which workloads it
runs; ``LIMITS`` says which one is each workload's limit on each backend (the
ratios' 1.00). Writers offer ``sessions.SessionWriter``; raw sqlite3 also runs
its sessions synchronously. PostgreSQL's raw writer is in ``pg_raw.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import sessions

from orchestrator_store.manager import DatabaseManager
from orchestrator_store.models import utc_now

SYNCHRONOUS = "NORMAL"  # the same for every implementation (W1 FULL: FULL for both)


# --- raw sqlite3: the limit ----------------------------------------------------


def raw_connect(path: Path, synchronous: str = SYNCHRONOUS) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    for setting in ("journal_mode = WAL", f"synchronous = {synchronous}", "foreign_keys = ON"):
        connection.execute(f"PRAGMA {setting}")
    connection.execute("PRAGMA busy_timeout = 5000")
    return connection


def raw_session(
    connection: sqlite3.Connection,
    definition_id: str,
    session_id: str,
    *,
    one_transaction: bool,
    latencies: list[float] | None,
    clock: Callable[[], float],
) -> None:
    """One session with plain sqlite3: a commit per statement (autocommit), or
    statements inside the caller's open transaction."""

    def run(sql: str, params: tuple[Any, ...]) -> None:
        start = clock() if latencies is not None else 0.0
        connection.execute(sql, params)
        if latencies is not None:
            latencies.append(clock() - start)

    agent_id, params = sessions.agent_params(definition_id, session_id)
    run(sessions.AGENT_SQL, params)
    for number in range(sessions.PROMPTS_PER_SESSION):
        prompt_id, params = sessions.prompt_params(agent_id, f"step {number} of {session_id}")
        run(sessions.PROMPT_SQL, params)
        for line in range(sessions.LOGS_PER_PROMPT):
            message = f"prompt {number} line {line}"
            run(sessions.LOG_SQL, sessions.log_params(agent_id, message, {"line": line}))
        run(sessions.COMPLETE_SQL, (utc_now(), prompt_id))
    del one_transaction  # the caller opened the transaction, or not


# --- the common approach: one shared aiosqlite connection -----------------------


class NaiveAiosqlite:
    """One shared aiosqlite connection, implicit transactions, execute + commit
    per operation (what most projects write first)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connection: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self.connection = await aiosqlite.connect(self.path)
        for setting in ("journal_mode = WAL", f"synchronous = {SYNCHRONOUS}", "foreign_keys = ON"):
            await self.connection.execute(f"PRAGMA {setting}")

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    async def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        assert self.connection is not None
        await self.connection.execute(sql, params)
        await self.connection.commit()

    async def create_agent(self, definition_id: str, session_id: str) -> str:
        agent_id, params = sessions.agent_params(definition_id, session_id)
        await self._write(sessions.AGENT_SQL, params)
        return agent_id

    async def create_prompt(self, agent_id: str, text: str) -> str:
        prompt_id, params = sessions.prompt_params(agent_id, text)
        await self._write(sessions.PROMPT_SQL, params)
        return prompt_id

    async def complete_prompt(self, prompt_id: str) -> None:
        await self._write(sessions.COMPLETE_SQL, (utc_now(), prompt_id))

    async def create_agent_log(self, agent_id: str, message: str, details: Any) -> None:
        await self._write(sessions.LOG_SQL, sessions.log_params(agent_id, message, details))

    async def add_agent_cost(self, agent_id: str, cost_usd: float) -> None:
        await self._write(sessions.COST_SQL, (cost_usd, agent_id))


# --- this store ----------------------------------------------------------------


class StoreSession:
    """The store's public API, as an orchestrator would call it."""

    def __init__(self, db: DatabaseManager) -> None:
        self.db = db

    async def create_agent(self, definition_id: str, session_id: str) -> str:
        return await self.db.create_agent(definition_id, session_id, status="executing")

    async def create_prompt(self, agent_id: str, text: str) -> str:
        return await self.db.create_prompt(agent_id, "adw", text, model_used="claude-sonnet")

    async def complete_prompt(self, prompt_id: str) -> None:
        await self.db.update_prompt(
            prompt_id,
            status="completed",
            response_text="done",
            tokens_input=900,
            tokens_output=300,
            cost_usd=sessions.COST_PER_PROMPT,
            latency_ms=1800,
            completed_at=utc_now(),
        )

    async def create_agent_log(self, agent_id: str, message: str, details: Any) -> None:
        await self.db.create_agent_log(agent_id, "INFO", "milestone", message, details)

    async def add_agent_cost(self, agent_id: str, cost_usd: float) -> None:
        await self.db.add_agent_cost(agent_id, cost_usd)


@dataclass(frozen=True)
class Implementation:
    """One row group of the table: a name, what it is, which workloads it runs."""

    name: str
    description: str
    workloads: frozenset[str]
    backend: str = "sqlite"
    is_limit: bool = False


IMPLEMENTATIONS = (
    Implementation(
        "raw-sqlite3 commit/op",
        "sqlite3, autocommit: one transaction and commit per statement",
        frozenset({"W1", "W1 FULL"}),
        is_limit=True,
    ),
    Implementation(
        "raw-sqlite3 one txn",
        "sqlite3, every statement in one transaction; executemany for batches",
        frozenset({"W2", "W4", "W5"}),
        is_limit=True,
    ),
    Implementation(
        "naive aiosqlite",
        "one shared aiosqlite connection, implicit transactions, commit per op",
        frozenset({"W1", "W2"}),
    ),
    Implementation(
        "store (SQLite)",
        "this store: DatabaseManager on SQLite",
        frozenset({"W1", "W1 FULL", "W2", "W3", "W4", "W5"}),
    ),
    # When a PostgreSQL server answers (pg_raw.py, pg_workloads.py):
    Implementation(
        "raw asyncpg commit/op",
        "one asyncpg connection, autocommit: one statement and commit per operation",
        frozenset({"W1"}),
        backend="postgresql",
        is_limit=True,
    ),
    Implementation(
        "raw asyncpg one txn",
        "one asyncpg connection, every statement in one transaction; executemany for batches",
        frozenset({"W2", "W5"}),
        backend="postgresql",
        is_limit=True,
    ),
    Implementation(
        "store (PostgreSQL)",
        "this store: DatabaseManager on a postgresql:// URL (its asyncpg pool)",
        frozenset({"W1", "W2", "W5"}),
        backend="postgresql",
    ),
)

# (backend, workload) -> the implementation whose throughput is the ratio's 1.00.
LIMITS = {
    ("sqlite", "W1"): "raw-sqlite3 commit/op",
    ("sqlite", "W1 FULL"): "raw-sqlite3 commit/op",
    ("sqlite", "W2"): "raw-sqlite3 one txn",
    ("sqlite", "W5"): "raw-sqlite3 one txn",
    ("postgresql", "W1"): "raw asyncpg commit/op",
    ("postgresql", "W2"): "raw asyncpg one txn",
    ("postgresql", "W5"): "raw asyncpg one txn",
}


def limit_of(workload: str, implementation: str) -> str | None:
    """The limit ``implementation`` is measured against in ``workload``, if any."""
    backend = next(i.backend for i in IMPLEMENTATIONS if i.name == implementation)
    return LIMITS.get((backend, workload))
