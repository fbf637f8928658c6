"""The store's command line, through Typer's runner, against a real recorded session."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pydantic
import pytest
from realistic_session import EXPECTED, SESSION_A, SESSION_B, RecordedSession
from typer.testing import CliRunner, Result

from orchestrator_store import cli
from orchestrator_store.cli import app
from orchestrator_store.cli_render import LEVEL_STYLES, STATUS_STYLES
from orchestrator_store.manager import JSON_COLUMNS, DatabaseManager
from orchestrator_store.models import (
    AGENT_STATUSES,
    LOG_LEVELS,
    PROMPT_STATUSES,
    WORKFLOW_STATUSES,
    AgentIdPrefix,
    AgentIdSuffix,
)
from orchestrator_store.schema import LATEST_VERSION, TABLES

# The console script the package installs, beside this interpreter.
CLI = Path(sys.executable).with_name("orchestrator-store")


def run(path: Path | str, *args: str, env: dict[str, str | None] | None = None) -> Result:
    """Run the command line in this process (wide terminal: tables never truncate)."""
    result = CliRunner().invoke(
        app, ["--db", str(path), *args], env={"COLUMNS": "220", **(env or {})}
    )
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def ok(path: Path | str, *args: str, env: dict[str, str | None] | None = None) -> str:
    result = run(path, *args, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def fails(path: Path, *args: str) -> str:
    """The one line a failing command prints on stderr."""
    result = run(path, *args)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def raw_rows(path: Path, table: str) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as raw:
        raw.row_factory = sqlite3.Row
        rows = [dict(row) for row in raw.execute(f"SELECT * FROM {table} ORDER BY id")]
    raw.close()
    return rows


def cells(line: str) -> list[str]:
    """The cells of one row of a Rich table."""
    return [cell.strip() for cell in line.split("│")[1:-1]]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the module itself -----------------------------------------------------------


def test_importing_the_store_does_not_import_the_command_line_dependencies() -> None:
    code = (
        "import sys, orchestrator_store\n"
        "print(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_the_cli_extra_the_command_says_what_to_install() -> None:
    code = (
        "import runpy, sys; sys.modules['typer'] = None; "  # as if typer were not installed
        "runpy.run_module('orchestrator_store.cli', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "orchestrator-store: the command line needs typer, which is not installed: "
        "pip install 'orchestrator-store[cli]' (or `uv add 'orchestrator-store[cli]'`)"
    )


def test_the_console_script_runs(recorded: RecordedSession) -> None:
    done = subprocess.run(
        [str(CLI), "--db", str(recorded.path), "stats", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == EXPECTED["rows"]


# --- one definition: what the store accepts is what the command line offers ----------------


def test_level_choices_are_the_stores_log_levels(recorded: RecordedSession) -> None:
    shown = CliRunner().invoke(app, ["logs", "--help"], env={"COLUMNS": "220"})
    wrong_case = run(recorded.path, "logs", "--level", "error")

    assert [level.value for level in cli.Level] == list(LOG_LEVELS)
    assert f"--level <{'|'.join(LOG_LEVELS)}>" in shown.stdout
    for level in LOG_LEVELS:
        assert run(recorded.path, "logs", "--level", level).exit_code == 0, level
    assert wrong_case.exit_code == 2  # exact case, as the store stores them
    assert "Invalid value for '--level'" in wrong_case.stderr
    assert f"'error' is not one of {', '.join(map(repr, LOG_LEVELS))}" in wrong_case.stderr


# The command line imported after models gained a level: its --level offers it.
WITH_A_NEW_LEVEL = """
import typing
from typer.testing import CliRunner
from orchestrator_store import models

models.LOG_LEVELS = (*models.LOG_LEVELS, "TRACE")
models.LogLevel = typing.Literal[models.LOG_LEVELS]  # type: ignore[misc]
from orchestrator_store.cli import app

