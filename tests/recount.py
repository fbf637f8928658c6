"""Every report, recounted in Python from the rows themselves.

The store answers its reports from totals its triggers keep; these functions
answer the same questions the slow, obvious way, from every row (read through
``query()``), so that a test can compare the two exactly. Costs are added as
whole nano-dollars, as the cost rule documents.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from orchestrator_store.manager import DatabaseManager
from orchestrator_store.tables import TABLES

Row = dict[str, Any]
TERMINAL = ("completed", "failed", "cancelled")


def nano(cost: float) -> int:
    return math.floor(cost * 1_000_000_000 + 0.5)


def dollars(amount: int) -> float:
    return amount / 1_000_000_000


@dataclass
class Rows:
    definitions: dict[str, Row]
    agents: list[Row]
    prompts: list[Row]
    counts: dict[str, int]

    def agent(self, agent_id: str) -> Row:
        return next(a for a in self.agents if a["id"] == agent_id)


async def read_rows(db: DatabaseManager) -> Rows:
    definitions = {row["id"]: row for row in await db.query("SELECT * FROM orchestrator_agents")}
    agents = await db.query("SELECT * FROM agents")
    prompts = await db.query("SELECT * FROM prompts")
    counts = {}
    for table in TABLES:
        counts[table] = int((await db.query(f"SELECT count(*) AS n FROM {table}"))[0]["n"])
    for row in agents:
        row.pop("row_order", None)
    for row in prompts:
        row.pop("row_order", None)
    return Rows(definitions, agents, prompts, counts)


def sessions(rows: Rows) -> dict[str, Row]:
    """Each session's ``session_summaries`` row, by session id."""
    result: dict[str, Row] = {}
    session_of = {a["id"]: a["session_id"] for a in rows.agents}
    costs: dict[str, int] = defaultdict(int)
    for agent in rows.agents:
        row = result.setdefault(
            agent["session_id"],
            {
                "session_id": agent["session_id"],
                "agents": 0,
                "failed_agents": 0,
                "active_agents": 0,
                "prompts": 0,
                "failed_prompts": 0,
                "tokens_input": 0,
                "tokens_output": 0,
                "first_activity": agent["started_at"],
                "last_activity": agent["started_at"],
            },
        )
        row["agents"] += 1
        row["failed_agents"] += agent["status"] == "failed"
        row["active_agents"] += agent["completed_at"] is None and agent["status"] not in TERMINAL
        row["first_activity"] = min(row["first_activity"], agent["started_at"])
        row["last_activity"] = max(
            row["last_activity"], agent["started_at"], agent["completed_at"] or agent["started_at"]
        )
        costs[agent["session_id"]] += nano(agent["cost_usd"])
    for prompt in rows.prompts:
        session = session_of[prompt["agent_id"]]
        row = result[session]
        row["prompts"] += 1
        row["failed_prompts"] += prompt["status"] == "failed"
        row["tokens_input"] += prompt["tokens_input"]
        row["tokens_output"] += prompt["tokens_output"]
        row["last_activity"] = max(
            row["last_activity"], prompt["created_at"], prompt["completed_at"] or ""
        )
        costs[session] += nano(prompt["cost_usd"])
    for session, row in result.items():
        row["cost_usd"] = dollars(costs[session])
    return result


def _in_window(moment: str, since: str | None) -> bool:
    return since is None or moment >= since


def cost_groups(
    rows: Rows, by: str | None, *, since: str | None = None, session_id: str | None = None
) -> dict[Any, tuple[int, int, int, float]]:
    """``cost_totals(by, since=..., session_id=...)`` as key -> (prompts,
    tokens in, tokens out, cost)."""
    sums: dict[Any, list[int]] = defaultdict(lambda: [0, 0, 0, 0])

    def key_of(agent: Row, prompt: Row | None) -> Any:
        if by is None:
            return None
        if by == "session":
            return agent["session_id"]
        if by == "model":
            return prompt["model_used"] if prompt else None
        if by == "agent_type":
            return rows.definitions[agent["orchestrator_agent_id"]]["agent_type"]
        moment = prompt["created_at"] if prompt else agent["started_at"]
        return moment[:10]

    agents = {a["id"]: a for a in rows.agents}
    for prompt in rows.prompts:
        agent = agents[prompt["agent_id"]]
        if session_id is not None and agent["session_id"] != session_id:
            continue
        if not _in_window(prompt["created_at"], since):
            continue
        group = sums[key_of(agent, prompt)]
        group[0] += 1
        group[1] += prompt["tokens_input"]
        group[2] += prompt["tokens_output"]
        group[3] += nano(prompt["cost_usd"])
    for agent in rows.agents:
        if agent["cost_usd"] == 0 or not _in_window(agent["started_at"], since):
            continue
        if session_id is not None and agent["session_id"] != session_id:
            continue
        sums[key_of(agent, None)][3] += nano(agent["cost_usd"])
    if by is None:
        total = sums.get(None, [0, 0, 0, 0])
        return {None: (total[0], total[1], total[2], dollars(total[3]))}
    return {
        key: (group[0], group[1], group[2], dollars(group[3]))
        for key, group in sums.items()
        if group[0] or group[3]
    }


