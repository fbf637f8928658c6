"""The reports read totals that triggers keep; here they are proven exact.

After every kind of write (creates, updates of cost, tokens, status and times,
agents moved between sessions, deletes with their cascades, prune, raw SQL
from outside the store, several processes at once, copy-to-postgres and the
migration of a version-2 file), every report is compared with a recount from
the rows (``recount.py``), on both backends.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from recount import assert_reports_match, read_rows

from orchestrator_store.dialect import SQLITE
from orchestrator_store.manager import BusyError, DatabaseError, DatabaseManager, ValidationError
from orchestrator_store.models import AGENT_STATUSES, AGENT_TYPES, PROMPT_STATUSES, format_timestamp
from orchestrator_store.schema import DEFAULT_SCHEMA_PATH, LATEST_VERSION
from orchestrator_store.tables import TOTALS_TABLES
from orchestrator_store.totals_sql import TotalsSql

MODELS = ("claude-opus", "claude-sonnet", "claude-haiku", None)
NOW = datetime.now(UTC)


def _moment(rng: random.Random) -> str:
    """A time in the last ten days, to spread rows over days."""
    return format_timestamp(NOW - timedelta(days=rng.uniform(0, 10)))


def _cost(rng: random.Random) -> float:
    return rng.choice((0.0, 0.0005, 0.001, 0.0123, 0.1, 0.3, round(rng.uniform(0, 2), 6)))


class RawSql:
    """Writes from outside the store: the triggers must count them too."""

    def __init__(self, store_url: Any) -> None:
        self.store_url = store_url

    async def run(self, sql: str) -> None:
        if isinstance(self.store_url, Path):
            connection = sqlite3.connect(self.store_url)
            try:
                connection.execute("PRAGMA foreign_keys = ON")
                connection.execute(sql)
                connection.commit()
            finally:
                connection.close()
            return
        from pg_testing import run_sql

        await run_sql(self.store_url, sql)


async def _random_history(
    db: DatabaseManager, raw: RawSql, rng: random.Random, operations: int
) -> None:
    """``operations`` random writes of every kind the reports must follow."""
    definitions = [row["id"] for row in await db.list_orchestrator_agents()] or [
        await db.create_orchestrator_agent(f"def-{kind}", None, kind) for kind in AGENT_TYPES[:4]
    ]
    sessions = [f"session-{n}" for n in range(5)]
    agents: list[str] = [row["id"] for row in await db.query("SELECT id FROM agents")]
    prompts: list[str] = [row["id"] for row in await db.query("SELECT id FROM prompts")]

    async def new_agent() -> None:
        session = rng.choice(sessions)
        siblings = [a for a in agents if (await db.get_agent(a) or {}).get("session_id") == session]
        agent = await db.create_agent(
            rng.choice(definitions),
            session,
            parent_agent_id=rng.choice(siblings) if siblings and rng.random() < 0.7 else None,
            status=rng.choice(AGENT_STATUSES),
        )
        if rng.random() < 0.3:
            await db.add_agent_cost(agent, _cost(rng))
        agents.append(agent)

    async def new_prompt() -> None:
        prompt = await db.create_prompt(
            rng.choice(agents),
            "command",
            "do the thing",
            status=rng.choice(PROMPT_STATUSES),
            model_used=rng.choice(MODELS),
        )
        prompts.append(prompt)

    async def update_prompt() -> None:
        await db.update_prompt(
            rng.choice(prompts),
            tokens_input=rng.randrange(5000),
            tokens_output=rng.randrange(2000),
            cost_usd=_cost(rng),
            status=rng.choice(PROMPT_STATUSES),
        )

    async def prompt_times() -> None:
        created = _moment(rng)
        completed = f"'{_moment(rng)}'" if rng.random() < 0.6 else "NULL"
        if not isinstance(raw.store_url, Path):
            completed = f"{completed}::timestamptz" if completed != "NULL" else completed
        await raw.run(
            f"UPDATE prompts SET created_at = '{created}', completed_at = {completed},"
            f" model_used = {_literal(rng.choice(MODELS))} WHERE id = '{rng.choice(prompts)}'"
        )

    async def agent_times() -> None:
        await raw.run(
            f"UPDATE agents SET started_at = '{_moment(rng)}' WHERE id = '{rng.choice(agents)}'"
        )

    async def agent_update() -> None:
        agent = rng.choice(agents)
        fields: dict[str, Any] = {"status": rng.choice(AGENT_STATUSES)}
        if rng.random() < 0.5:
            fields["completed_at"] = _moment(rng)
        await db.update_agent(agent, **fields)

    async def agent_cost() -> None:
        if rng.random() < 0.5:
            await db.add_agent_cost(rng.choice(agents), _cost(rng))
        else:
            await db.update_agent(rng.choice(agents), cost_usd=_cost(rng))

    async def move_agent() -> None:
        await raw.run(
            f"UPDATE agents SET session_id = '{rng.choice(sessions)}'"
            f" WHERE id = '{rng.choice(agents)}'"
        )

    async def move_prompt() -> None:
        await raw.run(
            f"UPDATE prompts SET agent_id = '{rng.choice(agents)}'"
            f" WHERE id = '{rng.choice(prompts)}'"
        )

    async def redefine_agent() -> None:
        await raw.run(
            f"UPDATE agents SET orchestrator_agent_id = '{rng.choice(definitions)}'"
            f" WHERE id = '{rng.choice(agents)}'"
        )

    async def delete_prompt() -> None:
        prompt = prompts.pop(rng.randrange(len(prompts)))
        await db.delete_prompt(prompt)

    async def delete_agent() -> None:
        agent = agents.pop(rng.randrange(len(agents)))
        await db.delete_agent(agent)
        alive = {row["id"] for row in await db.query("SELECT id FROM prompts")}
        prompts[:] = [p for p in prompts if p in alive]

    async def logs() -> None:
        await db.create_agent_log(rng.choice(agents), "INFO", "milestone", "step")
        await db.create_system_log("INFO", "scheduler", "tick")

    weighted = [
        (new_agent, 6),
        (new_prompt, 12),
        (update_prompt, 10),
        (prompt_times, 5),
        (agent_times, 2),
        (agent_update, 6),
        (agent_cost, 4),
        (move_agent, 1),
        (move_prompt, 1),
        (redefine_agent, 1),
        (delete_prompt, 2),
        (delete_agent, 1),
        (logs, 3),
    ]
    actions = [action for action, weight in weighted for _ in range(weight)]
    for _ in range(3):
        await new_agent()
    for _ in range(3):
        await new_prompt()
    for _ in range(operations):
        action = rng.choice(actions)
        if action in (delete_agent, move_agent) and len(agents) < 4:
            continue
        if action in (delete_prompt, move_prompt, prompt_times, update_prompt) and not prompts:
            continue
        await action()


def _literal(value: str | None) -> str:
    return "NULL" if value is None else f"'{value}'"


def _since_moments() -> tuple[str, ...]:
    """A day's start (read from the day sums alone) and a moment inside a day
    (its part of the day read from the rows)."""
    day = (NOW - timedelta(days=4)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (format_timestamp(day), format_timestamp(NOW - timedelta(days=3, hours=5)))


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_every_report_equals_its_recount_after_random_writes(
    db: DatabaseManager, store_url: Any, seed: int
) -> None:
    rng = random.Random(seed)
    raw = RawSql(store_url)
    for _ in range(4):
        await _random_history(db, raw, rng, 60)
        await assert_reports_match(db, since=_since_moments())


async def test_reports_stay_exact_when_definitions_and_sessions_are_deleted(
    db: DatabaseManager, store_url: Any
) -> None:
    rng = random.Random(7)
    await _random_history(db, RawSql(store_url), rng, 150)
    definitions = [row["id"] for row in await db.list_orchestrator_agents()]
    await db.delete_orchestrator_agent(definitions[0])  # cascades to its agents and prompts
    await assert_reports_match(db, since=_since_moments())
    for agent in await db.list_agents():
        await db.delete_agent(agent["id"])
    await assert_reports_match(db, since=_since_moments())
    assert await db.session_summaries() == []
    assert await db.cost_totals("model") == []
    assert await db.cost_totals() == [
        {"key": None, "prompts": 0, "tokens_input": 0, "tokens_output": 0, "cost_usd": 0.0}
    ]


async def test_reports_stay_exact_across_cleanup_of_old_logs(
    db: DatabaseManager, store_url: Any
) -> None:
    rng = random.Random(11)
    raw = RawSql(store_url)
    await _random_history(db, raw, rng, 120)
    old = format_timestamp(NOW - timedelta(days=40))
    await raw.run(f"UPDATE agent_logs SET created_at = '{old}' WHERE id % 2 = 0")
    await raw.run(f"UPDATE system_logs SET created_at = '{old}' WHERE id % 2 = 0")
    deleted = await db.cleanup_old_logs(30)
    assert deleted > 0
    await assert_reports_match(db, since=_since_moments())


async def test_costs_are_added_as_whole_nano_dollars(db: DatabaseManager) -> None:
    """0.1 + 0.2 is 0.30000000000000004 in floats; the store says 0.3, and
    taking a cost away leaves exactly nothing."""
    definition = await db.create_orchestrator_agent("planner", None, "planner")
    agent = await db.create_agent(definition, "s")
    first = await db.create_prompt(agent, "command", "a", model_used="m")
    second = await db.create_prompt(agent, "command", "b", model_used="m")
    await db.update_prompt(first, cost_usd=0.1)
    await db.update_prompt(second, cost_usd=0.2)

    assert (await db.session_summary("s") or {})["cost_usd"] == 0.3
    assert (await db.cost_totals("model"))[0]["cost_usd"] == 0.3
    await db.delete_prompt(second)
    await db.update_prompt(first, cost_usd=0.0)
    assert await db.cost_totals("model") == [
        {"key": "m", "prompts": 1, "tokens_input": 0, "tokens_output": 0, "cost_usd": 0.0}
    ]


async def test_the_latest_days_skip_a_day_whose_prompts_moved_away(
    db: DatabaseManager, store_url: Any
) -> None:
    """Prompts moved to earlier days by another connection leave their first
    day with rows that cancel out (on PostgreSQL, +2 in the store's shard and
    -2 in the other's): that day is empty and takes none of the limit's places."""
    definition = await db.create_orchestrator_agent("planner", None, "planner")
    agent = await db.create_agent(definition, "s")
    raw = RawSql(store_url)
    for day in ("2025-01-02", "2025-01-01"):
        prompt = await db.create_prompt(agent, "command", "a", model_used="m")
        await db.update_prompt(prompt, cost_usd=0.25)
        await raw.run(
            f"UPDATE prompts SET created_at = '{day}T12:00:00.000000+00:00' WHERE id = '{prompt}'"
        )

    assert [row["key"] for row in await db.cost_totals("day")] == ["2025-01-01", "2025-01-02"]
    latest = await db.cost_totals("day", limit=2)
    assert [(row["key"], row["prompts"], row["cost_usd"]) for row in latest] == [
        ("2025-01-01", 1, 0.25),
        ("2025-01-02", 1, 0.25),
    ]
    assert [row["key"] for row in await db.cost_totals("day", limit=1)] == ["2025-01-02"]


async def test_the_cost_rule_adds_an_agents_own_cost_to_its_prompts(db: DatabaseManager) -> None:
    definition = await db.create_orchestrator_agent("builder", None, "builder")
    agent = await db.create_agent(definition, "s")
    prompt = await db.create_prompt(agent, "command", "build", model_used="claude-sonnet")
    await db.update_prompt(prompt, cost_usd=0.012)  # the model call, recorded once
    await db.add_agent_cost(agent, 0.002)  # a sandbox the agent ran its tests in

    totals = await db.agent_totals(agent)
    assert totals is not None
    assert (totals["cost_usd"], totals["prompts_cost_usd"], totals["total_cost_usd"]) == (
        0.002,
        0.012,
        0.014,
    )
    assert (await db.session_summary("s") or {})["cost_usd"] == 0.014
    by_model = {row["key"]: row["cost_usd"] for row in await db.cost_totals("model")}
    assert by_model == {None: 0.002, "claude-sonnet": 0.012}
    assert await db.agent_totals("01a22c98-ea09-7000-8da0-4542b20a154e") is None


async def test_session_level_questions(db: DatabaseManager) -> None:
    definition = await db.create_orchestrator_agent("lead", None, "orchestrator")
    lead = await db.create_agent(definition, "s1")
    child = await db.create_agent(definition, "s1", parent_agent_id=lead)
    grandchild = await db.create_agent(definition, "s1", parent_agent_id=child)
    other = await db.create_agent(definition, "s2")
    for agent in (lead, child, grandchild, other):
        await db.create_prompt(agent, "command", f"prompt of {agent}")

    tree = await db.session_tree("s1")
    assert [node["id"] for node in tree] == [lead]
    assert [node["id"] for node in tree[0]["children"]] == [child]
    assert [node["id"] for node in tree[0]["children"][0]["children"]] == [grandchild]
    assert tree[0]["definition"] == "lead" and tree[0]["agent_type"] == "orchestrator"
    assert tree[0]["prompts"] == 1
    assert await db.session_tree("nobody") == []

    prompts = await db.list_prompts(session_id="s1")
    assert [p["agent_id"] for p in prompts] == [lead, child, grandchild]
    assert [p["agent_id"] for p in await db.list_prompts(session_id="s1", limit=1, offset=1)] == [
        child
    ]
    assert await db.list_prompts(session_id="s1", status="failed") == []
    with pytest.raises(ValidationError, match="not both"):
        await db.list_prompts(lead, session_id="s1")
    with pytest.raises(ValidationError, match="session_id"):
        await db.session_summary("   ")
    with pytest.raises(ValidationError, match="limit"):
        await db.cost_totals("session", limit=0)
    with pytest.raises(ValidationError, match="by='session' or by='day'"):
        await db.cost_totals("model", limit=5)


@pytest.mark.backend("sqlite")
async def test_reports_stay_exact_with_writers_in_several_processes(db_path: Path) -> None:
    async with DatabaseManager(db_path) as db:
        definition = await db.create_orchestrator_agent("builder", None, "builder")
    script = textwrap.dedent(
        f"""
        import asyncio, random, sys
        from orchestrator_store.manager import DatabaseManager

        async def main(number):
            rng = random.Random(number)
            async with DatabaseManager({str(db_path)!r}) as db:
                for n in range(15):
                    agent = await db.create_agent({definition!r}, f"s-{{rng.randrange(4)}}")
                    for _ in range(3):
                        prompt = await db.create_prompt(agent, "command", "x", model_used="m")
                        await db.update_prompt(
                            prompt, cost_usd=rng.choice((0.1, 0.2, 0.0123)), tokens_input=7
                        )
                    await db.add_agent_cost(agent, 0.001)
                    await db.update_agent(agent, status="completed")
                    if n % 5 == 4:
                        await db.delete_agent(agent)

        asyncio.run(main(int(sys.argv[1])))
        """
    )
    writers = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(number))
        for number in range(4)
    ]
    assert [await asyncio.wait_for(writer.wait(), 120) for writer in writers] == [0, 0, 0, 0]
    async with DatabaseManager(db_path) as db:
        await assert_reports_match(db, since=_since_moments())
        assert (await db.count_rows())["agents"] == 4 * 12


@pytest.mark.backend("postgresql")
async def test_writers_in_several_processes_on_postgresql(store_url: str) -> None:
    async with DatabaseManager(store_url) as db:
        definition = await db.create_orchestrator_agent("builder", None, "builder")
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from orchestrator_store.manager import DatabaseManager

        async def main(number):
            async with DatabaseManager({store_url!r}) as db:
                async def one(n):
                    agent = await db.create_agent({definition!r}, f"s-{{n % 3}}")
                    prompt = await db.create_prompt(agent, "command", "x", model_used="m")
                    await db.update_prompt(prompt, cost_usd=0.1, tokens_input=n)
                    await db.update_agent(agent, status="failed" if n % 4 else "completed")
                await asyncio.gather(*(one(number * 100 + n) for n in range(20)))

        asyncio.run(main(int(sys.argv[1])))
        """
    )
    writers = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(number))
        for number in range(3)
    ]
    assert [await asyncio.wait_for(writer.wait(), 120) for writer in writers] == [0, 0, 0]
    async with DatabaseManager(store_url) as db:
        await assert_reports_match(db)
        (total,) = await db.cost_totals()
        assert (total["prompts"], total["cost_usd"]) == (60, 6.0)