print(CliRunner().invoke(app, ["logs", "--help"], env={"COLUMNS": "220"}).stdout)
"""


def test_a_level_added_to_the_models_is_a_choice_of_level() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITH_A_NEW_LEVEL], capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert f"--level <{'|'.join(LOG_LEVELS)}|TRACE>" in done.stdout


def test_an_id_part_is_refused_exactly_when_the_store_refuses_it(
    recorded: RecordedSession,
) -> None:
    # None of these can match an agent (no id starts or ends with "-", none is all zeros).
    parts = ["-", "ab--", " --AB ", "0" * 36, "-" * 36, "0" * 37, "", " ", "../etc", "g-"]
    parts += ["\uff41", "\u0130", "0\n0"]

    def store_takes(part: str) -> bool:
        try:
            AgentIdPrefix.model_validate({"prefix": part})
            AgentIdSuffix.model_validate({"suffix": part})
        except pydantic.ValidationError:
            return False
        return True

    for part in parts:
        line = fails(recorded.path, "agent", "--", part)  # "--": parts may start with "-"
        if store_takes(part):
            assert line.startswith("error: no agent id starts or ends with"), (part, line)
        else:
            assert line.endswith("is not an agent id or part of one (hex digits and dashes)")


def test_every_level_and_status_of_the_store_has_a_style() -> None:
    assert set(LEVEL_STYLES) == set(LOG_LEVELS)
    assert set(STATUS_STYLES) == set(AGENT_STATUSES) | set(PROMPT_STATUSES) | set(WORKFLOW_STATUSES)


# --- stats, agents, agent ---------------------------------------------------------------


def test_stats(recorded: RecordedSession) -> None:
    out = ok(recorded.path, "stats")
    report = json.loads(ok(recorded.path, "stats", "--json"))

    assert report["rows"] == EXPECTED["rows"]
    assert report["schema_version"] == LATEST_VERSION
    assert report["file_bytes"] == recorded.path.stat().st_size
    assert report["logs_first"][:19] == f"{recorded.day(recorded.base_a)}T08:59:59"
    assert report["logs_last"][:19] == f"{recorded.day(recorded.base_b)}T09:05:00"
    assert f"schema version  {LATEST_VERSION}" in out
    assert f"logs span       {recorded.day(recorded.base_a)} 08:59:59 .." in out
    for table, count in EXPECTED["rows"].items():
        assert [table, str(count)] in [cells(line) for line in out.splitlines()]


def test_stats_reads_the_database_named_by_the_environment(recorded: RecordedSession) -> None:
    result = CliRunner().invoke(
        app, ["stats", "--json"], env={"ORCHESTRATOR_DB_PATH": str(recorded.path)}
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["database"] == str(recorded.path)


def test_stats_on_postgresql_shows_table_size_and_no_file_figures(postgres_url: str) -> None:
    async def create() -> None:
        async with DatabaseManager(postgres_url) as db:
            await db.create_system_log("INFO", "scheduler", "started")

    asyncio.run(create())
    out = ok(postgres_url, "stats")
    report = json.loads(ok(postgres_url, "stats", "--json"))

    labels = [line[:16].strip() for line in out.splitlines()[:4]]
    assert labels == ["database", "table size", "schema version", "logs span"]
    assert "(with indexes)" in out
    assert report["backend"] == "postgresql"
    assert report["rows"]["system_logs"] == 1


def test_db_may_come_after_the_command(recorded: RecordedSession, tmp_path: Path) -> None:
    path = str(recorded.path)
    commands = [
        ["stats", "--json"],
        ["agents", "--json"],
        ["agent", recorded.agents["a1"], "--json"],
        ["sessions", "--json"],
        ["costs", "--json"],
        ["logs", "--json"],
        ["prune", "--older-than", "5", "--json"],
        ["export", "--table", "agents"],
    ]
    for command in commands:
        result = CliRunner().invoke(app, [*command, "--db", path])
        assert result.exit_code == 0, (command, result.output)
        assert result.stdout.strip(), command
    after = CliRunner().invoke(app, ["stats", "--db", path, "--json"])
    assert json.loads(after.stdout)["database"] == path
    assert json.loads(ok(recorded.path, "stats", "--db", path, "--json"))["database"] == path
    other = tmp_path / "other.db"
    assert "--db is given twice" in fails(recorded.path, "stats", "--db", str(other))
    assert not other.exists()


def test_agents(recorded: RecordedSession) -> None:
    out = ok(recorded.path, "agents")
    listed = json.loads(ok(recorded.path, "agents", "--json"))
    session_b = json.loads(ok(recorded.path, "agents", "--session", SESSION_B, "--json"))
    failed = json.loads(ok(recorded.path, "agents", "--status", "failed", "--json"))

    assert out.splitlines()[0].strip() == "5 agents"
    for key, agent in recorded.agents.items():
        assert agent[-8:] in out, key  # the random end: time-ordered ids share their start
    assert [row["definition"] for row in listed] == [
        "builder",
        "planner",
        "reviewer",
        "builder",
        "planner",
    ]
    assert {row["id"] for row in session_b} == {recorded.agents["b1"], recorded.agents["b2"]}
    assert [(row["id"], row["error_message"]) for row in failed] == [
        (recorded.agents["a2"], "tests failed")
    ]
    # the failed builder's cost (its prompts' 0.013 and its own 0.002) and duration
    assert "$0.0150" in out and "14m00s" in out
    assert len(json.loads(ok(recorded.path, "agents", "--limit", "2", "--json"))) == 2


def test_agent_by_id_part_shows_prompts_and_last_logs(recorded: RecordedSession) -> None:
    builder = recorded.agents["a2"]

    out = ok(recorded.path, "agent", builder[-6:].upper())
    detail = json.loads(ok(recorded.path, "agent", builder, "--json", "--logs", "2"))
    by_start = json.loads(ok(recorded.path, "agent", builder[:-4], "--json"))

    assert f"agent       {builder}" in out
    assert "definition  builder (builder)" in out
    assert "error       tests failed" in out
    assert "2 prompts" in out
    assert "2000/500" in out and "$0.0120" in out and "5000 ms" in out
    assert "300/0" in out and "$0.0010" in out and "failed" in out
    assert "last 3 log lines" in out and "tests failed" in out.splitlines()[-1]
    assert detail["agent"]["id"] == builder == by_start["agent"]["id"]
    assert detail["definition"]["name"] == "builder"
    assert [p["status"] for p in detail["prompts"]] == ["completed", "failed"]
    assert [row["message"] for row in detail["logs"]] == ["slow test run", "tests failed"]


def test_agent_id_part_errors(recorded: RecordedSession) -> None:
    ids = set(recorded.agents.values())

    async def add_agents_until_two_share_a_last_digit() -> None:
        async with DatabaseManager(recorded.path) as db:
            definition = (await db.list_orchestrator_agents())[0]["id"]
            while len({agent[-1] for agent in ids}) == len(ids):
                ids.add(await db.create_agent(definition, "extra"))

    asyncio.run(add_agents_until_two_share_a_last_digit())
    shared_end = next(d for d in "0123456789abcdef" if sum(a.endswith(d) for a in ids) > 1)
    unused = next(
        (d for d in "0123456789abcdef" if not any(a.startswith(d) or a.endswith(d) for a in ids)),
        None,
    )

    assert "matches several agents" in fails(recorded.path, "agent", shared_end)
    shared_start = min(ids)[:4]  # made together: time-ordered ids share their start
    assert all(agent.startswith(shared_start) for agent in ids)
    assert "matches several agents" in fails(recorded.path, "agent", shared_start)
    assert "is not an agent id" in fails(recorded.path, "agent", "../etc")
    assert "is not an agent id" in fails(recorded.path, "agent", "0" * 37)
    if unused is not None:
        assert "no agent id starts or ends with" in fails(recorded.path, "agent", unused)
    assert "no agent id starts or ends with" in fails(
        recorded.path, "logs", "--agent", "0000000-0000"
    )


# --- sessions and costs ----------------------------------------------------------------


def test_sessions(recorded: RecordedSession) -> None:
    out = ok(recorded.path, "sessions")
    rows = json.loads(ok(recorded.path, "sessions", "--json"))

    assert [row["session_id"] for row in rows] == [SESSION_B, SESSION_A]
    for row in rows:
        expected = EXPECTED["sessions"][row["session_id"]]
        assert {key: row[key] for key in expected} == pytest.approx(expected)
    line_a = next(line for line in out.splitlines() if SESSION_A in line)
    assert cells(line_a)[1:7] == ["3", "0", "1 agents, 1 prompts", "4", "4,600", "$0.0455"]
    line_b = next(line for line in out.splitlines() if SESSION_B in line)
    assert cells(line_b)[1:7] == ["2", "1", "0", "2", "950", "$0.0250"]
    assert len(json.loads(ok(recorded.path, "sessions", "--limit", "1", "--json"))) == 1


def test_costs_by_every_grouping_with_a_grand_total(recorded: RecordedSession) -> None:
    by_model = json.loads(ok(recorded.path, "costs", "--by", "model", "--json"))
    by_type = json.loads(ok(recorded.path, "costs", "--by", "agent-type", "--json"))
    by_day = json.loads(ok(recorded.path, "costs", "--by", "day", "--json"))
    out = ok(recorded.path, "costs")

    for report, expected in ((by_model, "by_model"), (by_type, "by_agent_type")):
        figures = {
            row["key"]: (row["prompts"], row["tokens_input"], row["tokens_output"], row["cost_usd"])
            for row in report["groups"]
        }
        assert figures == {key: pytest.approx(value) for key, value in EXPECTED[expected].items()}
        total = report["total"]
        assert (
            total["prompts"],
            total["tokens_input"],
            total["tokens_output"],
            total["cost_usd"],
        ) == pytest.approx(EXPECTED["total"])
    assert [row["key"] for row in by_day["groups"]] == [
        recorded.day(recorded.base_a),
        recorded.day(recorded.base_b),
    ]
    total_line = next(line for line in out.splitlines() if "total" in line)
    assert cells(total_line) == ["total", "6", "4,600", "950", "$0.0705"]
    assert SESSION_A in out and "$0.0455" in out


def test_costs_since_a_date(recorded: RecordedSession) -> None:
    day_b = recorded.day(recorded.base_b)
    report = json.loads(ok(recorded.path, "costs", "--by", "model", "--since", day_b, "--json"))
    out = ok(recorded.path, "costs", "--since", f"{day_b}T09:00:00")

    assert {row["key"]: row["prompts"] for row in report["groups"]} == {
        "claude-opus": 1,
        "claude-sonnet": 1,
    }
    assert report["total"]["cost_usd"] == pytest.approx(0.025)
    assert SESSION_A not in out and SESSION_B in out
    assert "since nope" not in fails(recorded.path, "costs", "--since", "nope")
    assert "is not a date" in fails(recorded.path, "logs", "--since", "2026-13-45")


LONG_SESSIONS = ("demo_20261126_130711_5c2065", "demo_20261126_130710_b562a4")


def add_long_sessions(path: Path) -> list[str]:
    """Two agents in sessions named as the demo names them (27 characters)."""

    async def add() -> list[str]:
        async with DatabaseManager(path) as db:
            definition = (await db.list_orchestrator_agents())[0]["id"]
            return [await db.create_agent(definition, session) for session in LONG_SESSIONS]

    return asyncio.run(add())


def table_rows(out: str) -> list[str]:
    """The lines of a Rich table's body (its header is drawn with heavier lines)."""
    return [line for line in out.splitlines() if line.startswith("│")]


