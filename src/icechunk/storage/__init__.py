"""Storage backends and the factories that build them (``ic.local_filesystem_storage``...)."""

from __future__ import annotations

import os

from icechunk.storage.base import ByteRange, ObjectInfo, Storage, Version
from icechunk.storage.local import LocalFileSystemStorage
from icechunk.storage.memory import InMemoryStorage

__all__ = [
    "ByteRange",
    "InMemoryStorage",
    "LocalFileSystemStorage",
    "ObjectInfo",
    "Storage",
    "Version",
    "in_memory_storage",
    "local_filesystem_storage",
]


def in_memory_storage() -> Storage:
    """A new, empty storage that lives in this process only."""
    return InMemoryStorage()


def local_filesystem_storage(path: str | os.PathLike[str]) -> Storage:
    """Storage in the directory ``path`` (``~`` expanded, made absolute, created on first write).

    Unlike the official package's local backend, concurrent commits from several
    processes are safe here.
    """
    return LocalFileSystemStorage(path)
