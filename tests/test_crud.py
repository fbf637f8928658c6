"""Functional contract of DatabaseManager: CRUD per table, ordering, filters,
paging, cascades, retention, transactions and the shape of returned rows.

Every call passes its parameters by keyword: the parameter names are part of
the contract.
"""

from __future__ import annotations

import inspect
import re
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from orchestrator_store import manager, schema
from orchestrator_store.dialect import COLUMNS
from orchestrator_store.manager import DatabaseManager
from orchestrator_store.models import (
    Agent,
    AgentLog,
    AiDeveloperWorkflow,
    OrchestratorAgent,
    OrchestratorChat,
    Prompt,
    SystemLog,
)

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$")

ROW_MODELS: dict[str, type[BaseModel]] = {
    "orchestrator_agents": OrchestratorAgent,
    "agents": Agent,
    "prompts": Prompt,
    "agent_logs": AgentLog,
    "system_logs": SystemLog,
    "orchestrator_chat": OrchestratorChat,
    "ai_developer_workflows": AiDeveloperWorkflow,
}
TIMESTAMP_COLUMNS = {
    "orchestrator_agents": ("created_at", "updated_at"),
    "agents": ("started_at", "completed_at"),
    "prompts": ("created_at", "completed_at"),
    "agent_logs": ("created_at",),
    "system_logs": ("created_at",),
    "orchestrator_chat": ("created_at", "updated_at"),
    "ai_developer_workflows": ("started_at", "completed_at", "created_at", "updated_at"),
}


def check_row(table: str, row: dict[str, Any] | None) -> dict[str, Any]:
    """The row exists, holds exactly the table's columns, validates against the
    row model of its table and writes every timestamp in the one fixed format."""
    assert row is not None
    assert type(row) is dict
    assert list(row) == list(COLUMNS[table])  # checked against both schema files
    ROW_MODELS[table].model_validate(row)
    for column in TIMESTAMP_COLUMNS[table]:
        if row[column] is not None:
            assert TIMESTAMP.match(row[column]), (column, row[column])
    return row