def check_narrow_listings(agents_out: str, sessions_out: str, agent_ids: list[str]) -> None:
    for out in (agents_out, sessions_out):
        assert max(len(line) for line in out.splitlines()) <= 80
    agent_rows = table_rows(agents_out)
    assert len(agent_rows) == len(agent_ids) + 5  # one line per agent
    for agent_id, session in zip(agent_ids, LONG_SESSIONS, strict=True):
        row = next(line for line in agent_rows if agent_id[-8:] in line)
        assert session in row
    session_rows = table_rows(sessions_out)
    assert len(session_rows) == 2 + len(LONG_SESSIONS)
    for session in (*LONG_SESSIONS, SESSION_A, SESSION_B):
        assert sum(session in line for line in session_rows) == 1


def test_listings_keep_ids_whole_at_80_columns(recorded: RecordedSession) -> None:
    added = add_long_sessions(recorded.path)
    narrow: dict[str, str | None] = {"COLUMNS": "80"}

    check_narrow_listings(
        ok(recorded.path, "agents", env=narrow), ok(recorded.path, "sessions", env=narrow), added
    )
    detail = ok(recorded.path, "agent", recorded.agents["a2"], env=narrow)
    prompt_rows = table_rows(detail)
    assert len(prompt_rows) == 2 and all(len(line) <= 80 for line in prompt_rows)


