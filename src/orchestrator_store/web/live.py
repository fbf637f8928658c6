"""Server-sent events that keep pages current while agents write.

- ``/events/logs?<the logs page's filters>&cursor=<json>``: new log rows, polled
  with ``logs_after`` every live interval and sent as ``event: rows`` whose data
  is the rows' server-rendered, escaped HTML (newest first) and whose ``id`` is
  the cursor after them. A browser that reconnects sends that id back
  (``Last-Event-ID``, which wins over ``cursor=``), so it resumes exactly
  there: no row missed, none repeated. The cursor is opaque: whatever
  ``log_bounds`` and ``logs_after`` hand out, as JSON, passed back unchanged
  (or swapped whole for a later ``log_bounds``, see ``_look``).
- ``/events/changes``: ``event: changed`` when the store changed since the last
  look (``changes``), at most once per live interval, for the pages that
  re-render themselves (``data-live="refresh"``).

``live_routes`` also serves the logs page (``log_view``), which renders the
cursor these events go on from.

Every stream ends when its client goes, and when the server shuts down: uvicorn
waits for open responses before it stops, so a server that runs the dashboard
should be a ``DashboardServer``, which ends the streams first
(``stop_live_streams``). A comment line every ``KEEPALIVE_SECONDS`` keeps idle
connections open through proxies.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from ..errors import DatabaseError, ValidationError
from ..manager import DatabaseManager
from .changes import open_change_marker
from .log_view import (
    BadParameter,
    LogFilters,
    cursor_text,
    logs_page,
    parameter_of,
    read_filters,
    render_rows,
    sessions_of_agents,
)

__all__ = ["KEEPALIVE_SECONDS", "DashboardServer", "live_routes", "stop_live_streams"]

KEEPALIVE_SECONDS = 15.0
ROWS_PER_TABLE = 250  # logs_after's limit is per log table: at most 500 rows an event
MAX_CURSOR_CHARS = 4096
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what ends a line of an event stream
KEEPALIVE = ": keepalive\n\n"  # a comment line: clients ignore it, proxies see traffic


def live_routes() -> list[BaseRoute]:
    """The logs page and the event streams."""
    return [
        Route("/logs", logs_page),
        Route("/events/logs", log_events),
        Route("/events/changes", change_events),
    ]


# --- ending the streams ---------------------------------------------------------------


def stop_live_streams(app: Starlette) -> None:
    """End every event stream of ``app`` at its next look (within a live interval)."""
    app.state.live_streams_stopping = True


def _stopping(app: Starlette) -> bool:
    return bool(getattr(app.state, "live_streams_stopping", False))


class DashboardServer(uvicorn.Server):
    """A uvicorn server that ends the dashboard's event streams when it shuts
    down; plain uvicorn would wait for them, and they never end by themselves."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if isinstance(self.config.app, Starlette):
            self.config.app.state.live_streams_stopping = False
        await super().startup(sockets=sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if isinstance(self.config.app, Starlette):
            stop_live_streams(self.config.app)
        await super().shutdown(sockets=sockets)


async def _should_end(request: Request) -> bool:
    return _stopping(request.app) or await request.is_disconnected()


# --- the response -------------------------------------------------------------------------


class EventStream(StreamingResponse):
    """A ``text/event-stream`` of ``events``; ``on_close`` runs when the response
    ends, however it ends (done, client gone, cancelled), so nothing is left open."""

    def __init__(
        self, events: AsyncGenerator[str, None], *, on_close: Callable[[], None] | None = None
    ) -> None:
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )
        self._events = events
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A generator cancelled while its chunk was being sent stays suspended
            # at its yield: close it now rather than whenever it is collected.
            # (Closing runs no await, so it completes even in a cancelled task.)
            try:
                await self._events.aclose()
            finally:
                if self._on_close is not None:
                    self._on_close()


def _event(name: str, data: str, event_id: str | None = None) -> str:
    """One event; every line of ``data`` gets its ``data:`` field (the client joins them)."""
    head = f"event: {name}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head + "".join(f"data: {line}\n" for line in _LINE_BREAK.split(data)) + "\n"


# --- /events/logs -----------------------------------------------------------------------------


def _given_cursor(request: Request) -> Mapping[str, Any] | None:
    """The cursor the client resumes from: ``Last-Event-ID``, else ``cursor=``."""
    text = request.headers.get("last-event-id") or request.query_params.get("cursor")
    if not text:
        return None
    if len(text) > MAX_CURSOR_CHARS:
        raise BadParameter("cursor", "is too long to be a cursor of this page")
    try:
        cursor = json.loads(text)
    except ValueError:
        raise BadParameter("cursor", "is not JSON: pass back what the page rendered") from None
    if not isinstance(cursor, dict):
        raise BadParameter("cursor", "is not a JSON object: pass back what the page rendered")
    return cursor


