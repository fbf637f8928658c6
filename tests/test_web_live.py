"""The logs page and the live updates (``web.log_view``, ``web.live``, ``web.changes``).

The page is read through Starlette's TestClient. The event streams are read
the way a browser reads them: over HTTP from a real uvicorn server (a
``DashboardServer`` in a thread, on a free port), while rows are written by
the test and by other processes. Every wait is bounded: a stream that stays
silent fails the test with what it did send.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from starlette.testclient import TestClient

from orchestrator_store.manager import DatabaseManager
from orchestrator_store.web import create_app, live
from orchestrator_store.web.live import DashboardServer

DEADLINE = 10.0  # seconds any one wait for the server may take before the test fails
LOOPBACK = "http://127.0.0.1"

# Another process writing to the store, as an agent would.
WRITE_LOG = """
import asyncio, sys
from orchestrator_store.manager import DatabaseManager

async def main(url, agent_id, message):
    async with DatabaseManager(url) as db:
        await db.create_agent_log(agent_id, "WARNING", "milestone", message)

asyncio.run(main(*sys.argv[1:]))
"""
UPDATE_AGENT = """
import asyncio, sys
from orchestrator_store.manager import DatabaseManager

async def main(url, agent_id):
    async with DatabaseManager(url) as db:
        await db.update_agent(agent_id, status="completed")

