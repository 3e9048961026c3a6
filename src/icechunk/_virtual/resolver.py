"""Virtual chunk references: chunks whose bytes live in objects outside the repository.

A virtual reference is ``(location, offset, length, checksum)``: bytes
``[offset, offset+length)`` of the object at URL ``location`` (``file://``,
``s3://``, ``gs://``, ``http(s)://``). Reading one needs

* a :class:`VirtualChunkContainer` in the repository config whose ``url_prefix``
  starts the location (the longest matching prefix wins), saying which object
  store serves it (``ObjectStoreConfig``), and
* authorisation: the container's ``url_prefix`` must be a key of the
  ``authorize_virtual_chunk_access`` dict given when opening the repository (its
  value: credentials, or None for the defaults).

The optional checksum (an ETag string, or a last-modified time stored as whole
seconds) is checked when reading: a changed object raises
:class:`~icechunk.exceptions.VirtualChunkModifiedError` instead of returning
bytes that no longer belong to the chunk.
"""

from __future__ import annotations

import email.utils
import functools
import os
import posixpath
import warnings
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import SplitResult, quote, unquote, urlsplit

from icechunk._util.sync import run_blocking
from icechunk.exceptions import (
    IcechunkError,
    InvalidCredentialsError,
    InvalidInputError,
    InvalidVirtualRefError,
    NoVirtualChunkContainerError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
    UnauthorizedVirtualChunkContainerError,
    VirtualChunkFetchError,
    VirtualChunkModifiedError,
)
from icechunk.format.manifest import VirtualChunk
from icechunk.storage.local import LocalFileSystemStorage, _pread
from icechunk.storage.object_store_config import (
    Azure,
    Credentials,
    Gcs,
    Http,
    InMemory,
    LocalFileSystem,
    ObjectStoreConfig,
    Tigris,
    _S3Like,
    wrap_credential,
)

VCC_SCHEME = "vcc://"
_TIGRIS_ENDPOINT = "https://t3.storage.dev"
_MAX_U32 = 2**32 - 1
_MAX_U64 = 2**64 - 1
_MAX_CACHED_TARGETS = 4096


# -- containers and specs -------------------------------------------------------------------


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


class VirtualChunkContainer:
    """Which object store serves virtual chunks whose location starts with ``url_prefix``.

    ``name`` (optional) lets locations be written relative to the container, as
    ``vcc://<name>/<path>``.
    """

    def __init__(self, url_prefix: str, store: ObjectStoreConfig, name: str | None = None) -> None:
        if not isinstance(url_prefix, str) or "://" not in url_prefix:
            raise InvalidInputError(
                f"url_prefix must be a URL prefix like 's3://bucket/' or 'file:///data/', "
                f"got {url_prefix!r}"
            )
        if not isinstance(store, ObjectStoreConfig):
            raise InvalidInputError(
                f"store must be an ObjectStoreConfig (ic.s3_store(), ic.local_filesystem_store(), "
                f"...), got {type(store).__name__}"
            )
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise InvalidInputError(
                "VirtualChunkContainer name must be non-empty and not contain '/'"
            )
        problem = container_problem(url_prefix, store)
        if problem is not None:
            raise InvalidInputError(problem)
        self.url_prefix = url_prefix
        self.store = store
        self.name = name

    def to_serde(self) -> dict[str, Any]:
        return {"name": self.name, "store": self.store.to_serde(), "url_prefix": self.url_prefix}

    @classmethod
    def from_serde(cls, value: Any) -> VirtualChunkContainer:
        """A persisted container, taken as it is (invalid ones are ignored when reading)."""
        if not isinstance(value, Mapping) or "url_prefix" not in value or "store" not in value:
            raise InvalidInputError(f"bad persisted virtual chunk container: {value!r}")
        cont = cls.__new__(cls)
        cont.url_prefix = str(value["url_prefix"])
        cont.store = ObjectStoreConfig.from_serde(value["store"])
        cont.name = value.get("name")
        return cont

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, VirtualChunkContainer)
            and other.url_prefix == self.url_prefix
            and other.store == self.store
            and other.name == self.name
        )

    def __hash__(self) -> int:
        return hash((self.url_prefix, self.name))

    def __repr__(self) -> str:
        return (
            f"VirtualChunkContainer(url_prefix={self.url_prefix!r}, store={self.store!r}, "
            f"name={self.name!r})"
        )


