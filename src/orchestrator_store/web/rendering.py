"""Pages from templates: the one Jinja2 environment and ``render``.

Every value a template prints is escaped (autoescape) and first made visible
(``finalize``: control characters and bidirectional overrides as stand-ins),
so stored text reaches a page only as inert, visible text.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from .formatting import FILTERS, visible

__all__ = ["render", "templates"]


def templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,  # every page shows model output: escape all of it, always
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=lambda value: visible(value) if isinstance(value, str) else value,
    )
    environment.filters.update(FILTERS)
    return environment


def render(
    request: Request, template: str, context: Mapping[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    """``template`` rendered with ``context`` (and ``request``, ``path``) as a page."""
    environment: jinja2.Environment = request.app.state.templates
    db = getattr(request.app.state, "db", None)
    page = environment.get_template(template).render(
        {
            "store_location": db.location if db is not None else "",
            **context,
            "request": request,
            "path": request.url.path,
        }
    )
    return HTMLResponse(page, status_code=status_code)
