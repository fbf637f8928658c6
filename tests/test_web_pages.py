"""The dashboard's pages on a real store, on both backends: what each shows,
the sessions list's filters, sorting and paging, the errors, and that stored
text (untrusted model output) is always escaped.

Rows are written with the store; times in the past are then set with a raw
connection (``sqlite3``, or asyncpg on PostgreSQL) so that the totals'
triggers see them change as they would any write.
"""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from orchestrator_store.manager import DatabaseManager
from orchestrator_store.models import format_timestamp
from orchestrator_store.web import create_app, pages
from orchestrator_store.web.formatting import money
from orchestrator_store.web.reads import session_href

EVIL = '<script>alert(1)</script>"><img src=x onerror=alert(1)>\x1b]0;pwned\x07'
EVIL_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
EVIL_SHOWN = "\u241b]0;pwned\u2407"  # the terminal escape's control characters, made visible


@contextmanager
def dashboard(store_url: Any) -> Iterator[TestClient]:
    # A loopback host name: without a token the dashboard answers no other.
    with TestClient(create_app(store_url), base_url="http://127.0.0.1") as client:
        yield client


def page(client: TestClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, (url, response.text[:2000])
    return response.text


def sessions_listed(body: str) -> list[str]:
    """The session ids of the page's session rows, in order."""
    return [html.unescape(found) for found in re.findall(r'data-session="([^"]*)"', body)]


async def set_times(store_url: Any, table: str, row_id: str, **moments: datetime | None) -> None:
    """Set time columns of a row behind the store's back (its API sets them to now)."""
    names = list(moments)
    if isinstance(store_url, Path):
        assignments = ", ".join(f"{name} = ?" for name in names)
        values = [format_timestamp(m) if m else None for m in moments.values()]
        with sqlite3.connect(store_url) as raw:
            raw.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", [*values, row_id])
        raw.close()
        return
    from pg_testing import connect_raw

    assignments = ", ".join(f"{name} = ${index}" for index, name in enumerate(names, 1))
    connection = await connect_raw(store_url)
    try:
        await connection.execute(
            f"UPDATE {table} SET {assignments} WHERE id = ${len(names) + 1}",
            *moments.values(),
            row_id,
        )
    finally:
        await connection.close()


async def record_session(
    db: DatabaseManager,
    store_url: Any,
    definition: str,
    session_id: str,
    *,
    status: str,
    started: datetime,
    ended: datetime | None,
    cost: float = 0.0,
    tokens: int = 0,
    model: str = "model-a",
) -> tuple[str, str]:
    """One agent with one prompt, from ``started`` to ``ended`` (its prompt a
    minute after the start, for a minute): its agent and prompt ids."""
    agent = await db.create_agent(definition, session_id, status=status)
    prompt = await db.create_prompt(agent, "adw", f"work of {session_id}", model_used=model)
    await db.update_prompt(
        prompt, status="completed", tokens_input=tokens, cost_usd=cost, latency_ms=60_000
    )
    await set_times(store_url, "agents", agent, started_at=started, completed_at=ended)
    created = started + timedelta(minutes=1)
    await set_times(
        store_url,
        "prompts",
        prompt,
        created_at=created,
        completed_at=created + timedelta(minutes=1),
    )
    return agent, prompt


# --- the overview ------------------------------------------------------------------


async def test_overview_shows_running_failed_costs_and_costliest(
    db: DatabaseManager, store_url: Any
) -> None:
    planner = await db.create_orchestrator_agent("planner-def", "Plans", "planner")
    builder = await db.create_orchestrator_agent("builder-def", "Builds", "builder")
    now = datetime.now(UTC)
    running = await db.create_agent(builder, "s-run", status="executing")
    prompt = await db.create_prompt(running, "adw", "build it", model_used="model-a")
    await db.update_prompt(prompt, tokens_input=1000, tokens_output=200, cost_usd=0.30)
    failed = await db.create_agent(planner, "s-fail", status="failed")
    await db.update_agent(failed, error_message="boom: tests failed\nsecond line", completed_at=now)
    prompt = await db.create_prompt(failed, "adw", "plan it", model_used="model-b")
    await db.update_prompt(prompt, status="failed", tokens_input=500, cost_usd=0.10)
    done = await db.create_agent(planner, "s-done", status="completed")
    prompt = await db.create_prompt(done, "adw", "review it", model_used="model-a")
    await db.update_prompt(prompt, status="completed", tokens_output=50, cost_usd=0.05)
    await db.add_agent_cost(done, 0.01)  # its own cost: under no model
    old = await db.create_agent(planner, "s-old-fail", status="failed")
    await db.update_agent(old, error_message="long ago")
    await set_times(store_url, "agents", old, started_at=now - timedelta(days=3), completed_at=None)

    with dashboard(store_url) as client:
        body = page(client, "/")

    assert '<main id="page" data-live="refresh">' in body
    assert "<h1>Overview</h1>" in body
    running_part = body.split("<h2>Running now")[1].split("<h2>")[0]
    assert running_part.startswith(" (1)</h2>")
    assert "builder-def" in running_part and 'href="/sessions/s-run"' in running_part
    assert "executing" in running_part and money(0.30) in running_part
    failed_part = body.split("<h2>Failed in the last 24 hours</h2>")[1].split("<h2>")[0]
    assert "boom: tests failed" in failed_part and "second line" not in failed_part
    assert 'href="/sessions/s-fail"' in failed_part
    assert "s-old-fail" not in failed_part  # failed three days ago
    windows = body.split('<section class="cards"')[1].split("</section>")[0]
    assert windows.count(money(0.46)) == 3  # today, 7 days and 30 days: all of it is today's
    assert "1,750 tokens" in windows  # 1500 in, 250 out
    costliest = body.split("<h2>Most expensive sessions</h2>")[1]
    assert sessions_listed(costliest) == ["s-run", "s-fail", "s-done"]  # $0.30, $0.10, $0.06


async def test_overview_chart_stacks_each_day_by_model(db: DatabaseManager, store_url: Any) -> None:
    definition = await db.create_orchestrator_agent("def", None, "builder")
    now = datetime.now(UTC)
    agent = await db.create_agent(definition, "charted", status="completed")
    spend = {  # (days ago, model) -> cost
        (0, "model-a"): 0.25,
        (0, "model-b"): 0.50,
        (3, "model-a"): 0.125,
        (3, "model-c"): 1.0,
        (45, "model-d"): 9.0,  # before the chart's 30 days
    }
    for (days_ago, model), cost in spend.items():
        prompt = await db.create_prompt(agent, "adw", "work", model_used=model)
        await db.update_prompt(prompt, cost_usd=cost, tokens_input=10)
        await set_times(store_url, "prompts", prompt, created_at=now - timedelta(days=days_ago))

    with dashboard(store_url) as client:
        body = page(client, "/")

    chart = body.split('<svg class="cost-chart"')[1].split("</svg>")[0]
    for (days_ago, model), cost in spend.items():
        day = (now - timedelta(days=days_ago)).date().isoformat()
        title = f"<title>{day} · {model}: {money(cost)} (1 prompts)</title>"
        assert (title in chart) == (days_ago < 30), title
    days = re.findall(r'<g class="day" data-day="([^"]+)">(.*?)</g>', chart, re.S)
    assert len(days) == 30
    segments = {day: group.count('<rect class="segment') for day, group in days}
    assert segments[now.date().isoformat()] == 2
    assert segments[(now - timedelta(days=3)).date().isoformat()] == 2
    assert sum(segments.values()) == 4
    legend = body.split('<ul class="legend">')[1].split("</ul>")[0]
    # Costliest first over the 30 days: model-c $1, model-a $0.375, model-b $0.50.
    assert re.findall(r'<span class="legend-label">([^<]+)</span>', legend) == [
        "model-c",
        "model-b",
        "model-a",
    ]


async def test_overview_of_an_empty_store(db: DatabaseManager, store_url: Any) -> None:
    del db  # the store exists, with nothing in it
    with dashboard(store_url) as client:
        body = page(client, "/")
    assert "No agent is running." in body
    assert "No agent failed in the last 24 hours." in body
    assert "No cost recorded" in body


# --- sessions ----------------------------------------------------------------------


@pytest.fixture
async def four_sessions(db: DatabaseManager, store_url: Any) -> datetime:
    """alpha (completed), bravo (failed), charlie (running), delta (completed):
    each ahead of the others in one order. Returns "now"."""
    definition = await db.create_orchestrator_agent("def", None, "builder")
    now = datetime.now(UTC)
    day = timedelta(days=1)
    minutes = timedelta(minutes=1)
    for name, status, cost, tokens, last, length in (
        ("alpha", "completed", 0.40, 100, now - day, 10),
        ("bravo", "failed", 0.10, 900, now - 3 * day, 60),
        ("charlie", "executing", 0.30, 50, now - 3 * minutes, 2),
        ("delta", "completed", 0.20, 400, now - 10 * day, 30),
    ):
        started = last - length * minutes
        ended = None if status == "executing" else last
        await record_session(
            db,
            store_url,
            definition,
            name,
            status=status,
            started=started,
            ended=ended,
            cost=cost,
            tokens=tokens,
        )
    return now


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["charlie", "alpha", "bravo", "delta"]),  # the latest activity first
        ("?order=asc", ["delta", "bravo", "alpha", "charlie"]),
        ("?sort=cost", ["alpha", "charlie", "delta", "bravo"]),
        ("?sort=cost&order=asc", ["bravo", "delta", "charlie", "alpha"]),
        ("?sort=tokens", ["bravo", "delta", "alpha", "charlie"]),
        ("?sort=duration", ["bravo", "delta", "alpha", "charlie"]),
        ("?sort=duration&order=asc", ["charlie", "alpha", "delta", "bravo"]),
        ("?status=running", ["charlie"]),
        ("?status=failed", ["bravo"]),
        ("?status=completed&sort=cost", ["alpha", "delta"]),
    ],
)
async def test_sessions_sort_and_filter_by_status(
    four_sessions: datetime, store_url: Any, query: str, expected: list[str]
) -> None:
    with dashboard(store_url) as client:
        body = page(client, "/sessions" + query)
    assert sessions_listed(body) == expected
    assert '<main id="page" data-live="refresh">' in body