async def log_events(request: Request) -> Response:
    db: DatabaseManager = request.app.state.db
    try:
        filters = await read_filters(request)
        cursor = _given_cursor(request)
    except BadParameter as bad:
        return PlainTextResponse(str(bad), status_code=400)
    if cursor is None:
        cursor = (await db.log_bounds())["cursor"]
    # The first look happens here, so that the store's verdict on the cursor is a 400.
    try:
        rows, cursor = await _look(db, filters, cursor)
    except ValidationError as error:
        name = parameter_of(error) or "cursor"
        return PlainTextResponse(f"{name}: {error}", status_code=400)
    return EventStream(_log_stream(request, filters, rows, cursor))


async def _look(
    db: DatabaseManager, filters: LogFilters, cursor: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], Mapping[str, Any]]:
    """The rows after ``cursor`` that pass ``filters``, and the cursor after them.

    ``logs_after`` moves the cursor only past rows that pass, so a selective
    filter would read the same unmatched rows again at every look, more at
    each. When none passed, the bounds read just before are as good a place
    to go on from: every row they cover was visible to the look and did not
    pass, and they cover every row an earlier look delivered (a cursor read
    later covers all a reader could see before). The cursor is swapped whole,
    never compared or taken apart: it stays opaque."""
    bounds = (await db.log_bounds())["cursor"] if filters.narrows() else None
    rows, after = await db.logs_after(cursor, **filters.for_store(), limit=ROWS_PER_TABLE)
    if not rows and bounds is not None:
        after = bounds
    return rows, after


def _batch_was_full(rows: list[dict[str, Any]]) -> bool:
    """One table gave all ``logs_after`` may give at once: more may be waiting."""
    per_source: dict[str, int] = {}
    for row in rows:
        per_source[row["source"]] = per_source.get(row["source"], 0) + 1
    return any(count >= ROWS_PER_TABLE for count in per_source.values())


async def _log_stream(
    request: Request, filters: LogFilters, rows: list[dict[str, Any]], cursor: Mapping[str, Any]
) -> AsyncGenerator[str, None]:
    db: DatabaseManager = request.app.state.db
    interval: float = request.app.state.settings.live_interval
    sessions: dict[str, str | None] = {}  # agent id -> session id, for this stream's links
    sent_at = time.monotonic()
    sent_id: str | None = None
    yield ": following\n\n"  # headers and a first line now: the client knows it is connected
    while True:
        if rows:
            await sessions_of_agents(db, (row["agent_id"] for row in rows), sessions)
            html = render_rows(request, reversed(rows), sessions)  # newest first, as the table
            sent_id = cursor_text(cursor)
            yield _event("rows", html, sent_id)
            sent_at = time.monotonic()
        elif time.monotonic() - sent_at >= KEEPALIVE_SECONDS:
            moved = cursor_text(cursor)
            # An id without data is no event, but a reconnect resumes from it.
            yield KEEPALIVE if moved == sent_id else f": keepalive\nid: {moved}\n\n"
            sent_id = moved
            sent_at = time.monotonic()
        if not _batch_was_full(rows):
            await asyncio.sleep(interval)
        if await _should_end(request):
            return
        try:
            rows, cursor = await _look(db, filters, cursor)
        except DatabaseError as error:
            if not error.retryable:
                raise
            rows = []  # busy or reconnecting: the same cursor, next time


# --- /events/changes --------------------------------------------------------------------------


async def change_events(request: Request) -> Response:
    marker = await open_change_marker(request.app.state.db)
    try:
        seen = await marker.read()
    except BaseException:
        marker.close()
        raise
    return EventStream(_change_stream(request, marker.read, seen), on_close=marker.close)


async def _change_stream(
    request: Request, read: Callable[[], Awaitable[str]], seen: str
) -> AsyncGenerator[str, None]:
    interval: float = request.app.state.settings.live_interval
    sent_at = time.monotonic()
    yield ": watching\n\n"  # after the first look: any later write is a change
    while True:
        await asyncio.sleep(interval)
        if await _should_end(request):
            return
        try:
            now = await read()
        except DatabaseError as error:
            if not error.retryable:
                raise
            continue
        if now != seen:
            seen = now
            yield _event("changed", "")
            sent_at = time.monotonic()
        elif time.monotonic() - sent_at >= KEEPALIVE_SECONDS:
            yield KEEPALIVE
            sent_at = time.monotonic()
