"""The orchestrator store: what multi-agent workflows did, in one SQLite file
(or, unchanged, in PostgreSQL).

Zero configuration
    No server, no credentials, no migration command. The first
    ``connect()`` creates the file (and its folders), applies the schema and
    records its version; later connects upgrade older files in place and
    refuse files written by a newer version without touching them.

Usage::

    import asyncio
    from datetime import UTC, datetime

    from orchestrator_store import DatabaseManager

    async def main() -> None:
        async with DatabaseManager("orchestrator.db") as db:
            planner = await db.create_orchestrator_agent(
                "planner", "Breaks work into steps", "planner", default_model="claude-sonnet"
            )
            agent = await db.create_agent(planner, "feature_Tac_14_Task_8", context={"issue": 14})
            prompt = await db.create_prompt(agent, "adw", "Plan issue 14")
            await db.update_prompt(
                prompt, status="completed", response_text="1. ...", tokens_input=812,
                tokens_output=230, cost_usd=0.0061, latency_ms=2140,
            )
            await db.add_agent_cost(agent, 0.0061)
            await db.create_agent_log(agent, "INFO", "milestone", "plan ready", {"steps": 5})
            async with db.transaction():  # both rows or neither
                await db.update_agent(agent, status="completed", completed_at=datetime.now(UTC))
                await db.create_system_log("INFO", "orchestrator", "session finished")
            print(await db.get_agent(agent))

    asyncio.run(main())

Lifecycle
    ``DatabaseManager(...)`` does no I/O. ``await db.connect()`` (or
    ``async with``) opens the file; ``await db.close()`` closes it. Both are
    idempotent; a closed store can be connected again. Calling a method before
    ``connect()`` or after ``close()`` raises ``NotConnectedError`` (a
    ``DatabaseError``) saying so.
    Any number of asyncio tasks may share one manager, and any number of
    processes may open the same file, each with its own manager.

The database
    ``db_path`` is the argument, else the environment variable
    ``ORCHESTRATOR_DATABASE_URL``, else ``ORCHESTRATOR_DB_PATH``, else
    ``default_database`` (a project's ``adw_database.py`` passes the one its
    ``config.yml`` names), else ``orchestrator.db`` in the current folder.
    ``postgresql://`` (or ``postgres://``) URLs select PostgreSQL;
    ``sqlite:///`` URLs and plain paths select a SQLite file. On SQLite, each
    connection runs in WAL mode with ``foreign_keys=ON``, the configured
    ``busy_timeout`` (seconds) and ``synchronous`` level. Values are bound as
    parameters, never formatted into SQL. UUIDs, timestamps and JSON are
    stored as TEXT: the ids of definitions, agents, prompts, chat messages and
    workflows are canonical time-ordered UUIDs (version 7, made by the store),
    timestamps one fixed UTC format (``2026-01-31T12:00:00.000000+00:00``, so
    text order is time order), JSON compact UTF-8 that ``json_valid()``
    accepts; log ids are integers the database assigns. Rows come back as
    plain dicts with JSON decoded and timestamps as strings, on both backends.
    ``tables`` describes each table (columns, JSON columns, foreign keys);
    ``models`` lists the allowed values of every enumerated parameter
    (``AGENT_STATUSES``, ``LOG_LEVELS``, ...).

Errors
    ``DatabaseError`` is the root; ``ValidationError`` (also a ``ValueError``)
    means bad input caught before any SQL ran, ``IntegrityError`` that the
    database refused the write, ``SchemaError`` a missing or invalid schema file
    or a database of a newer version, ``NotConnectedError`` a store that is not
    open, ``TransactionScopeError`` a write from a task started inside another
    task's ``transaction()``, ``ReadOnlyError`` SQL that ``query()`` refused
    because it would not only read; ``BusyError``, ``ConnectionLostError`` and
    ``StatementTimeoutError`` are ``retryable``. Driver errors are kept as
    ``__cause__``.

PostgreSQL
    Everything above is the store's interface, not SQLite's: values are held
    to what PostgreSQL stores too (no NaN or Infinity in JSON, no NUL in text,
    64-bit integers), SQL is built in one place per dialect (``dialect``), and
    each backend (``sqlite_backend``, ``postgres_backend``) is the only module
    that knows its driver. ``DatabaseManager("postgresql://user@host/db")``
    stores the same rows in native UUID, TIMESTAMPTZ and JSONB columns through
    an asyncpg pool (``pool=PoolSettings(...)`` sizes it; asyncpg is needed only
    then: the ``postgres`` extra). ``orchestrator-store copy-to-postgres`` moves
    an existing SQLite file there.

Reports
    The command line's read-only views (``session_summaries``,
    ``cost_totals``, ``log_bounds``, ``list_logs``, ``logs_after``,
    ``find_agents_by_prefix``/``_suffix``, ``find_workflows_by_prefix``/``_suffix``)
    are methods of the manager too, aggregated in SQL by ``reports``.

``python -m orchestrator_store [--db PATH|URL] [--demo]`` creates or opens a store
and prints its path, schema version and rows per table (``orchestrator_store.demo``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pydantic import BaseModel

from . import retention
from .backend import Backend
from .dialect import Condition, SqlBuilder
from .errors import (
    NOT_CONNECTED,
    BusyError,
    ConnectionLostError,
    DatabaseError,
    IntegrityError,
    NotConnectedError,
    ReadOnlyError,
    SchemaError,
    StatementTimeoutError,
    TransactionScopeError,
    ValidationError,
    read_only_refusal,
)
from .ids import new_id
from .json_codec import decode_json_columns, encode_json
from .location import PoolSettings, redact_url, resolve_database
from .models import (
    MAX_INTEGER,
    AdwIdQuery,
    AgentCostIncrement,
    AgentCreate,
    AgentLogCreate,
    AgentLogQuery,
    AgentLogTypeQuery,
    AgentQuery,
    AgentUpdate,
    AiDeveloperWorkflowCreate,
    AiDeveloperWorkflowQuery,
    AiDeveloperWorkflowUpdate,
    LogTypeQuery,
    OrchestratorAgentCreate,
    OrchestratorAgentUpdate,
    OrchestratorChatCreate,
    OrchestratorChatQuery,
    OrchestratorChatUpdate,
    Page,
    PromptCreate,
    PromptQuery,
    PromptUpdate,
    ReadOnlyQuery,
    RetentionAge,
    RetentionPolicy,
    SystemLogCreate,
    SystemLogQuery,
    TableScan,
    WorkflowEnd,
    WorkflowStep,
    canonical_uuid,
    format_timestamp,
    parse_input,
    parse_rows,
    shown,
    utc_now,
)
from .ownership import Transaction
from .reports import Reports
from .retention import PruneReport
from .schema import DEFAULT_POSTGRES_SCHEMA_PATH, DEFAULT_SCHEMA_PATH
from .sqlite_backend import READER_MMAP_BYTES, SQLiteBackend
from .sqlite_reader import SQLiteReaderBackend
from .tables import LOG_TABLES, TABLES

__all__ = [
    "BusyError",
    "ConnectionLostError",
    "DatabaseError",
    "DatabaseManager",
    "IntegrityError",
    "NotConnectedError",
    "PoolSettings",
    "ReadOnlyError",
    "SchemaError",
    "StatementTimeoutError",
    "Transaction",
    "TransactionScopeError",
    "ValidationError",
]

logger = logging.getLogger(__name__)

# The tables that have JSON columns, and those columns (the command line's exports use it).
JSON_COLUMNS: dict[str, tuple[str, ...]] = {
    name: table.json_columns for name, table in TABLES.items() if table.json_columns
}

ModelT = TypeVar("ModelT", bound=BaseModel)
Row = dict[str, Any]


def _postgres_backend(
    url: str, schema_path: Path, pool: PoolSettings, *, read_only: bool
) -> Backend:
    """Imported here, so that the store works without asyncpg until a
    PostgreSQL URL is used."""
    try:
        from .postgres_backend import PostgresBackend
        from .postgres_reader import PostgresReaderBackend
    except ImportError as exc:
        if exc.name != "asyncpg":
            raise
        raise DatabaseError(
            f"{redact_url(url)}: PostgreSQL needs the asyncpg driver, which is not "
            "installed: `pip install asyncpg` (or `uv add asyncpg`)"
        ) from exc
    backend = PostgresReaderBackend if read_only else PostgresBackend
    return backend(url, schema_path=schema_path, pool=pool)


class DatabaseManager:
    """Async access to the orchestrator store. See the module docstring.

    Attributes: ``db_path`` (the SQLite file, or ``None`` on PostgreSQL),
    ``database_url`` (the PostgreSQL URL, or ``None`` on SQLite), ``location``
    (what to show: the path, or the URL without its password),
    ``schema_path`` (the schema file a new database gets) and ``read_only``."""

    def __init__(
        self,
        db_path: str | os.PathLike[str] | None = None,
        *,
        schema_path: str | os.PathLike[str] | None = None,
        busy_timeout: float = 5.0,
        synchronous: str = "NORMAL",
        pool: PoolSettings | None = None,
        default_database: str | os.PathLike[str] | None = None,
        read_mmap_bytes: int = READER_MMAP_BYTES,
        retention: RetentionPolicy | None = None,
        read_only: bool = False,
    ) -> None:
        """``db_path``: a SQLite file path, a ``sqlite:///`` URL or a
        ``postgresql://`` URL; when it is ``None``, ``$ORCHESTRATOR_DATABASE_URL``,
        else ``$ORCHESTRATOR_DB_PATH``, else ``default_database`` (a project's
        configured database), else ``orchestrator.db`` in the current folder.
        ``busy_timeout``, ``synchronous`` and ``read_mmap_bytes`` (how much of the
        file each reader maps, 256 MiB; 0 copies pages instead, keeping the mapped
        file out of the process's RSS) apply to SQLite, ``pool`` to PostgreSQL.
        ``retention`` (off unless given): a ``RetentionPolicy`` with ``every``
        seconds, which ``prune()`` applies in a background task from
        ``connect()`` (the first run at once) until ``close()``; a failed run
        is logged, never raised (see ``retention``). ``read_only``: open an
        existing store, at this store's schema version, only to read it (no
        file or database created, nothing migrated; SQLite ``mode=ro``,
        PostgreSQL READ ONLY transactions); every write raises
        ``ReadOnlyError`` (see ``sqlite_reader``, ``postgres_reader``)."""
        if read_only and retention is not None:
            raise ValidationError(
                "retention deletes rows: a store opened read_only=True cannot have it",
                field="retention",
            )
        database = resolve_database(db_path, default=default_database)
        self._backend: Backend
        if isinstance(database, Path):
            self.db_path: Path | None = database
            self.database_url: str | None = None
            self.location = str(database)  # what reports show
            self.schema_path = Path(schema_path) if schema_path is not None else DEFAULT_SCHEMA_PATH
            sqlite_backend = SQLiteReaderBackend if read_only else SQLiteBackend
            self._backend = sqlite_backend(
                database,
                schema_path=self.schema_path,
                busy_timeout=busy_timeout,
                synchronous=synchronous,
                read_mmap_bytes=read_mmap_bytes,
            )
        else:
            self.db_path = None
            self.database_url = database
            self.location = redact_url(database)
            self.schema_path = (
                Path(schema_path) if schema_path is not None else DEFAULT_POSTGRES_SCHEMA_PATH
            )
            self._backend = _postgres_backend(
                database, self.schema_path, pool or PoolSettings(), read_only=read_only
            )
        self.read_only = read_only
        self._sql = SqlBuilder(self._backend.dialect)
        self._reports = Reports(self._backend, self._sql, self._require_open)
        self._closed = False
        self._retention = self._automatic_retention(retention)

    @property
    def backend_name(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._backend.dialect.name

    def __repr__(self) -> str:
        state = "open" if self._backend.is_open else "closed" if self._closed else "new"
        return f"<DatabaseManager {self.location!r} {state}>"

    # --- lifecycle -------------------------------------------------------------

    async def connect(self) -> None:
        """Open the database, creating it or upgrading its schema as needed
        (``SchemaError`` for one of a newer version). Does nothing when open."""
        if not self._backend.is_open:
            await self._backend.open()
            self._closed = False
            if self._retention is not None:
                self._retention.start()

    async def close(self) -> None:
        """Close every connection; ``connect()`` opens the store again. Does
        nothing when not open."""
        if self._backend.is_open:
            if self._retention is not None:
                await self._retention.stop()
            await self._backend.close()
            self._closed = True

    async def __aenter__(self) -> DatabaseManager:
        """``connect()``, then the manager itself."""
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """``close()``, whether the block raised or not."""
        await self.close()

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """Every write this task makes inside the block commits together at
        exit, or none does if the block raises. Nested blocks are savepoints.

        ``async with db.transaction() as tx`` gives a ``Transaction`` whose
        ``committed`` says afterwards whether the writes are stored: the one
        thing an exception cannot say when the task was cancelled while the
        COMMIT ran (it finishes, then ``CancelledError`` propagates). The block
        belongs to this task: tasks started inside it cannot write while it
        is open (``TransactionScopeError``)."""
        self._require_open()
        return self._backend.transaction()

    def _refuse_if_read_only(self, what: str) -> None:
        """A call that writes only when it finds something to write is refused
        whole on a read-only store, not just when it gets that far."""
        if self.read_only:
            read_only_refusal(self.location, what)

    def _require_open(self) -> None:
        if not self._backend.is_open:
            if self._closed:
                raise NotConnectedError(
                    "the store is closed: call `await db.connect()` to reopen it"
                )
            raise NotConnectedError(NOT_CONNECTED)

    async def schema_version(self) -> int:
        """The database's schema version (``schema.LATEST_VERSION`` once open)."""
        self._require_open()
        return await self._backend.schema_version()

    async def count_rows(self) -> dict[str, int]:
        """Rows per table: table name -> count, in schema order (kept by
        triggers, so read at once however many rows there are)."""
        return await self._reports.count_rows()

    # --- orchestrator_agents ---------------------------------------------------

    async def create_orchestrator_agent(
        self,
        name: str,
        description: str | None,
        agent_type: str,
        capabilities: str | None = None,
        default_model: str | None = None,
    ) -> str:
        """Define a kind of agent; return its id. ``agent_type``: one of
        ``AGENT_TYPES``; ``name`` is unique (``IntegrityError`` if taken)."""
        table = "orchestrator_agents"
        data = self._parse(
            OrchestratorAgentCreate,
            table,
            name=name,
            description=description,
            agent_type=agent_type,
            capabilities=capabilities,
            default_model=default_model,
        )
        now = utc_now()
        row = {"id": new_id(), **data.model_dump(), "created_at": now, "updated_at": now}
        await self._insert(table, row)
        return str(row["id"])

    async def get_orchestrator_agent(self, agent_id: str) -> Row | None:
        """The definition with this id, or ``None``."""
        return await self._get("orchestrator_agents", agent_id)

    async def list_orchestrator_agents(
        self, *, limit: int | None = None, offset: int = 0
    ) -> list[Row]:
        """Definitions, newest first; ``limit`` and ``offset`` page them."""
        table = "orchestrator_agents"
        page = self._parse(Page, table, limit=limit, offset=offset)
        return await self._select(table, {}, page, newest_first=True)

    async def update_orchestrator_agent(self, agent_id: str, **fields: Any) -> bool:
        """Fields: name, description, agent_type (one of ``AGENT_TYPES``),
        capabilities, default_model; ``updated_at`` follows. False if no
        definition has this id."""
        table = "orchestrator_agents"
        changes = self._parse_update(OrchestratorAgentUpdate, table, fields)
        return await self._update(table, agent_id, {**changes, "updated_at": utc_now()})

    async def delete_orchestrator_agent(self, agent_id: str) -> bool:
        """Delete the definition and, by cascade, its agents, prompts and logs.
        False if no definition has this id."""
        return await self._delete("orchestrator_agents", agent_id)

    # --- agents ----------------------------------------------------------------

    async def create_agent(
        self,
        orchestrator_agent_id: str,
        session_id: str,
        parent_agent_id: str | None = None,
        status: str = "initializing",
        context: Any = None,
        config: Any = None,
    ) -> str:
        """Start an agent of a definition in a session; return its id.
        ``status``: one of ``AGENT_STATUSES``; ``context``, ``config``: JSON values."""
        table = "agents"
        data = self._parse(
            AgentCreate,
            table,
            orchestrator_agent_id=orchestrator_agent_id,
            session_id=session_id,
            parent_agent_id=parent_agent_id,
            status=status,
            context=context,
            config=config,
        )
        row = {"id": new_id(), **data.model_dump(), "started_at": utc_now()}
        await self._insert(table, row)
        return str(row["id"])

    async def get_agent(self, agent_id: str) -> Row | None:
        """The agent with this id, or ``None``."""
        return await self._get("agents", agent_id)

    async def list_agents(
        self,
        session_id: str | None = None,
        *,
        orchestrator_agent_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        """Agents, newest first, of a session, a definition and a ``status``
        (one of ``AGENT_STATUSES``) when given; ``limit`` and ``offset`` page them."""
        table = "agents"
        query = self._parse(
            AgentQuery,
            table,
            session_id=session_id,
            orchestrator_agent_id=orchestrator_agent_id,
            status=status,
            limit=limit,
            offset=offset,
        )
        filters = query.model_dump(include={"session_id", "orchestrator_agent_id", "status"})
        return await self._select(table, filters, query, newest_first=True)

    async def update_agent(self, agent_id: str, **fields: Any) -> bool:
        """Fields: status (one of ``AGENT_STATUSES``), completed_at, cost_usd,
        error_message, context, config. False if no agent has this id."""
        table = "agents"
        return await self._update(table, agent_id, self._parse_update(AgentUpdate, table, fields))

    async def add_agent_cost(self, agent_id: str, cost_usd: float) -> bool:
        """Add to an agent's cost in one statement: concurrent callers, in any
        number of processes, never lose an increment. The total stays at most
        ``MAX_COST_USD``: an increment that would pass it raises
        ``ValidationError`` (field ``cost_usd``) and adds nothing; a missing
        agent returns False."""
        table = "agents"
        data = self._parse(AgentCostIncrement, table, agent_id=agent_id, cost_usd=cost_usd)
        sql = self._sql.increment_by_id(table, "cost_usd")
        params = (data.cost_usd, data.agent_id, data.cost_usd, data.max_total)
        logger.debug("add_agent_cost %s +%s", data.agent_id, data.cost_usd)
        result = await self._backend.execute(sql, params, table=table)
        if result.rowcount > 0:
            return True
        agent = await self._get(table, data.agent_id)
        if agent is None:
            return False
        raise ValidationError(
            f"agents.cost_usd: adding {data.cost_usd!r} to the agent's {agent['cost_usd']!r} "
            f"would pass MAX_COST_USD ({data.max_total!r}); nothing was added",
            table=table,
            field="cost_usd",
        )

    async def delete_agent(self, agent_id: str) -> bool:
        """Delete the agent with its prompts and logs; its children lose their
        parent. False if no agent has this id."""
        return await self._delete("agents", agent_id)

    # --- prompts ---------------------------------------------------------------

    async def create_prompt(
        self,
        agent_id: str,
        prompt_type: str,
        prompt_text: str,
        prompt_name: str | None = None,
        status: str = "pending",
        model_used: str | None = None,
    ) -> str:
        """Record a prompt of an agent; return its id. ``prompt_type``: one of
        ``PROMPT_TYPES``; ``status``: one of ``PROMPT_STATUSES``."""
        table = "prompts"
        data = self._parse(
            PromptCreate,
            table,
            agent_id=agent_id,
            prompt_type=prompt_type,
            prompt_text=prompt_text,
            prompt_name=prompt_name,
            status=status,
            model_used=model_used,
        )
        row = {"id": new_id(), **data.model_dump(), "created_at": utc_now()}
        await self._insert(table, row)
        return str(row["id"])

    async def get_prompt(self, prompt_id: str) -> Row | None:
        """The prompt with this id, or ``None``."""
        return await self._get("prompts", prompt_id)

    async def list_prompts(
        self,
        agent_id: str | None = None,
        *,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        session_id: str | None = None,
    ) -> list[Row]:
        """Prompts, oldest first, of an agent (or of every agent of a session:
        ``session_id``, not both) and a ``status`` (one of ``PROMPT_STATUSES``)
        when given; ``limit`` and ``offset`` page them."""
        table = "prompts"
        if session_id is not None:
            if agent_id is not None:
                raise ValidationError(
                    "prompts: give agent_id or session_id, not both",
                    table=table,
                    field="session_id",
                )
            return await self._reports.session_prompts(
                session_id, status=status, limit=limit, offset=offset
            )
        query = self._parse(
            PromptQuery, table, agent_id=agent_id, status=status, limit=limit, offset=offset
        )
        filters = query.model_dump(include={"agent_id", "status"})
        return await self._select(table, filters, query)

    async def update_prompt(self, prompt_id: str, **fields: Any) -> bool:
        """Fields: response_text, status (one of ``PROMPT_STATUSES``), model_used,
        tokens_input, tokens_output, cost_usd, latency_ms, completed_at,
        error_message. False if no prompt has this id."""
        table = "prompts"
        return await self._update(table, prompt_id, self._parse_update(PromptUpdate, table, fields))

    async def delete_prompt(self, prompt_id: str) -> bool:
        """Delete the prompt. False if no prompt has this id."""
        return await self._delete("prompts", prompt_id)

    # --- agent_logs (append-only) ----------------------------------------------

    async def create_agent_log(
        self,
        agent_id: str,
        log_level: str,
        log_type: str,
        message: str,
        details: Any = None,
    ) -> int:
        """Append a log line of an agent; return its id (an integer).
        ``log_level``: one of ``LOG_LEVELS``; ``log_type``: one of ``LOG_TYPES``."""
        table = "agent_logs"
        data = self._parse(
            AgentLogCreate,
            table,
            agent_id=agent_id,
            log_level=log_level,
            log_type=log_type,
            message=message,
            details=details,
        )
        return await self._insert(table, {**data.model_dump(), "created_at": utc_now()})

    async def create_agent_logs(self, rows: Iterable[Mapping[str, Any]]) -> list[int]:
        """Insert many agent logs, each a dict of ``create_agent_log``'s
        parameters, in one transaction; return their ids in input order. Every
        row is validated first: one bad row rejects the batch (the message names
        its index) and nothing is written."""
        return await self._insert_many("agent_logs", AgentLogCreate, rows)

    async def get_agent_logs(
        self,
        agent_id: str,
        log_level: str | None = None,
        *,
        log_type: str | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        """The agent's logs, oldest first, the first ``limit`` when given;
        ``log_level`` (one of ``LOG_LEVELS``) matches exactly, as does
        ``log_type`` (one of ``LOG_TYPES``)."""
        table = "agent_logs"
        query = self._parse(
            AgentLogQuery,
            table,
            agent_id=agent_id,
            log_level=log_level,
            log_type=log_type,
            limit=limit,
        )
        filters = query.model_dump(include={"agent_id", "log_level", "log_type"})
        return await self._select(table, filters, query)

    async def list_recent_agent_logs(self, limit: int = 100) -> list[Row]:
        """The latest ``limit`` agent logs, newest first."""
        table = "agent_logs"
        page = self._parse(Page, table, limit=limit)
        return await self._select(table, {}, page, newest_first=True)

    # --- system_logs (append-only) ---------------------------------------------

    async def create_system_log(
        self,
        log_level: str,
        component: str,
        message: str,
        details: Any = None,
    ) -> int:
        """Append a log line of a component; return its id (an integer).
        ``log_level``: one of ``LOG_LEVELS``."""
        table = "system_logs"
        data = self._parse(
            SystemLogCreate,
            table,
            log_level=log_level,
            component=component,
            message=message,
            details=details,
        )
        return await self._insert(table, {**data.model_dump(), "created_at": utc_now()})

    async def create_system_logs(self, rows: Iterable[Mapping[str, Any]]) -> list[int]:
        """Insert many system logs, each a dict of ``create_system_log``'s
        parameters; see ``create_agent_logs``."""
        return await self._insert_many("system_logs", SystemLogCreate, rows)

    async def get_system_logs(
        self,
        log_level: str | None = None,
        component: str | None = None,
        *,
        limit: int | None = None,
    ) -> list[Row]:
        """System logs, oldest first, the first ``limit`` when given;
        ``log_level`` (one of ``LOG_LEVELS``) and ``component`` match exactly."""
        table = "system_logs"
        query = self._parse(
            SystemLogQuery, table, log_level=log_level, component=component, limit=limit
        )
        filters = query.model_dump(include={"log_level", "component"})
        return await self._select(table, filters, query)

    async def list_recent_system_logs(self, limit: int = 100) -> list[Row]:
        """The latest ``limit`` system logs, newest first."""
        table = "system_logs"
        page = self._parse(Page, table, limit=limit)
        return await self._select(table, {}, page, newest_first=True)

    # --- orchestrator_chat -----------------------------------------------------

    async def create_chat_message(
        self,
        orchestrator_agent_id: str,
        sender_type: str,
        receiver_type: str,
        message: str,
        *,
        summary: str | None = None,
        agent_id: str | None = None,
        metadata: Any = None,
    ) -> str:
        """Record a message of a definition's conversation; return its id.
        ``sender_type``, ``receiver_type``: one of ``CHAT_PARTIES``;
        ``agent_id``: the agent involved, if any; ``metadata``: a JSON value."""
        table = "orchestrator_chat"
        data = self._parse(
            OrchestratorChatCreate,
            table,
            orchestrator_agent_id=orchestrator_agent_id,
            sender_type=sender_type,
            receiver_type=receiver_type,
            message=message,
            summary=summary,
            agent_id=agent_id,
            metadata=metadata,
        )
        now = utc_now()
        row = {"id": new_id(), **data.model_dump(), "created_at": now, "updated_at": now}
        await self._insert(table, row)
        return str(row["id"])

    async def get_chat_message(self, message_id: str) -> Row | None:
        """The chat message with this id, or ``None``."""
        return await self._get("orchestrator_chat", message_id)

    async def list_chat_messages(
        self,
        orchestrator_agent_id: str | None = None,
        *,
        agent_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        """Chat messages, newest first, of a definition and an agent when
        given; ``limit`` and ``offset`` page them."""
        table = "orchestrator_chat"
        query = self._parse(
            OrchestratorChatQuery,
            table,
            orchestrator_agent_id=orchestrator_agent_id,
            agent_id=agent_id,
            limit=limit,
            offset=offset,
        )
        filters = query.model_dump(include={"orchestrator_agent_id", "agent_id"})
        return await self._select(table, filters, query, newest_first=True)

    async def update_chat_message(self, message_id: str, **fields: Any) -> bool:
        """Fields: summary, metadata; ``updated_at`` follows. False if no
        message has this id."""
        table = "orchestrator_chat"
        changes = self._parse_update(OrchestratorChatUpdate, table, fields)
        return await self._update(table, message_id, {**changes, "updated_at": utc_now()})

    async def delete_chat_message(self, message_id: str) -> bool:
        """Delete the chat message. False if no message has this id."""
        return await self._delete("orchestrator_chat", message_id)

    # --- ai_developer_workflows ------------------------------------------------

    async def start_workflow(
        self,
        adw_name: str,
        workflow_type: str,
        *,
        adw_id: str | None = None,
        description: str | None = None,
        total_steps: int = 0,
        orchestrator_agent_id: str | None = None,
        input_data: Any = None,
        metadata: Any = None,
    ) -> str:
        """Record a workflow run, ``in_progress`` from now; return its id.
        ``adw_id`` (the run's own id) is unique: ``IntegrityError`` (field
        ``adw_id``) if taken. ``input_data``, ``metadata``: JSON values."""
        table = "ai_developer_workflows"
        data = self._parse(
            AiDeveloperWorkflowCreate,
            table,
            adw_name=adw_name,
            workflow_type=workflow_type,
            adw_id=adw_id,
            description=description,
            total_steps=total_steps,
            orchestrator_agent_id=orchestrator_agent_id,
            input_data=input_data,
            metadata=metadata,
        )
        now = utc_now()
        row = {
            "id": new_id(),
            **data.model_dump(),
            "status": "in_progress",
            "started_at": now,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._insert(table, row)
        except IntegrityError as exc:
            if exc.field != "adw_id":  # the backend names the column of a taken key
                raise
            raise IntegrityError(
                f"{table}.adw_id: a workflow with adw_id {data.adw_id!r} exists already",
                table=table,
                field="adw_id",
                constraint="unique",
            ) from exc.__cause__
        return str(row["id"])

    async def update_workflow_step(
        self,
        workflow_id: str,
        current_step: str,
        *,
        completed_steps: int | None = None,
        status: str = "in_progress",
    ) -> bool:
        """Record the step a workflow is at, and how many are done when
        given; ``status``: one of ``WORKFLOW_STATUSES``. False if no workflow
        has this id."""
        table = "ai_developer_workflows"
        key = self._key(table, workflow_id)
        step = self._parse(
            WorkflowStep,
            table,
            current_step=current_step,
            completed_steps=completed_steps,
            status=status,
        )
        changes = step.model_dump(exclude_none=True)
        return await self._update(table, key, {**changes, "updated_at": utc_now()})

    async def end_workflow(
        self,
        workflow_id: str,
        status: str,
        *,
        error_message: str | None = None,
        error_step: str | None = None,
        output_data: Any = None,
    ) -> bool:
        """Finish a workflow: ``status`` is completed, failed or cancelled
        (``WORKFLOW_END_STATUSES``), ``completed_at`` now, ``duration_seconds``
        since its ``started_at``; an ``error_message`` adds 1 to
        ``error_count``. Fields left None keep their value. False if no
        workflow has this id."""
        table = "ai_developer_workflows"
        key = self._key(table, workflow_id)
        end = self._parse(
            WorkflowEnd,
            table,
            status=status,
            error_message=error_message,
            error_step=error_step,
            output_data=output_data,
        )
        self._require_open()
        ended = datetime.now(UTC)
        changes = {
            **end.model_dump(exclude_none=True),
            "completed_at": format_timestamp(ended),
            "updated_at": format_timestamp(ended),
        }
        # One transaction: the first UPDATE holds the row (PostgreSQL) or the
        # file (SQLite) until the duration is written, so a concurrent end of
        # the same workflow cannot pair its completed_at with this duration.
        async with self._backend.transaction():
            if not await self._update(table, key, changes):
                return False
            if end.error_message is not None:  # counted in SQL: no increment is lost
                increment = self._sql.increment_by_id(table, "error_count")
                await self._backend.execute(increment, (1, key, 1, MAX_INTEGER), table=table)
            row = await self._get(table, key)
            started_at = row["started_at"] if row is not None else None
            if started_at is not None:
                elapsed = (ended - datetime.fromisoformat(started_at)).total_seconds()
                # Another machine's clock may have started it "later": never negative.
                duration = {"duration_seconds": max(elapsed, 0.0)}
                await self._update(table, key, duration)
        return True

    async def update_workflow(self, workflow_id: str, **fields: Any) -> bool:
        """Fields: adw_name, workflow_type, description, status (one of
        ``WORKFLOW_STATUSES``), current_step, total_steps, completed_steps,
        started_at, completed_at, duration_seconds, input_data, output_data,
        error_message, error_step, error_count, metadata; ``updated_at``
        follows. False if no workflow has this id."""
        table = "ai_developer_workflows"
        changes = self._parse_update(AiDeveloperWorkflowUpdate, table, fields)
        return await self._update(table, workflow_id, {**changes, "updated_at": utc_now()})

    async def get_workflow(self, workflow_id: str) -> Row | None:
        """The workflow with this id, or ``None``."""
        return await self._get("ai_developer_workflows", workflow_id)

    async def get_workflow_by_adw_id(self, adw_id: str) -> Row | None:
        """The workflow whose ``adw_id`` (the run's own id) is this, or ``None``."""
        table = "ai_developer_workflows"
        query = self._parse(AdwIdQuery, table, adw_id=adw_id)
        rows = await self._select(table, {"adw_id": query.adw_id}, Page())
        return rows[0] if rows else None

    async def list_workflows(
        self,
        *,
        status: str | None = None,
        workflow_type: str | None = None,
        orchestrator_agent_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        """Workflows, newest first, of a ``status`` (one of
        ``WORKFLOW_STATUSES``), a ``workflow_type`` and a definition when
        given; ``limit`` and ``offset`` page them."""
        table = "ai_developer_workflows"
        query = self._parse(
            AiDeveloperWorkflowQuery,
            table,
            status=status,
            workflow_type=workflow_type,
            orchestrator_agent_id=orchestrator_agent_id,
            limit=limit,
            offset=offset,
        )
        filters = query.model_dump(include={"status", "workflow_type", "orchestrator_agent_id"})
        return await self._select(table, filters, query, newest_first=True)

    async def delete_workflow(self, workflow_id: str) -> bool:
        """Delete the workflow. False if no workflow has this id."""
        return await self._delete("ai_developer_workflows", workflow_id)

    # --- maintenance -----------------------------------------------------------

    async def count_old_logs(self, days: float) -> dict[str, int]:
        """Rows per log table (table name -> count) that ``cleanup_old_logs(days)``
        would delete now."""
        cutoff = self._retention_cutoff(days)
        self._require_open()
        counts = {}
        for table in LOG_TABLES:
            sql = self._sql.count_matching(table, [Condition(TABLES[table].time_column, "<")])
            counts[table] = int(
                (await self._backend.fetch_all(sql, (cutoff,), table=table))[0]["n"]
            )
        return counts

    async def checkpoint(self) -> dict[str, int]:
        """Fold the WAL into the database file and truncate it, waiting up to
        ``busy_timeout`` while another connection checkpoints. Returns SQLite's
        ``busy`` (1: an open read kept part of the WAL), ``wal_pages`` and
        ``checkpointed_pages`` (both 0 once the WAL is truncated). On
        PostgreSQL there is nothing to do: all three are 0."""
        self._require_open()
        return await self._backend.checkpoint()

    async def storage(self) -> dict[str, int]:
        """The database's size: ``file_bytes``, ``wal_bytes``, ``page_size``,
        ``page_count``, ``freelist_count`` (pages freed by deletes, reused by
        later writes; 0 on PostgreSQL, as is ``wal_bytes``)."""
        self._require_open()
        return await self._backend.storage()

    async def iter_rows(self, table: str, *, batch_size: int = 500) -> AsyncIterator[Row]:
        """Every row of ``table`` (a name in ``schema.TABLES``) in primary-key
        order, read ``batch_size`` rows at a time (keyset pagination: memory
        stays flat however big the table). Rows present for the whole scan
        appear exactly once; rows written during it may or may not appear."""
        scan = self._parse(TableScan, table, table=table, batch_size=batch_size)
        self._require_open()
        first = self._sql.select_matching(scan.table, [], limit=True)
        after = self._sql.select_matching(scan.table, [Condition("id", ">")], limit=True)
        page = await self._backend.fetch_all(first, (scan.batch_size,), table=scan.table)
        while page:
            for row in self._decode(scan.table, page):
                yield row
            if len(page) < scan.batch_size:
                return
            params = (page[-1]["id"], scan.batch_size)
            page = await self._backend.fetch_all(after, params, table=scan.table)

    # --- reports (answered by reports.Reports) -----------------------------------

    async def session_summaries(self, *, limit: int | None = None) -> list[Row]:
        """One row per session, most recently active first, at most ``limit``:
        ``session_id``, ``agents``, ``failed_agents``, ``active_agents``,
        ``prompts``, ``failed_prompts``, ``tokens_input``, ``tokens_output``,
        ``cost_usd`` (its agents' own costs plus its prompts' costs: the cost
        rule), ``first_activity`` (its first agent's start) and ``last_activity``
        (the latest start or end of its agents and prompts). Read from totals
        the triggers keep: the same time at any history size."""
        return await self._reports.session_summaries(limit=limit)

    async def session_summary(self, session_id: str) -> Row | None:
        """One session's row of ``session_summaries``, or ``None`` when no agent
        has that ``session_id``."""
        return await self._reports.session_summary(session_id)

    async def session_tree(self, session_id: str) -> list[Row]:
        """A session's agents as a tree: its root agents (no parent in the
        session), each with ``children`` (in start order), every agent with its
        prompts' sums (``prompts``, ``failed_prompts``, ``tokens_input``,
        ``tokens_output``, ``prompts_cost_usd``) and ``total_cost_usd`` (its own
        ``cost_usd`` plus its prompts'), its definition's ``definition`` (name)
        and ``agent_type``. Empty when the session has no agents."""
        return await self._reports.session_tree(session_id)

    async def agent_totals(self, agent_id: str) -> Row | None:
        """An agent's row with its prompts' sums and total cost, as each agent
        of ``session_tree`` has them; ``None`` when there is no such agent."""
        agent = await self.get_agent(agent_id)
        if agent is None:
            return None
        return (await self._reports.agents_with_totals([agent]))[0]

    async def agents_with_totals(self, agents: list[Row]) -> list[Row]:
        """Rows of ``list_agents`` (or ``get_agent``), each with its prompts'
        sums and total cost (see ``agent_totals``), in one query per 500."""
        return await self._reports.agents_with_totals(agents)

    async def cost_totals(
        self,
        by: str | None = None,
        *,
        since: Any = None,
        session_id: str | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        """``prompts``, ``tokens_input``, ``tokens_output`` and ``cost_usd`` per
        ``key``: ``by`` is one of "session", "model", "agent_type" or "day"
        (UTC); ``None`` gives one row of grand totals. Ordered by key (``None``
        first); ``limit`` keeps the costliest sessions (costliest first) or the
        latest days.

        The cost rule: cost is prompts' costs plus agents' own costs
        (``agents.cost_usd``: tools and other non-model spend). An agent's own
        cost counts under no model (key ``None``) and on the UTC day the agent
        started; ``since`` (aware datetime or ISO string) keeps prompts
        created and agents started then or later. ``session_id`` keeps one
        session. Sums are exact: costs are added as whole nano-dollars."""
        return await self._reports.cost_totals(by, since=since, session_id=session_id, limit=limit)

    async def log_bounds(self) -> Row:
        """``first`` and ``last`` log time over both log tables (None when both
        are empty) and ``cursor``, read in one snapshot, which is where
        ``logs_after`` starts to follow new rows: on SQLite the highest id of
        each table; on PostgreSQL the horizon of that snapshot (the rows of
        transactions below it are there, the others are still to come). A
        dict of plain ints (``models.LogCursor``): it survives a trip through
        JSON."""
        return await self._reports.log_bounds()

    async def list_logs(
        self,
        *,
        agent_id: str | None = None,
        min_level: str | None = None,
        log_type: str | None = None,
        component: str | None = None,
        since: Any = None,
        limit: int | None = None,
        up_to: Mapping[str, int] | None = None,
    ) -> list[Row]:
        """Agent and system logs in one time line, oldest first (the latest
        ``limit`` rows when given). Rows carry ``source`` ("agent" or "system"),
        ``id``, ``created_at``, ``log_level``, ``agent_id``, ``log_type``,
        ``component``, ``message`` and ``details``. ``min_level`` (one of
        ``LOG_LEVELS``) keeps that level and above; ``agent_id`` and
        ``log_type`` (one of ``LOG_TYPES``) select agent logs only,
        ``component`` system logs only. ``up_to`` (a cursor from
        ``log_bounds``) keeps the rows at or before it (on SQLite ids at or
        below it; on PostgreSQL the rows of transactions below its horizon),
        so a listing followed by ``logs_after(cursor)`` shows every row
        exactly once."""
        return await self._reports.list_logs(
            agent_id=agent_id,
            min_level=min_level,
            log_type=log_type,
            component=component,
            since=since,
            limit=limit,
            up_to=up_to,
        )

    async def logs_after(
        self,
        cursor: Mapping[str, int],
        *,
        agent_id: str | None = None,
        min_level: str | None = None,
        log_type: str | None = None,
        component: str | None = None,
        limit: int = 500,
    ) -> tuple[list[Row], dict[str, int]]:
        """Log rows after ``cursor`` (from ``log_bounds`` or the last call),
        in time order and shaped as ``list_logs``' rows, and the cursor to
        pass next time. At most ``limit`` rows of each table per call;
        repeated calls show nothing twice and skip nothing. Filters as in
        ``list_logs``.

        Rows come in the order they become visible: by id on SQLite (one
        writer at a time); on PostgreSQL, whose ids are handed out before
        commit, by commit, a row coming once its transaction and every older
        one still running on the server have ended. So there a long open
        transaction anywhere on the server (idle in transaction, a long
        ``transaction()`` block) holds the rows after it back until it ends;
        nothing is missed or repeated. A PostgreSQL store's cursor is refused
        by a SQLite store; see ``models.LogCursor`` for its keys."""
        return await self._reports.logs_after(
            cursor,
            agent_id=agent_id,
            min_level=min_level,
            log_type=log_type,
            component=component,
            limit=limit,
        )

    async def find_agents_by_prefix(self, prefix: str, *, limit: int = 2) -> list[Row]:
        """Agents whose id starts with ``prefix`` (case-insensitive), in id
        order, at most ``limit``: one row means the prefix is unambiguous."""
        return await self._reports.find_by_id_prefix("agents", prefix, limit=limit)

    async def find_agents_by_suffix(self, suffix: str, *, limit: int = 2) -> list[Row]:
        """Agents whose id ends with ``suffix`` (case-insensitive), in id order,
        at most ``limit``. Ids are time-ordered, so agents made in the same
        minute share their first characters; the last ones are random."""
        return await self._reports.find_by_id_suffix("agents", suffix, limit=limit)

    async def find_workflows_by_prefix(self, prefix: str, *, limit: int = 2) -> list[Row]:
        """Workflows whose id starts with ``prefix`` (case-insensitive), in id
        order, at most ``limit``: one row means the prefix is unambiguous."""
        return await self._reports.find_by_id_prefix("ai_developer_workflows", prefix, limit=limit)

    async def find_workflows_by_suffix(self, suffix: str, *, limit: int = 2) -> list[Row]:
        """Workflows whose id ends with ``suffix`` (case-insensitive), in id
        order, at most ``limit`` (their last characters are random, as agents')."""
        return await self._reports.find_by_id_suffix("ai_developer_workflows", suffix, limit=limit)

    # --- retention -------------------------------------------------------------

    def _retention_cutoff(self, days: float) -> str:
        age = self._parse(RetentionAge, "logs", days=days)
        try:
            return format_timestamp(datetime.now(UTC) - timedelta(days=age.days))
        except OverflowError:  # further back than year 1: no log is that old, none matches
            return format_timestamp(datetime.min.replace(tzinfo=UTC))

    async def cleanup_old_logs(self, days: float = 30) -> int:
        """Delete agent and system logs older than ``days`` days (30 unless
        given, as in the original module); return how many rows went. Rows go
        in batches, each its own short transaction (inside ``transaction()``
        they all join the block). ``prune()`` does this and more."""
        age = self._parse(RetentionAge, "logs", days=days)
        self._require_open()
        self._refuse_if_read_only("cleanup_old_logs()")
        deleted = await retention.delete_old_logs(self._backend, age.days)
        logger.debug("cleanup_old_logs: %s rows older than %s days deleted", deleted, age.days)
        return deleted

    async def prune(
        self, policy: RetentionPolicy, *, dry_run: bool = False, vacuum: bool = False
    ) -> PruneReport:
        """Apply a ``RetentionPolicy``: logs by age, sessions by age or beyond
        the newest N, and on SQLite a cap on the file's size (the oldest logs
        and sessions go first); a session with an agent still running is never
        deleted. Deletes run in batches of ``policy.batch_rows``, each its own
        short transaction, so other writers go on meanwhile; then the space
        comes back (SQLite: free pages handed back in steps and the WAL
        truncated; PostgreSQL: a plain ``VACUUM`` of the tables deleted from).
        ``dry_run`` only counts. ``vacuum`` (SQLite) rewrites the file once,
        which shrinks a file made before incremental auto-vacuum and switches
        it over, holding the write lock while it runs. Call it outside
        ``transaction()``. Returns a ``PruneReport``; see ``retention``."""
        if not isinstance(policy, RetentionPolicy):
            raise ValidationError(
                f"retention.policy: a RetentionPolicy, got {type(policy).__name__}",
                table="retention",
                field="policy",
            )
        for name, flag in (("dry_run", dry_run), ("vacuum", vacuum)):
            if not isinstance(flag, bool):
                raise ValidationError(
                    f"retention.{name}: True or False, got {type(flag).__name__}",
                    table="retention",
                    field=name,
                )
        if dry_run and vacuum:
            raise ValidationError(
                "retention.vacuum: a dry run rewrites nothing: give dry_run or vacuum",
                table="retention",
                field="vacuum",
            )
        self._require_open()
        if not dry_run:  # refused whole, even when nothing would go
            self._refuse_if_read_only("prune()")
        return await retention.prune(self._backend, policy, dry_run=dry_run, vacuum=vacuum)

    def _automatic_retention(
        self, policy: RetentionPolicy | None
    ) -> retention.AutomaticRetention | None:
        if policy is None:
            return None
        if not isinstance(policy, RetentionPolicy) or policy.every is None:
            kind = isinstance(policy, RetentionPolicy)
            given = "one without every" if kind else type(policy).__name__
            raise ValidationError(
                f"retention: a RetentionPolicy with every=SECONDS between runs, got {given}",
                table="retention",
                field="every",
            )
        if policy.max_bytes is not None and self.db_path is None:
            raise ValidationError(
                "retention.max_bytes: caps a SQLite file, and this store is on PostgreSQL",
                table="retention",
                field="max_bytes",
            )
        return retention.AutomaticRetention(lambda: self.prune(policy), policy.every, self.location)

    # --- the original module's helpers -----------------------------------------

    async def log_agent_event(
        self,
        agent_id: str,
        log_type: str,
        message: str,
        metadata: Any = None,
        log_level: str = "INFO",
    ) -> int | None:
        """``create_agent_log`` (with ``metadata`` as its ``details``) that
        never raises: a log line must not break the work it records. Any
        failure (bad input, a missing agent, a closed store, a busy database)
        returns ``None`` and logs one warning on this module's logger naming
        the agent, the error and the message. Cancellation is not a failure of
        the database: ``asyncio.CancelledError`` propagates as always."""
        try:
            return await self.create_agent_log(agent_id, log_level, log_type, message, metadata)
        except Exception as exc:  # CancelledError is a BaseException: it passes
            logger.warning(
                "log_agent_event: agent %s: log line %s not written: %s: %s",
                shown(agent_id),
                shown(message),
                type(exc).__name__,
                exc,
            )
            return None

    async def get_logs_by_type(self, log_type: str, limit: int = 100) -> list[Row]:
        """The latest ``limit`` agent logs of ``log_type`` (one of
        ``LOG_TYPES``) across all agents, newest first."""
        table = "agent_logs"
        query = self._parse(LogTypeQuery, table, log_type=log_type, limit=limit)
        return await self._select(table, {"log_type": query.log_type}, query, newest_first=True)

    async def get_agent_logs_by_type(
        self, agent_id: str, log_type: str, limit: int = 100
    ) -> list[Row]:
        """The agent's latest ``limit`` logs of ``log_type`` (one of
        ``LOG_TYPES``), newest first."""
        table = "agent_logs"
        query = self._parse(
            AgentLogTypeQuery, table, agent_id=agent_id, log_type=log_type, limit=limit
        )
        filters = {"agent_id": query.agent_id, "log_type": query.log_type}
        return await self._select(table, filters, query, newest_first=True)

    async def get_recent_logs(self, limit: int = 100) -> list[Row]:
        """The latest ``limit`` agent logs, newest first (``list_recent_agent_logs``)."""
        return await self.list_recent_agent_logs(limit)

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one read-only SQL statement and return its rows as dicts: the
        store's door for reads its methods do not cover (the original module
        handed out its driver connection instead).

        The SQL is the backend's own (``db.backend_name``): placeholders are
        ``?`` on SQLite and ``$1``, ``$2``, ... on PostgreSQL, and ``params``
        (a list or tuple of None, bool, int, float, str or bytes) fills them
        in order. Values come back as the database holds them: timestamps as
        the store's text, JSON columns as JSON text, ids as text.

        Only reading is allowed: a statement that writes, changes the schema,
        controls a transaction or changes the connection's settings, and
        several statements in one string, raise ``ReadOnlyError`` and change
        nothing (on SQLite the statement is refused before it runs; on
        PostgreSQL it runs in a READ ONLY transaction that is rolled back).
        One exception: SQLite itself refuses to prepare an UPDATE or DELETE
        of its catalog (``sqlite_master``), which is then a plain
        ``DatabaseError``, equally before anything ran. Write through the
        store's methods, atomically inside ``db.transaction()``. SQL errors
        are ``DatabaseError``; inside ``transaction()`` the statement sees
        the block's own writes."""
        table = "query"
        statement = self._parse(ReadOnlyQuery, table, sql=sql, params=params)
        self._require_open()
        return await self._backend.fetch_read_only(statement.sql, statement.params, table="(query)")

    @property
    def conn(self) -> Any:
        """The original module's driver connection, which this store does not
        have: reading it raises ``AttributeError`` (so ``hasattr(db, "conn")``
        is False) saying what to use instead."""
        raise AttributeError(
            "DatabaseManager has no driver connection (`conn`): it runs a writer thread "
            "and reader connections on SQLite, a connection pool on PostgreSQL. Use "
            "`await db.query(sql, params)` for read-only SQL, `async with db.transaction():` "
            "around the store's methods for atomic writes, `await db.schema_version()` and "
            "`await db.storage()` for what the file is"
        )

    # --- the shared steps ------------------------------------------------------

    def _parse(self, model: type[ModelT], table: str, /, **data: Any) -> ModelT:
        return parse_input(model, table, data)

    def _parse_update(
        self, model: type[BaseModel], table: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        if not fields:
            allowed = ", ".join(model.model_fields)
            raise ValidationError(f"{table}: no fields to update (allowed: {allowed})", table=table)
        parsed = self._parse(model, table, **fields)
        return {name: getattr(parsed, name) for name in fields}

    def _key(self, table: str, value: Any) -> str:
        try:
            return canonical_uuid(value)
        except ValueError as exc:
            raise ValidationError(f"{table}.id: {exc}", table=table, field="id") from None

    def _encode(self, table: str, row: Mapping[str, Any]) -> list[Any]:
        json_columns = TABLES[table].json_columns
        return [
            encode_json(value) if column in json_columns else value for column, value in row.items()
        ]

    def _decode(self, table: str, rows: list[Row]) -> list[Row]:
        return decode_json_columns(rows, TABLES[table].json_columns)

    async def _insert(self, table: str, row: Mapping[str, Any]) -> int:
        self._require_open()
        sql = self._sql.insert(table, list(row))
        logger.debug("insert into %s id=%s", table, row.get("id"))
        try:
            result = await self._backend.execute(sql, self._encode(table, row), table=table)
        except IntegrityError as exc:
            if exc.constraint == "foreign_key":
                explained = await self._explain_missing_reference(table, row, exc)
                raise explained from exc.__cause__  # keep the driver's exception as the cause
            raise
        return int(result.lastrowid or 0)

    async def _insert_many(
        self, table: str, model: type[BaseModel], rows: Iterable[Mapping[str, Any]]
    ) -> list[int]:
        if isinstance(rows, Mapping | str | bytes) or not isinstance(rows, Iterable):
            raise ValidationError(
                f"{table}: rows must be an iterable of dicts, got {type(rows).__name__}",
                table=table,
            )
        rows = list(rows)
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise ValidationError(
                    f"{table}[{index}]: each row must be a dict, got {type(row).__name__}",
                    table=table,
                )
        parsed = parse_rows(model, table, rows)
        fields = list(model.model_fields)
        json_positions = [fields.index(name) for name in TABLES[table].json_columns]
        now = utc_now()  # one moment for the batch; ids keep the rows' order
        params: list[list[Any]] = []
        for data in parsed:
            values = vars(data)  # the validated fields (the models have no serializers)
            line = [values[name] for name in fields]
            for position in json_positions:
                line[position] = encode_json(line[position])
            line.append(now)
            params.append(line)
        self._require_open()
        if not params:
            return []
        logger.debug("insert %s rows into %s", len(params), table)
        sql = self._sql.insert(table, [*fields, TABLES[table].time_column])
        return await self._backend.insert_many(sql, params, table=table)

    async def _explain_missing_reference(
        self, table: str, row: Mapping[str, Any], error: IntegrityError
    ) -> IntegrityError:
        for column, parent in TABLES[table].references.items():
            value = row.get(column)
            if value is not None and await self._get(parent, value) is None:
                return IntegrityError(
                    f"{table}.{column}: no {parent} row has id {value!r}",
                    table=table,
                    field=column,
                    constraint="foreign_key",
                )
        return error

    async def _get(self, table: str, row_id: Any) -> Row | None:
        key = self._key(table, row_id)
        self._require_open()
        rows = await self._backend.fetch_all(
            self._sql.select(table, where=["id"]), (key,), table=table
        )
        return self._decode(table, rows)[0] if rows else None

    async def _select(
        self,
        table: str,
        filters: Mapping[str, Any],
        page: Page,
        *,
        newest_first: bool = False,
    ) -> list[Row]:
        """A page of rows matching ``filters`` (None matches anything), in the
        order of the table's time column."""
        self._require_open()
        where = {column: value for column, value in filters.items() if value is not None}
        params: list[Any] = list(where.values())
        if page.limit is not None:
            params.append(page.limit)
        if page.offset:
            params.append(page.offset)
        sql = self._sql.select(
            table,
            where=list(where),
            order_by=TABLES[table].time_column,
            newest_first=newest_first,
            limit=page.limit is not None,
            offset=bool(page.offset),
        )
        rows = await self._backend.fetch_all(sql, params, table=table)
        return self._decode(table, rows)

    async def _update(self, table: str, row_id: Any, changes: Mapping[str, Any]) -> bool:
        key = self._key(table, row_id)
        self._require_open()
        sql = self._sql.update_by_id(table, list(changes))
        logger.debug("update %s id=%s fields=%s", table, key, sorted(changes))
        result = await self._backend.execute(sql, [*self._encode(table, changes), key], table=table)
        return result.rowcount > 0

    async def _delete(self, table: str, row_id: Any) -> bool:
        key = self._key(table, row_id)
        self._require_open()
        logger.debug("delete from %s id=%s", table, key)
        result = await self._backend.execute(self._sql.delete_by_id(table), (key,), table=table)
        return result.rowcount > 0
