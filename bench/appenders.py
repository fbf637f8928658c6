"""Four ways to append one small record, durable when the call returns: the store,
raw sqlite3 on the store's schema, the OpenAI Agents SDK's ``SQLiteSession`` and
LangGraph's ``AsyncSqliteSaver`` (``competitors.py`` measures them).

Each appender opens a fresh file for ``writers`` coroutines (writer ``w`` appends to
its own agent, conversation or thread), at a ``synchronous`` level or, when it is
``None``, at the library's defaults. The two competitors are imported only when
opened: they are benchmark-only dependencies (``uv sync --group bench``).

How each reaches a level, as a user could:

* the store: ``DatabaseManager(path, synchronous=...)`` (default ``NORMAL``);
* raw sqlite3: ``PRAGMA synchronous`` on its connection after ``sqlite3.connect``
  (default: SQLite's compiled-in ``FULL``; WAL like the store's files);
* ``SQLiteSession`` has no option and opens a connection per worker thread, lazily,
  each through ``_configure_connection`` (which sets WAL): a subclass runs the PRAGMA
  there too, so every connection it opens gets it (default: ``FULL``);
* ``AsyncSqliteSaver`` takes the caller's aiosqlite connection: the PRAGMA runs on it
  before the saver is built (``from_conn_string`` would use the default, ``FULL``).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from pathlib import Path
from typing import Any, Protocol

import sessions
import workloads

from orchestrator_store.manager import DatabaseManager


class Appender(Protocol):
    name: str
    table: str  # where its records land, to count them afterwards

    async def open(self, path: Path, writers: int, synchronous: str | None) -> None: ...
    async def append(self, writer: int, number: int) -> None: ...
    async def synchronous(self) -> int:
        """``PRAGMA synchronous`` as read back from its connection (1 NORMAL, 2 FULL)."""
        ...

    async def close(self) -> None: ...


SYNCHRONOUS_LEVELS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


class StoreAppender:
    """``create_agent_log`` of the store, one agent per writer."""

    name = "store"
    table = "agent_logs"

    async def open(self, path: Path, writers: int, synchronous: str | None) -> None:
        self.db = (
            DatabaseManager(path)
            if synchronous is None
            else DatabaseManager(path, synchronous=synchronous)
        )
        self.level = synchronous or "NORMAL"  # the store's default
        await self.db.connect()
        definition_id = await self.db.create_orchestrator_agent("bench", "benchmark", "builder")
        self.agent_ids = [
            await self.db.create_agent(definition_id, f"session-{w}", status="executing")
            for w in range(writers)
        ]

    async def append(self, writer: int, number: int) -> None:
        await self.db.create_agent_log(
            self.agent_ids[writer], "INFO", "milestone", f"record {number}", {"n": number}
        )

    async def synchronous(self) -> int:
        # The store's writer connection is not public: its documented option stands.
        return next(k for k, v in SYNCHRONOUS_LEVELS.items() if v == self.level)

    async def close(self) -> None:
        await self.db.close()


class RawSqlite3Appender:
    """The same one-row INSERT as the store, autocommit (a commit per record). It is
    synchronous: with 64 coroutines they take turns, each commit blocking the loop."""

    name = "raw sqlite3"
    table = "agent_logs"

    async def open(self, path: Path, writers: int, synchronous: str | None) -> None:
        definition_id = await workloads.fresh_store(path)  # the store's schema
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode = WAL")
        if synchronous is not None:
            self.connection.execute(f"PRAGMA synchronous = {synchronous}")
        self.connection.execute("PRAGMA foreign_keys = ON")  # as the store checks them
        self.agent_ids = []
        for w in range(writers):
            agent_id, params = sessions.agent_params(definition_id, f"session-{w}")
            self.connection.execute(sessions.AGENT_SQL, params)
            self.agent_ids.append(agent_id)

    async def append(self, writer: int, number: int) -> None:
        params = sessions.log_params(self.agent_ids[writer], f"record {number}", {"n": number})
        self.connection.execute(sessions.LOG_SQL, params)

    async def synchronous(self) -> int:
        return int(self.connection.execute("PRAGMA synchronous").fetchone()[0])

    async def close(self) -> None:
        self.connection.close()


@functools.cache
def _session_class() -> Any:
    """``SQLiteSession`` with a level of ``synchronous`` on every connection it opens."""
    from agents import SQLiteSession

    class SessionAtLevel(SQLiteSession):
        def __init__(self, session_id: str, db_path: Path, synchronous: str | None) -> None:
            self._synchronous = synchronous  # before the base opens its first connection
            super().__init__(session_id, db_path)

        # A static method in the base, always called through ``self``: a method here.
        def _configure_connection(self, conn: sqlite3.Connection) -> None:  # type: ignore[override]
            super()._configure_connection(conn)
            if self._synchronous is not None:
                conn.execute(f"PRAGMA synchronous = {self._synchronous}")

    return SessionAtLevel


class SQLiteSessionAppender:
    """``SQLiteSession.add_items`` of one message; a session (conversation) per writer,
    all in one file, as an app serving several conversations would hold them."""

    name = "SQLiteSession"
    table = "agent_messages"

    async def open(self, path: Path, writers: int, synchronous: str | None) -> None:
        session_class = _session_class()
        self.sessions = [
            session_class(f"conversation-{w}", path, synchronous) for w in range(writers)
        ]

    async def append(self, writer: int, number: int) -> None:
        await self.sessions[writer].add_items([{"role": "user", "content": f"record {number}"}])

    async def synchronous(self) -> int:
        session = self.sessions[0]

        def read() -> int:  # on a worker thread, through a connection add_items uses
            with session._locked_connection() as conn:
                return int(conn.execute("PRAGMA synchronous").fetchone()[0])

        return await asyncio.to_thread(read)

    async def close(self) -> None:
        for session in self.sessions:
            session.close()


class AsyncSqliteSaverAppender:
    """``AsyncSqliteSaver.aput`` of a small checkpoint (one short channel value) on one
    saver, a thread (conversation) per writer, each checkpoint the next one's parent."""

    name = "AsyncSqliteSaver"
    table = "checkpoints"

    async def open(self, path: Path, writers: int, synchronous: str | None) -> None:
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        self.connection = await aiosqlite.connect(path)
        if synchronous is not None:
            await self.connection.execute(f"PRAGMA synchronous = {synchronous}")
        self.saver = AsyncSqliteSaver(self.connection)
        await self.saver.setup()  # sets WAL, creates its tables
        self.configs: list[Any] = [  # RunnableConfig: each aput returns the next
            {"configurable": {"thread_id": f"thread-{w}", "checkpoint_ns": ""}}
            for w in range(writers)
        ]

    async def append(self, writer: int, number: int) -> None:
        from langgraph.checkpoint.base import empty_checkpoint

        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": f"record {number}"}
        checkpoint["channel_versions"] = {"messages": number + 1}
        metadata: Any = {"source": "loop", "step": number, "parents": {}}
        self.configs[writer] = await self.saver.aput(
            self.configs[writer], checkpoint, metadata, {"messages": number + 1}
        )

    async def synchronous(self) -> int:
        async with self.connection.execute("PRAGMA synchronous") as cursor:
            row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def close(self) -> None:
        await self.connection.close()


def all_appenders() -> list[Appender]:
    return [
        StoreAppender(),
        RawSqlite3Appender(),
        SQLiteSessionAppender(),
        AsyncSqliteSaverAppender(),
    ]