async def test_sessions_filter_by_last_activity_and_keep_filters_in_links(
    four_sessions: datetime, store_url: Any
) -> None:
    now = four_sessions
    since = (now - timedelta(days=5)).date().isoformat()
    until = (now - timedelta(days=2)).date().isoformat()
    with dashboard(store_url) as client:
        assert sessions_listed(page(client, f"/sessions?since={since}")) == [
            "charlie",
            "alpha",
            "bravo",
        ]
        assert sessions_listed(page(client, f"/sessions?until={until}")) == ["bravo", "delta"]
        body = page(client, f"/sessions?since={since}&until={until}&status=failed&sort=tokens")
        assert sessions_listed(body) == ["bravo"]
        empty = page(client, "/sessions?since=" + (now + timedelta(days=2)).date().isoformat())
        assert sessions_listed(empty) == [] and "No session matches these filters." in empty

    # The form shows what is chosen; the column links keep the filters.
    assert '<option value="failed" selected>' in body
    assert f'name="since" value="{since}"' in body and f'name="until" value="{until}"' in body
    assert '<input type="hidden" name="sort" value="tokens">' in body
    cost_link = re.search(r'<a href="([^"]+)">Cost', body)
    assert cost_link is not None
    assert html.unescape(cost_link.group(1)) == (
        f"/sessions?status=failed&since={since}&until={until}&sort=cost&order=desc"
    )
    tokens_link = re.search(r'<a href="([^"]+)">Tokens ▼', body)  # sorted by it: flips
    assert tokens_link is not None and "order=asc" in tokens_link.group(1)


