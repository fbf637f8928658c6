"""Which task owns an open ``transaction()``: one rule for both backends.

A transaction belongs to the task that opened it, on the backend that opened
it. Child tasks inherit a copy of the context, and with it the open
transaction. Joining it from several tasks at once would interleave their
statements in one block, and waiting for it would deadlock whenever the owner
awaits the child (``asyncio.gather`` inside the block). So a task that carries
another task's transaction while that transaction is still open may read, but
its writes, transactions, checkpoints and ``close()`` are refused with
``TransactionScopeError``, on both backends. Once the block has ended, the
copy it carries means nothing and the task writes as any other.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, Generic, Literal, TypeVar

from .errors import TransactionScopeError

__all__ = ["TaskTransactions", "Transaction", "TransactionState"]

TransactionState = Literal["open", "committed", "rolled_back", "unknown"]


class Transaction:
    """What ``async with db.transaction() as tx`` gives: the block's outcome.

    ``state`` is ``open`` inside the block, then ``committed`` or
    ``rolled_back``; ``unknown`` only when the connection to a server was lost
    while it committed. It answers the one question an exception cannot: a
    task cancelled while the COMMIT ran gets ``CancelledError`` after the
    commit finished, and ``tx.committed`` says that its writes are stored.
    Nested blocks (savepoints) give the outermost transaction.
    """

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: TransactionState = "open"

    @property
    def committed(self) -> bool:
        return self.state == "committed"

    def __repr__(self) -> str:
        return f"<Transaction {self.state}>"


T = TypeVar("T", bound=Transaction)


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

    def refuse_inherited(self, backend: object, action: str, table: str | None = None) -> None:
        """Raise ``TransactionScopeError`` if this task was started inside
        another task's ``transaction()`` on ``backend`` that is still open.
        (Every write asks: the message is only built when it raises.)"""
        entry = self._current.get()
        if entry is None:
            return
        owner, task, transaction = entry
        if owner is backend and task is not asyncio.current_task() and transaction.state == "open":
            where = f"{table}: " if table else ""
            raise TransactionScopeError(
                f"{where}{action} from a task started inside another task's transaction() block, "
                "while that block is open: a transaction belongs to the task that opened "
                "it. Make the writes in that task, or start this task's work after the "
                "block ends (nothing was written)"
            )

    def enter(self, backend: object, transaction: T) -> contextvars.Token[Any]:
        """Record ``transaction`` as this task's on ``backend``; pass the token to ``leave``."""
        return self._current.set((backend, asyncio.current_task(), transaction))

    def leave(self, token: contextvars.Token[Any]) -> None:
        self._current.reset(token)
