"""The dashboard's ASGI application: ``create_app(database)``.

The application owns its store: it opens it read-only when it starts
(``DatabaseManager(database, read_only=True)``) and closes it when it stops,
so the store's connections live on the server's event loop. Views reach it as
``request.app.state.db`` and render with ``rendering.render``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from ..errors import DatabaseError
from ..manager import DatabaseManager
from .live import live_routes
from .pages import page_routes
from .rendering import render, templates
from .security import DashboardGuard

__all__ = ["DashboardSettings", "create_app"]

HERE = Path(__file__).parent


class DashboardSettings:
    """What views need to know besides the store."""

    def __init__(self, *, live_interval: float) -> None:
        self.live_interval = live_interval  # seconds between looks for new rows


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, wrong method) as a page like the others."""
    assert isinstance(exc, HTTPException)
    title = "Not found" if exc.status_code == 404 else f"Error {exc.status_code}"
    return render(
        request,
        "error.html",
        {"title": title, "message": str(exc.detail)},
        status_code=exc.status_code,
    )


async def _store_error(request: Request, exc: Exception) -> Response:
    """The store could not answer (a server gone, a file removed): say so, no traceback.
    The message is the store's own, redacted of passwords, and escaped like all text."""
    message = f"the store could not be read: {exc}"
    return render(
        request, "error.html", {"title": "Store unavailable", "message": message}, status_code=503
    )


def create_app(
    database: str | os.PathLike[str],
    *,
    token: str | None = None,
    live_interval: float = 0.5,
) -> Starlette:
    """The dashboard over ``database`` (a SQLite path or a ``postgresql://``
    URL), opened read-only while the application runs. With ``token``, every
    request must carry it (see ``security``); without one, only loopback host
    names are answered."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = DatabaseManager(database, read_only=True)
        await db.connect()
        app.state.db = db
        try:
            yield
        finally:
            await db.close()

    app = Starlette(
        routes=[
            *page_routes(),
            *live_routes(),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[Middleware(DashboardGuard, token=token)],
        exception_handlers={HTTPException: _http_error, DatabaseError: _store_error},
        lifespan=lifespan,
    )
    app.state.templates = templates()
    app.state.settings = DashboardSettings(live_interval=live_interval)
    return app
