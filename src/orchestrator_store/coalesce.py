"""Single-row INSERTs that follow each other, run as one multi-row INSERT.

Group commit already shares one commit between the writes queued together.
Most of them are the same statement (a log line per step, from many agents),
and each one run on its own costs a statement execution and, in the writer
thread, a wait for the interpreter lock. Runs of the same single-row INSERT
become ``INSERT ... VALUES (...), (...), ...``: one execution for up to
``MAX_ROWS`` rows. Only consecutive writes merge, so the order of the writes,
and of the ids SQLite hands out, is unchanged. What happens when a merged
statement fails is the writer's business (it runs the rows one by one).
A batch of rows given at once (``executemany``'s input) is split the same way.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

__all__ = ["BATCH_ROWS", "MAX_ROWS", "mergeable", "merged_sql", "runs"]

T = TypeVar("T")

MAX_ROWS = 64  # rows per merged statement: powers of two up to this, so few distinct statements
BATCH_ROWS = 256  # the same for a batch of rows (``create_agent_logs``): larger, fewer statements
_SINGLE_ROW_INSERT = re.compile(r"INSERT INTO \w+ \(\w+(?:, \w+)*\) VALUES (\(\?(?:, \?)*\))")


@functools.lru_cache(maxsize=256)
def _values(sql: str) -> str | None:
    match = _SINGLE_ROW_INSERT.fullmatch(sql)
    return match.group(1) if match else None


def mergeable(sql: str) -> bool:
    """A plain single-row ``INSERT INTO t (...) VALUES (?, ...)`` (what the
    store's SQL builder writes): nothing after the values, no ``OR`` clause."""
    return _values(sql) is not None


@functools.lru_cache(maxsize=256)
def merged_sql(sql: str, rows: int) -> str:
    """``sql`` (mergeable) with ``rows`` value tuples."""
    values = _values(sql)
    if values is None or rows < 1:
        raise ValueError(f"cannot merge {rows} rows of {sql!r:.80}")
    return sql + f", {values}" * (rows - 1)


def runs(
    items: Sequence[T], sql_of: Callable[[T], str | None], *, max_rows: int = MAX_ROWS
) -> Iterator[Sequence[T]]:
    """Split ``items`` into consecutive pieces, in order: items whose
    ``sql_of`` is the same mergeable statement go together, up to ``max_rows``
    and in power-of-two sizes; every other item is a piece of its own."""
    start = 0
    while start < len(items):
        sql = sql_of(items[start])
        end = start + 1
        if sql is not None and mergeable(sql):
            while end < len(items) and end - start < max_rows and sql_of(items[end]) == sql:
                end += 1
            end = start + _power_of_two_at_most(end - start)
        yield items[start:end]
        start = end


def _power_of_two_at_most(count: int) -> int:
    return 1 << (count.bit_length() - 1)
