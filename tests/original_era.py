"""Files as the original adw_database module left them ("original-era files").

Our own SQL, written from what is known of those files: the store's table
names and columns (plus orchestrator_chat and ai_developer_workflows), no
schema version, ``DEFAULT (datetime('now'))`` timestamps, no timestamp CHECKs,
a trigger that stamps ``updated_at`` with ``datetime('now')``, its own indexes,
foreign keys SQLite never enforced (the module did not turn them on). The rows
are what its users wrote: naive ``datetime.utcnow().isoformat()`` times, the
sync bridge's non-UUID ids and plain-text context, a workflow keyed by its
8-hex ADW id, and a few rows no store could take (``LEFT_OUT``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from orchestrator_store.schema import DEFAULT_SCHEMA_PATH, statements_to_upgrade

ORIGINAL_SCHEMA = """
CREATE TABLE orchestrator_agents (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    description   TEXT,
    agent_type    TEXT NOT NULL,
    capabilities  TEXT,
    default_model TEXT,
    created_at    TEXT NOT NULL DEFAULT (datetime('now')),
    updated_at    TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE agents (
    id                    TEXT PRIMARY KEY,
    orchestrator_agent_id TEXT NOT NULL REFERENCES orchestrator_agents (id) ON DELETE CASCADE,
    session_id            TEXT NOT NULL,
    parent_agent_id       TEXT REFERENCES agents (id) ON DELETE SET NULL,
    status                TEXT NOT NULL DEFAULT 'initializing',
    context               TEXT,
    config                TEXT,
    started_at            TEXT NOT NULL DEFAULT (datetime('now')),
    completed_at          TEXT,
    cost_usd              REAL DEFAULT 0.0,
    error_message         TEXT
);
CREATE TABLE prompts (
    id            TEXT PRIMARY KEY,
    agent_id      TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    prompt_type   TEXT NOT NULL,
    prompt_name   TEXT,
    prompt_text   TEXT NOT NULL,
    response_text TEXT,
    status        TEXT NOT NULL DEFAULT 'pending',
    model_used    TEXT,
    tokens_input  INTEGER DEFAULT 0,
    tokens_output INTEGER DEFAULT 0,
    cost_usd      REAL DEFAULT 0.0,
    latency_ms    INTEGER,
    created_at    TEXT NOT NULL DEFAULT (datetime('now')),
    completed_at  TEXT,
    error_message TEXT
);
CREATE TABLE agent_logs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id   TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    log_level  TEXT DEFAULT 'INFO',
    log_type   TEXT NOT NULL,
    message    TEXT NOT NULL,
    details    TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE system_logs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    log_level  TEXT DEFAULT 'INFO',
    component  TEXT NOT NULL,
    message    TEXT NOT NULL,
    details    TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TRIGGER stamp_orchestrator_agents AFTER UPDATE ON orchestrator_agents
BEGIN
    UPDATE orchestrator_agents SET updated_at = datetime('now') WHERE id = NEW.id;
END;
CREATE INDEX by_session ON agents (session_id);
CREATE INDEX prompts_by_agent ON prompts (agent_id);
CREATE INDEX logs_by_agent ON agent_logs (agent_id);
"""

LATER_TABLES = """
CREATE TABLE orchestrator_chat (
    id                    TEXT PRIMARY KEY,
    orchestrator_agent_id TEXT NOT NULL REFERENCES orchestrator_agents (id) ON DELETE CASCADE,
    sender_type           TEXT NOT NULL,
    receiver_type         TEXT NOT NULL,
    message               TEXT NOT NULL,
    summary               TEXT,
    agent_id              TEXT REFERENCES agents (id) ON DELETE CASCADE,
    metadata              TEXT DEFAULT '{}',
    created_at            TEXT NOT NULL DEFAULT (datetime('now')),
    updated_at            TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE ai_developer_workflows (
    id                    TEXT PRIMARY KEY,
    orchestrator_agent_id TEXT REFERENCES orchestrator_agents (id) ON DELETE CASCADE,
    adw_name              TEXT NOT NULL,
    workflow_type         TEXT NOT NULL,
    description           TEXT,
    status                TEXT NOT NULL DEFAULT 'pending',
    current_step          TEXT,
    total_steps           INTEGER DEFAULT 0,
    completed_steps       INTEGER DEFAULT 0,
    started_at            TEXT,
    completed_at          TEXT,
    duration_seconds      INTEGER,
    input_data            TEXT DEFAULT '{}',
    output_data           TEXT DEFAULT '{}',
    error_message         TEXT,
    error_step            TEXT,
    error_count           INTEGER DEFAULT 0,
    metadata              TEXT DEFAULT '{}',
    created_at            TEXT NOT NULL DEFAULT (datetime('now')),
    updated_at            TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TRIGGER stamp_workflows AFTER UPDATE ON ai_developer_workflows
BEGIN
    UPDATE ai_developer_workflows SET updated_at = datetime('now') WHERE id = NEW.id;
END;
CREATE INDEX chat_by_orchestrator ON orchestrator_chat (orchestrator_agent_id);
CREATE INDEX workflows_by_status ON ai_developer_workflows (status);
"""

# Ids the rows below use (the original made uuid4 ids; its bridge made the others).
PLANNER = "3f1c2a9e-8b7d-4e6f-9a0b-1c2d3e4f5a6b"
BRIDGE = "adw-orchestrator"
SHOUTED = "A0B1C2D3-E4F5-4A6B-8C7D-9E0F1A2B3C4D"  # a uuid4 in capitals
AGENT = "6e5d4c3b-2a19-4807-b6a5-948372615049"
BRIDGE_AGENT = "0f9e8d7c-6b5a-4948-8372-615049382716"
CHILD = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
ORPHANED_AGENT = "7c6b5a49-3827-4165-9049-382716059483"
PROMPT = "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e"
BAD_PROMPT = "3c4d5e6f-7a8b-4c9d-8e1f-2a3b4c5d6e7f"
CHAT = "4d5e6f7a-8b9c-4d0e-9f2a-3b4c5d6e7f8a"
BLANK_CHAT = "5e6f7a8b-9c0d-4e1f-8a3b-4c5d6e7f8a9b"
ADW_ID = "a1b2c3d4"
BAD_WORKFLOW = "e5f6a7b8"
HOSTILE = "evil\x1b[2J\x1b]0;owned\x07"  # terminal escapes in an id a row is refused with
MISSING_AGENT = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
MISSING_DEFINITION = "deadbeef-0000-4000-8000-000000000000"

# (table, original id) of every row no store can take, with what its reason names.
LEFT_OUT: dict[tuple[str, str | int], str] = {
    ("orchestrator_agents", HOSTILE): "agent_type",
    ("agents", ORPHANED_AGENT): "orchestrator_agent_id",
    ("prompts", BAD_PROMPT): "prompt_type",
    ("agent_logs", 3): "log_type",
    ("agent_logs", 4): "message",
    ("agent_logs", 5): "agent_id",
    ("agent_logs", 6): "agent_id",
    ("orchestrator_chat", BLANK_CHAT): "message",
    ("ai_developer_workflows", BAD_WORKFLOW): "status",
}
OLD_LOG_SEQUENCE = 40  # logs 7..40 were deleted by the original's cleanup

ORIGINAL_ROWS: dict[str, list[dict[str, Any]]] = {
    "orchestrator_agents": [
        {
            "id": PLANNER,
            "name": "planner",
            "description": "Plans the work",
            "agent_type": "planner",
            "created_at": "2026-11-30T01:20:04.981620",
            "updated_at": "2026-11-30T01:20:04.981620",
        },
        {
            "id": BRIDGE,
            "name": "adw-orchestrator",
            "agent_type": "orchestrator",
            "created_at": "2026-11-30 01:20:05",
            "updated_at": "2026-11-30 01:25:00",
        },
        # created_at and updated_at left to the DEFAULT: datetime('now') text.
        {"id": SHOUTED, "name": "reviewer", "agent_type": "reviewer"},
        {"id": HOSTILE, "name": "wizard", "agent_type": "wizard"},
    ],
    "agents": [
        {
            "id": AGENT,
            "orchestrator_agent_id": PLANNER,
            "session_id": "feature_13",
            "status": "executing",
            "context": '{"issue": 13,  "files": ["a.py"]}',
            "started_at": "2026-11-30T01:20:05.000001",
            "cost_usd": None,
        },
        {
            "id": BRIDGE_AGENT,
            "orchestrator_agent_id": BRIDGE,
            "session_id": ADW_ID,
            "status": "completed",
            "context": "Bridge sync for ADW a1b2c3d4",
            "started_at": "2026-11-30 01:21:00",
            "completed_at": "2026-11-30T03:22:00+02:00",
            "cost_usd": 0.25,
        },
        {
            "id": CHILD,
            "orchestrator_agent_id": SHOUTED.lower(),
            "session_id": "feature_13",
            "parent_agent_id": MISSING_AGENT,
            "status": "reviewing",
            "started_at": "2026-11-30T01:21:30",
        },
        {
            "id": ORPHANED_AGENT,
            "orchestrator_agent_id": MISSING_DEFINITION,
            "session_id": "feature_12",
            "started_at": "2026-11-29T10:00:00",
        },
    ],
    "prompts": [
        {
            "id": PROMPT,
            "agent_id": AGENT,
            "prompt_type": "adw",
            "prompt_text": "Plan issue 13",
            "status": "completed",
            "tokens_input": None,
            "tokens_output": 120,
            "cost_usd": 0.01,
            "created_at": "2026-11-30T01:20:06",
            "completed_at": "2026-11-30T01:20:09.5",
        },
        {
            "id": BAD_PROMPT,
            "agent_id": AGENT,
            "prompt_type": "shout",
            "prompt_text": "LOUDER",
            "created_at": "2026-11-30T01:20:07",
        },
    ],
    "agent_logs": [
        {
            "id": 1,
            "agent_id": AGENT,
            "log_level": None,
            "log_type": "milestone",
            "message": "started",
            "details": '{"phase": "plan"}',
            "created_at": "2026-11-30T01:20:05.100000",
        },
        {
            "id": 2,
            "agent_id": BRIDGE_AGENT,
            "log_level": "INFO",
            "log_type": "state_change",
            "message": "synced",
            "created_at": "2026-11-30 01:21:01",
        },
        {
            "id": 3,
            "agent_id": AGENT,
            "log_type": "orchestrator",  # the bridge's own kind: not one the store knows
            "message": "handed over",
            "created_at": "2026-11-30T01:20:08",
        },
        {
            "id": 4,
            "agent_id": AGENT,
            "log_type": "milestone",
            "message": "   ",
            "created_at": "2026-11-30T01:20:09",
        },
        {
            "id": 5,
            "agent_id": MISSING_AGENT,
            "log_type": "error",
            "message": "orphan",
            "created_at": "2026-11-30T01:20:10",
        },
        {
            "id": 6,
            "agent_id": ORPHANED_AGENT,
            "log_type": "milestone",
            "message": "log of an agent whose definition is gone",
            "created_at": "2026-11-29T10:00:01",
        },
    ],
    "system_logs": [
        {
            "id": 1,
            "log_level": "WARNING",
            "component": "bridge",
            "message": "sync lagging",
            "details": "not json at all",
            "created_at": "2026-11-30T01:20:04.000002",
        },
        # created_at left to the DEFAULT.
        {"id": 2, "log_level": None, "component": "orchestrator", "message": "session started"},
    ],
    "orchestrator_chat": [
        {
            "id": CHAT,
            "orchestrator_agent_id": BRIDGE,
            "sender_type": "user",
            "receiver_type": "orchestrator",
            "message": "Build issue 13",
            "agent_id": BRIDGE_AGENT,
            "created_at": "2026-11-30T01:20:30.250000",
            "updated_at": "2026-11-30T01:20:30.250000",
        },
        {
            "id": BLANK_CHAT,
            "orchestrator_agent_id": BRIDGE,
            "sender_type": "orchestrator",
            "receiver_type": "user",
            "message": "",
            "created_at": "2026-11-30T01:20:31",
            "updated_at": "2026-11-30T01:20:31",
        },
    ],
    "ai_developer_workflows": [
        {
            "id": ADW_ID,
            "orchestrator_agent_id": BRIDGE,
            "adw_name": ADW_ID,
            "workflow_type": "sdlc",
            "status": "completed",
            "current_step": "review",
            "total_steps": 5,
            "completed_steps": 5,
            "started_at": "2026-11-30T01:20:00",
            "completed_at": "2026-11-30T01:22:00",
            "duration_seconds": 120,
            "input_data": '{"issue": 13}',
            "error_count": None,
            "created_at": "2026-11-30T01:20:00",
            "updated_at": "2026-11-30 01:22:00",
        },
        {
            "id": BAD_WORKFLOW,
            "adw_name": BAD_WORKFLOW,
            "workflow_type": "patch",
            "status": "exploded",
            "created_at": "2026-11-30T01:23:00",
            "updated_at": "2026-11-30T01:23:00",
        },
    ],
}
FIVE_TABLES = ("orchestrator_agents", "agents", "prompts", "agent_logs", "system_logs")


def write_original_era_file(
    path: Path,
    *,
    journal_mode: str = "wal",
    later_tables: bool = True,
    unconvertible_rows: bool = True,
) -> None:
    """An original-era file at ``path`` holding ``ORIGINAL_ROWS`` (the later
    tables and their rows only with ``later_tables``; the rows of ``LEFT_OUT``
    only with ``unconvertible_rows``). WAL, as the original module set it;
    ``journal_mode="delete"`` keeps the file complete on its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute(f"PRAGMA journal_mode = {journal_mode}")
        raw.executescript(ORIGINAL_SCHEMA + (LATER_TABLES if later_tables else ""))
        for table, rows in ORIGINAL_ROWS.items():
            if table not in FIVE_TABLES and not later_tables:
                continue
            for row in rows:
                if not unconvertible_rows and (table, row["id"]) in LEFT_OUT:
                    continue
                names = ", ".join(row)
                marks = ", ".join("?" * len(row))
                raw.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(row.values()))
        raw.execute(
            "UPDATE sqlite_sequence SET seq = ? WHERE name = 'agent_logs'", (OLD_LOG_SEQUENCE,)
        )
    finally:
        raw.close()


def stamp_as_an_earlier_store_did(path: Path) -> None:
    """What store version 1 did to an original-era file of five tables: ran its
    schema (CREATE TABLE IF NOT EXISTS: nothing; its indexes: created on the
    old tables), stamped version 1 and switched to WAL, converting nothing. It
    then wrote a row of its own, in its own format."""
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements_to_upgrade(0, DEFAULT_SCHEMA_PATH):
            if "orchestrator_chat" in statement or "ai_developer_workflows" in statement:
                continue  # version 2's tables: that store did not know them
            raw.execute(statement)
        raw.execute("PRAGMA user_version = 1")
        raw.execute("PRAGMA journal_mode = WAL")
        raw.execute(
            "INSERT INTO system_logs (log_level, component, message, created_at) "
            "VALUES ('INFO', 'store', 'written by store version 1', "
            "'2026-12-01T00:00:00.000000+00:00')"
        )
    finally:
        raw.close()


def all_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in the file (SQLite's own excluded), by rowid."""
    raw = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        names = [
            name
            for (name,) in raw.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {
            name: raw.execute(f"SELECT * FROM {name} ORDER BY rowid").fetchall() for name in names
        }
    finally:
        raw.close()
