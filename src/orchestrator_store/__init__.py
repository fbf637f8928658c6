"""The orchestrator store: what multi-agent workflows did, in one SQLite file
that creates itself, or unchanged in PostgreSQL.

Everything a user needs is importable from here::

    from orchestrator_store import DatabaseManager, IntegrityError

``DatabaseManager`` is the whole API (see ``orchestrator_store.manager``); the
error classes, the row and input models, ``PoolSettings`` and the allowed
values of every enumerated field (``AGENT_STATUSES``, ``LOG_LEVELS``, ...)
come with it. ``SyncDatabaseManager`` offers the same methods to code that
is not async (``orchestrator_store.sync_manager``), and ``workflow_tracking``
records workflow runs from plain scripts without ever raising.
"""

from . import workflow_tracking  # a submodule: the helpers for synchronous workflow scripts
from .errors import (
    BusyError,
    ConnectionLostError,
    DatabaseError,
    IntegrityError,
    NotConnectedError,
    ReadOnlyError,
    ReceiverError,
    SchemaError,
    StatementTimeoutError,
    TransactionScopeError,
    ValidationError,
)
from .location import DEFAULT_DB_PATH, PoolSettings
from .manager import DatabaseManager
from .models import (
    AGENT_STATUSES,
    AGENT_TYPES,
    CHAT_PARTIES,
    LOG_LEVELS,
    LOG_TYPES,
    PROMPT_STATUSES,
    PROMPT_TYPES,
    WORKFLOW_STATUSES,
    Agent,
    AgentLog,
    AgentStatus,
    AgentType,
    AiDeveloperWorkflow,
    ChatParty,
    LogLevel,
    LogType,
    OrchestratorAgent,
    OrchestratorChat,
    Prompt,
    PromptStatus,
    PromptType,
    RetentionPolicy,
    SystemLog,
    WorkflowStatus,
)
from .ownership import Transaction
from .retention import PruneReport
from .sync_manager import SyncDatabaseManager

__all__ = [
    "AGENT_STATUSES",
    "AGENT_TYPES",
    "CHAT_PARTIES",
    "DEFAULT_DB_PATH",
    "LOG_LEVELS",
    "LOG_TYPES",
    "PROMPT_STATUSES",
    "PROMPT_TYPES",
    "WORKFLOW_STATUSES",
    "Agent",
    "AgentLog",
    "AgentStatus",
    "AgentType",
    "AiDeveloperWorkflow",
    "BusyError",
    "ChatParty",
    "ConnectionLostError",
    "DatabaseError",
    "DatabaseManager",
    "IntegrityError",
    "LogLevel",
    "LogType",
    "NotConnectedError",
    "OrchestratorAgent",
    "OrchestratorChat",
    "PoolSettings",
    "Prompt",
    "PromptStatus",
    "PromptType",
    "PruneReport",
    "ReadOnlyError",
    "ReceiverError",
    "RetentionPolicy",
    "SchemaError",
    "StatementTimeoutError",
    "SyncDatabaseManager",
    "SystemLog",
    "Transaction",
    "TransactionScopeError",
    "ValidationError",
    "WorkflowStatus",
    "workflow_tracking",
]
