"""The worker's store, used from one thread of its own, never from the event loop.

A store call can wait up to the busy timeout (3 s) while another process holds
SQLite's write lock. On the event loop that wait froze the whole worker: pings
went unanswered, hooks handed it to a reaper, and the reaper ended a healthy
worker. Every store call therefore runs here, on one dedicated thread (SQLite
connections belong to the thread that opened them, and one thread keeps the
worker's writes in the order it issued them), while the loop keeps serving.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..log import get_logger
from ..store import Store

log = get_logger("claude_memoir.worker")

T = TypeVar("T")


class StoreThread:
    """``await db.call(lambda store: store.get_session(...))``: the store, off the loop."""

    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.home = home
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memoir-store")
        self._store: Store | None = None

    async def open(self) -> None:
        """Open (and migrate) the store on the store thread, unless it is open already."""
        if self._store is not None:
            return
        loop = asyncio.get_running_loop()
        self._store = await loop.run_in_executor(self._executor, Store.open, self.home)

    async def reopen(self) -> None:
        """Drop the connection and open the store again (a damaged file was moved aside:
        the old connection still reads it, the next one opens its replacement)."""
        store, self._store = self._store, None
        loop = asyncio.get_running_loop()
        if store is not None:
            try:
                await loop.run_in_executor(self._executor, store.close)
            except Exception as e:  # noqa: BLE001 - a damaged file may not even close
                log.warning("closing the damaged store failed: %s", e)
        await self.open()

    async def call(self, func: Callable[[Store], T]) -> T:
        """Run ``func(store)`` on the store thread; its StoreError reaches the caller."""
        store = self._store
        if store is None:
            raise RuntimeError("the worker's store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, store)

    async def close(self) -> None:
        """Close the store on its thread and stop the thread."""
        store, self._store = self._store, None
        loop = asyncio.get_running_loop()
        if store is not None:
            await loop.run_in_executor(self._executor, store.close)
        # Nothing is queued any more: the thread ends at once.
        self._executor.shutdown(wait=False)