def test_listings_keep_ids_whole_without_a_terminal(recorded: RecordedSession) -> None:
    added = add_long_sessions(recorded.path)
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}

    def piped(command: str) -> str:
        done = subprocess.run(
            [str(CLI), "--db", str(recorded.path), command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    check_narrow_listings(piped("agents"), piped("sessions"), added)


def test_cost_rows_add_up_to_the_total_shown(tmp_path: Path) -> None:
    path = tmp_path / "costs.db"
    spent = {"s1": [0.1, 0.2], "s2": [0.3], "s3": [0.00005, 0.00001], "s4": [0.00006]}
    spent |= {"s5": [0.00006], "s6": [0.00003, 0.00003]}

    async def record() -> None:
        async with DatabaseManager(path) as db:
            definition = await db.create_orchestrator_agent("builder", "Builds", "builder")
            for session, costs in spent.items():
                agent = await db.create_agent(definition, session)
                for cost in costs:
                    prompt = await db.create_prompt(agent, "adw", "Build", model_used="m")
                    await db.update_prompt(prompt, cost_usd=cost)

    asyncio.run(record())
    report = json.loads(ok(path, "costs", "--json"))
    out = ok(path, "costs")
    sessions = json.loads(ok(path, "sessions", "--json"))

    groups = [Decimal(str(row["cost_usd"])) for row in report["groups"]]
    assert groups == [
        Decimal(text) for text in ("0.3", "0.3", "0.0001", "0.0001", "0.0001", "0.0001")
    ]
    assert Decimal(str(report["total"]["cost_usd"])) == sum(groups) == Decimal("0.6004")
    shown = [Decimal(cells(line)[-1].lstrip("$")) for line in table_rows(out)]
    assert shown[:-1] == groups and shown[-1] == sum(groups)  # the total row: their sum
    assert {row["session_id"]: row["cost_usd"] for row in sessions}["s1"] == 0.3


def test_session_shows_its_totals_costs_tree_and_last_prompts(recorded: RecordedSession) -> None:
    out = ok(recorded.path, "session", SESSION_A)
    report = json.loads(ok(recorded.path, "session", SESSION_A, "--json"))
    last = json.loads(ok(recorded.path, "session", SESSION_A, "--prompts", "1", "--json"))

    assert "$0.0455" in out and "3 (0 active, 1 failed)" in out
    assert "└ builder" in out and "└ reviewer" in out  # under the planner
    costs = {row["key"]: row["cost_usd"] for row in report["costs_by_model"]}
    assert costs == pytest.approx(
        {None: 0.002, "claude-haiku": 0.0005, **{"claude-opus": 0.03, "claude-sonnet": 0.013}}
    )
    (root,) = report["agents"]
    assert root["id"] == recorded.agents["a1"]
    assert [child["id"] for child in root["children"]] == [
        recorded.agents["a2"],
        recorded.agents["a3"],
    ]
    assert root["children"][0]["total_cost_usd"] == pytest.approx(0.015)
    assert report["session"]["cost_usd"] == pytest.approx(0.0455)
    assert len(report["prompts"]) == 4
    assert [p["prompt_text"] for p in last["prompts"]] == ["Review the diff"]


def test_costs_by_day_show_the_latest_days_and_the_earlier_ones_as_one_row(
    recorded: RecordedSession,
) -> None:
    report = json.loads(ok(recorded.path, "costs", "--by", "day", "--limit", "1", "--json"))
    out = ok(recorded.path, "costs", "--by", "day", "--limit", "1")

    earlier, latest = report["groups"]
    assert earlier["rest"] and latest["key"] == recorded.day(recorded.base_b)
    assert (earlier["prompts"], Decimal(str(earlier["cost_usd"]))) == (4, Decimal("0.0455"))
    assert Decimal(str(report["total"]["cost_usd"])) == Decimal("0.0705")
    assert "(earlier days)" in out.splitlines()[4]  # first under the header


def test_an_unknown_session_is_one_line(recorded: RecordedSession) -> None:
    assert "no session 'nope'" in fails(recorded.path, "session", "nope")


def test_agent_shows_how_its_cost_adds_up(recorded: RecordedSession) -> None:
    out = ok(recorded.path, "agent", recorded.agents["a2"])
    assert "$0.0150 (prompts $0.0130 + own $0.0020)" in out


def test_costs_by_session_beyond_the_limit_are_one_row(tmp_path: Path) -> None:
    path = tmp_path / "costs.db"
    spent = {"s1": 0.5, "s2": 0.1, "s3": 0.3, "s4": 0.00004, "s5": 0.00004}

    async def record() -> None:
        async with DatabaseManager(path) as db:
            definition = await db.create_orchestrator_agent("builder", "Builds", "builder")
            for session, cost in spent.items():
                agent = await db.create_agent(definition, session)
                prompt = await db.create_prompt(agent, "adw", "Build", model_used="m")
                await db.update_prompt(prompt, cost_usd=cost, tokens_input=10)

    asyncio.run(record())
    report = json.loads(ok(path, "costs", "--limit", "2", "--json"))
    out = ok(path, "costs", "--limit", "2")

    keys = [(row["key"], row.get("rest", False)) for row in report["groups"]]
    assert keys == [("s1", False), ("s3", False), (None, True)]  # the costliest first
    rest = report["groups"][-1]
    assert (rest["prompts"], rest["tokens_input"], Decimal(str(rest["cost_usd"]))) == (
        3,
        30,
        Decimal("0.1001"),  # 0.1 + 0.00004 + 0.00004, rounded once
    )
    total = report["total"]
    assert (total["prompts"], Decimal(str(total["cost_usd"]))) == (5, Decimal("0.9001"))
    assert "(other sessions)" in out
    days = json.loads(ok(path, "costs", "--by", "day", "--limit", "1", "--json"))
    assert [row.get("rest", False) for row in days["groups"]] == [False]  # one day only
    shown = [Decimal(cells(line)[-1].lstrip("$")) for line in table_rows(out)]
    assert shown[-1] == sum(shown[:-1]) == Decimal("0.9001")


# --- logs --------------------------------------------------------------------------------


def test_logs_interleaved_and_filtered(recorded: RecordedSession) -> None:
    out = ok(recorded.path, "logs")
    errors = ok(recorded.path, "logs", "--level", "ERROR").splitlines()
    as_json = [json.loads(line) for line in ok(recorded.path, "logs", "--json").splitlines()]
    builder = ok(recorded.path, "logs", "--agent", recorded.agents["a2"][-8:], "--json")
    scheduler = ok(recorded.path, "logs", "--component", "scheduler").splitlines()
    milestones = ok(recorded.path, "logs", "--type", "milestone", "--json").splitlines()
    latest = ok(recorded.path, "logs", "--limit", "2").splitlines()

    assert len(out.splitlines()) == 17
    assert f"session {SESSION_A} started" in out.splitlines()[0]
    assert len(errors) == 2 and all("  ERROR  " in line for line in errors)
    assert [(row["source"], row["id"]) for row in as_json][:2] == [("system", 1), ("agent", 1)]
    assert [json.loads(line)["log_type"] for line in builder.splitlines()] == [
        "state_change",
        "performance",
        "error",
    ]
    assert len(scheduler) == 2 and all("system scheduler" in line for line in scheduler)
    assert len(milestones) == 2
    assert "queue depth 12" in latest[0] and "read src/health.py" in latest[1]
    assert '{"steps": 3}' in out
    since_b = ok(recorded.path, "logs", "--since", recorded.day(recorded.base_b)).splitlines()
    assert len(since_b) == 6
    assert "component filters system logs" in fails(
        recorded.path, "logs", "--component", "x", "--type", "error"
    )


@pytest.mark.parametrize("seconds", ["nan", "inf", "0"])
def test_logs_refuses_an_interval_that_is_no_number_of_seconds(
    recorded: RecordedSession, seconds: str
) -> None:
    result = run(recorded.path, "logs", "--follow", "--interval", seconds, "--max-polls", "1")

    assert result.exit_code == 2, result.output
    assert "'--interval'" in result.stderr and "at least 0.01" in result.stderr


WRITER = """
import asyncio, sys, time
from orchestrator_store.manager import DatabaseManager

async def main(path, agent, count, delay):
    async with DatabaseManager(path) as db:
        print("ready", flush=True)
        await asyncio.sleep(delay)
        for n in range(count):
            await db.create_agent_log(agent, "INFO", "milestone", f"live {n}")
            await db.create_system_log("WARNING", "writer", f"system live {n}")
            await asyncio.sleep(0.03)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
"""


def test_follow_prints_rows_another_process_commits_while_it_runs(
    recorded: RecordedSession, tmp_path: Path
) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    writer = subprocess.Popen(
        [sys.executable, str(script), str(recorded.path), recorded.agents["b2"], "10", "0.4"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # Started and connected before the follower's clock runs: the follower
        # then polls for 10 s, for a writer that needs well under one.
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        result = run(
            recorded.path,
            "logs",
            "--follow",
            "--json",
            "--limit",
            "100",
            "--interval",
            "0.05",
            "--max-polls",
            "200",
        )
    finally:
        assert writer.wait(timeout=60) == 0

    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    keys = [(row["source"], row["id"]) for row in rows]
    assert len(keys) == len(set(keys)) == 17 + 20  # nothing twice
    assert sorted(keys) == sorted(
        [("agent", n) for n in range(1, 23)] + [("system", n) for n in range(1, 16)]
    )  # nothing skipped
    live = [row["message"] for row in rows if "live" in row["message"]]
    assert [m for m in live if m.startswith("live")] == [f"live {n}" for n in range(10)]


def test_a_follower_process_picks_up_rows_committed_after_it_started(
    recorded: RecordedSession,
) -> None:
    follower = subprocess.Popen(
        [
            str(CLI),
            "--db",
            str(recorded.path),
            "logs",
            "--follow",
            "--json",
            "--level",
            "WARNING",
            "--interval",
            "0.05",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert follower.stdout is not None
    try:
        initial = [json.loads(follower.stdout.readline()) for _ in range(4)]  # WARNING and up

        async def write() -> None:
            async with DatabaseManager(recorded.path) as db:
                await db.create_agent_log(recorded.agents["b2"], "INFO", "milestone", "quiet")
                await db.create_agent_log(recorded.agents["b2"], "ERROR", "error", "late error")
                await db.create_system_log("CRITICAL", "disk", "disk almost full")

        asyncio.run(write())
        late = [json.loads(follower.stdout.readline()) for _ in range(2)]
    finally:
        follower.kill()
        follower.wait(timeout=30)

    assert [row["message"] for row in initial][-1] == "queue depth 12"
    assert [(row["source"], row["id"], row["message"]) for row in late] == [
        ("agent", 14, "late error"),
        ("system", 6, "disk almost full"),
    ]


# --- prune ---------------------------------------------------------------------------------


def test_prune_dry_run_writes_nothing(recorded: RecordedSession) -> None:
    before = digest(recorded.path)

    out = ok(recorded.path, "prune", "--older-than", "5")
    report = json.loads(ok(recorded.path, "prune", "--older-than", "5", "--json"))

    assert "would delete 8 agent logs and 3 system logs older than 5 days" in out
    assert "nothing was deleted" in out
    assert {key: report[key] for key in ("older_than_days", "dry_run", "agent_logs")} == {
        "older_than_days": 5.0,
        "dry_run": True,
        "agent_logs": 8,
    }
    assert report["system_logs"] == 3 and report["rows"] == {"agent_logs": 8, "system_logs": 3}
    assert digest(recorded.path) == before
    assert len(raw_rows(recorded.path, "agent_logs")) == 12
    assert len(raw_rows(recorded.path, "system_logs")) == 5


def test_prune_with_yes_deletes_then_checkpoints(recorded: RecordedSession) -> None:
    out = ok(recorded.path, "prune", "--older-than", "5", "--yes")

    assert "deleted 11 rows (8 agent logs and 3 system logs older than 5 days)" in out
    assert "WAL checkpointed and truncated" in out
    assert [row["message"] for row in raw_rows(recorded.path, "system_logs")] == [
        f"session {SESSION_B} started",
        "queue depth 12",
    ]
    assert len(raw_rows(recorded.path, "agent_logs")) == 4
    again = json.loads(ok(recorded.path, "prune", "--older-than", "5", "--yes", "--json"))
    assert again["deleted"] == 0 and again["dry_run"] is False
    assert again["bytes_after"] == recorded.path.stat().st_size  # the WAL is empty


def test_prune_takes_dry_run_and_refuses_it_with_yes(recorded: RecordedSession) -> None:
    before = digest(recorded.path)

    report = json.loads(ok(recorded.path, "prune", "--older-than", "5", "--dry-run", "--json"))
    both = run(recorded.path, "prune", "--older-than", "5", "--dry-run", "--yes")

    assert report["dry_run"] is True and report["agent_logs"] == 8
    assert both.exit_code == 2
    assert "--dry-run and --yes contradict each other" in both.stderr
    assert digest(recorded.path) == before


@pytest.mark.parametrize("days", ["1000000", "36501", "inf", "nan", "-1"])
def test_prune_refuses_an_age_out_of_range_naming_the_option(
    recorded: RecordedSession, days: str
) -> None:
    result = run(recorded.path, "prune", "--older-than", days)

    assert result.exit_code == 2, result.output
    assert "'--older-than'" in result.stderr
    assert "is not a number of days from 0 to 36500" in result.stderr
    assert "Traceback" not in result.stderr


# --- export ---------------------------------------------------------------------------------


def _stored_text(table: str, column: str, value: Any) -> Any:
    """A decoded JSON value as the store keeps it (compact JSON text)."""
    if value is not None and column in JSON_COLUMNS.get(table, ()):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def test_export_jsonl_of_every_table_round_trips_every_row(recorded: RecordedSession) -> None:
    lines = [json.loads(line) for line in ok(recorded.path, "export").splitlines()]

    for table in TABLES:
        exported = [line["row"] for line in lines if line["table"] == table]
        encoded = [
            {column: _stored_text(table, column, value) for column, value in row.items()}
            for row in exported
        ]
        assert encoded == raw_rows(recorded.path, table), table
    assert len(lines) == sum(EXPECTED["rows"].values())


def test_export_one_table_to_a_file_with_a_progress_bar(
    recorded: RecordedSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "PROGRESS_MIN_ROWS", 1)
    monkeypatch.setattr(cli, "EXPORT_BATCH", 5)  # several pages
    target = tmp_path / "logs.jsonl"

    result = run(recorded.path, "export", "--table", "agent_logs", "--output", str(target))

    assert result.exit_code == 0, result.output
    assert f"exported 12 rows to {target}" in result.stderr
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == list(range(1, 13))
    assert rows[1]["details"] == {"steps": 3}


@pytest.mark.parametrize("table", TABLES)
def test_export_csv_round_trips_every_row(
    recorded: RecordedSession, tmp_path: Path, table: str
) -> None:
    target = tmp_path / f"{table}.csv"
    ok(recorded.path, "export", "--table", table, "--format", "csv", "--output", str(target))

    with target.open(encoding="utf-8", newline="") as handle:
        exported = list(csv.DictReader(handle))

    expected = [
        {column: "" if value is None else str(value) for column, value in row.items()}
        for row in raw_rows(recorded.path, table)
    ]
    assert exported == expected
    assert len(exported) == EXPECTED["rows"][table]


def test_export_refuses_what_it_cannot_write(recorded: RecordedSession) -> None:
    assert "CSV holds one table" in fails(recorded.path, "export", "--format", "csv")
    assert "no table 'sqlite_master'" in fails(recorded.path, "export", "--table", "sqlite_master")


# --- errors and files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["stats"],
        ["agents"],
        ["agent", "abc"],
        ["sessions"],
        ["costs"],
        ["logs"],
        ["prune", "--older-than", "1"],
        ["export"],
    ],
)
def test_no_command_creates_a_missing_database(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "nowhere" / "orchestrator.db"

    assert fails(missing, *command) == (
        f"error: no database at {missing} (give --db PATH or set ORCHESTRATOR_DB_PATH)"
    )
    assert not missing.exists() and not missing.parent.exists()


def test_a_file_that_is_not_a_database_is_one_line_and_left_untouched(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_text("not sqlite", encoding="utf-8")

    assert "is not a SQLite database" in fails(bogus, "stats")
    assert bogus.read_text(encoding="utf-8") == "not sqlite"


def test_an_empty_store_lists_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"

    async def create() -> None:
        async with DatabaseManager(path):
            pass

    asyncio.run(create())
    assert json.loads(ok(path, "sessions", "--json")) == []
    assert ok(path, "logs") == ""
    assert json.loads(ok(path, "costs", "--json"))["total"]["prompts"] == 0
    assert "logs span       - .. -" in ok(path, "stats")


def test_copy_to_a_non_empty_postgresql_store_names_the_append_flag(
    recorded: RecordedSession, postgres_url: str
) -> None:
    first = CliRunner().invoke(app, ["copy-to-postgres", str(recorded.path), postgres_url])
    again = CliRunner().invoke(app, ["copy-to-postgres", str(recorded.path), postgres_url])

    assert first.exit_code == 0, first.output
    assert again.exit_code == 1
    (line,) = again.stderr.splitlines()
    assert line.startswith("error: ") and "already holds rows" in line
    assert line.endswith("copy into an empty store, or pass --append to add to it")


# Runs the command line with Ctrl-C as a terminal delivers it, even when the
# tests run as a background job of a non-interactive shell, which starts with SIGINT
# ignored (and Python then leaves it ignored).
WITH_CTRL_C = (
    "import os, runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = ['orchestrator-store', *sys.argv[1:]]; "
    "runpy.run_module('orchestrator_store.cli', run_name='__main__', alter_sys=True)"
)


def test_follow_stops_on_ctrl_c(recorded: RecordedSession) -> None:
    command = ["--db", str(recorded.path), "logs", "-f", "--interval", "0.05"]
    follower = subprocess.Popen(
        [sys.executable, "-c", WITH_CTRL_C, *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert follower.stdout is not None
    try:
        follower.stdout.readline()
        time.sleep(0.2)  # Ctrl-C ends with 0 wherever it lands: no race to win
        follower.send_signal(2)  # SIGINT, as Ctrl-C sends
        _, stderr = follower.communicate(timeout=60)
    finally:
        follower.kill()  # never left polling if the signal was lost
        follower.wait(timeout=60)

    assert follower.returncode == 0
    assert "Traceback" not in stderr
