"""Where the store lives: a SQLite file or a PostgreSQL server, named by one string.

``postgresql://`` and ``postgres://`` URLs select PostgreSQL; ``sqlite:///``
URLs and plain paths select SQLite. As in SQLAlchemy, the path of a SQLite URL
is what follows the third slash: ``sqlite:///store.db`` is relative,
``sqlite:////var/lib/store.db`` absolute.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from urllib.parse import urlsplit, urlunsplit

from adw_db_errors import ValidationError

__all__ = [
    "POSTGRES_SCHEMES",
    "SQLITE_SCHEME",
    "PoolSettings",
    "is_database_url",
    "is_postgres_url",
    "redact_url",
    "sqlite_url_path",
]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_SCHEME = "sqlite:///"


def is_postgres_url(text: str) -> bool:
    return text.lower().startswith(POSTGRES_SCHEMES)


def is_database_url(text: str) -> bool:
    return is_postgres_url(text) or text.lower().startswith(SQLITE_SCHEME)


def sqlite_url_path(url: str) -> str:
    """The file path of a ``sqlite:///`` URL."""
    path = url[len(SQLITE_SCHEME) :]
    if not path.strip():
        raise ValidationError(f"{url!r} names no file: use sqlite:///path/to/file.db")
    return path


def redact_url(url: str) -> str:
    """The URL without its password, for messages and reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


@dataclass(frozen=True)
class PoolSettings:
    """The PostgreSQL connection pool (ignored on SQLite). Timeouts are in seconds.

    ``statement_cache_size=0`` is what PgBouncer-style poolers in transaction
    mode need (they cannot keep prepared statements across transactions)."""

    min_size: int = 1
    max_size: int = 10
    connect_timeout: float = 10.0  # opening one connection
    acquire_timeout: float = 30.0  # waiting for a free connection of the pool
    command_timeout: float = 60.0  # one statement
    max_inactive_connection_lifetime: float = 300.0
    statement_cache_size: int = 100

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValidationError(
                    f"pool.{item.name} must be a non-negative number, got {value!r}",
                    field=item.name,
                )
        for name in ("min_size", "max_size", "statement_cache_size"):
            if not isinstance(getattr(self, name), int):
                raise ValidationError(f"pool.{name} must be a whole number", field=name)
        if not 1 <= self.min_size <= self.max_size:
            raise ValidationError(
                f"pool sizes must satisfy 1 <= min_size <= max_size, got "
                f"{self.min_size} and {self.max_size}",
                field="max_size",
            )
