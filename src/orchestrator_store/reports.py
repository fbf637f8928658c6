"""Reports: the read-only views the command line shows, aggregated in SQL.

``Reports`` answers them for ``DatabaseManager``, which owns one and delegates
its report methods to it (their contracts are documented there). It needs only
what it is given: the backend, the SQL builder of its dialect and the
manager's open check, so both backends answer alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .backend import Backend
from .dialect import Condition, SqlBuilder
from .errors import ValidationError
from .json_codec import decode_json_columns
from .models import (
    LOG_LEVELS,
    AgentIdPrefix,
    AgentIdSuffix,
    CostQuery,
    LogCursor,
    LogQuery,
    SessionQuery,
    parse_input,
)
from .tables import LOG_TABLES, TABLES

__all__ = ["Reports"]

Row = dict[str, Any]


def _cursor(value: Any, name: str) -> Mapping[str, Any]:
    """``value`` if it is a mapping of table names, else a clear error
    (``dict()`` would raise a bare TypeError before the model could say what)."""
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ValidationError(
            f"logs.{name}: a cursor is a dict of log table names to ids, "
            f"as log_bounds() gives it; got {type(value).__name__}",
            table="logs",
            field=name,
        )
    return value


class _Filters:
    """Conditions on one log table and their values, kept in step."""

    def __init__(self) -> None:
        self.conditions: list[Condition] = []
        self.params: list[Any] = []

    def add(self, condition: Condition, *values: Any) -> None:
        self.conditions.append(condition)
        self.params.extend(values)


def _as_log_line(source: str, row: Row) -> Row:
    """A row of one log table in the shape of ``list_logs``' time line."""
    return {
        "source": source,
        "id": row["id"],
        "created_at": row["created_at"],
        "log_level": row["log_level"],
        "agent_id": row.get("agent_id"),
        "log_type": row.get("log_type"),
        "component": row.get("component"),
        "message": row["message"],
        "details": row["details"],
    }


def _log_filters(query: LogQuery) -> tuple[_Filters, _Filters]:
    agent, system = _Filters(), _Filters()
    if query.agent_id is not None:
        agent.add(Condition("agent_id"), query.agent_id)
    if query.log_type is not None:
        agent.add(Condition("log_type"), query.log_type)
    if query.component is not None:
        system.add(Condition("component"), query.component)
    for filters in (agent, system):
        if query.min_level is not None:
            levels = LOG_LEVELS[LOG_LEVELS.index(query.min_level) :]
            filters.add(Condition("log_level", "IN", len(levels)), *levels)
        if query.since is not None:
            filters.add(Condition("created_at", ">="), query.since)
    return agent, system


