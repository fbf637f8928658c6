"""A block of lines we own inside a file the user owns (``.gitignore``).

Users always have a ``.gitignore``, so replacing it would always conflict. Instead the
rendered block, fenced by marker lines, is appended when missing and compared when present;
the user's own lines are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BEGIN_MARKER", "END_MARKER", "BlockMerge", "merge_block"]

BEGIN_MARKER = "# >>> tac-bootstrap"
END_MARKER = "# <<< tac-bootstrap"


@dataclass(frozen=True)
class BlockMerge:
    text: str  # the whole file with the block in place
    state: str  # "absent" (appended), "same" or "different" (replaced in ``text``)


def merge_block(existing: str, block: str) -> BlockMerge:
    """Put ``block`` (starting with BEGIN_MARKER, ending with END_MARKER) into ``existing``."""
    lines = existing.splitlines(keepends=True)
    begin = _find(lines, BEGIN_MARKER, 0)
    end = _find(lines, END_MARKER, begin + 1) if begin is not None else None
    if begin is None or end is None:
        separator = "" if not existing or existing.endswith("\n\n") else "\n"
        if existing and not existing.endswith("\n"):
            separator = "\n\n"
        return BlockMerge(existing + separator + block, "absent")
    current = "".join(lines[begin : end + 1])
    if not current.endswith("\n"):
        current += "\n"
    merged = "".join(lines[:begin]) + block + "".join(lines[end + 1 :])
    return BlockMerge(merged, "same" if current == block else "different")


def _find(lines: list[str], marker: str, start: int) -> int | None:
    for index in range(start, len(lines)):
        if lines[index].startswith(marker):
            return index
    return None
