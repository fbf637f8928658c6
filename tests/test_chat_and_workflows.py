"""Schema version 2 through the facade: the orchestrator's chat
(``orchestrator_chat``) and the AI developer workflows it runs
(``ai_developer_workflows``), on both backends. Creating, reading, listing
(newest first, filtered, paged), updating and deleting; what is refused before
any SQL runs (and writes nothing); foreign keys named in the error; cascades;
``adw_id`` uniqueness; ``end_workflow``'s duration and error count, alone and
raced; JSON values; and the bulk paths (count_rows, iter_rows, export, copy)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator_store import CHAT_PARTIES, WORKFLOW_STATUSES
from orchestrator_store.cli import app
from orchestrator_store.dialect import COLUMNS
from orchestrator_store.manager import (
    DatabaseError,
    DatabaseManager,
    IntegrityError,
    ValidationError,
)
from orchestrator_store.models import AiDeveloperWorkflow, OrchestratorChat

CHAT = "orchestrator_chat"
WORKFLOWS = "ai_developer_workflows"
MISSING = str(uuid.uuid4())
JSON_VALUE = {
    "issue": 13,
    "steps": ["plan", "build", {"nested": [1, 2.5, None, True]}],
    "ratio": 0.25,
    "text": "ünïcode ✓",
    "empty": {},
}

Call = Callable[[], Awaitable[Any]]


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def assert_refused(
    db: DatabaseManager, call: Call, error: type[DatabaseError], field: str
) -> DatabaseError:
    """``call`` raises ``error`` naming ``field`` (attribute and message), and
    every table holds what it held before."""
    before = await db.count_rows()
    with pytest.raises(error) as caught:
        await call()
    assert caught.value.field == field
    assert field in str(caught.value)
    assert await db.count_rows() == before
    return caught.value


@pytest.fixture
async def other_definition(db: DatabaseManager) -> str:
    return await db.create_orchestrator_agent("builder", None, "builder")


# --- orchestrator_chat ------------------------------------------------------------------


async def test_a_chat_message_round_trips(
    db: DatabaseManager, definition_id: str, agent_id: str
) -> None:
    message_id = await db.create_chat_message(
        definition_id,
        "orchestrator",
        "agent",
        "Build step 1",
        summary="asks for step 1",
        agent_id=agent_id,
        metadata=JSON_VALUE,
    )
    row = await db.get_chat_message(message_id)
    assert row is not None
    assert list(row) == list(COLUMNS[CHAT])
    OrchestratorChat.model_validate(row)
    assert row == {
        "id": message_id,
        "orchestrator_agent_id": definition_id,
        "sender_type": "orchestrator",
        "receiver_type": "agent",
        "message": "Build step 1",
        "summary": "asks for step 1",
        "agent_id": agent_id,
        "metadata": JSON_VALUE,
        "created_at": row["created_at"],
        "updated_at": row["created_at"],
    }
    assert uuid.UUID(message_id).version == 7  # time-ordered, made by the store
    assert await db.get_chat_message(MISSING) is None


async def test_every_party_may_send_and_receive(db: DatabaseManager, definition_id: str) -> None:
    assert CHAT_PARTIES == ("user", "orchestrator", "agent")
    for sender in CHAT_PARTIES:
        for receiver in CHAT_PARTIES:
            await db.create_chat_message(definition_id, sender, receiver, f"{sender}>{receiver}")
    rows = await db.list_chat_messages(definition_id)
    assert {(row["sender_type"], row["receiver_type"]) for row in rows} == {
        (sender, receiver) for sender in CHAT_PARTIES for receiver in CHAT_PARTIES
    }


async def test_chat_messages_list_newest_first_filtered_and_paged(
    db: DatabaseManager, definition_id: str, agent_id: str, other_definition: str
) -> None:
    other_agent = await db.create_agent(other_definition, "s")
    written = [
        await db.create_chat_message(definition_id, "user", "orchestrator", "first"),
        await db.create_chat_message(
            definition_id, "orchestrator", "agent", "second", agent_id=agent_id
        ),
        await db.create_chat_message(other_definition, "user", "orchestrator", "elsewhere"),
        await db.create_chat_message(
            definition_id, "agent", "orchestrator", "third", agent_id=agent_id
        ),
        await db.create_chat_message(
            other_definition, "orchestrator", "agent", "other agent", agent_id=other_agent
        ),
    ]

    def ids(rows: list[dict[str, Any]]) -> list[str]:
        return [row["id"] for row in rows]

    assert ids(await db.list_chat_messages()) == written[::-1]
    mine = [written[3], written[1], written[0]]
    assert ids(await db.list_chat_messages(definition_id)) == mine
    assert ids(await db.list_chat_messages(agent_id=agent_id)) == [written[3], written[1]]
    assert ids(await db.list_chat_messages(other_definition, agent_id=other_agent)) == [written[4]]
    assert await db.list_chat_messages(other_definition, agent_id=agent_id) == []
    assert ids(await db.list_chat_messages(definition_id, limit=2)) == mine[:2]
    assert ids(await db.list_chat_messages(definition_id, limit=2, offset=1)) == mine[1:]
    assert ids(await db.list_chat_messages(definition_id, offset=2)) == mine[2:]


async def test_updating_a_chat_message(db: DatabaseManager, definition_id: str) -> None:
    message_id = await db.create_chat_message(definition_id, "user", "orchestrator", "hello")
    created = await db.get_chat_message(message_id)
    assert created is not None

    assert await db.update_chat_message(message_id, summary="greets", metadata=[1, "two"])
    updated = await db.get_chat_message(message_id)
    assert updated is not None
    assert (updated["summary"], updated["metadata"]) == ("greets", [1, "two"])
    assert updated["message"] == "hello"
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] >= created["updated_at"]

    assert await db.update_chat_message(message_id, summary=None)
    assert (await db.get_chat_message(message_id) or {})["summary"] is None
    assert not await db.update_chat_message(MISSING, summary="nobody")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"message": "rewritten"}, "message"),  # the message itself is the record
        ({"sender_type": "user"}, "sender_type"),
        ({"created_at": "2026-01-01T00:00:00+00:00"}, "created_at"),
        ({"metadata": float("nan")}, "metadata"),
    ],
)
async def test_a_chat_update_of_what_may_not_change_is_refused(
    db: DatabaseManager, definition_id: str, fields: dict[str, Any], field: str
) -> None:
    message_id = await db.create_chat_message(definition_id, "user", "orchestrator", "hello")
    before = await db.get_chat_message(message_id)
    await assert_refused(
        db, lambda: db.update_chat_message(message_id, **fields), ValidationError, field
    )
    assert await db.get_chat_message(message_id) == before


async def test_a_chat_update_without_fields_says_which_are_allowed(
    db: DatabaseManager, definition_id: str
) -> None:
    message_id = await db.create_chat_message(definition_id, "user", "orchestrator", "hello")
    with pytest.raises(ValidationError, match="summary, metadata"):
        await db.update_chat_message(message_id)


async def test_deleting_a_chat_message(db: DatabaseManager, definition_id: str) -> None:
    kept = await db.create_chat_message(definition_id, "user", "orchestrator", "kept")
    doomed = await db.create_chat_message(definition_id, "user", "orchestrator", "doomed")
    assert await db.delete_chat_message(doomed)
    assert not await db.delete_chat_message(doomed)
    assert [row["id"] for row in await db.list_chat_messages()] == [kept]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sender_type": "assistant"}, "sender_type"),
        ({"sender_type": "User"}, "sender_type"),
        ({"receiver_type": "system"}, "receiver_type"),
        ({"receiver_type": None}, "receiver_type"),
        ({"message": ""}, "message"),
        ({"message": "  \n\t"}, "message"),
        ({"message": None}, "message"),
        ({"message": "a\x00b"}, "message"),
        ({"summary": 7}, "summary"),
        ({"orchestrator_agent_id": "not-a-uuid"}, "orchestrator_agent_id"),
        ({"agent_id": "adw-orchestrator"}, "agent_id"),
        ({"metadata": {"n": float("inf")}}, "metadata"),
        ({"metadata": {"when": datetime.now(UTC)}}, "metadata"),
    ],
)
async def test_bad_chat_input_is_refused_before_any_sql(
    db: DatabaseManager, definition_id: str, changes: dict[str, Any], field: str
) -> None:
    arguments: dict[str, Any] = {
        "orchestrator_agent_id": definition_id,
        "sender_type": "user",
        "receiver_type": "orchestrator",
        "message": "hello",
        **changes,
    }
    error = await assert_refused(
        db, lambda: db.create_chat_message(**arguments), ValidationError, field
    )
    assert error.table == CHAT


async def test_a_bad_chat_party_error_lists_the_allowed_values(
    db: DatabaseManager, definition_id: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await db.create_chat_message(definition_id, "bot", "user", "hi")
    assert all(party in str(caught.value) for party in CHAT_PARTIES)


async def test_unknown_chat_references_are_named(db: DatabaseManager, definition_id: str) -> None:
    error = await assert_refused(
        db,
        lambda: db.create_chat_message(MISSING, "user", "orchestrator", "hi"),
        IntegrityError,
        "orchestrator_agent_id",
    )
    assert isinstance(error, IntegrityError)
    assert error.constraint == "foreign_key"
    assert MISSING in str(error)
    error = await assert_refused(
        db,
        lambda: db.create_chat_message(
            definition_id, "orchestrator", "agent", "hi", agent_id=MISSING
        ),
        IntegrityError,
        "agent_id",
    )
    assert "orchestrator_agent_id" not in str(error)


async def test_deleting_an_agent_deletes_its_chat_messages(
    db: DatabaseManager, definition_id: str, agent_id: str
) -> None:
    other_agent = await db.create_agent(definition_id, "s")
    user_message = await db.create_chat_message(definition_id, "user", "orchestrator", "hi")
    await db.create_chat_message(definition_id, "orchestrator", "agent", "go", agent_id=agent_id)
    await db.create_chat_message(definition_id, "agent", "orchestrator", "done", agent_id=agent_id)
    other = await db.create_chat_message(
        definition_id, "orchestrator", "agent", "you too", agent_id=other_agent
    )
    assert await db.delete_agent(agent_id)
    assert [row["id"] for row in await db.list_chat_messages()] == [other, user_message]


async def test_deleting_a_definition_deletes_its_chat_and_workflows(
    db: DatabaseManager, definition_id: str, agent_id: str, other_definition: str
) -> None:
    await db.create_chat_message(definition_id, "user", "orchestrator", "hi")
    await db.create_chat_message(definition_id, "orchestrator", "agent", "go", agent_id=agent_id)
    await db.start_workflow("adw_plan", "plan", orchestrator_agent_id=definition_id)
    kept_chat = await db.create_chat_message(other_definition, "user", "orchestrator", "hi")
    kept_workflow = await db.start_workflow(
        "adw_build", "build", orchestrator_agent_id=other_definition
    )
    unowned = await db.start_workflow("adw_test", "test")  # belongs to no definition

    assert await db.delete_orchestrator_agent(definition_id)
    assert [row["id"] for row in await db.list_chat_messages()] == [kept_chat]
    assert [row["id"] for row in await db.list_workflows()] == [unowned, kept_workflow]
    counts = await db.count_rows()
    assert (counts[CHAT], counts[WORKFLOWS], counts["agents"]) == (1, 2, 0)


# --- ai_developer_workflows -------------------------------------------------------------


async def test_start_workflow_records_a_run_in_progress(
    db: DatabaseManager, definition_id: str
) -> None:
    workflow_id = await db.start_workflow(
        "adw_plan_build",
        "plan_build",
        adw_id="a1b2c3d4",
        description="Plan and build issue 13",
        total_steps=3,
        orchestrator_agent_id=definition_id,
        input_data=JSON_VALUE,
        metadata={"trigger": "webhook"},
    )
    row = await db.get_workflow(workflow_id)
    assert row is not None
    assert list(row) == list(COLUMNS[WORKFLOWS])
    AiDeveloperWorkflow.model_validate(row)
    assert row == {
        "id": workflow_id,
        "orchestrator_agent_id": definition_id,
        "adw_id": "a1b2c3d4",
        "adw_name": "adw_plan_build",
        "workflow_type": "plan_build",
        "description": "Plan and build issue 13",
        "status": "in_progress",
        "current_step": None,
        "total_steps": 3,
        "completed_steps": 0,
        "started_at": row["created_at"],
        "completed_at": None,
        "duration_seconds": None,
        "input_data": JSON_VALUE,
        "output_data": None,
        "error_message": None,
        "error_step": None,
        "error_count": 0,
        "metadata": {"trigger": "webhook"},
        "created_at": row["created_at"],
        "updated_at": row["created_at"],
    }
    assert uuid.UUID(workflow_id).version == 7
    assert await db.get_workflow(MISSING) is None
    assert await db.get_workflow_by_adw_id("a1b2c3d4") == row
    assert await db.get_workflow_by_adw_id("ffffffff") is None


async def test_an_adw_id_is_unique_and_named_when_taken(db: DatabaseManager) -> None:
    first = await db.start_workflow("adw_plan", "plan", adw_id="a1b2c3d4")
    error = await assert_refused(
        db,
        lambda: db.start_workflow("adw_build", "build", adw_id="a1b2c3d4"),
        IntegrityError,
        "adw_id",
    )
    assert isinstance(error, IntegrityError)
    assert error.constraint == "unique"
    assert error.table == WORKFLOWS
    assert "a1b2c3d4" in str(error)
    assert error.__cause__ is not None  # the driver's exception is kept
    # Runs without an adw_id never collide.
    await db.start_workflow("adw_plan", "plan")
    await db.start_workflow("adw_plan", "plan")
    assert (await db.get_workflow_by_adw_id("a1b2c3d4") or {})["id"] == first
    assert len(await db.list_workflows()) == 3


async def test_only_a_taken_adw_id_is_reported_as_one(db: DatabaseManager, store_url: Any) -> None:
    """start_workflow says "adw_id exists already" only when the backend
    named adw_id as the taken column: another unique key (an index added
    here by hand, as a later schema might) keeps its own field and message."""
    index = "CREATE UNIQUE INDEX one_description ON ai_developer_workflows (description)"
    if db.backend_name == "sqlite":
        with sqlite3.connect(store_url) as raw:
            raw.execute(index)
        raw.close()
    else:
        from pg_testing import run_sql

        await run_sql(store_url, index)
    await db.start_workflow("adw_plan", "plan", adw_id="a1b2c3d4", description="same")
    error = await assert_refused(
        db,
        lambda: db.start_workflow("adw_build", "build", adw_id="e5f6a7b8", description="same"),
        IntegrityError,
        "description",
    )
    assert isinstance(error, IntegrityError)
    assert error.constraint == "unique"
    assert "adw_id" not in str(error)
    error = await assert_refused(  # and a taken adw_id is still named as such
        db,
        lambda: db.start_workflow("adw_build", "build", adw_id="a1b2c3d4", description="other"),
        IntegrityError,
        "adw_id",
    )
    assert "a workflow with adw_id 'a1b2c3d4' exists already" in str(error)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"adw_name": ""}, "adw_name"),
        ({"adw_name": None}, "adw_name"),
        ({"workflow_type": " "}, "workflow_type"),
        ({"adw_id": ""}, "adw_id"),
        ({"adw_id": 12345678}, "adw_id"),
        ({"total_steps": -1}, "total_steps"),
        ({"total_steps": True}, "total_steps"),
        ({"total_steps": 2**63}, "total_steps"),
        ({"total_steps": "3"}, "total_steps"),
        ({"orchestrator_agent_id": "adw-orchestrator"}, "orchestrator_agent_id"),
        ({"input_data": {"big": 2**64}}, "input_data"),
        ({"metadata": float("nan")}, "metadata"),
        ({"description": "\ud800"}, "description"),
    ],
)
async def test_bad_workflow_input_is_refused_before_any_sql(
    db: DatabaseManager, changes: dict[str, Any], field: str
) -> None:
    arguments: dict[str, Any] = {"adw_name": "adw_plan", "workflow_type": "plan", **changes}
    error = await assert_refused(db, lambda: db.start_workflow(**arguments), ValidationError, field)
    assert error.table == WORKFLOWS


async def test_an_unknown_definition_of_a_workflow_is_named(db: DatabaseManager) -> None:
    error = await assert_refused(
        db,
        lambda: db.start_workflow("adw_plan", "plan", orchestrator_agent_id=MISSING),
        IntegrityError,
        "orchestrator_agent_id",
    )
    assert isinstance(error, IntegrityError)
    assert error.constraint == "foreign_key"


async def test_update_workflow_step(db: DatabaseManager) -> None:
    workflow_id = await db.start_workflow("adw_plan_build", "plan_build", total_steps=3)
    started = await db.get_workflow(workflow_id)
    assert started is not None

    assert await db.update_workflow_step(workflow_id, "plan")
    row = await db.get_workflow(workflow_id) or {}
    assert (row["current_step"], row["completed_steps"], row["status"]) == (
        "plan",
        0,
        "in_progress",
    )
    assert await db.update_workflow_step(workflow_id, "build", completed_steps=1)
    assert await db.update_workflow_step(workflow_id, "review")  # None keeps the count
    row = await db.get_workflow(workflow_id) or {}
    assert (row["current_step"], row["completed_steps"]) == ("review", 1)
    assert row["updated_at"] >= started["updated_at"]
    assert row["started_at"] == started["started_at"]

    assert await db.update_workflow_step(workflow_id, "waiting", status="pending")
    assert (await db.get_workflow(workflow_id) or {})["status"] == "pending"
    assert not await db.update_workflow_step(MISSING, "plan")


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"current_step": ""}, "current_step"),
        ({"current_step": None}, "current_step"),
        ({"completed_steps": -1}, "completed_steps"),
        ({"completed_steps": 1.5}, "completed_steps"),
        ({"status": "running"}, "status"),
        ({"status": None}, "status"),
    ],
)
async def test_bad_step_updates_are_refused(
    db: DatabaseManager, arguments: dict[str, Any], field: str
) -> None:
    workflow_id = await db.start_workflow("adw_plan", "plan")
    before = await db.get_workflow(workflow_id)
    call = {"current_step": "plan", **arguments}
    await assert_refused(
        db, lambda: db.update_workflow_step(workflow_id, **call), ValidationError, field
    )
    assert await db.get_workflow(workflow_id) == before


async def test_a_workflow_id_that_is_no_uuid_is_refused(db: DatabaseManager) -> None:
    for call in (
        lambda: db.update_workflow_step("a1b2c3d4", "plan"),
        lambda: db.end_workflow("a1b2c3d4", "completed"),
        lambda: db.update_workflow("a1b2c3d4", status="failed"),
        lambda: db.get_workflow("a1b2c3d4"),
        lambda: db.delete_workflow("a1b2c3d4"),
    ):
        error = await assert_refused(db, call, ValidationError, "id")
        assert error.table == WORKFLOWS


async def test_end_workflow_completes_with_its_duration(db: DatabaseManager) -> None:
    workflow_id = await db.start_workflow("adw_plan", "plan", total_steps=2)
    # Started 90 seconds ago, as another process might have recorded it.
    started_at = datetime.now(UTC) - timedelta(seconds=90)
    assert await db.update_workflow(workflow_id, started_at=started_at)

    assert await db.end_workflow(workflow_id, "completed", output_data={"pr": 42})
    row = await db.get_workflow(workflow_id)
    assert row is not None
    AiDeveloperWorkflow.model_validate(row)
    assert row["status"] == "completed"
    assert row["output_data"] == {"pr": 42}
    assert (row["error_count"], row["error_message"], row["error_step"]) == (0, None, None)
    elapsed = moment(row["completed_at"]) - moment(row["started_at"])
    assert row["duration_seconds"] == pytest.approx(elapsed.total_seconds(), abs=1e-6)
    assert row["duration_seconds"] >= 90
    assert row["updated_at"] == row["completed_at"]


async def test_end_workflow_counts_each_error(db: DatabaseManager) -> None:
    workflow_id = await db.start_workflow("adw_build", "build")
    assert await db.end_workflow(
        workflow_id, "failed", error_message="tests failed", error_step="test"
    )
    row = await db.get_workflow(workflow_id) or {}
    assert (row["status"], row["error_message"], row["error_step"], row["error_count"]) == (
        "failed",
        "tests failed",
        "test",
        1,
    )
    # Retried and failed again: the count goes on, the latest error is kept.
    assert await db.end_workflow(workflow_id, "failed", error_message="lint failed")
    row = await db.get_workflow(workflow_id) or {}
    assert (row["error_message"], row["error_step"], row["error_count"]) == (
        "lint failed",
        "test",  # None leaves the earlier step
        2,
    )
    assert await db.end_workflow(workflow_id, "cancelled")
    row = await db.get_workflow(workflow_id) or {}
    assert (row["status"], row["error_count"]) == ("cancelled", 2)


async def test_end_workflow_of_a_run_without_start_time_has_no_duration(
    db: DatabaseManager,
) -> None:
    workflow_id = await db.start_workflow("adw_plan", "plan")
    assert await db.update_workflow(workflow_id, started_at=None)
    assert await db.end_workflow(workflow_id, "completed")
    row = await db.get_workflow(workflow_id) or {}
    assert row["completed_at"] is not None
    assert row["duration_seconds"] is None


async def test_a_start_time_in_the_future_gives_duration_zero(db: DatabaseManager) -> None:
    """Another machine's clock may run ahead: the duration is never negative."""
    workflow_id = await db.start_workflow("adw_plan", "plan")
    assert await db.update_workflow(workflow_id, started_at=datetime.now(UTC) + timedelta(hours=1))
    assert await db.end_workflow(workflow_id, "completed")
    assert (await db.get_workflow(workflow_id) or {})["duration_seconds"] == 0.0