def iso_ago(**delta: float) -> str:
    """A timestamp in the store's own format, ``delta`` ago."""
    moment = datetime.now(UTC) - timedelta(**delta)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def ids(rows: list[dict[str, Any]]) -> list[Any]:
    return [row["id"] for row in rows]


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every row gets the same timestamp, as if created in the same microsecond."""
    moment = "2026-01-31T12:00:00.000000+00:00"
    monkeypatch.setattr(manager, "utc_now", lambda: moment)
    return moment


# --- orchestrator_agents ---------------------------------------------------------


async def test_create_and_get_orchestrator_agent(db: DatabaseManager, db_path: Path) -> None:
    before = datetime.now(UTC)
    new_id = await db.create_orchestrator_agent(
        name="reviewer",
        description="Reviews diffs",
        agent_type="reviewer",
        capabilities="read code, comment",
        default_model="claude-opus",
    )
    after = datetime.now(UTC)

    assert str(uuid.UUID(new_id)) == new_id
    assert uuid.UUID(new_id).version == 7  # time-ordered
    row = check_row("orchestrator_agents", await db.get_orchestrator_agent(agent_id=new_id))
    assert row == {
        "id": new_id,
        "name": "reviewer",
        "description": "Reviews diffs",
        "agent_type": "reviewer",
        "capabilities": "read code, comment",
        "default_model": "claude-opus",
        "created_at": row["created_at"],
        "updated_at": row["created_at"],
    }
    assert before <= datetime.fromisoformat(row["created_at"]) <= after


async def test_create_orchestrator_agent_optional_fields_default_to_none(
    db: DatabaseManager, db_path: Path
) -> None:
    new_id = await db.create_orchestrator_agent(name="util", description=None, agent_type="utility")
    row = check_row("orchestrator_agents", await db.get_orchestrator_agent(agent_id=new_id))
    assert row["description"] is None
    assert row["capabilities"] is None
    assert row["default_model"] is None


async def test_get_missing_orchestrator_agent_returns_none(db: DatabaseManager) -> None:
    assert await db.get_orchestrator_agent(agent_id=str(uuid.uuid4())) is None


async def test_list_orchestrator_agents_newest_first(db: DatabaseManager, db_path: Path) -> None:
    created = [
        await db.create_orchestrator_agent(
            name=f"definition-{i}", description=None, agent_type="builder"
        )
        for i in range(5)
    ]
    rows = await db.list_orchestrator_agents()
    assert ids(rows) == created[::-1]
    for row in rows:
        check_row("orchestrator_agents", row)


async def test_list_orchestrator_agents_limit_and_offset(db: DatabaseManager) -> None:
    created = [
        await db.create_orchestrator_agent(name=f"d{i}", description=None, agent_type="tester")
        for i in range(6)
    ]
    newest_first = created[::-1]
    assert ids(await db.list_orchestrator_agents(limit=2)) == newest_first[:2]
    assert ids(await db.list_orchestrator_agents(limit=2, offset=2)) == newest_first[2:4]
    assert ids(await db.list_orchestrator_agents(offset=4)) == newest_first[4:]
    assert ids(await db.list_orchestrator_agents(limit=100, offset=5)) == newest_first[5:]
    assert await db.list_orchestrator_agents(offset=6) == []
    assert ids(await db.list_orchestrator_agents(limit=6, offset=0)) == newest_first


async def test_list_orchestrator_agents_empty(db: DatabaseManager) -> None:
    assert await db.list_orchestrator_agents() == []


async def test_update_orchestrator_agent(db: DatabaseManager, db_path: Path) -> None:
    new_id = await db.create_orchestrator_agent(
        name="old", description="first", agent_type="planner", capabilities="x"
    )
    before = await db.get_orchestrator_agent(agent_id=new_id)
    assert before is not None

    assert await db.update_orchestrator_agent(
        agent_id=new_id,
        name="new",
        description=None,
        agent_type="orchestrator",
        capabilities="plan, delegate",
        default_model="claude-haiku",
    )
    row = check_row("orchestrator_agents", await db.get_orchestrator_agent(agent_id=new_id))
    assert row["name"] == "new"
    assert row["description"] is None
    assert row["agent_type"] == "orchestrator"
    assert row["capabilities"] == "plan, delegate"
    assert row["default_model"] == "claude-haiku"
    assert row["created_at"] == before["created_at"]
    assert row["updated_at"] > before["updated_at"]


async def test_update_orchestrator_agent_changes_only_named_fields(db: DatabaseManager) -> None:
    new_id = await db.create_orchestrator_agent(
        name="keep", description="desc", agent_type="planner", default_model="m"
    )
    assert await db.update_orchestrator_agent(agent_id=new_id, capabilities="new caps")
    row = await db.get_orchestrator_agent(agent_id=new_id)
    assert row is not None
    assert (row["name"], row["description"], row["agent_type"], row["default_model"]) == (
        "keep",
        "desc",
        "planner",
        "m",
    )
    assert row["capabilities"] == "new caps"


async def test_update_returns_true_when_values_do_not_change(
    db: DatabaseManager, definition_id: str, agent_id: str
) -> None:
    """update_* returns False only when the row does not exist."""
    assert await db.update_orchestrator_agent(agent_id=definition_id, name="planner")
    assert await db.update_agent(agent_id=agent_id, status="initializing")
    prompt_id = await db.create_prompt(agent_id=agent_id, prompt_type="adw", prompt_text="p")
    assert await db.update_prompt(prompt_id=prompt_id, status="pending")


async def test_update_missing_rows_returns_false(db: DatabaseManager) -> None:
    missing = str(uuid.uuid4())
    assert await db.update_orchestrator_agent(agent_id=missing, name="x") is False
    assert await db.update_agent(agent_id=missing, status="failed") is False
    assert await db.update_prompt(prompt_id=missing, status="failed") is False
    assert await db.count_rows() == dict.fromkeys(schema.TABLES, 0)


async def test_delete_orchestrator_agent(db: DatabaseManager) -> None:
    keep = await db.create_orchestrator_agent(name="keep", description=None, agent_type="planner")
    gone = await db.create_orchestrator_agent(name="gone", description=None, agent_type="planner")
    assert await db.delete_orchestrator_agent(agent_id=gone) is True
    assert await db.get_orchestrator_agent(agent_id=gone) is None
    assert await db.get_orchestrator_agent(agent_id=keep) is not None
    assert await db.delete_orchestrator_agent(agent_id=gone) is False
    assert await db.delete_orchestrator_agent(agent_id=str(uuid.uuid4())) is False


async def test_deleted_name_can_be_reused(db: DatabaseManager) -> None:
    first = await db.create_orchestrator_agent(name="n", description=None, agent_type="planner")
    assert await db.delete_orchestrator_agent(agent_id=first)
    second = await db.create_orchestrator_agent(name="n", description=None, agent_type="planner")
    assert second != first


async def test_a_taken_name_is_refused_naming_the_field(
    db: DatabaseManager, definition_id: str
) -> None:
    """Both backends name the column of a refused unique key, on insert and
    on update, and write nothing."""
    other = await db.create_orchestrator_agent(name="other", description=None, agent_type="tester")
    before = await db.count_rows()
    for call in (
        lambda: db.create_orchestrator_agent(name="planner", description=None, agent_type="tester"),
        lambda: db.update_orchestrator_agent(agent_id=other, name="planner"),
    ):
        with pytest.raises(manager.IntegrityError) as caught:
            await call()
        assert caught.value.field == "name"
        assert caught.value.constraint == "unique"
        assert caught.value.table == "orchestrator_agents"
        assert "name" in str(caught.value)
    assert await db.count_rows() == before
    assert (await db.get_orchestrator_agent(agent_id=other) or {})["name"] == "other"


# --- agents ----------------------------------------------------------------------


async def test_create_and_get_agent_defaults(
    db: DatabaseManager, db_path: Path, definition_id: str
) -> None:
    before = datetime.now(UTC)
    new_id = await db.create_agent(
        orchestrator_agent_id=definition_id, session_id="feature_Tac_14_Task_8"
    )
    after = datetime.now(UTC)
    assert uuid.UUID(new_id).version == 7  # time-ordered
    row = check_row("agents", await db.get_agent(agent_id=new_id))
    assert row == {
        "id": new_id,
        "orchestrator_agent_id": definition_id,
        "session_id": "feature_Tac_14_Task_8",
        "parent_agent_id": None,
        "status": "initializing",
        "context": None,
        "config": None,
        "started_at": row["started_at"],
        "completed_at": None,
        "cost_usd": 0.0,
        "error_message": None,
    }
    assert isinstance(row["cost_usd"], float)
    assert before <= datetime.fromisoformat(row["started_at"]) <= after


async def test_create_agent_with_every_parameter(
    db: DatabaseManager, db_path: Path, definition_id: str, agent_id: str
) -> None:
    new_id = await db.create_agent(
        orchestrator_agent_id=definition_id,
        session_id="s-1",
        parent_agent_id=agent_id,
        status="planning",
        context={"issue": 14, "labels": ["bug"]},
        config={"model": "claude-sonnet", "temperature": 0.2},
    )
    row = check_row("agents", await db.get_agent(agent_id=new_id))
    assert row["parent_agent_id"] == agent_id
    assert row["status"] == "planning"
    assert row["context"] == {"issue": 14, "labels": ["bug"]}
    assert row["config"] == {"model": "claude-sonnet", "temperature": 0.2}


async def test_get_missing_agent_returns_none(db: DatabaseManager) -> None:
    assert await db.get_agent(agent_id=str(uuid.uuid4())) is None


async def test_list_agents_newest_first_with_limit_and_offset(
    db: DatabaseManager, db_path: Path, definition_id: str
) -> None:
    created = [
        await db.create_agent(orchestrator_agent_id=definition_id, session_id="s") for _ in range(6)
    ]
    newest_first = created[::-1]
    rows = await db.list_agents()
    assert ids(rows) == newest_first
    for row in rows:
        check_row("agents", row)
    assert ids(await db.list_agents(limit=3)) == newest_first[:3]
    assert ids(await db.list_agents(limit=3, offset=2)) == newest_first[2:5]
    assert ids(await db.list_agents(offset=5)) == newest_first[5:]
    assert await db.list_agents(offset=10) == []


async def test_list_agents_filters(db: DatabaseManager) -> None:
    planner = await db.create_orchestrator_agent(
        name="planner", description=None, agent_type="planner"
    )
    builder = await db.create_orchestrator_agent(
        name="builder", description=None, agent_type="builder"
    )
    a1 = await db.create_agent(orchestrator_agent_id=planner, session_id="s1", status="executing")
    a2 = await db.create_agent(orchestrator_agent_id=builder, session_id="s1", status="completed")
    a3 = await db.create_agent(orchestrator_agent_id=planner, session_id="s2", status="completed")
    a4 = await db.create_agent(orchestrator_agent_id=builder, session_id="s2", status="executing")

    assert ids(await db.list_agents(session_id="s1")) == [a2, a1]
    assert ids(await db.list_agents(session_id="s2")) == [a4, a3]
    assert await db.list_agents(session_id="s3") == []
    assert ids(await db.list_agents(orchestrator_agent_id=planner)) == [a3, a1]
    assert ids(await db.list_agents(status="completed")) == [a3, a2]
    assert ids(await db.list_agents(session_id="s2", status="executing")) == [a4]
    assert ids(
        await db.list_agents(session_id="s1", orchestrator_agent_id=builder, status="completed")
    ) == [a2]
    assert (
        await db.list_agents(session_id="s1", orchestrator_agent_id=planner, status="failed") == []
    )
    assert ids(await db.list_agents(status="completed", limit=1, offset=1)) == [a2]


async def test_session_id_is_any_non_empty_string(db: DatabaseManager, definition_id: str) -> None:
    sessions = ["feature_Tac_14_Task_8", "adw-1234abcd", "x", "with space / and ünïcode"]
    for session in sessions:
        new_id = await db.create_agent(orchestrator_agent_id=definition_id, session_id=session)
        assert ids(await db.list_agents(session_id=session)) == [new_id]


async def test_update_agent_every_field(db: DatabaseManager, db_path: Path, agent_id: str) -> None:
    assert await db.update_agent(
        agent_id=agent_id,
        status="failed",
        completed_at=datetime(2026, 3, 1, 10, 30, 15, 123456, tzinfo=UTC),
        cost_usd=1.5,
        error_message="boom",
        context={"step": 3},
        config={"retries": 2},
    )
    row = check_row("agents", await db.get_agent(agent_id=agent_id))
    assert row["status"] == "failed"
    assert row["completed_at"] == "2026-03-01T10:30:15.123456+00:00"
    assert row["cost_usd"] == 1.5
    assert row["error_message"] == "boom"
    assert row["context"] == {"step": 3}
    assert row["config"] == {"retries": 2}


async def test_update_agent_nullable_fields_can_be_cleared(
    db: DatabaseManager, db_path: Path, definition_id: str
) -> None:
    new_id = await db.create_agent(
        orchestrator_agent_id=definition_id, session_id="s", context={"a": 1}, config=[1]
    )
    await db.update_agent(
        agent_id=new_id, error_message="e", completed_at="2026-01-01T00:00:00+00:00"
    )
    assert await db.update_agent(
        agent_id=new_id, error_message=None, completed_at=None, context=None, config=None
    )
    row = check_row("agents", await db.get_agent(agent_id=new_id))
    assert row["error_message"] is None
    assert row["completed_at"] is None
    assert row["context"] is None
    assert row["config"] is None


async def test_update_agent_changes_only_named_fields(
    db: DatabaseManager, definition_id: str
) -> None:
    new_id = await db.create_agent(
        orchestrator_agent_id=definition_id, session_id="s", status="planning", context={"k": "v"}
    )
    before = await db.get_agent(agent_id=new_id)
    assert await db.update_agent(agent_id=new_id, error_message="oops")
    after = await db.get_agent(agent_id=new_id)
    assert after == {**before, "error_message": "oops"}  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2026-01-01T02:00:00+02:00", "2026-01-01T00:00:00.000000+00:00"),
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00.000000+00:00"),
        ("2025-12-31T19:30:00.5-05:00", "2026-01-01T00:30:00.500000+00:00"),
        (
            datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-01T00:00:00.000000+00:00",
        ),
        (datetime(2026, 7, 4, 12, 0, 0, 1, tzinfo=UTC), "2026-07-04T12:00:00.000001+00:00"),
    ],
)
async def test_completed_at_is_stored_in_utc(
    db: DatabaseManager, agent_id: str, given: Any, stored: str
) -> None:
    assert await db.update_agent(agent_id=agent_id, completed_at=given)
    row = await db.get_agent(agent_id=agent_id)
    assert row is not None
    assert row["completed_at"] == stored

    prompt_id = await db.create_prompt(agent_id=agent_id, prompt_type="adw", prompt_text="p")
    assert await db.update_prompt(prompt_id=prompt_id, completed_at=given)
    prompt = await db.get_prompt(prompt_id=prompt_id)
    assert prompt is not None
    assert prompt["completed_at"] == stored


async def test_add_agent_cost_increments(db: DatabaseManager, agent_id: str) -> None:
    assert await db.add_agent_cost(agent_id=agent_id, cost_usd=0.25)
    assert await db.add_agent_cost(agent_id=agent_id, cost_usd=0.5)
    assert await db.add_agent_cost(agent_id=agent_id, cost_usd=0)
    row = await db.get_agent(agent_id=agent_id)
    assert row is not None
    assert row["cost_usd"] == 0.75

    await db.update_agent(agent_id=agent_id, cost_usd=2.0)
    assert await db.add_agent_cost(agent_id=agent_id, cost_usd=1)
    row = await db.get_agent(agent_id=agent_id)
    assert row is not None
    assert row["cost_usd"] == 3.0
    assert isinstance(row["cost_usd"], float)


async def test_add_agent_cost_for_missing_agent_returns_false(db: DatabaseManager) -> None:
    assert await db.add_agent_cost(agent_id=str(uuid.uuid4()), cost_usd=1.0) is False
    assert await db.count_rows() == dict.fromkeys(schema.TABLES, 0)


async def test_add_agent_cost_many_increments_are_all_counted(
    db: DatabaseManager, agent_id: str
) -> None:
    for _ in range(40):
        await db.add_agent_cost(agent_id=agent_id, cost_usd=0.125)
    row = await db.get_agent(agent_id=agent_id)
    assert row is not None
    assert row["cost_usd"] == 5.0


async def test_delete_agent(db: DatabaseManager, definition_id: str, agent_id: str) -> None:
    other = await db.create_agent(orchestrator_agent_id=definition_id, session_id="s")
    assert await db.delete_agent(agent_id=agent_id) is True
    assert await db.get_agent(agent_id=agent_id) is None
    assert await db.get_agent(agent_id=other) is not None
    assert await db.delete_agent(agent_id=agent_id) is False
    assert await db.get_orchestrator_agent(agent_id=definition_id) is not None


# --- prompts ---------------------------------------------------------------------


async def test_create_and_get_prompt_defaults(
    db: DatabaseManager, db_path: Path, agent_id: str
) -> None:
    before = datetime.now(UTC)
    prompt_id = await db.create_prompt(agent_id=agent_id, prompt_type="adw", prompt_text="Plan it")
    after = datetime.now(UTC)
    assert uuid.UUID(prompt_id).version == 7  # time-ordered
    row = check_row("prompts", await db.get_prompt(prompt_id=prompt_id))
    assert row == {
        "id": prompt_id,
        "agent_id": agent_id,
        "prompt_type": "adw",
        "prompt_name": None,
        "prompt_text": "Plan it",
        "response_text": None,
        "status": "pending",
        "model_used": None,
        "tokens_input": 0,
        "tokens_output": 0,
        "cost_usd": 0.0,
        "latency_ms": None,
        "created_at": row["created_at"],
        "completed_at": None,
        "error_message": None,
    }
    assert before <= datetime.fromisoformat(row["created_at"]) <= after


async def test_create_prompt_with_every_parameter(
    db: DatabaseManager, db_path: Path, agent_id: str
) -> None:
    prompt_id = await db.create_prompt(
        agent_id=agent_id,
        prompt_type="tool_call",
        prompt_text="run the tests",
        prompt_name="/test",
        status="streaming",
        model_used="claude-haiku",
    )
    row = check_row("prompts", await db.get_prompt(prompt_id=prompt_id))
    assert row["prompt_type"] == "tool_call"
    assert row["prompt_name"] == "/test"
    assert row["status"] == "streaming"
    assert row["model_used"] == "claude-haiku"


async def test_get_missing_prompt_returns_none(db: DatabaseManager) -> None:
    assert await db.get_prompt(prompt_id=str(uuid.uuid4())) is None


async def test_update_prompt_every_field(db: DatabaseManager, db_path: Path, agent_id: str) -> None:
    prompt_id = await db.create_prompt(agent_id=agent_id, prompt_type="command", prompt_text="go")
    assert await db.update_prompt(
        prompt_id=prompt_id,
        response_text="done: ✓",
        status="completed",
        model_used="claude-sonnet",
        tokens_input=812,
        tokens_output=230,
        cost_usd=0.0061,
        latency_ms=2140,
        completed_at="2026-02-01T08:00:00.000001+00:00",
        error_message="warning only",
    )
    row = check_row("prompts", await db.get_prompt(prompt_id=prompt_id))
    assert row["response_text"] == "done: ✓"
    assert row["status"] == "completed"
    assert row["model_used"] == "claude-sonnet"
    assert (row["tokens_input"], row["tokens_output"]) == (812, 230)
    assert row["cost_usd"] == 0.0061
    assert row["latency_ms"] == 2140
    assert row["completed_at"] == "2026-02-01T08:00:00.000001+00:00"
    assert row["error_message"] == "warning only"
    assert row["prompt_text"] == "go"


async def test_update_prompt_accepts_zero_and_clears_nullable_fields(
    db: DatabaseManager, db_path: Path, agent_id: str
) -> None:
    prompt_id = await db.create_prompt(agent_id=agent_id, prompt_type="adw", prompt_text="p")
    await db.update_prompt(prompt_id=prompt_id, latency_ms=5, response_text="r", model_used="m")
    assert await db.update_prompt(
        prompt_id=prompt_id,
        tokens_input=0,
        tokens_output=0,
        cost_usd=0.0,
        latency_ms=None,
        response_text=None,
        model_used=None,
    )
    row = check_row("prompts", await db.get_prompt(prompt_id=prompt_id))
    assert row["latency_ms"] is None
    assert row["response_text"] is None
    assert row["model_used"] is None
    assert (row["tokens_input"], row["tokens_output"], row["cost_usd"]) == (0, 0, 0.0)


async def test_list_prompts_oldest_first_with_limit_and_offset(
    db: DatabaseManager, db_path: Path, agent_id: str
) -> None:
    created = [
        await db.create_prompt(agent_id=agent_id, prompt_type="followup", prompt_text=f"p{i}")
        for i in range(6)
    ]
    rows = await db.list_prompts()
    assert ids(rows) == created
    for row in rows:
        check_row("prompts", row)
    assert ids(await db.list_prompts(agent_id=agent_id)) == created
    assert ids(await db.list_prompts(limit=2)) == created[:2]
    assert ids(await db.list_prompts(agent_id=agent_id, limit=2, offset=3)) == created[3:5]
    assert ids(await db.list_prompts(offset=4)) == created[4:]
    assert await db.list_prompts(offset=6) == []


async def test_list_prompts_filters(db: DatabaseManager, definition_id: str, agent_id: str) -> None:
    other = await db.create_agent(orchestrator_agent_id=definition_id, session_id="s2")
    p1 = await db.create_prompt(agent_id=agent_id, prompt_type="adw", prompt_text="1")
    p2 = await db.create_prompt(
        agent_id=other, prompt_type="adw", prompt_text="2", status="completed"
    )
    p3 = await db.create_prompt(
        agent_id=agent_id, prompt_type="adw", prompt_text="3", status="completed"
    )
    p4 = await db.create_prompt(agent_id=other, prompt_type="adw", prompt_text="4")

    assert ids(await db.list_prompts(agent_id=agent_id)) == [p1, p3]
    assert ids(await db.list_prompts(agent_id=other)) == [p2, p4]
    assert ids(await db.list_prompts(status="completed")) == [p2, p3]
    assert ids(await db.list_prompts(status="pending")) == [p1, p4]
    assert ids(await db.list_prompts(agent_id=other, status="completed")) == [p2]
    assert await db.list_prompts(status="failed") == []
    assert await db.list_prompts(agent_id=str(uuid.uuid4())) == []


async def test_delete_prompt(db: DatabaseManager, agent_id: str) -> None:
    keep = await db.create_prompt(agent_id=agent_id, prompt_type="adw", prompt_text="keep")
    gone = await db.create_prompt(agent_id=agent_id, prompt_type="adw", prompt_text="gone")
    assert await db.delete_prompt(prompt_id=gone) is True
    assert await db.get_prompt(prompt_id=gone) is None
    assert ids(await db.list_prompts()) == [keep]
    assert await db.delete_prompt(prompt_id=gone) is False
    assert await db.get_agent(agent_id=agent_id) is not None


# --- agent_logs ------------------------------------------------------------------


async def test_create_and_get_agent_logs(db: DatabaseManager, db_path: Path, agent_id: str) -> None:
    before = datetime.now(UTC)
    first = await db.create_agent_log(
        agent_id=agent_id,
        log_level="INFO",
        log_type="milestone",
        message="plan ready",
        details={"steps": 5},
    )
    second = await db.create_agent_log(
        agent_id=agent_id, log_level="ERROR", log_type="error", message="it broke"
    )
    after = datetime.now(UTC)
    assert isinstance(first, int)
    assert isinstance(second, int)
    assert second > first

    rows = await db.get_agent_logs(agent_id=agent_id)
    assert ids(rows) == [first, second]
    for row in rows:
        check_row("agent_logs", row)
    assert rows[0] == {
        "id": first,
        "agent_id": agent_id,
        "log_level": "INFO",
        "log_type": "milestone",
        "message": "plan ready",
        "details": {"steps": 5},
        "created_at": rows[0]["created_at"],
    }
    assert rows[1]["details"] is None
    assert before <= datetime.fromisoformat(rows[0]["created_at"]) <= after


async def test_agent_logs_have_no_update_or_delete(db: DatabaseManager) -> None:
    """Logs are append-only: the API offers no way to change or remove one row."""
    for name in ("update_agent_log", "delete_agent_log", "update_system_log", "delete_system_log"):
        assert not hasattr(db, name)


async def test_get_agent_logs_filters_and_limit(
    db: DatabaseManager, definition_id: str, agent_id: str
) -> None:
    other = await db.create_agent(orchestrator_agent_id=definition_id, session_id="s2")
    made = {}
    for key, level, kind in [
        ("debug", "DEBUG", "performance"),
        ("info", "INFO", "state_change"),
        ("warning", "WARNING", "tool_call"),
        ("error", "ERROR", "error"),
        ("critical", "CRITICAL", "error"),
        ("info2", "INFO", "cost_update"),
    ]:
        made[key] = await db.create_agent_log(
            agent_id=agent_id, log_level=level, log_type=kind, message=key
        )
    foreign = await db.create_agent_log(
        agent_id=other, log_level="INFO", log_type="state_change", message="other agent"
    )

    everything = await db.get_agent_logs(agent_id=agent_id)
    assert ids(everything) == list(made.values())
    assert foreign not in ids(everything)
    # log_level is an exact match, not a minimum severity.
    assert ids(await db.get_agent_logs(agent_id=agent_id, log_level="WARNING")) == [made["warning"]]
    assert ids(await db.get_agent_logs(agent_id=agent_id, log_level="INFO")) == [
        made["info"],
        made["info2"],
    ]
    assert ids(await db.get_agent_logs(agent_id=agent_id, log_type="error")) == [
        made["error"],
        made["critical"],
    ]
    assert ids(await db.get_agent_logs(agent_id=agent_id, log_level="ERROR", log_type="error")) == [
        made["error"]
    ]
    assert await db.get_agent_logs(agent_id=agent_id, log_level="DEBUG", log_type="error") == []
    assert ids(await db.get_agent_logs(agent_id=agent_id, limit=2)) == [
        made["debug"],
        made["info"],
    ]
    assert ids(await db.get_agent_logs(agent_id=other)) == [foreign]
    assert await db.get_agent_logs(agent_id=str(uuid.uuid4())) == []


async def test_list_recent_agent_logs_newest_first(
    db: DatabaseManager, db_path: Path, definition_id: str, agent_id: str
) -> None:
    other = await db.create_agent(orchestrator_agent_id=definition_id, session_id="s2")
    created = [
        await db.create_agent_log(
            agent_id=(agent_id, other)[i % 2],
            log_level="INFO",
            log_type="milestone",
            message=str(i),
        )
        for i in range(7)
    ]
    rows = await db.list_recent_agent_logs()
    assert ids(rows) == created[::-1]
    for row in rows:
        check_row("agent_logs", row)
    assert ids(await db.list_recent_agent_logs(limit=3)) == created[::-1][:3]
    assert ids(await db.list_recent_agent_logs(limit=1)) == [created[-1]]


async def test_list_recent_agent_logs_default_limit_is_100(
    db: DatabaseManager, agent_id: str
) -> None:
    async with db.transaction():
        created = [
            await db.create_agent_log(
                agent_id=agent_id, log_level="DEBUG", log_type="performance", message=str(i)
            )
            for i in range(105)
        ]
    rows = await db.list_recent_agent_logs()
    assert ids(rows) == created[::-1][:100]


# --- system_logs -----------------------------------------------------------------


async def test_create_and_get_system_logs(db: DatabaseManager, db_path: Path) -> None:
    before = datetime.now(UTC)
    first = await db.create_system_log(
        log_level="WARNING",
        component="orchestrator",
        message="slow start",
        details={"seconds": 12.5},
    )
    second = await db.create_system_log(log_level="INFO", component="scheduler", message="tick")
    after = datetime.now(UTC)
    assert isinstance(first, int)
    assert second > first
    rows = await db.get_system_logs()
    assert ids(rows) == [first, second]
    for row in rows:
        check_row("system_logs", row)
    assert rows[0] == {
        "id": first,
        "log_level": "WARNING",
        "component": "orchestrator",
        "message": "slow start",
        "details": {"seconds": 12.5},
        "created_at": rows[0]["created_at"],
    }
    assert rows[1]["details"] is None
    assert before <= datetime.fromisoformat(rows[0]["created_at"]) <= after


async def test_get_system_logs_filters_and_limit(db: DatabaseManager) -> None:
    s1 = await db.create_system_log(log_level="INFO", component="orchestrator", message="1")
    s2 = await db.create_system_log(log_level="ERROR", component="orchestrator", message="2")
    s3 = await db.create_system_log(log_level="INFO", component="scheduler", message="3")
    s4 = await db.create_system_log(log_level="CRITICAL", component="scheduler", message="4")
    s5 = await db.create_system_log(log_level="INFO", component="orchestrator", message="5")

    assert ids(await db.get_system_logs()) == [s1, s2, s3, s4, s5]
    assert ids(await db.get_system_logs(log_level="INFO")) == [s1, s3, s5]
    assert ids(await db.get_system_logs(log_level="ERROR")) == [s2]
    assert ids(await db.get_system_logs(component="scheduler")) == [s3, s4]
    assert ids(await db.get_system_logs(log_level="INFO", component="orchestrator")) == [s1, s5]
    assert ids(await db.get_system_logs(log_level="INFO", limit=2)) == [s1, s3]
    assert ids(await db.get_system_logs(limit=1)) == [s1]
    assert await db.get_system_logs(log_level="DEBUG") == []
    assert await db.get_system_logs(component="nobody") == []


async def test_list_recent_system_logs_newest_first(db: DatabaseManager) -> None:
    created = [
        await db.create_system_log(log_level="INFO", component="c", message=str(i))
        for i in range(5)
    ]
    assert ids(await db.list_recent_system_logs()) == created[::-1]
    assert ids(await db.list_recent_system_logs(limit=2)) == created[::-1][:2]


async def test_list_recent_system_logs_default_limit_is_100(db: DatabaseManager) -> None:
    async with db.transaction():
        created = [
            await db.create_system_log(log_level="DEBUG", component="c", message=str(i))
            for i in range(103)
        ]
    assert ids(await db.list_recent_system_logs()) == created[::-1][:100]


# --- ordering of rows created in the same microsecond -------------------------------


async def test_rows_created_quickly_list_in_creation_order(db: DatabaseManager) -> None:
    """Many rows in a burst (some share a timestamp): every list keeps creation order."""
    async with db.transaction():
        definitions = [
            await db.create_orchestrator_agent(name=f"d{i}", description=None, agent_type="utility")
            for i in range(30)
        ]
        agents = [
            await db.create_agent(orchestrator_agent_id=definitions[0], session_id="burst")
            for _ in range(30)
        ]
        prompts = [
            await db.create_prompt(agent_id=agents[0], prompt_type="adw", prompt_text=str(i))
            for i in range(30)
        ]
        logs = [
            await db.create_agent_log(
                agent_id=agents[0], log_level="INFO", log_type="milestone", message=str(i)
            )
            for i in range(30)
        ]
        system = [
            await db.create_system_log(log_level="INFO", component="c", message=str(i))
            for i in range(30)
        ]
    assert ids(await db.list_orchestrator_agents()) == definitions[::-1]
    assert ids(await db.list_agents(session_id="burst")) == agents[::-1]
    assert ids(await db.list_prompts()) == prompts
    assert ids(await db.get_agent_logs(agent_id=agents[0])) == logs
    assert ids(await db.list_recent_agent_logs()) == logs[::-1]
    assert ids(await db.get_system_logs()) == system
    assert ids(await db.list_recent_system_logs()) == system[::-1]


async def test_same_timestamp_ties_break_on_creation_order(
    db: DatabaseManager, frozen_clock: str
) -> None:
    """With the clock frozen every row shares one timestamp; order must still
    follow creation (UUIDs are random, so ordering by id alone would not)."""
    definitions = [
        await db.create_orchestrator_agent(name=f"d{i}", description=None, agent_type="utility")
        for i in range(20)
    ]
    agents = [
        await db.create_agent(orchestrator_agent_id=definitions[0], session_id="tie")
        for _ in range(20)
    ]
    prompts = [
        await db.create_prompt(agent_id=agents[0], prompt_type="adw", prompt_text=str(i))
        for i in range(20)
    ]
    logs = [
        await db.create_agent_log(
            agent_id=agents[0], log_level="INFO", log_type="milestone", message=str(i)
        )
        for i in range(20)
    ]
    system = [
        await db.create_system_log(log_level="INFO", component="c", message=str(i))
        for i in range(20)
    ]
    rows = await db.list_orchestrator_agents()
    assert {row["created_at"] for row in rows} == {frozen_clock}

    assert ids(rows) == definitions[::-1]
    assert ids(await db.list_orchestrator_agents(limit=5, offset=5)) == definitions[::-1][5:10]
    assert ids(await db.list_agents()) == agents[::-1]
    assert ids(await db.list_agents(limit=3, offset=1)) == agents[::-1][1:4]
    assert ids(await db.list_prompts()) == prompts
    assert ids(await db.list_prompts(limit=3, offset=1)) == prompts[1:4]
    assert ids(await db.get_agent_logs(agent_id=agents[0])) == logs
    assert ids(await db.list_recent_agent_logs(limit=4)) == logs[::-1][:4]
    assert ids(await db.get_system_logs()) == system
    assert ids(await db.list_recent_system_logs(limit=4)) == system[::-1][:4]


# --- cascades --------------------------------------------------------------------


async def test_deleting_a_definition_deletes_its_agents_prompts_logs_chat_and_workflows(
    db: DatabaseManager,
) -> None:
    doomed = await db.create_orchestrator_agent(
        name="doomed", description=None, agent_type="tester"
    )
    kept = await db.create_orchestrator_agent(name="kept", description=None, agent_type="tester")
    parent = await db.create_agent(orchestrator_agent_id=doomed, session_id="s")
    child = await db.create_agent(
        orchestrator_agent_id=doomed, session_id="s", parent_agent_id=parent
    )
    survivor = await db.create_agent(orchestrator_agent_id=kept, session_id="s")
    for agent in (parent, child, survivor):
        await db.create_prompt(agent_id=agent, prompt_type="adw", prompt_text="p")
        await db.create_agent_log(
            agent_id=agent, log_level="INFO", log_type="milestone", message="m"
        )
    await db.create_system_log(log_level="INFO", component="c", message="not tied to agents")
    for definition in (doomed, kept):
        await db.create_chat_message(definition, "user", "orchestrator", "hello")
        await db.start_workflow("adw_plan", "plan", orchestrator_agent_id=definition)

    assert await db.count_rows() == {
        "orchestrator_agents": 2,
        "agents": 3,
        "prompts": 3,
        "agent_logs": 3,
        "system_logs": 1,
        "orchestrator_chat": 2,
        "ai_developer_workflows": 2,
    }
    assert await db.delete_orchestrator_agent(agent_id=doomed)
    assert await db.count_rows() == {
        "orchestrator_agents": 1,
        "agents": 1,
        "prompts": 1,
        "agent_logs": 1,
        "system_logs": 1,
        "orchestrator_chat": 1,
        "ai_developer_workflows": 1,
    }
    assert ids(await db.list_agents()) == [survivor]
    assert [row["agent_id"] for row in await db.list_prompts()] == [survivor]
    assert [row["agent_id"] for row in await db.list_recent_agent_logs()] == [survivor]
    assert await db.get_agent_logs(agent_id=parent) == []


async def test_deleting_an_agent_deletes_its_prompts_and_logs(
    db: DatabaseManager, definition_id: str, agent_id: str
) -> None:
    other = await db.create_agent(orchestrator_agent_id=definition_id, session_id="s")
    for agent in (agent_id, other):
        await db.create_prompt(agent_id=agent, prompt_type="adw", prompt_text="p")
        await db.create_agent_log(
            agent_id=agent, log_level="INFO", log_type="milestone", message="m"
        )
    assert await db.delete_agent(agent_id=agent_id)
    assert await db.list_prompts(agent_id=agent_id) == []
    assert await db.get_agent_logs(agent_id=agent_id) == []
    assert len(await db.list_prompts(agent_id=other)) == 1
    assert len(await db.get_agent_logs(agent_id=other)) == 1


async def test_deleting_a_parent_agent_keeps_children_without_parent(
    db: DatabaseManager, db_path: Path, definition_id: str, agent_id: str
) -> None:
    child = await db.create_agent(
        orchestrator_agent_id=definition_id, session_id="s", parent_agent_id=agent_id
    )
    grandchild = await db.create_agent(
        orchestrator_agent_id=definition_id, session_id="s", parent_agent_id=child
    )
    assert await db.delete_agent(agent_id=agent_id)
    child_row = check_row("agents", await db.get_agent(agent_id=child))
    assert child_row["parent_agent_id"] is None
    grandchild_row = await db.get_agent(agent_id=grandchild)
    assert grandchild_row is not None
    assert grandchild_row["parent_agent_id"] == child


# --- retention -------------------------------------------------------------------


@pytest.mark.backend("sqlite")  # reads or writes the file through raw sqlite3
async def test_cleanup_old_logs_deletes_by_age(
    db: DatabaseManager, db_path: Path, agent_id: str
) -> None:
    fresh_agent_log = await db.create_agent_log(
        agent_id=agent_id, log_level="INFO", log_type="milestone", message="fresh"
    )
    fresh_system_log = await db.create_system_log(log_level="INFO", component="c", message="fresh")
    with sqlite3.connect(db_path) as raw:
        raw.execute("PRAGMA foreign_keys = ON")
        aged: dict[str, int] = {}
        for label, delta in [
            ("a_90d", {"days": 90}),
            ("a_8d", {"days": 8}),
            ("a_6d", {"days": 6}),
            ("a_1h", {"hours": 1}),
        ]:
            cursor = raw.execute(
                "INSERT INTO agent_logs (agent_id, log_level, log_type, message, created_at) "
                "VALUES (?, 'INFO', 'milestone', ?, ?)",
                (agent_id, label, iso_ago(**delta)),
            )
            aged[label] = int(cursor.lastrowid or 0)
        for label, delta in [("s_30d", {"days": 30}), ("s_7d1m", {"days": 7, "minutes": 1})]:
            cursor = raw.execute(
                "INSERT INTO system_logs (log_level, component, message, created_at) "
                "VALUES ('INFO', 'c', ?, ?)",
                (label, iso_ago(**delta)),
            )
            aged[label] = int(cursor.lastrowid or 0)
    raw.close()

    # a_90d, a_8d, s_30d and s_7d1m are older than 7 days.
    assert await db.cleanup_old_logs(days=7) == 4
    agent_logs = ids(await db.get_agent_logs(agent_id=agent_id))
    assert sorted(agent_logs) == sorted([fresh_agent_log, aged["a_6d"], aged["a_1h"]])
    assert ids(await db.get_system_logs()) == [fresh_system_log]
    counts = await db.count_rows()
    assert counts["agents"] == 1
    assert counts["orchestrator_agents"] == 1

    # Nothing else is old enough: a second run deletes nothing.
    assert await db.cleanup_old_logs(days=7) == 0
    # Fractional days: half a day keeps only the rows from the last hour and now.
    assert await db.cleanup_old_logs(days=0.5) == 1
    assert sorted(ids(await db.get_agent_logs(agent_id=agent_id))) == sorted(
        [fresh_agent_log, aged["a_1h"]]
    )


@pytest.mark.backend("sqlite")  # reads or writes the file through raw sqlite3
async def test_cleanup_old_logs_returns_total_over_both_tables(
    db: DatabaseManager, db_path: Path, agent_id: str
) -> None:
    with sqlite3.connect(db_path) as raw:
        for _ in range(4):
            raw.execute(
                "INSERT INTO agent_logs (agent_id, log_level, log_type, message, created_at) "
                "VALUES (?, 'DEBUG', 'performance', 'old', ?)",
                (agent_id, iso_ago(days=40)),
            )
        for _ in range(3):
            raw.execute(
                "INSERT INTO system_logs (log_level, component, message, created_at) "
                "VALUES ('DEBUG', 'c', 'old', ?)",
                (iso_ago(days=40),),
            )
    raw.close()
    assert (await db.count_rows())["agent_logs"] == 4
    assert await db.cleanup_old_logs(days=30) == 7
    counts = await db.count_rows()
    assert counts["agent_logs"] == 0
    assert counts["system_logs"] == 0


@pytest.mark.backend("sqlite")  # reads or writes the file through raw sqlite3
async def test_cleanup_old_logs_inside_a_failed_transaction_deletes_nothing(
    db: DatabaseManager, db_path: Path, agent_id: str
) -> None:
    with sqlite3.connect(db_path) as raw:
        raw.execute(
            "INSERT INTO system_logs (log_level, component, message, created_at) "
            "VALUES ('INFO', 'c', 'old', ?)",
            (iso_ago(days=10),),
        )
    raw.close()
    with pytest.raises(RuntimeError):
        async with db.transaction():
            assert await db.cleanup_old_logs(days=1) == 1
            assert await db.get_system_logs() == []
            raise RuntimeError("undo")
    assert [row["message"] for row in await db.get_system_logs()] == ["old"]
    assert await db.cleanup_old_logs(days=1) == 1
    assert await db.get_system_logs() == []


async def test_cleanup_old_logs_by_age_through_the_api(
    db: DatabaseManager, agent_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old rows written through the store itself (its clock set back), so this
    runs on every backend."""
    monkeypatch.setattr(manager, "utc_now", lambda: iso_ago(days=40))
    await db.create_agent_log(
        agent_id=agent_id, log_level="INFO", log_type="milestone", message="old"
    )
    await db.create_system_log(log_level="INFO", component="c", message="old")
    monkeypatch.undo()
    await db.create_agent_log(
        agent_id=agent_id, log_level="INFO", log_type="milestone", message="new"
    )

    assert await db.count_old_logs(days=30) == {"agent_logs": 1, "system_logs": 1}
    assert await db.cleanup_old_logs(days=30) == 2
    assert [row["message"] for row in await db.get_agent_logs(agent_id=agent_id)] == ["new"]
    assert await db.get_system_logs() == []


