"""Repository: open/create, refs (branches and tags), history, sessions."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from icechunk._core import keys
from icechunk._core.config import RepositoryConfig
from icechunk._core.graph import AncestryGraph
from icechunk._core.objects import RepoObjects
from icechunk._core.versions import SpecVersion
from icechunk._maintenance.expiration import ancestry
from icechunk._util.debug import Attribution
from icechunk._util.sync import run
from icechunk.exceptions import (
    AlreadyExistsError,
    BranchNotFoundError,
    ConflictError,
    IcechunkError,
    InvalidInputError,
    ObjectNotFoundError,
    PreconditionFailedError,
    ReadOnlyError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    SnapshotNotFoundError,
    TagNotFoundError,
    UnsupportedSpecVersionError,
)
from icechunk.format.header import LATEST_SPEC_VERSION
from icechunk.format.ids import INITIAL_SNAPSHOT_ID, encode_base32, normalize_id12
from icechunk.format.manifest import LocationCompression
from icechunk.format.repo_info import (
    Availability,
    RepoInfo,
    SnapshotEntry,
    Update,
    UpdateKind,
    copy_repo_info,
    decode_repo_info,
    encode_repo_info,
)
from icechunk.format.snapshot import ManifestFileInfo, Snapshot, encode_snapshot
from icechunk.format.transaction_log import TransactionLog, encode_transaction_log
from icechunk.repository_admin import RepositoryAdmin, flag_enabled
from icechunk.repository_maintenance import RepositoryMaintenance
from icechunk.storage.base import Storage, Version

if TYPE_CHECKING:
    from icechunk.session import Session

_BACKUP_EPOCH_MS = 32503680000000  # 3000-01-01T00:00:00Z: newer backups sort first
_MAX_REPO_UPDATE_TRIES = 200


def now_us() -> int:
    return time.time_ns() // 1000


def us_to_datetime(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


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
        return self.message

    @property
    def manifests(self) -> list[ManifestFileInfo]:
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


class Repository(RepositoryAdmin, RepositoryMaintenance):
    """An icechunk repository on some storage.

    Create one with :meth:`create`, :meth:`open` or :meth:`open_or_create`.
    """

    def __init__(
        self,
        storage: Storage,
        config: RepositoryConfig,
        spec_version: int,
        *,
        _token: object = None,
    ) -> None:
        if _token is not _PRIVATE:
            raise IcechunkError(
                "use Repository.create(storage), Repository.open(storage) or "
                "Repository.open_or_create(storage) to get a Repository"
            )
        self._storage = storage
        self._config = config
        self._spec_version = spec_version
        self._objects = RepoObjects(storage)
        self._repo_info_cache: tuple[bytes, RepoInfo] | None = None
        self._default_commit_metadata: dict[str, Any] = {}
        self._set_virtual_access(None)

    def __repr__(self) -> str:
        return f"<icechunk.Repository at {self._storage.describe()}>"

    def __dask_tokenize__(self) -> tuple[str, ...]:
        # Branches move: which version a Repository argument stands for is only known
        # when it is read, so two tokenizations must never collide.
        return ("icechunk.Repository", uuid.uuid4().hex)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "storage": self._storage,
            "config": self._config,
            "spec_version": self._spec_version,
            "default_commit_metadata": self._default_commit_metadata,
            "virtual_access": self._virtual_access,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._storage = state["storage"]
        self._config = state["config"]
        self._spec_version = state["spec_version"]
        self._objects = RepoObjects(self._storage)
        self._repo_info_cache = None
        self._default_commit_metadata = state.get("default_commit_metadata", {})
        self._set_virtual_access(state.get("virtual_access"), warn=False)

    # ------------------------------------------------------------------
    # creation and opening

    @classmethod
    def create(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        spec_version: int | None = None,
        check_clean_root: bool = True,
        attribution: Any = None,
    ) -> Repository:
        """Create a new repository; fails if one already exists at ``storage``.

        With ``check_clean_root`` (the default) the location must hold no objects at all.
        """
        return run(
            cls.create_async(
                storage, config, authorize_virtual_chunk_access, spec_version, check_clean_root
            )
        )

    @classmethod
    async def create_async(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        spec_version: int | None = None,
        check_clean_root: bool = True,
        attribution: Any = None,
    ) -> Repository:
        _check_storage(storage)
        _check_config(config)
        if spec_version not in (None, LATEST_SPEC_VERSION):
            raise InvalidInputError(
                f"this library creates spec version {LATEST_SPEC_VERSION} repositories only "
                f"(asked for {spec_version!r})"
            )
        if await _detect_spec_version(storage) is not None:
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
        storage = _with_storage_settings(storage, effective)
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
        repo = cls(storage, effective, LATEST_SPEC_VERSION, _token=_PRIVATE)
        repo._set_virtual_access(authorize_virtual_chunk_access)
        return repo

    @classmethod
    def open(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        attribution: Any = None,
    ) -> Repository:
        """Open an existing repository."""
        return run(cls.open_async(storage, config, authorize_virtual_chunk_access))

    @classmethod
    async def open_async(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        attribution: Any = None,
    ) -> Repository:
        _check_storage(storage)
        _check_config(config)
        spec = await _detect_spec_version(storage)
        if spec is None:
            raise RepositoryNotFoundError(
                f"no icechunk repository at {storage.describe()}; create one with "
                "Repository.create(storage)"
            )
        persisted = await _fetch_config(storage, spec)
        effective = RepositoryConfig.default().merge(persisted).merge(config)
        storage = _with_storage_settings(storage, effective)
        repo = cls(storage, effective, spec, _token=_PRIVATE)
        repo._set_virtual_access(authorize_virtual_chunk_access)
        return repo

    @classmethod
    def open_or_create(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        create_version: int | None = None,
        attribution: Any = None,
    ) -> Repository:
        """Open the repository at ``storage``, creating it first if there is none."""
        return run(
            cls.open_or_create_async(
                storage, config, authorize_virtual_chunk_access, create_version
            )
        )

    @classmethod
    async def open_or_create_async(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        create_version: int | None = None,
        attribution: Any = None,
    ) -> Repository:
        _check_storage(storage)
        if await _detect_spec_version(storage) is None:
            try:
                return await cls.create_async(
                    storage,
                    config,
                    authorize_virtual_chunk_access,
                    spec_version=create_version,
                    check_clean_root=False,
                )
            except RepositoryExistsError:
                pass  # someone else created it at the same moment
        return await cls.open_async(storage, config, authorize_virtual_chunk_access)

    @staticmethod
    def exists(storage: Storage, storage_settings: Any = None) -> bool:
        """Whether a repository exists at ``storage``."""
        return run(Repository.exists_async(storage))

    @staticmethod
    def fetch_spec_version(storage: Storage, storage_settings: Any = None) -> SpecVersion | None:
        """The format version of the repository at ``storage`` (None if there is none)."""
        return run(Repository.fetch_spec_version_async(storage))

    @staticmethod
    async def fetch_spec_version_async(
        storage: Storage, storage_settings: Any = None
    ) -> SpecVersion | None:
        _check_storage(storage)
        spec = await _detect_spec_version(storage)
        return None if spec is None else SpecVersion(spec)

    @staticmethod
    async def exists_async(storage: Storage, storage_settings: Any = None) -> bool:
        _check_storage(storage)
        return await _detect_spec_version(storage) is not None

    @staticmethod
    def fetch_config(storage: Storage) -> RepositoryConfig | None:
        """The configuration persisted in the repository at ``storage``, if any."""
        return run(Repository.fetch_config_async(storage))

    @staticmethod
    async def fetch_config_async(storage: Storage) -> RepositoryConfig | None:
        _check_storage(storage)
        spec = await _detect_spec_version(storage)
        if spec is None:
            raise RepositoryNotFoundError(f"no icechunk repository at {storage.describe()}")
        return await _fetch_config(storage, spec)

    # ------------------------------------------------------------------
    # properties and config

    @property
    def storage(self) -> Storage:
        return self._storage

    @property
    def attribution(self) -> Attribution:
        """Labels identifying this client (kept for compatibility; sent nowhere yet)."""
        return getattr(self, "_attribution", None) or Attribution()

    @property
    def config(self) -> RepositoryConfig:
        return self._config

    @property
    def spec_version(self) -> SpecVersion:
        return SpecVersion(self._spec_version)

    # -- virtual chunks ----------------------------------------------------

    def _set_virtual_access(
        self, authorize: Mapping[str, Any] | None, *, warn: bool = True
    ) -> None:
        """Authorise virtual chunk containers (url_prefix -> credentials or None)."""
        from icechunk._virtual.resolver import resolver_for, warn_none_credentials

        if warn:
            warn_none_credentials(authorize)
        resolver = resolver_for(self._config, authorize)
        self._virtual_access = dict(authorize or {})
        self._objects.virtual = resolver

    @property
    def authorized_virtual_container_prefixes(self) -> set[str]:
        """The url prefixes of the virtual chunk containers this repository may read."""
        return set(self._virtual_access)

    def _location_compression(self) -> LocationCompression:
        """How new manifests compress virtual chunk locations (from the config)."""
        return LocationCompression.from_config(self._config.location_compression)

    def save_config(self) -> None:
        """Persist this repository's configuration in the repository."""
        run(self.save_config_async())

    async def save_config_async(self) -> None:
        data = self._config.to_bytes()

        def mutate(info: RepoInfo) -> Update:
            info.config = data
            return Update(UpdateKind.CONFIG_CHANGED, 0)

        await self._update_repo_info(mutate)

    def reopen(
        self,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
    ) -> Repository:
        """The same repository with another configuration."""
        _check_config(config)
        merged = self._config.merge(config)
        repo = Repository(
            _with_storage_settings(self._storage, merged),
            merged,
            self._spec_version,
            _token=_PRIVATE,
        )
        repo._default_commit_metadata = dict(self._default_commit_metadata)
        if authorize_virtual_chunk_access is None:
            repo._set_virtual_access(self._virtual_access, warn=False)
        else:
            repo._set_virtual_access(authorize_virtual_chunk_access)
        return repo

    async def reopen_async(
        self,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
    ) -> Repository:
        return self.reopen(config, authorize_virtual_chunk_access)

    # ------------------------------------------------------------------
    # repo info access

    async def _repo_info(self) -> RepoInfo:
        info, _ = await self._repo_info_with_version()
        return info

    async def _repo_info_with_version(self) -> tuple[RepoInfo, Version | None]:
        if self._spec_version == 1:
            from icechunk._core.spec_v1 import load_v1_repo_info

            return await load_v1_repo_info(self._storage), None
        try:
            data, version = await self._storage.get_with_version(keys.REPO_INFO_KEY)
        except ObjectNotFoundError:
            raise RepositoryNotFoundError(
                f"the repo info file of {self._storage.describe()} has disappeared"
            ) from None
        info = self._decode_repo_info(data)
        if info.spec_version > LATEST_SPEC_VERSION:
            raise UnsupportedSpecVersionError(
                f"repository spec version {info.spec_version} is newer than this library "
                "supports; upgrade the icechunk package"
            )
        return info, version

    async def _read_repo_info_for_update(self) -> tuple[bytes, Version, RepoInfo]:
        data, version = await self._storage.get_with_version(keys.REPO_INFO_KEY)
        return data, version, self._decode_repo_info(data)

    def _decode_repo_info(self, data: bytes) -> RepoInfo:
        """Decode the repo file, or copy the last decoding when the bytes are unchanged.

        A session and its commit read the file again and again, and it lists every
        snapshot: decoding it is most of a small commit's cost otherwise.
        """
        cached = self._repo_info_cache
        if cached is None or cached[0] != data:
            cached = self._repo_info_cache = (data, decode_repo_info(data))
        return copy_repo_info(cached[1])

    async def _write_backup(self, data: bytes) -> str:
        """Keep a copy of a repo file about to be replaced; return its name."""
        backup = _backup_name()
        await self._storage.put_fresh(keys.backup_key(backup), data)  # referenced after the swap
        return backup

    async def _update_repo_info(
        self,
        mutate: Callable[[RepoInfo], Update],
        *,
        allow_offline: bool = False,
        current: tuple[bytes, Version, RepoInfo] | None = None,
        current_backup: Awaitable[str] | None = None,
    ) -> RepoInfo:
        """Apply ``mutate`` to the latest repo info and swap it in atomically.

        ``mutate`` changes the info in place and returns the ops-log entry to add
        (its time is filled in here). It runs again on a fresh copy whenever
        another writer changed the file first, so it must only depend on its input.
        ``current`` is a just-read (bytes, version, decoded info) to start from, and
        ``current_backup`` (from :meth:`_write_backup`) the backup of those bytes if the
        caller already started writing it.
        """
        if self._spec_version != LATEST_SPEC_VERSION:
            raise UnsupportedSpecVersionError(
                f"this is a spec version {self._spec_version} repository, which this library "
                "opens read-only; upgrade it first with "
                "ic.upgrade_icechunk_repository(repo, dry_run=False)"
            )
        for attempt in range(_MAX_REPO_UPDATE_TRIES):
            if current is not None:
                (data, version, info), current = current, None
            else:
                data, version, info = await self._read_repo_info_for_update()
            if info.spec_version > LATEST_SPEC_VERSION:
                raise UnsupportedSpecVersionError(
                    f"repository spec version {info.spec_version} is newer than this library "
                    "supports; refusing to write"
                )
            if info.status.availability != Availability.ONLINE and not allow_offline:
                reason = f": {info.status.reason}" if info.status.reason else ""
                raise ReadOnlyError(
                    f"the repository is {info.status.availability.name.lower()}{reason}"
                )
            update = mutate(info)
            head_time = info.latest_updates[0].updated_at if info.latest_updates else 0
            update.updated_at = max(now_us(), update.updated_at, head_time + 1)
            if current_backup is not None:
                backup, current_backup = await current_backup, None
            else:
                backup = await self._write_backup(data)
            if info.latest_updates:
                info.latest_updates[0].backup_path = backup
            info.latest_updates.insert(0, update)
            _cap_ops_log(info, self._config.effective_num_updates_per_repo_info_file)
            new_data = encode_repo_info(
                info, compression_level=self._config.effective_compression_level
            )
            try:
                await self._storage.put_if_version(keys.REPO_INFO_KEY, new_data, version)
                self._repo_info_cache = (new_data, copy_repo_info(info))
                return info
            except PreconditionFailedError:
                await self._storage.delete([keys.backup_key(backup)])
                await asyncio.sleep(_backoff(attempt))
        raise IcechunkError(
            f"could not update the repo info file after {_MAX_REPO_UPDATE_TRIES} tries: "
            "too many concurrent writers"
        )

    # ------------------------------------------------------------------
    # branches

    def create_branch(self, branch: str, snapshot_id: str) -> None:
        """Create ``branch`` pointing at ``snapshot_id``."""
        run(self.create_branch_async(branch, snapshot_id))

    async def create_branch_async(self, branch: str, snapshot_id: str) -> None:
        _check_ref_name(branch, "branch")
        snapshot_id = normalize_id12(snapshot_id)

        def mutate(info: RepoInfo) -> Update:
            if branch in info.branches:
                raise AlreadyExistsError(f"branch {branch!r} already exists")
            _require_snapshot(info, snapshot_id)
            info.branches[branch] = snapshot_id
            return Update(UpdateKind.BRANCH_CREATED, 0, {"name": branch})

        await self._update_repo_info(mutate)

    def list_branches(self) -> set[str]:
        return run(self.list_branches_async())

    async def list_branches_async(self) -> set[str]:
        return set((await self._repo_info()).branches)

    def lookup_branch(self, branch: str) -> str:
        """The snapshot id at the tip of ``branch``."""
        return run(self.lookup_branch_async(branch))

    async def lookup_branch_async(self, branch: str) -> str:
        _check_ref_name(branch, "branch")
        return _branch_tip(await self._repo_info(), branch)

    def reset_branch(
        self, branch: str, snapshot_id: str, *, from_snapshot_id: str | None = None
    ) -> None:
        """Point ``branch`` at ``snapshot_id``.

        With ``from_snapshot_id`` the reset only happens if the branch still points
        there (compare and swap); otherwise :class:`ConflictError` is raised.
        """
        run(self.reset_branch_async(branch, snapshot_id, from_snapshot_id=from_snapshot_id))

    async def reset_branch_async(
        self, branch: str, snapshot_id: str, *, from_snapshot_id: str | None = None
    ) -> None:
        _check_ref_name(branch, "branch")
        snapshot_id = normalize_id12(snapshot_id)
        expected = normalize_id12(from_snapshot_id) if from_snapshot_id is not None else None

        def mutate(info: RepoInfo) -> Update:
            current = _branch_tip(info, branch)
            if expected is not None and current != expected:
                raise ConflictError(
                    f"branch {branch!r} points at {current}, not {expected}: not reset",
                    expected_parent=expected,
                    actual_parent=current,
                )
            _require_snapshot(info, snapshot_id)
            info.branches[branch] = snapshot_id
            return Update(UpdateKind.BRANCH_RESET, 0, {"name": branch, "previous_snap_id": current})

        await self._update_repo_info(mutate)

    def delete_branch(self, branch: str) -> None:
        run(self.delete_branch_async(branch))

    async def delete_branch_async(self, branch: str) -> None:
        _check_ref_name(branch, "branch")
        if branch == "main":
            raise InvalidInputError("the main branch cannot be deleted")

        def mutate(info: RepoInfo) -> Update:
            previous = _branch_tip(info, branch)
            del info.branches[branch]
            return Update(
                UpdateKind.BRANCH_DELETED, 0, {"name": branch, "previous_snap_id": previous}
            )

        await self._update_repo_info(mutate)

    # ------------------------------------------------------------------
    # tags

    def create_tag(self, tag: str, snapshot_id: str) -> None:
        """Create an immutable tag. A deleted tag's name can never be used again."""
        run(self.create_tag_async(tag, snapshot_id))

    async def create_tag_async(self, tag: str, snapshot_id: str) -> None:
        _check_ref_name(tag, "tag")
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
            _require_snapshot(info, snapshot_id)
            info.tags[tag] = snapshot_id
            return Update(UpdateKind.TAG_CREATED, 0, {"name": tag})

        await self._update_repo_info(mutate)

    def list_tags(self) -> set[str]:
        return run(self.list_tags_async())

    async def list_tags_async(self) -> set[str]:
        return set((await self._repo_info()).tags)

    def lookup_tag(self, tag: str) -> str:
        return run(self.lookup_tag_async(tag))

    async def lookup_tag_async(self, tag: str) -> str:
        _check_ref_name(tag, "tag")
        return _tag_target(await self._repo_info(), tag)

    def delete_tag(self, tag: str) -> None:
        run(self.delete_tag_async(tag))

    async def delete_tag_async(self, tag: str) -> None:
        _check_ref_name(tag, "tag")

        def mutate(info: RepoInfo) -> Update:
            if not flag_enabled(info, "delete_tag"):
                raise InvalidInputError("deleting tags is disabled by the delete_tag feature flag")
            previous = _tag_target(info, tag)
            del info.tags[tag]
            info.deleted_tags.add(tag)
            return Update(UpdateKind.TAG_DELETED, 0, {"name": tag, "previous_snap_id": previous})

        await self._update_repo_info(mutate)

    # ------------------------------------------------------------------
    # history

    def lookup_snapshot(self, snapshot_id: str) -> SnapshotInfo:
        return run(self.lookup_snapshot_async(snapshot_id))

    async def lookup_snapshot_async(self, snapshot_id: str) -> SnapshotInfo:
        snapshot_id = normalize_id12(snapshot_id)
        info = await self._repo_info()
        _require_snapshot(info, snapshot_id)
        return self._snapshot_info(info.snapshots[snapshot_id])

    def _snapshot_info(self, entry: SnapshotEntry) -> SnapshotInfo:
        def load() -> list[ManifestFileInfo]:
            return run(self._objects.snapshot(entry.id)).manifest_files

        return SnapshotInfo(
            entry.id,
            entry.parent_id,
            us_to_datetime(entry.flushed_at),
            entry.message,
            dict(entry.metadata),
            load,
        )

    def ancestry(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
    ) -> Iterator[SnapshotInfo]:
        """The history ending at a branch, tag or snapshot, newest first."""
        return iter(run(self._ancestry_async(branch=branch, tag=tag, snapshot_id=snapshot_id)))

    async def async_ancestry(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
    ) -> AsyncIterator[SnapshotInfo]:
        """Async version of :meth:`ancestry`."""
        for info in await self._ancestry_async(branch=branch, tag=tag, snapshot_id=snapshot_id):
            yield info

    def ancestry_graph(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
        plain: bool = False,
    ) -> AncestryGraph:
        """The history as a graph: of one ref, or of every branch and tag when none is given."""
        return run(
            self.ancestry_graph_async(branch=branch, tag=tag, snapshot_id=snapshot_id, plain=plain)
        )

    async def ancestry_graph_async(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
        plain: bool = False,
    ) -> AncestryGraph:
        info = await self._repo_info()
        if branch is None and tag is None and snapshot_id is None:
            starts = [*info.branches.values(), *info.tags.values()]
        else:
            starts = [_resolve_version(info, branch=branch, tag=tag, snapshot_id=snapshot_id)]
        return AncestryGraph.build(info, starts, plain)

    def log(self, branch: str = "main") -> Iterator[SnapshotInfo]:
        """Alias of ``ancestry(branch=branch)``."""
        return self.ancestry(branch=branch)

    async def _ancestry_async(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
    ) -> list[SnapshotInfo]:
        info = await self._repo_info()
        start = _resolve_version(info, branch=branch, tag=tag, snapshot_id=snapshot_id)
        return [self._snapshot_info(e) for e in _walk(info, start)]

    async def _resolve(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
        as_of: datetime | None = None,
    ) -> str:
        info = await self._repo_info()
        start = _resolve_version(info, branch=branch, tag=tag, snapshot_id=snapshot_id)
        if as_of is None:
            return start
        if not isinstance(as_of, datetime):
            raise InvalidInputError(f"as_of must be a datetime, got {type(as_of).__name__}")
        if as_of.tzinfo is None:
            as_of = as_of.astimezone(UTC)
        limit = int(as_of.timestamp() * 1_000_000)
        for entry in _walk(info, start):
            if entry.flushed_at <= limit:
                return entry.id
        raise SnapshotNotFoundError(f"no snapshot was written at or before {as_of.isoformat()}")

    # ------------------------------------------------------------------
    # sessions

    def readonly_session(
        self,
        branch: str | None = None,
        *,
        tag: str | None = None,
        snapshot_id: str | None = None,
        as_of: datetime | None = None,
    ) -> Session:
        """A read-only view of a branch, tag or snapshot (optionally as of a time)."""
        return run(
            self.readonly_session_async(branch, tag=tag, snapshot_id=snapshot_id, as_of=as_of)
        )

    async def readonly_session_async(
        self,
        branch: str | None = None,
        *,
        tag: str | None = None,
        snapshot_id: str | None = None,
        as_of: datetime | None = None,
    ) -> Session:
        from icechunk.session import Session

        if as_of is not None and branch is None:
            raise InvalidInputError("as_of needs a branch: readonly_session(branch, as_of=...)")
        sid = await self._resolve(branch=branch, tag=tag, snapshot_id=snapshot_id, as_of=as_of)
        snap = await self._objects.snapshot(sid)
        return Session(self, snap, branch=None, read_only=True)

    def writable_session(self, branch: str) -> Session:
        """A session that can change ``branch`` and commit to it."""
        return run(self.writable_session_async(branch))

    async def writable_session_async(self, branch: str) -> Session:
        from icechunk.session import Session

        _check_ref_name(branch, "branch")
        if self._spec_version != LATEST_SPEC_VERSION:
            raise UnsupportedSpecVersionError(
                f"this is a spec version {self._spec_version} repository, which this library "
                "opens read-only; upgrade it first with "
                "ic.upgrade_icechunk_repository(repo, dry_run=False)"
            )
        sid = _branch_tip(await self._repo_info(), branch)
        snap = await self._objects.snapshot(sid)
        return Session(self, snap, branch=branch, read_only=False)

    def rearrange_session(self, branch: str) -> Session:
        """A session that can only move and rename nodes (``session.move``)."""
        return run(self.rearrange_session_async(branch))

    async def rearrange_session_async(self, branch: str) -> Session:
        from icechunk.session import Session

        session = await self.writable_session_async(branch)
        info = await self._repo_info()
        if not flag_enabled(info, "move_node"):
            raise InvalidInputError("moving nodes is disabled by the move_node feature flag")
        return Session(self, session._snapshot, branch=branch, read_only=False, rearrange=True)

    # ------------------------------------------------------------------
    # diff

    def diff(
        self,
        *,
        from_branch: str | None = None,
        from_tag: str | None = None,
        from_snapshot_id: str | None = None,
        to_branch: str | None = None,
        to_tag: str | None = None,
        to_snapshot_id: str | None = None,
    ) -> Diff:
        """Changes from one version to a later one (which must descend from it)."""
        return run(
            self.diff_async(
                from_branch=from_branch,
                from_tag=from_tag,
                from_snapshot_id=from_snapshot_id,
                to_branch=to_branch,
                to_tag=to_tag,
                to_snapshot_id=to_snapshot_id,
            )
        )

    async def diff_async(self, **kwargs: str | None) -> Diff:
        info = await self._repo_info()
        old = _resolve_version(
            info,
            branch=kwargs.get("from_branch"),
            tag=kwargs.get("from_tag"),
            snapshot_id=kwargs.get("from_snapshot_id"),
        )
        new = _resolve_version(
            info,
            branch=kwargs.get("to_branch"),
            tag=kwargs.get("to_tag"),
            snapshot_id=kwargs.get("to_snapshot_id"),
        )
        between = []
        for entry in _walk(info, new):
            if entry.id == old:
                break
            between.append(entry.id)
        else:
            raise InvalidInputError(f"snapshot {old} is not an ancestor of {new}: cannot diff")
        logs = await asyncio.gather(*(self._objects.transaction_log(s) for s in between))
        old_snap, new_snap = await asyncio.gather(
            self._objects.snapshot(old), self._objects.snapshot(new)
        )
        return diff_from_logs(list(logs), old_snap, new_snap)


