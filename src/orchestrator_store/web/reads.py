"""The dashboard's reads: what each page shows, in a few bounded statements.

``DashboardReads(db)`` answers the pages from the totals the store's triggers
keep (``session_totals``, ``daily_costs``, ``model_costs``) and from indexed
lookups with a LIMIT, so that a page takes the same time on a store of a
thousand prompts as on one of a million. Where the store's public methods fit
(``session_summary``, ``session_tree``, ``cost_totals``, ``get_prompt``,
``list_workflows``, ``agents_with_totals``) it calls them; the statements here
are those the dashboard needs and the store does not offer (through
``db.query``), written once with ``?`` placeholders and numbered for
PostgreSQL (``$1``, ``$2``, ...).

Every row comes back with a ``session_href`` beside a ``session_id``
(``shown``); making stored text visible and escaping it is the templates' job
(``rendering``). Long stored text (prompts,
messages) is cut in SQL where a page only shows its start, so a list of 500
prompts never carries 500 whole conversations.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from ..errors import ValidationError
from ..manager import DatabaseManager
from ..models import format_timestamp

__all__ = [
    "ACTIVE_STATUSES",
    "SESSION_SORTS",
    "SESSION_STATUSES",
    "DashboardReads",
    "Row",
    "SessionFilter",
    "first_line",
    "session_href",
]

Row = dict[str, Any]

NANO = 1_000_000_000  # nano-dollars a dollar: the totals' unit

# An agent is running while its status is one of these and it has no end time
# (the rule session_totals.active_agents counts by).
ACTIVE_STATUSES = ("initializing", "planning", "executing", "reviewing")
_ACTIVE = f"a.status IN {ACTIVE_STATUSES!r} AND a.completed_at IS NULL"

SESSION_STATUSES = {
    "running": "active_agents > 0",
    "failed": "failed_agents > 0",
    "completed": "active_agents = 0 AND failed_agents = 0",
}
SESSION_SORTS = ("last", "cost", "tokens", "duration")
_SESSION_COLUMNS = (
    "session_id, agents, active_agents, failed_agents, prompts, failed_prompts,"
    " tokens_input, tokens_output, cost_nano, first_activity, last_activity"
)

# A failed agent is listed by when it failed; the index range it is looked up in
# is its start, so agents that ran longer than this before failing are left out.
FAILED_LOOKBACK = timedelta(days=7)


@dataclass(frozen=True)
class SessionFilter:
    """What the sessions page asks for (already validated by the page)."""

    status: str | None = None  # a key of SESSION_STATUSES
    since: date | None = None  # last activity on or after this UTC day
    until: date | None = None  # last activity on or before this UTC day
    sort: str = "last"  # one of SESSION_SORTS
    descending: bool = True


def day_start(day: date) -> str:
    """The first moment of a UTC day in the store's timestamp format."""
    return f"{day.isoformat()}T00:00:00.000000+00:00"


def _numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1``, ``$2``, ... (the SQL here has
    no ``?`` anywhere else)."""
    numbers = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(numbers)}", sql)


def first_line(text: Any, size: int = 200) -> str:
    """The first non-blank line of ``text``, cut to ``size`` characters."""
    if not text:
        return ""
    for line in str(text).splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= size else line[: size - 1] + "…"
    return ""


def session_href(session_id: str) -> str:
    """A session's page. Every character but letters, digits and ``_.-~`` is
    percent-encoded, ``/`` too, so that no part of an id reads as a path step."""
    return "/sessions/" + quote(session_id, safe="")


def _dollars(row: Row) -> float:
    """A row's ``cost_nano`` (plus ``cost_whole`` dollars where a sum was split)."""
    return (int(row.get("cost_whole") or 0) * NANO + int(row.get("cost_nano") or 0)) / NANO


def shown(row: Row) -> Row:
    """A row as pages show it: with its session's page (``session_href``)
    when it has a session. (Templates make its text visible and escape it.)"""
    if isinstance(row.get("session_id"), str):
        return {**row, "session_href": session_href(row["session_id"])}
    return row


def _session_row(row: Row) -> Row:
    return {
        **{key: value for key, value in row.items() if key != "cost_nano"},
        "cost_usd": _dollars(row),
        "tokens": int(row["tokens_input"]) + int(row["tokens_output"]),
    }