async def test_end_workflow_of_an_unknown_run_writes_nothing(db: DatabaseManager) -> None:
    before = await db.count_rows()
    assert not await db.end_workflow(MISSING, "failed", error_message="boom")
    assert await db.count_rows() == before


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"status": "in_progress"}, "status"),  # not an end
        ({"status": "pending"}, "status"),
        ({"status": "done"}, "status"),
        ({"error_message": 3}, "error_message"),
        ({"output_data": {1: "key"}}, "output_data"),
    ],
)
async def test_bad_ends_are_refused(
    db: DatabaseManager, arguments: dict[str, Any], field: str
) -> None:
    workflow_id = await db.start_workflow("adw_plan", "plan")
    before = await db.get_workflow(workflow_id)
    call = {"status": "completed", **arguments}
    await assert_refused(db, lambda: db.end_workflow(workflow_id, **call), ValidationError, field)
    assert await db.get_workflow(workflow_id) == before


async def test_racing_ends_count_every_error_and_keep_duration_consistent(
    db: DatabaseManager, store_url: Any
) -> None:
    """Ends of one run from two managers (two connections, or two pools) and
    several tasks each: every error is counted, and the stored duration is the
    one of the stored completed_at."""
    workflow_id = await db.start_workflow("adw_build", "build")
    racers = 12
    async with DatabaseManager(store_url) as other:
        managers = [db, other]
        results = await asyncio.gather(
            *(
                managers[index % 2].end_workflow(
                    workflow_id, "failed", error_message=f"attempt {index}"
                )
                for index in range(racers)
            )
        )
    assert results == [True] * racers
    row = await db.get_workflow(workflow_id) or {}
    assert row["error_count"] == racers
    elapsed = moment(row["completed_at"]) - moment(row["started_at"])
    assert row["duration_seconds"] == pytest.approx(elapsed.total_seconds(), abs=1e-6)


