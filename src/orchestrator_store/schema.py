"""Schema versions: where the schema file is, and what brings a file up to date.

The version of a database file is SQLite's ``PRAGMA user_version``; on
PostgreSQL it is the one row of ``adw_schema_version``. A new database gets its
dialect's schema file in full (it always describes the latest version); an
older one gets, in order, every migration newer than its version. Adding a
version means: change both schema files (and ``tables``, their description,
which a test checks against them), append a ``Migration`` that upgrades the
previous version in place (``sql`` for SQLite, ``postgres_sql`` for
PostgreSQL; either may be empty when the version changes nothing in that
dialect, as version 5 on SQLite), and bump nothing else.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from . import tables
from .errors import SchemaError

__all__ = [
    "DEFAULT_POSTGRES_SCHEMA_PATH",
    "DEFAULT_SCHEMA_PATH",
    "LATEST_VERSION",
    "MIGRATIONS",
    "POSTGRES_TOTALS_PATH",
    "TABLES",
    "TOTALS_FILL_POSTGRES",
    "TOTALS_FILL_SQLITE",
    "TOTALS_PATH",
    "Migration",
    "load_schema",
    "postgres_scripts_to_upgrade",
    "split_statements",
    "statements_to_upgrade",
]

# Package data beside this module, never relative to the current directory.
DEFAULT_SCHEMA_PATH = Path(__file__).resolve().parent / "sql" / "schema_orchestrator.sql"
DEFAULT_POSTGRES_SCHEMA_PATH = DEFAULT_SCHEMA_PATH.with_name("schema_orchestrator_postgres.sql")
# The derived tables the reports read and the triggers that keep them (version 3 on):
# applied after whichever schema file a database gets.
TOTALS_PATH = DEFAULT_SCHEMA_PATH.with_name("totals_orchestrator.sql")
POSTGRES_TOTALS_PATH = DEFAULT_SCHEMA_PATH.with_name("totals_orchestrator_postgres.sql")

TABLES: tuple[str, ...] = tuple(tables.TABLES)  # the names, in schema order


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str = ""  # empty for version 1, which is the schema file itself
    postgres_sql: str = ""  # the same upgrade for PostgreSQL


# Version 2 as it was released: the two tables as the schema files create
# them (a test checks that upgrading a version-1 database gives exactly what a
# new one gets, and pins what migration 2 makes). Later versions change the
# schema files and add migrations; these texts stay as they are, literal
# through and through (the timestamp GLOBs too), so that nothing changed
# elsewhere can change them.
_V2_SQLITE = """
CREATE TABLE IF NOT EXISTS orchestrator_chat (
    id                    TEXT PRIMARY KEY NOT NULL,
    orchestrator_agent_id TEXT NOT NULL
                              REFERENCES orchestrator_agents (id) ON DELETE CASCADE,
    sender_type           TEXT NOT NULL CHECK (sender_type IN ('user', 'orchestrator', 'agent')),
    receiver_type         TEXT NOT NULL CHECK (receiver_type IN ('user', 'orchestrator', 'agent')),
    message               TEXT NOT NULL CHECK (length(trim(message)) > 0),
    summary               TEXT,
    agent_id              TEXT REFERENCES agents (id) ON DELETE CASCADE,
    metadata              TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
    created_at            TEXT NOT NULL CHECK (created_at GLOB
                              '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    updated_at            TEXT NOT NULL CHECK (updated_at GLOB
                              '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00')
);

CREATE INDEX IF NOT EXISTS idx_orchestrator_chat_orchestrator_agent_created
    ON orchestrator_chat (orchestrator_agent_id, created_at);
CREATE INDEX IF NOT EXISTS idx_orchestrator_chat_agent_created
    ON orchestrator_chat (agent_id, created_at);
CREATE INDEX IF NOT EXISTS idx_orchestrator_chat_created_at
    ON orchestrator_chat (created_at);

