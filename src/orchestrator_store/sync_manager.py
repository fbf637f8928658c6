"""``SyncDatabaseManager``: the store for code that is not async.

Usage::

    from orchestrator_store import SyncDatabaseManager

    with SyncDatabaseManager("orchestrator.db") as db:
        planner = db.create_orchestrator_agent("planner", "Plans the work", "planner")
        agent = db.create_agent(planner, "feature_Tac_14_Task_8")
        with db.transaction():  # both rows or neither
            db.update_agent(agent, status="completed")
            db.create_system_log("INFO", "orchestrator", "session finished")
        print(db.get_agent(agent))

Every method of ``DatabaseManager`` is here with the same parameters, the
same validation and the same errors (``ValidationError``,
``IntegrityError``, ``NotConnectedError``, ...), returning what the coroutine
returns; ``iter_rows`` gives a plain iterator. The manager wraps a
``DatabaseManager`` and runs its coroutines on a private event loop in one
daemon thread (``loop_thread``), so it works from plain scripts, from any
number of threads at once, and from code already running inside an event
loop (whose thread then waits for each call). Any number of processes may
write to the same file, through either manager.

Lifecycle: ``connect()`` opens the store and starts the loop thread;
``close()`` closes the store and stops the thread. Both are idempotent, and a
closed manager connects again (with a fresh ``DatabaseManager`` on a fresh
loop: asyncio objects belong to the loop they first ran on). A program that
forgets ``close()`` still exits: the thread is a daemon, and the store is
closed at interpreter exit. In a child forked while the manager was open,
calls raise ``NotConnectedError`` until ``connect()`` opens the store for
that process (the parent's thread does not run there).

Ctrl-C while a call waits cancels that call and waits for it to finish (the
store stays usable), then raises ``KeyboardInterrupt``.

Transactions: ``with db.transaction() as tx:`` makes every call this thread
makes inside the block commit together, or none if the block raises; nested
blocks are savepoints. The block is held open by one task on the loop that
runs this thread's calls, since an async transaction belongs to one task.
Calls from other threads run outside it and, on SQLite, wait for it to end:
a block must not wait for another thread's writes (that deadlocks, as
``asyncio.gather`` inside an async block would be refused).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from .errors import NotConnectedError
from .location import PoolSettings
from .loop_thread import STORE_CLOSED, HeldTransaction, LoopThread, discard
from .manager import DatabaseManager, Row
from .models import RetentionPolicy
from .ownership import Transaction
from .retention import PruneReport
from .sqlite_backend import READER_MMAP_BYTES

__all__ = ["SyncDatabaseManager"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

NOT_CONNECTED = (
    "the store is not connected: call `db.connect()` first, "
    "or use `with SyncDatabaseManager(...) as db:`"
)

# Managers still connected; closed at interpreter exit, while the threads they use still run.
# Strong references: a manager the program dropped without close() still has its
# thread and connections, which only closing it ends (close() removes it from here).
_open_managers: set[SyncDatabaseManager] = set()


# In a forked child: what the parent had open, never finalized here.
_left_by_the_parent: list[tuple[LoopThread, DatabaseManager]] = []

# How long closing a forgotten manager may take at exit: normally milliseconds;
# more means it waits for a block another thread never leaves, and exit must not hang.
EXIT_CLOSE_TIMEOUT = 10.0


@atexit.register
def _close_forgotten_managers() -> None:
    for manager in list(_open_managers):
        try:
            manager._close(timeout=EXIT_CLOSE_TIMEOUT)
        except TimeoutError:
            logger.warning(
                "closing %s at exit failed: still waiting after %s s (for a transaction() "
                "block another thread never left?); exiting without it",
                manager.location,
                EXIT_CLOSE_TIMEOUT,
            )
        except Exception as exc:  # nobody is left to raise it to
            logger.warning("closing %s at exit failed: %s", manager.location, exc)


async def _next_rows(rows: AsyncIterator[Row], count: int) -> list[Row]:
    """Up to ``count`` more rows; fewer only at the end. (Leaving ``async for``
    early does not close ``rows``: the next call goes on where this one stopped.)"""
    batch: list[Row] = []
    async for row in rows:
        batch.append(row)
        if len(batch) >= count:
            break
    return batch


class _TransactionBlock:
    """One ``with db.transaction():`` block of one thread.

    A class rather than a ``@contextmanager`` generator: there, Ctrl-C could
    land in contextlib's ``__enter__`` after the block had opened and before
    the ``with`` statement took it, so ``__exit__`` never ran and the block
    stayed open. Here ``__enter__`` ends with the opening (``HeldTransaction.enter``
    handles Ctrl-C up to it), so once the block is open ``__exit__`` runs."""

    def __init__(self, manager: SyncDatabaseManager) -> None:
        self._manager = manager
        self._held: HeldTransaction | None = None
        self._outermost = False  # this block holds the thread's transaction; it forgets it

    def __enter__(self) -> Transaction:
        manager = self._manager
        held = manager._held()
        self._outermost = held is None
        if held is None:
            runner = manager._runner
            if runner is None:
                raise NotConnectedError(STORE_CLOSED if manager._closed else NOT_CONNECTED)
            held = HeldTransaction(runner, manager._db.transaction)
        self._held = held
        depth = held.depth
        try:
            if self._outermost:
                manager._local.held = held
            transaction = held.enter()
        except BaseException:
            if held.depth > depth:  # opened, then interrupted before __enter__ returned it
                held.leave(failed=True)
            self._forget()
            raise
        return transaction  # nothing between this and the with statement checks for signals

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Commit the block, or roll it back if it raised."""
        assert self._held is not None
        try:
            self._held.leave(failed=exc_type is not None)
        finally:
            self._forget()

    def _forget(self) -> None:
        if self._outermost:
            self._manager._local.held = None