async def test_cleanup_old_logs_on_empty_store(db: DatabaseManager) -> None:
    assert await db.cleanup_old_logs(days=1) == 0


# --- count_rows and schema_version -------------------------------------------------


async def test_count_rows(db: DatabaseManager, agent_id: str) -> None:
    counts = await db.count_rows()
    assert list(counts) == list(schema.TABLES)
    assert counts == {
        "orchestrator_agents": 1,
        "agents": 1,
        "prompts": 0,
        "agent_logs": 0,
        "system_logs": 0,
        "orchestrator_chat": 0,
        "ai_developer_workflows": 0,
    }
    await db.create_prompt(agent_id=agent_id, prompt_type="adw", prompt_text="p")
    await db.create_agent_log(
        agent_id=agent_id, log_level="INFO", log_type="milestone", message="m"
    )
    await db.create_agent_log(
        agent_id=agent_id, log_level="INFO", log_type="milestone", message="m"
    )
    await db.create_system_log(log_level="INFO", component="c", message="m")
    assert await db.count_rows() == {
        "orchestrator_agents": 1,
        "agents": 1,
        "prompts": 1,
        "agent_logs": 2,
        "system_logs": 1,
        "orchestrator_chat": 0,
        "ai_developer_workflows": 0,
    }


@pytest.mark.backend("sqlite")  # reads or writes the file through raw sqlite3
async def test_schema_version(db: DatabaseManager, db_path: Path) -> None:
    version = await db.schema_version()
    assert version == schema.LATEST_VERSION
    assert version >= 1
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == version
    raw.close()


