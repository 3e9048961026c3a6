"""Repository-level metadata, status, feature flags and the operations log.

A mixin of :class:`~icechunk.Repository`, kept apart so each module has one job.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from icechunk._core import keys
from icechunk._core.ops import KNOWN_FEATURE_FLAGS, FeatureFlag, RepoStatus, Update
from icechunk._util.sync import run
from icechunk.exceptions import InvalidInputError, ObjectNotFoundError
from icechunk.format.ids import normalize_id12
from icechunk.format.repo_info import RepoInfo, UpdateKind, decode_repo_info
from icechunk.format.repo_info import Update as RawUpdate
from icechunk.format.snapshot import ManifestFileInfo
from icechunk.format.values import encode_metadata_items

if TYPE_CHECKING:
    from icechunk._core.conflicts import ConflictSolver
    from icechunk.store import IcechunkStore


class RepositoryAdmin:
    """Administrative operations on the repo info file."""

    _default_commit_metadata: dict[str, Any]

    # -- commit metadata defaults -----------------------------------------

    def set_default_commit_metadata(self, metadata: dict[str, Any]) -> None:
        """Metadata merged into every commit of sessions created from now on."""
        encode_metadata_items(metadata)  # validates
        self._default_commit_metadata = dict(metadata)

    def default_commit_metadata(self) -> dict[str, Any]:
        """The metadata merged into every commit (see set_default_commit_metadata)."""
        return dict(getattr(self, "_default_commit_metadata", {}))

    # -- repository metadata ------------------------------------------------

    def get_metadata(self) -> dict[str, Any]:
        return run(self.get_metadata_async())

    async def get_metadata_async(self) -> dict[str, Any]:
        return dict((await self._repo_info()).metadata)  # type: ignore[attr-defined]

    @property
    def metadata(self) -> dict[str, Any]:
        return self.get_metadata()

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        """Replace the repository-level metadata."""
        run(self.set_metadata_async(metadata))

    async def set_metadata_async(self, metadata: dict[str, Any]) -> None:
        encode_metadata_items(metadata)

        def mutate(info: RepoInfo) -> RawUpdate:
            info.metadata = dict(metadata)
            return RawUpdate(UpdateKind.METADATA_CHANGED, 0)

        await self._update_repo_info(mutate)  # type: ignore[attr-defined]

    def update_metadata(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """Merge ``metadata`` into the repository metadata; returns the result."""
        return run(self.update_metadata_async(metadata))

    async def update_metadata_async(self, metadata: dict[str, Any]) -> dict[str, Any]:
        encode_metadata_items(metadata)
        result: dict[str, Any] = {}

        def mutate(info: RepoInfo) -> RawUpdate:
            info.metadata = {**info.metadata, **metadata}
            result.clear()
            result.update(info.metadata)
            return RawUpdate(UpdateKind.METADATA_CHANGED, 0)

        await self._update_repo_info(mutate)  # type: ignore[attr-defined]
        return result

    # -- status ----------------------------------------------------------------

    def get_status(self) -> RepoStatus:
        return run(self.get_status_async())

    async def get_status_async(self) -> RepoStatus:
        return RepoStatus._from_raw((await self._repo_info()).status)  # type: ignore[attr-defined]

    @property
    def status(self) -> RepoStatus:
        return self.get_status()

    def set_status(self, status: RepoStatus) -> None:
        """Make the repository read-only (or online again)."""
        run(self.set_status_async(status))

    async def set_status_async(self, status: RepoStatus) -> None:
        if not isinstance(status, RepoStatus):
            raise InvalidInputError(f"status must be an ic.RepoStatus, got {type(status).__name__}")
        raw = status._to_raw()

        def mutate(info: RepoInfo) -> RawUpdate:
            info.status = raw
            return RawUpdate(UpdateKind.REPO_STATUS_CHANGED, 0, {"status": raw})

        await self._update_repo_info(mutate, allow_offline=True)  # type: ignore[attr-defined]

    # -- feature flags ---------------------------------------------------------

    def feature_flags(self) -> list[FeatureFlag]:
        return run(self.feature_flags_async())

    async def feature_flags_async(self) -> list[FeatureFlag]:
        info = await self._repo_info()  # type: ignore[attr-defined]
        return _flags(info)

    def enabled_feature_flags(self) -> list[FeatureFlag]:
        return [f for f in self.feature_flags() if f.enabled]

    def disabled_feature_flags(self) -> list[FeatureFlag]:
        return [f for f in self.feature_flags() if not f.enabled]

    async def enabled_feature_flags_async(self) -> list[FeatureFlag]:
        return [f for f in await self.feature_flags_async() if f.enabled]

    async def disabled_feature_flags_async(self) -> list[FeatureFlag]:
        return [f for f in await self.feature_flags_async() if not f.enabled]

    def set_feature_flag(self, name: str, setting: bool | None) -> None:
        """Enable (True), disable (False) or reset to the default (None) a feature."""
        run(self.set_feature_flag_async(name, setting))

    async def set_feature_flag_async(self, name: str, setting: bool | None) -> None:
        ids = {n: i for i, (n, _) in KNOWN_FEATURE_FLAGS.items()}
        if name not in ids:
            raise InvalidInputError(f"unknown feature flag {name!r}; known: {sorted(ids)}")
        flag = ids[name]

        def mutate(info: RepoInfo) -> RawUpdate:
            enabled = set(info.enabled_feature_flags or [])
            disabled = set(info.disabled_feature_flags or [])
            enabled.discard(flag)
            disabled.discard(flag)
            if setting is True:
                enabled.add(flag)
            elif setting is False:
                disabled.add(flag)
            info.enabled_feature_flags = sorted(enabled) or None
            info.disabled_feature_flags = sorted(disabled) or None
            return RawUpdate(
                UpdateKind.FEATURE_FLAG_CHANGED,
                0,
                {"id": flag, "new_value": bool(setting), "is_set": setting is not None},
            )

        await self._update_repo_info(mutate)  # type: ignore[attr-defined]

    # -- ops log ---------------------------------------------------------------

    def ops_log(self) -> Iterator[Update]:
        """Every administrative change of the repository, newest first."""
        return iter(run(self._ops_log_list()))

    async def ops_log_async(self) -> AsyncIterator[Update]:
        for update in await self._ops_log_list():
            yield update

    async def _ops_log_list(self) -> list[Update]:
        info = await self._repo_info()  # type: ignore[attr-defined]
        out = [Update._from_raw(u) for u in info.latest_updates]
        older = info.repo_before_updates
        seen = set()
        while older is not None and older not in seen:
            seen.add(older)
            try:
                data = await self._storage.get(keys.backup_key(older))  # type: ignore[attr-defined]
            except ObjectNotFoundError:
                break  # expired history: the log ends here
            backup = decode_repo_info(data)
            out.extend(Update._from_raw(u) for u in backup.latest_updates[1:])
            older = backup.repo_before_updates
        return out

    # -- manifests --------------------------------------------------------------

    def list_manifest_files(self, snapshot_id: str) -> list[ManifestFileInfo]:
        return run(self.list_manifest_files_async(snapshot_id))

    async def list_manifest_files_async(self, snapshot_id: str) -> list[ManifestFileInfo]:
        snap = await self._objects.snapshot(normalize_id12(snapshot_id))  # type: ignore[attr-defined]
        return list(snap.manifest_files)

    # -- inspection ---------------------------------------------------------------

    async def inspect_repo_info_async(self) -> dict[str, Any]:
        from icechunk._maintenance import inspect

        return await inspect.repo_info(self._storage)  # type: ignore[attr-defined]

    def inspect_repo_info(self) -> dict[str, Any]:
        """The decoded repo info file, as the official package renders it."""
        from icechunk._maintenance import inspect

        return run(inspect.repo_info(self._storage))  # type: ignore[attr-defined]

    async def inspect_snapshot_async(self, snapshot_id: str) -> dict[str, Any]:
        from icechunk._maintenance import inspect

        return await inspect.snapshot(self._storage, normalize_id12(snapshot_id))  # type: ignore[attr-defined]

    def inspect_snapshot(self, snapshot_id: str) -> dict[str, Any]:
        from icechunk._maintenance import inspect

        return run(inspect.snapshot(self._storage, normalize_id12(snapshot_id)))  # type: ignore[attr-defined]

    async def inspect_manifest_async(self, manifest_id: str) -> dict[str, Any]:
        from icechunk._maintenance import inspect

        return await inspect.manifest(self._storage, normalize_id12(manifest_id))  # type: ignore[attr-defined]

    def inspect_manifest(self, manifest_id: str) -> dict[str, Any]:
        from icechunk._maintenance import inspect

        return run(inspect.manifest(self._storage, normalize_id12(manifest_id)))  # type: ignore[attr-defined]

    async def inspect_transaction_log_async(self, snapshot_id: str) -> dict[str, Any]:
        from icechunk._maintenance import inspect

        return await inspect.transaction_log(self._storage, normalize_id12(snapshot_id))  # type: ignore[attr-defined]

    def inspect_transaction_log(self, snapshot_id: str) -> dict[str, Any]:
        from icechunk._maintenance import inspect

        return run(inspect.transaction_log(self._storage, normalize_id12(snapshot_id)))  # type: ignore[attr-defined]

    # -- transactions -----------------------------------------------------------

    @contextlib.contextmanager
    def transaction(
        self,
        branch: str,
        *,
        message: str,
        metadata: dict[str, Any] | None = None,
        rebase_with: ConflictSolver | None = None,
        rebase_tries: int = 1_000,
    ) -> Iterator[IcechunkStore]:
        """A writable store that commits when the block ends without an exception."""
        session = self.writable_session(branch)  # type: ignore[attr-defined]
        yield session.store
        session.commit(message, metadata, rebase_with=rebase_with, rebase_tries=rebase_tries)


def _flags(info: RepoInfo) -> list[FeatureFlag]:
    enabled = set(info.enabled_feature_flags or [])
    disabled = set(info.disabled_feature_flags or [])
    out = []
    for flag_id, (name, default) in sorted(KNOWN_FEATURE_FLAGS.items()):
        setting = True if flag_id in enabled else False if flag_id in disabled else None
        out.append(FeatureFlag(flag_id, name, default, setting))
    return out


def flag_enabled(info: RepoInfo, name: str) -> bool:
    return next(f.enabled for f in _flags(info) if f.name == name)