async def test_end_workflow_inside_a_transaction_rolls_back_with_it(
    db: DatabaseManager,
) -> None:
    workflow_id = await db.start_workflow("adw_build", "build")
    before = await db.get_workflow(workflow_id)
    with pytest.raises(RuntimeError):
        async with db.transaction():
            assert await db.end_workflow(workflow_id, "failed", error_message="boom")
            assert (await db.get_workflow(workflow_id) or {})["error_count"] == 1
            raise RuntimeError("undo it")
    assert await db.get_workflow(workflow_id) == before
    async with db.transaction():
        assert await db.end_workflow(workflow_id, "completed")
    assert (await db.get_workflow(workflow_id) or {})["status"] == "completed"


async def test_update_workflow(db: DatabaseManager) -> None:
    workflow_id = await db.start_workflow("adw_plan", "plan")
    assert await db.update_workflow(
        workflow_id,
        adw_name="adw_plan_v2",
        workflow_type="plan_v2",
        description="re-planned",
        status="completed",
        current_step="done",
        total_steps=4,
        completed_steps=4,
        # Any offset goes in; UTC in the one format comes out.
        completed_at="2026-01-31T14:00:00+02:00",
        duration_seconds=12,
        output_data=["a", "list"],
        error_count=0,
        metadata="plain JSON string",
    )
    row = await db.get_workflow(workflow_id) or {}
    assert row["completed_at"] == "2026-01-31T12:00:00.000000+00:00"
    assert row["duration_seconds"] == 12.0
    assert (row["adw_name"], row["workflow_type"], row["status"]) == (
        "adw_plan_v2",
        "plan_v2",
        "completed",
    )
    assert (row["output_data"], row["metadata"]) == (["a", "list"], "plain JSON string")
    assert row["updated_at"] >= row["created_at"]
    assert not await db.update_workflow(MISSING, status="failed")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"status": None}, "status"),
        ({"status": "IN_PROGRESS"}, "status"),
        ({"adw_name": ""}, "adw_name"),
        ({"total_steps": -1}, "total_steps"),
        ({"completed_steps": -5}, "completed_steps"),
        ({"error_count": -1}, "error_count"),
        ({"duration_seconds": -0.5}, "duration_seconds"),
        ({"duration_seconds": float("inf")}, "duration_seconds"),
        ({"started_at": datetime(2026, 1, 31, 12, 0)}, "started_at"),  # naive
        ({"completed_at": "2026-01-31T12:00:00"}, "completed_at"),  # naive
        ({"completed_at": "yesterday"}, "completed_at"),
        ({"id": str(uuid.uuid4())}, "id"),
        ({"created_at": datetime.now(UTC)}, "created_at"),
        ({"updated_at": datetime.now(UTC)}, "updated_at"),
        ({"adw_id": "other"}, "adw_id"),  # the run's own id does not change
    ],
)
async def test_bad_workflow_updates_are_refused(
    db: DatabaseManager, fields: dict[str, Any], field: str
) -> None:
    workflow_id = await db.start_workflow("adw_plan", "plan", adw_id="a1b2c3d4")
    before = await db.get_workflow(workflow_id)
    await assert_refused(
        db, lambda: db.update_workflow(workflow_id, **fields), ValidationError, field
    )
    assert await db.get_workflow(workflow_id) == before


