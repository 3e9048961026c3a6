"""Chunk storage statistics over every snapshot reachable from a branch or tag.

As in the official package (``icechunk::ops::stats``): each manifest is read once; a native
chunk counts once per chunk object (its reference length), a virtual chunk once per
``(location, offset, length)``, and inline chunks count every time a distinct manifest holds
them (they are stored again in each).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from icechunk._maintenance.gc import GCLimits, pointed_snapshot_ids, visit_chunk_refs
from icechunk.format.manifest import ChunkPayload, InlineChunk, NativeChunk, VirtualChunk

if TYPE_CHECKING:
    from icechunk._core.state import RepoState


@dataclass(frozen=True)
class ChunkStorageStats:
    """Statistics about chunk storage across different chunk types."""

    native_bytes: int = 0
    virtual_bytes: int = 0
    inlined_bytes: int = 0

    def non_virtual_bytes(self) -> int:
        """Bytes stored in the repository itself: native plus inline chunks."""
        return self.native_bytes + self.inlined_bytes

    def total_bytes(self) -> int:
        """Bytes of all chunk types, virtual ones included."""
        return self.native_bytes + self.virtual_bytes + self.inlined_bytes

    def __add__(self, other: ChunkStorageStats) -> ChunkStorageStats:
        if not isinstance(other, ChunkStorageStats):
            return NotImplemented
        return ChunkStorageStats(
            self.native_bytes + other.native_bytes,
            self.virtual_bytes + other.virtual_bytes,
            self.inlined_bytes + other.inlined_bytes,
        )

    def __repr__(self) -> str:
        return (
            "<icechunk.stats.ChunkStorageStats>\n"
            f"native_bytes: {self.native_bytes}\n"
            f"virtual_bytes: {self.virtual_bytes}\n"
            f"inlined_bytes: {self.inlined_bytes}\n"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th>{name}</th><td>{getattr(self, name)}</td></tr>"
            for name in ("native_bytes", "virtual_bytes", "inlined_bytes")
        )
        return f"<table><caption>ChunkStorageStats</caption>{rows}</table>"


async def chunk_storage_stats(
    state: RepoState, limits: GCLimits | None = None
) -> ChunkStorageStats:
    """Bytes of native, virtual and inline chunks reachable from any branch or tag."""
    limits = limits or GCLimits()
    limits.check()
    info = await state.repo_info()
    native: set[str] = set()
    virtual: set[tuple[str, int, int]] = set()
    totals = {"native": 0, "virtual": 0, "inline": 0}

    def visit(payload: ChunkPayload) -> None:
        if isinstance(payload, NativeChunk):
            if payload.chunk_id not in native:
                native.add(payload.chunk_id)
                totals["native"] += payload.length
        elif isinstance(payload, InlineChunk):
            totals["inline"] += len(payload.data)
        elif isinstance(payload, VirtualChunk):
            key = (payload.location, payload.offset, payload.length)
            if key not in virtual:
                virtual.add(key)
                totals["virtual"] += payload.length

    await visit_chunk_refs(state.storage, pointed_snapshot_ids(info), limits, visit)
    return ChunkStorageStats(totals["native"], totals["virtual"], totals["inline"])
