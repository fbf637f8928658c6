"""Where the store lives: a SQLite file or a PostgreSQL server, named by one string.

``postgresql://`` and ``postgres://`` URLs select PostgreSQL; ``sqlite:///``
URLs and plain paths select SQLite. As in SQLAlchemy, the path of a SQLite URL
is what follows the third slash: ``sqlite:///store.db`` is relative,
``sqlite:////var/lib/store.db`` absolute.

A string that starts like a URL but is not one of those is refused rather than
taken for a file name (``postgres:/x``, ``postgresql:x``, ``sqlite:/x``,
``sqlite://x``, ``mysql://...``): it starts with a scheme and ``://``, or with
one of the store's own schemes and ``:``. Anything else is a path, colons
included: ``C:\\data\\store.db`` (one letter is a drive, not a scheme),
``runs/12:00/store.db``, ``store:v2.db``.

A PostgreSQL URL may carry the pool's settings as query parameters
(``?statement_cache_size=0&max_size=20&command_timeout=30``, any field of
``PoolSettings``): the store takes them off the URL (the driver would send them
to the server as settings) and they override the same fields of ``pool=``, so
that the deployment's URL (an environment variable, ``config.yml``) can say
what its server needs, e.g. ``statement_cache_size=0`` behind PgBouncer in
transaction mode. Fields the URL does not name keep ``pool=``'s values.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

from .errors import ValidationError

__all__ = [
    "ACCEPTED_FORMS",
    "DATABASE_URL_ENV",
    "DB_PATH_ENV",
    "DEFAULT_DB_PATH",
    "POOL_URL_PARAMETERS",
    "POSTGRES_SCHEMES",
    "SIDE_FILE_SUFFIXES",
    "SQLITE_SCHEME",
    "STORE_FILE_SUFFIXES",
    "PoolSettings",
    "is_postgres_url",
    "looks_like_url",
    "pool_from_url",
    "redact_text",
    "redact_url",
    "resolve_database",
    "resolve_db_path",
    "same_file",
    "sqlite_url_path",
    "store_file_named_by",
    "sync_folder",
]

# The file a store opens when nothing names one: in the current folder, or in the
# project root when the project's adw_database.py passes its configured default.
DEFAULT_DB_PATH = "orchestrator.db"
# The files SQLite keeps beside a database file, named after it.
SIDE_FILE_SUFFIXES = ("-wal", "-shm", "-journal")
# All of a SQLite store's files: the database itself, then those beside it.
STORE_FILE_SUFFIXES = ("", *SIDE_FILE_SUFFIXES)
# Environment variables that name the store at run time; the URL wins over the path.
DATABASE_URL_ENV = "ORCHESTRATOR_DATABASE_URL"
DB_PATH_ENV = "ORCHESTRATOR_DB_PATH"

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_SCHEME = "sqlite:///"
ACCEPTED_FORMS = (
    "postgresql://user@host:port/dbname, postgres://..., sqlite:///relative/path.db, "
    "sqlite:////absolute/path.db or a plain file path"
)
# The store's own schemes: with a colon after them, a string means to be a URL.
_STORE_SCHEMES = frozenset({"postgresql", "postgres", "sqlite"})
# RFC 3986's scheme, two characters at least (one letter is a Windows drive).
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")


def is_postgres_url(text: str) -> bool:
    return text.lower().startswith(POSTGRES_SCHEMES)


def sqlite_url_path(url: str) -> str:
    """The file path of a ``sqlite:///`` URL."""
    path = url[len(SQLITE_SCHEME) :]
    if not path.strip():
        raise ValidationError(f"{url!r} names no file: use sqlite:///path/to/file.db")
    return path


def looks_like_url(text: str) -> bool:
    """Starts with a scheme and ``://``, or with one of the store's schemes and
    ``:``: meant as a URL, so never a file name (see the module docstring)."""
    match = _SCHEME.match(text)
    if match is None:
        return False
    return text[match.end() :].startswith("//") or match.group(1).lower() in _STORE_SCHEMES


def _passwords(url: str) -> list[str]:
    """Every password ``url`` holds (userinfo, ``?password=``), as written and
    decoded, longest first (so that a shorter one inside a longer one cannot
    leave a piece of it behind). Plain string work: it must not fail on a URL
    that ``urlsplit`` refuses."""
    netloc = re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[0]
    userinfo_password = netloc.rpartition("@")[0].partition(":")[2]
    found = [userinfo_password, unquote(userinfo_password)]
    for piece in url.partition("?")[2].partition("#")[0].split("&"):
        key, _, value = piece.partition("=")
        if unquote_plus(key) == "password":
            found += [value, unquote(value), unquote_plus(value)]
    return sorted({secret for secret in found if secret}, key=len, reverse=True)


def redact_text(text: str, url: str) -> str:
    """``text`` (an error message, say) with every password of ``url`` replaced
    by ``***``, wherever the message quotes it."""
    text = text.replace(url, redact_url(url))
    for secret in _passwords(url):
        text = text.replace(secret, "***")
    return text


