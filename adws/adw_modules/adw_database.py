"""This project's orchestrator store: ``DatabaseManager`` on the database that
``config.yml`` names (rendered by tac-bootstrap from its ``database`` section).

The store itself is the ``orchestrator_store`` package; this module keeps the
names the project's code imports (``from adw_database import DatabaseManager``,
or ``from adw_modules.adw_database import ...`` with ``adws`` on the path) and
adds the configured default: with no argument, the store opens
``$ORCHESTRATOR_DATABASE_URL``, else ``$ORCHESTRATOR_DB_PATH``, else
``DEFAULT_DATABASE_URL`` when set, else ``DEFAULT_DB_PATH`` in the project root
(the folder that holds ``adws/``).

``SyncDatabaseManager`` is the same store for code that is not async, and
``init_tracking()`` points ``orchestrator_store.workflow_tracking``'s
``track_workflow_start`` / ``track_phase_update`` / ``track_workflow_end``
(which never raise into a workflow) at this project's database.

Run it to create or open the database and show what it holds (``--demo``
first records an example session)::

    uv run adws/adw_modules/adw_database.py --demo
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import orchestrator_store
from orchestrator_store import (
    BusyError,
    ConnectionLostError,
    DatabaseError,
    IntegrityError,
    NotConnectedError,
    PoolSettings,
    SchemaError,
    StatementTimeoutError,
    Transaction,
    TransactionScopeError,
    ValidationError,
    workflow_tracking,
)
from orchestrator_store.demo import main as _demo_main
from orchestrator_store.location import is_postgres_url, sqlite_url_path

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_DB_PATH",
    "PROJECT_ROOT",
    "BusyError",
    "ConnectionLostError",
    "DatabaseError",
    "DatabaseManager",
    "IntegrityError",
    "NotConnectedError",
    "PoolSettings",
    "SchemaError",
    "StatementTimeoutError",
    "SyncDatabaseManager",
    "Transaction",
    "TransactionScopeError",
    "ValidationError",
    "configured_database",
    "init_tracking",
]

# The database file, relative to the project root (config.yml: database.path).
DEFAULT_DB_PATH = "orchestrator.db"
# A database URL that takes the place of DEFAULT_DB_PATH when set (config.yml: database.url).
DEFAULT_DATABASE_URL: str | None = None
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def configured_database() -> Path | str:
    """The database ``config.yml`` names: a PostgreSQL URL, or a file in the project."""
    if DEFAULT_DATABASE_URL is None:
        return PROJECT_ROOT / DEFAULT_DB_PATH
    if is_postgres_url(DEFAULT_DATABASE_URL):
        return DEFAULT_DATABASE_URL
    return PROJECT_ROOT / sqlite_url_path(DEFAULT_DATABASE_URL)


class DatabaseManager(orchestrator_store.DatabaseManager):
    """``orchestrator_store.DatabaseManager`` whose default is this project's database."""

    def __init__(self, db_path: str | os.PathLike[str] | None = None, **options: Any) -> None:
        """``options`` are the package's (``schema_path``, ``busy_timeout``,
        ``synchronous``, ``pool``), passed on as they are, so they never go stale here."""
        options.setdefault("default_database", configured_database())
        super().__init__(db_path, **options)


class SyncDatabaseManager(orchestrator_store.SyncDatabaseManager):
    """``orchestrator_store.SyncDatabaseManager`` whose default is this project's database."""

    def __init__(self, db_path: str | os.PathLike[str] | None = None, **options: Any) -> None:
        """``options`` as for ``DatabaseManager`` above."""
        options.setdefault("default_database", configured_database())
        super().__init__(db_path, **options)


def init_tracking(
    db_path: str | os.PathLike[str] | None = None,
) -> workflow_tracking.WorkflowTracker:
    """Point ``orchestrator_store.workflow_tracking``'s functions at this
    project's database (or at ``db_path``)."""
    return workflow_tracking.init_tracking(db_path, default_database=configured_database())


if __name__ == "__main__":
    sys.exit(_demo_main(default_database=configured_database()))