class SyncDatabaseManager:
    """Synchronous access to the orchestrator store. See the module docstring;
    each method is documented on ``DatabaseManager``."""

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
        """The same arguments as ``DatabaseManager``; no I/O, no thread yet."""
        self._db = DatabaseManager(
            db_path,
            schema_path=schema_path,
            busy_timeout=busy_timeout,
            synchronous=synchronous,
            pool=pool,
            default_database=default_database,
            read_mmap_bytes=read_mmap_bytes,
            retention=retention,
            read_only=read_only,
        )
        # What a fresh manager for a reconnect gets: the database resolved once.
        self._options: dict[str, Any] = {
            "schema_path": self._db.schema_path,
            "busy_timeout": busy_timeout,
            "synchronous": synchronous,
            "pool": pool,
            "read_mmap_bytes": read_mmap_bytes,
            "retention": retention,
            "read_only": read_only,
        }
        self._db_used = False  # once used on a loop, a manager stays with that loop
        self._runner: LoopThread | None = None
        self._closed = False
        self._lifecycle = threading.Lock()  # connect() and close() one at a time
        self._local = threading.local()  # each thread's open transaction() block

    # --- what DatabaseManager says about itself ---------------------------------

    @property
    def db_path(self) -> Path | None:
        """The SQLite file, or ``None`` on PostgreSQL."""
        return self._db.db_path

    @property
    def database_url(self) -> str | None:
        """The PostgreSQL URL, or ``None`` on SQLite."""
        return self._db.database_url

    @property
    def location(self) -> str:
        """The path, or the URL without its password."""
        return self._db.location

    @property
    def schema_path(self) -> Path:
        return self._db.schema_path

    @property
    def read_only(self) -> bool:
        """Opened only to read (``read_only=True``): every write is refused."""
        return self._db.read_only

    @property
    def backend_name(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._db.backend_name

    def __repr__(self) -> str:
        state = "open" if self._runner is not None else "closed" if self._closed else "new"
        return f"<SyncDatabaseManager {self.location!r} {state}>"

    # --- running coroutines ------------------------------------------------------

    def _held(self) -> HeldTransaction | None:
        held: HeldTransaction | None = getattr(self._local, "held", None)
        return held

    def _run(self, work: Awaitable[T]) -> T:
        """Run one coroutine of the wrapped manager and return its result, in
        this thread's open transaction() block if there is one."""
        held = self._held()
        if held is not None:
            return held.call(work)
        runner = self._runner
        if runner is None:
            discard(work)
            raise NotConnectedError(STORE_CLOSED if self._closed else NOT_CONNECTED)
        return runner.call(work)

    def _iterate(self, rows: AsyncIterator[Row], batch_size: int) -> Iterator[Row]:
        """An async iterator's items, one call per ``batch_size`` items (a
        hand-off to the loop costs far more than a row). The first call asks
        for one: that is where ``rows`` checks ``batch_size``. Stopped early,
        the async iterator is finalized on the loop (the asyncgen hooks)."""
        count = 1
        while batch := self._run(_next_rows(rows, count)):
            yield from batch
            if len(batch) < count:  # exhausted
                return
            count = batch_size

    # --- lifecycle -------------------------------------------------------------

    def connect(self) -> None:
        """Open the database (creating or upgrading it) and start the loop
        thread. Does nothing when open."""
        with self._lifecycle:
            if self._runner is not None:
                if self._runner.in_this_process:
                    return
                # A forked child: the parent's thread and connections are not
                # usable here, and closing them here is not safe either (SQLite:
                # no connection across fork), so they are kept, untouched.
                _left_by_the_parent.append((self._runner, self._db))
                self._runner = None
                held = self._held()
                if held is not None:  # forked inside a block: the parent's, only left here
                    held.dead = True
                    self._local.held = None  # this thread's calls go to the new store
            if self._db_used:
                self._db = DatabaseManager(
                    self._db.db_path or self._db.database_url, **self._options
                )
            runner = LoopThread(f"orchestrator-store {self._db.location}")
            self._db_used = True
            try:
                runner.call(self._db.connect())
            except BaseException:
                runner.stop()
                raise
            self._runner = runner
            self._closed = False
            _open_managers.add(self)

    def close(self) -> None:
        """Close the store and stop the loop thread; ``connect()`` opens it
        again. Does nothing when not open. Inside a ``transaction()`` block
        the store refuses, as the async one does."""
        if self._held() is not None:
            self._run(self._db.close())  # raises: a block cannot close its own store
        self._close(timeout=None)

    def _close(self, *, timeout: float | None) -> None:
        """``close()``; after ``timeout`` seconds, ``TimeoutError`` and the loop
        thread is left to end with the process."""
        with self._lifecycle:
            runner, self._runner = self._runner, None  # new calls are refused from here on
            if runner is None:
                return
            self._closed = True
            _open_managers.discard(self)
            if not runner.in_this_process:  # a forked child leaves the parent's store alone
                _left_by_the_parent.append((runner, self._db))
                return
            finished = False
            try:
                runner.call(self._db.close(), timeout)
                finished = True
            finally:
                runner.stop(wait=finished or timeout is None)

    def __enter__(self) -> SyncDatabaseManager:
        """``connect()``, then the manager itself."""
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """``close()``, whether the block raised or not."""
        self.close()

    def transaction(self) -> AbstractContextManager[Transaction]:
        """Every call this thread makes inside the block commits together at
        exit, or none does if the block raises; nested blocks are savepoints.
        ``with db.transaction() as tx`` gives the ``Transaction`` (its
        ``committed`` says afterwards whether the writes are stored). Other
        threads' calls run outside the block (see the module docstring)."""
        if self._held() is None and self._runner is None:
            raise NotConnectedError(STORE_CLOSED if self._closed else NOT_CONNECTED)
        return _TransactionBlock(self)

    def schema_version(self) -> int:
        return self._run(self._db.schema_version())

    def count_rows(self) -> dict[str, int]:
        return self._run(self._db.count_rows())

    # --- orchestrator_agents ---------------------------------------------------

    def create_orchestrator_agent(
        self,
        name: str,
        description: str | None,
        agent_type: str,
        capabilities: str | None = None,
        default_model: str | None = None,
    ) -> str:
        return self._run(
            self._db.create_orchestrator_agent(
                name, description, agent_type, capabilities, default_model
            )
        )

    def get_orchestrator_agent(self, agent_id: str) -> Row | None:
        return self._run(self._db.get_orchestrator_agent(agent_id))

    def list_orchestrator_agents(self, *, limit: int | None = None, offset: int = 0) -> list[Row]:
        return self._run(self._db.list_orchestrator_agents(limit=limit, offset=offset))

    def update_orchestrator_agent(self, agent_id: str, **fields: Any) -> bool:
        return self._run(self._db.update_orchestrator_agent(agent_id, **fields))

    def delete_orchestrator_agent(self, agent_id: str) -> bool:
        return self._run(self._db.delete_orchestrator_agent(agent_id))

    # --- agents ----------------------------------------------------------------

    def create_agent(
        self,
        orchestrator_agent_id: str,
        session_id: str,
        parent_agent_id: str | None = None,
        status: str = "initializing",
        context: Any = None,
        config: Any = None,
    ) -> str:
        return self._run(
            self._db.create_agent(
                orchestrator_agent_id, session_id, parent_agent_id, status, context, config
            )
        )

    def get_agent(self, agent_id: str) -> Row | None:
        return self._run(self._db.get_agent(agent_id))

    def list_agents(
        self,
        session_id: str | None = None,
        *,
        orchestrator_agent_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        return self._run(
            self._db.list_agents(
                session_id,
                orchestrator_agent_id=orchestrator_agent_id,
                status=status,
                limit=limit,
                offset=offset,
            )
        )

    def update_agent(self, agent_id: str, **fields: Any) -> bool:
        return self._run(self._db.update_agent(agent_id, **fields))

    def add_agent_cost(self, agent_id: str, cost_usd: float) -> bool:
        return self._run(self._db.add_agent_cost(agent_id, cost_usd))

    def delete_agent(self, agent_id: str) -> bool:
        return self._run(self._db.delete_agent(agent_id))

    # --- prompts ---------------------------------------------------------------

    def create_prompt(
        self,
        agent_id: str,
        prompt_type: str,
        prompt_text: str,
        prompt_name: str | None = None,
        status: str = "pending",
        model_used: str | None = None,
    ) -> str:
        return self._run(
            self._db.create_prompt(
                agent_id, prompt_type, prompt_text, prompt_name, status, model_used
            )
        )

    def get_prompt(self, prompt_id: str) -> Row | None:
        return self._run(self._db.get_prompt(prompt_id))

    def list_prompts(
        self,
        agent_id: str | None = None,
        *,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        session_id: str | None = None,
    ) -> list[Row]:
        return self._run(
            self._db.list_prompts(
                agent_id, status=status, limit=limit, offset=offset, session_id=session_id
            )
        )

    def update_prompt(self, prompt_id: str, **fields: Any) -> bool:
        return self._run(self._db.update_prompt(prompt_id, **fields))

    def delete_prompt(self, prompt_id: str) -> bool:
        return self._run(self._db.delete_prompt(prompt_id))

    # --- agent_logs ------------------------------------------------------------

    def create_agent_log(
        self,
        agent_id: str,
        log_level: str,
        log_type: str,
        message: str,
        details: Any = None,
    ) -> int:
        return self._run(self._db.create_agent_log(agent_id, log_level, log_type, message, details))

    def create_agent_logs(self, rows: Iterable[Mapping[str, Any]]) -> list[int]:
        return self._run(self._db.create_agent_logs(rows))

    def get_agent_logs(
        self,
        agent_id: str,
        log_level: str | None = None,
        *,
        log_type: str | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        return self._run(
            self._db.get_agent_logs(agent_id, log_level, log_type=log_type, limit=limit)
        )

    def list_recent_agent_logs(self, limit: int = 100) -> list[Row]:
        return self._run(self._db.list_recent_agent_logs(limit))

    # --- system_logs -----------------------------------------------------------

    def create_system_log(
        self,
        log_level: str,
        component: str,
        message: str,
        details: Any = None,
    ) -> int:
        return self._run(self._db.create_system_log(log_level, component, message, details))

    def create_system_logs(self, rows: Iterable[Mapping[str, Any]]) -> list[int]:
        return self._run(self._db.create_system_logs(rows))

    def get_system_logs(
        self,
        log_level: str | None = None,
        component: str | None = None,
        *,
        limit: int | None = None,
    ) -> list[Row]:
        return self._run(self._db.get_system_logs(log_level, component, limit=limit))

    def list_recent_system_logs(self, limit: int = 100) -> list[Row]:
        return self._run(self._db.list_recent_system_logs(limit))

    # --- orchestrator_chat -----------------------------------------------------

    def create_chat_message(
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
        return self._run(
            self._db.create_chat_message(
                orchestrator_agent_id,
                sender_type,
                receiver_type,
                message,
                summary=summary,
                agent_id=agent_id,
                metadata=metadata,
            )
        )

    def get_chat_message(self, message_id: str) -> Row | None:
        return self._run(self._db.get_chat_message(message_id))

    def list_chat_messages(
        self,
        orchestrator_agent_id: str | None = None,
        *,
        agent_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        return self._run(
            self._db.list_chat_messages(
                orchestrator_agent_id, agent_id=agent_id, limit=limit, offset=offset
            )
        )

    def update_chat_message(self, message_id: str, **fields: Any) -> bool:
        return self._run(self._db.update_chat_message(message_id, **fields))

    def delete_chat_message(self, message_id: str) -> bool:
        return self._run(self._db.delete_chat_message(message_id))

    # --- ai_developer_workflows ------------------------------------------------

    def start_workflow(
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
        return self._run(
            self._db.start_workflow(
                adw_name,
                workflow_type,
                adw_id=adw_id,
                description=description,
                total_steps=total_steps,
                orchestrator_agent_id=orchestrator_agent_id,
                input_data=input_data,
                metadata=metadata,
            )
        )

    def update_workflow_step(
        self,
        workflow_id: str,
        current_step: str,
        *,
        completed_steps: int | None = None,
        status: str = "in_progress",
    ) -> bool:
        return self._run(
            self._db.update_workflow_step(
                workflow_id, current_step, completed_steps=completed_steps, status=status
            )
        )

    def end_workflow(
        self,
        workflow_id: str,
        status: str,
        *,
        error_message: str | None = None,
        error_step: str | None = None,
        output_data: Any = None,
    ) -> bool:
        return self._run(
            self._db.end_workflow(
                workflow_id,
                status,
                error_message=error_message,
                error_step=error_step,
                output_data=output_data,
            )
        )

    def update_workflow(self, workflow_id: str, **fields: Any) -> bool:
        return self._run(self._db.update_workflow(workflow_id, **fields))

    def get_workflow(self, workflow_id: str) -> Row | None:
        return self._run(self._db.get_workflow(workflow_id))

    def get_workflow_by_adw_id(self, adw_id: str) -> Row | None:
        return self._run(self._db.get_workflow_by_adw_id(adw_id))

    def list_workflows(
        self,
        *,
        status: str | None = None,
        workflow_type: str | None = None,
        orchestrator_agent_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        return self._run(
            self._db.list_workflows(
                status=status,
                workflow_type=workflow_type,
                orchestrator_agent_id=orchestrator_agent_id,
                limit=limit,
                offset=offset,
            )
        )

    def delete_workflow(self, workflow_id: str) -> bool:
        return self._run(self._db.delete_workflow(workflow_id))

    # --- maintenance -----------------------------------------------------------

    def count_old_logs(self, days: float) -> dict[str, int]:
        return self._run(self._db.count_old_logs(days))

    def checkpoint(self) -> dict[str, int]:
        return self._run(self._db.checkpoint())

    def storage(self) -> dict[str, int]:
        return self._run(self._db.storage())

    def iter_rows(self, table: str, *, batch_size: int = 500) -> Iterator[Row]:
        return self._iterate(self._db.iter_rows(table, batch_size=batch_size), batch_size)

    def cleanup_old_logs(self, days: float = 30) -> int:
        return self._run(self._db.cleanup_old_logs(days))

    def prune(
        self, policy: RetentionPolicy, *, dry_run: bool = False, vacuum: bool = False
    ) -> PruneReport:
        return self._run(self._db.prune(policy, dry_run=dry_run, vacuum=vacuum))

    # --- the original module's helpers -----------------------------------------

    def log_agent_event(
        self,
        agent_id: str,
        log_type: str,
        message: str,
        metadata: Any = None,
        log_level: str = "INFO",
    ) -> int | None:
        """Never raises, as the async one: on a store that is not open either
        (the coroutine never ran), ``None`` and one warning."""
        try:
            return self._run(
                self._db.log_agent_event(agent_id, log_type, message, metadata, log_level)
            )
        except NotConnectedError as exc:
            logger.warning("log_agent_event: agent %s: log line not written: %s", agent_id, exc)
            return None

    def get_logs_by_type(self, log_type: str, limit: int = 100) -> list[Row]:
        return self._run(self._db.get_logs_by_type(log_type, limit))

    def get_agent_logs_by_type(self, agent_id: str, log_type: str, limit: int = 100) -> list[Row]:
        return self._run(self._db.get_agent_logs_by_type(agent_id, log_type, limit))

    def get_recent_logs(self, limit: int = 100) -> list[Row]:
        return self._run(self._db.get_recent_logs(limit))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._run(self._db.query(sql, params))

    @property
    def conn(self) -> Any:
        """There is no driver connection here either: ``AttributeError``."""
        raise AttributeError(
            "SyncDatabaseManager has no driver connection (`conn`). Use "
            "`db.query(sql, params)` for read-only SQL, `with db.transaction():` around "
            "the store's methods for atomic writes, `db.schema_version()` and "
            "`db.storage()` for what the file is"
        )

    # --- reports ---------------------------------------------------------------

    def session_summaries(self, *, limit: int | None = None) -> list[Row]:
        return self._run(self._db.session_summaries(limit=limit))

    def session_summary(self, session_id: str) -> Row | None:
        return self._run(self._db.session_summary(session_id))

    def session_tree(self, session_id: str) -> list[Row]:
        return self._run(self._db.session_tree(session_id))

    def agent_totals(self, agent_id: str) -> Row | None:
        return self._run(self._db.agent_totals(agent_id))

    def agents_with_totals(self, agents: list[Row]) -> list[Row]:
        return self._run(self._db.agents_with_totals(agents))

    def cost_totals(
        self,
        by: str | None = None,
        *,
        since: Any = None,
        session_id: str | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        return self._run(self._db.cost_totals(by, since=since, session_id=session_id, limit=limit))

    def log_bounds(self) -> Row:
        return self._run(self._db.log_bounds())

    def list_logs(
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
        return self._run(
            self._db.list_logs(
                agent_id=agent_id,
                min_level=min_level,
                log_type=log_type,
                component=component,
                since=since,
                limit=limit,
                up_to=up_to,
            )
        )

    def logs_after(
        self,
        cursor: Mapping[str, int],
        *,
        agent_id: str | None = None,
        min_level: str | None = None,
        log_type: str | None = None,
        component: str | None = None,
        limit: int = 500,
    ) -> tuple[list[Row], dict[str, int]]:
        return self._run(
            self._db.logs_after(
                cursor,
                agent_id=agent_id,
                min_level=min_level,
                log_type=log_type,
                component=component,
                limit=limit,
            )
        )

    def find_agents_by_prefix(self, prefix: str, *, limit: int = 2) -> list[Row]:
        return self._run(self._db.find_agents_by_prefix(prefix, limit=limit))

    def find_agents_by_suffix(self, suffix: str, *, limit: int = 2) -> list[Row]:
        return self._run(self._db.find_agents_by_suffix(suffix, limit=limit))

    def find_workflows_by_prefix(self, prefix: str, *, limit: int = 2) -> list[Row]:
        return self._run(self._db.find_workflows_by_prefix(prefix, limit=limit))

    def find_workflows_by_suffix(self, suffix: str, *, limit: int = 2) -> list[Row]:
        return self._run(self._db.find_workflows_by_suffix(suffix, limit=limit))
