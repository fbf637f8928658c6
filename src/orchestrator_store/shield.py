"""Work that must not stop halfway when its caller is cancelled.

Closing connections or rolling back is worth finishing even when the task that
asked is cancelled meanwhile: stopped halfway, it would leave a thread running
or a lock held. ``run_to_completion`` finishes the work, then lets the
cancellation through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["run_to_completion"]

T = TypeVar("T")


async def run_to_completion(work: Awaitable[T]) -> T:
    """Await ``work`` to its end however often the caller is cancelled
    meanwhile; then raise ``CancelledError`` if it was, else return (or
    raise) what ``work`` did."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            # asyncio.wait, unlike await, does not cancel the task it waits for.
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation is what the caller gets
        raise asyncio.CancelledError
    return task.result()