async def test_data_survives_reopening(db_path: Path) -> None:
    async with DatabaseManager(db_path) as first:
        definition = await first.create_orchestrator_agent(
            name="persisted", description=None, agent_type="planner"
        )
        agent = await first.create_agent(
            orchestrator_agent_id=definition, session_id="s", context={"k": [1, 2]}
        )
    async with DatabaseManager(db_path) as second:
        row = await second.get_agent(agent_id=agent)
        assert row is not None
        assert row["context"] == {"k": [1, 2]}
        assert await second.schema_version() == schema.LATEST_VERSION


# --- transactions ----------------------------------------------------------------


async def test_transaction_commits_every_write(db: DatabaseManager, definition_id: str) -> None:
    async with db.transaction():
        agent = await db.create_agent(orchestrator_agent_id=definition_id, session_id="tx")
        prompt = await db.create_prompt(agent_id=agent, prompt_type="adw", prompt_text="p")
        await db.update_agent(agent_id=agent, status="completed")
        await db.add_agent_cost(agent_id=agent, cost_usd=0.5)
        await db.create_system_log(log_level="INFO", component="c", message="m")
    row = await db.get_agent(agent_id=agent)
    assert row is not None
    assert (row["status"], row["cost_usd"]) == ("completed", 0.5)
    assert await db.get_prompt(prompt_id=prompt) is not None
    assert (await db.count_rows())["system_logs"] == 1


