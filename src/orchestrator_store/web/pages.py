"""The dashboard's pages: the overview, sessions, a session, a prompt, the
agent definitions and the workflow runs (the logs page is ``log_view``'s).

Each view checks its query parameters first (a bad one is a 400 page naming
it), reads through ``reads.DashboardReads`` (bounded reads of the totals and
of indexed rows) and renders its template. Pages render the same from a plain
GET, which is what the live refresh fetches: the overview, the sessions and a
session mark their ``<main>`` with ``data-live="refresh"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..models import WORKFLOW_STATUSES
from .charts import cost_per_day, session_waterfall
from .formatting import parse_moment
from .reads import (
    ACTIVE_STATUSES,
    SESSION_SORTS,
    SESSION_STATUSES,
    DashboardReads,
    Row,
    SessionFilter,
    first_line,
)
from .rendering import render

__all__ = ["PAGE_SIZE", "WATERFALL_ROWS", "page_routes"]

PAGE_SIZE = 50  # rows per page of a list
WATERFALL_ROWS = 500  # prompts, and log lines, a session's page reads at most
SHOWN_ON_OVERVIEW = 50  # running agents, failed agents
COSTLIEST_SESSIONS = 10
CHART_DAYS = 30
MAX_PAGE = 1_000_000  # past any real list; keeps OFFSET a small number


class PageError(Exception):
    """A request this page cannot answer: shown as ``error.html``."""

    def __init__(self, status_code: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.title = title
        self.message = message


def _bad_parameter(name: str, expected: str, given: str) -> PageError:
    return PageError(400, "Bad request", f"parameter {name!r}: {expected} (got {given!r})")


def _not_found(message: str) -> PageError:
    return PageError(404, "Not found", message)


# --- query parameters ----------------------------------------------------------------


def _given(request: Request, name: str) -> str | None:
    """A parameter's value; an empty one (a form's blank field) is not given."""
    value = request.query_params.get(name)
    return value if value else None


def _choice(request: Request, name: str, choices: Sequence[str], default: str | None) -> str | None:
    value = _given(request, name)
    if value is None:
        return default
    if value not in choices:
        raise _bad_parameter(name, "one of " + ", ".join(choices), value)
    return value


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _day(request: Request, name: str) -> date | None:
    value = _given(request, name)
    if value is None:
        return None
    try:
        if not _DAY.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise _bad_parameter(name, "a UTC day as YYYY-MM-DD", value) from None


def _page_number(request: Request) -> int:
    value = _given(request, "page")
    if value is None:
        return 1
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise _bad_parameter("page", f"a page number from 1 to {MAX_PAGE:,}", value)
    return int(value)


def _pager(
    path: str, kept: Mapping[str, str | None], page: int, has_next: bool, *, pages: int = 0
) -> Row:
    """A list's pager (``_pager.html``): links to the pages either side, and
    when the number of pages is known (``pages``), it and the rows shown."""
    return {
        "page": page,
        "pages": pages,
        "first_row": (page - 1) * PAGE_SIZE + 1 if pages else 0,
        "previous": _link(path, {**kept, "page": str(page - 1)}) if page > 1 else None,
        "next": _link(path, {**kept, "page": str(page + 1)}) if has_next else None,
    }


def _link(path: str, values: Mapping[str, str | None]) -> str:
    """``path`` with the given parameters (None and empty ones left out)."""
    query = urlencode([(name, value) for name, value in values.items() if value])
    return f"{path}?{query}" if query else path


# --- shared pieces -------------------------------------------------------------------


def _seconds_between(start: Any, end: Any) -> float | None:
    began, ended = parse_moment(start), parse_moment(end)
    if began is None or ended is None:
        return None
    return max((ended - began).total_seconds(), 0.0)


def _session_state(row: Row) -> str:
    if int(row["active_agents"]):
        return "running"
    return "failed" if int(row["failed_agents"]) else "completed"


def _with_session_figures(row: Row) -> Row:
    return {
        **row,
        "state": _session_state(row),
        "duration": _seconds_between(row["first_activity"], row["last_activity"]),
    }


View = Callable[[Request], Awaitable[Response]]


def _page(view: View) -> View:
    """``view``, with its ``PageError`` shown as the error page."""

    @wraps(view)
    async def answered(request: Request) -> Response:
        try:
            return await view(request)
        except PageError as error:
            context = {"title": error.title, "message": error.message}
            return render(request, "error.html", context, status_code=error.status_code)

    return answered


def _reads(request: Request) -> DashboardReads:
    return DashboardReads(request.app.state.db)


# --- the overview --------------------------------------------------------------------


def _cost_windows(daily: Sequence[Row], today: date) -> list[Row]:
    windows = []
    for label, first in (
        ("Today", today),
        ("Last 7 days", today - timedelta(days=6)),
        (f"Last {CHART_DAYS} days", today - timedelta(days=CHART_DAYS - 1)),
    ):
        rows = [row for row in daily if row["day"] >= first.isoformat()]
        windows.append(
            {
                "label": label,
                "since": first.isoformat(),
                "cost_usd": sum(row["cost_usd"] for row in rows),
                "prompts": sum(row["prompts"] for row in rows),
                "tokens_input": sum(row["tokens_input"] for row in rows),
                "tokens_output": sum(row["tokens_output"] for row in rows),
            }
        )
    return windows


@_page
async def overview(request: Request) -> Response:
    reads = _reads(request)
    now = datetime.now(UTC)
    today = now.date()
    days = [today - timedelta(days=back) for back in range(CHART_DAYS - 1, -1, -1)]
    daily = await reads.daily_costs(first_day=days[0])
    running, running_count = await reads.running_agents(limit=SHOWN_ON_OVERVIEW)
    failed = await reads.failed_agents(since=now - timedelta(hours=24), limit=SHOWN_ON_OVERVIEW)
    costliest = await reads.costliest_sessions(limit=COSTLIEST_SESSIONS)
    context = {
        "now": now,
        "windows": _cost_windows(daily, today),
        "chart": cost_per_day(daily, days),
        "running": [
            {**agent, "running_for": _seconds_between(agent["started_at"], now)}
            for agent in running
        ],
        "running_count": running_count,
        "failed": [{**agent, "error_line": first_line(agent["error_message"])} for agent in failed],
        "costliest": [_with_session_figures(row) for row in costliest],
    }
    return render(request, "overview.html", context)


# --- sessions --------------------------------------------------------------------------


@_page
async def sessions(request: Request) -> Response:
    status = _choice(request, "status", tuple(SESSION_STATUSES), None)
    since, until = _day(request, "since"), _day(request, "until")
    sort = _choice(request, "sort", SESSION_SORTS, "last") or "last"
    order = _choice(request, "order", ("desc", "asc"), "desc") or "desc"
    page = _page_number(request)
    if since is not None and until is not None and until < since:
        raise _bad_parameter("until", f"a day on or after since ({since})", str(until))
    chosen = SessionFilter(status, since, until, sort, order == "desc")
    reads = _reads(request)
    total = await reads.count_sessions(chosen)
    rows = await reads.sessions(chosen, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    kept: dict[str, str | None] = {
        "status": status,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "sort": sort if sort != "last" else None,
        "order": order if order != "desc" else None,
    }
    headers = {}
    for key in SESSION_SORTS:  # a column's link sorts by it; again, the other way round
        flipped = "asc" if sort == key and order == "desc" else "desc"
        headers[key] = {
            "href": _link("/sessions", {**kept, "sort": key, "order": flipped}),
            "arrow": ("▼" if order == "desc" else "▲") if sort == key else "",
        }
    context = {
        "rows": [_with_session_figures(row) for row in rows],
        "total": total,
        "status": status or "",
        "since": kept["since"] or "",
        "until": kept["until"] or "",
        "sort": sort,
        "order": order,
        "statuses": tuple(SESSION_STATUSES),
        "headers": headers,
        "pager": _pager("/sessions", kept, page, page < pages, pages=pages),
        "filtered": any(kept[name] for name in ("status", "since", "until")),
    }
    return render(request, "sessions.html", context)


# --- one session -----------------------------------------------------------------------


def _flatten(roots: Sequence[Row]) -> list[tuple[int, Row]]:
    """The tree's agents in display order, each with its depth."""
    flat: list[tuple[int, Row]] = []
    stack = [(0, root) for root in reversed(roots)]
    while stack:
        depth, agent = stack.pop()
        flat.append((depth, agent))
        stack.extend((depth + 1, child) for child in reversed(agent.get("children") or []))
    return flat