async def test_naive_times_are_refused_with_a_reason(db: DatabaseManager) -> None:
    workflow_id = await db.start_workflow("adw_plan", "plan")
    with pytest.raises(ValidationError, match="UTC offset"):
        await db.update_workflow(workflow_id, started_at=datetime(2026, 1, 31))
    aware = datetime(2026, 1, 31, 9, tzinfo=timezone(timedelta(hours=-5)))
    assert await db.update_workflow(workflow_id, started_at=aware)
    row = await db.get_workflow(workflow_id) or {}
    assert row["started_at"] == "2026-01-31T14:00:00.000000+00:00"


async def test_workflows_list_newest_first_filtered_and_paged(
    db: DatabaseManager, definition_id: str, other_definition: str
) -> None:
    plan = await db.start_workflow("adw_plan", "plan", orchestrator_agent_id=definition_id)
    build = await db.start_workflow("adw_build", "build", orchestrator_agent_id=definition_id)
    other = await db.start_workflow("adw_plan", "plan", orchestrator_agent_id=other_definition)
    loose = await db.start_workflow("adw_test", "test")
    await db.end_workflow(build, "failed", error_message="boom")
    await db.update_workflow(loose, status="pending")

    def ids(rows: list[dict[str, Any]]) -> list[str]:
        return [row["id"] for row in rows]

    assert ids(await db.list_workflows()) == [loose, other, build, plan]
    assert ids(await db.list_workflows(status="in_progress")) == [other, plan]
    assert ids(await db.list_workflows(status="failed")) == [build]
    assert ids(await db.list_workflows(workflow_type="plan")) == [other, plan]
    assert ids(await db.list_workflows(orchestrator_agent_id=definition_id)) == [build, plan]
    assert ids(
        await db.list_workflows(status="in_progress", orchestrator_agent_id=other_definition)
    ) == [other]
    assert await db.list_workflows(status="cancelled") == []
    assert ids(await db.list_workflows(limit=2)) == [loose, other]
    assert ids(await db.list_workflows(limit=2, offset=2)) == [build, plan]
    assert ids(await db.list_workflows(offset=3)) == [plan]
    assert WORKFLOW_STATUSES == ("pending", "in_progress", "completed", "failed", "cancelled")


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"status": "running"}, "status"),
        ({"workflow_type": ""}, "workflow_type"),
        ({"orchestrator_agent_id": "x"}, "orchestrator_agent_id"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
async def test_bad_workflow_filters_are_refused(
    db: DatabaseManager, filters: dict[str, Any], field: str
) -> None:
    await assert_refused(db, lambda: db.list_workflows(**filters), ValidationError, field)


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"orchestrator_agent_id": "x"}, "orchestrator_agent_id"),
        ({"agent_id": 5}, "agent_id"),
        ({"limit": -1}, "limit"),
        ({"offset": 1.5}, "offset"),
    ],
)
async def test_bad_chat_filters_are_refused(
    db: DatabaseManager, filters: dict[str, Any], field: str
) -> None:
    await assert_refused(db, lambda: db.list_chat_messages(**filters), ValidationError, field)


