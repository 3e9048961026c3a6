"""The maintenance methods of :class:`~icechunk.Repository`: snapshot expiration, garbage
collection, chunk storage statistics and manifest rewriting.

A façade like ``repository.py``: the algorithms live in ``_maintenance/`` (expiration, gc,
stats) and work on the repository's ``RepoState``.
"""

from __future__ import annotations

import warnings
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from icechunk._core.lifecycle import writable_session
from icechunk._core.state import RepoState
from icechunk._maintenance.expiration import datetime_to_us, expire_repo_info
from icechunk._maintenance.gc import (
    GCLimits,
    GCSummary,
    Progress,
    check_online,
    check_positive_int,
    check_writable,
    garbage_collect,
)
from icechunk._maintenance.stats import ChunkStorageStats, chunk_storage_stats
from icechunk._util.sync import run
from icechunk.exceptions import InvalidInputError, InvalidTypeError
from icechunk.format.repo_info import RepoInfo, Update

if TYPE_CHECKING:
    from icechunk.repository import Repository

_MIB = 1024 * 1024
_GIB = 1024 * _MIB

# What the official package records when no splitting is configured: one split per array.
_NO_SPLITTING = {
    "split_sizes": [
        [{"path_matches": {"regex": ".*"}}, [{"num_chunks": 2**32 - 1, "condition": "Any"}]]
    ]
}


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidTypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def _run_limits(max_decoded_manifest_mem_bytes: object, **limits: Any) -> GCLimits:
    """The bounds of a garbage collection or statistics run.

    ``max_decoded_manifest_mem_bytes`` is only validated (this library has no such bound).
    """
    check_positive_int(max_decoded_manifest_mem_bytes, "max_decoded_manifest_mem_bytes")
    return GCLimits(**limits)


