"""Creating and opening repositories, and opening sessions on them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from icechunk._core import keys
from icechunk._core.config import RepositoryConfig
from icechunk._core.history import resolve
from icechunk._core.ops import flag_enabled
from icechunk._core.refs import branch_tip, check_ref_name
from icechunk._core.session import Session
from icechunk._core.state import RepoState, detect_spec_version, fetch_config, with_storage_settings
from icechunk._util.clock import now_us
from icechunk.exceptions import (
    AlreadyExistsError,
    InvalidInputError,
    PreconditionFailedError,
    RepositoryExistsError,
    RepositoryNotFoundError,
)
from icechunk.format.header import LATEST_SPEC_VERSION
from icechunk.format.ids import INITIAL_SNAPSHOT_ID
from icechunk.format.repo_info import RepoInfo, SnapshotEntry, Update, UpdateKind, encode_repo_info
from icechunk.format.snapshot import Snapshot, encode_snapshot
from icechunk.format.transaction_log import TransactionLog, encode_transaction_log
from icechunk.storage.base import Storage

if TYPE_CHECKING:
    from icechunk.repository import Repository


def check_storage(storage: object) -> None:
    """Refuse anything that is not an icechunk Storage."""
    if not isinstance(storage, Storage):
        raise InvalidInputError(
            f"expected an icechunk Storage (e.g. ic.local_filesystem_storage(path)), "
            f"got {type(storage).__name__}"
        )


def check_config(config: object) -> None:
    """Refuse a config that is neither None nor a RepositoryConfig."""
    if config is not None and not isinstance(config, RepositoryConfig):
        raise InvalidInputError(
            f"config must be an ic.RepositoryConfig, got {type(config).__name__}"
        )


async def create_repository(
    storage: Storage,
    config: RepositoryConfig | None,
    spec_version: int | None,
    check_clean_root: bool,
) -> RepoState:
    """Write a new repository (root snapshot, its transaction log, the repo info file)."""
    check_storage(storage)
    check_config(config)
    if spec_version not in (None, LATEST_SPEC_VERSION):
        raise InvalidInputError(
            f"this library creates spec version {LATEST_SPEC_VERSION} repositories only "
            f"(asked for {spec_version!r})"
        )
    if await detect_spec_version(storage) is not None:
        raise RepositoryExistsError(
            f"a repository already exists at {storage.describe()}; use Repository.open"
        )
    if check_clean_root:
        async for info in storage.list(""):
            raise AlreadyExistsError(
                f"{storage.describe()} is not empty (it holds {info.key!r}); create "
                "repositories in an empty location, or pass check_clean_root=False"
            )
    written = now_us()
    root = Snapshot(
        id=INITIAL_SNAPSHOT_ID,
        nodes={},
        flushed_at=written,
        message="Repository initialized",
        metadata={"__icechunk": {"is_root": True}},
        manifest_files=[],
    )
    effective = RepositoryConfig.default().merge(config)
    storage = with_storage_settings(storage, effective)
    level = effective.effective_compression_level
    await storage.put(
        keys.transaction_key(INITIAL_SNAPSHOT_ID),
        encode_transaction_log(TransactionLog(INITIAL_SNAPSHOT_ID), compression_level=level),
    )
    await storage.put(
        keys.snapshot_key(INITIAL_SNAPSHOT_ID), encode_snapshot(root, compression_level=level)
    )
    info = RepoInfo(
        branches={"main": INITIAL_SNAPSHOT_ID},
        tags={},
        deleted_tags=set(),
        snapshots={
            INITIAL_SNAPSHOT_ID: SnapshotEntry(
                INITIAL_SNAPSHOT_ID, None, written, root.message, dict(root.metadata)
            )
        },
        latest_updates=[Update(UpdateKind.REPO_INITIALIZED, written)],
        config=config.to_bytes() if config is not None else None,
    )
    try:
        await storage.put_if_absent(
            keys.REPO_INFO_KEY, encode_repo_info(info, compression_level=level)
        )
    except PreconditionFailedError:
        raise RepositoryExistsError(
            f"a repository already exists at {storage.describe()}; use Repository.open"
        ) from None
    return RepoState(storage, effective, LATEST_SPEC_VERSION)


async def open_repository(storage: Storage, config: RepositoryConfig | None) -> RepoState:
    """Open the repository at ``storage`` with its persisted config merged with ``config``."""
    check_storage(storage)
    check_config(config)
    spec = await detect_spec_version(storage)
    if spec is None:
        raise RepositoryNotFoundError(
            f"no icechunk repository at {storage.describe()}; create one with "
            "Repository.create(storage)"
        )
    persisted = await fetch_config(storage, spec)
    effective = RepositoryConfig.default().merge(persisted).merge(config)
    return RepoState(with_storage_settings(storage, effective), effective, spec)


async def persisted_config(storage: Storage) -> RepositoryConfig | None:
    """The configuration persisted in the repository at ``storage``, if any."""
    check_storage(storage)
    spec = await detect_spec_version(storage)
    if spec is None:
        raise RepositoryNotFoundError(f"no icechunk repository at {storage.describe()}")
    return await fetch_config(storage, spec)


async def readonly_session(
    repo: Repository,
    state: RepoState,
    branch: str | None,
    tag: str | None,
    snapshot_id: str | None,
    as_of: datetime | None,
) -> Session:
    """A read-only session on a branch, tag or snapshot (optionally as of a time)."""
    if as_of is not None and branch is None:
        raise InvalidInputError("as_of needs a branch: readonly_session(branch, as_of=...)")
    sid = await resolve(state, branch=branch, tag=tag, snapshot_id=snapshot_id, as_of=as_of)
    snap = await state.objects.snapshot(sid)
    return Session(repo, state, snap, branch=None, read_only=True)


async def writable_session(
    repo: Repository,
    state: RepoState,
    branch: str,
    *,
    rearrange: bool = False,
    rewrite_manifests: bool = False,
) -> Session:
    """A session that commits to ``branch`` (a rearrange session only moves nodes)."""
    check_ref_name(branch, "branch")
    state.require_writable_spec()
    info = await state.repo_info()
    tip = branch_tip(info, branch)
    if rearrange and not flag_enabled(info, "move_node"):
        raise InvalidInputError("moving nodes is disabled by the move_node feature flag")
    snap = await state.objects.snapshot(tip)
    return Session(
        repo,
        state,
        snap,
        branch=branch,
        read_only=False,
        rearrange=rearrange,
        rewrite_manifests=rewrite_manifests,
    )


