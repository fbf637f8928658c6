"""The plan: what a run will do to each file, decided before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path, PurePosixPath

__all__ = ["Action", "Plan", "PlannedFile"]


class Action(StrEnum):
    CREATE = "create"  # the file does not exist yet
    UPDATE = "update"  # our managed block is appended; the user's lines stay as they are
    IDENTICAL = "identical"  # already what we would write: left untouched
    CONFLICT = "conflict"  # differs from what we would write: never overwritten without --force
    OVERWRITE = "overwrite"  # a conflict the user chose to overwrite (--force)
    SKIP = "skip"  # exists and is the user's to keep (config.yml on init)

    @property
    def writes(self) -> bool:
        return self in (Action.CREATE, Action.UPDATE, Action.OVERWRITE)


@dataclass(frozen=True)
class PlannedFile:
    target: PurePosixPath  # relative to the output folder, as shown to the user
    destination: Path  # absolute, checked to lie inside the output folder
    action: Action
    content: bytes
    notes: tuple[str, ...] = ()  # why a managed file conflicts, shown under its line
    group: PurePosixPath | None = None  # a vendored folder the plan may show as one line

    def in_group(self, group: PurePosixPath) -> PlannedFile:
        return replace(self, group=group)


@dataclass(frozen=True)
class Plan:
    output_dir: Path
    files: tuple[PlannedFile, ...]

    @property
    def conflicts(self) -> tuple[PlannedFile, ...]:
        return tuple(f for f in self.files if f.action is Action.CONFLICT)

    @property
    def writes(self) -> tuple[PlannedFile, ...]:
        return tuple(f for f in self.files if f.action.writes)
