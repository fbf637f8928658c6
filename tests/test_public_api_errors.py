"""A scan of the public API: every argument of every public method, given
hostile values one at a time (the others valid), either works or raises a
``DatabaseError``; never an ``OverflowError``, ``ValueError``, ``TypeError``
or ``RecursionError`` from inside the store.

The values are the ones that broke the store before: numbers past what a
float, a timedelta or a 64-bit column holds, integers past Python's int-to-str
digit limit, non-finite floats, NUL and lone surrogates, objects that are not
JSON, cycles and nesting deeper than any encoder recurses, datetimes at the
edges of their range.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator_store.manager import DatabaseError, DatabaseManager
from orchestrator_store.models import RetentionPolicy


class BadRepr:
    """An object whose repr fails: error messages must not depend on it."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _cyclic() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def _nested(depth: int, wrap: Callable[[Any], Any]) -> Any:
    return functools.reduce(lambda inner, _: wrap(inner), range(depth), "leaf")


HUGE = 10**5000  # past Python's int-to-str limit (4300 digits)

HOSTILE: list[Any] = [
    None,
    True,
    -1,
    2**63,
    -(2**63) - 1,
    HUGE,
    -HUGE,
    1e308,
    sys.float_info.max,
    math.inf,
    -math.inf,
    math.nan,
    -0.0,
    5e-324,
    1j,
    Decimal("1e400"),
    Decimal("nan"),
    "",
    "   ",
    "a\x00b",
    "\ud800",
    "x" * 5000,
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    b"bytes",
    {1, 2},
    frozenset({"a"}),
    (1, 2),
    [],
    {},
    {"k": HUGE},
    {"k": 2**64},
    {"k": math.nan},
    {HUGE: "key"},
    {1: 2},
    [HUGE],
    _cyclic(),
    _nested(5000, lambda inner: [inner]),
    _nested(5000, lambda inner: {"k": inner}),
    object(),
    BadRepr(),
    datetime.min,
    datetime.max,
    datetime.min.replace(tzinfo=UTC),
    datetime.max.replace(tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
    datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
    timedelta.max,
    uuid.UUID(int=0),
]


def _label(value: Any) -> str:
    try:
        return repr(value)[:60]
    except Exception:
        return f"<{type(value).__name__}>"


Call = Callable[..., Any]


def _valid_arguments(ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per method: keyword arguments that make a valid call."""
    missing = str(uuid.uuid4())  # deletes of a row that does not exist: nothing goes
    return {
        "create_orchestrator_agent": {
            "name": "scan",
            "description": None,
            "agent_type": "builder",
            "capabilities": None,
            "default_model": None,
        },
        "get_orchestrator_agent": {"agent_id": ids["definition"]},
        "list_orchestrator_agents": {"limit": 5, "offset": 0},
        "update_orchestrator_agent": {"agent_id": ids["definition"], "description": "d"},
        "delete_orchestrator_agent": {"agent_id": missing},
        "create_agent": {
            "orchestrator_agent_id": ids["definition"],
            "session_id": "s",
            "parent_agent_id": None,
            "status": "executing",
            "context": {"a": 1},
            "config": None,
        },
        "get_agent": {"agent_id": ids["agent"]},
        "list_agents": {
            "session_id": "s",
            "orchestrator_agent_id": ids["definition"],
            "status": "executing",
            "limit": 5,
            "offset": 0,
        },
        "update_agent": {"agent_id": ids["agent"], "error_message": "e"},
        "add_agent_cost": {"agent_id": ids["agent"], "cost_usd": 0.5},
        "delete_agent": {"agent_id": missing},
        "create_prompt": {
            "agent_id": ids["agent"],
            "prompt_type": "adw",
            "prompt_text": "p",
            "prompt_name": None,
            "status": "pending",
            "model_used": "m",
        },
        "get_prompt": {"prompt_id": ids["prompt"]},
        "list_prompts": {"agent_id": ids["agent"], "status": "pending", "limit": 5, "offset": 0},
        "update_prompt": {"prompt_id": ids["prompt"], "tokens_input": 1},
        "delete_prompt": {"prompt_id": missing},
        "create_agent_log": {
            "agent_id": ids["agent"],
            "log_level": "INFO",
            "log_type": "milestone",
            "message": "m",
            "details": None,
        },
        "create_agent_logs": {
            "rows": [{"agent_id": ids["agent"], "log_type": "milestone", "message": "m"}]
        },
        "get_agent_logs": {
            "agent_id": ids["agent"],
            "log_level": "INFO",
            "log_type": "milestone",
            "limit": 5,
        },
        "list_recent_agent_logs": {"limit": 5},
        "create_chat_message": {
            "orchestrator_agent_id": ids["definition"],
            "sender_type": "user",
            "receiver_type": "orchestrator",
            "message": "m",
            "summary": None,
            "agent_id": ids["agent"],
            "metadata": {"a": 1},
        },
        "get_chat_message": {"message_id": ids["chat"]},
        "list_chat_messages": {
            "orchestrator_agent_id": ids["definition"],
            "agent_id": ids["agent"],
            "limit": 5,
            "offset": 0,
        },
        "update_chat_message": {"message_id": ids["chat"], "summary": "s"},
        "delete_chat_message": {"message_id": missing},
        "start_workflow": {
            "adw_name": "adw_plan",
            "workflow_type": "plan",
            "adw_id": None,
            "description": None,
            "total_steps": 3,
            "orchestrator_agent_id": ids["definition"],
            "input_data": {"issue": 1},
            "metadata": None,
        },
        "update_workflow_step": {
            "workflow_id": ids["workflow"],
            "current_step": "build",
            "completed_steps": 1,
            "status": "in_progress",
        },
        "end_workflow": {
            "workflow_id": ids["workflow"],
            "status": "failed",
            "error_message": "e",
            "error_step": "build",
            "output_data": {"r": 1},
        },
        "update_workflow": {"workflow_id": ids["workflow"], "description": "d"},
        "get_workflow": {"workflow_id": ids["workflow"]},
        "get_workflow_by_adw_id": {"adw_id": "a1b2c3d4"},
        "list_workflows": {
            "status": "in_progress",
            "workflow_type": "plan",
            "orchestrator_agent_id": ids["definition"],
            "limit": 5,
            "offset": 0,
        },
        "delete_workflow": {"workflow_id": missing},
        "create_system_log": {
            "log_level": "INFO",
            "component": "c",
            "message": "m",
            "details": None,
        },
        "create_system_logs": {"rows": [{"component": "c", "message": "m"}]},
        "get_system_logs": {"log_level": "INFO", "component": "c", "limit": 5},
        "list_recent_system_logs": {"limit": 5},
        "count_old_logs": {"days": 30},
        "cleanup_old_logs": {"days": 30},
        "prune": {"policy": RetentionPolicy(keep_sessions=5), "dry_run": True, "vacuum": False},
        "iter_rows": {"table": "agents", "batch_size": 2},
        "session_summaries": {"limit": 5},
        "session_summary": {"session_id": "s"},
        "session_tree": {"session_id": "s"},
        "agent_totals": {"agent_id": ids["agent"]},
        "agents_with_totals": {"agents": [{"id": ids["agent"], "cost_usd": 0.0}]},
        "cost_totals": {
            "by": "model",
            "since": "2026-01-01T08:00:00+00:00",
            "session_id": None,
            "limit": None,
        },
        "list_logs": {
            "agent_id": ids["agent"],
            "min_level": "INFO",
            "log_type": "milestone",
            "component": None,
            "since": "2026-01-01T00:00:00+00:00",
            "limit": 5,
            "up_to": {"agent_logs": 10, "system_logs": 10},
        },
        "logs_after": {
            "cursor": {"agent_logs": 0, "system_logs": 0},
            "agent_id": None,
            "min_level": "INFO",
            "log_type": None,
            "component": "c",
            "limit": 5,
        },
        "find_agents_by_prefix": {"prefix": "0", "limit": 2},
        "find_agents_by_suffix": {"suffix": "0", "limit": 2},
        "find_workflows_by_prefix": {"prefix": "0", "limit": 2},
        "find_workflows_by_suffix": {"suffix": "0", "limit": 2},
        "log_agent_event": {
            "agent_id": ids["agent"],
            "log_type": "milestone",
            "message": "m",
            "metadata": {"k": 1},
            "log_level": "INFO",
        },
        "get_logs_by_type": {"log_type": "milestone", "limit": 5},
        "get_agent_logs_by_type": {"agent_id": ids["agent"], "log_type": "milestone", "limit": 5},
        "get_recent_logs": {"limit": 5},
        "query": {"sql": "SELECT count(*) AS n FROM agents", "params": []},
    }


# Public methods that take no argument a caller could get wrong.
NO_ARGUMENTS = {
    "connect",
    "close",
    "transaction",
    "schema_version",
    "count_rows",
    "checkpoint",
    "storage",
    "log_bounds",
    "backend_name",
    "conn",  # a property that raises AttributeError (tests/test_original_compat.py)
}

# Arguments known to raise something other than DatabaseError (none left).
KNOWN: set[str] = set()

SHAPES = _valid_arguments(dict.fromkeys(("definition", "agent", "prompt", "chat", "workflow"), ""))
METHODS = sorted(SHAPES)


def test_the_scan_covers_every_public_method() -> None:
    public = {name for name in dir(DatabaseManager) if not name.startswith("_")}
    assert public - NO_ARGUMENTS == set(METHODS)


async def _call(method: Call, arguments: dict[str, Any]) -> None:
    result = method(**arguments)
    if inspect.isasyncgen(result):
        async for _ in result:
            pass
    else:
        await result


@pytest.fixture
async def ids(db: DatabaseManager) -> dict[str, str]:
    definition = await db.create_orchestrator_agent("planner", None, "planner")
    agent = await db.create_agent(definition, "s", status="executing")
    prompt = await db.create_prompt(agent, "adw", "p")
    chat = await db.create_chat_message(definition, "orchestrator", "agent", "go", agent_id=agent)
    workflow = await db.start_workflow("adw_plan", "plan", adw_id="a1b2c3d4")
    return {
        "definition": definition,
        "agent": agent,
        "prompt": prompt,
        "chat": chat,
        "workflow": workflow,
    }


@pytest.mark.parametrize("name", METHODS)
async def test_hostile_arguments_raise_only_database_errors(
    db: DatabaseManager, ids: dict[str, str], name: str
) -> None:
    valid = _valid_arguments(ids)[name]
    method = getattr(db, name)
    await _call(method, dict(valid))  # the valid call works
    failures = []
    for parameter in valid:
        if f"{name}.{parameter}" in KNOWN:
            continue
        for value in HOSTILE:
            arguments = {**valid, parameter: value}
            if name == "create_orchestrator_agent":
                arguments.setdefault("name", "scan")
            try:
                await _call(method, arguments)
            except DatabaseError:
                pass
            except Exception as exc:  # the finding: a non-store error escaped
                failures.append(
                    f"{name}({parameter}={_label(value)}): {type(exc).__name__}: {exc}"[:300]
                )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "call",
    [
        lambda db: db.list_logs(up_to=5),
        lambda db: db.list_logs(up_to={1: 2}),
        lambda db: db.logs_after(5),
        lambda db: db.logs_after({HUGE: 0}),
    ],
)
async def test_log_cursors_that_are_not_mappings_of_names(
    db: DatabaseManager, call: Callable[[DatabaseManager], Any]
) -> None:
    with pytest.raises(DatabaseError):
        await call(db)


# --- the same with random values (hypothesis), on one SQLite store ------------------

random_values = st.one_of(
    st.sampled_from(HOSTILE),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=4),
    st.datetimes(),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=6,
    ),
)
PARAMETERS = sorted(
    (name, parameter)
    for name, arguments in SHAPES.items()
    for parameter in arguments
    if f"{name}.{parameter}" not in KNOWN
)


@pytest.fixture
def sqlite_store(
    tmp_path: Path,
) -> Iterator[tuple[asyncio.AbstractEventLoop, DatabaseManager, dict[str, Any]]]:
    loop = asyncio.new_event_loop()
    db = DatabaseManager(tmp_path / "scan.db")
    loop.run_until_complete(db.connect())
    definition = loop.run_until_complete(db.create_orchestrator_agent("p", None, "planner"))
    agent = loop.run_until_complete(db.create_agent(definition, "s"))
    prompt = loop.run_until_complete(db.create_prompt(agent, "adw", "p"))
    chat = loop.run_until_complete(db.create_chat_message(definition, "user", "orchestrator", "m"))
    workflow = loop.run_until_complete(db.start_workflow("adw_plan", "plan", adw_id="a1b2c3d4"))
    valid = _valid_arguments(
        {
            "definition": definition,
            "agent": agent,
            "prompt": prompt,
            "chat": chat,
            "workflow": workflow,
        }
    )
    try:
        yield loop, db, valid
    finally:
        loop.run_until_complete(db.close())
        loop.close()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(target=st.sampled_from(PARAMETERS), value=random_values)
def test_random_arguments_raise_only_database_errors(
    sqlite_store: tuple[asyncio.AbstractEventLoop, DatabaseManager, dict[str, Any]],
    target: tuple[str, str],
    value: Any,
) -> None:
    loop, db, valid = sqlite_store
    name, parameter = target
    with contextlib.suppress(DatabaseError):  # anything else fails the example
        loop.run_until_complete(_call(getattr(db, name), {**valid[name], parameter: value}))
