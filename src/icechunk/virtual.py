"""Virtual chunk references: the official ``icechunk.virtual`` module's names."""

from icechunk._virtual.resolver import VirtualChunkContainer, VirtualChunkSpec

__all__ = ["VirtualChunkContainer", "VirtualChunkSpec"]
