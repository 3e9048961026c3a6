"""The base of the object-store backends (S3, GCS): a repository under a bucket's prefix."""

from __future__ import annotations

from typing import Any

from icechunk.exceptions import InvalidInputError
from icechunk.storage._remote import RemoteStorage

__all__ = ["BucketStorage", "range_header"]


def range_header(start: int, end: int | None, suffix: int | None) -> str | None:
    """The HTTP ``Range`` value for a validated range (``None``: the whole object)."""
    if suffix is not None:
        return f"bytes=-{suffix}"
    if end is not None:
        return f"bytes={start}-{end - 1}"
    if start:
        return f"bytes={start}-"
    return None


class BucketStorage(RemoteStorage):
    """Base of the object-store backends: a repository under a prefix of a bucket.

    Subclasses set ``_bucket``, ``_prefix`` and ``_key_base`` (what keys are stored
    under) and define ``_ident`` (what makes two storages the same location).
    """

    _bucket: str
    _prefix: str
    _key_base: str

    @staticmethod
    def _check_location(bucket: object, prefix: object) -> None:
        if not isinstance(bucket, str) or not bucket or "/" in bucket:
            raise InvalidInputError(f"bucket must be a bucket name, got {bucket!r}")
        if prefix is not None and not isinstance(prefix, str):
            raise InvalidInputError(f"prefix must be a str or None, got {prefix!r}")

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        return self._prefix

    def _ident(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BucketStorage):
            return NotImplemented
        return self._ident() == other._ident()

    def __hash__(self) -> int:
        return hash(self._ident())

    def _full(self, key: str) -> str:
        return self._key_base + key
