"""Repository operations' records: the official ``icechunk.ops`` module's names."""

from icechunk._core.ops import FeatureFlag, RepoAvailability, RepoStatus, Update, UpdateType
from icechunk._maintenance.gc import GCSummary

__all__ = ["FeatureFlag", "GCSummary", "RepoAvailability", "RepoStatus", "Update", "UpdateType"]
