"""Snapshot expiration (spec 2): drop old snapshots from the history in the repo info file.

Expiration only rewrites the repo info file ``repo``; it deletes no object. The snapshots it
releases become garbage that :func:`icechunk._maintenance.gc.garbage_collect` can delete later.

The rules follow the official package (``icechunk::ops::gc::expire_v2``):

- a snapshot is *expired* when it was flushed strictly before ``older_than`` and has a parent
  (a root, such as the initial snapshot, never expires);
- an expired snapshot is *released* (removed from the repo info) unless it is the target of a
  tag (when tags are not being deleted), of a branch (when branches are not being deleted) or
  of ``main`` (always kept);
- every kept snapshot whose parent is released is re-parented onto the root of its history,
  and the ids of all the ancestors it skips (with their own pruned ids spliced in, oldest
  first) are recorded in its ``pruned_ancestor_tx_logs``, so their transaction logs survive
  garbage collection;
- with ``delete_expired_tags`` / ``delete_expired_branches``, tags and branches (never
  ``main``) whose target expired are deleted; deleted tags join the deleted-tag list;
- the ops log gets one ``ExpirationRan`` entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from icechunk._core.history import ancestry
from icechunk.exceptions import InvalidTypeError
from icechunk.format.ids import INITIAL_SNAPSHOT_ID
from icechunk.format.repo_info import RepoInfo, SnapshotEntry, Update, UpdateKind

DEFAULT_BRANCH = "main"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime_to_us(value: object, name: str) -> int:
    """Microseconds since the epoch of an aware ``datetime`` (naive ones are rejected)."""
    if not isinstance(value, datetime):
        raise InvalidTypeError(f"{name} must be a datetime.datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidTypeError(
            f"{name} must be a timezone-aware datetime (e.g. datetime.now(UTC)); "
            "got a naive datetime"
        )
    return (value - _EPOCH) // timedelta(microseconds=1)


def reparented(
    info: RepoInfo, edited: SnapshotEntry, is_boundary: Callable[[SnapshotEntry], bool]
) -> SnapshotEntry:
    """``edited`` re-parented onto its nearest ancestor that satisfies ``is_boundary``.

    The initial snapshot is the new parent when no ancestor does. The skipped ancestors,
    each preceded by its own ``pruned_ancestor_tx_logs``, then ``edited``'s own pruned ids,
    form the new ``pruned_ancestor_tx_logs`` (oldest first).
    """
    new_parent = None
    collapsed: list[SnapshotEntry] = []
    walk = ancestry(info, edited.id)
    next(walk)
    for ancestor in walk:
        if is_boundary(ancestor):
            new_parent = ancestor.id
            break
        collapsed.append(ancestor)
    pruned: list[str] = []
    for ancestor in reversed(collapsed):
        pruned.extend(ancestor.pruned_ancestor_tx_logs or ())
        pruned.append(ancestor.id)
    pruned.extend(edited.pruned_ancestor_tx_logs or ())
    return replace(
        edited,
        parent_id=new_parent or INITIAL_SNAPSHOT_ID,
        pruned_ancestor_tx_logs=pruned,
    )


def expire_repo_info(
    info: RepoInfo,
    older_than_us: int,
    *,
    delete_expired_branches: bool = False,
    delete_expired_tags: bool = False,
) -> tuple[set[str], Update]:
    """Apply expiration to ``info`` in place; returns the released snapshot ids and the
    ops-log entry."""
    snapshots = info.snapshots
    tag_tips = set(info.tags.values())
    branch_tips = set(info.branches.values())
    main_tip = info.branches.get(DEFAULT_BRANCH)

    expired = {
        sid
        for sid, e in snapshots.items()
        if e.flushed_at < older_than_us and e.parent_id is not None
    }
    released = set()
    for sid in expired:
        protected_by_tag = not delete_expired_tags and sid in tag_tips
        protected_by_branch = (
            not delete_expired_branches or sid == main_tip
        ) and sid in branch_tips
        if not (protected_by_tag or protected_by_branch):
            released.add(sid)

    retained: dict[str, SnapshotEntry] = {}
    for sid, entry in snapshots.items():
        if sid in released:
            continue
        if entry.parent_id is not None and entry.parent_id in released:
            entry = reparented(info, entry, lambda a: a.parent_id is None)
        retained[sid] = entry

    if delete_expired_tags:
        for name in [name for name, sid in info.tags.items() if sid in expired]:
            del info.tags[name]
            info.deleted_tags.add(name)
    if delete_expired_branches:
        for name in [
            name for name, sid in info.branches.items() if sid in expired and name != DEFAULT_BRANCH
        ]:
            del info.branches[name]
    info.snapshots = retained
    return released, Update(UpdateKind.EXPIRATION_RAN, 0)