asyncio.run(main(*sys.argv[1:]))
"""


async def in_another_process(script: str, *args: str) -> None:
    # A thread waits for it, so the test's loop (and its stream) keeps running.
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


# --- a store with both kinds of logs -------------------------------------------------------


# What write_logs writes, in time order.
WRITTEN = [
    "session started",
    "read the issue",
    "plan ready",
    "slow test run",
    "tests failed",
    "retry budget exhausted",
    "queue depth 12",
]


@dataclass
class Logged:
    planner: str
    builder: str
    messages: list[str] = field(default_factory=list)


async def write_logs(db: DatabaseManager) -> Logged:
    definition = await db.create_orchestrator_agent("planner", "Plans", "planner")
    planner = await db.create_agent(definition, "feature_Tac_14_Task_8")
    builder = await db.create_agent(definition, "bug_Tac_15_Task_2")
    await db.create_system_log("INFO", "orchestrator", "session started")
    await db.create_agent_log(planner, "DEBUG", "tool_call", "read the issue")
    await db.create_agent_log(planner, "INFO", "milestone", "plan ready", {"steps": 3})
    await db.create_agent_log(builder, "WARNING", "performance", "slow test run")
    await db.create_agent_log(builder, "ERROR", "error", "tests failed", {"failed": 2})
    await db.create_system_log("CRITICAL", "scheduler", "retry budget exhausted")
    await db.create_system_log("WARNING", "orchestrator", "queue depth 12", {"depth": 12})
    await until_listed(db, len(WRITTEN))
    return Logged(planner, builder)


async def until_listed(db: DatabaseManager, count: int) -> None:
    """Wait until a listing up to the latest cursor holds ``count`` rows. On
    PostgreSQL a row is listed once no older transaction of the server still
    runs (until then it is the events' to deliver): another suite's open
    transaction may hold it back for a moment."""
    deadline = time.monotonic() + DEADLINE
    while len(await db.list_logs(up_to=(await db.log_bounds())["cursor"])) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"the store did not list {count} log rows within {DEADLINE} s")
        await asyncio.sleep(0.05)


def shown_messages(page: str) -> list[str]:
    """The messages of the page's log rows, top to bottom."""
    return [
        html.unescape(text) for text in re.findall(r'<span class="text">(.*?)</span>', page, re.S)
    ]


def rendered_cursor(page: str) -> dict[str, Any]:
    found = re.search(r'data-cursor="([^"]*)"', page)
    assert found, "the logs page renders no data-cursor"
    cursor: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return cursor


# --- the logs page ------------------------------------------------------------------------------


async def test_logs_page_shows_both_kinds_of_logs_newest_first(
    db: DatabaseManager, store_url: Any
) -> None:
    logged = await write_logs(db)
    with TestClient(create_app(store_url), base_url=LOOPBACK) as client:
        page = client.get("/logs")
    assert page.status_code == 200
    assert "<h1>Logs</h1>" in page.text
    assert shown_messages(page.text) == WRITTEN[::-1]
    assert '<tr class="log level-critical">' in page.text
    assert '<tr class="log level-warning">' in page.text
    # An agent's row links to its session; details show as compact JSON.
    assert f'title="agent {logged.planner}, session feature_Tac_14_Task_8"' in page.text
    assert 'href="/sessions/feature_Tac_14_Task_8"' in page.text
    assert 'href="/sessions/bug_Tac_15_Task_2"' in page.text
    assert "{&#34;failed&#34;: 2}" in page.text
    # The cursor it read up to: where the events go on from.
    assert 'data-live="logs"' in page.text
    assert rendered_cursor(page.text)  # opaque: the events tests follow on from it


async def test_logs_page_filters(db: DatabaseManager, store_url: Any) -> None:
    logged = await write_logs(db)
    with TestClient(create_app(store_url), base_url=LOOPBACK) as client:

        def messages(query: str) -> list[str]:
            page = client.get(f"/logs?{query}")
            assert page.status_code == 200, page.text
            return shown_messages(page.text)

        assert messages("level=WARNING") == [
            "queue depth 12",
            "retry budget exhausted",
            "tests failed",
            "slow test run",
        ]
        assert messages("level=error&type=") == ["retry budget exhausted", "tests failed"]
        assert messages("type=milestone") == ["plan ready"]
        assert messages("component=orchestrator") == ["queue depth 12", "session started"]
        assert messages(f"agent={logged.builder}") == ["tests failed", "slow test run"]
        # Its last characters, as the rows show it, or its first ones, in any case.
        assert messages(f"agent={logged.planner[-8:].upper()}") == ["plan ready", "read the issue"]
        assert messages(f"agent={logged.planner[:-8]}") == ["plan ready", "read the issue"]
        assert messages(f"agent={logged.builder}&level=ERROR") == ["tests failed"]
        assert messages("limit=2") == ["queue depth 12", "retry budget exhausted"]
        # The form keeps what was asked, and the events get the agent by its id.
        page = client.get(f"/logs?level=ERROR&agent={logged.builder[-8:]}&limit=5").text
        assert '<option value="ERROR" selected>' in page
        assert f'name="agent" value="{logged.builder[-8:]}"' in page
        assert 'name="limit" type="number" min="1" max="2000" value="5"' in page
        assert f'data-filters="level=ERROR&amp;agent={logged.builder}"' in page


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("level=LOUD", "level"),
        ("type=gossip", "type"),
        ("limit=many", "limit"),
        ("limit=0", "limit"),
        ("agent=not-hex!", "agent"),
        ("agent=abcdef", "agent"),  # no such agent
        ("component=scheduler&type=error", "component"),
    ],
)
async def test_logs_page_refuses_bad_filters_naming_them(
    db: DatabaseManager, store_url: Any, query: str, parameter: str
) -> None:
    await write_logs(db)
    with TestClient(create_app(store_url), base_url=LOOPBACK) as client:
        page = client.get(f"/logs?{query}")
        events = client.get(f"/events/logs?{query}")
    assert page.status_code == 400
    assert f'<p class="error" role="alert">{parameter}: ' in page.text
    assert "data-live" not in page.text  # nothing to follow
    assert events.status_code == 400
    assert events.text.startswith(f"{parameter}: ")


async def test_an_ambiguous_agent_part_asks_for_more(db: DatabaseManager, store_url: Any) -> None:
    logged = await write_logs(db)
    shared = next(
        logged.planner[:n]
        for n in range(36, 0, -1)
        if logged.builder.startswith(logged.planner[:n])
    )
    with TestClient(create_app(store_url), base_url=LOOPBACK) as client:
        page = client.get(f"/logs?agent={shared}")
    assert page.status_code == 400
    assert "matches several agents: give more characters" in page.text


async def test_a_bad_cursor_is_a_400(db: DatabaseManager, store_url: Any) -> None:
    await write_logs(db)
    with TestClient(create_app(store_url), base_url=LOOPBACK) as client:
        good = rendered_cursor(client.get("/logs").text)
        for cursor in ["nope", "[1, 2]", "{", '"agent_logs"']:
            response = client.get("/events/logs", params={"cursor": cursor})
            assert response.status_code == 400, cursor
            assert response.text.startswith("cursor: ")
        # Last-Event-ID wins over cursor=: a bad one is refused even beside a good cursor=.
        response = client.get(
            "/events/logs",
            params={"cursor": json.dumps(good)},
            headers={"last-event-id": "not json"},
        )
        assert response.status_code == 400
        assert response.text.startswith("cursor: ")