async def test_sessions_page_through_fifty_at_a_time(db: DatabaseManager, store_url: Any) -> None:
    definition = await db.create_orchestrator_agent("def", None, "builder")
    names = [f"session-{number:02d}" for number in range(pages.PAGE_SIZE + 3)]
    for name in names:
        await db.create_agent(definition, name, status="completed")

    with dashboard(store_url) as client:
        first = page(client, "/sessions?status=completed&order=asc")
        next_link = re.search(r'<a rel="next" href="([^"]+)"', first)
        assert next_link is not None
        second = page(client, html.unescape(next_link.group(1)))
        past = page(client, "/sessions?page=3")

    assert "page 1 of 2" in first and "page 2 of 2" in second
    assert html.unescape(next_link.group(1)) == "/sessions?status=completed&order=asc&page=2"
    assert 'rel="prev"' not in first
    previous = re.search(r'<a rel="prev" href="([^"]+)"', second)
    assert previous is not None
    assert html.unescape(previous.group(1)) == "/sessions?status=completed&order=asc&page=1"
    assert 'rel="next"' not in second
    # Created in order, so the oldest activity first: the names in order, split 50 + 3.
    assert sessions_listed(first) == names[: pages.PAGE_SIZE]
    assert sessions_listed(second) == names[pages.PAGE_SIZE :]
    assert f"{len(names)} sessions match." in first
    assert sessions_listed(past) == [] and "past the last page" in past


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/sessions?sort=evil", "sort"),
        ("/sessions?order=sideways", "order"),
        ("/sessions?status=sleeping", "status"),
        ("/sessions?page=-1", "page"),
        ("/sessions?page=0", "page"),
        ("/sessions?page=two", "page"),
        ("/sessions?since=notadate", "since"),
        ("/sessions?until=2026-13-01", "until"),
        ("/sessions?since=2026-02-01&until=2026-01-01", "until"),
        ("/workflows?status=sleeping", "status"),
        ("/workflows?page=x", "page"),
        ("/definitions?page=99999999999", "page"),
    ],
)
async def test_a_bad_parameter_is_a_400_naming_it(
    db: DatabaseManager, store_url: Any, url: str, parameter: str
) -> None:
    with dashboard(store_url) as client:
        body = page(client, url, status=400)
    assert "<h1>Bad request</h1>" in body
    assert f"parameter &#39;{parameter}&#39;" in body
    assert "Traceback" not in body


