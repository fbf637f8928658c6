"""Files that take their place only once complete: what export writes.

A new file is written beside its target (the same file system, so the rename is
atomic), flushed to disk, then renamed over it. An error or Ctrl-C removes it and
leaves the target as it was: a reader never sees half an export.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .location import sync_folder

__all__ = ["new_file_mode", "replacing"]


@contextmanager
def replacing(target: Path, mode: int) -> Iterator[IO[str]]:
    """A text file that becomes ``target``, with ``mode``, once the block ends cleanly."""
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".partial"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    sync_folder(target.parent)  # the rename itself


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file (the umask applied): mkstemp's is 0600.
    Read it before starting threads: the umask can only be read by setting it."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask
