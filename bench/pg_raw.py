"""Raw asyncpg: PostgreSQL's limit, one connection and nothing in between.

It writes the same rows with the same statements as the store (``sessions``'s
SQL with ``$n`` placeholders; a log insert returns its id, as the store's
does), passing the driver's native values: timestamps as ``datetime``, UUIDs
and JSON as text. No pool, no codecs, no validation. Outside a transaction
every statement commits on its own (autocommit); the caller may open one
transaction around everything.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import asyncpg
import sessions


def numbered(sql: str) -> str:
    """``?`` placeholders -> ``$1, $2, ...`` (the statements hold no ``?`` in text)."""
    pieces = sql.split("?")
    numbers = (f"${index}" for index in itertools.count(1))
    return pieces[0] + "".join(next(numbers) + piece for piece in pieces[1:])


AGENT_SQL = numbered(sessions.AGENT_SQL)
PROMPT_SQL = numbered(sessions.PROMPT_SQL)
COMPLETE_SQL = numbered(sessions.COMPLETE_SQL)
LOG_SQL = numbered(sessions.LOG_SQL) + " RETURNING id"
BATCH_LOG_SQL = numbered(sessions.BATCH_LOG_SQL)
COST_SQL = numbered(sessions.COST_SQL)


def now() -> datetime:
    return datetime.now(UTC)


class RawAsyncpg:
    """One asyncpg connection; one statement per operation."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def create_agent(self, definition_id: str, session_id: str) -> str:
        agent_id, params = sessions.agent_params(definition_id, session_id, now)
        await self.connection.execute(AGENT_SQL, *params)
        return agent_id

    async def create_prompt(self, agent_id: str, text: str) -> str:
        prompt_id, params = sessions.prompt_params(agent_id, text, now)
        await self.connection.execute(PROMPT_SQL, *params)
        return prompt_id

    async def complete_prompt(self, prompt_id: str) -> None:
        await self.connection.execute(COMPLETE_SQL, now(), prompt_id)

    async def create_agent_log(self, agent_id: str, message: str, details: Any) -> None:
        await self.connection.fetchval(
            LOG_SQL, *sessions.log_params(agent_id, message, details, now)
        )

    async def add_agent_cost(self, agent_id: str, cost_usd: float) -> None:
        await self.connection.execute(COST_SQL, cost_usd, agent_id)