async def test_transaction_that_raises_leaves_nothing(
    db: DatabaseManager, definition_id: str, agent_id: str
) -> None:
    before = await db.count_rows()
    agent_before = await db.get_agent(agent_id=agent_id)
    created: dict[str, Any] = {}
    with pytest.raises(RuntimeError, match="abort"):
        async with db.transaction():
            created["agent"] = await db.create_agent(
                orchestrator_agent_id=definition_id, session_id="tx"
            )
            created["prompt"] = await db.create_prompt(
                agent_id=agent_id, prompt_type="adw", prompt_text="p"
            )
            created["log"] = await db.create_agent_log(
                agent_id=agent_id, log_level="INFO", log_type="milestone", message="m"
            )
            await db.create_system_log(log_level="INFO", component="c", message="m")
            await db.update_agent(agent_id=agent_id, status="failed", error_message="x")
            await db.add_agent_cost(agent_id=agent_id, cost_usd=3.0)
            await db.update_orchestrator_agent(agent_id=definition_id, name="renamed")
            raise RuntimeError("abort")
    assert await db.count_rows() == before
    assert await db.get_agent(agent_id=created["agent"]) is None
    assert await db.get_prompt(prompt_id=created["prompt"]) is None
    assert await db.get_agent(agent_id=agent_id) == agent_before
    definition = await db.get_orchestrator_agent(agent_id=definition_id)
    assert definition is not None
    assert definition["name"] == "planner"


