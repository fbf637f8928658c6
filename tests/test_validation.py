"""Input validation and integrity errors: bad input is refused with an error
that names the table and field, and a refused call writes nothing."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import sqlite3
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator_store import schema
from orchestrator_store.manager import (
    DatabaseError,
    DatabaseManager,
    IntegrityError,
    SchemaError,
    ValidationError,
)
from orchestrator_store.models import (
    MAX_COST_USD,
    MAX_JSON_INTEGER,
    MAX_LATENCY_MS,
    MAX_TOKENS,
    MIN_JSON_INTEGER,
)

Call = Callable[[], Awaitable[Any]]


async def assert_rejected(db: DatabaseManager, call: Call, field: str) -> ValidationError:
    """``call`` raises ValidationError naming ``field`` and leaves every table as it was."""
    before = await db.count_rows()
    with pytest.raises(ValidationError) as caught:
        await call()
    exc = caught.value
    assert isinstance(exc, ValueError)
    assert isinstance(exc, DatabaseError)
    assert field in str(exc)
    assert exc.table is not None
    assert exc.table in str(exc)
    assert exc.field == field
    assert await db.count_rows() == before
    return exc


@pytest.fixture
async def prompt_id(db: DatabaseManager, agent_id: str) -> str:
    return await db.create_prompt(agent_id=agent_id, prompt_type="adw", prompt_text="p")


# --- the error hierarchy -----------------------------------------------------------


def test_error_hierarchy() -> None:
    for cls in (ValidationError, IntegrityError, SchemaError):
        assert issubclass(cls, DatabaseError)
    assert issubclass(DatabaseError, Exception)
    assert issubclass(ValidationError, ValueError)
    assert not issubclass(IntegrityError, ValidationError)


# --- enumerations ------------------------------------------------------------------

try:  # the cause of an IntegrityError is the driver's own
    import asyncpg

    DRIVER_INTEGRITY_ERRORS: tuple[type[Exception], ...] = (
        sqlite3.IntegrityError,
        asyncpg.IntegrityConstraintViolationError,
    )
except ImportError:  # a project that only uses SQLite
    DRIVER_INTEGRITY_ERRORS = (sqlite3.IntegrityError,)

BAD_ENUM_VALUES = ["bogus", "", "PLANNER", " planner", None, 1]


@pytest.mark.parametrize("value", BAD_ENUM_VALUES)
async def test_agent_type_is_checked(db: DatabaseManager, definition_id: str, value: Any) -> None:
    await assert_rejected(
        db,
        lambda: db.create_orchestrator_agent(name="x", description=None, agent_type=value),
        "agent_type",
    )
    await assert_rejected(
        db,
        lambda: db.update_orchestrator_agent(agent_id=definition_id, agent_type=value),
        "agent_type",
    )
    row = await db.get_orchestrator_agent(agent_id=definition_id)
    assert row is not None
    assert row["agent_type"] == "planner"


@pytest.mark.parametrize("value", ["bogus", "", "Completed", "running", None, 0])
async def test_agent_status_is_checked(
    db: DatabaseManager, definition_id: str, agent_id: str, value: Any
) -> None:
    await assert_rejected(
        db,
        lambda: db.create_agent(orchestrator_agent_id=definition_id, session_id="s", status=value),
        "status",
    )
    await assert_rejected(db, lambda: db.update_agent(agent_id=agent_id, status=value), "status")
    if value is not None:
        await assert_rejected(db, lambda: db.list_agents(status=value), "status")
    row = await db.get_agent(agent_id=agent_id)
    assert row is not None
    assert row["status"] == "initializing"


@pytest.mark.parametrize("value", ["bogus", "", "ADW", "prompt", None])
async def test_prompt_type_is_checked(db: DatabaseManager, agent_id: str, value: Any) -> None:
    await assert_rejected(
        db,
        lambda: db.create_prompt(agent_id=agent_id, prompt_type=value, prompt_text="p"),
        "prompt_type",
    )


@pytest.mark.parametrize("value", ["bogus", "", "PENDING", "executing", None])
async def test_prompt_status_is_checked(
    db: DatabaseManager, agent_id: str, prompt_id: str, value: Any
) -> None:
    await assert_rejected(
        db,
        lambda: db.create_prompt(
            agent_id=agent_id, prompt_type="adw", prompt_text="p", status=value
        ),
        "status",
    )
    await assert_rejected(db, lambda: db.update_prompt(prompt_id=prompt_id, status=value), "status")
    if value is not None:
        await assert_rejected(db, lambda: db.list_prompts(status=value), "status")


@pytest.mark.parametrize("value", ["bogus", "", "info", "Warning", "WARN", "FATAL", None])
async def test_log_level_is_checked(db: DatabaseManager, agent_id: str, value: Any) -> None:
    await assert_rejected(
        db,
        lambda: db.create_agent_log(
            agent_id=agent_id, log_level=value, log_type="milestone", message="m"
        ),
        "log_level",
    )
    await assert_rejected(
        db,
        lambda: db.create_system_log(log_level=value, component="c", message="m"),
        "log_level",
    )
    if value is not None:
        await assert_rejected(
            db, lambda: db.get_agent_logs(agent_id=agent_id, log_level=value), "log_level"
        )
        await assert_rejected(db, lambda: db.get_system_logs(log_level=value), "log_level")


@pytest.mark.parametrize("value", ["bogus", "", "Milestone", "state-change", None])
async def test_log_type_is_checked(db: DatabaseManager, agent_id: str, value: Any) -> None:
    await assert_rejected(
        db,
        lambda: db.create_agent_log(
            agent_id=agent_id, log_level="INFO", log_type=value, message="m"
        ),
        "log_type",
    )
    if value is not None:
        await assert_rejected(
            db, lambda: db.get_agent_logs(agent_id=agent_id, log_type=value), "log_type"
        )


# --- UUIDs -------------------------------------------------------------------------

BAD_IDS = ["../x", "", "not-a-uuid", "1234", "g" * 32, None, 42]


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_lookups_validate_ids(db: DatabaseManager, agent_id: str, bad: Any) -> None:
    """A malformed id is a ValidationError, never a plain ``None`` / ``False``."""
    for call in (
        lambda: db.get_orchestrator_agent(agent_id=bad),
        lambda: db.get_agent(agent_id=bad),
        lambda: db.get_prompt(prompt_id=bad),
        lambda: db.update_orchestrator_agent(agent_id=bad, name="x"),
        lambda: db.update_agent(agent_id=bad, status="failed"),
        lambda: db.update_prompt(prompt_id=bad, status="failed"),
        lambda: db.delete_orchestrator_agent(agent_id=bad),
        lambda: db.delete_agent(agent_id=bad),
        lambda: db.delete_prompt(prompt_id=bad),
    ):
        await assert_rejected(db, call, "id")


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_reference_ids_are_validated(
    db: DatabaseManager, definition_id: str, agent_id: str, bad: Any
) -> None:
    await assert_rejected(
        db,
        lambda: db.create_agent(orchestrator_agent_id=bad, session_id="s"),
        "orchestrator_agent_id",
    )
    if bad is not None:  # None means "no parent"
        await assert_rejected(
            db,
            lambda: db.create_agent(
                orchestrator_agent_id=definition_id, session_id="s", parent_agent_id=bad
            ),
            "parent_agent_id",
        )
        await assert_rejected(
            db, lambda: db.list_agents(orchestrator_agent_id=bad), "orchestrator_agent_id"
        )
        await assert_rejected(db, lambda: db.list_prompts(agent_id=bad), "agent_id")
    await assert_rejected(
        db, lambda: db.create_prompt(agent_id=bad, prompt_type="adw", prompt_text="p"), "agent_id"
    )
    await assert_rejected(
        db,
        lambda: db.create_agent_log(
            agent_id=bad, log_level="INFO", log_type="milestone", message="m"
        ),
        "agent_id",
    )
    await assert_rejected(db, lambda: db.get_agent_logs(agent_id=bad), "agent_id")
    await assert_rejected(db, lambda: db.add_agent_cost(agent_id=bad, cost_usd=1.0), "agent_id")


async def test_get_agent_with_path_like_id_raises_instead_of_returning_none(
    db: DatabaseManager,
) -> None:
    with pytest.raises(ValidationError) as caught:
        await db.get_agent("../x")
    assert caught.value.table == "agents"


async def test_uppercase_uuids_are_normalised_and_found(
    db: DatabaseManager, definition_id: str, agent_id: str
) -> None:
    upper_definition = definition_id.upper()
    upper_agent = agent_id.upper()
    assert upper_agent != agent_id

    row = await db.get_agent(agent_id=upper_agent)
    assert row is not None
    assert row["id"] == agent_id
    definition = await db.get_orchestrator_agent(agent_id=upper_definition)
    assert definition is not None
    assert definition["id"] == definition_id

    child = await db.create_agent(
        orchestrator_agent_id=upper_definition, session_id="s", parent_agent_id=upper_agent
    )
    child_row = await db.get_agent(agent_id=child)
    assert child_row is not None
    assert child_row["orchestrator_agent_id"] == definition_id
    assert child_row["parent_agent_id"] == agent_id
    assert len(await db.list_agents(orchestrator_agent_id=upper_definition)) == 2

    assert await db.update_agent(agent_id=upper_agent, status="executing")
    assert await db.add_agent_cost(agent_id=upper_agent, cost_usd=1.0)
    prompt = await db.create_prompt(agent_id=upper_agent, prompt_type="adw", prompt_text="p")
    assert [p["id"] for p in await db.list_prompts(agent_id=upper_agent)] == [prompt]
    assert await db.update_prompt(prompt_id=prompt.upper(), status="completed")
    prompt_row = await db.get_prompt(prompt_id=prompt.upper())
    assert prompt_row is not None
    assert prompt_row["agent_id"] == agent_id
    await db.create_agent_log(
        agent_id=upper_agent, log_level="INFO", log_type="milestone", message="m"
    )
    assert len(await db.get_agent_logs(agent_id=upper_agent)) == 1
    assert await db.delete_prompt(prompt_id=prompt.upper())
    assert await db.delete_agent(agent_id=child.upper())
    assert await db.delete_orchestrator_agent(agent_id=upper_definition)
    assert await db.count_rows() == dict.fromkeys(schema.TABLES, 0)


# --- text fields -------------------------------------------------------------------

BLANK = ["", " ", "\t\n", None, 7]


@pytest.mark.parametrize("value", BLANK)
async def test_names_must_be_non_empty_text(
    db: DatabaseManager, definition_id: str, value: Any
) -> None:
    await assert_rejected(
        db,
        lambda: db.create_orchestrator_agent(name=value, description=None, agent_type="planner"),
        "name",
    )
    await assert_rejected(
        db, lambda: db.update_orchestrator_agent(agent_id=definition_id, name=value), "name"
    )


@pytest.mark.parametrize("value", BLANK)
async def test_session_id_must_be_non_empty_text(
    db: DatabaseManager, definition_id: str, value: Any
) -> None:
    await assert_rejected(
        db,
        lambda: db.create_agent(orchestrator_agent_id=definition_id, session_id=value),
        "session_id",
    )
    if value is not None:
        await assert_rejected(db, lambda: db.list_agents(session_id=value), "session_id")


@pytest.mark.parametrize("value", BLANK)
async def test_messages_prompt_text_and_component_must_be_non_empty(
    db: DatabaseManager, agent_id: str, value: Any
) -> None:
    await assert_rejected(
        db,
        lambda: db.create_prompt(agent_id=agent_id, prompt_type="adw", prompt_text=value),
        "prompt_text",
    )
    await assert_rejected(
        db,
        lambda: db.create_agent_log(
            agent_id=agent_id, log_level="INFO", log_type="milestone", message=value
        ),
        "message",
    )
    await assert_rejected(
        db, lambda: db.create_system_log(log_level="INFO", component="c", message=value), "message"
    )
    await assert_rejected(
        db,
        lambda: db.create_system_log(log_level="INFO", component=value, message="m"),
        "component",
    )
    if value is not None:
        await assert_rejected(db, lambda: db.get_system_logs(component=value), "component")


@pytest.mark.parametrize("value", ["a\x00b", "\ud800"])
async def test_text_must_be_portable(
    db: DatabaseManager, agent_id: str, prompt_id: str, value: str
) -> None:
    """NUL characters and lone surrogates cannot be stored faithfully everywhere."""
    await assert_rejected(
        db,
        lambda: db.create_orchestrator_agent(name=value, description=None, agent_type="planner"),
        "name",
    )
    await assert_rejected(
        db,
        lambda: db.create_orchestrator_agent(name="n", description=value, agent_type="planner"),
        "description",
    )
    await assert_rejected(
        db, lambda: db.create_system_log(log_level="INFO", component="c", message=value), "message"
    )
    await assert_rejected(
        db, lambda: db.update_prompt(prompt_id=prompt_id, response_text=value), "response_text"
    )
    await assert_rejected(
        db, lambda: db.update_agent(agent_id=agent_id, error_message=value), "error_message"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("description", 5),
        ("capabilities", ["a"]),
        ("default_model", b"model"),
    ],
)
async def test_optional_text_fields_must_be_text(
    db: DatabaseManager, field: str, value: Any
) -> None:
    arguments = {"name": "n", "description": None, "agent_type": "planner", field: value}
    await assert_rejected(db, lambda: db.create_orchestrator_agent(**arguments), field)


# --- numbers -----------------------------------------------------------------------

NEGATIVE_OR_WRONG_INTS = [-1, True, False, 1.5, "5", 2**63, None]


@pytest.mark.parametrize("field", ["tokens_input", "tokens_output"])
@pytest.mark.parametrize("value", NEGATIVE_OR_WRONG_INTS)
async def test_token_counts_are_non_negative_integers(
    db: DatabaseManager, prompt_id: str, field: str, value: Any
) -> None:
    before = await db.get_prompt(prompt_id=prompt_id)
    await assert_rejected(
        db, lambda: db.update_prompt(prompt_id=prompt_id, **{field: value}), field
    )
    assert await db.get_prompt(prompt_id=prompt_id) == before


@pytest.mark.parametrize("value", [-1, True, 2.5, "10", 2**63])
async def test_latency_is_a_non_negative_integer(
    db: DatabaseManager, prompt_id: str, value: Any
) -> None:
    await assert_rejected(
        db, lambda: db.update_prompt(prompt_id=prompt_id, latency_ms=value), "latency_ms"
    )


BAD_COSTS = [-0.01, -1, True, math.nan, math.inf, -math.inf, "1.0", None]


@pytest.mark.parametrize("value", BAD_COSTS)
async def test_costs_are_finite_non_negative_numbers(
    db: DatabaseManager, agent_id: str, prompt_id: str, value: Any
) -> None:
    await assert_rejected(
        db, lambda: db.update_prompt(prompt_id=prompt_id, cost_usd=value), "cost_usd"
    )
    await assert_rejected(
        db, lambda: db.update_agent(agent_id=agent_id, cost_usd=value), "cost_usd"
    )
    await assert_rejected(
        db, lambda: db.add_agent_cost(agent_id=agent_id, cost_usd=value), "cost_usd"
    )
    row = await db.get_agent(agent_id=agent_id)
    assert row is not None
    assert row["cost_usd"] == 0.0


# --- bounds: what one row may hold, so that every sum over rows stays valid ----------

ABOVE_THE_BOUNDS = [
    ("tokens_input", MAX_TOKENS + 1),
    ("tokens_output", MAX_TOKENS + 1),
    ("tokens_input", 2**63 - 1),
    ("latency_ms", MAX_LATENCY_MS + 1),
    ("cost_usd", math.nextafter(MAX_COST_USD, math.inf)),
    ("cost_usd", 1e308),
]


@pytest.mark.parametrize(("field", "value"), ABOVE_THE_BOUNDS)
async def test_prompt_values_above_their_bound_are_refused(
    db: DatabaseManager, prompt_id: str, field: str, value: Any
) -> None:
    before = await db.get_prompt(prompt_id=prompt_id)
    exc = await assert_rejected(
        db, lambda: db.update_prompt(prompt_id=prompt_id, **{field: value}), field
    )
    assert "less than or equal to" in str(exc)
    assert await db.get_prompt(prompt_id=prompt_id) == before


@pytest.mark.parametrize("value", [math.nextafter(MAX_COST_USD, math.inf), 1e308])
async def test_agent_costs_above_the_bound_are_refused(
    db: DatabaseManager, agent_id: str, value: float
) -> None:
    await assert_rejected(
        db, lambda: db.update_agent(agent_id=agent_id, cost_usd=value), "cost_usd"
    )
    await assert_rejected(
        db, lambda: db.add_agent_cost(agent_id=agent_id, cost_usd=value), "cost_usd"
    )
    row = await db.get_agent(agent_id=agent_id)
    assert row is not None
    assert row["cost_usd"] == 0.0


async def test_values_at_their_bound_are_stored(
    db: DatabaseManager, agent_id: str, prompt_id: str
) -> None:
    maxima = {
        "tokens_input": MAX_TOKENS,
        "tokens_output": MAX_TOKENS,
        "latency_ms": MAX_LATENCY_MS,
        "cost_usd": MAX_COST_USD,
    }
    assert await db.update_prompt(prompt_id=prompt_id, **maxima)
    row = await db.get_prompt(prompt_id=prompt_id)
    assert row is not None
    assert {field: row[field] for field in maxima} == maxima
    assert await db.update_agent(agent_id=agent_id, cost_usd=MAX_COST_USD)
    agent = await db.get_agent(agent_id=agent_id)
    assert agent is not None
    assert agent["cost_usd"] == MAX_COST_USD


async def assert_reports_work(db: DatabaseManager) -> list[dict[str, Any]]:
    """Every aggregate the store offers answers, in valid JSON (no Infinity)."""
    rows = [*await db.session_summaries(), *await db.list_agents()]
    for by in (None, "session", "model", "agent_type", "day"):
        rows += await db.cost_totals(by)
    json.dumps(rows, allow_nan=False)
    return rows


async def test_adding_huge_costs_twice_never_stores_infinity(
    db: DatabaseManager, agent_id: str
) -> None:
    """The reported sequence: ``add_agent_cost(a, 1e308)`` twice stored ``inf``
    on SQLite (and failed with "value out of range" on PostgreSQL)."""
    for _ in range(2):
        await assert_rejected(db, lambda: db.add_agent_cost(agent_id, 1e308), "cost_usd")
    row = await db.get_agent(agent_id=agent_id)
    assert row is not None
    assert row["cost_usd"] == 0.0
    await assert_reports_work(db)


async def test_add_agent_cost_refuses_an_increment_past_the_bound(
    db: DatabaseManager, agent_id: str
) -> None:
    assert await db.add_agent_cost(agent_id, MAX_COST_USD - 1.0)
    exc = await assert_rejected(db, lambda: db.add_agent_cost(agent_id, 2.0), "cost_usd")
    assert "MAX_COST_USD" in str(exc)
    row = await db.get_agent(agent_id=agent_id)
    assert row is not None
    assert row["cost_usd"] == MAX_COST_USD - 1.0
    assert await db.add_agent_cost(agent_id, 1.0)  # reaching the bound exactly is fine
    await assert_rejected(db, lambda: db.add_agent_cost(agent_id, 1.0), "cost_usd")
    row = await db.get_agent(agent_id=agent_id)
    assert row is not None
    assert row["cost_usd"] == MAX_COST_USD
    # A missing agent is still False, not an error, even when its total is in doubt.
    assert await db.add_agent_cost(str(uuid.uuid4()), 1.0) is False
    await assert_reports_work(db)


async def test_concurrent_increments_stop_exactly_at_the_bound(
    db: DatabaseManager, agent_id: str
) -> None:
    """The bound is checked in the UPDATE itself: increments racing each other
    can neither overshoot it together nor be lost."""
    assert await db.update_agent(agent_id, cost_usd=MAX_COST_USD - 10.0)
    results = await asyncio.gather(
        *(db.add_agent_cost(agent_id, 1.0) for _ in range(25)), return_exceptions=True
    )
    refused = [result for result in results if result is not True]
    assert len(refused) == 15
    for error in refused:
        assert isinstance(error, ValidationError)
        assert error.field == "cost_usd"
    row = await db.get_agent(agent_id=agent_id)
    assert row is not None
    assert row["cost_usd"] == MAX_COST_USD


async def test_token_sums_cannot_overflow_the_reports(db: DatabaseManager, agent_id: str) -> None:
    """The reported sequence: two prompts of ``tokens_input=2**63 - 1`` made
    ``session_summaries`` and ``cost_totals`` fail with "integer overflow" on
    SQLite from then on. Now they are refused, and prompts at every maximum
    still sum correctly in every report."""
    prompts = [
        await db.create_prompt(agent_id, "adw", f"prompt {n}", model_used="m") for n in range(2)
    ]
    for prompt in prompts:
        update = functools.partial(db.update_prompt, prompt, tokens_input=2**63 - 1)
        await assert_rejected(db, update, "tokens_input")
    await assert_reports_work(db)
    for prompt in prompts:
        assert await db.update_prompt(
            prompt,
            tokens_input=MAX_TOKENS,
            tokens_output=MAX_TOKENS,
            cost_usd=MAX_COST_USD,
            latency_ms=MAX_LATENCY_MS,
        )
    assert await db.add_agent_cost(agent_id, MAX_COST_USD)  # its own cost: the third
    (session,) = await db.session_summaries()
    assert (session["tokens_input"], session["tokens_output"]) == (2 * MAX_TOKENS, 2 * MAX_TOKENS)
    assert session["cost_usd"] == 3 * MAX_COST_USD
    for by in (None, "session", "model", "agent_type", "day"):
        groups = await db.cost_totals(by)
        tokens = sum(group["tokens_input"] for group in groups)
        assert (tokens, sum(group["cost_usd"] for group in groups)) == (
            2 * MAX_TOKENS,
            3 * MAX_COST_USD,
        )
    await assert_reports_work(db)
    # Past 2**63 nano-dollars (9.2e9 dollars) in one sum: still no failure.
    for n in range(12):
        prompt = await db.create_prompt(agent_id, "adw", f"dear {n}", model_used="m")
        assert await db.update_prompt(prompt, cost_usd=MAX_COST_USD)
    (total,) = await db.cost_totals()
    assert total["cost_usd"] == pytest.approx(15 * MAX_COST_USD)
    (session,) = await db.session_summaries()
    assert session["cost_usd"] == pytest.approx(15 * MAX_COST_USD)
    await assert_reports_work(db)


@pytest.mark.parametrize("value", [0, -1, True, 1.0, "10"])
async def test_limit_must_be_a_positive_integer(
    db: DatabaseManager, agent_id: str, value: Any
) -> None:
    for call in (
        lambda: db.list_orchestrator_agents(limit=value),
        lambda: db.list_agents(limit=value),
        lambda: db.list_prompts(limit=value),
        lambda: db.get_agent_logs(agent_id=agent_id, limit=value),
        lambda: db.get_system_logs(limit=value),
        lambda: db.list_recent_agent_logs(limit=value),
        lambda: db.list_recent_system_logs(limit=value),
    ):
        await assert_rejected(db, call, "limit")


@pytest.mark.parametrize("value", [-1, -100, True, 1.0, None])
async def test_offset_must_be_a_non_negative_integer(db: DatabaseManager, value: Any) -> None:
    for call in (
        lambda: db.list_orchestrator_agents(offset=value),
        lambda: db.list_agents(offset=value),
        lambda: db.list_prompts(offset=value),
    ):
        await assert_rejected(db, call, "offset")


@pytest.mark.parametrize("value", [-1, -0.5, math.nan, math.inf, True, "7", None])
async def test_cleanup_days_is_validated(db: DatabaseManager, agent_id: str, value: Any) -> None:
    await db.create_agent_log(
        agent_id=agent_id, log_level="INFO", log_type="milestone", message="m"
    )
    before = await db.count_rows()
    with pytest.raises(ValidationError) as caught:
        await db.cleanup_old_logs(days=value)
    assert "days" in str(caught.value)
    assert caught.value.field == "days"
    assert await db.count_rows() == before


@pytest.mark.parametrize("value", [-1, math.nan, math.inf, True, "7", None, 10**400])
async def test_count_old_logs_days_is_validated(db: DatabaseManager, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        await db.count_old_logs(days=value)
    assert caught.value.field == "days"
    assert "logs.days" in str(caught.value)


@pytest.mark.parametrize("days", [1e6, 1e300, sys.float_info.max, 10**9, 2**63])
async def test_more_days_than_since_year_one_match_nothing(
    db: DatabaseManager, agent_id: str, days: float
) -> None:
    """``count_old_logs(1e6)`` and ``cleanup_old_logs(1e300)`` raised
    OverflowError: the cutoff is now the earliest representable time, and no
    log is older than that."""
    await db.create_agent_log(
        agent_id=agent_id, log_type="milestone", message="m", log_level="INFO"
    )
    await db.create_system_log(log_level="INFO", component="c", message="m")
    before = await db.count_rows()
    assert await db.count_old_logs(days) == {"agent_logs": 0, "system_logs": 0}
    assert await db.cleanup_old_logs(days) == 0
    assert await db.count_rows() == before


# --- timestamps --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T00:00:00",  # naive: ambiguous
        datetime(2026, 1, 1, 0, 0),  # naive datetime
        "yesterday",
        "",
        1767225600,
        "2026-13-01T00:00:00+00:00",
    ],
)
async def test_completed_at_must_be_an_aware_timestamp(
    db: DatabaseManager, agent_id: str, prompt_id: str, value: Any
) -> None:
    await assert_rejected(
        db, lambda: db.update_agent(agent_id=agent_id, completed_at=value), "completed_at"
    )
    await assert_rejected(
        db, lambda: db.update_prompt(prompt_id=prompt_id, completed_at=value), "completed_at"
    )
    row = await db.get_agent(agent_id=agent_id)
    assert row is not None
    assert row["completed_at"] is None


# --- update fields -----------------------------------------------------------------


async def test_unknown_update_fields_are_rejected_by_name(
    db: DatabaseManager, definition_id: str, agent_id: str, prompt_id: str
) -> None:
    await assert_rejected(
        db, lambda: db.update_orchestrator_agent(agent_id=definition_id, colour="red"), "colour"
    )
    await assert_rejected(
        db,
        lambda: db.update_orchestrator_agent(agent_id=definition_id, created_at="x"),
        "created_at",
    )
    await assert_rejected(db, lambda: db.update_agent(agent_id=agent_id, name="x"), "name")
    await assert_rejected(
        db, lambda: db.update_agent(agent_id=agent_id, session_id="other"), "session_id"
    )
    await assert_rejected(
        db,
        lambda: db.update_agent(agent_id=agent_id, started_at="2026-01-01T00:00:00+00:00"),
        "started_at",
    )
    await assert_rejected(
        db, lambda: db.update_prompt(prompt_id=prompt_id, prompt_text="new"), "prompt_text"
    )
    await assert_rejected(db, lambda: db.update_prompt(prompt_id=prompt_id, tokens=5), "tokens")


async def test_a_rejected_update_changes_nothing_even_with_valid_fields(
    db: DatabaseManager, agent_id: str, prompt_id: str
) -> None:
    agent_before = await db.get_agent(agent_id=agent_id)
    prompt_before = await db.get_prompt(prompt_id=prompt_id)
    await assert_rejected(
        db,
        lambda: db.update_agent(agent_id=agent_id, status="completed", bogus_field=1),
        "bogus_field",
    )
    await assert_rejected(
        db,
        lambda: db.update_prompt(
            prompt_id=prompt_id, status="completed", tokens_input=10, latency_ms=-5
        ),
        "latency_ms",
    )
    assert await db.get_agent(agent_id=agent_id) == agent_before
    assert await db.get_prompt(prompt_id=prompt_id) == prompt_before


async def test_empty_updates_are_rejected(
    db: DatabaseManager, definition_id: str, agent_id: str, prompt_id: str
) -> None:
    for call, table in (
        (lambda: db.update_orchestrator_agent(agent_id=definition_id), "orchestrator_agents"),
        (lambda: db.update_agent(agent_id=agent_id), "agents"),
        (lambda: db.update_prompt(prompt_id=prompt_id), "prompts"),
    ):
        before = await db.count_rows()
        with pytest.raises(ValidationError) as caught:
            await call()
        assert caught.value.table == table
        assert table in str(caught.value)
        assert await db.count_rows() == before
    row = await db.get_orchestrator_agent(agent_id=definition_id)
    assert row is not None
    assert row["updated_at"] == row["created_at"]


@pytest.mark.parametrize(
    ("method", "field"),
    [
        ("update_orchestrator_agent", "name"),
        ("update_orchestrator_agent", "agent_type"),
        ("update_agent", "status"),
        ("update_agent", "cost_usd"),
        ("update_prompt", "status"),
        ("update_prompt", "tokens_input"),
        ("update_prompt", "tokens_output"),
        ("update_prompt", "cost_usd"),
    ],
)
async def test_not_null_fields_cannot_be_set_to_none(
    db: DatabaseManager,
    definition_id: str,
    agent_id: str,
    prompt_id: str,
    method: str,
    field: str,
) -> None:
    row_id = {
        "update_orchestrator_agent": ("agent_id", definition_id),
        "update_agent": ("agent_id", agent_id),
        "update_prompt": ("prompt_id", prompt_id),
    }[method]
    update = getattr(db, method)
    await assert_rejected(db, lambda: update(**{row_id[0]: row_id[1], field: None}), field)


# --- JSON values -------------------------------------------------------------------


class Opaque:
    pass


CYCLIC: list[Any] = []
CYCLIC.append(CYCLIC)


BAD_JSON = [
    math.nan,
    {"x": math.inf},
    [1, -math.inf],
    {"nested": {"deeper": [math.nan]}},
    {1: "int key"},
    {(1, 2): "tuple key"},
    {None: "none key"},
    (1, 2),
    {"t": (1, 2)},
    {1, 2},
    frozenset({"a"}),
    Opaque(),
    {"obj": Opaque()},
    b"bytes",
    datetime(2026, 1, 1, tzinfo=UTC),
    uuid.uuid4(),
    "nul\x00inside",
    {"key": "nul\x00value"},
    {"nul\x00key": 1},
    ["lone \ud800 surrogate"],
    # integers beyond 64 bits: 10**5000 is past Python's int-to-str limit (ValueError)
    {"n": 10**5000},
    [MAX_JSON_INTEGER + 1],
    {"n": [MIN_JSON_INTEGER - 1]},
    {10**5000: "huge key"},
    # nesting past MAX_JSON_DEPTH, and cycles (RecursionError in the encoder)
    functools.reduce(lambda inner, _: {"k": inner}, range(5000), "leaf"),
    CYCLIC,
    {"set": {1, 2}},
    [1e308, math.inf],
]


@pytest.mark.parametrize("value", BAD_JSON)
async def test_json_values_must_be_portable(
    db: DatabaseManager, definition_id: str, agent_id: str, value: Any
) -> None:
    await assert_rejected(
        db,
        lambda: db.create_agent(orchestrator_agent_id=definition_id, session_id="s", context=value),
        "context",
    )
    await assert_rejected(
        db,
        lambda: db.create_agent(orchestrator_agent_id=definition_id, session_id="s", config=value),
        "config",
    )
    await assert_rejected(db, lambda: db.update_agent(agent_id=agent_id, context=value), "context")
    await assert_rejected(db, lambda: db.update_agent(agent_id=agent_id, config=value), "config")
    await assert_rejected(
        db,
        lambda: db.create_agent_log(
            agent_id=agent_id, log_level="INFO", log_type="milestone", message="m", details=value
        ),
        "details",
    )
    await assert_rejected(
        db,
        lambda: db.create_system_log(log_level="INFO", component="c", message="m", details=value),
        "details",
    )
    row = await db.get_agent(agent_id=agent_id)
    assert row is not None
    assert (row["context"], row["config"]) == (None, None)


GOOD_JSON = [
    {},
    [],
    {"a": {}},
    {"a": []},
    0,
    -1,
    2**62,
    1.5,
    0.1,
    -0.0,
    True,
    False,
    "",
    "null",
    "text",
    [None],
    {"none": None},
    [1, "two", 3.0, True, None, {"k": [[]]}],
    {"unicode": "héllo wörld ✓ 🤖 日本語 עברית", "ключ": "значение", "emoji 🔑": ["😀"]},
    {"escapes": 'quote " backslash \\ newline \n tab \t', "ctrl": "\x01\x1f"},
    {"deep": {"er": {"and": {"deeper": [1, [2, [3, [4, {"end": True}]]]]}}}},
    {"order": {"z": 1, "a": 2, "m": 3}},
    MAX_JSON_INTEGER,
    MIN_JSON_INTEGER,
    # floats from 1e16 up: PostgreSQL's JSONB printed these as integers
    1e16,
    -1.5e300,
    sys.float_info.max,
    5e-324,
    {"big": [1e20, 123456789012345680000.0, -2.5e17], "small": 1e-7},
]


def same_json(left: Any, right: Any, *, text_exact: bool = True) -> bool:
    """Equal and of the same JSON types all the way down (``False`` is not ``0``).

    ``text_exact=False`` is JSONB's equality (PostgreSQL): it keeps values, not
    text, so object keys come back in its own order and -0.0 as 0.0."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        if text_exact and list(left) != list(right):
            return False
        return left.keys() == right.keys() and all(
            same_json(left[k], right[k], text_exact=text_exact) for k in left
        )
    if isinstance(left, list):
        return len(left) == len(right) and all(
            same_json(a, b, text_exact=text_exact) for a, b in zip(left, right, strict=True)
        )
    if isinstance(left, float) and left == 0.0 and text_exact:
        return math.copysign(1, left) == math.copysign(1, right)
    return bool(left == right)