def redact_url(url: str) -> str:
    """The URL without its passwords (userinfo and ``?password=``), for
    messages and reports."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # unparsable: hide whatever looks like a password
        for secret in _passwords(url):
            url = url.replace(secret, "***")
        return url
    netloc = parts.netloc
    if password is not None:
        userinfo, _, hosts = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:***@{hosts}"
    query = "&".join(
        f"{piece.partition('=')[0]}=***"
        if unquote_plus(piece.partition("=")[0]) == "password"
        else piece
        for piece in parts.query.split("&")
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


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


# URL query parameters that configure the pool (PoolSettings' fields).
POOL_URL_PARAMETERS = tuple(item.name for item in fields(PoolSettings))
_WHOLE_NUMBERS = ("min_size", "max_size", "statement_cache_size")


def _parameter_value(name: str, text: str) -> int | float:
    kind = "a whole number" if name in _WHOLE_NUMBERS else "a number of seconds"
    try:
        value: int | float = int(text) if name in _WHOLE_NUMBERS else float(text)
    except ValueError:
        raise ValidationError(f"URL parameter {name}={text!r} must be {kind}", field=name) from None
    if value != value or value in (float("inf"), float("-inf")):  # NaN, inf
        raise ValidationError(f"URL parameter {name}={text!r} must be {kind}", field=name)
    return value


def pool_from_url(url: str, pool: PoolSettings | None = None) -> tuple[str, PoolSettings]:
    """Split the pool's settings off a PostgreSQL URL: the URL for the driver
    (every other parameter kept as written) and ``pool`` (default settings if
    None) with the URL's values in place of its own."""
    parts = urlsplit(url)
    kept: list[str] = []
    values: dict[str, int | float] = {}
    for piece in parts.query.split("&") if parts.query else []:
        name = unquote(piece.partition("=")[0])
        if name not in POOL_URL_PARAMETERS:
            kept.append(piece)
            continue
        if name in values:
            raise ValidationError(f"URL parameter {name} is given twice", field=name)
        values[name] = _parameter_value(name, unquote_plus(piece.partition("=")[2]).strip())
    base = pool or PoolSettings()
    if not values:
        return url, base
    try:
        settings = replace(base, **values)  # type: ignore[arg-type]
    except ValidationError as exc:
        named = ", ".join(f"{name}={value}" for name, value in values.items())
        raise ValidationError(
            f"{exc} (the URL sets {named}; it overrides the same fields of pool=)",
            field=exc.field,
        ) from None
    return urlunsplit(parts._replace(query="&".join(kept))), settings


def resolve_database(
    db_path: str | os.PathLike[str] | None,
    *,
    default: str | os.PathLike[str] | None = None,
) -> Path | str:
    """A SQLite file path, or a PostgreSQL URL (a ``str``): the explicit
    argument, else ``$ORCHESTRATOR_DATABASE_URL``, else ``$ORCHESTRATOR_DB_PATH``,
    else ``default`` (a path or URL: a project's configured database), else
    ``DEFAULT_DB_PATH`` in the current folder."""
    if db_path is None:
        db_path = os.environ.get(DATABASE_URL_ENV) or os.environ.get(DB_PATH_ENV) or default
    if isinstance(db_path, str) and is_postgres_url(db_path):
        return db_path
    return resolve_db_path(db_path)


def resolve_db_path(db_path: str | os.PathLike[str] | None) -> Path:
    """A SQLite file: the argument (a path or a ``sqlite:///`` URL), else
    ``$ORCHESTRATOR_DB_PATH``, else ``DEFAULT_DB_PATH`` in the current folder."""
    if db_path is None:
        db_path = os.environ.get(DB_PATH_ENV) or DEFAULT_DB_PATH
    if not isinstance(db_path, str | os.PathLike):
        raise ValidationError(f"db_path must be a path or URL, got {type(db_path).__name__}")
    text = os.fspath(db_path)
    if text.lower().startswith(SQLITE_SCHEME):
        text = sqlite_url_path(text)
    elif looks_like_url(text) or "://" in text:
        # Meant as a URL: taken for a path, it would create a folder named after
        # the scheme and a SQLite file in it.
        raise ValidationError(
            f"db_path {redact_url(text)!r} is not a database URL the store accepts "
            f"(an unknown scheme, or a known one written wrongly): use {ACCEPTED_FORMS}"
        )
    if not text.strip():
        raise ValidationError("db_path must not be empty")
    if text == ":memory:" or text.startswith("file:"):
        raise ValidationError(
            f"db_path {text!r} is not supported: the store opens several connections to one "
            "file; use a file path (a temporary folder works for throwaway stores)"
        )
    return Path(text).expanduser().absolute()


# --- the files of a SQLite store ---------------------------------------------------------


def same_file(one: Path, other: Path) -> bool:
    """The same file however spelt: through symlinks, `..`, relative or absolute
    paths, or hard links (those only when both exist)."""
    try:
        if os.path.samefile(one, other):
            return True
    except OSError:  # one of them does not exist (yet)
        pass
    return one.resolve() == other.resolve()


def store_file_named_by(path: Path, database: Path) -> Path | None:
    """The file of the SQLite store at ``database`` (the database, its WAL,
    shared memory or journal) that ``path`` names, however spelt; None if it
    names none of them. Writing over one would destroy the store."""
    for suffix in STORE_FILE_SUFFIXES:
        store_file = Path(f"{database}{suffix}")
        if same_file(path, store_file):
            return store_file
    return None


def sync_folder(folder: Path) -> None:
    """Make a new name or a rename in ``folder`` durable (POSIX: fsync the
    folder); best effort."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder: its renames need no sync
        return
    try:
        os.fsync(descriptor)
    except OSError:  # some file systems refuse: the file's data is on disk already
        pass
    finally:
        os.close(descriptor)