async def test_transaction_rolls_back_when_a_write_is_refused(
    db: DatabaseManager, definition_id: str
) -> None:
    before = await db.count_rows()
    with pytest.raises(manager.IntegrityError):
        async with db.transaction():
            await db.create_orchestrator_agent(name="fresh", description=None, agent_type="planner")
            await db.create_orchestrator_agent(
                name="planner", description=None, agent_type="planner"
            )
    assert await db.count_rows() == before
    assert [row["name"] for row in await db.list_orchestrator_agents()] == ["planner"]


async def test_reads_inside_a_transaction_see_its_own_writes(
    db: DatabaseManager, definition_id: str
) -> None:
    async with db.transaction():
        agent = await db.create_agent(orchestrator_agent_id=definition_id, session_id="tx")
        row = await db.get_agent(agent_id=agent)
        assert row is not None
        assert row["status"] == "initializing"
        await db.update_agent(agent_id=agent, status="executing")
        row = await db.get_agent(agent_id=agent)
        assert row is not None
        assert row["status"] == "executing"
        assert ids(await db.list_agents(session_id="tx")) == [agent]
        log = await db.create_agent_log(
            agent_id=agent, log_level="INFO", log_type="state_change", message="m"
        )
        assert ids(await db.get_agent_logs(agent_id=agent)) == [log]
        assert (await db.count_rows())["agents"] == 1
    assert (await db.count_rows())["agent_logs"] == 1


