"""A dict-backed storage, for tests and throwaway repositories.

Objects live only as long as the :class:`InMemoryStorage` instance; it is
shared between threads (one lock guards every access), not between processes.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from icechunk.exceptions import (
    InvalidInputError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
)
from icechunk.storage.base import ByteRange, ObjectInfo, Storage, Version, resolve_byte_range


@dataclass(frozen=True, slots=True)
class _Entry:
    data: bytes
    version: Version
    last_modified: datetime


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"storage keys must be non-empty strings, got {key!r}")
    return key


_LIVE: weakref.WeakValueDictionary[str, InMemoryStorage] = weakref.WeakValueDictionary()


def _find_live_storage(token: str) -> InMemoryStorage:
    storage = _LIVE.get(token)
    if storage is None:
        raise StorageError(
            "an in-memory storage cannot be used from another process; use "
            "ic.local_filesystem_storage or an object store for multi-process work"
        )
    return storage


class InMemoryStorage(Storage, backend="in_memory"):
    """Objects kept in a dict; every write gets a new, increasing version number."""

    def __init__(self) -> None:
        self._objects: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._counter = 0
        self._token = uuid.uuid4().hex
        _LIVE[self._token] = self

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # Pickles as a reference: unpickling in the same process gives back this very
        # storage (so forks and read-only sessions travel between threads and dask
        # tasks); in another process there is nothing to refer to.
        return _find_live_storage, (self._token,)

    def _new_entry(self, data: bytes) -> _Entry:
        # Caller holds self._lock.
        self._counter += 1
        return _Entry(bytes(data), str(self._counter), datetime.now(UTC))

    def _entry(self, key: str) -> _Entry:
        with self._lock:
            entry = self._objects.get(_check_key(key))
        if entry is None:
            raise ObjectNotFoundError(f"object {key!r} not found in {self.describe()}")
        return entry

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        data = self._entry(key).data
        if byte_range is None:
            return data
        start, stop = resolve_byte_range(byte_range, len(data))
        return data[start:stop]

    async def get_with_version(self, key: str) -> tuple[bytes, Version]:
        entry = self._entry(key)
        return entry.data, entry.version

    async def put(self, key: str, data: bytes) -> None:
        _check_key(key)
        with self._lock:
            self._objects[key] = self._new_entry(data)

    async def put_if_absent(self, key: str, data: bytes) -> Version:
        _check_key(key)
        with self._lock:
            if key in self._objects:
                raise PreconditionFailedError(f"object {key!r} already exists in {self.describe()}")
            entry = self._objects[key] = self._new_entry(data)
        return entry.version

    async def put_if_version(self, key: str, data: bytes, version: Version) -> Version:
        _check_key(key)
        with self._lock:
            current = self._objects.get(key)
            if current is None or current.version != version:
                raise PreconditionFailedError(
                    f"object {key!r} in {self.describe()} changed since version {version!r} was read"
                )
            entry = self._objects[key] = self._new_entry(data)
        return entry.version

    async def exists(self, key: str) -> bool:
        _check_key(key)
        with self._lock:
            return key in self._objects

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        with self._lock:
            items = [(k, e) for k, e in self._objects.items() if k.startswith(prefix)]
        for key, entry in items:
            yield ObjectInfo(key, len(entry.data), entry.last_modified)

    async def delete(self, keys: Iterable[str]) -> None:
        if isinstance(keys, str):  # one key, not its characters
            keys = [keys]
        keys = [_check_key(k) for k in keys]
        with self._lock:
            for key in keys:
                self._objects.pop(key, None)

    def describe(self) -> str:
        return "in-memory storage"
