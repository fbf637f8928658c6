"""``tables`` describes both schema files: each table's columns (names and
order), JSON columns, foreign keys, generated id, defaults and indexed time
column. The schema files are parsed as text; the same checks also run against
altered copies of them, and against altered descriptions, to show they fail."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from orchestrator_store import dialect, manager, models, schema
from orchestrator_store.tables import LOG_TABLES, TABLES, Table

SCHEMA_FILES = {
    "sqlite": schema.DEFAULT_SCHEMA_PATH,
    "postgresql": schema.DEFAULT_POSTGRES_SCHEMA_PATH,
}
TABLE_CONSTRAINTS = ("CONSTRAINT", "PRIMARY KEY", "FOREIGN KEY", "UNIQUE", "CHECK")
HIDDEN_ORDER_COLUMN = "row_order"  # PostgreSQL only: see dialect.POSTGRES.insertion_order


def schema_text(dialect_name: str) -> str:
    return SCHEMA_FILES[dialect_name].read_text(encoding="utf-8")


# --- a small parser of the schema files -----------------------------------------------


@dataclass
class ParsedTable:
    columns: dict[str, str]  # name -> the rest of its definition, in schema order
    constraints: list[str]  # table-level ones: FOREIGN KEY (...) REFERENCES ..., CHECK ...


def _split_top_level(body: str) -> list[str]:
    """``body`` split at the commas outside parentheses and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(body):
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append(body[start:index])
            start = index + 1
    parts.append(body[start:])
    return [" ".join(part.split()) for part in parts if part.strip()]


def _body(text: str, start: int) -> str:
    """The text inside the parenthesis that opens just before ``start``."""
    depth = 1
    for index in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            return text[start:index]
    raise AssertionError("unbalanced parentheses in the schema")


def _code(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)  # the schema files hold no "--" inside strings


