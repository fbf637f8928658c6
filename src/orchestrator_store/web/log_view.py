"""The logs page (``/logs``): agent and system logs in one time line, newest first.

Its filters (``level``, ``type``, ``component``, ``agent``, ``limit``) are read
here for the page and for ``/events/logs``, which follows the same time line
from the cursor the page rendered (``live``). Rows are rendered by one template,
``_log_rows.html``, for the page and for the events alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response

from ..errors import ValidationError
from ..manager import DatabaseManager
from ..models import LOG_LEVELS, LOG_TYPES, AgentIdPrefix, parse_input
from .rendering import render

__all__ = [
    "BadParameter",
    "LogFilters",
    "cursor_text",
    "logs_page",
    "read_filters",
    "render_rows",
    "sessions_of_agents",
    "shown_rows",
]

DEFAULT_LIMIT = 200
MAX_LIMIT = 2000
SHORT_ID = 8  # an agent id's last characters, as lists show it (its first ones are its time)
MESSAGE_CHARS = 4000  # a longer message is cut, saying how much more there is
DETAILS_INLINE_CHARS = 160  # longer details fold into a <details> element
DETAILS_CHARS = 10_000  # and are cut beyond this
_IDS_PER_QUERY = 500
# The store's names of the filters, and the query parameters that set them.
_PARAMETER_OF_FIELD = {
    "min_level": "level",
    "log_level": "level",
    "log_type": "type",
    "component": "component",
    "agent_id": "agent",
    "limit": "limit",
}


class BadParameter(Exception):
    """A query parameter the page cannot take; the message names it."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{name}: {why}")
        self.name = name


def parameter_of(error: ValidationError) -> str | None:
    """The query parameter behind the store's ``error``, if it was one of the filters."""
    return _PARAMETER_OF_FIELD.get(error.field or "")


@dataclass(frozen=True)
class LogFilters:
    """The filters as given (for the form) and as the store takes them."""

    level: str = ""
    log_type: str = ""
    component: str = ""
    agent: str = ""  # as typed: an id, or its first or last characters
    agent_id: str | None = None  # the one agent it names
    limit: int = DEFAULT_LIMIT

    def for_store(self) -> dict[str, Any]:
        """``list_logs``' and ``logs_after``' filter arguments."""
        return {
            "agent_id": self.agent_id,
            "min_level": self.level or None,
            "log_type": self.log_type or None,
            "component": self.component or None,
        }

    def narrows(self) -> bool:
        """Some rows do not pass."""
        return bool(self.level or self.log_type or self.component or self.agent_id)

    def for_events(self) -> str:
        """The query string ``/events/logs`` takes for the same rows (the agent by its id)."""
        given = {
            "level": self.level,
            "type": self.log_type,
            "component": self.component,
            "agent": self.agent_id or "",
        }
        return urlencode({name: value for name, value in given.items() if value})


async def read_filters(request: Request) -> LogFilters:
    """The request's filters, the agent looked up; ``BadParameter`` names a bad one."""
    params = request.query_params
    given_level = params.get("level", "").strip()
    level = given_level.upper()
    if level and level not in LOG_LEVELS:
        raise BadParameter("level", f"{given_level!r} is not one of {', '.join(LOG_LEVELS)}")
    log_type = params.get("type", "").strip()
    if log_type and log_type not in LOG_TYPES:
        raise BadParameter("type", f"{log_type!r} is not one of {', '.join(LOG_TYPES)}")
    component = params.get("component", "").strip()
    agent = params.get("agent", "").strip()
    if component and (agent or log_type):
        raise BadParameter(
            "component",
            "a component selects system logs, an agent or a type agent logs: give one kind",
        )
    limit_text = params.get("limit", "").strip()
    limit = DEFAULT_LIMIT
    if limit_text:
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
            raise BadParameter("limit", f"{limit_text!r} is not a number from 1 to {MAX_LIMIT}")
        limit = int(limit_text)
    agent_id = await _agent_named(request.app.state.db, agent) if agent else None
    return LogFilters(level, log_type, component, agent, agent_id, limit)


async def _agent_named(db: DatabaseManager, part: str) -> str:
    """The id of the one agent whose id starts (or ends) with ``part``."""
    try:
        part = parse_input(AgentIdPrefix, "agents", {"prefix": part}).prefix
    except ValidationError:
        raise BadParameter(
            "agent", f"{part!r} is not an agent id or part of one (hex digits and dashes)"
        ) from None
    found = [*await db.find_agents_by_prefix(part), *await db.find_agents_by_suffix(part)]
    ids: set[str] = {
        row["id"] for row in found if row["id"].startswith(part) or row["id"].endswith(part)
    }
    if not ids:
        raise BadParameter("agent", f"no agent id starts or ends with {part!r}")
    if len(ids) > 1:
        raise BadParameter("agent", f"{part!r} matches several agents: give more characters")
    return ids.pop()


