"""What an original-era file is: a SQLite file the original ``adw_database``
module wrote (tac_bootstrap's aiosqlite ``DatabaseManager``), not yet
converted by ``orchestrator-store adopt`` (``adoption``). ``connect()`` asks
``is_original_era`` before touching a file, and refuses such a file with
``original_era_refusal``, which names the command."""

from __future__ import annotations

import shlex
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "ORIGINAL_COLUMNS",
    "adopt_command",
    "is_original_era",
    "original_era_refusal",
    "table_columns",
    "table_sql",
    "user_version",
]

# The original module's tables and their columns, as its schema file created
# them (its first five are the store's version-1 tables, column for column).
ORIGINAL_COLUMNS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        name: frozenset(columns.split())
        for name, columns in {
            "orchestrator_agents": """id name description agent_type capabilities
                default_model created_at updated_at""",
            "agents": """id orchestrator_agent_id session_id parent_agent_id status context
                config started_at completed_at cost_usd error_message""",
            "prompts": """id agent_id prompt_type prompt_name prompt_text response_text status
                model_used tokens_input tokens_output cost_usd latency_ms created_at
                completed_at error_message""",
            "agent_logs": "id agent_id log_level log_type message details created_at",
            "system_logs": "id log_level component message details created_at",
            "orchestrator_chat": """id orchestrator_agent_id sender_type receiver_type message
                summary agent_id metadata created_at updated_at""",
            "ai_developer_workflows": """id orchestrator_agent_id adw_name workflow_type
                description status current_step total_steps completed_steps started_at
                completed_at duration_seconds input_data output_data error_message error_step
                error_count metadata created_at updated_at""",
        }.items()
    }
)


def user_version(connection: sqlite3.Connection) -> int:
    """``PRAGMA user_version`` (any row factory)."""
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def table_sql(connection: sqlite3.Connection) -> dict[str, str]:
    """Every table in the file (SQLite's own excluded) with its CREATE statement."""
    rows = connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return {row[0]: row[1] or "" for row in rows}


def table_columns(connection: sqlite3.Connection) -> dict[str, set[str]]:
    """The columns of every table in the file, by table (SQLite's own excluded)."""
    return {
        name: {row[1] for row in connection.execute("SELECT * FROM pragma_table_info(?)", (name,))}
        for name in table_sql(connection)
    }


def is_original_era(connection: sqlite3.Connection) -> bool:
    """Whether one of the store's tables in the file lacks the timestamp CHECKs
    the store's schema gives every table (its GLOB patterns): the original
    module never wrote them, and an earlier store stamped such files version 1
    without converting them. Whether the file holds only the store's tables,
    with its columns, is asked first (the original's columns are a subset of
    the store's), by the caller."""
    return any(
        name in ORIGINAL_COLUMNS and "GLOB" not in sql.upper()
        for name, sql in table_sql(connection).items()
    )


def adopt_command(path: Path | str) -> str:
    """The command that adopts ``path``, ready to paste into a shell."""
    return f"orchestrator-store adopt --db {shlex.quote(str(path))}"


def original_era_refusal(path: Path | str, version: int) -> str:
    """What connect() says when it refuses an original-era file."""
    how = (
        "no schema version, naive timestamps"
        if version == 0
        else f"stamped version {version} by an earlier store without converting it, "
        "naive timestamps"
    )
    return (
        f"{path} was written by the original adw_database module ({how}): run "
        f"`{adopt_command(path)}` to migrate it in place (it writes a backup copy first); "
        "the file was left untouched"
    )
