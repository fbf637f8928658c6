"""Retention: what ``DatabaseManager.prune`` deletes, in what order, and how
the space comes back.

Rules (``models.RetentionPolicy``; a row goes when any rule says so)
    * Logs by age: ``agent_log_days``, ``system_log_days``.
    * Sessions by age (``session_days``: the session's latest agent start or
      finish is older) and by count (``keep_sessions``: all but the newest N).
      A session is its agents, with their prompts, logs and chat messages.
    * A size cap (``max_bytes``, SQLite): while the file's pages in use take
      more, the oldest go first, whatever they are: a batch of the oldest log
      lines, or the oldest finished session with all its rows, whichever is
      older. The file keeps an unbroken recent window of history, and reports
      keep whole sessions (logs alone would leave a session without its story,
      sessions alone would keep years of system logs).
    A session with an agent still running (status not completed, failed or
    cancelled, and no ``completed_at``) is never deleted, by any rule: every
    statement checks it as it runs. Prompts have no age of their own: they
    are the record of cost, and go with their session.

Short transactions
    Every ``DELETE`` removes at most ``batch_rows`` rows (children before the
    agents they belong to), and commits on its own, so other tasks and
    processes keep writing in between; nothing holds the write lock for long.
    On SQLite each of prune's write transactions is followed by a pause as
    long as it took (see ``_Pruner._paced``): measured on a 611 MB file, a
    process appending one commit at a time kept a p99 of 0.34 ms and a worst
    write of 0.21 s through a 28 s prune (unpaced: 4.5 s, starved).
    Deletes are plain ``DELETE`` statements: triggers and cascades run as for
    any delete, so totals that triggers keep stay exact. Inside the caller's
    ``transaction()``, the deletes join it (and the space step then refuses).

Space
    SQLite: new files use ``auto_vacuum=INCREMENTAL``; after deleting, the
    free pages are handed back ``RECLAIM_PAGES`` at a time (one short
    transaction each), then the WAL is checkpointed and the file shrinks. A
    file made before that (``auto_vacuum=NONE``) keeps its free pages for new
    rows, so it stops growing but does not shrink, until ``vacuum=True``
    rewrites it once (``VACUUM``, which also switches it over): that holds
    the write lock for the whole rewrite (seconds per GB; other processes'
    writes wait, up to their busy timeout), writes the whole file through
    the WAL and needs free disk space about the file's size.
    PostgreSQL: first the totals' rows kept per server process are folded
    into one (``adw_fold_shards``, which never waits for a writer), then each
    table deleted from, and the totals its triggers keep, gets
    a plain ``VACUUM (ANALYZE)`` (not FULL: no exclusive lock, writers go on), so
    later rows reuse the space and the tables stay flat across prune cycles
    instead of growing
    (``tests/test_retention.py`` measures it). ``max_bytes`` is SQLite's:
    a server's tables do not shrink when rows go, so there is no file size
    to cap.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from .backend import Backend
from .errors import ValidationError
from .models import RetentionPolicy, format_timestamp
from .retention_sql import SESSION_CHILDREN, RetentionSql
from .sqlite_backend import SQLiteBackend
from .tables import LOG_TABLES, TABLES, TOTALS_TABLES

__all__ = [
    "AutomaticRetention",
    "PruneReport",
    "cutoff",
    "delete_old_logs",
    "parse_size",
    "prune",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

RECLAIM_PAGES = 500  # pages handed back per transaction: 2 MiB at 4 KiB pages
MAX_PAUSE = 0.25  # seconds between two of prune's write transactions, at most (see _paced)
SESSIONS_PER_PAGE = 50  # sessions read at a time, oldest first
AGENTS_PER_STATEMENT = 500  # agent ids bound in one statement, far under any driver's limit
MAX_SESSIONS_PER_STEP = 64  # sessions deleted between two looks at the size (max_bytes)
# Later than any row: "before this" is every session (keep_sessions=0).
END_OF_TIME = "9999-12-31T23:59:59.999999+00:00"
AUTO_VACUUM_MODES = {0: "none", 1: "full", 2: "incremental"}
SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", re.IGNORECASE)

Bound = tuple[str, str]  # a session's (time, id): sessions order by both


def cutoff(days: float) -> str:
    """The store's timestamp ``days`` days ago; further back than year 1, year
    1 itself (no row is that old, so nothing matches)."""
    try:
        return format_timestamp(datetime.now(UTC) - timedelta(days=days))
    except OverflowError:
        return format_timestamp(datetime.min.replace(tzinfo=UTC))


def parse_size(text: str) -> int:
    """``500MB``, ``1.5GiB``, ``200000`` (bytes) -> bytes. Units: B, kB, MB,
    GB, TB (powers of 1000) and KiB, MiB, GiB, TiB (powers of 1024), any case."""
    match = SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in SIZE_UNITS:
        raise ValueError(
            f"{text!r} is not a size: give a number and a unit such as 500MB, 2GB or 1.5GiB"
        )
    size = math.floor(float(match.group(1)) * SIZE_UNITS[unit])
    if size < 1:
        raise ValueError(f"{text!r} is less than one byte")
    return size


@dataclass(frozen=True)
class PruneReport:
    """What ``prune`` deleted (or, in a dry run, would delete) and what it
    did to the space.

    ``rows``: table -> rows deleted, a session's prompts, logs and chat rows
    included; ``sessions``: sessions deleted. ``bytes_before`` and
    ``bytes_after``: on disk, the file and its WAL (SQLite) or the tables with
    their indexes (PostgreSQL). ``used_bytes``: the pages in use afterwards
    (SQLite; on PostgreSQL the tables' size), what ``max_bytes`` caps.
    ``auto_vacuum``: the SQLite file's mode afterwards (``None`` on
    PostgreSQL). ``notes``: what the numbers alone do not say."""

    dry_run: bool
    rows: Mapping[str, int]
    sessions: int
    bytes_before: int
    bytes_after: int
    used_bytes: int
    free_bytes: int
    max_bytes: int | None = None
    auto_vacuum: str | None = None
    checkpoint_busy: bool = False
    notes: tuple[str, ...] = ()

    @property
    def deleted(self) -> int:
        """Rows deleted in all tables."""
        return sum(self.rows.values())

    @property
    def bytes_reclaimed(self) -> int:
        """How much smaller the database is on disk."""
        return max(0, self.bytes_before - self.bytes_after)

    @property
    def over_cap(self) -> bool:
        """``max_bytes`` was given and the pages in use still take more."""
        return self.max_bytes is not None and self.used_bytes > self.max_bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "rows": dict(self.rows),
            "sessions": self.sessions,
            "deleted": self.deleted,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "bytes_reclaimed": self.bytes_reclaimed,
            "used_bytes": self.used_bytes,
            "free_bytes": self.free_bytes,
            "max_bytes": self.max_bytes,
            "over_cap": self.over_cap,
            "auto_vacuum": self.auto_vacuum,
            "checkpoint_busy": self.checkpoint_busy,
            "notes": list(self.notes),
        }


@dataclass
class _Tally:
    rows: dict[str, int] = field(default_factory=dict)
    sessions: int = 0

    def add(self, table: str, count: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + count


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _before(bound: Bound) -> list[str]:
    return [bound[0], bound[0], bound[1]]


class _Pruner:
    def __init__(self, backend: Backend, policy: RetentionPolicy) -> None:
        self.backend = backend
        self.policy = policy
        self.sql = RetentionSql(backend.dialect)
        self.sqlite = backend if isinstance(backend, SQLiteBackend) else None

    # --- reading -----------------------------------------------------------------

    async def _one(self, sql: str, params: Sequence[Any] = (), table: str = "(retention)") -> Any:
        rows = await self.backend.fetch_all(sql, params, table=table)
        return rows[0] if rows else None

    async def _sessions(self, count: int, after: Bound | None, before: Bound | None) -> list[Bound]:
        params = [*(_before(after) if after else ()), *(_before(before) if before else ())]
        sql = self.sql.sessions(after=after is not None, before=before is not None, limit=True)
        rows = await self.backend.fetch_all(sql, [*params, count], table="agents")
        return [(str(row["ended"]), str(row["session_id"])) for row in rows]

    async def _session_bound(self) -> Bound | None:
        """Sessions ordered before this go by the session rules (None: no rule applies)."""
        bounds: list[Bound] = []
        if self.policy.session_days is not None:
            bounds.append((cutoff(self.policy.session_days), ""))
        keep = self.policy.keep_sessions
        if keep == 0:
            bounds.append((END_OF_TIME, ""))
        elif keep is not None:
            row = await self._one(self.sql.newest_session(), [keep - 1], "agents")
            if row is not None:
                bounds.append((str(row["ended"]), str(row["session_id"])))
        return max(bounds) if bounds else None

    def _log_ages(self) -> dict[str, float]:
        ages = {
            "agent_logs": self.policy.agent_log_days,
            "system_logs": self.policy.system_log_days,
        }
        return {table: days for table, days in ages.items() if days is not None}

    async def _used_bytes(self) -> tuple[dict[str, int], int]:
        sizes = await self.backend.storage()
        if self.sqlite is None:
            return sizes, sizes["file_bytes"]
        return sizes, (sizes["page_count"] - sizes["freelist_count"]) * sizes["page_size"]

    async def _auto_vacuum(self) -> str | None:
        if self.sqlite is None:
            return None
        row = await self._one("PRAGMA auto_vacuum", (), "(database)")
        return AUTO_VACUUM_MODES.get(int(row["auto_vacuum"]), "unknown")

    # --- a dry run -----------------------------------------------------------------

    async def count(self) -> PruneReport:
        bound = await self._session_bound()
        ages = self._log_ages()
        tally = _Tally()
        before = _before(bound) if bound else None
        for table in dict.fromkeys(("agents", *SESSION_CHILDREN, *LOG_TABLES)):
            older = cutoff(ages[table]) if table in ages else None
            sql, params = self.sql.count_doomed(table, before, older)
            tally.add(table, int((await self._one(sql, params, table))["n"]))
        sql, params = self.sql.count_doomed("sessions", before, None)
        tally.sessions = int((await self._one(sql, params, "agents"))["n"])
        sizes, used = await self._used_bytes()
        on_disk = sizes["file_bytes"] + sizes["wal_bytes"]
        notes = []
        if self.policy.max_bytes is not None and used > self.policy.max_bytes:
            notes.append(
                f"the file uses {used} bytes, {used - self.policy.max_bytes} over max_bytes: "
                "a real run then deletes the oldest logs and sessions until it is under "
                "(which ones depends on how much each frees, so a dry run does not count them)"
            )
        return PruneReport(
            dry_run=True,
            rows={table: count for table, count in tally.rows.items() if count},
            sessions=tally.sessions,
            bytes_before=on_disk,
            bytes_after=on_disk,
            used_bytes=used,
            free_bytes=sizes["freelist_count"] * sizes["page_size"],
            max_bytes=self.policy.max_bytes,
            auto_vacuum=await self._auto_vacuum(),
            notes=tuple(notes),
        )

    # --- deleting ------------------------------------------------------------------

    async def _paced(self, write: Awaitable[T]) -> T:
        """Run one write transaction, then, on SQLite, stay away as long as it
        took. Other processes wait for the file's write lock in SQLite's busy
        handler, which looks again only every few to 100 ms: back-to-back
        transactions would leave them gaps too short to notice, for seconds.
        (Tasks of this process queue on the writer thread and are not starved.)"""
        started = time.monotonic()
        result = await write
        if self.sqlite is not None:
            await asyncio.sleep(min(time.monotonic() - started, MAX_PAUSE))
        return result

    async def _delete(self, sql: str, params: Sequence[Any], table: str) -> int:
        return (await self._paced(self.backend.execute(sql, params, table=table))).rowcount

    async def _delete_batches(
        self, sql: str, params: Sequence[Any], table: str, tally: _Tally
    ) -> int:
        """Run a bounded DELETE (its limit bound last) until it deletes less than a batch."""
        batch = self.policy.batch_rows
        total = 0
        while True:
            count = await self._delete(sql, [*params, batch], table)
            total += count
            if count < batch:
                tally.add(table, total)
                return total

    async def delete_old_logs(self, tally: _Tally) -> None:
        for table, days in self._log_ages().items():
            await self._delete_batches(self.sql.delete_older(table), [cutoff(days)], table, tally)

    async def _delete_sessions(self, sessions: Sequence[str], tally: _Tally) -> None:
        """Their agents' rows, table by table in batches, then the agents."""
        rows = await self.backend.fetch_all(
            self.sql.agents_of(len(sessions)), sessions, table="agents"
        )
        agents = [str(row["id"]) for row in rows]
        for chunk in _chunks(agents, AGENTS_PER_STATEMENT):
            for table in SESSION_CHILDREN:
                await self._delete_batches(
                    self.sql.delete_children(table, len(chunk)), chunk, table, tally
                )
            tally.add(
                "agents", await self._delete(self.sql.delete_agents(len(chunk)), chunk, "agents")
            )
        left = await self._one(self.sql.sessions_left(len(sessions)), sessions, "agents")
        tally.sessions += len(sessions) - int(left["n"])

    async def delete_sessions_by_rule(self, tally: _Tally) -> None:
        bound = await self._session_bound()
        after: Bound | None = None
        while bound is not None:
            page = await self._sessions(SESSIONS_PER_PAGE, after, bound)
            if not page:
                return
            await self._delete_sessions([session for _time, session in page], tally)
            after = page[-1]

    async def enforce_cap(self, cap: int, tally: _Tally) -> None:
        """Delete the oldest logs and sessions until the pages in use fit ``cap``."""
        _sizes, used = await self._used_bytes()
        pending: list[Bound] = []
        after: Bound | None = None
        per_step = 1
        while used > cap:
            if not pending:
                pending = await self._sessions(SESSIONS_PER_PAGE, after, None)
                after = pending[-1] if pending else after
            next_session = pending[0][0] if pending else None
            log_table, log_time = await self._oldest_log()
            if log_time is not None and (next_session is None or log_time < next_session):
                sql = self.sql.delete_older(log_table)
                params = [next_session or END_OF_TIME, self.policy.batch_rows]
                count = await self._delete(sql, params, log_table)
                tally.add(log_table, count)
                _sizes, used = await self._used_bytes()
                continue
            if not pending:
                return  # nothing left that may go
            # Several sessions at once only while no log line lies between them.
            size = sum(
                1 for ended, _ in pending[:per_step] if log_time is None or ended <= log_time
            )
            step, pending = pending[: max(size, 1)], pending[max(size, 1) :]
            await self._delete_sessions([session for _time, session in step], tally)
            before, (_sizes, used) = used, await self._used_bytes()
            freed_per_session = (before - used) / len(step)
            if freed_per_session > 0:
                wanted = math.ceil((used - cap) / freed_per_session)
                per_step = max(1, min(MAX_SESSIONS_PER_STEP, wanted))
            else:
                per_step = min(MAX_SESSIONS_PER_STEP, per_step * 2)

    async def _oldest_log(self) -> tuple[str, str | None]:
        oldest: tuple[str, str | None] = ("", None)
        for table in LOG_TABLES:
            row = await self._one(self.sql.oldest(table), (), table)
            time = row["oldest"] if row else None
            if time is not None and (oldest[1] is None or str(time) < oldest[1]):
                oldest = (table, str(time))
        return oldest

    # --- space -----------------------------------------------------------------------

    async def reclaim(self, tally: _Tally, *, vacuum: bool) -> bool:
        """Hand freed space back; whether a SQLite checkpoint then found a busy reader."""
        if self.sqlite is None:
            # Other server processes' shards of the sums, folded first (see the
            # totals file): the rows this deletes are vacuumed with the rest.
            await self.backend.fetch_all("SELECT adw_fold_shards()", (), table="row_counts")
            touched = [table for table in TABLES if tally.rows.get(table)]
            # The totals the triggers kept in step with the deletes have dead rows too.
            tables = [*(TABLES if vacuum else touched), *TOTALS_TABLES]
            for table in tables:
                await self.backend.execute(f"VACUUM (ANALYZE) {table}", (), table=table)
            return False
        if vacuum:
            await self.sqlite.vacuum()
        elif await self._auto_vacuum() == "incremental":
            sizes = await self.backend.storage()
            for _ in range(math.ceil(sizes["freelist_count"] / RECLAIM_PAGES)):
                if not await self._paced(self.sqlite.release_free_pages(RECLAIM_PAGES)):
                    break
        return bool((await self.backend.checkpoint())["busy"])

    async def run(self, *, vacuum: bool) -> PruneReport:
        sizes, _used = await self._used_bytes()
        before = sizes["file_bytes"] + sizes["wal_bytes"]
        tally = _Tally()
        await self.delete_old_logs(tally)
        await self.delete_sessions_by_rule(tally)
        if self.policy.max_bytes is not None:
            await self.enforce_cap(self.policy.max_bytes, tally)
        busy = False
        if any(tally.rows.values()) or vacuum:
            busy = await self.reclaim(tally, vacuum=vacuum)
        sizes, used = await self._used_bytes()
        auto_vacuum = await self._auto_vacuum()
        report = PruneReport(
            dry_run=False,
            rows={table: count for table, count in tally.rows.items() if count},
            sessions=tally.sessions,
            bytes_before=before,
            bytes_after=sizes["file_bytes"] + sizes["wal_bytes"],
            used_bytes=used,
            free_bytes=sizes["freelist_count"] * sizes["page_size"],
            max_bytes=self.policy.max_bytes,
            auto_vacuum=auto_vacuum,
            checkpoint_busy=busy,
        )
        return replace(report, notes=tuple(self._notes(report)))

    def _notes(self, report: PruneReport) -> Iterator[str]:
        if report.auto_vacuum == "none" and report.free_bytes:
            yield (
                "this file was made before incremental auto-vacuum: its free pages are "
                "reused by new rows, but it does not shrink until it is rewritten once "
                "(prune --vacuum, or prune(..., vacuum=True))"
            )
        if report.checkpoint_busy:
            yield "a reader kept part of the WAL: the file shrinks fully at the next checkpoint"
        if report.over_cap:
            yield (
                f"still over max_bytes ({report.used_bytes} bytes in use): what is left is "
                "running sessions and rows no rule deletes (definitions, workflows)"
            )
        if self.sqlite is None and report.deleted:
            yield "PostgreSQL reuses the freed space for new rows; the tables do not shrink"


