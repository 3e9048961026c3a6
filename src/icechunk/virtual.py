"""Virtual chunk references: the official ``icechunk.virtual`` module's names."""

from icechunk._virtual.containers import VirtualChunkContainer
from icechunk._virtual.refs import VirtualChunkSpec

__all__ = ["VirtualChunkContainer", "VirtualChunkSpec"]
