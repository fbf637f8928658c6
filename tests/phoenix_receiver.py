"""A real Arize Phoenix server for the OpenTelemetry export tests.

``phoenix`` (session-scoped) starts ``phoenix serve`` once per test run, on free
loopback ports with its own working dir (its SQLite database) in a temporary
folder, offline. When it does not answer ``/healthz`` the tests using it fail
with the tail of its output: a receiver test never skips. ``stop()`` and
``start()`` restart it on the same ports and working dir, so what it holds survives.

``phoenix_project`` gives each test a project of its own. Spans reach it through
the ``x-project-name`` header, which Phoenix prefers to the resource attribute
``openinference.project.name``; a subprocess can use ``project.env()`` instead.

Phoenix keys traces and spans by their ids across all projects (the first version
wins), and the export derives ids from session names and system log ids, which two
stores share: the realistic session's sessions, built afresh for each test, would
all land in the first test's traces. ``project.distinguish(path)`` renames a SQLite
store's sessions and components and moves its system log ids out of the way of
every other project's, before the test exports it.

A test module binds the fixtures to its own names, ``phoenix =
phoenix_receiver.phoenix`` (imported by name, ruff takes each test's argument for a
redefinition of an unused import), and imports the classes as it imports
``realistic_session``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

STARTUP_GUARD_S = 120.0  # Phoenix runs its migrations first: ~20 s here
ARRIVAL_GUARD_S = 60.0  # spans are written to Phoenix's database in the background
STOP_GUARD_S = 30.0
POLL_S = 0.2
PAGE_LIMIT = 1000  # the most a page of Phoenix's REST API holds
OUTPUT_TAIL = 4000  # characters of Phoenix's output shown when it fails

_project_numbers = itertools.count(1)
# Loopback requests never go through a proxy the environment may name.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A loopback port nothing listens on now (the OS's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _offline_env(working_dir: Path, port: int, grpc_port: int) -> dict[str, str]:
    # Nothing inherited may point Phoenix (or its own tracing) elsewhere.
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("PHOENIX_", "OTEL_"))
    }
    env.update(
        PHOENIX_WORKING_DIR=str(working_dir),
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_PORT=str(port),
        PHOENIX_GRPC_PORT=str(grpc_port),
        PHOENIX_TELEMETRY_ENABLED="false",
        PHOENIX_ALLOW_EXTERNAL_RESOURCES="false",
        PHOENIX_DISABLE_AGENT_ASSISTANT="true",
    )
    return env


@dataclass
class PhoenixServer:
    """One ``phoenix serve`` process; its output goes to ``log_path``."""

    working_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def traces_endpoint(self) -> str:
        """Where OTLP/HTTP spans go."""
        return f"{self.base_url}/v1/traces"

    def start(self) -> None:
        """Start Phoenix and wait until it answers; fail the test if it does not."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("Phoenix is already running")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "phoenix.server.main", "serve"],
                env=_offline_env(self.working_dir, self.port, self.grpc_port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_GUARD_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._fail(f"Phoenix exited with code {self.process.returncode}")
            # Another server on the port would answer too: ours must still run.
            if self._healthy() and self.process.poll() is None:
                return
            time.sleep(POLL_S)
        self.stop()
        self._fail(f"Phoenix did not answer {self.base_url}/healthz in {STARTUP_GUARD_S:.0f} s")

    def stop(self) -> None:
        """Stop Phoenix (SIGTERM, then SIGKILL); its working dir stays."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_GUARD_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop, then start again on the same ports and working dir."""
        self.stop()
        self.start()

    def output_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-OUTPUT_TAIL:]
        except FileNotFoundError:
            return "(no output)"

    def _fail(self, why: str) -> None:
        pytest.fail(f"{why}; its output ends:\n{self.output_tail()}", pytrace=False)

    def _healthy(self) -> bool:
        try:
            with _direct.open(f"{self.base_url}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:  # refused while starting, or a reset
            return False

    def get(self, path: str, **query: Any) -> Any:
        """GET a REST path (``/v1/...``) and decode its JSON."""
        url = f"{self.base_url}{path}"
        if query:
            url += "?" + urlencode(query, doseq=True)
        with _direct.open(url, timeout=30) as response:
            return json.load(response)

    def listed(self, path: str) -> list[dict[str, Any]]:
        """Every item of a paged REST listing, following ``next_cursor``; [] for a
        project Phoenix does not know (yet)."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query: dict[str, Any] = {"limit": PAGE_LIMIT}
            if cursor is not None:
                query["cursor"] = cursor
            try:
                page = self.get(path, **query)
            except urllib.error.HTTPError as error:
                if error.code == 404 and not items:
                    return []
                raise
            items.extend(page["data"])
            cursor = page.get("next_cursor")
            if cursor is None:
                return items


@dataclass
class PhoenixProject:
    """A Phoenix project of one test's own."""

    server: PhoenixServer
    name: str
    number: int

    @property
    def headers(self) -> dict[str, str]:
        """OTLP request headers that send spans to this project."""
        return {"x-project-name": self.name}

    def env(self) -> dict[str, str]:
        """Environment for an exporting subprocess: the project as a resource attribute."""
        return {"OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={self.name}"}

    def spans(self) -> list[dict[str, Any]]:
        """Every span Phoenix holds in this project, attributes and events included."""
        return self.server.listed(f"/v1/projects/{quote(self.name)}/spans")

    def traces(self) -> list[dict[str, Any]]:
        """Every trace of this project, with Phoenix's own token totals."""
        return self.server.listed(f"/v1/projects/{quote(self.name)}/traces")

    def sessions(self) -> list[dict[str, Any]]:
        """Every session (``session.id``) of this project, with its traces and tokens."""
        return self.server.listed(f"/v1/projects/{quote(self.name)}/sessions")

    def wait_for_spans(self, count: int, *, guard: float = ARRIVAL_GUARD_S) -> list[dict[str, Any]]:
        """The project's spans once at least ``count`` have been written."""
        return self.wait_until(lambda spans: len(spans) >= count, f"{count} spans", guard=guard)

    def wait_until(
        self,
        ready: Callable[[list[dict[str, Any]]], bool],
        what: str,
        *,
        guard: float = ARRIVAL_GUARD_S,
    ) -> list[dict[str, Any]]:
        """The project's spans once ``ready(spans)`` holds; fails after ``guard`` s."""
        deadline = time.monotonic() + guard
        while True:
            spans = self.spans()
            if ready(spans):
                return spans
            if time.monotonic() > deadline:
                pytest.fail(
                    f"Phoenix project {self.name!r} did not get {what} in {guard:.0f} s "
                    f"(it holds {len(spans)} spans); Phoenix's output ends:\n"
                    f"{self.server.output_tail()}",
                    pytrace=False,
                )
            time.sleep(POLL_S)

    def session(self, session_id: str) -> str:
        """A session's id after ``distinguish``."""
        return f"{session_id}.p{self.number}"

    def component(self, component: str) -> str:
        """A system log component's name after ``distinguish``."""
        return f"{component}.p{self.number}"

    def distinguish(self, store: Path) -> None:
        """Make a closed SQLite store's session names, components and system log ids
        this project's own, so that its spans share no id with another project's."""
        suffix = f".p{self.number}"
        with sqlite3.connect(store) as raw:
            raw.execute("UPDATE agents SET session_id = session_id || ?", (suffix,))
            raw.execute(
                "UPDATE system_logs SET component = component || ?, id = id + ?",
                (suffix, self.number * 1_000_000),
            )
        raw.close()


def _project_name(number: int, test_name: str) -> str:
    # Phoenix refuses '/', '?' and '#' in a name used in a path; keep it plain.
    return f"p{number}-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name)[:80]


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixServer]:
    """One Phoenix server for the whole test run."""
    folder = tmp_path_factory.mktemp("phoenix")
    server = PhoenixServer(working_dir=folder / "working_dir", log_path=folder / "phoenix.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def phoenix_project(phoenix: PhoenixServer, request: pytest.FixtureRequest) -> PhoenixProject:
    """A project no other test writes to."""
    number = next(_project_numbers)
    return PhoenixProject(phoenix, _project_name(number, request.node.name), number)