@pytest.mark.parametrize("value", GOOD_JSON, ids=repr)
async def test_json_round_trip_is_exact(
    db: DatabaseManager, definition_id: str, agent_id: str, value: Any
) -> None:
    same = functools.partial(same_json, text_exact=db.backend_name == "sqlite")
    new_agent = await db.create_agent(
        orchestrator_agent_id=definition_id, session_id="s", context=value, config=value
    )
    row = await db.get_agent(agent_id=new_agent)
    assert row is not None
    assert same(row["context"], value)
    assert same(row["config"], value)

    assert await db.update_agent(agent_id=agent_id, context=value)
    row = await db.get_agent(agent_id=agent_id)
    assert row is not None
    assert same(row["context"], value)

    log_id = await db.create_agent_log(
        agent_id=agent_id, log_level="INFO", log_type="milestone", message="m", details=value
    )
    logs = await db.get_agent_logs(agent_id=agent_id)
    assert [log["id"] for log in logs] == [log_id]
    assert same(logs[0]["details"], value)

    await db.create_system_log(log_level="INFO", component="c", message="m", details=value)
    (system,) = await db.get_system_logs()
    assert same(system["details"], value)


async def test_none_stays_none_and_empty_object_stays_empty(
    db: DatabaseManager, definition_id: str, agent_id: str
) -> None:
    empty = await db.create_agent(
        orchestrator_agent_id=definition_id, session_id="s", context={}, config=[]
    )
    row = await db.get_agent(agent_id=empty)
    assert row is not None
    assert row["context"] == {}
    assert isinstance(row["context"], dict)
    assert row["config"] == []

    none = await db.create_agent(orchestrator_agent_id=definition_id, session_id="s")
    row = await db.get_agent(agent_id=none)
    assert row is not None
    assert row["context"] is None
    assert row["config"] is None

    await db.create_agent_log(
        agent_id=agent_id, log_level="INFO", log_type="milestone", message="m", details={}
    )
    await db.create_agent_log(
        agent_id=agent_id, log_level="INFO", log_type="milestone", message="m", details=None
    )
    assert [log["details"] for log in await db.get_agent_logs(agent_id=agent_id)] == [{}, None]


