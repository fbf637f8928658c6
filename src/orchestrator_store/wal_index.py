"""Whether the next commit starts the WAL over, read from the WAL index.

A commit that writes the first frame of the WAL (a new WAL, or one every
frame of which a checkpoint has copied back, so the writer starts it over)
writes a new WAL header and, at ``synchronous=NORMAL`` too, syncs it to disk.
That is the one commit at NORMAL that waits for the disk, so it must not run
on the event loop (``inline_writes``). SQLite does not say in advance when it
comes; its WAL index (the ``-shm`` file, shared by every connection to the
database) does. Its layout is SQLite's documented file format
(https://www.sqlite.org/walformat.html), in the machine's byte order:
``mxFrame``, the frames in the WAL, at byte 16 of the header; ``nBackfill``,
the frames a checkpoint has copied back, at byte 96 (after the header's two
copies of 48 bytes). Read while the reader holds the write lock, the two cannot
move under it except ``nBackfill`` growing, which errs on the safe side.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

__all__ = ["WalIndex"]

_FRAMES = struct.Struct("=I")
MAX_FRAME_AT = 16
BACKFILLED_AT = 96
READ_BYTES = BACKFILLED_AT + _FRAMES.size


class WalIndex:
    """The ``-shm`` file at ``path``, opened on first use and kept open."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def next_commit_starts_the_wal(self) -> bool:
        """True when the next commit may write the WAL's first frame (and so
        sync), or when the index cannot be read: then nobody can tell."""
        counts = self._read()
        if counts is None:
            return True
        frames, backfilled = counts
        return frames == 0 or backfilled >= frames

    def frames(self) -> int:
        """Frames in the WAL now (0 when the index cannot be read)."""
        counts = self._read()
        return 0 if counts is None else counts[0]

    def _read(self) -> tuple[int, int] | None:
        """(``mxFrame``, ``nBackfill``), or ``None`` when they cannot be read."""
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDONLY)
            data = os.pread(self._fd, READ_BYTES, 0)
        except OSError:
            return None
        if len(data) < READ_BYTES:
            return None
        frames: int = _FRAMES.unpack_from(data, MAX_FRAME_AT)[0]
        backfilled: int = _FRAMES.unpack_from(data, BACKFILLED_AT)[0]
        return frames, backfilled

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
