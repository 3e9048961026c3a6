"""Fetchers: read the bytes of virtual chunks and check their objects did not change.

One fetcher serves one container (and one bucket or host of it): :class:`LocalFetcher`
reads ``file://`` objects with positional reads; :class:`RemoteFetcher` reads S3, GCS
and HTTP objects through this library's storage backends, with conditional ranged
requests where the store supports them. A changed object raises
:class:`~icechunk.exceptions.VirtualChunkModifiedError` rather than returning bytes
that no longer belong to the chunk.
"""

from __future__ import annotations

import email.utils
import os
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import SplitResult, unquote

from icechunk._util.sync import run_blocking
from icechunk.exceptions import (
    IcechunkError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
    VirtualChunkFetchError,
    VirtualChunkModifiedError,
)
from icechunk.storage.credentials import GcsCredentials, S3Credentials
from icechunk.storage.local import LocalFileSystemStorage, pread
from icechunk.storage.object_store_config import (
    Gcs,
    Http,
    LocalFileSystem,
    ObjectStoreConfig,
    S3Like,
    Tigris,
)
from icechunk.storage.s3_options import TIGRIS_ENDPOINT

if TYPE_CHECKING:
    from icechunk.storage._remote import RemoteStorage

__all__ = ["Fetcher", "LocalFetcher", "RemoteFetcher", "local_etag", "make_fetcher"]


class Fetcher(Protocol):
    """Reads bytes ``[start, end)`` of the object at ``path`` (of URL ``location``)."""

    async def fetch(
        self,
        location: str,
        path: str,
        start: int,
        end: int,
        etag: str | None,
        last_modified: int | None,
    ) -> bytes: ...


def _strip_etag(etag: str) -> str:
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


def local_etag(st: os.stat_result) -> str:
    """The ETag the official package (object_store) gives a local file: inode-mtime_us-size."""
    return f"{st.st_ino:x}-{st.st_mtime_ns // 1000:x}-{st.st_size:x}"


def _modified_since(seconds: int, stamp: datetime | float | str | None) -> bool:
    if stamp is None:
        return False
    if isinstance(stamp, str):
        try:
            stamp = email.utils.parsedate_to_datetime(stamp)
        except (TypeError, ValueError):
            return False
    if isinstance(stamp, datetime):
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        stamp = stamp.timestamp()
    return stamp > seconds


def _modified_error(location: str, detail: str) -> VirtualChunkModifiedError:
    return VirtualChunkModifiedError(
        f"the object of virtual chunk {location!r} was modified after the reference was "
        f"written ({detail}); its bytes no longer belong to the chunk"
    )


def _check_remote(
    location: str,
    etag: str | None,
    last_modified: int | None,
    got_etag: str | None,
    got_modified: Any,
) -> None:
    if etag is not None and got_etag is not None and _strip_etag(got_etag) != _strip_etag(etag):
        raise _modified_error(location, f"ETag {got_etag}, expected {etag}")
    if last_modified and _modified_since(last_modified, got_modified):
        raise _modified_error(location, f"last modified {got_modified}")


def _check_length(location: str, data: bytes, start: int, end: int) -> bytes:
    if len(data) != end - start:
        raise VirtualChunkFetchError(
            f"virtual chunk {location!r}: expected bytes {start}..{end} ({end - start} bytes), "
            f"the object returned {len(data)}"
        )
    return data