@pytest.mark.backend("sqlite")
async def test_copy_to_postgres_carries_the_totals(db_path: Path, postgres_url: str) -> None:
    from orchestrator_store.copy_to_postgres import copy_sqlite_to_postgres

    async with DatabaseManager(db_path) as db:
        await _random_history(db, RawSql(db_path), random.Random(5), 150)
        on_sqlite = await db.session_summaries()
        costs_on_sqlite = [await db.cost_totals(by) for by in (None, "model", "day", "session")]
    await copy_sqlite_to_postgres(db_path, postgres_url)
    async with DatabaseManager(postgres_url) as db:
        await assert_reports_match(db, since=_since_moments())
        assert await db.session_summaries() == on_sqlite
        assert [await db.cost_totals(by) for by in (None, "model", "day", "session")] == (
            costs_on_sqlite
        )
    # Appended into a store that has rows and totals of its own: counted again, exactly.
    other = db_path.with_name("other.db")
    async with DatabaseManager(other) as db:
        definition = await db.create_orchestrator_agent("appended", None, "tester")
        agent = await db.create_agent(definition, "appended-session")
        prompt = await db.create_prompt(agent, "command", "test it", model_used="m")
        await db.update_prompt(prompt, cost_usd=0.25, tokens_input=9)
    await copy_sqlite_to_postgres(other, postgres_url, append=True)
    async with DatabaseManager(postgres_url) as db:
        await assert_reports_match(db, since=_since_moments())
        assert (await db.session_summary("appended-session") or {})["cost_usd"] == 0.25
        await db.create_prompt(agent, "command", "after the copy")  # the triggers are on again
        await assert_reports_match(db)


