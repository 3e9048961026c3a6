"""Resolving virtual chunks: from a stored location to its container, fetcher and bytes.

Reading a virtual chunk needs

* a :class:`~icechunk._virtual.containers.VirtualChunkContainer` in the repository
  config whose ``url_prefix`` starts the location (the longest matching prefix wins),
  saying which object store serves it, and
* authorisation: the container's ``url_prefix`` must be a key of the
  ``authorize_virtual_chunk_access`` dict given when opening the repository (its
  value: credentials, or None for the defaults).

The optional checksum of a reference is checked when reading (``fetchers``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from icechunk._virtual.containers import VirtualChunkContainer, container_problem, scheme_of
from icechunk._virtual.fetchers import Fetcher, make_fetcher
from icechunk.exceptions import (
    InvalidCredentialsError,
    InvalidInputError,
    NoVirtualChunkContainerError,
    UnauthorizedVirtualChunkContainerError,
)
from icechunk.format.manifest import VirtualChunk
from icechunk.storage.object_store_config import (
    Azure,
    Credentials,
    Gcs,
    Http,
    LocalFileSystem,
    ObjectStoreConfig,
    S3Like,
    wrap_credential,
)

__all__ = [
    "VirtualChunkResolver",
    "resolver_for",
    "warn_none_credentials",
]

VCC_SCHEME = "vcc://"
_MAX_CACHED_TARGETS = 4096


def _with_slash(prefix: str) -> str:
    return prefix if prefix.endswith("/") else prefix + "/"


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
        self._fetchers: dict[tuple[str, str], Fetcher] = {}
        #: stored location -> (absolute location, fetcher, object path): chunks share objects
        self._targets: dict[str, tuple[str, Fetcher, str]] = {}

    def matching_container(self, location: str) -> tuple[str, VirtualChunkContainer] | None:
        """(normalised prefix, container) serving ``location``, or None."""
        if location.startswith(VCC_SCHEME):
            name = location[len(VCC_SCHEME) :].split("/", 1)[0]
            for prefix, cont in self._containers:
                if cont.name == name:
                    return prefix, cont
            return None
        decoded = unquote(location)
        scheme = scheme_of(decoded)
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

    def _target(self, stored_location: str) -> tuple[str, Fetcher, str]:
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
    ) -> Fetcher:
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
            fetcher = make_fetcher(store, cred, parts)
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
    elif isinstance(store, S3Like):
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
            hint = hints.get(scheme_of(str(prefix)), "explicit credentials")
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