async def test_nested_transaction_is_a_savepoint(db: DatabaseManager, definition_id: str) -> None:
    async with db.transaction():
        outer_before = await db.create_agent(orchestrator_agent_id=definition_id, session_id="o1")
        with pytest.raises(RuntimeError):
            async with db.transaction():
                inner = await db.create_agent(orchestrator_agent_id=definition_id, session_id="i")
                assert await db.get_agent(agent_id=inner) is not None
                raise RuntimeError("inner fails")
        assert await db.get_agent(agent_id=inner) is None
        async with db.transaction():
            inner_ok = await db.create_agent(orchestrator_agent_id=definition_id, session_id="i2")
        outer_after = await db.create_agent(orchestrator_agent_id=definition_id, session_id="o2")
    assert await db.get_agent(agent_id=outer_before) is not None
    assert await db.get_agent(agent_id=inner) is None
    assert await db.get_agent(agent_id=inner_ok) is not None
    assert await db.get_agent(agent_id=outer_after) is not None
    assert (await db.count_rows())["agents"] == 3


async def test_outer_rollback_undoes_a_released_savepoint(
    db: DatabaseManager, definition_id: str
) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction():
            async with db.transaction():
                inner = await db.create_agent(orchestrator_agent_id=definition_id, session_id="i")
                async with db.transaction():
                    deepest = await db.create_prompt(
                        agent_id=inner, prompt_type="adw", prompt_text="p"
                    )
            raise RuntimeError("outer fails")
    assert await db.get_agent(agent_id=inner) is None
    assert await db.get_prompt(prompt_id=deepest) is None
    assert (await db.count_rows())["agents"] == 0


async def test_store_is_usable_after_a_rolled_back_transaction(
    db: DatabaseManager, definition_id: str
) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction():
            await db.create_agent(orchestrator_agent_id=definition_id, session_id="gone")
            raise RuntimeError
    agent = await db.create_agent(orchestrator_agent_id=definition_id, session_id="kept")
    async with db.transaction():
        await db.update_agent(agent_id=agent, status="completed")
    row = await db.get_agent(agent_id=agent)
    assert row is not None
    assert row["status"] == "completed"