-- adw_id is the run's own id (an ADW id such as 'a1b2c3d4'), which tracking looks rows up by.
CREATE TABLE IF NOT EXISTS ai_developer_workflows (
    id                    TEXT PRIMARY KEY NOT NULL,
    orchestrator_agent_id TEXT REFERENCES orchestrator_agents (id) ON DELETE CASCADE,
    adw_id                TEXT UNIQUE,
    adw_name              TEXT NOT NULL CHECK (length(trim(adw_name)) > 0),
    workflow_type         TEXT NOT NULL CHECK (length(trim(workflow_type)) > 0),
    description           TEXT,
    status                TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                              ('pending', 'in_progress', 'completed', 'failed', 'cancelled')),
    current_step          TEXT,
    total_steps           INTEGER NOT NULL DEFAULT 0 CHECK (total_steps >= 0),
    completed_steps       INTEGER NOT NULL DEFAULT 0 CHECK (completed_steps >= 0),
    started_at            TEXT CHECK (started_at IS NULL OR started_at GLOB
                              '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    completed_at          TEXT CHECK (completed_at IS NULL OR completed_at GLOB
                              '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    duration_seconds      REAL CHECK (duration_seconds IS NULL OR duration_seconds >= 0),
    input_data            TEXT CHECK (input_data IS NULL OR json_valid(input_data)),
    output_data           TEXT CHECK (output_data IS NULL OR json_valid(output_data)),
    error_message         TEXT,
    error_step            TEXT,
    error_count           INTEGER NOT NULL DEFAULT 0 CHECK (error_count >= 0),
    metadata              TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
    created_at            TEXT NOT NULL CHECK (created_at GLOB
                              '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    updated_at            TEXT NOT NULL CHECK (updated_at GLOB
                              '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00')
);

CREATE INDEX IF NOT EXISTS idx_ai_developer_workflows_status_created
    ON ai_developer_workflows (status, created_at);
CREATE INDEX IF NOT EXISTS idx_ai_developer_workflows_type_created
    ON ai_developer_workflows (workflow_type, created_at);
CREATE INDEX IF NOT EXISTS idx_ai_developer_workflows_orchestrator_agent_created
    ON ai_developer_workflows (orchestrator_agent_id, created_at);
CREATE INDEX IF NOT EXISTS idx_ai_developer_workflows_created_at
    ON ai_developer_workflows (created_at);