async def test_one_megabyte_message_and_details(db: DatabaseManager, agent_id: str) -> None:
    big_text = ("0123456789abcdef" * 65536)[:-1] + "é"  # 1 MiB of characters
    assert len(big_text) == 1 << 20
    big_details = {"blob": "x" * (1 << 20), "items": list(range(1000)), "unicode": "✓" * 1000}

    log_id = await db.create_agent_log(
        agent_id=agent_id,
        log_level="DEBUG",
        log_type="tool_call",
        message=big_text,
        details=big_details,
    )
    (log,) = await db.get_agent_logs(agent_id=agent_id)
    assert log["id"] == log_id
    assert log["message"] == big_text
    assert log["details"] == big_details

    await db.create_system_log(
        log_level="INFO", component="c", message=big_text, details=big_details
    )
    (system,) = await db.get_system_logs()
    assert system["message"] == big_text
    assert system["details"] == big_details

    prompt = await db.create_prompt(agent_id=agent_id, prompt_type="adw", prompt_text=big_text)
    await db.update_prompt(prompt_id=prompt, response_text=big_text)
    row = await db.get_prompt(prompt_id=prompt)
    assert row is not None
    assert row["prompt_text"] == big_text
    assert row["response_text"] == big_text

    await db.update_agent(agent_id=agent_id, context=big_details)
    agent = await db.get_agent(agent_id=agent_id)
    assert agent is not None
    assert agent["context"] == big_details