@pytest.mark.backend("sqlite")  # reads or writes the file through raw sqlite3
async def test_writes_outside_a_transaction_commit_at_once(
    db: DatabaseManager, db_path: Path, definition_id: str
) -> None:
    """Another connection (stdlib sqlite3) sees each write as soon as it returns."""
    agent = await db.create_agent(orchestrator_agent_id=definition_id, session_id="s")
    await db.update_agent(agent_id=agent, status="executing")
    with sqlite3.connect(db_path) as raw:
        status = raw.execute("SELECT status FROM agents WHERE id = ?", (agent,)).fetchone()
    raw.close()
    assert status == ("executing",)


# --- the API's shape ---------------------------------------------------------------

SIGNATURES = {
    "__init__": (
        "db_path=None, *, schema_path=None, busy_timeout=5.0, synchronous='NORMAL', pool=None, "
        "default_database=None, read_mmap_bytes=268435456, retention=None, read_only=False"
    ),
    "connect": "",
    "close": "",
    "transaction": "",
    "create_orchestrator_agent": (
        "name, description, agent_type, capabilities=None, default_model=None"
    ),
    "get_orchestrator_agent": "agent_id",
    "list_orchestrator_agents": "*, limit=None, offset=0",
    "update_orchestrator_agent": "agent_id, **fields",
    "delete_orchestrator_agent": "agent_id",
    "create_agent": (
        "orchestrator_agent_id, session_id, parent_agent_id=None, status='initializing', "
        "context=None, config=None"
    ),
    "get_agent": "agent_id",
    "list_agents": (
        "session_id=None, *, orchestrator_agent_id=None, status=None, limit=None, offset=0"
    ),
    "update_agent": "agent_id, **fields",
    "add_agent_cost": "agent_id, cost_usd",
    "delete_agent": "agent_id",
    "create_prompt": (
        "agent_id, prompt_type, prompt_text, prompt_name=None, status='pending', model_used=None"
    ),
    "get_prompt": "prompt_id",
    "list_prompts": "agent_id=None, *, status=None, limit=None, offset=0, session_id=None",
    "update_prompt": "prompt_id, **fields",
    "delete_prompt": "prompt_id",
    "create_agent_log": "agent_id, log_level, log_type, message, details=None",
    "get_agent_logs": "agent_id, log_level=None, *, log_type=None, limit=None",
    "list_recent_agent_logs": "limit=100",
    "create_system_log": "log_level, component, message, details=None",
    "get_system_logs": "log_level=None, component=None, *, limit=None",
    "list_recent_system_logs": "limit=100",
    "create_chat_message": (
        "orchestrator_agent_id, sender_type, receiver_type, message, *, summary=None, "
        "agent_id=None, metadata=None"
    ),
    "get_chat_message": "message_id",
    "list_chat_messages": "orchestrator_agent_id=None, *, agent_id=None, limit=None, offset=0",
    "update_chat_message": "message_id, **fields",
    "delete_chat_message": "message_id",
    "start_workflow": (
        "adw_name, workflow_type, *, adw_id=None, description=None, total_steps=0, "
        "orchestrator_agent_id=None, input_data=None, metadata=None"
    ),
    "update_workflow_step": (
        "workflow_id, current_step, *, completed_steps=None, status='in_progress'"
    ),
    "end_workflow": (
        "workflow_id, status, *, error_message=None, error_step=None, output_data=None"
    ),
    "update_workflow": "workflow_id, **fields",
    "get_workflow": "workflow_id",
    "get_workflow_by_adw_id": "adw_id",
    "list_workflows": (
        "*, status=None, workflow_type=None, orchestrator_agent_id=None, limit=None, offset=0"
    ),
    "delete_workflow": "workflow_id",
    "cleanup_old_logs": "days=30",
    "prune": "policy, *, dry_run=False, vacuum=False",
    "schema_version": "",
    "count_rows": "",
    "create_agent_logs": "rows",
    "create_system_logs": "rows",
    "count_old_logs": "days",
    "checkpoint": "",
    "storage": "",
    "iter_rows": "table, *, batch_size=500",
    "session_summaries": "*, limit=None",
    "session_summary": "session_id",
    "session_tree": "session_id",
    "agent_totals": "agent_id",
    "agents_with_totals": "agents",
    "cost_totals": "by=None, *, since=None, session_id=None, limit=None",
    "log_bounds": "",
    "list_logs": (
        "*, agent_id=None, min_level=None, log_type=None, component=None, since=None, "
        "limit=None, up_to=None"
    ),
    "logs_after": (
        "cursor, *, agent_id=None, min_level=None, log_type=None, component=None, limit=500"
    ),
    "find_agents_by_prefix": "prefix, *, limit=2",
    "find_agents_by_suffix": "suffix, *, limit=2",
    "find_workflows_by_prefix": "prefix, *, limit=2",
    "find_workflows_by_suffix": "suffix, *, limit=2",
    "log_agent_event": "agent_id, log_type, message, metadata=None, log_level='INFO'",
    "get_logs_by_type": "log_type, limit=100",
    "get_agent_logs_by_type": "agent_id, log_type, limit=100",
    "get_recent_logs": "limit=100",
    "query": "sql, params=()",
}


def render_parameters(function: Any) -> str:
    parts = []
    star_done = False
    for parameter in list(inspect.signature(function).parameters.values())[1:]:  # skip self
        if parameter.kind is parameter.VAR_KEYWORD:
            parts.append(f"**{parameter.name}")
            continue
        if parameter.kind is parameter.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        if parameter.default is parameter.empty:
            parts.append(parameter.name)
        else:
            parts.append(f"{parameter.name}={parameter.default!r}")
    return ", ".join(parts)


@pytest.mark.parametrize("name", list(SIGNATURES))
def test_method_signatures_match_the_contract(name: str) -> None:
    method = getattr(DatabaseManager, name)
    assert render_parameters(method) == SIGNATURES[name]
    if name == "iter_rows":
        assert inspect.isasyncgenfunction(method)
    elif name not in ("__init__", "transaction"):
        assert inspect.iscoroutinefunction(method), f"{name} must be async"


def public_names() -> list[str]:
    return [name for name in vars(DatabaseManager) if not name.startswith("_")]


def test_the_contract_lists_every_public_method() -> None:
    methods = {name for name in public_names() if callable(getattr(DatabaseManager, name))}
    assert methods == set(SIGNATURES) - {"__init__"}


@pytest.mark.parametrize("name", public_names())
def test_every_public_method_and_property_has_a_docstring(name: str) -> None:
    assert inspect.getdoc(getattr(DatabaseManager, name)), f"DatabaseManager.{name}"


async def test_async_context_manager(db_path: Path) -> None:
    async with DatabaseManager(db_path) as db:
        assert isinstance(db, DatabaseManager)
        definition = await db.create_orchestrator_agent(
            name="n", description=None, agent_type="planner"
        )
    with pytest.raises(manager.DatabaseError, match="connect"):
        await db.get_orchestrator_agent(agent_id=definition)
    await db.connect()
    try:
        assert await db.get_orchestrator_agent(agent_id=definition) is not None
    finally:
        await db.close()


def test_db_path_from_environment_and_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_DB_PATH", str(tmp_path / "env.db"))
    assert DatabaseManager().db_path == tmp_path / "env.db"
    assert DatabaseManager(tmp_path / "arg.db").db_path == tmp_path / "arg.db"
    assert DatabaseManager(str(tmp_path / "s.db")).db_path == tmp_path / "s.db"
    assert not (tmp_path / "env.db").exists()


async def test_parent_folders_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c" / "store.db"
    async with DatabaseManager(path) as db:
        assert await db.count_rows() == dict.fromkeys(schema.TABLES, 0)
    assert path.is_file()
