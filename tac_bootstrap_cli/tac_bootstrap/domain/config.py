"""The project's ``config.yml``, validated at the boundary."""

from __future__ import annotations

import posixpath
import re
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator_store.location import (
    DEFAULT_DB_PATH,
    POSTGRES_SCHEMES,
    SIDE_FILE_SUFFIXES,
    SQLITE_SCHEME,
)

__all__ = [
    "DEFAULT_DB_PATH",
    "DatabaseConfig",
    "ProjectConfig",
    "project_relative",
]

# The store's own: the schemes its URLs take, and its default file (orchestrator_store.location).
DATABASE_URL_SCHEMES = (*POSTGRES_SCHEMES, SQLITE_SCHEME)

# The longest file or folder name most file systems take (ext4, APFS, NTFS: 255 bytes).
NAME_MAX = 255
_LONGEST_SUFFIX = max(len(suffix) for suffix in SIDE_FILE_SUFFIXES)


def _usable_text(value: str) -> None:
    """Refuse what no file name, Python literal or ``.gitignore`` line can carry."""
    for char in value:
        code = f"U+{ord(char):04X}"
        if 0xD800 <= ord(char) <= 0xDFFF:  # e.g. YAML "\ud800", or argv bytes that are not UTF-8
            raise ValueError(f"must be valid text: {code} is a lone surrogate, not UTF-8")
        category = unicodedata.category(char)
        if category == "Cc":  # NUL, C0 and C1 controls, DEL
            raise ValueError(f"must not contain control characters ({code})")
        if category in ("Zl", "Zp"):
            raise ValueError(f"must not contain line breaks ({code})")


def _usable_file(value: str) -> None:
    """``value`` (``/`` between folders) names a file whose name the file system takes,
    with room for SQLite's ``-journal`` beside it."""
    parts = value.split("/")
    if parts[-1] in ("", ".", ".."):
        raise ValueError("must name a file, not a folder")
    for part in parts[:-1]:
        if len(part.encode()) > NAME_MAX:
            raise ValueError(f"has a folder name that is too long (over {NAME_MAX} bytes)")
    if len(parts[-1].encode()) > NAME_MAX - _LONGEST_SUFFIX:
        raise ValueError(
            f"has a file name that is too long: at most {NAME_MAX - _LONGEST_SUFFIX} bytes, "
            f"so that SQLite's {SIDE_FILE_SUFFIXES[-1]} file beside it fits"
        )


class DatabaseConfig(BaseModel):
    """Where the generated store keeps its data: a SQLite file (``path``) by
    default, or the database ``url`` names (PostgreSQL or a SQLite file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(
        default=DEFAULT_DB_PATH,
        description="database file, relative to the project root",
    )

    @field_validator("path")
    @classmethod
    def _inside_the_project(cls, value: str) -> str:
        # The store creates this file, and .gitignore lists it: both only make sense inside
        # the project. ORCHESTRATOR_DB_PATH remains the run-time escape hatch.
        if not value.strip():
            raise ValueError("must not be empty")
        _usable_text(value)
        if value.endswith(("/", "\\")):
            raise ValueError("must name a file, not a folder")
        # A backslash is a character of the file name, as on Linux and macOS (where the
        # store creates `data\store.db` in the project root); what Windows would read as a
        # drive, a root or '..' is refused all the same, so the value is safe on both.
        for flavour in (PurePosixPath, PureWindowsPath):
            path = flavour(value)
            if path.is_absolute() or path.anchor:
                raise ValueError("must be relative to the project root, not absolute")
            if ".." in path.parts:
                raise ValueError("must stay inside the project (no '..')")
        _usable_file(value)
        return value

    url: str | None = Field(
        default=None,
        description="postgresql://user@host:5432/db or sqlite:///file.db; replaces path",
    )

    @field_validator("url")
    @classmethod
    def _a_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _usable_text(value)
        if not value.lower().startswith(DATABASE_URL_SCHEMES):
            raise ValueError("must be a postgresql:// (or postgres://) or sqlite:/// URL")
        if value.lower().startswith(SQLITE_SCHEME):
            file = value[len(SQLITE_SCHEME) :]
            if not file.strip():
                raise ValueError("must name a file after sqlite:///")
            _usable_file(file)
        return value

    @property
    def uses_server(self) -> bool:
        """``url`` names a PostgreSQL server: there is no database file."""
        return self.url is not None and self.url.lower().startswith(POSTGRES_SCHEMES)

    @property
    def sqlite_file(self) -> str | None:
        """The SQLite file as configured, relative to the project root unless absolute
        (``url``'s path when it is a ``sqlite:///`` URL, else ``path``); ``None`` on
        PostgreSQL."""
        if self.url is None:
            return self.path
        if self.uses_server:
            return None
        return self.url[len(SQLITE_SCHEME) :]


def project_relative(file: str, project_root: PurePosixPath | None) -> PurePosixPath | None:
    """Where ``file`` lies inside the project, as the store finds it: joined to the project
    root (an absolute ``file`` stays as it is), ``.``, ``..`` and repeated slashes resolved.

    ``None`` when it lies outside the project, or may (absolute or leading ``..`` while the
    root is not known).
    """
    joined = posixpath.join(str(project_root), file) if project_root is not None else file
    normal = re.sub("^/+", "/", posixpath.normpath(joined))  # POSIX keeps a leading "//"
    if project_root is None:
        relative = PurePosixPath(normal)
        if relative.is_absolute() or relative.parts[:1] == ("..",):
            return None
    else:
        root = PurePosixPath(re.sub("^/+", "/", posixpath.normpath(str(project_root))))
        if not PurePosixPath(normal).is_relative_to(root):
            return None
        relative = PurePosixPath(normal).relative_to(root)
    return relative if relative.parts else None


class ProjectConfig(BaseModel):
    """All of ``config.yml``; every section is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
