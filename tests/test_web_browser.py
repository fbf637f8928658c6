"""The dashboard end to end, in a real browser: ``orchestrator-store serve`` in a
subprocess, Debian's Chromium driven by Playwright, on both store backends.

Each backend gets two stores and a server on each, for the whole module: one
with the demo's sessions (``python -m orchestrator_store --demo``, three times)
and a few of our own (a failed session, a running one, logs of every level), and
one whose every shown text is a script-injection payload. Every page a test
opens is watched (``browser_support.PageWatch``): a dialog, a script error, a
Content-Security-Policy violation or a request to another origin fails it.

The views' tests save one full-page screenshot each (SQLite, demo store) into
``$ORCHESTRATOR_SCREENSHOT_DIR`` when set, else into the test's tmp_path:
``ORCHESTRATOR_SCREENSHOT_DIR=docs/screenshots`` refreshes the README's images.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from browser_support import (
    Dashboard,
    PageWatch,
    launch_chromium,
    new_watched_context,
    run_in_thread,
    screenshot_dir,
    start_dashboard,
    write_from_another_process,
)
from playwright.sync_api import Browser, Page, Playwright, Route, expect, sync_playwright

from orchestrator_store.manager import DatabaseManager
from orchestrator_store.web.security import CONTENT_SECURITY_POLICY

BACKENDS = ("sqlite", "postgresql")  # conftest's (not importable by name: two conftests)
LIVE_TIMEOUT_MS = 10_000  # a live update must show within this (the server looks every 0.5 s)

# --- stores: one per kind of data, per backend, for the whole module -------------------


@dataclass
class StoreMaker:
    """Makes stores on one backend; PostgreSQL's are throwaway schemas (or
    databases, when the server does not keep a URL's search_path), as conftest's."""

    backend: str
    folder: Path
    server: str = ""  # the PostgreSQL server's URL
    schemas_by_url: bool = True
    made: list[str] = field(default_factory=list)

    def new(self, name: str) -> str:
        if self.backend == "sqlite":
            return str(self.folder / name / "orchestrator.db")
        from pg_testing import database_url, schema_url

        made = f"adw_test_{uuid.uuid4().hex[:12]}"
        self.made.append(made)
        if self.schemas_by_url:
            self._admin(f"CREATE SCHEMA {made}")
            return schema_url(self.server, made)
        self._admin(f"CREATE DATABASE {made} TEMPLATE template0")
        return database_url(self.server, made)

    def drop_all(self) -> None:
        for made in self.made:
            self._admin(
                f"DROP SCHEMA {made} CASCADE"
                if self.schemas_by_url
                else f"DROP DATABASE {made} WITH (FORCE)"
            )

    def _admin(self, sql: str) -> None:
        from pg_testing import run_sql

        run_in_thread(lambda: run_sql(self.server, sql))


@pytest.fixture(scope="module", params=BACKENDS)
def stores(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreMaker]:
    """conftest's ``store_url``, for a module: the same backends and servers,
    module-scoped so that each server starts once per backend."""
    maker = StoreMaker(request.param, tmp_path_factory.mktemp("browser_stores"))
    if request.param == "postgresql":
        maker.server = request.getfixturevalue("postgres_server")
        maker.schemas_by_url = request.getfixturevalue("postgres_traits").schemas_by_url
    yield maker
    maker.drop_all()


# --- the demo store -------------------------------------------------------------------

FAILED_SESSION = "fix_login_redirect_loop"
RUNNING_SESSION = "refactor_storage_layer"
LIVE_SESSION = "watch_me_live"
FAILED_ERROR = "pytest: 3 failed, 117 passed (tests/test_login.py)"
FAILED_WORKFLOW_ERROR = "build step failed: 3 tests fail"
# (level, component, message): one system log of each level
SYSTEM_LOGS = (
    ("DEBUG", "scheduler", "cache warm: 12 entries"),
    ("INFO", "scheduler", "picked up 3 queued sessions"),
    ("WARNING", "gateway", "rate limit near: 80% of the minute's tokens used"),
    ("ERROR", "gateway", "upstream answered 529 overloaded; retrying in 2 s"),
    ("CRITICAL", "storage", "disk 97% full on /var/lib/agents"),
)


@dataclass
class DemoStore:
    location: str
    demo_sessions: list[str]
    demo_prompt_id: str  # the first demo session's planner prompt
    demo_prompt_text: str
    failed_prompt_id: str
    live_agent_id: str  # executing, in LIVE_SESSION
    tester_definition_id: str  # a definition no agent uses yet


def record_demo_session(location: str) -> str:
    """``python -m orchestrator_store --db LOCATION --demo``: the session it recorded."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator_store", "--db", location, "--demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    match = re.search(r"^recorded session (\S+):$", done.stdout, re.MULTILINE)
    assert match, done.stdout
    return match.group(1)


