"""Read-only storage over plain HTTP(S): ``GET <base_url>/<key>`` with ``Range`` headers.

Any static file server that serves a repository directory works (for instance
a copy of a local-filesystem repository behind nginx, or a bucket's public
website endpoint). Writes raise :class:`~icechunk.exceptions.ReadOnlyError`;
listing is not part of HTTP, so operations that need it (e.g. opening a
spec-version-1 repository, garbage collection) are not available.

The version token of an object is its ``ETag``, else ``Last-Modified``, else
the SHA-256 of its content. A server that ignores ``Range`` and answers 200
with the whole object is handled by slicing locally.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlparse

from icechunk.exceptions import InvalidInputError, StorageError
from icechunk.storage._clients import ClientHandle
from icechunk.storage._remote import (
    FailureKind,
    RangeRead,
    RangeRequest,
    RemoteStorage,
)
from icechunk.storage.base import ByteRange, ObjectInfo, Version, resolve_byte_range
from icechunk.storage.settings import StorageSettings

_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|secs|seconds?|m|min|minutes?)?\s*$")


class HttpStatusError(Exception):
    """An HTTP response with an unexpected status (translated to an icechunk error)."""

    def __init__(self, status: int, url: str, reason: str = "") -> None:
        super().__init__(f"HTTP {status} {reason} for {url}".replace("  ", " "))
        self.status = status


def _seconds(name: str, value: str) -> float:
    """Durations as object_store's client options spell them: ``30``, ``30s``, ``500ms``, ``2m``."""
    match = _DURATION.match(str(value))
    if not match:
        raise InvalidInputError(f"http_storage option {name!r}: not a duration: {value!r}")
    number, unit = float(match.group(1)), (match.group(2) or "s")
    if unit == "ms":
        return number / 1000.0
    if unit.startswith("m"):
        return number * 60.0
    return number


