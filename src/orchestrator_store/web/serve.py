"""``orchestrator-store serve``: the dashboard on a local port, until Ctrl-C.

The socket is bound before anything is printed, so a port in use is an error
line, not a URL that leads nowhere, and ``--port 0`` prints the port the
system chose. The store is opened read-only once before the server starts, so
a missing file, an unreachable server or an old schema is one clear line too.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Callable

import uvicorn

from ..manager import DatabaseManager
from .app import create_app
from .live import DashboardServer
from .security import is_loopback

__all__ = ["GRACEFUL_SECONDS", "dashboard_url", "serve"]

GRACEFUL_SECONDS = 2  # what a request still running gets at Ctrl-C (event streams end at once)


def dashboard_url(host: str, port: int, token: str | None) -> str:
    """What to open in a browser; with the token, which sets the cookie once."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    shown = "[::1]" if shown == "::" else f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


async def _check_store(database: str | os.PathLike[str]) -> str:
    """Open and close the store read-only: its errors, before the server starts."""
    async with DatabaseManager(database, read_only=True) as db:
        return db.location


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    database: str | os.PathLike[str],
    *,
    host: str,
    port: int,
    token: str | None,
    echo: Callable[[str], None],
) -> None:
    """Serve the dashboard over ``database`` until interrupted. A bind other
    than loopback needs a token: ``token``, or one made here and printed."""
    if token is not None and not token.strip():
        raise ValueError("--token is empty: give a token, or none to have one made")
    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(24)
    location = asyncio.run(_check_store(database))
    sock = _bind(host, port)
    try:
        bound_port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            create_app(database, token=token),
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
            lifespan="on",
        )
        echo(f"dashboard of {location} (read-only)")
        echo(f"open {dashboard_url(host, bound_port, token)}")
        if token is not None:
            echo("every request needs the token: the link above sets it in the browser")
        echo("Ctrl-C stops it")
        DashboardServer(config).run(sockets=[sock])
    finally:
        sock.close()
