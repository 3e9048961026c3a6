"""RepoState: what every part of the engine shares about one open repository.

A :class:`RepoState` holds the storage, the effective configuration, the spec version, the
object cache and the authorised virtual chunk containers, and owns the one mutable object of
a repository: the repo info file, read through a decoding cache and changed only by
:meth:`RepoState.update_repo_info`, a compare-and-swap loop. ``Repository``, sessions, merges,
expiration, garbage collection, statistics and migration all work through this interface.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from icechunk._core import keys
from icechunk._core.config import RepositoryConfig
from icechunk._core.objects import RepoObjects
from icechunk._util.backoff import Backoff
from icechunk._util.clock import now_us
from icechunk.exceptions import (
    IcechunkError,
    InvalidInputError,
    ObjectNotFoundError,
    PreconditionFailedError,
    ReadOnlyError,
    RepositoryNotFoundError,
    UnsupportedSpecVersionError,
)
from icechunk.format.header import LATEST_SPEC_VERSION
from icechunk.format.ids import encode_base32
from icechunk.format.manifest import LocationCompression
from icechunk.format.repo_info import (
    Availability,
    RepoInfo,
    Update,
    copy_repo_info,
    decode_repo_info,
    encode_repo_info,
)
from icechunk.storage.base import Storage, Version

_BACKUP_EPOCH_MS = 32503680000000  # 3000-01-01T00:00:00Z: newer backups sort first
_MAX_REPO_UPDATE_TRIES = 200
#: retries of the repo-file swap: the first few at once, then full jitter up to half a second
REPO_UPDATE_BACKOFF = Backoff(base_s=0.002, cap_s=0.5, free_attempts=3, max_exponent=10)


@dataclass(frozen=True)
class RepoInfoRead:
    """The repo info file as just read: its bytes, their version and the decoded info."""

    data: bytes
    version: Version
    info: RepoInfo


class RepoState:
    """The shared state of one open repository (see the module docstring)."""

    def __init__(self, storage: Storage, config: RepositoryConfig, spec_version: int) -> None:
        self.storage = storage
        self.config = config
        self.spec_version = spec_version
        self.objects = RepoObjects(storage)
        #: url prefix -> credentials of the virtual chunk containers this client may read
        self.virtual_access: dict[str, Any] = {}
        #: metadata merged into every commit (``Repository.set_default_commit_metadata``)
        self.default_commit_metadata: dict[str, Any] = {}
        self._repo_info_cache: tuple[bytes, RepoInfo] | None = None
        self.authorize_virtual(None, warn=False)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "storage": self.storage,
            "config": self.config,
            "spec_version": self.spec_version,
            "virtual_access": self.virtual_access,
            "default_commit_metadata": self.default_commit_metadata,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["storage"], state["config"], state["spec_version"])  # type: ignore[misc]
        self.default_commit_metadata = state.get("default_commit_metadata", {})
        self.authorize_virtual(state.get("virtual_access"), warn=False)

    def with_config(self, config: RepositoryConfig) -> RepoState:
        """A new state on the same repository with ``config`` (storage settings applied)."""
        state = RepoState(with_storage_settings(self.storage, config), config, self.spec_version)
        state.default_commit_metadata = dict(self.default_commit_metadata)
        state.authorize_virtual(self.virtual_access, warn=False)
        return state

    def adopt_upgrade(self, spec_version: int, config: RepositoryConfig) -> None:
        """After a migration: the repository now has ``spec_version`` and ``config``."""
        self.spec_version = spec_version
        self.config = config
        self._repo_info_cache = None

    # -- virtual chunks ------------------------------------------------------------

    def authorize_virtual(self, authorize: Mapping[str, Any] | None, *, warn: bool = True) -> None:
        """Authorise virtual chunk containers (url_prefix -> credentials or None)."""
        from icechunk._virtual.resolver import resolver_for, warn_none_credentials

        if warn:
            warn_none_credentials(authorize)
        self.objects.virtual = resolver_for(self.config, authorize)
        self.virtual_access = dict(authorize or {})

    def location_compression(self) -> LocationCompression:
        """How new manifests compress virtual chunk locations (from the config)."""
        return LocationCompression.from_config(self.config.location_compression)

    # -- the repo info file ----------------------------------------------------------

    def require_writable_spec(self, what: str | None = None) -> None:
        """Refuse to write to a repository of an older spec version (it must be upgraded)."""
        if self.spec_version == LATEST_SPEC_VERSION:
            return
        start = f"cannot {what}: this" if what else "this"
        raise UnsupportedSpecVersionError(
            f"{start} is a spec version {self.spec_version} repository, which this library "
            "opens read-only; upgrade it first with "
            "ic.upgrade_icechunk_repository(repo, dry_run=False)"
        )

    async def repo_info(self) -> RepoInfo:
        """The current repo info (a private copy the caller may change)."""
        info, _ = await self.repo_info_with_version()
        return info

    async def repo_info_with_version(self) -> tuple[RepoInfo, Version | None]:
        """The current repo info and the version of its file (None for spec 1)."""
        if self.spec_version == 1:
            from icechunk._core.spec_v1 import load_v1_repo_info

            return await load_v1_repo_info(self.storage), None
        try:
            data, version = await self.storage.get_with_version(keys.REPO_INFO_KEY)
        except ObjectNotFoundError:
            raise RepositoryNotFoundError(
                f"the repo info file of {self.storage.describe()} has disappeared"
            ) from None
        info = self.decode_repo_info(data)
        if info.spec_version > LATEST_SPEC_VERSION:
            raise UnsupportedSpecVersionError(
                f"repository spec version {info.spec_version} is newer than this library "
                "supports; upgrade the icechunk package"
            )
        return info, version

    async def read_for_update(self) -> RepoInfoRead:
        """Read the repo info file to start a compare-and-swap from."""
        data, version = await self.storage.get_with_version(keys.REPO_INFO_KEY)
        return RepoInfoRead(data, version, self.decode_repo_info(data))

    def decode_repo_info(self, data: bytes) -> RepoInfo:
        """Decode the repo file, or copy the last decoding when the bytes are unchanged.

        A session and its commit read the file again and again, and it lists every
        snapshot: decoding it is most of a small commit's cost otherwise.
        """
        cached = self._repo_info_cache
        if cached is None or cached[0] != data:
            cached = self._repo_info_cache = (data, decode_repo_info(data))
        return copy_repo_info(cached[1])

    async def write_backup(self, data: bytes) -> str:
        """Keep a copy of a repo file about to be replaced; return its name."""
        backup = _backup_name()
        await self.storage.put_fresh(keys.backup_key(backup), data)  # referenced after the swap
        return backup

    async def update_repo_info(
        self,
        mutate: Callable[[RepoInfo], Update],
        *,
        allow_offline: bool = False,
        current: RepoInfoRead | None = None,
        current_backup: Awaitable[str] | None = None,
    ) -> RepoInfo:
        """Apply ``mutate`` to the latest repo info and swap it in atomically.

        ``mutate`` changes the info in place and returns the ops-log entry to add (its time
        is filled in here). It runs again on a fresh copy whenever another writer changed
        the file first, so it must only depend on its input. ``current`` is a just-read file
        to start from, and ``current_backup`` (from :meth:`write_backup`) the backup of
        those bytes if the caller already started writing it.
        """
        self.require_writable_spec()
        for attempt in range(_MAX_REPO_UPDATE_TRIES):
            read, current = current or await self.read_for_update(), None
            info = read.info
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
                backup = await self.write_backup(read.data)
            if info.latest_updates:
                info.latest_updates[0].backup_path = backup
            info.latest_updates.insert(0, update)
            _cap_ops_log(info, self.config.effective_num_updates_per_repo_info_file)
            new_data = encode_repo_info(
                info, compression_level=self.config.effective_compression_level
            )
            try:
                await self.storage.put_if_version(keys.REPO_INFO_KEY, new_data, read.version)
                self._repo_info_cache = (new_data, copy_repo_info(info))
                return info
            except PreconditionFailedError:
                await self.storage.delete([keys.backup_key(backup)])
                await REPO_UPDATE_BACKOFF.sleep(attempt)
        raise IcechunkError(
            f"could not update the repo info file after {_MAX_REPO_UPDATE_TRIES} tries: "
            "too many concurrent writers"
        )


def with_storage_settings(storage: Storage, config: RepositoryConfig) -> Storage:
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


async def detect_spec_version(storage: Storage) -> int | None:
    """The spec version of the repository at ``storage``, None if there is none."""
    if await storage.exists(keys.REPO_INFO_KEY):
        return LATEST_SPEC_VERSION
    if await storage.exists(keys.v1_branch_key("main")):
        return 1
    return None


async def fetch_config(storage: Storage, spec: int) -> RepositoryConfig | None:
    """The configuration persisted in the repository (None when it has none)."""
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


def _backup_name() -> str:
    inverted = _BACKUP_EPOCH_MS - time.time_ns() // 1_000_000
    return f"repo.{inverted:014d}.{encode_base32(os.urandom(12))}"


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


__all__ = [
    "RepoInfoRead",
    "RepoState",
    "detect_spec_version",
    "fetch_config",
    "with_storage_settings",
]