_PRIVATE = object()


# ----------------------------------------------------------------------
# helpers


def _check_storage(storage: object) -> None:
    if not isinstance(storage, Storage):
        raise InvalidInputError(
            f"expected an icechunk Storage (e.g. ic.local_filesystem_storage(path)), "
            f"got {type(storage).__name__}"
        )


def _with_storage_settings(storage: Storage, config: RepositoryConfig) -> Storage:
    """The storage configured by ``config.storage`` (a StorageSettings or its dict form)."""
    from icechunk.storage.settings import StorageSettings

    settings = config.storage
    if settings is None:
        return storage
    if isinstance(settings, dict):
        settings = StorageSettings.from_dict(settings)
    if not isinstance(settings, StorageSettings):
        raise InvalidInputError(
            f"config.storage must be an ic.StorageSettings, got {type(settings).__name__}"
        )
    return storage.with_settings(settings)


def _check_config(config: object) -> None:
    if config is not None and not isinstance(config, RepositoryConfig):
        raise InvalidInputError(
            f"config must be an ic.RepositoryConfig, got {type(config).__name__}"
        )


def _check_ref_name(name: object, kind: str) -> None:
    if not isinstance(name, str):
        raise InvalidInputError(f"{kind} name must be a str, got {type(name).__name__}")
    if not name or "/" in name:
        raise InvalidInputError(f"invalid {kind} name {name!r}: must be non-empty without '/'")


