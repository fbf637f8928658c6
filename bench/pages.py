"""Pages: every view of the dashboard (``orchestrator-store serve``), timed on a long history.

The store is the scale benchmark's (``scale_build``): 10,000 sessions, 1,000,000 prompts
(1,000 sessions with --quick), on SQLite and, when a server answers, PostgreSQL. The
dashboard's application runs in this process, opened read-only as ``serve`` opens it, and
each page is requested through its ASGI interface (``httpx.ASGITransport``): the time is
the server's (routing, the store's reads, the template), without a network or a browser.
Per page ``WARMUP_CALLS`` untimed requests, then ``CALLS`` timed ones (p50, p99); pages of
one session, prompt or agent take a random one each request. The target: p99 < 200 ms for
every page at 1M prompts.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pg_server
import scale_build
import scale_data

from orchestrator_store.web import create_app

SIZES = {"quick": 1_000, "normal": 10_000, "full": 10_000}  # sessions
CALLS = 300
WARMUP_CALLS = 20
P99_TARGET_MS = 200.0
SAMPLE = 300  # sessions, prompts and agents the per-item pages pick from

clock = time.perf_counter


class Picks:
    """Random sessions, prompts and agents of the store, for the per-item pages."""

    def __init__(self, sessions: list[str], prompts: list[str], agents: list[str]) -> None:
        self.sessions, self.prompts, self.agents = sessions, prompts, agents
        self._rng = random.Random(15)

    def session(self) -> str:
        return quote(self._rng.choice(self.sessions), safe="")

    def prompt(self) -> str:
        return self._rng.choice(self.prompts)

    def agent(self) -> str:
        return self._rng.choice(self.agents)


PAGES: list[tuple[str, Callable[[Picks], str]]] = [
    ("overview", lambda _: "/"),
    ("sessions", lambda _: "/sessions"),
    ("sessions by cost", lambda _: "/sessions?sort=cost&order=desc"),
    ("sessions failed, by duration", lambda _: "/sessions?status=failed&sort=duration"),
    ("sessions, page 150", lambda _: "/sessions?sort=tokens&page=150"),
    ("a session", lambda picks: f"/sessions/{picks.session()}"),
    ("a prompt", lambda picks: f"/prompts/{picks.prompt()}"),
    ("logs", lambda _: "/logs"),
    ("logs, ERROR and above", lambda _: "/logs?level=ERROR"),
    ("logs of an agent", lambda picks: f"/logs?agent={picks.agent()}"),
    ("definitions", lambda _: "/definitions"),
    ("workflows", lambda _: "/workflows"),
]


async def _picks(client: httpx.AsyncClient, app: Any) -> Picks:
    db = app.state.db
    rng = random.Random(7)
    sessions = [row["session_id"] for row in await db.session_summaries(limit=None)]
    chosen = rng.sample(sessions, min(SAMPLE, len(sessions)))
    prompts: list[str] = []
    agents: list[str] = []
    for session_id in chosen:
        prompts += [row["id"] for row in await db.list_prompts(session_id=session_id, limit=1)]
        agents += [row["id"] for row in (await db.list_agents(session_id=session_id))[:1]]
    return Picks(chosen, prompts, agents)


def _percentile_ms(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


async def measure(target: str) -> dict[str, dict[str, Any]]:
    """Each page's p50 and p99 on the store at ``target``."""
    app = create_app(target)
    figures: dict[str, dict[str, Any]] = {}
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client,
    ):
        picks = await _picks(client, app)
        for name, url in PAGES:
            times: list[float] = []
            for call in range(WARMUP_CALLS + CALLS):
                started = clock()
                response = await client.get(url(picks))
                elapsed = clock() - started
                if response.status_code != 200:
                    figures[name] = {"error": f"{url(picks)}: HTTP {response.status_code}"}
                    break
                if call >= WARMUP_CALLS:
                    times.append(elapsed)
            else:
                times.sort()
                figures[name] = {
                    "calls": len(times),
                    "p50_ms": round(_percentile_ms(times, 0.50), 2),
                    "p99_ms": round(_percentile_ms(times, 0.99), 2),
                    "max_ms": round(times[-1] * 1000, 2),
                    "bytes": len(response.content),
                }
    return figures


async def run(size: str, folder: Path) -> dict[str, Any]:
    sessions = SIZES[size]
    prompts = sessions * scale_data.PROMPTS_PER_SESSION
    runs: list[dict[str, Any]] = []
    print(f"Pages: SQLite store of {prompts:,} prompts ...", flush=True)
    built = await scale_build.sqlite_store(folder, sessions)
    runs.append({"backend": "sqlite", "prompts": prompts, "pages": await measure(built.target)})
    reason = await pg_server.unusable(pg_server.SERVER_URL)
    if reason is None:
        async with pg_server.bench_database(pg_server.SERVER_URL) as database:
            print(f"Pages: PostgreSQL store of {prompts:,} prompts ...", flush=True)
            built = await scale_build.postgres_store(database, sessions)
            try:
                pages = await measure(built.target)
            finally:
                await scale_build.drop_postgres_store(database, built)
            runs.append({"backend": "postgresql", "prompts": prompts, "pages": pages})
    return {"size": size, "postgresql_skipped": reason, "runs": runs}


def problems(report: dict[str, Any]) -> list[str]:
    """Pages that failed or missed the target."""
    found = []
    for measured in report["runs"]:
        for name, figures in measured["pages"].items():
            where = f"{measured['backend']} {name}"
            if "error" in figures:
                found.append(f"{where}: {figures['error']}")
            elif figures["p99_ms"] >= P99_TARGET_MS:
                found.append(f"{where}: p99 {figures['p99_ms']} ms >= {P99_TARGET_MS:g} ms")
    return found


def print_table(report: dict[str, Any]) -> None:
    backends = [measured["backend"] for measured in report["runs"]]
    print(f"\nDashboard pages, server time (ms), {report['runs'][0]['prompts']:,} prompts")
    print(f"| page | {' | '.join(f'{b} p50 | {b} p99' for b in backends)} |")
    print("|---|" + "---|---|" * len(backends))
    for name, _ in PAGES:
        cells = []
        for measured in report["runs"]:
            figures = measured["pages"].get(name, {"error": "not run"})
            if "error" in figures:
                cells += ["error", figures["error"]]
            else:
                cells += [f"{figures['p50_ms']:.1f}", f"{figures['p99_ms']:.1f}"]
        print(f"| {name} | {' | '.join(cells)} |")
    if report.get("postgresql_skipped"):
        print(f"PostgreSQL skipped: {report['postgresql_skipped']}")
    for problem in problems(report):
        print(f"MISSED: {problem}")


def run_and_print(size: str, folder: Path) -> dict[str, Any]:
    report = asyncio.run(run(size, folder))
    print_table(report)
    return report