async def test_unknown_sessions_and_prompts_are_404(db: DatabaseManager, store_url: Any) -> None:
    with dashboard(store_url) as client:
        for url in (
            "/sessions/no-such-session",
            "/sessions/",
            "/sessions/%00",
            "/prompts/not-a-uuid",
            "/prompts/0190f5a0-0000-7000-8000-000000000000",
        ):
            body = page(client, url, status=404)
            assert "<h1>Not found</h1>" in body


# --- one session ---------------------------------------------------------------------


@pytest.fixture
async def session_rows(db: DatabaseManager, store_url: Any) -> dict[str, str]:
    """A lead agent with a failed child and a running child; prompts and logs."""
    lead_def = await db.create_orchestrator_agent("lead-def", None, "orchestrator")
    worker_def = await db.create_orchestrator_agent("worker-def", None, "builder")
    now = datetime.now(UTC)
    lead = await db.create_agent(lead_def, "sess/one", status="completed")
    failed = await db.create_agent(worker_def, "sess/one", parent_agent_id=lead, status="failed")
    running = await db.create_agent(
        worker_def, "sess/one", parent_agent_id=lead, status="executing"
    )
    await db.update_agent(failed, error_message="worker crashed\ntrace", completed_at=now)
    await db.update_agent(lead, completed_at=now)
    ids = {"lead": lead, "failed": failed, "running": running}
    for key, agent, model, status, cost in (
        ("ok_prompt", lead, "model-a", "completed", 0.5),
        ("bad_prompt", failed, "model-b", "failed", 0.25),
        ("open_prompt", running, "model-b", "streaming", 0.0),
    ):
        prompt = await db.create_prompt(agent, "adw", f"the {key} text", model_used=model)
        await db.update_prompt(
            prompt,
            status=status,
            cost_usd=cost,
            tokens_input=100,
            tokens_output=10,
            latency_ms=1500 if status != "streaming" else None,
            error_message="rate limited" if status == "failed" else None,
        )
        ids[key] = prompt
    await db.create_agent_log(lead, "INFO", "milestone", "plan ready")
    await db.create_agent_log(failed, "ERROR", "error", "the worker failed")
    await db.create_agent_log(running, "WARNING", "performance", "slow")
    await set_times(store_url, "agents", lead, started_at=now - timedelta(minutes=10))
    return ids


async def test_session_page_shows_totals_models_tree_and_waterfall(
    session_rows: dict[str, str], store_url: Any
) -> None:
    with dashboard(store_url) as client:
        body = page(client, session_href("sess/one"))

    assert '<h1>Session <span class="mono">sess/one</span></h1>' in body
    assert '<main id="page" data-live="refresh">' in body
    totals = body.split('<dl class="totals">')[1].split("</dl>")[0]
    for figure in ("<dd>3</dd>", money(0.75), "300", "(1 failed)"):
        assert figure in totals
    models = body.split("<h2>Cost by model</h2>")[1].split("</table>")[0]
    assert re.findall(r'<td class="mono">([^<]+)</td>', models) == ["model-a", "model-b"]
    assert money(0.5) in models and money(0.25) in models
    # The tree: the lead, then its two children one level down.
    tree = body.split('<table class="tree">')[1].split("</table>")[0]
    rows = re.findall(r'data-agent="([^"]+)" data-depth="(\d)"', tree)
    assert rows[0] == (session_rows["lead"], "0")
    assert sorted(rows[1:]) == sorted(
        [(session_rows["failed"], "1"), (session_rows["running"], "1")]
    )
    assert "worker crashed" in tree and "trace" not in tree
    # The waterfall: a bar per agent, prompts linked, errors marked.
    waterfall = body.split('<table class="waterfall">')[1].split("</table>")[0]
    assert waterfall.count('<svg class="lane"') == 3
    assert waterfall.count('class="bar failed"') == 1
    assert waterfall.count('class="bar running"') == 1
    assert waterfall.count('class="bar completed"') == 1
    for key, css in (
        ("ok_prompt", "prompt done"),
        ("bad_prompt", "prompt failed"),
        ("open_prompt", "prompt open"),
    ):
        assert f'<a href="/prompts/{session_rows[key]}"><rect class="{css}"' in waterfall
    assert waterfall.count('<circle class="log level-error"') == 1
    assert waterfall.count('<circle class="log level-warning"') == 1
    assert waterfall.count('<circle class="log level-info"') == 1
    assert "more than" not in body


async def test_session_tree_names_an_agent_by_its_definition_and_a_different_type(
    db: DatabaseManager, store_url: Any
) -> None:
    named_as_type = await db.create_orchestrator_agent("planner", None, "planner")
    named_apart = await db.create_orchestrator_agent("lead-def", None, "orchestrator")
    lead = await db.create_agent(named_apart, "sess/two")
    child = await db.create_agent(named_as_type, "sess/two", parent_agent_id=lead)
    with dashboard(store_url) as client:
        body = page(client, session_href("sess/two"))

    tree = body.split('<table class="tree">')[1].split("</table>")[0]
    cells = [
        " ".join(re.sub(r"<[^>]+>", " ", cell).split())
        for cell in re.findall(r'<td class="agent">(.*?)</td>', tree)
    ]
    assert cells == [f"lead-def orchestrator {lead[-8:]}", f"└ planner {child[-8:]}"]


async def test_session_waterfall_says_when_it_is_cut(
    session_rows: dict[str, str], store_url: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "WATERFALL_ROWS", 2)
    with dashboard(store_url) as client:
        body = page(client, session_href("sess/one"))
    assert "This session has more than 2 prompts and more than 2 log lines" in body
    waterfall = body.split('<table class="waterfall">')[1].split("</table>")[0]
    assert waterfall.count('<a href="/prompts/') == 2
    assert waterfall.count("<circle ") == 2


# --- one prompt ----------------------------------------------------------------------


async def test_prompt_page_shows_the_prompt_and_links_its_session(
    session_rows: dict[str, str], store_url: Any, db: DatabaseManager
) -> None:
    await db.update_prompt(session_rows["bad_prompt"], response_text="partial\nanswer")
    with dashboard(store_url) as client:
        body = page(client, f"/prompts/{session_rows['bad_prompt']}")
    assert "<h1>Prompt</h1>" in body
    assert '<pre class="text">the bad_prompt text</pre>' in body
    assert '<pre class="text">partial\nanswer</pre>' in body
    assert '<pre class="text error-text">rate limited</pre>' in body
    for shown in ("model-b", "worker-def", money(0.25), "1.5 s", "failed", ">100<", ">10<"):
        assert shown in body, shown
    assert f'href="{session_href("sess/one")}"' in body


# --- definitions and workflows -------------------------------------------------------