def _branch_tip(info: RepoInfo, branch: str) -> str:
    try:
        return info.branches[branch]
    except KeyError:
        raise BranchNotFoundError(
            f"branch {branch!r} not found; existing branches: {sorted(info.branches)}"
        ) from None


def _tag_target(info: RepoInfo, tag: str) -> str:
    try:
        return info.tags[tag]
    except KeyError:
        extra = " (it was deleted)" if tag in info.deleted_tags else ""
        raise TagNotFoundError(f"tag {tag!r} not found{extra}") from None


def _require_snapshot(info: RepoInfo, snapshot_id: str) -> None:
    if snapshot_id not in info.snapshots:
        raise SnapshotNotFoundError(f"snapshot {snapshot_id} not found in the repository")


def _resolve_version(
    info: RepoInfo,
    *,
    branch: str | None = None,
    tag: str | None = None,
    snapshot_id: str | None = None,
) -> str:
    given = [x for x in (branch, tag, snapshot_id) if x is not None]
    if len(given) != 1:
        raise InvalidInputError("give exactly one of branch=, tag= or snapshot_id=")
    if branch is not None:
        _check_ref_name(branch, "branch")
        return _branch_tip(info, branch)
    if tag is not None:
        _check_ref_name(tag, "tag")
        return _tag_target(info, tag)
    sid = normalize_id12(snapshot_id)  # type: ignore[arg-type]
    _require_snapshot(info, sid)
    return sid


