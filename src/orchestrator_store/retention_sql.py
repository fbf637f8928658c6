"""The statements of retention (``retention``), for one SQL dialect.

Every statement is a plain ``DELETE`` (or a read): deletes fire the schema's
triggers and cascades, so whatever the triggers maintain stays exact. Each
``DELETE`` removes at most a bound number of rows, picked by a subquery with
``LIMIT`` (portable: SQLite's ``DELETE ... LIMIT`` is a compile-time option),
so that one statement is one short write transaction.

A session is the agents sharing a ``session_id``. Its time is the latest
start or finish of its agents; it is running while one of its agents is
(status not completed, failed or cancelled, and no ``completed_at``), and a
running session is never deleted: every statement that deletes a session's
rows checks that again, at the moment it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .dialect import Dialect
from .tables import TABLES

__all__ = ["SESSION_CHILDREN", "RetentionSql"]

# The tables whose rows belong to an agent, deleted before the agents themselves
# (in bounded batches; the agents' ON DELETE CASCADE would take them all at once).
SESSION_CHILDREN: tuple[str, ...] = tuple(
    name for name, table in TABLES.items() if table.references.get("agent_id") == "agents"
)

_FINISHED = "('completed', 'failed', 'cancelled')"


def _running(alias: str) -> str:
    return f"({alias}.completed_at IS NULL AND {alias}.status NOT IN {_FINISHED})"


@dataclass(frozen=True)
class RetentionSql:
    dialect: Dialect

    def _marks(self, count: int, start: int = 1) -> str:
        return ", ".join(self.dialect.placeholder(index) for index in range(start, start + count))

    def _mark(self, index: int) -> str:
        return self.dialect.placeholder(index)

    @property
    def _ended(self) -> str:
        """A session's time: the latest start or finish of its agents."""
        return (
            "max(CASE WHEN a.completed_at > a.started_at THEN a.completed_at ELSE a.started_at END)"
        )

    # --- logs ------------------------------------------------------------------

    def delete_older(self, table: str) -> str:
        """At most ``$2`` rows of a log table older than ``$1``, oldest first."""
        return (
            f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table}"
            f" WHERE created_at < {self._mark(1)} ORDER BY created_at, id LIMIT {self._mark(2)})"
        )

    def count_older(self, table: str) -> str:
        return f"SELECT count(*) AS n FROM {table} WHERE created_at < {self._mark(1)}"

    def oldest(self, table: str) -> str:
        """The time of a log table's oldest row (NULL when it is empty)."""
        return f"SELECT min(created_at) AS oldest FROM {table}"

    # --- sessions --------------------------------------------------------------

    def sessions(self, *, after: bool, before: bool, limit: bool) -> str:
        """Sessions that are not running, oldest first, as (session_id, ended).
        ``after`` binds (time, id) to start past (paging), ``before`` (time, id)
        to stop short of, ``limit`` the page size; in that order."""
        ended = self._ended
        index = 1
        having = [f"sum(CASE WHEN {_running('a')} THEN 1 ELSE 0 END) = 0"]
        if after:
            t, s, i = self._mark(index), self._mark(index + 1), self._mark(index + 2)
            having.append(f"({ended} > {t} OR ({ended} = {s} AND a.session_id > {i}))")
            index += 3
        if before:
            t, s, i = self._mark(index), self._mark(index + 1), self._mark(index + 2)
            having.append(f"({ended} < {t} OR ({ended} = {s} AND a.session_id < {i}))")
            index += 3
        sql = (
            f"SELECT a.session_id AS session_id, {ended} AS ended FROM agents a"
            f" GROUP BY a.session_id HAVING {' AND '.join(having)}"
        )
        if limit:
            sql += f" ORDER BY ended, session_id LIMIT {self._mark(index)}"
        return sql

    def newest_session(self) -> str:
        """The session at position ``$1`` (0: the newest) from the newest, running or not."""
        return (
            f"SELECT a.session_id AS session_id, {self._ended} AS ended FROM agents a"
            " GROUP BY a.session_id ORDER BY ended DESC, session_id DESC"
            f" LIMIT 1 OFFSET {self._mark(1)}"
        )

    def agents_of(self, sessions: int) -> str:
        return f"SELECT id FROM agents WHERE session_id IN ({self._marks(sessions)}) ORDER BY id"

    def sessions_left(self, sessions: int) -> str:
        return (
            "SELECT count(DISTINCT session_id) AS n FROM agents"
            f" WHERE session_id IN ({self._marks(sessions)})"
        )

    def _finished_agents(self, agents: int) -> str:
        """Those of the given agents whose session runs no agent, right now."""
        return (
            f"SELECT a.id FROM agents a WHERE a.id IN ({self._marks(agents)})"
            " AND NOT EXISTS (SELECT 1 FROM agents r"
            f" WHERE r.session_id = a.session_id AND {_running('r')})"
        )

    def delete_children(self, table: str, agents: int) -> str:
        """At most ``$(agents + 1)`` rows of ``table`` belonging to the given
        agents (bound first), unless their session is running."""
        return (
            f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table}"
            f" WHERE agent_id IN ({self._finished_agents(agents)})"
            f" LIMIT {self._mark(agents + 1)})"
        )

    def delete_agents(self, agents: int) -> str:
        """The given agents, unless their session is running; what is left of
        their rows goes with them (ON DELETE CASCADE)."""
        return f"DELETE FROM agents WHERE id IN ({self._finished_agents(agents)})"

    # --- what a dry run counts ----------------------------------------------------

    def count_doomed(
        self, table: str, before: Sequence[str] | None, older: str | None
    ) -> tuple[str, list[str]]:
        """The count, and its parameters, of the rows of ``table`` that sessions
        ordered before ``before`` (as ``sessions`` binds it) and, for a log
        table, an age cutoff ``older`` would delete; for ``sessions``, the
        sessions themselves."""
        conditions: list[str] = []
        params: list[str] = []
        if before is not None and (table in ("sessions", "agents") or table in SESSION_CHILDREN):
            doomed = self.sessions(after=False, before=True, limit=False)
            if table == "sessions":
                return f"SELECT count(*) AS n FROM ({doomed}) d", list(before)
            in_doomed = f"SELECT d.session_id FROM ({doomed}) d"
            if table == "agents":
                conditions.append(f"session_id IN ({in_doomed})")
            else:
                conditions.append(
                    f"agent_id IN (SELECT id FROM agents WHERE session_id IN ({in_doomed}))"
                )
            params.extend(before)
        if older is not None:
            conditions.append(f"created_at < {self._mark(len(params) + 1)}")
            params.append(older)
        if not conditions:
            return "SELECT 0 AS n", []
        return f"SELECT count(*) AS n FROM {table} WHERE {' OR '.join(conditions)}", params
