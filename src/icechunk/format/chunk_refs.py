"""The three kinds of chunk reference a manifest holds, shared by its reader and writers.

A reference says where the bytes of one chunk are: in the manifest itself (inline), in
an object of the repository (native) or in an object elsewhere (virtual). See the
``ChunkRef`` table of the Icechunk spec, version 2, and ``schema/manifest.fbs``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ChunkCoords", "ChunkPayload", "InlineChunk", "NativeChunk", "VirtualChunk"]


@dataclass(frozen=True, slots=True)
class InlineChunk:
    """Chunk bytes stored in the manifest itself.

    Parameters
    ----------
    data
        The chunk exactly as the Zarr codecs encoded it.
    """

    data: bytes


@dataclass(frozen=True, slots=True)
class NativeChunk:
    """Bytes ``[offset, offset+length)`` of the object ``chunks/<chunk_id>``.

    Parameters
    ----------
    chunk_id
        The chunk object's 12-byte id, as Crockford base32 text.
    offset, length
        The byte range inside that object.
    """

    chunk_id: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class VirtualChunk:
    """A byte range of an object outside the repository.

    Parameters
    ----------
    location
        The object's URL (``s3://``, ``gs://``, ``file://``, ...).
    offset, length
        The byte range inside that object.
    etag
        If set, the object must still have this ETag.
    last_modified
        If set (seconds since the epoch), the object must not be newer.
    """

    location: str
    offset: int
    length: int
    etag: str | None = None
    last_modified: int | None = None  # seconds since the epoch


ChunkPayload = InlineChunk | NativeChunk | VirtualChunk
ChunkCoords = tuple[int, ...]