def _agent_end(agent: Row, now: datetime) -> Any:
    """When the agent ended; ``now`` while it runs; None when it ended untimed."""
    if agent["completed_at"] is not None:
        return agent["completed_at"]
    return now if agent["status"] in ACTIVE_STATUSES else None


@_page
async def session(request: Request) -> Response:
    session_id = request.path_params["session_id"]
    reads = _reads(request)
    summary = await reads.session_summary(session_id)
    if summary is None:
        raise _not_found(f"no session has the id '{session_id}'")
    now = datetime.now(UTC)
    models = await reads.session_models(session_id)
    flat = _flatten(await reads.session_tree(session_id))
    prompts = await reads.session_prompts(session_id, limit=WATERFALL_ROWS + 1)
    logs = await reads.session_logs(session_id, limit=WATERFALL_ROWS + 1)
    more_prompts, more_logs = len(prompts) > WATERFALL_ROWS, len(logs) > WATERFALL_ROWS
    prompts, logs = prompts[:WATERFALL_ROWS], logs[:WATERFALL_ROWS]
    agents = [
        (
            depth,
            {
                **agent,
                "error_line": first_line(agent.get("error_message")),
                "duration": _seconds_between(agent["started_at"], _agent_end(agent, now)),
            },
        )
        for depth, agent in flat
    ]
    names = {str(agent["id"]): agent.get("definition") or "agent" for _, agent in agents}
    context = {
        "session_id": session_id,
        "summary": _with_session_figures(summary),
        "models": models,
        "agents": agents,
        "waterfall": session_waterfall(agents, prompts, logs, now=now),
        "prompts": [
            {
                **prompt,
                "agent_name": names.get(str(prompt["agent_id"]), "agent"),
                "error_line": first_line(prompt["error_message"]),
                "preview_line": first_line(prompt["prompt_preview"], 120),
            }
            for prompt in prompts
        ],
        "logs_shown": len(logs),
        "more_prompts": more_prompts,
        "more_logs": more_logs,
        "limit": WATERFALL_ROWS,
    }
    return render(request, "session.html", context)