async def _record_our_sessions(location: str, demo_sessions: list[str]) -> DemoStore:
    async with DatabaseManager(location) as db:
        definitions = {row["name"]: row["id"] for row in await db.list_orchestrator_agents()}
        reviewer = await db.create_orchestrator_agent(
            "reviewer", "Reviews a build before it merges", "reviewer", default_model="claude-opus"
        )
        tester = await db.create_orchestrator_agent(
            "tester",
            "Runs the suite and reads its failures",
            "tester",
            default_model="claude-haiku",
        )

        # A failed session: the planner's costly plan, then a builder whose tests fail.
        planner = await db.create_agent(definitions["planner"], FAILED_SESSION, status="executing")
        prompt = await db.create_prompt(
            planner, "adw", "Plan the fix for the login redirect loop", model_used="claude-opus"
        )
        await db.update_prompt(
            prompt,
            status="completed",
            response_text="1. reproduce 2. fix the cookie path 3. add a regression test",
            tokens_input=14_000,
            tokens_output=2_100,
            cost_usd=0.2145,
            latency_ms=9_800,
            completed_at=datetime.now(UTC),
        )
        await db.update_agent(planner, status="completed", completed_at=datetime.now(UTC))
        builder = await db.create_agent(
            definitions["builder"], FAILED_SESSION, parent_agent_id=planner, status="executing"
        )
        failed_prompt = await db.create_prompt(
            builder, "correction", "Make tests/test_login.py pass", model_used="claude-sonnet"
        )
        await db.update_prompt(
            failed_prompt,
            status="failed",
            error_message="the model stopped: max tokens",
            tokens_input=8_000,
            tokens_output=4_000,
            cost_usd=0.0520,
            latency_ms=31_000,
            completed_at=datetime.now(UTC),
        )
        await db.create_agent_log(builder, "WARNING", "milestone", "retrying the build once")
        await db.create_agent_log(
            builder, "ERROR", "error", "tests failed in tests/test_login.py", {"failed": 3}
        )
        await db.update_agent(
            builder, status="failed", error_message=FAILED_ERROR, completed_at=datetime.now(UTC)
        )
        workflow = await db.start_workflow(
            "fix_bug", "plan_build", adw_id=FAILED_SESSION, total_steps=2
        )
        await db.update_workflow_step(workflow, "build", completed_steps=1)
        await db.end_workflow(
            workflow, "failed", error_message=FAILED_WORKFLOW_ERROR, error_step="build"
        )

        # A running session: a reviewer still streaming its answer, cheap so far.
        running = await db.create_agent(reviewer, RUNNING_SESSION, status="executing")
        streaming = await db.create_prompt(
            running, "adw", "Review the storage layer refactor", model_used="claude-opus"
        )
        await db.update_prompt(streaming, status="streaming", tokens_input=300, cost_usd=0.0003)
        await db.create_agent_log(running, "DEBUG", "tool_call", "read 14 files under storage/")
        await db.create_agent_log(running, "INFO", "state_change", "initializing -> executing")
        await db.start_workflow("review", "review", adw_id=RUNNING_SESSION, total_steps=3)

        for level, component, message in SYSTEM_LOGS:
            await db.create_system_log(level, component, message, {"host": "worker-2"})

        # The session the live test changes from another process.
        watched = await db.create_agent(definitions["builder"], LIVE_SESSION, status="executing")

        demo_prompts = await db.list_prompts(session_id=demo_sessions[0])
        return DemoStore(
            location=location,
            demo_sessions=demo_sessions,
            demo_prompt_id=str(demo_prompts[0]["id"]),
            demo_prompt_text=str(demo_prompts[0]["prompt_text"]),
            failed_prompt_id=failed_prompt,
            live_agent_id=watched,
            tester_definition_id=tester,
        )


@dataclass
class Served:
    """A store and the dashboard serving it."""

    store: Any
    dashboard: Dashboard
    backend: str


@pytest.fixture(scope="module")
def demo(stores: StoreMaker) -> Iterator[Served]:
    location = stores.new("demo")
    sessions = [record_demo_session(location) for _ in range(3)]
    store = run_in_thread(lambda: _record_our_sessions(location, sessions))
    dashboard = start_dashboard(location)
    yield Served(store, dashboard, stores.backend)
    dashboard.stop()