class DashboardReads:
    """The pages' statements over one open store (either backend)."""

    def __init__(self, db: DatabaseManager) -> None:
        self.db = db
        self._postgres = db.backend_name == "postgresql"

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        rows = await self.db.query(_numbered(sql) if self._postgres else sql, list(params))
        return [shown(row) for row in rows]

    def _cost_sum(self, column: str) -> str:
        """A sum of nano-dollars that cannot overflow: SQLite's integer sum()
        raises past 2**63, so whole dollars and the rest are added apart;
        PostgreSQL's are NUMERIC."""
        if self._postgres:
            return f"0 AS cost_whole, sum({column}) AS cost_nano"
        return f"sum({column} / {NANO}) AS cost_whole, sum({column} % {NANO}) AS cost_nano"

    # --- the overview -------------------------------------------------------------

    async def running_agents(self, *, limit: int) -> tuple[list[Row], int]:
        """The latest-started running agents (at most ``limit``, each with its
        prompts' sums and total cost) and how many run in all. Served by the
        index on (status, started_at): only running agents are read."""
        rows = await self._rows(
            "SELECT a.id, a.session_id, a.parent_agent_id, a.status, a.started_at,"
            " a.completed_at, a.cost_usd, o.name AS definition, o.agent_type"
            " FROM agents a JOIN orchestrator_agents o ON o.id = a.orchestrator_agent_id"
            f" WHERE {_ACTIVE} ORDER BY a.started_at DESC LIMIT ?",
            [limit],
        )
        count = await self._rows(f"SELECT count(*) AS n FROM agents a WHERE {_ACTIVE}")
        return await self.db.agents_with_totals(rows), int(count[0]["n"])

    async def failed_agents(self, *, since: datetime, limit: int) -> list[Row]:
        """Agents that failed at ``since`` or later (by their end, or their
        start when they have none), latest first, at most ``limit``; their
        error message cut to its first 1,000 characters. An index range: the
        failed agents started within ``FAILED_LOOKBACK`` of ``since``."""
        return await self._rows(
            "SELECT a.id, a.session_id, a.status, a.started_at, a.completed_at,"
            " substr(a.error_message, 1, 1000) AS error_message,"
            " o.name AS definition, o.agent_type"
            " FROM agents a JOIN orchestrator_agents o ON o.id = a.orchestrator_agent_id"
            " WHERE a.status = 'failed' AND a.started_at >= ?"
            " AND coalesce(a.completed_at, a.started_at) >= ?"
            " ORDER BY coalesce(a.completed_at, a.started_at) DESC, a.id DESC LIMIT ?",
            [format_timestamp(since - FAILED_LOOKBACK), format_timestamp(since), limit],
        )

    async def daily_costs(self, *, first_day: date) -> list[Row]:
        """Cost, prompts and tokens per UTC day and model from ``first_day``
        on: ``day``, ``model`` (None for agents' own costs), ``prompts``,
        ``tokens_input``, ``tokens_output``, ``cost_usd``. A range of the day
        sums' primary key: a few rows per day, however many prompts."""
        rows = await self._rows(
            "SELECT day, model_used, sum(prompts) AS prompts,"
            " sum(tokens_input) AS tokens_input, sum(tokens_output) AS tokens_output,"
            f" {self._cost_sum('cost_nano')}"
            " FROM daily_costs WHERE day >= ? GROUP BY day, model_used ORDER BY day, model_used",
            [first_day.isoformat()],
        )
        return [
            {
                "day": row["day"],
                "model": row["model_used"] or None,
                "prompts": int(row["prompts"]),
                "tokens_input": int(row["tokens_input"]),
                "tokens_output": int(row["tokens_output"]),
                "cost_usd": _dollars(row),
            }
            for row in rows
            if int(row["prompts"]) or _dollars(row)
        ]

    # --- sessions -----------------------------------------------------------------

    def _session_order(self, sort: str) -> str:
        if sort == "duration":
            if self._postgres:
                return "last_activity - first_activity"
            return "julianday(last_activity) - julianday(first_activity)"
        return {
            "last": "last_activity",
            "cost": "cost_nano",
            "tokens": "tokens_input + tokens_output",
        }[sort]

    def _session_where(self, chosen: SessionFilter) -> tuple[str, list[Any]]:
        conditions: list[str] = []
        params: list[Any] = []
        if chosen.status is not None:
            conditions.append(SESSION_STATUSES[chosen.status])
        if chosen.since is not None:
            conditions.append("last_activity >= ?")
            params.append(day_start(chosen.since))
        if chosen.until is not None:  # the whole of that day
            conditions.append("last_activity < ?")
            params.append(day_start(chosen.until + timedelta(days=1)))
        return (" WHERE " + " AND ".join(conditions)) if conditions else "", params

    async def sessions(self, chosen: SessionFilter, *, limit: int, offset: int) -> list[Row]:
        """A page of sessions from their totals rows, filtered and sorted as
        ``chosen`` says (ties broken by session id, the same way). By last
        activity or cost, without a status filter, an index gives the order;
        otherwise it is a sort of the totals rows (one per session)."""
        where, params = self._session_where(chosen)
        direction = "DESC" if chosen.descending else "ASC"
        rows = await self._rows(
            f"SELECT {_SESSION_COLUMNS} FROM session_totals{where}"
            f" ORDER BY {self._session_order(chosen.sort)} {direction}, session_id {direction}"
            " LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_session_row(row) for row in rows]

    async def count_sessions(self, chosen: SessionFilter) -> int:
        """How many sessions ``chosen``'s filters keep (sort aside)."""
        where, params = self._session_where(chosen)
        rows = await self._rows(f"SELECT count(*) AS n FROM session_totals{where}", params)
        return int(rows[0]["n"])

    async def costliest_sessions(self, *, limit: int) -> list[Row]:
        """The sessions that cost most, costliest first: read backwards along
        the index on (cost_nano, session_id)."""
        rows = await self._rows(
            f"SELECT {_SESSION_COLUMNS} FROM session_totals WHERE cost_nano > 0"
            " ORDER BY cost_nano DESC, session_id DESC LIMIT ?",
            [limit],
        )
        return [_session_row(row) for row in rows]

    # --- one session --------------------------------------------------------------

    async def session_prompts(self, session_id: str, *, limit: int) -> list[Row]:
        """A session's first ``limit`` prompts in time order, their text cut to
        a preview: the session's agents by the index on (session_id,
        started_at), then each agent's prompts by (agent_id, created_at)."""
        return await self._rows(
            "SELECT p.id, p.agent_id, p.prompt_type, substr(p.prompt_name, 1, 200) AS prompt_name,"
            " substr(p.prompt_text, 1, 200) AS prompt_preview, p.status,"
            " substr(p.model_used, 1, 200) AS model_used, p.tokens_input, p.tokens_output,"
            " p.cost_usd, p.latency_ms, p.created_at, p.completed_at,"
            " substr(p.error_message, 1, 500) AS error_message"
            " FROM prompts p JOIN agents a ON a.id = p.agent_id"
            " WHERE a.session_id = ? ORDER BY p.created_at, p.id LIMIT ?",
            [session_id, limit],
        )

    async def session_logs(self, session_id: str, *, limit: int) -> list[Row]:
        """A session's agents' first ``limit`` log lines in time order, their
        message cut to 300 characters: by the index on (agent_id, created_at)."""
        return await self._rows(
            "SELECT l.id, l.agent_id, l.log_level, l.log_type,"
            " substr(l.message, 1, 300) AS message, l.created_at"
            " FROM agent_logs l JOIN agents a ON a.id = l.agent_id"
            " WHERE a.session_id = ? ORDER BY l.created_at, l.id LIMIT ?",
            [session_id, limit],
        )

    # --- definitions --------------------------------------------------------------

    async def definitions(self, *, limit: int, offset: int) -> list[Row]:
        """A page of agent definitions, newest first, each with its last agent's
        start (``last_run``: one step down the index on (orchestrator_agent_id,
        started_at)) and its all-time ``prompts`` and ``cost_usd`` (from the
        model sums the triggers keep, a few rows per definition and model)."""
        rows = await self._rows(
            "SELECT o.id, o.name, o.agent_type, o.default_model,"
            " substr(o.description, 1, 1000) AS description, o.created_at,"
            " (SELECT max(a.started_at) FROM agents a"
            "  WHERE a.orchestrator_agent_id = o.id) AS last_run"
            " FROM orchestrator_agents o ORDER BY o.created_at DESC, o.id DESC LIMIT ? OFFSET ?",
            [limit, offset],
        )
        sums = {
            str(row["orchestrator_agent_id"]): row
            for row in await self._rows(
                "SELECT orchestrator_agent_id, sum(prompts) AS prompts,"
                f" {self._cost_sum('cost_nano')}"
                " FROM model_costs GROUP BY orchestrator_agent_id"
            )
        }
        return [
            {
                **row,
                "prompts": int(sums[str(row["id"])]["prompts"]) if str(row["id"]) in sums else 0,
                "cost_usd": _dollars(sums[str(row["id"])]) if str(row["id"]) in sums else 0.0,
            }
            for row in rows
        ]

    # --- the store's own reads, with their sessions' pages ---------------------------------------

    async def session_summary(self, session_id: str) -> Row | None:
        """A session's totals row (``session_summary``), or None when there is
        no such session, or no session could have that id (blank, NUL)."""
        try:
            row = await self.db.session_summary(session_id)
        except ValidationError:
            return None
        if row is None:
            return None
        return shown({**row, "tokens": int(row["tokens_input"]) + int(row["tokens_output"])})

    async def session_models(self, session_id: str) -> list[Row]:
        """A session's cost by model (``cost_totals``): bounded by its rows."""
        return [shown(row) for row in await self.db.cost_totals("model", session_id=session_id)]

    async def session_tree(self, session_id: str) -> list[Row]:
        """A session's agents as a tree, with their sums (``session_tree``)."""
        return [shown(row) for row in await self.db.session_tree(session_id)]

    async def prompt(self, prompt_id: str) -> Row | None:
        """A prompt with its agent's session and status and its definition's
        name, by primary keys; None for an unknown or malformed id."""
        try:
            row = await self.db.get_prompt(prompt_id)
        except ValidationError:
            return None
        if row is None:
            return None
        agent = await self.db.get_agent(row["agent_id"])
        definition = (
            await self.db.get_orchestrator_agent(agent["orchestrator_agent_id"]) if agent else None
        )
        return shown(
            {
                **row,
                "session_id": agent["session_id"] if agent else None,
                "agent_status": agent["status"] if agent else None,
                "definition": definition["name"] if definition else None,
            }
        )

    async def workflows(self, *, status: str | None, limit: int, offset: int) -> list[Row]:
        """A page of workflow runs, newest first (``list_workflows``: the index
        on (status, created_at), or on created_at)."""
        rows = await self.db.list_workflows(status=status, limit=limit, offset=offset)
        return [shown(row) for row in rows]
