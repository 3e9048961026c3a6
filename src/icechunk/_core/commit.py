"""Recording a new snapshot in the repo info: a commit, a detached flush, an amend.

Each builds the repo-info edit for :meth:`RepoState.update_repo_info`, which re-runs it on
a fresh copy when another writer swapped the file first.
"""

from __future__ import annotations

from collections.abc import Awaitable

from icechunk._core.state import RepoInfoRead, RepoState
from icechunk.exceptions import ConflictError
from icechunk.format.repo_info import RepoInfo, SnapshotEntry, Update, UpdateKind
from icechunk.format.snapshot import Snapshot


class _AlreadyCommitted(Exception):
    """The repo info already holds this commit (a retried swap that had landed)."""


async def record_commit(
    state: RepoState,
    branch: str,
    parent: str,
    new_snapshot: Snapshot,
    current: RepoInfoRead,
    backup: Awaitable[str],
) -> None:
    """Move ``branch`` from ``parent`` to ``new_snapshot`` (ConflictError if it moved)."""

    def mutate(info: RepoInfo) -> Update:
        if new_snapshot.id in info.snapshots:
            # Our swap landed but its reply was lost, and the storage retried it.
            raise _AlreadyCommitted
        tip = info.branches.get(branch)
        if tip is None:
            raise ConflictError(
                f"branch {branch!r} was deleted while this session was open",
                expected_parent=parent,
                actual_parent=None,
            )
        if tip != parent:
            raise ConflictError(expected_parent=parent, actual_parent=tip)
        info.snapshots[new_snapshot.id] = SnapshotEntry(
            new_snapshot.id,
            parent,
            new_snapshot.flushed_at,
            new_snapshot.message,
            dict(new_snapshot.metadata),
        )
        info.branches[branch] = new_snapshot.id
        return Update(
            UpdateKind.NEW_COMMIT,
            new_snapshot.flushed_at,
            {"branch": branch, "new_snap_id": new_snapshot.id},
        )

    try:
        await state.update_repo_info(mutate, current=current, current_backup=backup)
    except _AlreadyCommitted:
        pass


async def record_detached(state: RepoState, parent: str, snapshot: Snapshot) -> None:
    """Add ``snapshot`` (a child of ``parent``) to the history without moving any branch."""

    def mutate(info: RepoInfo) -> Update:
        info.snapshots[snapshot.id] = SnapshotEntry(
            snapshot.id, parent, snapshot.flushed_at, snapshot.message, dict(snapshot.metadata)
        )
        return Update(
            UpdateKind.NEW_DETACHED_SNAPSHOT, snapshot.flushed_at, {"new_snap_id": snapshot.id}
        )

    await state.update_repo_info(mutate)


async def record_amend(
    state: RepoState, branch: str, previous: str, grandparent: str, snapshot: Snapshot
) -> None:
    """Replace ``branch``'s tip ``previous`` by ``snapshot`` (a child of ``grandparent``)."""

    def mutate(info: RepoInfo) -> Update:
        tip = info.branches.get(branch)
        if tip != previous:
            raise ConflictError(expected_parent=previous, actual_parent=tip)
        info.snapshots[snapshot.id] = SnapshotEntry(
            snapshot.id,
            grandparent,
            snapshot.flushed_at,
            snapshot.message,
            dict(snapshot.metadata),
        )
        info.branches[branch] = snapshot.id
        return Update(
            UpdateKind.COMMIT_AMENDED,
            snapshot.flushed_at,
            {"branch": branch, "previous_snap_id": previous, "new_snap_id": snapshot.id},
        )

    await state.update_repo_info(mutate)