def container_problem(url_prefix: str, store: ObjectStoreConfig) -> str | None:
    """Why ``url_prefix`` cannot be served by ``store`` (None when it can)."""
    scheme = _scheme(url_prefix)
    if isinstance(store, InMemory) or scheme not in store.schemes:
        return f"invalid url prefix scheme ({scheme}) for this object store config: {store!r}"
    rest = url_prefix.split("://", 1)[1]
    if scheme == "file":
        path = urlsplit(url_prefix).path
        if len(path) < 2 and not urlsplit(url_prefix).netloc:
            return "url prefix for file:// containers must include a path"
        if any(seg in (".", "..") for seg in path.split("/")):
            return "url prefix for file:// containers must be a canonical url"
    elif not rest.split("/", 1)[0]:
        return f"url prefix for {scheme}:// containers must include a host or bucket"
    return None


class VirtualChunkSpec:
    """One virtual reference for ``set_virtual_refs``: chunk ``index`` -> bytes of ``location``."""

    __slots__ = (
        "_index",
        "_location",
        "_offset",
        "_length",
        "_etag_checksum",
        "_last_updated_at_checksum",
    )

    def __init__(
        self,
        index: list[int],
        location: str,
        offset: int,
        length: int,
        etag_checksum: str | None = None,
        last_updated_at_checksum: datetime | None = None,
    ) -> None:
        try:
            self._index = list(map(int, index))
        except (TypeError, ValueError):
            raise InvalidVirtualRefError(
                f"VirtualChunkSpec index must be a list of ints, got {index!r}"
            ) from None
        if not isinstance(location, str):
            raise InvalidVirtualRefError(
                f"VirtualChunkSpec location must be a str, got {location!r}"
            )
        self._location = location
        self._offset = _check_uint(offset, "offset")
        self._length = _check_uint(length, "length")
        if etag_checksum is not None and not isinstance(etag_checksum, str):
            raise InvalidVirtualRefError(f"etag_checksum must be a str, got {etag_checksum!r}")
        if last_updated_at_checksum is not None and not isinstance(
            last_updated_at_checksum, datetime
        ):
            raise InvalidVirtualRefError(
                f"last_updated_at_checksum must be a datetime, got {last_updated_at_checksum!r}"
            )
        self._etag_checksum = etag_checksum
        self._last_updated_at_checksum = last_updated_at_checksum

    @property
    def index(self) -> list[int]:
        return list(self._index)

    @property
    def location(self) -> str:
        return self._location

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def length(self) -> int:
        return self._length

    @property
    def etag_checksum(self) -> str | None:
        return self._etag_checksum

    @property
    def last_updated_at_checksum(self) -> datetime | None:
        return self._last_updated_at_checksum

    def __repr__(self) -> str:
        return (
            f"VirtualChunkSpec(index={self._index}, location={self._location!r}, "
            f"offset={self._offset}, length={self._length})"
        )


def _check_uint(value: Any, what: str) -> int:
    if type(value) is int and 0 <= value <= _MAX_U64:  # the common case, first
        return value
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise InvalidVirtualRefError(f"virtual chunk {what} must be an int, got {value!r}")
    value = int(value)
    if not 0 <= value <= _MAX_U64:
        raise InvalidVirtualRefError(f"virtual chunk {what} must be >= 0, got {value}")
    return value


def checksum_seconds(when: datetime) -> int:
    """A last-modified checksum as stored: whole seconds since the epoch (u32)."""
    seconds = int(when.timestamp())
    if not 0 < seconds <= _MAX_U32:
        raise InvalidVirtualRefError(f"last-modified checksum out of range: {when!r}")
    return seconds


def normalize_location(location: str) -> str:
    """``location`` as stored: scheme lowercased; ``file://`` paths resolved and %-encoded."""
    if not isinstance(location, str):
        raise InvalidVirtualRefError(f"virtual chunk location must be a str, got {location!r}")
    return _normalize_location(location)


