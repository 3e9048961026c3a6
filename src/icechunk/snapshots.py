"""History types, importable as in the official package."""

from icechunk._core.graph import AncestryGraph
from icechunk.format.snapshot import ManifestFileInfo
from icechunk.repository import Diff, SnapshotInfo

__all__ = ["AncestryGraph", "Diff", "ManifestFileInfo", "SnapshotInfo"]
