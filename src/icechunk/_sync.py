"""Run the async core from synchronous code.

The core is async (zarr's store API is). Synchronous entry points run their
coroutine on zarr's own background event loop, so sync calls work from plain
scripts, from threads, and from inside a running event loop (e.g. Jupyter).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from zarr.core.sync import sync

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result."""
    return sync(coro)