# --- the browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright(stores: StoreMaker) -> Iterator[Playwright]:
    """Playwright's sync API; it takes ``stores`` so that it starts after them, once
    per backend: while it runs, its event loop counts as running on this thread,
    where conftest's PostgreSQL fixtures (``asyncio.run``) would then fail."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = launch_chromium(playwright)
    yield chromium
    chromium.close()


@dataclass
class Visit:
    """A fresh browser context on one dashboard, watched; ``open`` loads a view."""

    page: Page
    watch: PageWatch
    dashboard: Dashboard

    @property
    def origin(self) -> str:
        return self.dashboard.origin

    def open(self, path: str, heading: str, *, status: int = 200) -> Page:
        response = self.page.goto(self.origin + path)
        assert response is not None, path
        assert response.status == status, (
            f"{path}: HTTP {response.status}; the server said:\n{self.dashboard.said()}"
        )
        expect(self.page.locator("h1")).to_have_text(re.compile(rf"^\s*{re.escape(heading)}"))
        return self.page

    def main_text(self) -> str:
        return self.page.locator("main").inner_text()


@contextmanager
def visiting(browser: Browser, dashboard: Dashboard) -> Iterator[Visit]:
    """A fresh, watched browser context on ``dashboard``."""
    context, watch = new_watched_context(browser, dashboard.origin)
    try:
        yield Visit(context.new_page(), watch, dashboard)
    finally:
        context.close()
    watch.assert_clean()  # what a test did not check itself still fails it


@pytest.fixture
def visit(browser: Browser, demo: Served) -> Iterator[Visit]:
    with visiting(browser, demo.dashboard) as visit:
        yield visit


@pytest.fixture
def shoot(demo: Served, tmp_path: Path) -> Any:
    """``shoot(page, name)``: a full-page PNG of the view, from the SQLite demo run only."""

    def take(page: Page, name: str) -> None:
        if demo.backend == "sqlite":
            page.screenshot(path=str(screenshot_dir(tmp_path) / f"{name}.png"), full_page=True)

    return take


def session_path(session_id: str) -> str:
    return "/sessions/" + quote(session_id, safe="")


# --- every view renders, with its data ------------------------------------------------


def test_overview_shows_recent_sessions_and_costs(visit: Visit, demo: Served, shoot: Any) -> None:
    page = visit.open("/", "Overview")
    main = page.locator("main")
    expect(main).to_contain_text(demo.store.demo_sessions[0])
    expect(main).to_contain_text(FAILED_SESSION)
    expect(main).to_contain_text("$0.2665")  # the failed session's cost: $0.2145 + $0.0520
    shoot(page, "overview")
    visit.watch.assert_clean()


def test_sessions_lists_every_session(visit: Visit, demo: Served, shoot: Any) -> None:
    page = visit.open("/sessions", "Sessions")
    main = page.locator("main")
    for session_id in [*demo.store.demo_sessions, FAILED_SESSION, RUNNING_SESSION]:
        expect(main).to_contain_text(session_id)
    shoot(page, "sessions")
    visit.watch.assert_clean()


def _filter_sessions(visit: Visit, status: str) -> str:
    """Choose ``status`` in the sessions page's form and submit it: the rows' text."""
    page = visit.page
    page.get_by_label("Status").select_option(status)
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(rf"[?&]status={status}\b"))
    expect(page.locator("h1")).to_have_text(re.compile(r"^\s*Sessions"))
    return visit.main_text()


def test_sessions_status_filter_changes_the_rows(visit: Visit, demo: Served) -> None:
    demo_session = demo.store.demo_sessions[0]
    visit.open("/sessions", "Sessions")
    text = _filter_sessions(visit, "failed")
    assert FAILED_SESSION in text
    assert demo_session not in text and RUNNING_SESSION not in text

    text = _filter_sessions(visit, "running")
    assert RUNNING_SESSION in text and LIVE_SESSION in text
    assert demo_session not in text and FAILED_SESSION not in text

    text = _filter_sessions(visit, "completed")
    assert all(session in text for session in demo.store.demo_sessions)
    assert FAILED_SESSION not in text and RUNNING_SESSION not in text
    visit.watch.assert_clean()


def test_sessions_sort_changes_the_order(visit: Visit) -> None:
    """Clicking the Cost heading sorts by cost; clicking it again turns the order."""
    # The failed session cost $0.2665, the running one $0.0003: cost order puts them apart.
    page = visit.open("/sessions", "Sessions")
    orders = []
    for _ in range(2):
        page.locator("main thead").get_by_role("link", name=re.compile(r"^\s*Cost")).click()
        expect(page).to_have_url(re.compile(r"[?&]sort=cost\b"))
        order = "asc" if re.search(r"[?&]order=asc\b", page.url) else "desc"
        text = visit.main_text()
        cheap_first = text.index(RUNNING_SESSION) < text.index(FAILED_SESSION)
        assert cheap_first == (order == "asc"), f"{page.url}: the rows are not in cost order"
        orders.append(order)
    assert sorted(orders) == ["asc", "desc"], orders
    visit.watch.assert_clean()


def test_session_shows_its_agent_tree(visit: Visit, demo: Served, shoot: Any) -> None:
    session_id = demo.store.demo_sessions[0]
    page = visit.open(session_path(session_id), f"Session {session_id}")
    # The demo's planner hands over to a builder: the builder is the planner's child.
    agents = page.locator("main tr[data-agent]")
    expect(agents).to_have_count(2)
    depths = {}
    for row in agents.all():
        definition = re.search(r"\w+", row.inner_text())  # the first word (after a branch mark)
        assert definition is not None
        depths[definition.group()] = row.get_attribute("data-depth")
    assert depths == {"planner": "0", "builder": "1"}, depths
    expect(
        page.locator(f'main a[href="/prompts/{demo.store.demo_prompt_id}"]').first
    ).to_be_visible()
    expect(page.locator("main")).to_contain_text(demo.store.demo_prompt_text)
    shoot(page, "session")
    visit.watch.assert_clean()


def test_failed_session_shows_the_error(visit: Visit) -> None:
    page = visit.open(session_path(FAILED_SESSION), f"Session {FAILED_SESSION}")
    expect(page.locator("main")).to_contain_text(FAILED_ERROR)
    visit.watch.assert_clean()


def test_prompt_shows_text_and_response(visit: Visit, demo: Served, shoot: Any) -> None:
    page = visit.open(f"/prompts/{demo.store.demo_prompt_id}", "Prompt")
    main = page.locator("main")
    expect(main).to_contain_text(demo.store.demo_prompt_text)
    expect(main).to_contain_text("claude-sonnet")
    expect(main).to_contain_text(demo.store.demo_sessions[0])
    shoot(page, "prompt")
    visit.watch.assert_clean()


def test_failed_prompt_shows_its_error(visit: Visit, demo: Served) -> None:
    page = visit.open(f"/prompts/{demo.store.failed_prompt_id}", "Prompt")
    expect(page.locator("main")).to_contain_text("the model stopped: max tokens")
    visit.watch.assert_clean()


def test_click_through_overview_session_prompt(visit: Visit, demo: Served) -> None:
    session_id = demo.store.demo_sessions[0]
    page = visit.open("/", "Overview")
    page.locator("main").get_by_role("link", name=session_id, exact=True).first.click()
    expect(page).to_have_url(visit.origin + session_path(session_id))
    expect(page.locator("h1")).to_have_text(re.compile(rf"^\s*Session {re.escape(session_id)}"))
    page.locator(f'main a[href="/prompts/{demo.store.demo_prompt_id}"]').first.click()
    expect(page).to_have_url(f"{visit.origin}/prompts/{demo.store.demo_prompt_id}")
    expect(page.locator("h1")).to_have_text(re.compile(r"^\s*Prompt"))
    expect(page.locator("main")).to_contain_text(demo.store.demo_prompt_text)
    visit.watch.assert_clean()


def test_logs_show_every_level(visit: Visit, shoot: Any) -> None:
    page = visit.open("/logs", "Logs")
    main = page.locator("main")
    for _, component, message in SYSTEM_LOGS:
        expect(main).to_contain_text(message)
        expect(main).to_contain_text(component)
    expect(main).to_contain_text("tests failed in tests/test_login.py")
    shoot(page, "logs")
    visit.watch.assert_clean()


def test_logs_level_filter_hides_lower_levels(visit: Visit) -> None:
    page = visit.open("/logs", "Logs")
    page.get_by_label("Level").select_option("WARNING")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"[?&]level=WARNING\b"))
    expect(page.locator("h1")).to_have_text(re.compile(r"^\s*Logs"))
    text = visit.main_text()
    shown = {level: message in text for level, _, message in SYSTEM_LOGS}
    assert shown == {
        "DEBUG": False,
        "INFO": False,
        "WARNING": True,
        "ERROR": True,
        "CRITICAL": True,
    }
    assert "read 14 files under storage/" not in text  # an agent's DEBUG line
    assert "tests failed in tests/test_login.py" in text  # an agent's ERROR line
    visit.watch.assert_clean()


def test_definitions_list_every_definition(visit: Visit, shoot: Any) -> None:
    page = visit.open("/definitions", "Definitions")
    main = page.locator("main")
    for text in ("orchestrator", "planner", "builder", "reviewer", "tester"):
        expect(main).to_contain_text(text)
    expect(main).to_contain_text("Reviews a build before it merges")
    expect(main).to_contain_text("claude-haiku")
    shoot(page, "definitions")
    visit.watch.assert_clean()


def test_workflows_list_runs_and_their_errors(visit: Visit, shoot: Any) -> None:
    page = visit.open("/workflows", "Workflows")
    main = page.locator("main")
    for text in ("plan_build", "fix_bug", "review", FAILED_WORKFLOW_ERROR):
        expect(main).to_contain_text(text)
    shoot(page, "workflows")
    visit.open("/workflows?status=failed", "Workflows")
    text = visit.main_text()
    assert "fix_bug" in text and FAILED_WORKFLOW_ERROR in text
    assert RUNNING_SESSION not in text
    visit.watch.assert_clean()


def test_no_request_leaves_the_dashboard(visit: Visit, demo: Served) -> None:
    for path, heading in (
        ("/", "Overview"),
        ("/sessions", "Sessions"),
        (session_path(FAILED_SESSION), "Session"),
        (f"/prompts/{demo.store.demo_prompt_id}", "Prompt"),
        ("/logs", "Logs"),
        ("/definitions", "Definitions"),
        ("/workflows", "Workflows"),
    ):
        visit.open(path, heading)
        visit.page.wait_for_load_state("networkidle")
    # The route saw the pages and their assets (so it was in force), all of this origin.
    assert any("/static/" in url for url in visit.watch.requests), visit.watch.requests
    assert visit.watch.foreign_requests == []
    visit.watch.assert_clean()


def _fulfilled_with(headers: dict[str, str], body: str) -> Callable[[Route], None]:
    def fulfil(route: Route) -> None:
        route.fulfill(content_type="text/html", headers=headers, body=body)

    return fulfil


def test_the_watch_sees_what_it_must_fail_on(browser: Browser, demo: Served) -> None:
    """The watch behind every test here is no blind eye. Two pages of this origin,
    made up by the browser (not the dashboard's): under the dashboard's CSP, an
    inline script and style are violations; without it, an image from elsewhere
    is a request to another origin, aborted."""
    pages = {
        "/watch-canary-csp": (
            {"content-security-policy": CONTENT_SECURITY_POLICY},
            '<h1 style="color: red">canary</h1><script>window.__xss = 1</script>',
        ),
        "/watch-canary-offline": ({}, '<h1>canary</h1><img src="https://elsewhere.example/a.png">'),
    }
    context, watch = new_watched_context(browser, demo.dashboard.origin)
    try:
        page = context.new_page()
        for path, (headers, body) in pages.items():
            page.route("**" + path, _fulfilled_with(headers, body))
            page.goto(demo.dashboard.origin + path)
            page.wait_for_load_state("networkidle")
    finally:
        context.close()
    problems = watch.problems()
    assert any(re.search(r"CSP violation: .*inline script", p) for p in problems), problems
    assert any(re.search(r"CSP violation: .*inline style", p) for p in problems), problems
    assert watch.foreign_requests == ["https://elsewhere.example/a.png"], problems


# --- live: another process writes, the open page shows it ------------------------------


def _mark_page(page: Page) -> None:
    """A mark that a reload would wipe: it must survive a live update."""
    page.evaluate("window.__not_reloaded = true")


def _assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__not_reloaded === true"), "the page reloaded"


def test_live_logs_show_lines_written_by_another_process(visit: Visit, demo: Served) -> None:
    page = visit.open("/logs", "Logs")
    _mark_page(page)
    system_line = f"system line from another process {uuid.uuid4().hex[:8]}"
    agent_line = f"agent line from another process {uuid.uuid4().hex[:8]}"
    write_from_another_process(
        demo.store.location, [("create_system_log", ["WARNING", "live-probe", system_line], {})]
    )
    expect(page.get_by_text(system_line)).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    write_from_another_process(
        demo.store.location,
        [("create_agent_log", [demo.store.live_agent_id, "INFO", "milestone", agent_line], {})],
    )
    expect(page.get_by_text(agent_line)).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    _assert_not_reloaded(page)
    visit.watch.assert_clean()


def test_live_logs_keep_to_the_level_filter(visit: Visit, demo: Served) -> None:
    page = visit.open("/logs?level=WARNING", "Logs")
    quiet = f"debug line below the filter {uuid.uuid4().hex[:8]}"
    loud = f"error line above the filter {uuid.uuid4().hex[:8]}"
    write_from_another_process(
        demo.store.location,
        [
            ("create_system_log", ["DEBUG", "live-probe", quiet], {}),
            ("create_system_log", ["ERROR", "live-probe", loud], {}),
        ],
    )
    expect(page.get_by_text(loud)).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    # Written first, the DEBUG line would be on the page by now if it were to come.
    expect(page.get_by_text(quiet)).to_have_count(0)
    visit.watch.assert_clean()


def test_live_session_shows_changes_by_another_process(visit: Visit, demo: Served) -> None:
    page = visit.open(session_path(LIVE_SESSION), f"Session {LIVE_SESSION}")
    main = page.locator("main")
    expect(main).not_to_contain_text("tester")
    _mark_page(page)
    # A new agent, of a definition no agent had used: its name appears.
    write_from_another_process(
        demo.store.location,
        [
            (
                "create_agent",
                [demo.store.tester_definition_id, LIVE_SESSION],
                {"parent_agent_id": demo.store.live_agent_id, "status": "executing"},
            )
        ],
    )
    expect(main).to_contain_text("tester", timeout=LIVE_TIMEOUT_MS)
    # The running agent fails: its status and error appear.
    error = f"killed by the watchdog after {uuid.uuid4().int % 900 + 100} s"
    write_from_another_process(
        demo.store.location,
        [
            (
                "update_agent",
                [demo.store.live_agent_id],
                {"status": "failed", "error_message": error},
            )
        ],
    )
    expect(main).to_contain_text(error, timeout=LIVE_TIMEOUT_MS)
    expect(main).to_contain_text("failed")
    _assert_not_reloaded(page)
    visit.watch.assert_clean()


def test_live_refresh_keeps_what_the_user_was_choosing(visit: Visit, demo: Served) -> None:
    """A re-render while someone is setting the filters keeps their choices."""
    page = visit.open("/sessions", "Sessions")
    page.get_by_label("Status").select_option("failed")
    page.get_by_label("Last activity since").fill("2026-01-01")
    new_session = f"appeared_while_choosing_{uuid.uuid4().hex[:6]}"
    write_from_another_process(
        demo.store.location,
        [
            ("create_orchestrator_agent", [new_session, None, "utility"], {}),
            ("create_agent", ["$0", new_session], {}),
        ],
    )
    expect(page.locator("main")).to_contain_text(new_session, timeout=LIVE_TIMEOUT_MS)
    assert page.get_by_label("Status").input_value() == "failed"
    assert page.get_by_label("Last activity since").input_value() == "2026-01-01"
    visit.watch.assert_clean()


# --- script injection: every shown text of the store is a payload ----------------------

SCRIPT = "<script>window.__xss=1</script>"
ATTRIBUTE = '"><img src=x onerror="window.__xss=1">'
JAVASCRIPT_URL = "javascript:window.__xss=1"
TERMINAL = "\x1b]0;pwned\x07\x1b[31m"


def payload(label: str) -> str:
    """A text that runs script wherever it is not escaped; ``label`` tells them apart."""
    return f"{JAVASCRIPT_URL} {label} {SCRIPT}{ATTRIBUTE}{TERMINAL}"


def visible_part(label: str) -> str:
    """What of ``payload(label)`` must show as text (terminal escapes aside)."""
    return f"{JAVASCRIPT_URL} {label} {SCRIPT}{ATTRIBUTE}"


XSS_SESSION = payload("session")


@dataclass
class XssStore:
    location: str
    prompt_id: str
    agent_id: str
    definition_id: str


async def _record_payloads(location: str) -> XssStore:
    async with DatabaseManager(location) as db:
        definition = await db.create_orchestrator_agent(
            payload("definition-name"),
            payload("definition-description"),
            "builder",
            capabilities=payload("definition-capabilities"),
            default_model=payload("definition-model"),
        )
        agent = await db.create_agent(
            definition,
            XSS_SESSION,
            status="executing",
            context={"note": payload("agent-context")},
            config={"note": payload("agent-config")},
        )
        child = await db.create_agent(definition, XSS_SESSION, parent_agent_id=agent)
        await db.update_agent(
            child, status="failed", error_message=payload("agent-error"), cost_usd=0.5
        )
        prompt = await db.create_prompt(
            agent,
            "adw",
            payload("prompt-text"),
            prompt_name=payload("prompt-name"),
            model_used=payload("prompt-model"),
        )
        await db.update_prompt(
            prompt,
            status="failed",
            response_text=payload("prompt-response"),
            error_message=payload("prompt-error"),
            tokens_input=10,
            tokens_output=5,
            cost_usd=0.001,
        )
        await db.create_agent_log(
            agent, "ERROR", "error", payload("agent-log"), {"note": payload("agent-log-details")}
        )
        await db.create_system_log(
            "WARNING",
            payload("component"),
            payload("system-log"),
            {"note": payload("system-log-details")},
        )
        await db.create_chat_message(definition, "user", "orchestrator", payload("chat"))
        workflow = await db.start_workflow(
            payload("workflow-name"),
            payload("workflow-type"),
            adw_id=payload("workflow-adw-id"),
            description=payload("workflow-description"),
            total_steps=2,
            orchestrator_agent_id=definition,
            input_data={"note": payload("workflow-input")},
            metadata={"note": payload("workflow-metadata")},
        )
        await db.update_workflow_step(workflow, payload("workflow-step"), completed_steps=1)
        await db.end_workflow(
            workflow,
            "failed",
            error_message=payload("workflow-error"),
            error_step=payload("workflow-error-step"),
            output_data={"note": payload("workflow-output")},
        )
        return XssStore(location, prompt, agent, definition)


@pytest.fixture(scope="module")
def xss(stores: StoreMaker) -> Iterator[Served]:
    location = stores.new("xss")
    store = run_in_thread(lambda: _record_payloads(location))
    dashboard = start_dashboard(location)
    yield Served(store, dashboard, stores.backend)
    dashboard.stop()


@pytest.fixture
def xss_visit(browser: Browser, xss: Served) -> Iterator[Visit]:
    with visiting(browser, xss.dashboard) as visit:
        yield visit


_SCRIPT_URLS = """[...document.querySelectorAll("[href], [src], [action], [formaction]")]
    .flatMap((element) => ["href", "src", "action", "formaction"]
        .map((name) => element.getAttribute(name)))
    .filter((value) => value !== null && /^\\s*javascript:/i.test(value))"""


def assert_nothing_ran(visit: Visit) -> None:
    page = visit.page
    assert page.evaluate("typeof window.__xss") == "undefined", f"a payload ran on {page.url}"
    assert page.locator('img[src="x"]').count() == 0, f"a payload made an element on {page.url}"
    assert page.evaluate(_SCRIPT_URLS) == [], f"a link on {page.url} runs script"
    visit.watch.assert_clean()


def _xss_views(store: XssStore) -> list[tuple[str, str, list[str]]]:
    """(path, heading, labels whose payload must show as text)."""
    return [
        ("/", "Overview", ["session"]),
        ("/sessions", "Sessions", ["session"]),
        (
            session_path(XSS_SESSION),
            "Session",
            ["session", "definition-name", "agent-error"],
        ),
        (
            f"/prompts/{store.prompt_id}",
            "Prompt",
            ["prompt-text", "prompt-response", "prompt-model", "prompt-error"],
        ),
        ("/logs", "Logs", ["agent-log", "system-log", "component"]),
        (
            "/definitions",
            "Definitions",
            ["definition-name", "definition-description", "definition-model"],
        ),
        ("/workflows", "Workflows", ["workflow-name", "workflow-error"]),
    ]


def test_xss_no_payload_runs_on_any_view(xss_visit: Visit, xss: Served) -> None:
    for path, heading, labels in _xss_views(xss.store):
        page = xss_visit.open(path, heading)
        main = page.locator("main")
        for label in labels:
            expect(main).to_contain_text(visible_part(label))
        assert "pwned" in xss_visit.main_text()  # the terminal escape, shown as text
        assert_nothing_ran(xss_visit)
    # The payload session's link (its id in the URL, escaped) leads to it; its
    # heading is the payload itself, as text.
    page = xss_visit.open("/sessions", "Sessions")
    page.locator("main").get_by_role("link", name=visible_part("session")).first.click()
    expect(page.locator("h1")).to_contain_text(visible_part("session"))
    assert_nothing_ran(xss_visit)


def test_xss_query_parameters_are_not_reflected_as_markup(xss_visit: Visit) -> None:
    """A link a stranger sends: the filters' values, good or bad, come back as text."""
    bad = quote(payload("query"), safe="")
    for path, heading, status in (
        (f"/logs?component={bad}", "Logs", 200),
        (f"/sessions?status={bad}", "", 400),
        (f"/sessions?since={bad}", "", 400),
        (f"/sessions?sort={bad}", "", 400),
        (f"/workflows?status={bad}", "", 400),
        (f"/logs?level={bad}", "", 400),
    ):
        response = xss_visit.page.goto(xss_visit.origin + path)
        assert response is not None and response.status == status, path
        if heading:
            expect(xss_visit.page.locator("h1")).to_have_text(re.compile(rf"^\s*{heading}"))
        assert_nothing_ran(xss_visit)


def test_xss_live_rows_are_text_too(xss_visit: Visit, xss: Served) -> None:
    page = xss_visit.open("/logs", "Logs")
    marker = f"live-{uuid.uuid4().hex[:8]}"
    write_from_another_process(
        xss.store.location,
        [
            ("create_system_log", ["ERROR", payload(marker), payload(marker)], {}),
            (
                "create_agent_log",
                [xss.store.agent_id, "ERROR", "error", payload(marker + "-a")],
                {},
            ),
        ],
    )
    expect(page.locator("main")).to_contain_text(
        visible_part(marker + "-a"), timeout=LIVE_TIMEOUT_MS
    )
    expect(page.locator("main")).to_contain_text(visible_part(marker))
    assert_nothing_ran(xss_visit)

    page = xss_visit.open(session_path(XSS_SESSION), "Session")
    write_from_another_process(
        xss.store.location,
        [
            (
                "create_agent",
                [xss.store.definition_id, XSS_SESSION],
                {"parent_agent_id": xss.store.agent_id},
            ),
            ("update_agent", ["$0"], {"status": "failed", "error_message": payload(marker + "-b")}),
        ],
    )
    expect(page.locator("main")).to_contain_text(
        visible_part(marker + "-b"), timeout=LIVE_TIMEOUT_MS
    )
    assert_nothing_ran(xss_visit)


# --- who may reach the dashboard -------------------------------------------------------


@pytest.fixture(scope="module")
def token_dashboard(demo: Served) -> Iterator[Dashboard]:
    dashboard = start_dashboard(demo.store.location, "--token", "abc")
    yield dashboard
    dashboard.stop()


def test_token_is_required_and_the_printed_url_logs_in(
    browser: Browser, token_dashboard: Dashboard, demo: Served
) -> None:
    assert token_dashboard.token == "abc", token_dashboard.url
    origin = token_dashboard.origin
    for path in (
        "/",
        "/sessions",
        "/logs",
        "/events/changes",
        "/static/dashboard.css",
        "/?token=abd",
    ):
        assert httpx.get(origin + path, timeout=10).status_code == 401, path
        assert (
            httpx.get(origin + path, cookies={"orchestrator_store_token": "abd"}).status_code == 401
        )
        assert httpx.get(origin + path, headers={"Authorization": "Bearer abd"}).status_code == 401

    with visiting(browser, token_dashboard) as visit:
        refused = visit.page.goto(origin + "/sessions")
        assert refused is not None and refused.status == 401
        page = visit.open(token_dashboard.url[len(origin) :], "Overview")
        assert "token" not in page.url  # the token left the address bar for a cookie
        visit.open("/sessions", "Sessions")
        expect(page.locator("main")).to_contain_text(demo.store.demo_sessions[0])
        page.locator("header").get_by_role("link", name="Logs").click()
        expect(page.locator("h1")).to_have_text(re.compile(r"^\s*Logs"))
        visit.open(f"/prompts/{demo.store.demo_prompt_id}", "Prompt")
        # The live stream is let in by the same cookie.
        page = visit.open("/logs", "Logs")
        line = f"line seen through the token {uuid.uuid4().hex[:8]}"
        write_from_another_process(
            demo.store.location, [("create_system_log", ["INFO", "live-probe", line], {})]
        )
        expect(page.get_by_text(line)).to_be_visible(timeout=LIVE_TIMEOUT_MS)
        visit.watch.assert_clean()


def test_all_interfaces_without_a_token_get_one_made(demo: Served) -> None:
    dashboard = start_dashboard(demo.store.location, "--host", "0.0.0.0")
    try:
        token = dashboard.token
        assert token and len(token) >= 16, dashboard.url
        assert dashboard.url.startswith("http://127.0.0.1:"), dashboard.url
        assert httpx.get(dashboard.origin + "/").status_code == 401
        assert httpx.get(dashboard.origin + "/?token=wrong").status_code == 401
        with httpx.Client(base_url=dashboard.origin) as client:
            first = client.get(f"/?token={token}")
            assert first.status_code == 303 and "token" not in first.headers["location"]
            assert client.get("/sessions").status_code == 200  # the cookie it set
    finally:
        dashboard.stop()


def test_the_token_can_come_from_the_environment(demo: Served) -> None:
    secret = f"from-the-environment-{uuid.uuid4().hex[:8]}"
    dashboard = start_dashboard(
        demo.store.location, environment={"ORCHESTRATOR_DASHBOARD_TOKEN": secret}
    )
    try:
        assert dashboard.token == secret, dashboard.url
        assert httpx.get(dashboard.origin + "/").status_code == 401
        bearer = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(dashboard.origin + "/", headers=bearer).status_code == 200
    finally:
        dashboard.stop()


def test_host_check_refuses_other_host_names(demo: Served) -> None:
    origin = demo.dashboard.origin
    assert demo.dashboard.token is None
    refused = httpx.get(origin + "/", headers={"Host": "evil.example"})
    assert refused.status_code == 421
    assert demo.store.demo_sessions[0] not in refused.text
    assert httpx.get(origin + "/sessions", headers={"Host": "evil.example:8765"}).status_code == 421
    assert httpx.get(origin + "/", headers={"Host": "localhost"}).status_code == 200
    assert httpx.get(origin + "/").status_code == 200
