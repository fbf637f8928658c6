"""Tracking for workflows that run as plain (not async) processes, and must
never fail because of the database.

Usage::

    from orchestrator_store import workflow_tracking as tracking

    tracking.track_workflow_start("a1b2c3d4", "adw_plan_build", issue_number=42, total_steps=3)
    tracking.track_phase_update("a1b2c3d4", "plan", "completed", 1)
    tracking.track_workflow_end("a1b2c3d4", "completed")

The module-level functions share one ``WorkflowTracker`` on the store's
default database (``$ORCHESTRATOR_DATABASE_URL``, else
``$ORCHESTRATOR_DB_PATH``, else ``orchestrator.db`` in the current folder),
opened by the first call; ``init_tracking(db_path)`` points them elsewhere,
``close_tracking()`` closes it (a forgotten one is closed at exit).

Each call returns a ``Tracked`` result, true when the change was recorded.
Every ``Exception`` (a store error, a locked, unwritable or foreign file, an
unknown ``adw_id``, a bad status) is caught, logged once as a warning on this
module's logger and returned as a failure whose ``error`` says what went
wrong: the workflow goes on. ``KeyboardInterrupt`` and ``SystemExit`` still
propagate.

What is recorded, in ``ai_developer_workflows`` (the row whose ``adw_id`` is
the workflow's id):

* start: a row ``in_progress`` from now; ``adw_name`` defaults to the
  ``adw_id``; ``issue_number`` goes into ``metadata``. Starting an
  ``adw_id`` again (a rerun) resets its row to a fresh ``in_progress`` run
  instead of failing.
* phase update: ``current_step`` = the phase, ``completed_steps``; the
  workflow stays ``in_progress``. The phase's own status (one of
  ``WORKFLOW_STATUSES``) goes into ``metadata["phases"][phase]``: kept on the
  workflow's row, it lasts as long as the row, where a log line would go with
  the log retention (``cleanup_old_logs``).
* end: ``status`` (completed, failed or cancelled), ``completed_at``,
  ``duration_seconds`` and, when given, ``error_message`` (one more
  ``error_count``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import IntegrityError, ValidationError
from .manager import Row
from .models import WORKFLOW_STATUSES, utc_now
from .sync_manager import SyncDatabaseManager

__all__ = [
    "Tracked",
    "WorkflowTracker",
    "close_tracking",
    "init_tracking",
    "track_phase_update",
    "track_workflow_end",
    "track_workflow_start",
]

logger = logging.getLogger(__name__)

TABLE = "ai_developer_workflows"


@dataclass(frozen=True, slots=True)
class Tracked:
    """What a tracking call did: ``ok`` (also the result's truth value), the
    workflow's id when known, and ``error`` (the exception's class and
    message) when it failed."""

    ok: bool
    workflow_id: str | None = None
    error: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def _require_adw_id(adw_id: Any) -> str:
    if not isinstance(adw_id, str) or not adw_id.strip():
        raise ValidationError(
            f"{TABLE}.adw_id: a workflow's own id (a non-blank string) is needed, got {adw_id!r}",
            table=TABLE,
            field="adw_id",
        )
    return adw_id


def _require_workflow(db: SyncDatabaseManager, adw_id: Any) -> Row:
    row = db.get_workflow_by_adw_id(_require_adw_id(adw_id))
    if row is None:
        raise LookupError(f"no workflow has adw_id {adw_id!r}: track_workflow_start comes first")
    return row


def _deleted_meanwhile(adw_id: str) -> str:
    return f"the workflow with adw_id {adw_id!r} was deleted meanwhile"


class WorkflowTracker:
    """Records workflow runs by their ``adw_id``; no method raises (see the
    module docstring). The store opens at the first call, and again at the
    next call after a failed open; ``close()`` closes it."""

    def __init__(
        self,
        db_path: str | os.PathLike[str] | None = None,
        *,
        busy_timeout: float = 5.0,
        default_database: str | os.PathLike[str] | None = None,
    ) -> None:
        """``db_path`` and ``default_database`` as for ``DatabaseManager``
        (``None``: the default database; a project's ``adw_database.init_tracking``
        passes the database its ``config.yml`` names)."""
        self._db_path = db_path
        self._busy_timeout = busy_timeout
        self._default_database = default_database
        self._db: SyncDatabaseManager | None = None
        self._lock = threading.Lock()  # one opening, whichever thread calls first

    def _new_store(self) -> SyncDatabaseManager:
        return SyncDatabaseManager(
            self._db_path, busy_timeout=self._busy_timeout, default_database=self._default_database
        )

    def _store(self) -> SyncDatabaseManager:
        with self._lock:
            if self._db is None:
                self._db = self._new_store()
            self._db.connect()  # nothing to do once open
            return self._db

    @property
    def location(self) -> str:
        """Where the store is: the SQLite file, or the PostgreSQL URL without
        its password. Before the first call (or after ``close()``), where it
        would open now; nothing is opened to say it."""
        with self._lock:
            db = self._db
        return (db or self._new_store()).location

    def _guarded(
        self, action: str, adw_id: Any, work: Callable[[SyncDatabaseManager], str]
    ) -> Tracked:
        try:
            workflow_id = work(self._store())
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            logger.warning("workflow %r: %s not recorded: %s", adw_id, action, error)
            return Tracked(ok=False, error=error)
        return Tracked(ok=True, workflow_id=workflow_id)

    def track_workflow_start(
        self,
        adw_id: str,
        workflow_type: str,
        issue_number: int | str | None = None,
        total_steps: int = 0,
        *,
        adw_name: str | None = None,
        description: str | None = None,
    ) -> Tracked:
        """Record that the workflow ``adw_id`` started (or restarted)."""

        def start(db: SyncDatabaseManager) -> str:
            run: dict[str, Any] = {
                "adw_name": adw_id if adw_name is None else adw_name,
                "workflow_type": workflow_type,
                "description": description,
                "total_steps": total_steps,
                "metadata": None if issue_number is None else {"issue_number": issue_number},
            }
            existing = db.get_workflow_by_adw_id(_require_adw_id(adw_id))
            if existing is None:
                try:
                    return db.start_workflow(adw_id=adw_id, **run)
                except IntegrityError as exc:  # another process started it meanwhile
                    existing = db.get_workflow_by_adw_id(adw_id)
                    if exc.field != "adw_id" or existing is None:
                        raise
            fresh_run = {  # every field a new run would have, as the original's REPLACE did
                **run,
                "status": "in_progress",
                "current_step": None,
                "completed_steps": 0,
                "started_at": utc_now(),
                "completed_at": None,
                "duration_seconds": None,
                "input_data": None,
                "output_data": None,
                "error_message": None,
                "error_step": None,
                "error_count": 0,
            }
            if not db.update_workflow(existing["id"], **fresh_run):
                raise LookupError(_deleted_meanwhile(adw_id))
            return str(existing["id"])

        return self._guarded("start", adw_id, start)

    def track_phase_update(
        self, adw_id: str, phase_name: str, status: str, completed_steps: int
    ) -> Tracked:
        """Record that the workflow is at ``phase_name`` with ``completed_steps``
        done; the phase's ``status`` (one of ``WORKFLOW_STATUSES``) goes into
        ``metadata["phases"]``."""

        def update(db: SyncDatabaseManager) -> str:
            if status not in WORKFLOW_STATUSES:
                raise ValidationError(
                    f"{TABLE}: phase status must be one of {', '.join(WORKFLOW_STATUSES)}, "
                    f"got {status!r}",
                    table=TABLE,
                    field="status",
                )
            with db.transaction():  # the read and both writes as one
                workflow_id = str(_require_workflow(db, adw_id)["id"])
                # Write first: the row lock is then held, and the metadata read
                # after it sees every phase committed before (on PostgreSQL a
                # plain read in the block would not wait for a concurrent update,
                # whose phase this update would then overwrite).
                if not db.update_workflow_step(
                    workflow_id, phase_name, completed_steps=completed_steps
                ):
                    raise LookupError(_deleted_meanwhile(adw_id))
                row = db.get_workflow(workflow_id)
                if row is None:  # not while the lock is held; for the type checker
                    raise LookupError(_deleted_meanwhile(adw_id))
                metadata = row["metadata"] if row["metadata"] is not None else {}
                if not isinstance(metadata, dict):
                    raise ValidationError(
                        f"{TABLE}.metadata of {adw_id!r} is not a JSON object: "
                        "no place for the phases",
                        table=TABLE,
                        field="metadata",
                    )
                phases = {**(metadata.get("phases") or {}), phase_name: status}
                db.update_workflow(workflow_id, metadata={**metadata, "phases": phases})
            return workflow_id

        return self._guarded(f"phase {phase_name!r}", adw_id, update)

    def track_workflow_end(
        self, adw_id: str, status: str, error_message: str | None = None
    ) -> Tracked:
        """Record the workflow's end: ``status`` is completed, failed or cancelled."""

        def end(db: SyncDatabaseManager) -> str:
            row = _require_workflow(db, adw_id)
            if not db.end_workflow(row["id"], status, error_message=error_message):
                raise LookupError(_deleted_meanwhile(adw_id))
            return str(row["id"])

        return self._guarded("end", adw_id, end)

    def close(self) -> None:
        """Close the store (a later call opens it again); never raises."""
        with self._lock:
            db, self._db = self._db, None
        if db is None:
            return
        try:
            db.close()
        except Exception as exc:
            logger.warning("closing the workflow tracking store failed: %s", exc)