class LocalFetcher:
    """``file://`` objects: positional reads in a worker thread."""

    async def fetch(
        self,
        location: str,
        path: str,
        start: int,
        end: int,
        etag: str | None,
        last_modified: int | None,
    ) -> bytes:
        if end - start <= LocalFileSystemStorage.inline_read_limit:  # as local storage does
            return self._read(location, path, start, end, etag, last_modified)
        return await run_blocking(self._read, location, path, start, end, etag, last_modified)

    @staticmethod
    def _read(
        location: str,
        path: str,
        start: int,
        end: int,
        etag: str | None,
        last_modified: int | None,
    ) -> bytes:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise VirtualChunkFetchError(
                f"virtual chunk object {location!r} not found (no file {path})"
            ) from None
        except OSError as err:
            raise VirtualChunkFetchError(
                f"cannot open virtual chunk object {location!r}: {err}"
            ) from None
        try:
            st = os.fstat(fd)
            if etag is not None and _strip_etag(etag) != local_etag(st):
                raise _modified_error(location, f"ETag {local_etag(st)}, expected {etag}")
            if last_modified and st.st_mtime > last_modified:
                raise _modified_error(
                    location,
                    f"last modified {datetime.fromtimestamp(st.st_mtime, UTC).isoformat()}",
                )
            data = pread(fd, start, end - start)
        except OSError as err:
            if isinstance(err, StorageError):
                raise
            raise VirtualChunkFetchError(
                f"cannot read virtual chunk object {location!r}: {err}"
            ) from None
        finally:
            os.close(fd)
        return _check_length(location, data, start, end)


def _translate(err: Exception, location: str) -> Exception:
    if isinstance(err, PreconditionFailedError):
        return _modified_error(location, "the store refused the conditional read")
    if isinstance(err, ObjectNotFoundError):
        return VirtualChunkFetchError(f"virtual chunk object {location!r} not found")
    return VirtualChunkFetchError(f"cannot read virtual chunk {location!r}: {err}")


class RemoteFetcher:
    """Objects of a bucket or host: one retried ranged read of ``storage``, then the checks."""

    def __init__(self, storage: RemoteStorage) -> None:
        self._storage = storage

    async def fetch(
        self,
        location: str,
        path: str,
        start: int,
        end: int,
        etag: str | None,
        last_modified: int | None,
    ) -> bytes:
        key = path[1:] if path.startswith("/") else path
        try:
            got = await self._storage.get_if_unchanged(
                key, start, end, etag, last_modified, action="read virtual chunk"
            )
        except IcechunkError as err:
            raise _translate(err, location) from None
        if got.refused:
            raise _modified_error(location, "the server refused the conditional read")
        _check_remote(location, etag, last_modified, got.etag, got.last_modified)
        return _check_length(location, got.data, start, end)


def make_fetcher(store: ObjectStoreConfig, cred: Any, parts: SplitResult) -> Fetcher:
    """The fetcher for objects of ``store`` at the bucket or host of ``parts``.

    ``cred`` is the container's :class:`Credentials` (checked to suit ``store``), or None
    for the defaults: the environment or anonymous access.
    """
    if isinstance(store, LocalFileSystem):
        return LocalFetcher()
    if isinstance(store, S3Like):
        from icechunk.storage.s3 import S3Storage

        options = store.options
        if isinstance(store, Tigris) and options.endpoint_url is None:
            options = replace(options, endpoint_url=TIGRIS_ENDPOINT)
        if cred is None:
            s3_cred = S3Credentials.Anonymous() if options.anonymous else S3Credentials.FromEnv()
        else:
            s3_cred = cred.credentials
        bucket = unquote(parts.netloc)
        return RemoteFetcher(
            S3Storage(bucket=bucket, prefix=None, options=options, credentials=s3_cred)
        )
    if isinstance(store, Http):
        from icechunk.storage.http import HttpStorage

        root_url = f"{parts.scheme}://{parts.netloc}"
        return RemoteFetcher(HttpStorage(root_url, store.opts, store.headers))
    if isinstance(store, Gcs):
        from icechunk.storage.gcs import GcsStorage

        gcs_cred = GcsCredentials.Anonymous() if cred is None else cred.credentials
        bucket = unquote(parts.netloc)
        return RemoteFetcher(
            GcsStorage(bucket=bucket, prefix=None, credentials=gcs_cred, config=dict(store.opts))
        )
    raise VirtualChunkFetchError(
        f"reading virtual chunks from {store!r} is not supported by this library"
    )