@pytest.mark.backend("sqlite")
async def test_a_copy_that_fails_leaves_the_triggers_on(db_path: Path, postgres_url: str) -> None:
    """The triggers are turned off inside the copy's transaction: a copy that
    fails (here: ids already in the target) rolls that back with the rest."""
    from orchestrator_store.copy_to_postgres import copy_sqlite_to_postgres

    async with DatabaseManager(db_path) as db:
        await _random_history(db, RawSql(db_path), random.Random(9), 40)
    await copy_sqlite_to_postgres(db_path, postgres_url)
    with pytest.raises(DatabaseError):
        await copy_sqlite_to_postgres(db_path, postgres_url, append=True)
    async with DatabaseManager(postgres_url) as db:
        await _random_history(db, RawSql(postgres_url), random.Random(10), 40)
        await assert_reports_match(db, since=_since_moments())


@pytest.mark.backend("sqlite")
async def test_agents_with_totals_reads_any_number_of_agents(db: DatabaseManager) -> None:
    """More agents than one statement's share of ids (500): every one gets its sums."""
    definition = await db.create_orchestrator_agent("many", None, "builder")
    agents = []
    for n in range(501):
        agent = await db.create_agent(definition, "big")
        prompt = await db.create_prompt(agent, "command", f"step {n}")
        await db.update_prompt(prompt, tokens_input=n, cost_usd=0.001)
        agents.append(agent)
    rows = await db.agents_with_totals(await db.list_agents("big", limit=1000))
    assert len(rows) == 501
    assert {row["id"]: row["tokens_input"] for row in rows} == {
        agent: n for n, agent in enumerate(agents)
    }
    assert all(row["total_cost_usd"] == 0.001 for row in rows)


