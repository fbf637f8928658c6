"""What the dashboard's browser tests share: the real ``orchestrator-store serve``
in a subprocess, Debian's Chromium under Playwright, a watch on each page for
what must never happen (a dialog, a script error, a CSP violation, a request to
another origin), and writes to the store from another process.

Chromium is Debian's package (``apt-get install chromium``): Playwright's own
browser download cannot work here. A missing or broken Chromium fails the
tests, never skips them: a green run means a browser rendered the pages.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    Route,
    ViewportSize,
)

__all__ = [
    "SERVE_DEADLINE",
    "VIEWPORT",
    "Dashboard",
    "PageWatch",
    "launch_chromium",
    "new_watched_context",
    "run_in_thread",
    "screenshot_dir",
    "start_dashboard",
    "write_from_another_process",
]

SERVE_DEADLINE = 60.0  # seconds for `serve` to print its URL (a cold import of the web stack)
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
_URL_LINE = re.compile(r"^open (http://\S+)$")

T = TypeVar("T")


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless; a clear failure when it is missing or cannot start."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "the browser tests need Debian's Chromium on PATH (`apt-get install -y chromium`; "
            ".ci/run installs it): Playwright's own browser download does not work here",
            pytrace=False,
        )
    try:
        # --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
        return playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox"], headless=True
        )
    except Exception as exc:
        pytest.fail(f"Chromium at {executable} did not start: {exc}", pytrace=False)


def run_in_thread(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(work())`` in a thread of its own: the sync Playwright API
    keeps an event loop on the test's thread, where asyncio.run may not start."""
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(asyncio.run(work()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]


def _server_environment() -> dict[str, str]:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Only what the command line says counts: a token or store from the caller's shell would not.
    for name in (
        "ORCHESTRATOR_DASHBOARD_TOKEN",
        "ORCHESTRATOR_DATABASE_URL",
        "ORCHESTRATOR_DB_PATH",
    ):
        environment.pop(name, None)
    return environment


@dataclass
class Dashboard:
    """A running ``orchestrator-store serve``: the URL it printed and its process."""

    url: str  # as printed, with ``?token=...`` when it has a token
    process: subprocess.Popen[str]
    # What it printed, stdout and stderr, for failure messages.
    output: list[str] = field(default_factory=list, repr=False)

    def said(self, lines: int = 25) -> str:
        """The last ``lines`` it printed."""
        return "\n".join(self.output[-lines:]) or "(nothing)"

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def token(self) -> str | None:
        match = re.search(r"[?&]token=([^&]+)", self.url)
        return match.group(1) if match else None

    def stop(self) -> None:
        """Ctrl-C's signal's cousin, SIGTERM, and wait; a kill only if it hangs."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def _pump(stream: Any, lines: queue.Queue[str | None], kept: list[str], prefix: str) -> None:
    for line in stream:
        kept.append(prefix + line.rstrip("\n"))
        lines.put(line.rstrip("\n"))
    lines.put(None)


def start_dashboard(
    store: str | os.PathLike[str], *options: str, environment: Mapping[str, str] | None = None
) -> Dashboard:
    """``orchestrator-store serve --db STORE --port 0 OPTIONS...`` in a subprocess,
    once it has printed the URL it listens on (after binding its socket);
    ``environment`` adds variables to its own."""
    command = [sys.executable, "-m", "orchestrator_store.cli", "serve", "--db", str(store)]
    process = subprocess.Popen(
        [*command, "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**_server_environment(), **(environment or {})},
    )
    output: list[str] = []
    stdout_lines: queue.Queue[str | None] = queue.Queue()
    for stream, lines, prefix in (
        (process.stdout, stdout_lines, ""),
        (process.stderr, queue.Queue(), "stderr: "),
    ):
        threading.Thread(target=_pump, args=(stream, lines, output, prefix), daemon=True).start()
    dashboard = Dashboard(url="", process=process, output=output)
    deadline = time.monotonic() + SERVE_DEADLINE
    while True:
        remaining = deadline - time.monotonic()
        try:
            line = stdout_lines.get(timeout=max(remaining, 0.01))
        except queue.Empty:
            line = ""
        if line is None or remaining <= 0:
            dashboard.stop()
            said = "\n".join(output) or "(nothing)"
            pytest.fail(
                f"`serve` printed no URL within {SERVE_DEADLINE:.0f} s "
                f"(exit code {process.poll()}); it said:\n{said}",
                pytrace=False,
            )
        match = _URL_LINE.match(line.strip())
        if match:
            dashboard.url = match.group(1)
            return dashboard


# One call of the store's API per item: [method, args, kwargs]; an argument "$N"
# stands for what call N returned (an id made earlier in the same process).
_WRITER = """
import asyncio, json, sys
from orchestrator_store.manager import DatabaseManager

async def main():
    results = []
    async with DatabaseManager(sys.argv[1]) as db:
        for method, args, kwargs in json.loads(sys.argv[2]):
            args = [results[int(a[1:])] if isinstance(a, str) and a[:1] == "$" and a[1:].isdigit()
                    else a for a in args]
            results.append(await getattr(db, method)(*args, **kwargs))
    print(json.dumps(results))

asyncio.run(main())
"""


def write_from_another_process(
    store: str | os.PathLike[str], calls: Sequence[tuple[str, list[Any], dict[str, Any]]]
) -> list[Any]:
    """Make ``calls`` on the store from a new Python process (a writer as an
    agent would be: not the dashboard's process, not the test's); their results."""
    done = subprocess.run(
        [sys.executable, "-c", _WRITER, str(store), json.dumps(calls)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_server_environment(),
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"the writer process failed:\n{done.stderr}", pytrace=False)
    return list(json.loads(done.stdout))


@dataclass
class PageWatch:
    """What happened on a browser context that must not: JavaScript dialogs,
    uncaught script errors, Content-Security-Policy violations, and requests
    to any origin but the dashboard's (those are aborted, and recorded)."""

    origin: str
    dialogs: list[str] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list, repr=False)  # every URL asked for

    def attach(self, context: BrowserContext) -> None:
        context.route("**/*", self._route)
        context.on("page", self._watch_page)
        for page in context.pages:
            self._watch_page(page)

    def _route(self, route: Route, request: Request) -> None:
        self.requests.append(request.url)
        parts = urlsplit(request.url)
        if f"{parts.scheme}://{parts.netloc}" == self.origin:
            route.continue_()
        else:
            self.foreign_requests.append(request.url)
            route.abort()

    def _watch_page(self, page: Page) -> None:
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.script_errors.append(str(error)))
        page.on("console", self._console)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _console(self, message: Any) -> None:
        text = str(message.text)
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.csp_violations.append(text)

    def problems(self) -> list[str]:
        return [
            *(f"dialog: {text}" for text in self.dialogs),
            *(f"script error: {text}" for text in self.script_errors),
            *(f"CSP violation: {text}" for text in self.csp_violations),
            *(f"request to another origin: {url}" for url in self.foreign_requests),
        ]

    def assert_clean(self) -> None:
        problems = self.problems()
        assert not problems, "the page did what it must not:\n" + "\n".join(problems)


def new_watched_context(browser: Browser, origin: str) -> tuple[BrowserContext, PageWatch]:
    """A fresh context (no cookies), 1280x800, watched."""
    context = browser.new_context(viewport=VIEWPORT)
    watch = PageWatch(origin)
    watch.attach(context)
    return context, watch


def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: ``$ORCHESTRATOR_SCREENSHOT_DIR`` when set, else ``tmp_path``."""
    chosen = os.environ.get("ORCHESTRATOR_SCREENSHOT_DIR")
    target = Path(chosen) if chosen else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    return target