async def test_a_blank_adw_id_lookup_is_refused(db: DatabaseManager) -> None:
    await assert_refused(db, lambda: db.get_workflow_by_adw_id("  "), ValidationError, "adw_id")


async def test_deleting_a_workflow(db: DatabaseManager) -> None:
    kept = await db.start_workflow("adw_plan", "plan", adw_id="keep0000")
    doomed = await db.start_workflow("adw_plan", "plan", adw_id="gone0000")
    assert await db.delete_workflow(doomed)
    assert not await db.delete_workflow(doomed)
    assert await db.get_workflow_by_adw_id("gone0000") is None
    assert [row["id"] for row in await db.list_workflows()] == [kept]
    # The adw_id is free again.
    await db.start_workflow("adw_plan", "plan", adw_id="gone0000")


async def test_a_failed_transaction_writes_no_chat_or_workflow(
    db: DatabaseManager, definition_id: str
) -> None:
    before = await db.count_rows()
    with pytest.raises(RuntimeError):
        async with db.transaction():
            await db.create_chat_message(definition_id, "user", "orchestrator", "hi")
            await db.start_workflow("adw_plan", "plan", adw_id="a1b2c3d4")
            raise RuntimeError("undo both")
    assert await db.count_rows() == before
    assert await db.get_workflow_by_adw_id("a1b2c3d4") is None


