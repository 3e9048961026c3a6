"""The small types of sessions: their mode, the kinds of chunk, and a node as seen."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from icechunk._core.zarr_meta import ArrayMeta, parse_array_meta
from icechunk.format.snapshot import NodeSnapshot


class SessionMode(enum.Enum):
    """What a session may do."""

    readonly = 0
    writable = 1
    rearrange = 2


class ChunkType(enum.Enum):
    """How a chunk is stored (``Session.chunk_type``)."""

    uninitialized = 0
    native = 1
    virtual = 2
    inline = 3


@dataclass(frozen=True, slots=True)
class Node:
    """A node as this session sees it."""

    id: str
    path: str
    user_data: bytes
    is_array: bool
    base: NodeSnapshot | None  # the same node in the base snapshot, if it existed there

    @property
    def meta(self) -> ArrayMeta:
        return parse_array_meta(self.user_data)
