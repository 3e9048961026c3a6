"""History: walking ancestry, snapshot infos, resolving versions and diffs between them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from icechunk._core.refs import resolve_version
from icechunk._core.state import RepoState
from icechunk._util.clock import us_to_datetime
from icechunk._util.sync import run
from icechunk.exceptions import CorruptObjectError, InvalidInputError, SnapshotNotFoundError
from icechunk.format.repo_info import RepoInfo, SnapshotEntry
from icechunk.format.snapshot import ManifestFileInfo, Snapshot
from icechunk.format.transaction_log import TransactionLog


@dataclass
class SnapshotInfo:
    """One entry of the repository history."""

    id: str
    parent_id: str | None
    written_at: datetime
    message: str
    metadata: dict[str, Any]
    _manifests_loader: Callable[[], list[ManifestFileInfo]] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def commit_message(self) -> str:
        """The commit message (the quickstart's spelling of :attr:`message`)."""
        return self.message

    @property
    def manifests(self) -> list[ManifestFileInfo]:
        """The manifest files of this snapshot (read on first access)."""
        return self._manifests_loader() if self._manifests_loader else []


@dataclass
class Diff:
    """What changed between two versions (or in a session): node paths and chunk coordinates."""

    new_groups: set[str] = field(default_factory=set)
    new_arrays: set[str] = field(default_factory=set)
    deleted_groups: set[str] = field(default_factory=set)
    deleted_arrays: set[str] = field(default_factory=set)
    updated_groups: set[str] = field(default_factory=set)
    updated_arrays: set[str] = field(default_factory=set)
    updated_chunks: dict[str, list[list[int]]] = field(default_factory=dict)
    moved_nodes: list[tuple[str, str]] = field(default_factory=list)

    def is_empty(self) -> bool:
        """Whether nothing changed."""
        return not any(
            (
                self.new_groups,
                self.new_arrays,
                self.deleted_groups,
                self.deleted_arrays,
                self.updated_groups,
                self.updated_arrays,
                self.updated_chunks,
                self.moved_nodes,
            )
        )

    def __repr__(self) -> str:
        parts = [
            f"{name}={sorted(getattr(self, name))}"
            for name in (
                "new_groups",
                "new_arrays",
                "deleted_groups",
                "deleted_arrays",
                "updated_groups",
                "updated_arrays",
            )
            if getattr(self, name)
        ]
        if self.updated_chunks:
            counts = {p: len(c) for p, c in sorted(self.updated_chunks.items())}
            parts.append(f"updated_chunks={counts}")
        return f"Diff({', '.join(parts)})"


def diff_from_logs(logs: list[TransactionLog], old: Snapshot, new: Snapshot) -> Diff:
    """Combine transaction logs of the commits after ``old`` up to ``new`` into paths."""
    old_by_id = {n.id: n for n in old.nodes.values()}
    new_by_id = {n.id: n for n in new.nodes.values()}
    touched: set[str] = set()
    chunks: dict[str, set[tuple[int, ...]]] = {}
    for log in logs:
        touched |= log.updated_arrays | log.updated_groups
        for node_id, coords in log.updated_chunks.items():
            chunks.setdefault(node_id, set()).update(coords)
    diff = Diff()
    for node_id, node in new_by_id.items():
        if node_id not in old_by_id:
            (diff.new_arrays if node.is_array else diff.new_groups).add(node.path)
        elif node_id in touched and node.user_data != old_by_id[node_id].user_data:
            (diff.updated_arrays if node.is_array else diff.updated_groups).add(node.path)
    for node_id, node in old_by_id.items():
        if node_id not in new_by_id:
            (diff.deleted_arrays if node.is_array else diff.deleted_groups).add(node.path)
    for node_id, coords in chunks.items():
        node = new_by_id.get(node_id)
        if node is not None and coords:
            diff.updated_chunks[node.path] = [list(c) for c in sorted(coords)]
    for log in logs:
        diff.moved_nodes.extend((m.from_path, m.to_path) for m in log.moved_nodes)
    return diff


def ancestry(info: RepoInfo, start: str) -> Iterator[SnapshotEntry]:
    """``start`` and its ancestors in the repo info, newest first."""
    seen: set[str] = set()
    current: str | None = start
    while current is not None:
        if current in seen:
            raise CorruptObjectError(f"the repository history has a cycle at {current}")
        seen.add(current)
        entry = info.snapshots.get(current)
        if entry is None:
            raise CorruptObjectError(f"the repository history refers to unknown snapshot {current}")
        yield entry
        current = entry.parent_id


def snapshot_info(state: RepoState, entry: SnapshotEntry) -> SnapshotInfo:
    """The public view of a history entry (its manifests are read on first access)."""

    def load() -> list[ManifestFileInfo]:
        return run(state.objects.snapshot(entry.id)).manifest_files

    return SnapshotInfo(
        entry.id,
        entry.parent_id,
        us_to_datetime(entry.flushed_at),
        entry.message,
        dict(entry.metadata),
        load,
    )


async def lookup_snapshot(state: RepoState, snapshot_id: str) -> SnapshotInfo:
    """The history entry of one snapshot."""
    info = await state.repo_info()
    sid = resolve_version(info, snapshot_id=snapshot_id)
    return snapshot_info(state, info.snapshots[sid])


async def ancestry_infos(
    state: RepoState,
    *,
    branch: str | None = None,
    tag: str | None = None,
    snapshot_id: str | None = None,
) -> list[SnapshotInfo]:
    """The history ending at a branch, tag or snapshot, newest first."""
    info = await state.repo_info()
    start = resolve_version(info, branch=branch, tag=tag, snapshot_id=snapshot_id)
    return [snapshot_info(state, e) for e in ancestry(info, start)]


async def resolve(
    state: RepoState,
    *,
    branch: str | None = None,
    tag: str | None = None,
    snapshot_id: str | None = None,
    as_of: datetime | None = None,
) -> str:
    """The snapshot a ref names, or its newest ancestor written at or before ``as_of``."""
    info = await state.repo_info()
    start = resolve_version(info, branch=branch, tag=tag, snapshot_id=snapshot_id)
    if as_of is None:
        return start
    if not isinstance(as_of, datetime):
        raise InvalidInputError(f"as_of must be a datetime, got {type(as_of).__name__}")
    if as_of.tzinfo is None:
        as_of = as_of.astimezone(UTC)
    limit = int(as_of.timestamp() * 1_000_000)
    for entry in ancestry(info, start):
        if entry.flushed_at <= limit:
            return entry.id
    raise SnapshotNotFoundError(f"no snapshot was written at or before {as_of.isoformat()}")


async def diff(
    state: RepoState,
    *,
    from_branch: str | None = None,
    from_tag: str | None = None,
    from_snapshot_id: str | None = None,
    to_branch: str | None = None,
    to_tag: str | None = None,
    to_snapshot_id: str | None = None,
) -> Diff:
    """The changes from one version to a later one that descends from it."""
    info = await state.repo_info()
    old = resolve_version(info, branch=from_branch, tag=from_tag, snapshot_id=from_snapshot_id)
    new = resolve_version(info, branch=to_branch, tag=to_tag, snapshot_id=to_snapshot_id)
    between = []
    for entry in ancestry(info, new):
        if entry.id == old:
            break
        between.append(entry.id)
    else:
        raise InvalidInputError(f"snapshot {old} is not an ancestor of {new}: cannot diff")
    objects = state.objects
    logs = await asyncio.gather(*(objects.transaction_log(s) for s in between))
    old_snap, new_snap = await asyncio.gather(objects.snapshot(old), objects.snapshot(new))
    return diff_from_logs(list(logs), old_snap, new_snap)
