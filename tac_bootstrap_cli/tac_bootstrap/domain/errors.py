"""One root for every fault the scaffolder reports to its user."""

from __future__ import annotations

__all__ = ["ConfigError", "TacBootstrapError", "UnsafePathError"]


class TacBootstrapError(Exception):
    """Root: a fault the user can fix; the CLI prints it as one line and exits 2."""


class ConfigError(TacBootstrapError, ValueError):
    """``config.yml`` cannot be read or does not validate."""

    def __init__(self, source: str, key: str | None, message: str) -> None:
        self.source = source
        self.key = key
        self.message = message
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {message}")


class UnsafePathError(TacBootstrapError):
    """A write would land outside the output folder (``..``, absolute path, symlink)."""
