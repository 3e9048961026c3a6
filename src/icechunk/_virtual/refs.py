"""Virtual references as users give them and as manifests store them.

A virtual reference is ``(location, offset, length, checksum)``: bytes
``[offset, offset+length)`` of the object at URL ``location``. :class:`VirtualChunkSpec`
is the user's form (``set_virtual_refs``); :func:`make_virtual_chunk` and
:func:`spec_to_ref` validate and normalise them into the manifest's ``VirtualChunk``.
The checksum is an ETag string or a last-modified time, stored as whole seconds.
"""

from __future__ import annotations

import functools
import posixpath
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

from icechunk.exceptions import InvalidVirtualRefError
from icechunk.format.manifest import VirtualChunk

__all__ = [
    "VirtualChunkSpec",
    "check_uint",
    "checksum_seconds",
    "make_virtual_chunk",
    "normalize_location",
    "spec_to_ref",
]

_MAX_U32 = 2**32 - 1
_MAX_U64 = 2**64 - 1


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
        self._offset = check_uint(offset, "offset")
        self._length = check_uint(length, "length")
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

    def ref_parts(self) -> tuple[tuple[int, ...], str, int, int, str | None, datetime | None]:
        """``(coords, location, offset, length, etag_checksum, last_updated_at_checksum)``.

        The parts of the reference in one call (``set_virtual_refs`` takes many specs);
        ``coords`` is the index as manifests key chunks, the rest as given.
        """
        return (
            tuple(self._index),
            self._location,
            self._offset,
            self._length,
            self._etag_checksum,
            self._last_updated_at_checksum,
        )

    def __repr__(self) -> str:
        return (
            f"VirtualChunkSpec(index={self._index}, location={self._location!r}, "
            f"offset={self._offset}, length={self._length})"
        )


def check_uint(value: Any, what: str) -> int:
    """``value`` as an offset or length: an int in ``[0, 2**64)``."""
    if type(value) is int and 0 <= value <= _MAX_U64:  # the common case, first
        return value
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise InvalidVirtualRefError(f"virtual chunk {what} must be an int, got {value!r}")
    number = int(value)
    if not 0 <= number <= _MAX_U64:
        raise InvalidVirtualRefError(f"virtual chunk {what} must be >= 0, got {number}")
    return number


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
        check_uint(offset, "offset"),
        check_uint(length, "length"),
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
    coords, location, offset, length, etag, modified = spec.ref_parts()
    chunk = VirtualChunk(
        normalize_location(location),
        offset,
        length,
        etag,
        None if etag is not None or modified is None else checksum_seconds(modified),
    )
    return coords, chunk
