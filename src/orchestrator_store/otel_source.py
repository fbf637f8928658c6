"""Reading the store a session at a time for the OpenTelemetry export.

Everything goes through ``db.query()``, the store's read-only door, with SQL written for
the backend (``?`` or ``$n``). Sessions are paged by id and read whole (agents, prompts,
logs), so memory holds one session and one page of ids, whatever the history's size.
Prompt and response text are read only when the export asks for content.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from itertools import groupby
from typing import Any

from .manager import DatabaseManager
from .models import format_timestamp
from .otel_mapping import MAX_EVENTS_PER_SPAN, SessionHistory, SystemLogDay, day_of, stored_text

__all__ = [
    "PAGE_SIZE",
    "active_sessions",
    "definitions",
    "load_session",
    "recent_system_logs",
    "session_ids",
    "system_log_days",
]

PAGE_SIZE = 500
ID_CHUNK = 500  # ids per IN (...): far below either backend's limit on parameters

_PROMPT_COLUMNS = (
    "id, agent_id, prompt_type, prompt_name, status, model_used, tokens_input, "
    "tokens_output, cost_usd, latency_ms, created_at, completed_at, error_message"
)


class _Sql:
    """The backend's placeholders and timestamp parameters."""

    def __init__(self, db: DatabaseManager) -> None:
        self.postgres = db.backend_name == "postgresql"

    def marks(self, count: int, first: int = 1) -> list[str]:
        if self.postgres:
            return [f"${number}" for number in range(first, first + count)]
        return ["?"] * count

    def time(self, moment: datetime) -> str:
        """A timestamp parameter: the store's text, which ``query()`` takes on both."""
        return format_timestamp(moment)


async def definitions(db: DatabaseManager) -> dict[str, dict[str, Any]]:
    """Every agent definition by id (a handful of rows)."""
    rows = await db.query(
        "SELECT id, name, agent_type, description, default_model FROM orchestrator_agents"
    )
    return {row["id"]: row for row in rows}


async def session_ids(
    db: DatabaseManager, *, since: datetime | None = None, session: str | None = None
) -> AsyncIterator[str]:
    """Session ids in id order, a page at a time; with ``since``, only sessions with an
    agent that started or finished at or after it; with ``session``, that one if it exists."""
    sql = _Sql(db)
    if session is not None:
        (mark,) = sql.marks(1)
        rows = await db.query(f"SELECT 1 FROM agents WHERE session_id = {mark} LIMIT 1", [session])
        if rows:
            yield session
        return
    after = ""
    while True:
        params: list[Any] = [after]
        condition = ""
        if since is not None:
            first, second = sql.marks(2, first=2)
            condition = f" AND (started_at >= {first} OR completed_at >= {second})"
            params += [sql.time(since), sql.time(since)]
        (after_mark,) = sql.marks(1)
        (limit_mark,) = sql.marks(1, first=len(params) + 1)
        params.append(PAGE_SIZE)
        rows = await db.query(
            f"SELECT DISTINCT session_id FROM agents WHERE session_id > {after_mark}{condition} "
            f"ORDER BY session_id LIMIT {limit_mark}",
            params,
        )
        for row in rows:
            yield row["session_id"]
        if len(rows) < PAGE_SIZE:
            return
        after = rows[-1]["session_id"]


async def load_session(
    db: DatabaseManager,
    session_id: str,
    definitions_by_id: dict[str, dict[str, Any]],
    *,
    with_content: bool = False,
) -> SessionHistory | None:
    """One session's rows, or None when it has no agents (any more)."""
    sql = _Sql(db)
    (mark,) = sql.marks(1)
    agents = await db.query(
        f"SELECT * FROM agents WHERE session_id = {mark} ORDER BY started_at, id", [session_id]
    )
    if not agents:
        return None
    for agent in agents:
        definition = definitions_by_id.get(agent["orchestrator_agent_id"]) or {}
        agent["definition_name"] = definition.get("name")
        agent["definition_type"] = definition.get("agent_type")
        agent["definition_description"] = definition.get("description")
        agent["definition_model"] = definition.get("default_model")
    history = SessionHistory(session_id, agents, await _prompts_of(db, sql, agents, with_content))
    await _add_logs(db, sql, history)
    return history