def cursor_text(cursor: Mapping[str, Any]) -> str:
    """A cursor as one line of JSON: what the page renders and each event's ``id``."""
    return json.dumps(cursor, separators=(",", ":"), sort_keys=True)


async def sessions_of_agents(
    db: DatabaseManager, agent_ids: Iterable[str | None], known: dict[str, str | None]
) -> dict[str, str | None]:
    """``known`` (agent id -> session id) completed for ``agent_ids``, by primary key."""
    missing = sorted({agent for agent in agent_ids if agent and agent not in known})
    for start in range(0, len(missing), _IDS_PER_QUERY):
        chunk = missing[start : start + _IDS_PER_QUERY]
        if db.backend_name == "postgresql":
            marks = ", ".join(f"${n}" for n in range(1, len(chunk) + 1))
        else:
            marks = ", ".join("?" for _ in chunk)
        rows = await db.query(f"SELECT id, session_id FROM agents WHERE id IN ({marks})", chunk)
        found = {str(row["id"]): row["session_id"] for row in rows}
        known.update({agent: found.get(agent) for agent in chunk})
    return known


def _cut(text: str, limit: int) -> tuple[str, int]:
    """``text`` to ``limit`` characters, and how many were left off."""
    return (text, 0) if len(text) <= limit else (text[:limit], len(text) - limit)


def _shown(row: Mapping[str, Any], sessions: Mapping[str, str | None]) -> dict[str, Any]:
    """What the row template shows of one log row (text only: the template escapes it)."""
    agent_id = row.get("agent_id")
    session_id = sessions.get(agent_id) if agent_id else None
    message, message_more = _cut(str(row["message"]), MESSAGE_CHARS)
    details = row.get("details")
    details_short = details_full = None
    details_more = 0
    if details is not None:
        compact = json.dumps(details, ensure_ascii=False, separators=(", ", ": "))
        if len(compact) <= DETAILS_INLINE_CHARS:
            details_short = compact
        else:
            details_short = compact[: DETAILS_INLINE_CHARS - 1] + "…"
            pretty = json.dumps(details, ensure_ascii=False, indent=2)
            details_full, details_more = _cut(pretty, DETAILS_CHARS)
    return {
        "source": row["source"],
        "created_at": row["created_at"],
        "level": row["log_level"],
        "agent_id": agent_id,
        "agent_short": agent_id[-SHORT_ID:] if agent_id else None,
        "session_id": session_id,
        "session_href": f"/sessions/{quote(session_id, safe='')}" if session_id else None,
        "log_type": row.get("log_type"),
        "component": row.get("component"),
        "message": message,
        "message_more": message_more,
        "details_short": details_short,
        "details_full": details_full,
        "details_more": details_more,
    }


def shown_rows(
    rows: Iterable[Mapping[str, Any]], sessions: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    """What ``_log_rows.html`` takes as ``rows``."""
    return [_shown(row, sessions) for row in rows]


def render_rows(
    request: Request, rows: Iterable[Mapping[str, Any]], sessions: Mapping[str, str | None]
) -> str:
    """``rows`` as the logs table's ``<tr>`` elements, in the order given, escaped."""
    template = request.app.state.templates.get_template("_log_rows.html")
    html: str = template.render(rows=shown_rows(rows, sessions))
    return html


async def logs_page(request: Request) -> Response:
    db: DatabaseManager = request.app.state.db
    context: dict[str, Any] = {
        "levels": LOG_LEVELS,
        "log_types": LOG_TYPES,
        "error": None,
        "rows": [],
        "cursor": None,
        "events_query": "",
    }
    try:
        filters = await read_filters(request)
    except BadParameter as bad:
        given = request.query_params
        typed = LogFilters(
            level=given.get("level", ""),
            log_type=given.get("type", ""),
            component=given.get("component", ""),
            agent=given.get("agent", ""),
        )
        return render(
            request, "logs.html", {**context, "filters": typed, "error": str(bad)}, status_code=400
        )
    # The cursor first, then rows up to it: what is written between is the events' to show.
    cursor = (await db.log_bounds())["cursor"]
    try:
        rows = await db.list_logs(**filters.for_store(), limit=filters.limit, up_to=cursor)
    except ValidationError as error:
        name = parameter_of(error) or "filters"
        return render(
            request,
            "logs.html",
            {**context, "filters": filters, "error": f"{name}: {error}"},
            status_code=400,
        )
    rows.reverse()  # newest first
    sessions = await sessions_of_agents(db, (row["agent_id"] for row in rows), {})
    return render(
        request,
        "logs.html",
        {
            **context,
            "filters": filters,
            "cursor": cursor_text(cursor),
            "events_query": filters.for_events(),
            "rows": shown_rows(rows, sessions),
        },
    )
