"""The zarr store of a session: the official ``icechunk.store`` module's names."""

from icechunk._core.store import IcechunkStore

__all__ = ["IcechunkStore"]
