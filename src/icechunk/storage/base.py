"""The one small async interface every storage backend implements.

Keys are ``/``-separated paths relative to the repository root, e.g. ``repo``,
``snapshots/1CECHNKREP0F1RSTCMT0`` or ``chunks/<id>``. Values are ``bytes``.

Only one object is ever mutated in place, the repo info file ``repo``; it is
written with :meth:`Storage.put_if_absent` (creation) and
:meth:`Storage.put_if_version` (compare and swap). Everything else is
immutable and written once with :meth:`Storage.put`.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from icechunk.exceptions import InvalidInputError
from icechunk.storage.settings import StorageSettings

# An opaque token that identifies one version of an object (an ETag, a GCS
# generation, or a content hash on local disk).
Version = str


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``[start, end)`` of an object; ``end=None`` reads to the end.

    ``suffix`` (when set) asks for the last ``suffix`` bytes instead.
    """

    start: int = 0
    end: int | None = None
    suffix: int | None = None


def resolve_byte_range(byte_range: ByteRange | None, size: int) -> tuple[int, int]:
    """Offsets ``(start, stop)`` that ``byte_range`` selects in an object of ``size`` bytes.

    Ranges are clamped to the object like Python slices (reading past the end
    returns fewer bytes). Negative values, or ``end < start``, are invalid.
    """
    if byte_range is None:
        return 0, size
    if byte_range.suffix is not None:
        if byte_range.suffix < 0:
            raise InvalidInputError(f"byte range suffix must be >= 0, got {byte_range.suffix}")
        return max(size - byte_range.suffix, 0), size
    start, end = byte_range.start, byte_range.end
    if start < 0 or (end is not None and end < start):
        raise InvalidInputError(f"invalid byte range: start={start}, end={end}")
    stop = size if end is None else min(end, size)
    return min(start, stop), stop


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One listed object."""

    key: str
    size_bytes: int
    last_modified: datetime


class Storage(ABC):
    """Async object storage used by the repository engine.

    A backend that :meth:`new_in_memory` or :meth:`new_local_filesystem` builds names
    itself in its class statement (``class InMemoryStorage(Storage, backend="in_memory")``),
    so this module refers to no backend; the ``icechunk.storage`` package imports both.
    """

    #: Whether put_if_absent/put_if_version are real atomic conditional writes.
    supports_conditional_writes: bool = True

    #: The named backends: constructors by name (see the class docstring).
    _backends: ClassVar[dict[str, Callable[..., Storage]]] = {}

    def __init_subclass__(cls, *, backend: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if backend is not None:
            Storage._backends[backend] = cls

    @staticmethod
    def _backend(name: str) -> Callable[..., Storage]:
        try:
            return Storage._backends[name]
        except KeyError:
            raise RuntimeError(f"the {name!r} storage backend is not loaded") from None

    @abstractmethod
    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """Read an object (or a byte range of it).

        Raises ``icechunk.exceptions.ObjectNotFoundError`` if the key is missing.
        """

    @abstractmethod
    async def get_with_version(self, key: str) -> tuple[bytes, Version]:
        """Read a whole object and the version token to use with put_if_version."""

    @abstractmethod
    async def put(self, key: str, data: bytes) -> None:
        """Write an object unconditionally (readers never see a partial object)."""

    async def put_fresh(self, key: str, data: bytes | memoryview) -> None:
        """Write a new object under a fresh random name that nothing refers to yet.

        Nobody reads such an object before a commit points at it, so a backend may skip
        what :meth:`put` does to hide partial objects. ``data`` may be a view of the
        caller's buffer, valid until this returns. The default is :meth:`put` of a copy.
        """
        await self.put(key, bytes(data))

    @abstractmethod
    async def put_if_absent(self, key: str, data: bytes) -> Version:
        """Create an object only if the key is free.

        Raises ``icechunk.exceptions.PreconditionFailedError`` if it exists.
        """

    @abstractmethod
    async def put_if_version(self, key: str, data: bytes, version: Version) -> Version:
        """Replace an object only if its current version is ``version``.

        Returns the new version. Raises ``PreconditionFailedError`` if the object
        changed (or vanished) since ``version`` was read.
        """

    @abstractmethod
    async def exists(self, key: str) -> bool:
        """Whether the key holds an object."""

    @abstractmethod
    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (in no particular order)."""

    @abstractmethod
    async def delete(self, keys: Iterable[str]) -> None:
        """Delete objects; missing keys are ignored."""

    def default_settings(self) -> StorageSettings:
        """The settings this storage uses when the repository config sets none."""
        return StorageSettings()

    def with_settings(
        self, settings: StorageSettings | None = None, max_concurrent_requests: int | None = None
    ) -> Storage:
        """This storage with ``settings`` applied (``RepositoryConfig.storage``).

        Backends without tunable settings (memory, local disk) return themselves;
        network backends return a configured copy for the same location.
        """
        return self

    @classmethod
    def new_in_memory(cls) -> Storage:
        """An empty in-memory storage (same as ``ic.in_memory_storage()``)."""
        return Storage._backend("in_memory")()

    @classmethod
    def new_local_filesystem(cls, path: str) -> Storage:
        """A local directory (same as ``ic.local_filesystem_storage(path)``)."""
        return Storage._backend("local_filesystem")(path)

    def list_objects(
        self, settings: Any = None, prefix: str | None = None
    ) -> builtins.list[tuple[str, int]]:
        """(key, size) of every object, optionally under ``prefix``."""
        return [
            (info.key, info.size_bytes) for info in self.list_objects_metadata(settings, prefix)
        ]

    def list_objects_metadata(
        self, settings: Any = None, prefix: str | None = None
    ) -> builtins.list[ObjectInfo]:
        """Every object (key, size, last modified), optionally under ``prefix``."""
        from icechunk._util.sync import run

        async def collect() -> builtins.list[ObjectInfo]:
            return [info async for info in self.list(prefix or "")]

        return sorted(run(collect()), key=lambda info: info.key)

    async def list_keys(self, prefix: str = "") -> builtins.list[str]:
        """Keys of every object under ``prefix``, sorted."""
        return sorted([info.key async for info in self.list(prefix)])

    def describe(self) -> str:
        """A short human readable description, used in error messages and repr."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.describe()}>"