class RepositoryMaintenanceMethods:
    """Expiration, garbage collection, storage statistics and manifest rewriting (a part of
    ``Repository``)."""

    _state: RepoState

    # -- expiration --------------------------------------------------------------

    def expire_snapshots(
        self,
        older_than: datetime,
        *,
        delete_expired_branches: bool = False,
        delete_expired_tags: bool = False,
    ) -> set[str]:
        """Expire snapshots flushed before ``older_than`` (a timezone-aware datetime).

        Only the repo info file changes: expired snapshots leave the history (kept snapshots
        whose parent expired are re-parented onto the root), and
        :meth:`garbage_collect` can then delete their objects. The root snapshot and the
        tip of ``main`` never expire; other branch and tag targets are kept unless
        ``delete_expired_branches`` / ``delete_expired_tags``, which delete those refs.
        Returns the ids of the snapshots removed from the history.
        """
        return run(
            self.expire_snapshots_async(
                older_than,
                delete_expired_branches=delete_expired_branches,
                delete_expired_tags=delete_expired_tags,
            )
        )

    async def expire_snapshots_async(
        self,
        older_than: datetime,
        *,
        delete_expired_branches: bool = False,
        delete_expired_tags: bool = False,
    ) -> set[str]:
        """Async version of :meth:`expire_snapshots`."""
        cutoff = datetime_to_us(older_than, "older_than")
        _check_bool(delete_expired_branches, "delete_expired_branches")
        _check_bool(delete_expired_tags, "delete_expired_tags")
        check_writable(self._state, "expire snapshots")
        released: set[str] = set()

        def mutate(info: RepoInfo) -> Update:
            ids, update = expire_repo_info(
                info,
                cutoff,
                delete_expired_branches=delete_expired_branches,
                delete_expired_tags=delete_expired_tags,
            )
            released.clear()  # a retry starts from the fresh repo info
            released.update(ids)
            return update

        await self._state.update_repo_info(mutate)
        return released

    # -- garbage collection ----------------------------------------------------------

    def garbage_collect(
        self,
        delete_object_older_than: datetime,
        *,
        dry_run: bool = False,
        max_snapshots_in_memory: int = 50,
        max_compressed_manifest_mem_bytes: int = 512 * _MIB,
        max_decoded_manifest_mem_bytes: int = 4 * _GIB,
        max_concurrent_manifest_fetches: int = 500,
        max_concurrent_deletes: int = 10,
        max_consecutive_delete_failures: int = 50,
        max_concurrent_listings: int | None = None,
    ) -> GCSummary:
        """Delete objects created before ``delete_object_older_than`` that no branch, tag
        or snapshot still in the repo info can reach.

        Safe while others write: newer objects are never deleted, so pick a cutoff older
        than any session still open. With ``dry_run`` nothing changes and the summary
        reports what would be deleted. A progress line is shown on stderr when it is a
        terminal.
        """
        return run(
            self.garbage_collect_async(
                delete_object_older_than,
                dry_run=dry_run,
                max_snapshots_in_memory=max_snapshots_in_memory,
                max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
                max_decoded_manifest_mem_bytes=max_decoded_manifest_mem_bytes,
                max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
                max_concurrent_deletes=max_concurrent_deletes,
                max_consecutive_delete_failures=max_consecutive_delete_failures,
                max_concurrent_listings=max_concurrent_listings,
            )
        )

    async def garbage_collect_async(
        self,
        delete_object_older_than: datetime,
        *,
        dry_run: bool = False,
        max_snapshots_in_memory: int = 50,
        max_compressed_manifest_mem_bytes: int = 512 * _MIB,
        max_decoded_manifest_mem_bytes: int = 4 * _GIB,
        max_concurrent_manifest_fetches: int = 500,
        max_concurrent_deletes: int = 10,
        max_consecutive_delete_failures: int = 50,
        max_concurrent_listings: int | None = None,
    ) -> GCSummary:
        """Async version of :meth:`garbage_collect`."""
        cutoff = datetime_to_us(delete_object_older_than, "delete_object_older_than")
        _check_bool(dry_run, "dry_run")
        limits = _run_limits(
            max_decoded_manifest_mem_bytes,
            max_snapshots_in_memory=max_snapshots_in_memory,
            max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
            max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
            max_concurrent_deletes=max_concurrent_deletes,
            max_consecutive_delete_failures=max_consecutive_delete_failures,
            max_concurrent_listings=max_concurrent_listings,
        )
        return await garbage_collect(
            self._state,
            cutoff,
            dry_run=dry_run,
            limits=limits,
            progress=Progress(),
        )

    # -- statistics ------------------------------------------------------------------

    def chunk_storage_stats(
        self,
        *,
        max_snapshots_in_memory: int = 50,
        max_compressed_manifest_mem_bytes: int = 512 * _MIB,
        max_decoded_manifest_mem_bytes: int = 4 * _GIB,
        max_concurrent_manifest_fetches: int = 500,
    ) -> ChunkStorageStats:
        """Bytes of native, virtual and inline chunks of every snapshot reachable from a
        branch or tag (each native chunk counted once)."""
        return run(
            self.chunk_storage_stats_async(
                max_snapshots_in_memory=max_snapshots_in_memory,
                max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
                max_decoded_manifest_mem_bytes=max_decoded_manifest_mem_bytes,
                max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
            )
        )

    async def chunk_storage_stats_async(
        self,
        *,
        max_snapshots_in_memory: int = 50,
        max_compressed_manifest_mem_bytes: int = 512 * _MIB,
        max_decoded_manifest_mem_bytes: int = 4 * _GIB,
        max_concurrent_manifest_fetches: int = 500,
    ) -> ChunkStorageStats:
        """Async version of :meth:`chunk_storage_stats`."""
        limits = _run_limits(
            max_decoded_manifest_mem_bytes,
            max_snapshots_in_memory=max_snapshots_in_memory,
            max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
            max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
        )
        return await chunk_storage_stats(self._state, limits)

    def total_chunks_storage(
        self,
        *,
        max_snapshots_in_memory: int = 50,
        max_compressed_manifest_mem_bytes: int = 512 * _MIB,
        max_decoded_manifest_mem_bytes: int = 4 * _GIB,
        max_concurrent_manifest_fetches: int = 500,
    ) -> int:
        """Bytes of native chunks only (deprecated: use ``chunk_storage_stats().native_bytes``)."""
        warnings.warn(
            "total_chunks_storage is deprecated in favour of chunk_storage_stats, which also "
            "counts inline and virtual chunks; use chunk_storage_stats(**same_kwargs)"
            ".native_bytes for the same number",
            DeprecationWarning,
            stacklevel=2,
        )
        stats = self.chunk_storage_stats(
            max_snapshots_in_memory=max_snapshots_in_memory,
            max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
            max_decoded_manifest_mem_bytes=max_decoded_manifest_mem_bytes,
            max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
        )
        return stats.native_bytes

    async def total_chunks_storage_async(
        self,
        *,
        max_snapshots_in_memory: int = 50,
        max_compressed_manifest_mem_bytes: int = 512 * _MIB,
        max_decoded_manifest_mem_bytes: int = 4 * _GIB,
        max_concurrent_manifest_fetches: int = 500,
    ) -> int:
        """Async version of :meth:`total_chunks_storage` (deprecated as well)."""
        warnings.warn(
            "total_chunks_storage_async is deprecated in favour of chunk_storage_stats_async, "
            "which also counts inline and virtual chunks; use "
            "(await chunk_storage_stats_async(**same_kwargs)).native_bytes for the same number",
            DeprecationWarning,
            stacklevel=2,
        )
        stats = await self.chunk_storage_stats_async(
            max_snapshots_in_memory=max_snapshots_in_memory,
            max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
            max_decoded_manifest_mem_bytes=max_decoded_manifest_mem_bytes,
            max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
        )
        return stats.native_bytes

    # -- manifests -------------------------------------------------------------------

    def rewrite_manifests(
        self,
        message: str,
        *,
        branch: str,
        metadata: dict[str, Any] | None = None,
        commit_method: str = "new_commit",
    ) -> str:
        """Rewrite the manifests of every array on ``branch`` following the current config
        (manifest splitting) and commit the result; returns the new snapshot id.

        The active splitting configuration is recorded in the commit metadata under
        ``__icechunk.splitting_config``. ``commit_method="amend"`` replaces the tip commit.
        """
        return run(
            self.rewrite_manifests_async(
                message, branch=branch, metadata=metadata, commit_method=commit_method
            )
        )

    async def rewrite_manifests_async(
        self,
        message: str,
        *,
        branch: str,
        metadata: dict[str, Any] | None = None,
        commit_method: str = "new_commit",
    ) -> str:
        """Async version of :meth:`rewrite_manifests`."""
        if not isinstance(message, str):
            raise InvalidTypeError(f"message must be a str, got {type(message).__name__}")
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidTypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        if commit_method not in ("new_commit", "amend"):
            raise InvalidInputError(
                f"commit_method must be 'new_commit' or 'amend', got {commit_method!r}"
            )
        check_writable(self._state, "rewrite manifests")
        check_online(await self._state.repo_info(), "rewrite manifests")
        session = await writable_session(
            cast("Repository", self), self._state, branch, rewrite_manifests=True
        )
        splitting = self._state.config.splitting
        properties = dict(metadata or {})
        internal = properties.get("__icechunk")
        internal = dict(internal) if isinstance(internal, dict) else {}
        internal["splitting_config"] = splitting.to_serde() if splitting else _NO_SPLITTING
        properties["__icechunk"] = internal
        if commit_method == "amend":
            return await session.amend_async(message, metadata=properties, allow_empty=True)
        return await session.commit_async(message, properties, allow_empty=True)