async def test_definitions_page_lists_definitions_with_their_spend(
    db: DatabaseManager, store_url: Any
) -> None:
    planner = await db.create_orchestrator_agent(
        "the-planner", "Breaks work down", "planner", default_model="model-x"
    )
    await db.create_orchestrator_agent("the-tester", None, "tester")
    agent = await db.create_agent(planner, "s1", status="completed")
    prompt = await db.create_prompt(agent, "adw", "plan", model_used="model-x")
    await db.update_prompt(prompt, cost_usd=0.125)

    with dashboard(store_url) as client:
        body = page(client, "/definitions")

    assert "<h1>Definitions</h1>" in body
    rows = body.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
    assert "the-tester" in rows[0] and "tester" in rows[0]  # newest first
    assert "the-planner" in rows[1]
    for shown in ("planner", "model-x", "Breaks work down", money(0.125)):
        assert shown in rows[1]


async def test_workflows_page_lists_runs_and_filters_by_status(
    db: DatabaseManager, store_url: Any
) -> None:
    failed = await db.start_workflow("adw_plan_build", "plan_build", adw_id="a1b2", total_steps=3)
    await db.update_workflow_step(failed, "build", completed_steps=2)
    await db.end_workflow(
        failed, "failed", error_message="tests failed\ndetails", error_step="build"
    )
    running = await db.start_workflow("adw_patch", "patch", adw_id="c3d4", total_steps=4)
    await db.update_workflow_step(running, "test", completed_steps=1)

    with dashboard(store_url) as client:
        everything = page(client, "/workflows")
        only_failed = page(client, "/workflows?status=failed")

    assert "<h1>Workflows</h1>" in everything
    assert everything.index("adw_patch") < everything.index("adw_plan_build")  # newest first
    for shown in ("a1b2", "c3d4", "in_progress", "failed", "2/3", "1/4", "tests failed"):
        assert shown in everything, shown
    assert "details" not in everything  # the error's first line only
    assert "adw_plan_build" in only_failed and "adw_patch" not in only_failed
    assert '<option value="failed" selected>' in only_failed


# --- escaping --------------------------------------------------------------------------


async def test_stored_text_is_escaped_on_every_page(db: DatabaseManager, store_url: Any) -> None:
    definition = await db.create_orchestrator_agent(
        EVIL, EVIL, "planner", capabilities=EVIL, default_model=EVIL
    )
    failed = await db.create_agent(definition, EVIL, status="failed")
    await db.update_agent(failed, error_message=EVIL, completed_at=datetime.now(UTC))
    await db.create_agent(definition, EVIL, parent_agent_id=failed, status="executing")
    prompt = await db.create_prompt(failed, "adw", EVIL, prompt_name=EVIL, model_used=EVIL)
    await db.update_prompt(
        prompt, status="failed", response_text=EVIL, error_message=EVIL, cost_usd=0.5
    )
    await db.create_agent_log(failed, "ERROR", "error", EVIL)
    workflow = await db.start_workflow(EVIL, EVIL, adw_id=EVIL, description=EVIL, total_steps=2)
    await db.update_workflow_step(workflow, EVIL, completed_steps=1)
    await db.end_workflow(workflow, "failed", error_message=EVIL, error_step=EVIL)

    with dashboard(store_url) as client:
        overview = page(client, "/")
        link = re.search(r'href="(/sessions/[^"]+)"', overview)
        assert link is not None
        bodies = {
            "/": overview,
            "session link": page(client, html.unescape(link.group(1))),
        }
        for url in (
            "/sessions",
            "/sessions?status=failed",
            session_href(EVIL),
            f"/prompts/{prompt}",
            "/definitions",
            "/workflows",
            "/workflows?status=failed",
        ):
            bodies[url] = page(client, url)
        bodies["404"] = page(client, session_href(EVIL + "?"), status=404)
        bodies["400"] = page(client, "/sessions?sort=" + quote(EVIL, safe=""), status=400)

    for url, body in bodies.items():
        assert EVIL_ESCAPED in body, url
        assert EVIL_SHOWN in body or url == "400", url  # 400 echoes a cut value
        assert "<script>alert" not in body, url
        assert "<img" not in body, url
        assert "\x1b" not in body and "\x07" not in body, url
        assert " style=" not in body, url  # the CSP forbids them: none is written
    # Every page that lists a text field shows it: a count of the escaped copies.
    assert bodies["/prompts/" + prompt].count(EVIL_ESCAPED) >= 6  # text, response, error, ...
    assert bodies[session_href(EVIL)].count(EVIL_ESCAPED) >= 5
    assert bodies["/workflows"].count(EVIL_ESCAPED) >= 6
    assert bodies["/definitions"].count(EVIL_ESCAPED) >= 3
