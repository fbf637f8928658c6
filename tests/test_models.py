"""The Pydantic models, the SQL column lists and the schema file agree."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, get_args

import pydantic
import pytest
from pydantic import TypeAdapter

from orchestrator_store import models as models
from orchestrator_store import schema
from orchestrator_store.dialect import COLUMNS
from orchestrator_store.json_codec import decode_json_columns as _decode_json
from orchestrator_store.json_codec import encode_json as _encode_json
from orchestrator_store.manager import DatabaseManager
from orchestrator_store.tables import TOTALS_TABLES

ROW_MODELS = models.ROW_MODELS

# (table, column) -> the Literal the models use for it
ENUMERATIONS: dict[tuple[str, str], Any] = {
    ("orchestrator_agents", "agent_type"): models.AgentType,
    ("agents", "status"): models.AgentStatus,
    ("prompts", "prompt_type"): models.PromptType,
    ("prompts", "status"): models.PromptStatus,
    ("agent_logs", "log_level"): models.LogLevel,
    ("agent_logs", "log_type"): models.LogType,
    ("system_logs", "log_level"): models.LogLevel,
    ("orchestrator_chat", "sender_type"): models.ChatParty,
    ("orchestrator_chat", "receiver_type"): models.ChatParty,
    ("ai_developer_workflows", "status"): models.WorkflowStatus,
}

NOW = "2026-01-31T12:00:00.000000+00:00"


@pytest.fixture
async def fresh_db(tmp_path: Path) -> Path:
    """A database file created by the store, then closed."""
    path = tmp_path / "fresh.db"
    async with DatabaseManager(path):
        pass
    return path


@pytest.fixture
def raw(fresh_db: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(fresh_db, isolation_level=None)
    connection.execute("PRAGMA foreign_keys = ON")
    yield connection
    connection.close()


def table_info(raw: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    return list(raw.execute(f"PRAGMA table_info({table})"))


def check_values(raw: sqlite3.Connection, table: str, column: str) -> set[str]:
    """The values a ``CHECK (column IN (...))`` in the stored table SQL allows."""
    (sql,) = raw.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    match = re.search(rf"CHECK\s*\(\s*{column}\s+IN\s*\(([^)]*)\)", sql, re.IGNORECASE)
    assert match, f"no CHECK ({column} IN ...) in {table}"
    return set(re.findall(r"'([^']*)'", match.group(1)))


@pytest.fixture
def parents(raw: sqlite3.Connection) -> tuple[str, str]:
    """One definition and one agent inserted directly: (definition id, agent id)."""
    definition = str(uuid.uuid4())
    agent = str(uuid.uuid4())
    raw.execute(
        "INSERT INTO orchestrator_agents (id, name, agent_type, created_at, updated_at) "
        "VALUES (?, 'parent', 'planner', ?, ?)",
        (definition, NOW, NOW),
    )
    raw.execute(
        "INSERT INTO agents (id, orchestrator_agent_id, session_id, started_at) "
        "VALUES (?, ?, 's', ?)",
        (agent, definition, NOW),
    )
    return definition, agent


def insert_with(
    raw: sqlite3.Connection, parents: tuple[str, str], table: str, column: str, value: str
) -> None:
    """Insert a minimal valid row of ``table`` whose ``column`` is ``value``."""
    definition, agent = parents
    rows: dict[str, dict[str, Any]] = {
        "orchestrator_agents": {
            "id": str(uuid.uuid4()),
            "name": f"n-{uuid.uuid4()}",
            "agent_type": "planner",
            "created_at": NOW,
            "updated_at": NOW,
        },
        "agents": {
            "id": str(uuid.uuid4()),
            "orchestrator_agent_id": definition,
            "session_id": "s",
            "started_at": NOW,
        },
        "prompts": {
            "id": str(uuid.uuid4()),
            "agent_id": agent,
            "prompt_type": "adw",
            "prompt_text": "p",
            "created_at": NOW,
        },
        "agent_logs": {
            "agent_id": agent,
            "log_type": "milestone",
            "message": "m",
            "created_at": NOW,
        },
        "system_logs": {"component": "c", "message": "m", "created_at": NOW},
        "orchestrator_chat": {
            "id": str(uuid.uuid4()),
            "orchestrator_agent_id": definition,
            "sender_type": "user",
            "receiver_type": "orchestrator",
            "message": "m",
            "created_at": NOW,
            "updated_at": NOW,
        },
        "ai_developer_workflows": {
            "id": str(uuid.uuid4()),
            "adw_name": "adw_plan",
            "workflow_type": "plan",
            "created_at": NOW,
            "updated_at": NOW,
        },
    }
    row = {**rows[table], column: value}
    marks = ", ".join("?" for _ in row)
    raw.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({marks})", list(row.values()))


def count(raw: sqlite3.Connection, table: str) -> int:
    return int(raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


# --- columns -----------------------------------------------------------------------


def test_every_table_has_a_row_model_and_a_column_list() -> None:
    assert set(ROW_MODELS) == set(schema.TABLES)
    assert set(COLUMNS) == set(schema.TABLES)


@pytest.mark.parametrize("table", schema.TABLES)
def test_row_model_fields_equal_schema_columns(raw: sqlite3.Connection, table: str) -> None:
    columns = [row[1] for row in table_info(raw, table)]
    assert columns, f"{table} missing from a fresh database"
    assert set(ROW_MODELS[table].model_fields) == set(columns)


@pytest.mark.parametrize("table", schema.TABLES)
def test_sql_column_list_is_in_schema_order(raw: sqlite3.Connection, table: str) -> None:
    assert list(COLUMNS[table]) == [row[1] for row in table_info(raw, table)]


def test_fresh_database_holds_exactly_the_store_tables_and_their_totals(
    raw: sqlite3.Connection,
) -> None:
    names = {
        row[0]
        for row in raw.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    assert names == {*schema.TABLES, *TOTALS_TABLES}


@pytest.mark.backend("sqlite")  # reads the columns through raw sqlite3
@pytest.mark.parametrize("table", schema.TABLES)
async def test_not_null_columns_are_required_by_the_row_model(
    db: DatabaseManager, db_path: Path, agent_id: str, table: str
) -> None:
    """A real row validates; the same row with a NOT NULL column set to None
    does not, and with a nullable column set to None it still does."""
    await db.create_prompt(agent_id=agent_id, prompt_type="adw", prompt_text="p")
    await db.create_agent_log(
        agent_id=agent_id, log_level="INFO", log_type="milestone", message="m"
    )
    await db.create_system_log(log_level="INFO", component="c", message="m")
    definition_id = (await db.get_agent(agent_id) or {})["orchestrator_agent_id"]
    await db.create_chat_message(definition_id, "user", "orchestrator", "m")
    await db.start_workflow("adw_plan", "plan")
    fetch = {
        "orchestrator_agents": db.list_orchestrator_agents,
        "agents": db.list_agents,
        "prompts": db.list_prompts,
        "agent_logs": db.list_recent_agent_logs,
        "system_logs": db.list_recent_system_logs,
        "orchestrator_chat": db.list_chat_messages,
        "ai_developer_workflows": db.list_workflows,
    }[table]
    (row,) = await fetch()
    model = ROW_MODELS[table]
    model.model_validate(row)

    with sqlite3.connect(db_path) as connection:
        info = table_info(connection, table)
    connection.close()
    for _cid, column, _type, notnull, _default, pk in info:
        changed = {**row, column: None}
        if notnull or pk:
            with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
                model.model_validate(changed)
        else:
            model.model_validate(changed)


def test_log_ids_are_integers(raw: sqlite3.Connection) -> None:
    for table, model in (("agent_logs", models.AgentLog), ("system_logs", models.SystemLog)):
        assert model.model_fields["id"].annotation is int
        (id_column,) = [row for row in table_info(raw, table) if row[1] == "id"]
        assert id_column[2] == "INTEGER"
        assert id_column[5] == 1  # the primary key
    for table, model in (
        ("orchestrator_agents", models.OrchestratorAgent),
        ("agents", models.Agent),
        ("prompts", models.Prompt),
    ):
        assert model.model_fields["id"].annotation is str
        (id_column,) = [row for row in table_info(raw, table) if row[1] == "id"]
        assert id_column[2] == "TEXT"


async def test_store_returns_integer_log_ids(db: DatabaseManager, agent_id: str) -> None:
    log_id = await db.create_agent_log(
        agent_id=agent_id, log_level="INFO", log_type="milestone", message="m"
    )
    system_id = await db.create_system_log(log_level="INFO", component="c", message="m")
    assert type(log_id) is int
    assert type(system_id) is int
    (log,) = await db.get_agent_logs(agent_id=agent_id)
    (system,) = await db.get_system_logs()
    assert type(log["id"]) is int
    assert log["id"] == log_id
    assert type(system["id"]) is int
    assert system["id"] == system_id
    models.AgentLog.model_validate(log)
    models.SystemLog.model_validate(system)


# --- enumerations ------------------------------------------------------------------


@pytest.mark.parametrize(("table", "column"), list(ENUMERATIONS))
def test_row_model_uses_the_literal(table: str, column: str) -> None:
    annotation = ROW_MODELS[table].model_fields[column].annotation
    assert set(get_args(annotation)) == set(get_args(ENUMERATIONS[table, column]))


@pytest.mark.parametrize(("table", "column"), list(ENUMERATIONS))
def test_literal_equals_schema_check(raw: sqlite3.Connection, table: str, column: str) -> None:
    allowed = set(get_args(ENUMERATIONS[table, column]))
    assert allowed
    assert check_values(raw, table, column) == allowed


@pytest.mark.parametrize(("table", "column"), list(ENUMERATIONS))
def test_database_accepts_every_literal_value(
    raw: sqlite3.Connection, parents: tuple[str, str], table: str, column: str
) -> None:
    before = count(raw, table)
    values = get_args(ENUMERATIONS[table, column])
    for value in values:
        insert_with(raw, parents, table, column, value)
    assert count(raw, table) == before + len(values)
    stored = [row[0] for row in raw.execute(f"SELECT {column} FROM {table} ORDER BY rowid")]
    assert stored[-len(values) :] == list(values)


@pytest.mark.parametrize(("table", "column"), list(ENUMERATIONS))
@pytest.mark.parametrize("bogus", ["bogus", "", "Planner", "info", "COMPLETED", "INFO "])
def test_database_refuses_values_outside_the_literal(
    raw: sqlite3.Connection, parents: tuple[str, str], table: str, column: str, bogus: str
) -> None:
    assert bogus not in get_args(ENUMERATIONS[table, column])
    before = count(raw, table)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        insert_with(raw, parents, table, column, bogus)
    assert count(raw, table) == before


@pytest.mark.parametrize(("table", "column"), list(ENUMERATIONS))
def test_model_refuses_values_outside_the_literal(table: str, column: str) -> None:
    adapter = TypeAdapter(ROW_MODELS[table].model_fields[column].annotation)
    for value in get_args(ENUMERATIONS[table, column]):
        assert adapter.validate_python(value) == value
        for variant in ("bogus", value.upper() if value.islower() else value.lower(), f" {value}"):
            with pytest.raises(pydantic.ValidationError):
                adapter.validate_python(variant)


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-01-31 12:00:00",
        "2026-01-31T12:00:00+00:00",
        "2026-01-31T12:00:00.000000Z",
        "2026-01-31T14:00:00.000000+02:00",
        "31/01/2026",
    ],
)
def test_row_models_accept_only_the_store_timestamp_format(timestamp: str) -> None:
    row = {
        "id": 1,
        "log_level": "INFO",
        "component": "c",
        "message": "m",
        "details": None,
        "created_at": NOW,
    }
    models.SystemLog.model_validate(row)
    with pytest.raises(pydantic.ValidationError):
        models.SystemLog.model_validate({**row, "created_at": timestamp})


def test_a_page_of_json_texts_decodes_as_each_text_alone() -> None:
    texts = [
        '{"a":[1,2,{"b":"],["}]}',
        None,
        '"text, with [brackets] and, commas"',
        "3.5",
        "null",
        '[{"x":-0.0}]',
        "true",
    ]
    rows = [{"details": text, "n": index} for index, text in enumerate(texts)]

    decoded = _decode_json([dict(row) for row in rows], ("details",))

    expected = [None if text is None else json.loads(text) for text in texts]
    assert [row["details"] for row in decoded] == expected
    assert [row["n"] for row in decoded] == list(range(len(texts)))


def test_a_text_that_is_not_json_fails_as_it_would_alone() -> None:
    # Joined, "[1" and "2]" would read as one array: the count tells, and each
    # text is then decoded alone, which fails as it always did.
    with pytest.raises(json.JSONDecodeError):
        _decode_json([{"details": "[1"}, {"details": "2]"}], ("details",))


# --- bounds -------------------------------------------------------------------------

BOUNDS = (
    "MAX_TOKENS",
    "MAX_LATENCY_MS",
    "MAX_COST_USD",
    "MIN_JSON_INTEGER",
    "MAX_JSON_INTEGER",
    "MAX_JSON_DEPTH",
)


@pytest.mark.parametrize("name", BOUNDS)
def test_bounds_are_exported_and_documented(name: str) -> None:
    assert name in models.__all__
    assert name in (models.__doc__ or "")  # the README's list is checked by test_readme


def test_the_bounds_keep_sums_over_billions_of_rows_valid() -> None:
    """What the docs promise: 64-bit integer sums (SQLite's ``sum()`` raises
    beyond them) hold 9.2 billion rows at the maximum; float sums of costs stay
    finite far beyond any row count."""
    rows = 9_200_000_000
    assert rows * models.MAX_TOKENS <= models.MAX_INTEGER
    assert rows * models.MAX_LATENCY_MS <= models.MAX_INTEGER
    assert math.isfinite(models.MAX_COST_USD * 10.0**200)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tokens_input", models.MAX_TOKENS + 1),
        ("tokens_output", models.MAX_TOKENS + 1),
        ("latency_ms", models.MAX_LATENCY_MS + 1),
        ("cost_usd", math.nextafter(models.MAX_COST_USD, math.inf)),
    ],
)
def test_prompt_models_hold_the_bounds(field: str, value: Any) -> None:
    at_bound = {
        "tokens_input": models.MAX_TOKENS,
        "tokens_output": models.MAX_TOKENS,
        "latency_ms": models.MAX_LATENCY_MS,
        "cost_usd": models.MAX_COST_USD,
    }
    models.PromptUpdate.model_validate(at_bound)
    with pytest.raises(pydantic.ValidationError, match=field):
        models.PromptUpdate.model_validate({field: value})
    row_field = models.Prompt.model_fields[field]
    adapter = TypeAdapter(Annotated[row_field.annotation, row_field])  # rows hold them too
    with pytest.raises(pydantic.ValidationError):
        adapter.validate_python(value)


@pytest.mark.parametrize(
    "value",
    [1e16, -1e16, 1.5e300, sys.float_info.max, [1, {"x": 2.5e20, "s": "e+"}], "1e+16", 1e15],
    ids=repr,
)
def test_large_floats_are_encoded_with_a_decimal_point(value: Any) -> None:
    """JSONB prints numbers without an exponent: written as ``1e+16``, a float
    came back as an int from PostgreSQL. In full with ``.0`` it stays a float."""
    text = _encode_json(value)
    assert text is not None
    assert "e+" not in text.replace('"e+"', "").replace('"1e+16"', "")
    decoded = json.loads(text)
    assert decoded == value
    assert json.dumps(decoded) == json.dumps(value)  # same types all the way down