"""

_V2_POSTGRES = """
CREATE TABLE IF NOT EXISTS orchestrator_chat (
    id                    UUID PRIMARY KEY,
    orchestrator_agent_id UUID NOT NULL
                              REFERENCES orchestrator_agents (id) ON DELETE CASCADE,
    sender_type           TEXT NOT NULL CHECK (sender_type IN ('user', 'orchestrator', 'agent')),
    receiver_type         TEXT NOT NULL CHECK (receiver_type IN ('user', 'orchestrator', 'agent')),
    message               TEXT NOT NULL CHECK (length(trim(message)) > 0),
    summary               TEXT,
    agent_id              UUID REFERENCES agents (id) ON DELETE CASCADE,
    metadata              JSONB,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    row_order             BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE INDEX IF NOT EXISTS idx_orchestrator_chat_orchestrator_agent_created
    ON orchestrator_chat (orchestrator_agent_id, created_at);
CREATE INDEX IF NOT EXISTS idx_orchestrator_chat_agent_created
    ON orchestrator_chat (agent_id, created_at);
CREATE INDEX IF NOT EXISTS idx_orchestrator_chat_created_at
    ON orchestrator_chat (created_at);

-- adw_id is the run's own id (an ADW id such as 'a1b2c3d4'), which tracking looks rows up by.
CREATE TABLE IF NOT EXISTS ai_developer_workflows (
    id                    UUID PRIMARY KEY,
    orchestrator_agent_id UUID REFERENCES orchestrator_agents (id) ON DELETE CASCADE,
    adw_id                TEXT UNIQUE,
    adw_name              TEXT NOT NULL CHECK (length(trim(adw_name)) > 0),
    workflow_type         TEXT NOT NULL CHECK (length(trim(workflow_type)) > 0),
    description           TEXT,
    status                TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                              ('pending', 'in_progress', 'completed', 'failed', 'cancelled')),
    current_step          TEXT,
    total_steps           BIGINT NOT NULL DEFAULT 0 CHECK (total_steps >= 0),
    completed_steps       BIGINT NOT NULL DEFAULT 0 CHECK (completed_steps >= 0),
    started_at            TIMESTAMPTZ,
    completed_at          TIMESTAMPTZ,
    duration_seconds      DOUBLE PRECISION
                              CHECK (duration_seconds IS NULL OR duration_seconds >= 0),
    input_data            JSONB,
    output_data           JSONB,
    error_message         TEXT,
    error_step            TEXT,
    error_count           BIGINT NOT NULL DEFAULT 0 CHECK (error_count >= 0),
    metadata              JSONB,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    row_order             BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE INDEX IF NOT EXISTS idx_ai_developer_workflows_status_created
    ON ai_developer_workflows (status, created_at);
CREATE INDEX IF NOT EXISTS idx_ai_developer_workflows_type_created
    ON ai_developer_workflows (workflow_type, created_at);
CREATE INDEX IF NOT EXISTS idx_ai_developer_workflows_orchestrator_agent_created
    ON ai_developer_workflows (orchestrator_agent_id, created_at);
CREATE INDEX IF NOT EXISTS idx_ai_developer_workflows_created_at
    ON ai_developer_workflows (created_at);
"""

# Version 3: the cost rule and the totals. Before it, an agent's cost_usd was whatever
# its writer recorded, often its prompts' costs again; from it on, cost_usd is the
# agent's own cost, added to its prompts'. So an agent keeps the part of its old cost
# that its prompts do not explain (and its total becomes the larger of its old cost and
# its prompts' sum). This runs before the triggers exist; the totals are then filled
# from the rows. The totals files are read as they are now: a later version that
# changes them replaces them in a migration of its own.
_V3_COST_RULE_SQLITE = """
UPDATE agents SET cost_usd = max(0.0, round(cost_usd - (
    SELECT coalesce(sum(p.cost_usd), 0) FROM prompts p WHERE p.agent_id = agents.id), 9))
WHERE cost_usd > 0;
"""

_V3_COST_RULE_POSTGRES = """
UPDATE agents a SET cost_usd = greatest(0.0, round((a.cost_usd - coalesce((
    SELECT sum(p.cost_usd) FROM prompts p WHERE p.agent_id = a.id), 0))::numeric, 9)::float8)
WHERE a.cost_usd > 0;
"""

# The totals counted from the rows, into empty totals tables (model_costs fills
# itself from daily_costs, by the triggers on it): after migration 3,
# for a file from before version 1, and after a bulk load that ran without the
# triggers (the benchmark's PostgreSQL build).
TOTALS_FILL_SQLITE = """
INSERT INTO session_totals (session_id, agents, active_agents, failed_agents, prompts,
                            failed_prompts, tokens_input, tokens_output, cost_nano,
                            first_activity, last_activity)
SELECT a.session_id, count(*),
       sum(a.completed_at IS NULL AND a.status NOT IN ('completed', 'failed', 'cancelled')),
       sum(a.status = 'failed'), coalesce(sum(p.prompts), 0), coalesce(sum(p.failed_prompts), 0),
       coalesce(sum(p.tokens_input), 0), coalesce(sum(p.tokens_output), 0),
       sum(CAST(round(a.cost_usd * 1e9) AS INTEGER)) + coalesce(sum(p.cost_nano), 0),
       min(a.started_at),
       max(max(a.started_at, coalesce(a.completed_at, a.started_at),
               coalesce(p.last_activity, a.started_at)))
FROM agents a
LEFT JOIN (
    SELECT agent_id, count(*) AS prompts, sum(status = 'failed') AS failed_prompts,
           sum(tokens_input) AS tokens_input, sum(tokens_output) AS tokens_output,
           sum(CAST(round(cost_usd * 1e9) AS INTEGER)) AS cost_nano,
           max(max(created_at, coalesce(completed_at, created_at))) AS last_activity
    FROM prompts GROUP BY agent_id
) p ON p.agent_id = a.id
GROUP BY a.session_id;

INSERT INTO daily_costs (day, model_used, orchestrator_agent_id, prompts, tokens_input,
                         tokens_output, cost_nano)
SELECT day, model_used, definition, sum(prompts), sum(tokens_input), sum(tokens_output),
       sum(cost_nano)
FROM (
    SELECT substr(p.created_at, 1, 10) AS day, coalesce(p.model_used, '') AS model_used,
           a.orchestrator_agent_id AS definition, 1 AS prompts, p.tokens_input AS tokens_input,
           p.tokens_output AS tokens_output, CAST(round(p.cost_usd * 1e9) AS INTEGER) AS cost_nano
    FROM prompts p JOIN agents a ON a.id = p.agent_id
    UNION ALL
    SELECT substr(started_at, 1, 10), '', orchestrator_agent_id, 0, 0, 0,
           CAST(round(cost_usd * 1e9) AS INTEGER)
    FROM agents WHERE cost_usd <> 0
)
GROUP BY day, model_used, definition;

INSERT INTO session_daily_costs (session_id, day, prompts, tokens_input, tokens_output, cost_nano)
SELECT session_id, day, sum(prompts), sum(tokens_input), sum(tokens_output), sum(cost_nano)
FROM (
    SELECT a.session_id AS session_id, substr(p.created_at, 1, 10) AS day, 1 AS prompts,
           p.tokens_input AS tokens_input, p.tokens_output AS tokens_output,
           CAST(round(p.cost_usd * 1e9) AS INTEGER) AS cost_nano
    FROM prompts p JOIN agents a ON a.id = p.agent_id
    UNION ALL
    SELECT session_id, substr(started_at, 1, 10), 0, 0, 0, CAST(round(cost_usd * 1e9) AS INTEGER)
    FROM agents WHERE cost_usd <> 0
)
GROUP BY session_id, day;

INSERT INTO row_counts (table_name, row_count)
SELECT 'orchestrator_agents', count(*) FROM orchestrator_agents
UNION ALL SELECT 'agents', count(*) FROM agents
UNION ALL SELECT 'prompts', count(*) FROM prompts
UNION ALL SELECT 'agent_logs', count(*) FROM agent_logs
UNION ALL SELECT 'system_logs', count(*) FROM system_logs
UNION ALL SELECT 'orchestrator_chat', count(*) FROM orchestrator_chat
UNION ALL SELECT 'ai_developer_workflows', count(*) FROM ai_developer_workflows;
"""

TOTALS_FILL_POSTGRES = """
SELECT adw_recount_sessions(NULL);

INSERT INTO daily_costs (day, model_used, orchestrator_agent_id, prompts, tokens_input,
                         tokens_output, cost_nano)
SELECT day, model_used, definition, sum(prompts), sum(tokens_input), sum(tokens_output),
       sum(cost_nano)
FROM (
    SELECT adw_day(p.created_at) AS day, coalesce(p.model_used, '') AS model_used,
           a.orchestrator_agent_id AS definition, 1 AS prompts, p.tokens_input AS tokens_input,
           p.tokens_output AS tokens_output, adw_nano(p.cost_usd) AS cost_nano
    FROM prompts p JOIN agents a ON a.id = p.agent_id
    UNION ALL
    SELECT adw_day(started_at), '', orchestrator_agent_id, 0, 0, 0, adw_nano(cost_usd)
    FROM agents WHERE cost_usd <> 0
) rows
GROUP BY day, model_used, definition;

INSERT INTO session_daily_costs (session_id, day, prompts, tokens_input, tokens_output, cost_nano)
SELECT session_id, day, sum(prompts), sum(tokens_input), sum(tokens_output), sum(cost_nano)
FROM (
    SELECT a.session_id AS session_id, adw_day(p.created_at) AS day, 1 AS prompts,
           p.tokens_input AS tokens_input, p.tokens_output AS tokens_output,
           adw_nano(p.cost_usd) AS cost_nano
    FROM prompts p JOIN agents a ON a.id = p.agent_id
    UNION ALL
    SELECT session_id, adw_day(started_at), 0, 0, 0, adw_nano(cost_usd)
    FROM agents WHERE cost_usd <> 0
) rows
GROUP BY session_id, day;

INSERT INTO row_counts (table_name, row_count)
SELECT 'orchestrator_agents', count(*) FROM orchestrator_agents
UNION ALL SELECT 'agents', count(*) FROM agents
UNION ALL SELECT 'prompts', count(*) FROM prompts
UNION ALL SELECT 'agent_logs', count(*) FROM agent_logs
UNION ALL SELECT 'system_logs', count(*) FROM system_logs
UNION ALL SELECT 'orchestrator_chat', count(*) FROM orchestrator_chat
UNION ALL SELECT 'ai_developer_workflows', count(*) FROM ai_developer_workflows;
"""


# Version 4: an agent's prompt sums (``agents``, ``agent``, ``session``) read from an
# index that holds every column they add, so that they never read a prompt's row (at 10M
# prompts those rows are scattered over a file of gigabytes). It replaces the index on
# (agent_id, created_at), which its first columns still serve. Building it reads every
# prompt once, when an older file is first opened. Run again after a new file's schema
# (where it changes nothing) and after an unversioned one's, which may have the old index.
# On PostgreSQL it also brings the totals file's functions up to date (all of it is
# CREATE OR REPLACE or IF NOT EXISTS): the fold of the shards (``adw_fold_shards``).
_V4_SQLITE = """
DROP INDEX IF EXISTS idx_prompts_agent_created;
CREATE INDEX IF NOT EXISTS idx_prompts_agent_totals
    ON prompts (agent_id, created_at, status, tokens_input, tokens_output, cost_usd);
"""
_V4_POSTGRES = """
DROP INDEX IF EXISTS idx_prompts_agent_created;
CREATE INDEX IF NOT EXISTS idx_prompts_agent_totals
    ON prompts (agent_id, created_at) INCLUDE (status, tokens_input, tokens_output, cost_usd);
"""


# Version 5: the log tables' commit order, on PostgreSQL. Identities hand out ids
# before commit there, so ids do not become visible in increasing order, and a
# follow that pages on them (``logs_after``) could pass over a row committed late.
# Each log row records the top-level id of the transaction that inserted it
# (``tx``); a row is final once ``tx`` is below the snapshot's xmin, and every row
# inserted later gets a larger ``tx``, so (tx, id) orders rows as they become final
# (see ``reports``). The column is added without a default, then given one, so that
# existing rows are not rewritten: their tx stays NULL, before every cursor. The
# index serves the follow. Also in the schema file (a new database), and run after
# it on an unversioned one. SQLite commits one writer at a time: nothing changes.
_V5_POSTGRES = """
ALTER TABLE agent_logs ADD COLUMN IF NOT EXISTS tx xid8;
ALTER TABLE agent_logs ALTER COLUMN tx SET DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS idx_agent_logs_tx_id ON agent_logs (tx, id);
ALTER TABLE system_logs ADD COLUMN IF NOT EXISTS tx xid8;
ALTER TABLE system_logs ALTER COLUMN tx SET DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS idx_system_logs_tx_id ON system_logs (tx, id);
"""


def _read_totals(path: Path) -> str:
    return path.read_text(encoding="utf-8")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "five tables with their CHECKs, foreign keys and indexes"),
    Migration(
        2,
        "orchestrator_chat and ai_developer_workflows",
        sql=_V2_SQLITE,
        postgres_sql=_V2_POSTGRES,
    ),
    Migration(
        3,
        "agents' cost_usd is their own cost; totals kept by triggers for the reports",
        sql=_V3_COST_RULE_SQLITE + _read_totals(TOTALS_PATH) + TOTALS_FILL_SQLITE,
        postgres_sql=_V3_COST_RULE_POSTGRES
        + _read_totals(POSTGRES_TOTALS_PATH)
        + TOTALS_FILL_POSTGRES,
    ),
    Migration(
        4,
        "an agent's prompt sums read from an index alone",
        sql=_V4_SQLITE,
        postgres_sql=_V4_POSTGRES + _read_totals(POSTGRES_TOTALS_PATH),
    ),
    Migration(
        5,
        "PostgreSQL: each log row's transaction, so that a follow sees rows in commit order",
        postgres_sql=_V5_POSTGRES,  # SQLite: nothing (``sql`` empty)
    ),
)
LATEST_VERSION = MIGRATIONS[-1].version


def load_schema(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaError(f"schema file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"schema file {path} cannot be read: {exc}") from exc
    return text


def split_statements(script: str, source: str) -> list[str]:
    """Split a SQL script into complete statements (semicolons inside strings
    and trigger bodies stay where they are)."""
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                statements.append(buffer.strip())
            buffer = ""
    leftover = buffer[:-1]  # the ";" added after the last piece
    if _has_code(leftover):
        raise SchemaError(f"invalid schema file {source}: incomplete statement at the end")
    if not statements:
        raise SchemaError(f"invalid schema file {source}: it holds no SQL statement")
    return statements


def _has_code(sql: str) -> bool:
    lines = (line.split("--", 1)[0].strip() for line in sql.splitlines())
    return any(lines)


def statements_to_upgrade(current_version: int, schema_path: Path) -> list[str]:
    """What brings a database at ``current_version`` to ``LATEST_VERSION``."""
    if current_version == 0:  # a new file, or an unversioned one from before version 1
        return [
            *split_statements(load_schema(schema_path), str(schema_path)),
            *split_statements(_V4_SQLITE, "the agent totals index"),
            *split_statements(_V3_COST_RULE_SQLITE, "the cost rule"),
            *split_statements(load_schema(TOTALS_PATH), str(TOTALS_PATH)),
            *split_statements(TOTALS_FILL_SQLITE, "the totals"),
        ]
    return [
        statement
        for migration in MIGRATIONS
        if migration.version > current_version and migration.sql  # some are PostgreSQL's only
        for statement in split_statements(migration.sql, f"migration {migration.version}")
    ]


def postgres_scripts_to_upgrade(current_version: int, schema_path: Path) -> list[str]:
    """The scripts that bring a PostgreSQL database at ``current_version`` to
    ``LATEST_VERSION``, to run in order (PostgreSQL runs a multi-statement
    script in one call). From version 0 the schema file comes alone first, so
    that what it failed to create can be named before anything uses it."""
    if current_version == 0:
        script = load_schema(schema_path)
        if not _has_code(script):
            raise SchemaError(f"invalid schema file {schema_path}: it holds no SQL statement")
        totals = load_schema(POSTGRES_TOTALS_PATH)
        rest = (_V4_POSTGRES, _V5_POSTGRES, _V3_COST_RULE_POSTGRES, totals, TOTALS_FILL_POSTGRES)
        return [script, "\n".join(rest)]
    return ["\n".join(m.postgres_sql for m in MIGRATIONS if m.version > current_version)]
