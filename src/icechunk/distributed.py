"""Helpers to gather and merge the forks that distributed tasks wrote through."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from icechunk._core.fork import ForkSession, merge_forks, sibling_fork
from icechunk._util.sync import run
from icechunk.exceptions import InvalidInputError


def extract_session(*values: Any) -> list[ForkSession]:
    """The ForkSessions behind task results (forks, their stores, zarr arrays, nested lists)."""
    found: dict[int, ForkSession] = {}
    for fork in _walk(values):
        found.setdefault(id(fork), fork)  # the threaded scheduler returns one shared fork
    return list(found.values())


def _walk(value: Any) -> Iterable[ForkSession]:
    if isinstance(value, ForkSession):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item)
    else:
        store = getattr(value, "store", None)
        session = getattr(store, "session", None)
        if isinstance(session, ForkSession):
            yield session
        elif value is not None:
            raise InvalidInputError(
                f"expected ForkSessions or zarr arrays on a fork's store, got {type(value).__name__}"
            )


def merge_sessions(*values: Any) -> ForkSession:
    """One ForkSession holding the changes of all the given forks (conflicts raise)."""
    forks = extract_session(*values)
    if not forks:
        raise InvalidInputError("merge_sessions needs at least one ForkSession")
    if len(forks) == 1:
        return forks[0]
    first = forks[0]
    # a sibling of the forks, standing in for their common parent
    merged = sibling_fork(first)
    run(merge_forks(merged, forks))
    return merged