def agent_totals(rows: Rows, agent: Row) -> Row:
    mine = [p for p in rows.prompts if p["agent_id"] == agent["id"]]
    prompts_nano = sum(nano(p["cost_usd"]) for p in mine)
    return {
        "prompts": len(mine),
        "failed_prompts": sum(p["status"] == "failed" for p in mine),
        "tokens_input": sum(p["tokens_input"] for p in mine),
        "tokens_output": sum(p["tokens_output"] for p in mine),
        "prompts_cost_usd": dollars(prompts_nano),
        "total_cost_usd": dollars(prompts_nano + nano(agent["cost_usd"])),
    }


async def assert_reports_match(db: DatabaseManager, *, since: tuple[str, ...] = ()) -> None:
    """Every report equals its recount: sessions (all and one by one, in order),
    costs by every grouping (whole history, from each of ``since``, and per
    session), the costliest sessions, rows per table, agents' totals and the
    session trees."""
    rows = await read_rows(db)
    expected_sessions = sessions(rows)

    summaries = await db.session_summaries()
    assert {row["session_id"]: row for row in summaries} == expected_sessions
    order = [(row["last_activity"], row["session_id"]) for row in summaries]
    assert order == sorted(order, reverse=True)
    if summaries:
        assert await db.session_summaries(limit=2) == summaries[:2]
    for session_id, expected in expected_sessions.items():
        assert await db.session_summary(session_id) == expected
    assert await db.session_summary("no such session") is None

    for by in (None, "session", "model", "agent_type", "day"):
        for moment in (None, *since):
            found = await db.cost_totals(by, since=moment)
            keys = [row["key"] for row in found]
            assert keys == sorted(keys, key=lambda key: (key is not None, key or ""))
            assert _figures(found) == cost_groups(rows, by, since=moment), (by, moment)
        for session_id in expected_sessions:
            found = await db.cost_totals(by, session_id=session_id)
            expected_groups = cost_groups(rows, by, session_id=session_id)
            assert _figures(found) == expected_groups, (by, session_id)

    for moment in (None, *since):  # the latest days (`costs --by day --limit`)
        latest = await db.cost_totals("day", since=moment, limit=2)
        days = sorted(cost_groups(rows, "day", since=moment))
        assert [row["key"] for row in latest] == days[-2:], moment
        assert _figures(latest) == {
            day: cost_groups(rows, "day", since=moment)[day] for day in days[-2:]
        }
    for moment in (None, *since):  # the costliest sessions (`costs --by session --limit`)
        costliest = await db.cost_totals("session", since=moment, limit=3)
        ranked = sorted(
            cost_groups(rows, "session", since=moment).items(),
            key=lambda item: (item[1][3], item[0]),
            reverse=True,
        )
        assert [row["key"] for row in costliest] == [key for key, _ in ranked[:3]], moment

    assert await db.count_rows() == rows.counts

    with_totals = await db.agents_with_totals(await db.list_agents())
    for agent in with_totals:
        expected = agent_totals(rows, rows.agent(agent["id"]))
        assert {key: agent[key] for key in expected} == expected

    for session_id in expected_sessions:
        tree = await db.session_tree(session_id)
        seen = _flatten(tree)
        assert sorted(seen) == sorted(a["id"] for a in rows.agents if a["session_id"] == session_id)


def _figures(groups: list[Row]) -> dict[Any, tuple[int, int, int, float]]:
    """``cost_totals`` rows as ``cost_groups`` gives them: key -> figures."""
    return {
        row["key"]: (row["prompts"], row["tokens_input"], row["tokens_output"], row["cost_usd"])
        for row in groups
    }


def _flatten(tree: list[Row]) -> list[str]:
    ids = []
    for node in tree:
        ids.append(node["id"])
        ids += _flatten(node["children"])
    return ids
