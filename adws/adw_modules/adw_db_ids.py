"""New row ids: random (version 4) UUIDs as text, like ``str(uuid.uuid4())``.

``uuid.uuid4()`` asks the kernel for 16 random bytes per id, and on a busy
event loop that system call costs more than everything else the id needs. Here
one call fetches the bytes of many ids. The buffer is dropped in a forked
child, so a parent and its child never hand out the same bytes.
"""

from __future__ import annotations

import os
import threading

__all__ = ["new_id"]

_IDS_PER_READ = 256


class _RandomBytes:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # managers may live on several threads' loops
        self._buffer = b""
        self._offset = 0

    def take16(self) -> bytes:
        with self._lock:
            if self._offset >= len(self._buffer):
                self._buffer = os.urandom(16 * _IDS_PER_READ)
                self._offset = 0
            start = self._offset
            self._offset = start + 16
            return self._buffer[start : start + 16]

    def forget(self) -> None:
        self._lock = threading.Lock()  # a lock held in the parent stays held in the child
        self._buffer = b""
        self._offset = 0


_random = _RandomBytes()
os.register_at_fork(after_in_child=_random.forget)


def new_id() -> str:
    """A fresh random UUID (version 4, RFC 4122 variant), lowercase and hyphenated."""
    raw = bytearray(_random.take16())
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