class HttpStorage(RemoteStorage):
    """A repository served read-only at ``base_url``."""

    _read_only_reason = "HTTP storage is read-only"

    def __init__(
        self,
        base_url: str,
        opts: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        settings: StorageSettings | None = None,
        max_concurrent_requests: int | None = None,
    ) -> None:
        super().__init__(settings, max_concurrent_requests)
        if not isinstance(base_url, str):
            raise InvalidInputError(f"base_url must be a str, got {base_url!r}")
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidInputError(f"base_url must be an http(s) URL, got {base_url!r}")
        opts = {str(k).lower(): v for k, v in (opts or {}).items()}
        self._base_url = base_url.rstrip("/") + "/"
        self._headers = dict(headers or {})
        self._verify = str(opts.pop("allow_invalid_certificates", "false")).lower() != "true"
        self._timeout = _seconds("timeout", opts.pop("timeout")) if "timeout" in opts else None
        self._connect_timeout = (
            _seconds("connect_timeout", opts.pop("connect_timeout"))
            if "connect_timeout" in opts
            else None
        )
        user_agent = opts.pop("user_agent", None)
        if user_agent:
            self._headers.setdefault("User-Agent", user_agent)
        opts.pop("allow_http", None)  # the URL's scheme decides
        self._opts = opts  # other object_store client options have no equivalent here

    @property
    def base_url(self) -> str:
        return self._base_url

    def describe(self) -> str:
        return f"HTTP storage at {self._base_url}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HttpStorage):
            return NotImplemented
        return self._base_url == other._base_url

    def __hash__(self) -> int:
        return hash((HttpStorage, self._base_url))

    def _url(self, key: str) -> str:
        return self._base_url + quote(key, safe="/-_.~")

    # -- the client -------------------------------------------------------------------

    async def _open_client(self) -> ClientHandle:
        import aiohttp

        timeouts = self._settings.effective_timeouts
        read = timeouts.read_timeout_ms / 1000.0 if timeouts.read_timeout_ms else None
        connect = timeouts.connect_timeout_ms / 1000.0 if timeouts.connect_timeout_ms else None
        session = aiohttp.ClientSession(
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(
                total=self._timeout,
                sock_connect=connect or self._connect_timeout,
                sock_read=read,
            ),
            connector=aiohttp.TCPConnector(
                limit=min(self._max_concurrent_requests, 128), ssl=self._verify
            ),
            auto_decompress=False,  # byte ranges are of the stored bytes
        )

        def abandon() -> None:
            if session.connector is not None:
                session.connector._close()

        return ClientHandle(session, session.close, None, abandon)

    def _classify(self, err: Exception) -> FailureKind:
        import aiohttp

        if isinstance(err, HttpStatusError):
            if err.status == 404:
                return FailureKind.NOT_FOUND
            return FailureKind.TRANSIENT if err.status in _TRANSIENT_STATUS else FailureKind.OTHER
        if isinstance(err, aiohttp.ClientError | TimeoutError | ConnectionError):
            return FailureKind.TRANSIENT
        return FailureKind.OTHER

    # -- primitives -------------------------------------------------------------------

    async def _fetch(
        self, session: Any, key: str, range_header: str | None
    ) -> tuple[bytes, Any, int]:
        url = self._url(key)
        headers = {"Range": range_header} if range_header else None
        async with session.get(url, headers=headers) as response:
            if response.status == 416:
                return b"", response.headers, 416
            if response.status not in (200, 206):
                raise HttpStatusError(response.status, url, response.reason or "")
            return await response.read(), response.headers, response.status

    async def _read(
        self, client: Any, key: str, start: int, end: int | None, suffix: int | None
    ) -> bytes:
        header: str | None
        if suffix is not None:
            header = f"bytes=-{suffix}"
        elif end is not None:
            header = f"bytes={start}-{end - 1}"
        else:
            header = f"bytes={start}-" if start else None
        data, _, status = await self._fetch(client, key, header)
        if status == 200 and header is not None:  # the server ignored Range
            lo, hi = resolve_byte_range(ByteRange(start, end, suffix), len(data))
            return data[lo:hi]
        return data

    async def _read_if_unchanged(self, client: Any, want: RangeRequest) -> RangeRead:
        url = self._url(want.key)
        headers = {"Range": want.range_header}
        etag = want.etag
        if etag is not None:
            headers["If-Match"] = etag if etag.startswith(('"', "W/")) else f'"{etag}"'
        elif want.last_modified:
            headers["If-Unmodified-Since"] = email.utils.formatdate(want.last_modified, usegmt=True)
        async with client.get(url, headers=headers) as response:
            if response.status == 412:
                return RangeRead(b"", None, None, refused=True)
            if response.status not in (200, 206):
                raise HttpStatusError(response.status, url, response.reason or "")
            data = await response.read()
            if response.status == 200:  # the server ignored Range
                data = data[want.start : want.end]
            return RangeRead(
                data, response.headers.get("ETag"), response.headers.get("Last-Modified")
            )

    async def _read_versioned(self, client: Any, key: str) -> tuple[bytes, Version]:
        data, headers, _ = await self._fetch(client, key, None)
        return data, _version(headers, data)

    async def _head(self, client: Any, key: str) -> Version | None:
        url = self._url(key)
        async with client.head(url) as response:
            if response.status == 404:
                return None
            if response.status in (405, 501):  # no HEAD: ask for one byte instead
                try:
                    data, headers, _ = await self._fetch(client, key, "bytes=0-0")
                except HttpStatusError as err:
                    if err.status == 404:
                        return None
                    raise
                return _version(headers, data)
            if response.status != 200:
                raise HttpStatusError(response.status, url, response.reason or "")
            return _version(response.headers, None)

    async def _write(self, *args: Any, **kwargs: Any) -> Version:  # pragma: no cover
        raise StorageError(self._read_only_reason)

    async def _list_page(
        self, client: Any, prefix: str, token: Any
    ) -> tuple[list[ObjectInfo], Any]:
        raise StorageError(
            f"{self.describe()} cannot list objects: HTTP has no listing. Operations that "
            "need a listing (spec version 1 repositories, garbage collection, storage "
            "statistics) are not supported on http_storage"
        )

    async def _delete_batch(self, client: Any, keys: list[str]) -> None:  # pragma: no cover
        raise StorageError(self._read_only_reason)


def _version(headers: Mapping[str, str], data: bytes | None) -> Version:
    etag = headers.get("ETag")
    if etag:
        return etag
    modified = headers.get("Last-Modified")
    if modified:
        return modified
    if data is None:
        return headers.get("Content-Length", "")
    return hashlib.sha256(data).hexdigest()
