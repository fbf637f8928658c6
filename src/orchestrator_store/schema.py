"""Schema versions: where the schema file is, and what brings a file up to date.

The version of a database file is SQLite's ``PRAGMA user_version``; on
PostgreSQL it is the one row of ``adw_schema_version``. A new database gets its
dialect's schema file in full (it always describes the latest version); an
older one gets, in order, every migration newer than its version. Adding a
version means: change both schema files (and ``tables``, their description,
which a test checks against them), append a ``Migration`` that upgrades the
previous version in place (``sql`` for SQLite, ``postgres_sql`` for
PostgreSQL), and bump nothing else.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from . import tables
from .errors import SchemaError

__all__ = [
    "DEFAULT_POSTGRES_SCHEMA_PATH",
    "DEFAULT_SCHEMA_PATH",
    "LATEST_VERSION",
    "MIGRATIONS",
    "TABLES",
    "Migration",
    "load_schema",
    "postgres_script_to_upgrade",
    "split_statements",
    "statements_to_upgrade",
]

# Package data beside this module, never relative to the current directory.
DEFAULT_SCHEMA_PATH = Path(__file__).resolve().parent / "sql" / "schema_orchestrator.sql"
DEFAULT_POSTGRES_SCHEMA_PATH = DEFAULT_SCHEMA_PATH.with_name("schema_orchestrator_postgres.sql")

TABLES: tuple[str, ...] = tuple(tables.TABLES)  # the names, in schema order


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str = ""  # empty for version 1, which is the schema file itself
    postgres_sql: str = ""  # the same upgrade for PostgreSQL


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "five tables with their CHECKs, foreign keys and indexes"),
)
LATEST_VERSION = MIGRATIONS[-1].version


def load_schema(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaError(f"schema file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"schema file {path} cannot be read: {exc}") from exc
    return text


def split_statements(script: str, source: str) -> list[str]:
    """Split a SQL script into complete statements (semicolons inside strings
    and trigger bodies stay where they are)."""
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                statements.append(buffer.strip())
            buffer = ""
    leftover = buffer[:-1]  # the ";" added after the last piece
    if _has_code(leftover):
        raise SchemaError(f"invalid schema file {source}: incomplete statement at the end")
    if not statements:
        raise SchemaError(f"invalid schema file {source}: it holds no SQL statement")
    return statements


def _has_code(sql: str) -> bool:
    lines = (line.split("--", 1)[0].strip() for line in sql.splitlines())
    return any(lines)


def statements_to_upgrade(current_version: int, schema_path: Path) -> list[str]:
    """What brings a database at ``current_version`` to ``LATEST_VERSION``."""
    if current_version == 0:
        return split_statements(load_schema(schema_path), str(schema_path))
    return [
        statement
        for migration in MIGRATIONS
        if migration.version > current_version
        for statement in split_statements(migration.sql, f"migration {migration.version}")
    ]


def postgres_script_to_upgrade(current_version: int, schema_path: Path) -> str:
    """The script that brings a PostgreSQL database at ``current_version`` to
    ``LATEST_VERSION`` (PostgreSQL runs a multi-statement script in one call)."""
    if current_version == 0:
        script = load_schema(schema_path)
    else:
        script = "\n".join(m.postgres_sql for m in MIGRATIONS if m.version > current_version)
    if not _has_code(script):
        raise SchemaError(f"invalid schema file {schema_path}: it holds no SQL statement")
    return script
