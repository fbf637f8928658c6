"""Reports: the read-only views the command line shows, aggregated in SQL.

``ReportQueries`` is mixed into ``DatabaseManager``: the same public methods,
kept apart from the rows' create/read/update/delete. Its methods use only the
manager's shared steps (validation, the SQL builder, the backend), named by the
``_Store`` protocol, so both backends answer them alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar, get_args

from pydantic import BaseModel

from .backend import Backend
from .dialect import Condition, SqlBuilder
from .errors import ValidationError
from .models import (
    AgentIdPrefix,
    AgentIdSuffix,
    CostQuery,
    LogCursor,
    LogLevel,
    LogQuery,
    SessionQuery,
)

__all__ = ["LOG_LEVELS", "ReportQueries"]

ModelT = TypeVar("ModelT", bound=BaseModel)
Row = dict[str, Any]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)  # least to most severe


def _cursor(value: Any, name: str) -> Mapping[str, Any]:
    """A log cursor as keywords: a mapping of table names, else a clear error
    (``**`` would raise a bare TypeError before the model could say what)."""
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


class _Store(Protocol):
    """What the reports need of the manager they are mixed into."""

    _backend: Backend
    _sql: SqlBuilder

    def _parse(self, model: type[ModelT], table: str, /, **data: Any) -> ModelT: ...
    def _require_open(self) -> None: ...
    def _decode(self, table: str, rows: list[Row]) -> list[Row]: ...


class ReportQueries:
    """Sessions, costs, the logs' time line and agents by part of their id."""

    async def session_summaries(self: _Store, *, limit: int | None = None) -> list[Row]:
        """One row per session, most recently active first: ``session_id``,
        ``agents``, ``active_agents``, ``failed_agents``, ``prompts``,
        ``failed_prompts``, ``tokens_input``, ``tokens_output``, ``cost_usd``
        (the sum of its prompts' costs), ``first_activity``, ``last_activity``."""
        query = self._parse(SessionQuery, "agents", limit=limit)
        self._require_open()
        sql = self._sql.session_summaries(limit=query.limit is not None)
        params = [query.limit] if query.limit is not None else []
        return await self._backend.fetch_all(sql, params, table="agents")

    async def cost_totals(self: _Store, by: str | None = None, *, since: Any = None) -> list[Row]:
        """Prompts' ``prompts``, ``tokens_input``, ``tokens_output`` and
        ``cost_usd`` per ``key``: grouped ``by`` session, model, agent_type or
        day (UTC), ordered by key; with ``by=None``, one row of grand totals.
        ``since`` (aware datetime or ISO string) keeps prompts created then or later."""
        query = self._parse(CostQuery, "prompts", by=by, since=since)
        self._require_open()
        sql = self._sql.cost_totals(query.by, since=query.since is not None)
        params = [query.since] if query.since is not None else []
        return await self._backend.fetch_all(sql, params, table="prompts")

    async def log_bounds(self: _Store) -> Row:
        """``first`` and ``last`` log time over both log tables (None when both
        are empty) and ``cursor``: the highest id of each, read in one snapshot,
        which is where ``logs_after`` starts to follow new rows."""
        self._require_open()
        row = (await self._backend.fetch_all(self._sql.log_bounds(), (), table="agent_logs"))[0]
        firsts = [row[f"{t}_first"] for t in ("agent_logs", "system_logs") if row[f"{t}_first"]]
        lasts = [row[f"{t}_last"] for t in ("agent_logs", "system_logs") if row[f"{t}_last"]]
        return {
            "first": min(firsts, default=None),
            "last": max(lasts, default=None),
            "cursor": {t: int(row[f"{t}_max_id"]) for t in ("agent_logs", "system_logs")},
        }

    async def list_logs(
        self: _Store,
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
        ``component``, ``message`` and ``details``. ``min_level`` keeps that
        level and above; ``agent_id`` and ``log_type`` select agent logs only,
        ``component`` system logs only. ``up_to`` (a cursor from ``log_bounds``)
        keeps rows with ids at or below it, so a listing followed by
        ``logs_after(cursor)`` shows every row exactly once."""
        query = self._parse(
            LogQuery,
            "logs",
            agent_id=agent_id,
            min_level=min_level,
            log_type=log_type,
            component=component,
            since=since,
            limit=limit,
        )
        ceiling = None
        if up_to is not None:
            ceiling = self._parse(LogCursor, "logs", **_cursor(up_to, "up_to"))
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
        return self._decode("agent_logs", rows)  # both tables' JSON column: details

    async def logs_after(
        self: _Store,
        cursor: Mapping[str, int],
        *,
        agent_id: str | None = None,
        min_level: str | None = None,
        log_type: str | None = None,
        component: str | None = None,
        limit: int = 500,
    ) -> tuple[list[Row], dict[str, int]]:
        """Log rows with ids above ``cursor``, in time order, and the cursor to
        pass next time. Each table is paged on its increasing id, at most
        ``limit`` rows each per call, so repeated calls print nothing twice and
        skip nothing: SQLite has one writer at a time, so ids become visible in
        increasing order (a row's id is assigned inside the write transaction
        that commits it, and the next writer starts only after that commit)."""
        query = self._parse(
            LogQuery,
            "logs",
            agent_id=agent_id,
            min_level=min_level,
            log_type=log_type,
            component=component,
            limit=limit,
        )
        start = self._parse(LogCursor, "logs", **_cursor(cursor, "cursor"))
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
            rows += [_as_log_line(source, row) for row in self._decode(table, page)]
        rows.sort(key=lambda row: (row["created_at"], row["source"], row["id"]))
        return rows, next_cursor

    async def find_agents_by_prefix(self: _Store, prefix: str, *, limit: int = 2) -> list[Row]:
        """Agents whose id starts with ``prefix`` (case-insensitive), in id
        order, at most ``limit``: one row means the prefix is unambiguous."""
        table = "agents"
        query = self._parse(AgentIdPrefix, table, prefix=prefix, limit=limit)
        self._require_open()
        sql = self._sql.select_matching(table, [Condition("id", "LIKE")], limit=True)
        rows = await self._backend.fetch_all(sql, (query.prefix + "%", query.limit), table=table)
        return self._decode(table, rows)

    async def find_agents_by_suffix(self: _Store, suffix: str, *, limit: int = 2) -> list[Row]:
        """Agents whose id ends with ``suffix`` (case-insensitive), in id order,
        at most ``limit``. Ids are time-ordered, so agents made in the same
        minute share their first characters; the last ones are random."""
        table = "agents"
        query = self._parse(AgentIdSuffix, table, suffix=suffix, limit=limit)
        self._require_open()
        sql = self._sql.select_matching(table, [Condition("id", "LIKE")], limit=True)
        rows = await self._backend.fetch_all(sql, ("%" + query.suffix, query.limit), table=table)
        return self._decode(table, rows)
