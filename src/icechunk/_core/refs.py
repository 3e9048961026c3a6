"""Branches and tags: name checks, lookups and the repo-info edits that move them."""

from __future__ import annotations

from icechunk._core.ops import flag_enabled
from icechunk._core.state import RepoState
from icechunk.exceptions import (
    AlreadyExistsError,
    BranchNotFoundError,
    ConflictError,
    InvalidInputError,
    SnapshotNotFoundError,
    TagNotFoundError,
)
from icechunk.format.ids import normalize_id12
from icechunk.format.repo_info import RepoInfo, Update, UpdateKind


def check_ref_name(name: object, kind: str) -> None:
    """Refuse a branch or tag name that is not a non-empty str without ``/``."""
    if not isinstance(name, str):
        raise InvalidInputError(f"{kind} name must be a str, got {type(name).__name__}")
    if not name or "/" in name:
        raise InvalidInputError(f"invalid {kind} name {name!r}: must be non-empty without '/'")


def branch_tip(info: RepoInfo, branch: str) -> str:
    """The snapshot id ``branch`` points at."""
    try:
        return info.branches[branch]
    except KeyError:
        raise BranchNotFoundError(
            f"branch {branch!r} not found; existing branches: {sorted(info.branches)}"
        ) from None


def tag_target(info: RepoInfo, tag: str) -> str:
    """The snapshot id ``tag`` points at."""
    try:
        return info.tags[tag]
    except KeyError:
        extra = " (it was deleted)" if tag in info.deleted_tags else ""
        raise TagNotFoundError(f"tag {tag!r} not found{extra}") from None


def require_snapshot(info: RepoInfo, snapshot_id: str) -> None:
    """Refuse a snapshot id the history does not hold."""
    if snapshot_id not in info.snapshots:
        raise SnapshotNotFoundError(f"snapshot {snapshot_id} not found in the repository")


def resolve_version(
    info: RepoInfo,
    *,
    branch: str | None = None,
    tag: str | None = None,
    snapshot_id: str | None = None,
) -> str:
    """The snapshot id named by exactly one of a branch, a tag or a snapshot id."""
    given = [x for x in (branch, tag, snapshot_id) if x is not None]
    if len(given) != 1:
        raise InvalidInputError("give exactly one of branch=, tag= or snapshot_id=")
    if branch is not None:
        check_ref_name(branch, "branch")
        return branch_tip(info, branch)
    if tag is not None:
        check_ref_name(tag, "tag")
        return tag_target(info, tag)
    assert snapshot_id is not None
    sid = normalize_id12(snapshot_id)
    require_snapshot(info, sid)
    return sid


async def create_branch(state: RepoState, branch: str, snapshot_id: str) -> None:
    """Create ``branch`` at ``snapshot_id``."""
    check_ref_name(branch, "branch")
    snapshot_id = normalize_id12(snapshot_id)

    def mutate(info: RepoInfo) -> Update:
        if branch in info.branches:
            raise AlreadyExistsError(f"branch {branch!r} already exists")
        require_snapshot(info, snapshot_id)
        info.branches[branch] = snapshot_id
        return Update(UpdateKind.BRANCH_CREATED, 0, {"name": branch})

    await state.update_repo_info(mutate)


async def reset_branch(
    state: RepoState, branch: str, snapshot_id: str, from_snapshot_id: str | None
) -> None:
    """Point ``branch`` at ``snapshot_id`` (only if it is at ``from_snapshot_id``, if given)."""
    check_ref_name(branch, "branch")
    snapshot_id = normalize_id12(snapshot_id)
    expected = normalize_id12(from_snapshot_id) if from_snapshot_id is not None else None

    def mutate(info: RepoInfo) -> Update:
        current = branch_tip(info, branch)
        if expected is not None and current != expected:
            raise ConflictError(
                f"branch {branch!r} points at {current}, not {expected}: not reset",
                expected_parent=expected,
                actual_parent=current,
            )
        require_snapshot(info, snapshot_id)
        info.branches[branch] = snapshot_id
        return Update(UpdateKind.BRANCH_RESET, 0, {"name": branch, "previous_snap_id": current})

    await state.update_repo_info(mutate)


async def delete_branch(state: RepoState, branch: str) -> None:
    """Delete ``branch`` (never ``main``)."""
    check_ref_name(branch, "branch")
    if branch == "main":
        raise InvalidInputError("the main branch cannot be deleted")

    def mutate(info: RepoInfo) -> Update:
        previous = branch_tip(info, branch)
        del info.branches[branch]
        return Update(UpdateKind.BRANCH_DELETED, 0, {"name": branch, "previous_snap_id": previous})

    await state.update_repo_info(mutate)


async def create_tag(state: RepoState, tag: str, snapshot_id: str) -> None:
    """Create the immutable ``tag`` at ``snapshot_id``."""
    check_ref_name(tag, "tag")
    snapshot_id = normalize_id12(snapshot_id)

    def mutate(info: RepoInfo) -> Update:
        if not flag_enabled(info, "create_tag"):
            raise InvalidInputError("creating tags is disabled by the create_tag feature flag")
        if tag in info.tags:
            raise AlreadyExistsError(f"tag {tag!r} already exists; tags cannot be moved")
        if tag in info.deleted_tags:
            raise AlreadyExistsError(
                f"tag {tag!r} was deleted and its name cannot be reused; choose another name"
            )
        require_snapshot(info, snapshot_id)
        info.tags[tag] = snapshot_id
        return Update(UpdateKind.TAG_CREATED, 0, {"name": tag})

    await state.update_repo_info(mutate)


async def delete_tag(state: RepoState, tag: str) -> None:
    """Delete ``tag``; its name can never be used again."""
    check_ref_name(tag, "tag")

    def mutate(info: RepoInfo) -> Update:
        if not flag_enabled(info, "delete_tag"):
            raise InvalidInputError("deleting tags is disabled by the delete_tag feature flag")
        previous = tag_target(info, tag)
        del info.tags[tag]
        info.deleted_tags.add(tag)
        return Update(UpdateKind.TAG_DELETED, 0, {"name": tag, "previous_snap_id": previous})

    await state.update_repo_info(mutate)
