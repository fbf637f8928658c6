"""Keep every write inside the output folder."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from tac_bootstrap.domain.errors import UnsafePathError

__all__ = ["resolve_inside"]


def resolve_inside(root: Path, relative: PurePosixPath) -> Path:
    """The real location of ``root / relative``, refused unless it stays under ``root``.

    ``..`` and absolute paths are refused by their spelling; symlinks, already on disk,
    are followed and refused when they lead outside.
    """
    if relative.is_absolute() or not relative.parts:
        raise UnsafePathError(f"{relative}: refusing an absolute or empty target path")
    if ".." in relative.parts:
        raise UnsafePathError(f"{relative}: refusing a target path with '..'")
    base = root.resolve()
    destination = (base / relative).resolve()
    if not destination.is_relative_to(base):
        raise UnsafePathError(
            f"{relative}: leads outside the output folder {base} (to {destination})"
        )
    return destination