# --- the module-level tracker ---------------------------------------------------------

_default: WorkflowTracker | None = None
_default_lock = threading.Lock()


def init_tracking(
    db_path: str | os.PathLike[str] | None = None,
    *,
    default_database: str | os.PathLike[str] | None = None,
) -> WorkflowTracker:
    """Point the module-level functions at ``db_path`` (``None``: the default
    database, or ``default_database`` when given), closing the tracker they
    used before. Opens nothing yet."""
    global _default
    with _default_lock:
        previous, _default = _default, WorkflowTracker(db_path, default_database=default_database)
        tracker = _default
    if previous is not None:
        previous.close()
    return tracker


def close_tracking() -> None:
    """Close the module-level tracker; the next call opens the default again."""
    global _default
    with _default_lock:
        previous, _default = _default, None
    if previous is not None:
        previous.close()


def _tracker() -> WorkflowTracker:
    global _default
    with _default_lock:
        if _default is None:
            _default = WorkflowTracker()
        return _default


def track_workflow_start(
    adw_id: str,
    workflow_type: str,
    issue_number: int | str | None = None,
    total_steps: int = 0,
    *,
    adw_name: str | None = None,
    description: str | None = None,
) -> Tracked:
    """``WorkflowTracker.track_workflow_start`` on the module-level tracker."""
    return _tracker().track_workflow_start(
        adw_id,
        workflow_type,
        issue_number,
        total_steps,
        adw_name=adw_name,
        description=description,
    )


def track_phase_update(adw_id: str, phase_name: str, status: str, completed_steps: int) -> Tracked:
    """``WorkflowTracker.track_phase_update`` on the module-level tracker."""
    return _tracker().track_phase_update(adw_id, phase_name, status, completed_steps)


def track_workflow_end(adw_id: str, status: str, error_message: str | None = None) -> Tracked:
    """``WorkflowTracker.track_workflow_end`` on the module-level tracker."""
    return _tracker().track_workflow_end(adw_id, status, error_message)