@functools.lru_cache(maxsize=4096)  # a manifest's refs tend to share a few files
def _normalize_location(location: str) -> str:
    if "://" not in location:
        raise InvalidVirtualRefError(
            f"cannot parse virtual chunk location {location!r}: it must be an absolute URL "
            "such as 'file:///data/file.nc' or 's3://bucket/file.nc'"
        )
    scheme, rest = location.split("://", 1)
    scheme = scheme.lower()
    if not scheme or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        raise InvalidVirtualRefError(f"cannot parse virtual chunk location {location!r}")
    if scheme != "file":
        authority_len = min(
            (i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0),
            default=len(rest),
        )
        if authority_len == 0:
            raise InvalidVirtualRefError(
                f"virtual chunk location {location!r} names no bucket or host"
            )
        return f"{scheme}://{rest}"
    host, _, path = rest.partition("/")
    path = "/" + path
    trailing = path.endswith("/") and len(path) > 1
    resolved = posixpath.normpath(unquote(path)).replace("//", "/")
    if resolved.startswith("//"):
        resolved = resolved[1:]
    if trailing and not resolved.endswith("/"):
        resolved += "/"
    return f"file://{host}{quote(resolved, safe="/:@!$&'()*+,;=-._~")}"


def make_virtual_chunk(
    location: str, offset: int, length: int, checksum: str | datetime | None
) -> VirtualChunk:
    """A validated manifest payload for a virtual reference."""
    etag: str | None = None
    modified: int | None = None
    if isinstance(checksum, str):
        etag = checksum
    elif isinstance(checksum, datetime):
        modified = checksum_seconds(checksum)
    elif checksum is not None:
        raise InvalidVirtualRefError(
            f"checksum must be an ETag string or a last-modified datetime, got {checksum!r}"
        )
    return VirtualChunk(
        normalize_location(location),
        _check_uint(offset, "offset"),
        _check_uint(length, "length"),
        etag,
        modified,
    )


def spec_to_ref(spec: VirtualChunkSpec) -> tuple[tuple[int, ...], VirtualChunk]:
    """The chunk coordinates and manifest payload of a spec."""
    if not isinstance(spec, VirtualChunkSpec):
        raise InvalidVirtualRefError(
            f"set_virtual_refs takes ic.VirtualChunkSpec objects, got {type(spec).__name__}"
        )
    # the spec checked its offset, length and checksum types when it was made
    etag = spec._etag_checksum  # noqa: SLF001
    modified = spec._last_updated_at_checksum  # noqa: SLF001
    chunk = VirtualChunk(
        normalize_location(spec._location),  # noqa: SLF001
        spec._offset,  # noqa: SLF001
        spec._length,  # noqa: SLF001
        etag,
        None if etag is not None or modified is None else checksum_seconds(modified),
    )
    return tuple(spec._index), chunk  # noqa: SLF001


# -- the resolver ---------------------------------------------------------------------------


def _with_slash(prefix: str) -> str:
    return prefix if prefix.endswith("/") else prefix + "/"


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


