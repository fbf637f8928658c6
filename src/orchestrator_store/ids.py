"""New row ids: time-ordered UUIDs (version 7, RFC 9562) as lowercase text.

Why time-ordered: an id is a B-tree key, in the table's primary key and in
every index that holds it (logs and prompts are indexed by their agent's id).
Random ids put each new key on a random page, so a commit of rows from fifty
busy agents rewrites fifty scattered pages of every such index. Ids that grow
with time land next to each other at the end of the tree: a commit touches a
few pages, in SQLite's WAL and in PostgreSQL's indexes alike. They also sort by
creation time, which makes them readable.

Layout: 48 bits of Unix time in milliseconds, the version, a 12-bit counter
that orders the ids of one millisecond, the variant, and 62 random bits. Within
a process the ids only ever grow: when the clock stands still or steps back,
the counter goes on from the last id (and past 4095 ids in one millisecond, the
time moves on by one). Across processes the random bits keep ids unique.

The random bits of many ids come from one ``os.urandom`` call (that system call
cost more than the rest of an id on a busy event loop). The buffer is dropped in
a forked child, so a parent and its child never hand out the same bits.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["new_id"]

_IDS_PER_READ = 256
_RANDOM_BYTES = 8  # 62 of these 64 bits are used
_MAX_SEQUENCE = 0xFFF
_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62
_RANDOM_MASK = (1 << 62) - 1


class _TimeOrderedIds:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # managers may live on several threads' loops
        self._buffer = b""
        self._offset = 0
        self._last_ms = 0
        self._sequence = 0

    def next(self) -> int:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms > self._last_ms:
                self._last_ms, self._sequence = now_ms, 0
            elif self._sequence < _MAX_SEQUENCE:
                self._sequence += 1
            else:
                self._last_ms, self._sequence = self._last_ms + 1, 0
            if self._offset >= len(self._buffer):
                self._buffer = os.urandom(_RANDOM_BYTES * _IDS_PER_READ)
                self._offset = 0
            start = self._offset
            self._offset = start + _RANDOM_BYTES
            random = int.from_bytes(self._buffer[start : start + _RANDOM_BYTES], "big")
            return (
                self._last_ms << 80
                | _VERSION_7
                | self._sequence << 64
                | _VARIANT_RFC
                | random & _RANDOM_MASK
            )

    def forget_random(self) -> None:
        self._lock = threading.Lock()  # a lock held in the parent stays held in the child
        self._buffer = b""
        self._offset = 0


_ids = _TimeOrderedIds()
os.register_at_fork(after_in_child=_ids.forget_random)


def new_id() -> str:
    """A fresh time-ordered UUID (version 7, RFC 9562 variant), lowercase and hyphenated."""
    text = f"{_ids.next():032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