# --- one prompt ------------------------------------------------------------------------


@_page
async def prompt(request: Request) -> Response:
    prompt_id = request.path_params["prompt_id"]
    row = await _reads(request).prompt(prompt_id)
    if row is None:
        raise _not_found(f"no prompt has the id '{prompt_id}'")
    return render(request, "prompt.html", {"prompt": row})


# --- definitions and workflows ---------------------------------------------------------


@_page
async def definitions(request: Request) -> Response:
    page = _page_number(request)
    rows = await _reads(request).definitions(limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    context = {
        "rows": rows[:PAGE_SIZE],
        "pager": _pager("/definitions", {}, page, len(rows) > PAGE_SIZE),
    }
    return render(request, "definitions.html", context)


def _workflow_row(row: Row, now: datetime) -> Row:
    seconds = row.get("duration_seconds")
    if seconds is None and row["status"] in ("pending", "in_progress"):
        seconds = _seconds_between(row.get("started_at"), now)
    return {**row, "duration": seconds, "error_line": first_line(row.get("error_message"))}


@_page
async def workflows(request: Request) -> Response:
    status = _choice(request, "status", WORKFLOW_STATUSES, None)
    page = _page_number(request)
    rows = await _reads(request).workflows(
        status=status, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
    )
    now = datetime.now(UTC)
    context = {
        "rows": [_workflow_row(row, now) for row in rows[:PAGE_SIZE]],
        "status": status or "",
        "statuses": WORKFLOW_STATUSES,
        "pager": _pager("/workflows", {"status": status}, page, len(rows) > PAGE_SIZE),
    }
    return render(request, "workflows.html", context)


def page_routes() -> list[BaseRoute]:
    return [
        Route("/", overview),
        Route("/sessions", sessions),
        Route("/sessions/{session_id:path}", session),
        Route("/prompts/{prompt_id}", prompt),
        Route("/definitions", definitions),
        Route("/workflows", workflows),
    ]
