"""Run the async core from synchronous code.

The core is async (zarr's store API is). Synchronous entry points run their
coroutine on zarr's own background event loop, so sync calls work from plain
scripts, from threads, and from inside a running event loop (e.g. Jupyter).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import zarr.core.sync
from zarr.core.sync import SyncError, sync

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result."""
    return sync(coro)


def check_off_zarr_loop(what: str) -> None:
    """Raise SyncError if called on the thread of zarr's event loop.

    A blocking call there would wait for the very loop it blocks; check before creating
    the coroutine, so none is left un-awaited.
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return
    if running is zarr.core.sync.loop[0]:
        raise SyncError(
            f"{what} cannot be called on zarr's event-loop thread: it blocks until that loop "
            "has done the work. Await the async method instead, or call it from another thread"
        )


_blocking_pool: ThreadPoolExecutor | None = None
_blocking_pool_lock = threading.Lock()


def _reset_blocking_pool() -> None:
    """A forked child has none of its parent's worker threads: start a new pool there."""
    global _blocking_pool, _blocking_pool_lock
    _blocking_pool = None
    _blocking_pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_blocking_pool)


async def run_blocking(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)`` in one of this library's own worker threads.

    Use it instead of ``asyncio.to_thread`` for blocking IO: the default executor of zarr's
    loop can be full of threads blocked in ``IcechunkStore.get_sync`` / ``set_sync``
    (zarr's FusedCodecPipeline) that wait for this very call, which would never start.
    """
    global _blocking_pool
    if _blocking_pool is None:
        with _blocking_pool_lock:
            if _blocking_pool is None:
                _blocking_pool = ThreadPoolExecutor(thread_name_prefix="icechunk-io")
    if kwargs:
        func = functools.partial(func, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_blocking_pool, func, *args)
