"""The reports' SQL: over the totals tables, and over the rows where they cannot answer.

The totals (``sql/totals_orchestrator*.sql``) hold sums per session, per session
and UTC day, per UTC day, model and agent definition, and rows per table, kept
by triggers. A report reads a handful of their rows, however long the history.
What they cannot answer is read from the rows themselves, bounded by what is
asked: one session's groups, one agent's sums, and the part of a day a
``since`` cuts into (``raw_costs``).

Costs come back as whole nano-dollars (``cost_nano``); ``reports`` turns them
into dollars, so that adding groups up never drifts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .dialect import Dialect
from .tables import TABLES

__all__ = ["COST_GROUPS", "TotalsSql"]

COST_GROUPS = ("session", "model", "agent_type", "day")

SESSION_COLUMNS = (
    "session_id, agents, failed_agents, active_agents, prompts, failed_prompts,"
    " tokens_input, tokens_output, cost_nano, first_activity, last_activity"
)


@dataclass(frozen=True)
class _RawKeys:
    """A group's key over a prompt (``p`` with its agent ``a`` and definition
    ``o``) and over an agent's own cost (``a`` and ``o``)."""

    prompt: str
    own_cost: str


def _raw_keys(dialect: Dialect) -> dict[str | None, _RawKeys]:
    return {
        None: _RawKeys("NULL", "NULL"),
        "session": _RawKeys("a.session_id", "a.session_id"),
        "model": _RawKeys("p.model_used", "NULL"),
        "agent_type": _RawKeys("o.agent_type", "o.agent_type"),
        "day": _RawKeys(dialect.day_of("p.created_at"), dialect.day_of("a.started_at")),
    }


def _nano(dialect: Dialect) -> Callable[[str], str]:
    """A cost column in whole nano-dollars, rounded as the triggers round it."""
    if dialect.name == "postgresql":
        return lambda column: f"adw_nano({column})"
    return lambda column: f"CAST(round({column} * 1e9) AS INTEGER)"


def _cost_sum(dialect: Dialect) -> Callable[[str], str]:
    """A sum of nano-dollars that cannot overflow, as ``cost_whole`` (dollars)
    and ``cost_nano`` (the rest): SQLite's sum() of integers raises past 2**63
    (9.2e9 dollars), so it adds whole dollars and nano-dollars apart;
    PostgreSQL's costs are NUMERIC already."""
    if dialect.name == "postgresql":
        return lambda column: f"0 AS cost_whole, sum({column}) AS cost_nano"
    return lambda column: (
        f"sum({column} / 1000000000) AS cost_whole, sum({column} % 1000000000) AS cost_nano"
    )


def _not_empty(dialect: Dialect) -> str:
    """A group whose sums are not all zero. On PostgreSQL a key's sums are
    spread over shards that may cancel out (a prompt moved to another day by
    another server process leaves -1 in its shard beside the +1 in the first),
    so it asks the NUMERIC sums themselves. On SQLite a key has one row (shard
    0), a sum of real costs and never negative, which lets it ask without a
    sum of nano-dollars that could overflow."""
    if dialect.name == "postgresql":
        return "sum(prompts) <> 0 OR sum(cost_nano) <> 0"
    return "sum(prompts) <> 0 OR max(abs(cost_nano)) > 0"


def _columns(table: str, alias: str) -> str:
    """A table's columns (never PostgreSQL's hidden row_order), qualified."""
    return ", ".join(f"{alias}.{column}" for column in TABLES[table].columns)


