"""Which task owns an open ``transaction()``: one rule for both backends.

A transaction belongs to the task that opened it, on the backend that opened
it. Child tasks inherit a copy of the context, and with it the open
transaction; checking the owning task keeps them out, so their writes wait (or
run beside it) instead of joining a block they did not open.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, Generic, TypeVar

__all__ = ["TaskTransactions"]

T = TypeVar("T")


class TaskTransactions(Generic[T]):
    """The open transactions of one kind of backend, one per task and backend."""

    def __init__(self, name: str) -> None:
        self._current: contextvars.ContextVar[tuple[object, asyncio.Task[Any] | None, T] | None]
        self._current = contextvars.ContextVar(name, default=None)

    def owned(self, backend: object) -> T | None:
        """The transaction this task opened on ``backend``, if any."""
        entry = self._current.get()
        if entry is None:
            return None
        owner, task, transaction = entry
        if owner is not backend or task is not asyncio.current_task():
            return None
        return transaction

    def enter(self, backend: object, transaction: T) -> contextvars.Token[Any]:
        """Record ``transaction`` as this task's on ``backend``; pass the token to ``leave``."""
        return self._current.set((backend, asyncio.current_task(), transaction))

    def leave(self, token: contextvars.Token[Any]) -> None:
        self._current.reset(token)