async def test_text_round_trips_exactly(db: DatabaseManager, agent_id: str) -> None:
    message = "  leading and trailing spaces kept  \n second line ✓ 🤖 \x7f"
    await db.create_system_log(log_level="INFO", component=" comp ", message=message)
    (row,) = await db.get_system_logs(component=" comp ")
    assert row["message"] == message
    assert row["component"] == " comp "


# --- integrity errors --------------------------------------------------------------


async def test_duplicate_orchestrator_agent_name(db: DatabaseManager, definition_id: str) -> None:
    before = await db.count_rows()
    with pytest.raises(IntegrityError) as caught:
        await db.create_orchestrator_agent(
            name="planner", description="again", agent_type="builder"
        )
    exc = caught.value
    assert exc.constraint == "unique"
    assert "name" in str(exc)
    assert "orchestrator_agents" in str(exc)
    assert exc.table == "orchestrator_agents"
    assert isinstance(exc, DatabaseError)
    assert not isinstance(exc, ValidationError)
    assert not isinstance(exc, sqlite3.Error)
    assert isinstance(exc.__cause__, DRIVER_INTEGRITY_ERRORS)
    assert await db.count_rows() == before


async def test_renaming_to_an_existing_name_is_refused(
    db: DatabaseManager, definition_id: str
) -> None:
    other = await db.create_orchestrator_agent(
        name="builder", description=None, agent_type="builder"
    )
    with pytest.raises(IntegrityError) as caught:
        await db.update_orchestrator_agent(agent_id=other, name="planner")
    assert caught.value.constraint == "unique"
    assert "name" in str(caught.value)
    assert isinstance(caught.value.__cause__, DRIVER_INTEGRITY_ERRORS)
    row = await db.get_orchestrator_agent(agent_id=other)
    assert row is not None
    assert row["name"] == "builder"


