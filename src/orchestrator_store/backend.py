"""What the manager needs from a backend: the interface both drivers implement.

``DatabaseManager`` validates input and builds SQL (``dialect``); a backend
runs it. Both backends honour the same contract: a write outside
``transaction()`` commits before it returns; inside, it joins the block of the
task that opened it (nested blocks are savepoints) and a refused statement
leaves the block usable; reads by other tasks never wait for an open block;
rows come back as plain dicts in the store's value formats; driver errors come
out as the store's own (``errors``) with the original as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, NamedTuple, Protocol

from .dialect import Dialect
from .ownership import Transaction

__all__ = ["Backend", "Row", "WriteOutcome", "WriteResult"]

Row = dict[str, Any]


class WriteOutcome(Protocol):
    @property
    def rowcount(self) -> int: ...  # rows the statement changed

    @property
    def lastrowid(self) -> int | None: ...  # the id the database assigned, if any


class WriteResult(NamedTuple):  # a tuple: the writer thread makes one per write
    rowcount: int
    lastrowid: int | None


class Backend(Protocol):
    @property
    def dialect(self) -> Dialect: ...

    @property
    def is_open(self) -> bool: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def execute(self, sql: str, params: Sequence[Any], *, table: str) -> WriteOutcome: ...

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]], *, table: str) -> None:
        """Run the write ``sql`` once for each parameter row, all rows or none,
        batched as the driver allows (moving data in bulk). Outside
        ``transaction()`` it commits before it returns; inside, it joins the
        block like any write."""

    async def insert_many(
        self, sql: str, rows: Sequence[Sequence[Any]], *, table: str
    ) -> list[int]: ...  # all rows or none; the new ids in input order

    async def fetch_all(self, sql: str, params: Sequence[Any], *, table: str) -> list[Row]: ...

    async def fetch_read_only(self, sql: str, params: Sequence[Any], *, table: str) -> list[Row]:
        """Run one statement that only reads (the caller's own SQL, for
        ``query()``) and return its rows. Anything else (a write, DDL,
        transaction control, a change to the connection's settings, several
        statements) raises ``ReadOnlyError`` and changes nothing; inside this
        task's ``transaction()`` the statement sees the block's writes."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...

    async def schema_version(self) -> int: ...

    async def checkpoint(self) -> dict[str, int]: ...

    async def storage(self) -> dict[str, int]: ...
