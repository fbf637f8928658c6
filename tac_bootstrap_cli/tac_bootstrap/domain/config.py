"""The project's ``config.yml``, validated at the boundary."""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_DB_PATH", "DatabaseConfig", "ProjectConfig"]

DEFAULT_DB_PATH = "orchestrator.db"


DATABASE_URL_SCHEMES = ("postgresql://", "postgres://", "sqlite:///")


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
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise ValueError("must not contain control characters")
        if value.endswith(("/", "\\")):
            raise ValueError("must name a file, not a folder")
        for flavour in (PurePosixPath, PureWindowsPath):
            path = flavour(value)
            if path.is_absolute() or path.anchor:
                raise ValueError("must be relative to the project root, not absolute")
            if ".." in path.parts:
                raise ValueError("must stay inside the project (no '..')")
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
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise ValueError("must not contain control characters")
        if not value.lower().startswith(DATABASE_URL_SCHEMES):
            raise ValueError("must be a postgresql:// (or postgres://) or sqlite:/// URL")
        if value.lower().startswith("sqlite:///") and not value[len("sqlite:///") :].strip():
            raise ValueError("must name a file after sqlite:///")
        return value


class ProjectConfig(BaseModel):
    """All of ``config.yml``; every section is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
