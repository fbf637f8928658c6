"""The orchestrator store: what multi-agent workflows did, in one SQLite file
that creates itself, or unchanged in PostgreSQL.

Everything a user needs is importable from here::

    from orchestrator_store import DatabaseManager, IntegrityError

``DatabaseManager`` is the whole API (see ``orchestrator_store.manager``); the
error classes, the row and input models, ``PoolSettings`` and the allowed
values of every enumerated field (``AGENT_STATUSES``, ``LOG_LEVELS``, ...)
come with it.
"""

from .errors import (
    BusyError,
    ConnectionLostError,
    DatabaseError,
    IntegrityError,
    NotConnectedError,
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
    LOG_LEVELS,
    LOG_TYPES,
    PROMPT_STATUSES,
    PROMPT_TYPES,
    Agent,
    AgentLog,
    AgentStatus,
    AgentType,
    LogLevel,
    LogType,
    OrchestratorAgent,
    Prompt,
    PromptStatus,
    PromptType,
    SystemLog,
)
from .ownership import Transaction

__all__ = [
    "AGENT_STATUSES",
    "AGENT_TYPES",
    "DEFAULT_DB_PATH",
    "LOG_LEVELS",
    "LOG_TYPES",
    "PROMPT_STATUSES",
    "PROMPT_TYPES",
    "Agent",
    "AgentLog",
    "AgentStatus",
    "AgentType",
    "BusyError",
    "ConnectionLostError",
    "DatabaseError",
    "DatabaseManager",
    "IntegrityError",
    "LogLevel",
    "LogType",
    "NotConnectedError",
    "OrchestratorAgent",
    "PoolSettings",
    "Prompt",
    "PromptStatus",
    "PromptType",
    "SchemaError",
    "StatementTimeoutError",
    "SystemLog",
    "Transaction",
    "TransactionScopeError",
    "ValidationError",
]
