"""Upgrading a spec-version-1 repository to spec version 2.

What :func:`upgrade_icechunk_repository` does, like the official package (2.3.0):

* It reads the spec-1 refs (``refs/``), the snapshots reachable from them (through
  their parent links) and the persisted configuration (``config.yaml``).
* It builds the spec-2 repo info file ``repo``: the same branches, tags, deleted
  tags and snapshots (id, parent, time, message, metadata), status *online* (set
  at the time of the first snapshot), the configuration re-encoded as FlexBuffers
  (absent when there was no ``config.yaml``), and an ops log made of synthetic
  entries reconstructed from the history plus, newest, a ``RepoMigratedUpdate``
  from 1 to 2. None of the ops-log entries has a backup path.
* Snapshots, manifests, transaction logs and chunks are not rewritten: spec-2
  readers and writers handle spec-1 files.
* ``repo`` is created with a create-if-absent write. That single write is the
  switch: before it the repository is a readable spec-1 repository, after it a
  spec-2 one (``refs/`` and ``config.yaml`` are ignored once ``repo`` exists).
* Then, with ``delete_unused_v1_files`` (the default), ``refs/`` is deleted (the
  ``main`` branch first, so spec-1 clients stop at once) and then ``config.yaml``.
  Copies of older configs under ``overwritten/`` are left alone.

The synthetic ops log (all times in microseconds, oldest first before reversal):
``RepoInitializedUpdate`` at the root snapshot's time; a ``NewCommitUpdate`` on
``main`` for every non-root snapshot of main's ancestry, at its time; for every
other branch (by name) a ``BranchCreatedUpdate`` 1 ms after its tip and a
``NewCommitUpdate`` for each of its snapshots not already attributed; a
``TagCreatedUpdate`` 1 ms after each tag's snapshot; for a deleted tag a
``TagCreatedUpdate`` 1 ms and a ``TagDeletedUpdate`` 2 ms after its snapshot (or
after the root when that snapshot is gone). Entries are stably sorted by time and
bumped by 1 µs where needed to be strictly increasing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from icechunk._core import keys
from icechunk._core.config import RepositoryConfig
from icechunk._core.lifecycle import open_repository
from icechunk._core.spec_v1 import (
    V1Refs,
    fetch_v1_config_bytes,
    load_v1_snapshot_entries,
    read_snapshot_entry,
    read_v1_refs,
)
from icechunk._util.clock import now_us as clock
from icechunk.exceptions import (
    CorruptObjectError,
    IcechunkError,
    InvalidInputError,
    PreconditionFailedError,
    SessionStateError,
)
from icechunk.format.header import LATEST_SPEC_VERSION
from icechunk.format.repo_info import (
    Availability,
    RepoInfo,
    RepoStatus,
    SnapshotEntry,
    Update,
    UpdateKind,
    decode_repo_info,
    encode_repo_info,
)
from icechunk.storage.base import Storage

if TYPE_CHECKING:
    from icechunk._core.state import RepoState

logger = logging.getLogger("icechunk.migration")  # a stable name users filter on

SYNTHETIC_EVENT_OFFSET_US = 1000  # 1 ms
DEFAULT_PREFETCH_CONCURRENCY = 64
FROM_VERSION = 1
TO_VERSION = 2


class MigrationError(SessionStateError):
    """The repository cannot be upgraded (wrong spec version, or the upgrade failed).

    A :class:`SessionStateError`, like the error the official package raises when
    asked to upgrade a repository that is not spec version 1.
    """


@dataclass
class UpgradePlan:
    """Everything an upgrade would write and delete (what a dry run computes)."""

    repo_info: RepoInfo
    repo_info_bytes: bytes
    refs: V1Refs
    config_bytes: bytes | None
    keys_to_delete: list[str] = field(default_factory=list)

    @property
    def ops_log(self) -> list[Update]:
        return self.repo_info.latest_updates

    def describe(self) -> str:
        info = self.repo_info
        return (
            f"upgrade spec {FROM_VERSION} -> {TO_VERSION}: {len(info.branches)} branches, "
            f"{len(info.tags)} tags, {len(info.deleted_tags)} deleted tags, "
            f"{len(info.snapshots)} snapshots, {len(info.latest_updates)} ops-log entries; "
            f"writes 'repo' ({len(self.repo_info_bytes)} bytes)"
            + (f", deletes {len(self.keys_to_delete)} spec-1 files" if self.keys_to_delete else "")
        )


# ---------------------------------------------------------------------------
# the synthetic ops log


def synthetic_ops_log(refs: V1Refs, snapshots: dict[str, SnapshotEntry]) -> list[Update]:
    """The reconstructed history of a spec-1 repository, newest first."""
    main_tip = refs.branches.get("main")
    if main_tip is None:
        return []

    def ancestry(tip: str) -> list[SnapshotEntry]:  # tip first
        out = []
        current: str | None = tip
        while current is not None and current in snapshots:
            entry = snapshots[current]
            out.append(entry)
            current = entry.parent_id
        return out

    main = ancestry(main_tip)
    if not main:
        return []
    root_time = main[-1].flushed_at
    entries: list[Update] = [Update(UpdateKind.REPO_INITIALIZED, root_time)]
    emitted = {e.id for e in main}
    for entry in reversed(main[:-1]):
        entries.append(
            Update(
                UpdateKind.NEW_COMMIT,
                entry.flushed_at,
                {"branch": "main", "new_snap_id": entry.id},
            )
        )
    for name, tip in refs.branches.items():
        if name == "main":
            continue
        chain = ancestry(tip)
        tip_time = chain[0].flushed_at if chain else root_time
        entries.append(
            Update(UpdateKind.BRANCH_CREATED, tip_time + SYNTHETIC_EVENT_OFFSET_US, {"name": name})
        )
        for entry in reversed(chain):
            if entry.id not in emitted:
                emitted.add(entry.id)
                entries.append(
                    Update(
                        UpdateKind.NEW_COMMIT,
                        entry.flushed_at,
                        {"branch": name, "new_snap_id": entry.id},
                    )
                )

    def time_of(snapshot_id: str | None) -> int:
        entry = snapshots.get(snapshot_id) if snapshot_id is not None else None
        return entry.flushed_at if entry is not None else root_time

    for name, target in refs.tags.items():
        entries.append(
            Update(
                UpdateKind.TAG_CREATED, time_of(target) + SYNTHETIC_EVENT_OFFSET_US, {"name": name}
            )
        )
    for name, target in refs.deleted_tags.items():
        if target is None:
            logger.warning(
                "could not find the snapshot of deleted tag %r: no ops-log entries for it", name
            )
            continue
        created = time_of(target) + SYNTHETIC_EVENT_OFFSET_US
        entries.append(Update(UpdateKind.TAG_CREATED, created, {"name": name}))
        entries.append(
            Update(
                UpdateKind.TAG_DELETED,
                created + SYNTHETIC_EVENT_OFFSET_US,
                {"name": name, "previous_snap_id": target},
            )
        )

    entries.sort(key=lambda u: u.updated_at)  # stable, like the official sort
    for previous, entry in itertools.pairwise(entries):
        if entry.updated_at <= previous.updated_at:
            entry.updated_at = previous.updated_at + 1
    entries.reverse()
    return entries


# ---------------------------------------------------------------------------
# planning


async def _prefetch_entries(storage: Storage, concurrency: int) -> dict[str, SnapshotEntry]:
    """History entries of every snapshot file, read ``concurrency`` at a time.

    Unreadable files are skipped here (the walk from the refs reports them if
    they matter).
    """
    ids = [k[len(keys.SNAPSHOTS) :] for k in await storage.list_keys(keys.SNAPSHOTS)]
    semaphore = asyncio.Semaphore(max(1, concurrency))
    out: dict[str, SnapshotEntry] = {}

    async def one(snapshot_id: str) -> None:
        async with semaphore:
            try:
                out[snapshot_id] = await read_snapshot_entry(storage, snapshot_id)
            except IcechunkError as err:
                logger.debug("snapshot prefetch: cannot read %s: %s", snapshot_id, err)

    await asyncio.gather(*(one(i) for i in ids if "/" not in i))
    return out


async def plan_upgrade(
    storage: Storage,
    *,
    delete_unused_v1_files: bool = True,
    prefetch_concurrency: int | None = None,
    compression_level: int = 3,
    now_us: int | None = None,
) -> UpgradePlan:
    """Compute the spec-2 ``repo`` file for the spec-1 repository at ``storage``."""

    if await storage.exists(keys.REPO_INFO_KEY):
        raise MigrationError(
            f"the repository at {storage.describe()} already has a 'repo' file: it is not a "
            f"spec version {FROM_VERSION} repository, there is nothing to upgrade"
        )
    refs = await read_v1_refs(storage)
    if "main" not in refs.branches:
        raise MigrationError(
            f"no spec version {FROM_VERSION} repository at {storage.describe()}: "
            "refs/branch.main/ref.json is missing"
        )
    concurrency = (
        DEFAULT_PREFETCH_CONCURRENCY if prefetch_concurrency is None else prefetch_concurrency
    )
    if concurrency < 1:
        raise InvalidInputError(f"prefetch_concurrency must be >= 1, got {prefetch_concurrency}")
    prefetched = await _prefetch_entries(storage, concurrency)
    tips = [*refs.tags.values(), *refs.branches.values()]
    snapshots = await load_v1_snapshot_entries(storage, tips, prefetched)
    del prefetched

    ops = synthetic_ops_log(refs, snapshots)
    head_time = ops[0].updated_at if ops else 0
    migrated_at = max(clock() if now_us is None else now_us, head_time + 1)
    updates = [
        Update(
            UpdateKind.REPO_MIGRATED,
            migrated_at,
            {"from_version": FROM_VERSION, "to_version": TO_VERSION},
        ),
        *ops,
    ]
    root_time = _root_time(refs.branches["main"], snapshots)
    config_bytes = await fetch_v1_config_bytes(storage)
    info = RepoInfo(
        branches=dict(refs.branches),
        tags=dict(refs.tags),
        deleted_tags=set(refs.deleted_tags),
        snapshots=snapshots,
        latest_updates=updates,
        status=RepoStatus(Availability.ONLINE, root_time, None),
        metadata={},
        config=config_bytes,
        spec_version=TO_VERSION,
    )
    data = encode_repo_info(info, compression_level=compression_level)
    _check_encoded(info, data)
    to_delete: list[str] = []
    if delete_unused_v1_files:
        to_delete = list(refs.keys)
        if config_bytes is not None:
            to_delete.append(keys.V1_CONFIG_KEY)
    return UpgradePlan(info, data, refs, config_bytes, to_delete)


def _root_time(tip: str, snapshots: dict[str, SnapshotEntry]) -> int:
    entry = snapshots[tip]
    while entry.parent_id is not None and entry.parent_id in snapshots:
        entry = snapshots[entry.parent_id]
    return entry.flushed_at


def _check_encoded(info: RepoInfo, data: bytes) -> None:
    """The encoded file must decode to the same refs and history."""
    back = decode_repo_info(data)
    same = (
        back.spec_version == info.spec_version
        and back.branches == info.branches
        and back.tags == info.tags
        and back.deleted_tags == info.deleted_tags
        and {k: (v.parent_id, v.flushed_at, v.message) for k, v in back.snapshots.items()}
        == {k: (v.parent_id, v.flushed_at, v.message) for k, v in info.snapshots.items()}
        and len(back.latest_updates) == len(info.latest_updates)
    )
    if not same:
        raise MigrationError("internal error: the new repo info file does not round-trip")


# ---------------------------------------------------------------------------
# upgrading


async def _delete_v1_files(storage: Storage, plan: UpgradePlan) -> None:
    main_key = keys.v1_branch_key("main")
    # main first: spec-1 clients fail fast from here on instead of writing refs
    # that nobody would read any more
    await storage.delete([main_key])
    await storage.delete([k for k in plan.refs.keys if k != main_key])
    remaining = await storage.list_keys(keys.V1_REFS)
    if remaining:
        # the repository is already a valid spec-2 one: report, do not undo
        logger.warning("%d spec-1 ref files could not be deleted: %s", len(remaining), remaining)
    if keys.V1_CONFIG_KEY in plan.keys_to_delete:
        try:
            await storage.delete([keys.V1_CONFIG_KEY])
        except IcechunkError as err:  # best effort, like the official package
            logger.warning("could not delete the spec-1 config.yaml: %s", err)


async def upgrade_state(
    state: RepoState,
    *,
    dry_run: bool,
    delete_unused_v1_files: bool = True,
    prefetch_concurrency: int | None = None,
) -> None:
    """Upgrade the spec-1 repository of ``state`` to spec 2 (see
    :func:`icechunk.upgrade_icechunk_repository`); ``state`` then describes spec 2."""
    if not isinstance(dry_run, bool):
        raise InvalidInputError(f"dry_run must be a bool, got {dry_run!r}")
    if state.spec_version != FROM_VERSION:
        raise MigrationError(
            f"invalid repository version ({state.spec_version}): this function can only "
            f"migrate repositories that use version {FROM_VERSION} of the specification, "
            f"to repositories with spec version {TO_VERSION}"
        )
    storage = state.storage
    plan = await plan_upgrade(
        storage,
        delete_unused_v1_files=delete_unused_v1_files,
        prefetch_concurrency=prefetch_concurrency,
        compression_level=state.config.effective_compression_level,
    )
    logger.info("%s", plan.describe())
    if dry_run:
        logger.info("dry run: the repository was not modified; use dry_run=False to upgrade it")
        return

    try:
        await storage.put_if_absent(keys.REPO_INFO_KEY, plan.repo_info_bytes)
    except PreconditionFailedError:
        raise MigrationError(
            f"another process created the 'repo' file of {storage.describe()} during the "
            "upgrade; the repository was not changed by this call"
        ) from None
    try:
        upgraded = await open_repository(storage, None)
        if upgraded.spec_version != TO_VERSION:
            raise CorruptObjectError("the upgraded repository does not open as spec version 2")
        info = await upgraded.repo_info()
        if info.branches != plan.repo_info.branches or info.tags != plan.repo_info.tags:
            raise CorruptObjectError("the upgraded repository has other refs than planned")
    except Exception as err:
        # back to a plain spec-1 repository (nothing else was written yet)
        await storage.delete([keys.REPO_INFO_KEY])
        raise MigrationError(f"the upgrade failed and was undone: {err}") from err

    if delete_unused_v1_files:
        await _delete_v1_files(storage, plan)

    # The caller's object now works on the spec-2 repository too (the official
    # package invalidates it instead; both return a freshly opened one).
    persisted = (
        RepositoryConfig.from_bytes(plan.config_bytes) if plan.config_bytes is not None else None
    )
    state.adopt_upgrade(
        LATEST_SPEC_VERSION, RepositoryConfig.default().merge(persisted).merge(state.config)
    )
    logger.info("upgrade complete: %s is now a spec version %d repository", storage, TO_VERSION)
