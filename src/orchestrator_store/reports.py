"""Reports: the read-only views the command line shows.

``Reports`` answers them for ``DatabaseManager``, which owns one and delegates
its report methods to it (their contracts are documented there). It needs only
what it is given: the backend, the SQL builders of its dialect and the
manager's open check, so both backends answer alike. Sessions, costs and row
counts are read from the totals the triggers keep (``totals_sql``), so they
take the same time at any history size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from .backend import Backend
from .dialect import POSTGRES, Condition, SqlBuilder, UpTo
from .errors import ValidationError
from .json_codec import decode_json_columns
from .models import (
    LOG_LEVELS,
    MAX_INTEGER,
    AgentIdPrefix,
    AgentIdSuffix,
    CostQuery,
    LogCursor,
    LogQuery,
    PromptQuery,
    SessionId,
    SessionQuery,
    parse_input,
)
from .tables import LOG_TABLES, TABLES
from .totals_sql import TotalsSql

__all__ = ["Reports"]

Row = dict[str, Any]


# A log cursor's place in one table (see ``models.LogCursor``): (tx, id), where
# tx None places it by id alone (SQLite; on PostgreSQL, among the rows from
# before schema version 5).
Place = tuple[int | None, int]


def _cursor(value: Any, name: str) -> Mapping[str, Any]:
    """``value`` if it is a mapping of names, else a clear error
    (``dict()`` would raise a bare TypeError before the model could say what)."""
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ValidationError(
            f"logs.{name}: a cursor is a dict of log table names to ids (and on "
            f"PostgreSQL their transactions), as log_bounds() gives it; "
            f"got {type(value).__name__}",
            table="logs",
            field=name,
        )
    return value


def _places(value: Any, name: str, *, postgres: bool) -> dict[str, Place]:
    """Each log table's place in the cursor ``value``, or a clear error. A
    cursor with transactions is a PostgreSQL store's: SQLite has none to
    compare them with."""
    cursor = parse_input(LogCursor, "logs", dict(_cursor(value, name)))
    places = {
        table: (getattr(cursor, f"{table}_tx"), getattr(cursor, table)) for table in LOG_TABLES
    }
    if not postgres:
        with_tx = [f"{table}_tx" for table, (tx, _id) in places.items() if tx is not None]
        if with_tx:
            raise ValidationError(
                f"logs.{name}: {', '.join(with_tx)}: a PostgreSQL store's cursor; a SQLite "
                "store's holds each log table's id only (take one from its log_bounds())",
                table="logs",
                field=name,
            )
    return places


def _cursor_of(places: Mapping[str, Place]) -> dict[str, int]:
    """The cursor (a dict of plain ints) of ``places``: the ids, then the
    transactions where there are any."""
    cursor = {table: last_id for table, (_tx, last_id) in places.items()}
    cursor.update({f"{table}_tx": tx for table, (tx, _id) in places.items() if tx is not None})
    return cursor


class _Filters:
    """Conditions on one log table and their values, kept in step."""

    def __init__(self) -> None:
        self.conditions: list[Condition | UpTo] = []
        self.params: list[Any] = []

    def add(self, condition: Condition | UpTo, *values: Any) -> None:
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
        self._totals = TotalsSql(backend.dialect)
        self._require_open = require_open

    async def session_summaries(self, *, limit: int | None) -> list[Row]:
        query = parse_input(SessionQuery, "agents", {"limit": limit})
        self._require_open()
        if query.limit is None:
            rows = await self._read(self._totals.all_sessions(), (), "session_totals")
        else:
            rows = await self._read(
                self._totals.latest_sessions(), (query.limit,), "session_totals"
            )
        return [_in_dollars(row) for row in rows]

    async def session_summary(self, session_id: str) -> Row | None:
        query = parse_input(SessionId, "agents", {"session_id": session_id})
        self._require_open()
        rows = await self._read(self._totals.one_session(), (query.session_id,), "session_totals")
        return _in_dollars(rows[0]) if rows else None

    async def cost_totals(
        self, by: str | None, *, since: Any, session_id: str | None, limit: int | None
    ) -> list[Row]:
        query = parse_input(
            CostQuery,
            "prompts",
            {"by": by, "since": since, "session_id": session_id, "limit": limit},
        )
        self._require_open()
        if query.session_id is not None:  # one session's rows: bounded by its size
            groups = await self._raw_costs(query.by, query.session_id, query.since, None)
        elif query.since is None:
            groups = await self._costs_from_totals(query.by, None, query.limit)
        elif _starts_a_day(query.since):
            groups = await self._costs_from_totals(query.by, query.since[:10], query.limit)
        else:  # the cut day from its rows, the days after it from the totals
            next_day = _next_day(query.since)
            groups = await self._raw_costs(query.by, None, query.since, next_day)
            if next_day is not None:
                groups += await self._costs_from_totals(query.by, next_day[:10], None)
        return _cost_groups(groups, query.by, query.limit)

    async def _costs_from_totals(
        self, by: str | None, first_day: str | None, limit: int | None
    ) -> list[Row]:
        if by == "day" and first_day is None and limit is not None:
            return await self._read(self._totals.latest_days(), (limit,), "daily_costs")
        if by not in ("session", "day") and first_day is None:
            return await self._read(self._totals.model_costs(by), (), "model_costs")
        if by != "session":
            sql = self._totals.daily_costs(by, since=first_day is not None)
            return await self._read(sql, () if first_day is None else (first_day,), "daily_costs")
        if first_day is not None:
            if limit is not None:
                sql = self._totals.session_costs_since(most_expensive=True)
                return await self._read(sql, (first_day, limit), "session_daily_costs")
            sql = self._totals.session_costs_since(most_expensive=False)
            return await self._read(sql, (first_day,), "session_daily_costs")
        if limit is not None:
            sql = self._totals.session_costs(most_expensive=True)
            return await self._read(sql, (limit,), "session_totals")
        return await self._read(
            self._totals.session_costs(most_expensive=False), (), "session_totals"
        )

    async def _raw_costs(
        self, by: str | None, session_id: str | None, since: str | None, before: str | None
    ) -> list[Row]:
        sql = self._totals.raw_costs(
            by, session=session_id is not None, since=since is not None, before=before is not None
        )
        once = [value for value in (session_id, since, before) if value is not None]
        return await self._read(sql, [*once, *once], "prompts")

    async def agents_with_totals(self, agents: list[Row]) -> list[Row]:
        """``agents`` (rows of the agents table), each with its prompts' sums
        and its total cost: ``prompts``, ``failed_prompts``, ``tokens_input``,
        ``tokens_output``, ``prompts_cost_usd`` and ``total_cost_usd`` (its own
        ``cost_usd`` plus its prompts')."""
        _check_agent_rows(agents)
        self._require_open()
        sums: dict[str, Row] = {}
        ids = [str(agent["id"]) for agent in agents]
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            sql = self._totals.agents_prompt_sums(len(chunk))
            for row in await self._read(sql, chunk, "prompts"):
                sums[str(row["agent_id"])] = row
        return [_with_totals(agent, sums.get(str(agent["id"]))) for agent in agents]

    async def session_tree(self, session_id: str) -> list[Row]:
        query = parse_input(SessionId, "agents", {"session_id": session_id})
        self._require_open()
        rows = await self._read(self._totals.session_agents(), (query.session_id,), "agents")
        agents = await self.agents_with_totals(_decoded("agents", rows))
        return _as_tree(agents)

    async def session_prompts(
        self, session_id: str, *, status: str | None, limit: int | None, offset: int
    ) -> list[Row]:
        query = parse_input(SessionId, "prompts", {"session_id": session_id})
        page = parse_input(
            PromptQuery, "prompts", {"status": status, "limit": limit, "offset": offset}
        )
        self._require_open()
        sql = self._totals.session_prompts(status=page.status is not None)
        size = page.limit if page.limit is not None else MAX_INTEGER
        params = [query.session_id, *([page.status] if page.status else []), size, page.offset]
        return _decoded("prompts", await self._read(sql, params, "prompts"))

    async def count_rows(self) -> dict[str, int]:
        self._require_open()
        counted = {
            row["table_name"]: int(row["n"])
            for row in await self._read(self._totals.row_counts(), (), "row_counts")
        }
        return {table: counted.get(table, 0) for table in TABLES}

    async def _read(self, sql: str, params: Sequence[Any], table: str) -> list[Row]:
        """The rows of ``sql``; ``table`` (what it reads first) names it in errors."""
        return await self._backend.fetch_all(sql, params, table=table)

    @property
    def _on_postgres(self) -> bool:
        return self._sql.dialect is POSTGRES

    async def log_bounds(self) -> Row:
        """Both log tables' bounds, read in one statement (so in one snapshot).

        The cursor: on SQLite each table's highest id. On PostgreSQL the
        place (horizon, 0) in each table, the horizon being the snapshot's
        xmin: every row of a transaction below it is final (listed by
        ``list_logs(up_to=...)``), every other one is still to come (a
        transaction at or past the horizon may still be running, and every
        later one gets a larger id), so ``logs_after`` delivers it."""
        self._require_open()
        row = (await self._backend.fetch_all(self._sql.log_bounds(), (), table="agent_logs"))[0]
        firsts = [row[f"{t}_first"] for t in LOG_TABLES if row[f"{t}_first"]]
        lasts = [row[f"{t}_last"] for t in LOG_TABLES if row[f"{t}_last"]]
        if self._on_postgres:
            places: dict[str, Place] = {t: (int(row["horizon"]), 0) for t in LOG_TABLES}
        else:
            places = {t: (None, int(row[f"{t}_max_id"])) for t in LOG_TABLES}
        return {
            "first": min(firsts, default=None),
            "last": max(lasts, default=None),
            "cursor": _cursor_of(places),
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
            ceiling = _places(up_to, "up_to", postgres=self._on_postgres)
        self._require_open()
        agent, system = _log_filters(query)
        if ceiling is not None:
            for table, filters in (("agent_logs", agent), ("system_logs", system)):
                tx, last_id = ceiling[table]
                filters.add(UpTo(by_tx=tx is not None), *([] if tx is None else [tx]), last_id)
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
        """Each table is paged in the order its rows become visible, so
        repeated calls print nothing twice and skip nothing.

        SQLite: on the increasing id. It has one writer at a time, so ids
        become visible in increasing order (a row's id is assigned inside the
        write transaction that commits it, and the next writer starts only
        after that commit).

        PostgreSQL: identities hand out ids before commit, so a row can become
        visible after rows with higher ids. Each row holds ``tx``, the id of
        its inserting transaction; a row is final once ``tx`` is below the
        snapshot's xmin (that transaction and every older one have ended), and
        every row not final yet will have a larger ``tx`` than the final ones.
        So each call returns the final rows after the cursor's (tx, id), in
        that order, horizon and rows read in one statement (one snapshot). The
        price: a row waits until its transaction and every older one still
        running on the server have ended, so a long open transaction anywhere
        on the server (idle in transaction, a long ``transaction()`` block)
        holds the follow back until it ends. Rows from before schema version 5
        (tx NULL) come first, by id, after a cursor without transactions;
        any other cursor is past them."""
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
        places = _places(cursor, "cursor", postgres=self._on_postgres)
        self._require_open()
        agent, system = _log_filters(query)
        rows: list[Row] = []
        for table, source, filters, reads in (
            ("agent_logs", "agent", agent, query.reads_agent_logs),
            ("system_logs", "system", system, query.reads_system_logs),
        ):
            if not reads:
                continue
            tx, last_id = places[table]
            sql = self._sql.logs_after(table, filters.conditions, by_tx=tx is not None)
            params = [*([] if tx is None else [tx]), last_id, *filters.params, query.limit]
            page = await self._backend.fetch_all(sql, params, table=table)
            if page:
                last = page[-1]
                places[table] = (
                    None if last.get("tx") is None else int(last["tx"]),
                    int(last["id"]),
                )
            rows += [_as_log_line(source, row) for row in _decoded(table, page)]
        rows.sort(key=lambda row: (row["created_at"], row["source"], row["id"]))
        return rows, _cursor_of(places)

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


_IDS_PER_QUERY = 500  # bound parameters per statement, well under both drivers' limits
NANO = 1_000_000_000  # nano-dollars a dollar


def _dollars(nano: Any) -> float:
    """Whole nano-dollars as dollars: the nearest float, so 300000000 is 0.3."""
    return int(nano) / NANO


def _nano_of(row: Row) -> int:
    """A row's cost in nano-dollars: ``cost_nano``, plus ``cost_whole`` dollars
    where a sum was split so as not to overflow (see ``totals_sql``)."""
    return int(row.get("cost_whole") or 0) * NANO + int(row["cost_nano"] or 0)


def _in_dollars(row: Row) -> Row:
    row = dict(row)
    row["cost_usd"] = _dollars(_nano_of(row))
    del row["cost_nano"]
    row.pop("cost_whole", None)
    return row


def nano_dollars(cost: float) -> int:
    """A cost in whole nano-dollars, rounded half away from zero as the
    triggers' SQL rounds it (Python's round() would round half to even)."""
    return math.floor(cost * NANO + 0.5)


def _starts_a_day(moment: str) -> bool:
    return moment[10:] == "T00:00:00.000000+00:00"


def _next_day(moment: str) -> str | None:
    """The start of the UTC day after ``moment``'s; ``None`` after the last day."""
    try:
        day = datetime.fromisoformat(moment[:10]) + timedelta(days=1)
    except OverflowError:
        return None
    return day.date().isoformat() + "T00:00:00.000000+00:00"


def _cost_groups(rows: list[Row], by: str | None, limit: int | None) -> list[Row]:
    """Groups of several sources merged by key, in dollars; by key (None first),
    or with ``limit``: the costliest sessions first, or the latest days (in
    order). ``by`` None: one row."""
    merged: dict[Any, Row] = {}
    for row in rows:
        key = row["key"]
        group = merged.setdefault(
            key, {"key": key, "prompts": 0, "tokens_input": 0, "tokens_output": 0, "cost_nano": 0}
        )
        for name in ("prompts", "tokens_input", "tokens_output"):
            group[name] += int(row[name] or 0)
        group["cost_nano"] += _nano_of(row)
    if by is None:
        total = merged.get(None) or {
            "key": None,
            "prompts": 0,
            "tokens_input": 0,
            "tokens_output": 0,
            "cost_nano": 0,
        }
        return [_in_dollars(total)]
    groups = [g for g in merged.values() if g["prompts"] or g["cost_nano"]]
    if by == "session" and limit is not None:  # the costliest sessions first
        groups.sort(key=lambda g: (g["cost_nano"], g["key"]), reverse=True)
        groups = groups[:limit]
    else:
        groups.sort(key=lambda g: (g["key"] is not None, g["key"] or ""))
        if by == "day" and limit is not None:  # the latest days, in order
            groups = groups[-limit:]
    return [_in_dollars(group) for group in groups]


def _check_agent_rows(agents: Any) -> None:
    """Rows as ``list_agents`` gives them, or a clear error (not a KeyError)."""
    problem = None
    if not isinstance(agents, list):
        problem = f"a list of agent rows, got {type(agents).__name__}"
    else:
        for agent in agents:
            cost = agent.get("cost_usd") if isinstance(agent, Mapping) else None
            if not isinstance(agent, Mapping) or not isinstance(agent.get("id"), str):
                problem = "agent rows (as list_agents gives them), each with its id"
            elif isinstance(cost, bool) or not isinstance(cost, int | float):
                problem = "agent rows with their cost_usd"
            elif not math.isfinite(cost) or cost < 0:
                problem = f"agent rows with their cost_usd, got {cost!r}"
            if problem:
                break
    if problem:
        raise ValidationError(f"agents: expected {problem}", table="agents", field="agents")


def _with_totals(agent: Row, sums: Row | None) -> Row:
    prompts_nano = _nano_of(sums) if sums else 0
    own_nano = nano_dollars(float(agent["cost_usd"]))
    return {
        **agent,
        "prompts": int(sums["prompts"]) if sums else 0,
        "failed_prompts": int(sums["failed_prompts"]) if sums else 0,
        "tokens_input": int(sums["tokens_input"]) if sums else 0,
        "tokens_output": int(sums["tokens_output"]) if sums else 0,
        "prompts_cost_usd": _dollars(prompts_nano),
        "total_cost_usd": _dollars(prompts_nano + own_nano),
    }


def _as_tree(agents: list[Row]) -> list[Row]:
    """Agents nested under their parents (``children``, in start order); an
    agent whose parent is not in the session is a root."""
    by_id = {str(agent["id"]): {**agent, "children": []} for agent in agents}
    roots = []
    for agent in by_id.values():
        parent = agent["parent_agent_id"]
        if parent is not None and str(parent) in by_id and str(parent) != str(agent["id"]):
            by_id[str(parent)]["children"].append(agent)
        else:
            roots.append(agent)
    return roots