async def prune(
    backend: Backend, policy: RetentionPolicy, *, dry_run: bool, vacuum: bool
) -> PruneReport:
    """Apply ``policy`` (see the module docstring); ``dry_run`` only counts."""
    if policy.max_bytes is not None and not isinstance(backend, SQLiteBackend):
        raise ValidationError(
            "retention.max_bytes: caps a SQLite file; a PostgreSQL server's tables do not "
            "shrink when rows go: use session_days, keep_sessions or the log ages there",
            table="retention",
            field="max_bytes",
        )
    pruner = _Pruner(backend, policy)
    if dry_run:
        return await pruner.count()
    report = await pruner.run(vacuum=vacuum)
    logger.debug("prune: %s", report)
    return report


async def delete_old_logs(backend: Backend, days: float) -> int:
    """Delete agent and system logs older than ``days`` in batches; the rows that went."""
    policy = RetentionPolicy(agent_log_days=days, system_log_days=days)
    tally = _Tally()
    await _Pruner(backend, policy).delete_old_logs(tally)
    return sum(tally.rows.values())


class AutomaticRetention:
    """Runs ``prune`` every ``every`` seconds in a task of its own, from
    ``start()`` (the first run at once) until ``stop()``. Off the write path:
    its deletes are short transactions between other writes. A failed run is
    logged (a warning on this module's logger), never raised into writers,
    and the next run comes as planned."""

    def __init__(
        self, run: Callable[[], Awaitable[PruneReport]], every: float, location: str
    ) -> None:
        self._run = run
        self._every = every
        self._location = location
        self._task: asyncio.Task[None] | None = None
        self.last_report: PruneReport | None = None

    def start(self) -> None:
        # A fresh context: a transaction() open where connect() was called is not its.
        self._task = asyncio.get_running_loop().create_task(
            self._loop(), name="orchestrator-store retention", context=contextvars.Context()
        )

    async def stop(self) -> None:
        """Cancel the task and wait until it has ended (a delete under way finishes or
        rolls back first)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})

    async def _loop(self) -> None:
        while True:
            try:
                self.last_report = await self._run()
                logger.info("%s: automatic retention: %s", self._location, self.last_report)
            except Exception as exc:  # a run that failed must not end the next ones
                logger.warning(
                    "%s: automatic retention failed: %s: %s",
                    self._location,
                    type(exc).__name__,
                    exc,
                )
            await asyncio.sleep(self._every)