class TotalsSql:
    """Statements for one dialect; parameters are listed with each method."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._nano = _nano(dialect)
        self._sums = (
            "CAST(sum(prompts) AS BIGINT) AS prompts,"
            " CAST(sum(tokens_input) AS BIGINT) AS tokens_input,"
            " CAST(sum(tokens_output) AS BIGINT) AS tokens_output, "
            + _cost_sum(dialect)("cost_nano")
        )
        self._not_empty = _not_empty(dialect)

    def _mark(self, index: int) -> str:
        return self.dialect.placeholder(index)

    # --- sessions ---------------------------------------------------------------

    def latest_sessions(self) -> str:
        """Parameters: limit. Served by the index on (last_activity, session_id)."""
        return (
            f"SELECT {SESSION_COLUMNS} FROM session_totals"
            f" ORDER BY last_activity DESC, session_id DESC LIMIT {self._mark(1)}"
        )

    def all_sessions(self) -> str:
        return (
            f"SELECT {SESSION_COLUMNS} FROM session_totals"
            " ORDER BY last_activity DESC, session_id DESC"
        )

    def one_session(self) -> str:
        """Parameters: session id."""
        return f"SELECT {SESSION_COLUMNS} FROM session_totals WHERE session_id = {self._mark(1)}"

    # --- costs ------------------------------------------------------------------

    def model_costs(self, group: str | None) -> str:
        """Costs by model or agent type, or in total (``group`` None), over the
        whole history: from the all-time sums per model and definition."""
        keys = {None: "NULL", "model": "nullif(m.model_used, '')", "agent_type": "o.agent_type"}
        key = keys[group]
        sql = f"SELECT {key} AS key, {self._sums} FROM model_costs m"
        if group == "agent_type":
            sql += " JOIN orchestrator_agents o ON o.id = m.orchestrator_agent_id"
        if group is not None:
            sql += f" GROUP BY {key} HAVING {self._not_empty}"
        return sql

    def daily_costs(self, group: str | None, *, since: bool) -> str:
        """Costs by model, agent type or day, or in total (``group`` None), from
        the day sums. Parameters: the first day (YYYY-MM-DD) when ``since``."""
        keys = {
            None: "NULL",
            "model": "nullif(d.model_used, '')",
            "agent_type": "o.agent_type",
            "day": "d.day",
        }
        key = keys[group]
        sql = f"SELECT {key} AS key, {self._sums} FROM daily_costs d"
        if group == "agent_type":
            sql += " JOIN orchestrator_agents o ON o.id = d.orchestrator_agent_id"
        if since:
            sql += f" WHERE d.day >= {self._mark(1)}"
        if group is not None:
            sql += f" GROUP BY {key} HAVING {self._not_empty}"
        return sql

    def latest_days(self) -> str:
        """The latest days' costs, newest first. Parameters: how many days.
        Read backwards along the day sums' key, so only those days are read."""
        return (
            f"SELECT day AS key, {self._sums} FROM daily_costs"
            f" GROUP BY day HAVING {self._not_empty} ORDER BY day DESC LIMIT {self._mark(1)}"
        )

    def session_costs(self, *, most_expensive: bool) -> str:
        """Each session's costs from its totals row; ``most_expensive``: the
        costliest first, parameters: limit."""
        sql = (
            "SELECT session_id AS key, prompts, tokens_input, tokens_output, cost_nano"
            " FROM session_totals WHERE prompts <> 0 OR cost_nano <> 0"
        )
        if most_expensive:
            sql += f" ORDER BY cost_nano DESC, session_id DESC LIMIT {self._mark(1)}"
        return sql

    def session_costs_since(self, *, most_expensive: bool) -> str:
        """Each session's costs from a day on. Parameters: the first day, and
        with ``most_expensive`` (the costliest first) the limit. The days are
        picked first (by their index), then grouped by session: grouping along
        the primary key would read every session's every day."""
        sql = (
            "WITH recent AS MATERIALIZED (SELECT session_id, prompts, tokens_input,"
            " tokens_output, cost_nano FROM session_daily_costs"
            f" WHERE day >= {self._mark(1)})"
            f" SELECT session_id AS key, {self._sums} FROM recent"
            f" GROUP BY session_id HAVING {self._not_empty}"
        )
        if most_expensive:
            # SQLite's total() is a float sum, which never overflows (its order
            # could only differ from the exact one between sessions over $9e6
            # apart by less than a nano-dollar).
            total = "sum" if self.dialect.name == "postgresql" else "total"
            sql += f" ORDER BY {total}(cost_nano) DESC, session_id DESC LIMIT {self._mark(2)}"
        return sql

    def raw_costs(self, group: str | None, *, session: bool, since: bool, before: bool) -> str:
        """Costs read from the rows: prompts and agents' own costs, of one
        session (``session``), from a time on (``since``), before a time
        (``before``). Parameters, twice (for prompts, then for agents' own
        costs): those of them asked for, in that order."""
        keys = _raw_keys(self.dialect)[group]
        marks = iter(range(1, 100))

        def conditions(time_column: str) -> str:
            parts = []
            if session:
                parts.append(f"a.session_id = {self._mark(next(marks))}")
            if since:
                parts.append(f"{time_column} >= {self._mark(next(marks))}")
            if before:
                parts.append(f"{time_column} < {self._mark(next(marks))}")
            return "".join(f" AND {part}" for part in parts)

        prompts = (
            f"SELECT {keys.prompt} AS key, 1 AS prompts, p.tokens_input AS tokens_input,"
            f" p.tokens_output AS tokens_output, {self._nano('p.cost_usd')} AS cost_nano"
            " FROM prompts p JOIN agents a ON a.id = p.agent_id"
            " JOIN orchestrator_agents o ON o.id = a.orchestrator_agent_id"
            " WHERE 1 = 1" + conditions("p.created_at")
        )
        own_costs = (
            f"SELECT {keys.own_cost}, 0, 0, 0, {self._nano('a.cost_usd')}"
            " FROM agents a JOIN orchestrator_agents o ON o.id = a.orchestrator_agent_id"
            " WHERE a.cost_usd <> 0" + conditions("a.started_at")
        )
        key = "key" if group is not None else "NULL AS key"
        sql = f"SELECT {key}, {self._sums} FROM ({prompts} UNION ALL {own_costs}) costs"
        if group is not None:
            sql += f" GROUP BY key HAVING {self._not_empty}"
        return sql

    # --- agents -----------------------------------------------------------------

    def agents_prompt_sums(self, count: int) -> str:
        """Prompt sums of ``count`` agents. Parameters: their ids."""
        ids = ", ".join(self._mark(index) for index in range(1, count + 1))
        return (
            "SELECT agent_id, count(*) AS prompts,"
            " CAST(sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS BIGINT)"
            " AS failed_prompts,"
            " CAST(sum(tokens_input) AS BIGINT) AS tokens_input,"
            " CAST(sum(tokens_output) AS BIGINT) AS tokens_output,"
            f" {_cost_sum(self.dialect)(self._nano('cost_usd'))}"
            f" FROM prompts WHERE agent_id IN ({ids}) GROUP BY agent_id"
        )

    def session_agents(self) -> str:
        """A session's agents, in the order they started. Parameters: session id."""
        order = self.dialect.insertion_order("agents")
        return (
            f"SELECT {_columns('agents', 'a')}, o.name AS definition, o.agent_type AS agent_type"
            " FROM agents a JOIN orchestrator_agents o ON o.id = a.orchestrator_agent_id"
            f" WHERE a.session_id = {self._mark(1)} ORDER BY a.started_at, a.{order}"
        )

    def session_prompts(self, *, status: bool) -> str:
        """A session's prompts, oldest first. Parameters: session id, the status
        when ``status``, limit, offset."""
        order = self.dialect.insertion_order("prompts")
        marks = (self._mark(index) for index in range(1, 5))
        sql = (
            f"SELECT {_columns('prompts', 'p')} FROM prompts p JOIN agents a ON a.id = p.agent_id"
            f" WHERE a.session_id = {next(marks)}"
        )
        if status:
            sql += f" AND p.status = {next(marks)}"
        return sql + f" ORDER BY p.created_at, p.{order} LIMIT {next(marks)} OFFSET {next(marks)}"

    # --- rows per table ---------------------------------------------------------

    def row_counts(self) -> str:
        return (
            "SELECT table_name, CAST(sum(row_count) AS BIGINT) AS n"
            " FROM row_counts GROUP BY table_name"
        )
