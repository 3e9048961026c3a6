"""The uncommitted changes of a writable session."""

from __future__ import annotations

from dataclasses import dataclass, field

from icechunk.format.manifest import ChunkCoords, ChunkPayload
from icechunk.format.transaction_log import MoveOperation


@dataclass(frozen=True, slots=True)
class NodeChange:
    """A node created in this session, or one whose zarr.json changed."""

    id: str
    path: str
    user_data: bytes
    is_array: bool
    is_new: bool


@dataclass
class ChangeSet:
    #: created or updated nodes, by path
    nodes: dict[str, NodeChange] = field(default_factory=dict)
    #: nodes of the base snapshot deleted in this session: path -> node id
    deleted: dict[str, str] = field(default_factory=dict)
    #: chunk writes per node id; None marks a deleted chunk
    chunks: dict[str, dict[ChunkCoords, ChunkPayload | None]] = field(default_factory=dict)
    #: smallest chunk grid an existing array had during the session (resizes)
    min_grid: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: node moves of a rearrange session, in the order they were made
    moves: list[MoveOperation] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.nodes or self.deleted or self.moves or any(self.chunks.values()))

    def min_grid_excludes(self, node_id: str, coords: ChunkCoords) -> bool:
        """Whether a shrink earlier in the session cut off the chunk at ``coords``."""
        grid = self.min_grid.get(node_id)
        return grid is not None and any(c >= g for c, g in zip(coords, grid))

    def drop_node(self, node_id: str) -> None:
        self.chunks.pop(node_id, None)
        self.min_grid.pop(node_id, None)

    def copy(self) -> ChangeSet:
        """An independent copy (payloads and node changes are immutable, so shared)."""
        return ChangeSet(
            nodes=dict(self.nodes),
            deleted=dict(self.deleted),
            chunks={node_id: dict(chunks) for node_id, chunks in self.chunks.items()},
            min_grid=dict(self.min_grid),
            moves=list(self.moves),
        )