class Reports:
    """Sessions, costs, the logs' time line, and agents and workflows by part of their id."""

    def __init__(self, backend: Backend, sql: SqlBuilder, require_open: Callable[[], None]) -> None:
        """``require_open`` raises the store's ``NotConnectedError`` when the
        backend is not open; it runs after validation, before any SQL."""
        self._backend = backend
        self._sql = sql
        self._require_open = require_open

    async def session_summaries(self, *, limit: int | None) -> list[Row]:
        query = parse_input(SessionQuery, "agents", {"limit": limit})
        self._require_open()
        sql = self._sql.session_summaries(limit=query.limit is not None)
        params = [query.limit] if query.limit is not None else []
        return await self._backend.fetch_all(sql, params, table="agents")

    async def cost_totals(self, by: str | None, *, since: Any) -> list[Row]:
        query = parse_input(CostQuery, "prompts", {"by": by, "since": since})
        self._require_open()
        sql = self._sql.cost_totals(query.by, since=query.since is not None)
        params = [query.since] if query.since is not None else []
        return await self._backend.fetch_all(sql, params, table="prompts")

    async def log_bounds(self) -> Row:
        """Both log tables' bounds, read in one statement (so in one snapshot)."""
        self._require_open()
        row = (await self._backend.fetch_all(self._sql.log_bounds(), (), table="agent_logs"))[0]
        firsts = [row[f"{t}_first"] for t in LOG_TABLES if row[f"{t}_first"]]
        lasts = [row[f"{t}_last"] for t in LOG_TABLES if row[f"{t}_last"]]
        return {
            "first": min(firsts, default=None),
            "last": max(lasts, default=None),
            "cursor": {t: int(row[f"{t}_max_id"]) for t in LOG_TABLES},
        }

    async def list_logs(
        self,
        *,
        agent_id: str | None,
        min_level: str | None,
        log_type: str | None,
        component: str | None,
        since: Any,
        limit: int | None,
        up_to: Mapping[str, int] | None,
    ) -> list[Row]:
        query = parse_input(
            LogQuery,
            "logs",
            {
                "agent_id": agent_id,
                "min_level": min_level,
                "log_type": log_type,
                "component": component,
                "since": since,
                "limit": limit,
            },
        )
        ceiling = None
        if up_to is not None:
            ceiling = parse_input(LogCursor, "logs", dict(_cursor(up_to, "up_to")))
        self._require_open()
        agent, system = _log_filters(query)
        if ceiling is not None:
            agent.add(Condition("id", "<="), ceiling.agent_logs)
            system.add(Condition("id", "<="), ceiling.system_logs)
        params = [
            *(agent.params if query.reads_agent_logs else []),
            *(system.params if query.reads_system_logs else []),
        ]
        if query.limit is not None:
            params.append(query.limit)
        sql = self._sql.interleaved_logs(
            agent.conditions if query.reads_agent_logs else None,
            system.conditions if query.reads_system_logs else None,
            limit=query.limit is not None,
        )
        rows = await self._backend.fetch_all(sql, params, table="logs")
        return _decoded("agent_logs", rows)  # both tables' JSON column: details

    async def logs_after(
        self,
        cursor: Mapping[str, int],
        *,
        agent_id: str | None,
        min_level: str | None,
        log_type: str | None,
        component: str | None,
        limit: int,
    ) -> tuple[list[Row], dict[str, int]]:
        """Each table is paged on its increasing id, so repeated calls print
        nothing twice and skip nothing: SQLite has one writer at a time, so ids
        become visible in increasing order (a row's id is assigned inside the
        write transaction that commits it, and the next writer starts only
        after that commit)."""
        query = parse_input(
            LogQuery,
            "logs",
            {
                "agent_id": agent_id,
                "min_level": min_level,
                "log_type": log_type,
                "component": component,
                "limit": limit,
            },
        )
        start = parse_input(LogCursor, "logs", dict(_cursor(cursor, "cursor")))
        self._require_open()
        agent, system = _log_filters(query)
        rows: list[Row] = []
        next_cursor = start.model_dump()
        for table, source, filters, reads in (
            ("agent_logs", "agent", agent, query.reads_agent_logs),
            ("system_logs", "system", system, query.reads_system_logs),
        ):
            if not reads:
                continue
            conditions = [Condition("id", ">"), *filters.conditions]
            params = [next_cursor[table], *filters.params, query.limit]
            sql = self._sql.select_matching(table, conditions, limit=True)
            page = await self._backend.fetch_all(sql, params, table=table)
            if page:
                next_cursor[table] = int(page[-1]["id"])
            rows += [_as_log_line(source, row) for row in _decoded(table, page)]
        rows.sort(key=lambda row: (row["created_at"], row["source"], row["id"]))
        return rows, next_cursor

    async def find_by_id_prefix(self, table: str, prefix: str, *, limit: int) -> list[Row]:
        """Rows of ``table`` (agents or workflows) whose id starts with ``prefix``."""
        query = parse_input(AgentIdPrefix, table, {"prefix": prefix, "limit": limit})
        return await self._with_id_like(table, query.prefix + "%", query.limit)

    async def find_by_id_suffix(self, table: str, suffix: str, *, limit: int) -> list[Row]:
        """Rows of ``table`` (agents or workflows) whose id ends with ``suffix``."""
        query = parse_input(AgentIdSuffix, table, {"suffix": suffix, "limit": limit})
        return await self._with_id_like(table, "%" + query.suffix, query.limit)

    async def _with_id_like(self, table: str, pattern: str, limit: int) -> list[Row]:
        self._require_open()
        sql = self._sql.select_matching(table, [Condition("id", "LIKE")], limit=True)
        rows = await self._backend.fetch_all(sql, (pattern, limit), table=table)
        return _decoded(table, rows)


def _decoded(table: str, rows: list[Row]) -> list[Row]:
    return decode_json_columns(rows, TABLES[table].json_columns)