async def _prompts_of(
    db: DatabaseManager, sql: _Sql, agents: list[dict[str, Any]], with_content: bool
) -> list[dict[str, Any]]:
    """The agents' prompts in time order, looked up by agent id (the index on
    ``agent_id``): a join on the session lets a planner without fresh statistics
    choose to scan every prompt, once per session."""
    columns = _PROMPT_COLUMNS + (", prompt_text, response_text" if with_content else "")
    prompts: list[dict[str, Any]] = []
    ids = [agent["id"] for agent in agents]
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        marks = ", ".join(sql.marks(len(chunk)))
        prompts += await db.query(
            f"SELECT {columns} FROM prompts WHERE agent_id IN ({marks})", chunk
        )
    prompts.sort(key=lambda prompt: (stored_text(prompt["created_at"]), str(prompt["id"])))
    return prompts


async def _add_logs(db: DatabaseManager, sql: _Sql, history: SessionHistory) -> None:
    """Each agent's first MAX_EVENTS_PER_SPAN logs, and how many more it has."""
    for agent in history.agents:
        first, second = sql.marks(2)
        logs = await db.query(
            "SELECT id, log_level, log_type, message, details, created_at FROM agent_logs "
            f"WHERE agent_id = {first} ORDER BY id LIMIT {second}",
            [agent["id"], MAX_EVENTS_PER_SPAN + 1],
        )
        if len(logs) > MAX_EVENTS_PER_SPAN:
            (mark,) = sql.marks(1)
            total = await db.query(
                f"SELECT count(*) AS n FROM agent_logs WHERE agent_id = {mark}", [agent["id"]]
            )
            history.dropped_logs[agent["id"]] = int(total[0]["n"]) - MAX_EVENTS_PER_SPAN
            logs = logs[:MAX_EVENTS_PER_SPAN]
        if logs:
            history.logs[agent["id"]] = logs


async def system_log_days(
    db: DatabaseManager, *, since: datetime | None = None, after_id: int = 0
) -> AsyncIterator[SystemLogDay]:
    """System logs with ids above ``after_id`` in id order, a page at a time, grouped
    into runs of one component's UTC day."""
    sql = _Sql(db)
    while True:
        params: list[Any] = [after_id]
        condition = ""
        if since is not None:
            (mark,) = sql.marks(1, first=2)
            condition = f" AND created_at >= {mark}"
            params.append(sql.time(since))
        (after_mark,) = sql.marks(1)
        (limit_mark,) = sql.marks(1, first=len(params) + 1)
        params.append(PAGE_SIZE)
        rows: Sequence[dict[str, Any]] = await db.query(
            "SELECT id, log_level, component, message, details, created_at FROM system_logs "
            f"WHERE id > {after_mark}{condition} ORDER BY id LIMIT {limit_mark}",
            params,
        )
        for (component, day), group in groupby(
            rows, key=lambda row: (row["component"], day_of(row["created_at"]))
        ):
            yield SystemLogDay(component, day, list(group))
        if len(rows) < PAGE_SIZE:
            return
        after_id = int(rows[-1]["id"])


_RUNNING_AGENT = "('initializing', 'planning', 'executing', 'reviewing')"
_RUNNING_PROMPT = "('pending', 'streaming')"


async def active_sessions(db: DatabaseManager, window_start: datetime) -> set[str]:
    """Sessions with something running (an unfinished agent or prompt) or something new
    since ``window_start`` (an agent started, a prompt or an agent log written). Each
    part reads an index: this runs every second while ``--follow`` does."""
    sql = _Sql(db)
    first, second, third = sql.marks(3)
    rows = await db.query(
        f"SELECT session_id FROM agents WHERE status IN {_RUNNING_AGENT} "
        f"UNION SELECT session_id FROM agents WHERE started_at >= {first} "
        "UNION SELECT a.session_id FROM prompts p JOIN agents a ON a.id = p.agent_id "
        f"WHERE p.status IN {_RUNNING_PROMPT} "
        "UNION SELECT a.session_id FROM prompts p JOIN agents a ON a.id = p.agent_id "
        f"WHERE p.created_at >= {second} "
        "UNION SELECT a.session_id FROM agent_logs l JOIN agents a ON a.id = l.agent_id "
        f"WHERE l.created_at >= {third}",
        [sql.time(window_start)] * 3,
    )
    return {row["session_id"] for row in rows}


async def recent_system_logs(db: DatabaseManager, window_start: datetime) -> list[dict[str, Any]]:
    """System logs written at or after ``window_start``, in id order."""
    sql = _Sql(db)
    (mark,) = sql.marks(1)
    return await db.query(
        "SELECT id, log_level, component, message, details, created_at FROM system_logs "
        f"WHERE created_at >= {mark} ORDER BY id",
        [sql.time(window_start)],
    )
