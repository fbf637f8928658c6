"""The command line's views of workflow runs and of the orchestrator chat:
``workflows``, ``workflow ID`` and ``chat``, on a real store of each backend."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_cli import cells, digest, fails, ok, run
from test_cli_safety import TERMINAL_CONTROLS

from orchestrator_store.cli_render import STATUS_STYLES
from orchestrator_store.manager import DatabaseManager
from orchestrator_store.models import WORKFLOW_STATUSES


@dataclass
class Runs:
    """What ``record_runs`` stored: ids by name, messages in the order sent."""

    store: Path | str
    workflows: dict[str, str]
    orchestrator: str
    other_orchestrator: str
    builder: str
    messages: list[str]


async def record_runs(store: Path | str) -> Runs:
    async with DatabaseManager(store) as db:
        orchestrator = await db.create_orchestrator_agent(
            "orchestrator", "Runs ADWs", "orchestrator"
        )
        other = await db.create_orchestrator_agent("night-shift", "Another one", "orchestrator")
        definition = await db.create_orchestrator_agent("builder", "Builds", "builder")
        builder = await db.create_agent(definition, "session-1")

        plan = await db.start_workflow(
            "plan-feature",
            "plan",
            adw_id="a1b2c3d4",
            total_steps=3,
            orchestrator_agent_id=orchestrator,
            input_data={"issue": 13, "title": "workflows view"},
            metadata={"branch": "feat-13"},
        )
        await db.update_workflow_step(plan, "classify", completed_steps=1)
        await db.end_workflow(plan, "completed", output_data={"plan": "specs/plan.md"})
        build = await db.start_workflow("build-feature", "build", adw_id="e5f6a7b8", total_steps=5)
        await db.update_workflow_step(build, "test", completed_steps=2)
        await db.end_workflow(
            build, "failed", error_message="tests failed\nsee the log", error_step="test"
        )
        review = await db.start_workflow(
            "review-feature", "review", total_steps=2, description="Review the\nworkflows view"
        )

        conversation = [
            ("user", "orchestrator", None, "Plan issue 13 please", None),
            ("orchestrator", "agent", builder, "Build the workflows view", None),
            ("agent", "orchestrator", builder, "Done: three commands added", "commands added"),
            ("orchestrator", "user", None, "Issue 13 is built", None),
        ]
        messages = []
        for sender, receiver, agent, message, summary in conversation:
            await db.create_chat_message(
                orchestrator, sender, receiver, message, agent_id=agent, summary=summary
            )
            messages.append(message)
        await db.create_chat_message(other, "user", "orchestrator", "Elsewhere entirely")
    return Runs(
        store,
        {"plan": plan, "build": build, "review": review},
        orchestrator,
        other,
        builder,
        messages,
    )


@pytest.fixture
def runs(store_url: Path | str) -> Runs:
    return asyncio.run(record_runs(store_url))


def table_lines(out: str) -> list[list[str]]:
    """The body rows of a Rich table, as cells."""
    return [cells(line) for line in out.splitlines() if line.startswith("│")]


def message_order(out: str, messages: list[str]) -> list[str]:
    """``messages`` in the order ``out`` shows them."""
    shown = [message for message in messages if message in out]
    return sorted(shown, key=out.index)


# --- workflows --------------------------------------------------------------------------


def test_workflows_newest_first_with_their_step_duration_and_error(runs: Runs) -> None:
    out = ok(runs.store, "workflows")
    listed = json.loads(ok(runs.store, "workflows", "--json"))

    assert out.splitlines()[0].strip() == "3 workflows"
    rows = table_lines(out)
    assert [row[0] for row in rows] == [
        runs.workflows[name][-8:] for name in ("review", "build", "plan")
    ]
    review, build, plan = rows
    assert review[1:6] == ["-", "review-feature", "review", "in_progress", "0/2"]
    assert review[7].endswith("+") and review[8] == "-"  # still running: counts up to now
    assert build[1:6] == ["e5f6a7b8", "build-feature", "build", "failed", "test (2/5)"]
    assert build[8] == "tests failed"  # the error's first line only
    assert plan[1:6] == ["a1b2c3d4", "plan-feature", "plan", "completed", "classify (1/3)"]
    assert re.fullmatch(r"\d+m\d\ds", plan[7])  # the stored duration, which has ended
    assert [row["id"] for row in listed] == [
        runs.workflows[name] for name in ("review", "build", "plan")
    ]
    assert listed[2]["input_data"] == {"issue": 13, "title": "workflows view"}
    assert listed[1]["error_message"] == "tests failed\nsee the log"


def test_workflows_filters_and_limit(runs: Runs) -> None:
    def ids(*options: str) -> list[str]:
        return [row["id"] for row in json.loads(ok(runs.store, "workflows", *options, "--json"))]

    assert ids("--status", "failed") == [runs.workflows["build"]]
    assert ids("--status", "in_progress") == [runs.workflows["review"]]
    assert ids("--status", "pending") == []
    assert ids("--type", "plan") == [runs.workflows["plan"]]
    assert ids("--type", "plan", "--status", "failed") == []
    assert ids("--limit", "2") == [runs.workflows["review"], runs.workflows["build"]]
    assert "0 workflows" in ok(runs.store, "workflows", "--type", "deploy")


@pytest.mark.backend("sqlite")
def test_workflow_statuses_are_coloured_as_agent_statuses_are(runs: Runs) -> None:
    out = ok(runs.store, "workflows", env={"FORCE_COLOR": "1"})

    assert set(WORKFLOW_STATUSES) <= set(STATUS_STYLES)
    assert "\x1b[1;31mfailed" in out  # bold red, as a failed agent
    assert "\x1b[32mcompleted" in out  # green
    assert "\x1b[36min_progress" in out  # cyan: work under way


@pytest.mark.backend("sqlite")
def test_an_unknown_status_is_one_line_naming_the_allowed_ones(runs: Runs) -> None:
    assert isinstance(runs.store, Path)
    before = digest(runs.store)

    line = fails(runs.store, "workflows", "--status", "running")

    assert line.startswith("error: ai_developer_workflows.status: ")
    for status in WORKFLOW_STATUSES:
        assert status in line, status
    assert digest(runs.store) == before


# --- workflow ID ------------------------------------------------------------------------


def test_workflow_by_id_id_part_or_adw_id(runs: Runs) -> None:
    build = runs.workflows["build"]

    by_id = json.loads(ok(runs.store, "workflow", build, "--json"))
    by_adw_id = json.loads(ok(runs.store, "workflow", "e5f6a7b8", "--json"))
    by_end = json.loads(ok(runs.store, "workflow", build[-8:].upper(), "--json"))
    by_start = json.loads(ok(runs.store, "workflow", build[:-4], "--json"))

    assert by_id["id"] == by_adw_id["id"] == by_end["id"] == by_start["id"] == build
    assert by_id["status"] == "failed" and by_id["error_step"] == "test"
    assert by_id["error_count"] == 1


def test_workflow_detail_shows_steps_error_and_json(runs: Runs) -> None:
    plan = ok(runs.store, "workflow", "a1b2c3d4")
    build = ok(runs.store, "workflow", runs.workflows["build"])

    assert f"workflow     {runs.workflows['plan']}" in plan
    assert "adw id       a1b2c3d4" in plan
    assert "name         plan-feature" in plan
    assert f"definition   orchestrator ({runs.orchestrator[-8:]})" in plan
    assert "status       completed" in plan and "step         classify (1/3)" in plan
    assert 'input        {\n               "issue": 13,\n' in plan
    assert '"title": "workflows view"' in plan
    assert 'output       {\n               "plan": "specs/plan.md"\n             }' in plan
    assert 'metadata     {\n               "branch": "feat-13"' in plan
    assert "error count  0" in plan
    assert "error        tests failed\n             see the log" in build
    assert "error step   test" in build and "error count  1" in build
    assert "definition   -" in build and "input        -" in build
    review = ok(runs.store, "workflow", runs.workflows["review"][-8:])
    assert "description  Review the\n             workflows view" in review
    assert "description" not in plan  # none given: no line for it


def test_durations_of_runs_never_started_or_ended_without_an_end_time(runs: Runs) -> None:
    async def change() -> None:
        async with DatabaseManager(runs.store) as db:
            await db.update_workflow(runs.workflows["review"], status="cancelled")
            await db.update_workflow(runs.workflows["build"], status="pending", started_at=None)
            await db.update_workflow(runs.workflows["build"], duration_seconds=None)

    asyncio.run(change())
    review, build, _ = table_lines(ok(runs.store, "workflows"))

    assert review[4] == "cancelled" and review[7] == "-"  # no end time: no figure
    assert build[4] == "pending" and build[6:8] == ["-", "-"]  # never started


def test_unknown_or_ambiguous_workflow_ids_are_one_line(runs: Runs) -> None:
    store = runs.store
    shared_start = runs.workflows["plan"][:4]  # made together: time-ordered ids share it

    assert fails(store, "workflow", "nope!") == "error: no workflow has the id or ADW id 'nope!'"
    assert fails(store, "workflow", " ") == (
        "error: give a workflow id, its first or last characters, or its ADW id"
    )
    assert fails(store, "workflow", "0000-0000") == (
        "error: no workflow has the ADW id '0000-0000' or an id that starts or ends with it"
    )
    assert "matches several workflows" in fails(store, "workflow", shared_start)
    assert run(store, "workflow", "nope!").exit_code == 1


# --- chat -------------------------------------------------------------------------------


def test_chat_reads_oldest_first_and_filters_by_agent_or_orchestrator(runs: Runs) -> None:
    everything = ok(runs.store, "chat")
    latest_two = json.loads(ok(runs.store, "chat", "--limit", "2", "--json"))
    by_agent = json.loads(ok(runs.store, "chat", "--agent", runs.builder[-8:], "--json"))
    by_orchestrator = ok(runs.store, "chat", "--orchestrator", runs.orchestrator)
    by_name = json.loads(ok(runs.store, "chat", "--orchestrator", "night-shift", "--json"))
    by_id_end = json.loads(
        ok(runs.store, "chat", "--orchestrator", runs.orchestrator[-8:], "--json")
    )

    assert everything.splitlines()[0].strip() == "5 messages, oldest first"
    assert message_order(everything, [*runs.messages, "Elsewhere entirely"]) == [
        *runs.messages,
        "Elsewhere entirely",
    ]
    assert [row["message"] for row in latest_two] == [runs.messages[3], "Elsewhere entirely"]
    assert [row["message"] for row in by_agent] == runs.messages[1:3]
    assert by_orchestrator.splitlines()[0].strip() == "4 messages, oldest first"
    assert message_order(by_orchestrator, runs.messages) == runs.messages
    assert "Elsewhere entirely" not in by_orchestrator
    assert [row["message"] for row in by_name] == ["Elsewhere entirely"]
    assert [row["message"] for row in by_id_end] == runs.messages


def test_chat_lines_show_time_parties_agent_and_summary(runs: Runs) -> None:
    out = ok(runs.store, "chat", "--agent", runs.builder)
    lines = out.splitlines()

    assert [line.split()[:2] for line in lines[1:2]] == [["Time", "From"]]
    first = next(line for line in lines if "Build the workflows view" in line)
    second = next(line for line in lines if "Done: three commands added" in line)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  orchestrator -> agent", first)
    assert runs.builder[-8:] in first and runs.builder[-8:] in second
    assert "agent -> orchestrator" in second
    summary = lines[lines.index(second) + 1]
    assert summary.strip() == "summary: commands added"
    assert summary.index("summary") == second.index("Done")  # under its message


def test_a_long_message_wraps_inside_its_column(runs: Runs) -> None:
    words = [f"word{n:03d}" for n in range(60)]

    async def add() -> None:
        async with DatabaseManager(runs.store) as db:
            await db.create_chat_message(runs.orchestrator, "user", "orchestrator", " ".join(words))

    asyncio.run(add())
    out = ok(runs.store, "chat", "--limit", "1", env={"COLUMNS": "80"})
    lines = out.splitlines()[2:]

    assert len(lines) > 3 and all(len(line) <= 80 for line in out.splitlines())
    start = lines[0].index("word000")
    assert all(line[:start].strip() == "" for line in lines[1:])  # continued in its column
    assert [word for line in lines for word in line[start:].split()] == words


def test_unknown_agent_or_orchestrator_is_one_line(runs: Runs) -> None:
    assert "no agent id starts or ends with" in fails(runs.store, "chat", "--agent", "0000-00")
    assert fails(runs.store, "chat", "--orchestrator", "nobody") == (
        "error: no agent definition is named 'nobody' or has an id that starts or ends with it"
    )
    assert fails(runs.store, "chat", "--orchestrator", "ffff-0") == (
        "error: no agent definition is named 'ffff-0' or has an id that starts or ends with it"
    )
    shared = runs.orchestrator[:4]
    assert "matches several agent definitions" in fails(
        runs.store, "chat", "--orchestrator", shared
    )


def several(part: str, ids: list[str], kind: str) -> str:
    """The error for a ``part`` that the first two of ``ids`` start with."""
    first, second = (row_id[-8:] for row_id in ids[:2])
    return f"error: {part!r} matches several {kind} ({first}, {second}, ...): give more characters"


def test_ambiguous_workflow_and_definition_parts_name_two_of_them(runs: Runs) -> None:
    async def definitions() -> list[str]:  # the order the store lists them in: newest first
        async with DatabaseManager(runs.store) as db:
            return [row["id"] for row in await db.list_orchestrator_agents()]

    workflows = sorted(runs.workflows.values())  # the store finds them in id order
    shared = workflows[0][:4]  # made together: time-ordered ids share their start
    assert all(workflow.startswith(shared) for workflow in workflows)
    assert fails(runs.store, "workflow", shared.upper()) == several(shared, workflows, "workflows")
    listed = asyncio.run(definitions())
    assert all(definition.startswith(shared) for definition in listed)
    assert fails(runs.store, "chat", "--orchestrator", shared.upper()) == several(
        shared, listed, "agent definitions"
    )


def test_a_workflow_is_found_by_part_of_its_id_without_reading_the_table(
    runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_scan(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the workflow lookup read the whole table")

    monkeypatch.setattr(DatabaseManager, "iter_rows", no_scan)
    build = runs.workflows["build"]

    assert json.loads(ok(runs.store, "workflow", build[-8:], "--json"))["id"] == build
    assert json.loads(ok(runs.store, "workflow", build[:-4], "--json"))["id"] == build


def test_an_empty_store_has_no_workflows_and_no_chat(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"

    async def create() -> None:
        async with DatabaseManager(path):
            pass

    asyncio.run(create())
    assert json.loads(ok(path, "workflows", "--json")) == []
    assert json.loads(ok(path, "chat", "--json")) == []
    assert ok(path, "chat").strip() == "0 messages, oldest first"


def test_no_view_creates_a_missing_database(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "orchestrator.db"

    for command in (["workflows"], ["workflow", "a1b2c3d4"], ["chat"]):
        assert fails(missing, *command).startswith(f"error: no database at {missing}")
    assert not missing.parent.exists()


@pytest.mark.backend("sqlite")
def test_stats_counts_the_workflow_and_chat_tables(runs: Runs) -> None:
    out = ok(runs.store, "stats")
    report = json.loads(ok(runs.store, "stats", "--json"))

    assert report["rows"]["ai_developer_workflows"] == 3
    assert report["rows"]["orchestrator_chat"] == 5
    rows = [cells(line) for line in out.splitlines()]
    assert ["ai_developer_workflows", "3"] in rows and ["orchestrator_chat", "5"] in rows


# --- stored text is shown inert ---------------------------------------------------------

HOSTILE: dict[str, Any] = {
    "name": "[red]x[/red]",
    "step": "step \x1b]0;pwned\x07",
    "error": "boom \x1b[2J\nsecond [bold]line[/bold]",
    "message": "hi \x1b]0;pwned\x07 \x1b[2J [red]x[/red]\u202eevil\rover",
    "summary": "[red]x[/red] \x1b[2J",
    "data": {"note": "\x1b[5mblink\x9b"},
}


async def record_hostile(path: Path) -> str:
    async with DatabaseManager(path) as db:
        orchestrator = await db.create_orchestrator_agent(HOSTILE["name"], "x", "orchestrator")
        workflow = await db.start_workflow(
            HOSTILE["name"], "[/bold]", adw_id="\x1b[2Jadw", input_data=HOSTILE["data"]
        )
        await db.update_workflow_step(workflow, HOSTILE["step"], completed_steps=1)
        await db.end_workflow(
            workflow, "failed", error_message=HOSTILE["error"], error_step=HOSTILE["step"]
        )
        await db.create_chat_message(
            orchestrator, "user", "orchestrator", HOSTILE["message"], summary=HOSTILE["summary"]
        )
        return workflow


@pytest.mark.backend("sqlite")
def test_stored_text_is_shown_inert(tmp_path: Path) -> None:
    path = tmp_path / "hostile.db"
    workflow = asyncio.run(record_hostile(path))
    outputs = {
        " ".join(command): ok(path, *command)
        for command in (["workflows"], ["workflow", workflow], ["chat"])
    }

    for command, out in outputs.items():
        assert not TERMINAL_CONTROLS & set(out), command
    listing, detail, chat = outputs["workflows"], outputs[f"workflow {workflow}"], outputs["chat"]
    assert "[red]x[/red]" in listing and "[/bold]" in listing
    assert "step \\x1b]0;pwned\\x07 (1/0)" in listing and "boom \\x1b[2J" in listing
    assert "\\x1b[2Jadw" in listing
    assert "name         [red]x[/red]" in detail
    assert "error        boom \\x1b[2J\n             second" in detail
    assert "second [bold]line[/bold]" in detail
    assert '"note": "\\u001b[5mblink\\u009b"' in detail
    assert "hi \\x1b]0;pwned\\x07 \\x1b[2J [red]x[/red]\\u202eevil\\rover" in chat
    assert "summary: [red]x[/red] \\x1b[2J" in chat


@pytest.mark.backend("sqlite")
def test_json_keeps_stored_text_exact_and_escaped(tmp_path: Path) -> None:
    path = tmp_path / "hostile.db"
    workflow = asyncio.run(record_hostile(path))
    texts = [
        ok(path, "workflows", "--json"),
        ok(path, "workflow", "\x1b[2Jadw", "--json"),
        ok(path, "chat", "--json"),
    ]

    for text in texts:
        assert not TERMINAL_CONTROLS & set(text)
    listing, detail, chat = (json.loads(text) for text in texts)
    assert listing[0]["id"] == detail["id"] == workflow
    assert detail["current_step"] == HOSTILE["step"] and detail["error_message"] == HOSTILE["error"]
    assert detail["input_data"] == HOSTILE["data"]
    assert chat[0]["message"] == HOSTILE["message"] and chat[0]["summary"] == HOSTILE["summary"]