@pytest.mark.backend("sqlite")
async def test_a_version_2_file_keeps_its_meaning_through_the_migration(db_path: Path) -> None:
    """Before version 3, writers recorded a prompt's cost on the agent again
    (the README said so). The agent keeps the part its prompts do not explain."""
    db_path.parent.mkdir(parents=True)
    connection = sqlite3.connect(db_path)
    connection.executescript(DEFAULT_SCHEMA_PATH.read_text(encoding="utf-8"))
    connection.execute("PRAGMA user_version = 2")
    at = format_timestamp(NOW)
    connection.execute(
        "INSERT INTO orchestrator_agents (id, name, agent_type, created_at, updated_at)"
        " VALUES ('d', 'builder', 'builder', ?, ?)",
        (at, at),
    )
    agents = (  # id, cost recorded on the agent, its prompts' costs
        ("twice", 0.3, (0.1, 0.2)),  # the README's way: each cost recorded twice
        ("own", 0.05, ()),  # a cost recorded on the agent alone
        ("both", 0.25, (0.2,)),  # a prompt plus 0.05 of tools
        ("prompts", 0.0, (0.4,)),  # prompts alone
    )
    for agent, cost, prompt_costs in agents:
        connection.execute(
            "INSERT INTO agents (id, orchestrator_agent_id, session_id, status, started_at,"
            " cost_usd) VALUES (?, 'd', 's', 'completed', ?, ?)",
            (agent, at, cost),
        )
        for n, prompt_cost in enumerate(prompt_costs):
            connection.execute(
                "INSERT INTO prompts (id, agent_id, prompt_type, prompt_text, cost_usd, created_at)"
                " VALUES (?, ?, 'command', 'x', ?, ?)",
                (f"{agent}-{n}", agent, prompt_cost, at),
            )
    connection.commit()
    connection.close()

    async with DatabaseManager(db_path) as db:
        assert await db.schema_version() == LATEST_VERSION
        own = {row["id"]: row["cost_usd"] for row in await db.query("SELECT * FROM agents")}
        assert own == {"twice": 0.0, "own": 0.05, "both": 0.05, "prompts": 0.0}
        totals = {row["id"]: row["total_cost_usd"] for row in await db.session_tree("s")}
        assert totals == {"twice": 0.3, "own": 0.05, "both": 0.25, "prompts": 0.4}
        await assert_reports_match(db)
        rows = await read_rows(db)
        assert rows.counts["prompts"] == 4


