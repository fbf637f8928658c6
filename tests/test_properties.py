"""Property tests: every create and update method, fed arbitrary values, either
round-trips exactly or raises ValidationError, and a rejected call writes nothing.

One database per test function (not per example); row counts are checked after
every call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator_store.manager import DatabaseManager, IntegrityError, ValidationError
from orchestrator_store.models import format_timestamp

T = TypeVar("T")
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text with everything in it: NUL, lone surrogates, blanks, emoji, long runs.
any_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(exclude_categories=()), max_size=20),
    st.sampled_from(["", "   ", "\x00", "a\x00b", "\ud800", "é∂😀", "x" * 2000]),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
anything = st.one_of(st.none(), numbers, any_text, st.lists(st.integers(), max_size=2))
timestamps = st.one_of(
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(timezones=st.builds(lambda h: timezone(timedelta(hours=h)), st.integers(-12, 12))),
    st.datetimes(),  # naive: refused
    any_text,
)


def either(valid: list[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(valid), anything)


@dataclass
class Store:
    loop: asyncio.AbstractEventLoop
    db: DatabaseManager
    definition_id: str
    agent_id: str
    prompt_id: str

    def run(self, call: Awaitable[T]) -> T:
        return self.loop.run_until_complete(call)

    def ids(self) -> st.SearchStrategy[Any]:
        """Existing ids (so no foreign key can be missing) or junk."""
        return st.one_of(st.sampled_from([self.agent_id]), anything)

    def attempt(self, call: Callable[[], Awaitable[T]], *, grows: str | None) -> T | None:
        """Run ``call``: a result, or None after a ValidationError that wrote nothing."""
        before = self.run(self.db.count_rows())
        try:
            result = self.run(call())
        except ValidationError:
            assert self.run(self.db.count_rows()) == before
            return None
        expected = dict(before)
        if grows is not None:
            expected[grows] += 1
        assert self.run(self.db.count_rows()) == expected
        return result


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    loop = asyncio.new_event_loop()
    db = DatabaseManager(tmp_path / "properties.db")
    loop.run_until_complete(db.connect())
    definition = loop.run_until_complete(db.create_orchestrator_agent("fixed", None, "planner"))
    agent = loop.run_until_complete(db.create_agent(definition, "session"))
    prompt = loop.run_until_complete(db.create_prompt(agent, "adw", "fixed prompt"))
    try:
        yield Store(loop, db, definition, agent, prompt)
    finally:
        loop.run_until_complete(db.close())
        loop.close()


def assert_stored(row: dict[str, Any] | None, given_values: dict[str, Any]) -> None:
    assert row is not None
    for field, value in given_values.items():
        if isinstance(value, datetime):
            value = format_timestamp(value)
        assert row[field] == value, field


AGENT_TYPES = ["planner", "builder", "reviewer", "tester", "orchestrator", "utility"]
AGENT_STATUSES = ["initializing", "planning", "executing", "completed", "failed"]
PROMPT_TYPES = ["adw", "command", "followup", "correction", "tool_call"]
PROMPT_STATUSES = ["pending", "streaming", "completed", "failed", "cancelled"]
LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LOG_TYPES = ["state_change", "milestone", "error", "performance", "tool_call", "cost_update"]


@SETTINGS
@given(data=st.data())
def test_create_and_update_orchestrator_agent(store: Store, data: st.DataObject) -> None:
    values = {
        "name": data.draw(any_text),
        "description": data.draw(st.one_of(st.none(), any_text, numbers)),
        "agent_type": data.draw(either(AGENT_TYPES)),
        "capabilities": data.draw(st.one_of(st.none(), any_text)),
        "default_model": data.draw(st.one_of(st.none(), any_text)),
    }
    # everything is drawn before the database is touched: draws must not depend on its state
    changes = {"description": data.draw(st.one_of(st.none(), any_text, numbers))}
    names = {row["name"] for row in store.run(store.db.list_orchestrator_agents())}
    try:
        created = store.attempt(
            lambda: store.db.create_orchestrator_agent(**values), grows="orchestrator_agents"
        )
    except IntegrityError as exc:  # the only refusal a valid call can meet: a taken name
        assert values["name"] in names and exc.constraint == "unique"
        return
    if created is not None:
        assert_stored(store.run(store.db.get_orchestrator_agent(created)), values)
    if store.attempt(
        lambda: store.db.update_orchestrator_agent(store.definition_id, **changes), grows=None
    ):
        assert_stored(store.run(store.db.get_orchestrator_agent(store.definition_id)), changes)


@SETTINGS
@given(data=st.data())
def test_create_and_update_agent(store: Store, data: st.DataObject) -> None:
    values = {
        "orchestrator_agent_id": data.draw(st.one_of(st.just(store.definition_id), anything)),
        "session_id": data.draw(any_text),
        "parent_agent_id": data.draw(st.one_of(st.none(), store.ids())),
        "status": data.draw(either(AGENT_STATUSES)),
        "context": data.draw(json_values),
        "config": data.draw(st.one_of(json_values, st.sets(st.integers(), max_size=2))),
    }
    created = store.attempt(lambda: store.db.create_agent(**values), grows="agents")
    if created is not None:
        assert_stored(store.run(store.db.get_agent(created)), values)
    changes = {
        "status": data.draw(either(AGENT_STATUSES)),
        "completed_at": data.draw(st.one_of(st.none(), timestamps)),
        "error_message": data.draw(st.one_of(st.none(), any_text)),
        "context": data.draw(json_values),
    }
    if store.attempt(lambda: store.db.update_agent(store.agent_id, **changes), grows=None):
        assert_stored(store.run(store.db.get_agent(store.agent_id)), changes)


@SETTINGS
@given(cost=numbers)
def test_add_agent_cost(store: Store, cost: Any) -> None:
    before = store.run(store.db.get_agent(store.agent_id))
    assert before is not None
    if store.attempt(lambda: store.db.add_agent_cost(store.agent_id, cost), grows=None):
        after = store.run(store.db.get_agent(store.agent_id))
        assert after is not None and after["cost_usd"] == before["cost_usd"] + cost


@SETTINGS
@given(data=st.data())
def test_create_and_update_prompt(store: Store, data: st.DataObject) -> None:
    values = {
        "agent_id": data.draw(store.ids()),
        "prompt_type": data.draw(either(PROMPT_TYPES)),
        "prompt_text": data.draw(any_text),
        "prompt_name": data.draw(st.one_of(st.none(), any_text)),
        "status": data.draw(either(PROMPT_STATUSES)),
        "model_used": data.draw(st.one_of(st.none(), any_text)),
    }
    created = store.attempt(lambda: store.db.create_prompt(**values), grows="prompts")
    if created is not None:
        assert_stored(store.run(store.db.get_prompt(created)), values)
    changes = {
        "response_text": data.draw(st.one_of(st.none(), any_text)),
        "tokens_input": data.draw(numbers),
        "tokens_output": data.draw(numbers),
        "cost_usd": data.draw(numbers),
        "latency_ms": data.draw(st.one_of(st.none(), numbers)),
        "completed_at": data.draw(st.one_of(st.none(), timestamps)),
    }
    if store.attempt(lambda: store.db.update_prompt(store.prompt_id, **changes), grows=None):
        assert_stored(store.run(store.db.get_prompt(store.prompt_id)), changes)


@SETTINGS
@given(data=st.data())
def test_create_agent_log(store: Store, data: st.DataObject) -> None:
    values = {
        "agent_id": data.draw(store.ids()),
        "log_level": data.draw(either(LEVELS)),
        "log_type": data.draw(either(LOG_TYPES)),
        "message": data.draw(any_text),
        "details": data.draw(json_values),
    }
    created = store.attempt(lambda: store.db.create_agent_log(**values), grows="agent_logs")
    if created is not None:
        rows = store.run(store.db.get_agent_logs(store.agent_id))
        assert_stored(next(row for row in rows if row["id"] == created), values)


@SETTINGS
@given(data=st.data())
def test_create_system_log(store: Store, data: st.DataObject) -> None:
    values = {
        "log_level": data.draw(either(LEVELS)),
        "component": data.draw(any_text),
        "message": data.draw(any_text),
        "details": data.draw(json_values),
    }
    created = store.attempt(lambda: store.db.create_system_log(**values), grows="system_logs")
    if created is not None:
        rows = store.run(store.db.get_system_logs())
        assert_stored(next(row for row in rows if row["id"] == created), values)


@SETTINGS
@given(data=st.data())
def test_batches_are_all_or_nothing(store: Store, data: st.DataObject) -> None:
    rows = data.draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "agent_id": store.ids(),
                    "log_type": either(LOG_TYPES),
                    "message": any_text,
                    "details": json_values,
                }
            ),
            max_size=5,
        )
    )
    before = store.run(store.db.count_rows())
    try:
        ids = store.run(store.db.create_agent_logs(rows))
    except ValidationError:
        assert store.run(store.db.count_rows()) == before
        return
    assert store.run(store.db.count_rows())["agent_logs"] == before["agent_logs"] + len(rows)
    stored = {row["id"]: row for row in store.run(store.db.get_agent_logs(store.agent_id))}
    for log_id, row in zip(ids, rows, strict=True):
        assert_stored(stored[log_id], row)