def _walk(info: RepoInfo, start: str) -> Iterator[SnapshotEntry]:
    """``start`` and its ancestors, newest first (the walk expiration uses too)."""
    return ancestry(info, start)


def _backup_name() -> str:
    inverted = _BACKUP_EPOCH_MS - time.time_ns() // 1_000_000
    return f"repo.{inverted:014d}.{encode_base32(os.urandom(12))}"


def _backoff(attempt: int) -> float:
    if attempt < 3:
        return 0.0
    return random.uniform(0, min(0.5, 0.002 * 2 ** min(attempt, 10)))


def _cap_ops_log(info: RepoInfo, limit: int) -> None:
    if len(info.latest_updates) <= limit:
        return
    # Keep the newest entries; the last kept one with a backup points to older history.
    kept = info.latest_updates[:limit]
    for i in range(len(kept) - 1, 0, -1):
        if kept[i].backup_path is not None:
            info.repo_before_updates = kept[i].backup_path
            info.latest_updates = kept[:i]
            return
    info.latest_updates = kept


async def _detect_spec_version(storage: Storage) -> int | None:
    if await storage.exists(keys.REPO_INFO_KEY):
        return LATEST_SPEC_VERSION
    if await storage.exists(keys.v1_branch_key("main")):
        return 1
    return None


async def _fetch_config(storage: Storage, spec: int) -> RepositoryConfig | None:
    if spec == 1:
        from icechunk._core.spec_v1 import fetch_v1_config

        return await fetch_v1_config(storage)
    info = decode_repo_info(await storage.get(keys.REPO_INFO_KEY))
    if info.spec_version > LATEST_SPEC_VERSION:
        raise UnsupportedSpecVersionError(
            f"this repository uses Icechunk spec version {info.spec_version}, but this "
            f"library supports versions up to {LATEST_SPEC_VERSION}: upgrade the icechunk package"
        )
    if info.config is None:
        return None
    return RepositoryConfig.from_bytes(info.config)