async def test_the_totals_tables_are_as_tables_describes_them(db: DatabaseManager) -> None:
    """``tables.TOTALS_TABLES`` (which adoption and copy-to-postgres rely on)
    names exactly the columns both totals files create."""
    if db.backend_name == "sqlite":
        found = {
            table: tuple(
                row["name"]
                for row in await db.query(f"SELECT name FROM pragma_table_info('{table}')")
            )
            for table in TOTALS_TABLES
        }
    else:
        rows = await db.query(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        )
        found = {
            table: tuple(row["column_name"] for row in rows if row["table_name"] == table)
            for table in TOTALS_TABLES
        }
    assert found == dict(TOTALS_TABLES)


@pytest.mark.backend("sqlite")
async def test_an_agents_prompt_sums_read_no_prompt_row(db_path: Path) -> None:
    """Version 4's index holds every column the sums add (``agents``, ``agent``,
    ``session``): SQLite's plan reads the index alone, however large the table."""
    async with DatabaseManager(db_path):
        pass
    sql = TotalsSql(SQLITE).agents_prompt_sums(2)
    connection = sqlite3.connect(db_path)
    try:
        plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", ("a", "b"))]
    finally:
        connection.close()
    assert plan == ["SEARCH prompts USING COVERING INDEX idx_prompts_agent_totals (agent_id=?)"]