class VirtualChunkResolver:
    """Finds the container of a virtual location and fetches its bytes (fetchers are cached)."""

    def __init__(
        self,
        containers: Iterable[VirtualChunkContainer],
        credentials: Mapping[str, Any] | None = None,
    ) -> None:
        valid = []
        for cont in containers:
            prefix = _with_slash(cont.url_prefix)
            problem = (
                "its store is not an object store config"
                if not isinstance(cont.store, ObjectStoreConfig)
                else container_problem(prefix, cont.store)
            )
            if problem is not None:
                warnings.warn(
                    f"ignoring invalid virtual chunk container {cont.url_prefix!r}: {problem}",
                    stacklevel=3,
                )
                continue
            valid.append((prefix, cont))
        valid.sort(key=lambda pc: -len(pc[0]))
        self._containers = valid
        self._credentials = {
            _with_slash(str(k)): wrap_credential(v) for k, v in (credentials or {}).items()
        }
        self._fetchers: dict[tuple[str, str], Any] = {}
        #: stored location -> (absolute location, fetcher, object path): chunks share objects
        self._targets: dict[str, tuple[str, Any, str]] = {}

    def matching_container(self, location: str) -> tuple[str, VirtualChunkContainer] | None:
        """(normalised prefix, container) serving ``location``, or None."""
        if location.startswith(VCC_SCHEME):
            name = location[len(VCC_SCHEME) :].split("/", 1)[0]
            for prefix, cont in self._containers:
                if cont.name == name:
                    return prefix, cont
            return None
        decoded = unquote(location)
        scheme = _scheme(decoded)
        lowered = scheme + decoded[len(scheme) :]
        for prefix, cont in self._containers:
            if lowered.startswith(prefix) or decoded.startswith(prefix):
                return prefix, cont
        return None

    def expand(self, location: str) -> str:
        """An absolute URL for ``location`` (``vcc://name/path`` -> ``<url_prefix>path``)."""
        if not location.startswith(VCC_SCHEME):
            return location
        rest = location[len(VCC_SCHEME) :]
        name, sep, path = rest.partition("/")
        for prefix, cont in self._containers:
            if cont.name == name and sep:
                return prefix + path
        raise NoVirtualChunkContainerError(
            f"no virtual chunk container named {name!r} for location {location!r}"
        )

    def validate_location(self, location: str) -> None:
        """Raise NoVirtualChunkContainerError unless some container serves ``location``."""
        if self.matching_container(location) is None:
            raise NoVirtualChunkContainerError(
                f"no virtual chunk container for location {location!r}: add one with "
                "config.set_virtual_chunk_container(ic.VirtualChunkContainer(url_prefix, store))"
            )

    def check_credentials(self, containers: Mapping[str, VirtualChunkContainer]) -> None:
        """Fail early on credentials that cannot work with their container's store."""
        for prefix, cred in self._credentials.items():
            cont = containers.get(prefix) or containers.get(prefix.rstrip("/"))
            if cont is not None:
                _check_credential_kind(prefix, cont.store, cred)

    async def fetch(self, chunk: VirtualChunk, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the virtual chunk (relative to the chunk itself)."""
        if end <= start:
            return b""
        target = self._targets.get(chunk.location)
        if target is None:
            target = self._target(chunk.location)
            if len(self._targets) >= _MAX_CACHED_TARGETS:
                self._targets.clear()
            self._targets[chunk.location] = target
        location, fetcher, key = target
        return await fetcher.fetch(
            location,
            key,
            chunk.offset + start,
            chunk.offset + end,
            chunk.etag,
            chunk.last_modified,
        )

    def _target(self, stored_location: str) -> tuple[str, Any, str]:
        """(absolute location, its fetcher, the object's path) of a stored location."""
        location = self.expand(stored_location)
        found = self.matching_container(location)
        if found is None:
            raise NoVirtualChunkContainerError(
                f"no virtual chunk container for location {location!r}; the repository config "
                "must have a VirtualChunkContainer whose url_prefix matches it"
            )
        prefix, cont = found
        parts = urlsplit(location)
        return location, self._fetcher_for(prefix, cont, location, parts), unquote(parts.path)

    def _fetcher_for(
        self, prefix: str, cont: VirtualChunkContainer, location: str, parts: SplitResult
    ) -> Any:
        if prefix not in self._credentials:
            raise UnauthorizedVirtualChunkContainerError(
                f"virtual chunk container {prefix!r} (serving {location!r}) is not authorized: "
                f"open the repository with authorize_virtual_chunk_access={{{prefix!r}: ...}}"
            )
        cred = self._credentials[prefix]
        store = cont.store
        _check_credential_kind(prefix, store, cred)
        # one fetcher per container, and per bucket or host for remote stores
        authority = "" if isinstance(store, LocalFileSystem) else parts.netloc
        cache_key = (prefix, authority)
        fetcher = self._fetchers.get(cache_key)
        if fetcher is None:
            fetcher = _make_fetcher(store, cred, parts)
            self._fetchers[cache_key] = fetcher
        return fetcher

    def __getstate__(self) -> dict[str, Any]:
        return {"containers": self._containers, "credentials": self._credentials}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._containers = state["containers"]
        self._credentials = state["credentials"]
        self._fetchers = {}
        self._targets = {}


def _check_credential_kind(prefix: str, store: ObjectStoreConfig, cred: Any) -> None:
    ok: bool
    if cred is None:
        ok = not isinstance(store, Azure)
    elif isinstance(store, LocalFileSystem):
        ok = isinstance(cred, Credentials.LocalFileSystemAccess)
    elif isinstance(store, Http):
        ok = isinstance(cred, Credentials.HttpAccess)
    elif isinstance(store, _S3Like):
        ok = isinstance(cred, Credentials.S3)
    elif isinstance(store, Gcs):
        ok = isinstance(cred, Credentials.Gcs)
    elif isinstance(store, Azure):
        ok = isinstance(cred, Credentials.Azure)
    else:
        ok = False
    if not ok:
        raise InvalidCredentialsError(
            f"credentials {cred!r} do not suit virtual chunk container {prefix!r} (store {store!r})"
        )


def _make_fetcher(store: ObjectStoreConfig, cred: Any, parts: Any) -> Any:
    if isinstance(store, LocalFileSystem):
        return _LocalFetcher()
    if isinstance(store, _S3Like):
        from icechunk.storage.credentials import S3Credentials

        options = store.options
        if isinstance(store, Tigris) and options.endpoint_url is None:
            from dataclasses import replace

            options = replace(options, endpoint_url=_TIGRIS_ENDPOINT)
        if cred is None:
            s3_cred = S3Credentials.Anonymous() if options.anonymous else S3Credentials.FromEnv()
        else:
            s3_cred = cred.credentials
        return _S3Fetcher(unquote(parts.netloc), options, s3_cred)
    if isinstance(store, Http):
        return _HttpFetcher(f"{parts.scheme}://{parts.netloc}", store.opts, store.headers)
    if isinstance(store, Gcs):
        from icechunk.storage.credentials import GcsCredentials

        gcs_cred = GcsCredentials.Anonymous() if cred is None else cred.credentials
        return _GcsFetcher(unquote(parts.netloc), store.opts, gcs_cred)
    raise VirtualChunkFetchError(
        f"reading virtual chunks from {store!r} is not supported by this library"
    )


# -- fetchers -------------------------------------------------------------------------------


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


class _LocalFetcher:
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
            data = _pread(fd, start, end - start)
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


class _RangeRequest(NamedTuple):
    """Bytes ``[start, end)`` of ``key``, if it still has ``etag`` / is not modified since
    ``last_modified`` (seconds)."""

    key: str
    start: int
    end: int
    etag: str | None
    last_modified: int | None

    @property
    def range_header(self) -> str:
        return f"bytes={self.start}-{self.end - 1}"


class _RangeRead(NamedTuple):
    """What one ranged read of a remote object returned."""

    data: bytes
    etag: str | None
    last_modified: Any
    refused: bool = False  # the server answered 412 to the conditional read


class _RemoteFetcher:
    """Shared steps of the object-store fetchers: one retried ranged read, then the checks.

    Subclasses set ``_storage`` (a remote storage backend with ``_retrying``) and
    implement :meth:`_read_range` for their client.
    """

    _storage: Any

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
        want = _RangeRequest(key, start, end, etag, last_modified)

        async def read(client: Any) -> _RangeRead:
            return await self._read_range(client, want)

        try:
            got = await self._storage._retrying("read virtual chunk", key, read)  # noqa: SLF001
        except IcechunkError as err:
            raise _translate(err, location) from None
        if got.refused:
            raise _modified_error(location, "the server refused the conditional read")
        _check_remote(location, etag, last_modified, got.etag, got.last_modified)
        return _check_length(location, got.data, start, end)

    async def _read_range(self, client: Any, want: _RangeRequest) -> _RangeRead:
        """The bytes ``want`` asks for, read with ``client`` (a client of ``_storage``)."""
        raise NotImplementedError


class _S3Fetcher(_RemoteFetcher):
    """``s3://bucket/key`` objects through this library's S3 backend (one client per bucket)."""

    def __init__(self, bucket: str, options: Any, credentials: Any) -> None:
        from icechunk.storage.s3 import S3Storage

        self._storage = S3Storage(
            bucket=bucket, prefix=None, options=options, credentials=credentials
        )

    async def _read_range(self, client: Any, want: _RangeRequest) -> _RangeRead:
        params = self._storage._params(want.key)  # noqa: SLF001
        params["Range"] = want.range_header
        etag = want.etag
        if etag is not None:
            params["IfMatch"] = etag if etag.startswith('"') else f'"{etag}"'
        elif want.last_modified:
            params["IfUnmodifiedSince"] = datetime.fromtimestamp(want.last_modified, UTC)
        response = await client.get_object(**params)
        async with response["Body"] as body:
            data = await body.read()
        return _RangeRead(data, response.get("ETag"), response.get("LastModified"))


class _HttpFetcher(_RemoteFetcher):
    """``http(s)://host/path`` objects with ``Range`` requests (one client per host)."""

    def __init__(self, root_url: str, opts: dict[str, str], headers: dict[str, str]) -> None:
        from icechunk.storage.http import HttpStorage

        self._storage = HttpStorage(root_url, opts, headers)

    async def _read_range(self, client: Any, want: _RangeRequest) -> _RangeRead:
        from icechunk.storage.http import HttpStatusError

        url = self._storage._url(want.key)  # noqa: SLF001
        headers = {"Range": want.range_header}
        etag = want.etag
        if etag is not None:
            headers["If-Match"] = etag if etag.startswith(('"', "W/")) else f'"{etag}"'
        elif want.last_modified:
            headers["If-Unmodified-Since"] = email.utils.formatdate(want.last_modified, usegmt=True)
        async with client.get(url, headers=headers) as response:
            if response.status == 412:
                return _RangeRead(b"", None, None, refused=True)
            if response.status not in (200, 206):
                raise HttpStatusError(response.status, url, response.reason or "")
            data = await response.read()
            if response.status == 200:  # the server ignored Range
                data = data[want.start : want.end]
            return _RangeRead(
                data, response.headers.get("ETag"), response.headers.get("Last-Modified")
            )


class _GcsFetcher(_RemoteFetcher):
    """``gs://bucket/key`` objects through this library's GCS backend (one client per bucket)."""

    def __init__(self, bucket: str, opts: dict[str, str], credentials: Any) -> None:
        from icechunk.storage.gcs import GcsStorage

        self._bucket = bucket
        self._storage = GcsStorage(
            bucket=bucket, prefix=None, credentials=credentials, config=dict(opts)
        )

    async def _read_range(self, client: Any, want: _RangeRequest) -> _RangeRead:
        headers = {"Range": want.range_header}
        response_headers, data = await client.media(self._bucket, want.key, headers)
        return _RangeRead(data, response_headers.get("ETag"), response_headers.get("Last-Modified"))


async def session_virtual_locations(session: Any) -> list[str]:
    """The location of every virtual chunk a session sees, array by array."""
    out: list[str] = []
    nodes = sorted((n for n in session.iter_nodes() if n.is_array), key=lambda n: n.path)
    for node in nodes:
        refs = await session._chunk_refs(node)  # noqa: SLF001
        out.extend(p.location for p in refs.values() if isinstance(p, VirtualChunk))
    return out


def warn_none_credentials(authorize: Mapping[str, Any] | None) -> None:
    """DeprecationWarning for None values of ``authorize_virtual_chunk_access`` (as official)."""
    if not isinstance(authorize, Mapping):
        return
    hints = {
        "file": "ic.credentials.LocalFileSystemAccess",
        "http": "ic.credentials.HttpAccess",
        "https": "ic.credentials.HttpAccess",
        "s3": "ic.containers_credentials({...: ic.s3_credentials(...)})",
        "gs": "ic.containers_credentials({...: ic.gcs_credentials(...)})",
        "gcs": "ic.containers_credentials({...: ic.gcs_credentials(...)})",
    }
    for prefix, cred in authorize.items():
        if cred is None:
            hint = hints.get(_scheme(str(prefix)), "explicit credentials")
            warnings.warn(
                f"Passing `None` in `authorize_virtual_chunk_access` for container `{prefix}` "
                f"is deprecated: pass explicit credentials or a no-auth sentinel instead "
                f"(for example {hint}). None reads credentials from the environment or uses "
                "anonymous access.",
                DeprecationWarning,
                stacklevel=5,
            )


def resolver_for(config: Any, authorize: Mapping[str, Any] | None) -> VirtualChunkResolver:
    """The resolver of a repository: its config's containers, the authorised prefixes."""
    if authorize is not None and not isinstance(authorize, Mapping):
        raise InvalidInputError(
            "authorize_virtual_chunk_access must be a dict of url_prefix -> credentials, "
            f"got {type(authorize).__name__}"
        )
    containers = dict(getattr(config, "virtual_chunk_containers", None) or {})
    resolver = VirtualChunkResolver(containers.values(), authorize)
    resolver.check_credentials(containers)
    return resolver


__all__ = [
    "VirtualChunkContainer",
    "VirtualChunkResolver",
    "VirtualChunkSpec",
    "make_virtual_chunk",
    "normalize_location",
    "resolver_for",
    "session_virtual_locations",
]