def parse_tables(text: str) -> dict[str, ParsedTable]:
    text = _code(text)
    tables = {}
    for match in re.finditer(
        r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s*\(", text, re.IGNORECASE
    ):
        parsed = ParsedTable({}, [])
        for part in _split_top_level(_body(text, match.end())):
            if part.upper().startswith(TABLE_CONSTRAINTS):
                parsed.constraints.append(part)
            else:
                name, _, definition = part.partition(" ")
                parsed.columns[name] = definition
        tables[match.group(1)] = parsed
    return tables


def indexed_columns(text: str, table: str) -> set[tuple[str, ...]]:
    """The column lists of the indexes on ``table``."""
    pattern = rf"CREATE\s+(?:UNIQUE\s+)?INDEX\s[^;]*?\sON\s+{table}\s*\(([^)]*)\)"
    found = re.findall(pattern, _code(text), re.IGNORECASE)
    return {tuple(column.strip() for column in columns.split(",")) for columns in found}


def references(parsed: ParsedTable) -> dict[str, str]:
    """column -> referenced table, inline (``REFERENCES t (id)``) or table-level
    (``FOREIGN KEY (column) REFERENCES t (id)``); every one names the parent's id."""
    found = {}
    for name, definition in parsed.columns.items():
        match = re.search(r"\bREFERENCES\s+(\w+)\s*\(\s*(\w+)\s*\)", definition, re.IGNORECASE)
        if match:
            assert match.group(2) == "id", definition
            found[name] = match.group(1)
    for constraint in parsed.constraints:
        match = re.search(
            r"FOREIGN\s+KEY\s*\(\s*(\w+)\s*\)\s*REFERENCES\s+(\w+)\s*\(\s*(\w+)\s*\)",
            constraint,
            re.IGNORECASE,
        )
        if match:
            assert match.group(3) == "id", constraint
            found[match.group(1)] = match.group(2)
    return found


def json_columns(parsed: ParsedTable, dialect_name: str) -> tuple[str, ...]:
    """SQLite: TEXT columns that a CHECK holds to ``json_valid()``; PostgreSQL: JSONB."""
    if dialect_name == "postgresql":
        return tuple(
            name for name, definition in parsed.columns.items() if _type(definition) == "JSONB"
        )
    checks = " ".join([*parsed.columns.values(), *parsed.constraints])
    checked = set(re.findall(r"json_valid\(\s*(\w+)\s*\)", checks, re.IGNORECASE))
    return tuple(
        name
        for name, definition in parsed.columns.items()
        if name in checked and _type(definition) == "TEXT"
    )


def _type(definition: str) -> str:
    return definition.split(" ", 1)[0].upper()


def has_generated_id(parsed: ParsedTable, dialect_name: str) -> bool:
    definition = parsed.columns.get("id", "").upper()
    if dialect_name == "postgresql":
        return bool(re.search(r"\bGENERATED BY DEFAULT AS IDENTITY\b", definition))
    return definition.startswith("INTEGER PRIMARY KEY")  # SQLite's rowid alias


def defaults(parsed: ParsedTable) -> tuple[str, ...]:
    """Columns with a DEFAULT (not PostgreSQL's ``GENERATED BY DEFAULT``)."""
    return tuple(
        name
        for name, definition in parsed.columns.items()
        if re.search(r"(?<!BY )\bDEFAULT\b", definition, re.IGNORECASE)
    )


def mismatches(text: str, dialect_name: str, tables: Mapping[str, Table] = TABLES) -> list[str]:
    """Where the schema ``text`` and the description ``tables`` disagree."""
    parsed_tables = parse_tables(text)
    if list(parsed_tables) != list(tables):
        return [f"tables: schema {list(parsed_tables)}, described {list(tables)}"]
    found = []
    for name, table in tables.items():
        parsed = parsed_tables[name]
        columns = tuple(parsed.columns)
        if dialect_name == "postgresql":
            expected_hidden = () if table.generated_id else (HIDDEN_ORDER_COLUMN,)
            hidden = tuple(column for column in columns if column == HIDDEN_ORDER_COLUMN)
            if hidden != expected_hidden or dialect.POSTGRES.insertion_order(name) not in columns:
                found.append(f"{name}: insertion order column {expected_hidden}, got {hidden}")
            columns = tuple(column for column in columns if column != HIDDEN_ORDER_COLUMN)
        facts = {
            "columns": (columns, table.columns),
            "JSON columns": (json_columns(parsed, dialect_name), table.json_columns),
            "references": (references(parsed), dict(table.references)),
            "generated id": (has_generated_id(parsed, dialect_name), table.generated_id),
            "defaults": (defaults(parsed), table.database_defaults),
        }
        for fact, (in_schema, described) in facts.items():
            if in_schema != described:
                found.append(f"{name}: {fact}: schema {in_schema}, described {described}")
        if (table.time_column,) not in indexed_columns(text, name):
            found.append(f"{name}: no index on its time column {table.time_column}")
    return found


# --- the real schema files --------------------------------------------------------------


@pytest.mark.parametrize("dialect_name", SCHEMA_FILES)
def test_tables_describe_the_schema_file(dialect_name: str) -> None:
    assert mismatches(schema_text(dialect_name), dialect_name) == []


# --- the checks fail when the schema and the description part ----------------------------


def altered(dialect_name: str, old: str, new: str) -> str:
    text = schema_text(dialect_name)
    assert text.count(old) == 1, f"the alteration's anchor is not unique: {old!r}"
    return text.replace(old, new)


SCHEMA_ALTERATIONS = {
    "sqlite: two columns swapped": (
        "sqlite",
        "    prompt_name   TEXT,\n    prompt_text   TEXT NOT NULL",
        "    prompt_text   TEXT NOT NULL,\n    prompt_name   TEXT",
        "prompts: columns",
    ),
    "sqlite: a column added": (
        "sqlite",
        "    cost_usd              REAL NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),\n",
        "    cost_usd              REAL NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),\n"
        "    retries               INTEGER,\n",
        "agents: columns",
    ),
    "sqlite: a JSON CHECK dropped": (
        "sqlite",
        "config                TEXT CHECK (config IS NULL OR json_valid(config)),",
        "config                TEXT,",
        "agents: JSON columns",
    ),
    "sqlite: a default dropped": (
        "sqlite",
        "tokens_output INTEGER NOT NULL DEFAULT 0 CHECK (tokens_output >= 0),",
        "tokens_output INTEGER NOT NULL CHECK (tokens_output >= 0),",
        "prompts: defaults",
    ),
    "sqlite: a table added": (
        "sqlite",
        "CREATE TABLE IF NOT EXISTS system_logs (",
        "CREATE TABLE IF NOT EXISTS tags (id TEXT PRIMARY KEY);\n"
        "CREATE TABLE IF NOT EXISTS system_logs (",
        "tables",
    ),
    "sqlite: the time column's index dropped": (
        "sqlite",
        "CREATE INDEX IF NOT EXISTS idx_agents_started_at\n    ON agents (started_at);",
        "",
        "agents: no index on its time column",
    ),
    "postgresql: JSONB turned TEXT": (
        "postgresql",
        "    context               JSONB,",
        "    context               TEXT,",
        "agents: JSON columns",
    ),
    "postgresql: a foreign key dropped": (
        "postgresql",
        "parent_agent_id       UUID REFERENCES agents (id) ON DELETE SET NULL,",
        "parent_agent_id       UUID,",
        "agents: references",
    ),
    "postgresql: a log id no longer generated": (
        "postgresql",
        "    id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n    log_level",
        "    id         UUID PRIMARY KEY,\n    log_level",
        "system_logs: generated id",
    ),
    "postgresql: the hidden order column dropped": (
        "postgresql",
        "    error_message TEXT,\n    row_order     BIGINT GENERATED ALWAYS AS IDENTITY\n",
        "    error_message TEXT\n",
        "prompts: insertion order column",
    ),
}


@pytest.mark.parametrize("case", SCHEMA_ALTERATIONS)
def test_an_altered_schema_file_fails(case: str) -> None:
    dialect_name, old, new, expected = SCHEMA_ALTERATIONS[case]
    found = mismatches(altered(dialect_name, old, new), dialect_name)
    assert any(line.startswith(expected) for line in found), found


def test_a_table_level_foreign_key_counts_like_an_inline_one() -> None:
    text = altered(
        "sqlite",
        "    agent_id      TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,\n"
        "    prompt_type",
        "    agent_id      TEXT NOT NULL,\n    prompt_type",
    ).replace(
        "    error_message TEXT\n);\n\n-- An agent's prompts",
        "    error_message TEXT,\n    FOREIGN KEY (agent_id) REFERENCES agents (id)\n);\n\n"
        "-- An agent's prompts",
    )
    assert "FOREIGN KEY (agent_id)" in text
    assert mismatches(text, "sqlite") == []


def _described(name: str, **changes: Any) -> dict[str, Table]:
    return {**TABLES, name: dataclasses.replace(TABLES[name], **changes)}


WRONG_DESCRIPTIONS: dict[str, tuple[Callable[[], dict[str, Table]], str]] = {
    "columns out of order": (
        lambda: _described(
            "agent_logs",
            columns=("id", "agent_id", "log_type", "log_level", "message", "details", "created_at"),
        ),
        "agent_logs: columns",
    ),
    "a JSON column missing": (
        lambda: _described("agents", json_columns=("context",)),
        "agents: JSON columns",
    ),
    "a reference missing": (lambda: _described("prompts", references={}), "prompts: references"),
    "a generated id claimed": (
        lambda: _described("prompts", generated_id=True),
        "prompts: generated id",
    ),
    "the wrong time column": (
        lambda: _described("agents", time_column="completed_at"),
        "agents: no index on its time column",
    ),
}


@pytest.mark.parametrize("dialect_name", SCHEMA_FILES)
@pytest.mark.parametrize("case", WRONG_DESCRIPTIONS)
def test_a_wrong_description_fails(dialect_name: str, case: str) -> None:
    describe, expected = WRONG_DESCRIPTIONS[case]
    found = mismatches(schema_text(dialect_name), dialect_name, describe())
    assert any(line.startswith(expected) for line in found), found


def test_a_description_names_only_its_own_columns() -> None:
    with pytest.raises(ValueError, match="t: created_at not among its columns"):
        Table("t", columns=("id",), time_column="created_at")


# --- what derives from the description ------------------------------------------------


def test_the_names_other_modules_import_derive_from_it() -> None:
    assert tuple(TABLES) == schema.TABLES
    assert {name: table.columns for name, table in TABLES.items()} == dialect.COLUMNS
    assert dialect.GENERATED_IDS == LOG_TABLES == ("agent_logs", "system_logs")
    assert manager.JSON_COLUMNS == {
        "agents": ("context", "config"),
        "agent_logs": ("details",),
        "system_logs": ("details",),
        "orchestrator_chat": ("metadata",),
        "ai_developer_workflows": ("input_data", "output_data", "metadata"),
    }


@pytest.mark.parametrize("name", TABLES)
def test_row_models_hold_exactly_the_columns(name: str) -> None:
    assert set(models.ROW_MODELS[name].model_fields) == set(TABLES[name].columns)


def test_the_models_table_names_are_the_tables() -> None:
    assert list(models.ROW_MODELS) == list(TABLES)
    assert get_args(models.TableName) == tuple(TABLES)


INPUT_MODELS = {
    models.OrchestratorAgentCreate: "orchestrator_agents",
    models.OrchestratorAgentUpdate: "orchestrator_agents",
    models.AgentCreate: "agents",
    models.AgentUpdate: "agents",
    models.PromptCreate: "prompts",
    models.PromptUpdate: "prompts",
    models.AgentLogCreate: "agent_logs",
    models.SystemLogCreate: "system_logs",
    models.OrchestratorChatCreate: "orchestrator_chat",
    models.OrchestratorChatUpdate: "orchestrator_chat",
    models.AiDeveloperWorkflowCreate: "ai_developer_workflows",
    models.AiDeveloperWorkflowUpdate: "ai_developer_workflows",
    models.WorkflowStep: "ai_developer_workflows",
    models.WorkflowEnd: "ai_developer_workflows",
}


@pytest.mark.parametrize("model", INPUT_MODELS, ids=lambda model: model.__name__)
def test_input_models_name_only_columns(model: type[BaseModel]) -> None:
    assert set(model.model_fields) <= set(TABLES[INPUT_MODELS[model]].columns)
