"""History types, importable as in the official package."""

from icechunk.format.snapshot import ManifestFileInfo
from icechunk.graph import AncestryGraph
from icechunk.repository import Diff, SnapshotInfo

__all__ = ["AncestryGraph", "Diff", "ManifestFileInfo", "SnapshotInfo"]