async def test_create_agent_with_unknown_orchestrator_agent(db: DatabaseManager) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(IntegrityError) as caught:
        await db.create_agent(orchestrator_agent_id=missing, session_id="s")
    exc = caught.value
    assert exc.constraint == "foreign_key"
    assert exc.table == "agents"
    assert exc.field == "orchestrator_agent_id"
    assert "orchestrator_agent_id" in str(exc)
    assert "parent_agent_id" not in str(exc)
    assert await db.count_rows() == dict.fromkeys(schema.TABLES, 0)


async def test_create_agent_with_unknown_parent(db: DatabaseManager, definition_id: str) -> None:
    before = await db.count_rows()
    with pytest.raises(IntegrityError) as caught:
        await db.create_agent(
            orchestrator_agent_id=definition_id, session_id="s", parent_agent_id=str(uuid.uuid4())
        )
    exc = caught.value
    assert exc.constraint == "foreign_key"
    assert exc.table == "agents"
    assert exc.field == "parent_agent_id"
    assert "parent_agent_id" in str(exc)
    assert "orchestrator_agent_id" not in str(exc)
    assert await db.count_rows() == before


async def test_create_prompt_with_unknown_agent(db: DatabaseManager, agent_id: str) -> None:
    before = await db.count_rows()
    with pytest.raises(IntegrityError) as caught:
        await db.create_prompt(agent_id=str(uuid.uuid4()), prompt_type="adw", prompt_text="p")
    exc = caught.value
    assert exc.constraint == "foreign_key"
    assert exc.table == "prompts"
    assert exc.field == "agent_id"
    assert "agent_id" in str(exc)
    assert await db.count_rows() == before