# --- a real server and a real event stream -----------------------------------------------------


@dataclass
class Server:
    url: str
    uvicorn: uvicorn.Server
    thread: threading.Thread


@contextmanager
def serving(
    store_url: Any,
    *,
    live_interval: float = 0.05,
    server_class: type[uvicorn.Server] = DashboardServer,
    graceful_seconds: float | None = None,
) -> Iterator[Server]:
    """The dashboard on a free loopback port, served from a thread; stopped after."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        create_app(store_url, live_interval=live_interval),
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=graceful_seconds,
    )
    server = server_class(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    started = time.monotonic()
    while not server.started:
        if not thread.is_alive() or time.monotonic() - started > DEADLINE:
            pytest.fail("the dashboard server did not start")
        time.sleep(0.01)
    try:
        yield Server(f"http://127.0.0.1:{port}", server, thread)
    finally:
        server.should_exit = True
        thread.join(DEADLINE)
        listener.close()
        assert not thread.is_alive(), "the dashboard server did not stop (a stream held it?)"


@dataclass
class Event:
    name: str  # "message" when the block named none; "" for no event (a comment, an id)
    data: str
    id: str | None
    comment: str = ""


class EventStream:
    """An event stream read block by block, each read with a deadline."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._chunks = response.aiter_bytes()
        self._buffer = b""
        self.seen: list[Event] = []

    async def _line(self) -> str:
        while b"\n" not in self._buffer:
            self._buffer += await anext(self._chunks)
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    async def _block(self) -> Event:
        fields: dict[str, list[str]] = {}
        comment = ""
        while True:
            line = await self._line()
            if line == "":
                if fields or comment:
                    break
                continue
            if line.startswith(":"):
                comment = line[1:].strip()
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
        return Event(
            fields.get("event", ["message" if "data" in fields else ""])[-1],
            "\n".join(fields.get("data", [])),
            fields.get("id", [None])[-1],
            comment,
        )

    async def messages_until(self, last: str) -> list[str]:
        """The messages of the rows events, oldest first, up to and with ``last``."""
        received: list[str] = []
        while last not in received:
            event = await self.next(f"the row {last!r} (after {received!r})", name="rows")
            received += reversed(messages_of(event))  # newest first on the wire
        return received

    async def end(self, what: str, *, cleanly: bool) -> None:
        """Wait, within the deadline, for the server to end the stream (``cleanly``:
        with its last chunk, else perhaps cut off)."""
        try:
            async with asyncio.timeout(DEADLINE):
                async for _ in self._chunks:
                    pass
        except TimeoutError:
            pytest.fail(f"the stream did not end: {what}")
        except httpx.RemoteProtocolError:
            if cleanly:
                raise

    async def next(
        self, what: str, *, name: str | None = None, comment: str | None = None
    ) -> Event:
        """The next event called ``name`` (or comment ``comment``), within the deadline."""
        try:
            async with asyncio.timeout(DEADLINE):
                while True:
                    event = await self._block()
                    self.seen.append(event)
                    if name is not None and event.name == name:
                        return event
                    if comment is not None and event.comment == comment:
                        return event
        except TimeoutError:
            pytest.fail(f"no {what} within {DEADLINE} s; the stream sent {self.seen!r}")
        except StopAsyncIteration:
            pytest.fail(f"the stream ended before {what}; it sent {self.seen!r}")