REPORTS_BY_TABLE = {
    "session_totals": lambda db: db.session_summaries(limit=5),
    "model_costs": lambda db: db.cost_totals("model"),
    "daily_costs": lambda db: db.cost_totals("day", limit=5),
    "row_counts": lambda db: db.count_rows(),
}


@pytest.mark.parametrize("table", REPORTS_BY_TABLE)
async def test_a_report_that_cannot_read_names_the_table(
    db: DatabaseManager, store_url: Any, table: str
) -> None:
    await RawSql(store_url).run(f"DROP TABLE {table}")
    with pytest.raises(DatabaseError, match=f"^{table}: read failed"):
        await REPORTS_BY_TABLE[table](db)


SHARDED_TABLES = ("daily_costs", "model_costs", "session_daily_costs", "row_counts")
ONE_PROMPT = (  # a prompt for the agent of the session $1
    "INSERT INTO prompts (id, agent_id, prompt_type, prompt_text, model_used, tokens_input,"
    " cost_usd, created_at) SELECT gen_random_uuid(), id, 'command', 'x', 'm', 7, 0.5, now()"
    " FROM agents WHERE session_id = $1"
)


async def _shards(connection: Any) -> dict[str, set[int]]:
    return {
        table: {row["shard"] for row in await connection.fetch(f"SELECT shard FROM {table}")}
        for table in SHARDED_TABLES
    }