async def test_create_agent_log_with_unknown_agent(db: DatabaseManager, agent_id: str) -> None:
    before = await db.count_rows()
    with pytest.raises(IntegrityError) as caught:
        await db.create_agent_log(
            agent_id=str(uuid.uuid4()), log_level="INFO", log_type="milestone", message="m"
        )
    exc = caught.value
    assert exc.constraint == "foreign_key"
    assert exc.table == "agent_logs"
    assert exc.field == "agent_id"
    assert "agent_id" in str(exc)
    assert await db.count_rows() == before


async def test_foreign_key_errors_keep_the_driver_exception_as_cause(
    db: DatabaseManager, definition_id: str
) -> None:
    """The contract: driver exceptions never leak, the original stays as ``__cause__``."""
    calls: list[Call] = [
        lambda: db.create_agent(orchestrator_agent_id=str(uuid.uuid4()), session_id="s"),
        lambda: db.create_agent(
            orchestrator_agent_id=definition_id, session_id="s", parent_agent_id=str(uuid.uuid4())
        ),
        lambda: db.create_prompt(agent_id=str(uuid.uuid4()), prompt_type="adw", prompt_text="p"),
        lambda: db.create_agent_log(
            agent_id=str(uuid.uuid4()), log_level="INFO", log_type="milestone", message="m"
        ),
    ]
    for call in calls:
        with pytest.raises(IntegrityError) as caught:
            await call()
        assert not isinstance(caught.value, sqlite3.Error)
        assert isinstance(caught.value.__cause__, DRIVER_INTEGRITY_ERRORS), repr(
            caught.value.__cause__
        )


