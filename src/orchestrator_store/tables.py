"""The store's tables, each described once, in schema order.

The schema files (``sql/schema_orchestrator.sql`` and its PostgreSQL twin)
define the tables; this module is their one description in Python. Everything
else derives from it: the SQL builder's allow-list (``dialect.COLUMNS``,
``dialect.GENERATED_IDS``), ``schema.TABLES``, the facade's JSON columns and
foreign keys. ``tests/test_tables.py`` parses both schema files and fails when
either disagrees with this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["LOG_TABLES", "TABLES", "TOTALS_TABLES", "Table"]


@dataclass(frozen=True, eq=False)  # one instance per table: compared by identity
class Table:
    name: str
    columns: tuple[str, ...]  # every column, in schema order
    time_column: str  # when the row was made: list methods order by it (and retention)
    json_columns: tuple[str, ...] = ()
    references: Mapping[str, str] = field(default_factory=dict)  # column -> the table it names
    generated_id: bool = False  # an integer id the database assigns (else a UUID from the store)
    database_defaults: tuple[str, ...] = ()  # columns with a DEFAULT in the schema

    def __post_init__(self) -> None:
        object.__setattr__(self, "references", MappingProxyType(dict(self.references)))
        named = {self.time_column, *self.json_columns, *self.references, *self.database_defaults}
        unknown = sorted(named - set(self.columns))
        if unknown:
            raise ValueError(f"{self.name}: {', '.join(unknown)} not among its columns")


_TABLES = (
    Table(
        "orchestrator_agents",
        columns=(
            "id",
            "name",
            "description",
            "agent_type",
            "capabilities",
            "default_model",
            "created_at",
            "updated_at",
        ),
        time_column="created_at",
    ),
    Table(
        "agents",
        columns=(
            "id",
            "orchestrator_agent_id",
            "session_id",
            "parent_agent_id",
            "status",
            "context",
            "config",
            "started_at",
            "completed_at",
            "cost_usd",
            "error_message",
        ),
        time_column="started_at",
        json_columns=("context", "config"),
        references={"orchestrator_agent_id": "orchestrator_agents", "parent_agent_id": "agents"},
        database_defaults=("status", "cost_usd"),
    ),
    Table(
        "prompts",
        columns=(
            "id",
            "agent_id",
            "prompt_type",
            "prompt_name",
            "prompt_text",
            "response_text",
            "status",
            "model_used",
            "tokens_input",
            "tokens_output",
            "cost_usd",
            "latency_ms",
            "created_at",
            "completed_at",
            "error_message",
        ),
        time_column="created_at",
        references={"agent_id": "agents"},
        database_defaults=("status", "tokens_input", "tokens_output", "cost_usd"),
    ),
    Table(
        "agent_logs",
        columns=("id", "agent_id", "log_level", "log_type", "message", "details", "created_at"),
        time_column="created_at",
        json_columns=("details",),
        references={"agent_id": "agents"},
        generated_id=True,
        database_defaults=("log_level",),
    ),
    Table(
        "system_logs",
        columns=("id", "log_level", "component", "message", "details", "created_at"),
        time_column="created_at",
        json_columns=("details",),
        generated_id=True,
        database_defaults=("log_level",),
    ),
    # Schema version 2.
    Table(
        "orchestrator_chat",
        columns=(
            "id",
            "orchestrator_agent_id",
            "sender_type",
            "receiver_type",
            "message",
            "summary",
            "agent_id",
            "metadata",
            "created_at",
            "updated_at",
        ),
        time_column="created_at",
        json_columns=("metadata",),
        references={"orchestrator_agent_id": "orchestrator_agents", "agent_id": "agents"},
    ),
    Table(
        "ai_developer_workflows",
        columns=(
            "id",
            "orchestrator_agent_id",
            "adw_id",
            "adw_name",
            "workflow_type",
            "description",
            "status",
            "current_step",
            "total_steps",
            "completed_steps",
            "started_at",
            "completed_at",
            "duration_seconds",
            "input_data",
            "output_data",
            "error_message",
            "error_step",
            "error_count",
            "metadata",
            "created_at",
            "updated_at",
        ),
        time_column="created_at",
        json_columns=("input_data", "output_data", "metadata"),
        references={"orchestrator_agent_id": "orchestrator_agents"},
        database_defaults=("status", "total_steps", "completed_steps", "error_count"),
    ),
)

TABLES: Mapping[str, Table] = MappingProxyType({table.name: table for table in _TABLES})

# The append-only logs. Their ids are the database's increasing integers, which
# is what lets log cursors (log_bounds, logs_after) follow them: by id on SQLite,
# by (inserting transaction, id) on PostgreSQL, whose ids are handed out before commit.
LOG_TABLES: tuple[str, ...] = tuple(name for name, table in TABLES.items() if table.generated_id)

# The totals the reports read (sql/totals_orchestrator*.sql): derived from the
# tables above by triggers, never written by the store's methods, never copied
# or exported (a copy's own triggers rebuild them). Their columns, in order.
TOTALS_TABLES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "session_totals": (
            "session_id",
            "agents",
            "active_agents",
            "failed_agents",
            "prompts",
            "failed_prompts",
            "tokens_input",
            "tokens_output",
            "cost_nano",
            "first_activity",
            "last_activity",
        ),
        "daily_costs": (
            "day",
            "model_used",
            "orchestrator_agent_id",
            "shard",
            "prompts",
            "tokens_input",
            "tokens_output",
            "cost_nano",
        ),
        "model_costs": (
            "model_used",
            "orchestrator_agent_id",
            "shard",
            "prompts",
            "tokens_input",
            "tokens_output",
            "cost_nano",
        ),
        "session_daily_costs": (
            "session_id",
            "day",
            "shard",
            "prompts",
            "tokens_input",
            "tokens_output",
            "cost_nano",
        ),
        "row_counts": ("table_name", "shard", "row_count"),
    }
)