@pytest.mark.backend("postgresql")
@pytest.mark.direct_postgres("each raw connection must be one server process: one shard")
async def test_a_fold_gathers_the_shards_without_waiting_for_writers(store_url: str) -> None:
    """Each server process keeps sums of its own; a fold adds them into shard 0
    (at connect and in prune) and no report changes. A row a writer's open
    transaction holds is skipped, not waited for, and folded next time."""
    from pg_testing import connect_raw

    async with DatabaseManager(store_url) as db:
        definition = await db.create_orchestrator_agent("builder", None, "builder")
    writers = [await connect_raw(store_url) for _ in range(3)]
    try:
        for number, writer in enumerate(writers):
            await writer.execute(
                "INSERT INTO agents (id, orchestrator_agent_id, session_id, status, cost_usd,"
                f" started_at) VALUES (gen_random_uuid(), '{definition}', 's-{number}',"
                " 'executing', 0.25, now())"
            )
            await writer.execute(ONE_PROMPT, f"s-{number}")
        pids = {await writer.fetchval("SELECT pg_backend_pid()") for writer in writers}
        shards = await _shards(writers[0])
        assert all(pids <= found for found in shards.values()), shards

        holder = writers[0]
        holding = holder.transaction()
        await holding.start()
        await holder.execute("UPDATE prompts SET tokens_input = tokens_input + 1")
        await holder.execute(ONE_PROMPT, "s-0")  # holds its shard's count of prompts
        held = await holder.fetchval("SELECT pg_backend_pid()")
        folder = await connect_raw(store_url)
        try:  # the guard only keeps a hang from stalling the suite
            folded = await asyncio.wait_for(folder.fetchval("SELECT adw_fold_shards()"), 60)
            assert folded > 0
            after = await _shards(folder)
        finally:
            await folder.close()
        assert all(found <= {0, held} for found in after.values()), after
        assert held in after["daily_costs"] and held in after["row_counts"]
        await holding.commit()
    finally:
        for writer in writers:
            await writer.close()

    async with DatabaseManager(store_url) as db:  # connecting folds what is left
        await assert_reports_match(db)
        (total,) = await db.cost_totals()
        assert (total["prompts"], total["tokens_input"], total["cost_usd"]) == (4, 31, 2.75)
        shards = {
            table: {row["shard"] for row in await db.query(f"SELECT shard FROM {table}")}
            for table in SHARDED_TABLES
        }
        assert all(found == {0} for found in shards.values()), shards


