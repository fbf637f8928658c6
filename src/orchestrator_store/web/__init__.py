"""The live dashboard: ``orchestrator-store serve``, a local web view of the store.

Server-rendered pages (Starlette, Jinja2, served by uvicorn: the ``web`` extra)
over a store opened read-only. What the store holds is model output and so
untrusted: every page escapes it (Jinja2's autoescape), the Content-Security-
Policy allows no inline script and no other origin, and every asset ships in
this package (``static/``), so the dashboard works offline.

- ``app``: the application, its routes and what a request may reach.
- ``security``: the token gate, the Host check and the security headers.
- ``pages``: the views (overview, sessions, a session, a prompt, definitions,
  workflows), the reads behind them (``reads``) and their charts (``charts``).
- ``serve``: the ``orchestrator-store serve`` command's server.
- ``log_view``: the logs page, agent and system logs in one time line.
- ``live``: server-sent events that keep a page current while agents write:
  new log rows (``/events/logs``) and "the store changed" (``/events/changes``,
  from the marker in ``changes``); ``DashboardServer`` ends them at shutdown.
- ``rendering``, ``formatting``: the templates' environment and ``render``, and
  how values are shown (money, tokens, times, durations; invisible characters).
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
