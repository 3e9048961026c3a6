"""The clients of the network backends: one per storage and event loop, and their release.

aiohttp-based clients belong to the loop that created them; a storage keeps one
:class:`LoopState` (client, semaphore, lock) per running loop. This module closes
clients on their own loop, drops them when that loop is gone, and, in a forked child,
lets every live storage forget the parent's clients (``on_fork_in_child``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["ClientHandle", "LoopState", "close_all", "on_fork_in_child", "release", "spawn_close"]


@dataclass
class ClientHandle:
    """A live client, how to close it, and when its credentials run out."""

    client: Any
    close: Callable[[], Awaitable[Any]]
    expires_at: datetime | None = None
    #: Best-effort synchronous release, for clients whose event loop is closed.
    abandon: Callable[[], None] | None = None


@dataclass
class LoopState:
    """What a storage keeps per event loop: its client and the bounds of its requests."""

    semaphore: asyncio.Semaphore
    lock: asyncio.Lock
    handle: ClientHandle | None = None
    #: Clients replaced after their credentials expired, closed after a grace period.
    retired: list[ClientHandle] = field(default_factory=list)


def close_all(states: dict[asyncio.AbstractEventLoop, LoopState]) -> None:
    """Release every client in ``states`` (a storage was garbage collected or closed)."""
    for loop, state in list(states.items()):
        handles = [h for h in (state.handle, *state.retired) if h is not None]
        state.handle = None
        state.retired.clear()
        for handle in handles:
            release(loop, handle)
    states.clear()


def release(loop: asyncio.AbstractEventLoop, handle: ClientHandle) -> None:
    """Close ``handle`` on its loop: wait for it if the loop runs elsewhere, else drop it."""
    try:
        if loop.is_closed() or not loop.is_running():
            raise RuntimeError("loop not running")
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:  # called from the loop itself: cannot block, schedule
            spawn_close(loop, handle)
            return
        asyncio.run_coroutine_threadsafe(_quiet_close(handle), loop).result(timeout=2)
    except Exception:
        if handle.abandon is not None:
            with contextlib.suppress(Exception):
                handle.abandon()


async def _quiet_close(handle: ClientHandle) -> None:
    with contextlib.suppress(Exception):
        await handle.close()


def spawn_close(loop: asyncio.AbstractEventLoop, handle: ClientHandle) -> None:
    """Close ``handle`` in a task of ``loop`` (kept referenced until it is done)."""
    task = loop.create_task(_quiet_close(handle))
    _PENDING_CLOSES.add(task)
    task.add_done_callback(_PENDING_CLOSES.discard)


_PENDING_CLOSES: set[asyncio.Task[Any]] = set()
#: What each live storage does in a forked child, by id of the storage (storages hash by
#: their location, which subclasses set only after registering). Weak references, so a
#: registered hook does not keep its storage alive.
_AFTER_FORK: dict[int, weakref.WeakMethod[Callable[[], None]]] = {}


def _after_fork_in_child() -> None:
    _PENDING_CLOSES.clear()
    for hook in list(_AFTER_FORK.values()):
        forget = hook()
        if forget is not None:
            forget()


def on_fork_in_child(storage_id: int, forget: Callable[[], None]) -> None:
    """Run ``forget`` (a bound method of the storage ``storage_id``) in forked children."""

    def unregister(_: object) -> None:
        _AFTER_FORK.pop(storage_id, None)

    _AFTER_FORK[storage_id] = weakref.WeakMethod(forget, unregister)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
