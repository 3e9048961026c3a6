"""The administrative methods of :class:`~icechunk.Repository`: repository metadata, status,
feature flags, the operations log, manifest listings and inspection.

A façade like ``repository.py``: each method checks its arguments and calls the engine
(``_core.admin``, ``_maintenance.inspect``) through the repository's ``RepoState``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from icechunk._core import admin
from icechunk._core.ops import FeatureFlag, RepoStatus, Update, feature_flags, status_from_raw
from icechunk._core.state import RepoState
from icechunk._maintenance import inspect
from icechunk._util.sync import run
from icechunk.format.ids import normalize_id12
from icechunk.format.snapshot import ManifestFileInfo
from icechunk.format.values import encode_metadata_items


class RepositoryAdminMethods:
    """Administrative operations on the repo info file (a part of ``Repository``)."""

    _state: RepoState

    # -- commit metadata defaults -----------------------------------------

    def set_default_commit_metadata(self, metadata: dict[str, Any]) -> None:
        """Metadata merged into every commit of sessions created from now on."""
        encode_metadata_items(metadata)  # validates
        self._state.default_commit_metadata = dict(metadata)

    def default_commit_metadata(self) -> dict[str, Any]:
        """The metadata merged into every commit (see set_default_commit_metadata)."""
        return dict(self._state.default_commit_metadata)

    # -- repository metadata ------------------------------------------------

    def get_metadata(self) -> dict[str, Any]:
        return run(self.get_metadata_async())

    async def get_metadata_async(self) -> dict[str, Any]:
        return dict((await self._state.repo_info()).metadata)

    @property
    def metadata(self) -> dict[str, Any]:
        return self.get_metadata()

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        """Replace the repository-level metadata."""
        run(self.set_metadata_async(metadata))

    async def set_metadata_async(self, metadata: dict[str, Any]) -> None:
        await admin.set_metadata(self._state, metadata)

    def update_metadata(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """Merge ``metadata`` into the repository metadata; returns the result."""
        return run(self.update_metadata_async(metadata))

    async def update_metadata_async(self, metadata: dict[str, Any]) -> dict[str, Any]:
        return await admin.update_metadata(self._state, metadata)

    # -- status ----------------------------------------------------------------

    def get_status(self) -> RepoStatus:
        return run(self.get_status_async())

    async def get_status_async(self) -> RepoStatus:
        return status_from_raw((await self._state.repo_info()).status)

    @property
    def status(self) -> RepoStatus:
        return self.get_status()

    def set_status(self, status: RepoStatus) -> None:
        """Make the repository read-only (or online again)."""
        run(self.set_status_async(status))

    async def set_status_async(self, status: RepoStatus) -> None:
        await admin.set_status(self._state, status)

    # -- feature flags ---------------------------------------------------------

    def feature_flags(self) -> list[FeatureFlag]:
        return run(self.feature_flags_async())

    async def feature_flags_async(self) -> list[FeatureFlag]:
        return feature_flags(await self._state.repo_info())

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
        await admin.set_feature_flag(self._state, name, setting)

    # -- ops log ---------------------------------------------------------------

    def ops_log(self) -> Iterator[Update]:
        """Every administrative change of the repository, newest first."""
        return iter(run(admin.ops_log(self._state)))

    async def ops_log_async(self) -> AsyncIterator[Update]:
        for update in await admin.ops_log(self._state):
            yield update

    # -- manifests --------------------------------------------------------------

    def list_manifest_files(self, snapshot_id: str) -> list[ManifestFileInfo]:
        return run(self.list_manifest_files_async(snapshot_id))

    async def list_manifest_files_async(self, snapshot_id: str) -> list[ManifestFileInfo]:
        snap = await self._state.objects.snapshot(normalize_id12(snapshot_id))
        return list(snap.manifest_files)

    # -- inspection ---------------------------------------------------------------

    async def inspect_repo_info_async(self) -> dict[str, Any]:
        return await inspect.repo_info(self._state.storage)

    def inspect_repo_info(self) -> dict[str, Any]:
        """The decoded repo info file, as the official package renders it."""
        return run(inspect.repo_info(self._state.storage))

    async def inspect_snapshot_async(self, snapshot_id: str) -> dict[str, Any]:
        return await inspect.snapshot(self._state.storage, normalize_id12(snapshot_id))

    def inspect_snapshot(self, snapshot_id: str) -> dict[str, Any]:
        return run(inspect.snapshot(self._state.storage, normalize_id12(snapshot_id)))

    async def inspect_manifest_async(self, manifest_id: str) -> dict[str, Any]:
        return await inspect.manifest(self._state.storage, normalize_id12(manifest_id))

    def inspect_manifest(self, manifest_id: str) -> dict[str, Any]:
        return run(inspect.manifest(self._state.storage, normalize_id12(manifest_id)))

    async def inspect_transaction_log_async(self, snapshot_id: str) -> dict[str, Any]:
        return await inspect.transaction_log(self._state.storage, normalize_id12(snapshot_id))

    def inspect_transaction_log(self, snapshot_id: str) -> dict[str, Any]:
        return run(inspect.transaction_log(self._state.storage, normalize_id12(snapshot_id)))