async def test_integrity_error_inside_a_transaction_can_be_handled(
    db: DatabaseManager, definition_id: str
) -> None:
    """A refused write inside transaction() does not spoil the writes around it."""
    async with db.transaction():
        first = await db.create_agent(orchestrator_agent_id=definition_id, session_id="s")
        with pytest.raises(IntegrityError):
            await db.create_orchestrator_agent(
                name="planner", description=None, agent_type="planner"
            )
        second = await db.create_agent(orchestrator_agent_id=definition_id, session_id="s")
    assert await db.get_agent(agent_id=first) is not None
    assert await db.get_agent(agent_id=second) is not None
    assert (await db.count_rows())["orchestrator_agents"] == 1


async def test_deeply_nested_json_is_rejected_cleanly(
    db: DatabaseManager, definition_id: str
) -> None:
    """Nesting far beyond what any backend stores is a ValidationError, not a
    RecursionError from the encoder."""
    value: Any = "leaf"
    for _ in range(5000):
        value = [value]
    await assert_rejected(
        db,
        lambda: db.create_agent(orchestrator_agent_id=definition_id, session_id="s", context=value),
        "context",
    )


# --- constructor arguments ---------------------------------------------------------


@pytest.mark.parametrize("db_path", ["", "   ", ":memory:", "file:x.db?mode=memory", 42])
def test_db_path_must_be_a_file_path(db_path: Any) -> None:
    with pytest.raises(ValidationError, match="db_path"):
        DatabaseManager(db_path)


@pytest.mark.parametrize("busy_timeout", [-1, -0.5, 3601, True, "5", None])
def test_busy_timeout_must_be_a_sensible_number_of_seconds(
    tmp_path: Any, busy_timeout: Any
) -> None:
    with pytest.raises(ValidationError, match="busy_timeout") as caught:
        DatabaseManager(tmp_path / "x.db", busy_timeout=busy_timeout)
    assert caught.value.field == "busy_timeout"
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("synchronous", ["SOMETIMES", "", "NORMAL; DROP TABLE agents", None])
def test_synchronous_must_be_a_sqlite_level(tmp_path: Any, synchronous: Any) -> None:
    with pytest.raises(ValidationError, match="synchronous") as caught:
        DatabaseManager(tmp_path / "x.db", synchronous=synchronous)
    assert caught.value.field == "synchronous"