@pytest.mark.backend("postgresql")
async def test_a_deadlock_on_the_totals_is_a_busy_error_and_loses_nothing(store_url: str) -> None:
    """Two blocks that write two agents of one session in opposite orders meet
    on the session's totals row: PostgreSQL rolls one back. It raises a
    retryable ``BusyError`` saying so, the other commits, and both stores go on."""
    from pg_testing import connect_raw

    async with DatabaseManager(store_url) as first, DatabaseManager(store_url) as second:
        definition = await first.create_orchestrator_agent("builder", None, "builder")
        one = await first.create_agent(definition, "shared")
        other = await first.create_agent(definition, "shared")
        first_holds_one = asyncio.Event()
        watcher = await connect_raw(store_url)

        async def someone_waits_for_a_lock() -> None:
            sql = (
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            for _ in range(3000):  # the server's view, polled: no event tells it
                if await watcher.fetchval(sql):
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("the second block never waited for a lock")

        async def first_block() -> None:
            async with first.transaction():
                await first.update_agent(one, cost_usd=1.0)
                first_holds_one.set()
                await someone_waits_for_a_lock()  # the second holds `other`, waits for us
                await first.update_agent(other, cost_usd=1.0)

        async def second_block() -> None:
            await first_holds_one.wait()
            async with second.transaction():
                await second.update_agent(other, cost_usd=2.0)
                await second.update_agent(one, cost_usd=2.0)

        try:  # the guard only keeps a hang from stalling the suite
            outcomes = await asyncio.wait_for(
                asyncio.gather(first_block(), second_block(), return_exceptions=True), 60
            )
        finally:
            await watcher.close()
        errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        assert len(errors) == 1, outcomes
        assert isinstance(errors[0], BusyError) and errors[0].retryable, errors
        assert "rolled this transaction back" in str(errors[0])
        winner = 2.0 if isinstance(outcomes[0], BaseException) else 1.0
        for db in (first, second):
            await db.update_agent(one, status="completed")
            assert (await db.get_agent(other) or {})["cost_usd"] == winner
        await assert_reports_match(first)


@pytest.mark.backend("postgresql")
@pytest.mark.direct_postgres("the writer's connection must be one server process: one shard")
async def test_a_day_row_a_fold_skipped_still_moves_its_models_sum(store_url: str) -> None:
    """A fold skips a writer's day row that is held but moves that writer's
    model row; the writer's next change of that day row must still reach the
    model's sum (a plain UPDATE of the moved row changed nothing)."""
    from pg_testing import connect_raw, run_sql

    async with DatabaseManager(store_url) as db:
        definition = await db.create_orchestrator_agent("builder", None, "builder")
    writer = await connect_raw(store_url)
    try:
        await writer.execute(
            "INSERT INTO agents (id, orchestrator_agent_id, session_id, status, started_at)"
            f" VALUES (gen_random_uuid(), '{definition}', 's-0', 'executing', now())"
        )
        await writer.execute(ONE_PROMPT, "s-0")
        holding = writer.transaction()
        await holding.start()
        await writer.execute(  # the day rows held, as a writer's trigger holds them
            "SELECT 1 FROM daily_costs WHERE shard = pg_backend_pid() FOR UPDATE"
        )
        await run_sql(store_url, "SELECT adw_fold_shards()")
        await holding.commit()
        await writer.execute("UPDATE prompts SET cost_usd = 2.5, tokens_input = 9")
    finally:
        await writer.close()
    async with DatabaseManager(store_url) as db:
        await assert_reports_match(db)
        (total,) = await db.cost_totals("model")
        assert (total["prompts"], total["tokens_input"], total["cost_usd"]) == (1, 9, 2.5)