@asynccontextmanager
async def stream(
    url: str, path: str, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[EventStream]:
    async with (
        httpx.AsyncClient(base_url=url, timeout=DEADLINE) as client,
        client.stream("GET", path, params=params, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)


def messages_of(event: Event) -> list[str]:
    assert event.data.lstrip().startswith("<tr"), event.data
    return shown_messages(event.data)


@dataclass
class LogsPage:
    messages: list[str]  # oldest first
    cursor: dict[str, Any]
    filters: str  # the query string it hands the events

    def events_url(self) -> str:
        return f"/events/logs?{self.filters}&{urlencode({'cursor': json.dumps(self.cursor)})}"


async def read_page(url: str, query: str = "") -> LogsPage:
    async with httpx.AsyncClient(base_url=url, timeout=DEADLINE) as client:
        page = (await client.get(f"/logs{query}")).text
    filters = re.search(r'data-filters="([^"]*)"', page)
    assert filters
    return LogsPage(
        shown_messages(page)[::-1], rendered_cursor(page), html.unescape(filters.group(1))
    )


async def test_events_deliver_rows_written_after_the_page_by_any_process(
    db: DatabaseManager, store_url: Any
) -> None:
    logged = await write_logs(db)
    with serving(store_url) as server:
        page = await read_page(server.url)
        await db.create_agent_log(logged.planner, "INFO", "milestone", "after the page")
        async with stream(server.url, page.events_url()) as events:
            received = await events.messages_until("after the page")
            # Every row once: on the page, or in the events after it.
            assert page.messages + received == [*WRITTEN, "after the page"]
            last = events.seen[-1]
            assert isinstance(json.loads(last.id or "null"), dict)  # the cursor: opaque JSON
            assert 'href="/sessions/feature_Tac_14_Task_8"' in last.data  # the planner's

            # Markup, and lines that would be event fields if they were not data.
            hostile = "<script>alert('pwned')</script>\nid: 0\n\nevent: changed\ndata: x"
            await in_another_process(WRITE_LOG, str(store_url), logged.builder, hostile)
            assert await events.messages_until(hostile) == [hostile]
            last = events.seen[-1]
            assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in last.data
            assert "<script" not in last.data
            assert isinstance(json.loads(last.id or "null"), dict)  # not the message's "id: 0"
            assert {event.name for event in events.seen if event.name} == {"rows"}


async def test_events_follow_the_filters(db: DatabaseManager, store_url: Any) -> None:
    logged = await write_logs(db)
    with serving(store_url) as server:
        page = await read_page(server.url, f"?agent={logged.builder[-8:]}&level=ERROR")
        assert page.filters == f"level=ERROR&agent={logged.builder}"
        await db.create_agent_log(logged.builder, "INFO", "milestone", "builder, too low")
        await db.create_agent_log(logged.planner, "ERROR", "error", "planner, other agent")
        await db.create_system_log("CRITICAL", "scheduler", "system, not an agent's")
        await db.create_agent_log(logged.builder, "CRITICAL", "error", "builder, critical")
        async with stream(server.url, page.events_url()) as events:
            received = await events.messages_until("builder, critical")
        assert page.messages + received == ["tests failed", "builder, critical"]


async def test_reconnecting_with_last_event_id_repeats_and_misses_nothing(
    db: DatabaseManager, store_url: Any
) -> None:
    logged = await write_logs(db)
    with serving(store_url) as server:
        page = await read_page(server.url)
        await db.create_agent_log(logged.planner, "INFO", "milestone", "row 1")
        await db.create_system_log("INFO", "orchestrator", "row 2")
        async with stream(server.url, page.events_url()) as events:
            received = await events.messages_until("row 2")
        last_event_id = events.seen[-1].id
        assert last_event_id is not None
        # Written while no one listens: the reconnect must bring exactly these.
        await db.create_agent_log(logged.builder, "INFO", "milestone", "row 3")
        await db.create_system_log("INFO", "scheduler", "row 4")
        await in_another_process(WRITE_LOG, str(store_url), logged.planner, "row 5")
        # As a browser reconnects: the same URL (its stale cursor=) and the last id seen.
        headers = {"last-event-id": last_event_id}
        async with stream(server.url, page.events_url(), headers=headers) as events:
            received += await events.messages_until("row 5")
    assert page.messages + received == [*WRITTEN, "row 1", "row 2", "row 3", "row 4", "row 5"]


async def test_a_filtered_stream_moves_its_id_past_rows_that_do_not_pass(
    db: DatabaseManager, store_url: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged = await write_logs(db)
    monkeypatch.setattr(live, "KEEPALIVE_SECONDS", 0.1)
    with serving(store_url) as server:
        page = await read_page(server.url, "?level=ERROR")
        url = page.events_url()
        async with stream(server.url, url) as events:
            await events.next("the first look", comment="following")
            for n in range(5):
                await db.create_agent_log(logged.planner, "INFO", "milestone", f"quiet {n}")
            deadline = time.monotonic() + DEADLINE
            while True:  # keepalives carry the cursor once it moved past the quiet rows
                event = await events.next("a keepalive with a new id", comment="keepalive")
                if event.id is not None and json.loads(event.id) != page.cursor:
                    break
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"the stream's id stayed {page.cursor}: it sent {events.seen[:5]!r}"
                    )
            assert not [seen for seen in events.seen if seen.name == "rows"]
        await db.create_agent_log(logged.planner, "ERROR", "error", "loud")
        headers = {"last-event-id": event.id}
        async with stream(server.url, url, headers=headers) as events:
            assert messages_of(await events.next("the loud row", name="rows")) == ["loud"]


async def test_a_flood_comes_in_bounded_events_without_gaps(
    db: DatabaseManager, store_url: Any
) -> None:
    logged = await write_logs(db)
    with serving(store_url) as server:
        page = await read_page(server.url)
        flood = 2 * live.ROWS_PER_TABLE + 17
        await db.create_agent_logs(
            {
                "agent_id": logged.builder,
                "log_level": "INFO",
                "log_type": "tool_call",
                "message": f"step {n}",
            }
            for n in range(flood)
        )
        async with stream(server.url, page.events_url()) as events:
            received = await events.messages_until(f"step {flood - 1}")
            batches = [messages_of(event) for event in events.seen if event.name == "rows"]
    assert page.messages + received == [*WRITTEN, *(f"step {n}" for n in range(flood))]
    assert max(len(batch) for batch in batches) <= live.ROWS_PER_TABLE


async def test_changes_fire_when_another_process_writes(
    db: DatabaseManager, store_url: Any
) -> None:
    logged = await write_logs(db)
    with serving(store_url) as server:
        async with stream(server.url, "/events/changes") as events:
            await events.next("the first look at the store", comment="watching")
            await in_another_process(UPDATE_AGENT, str(store_url), logged.builder)
            changed = await events.next("a change after the agent's update", name="changed")
            assert changed.data == ""


@dataclass
class Markers:
    """The change markers the server opened, and which of them it closed."""

    opened: list[Any] = field(default_factory=list)
    closed: list[Any] = field(default_factory=list)

    async def all_closed(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while len(self.closed) < len(self.opened):
            if time.monotonic() > deadline:
                pytest.fail(f"{len(self.opened) - len(self.closed)} change marker(s) left open")
            await asyncio.sleep(0.02)


@pytest.fixture
def markers(monkeypatch: pytest.MonkeyPatch) -> Markers:
    """Spies on the server's change markers (the real ones, their real close)."""
    seen = Markers()
    real_open = live.open_change_marker

    async def open_and_watch(db: DatabaseManager) -> Any:
        marker = await real_open(db)
        real_close = marker.close

        def close() -> None:
            seen.closed.append(marker)
            real_close()

        marker.close = close  # type: ignore[method-assign]
        seen.opened.append(marker)
        return marker

    monkeypatch.setattr(live, "open_change_marker", open_and_watch)
    return seen


async def test_a_stream_ends_when_its_client_goes(
    db: DatabaseManager, store_url: Any, markers: Markers
) -> None:
    await write_logs(db)
    with serving(store_url) as server:
        async with stream(server.url, "/events/changes") as changes:
            await changes.next("the first look at the store", comment="watching")
        assert len(markers.opened) == 1
        await markers.all_closed()


@pytest.mark.parametrize(
    ("server_class", "graceful_seconds"),
    [
        (DashboardServer, None),  # ends the streams itself, each with its last chunk
        (uvicorn.Server, 0.5),  # cancels them after its graceful timeout: cut off
    ],
    ids=["DashboardServer", "uvicorn-graceful-timeout"],
)
async def test_streams_end_when_the_server_shuts_down(
    db: DatabaseManager,
    store_url: Any,
    monkeypatch: pytest.MonkeyPatch,
    markers: Markers,
    server_class: type[uvicorn.Server],
    graceful_seconds: float | None,
) -> None:
    await write_logs(db)
    monkeypatch.setattr(live, "KEEPALIVE_SECONDS", 0.1)
    with serving(store_url, server_class=server_class, graceful_seconds=graceful_seconds) as server:
        async with (
            stream(server.url, "/events/logs") as logs,
            stream(server.url, "/events/changes") as changes,
        ):
            await logs.next("a keepalive on a quiet logs stream", comment="keepalive")
            await changes.next("a keepalive on a quiet changes stream", comment="keepalive")
            server.uvicorn.should_exit = True
            cleanly = server_class is DashboardServer
            await logs.end("the logs stream outlived the server's shutdown", cleanly=cleanly)
            await changes.end("the changes stream outlived the shutdown", cleanly=cleanly)
        await asyncio.to_thread(server.thread.join, DEADLINE)
        assert not server.thread.is_alive()
    assert len(markers.opened) == 1
    await markers.all_closed()