# --- the database's own rules (for writers that bypass the facade) ----------------------

CHECKED_VALUES = [
    ("total_steps", -1),
    ("completed_steps", -1),
    ("error_count", -1),
    ("duration_seconds", -0.5),
    ("status", "running"),
    ("adw_name", "  "),
]


@pytest.mark.backend("sqlite")
@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        *((WORKFLOWS, column, value) for column, value in CHECKED_VALUES),
        # The one timestamp format (the original module wrote datetime('now') text).
        (WORKFLOWS, "started_at", "2026-01-31 12:00:00"),
        (WORKFLOWS, "completed_at", "2026-01-31T12:00:00.981620"),
        (WORKFLOWS, "input_data", "{not json"),
        (CHAT, "sender_type", "bot"),
        (CHAT, "receiver_type", "assistant"),
        (CHAT, "message", ""),
        (CHAT, "metadata", "{not json"),
        (CHAT, "created_at", "2026-01-31T12:00:00Z"),
    ],
)
async def test_sqlite_checks_refuse_what_the_models_refuse(
    db: DatabaseManager, db_path: Path, definition_id: str, table: str, column: str, value: Any
) -> None:
    row_id = (
        await db.start_workflow("adw_plan", "plan")
        if table == WORKFLOWS
        else await db.create_chat_message(definition_id, "user", "orchestrator", "hi")
    )
    connection = sqlite3.connect(db_path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            connection.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?", (value, row_id))
    finally:
        connection.close()


@pytest.mark.backend("postgresql")
@pytest.mark.parametrize(("column", "value"), CHECKED_VALUES)
async def test_postgres_checks_refuse_what_the_models_refuse(
    db: DatabaseManager, store_url: str, column: str, value: Any
) -> None:
    from pg_testing import connect_raw

    workflow_id = await db.start_workflow("adw_plan", "plan")
    connection = await connect_raw(store_url)
    try:
        import asyncpg

        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute(
                f"UPDATE {WORKFLOWS} SET {column} = $1 WHERE id = $2",
                value,
                uuid.UUID(workflow_id),
            )
    finally:
        await connection.close()


# --- the bulk paths: count_rows, iter_rows, export, copy --------------------------------


async def _a_conversation_and_two_runs(db: DatabaseManager) -> None:
    definition = await db.create_orchestrator_agent("orchestrator", None, "orchestrator")
    agent = await db.create_agent(definition, "feature_13")
    await db.create_chat_message(definition, "user", "orchestrator", "Implement issue 13")
    await db.create_chat_message(
        definition, "orchestrator", "agent", "Plan it", agent_id=agent, metadata=JSON_VALUE
    )
    done = await db.start_workflow(
        "adw_plan", "plan", adw_id="a1b2c3d4", orchestrator_agent_id=definition, input_data=[1]
    )
    await db.end_workflow(done, "completed", output_data=JSON_VALUE)
    await db.start_workflow("adw_build", "build", adw_id="e5f6a7b8", total_steps=5)


async def test_count_rows_and_iter_rows_cover_the_new_tables(db: DatabaseManager) -> None:
    await _a_conversation_and_two_runs(db)
    counts = await db.count_rows()
    assert (counts[CHAT], counts[WORKFLOWS]) == (2, 2)
    for table, listed in (
        (CHAT, await db.list_chat_messages()),
        (WORKFLOWS, await db.list_workflows()),
    ):
        scanned = [row async for row in db.iter_rows(table, batch_size=1)]
        assert sorted(scanned, key=lambda row: row["id"]) == sorted(
            listed, key=lambda row: row["id"]
        )


def test_export_writes_the_new_tables(db_path: Path) -> None:
    async def record() -> dict[str, list[dict[str, Any]]]:
        async with DatabaseManager(db_path) as db:
            await _a_conversation_and_two_runs(db)
            return {CHAT: await db.list_chat_messages(), WORKFLOWS: await db.list_workflows()}

    for table, rows in asyncio.run(record()).items():
        result = CliRunner().invoke(app, ["--db", str(db_path), "export", "--table", table])
        assert result.exit_code == 0, result.output
        exported = [json.loads(line) for line in result.stdout.splitlines()]
        assert sorted(exported, key=lambda row: row["id"]) == sorted(
            rows, key=lambda row: row["id"]
        )


async def test_copy_to_postgres_carries_the_new_tables(db_path: Path, postgres_url: str) -> None:
    from orchestrator_store.copy_to_postgres import copy_sqlite_to_postgres

    async with DatabaseManager(db_path) as db:
        await _a_conversation_and_two_runs(db)
        source = {table: [row async for row in db.iter_rows(table)] for table in (CHAT, WORKFLOWS)}
    copied = await copy_sqlite_to_postgres(db_path, postgres_url)
    assert (copied[CHAT], copied[WORKFLOWS]) == (2, 2)
    async with DatabaseManager(postgres_url) as target:
        for table, rows in source.items():
            assert [row async for row in target.iter_rows(table)] == rows
        assert (await target.get_workflow_by_adw_id("a1b2c3d4") or {})["output_data"] == (
            JSON_VALUE
        )
