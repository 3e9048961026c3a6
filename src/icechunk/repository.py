"""Repository: create and open, branches and tags, history, sessions, diffs.

The official ``icechunk.repository`` module: a façade over the engine's ``RepoState``
(``docs/architecture.md``). Each ``x_async`` method has a blocking twin ``x``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from icechunk._core import history, lifecycle, refs
from icechunk._core.config import RepositoryConfig
from icechunk._core.graph import AncestryGraph
from icechunk._core.history import Diff, SnapshotInfo
from icechunk._core.state import RepoState, detect_spec_version
from icechunk._core.versions import SpecVersion
from icechunk._maintenance.migration import upgrade_state
from icechunk._repository_admin import RepositoryAdminMethods
from icechunk._repository_maintenance import RepositoryMaintenanceMethods
from icechunk._util.debug import Attribution
from icechunk._util.sync import run
from icechunk.exceptions import IcechunkError, InvalidInputError, RepositoryExistsError
from icechunk.storage.base import Storage

if TYPE_CHECKING:
    from icechunk._core.conflicts import ConflictSolver
    from icechunk._core.session import Session
    from icechunk._core.store import IcechunkStore
    from icechunk.storage.settings import StorageSettings

__all__ = ["Diff", "Repository", "SnapshotInfo", "upgrade_icechunk_repository"]

_PRIVATE = object()


class Repository(RepositoryAdminMethods, RepositoryMaintenanceMethods):
    """An icechunk repository on some storage.

    Get one with :meth:`create`, :meth:`open` or :meth:`open_or_create`; it is cheap to
    keep, pickles (for dask and multiprocessing) and opens sessions for reading and writing.
    """

    def __init__(
        self, state: RepoState, attribution: Attribution | None = None, *, _token: object = None
    ) -> None:
        if _token is not _PRIVATE:
            raise IcechunkError(
                "use Repository.create(storage), Repository.open(storage) or "
                "Repository.open_or_create(storage) to get a Repository"
            )
        self._state = state
        self._attribution = attribution or Attribution()

    def __repr__(self) -> str:
        return f"<icechunk.Repository at {self._state.storage.describe()}>"

    def __dask_tokenize__(self) -> tuple[str, ...]:
        # Branches move: which version a Repository argument stands for is only known
        # when it is read, so two tokenizations must never collide.
        return ("icechunk.Repository", uuid.uuid4().hex)

    def __getstate__(self) -> dict[str, Any]:
        return {"state": self._state, "attribution": self._attribution}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._state = state["state"]
        self._attribution = state.get("attribution") or Attribution()

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
        attribution: Attribution | None = None,
    ) -> Repository:
        """Create a new repository; fails if one already exists at ``storage``.

        Parameters
        ----------
        storage
            Where the repository lives (``ic.local_filesystem_storage(path)``, ...).
        config
            The repository configuration; it is persisted in the repository.
        authorize_virtual_chunk_access
            Virtual chunk container url prefixes this client may read, each with its
            credentials (or None for anonymous access).
        spec_version
            The format version to write; only the latest (2) is supported.
        check_clean_root
            Require that the location holds no objects at all (the default).
        attribution
            Labels identifying this client (kept on the repository as ``attribution``).

        Returns
        -------
        Repository

        Raises
        ------
        RepositoryExistsError
            A repository already exists there.
        AlreadyExistsError
            ``check_clean_root`` and the location is not empty.
        InvalidInputError
            A bad storage, config or spec version.
        """
        return run(
            cls.create_async(
                storage,
                config,
                authorize_virtual_chunk_access,
                spec_version,
                check_clean_root,
                attribution,
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
        attribution: Attribution | None = None,
    ) -> Repository:
        """Async version of :meth:`create`."""
        state = await lifecycle.create_repository(storage, config, spec_version, check_clean_root)
        state.authorize_virtual(authorize_virtual_chunk_access)
        return cls(state, _check_attribution(attribution), _token=_PRIVATE)

    @classmethod
    def open(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        attribution: Attribution | None = None,
    ) -> Repository:
        """Open an existing repository.

        Parameters
        ----------
        storage
            Where the repository lives.
        config
            Settings merged over the configuration persisted in the repository.
        authorize_virtual_chunk_access
            Virtual chunk container url prefixes this client may read, with credentials.
        attribution
            Labels identifying this client.

        Returns
        -------
        Repository

        Raises
        ------
        RepositoryNotFoundError
            There is no repository at ``storage``.
        """
        return run(cls.open_async(storage, config, authorize_virtual_chunk_access, attribution))

    @classmethod
    async def open_async(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        attribution: Attribution | None = None,
    ) -> Repository:
        """Async version of :meth:`open`."""
        state = await lifecycle.open_repository(storage, config)
        state.authorize_virtual(authorize_virtual_chunk_access)
        return cls(state, _check_attribution(attribution), _token=_PRIVATE)

    @classmethod
    def open_or_create(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        create_version: int | None = None,
        attribution: Attribution | None = None,
    ) -> Repository:
        """Open the repository at ``storage``, creating it first if there is none.

        Parameters are those of :meth:`create` (``create_version`` is its
        ``spec_version``) and :meth:`open`.
        """
        return run(
            cls.open_or_create_async(
                storage, config, authorize_virtual_chunk_access, create_version, attribution
            )
        )

    @classmethod
    async def open_or_create_async(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        create_version: int | None = None,
        attribution: Attribution | None = None,
    ) -> Repository:
        """Async version of :meth:`open_or_create`."""
        lifecycle.check_storage(storage)
        if await detect_spec_version(storage) is None:
            try:
                return await cls.create_async(
                    storage,
                    config,
                    authorize_virtual_chunk_access,
                    spec_version=create_version,
                    check_clean_root=False,
                    attribution=attribution,
                )
            except RepositoryExistsError:
                pass  # someone else created it at the same moment
        return await cls.open_async(storage, config, authorize_virtual_chunk_access, attribution)

    @staticmethod
    def exists(storage: Storage, storage_settings: StorageSettings | None = None) -> bool:
        """Whether a repository exists at ``storage`` (read with ``storage_settings``)."""
        return run(Repository.exists_async(storage, storage_settings))

    @staticmethod
    async def exists_async(
        storage: Storage, storage_settings: StorageSettings | None = None
    ) -> bool:
        """Async version of :meth:`exists`."""
        storage = _with_settings(storage, storage_settings)
        return await detect_spec_version(storage) is not None

    @staticmethod
    def fetch_spec_version(
        storage: Storage, storage_settings: StorageSettings | None = None
    ) -> SpecVersion | None:
        """The format version of the repository at ``storage`` (None if there is none)."""
        return run(Repository.fetch_spec_version_async(storage, storage_settings))

    @staticmethod
    async def fetch_spec_version_async(
        storage: Storage, storage_settings: StorageSettings | None = None
    ) -> SpecVersion | None:
        """Async version of :meth:`fetch_spec_version`."""
        storage = _with_settings(storage, storage_settings)
        spec = await detect_spec_version(storage)
        return None if spec is None else SpecVersion(spec)

    @staticmethod
    def fetch_config(storage: Storage) -> RepositoryConfig | None:
        """The configuration persisted in the repository at ``storage``, if any."""
        return run(Repository.fetch_config_async(storage))

    @staticmethod
    async def fetch_config_async(storage: Storage) -> RepositoryConfig | None:
        """Async version of :meth:`fetch_config`."""
        return await lifecycle.persisted_config(storage)

    # ------------------------------------------------------------------
    # properties and config

    @property
    def storage(self) -> Storage:
        """The storage this repository lives on (with the config's storage settings)."""
        return self._state.storage

    @property
    def attribution(self) -> Attribution:
        """Labels identifying this client, as given to create/open."""
        return self._attribution

    @property
    def config(self) -> RepositoryConfig:
        """The effective configuration (persisted config merged with the one given)."""
        return self._state.config

    @property
    def spec_version(self) -> SpecVersion:
        """The format version of this repository."""
        return SpecVersion(self._state.spec_version)

    @property
    def authorized_virtual_container_prefixes(self) -> set[str]:
        """The url prefixes of the virtual chunk containers this repository may read."""
        return set(self._state.virtual_access)

    def save_config(self) -> None:
        """Persist this repository's configuration in the repository."""
        run(self.save_config_async())

    async def save_config_async(self) -> None:
        """Async version of :meth:`save_config`."""
        from icechunk._core.admin import save_config

        await save_config(self._state)

    def reopen(
        self,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
    ) -> Repository:
        """The same repository with ``config`` merged over this one's configuration.

        The authorised virtual chunk containers are kept unless
        ``authorize_virtual_chunk_access`` replaces them.
        """
        lifecycle.check_config(config)
        state = self._state.with_config(self._state.config.merge(config))
        if authorize_virtual_chunk_access is not None:
            state.authorize_virtual(authorize_virtual_chunk_access)
        return Repository(state, self._attribution, _token=_PRIVATE)

    async def reopen_async(
        self,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
    ) -> Repository:
        """Async version of :meth:`reopen`."""
        return self.reopen(config, authorize_virtual_chunk_access)

    # ------------------------------------------------------------------
    # branches and tags

    def create_branch(self, branch: str, snapshot_id: str) -> None:
        """Create ``branch`` pointing at ``snapshot_id``.

        Raises
        ------
        AlreadyExistsError
            The branch exists.
        SnapshotNotFoundError
            There is no such snapshot.
        """
        run(self.create_branch_async(branch, snapshot_id))

    async def create_branch_async(self, branch: str, snapshot_id: str) -> None:
        """Async version of :meth:`create_branch`."""
        await refs.create_branch(self._state, branch, snapshot_id)

    def list_branches(self) -> set[str]:
        """The names of every branch."""
        return run(self.list_branches_async())

    async def list_branches_async(self) -> set[str]:
        """Async version of :meth:`list_branches`."""
        return set((await self._state.repo_info()).branches)

    def lookup_branch(self, branch: str) -> str:
        """The snapshot id at the tip of ``branch`` (:class:`BranchNotFoundError` if none)."""
        return run(self.lookup_branch_async(branch))

    async def lookup_branch_async(self, branch: str) -> str:
        """Async version of :meth:`lookup_branch`."""
        refs.check_ref_name(branch, "branch")
        return refs.branch_tip(await self._state.repo_info(), branch)

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
        """Async version of :meth:`reset_branch`."""
        await refs.reset_branch(self._state, branch, snapshot_id, from_snapshot_id)

    def delete_branch(self, branch: str) -> None:
        """Delete ``branch`` (``main`` cannot be deleted)."""
        run(self.delete_branch_async(branch))

    async def delete_branch_async(self, branch: str) -> None:
        """Async version of :meth:`delete_branch`."""
        await refs.delete_branch(self._state, branch)

    def create_tag(self, tag: str, snapshot_id: str) -> None:
        """Create an immutable tag. A deleted tag's name can never be used again."""
        run(self.create_tag_async(tag, snapshot_id))

    async def create_tag_async(self, tag: str, snapshot_id: str) -> None:
        """Async version of :meth:`create_tag`."""
        await refs.create_tag(self._state, tag, snapshot_id)

    def list_tags(self) -> set[str]:
        """The names of every tag."""
        return run(self.list_tags_async())

    async def list_tags_async(self) -> set[str]:
        """Async version of :meth:`list_tags`."""
        return set((await self._state.repo_info()).tags)

    def lookup_tag(self, tag: str) -> str:
        """The snapshot id ``tag`` points at (:class:`TagNotFoundError` if none)."""
        return run(self.lookup_tag_async(tag))

    async def lookup_tag_async(self, tag: str) -> str:
        """Async version of :meth:`lookup_tag`."""
        refs.check_ref_name(tag, "tag")
        return refs.tag_target(await self._state.repo_info(), tag)

    def delete_tag(self, tag: str) -> None:
        """Delete ``tag``; its name can never be used again."""
        run(self.delete_tag_async(tag))

    async def delete_tag_async(self, tag: str) -> None:
        """Async version of :meth:`delete_tag`."""
        await refs.delete_tag(self._state, tag)

    # ------------------------------------------------------------------
    # history

    def lookup_snapshot(self, snapshot_id: str) -> SnapshotInfo:
        """The history entry of one snapshot."""
        return run(self.lookup_snapshot_async(snapshot_id))

    async def lookup_snapshot_async(self, snapshot_id: str) -> SnapshotInfo:
        """Async version of :meth:`lookup_snapshot`."""
        return await history.lookup_snapshot(self._state, snapshot_id)

    def ancestry(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
    ) -> Iterator[SnapshotInfo]:
        """The history ending at a branch, tag or snapshot (give exactly one), newest first."""
        infos = run(
            history.ancestry_infos(self._state, branch=branch, tag=tag, snapshot_id=snapshot_id)
        )
        return iter(infos)

    async def async_ancestry(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
    ) -> AsyncIterator[SnapshotInfo]:
        """Async version of :meth:`ancestry`."""
        infos = await history.ancestry_infos(
            self._state, branch=branch, tag=tag, snapshot_id=snapshot_id
        )
        for info in infos:
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
        """Async version of :meth:`ancestry_graph`."""
        info = await self._state.repo_info()
        if branch is None and tag is None and snapshot_id is None:
            starts = [*info.branches.values(), *info.tags.values()]
        else:
            starts = [refs.resolve_version(info, branch=branch, tag=tag, snapshot_id=snapshot_id)]
        return AncestryGraph.build(info, starts, plain)

    def log(self, branch: str = "main") -> Iterator[SnapshotInfo]:
        """Alias of ``ancestry(branch=branch)``."""
        return self.ancestry(branch=branch)

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
        """A read-only view of a branch, tag or snapshot (optionally as of a time).

        Parameters
        ----------
        branch, tag, snapshot_id
            Exactly one names the version to read.
        as_of
            With ``branch``: its newest snapshot written at or before this time.

        Returns
        -------
        Session
        """
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
        """Async version of :meth:`readonly_session`."""
        return await lifecycle.readonly_session(self, self._state, branch, tag, snapshot_id, as_of)

    def writable_session(self, branch: str) -> Session:
        """A session that can change ``branch`` and commit to it."""
        return run(self.writable_session_async(branch))

    async def writable_session_async(self, branch: str) -> Session:
        """Async version of :meth:`writable_session`."""
        return await lifecycle.writable_session(self, self._state, branch)

    def rearrange_session(self, branch: str) -> Session:
        """A session that can only move and rename nodes (``session.move``)."""
        return run(self.rearrange_session_async(branch))

    async def rearrange_session_async(self, branch: str) -> Session:
        """Async version of :meth:`rearrange_session`."""
        return await lifecycle.writable_session(self, self._state, branch, rearrange=True)

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
        session = self.writable_session(branch)
        yield session.store
        session.commit(message, metadata, rebase_with=rebase_with, rebase_tries=rebase_tries)

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
        """Changes from one version to a later one, which must descend from it.

        Give exactly one ``from_*`` and exactly one ``to_*``.
        """
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

    async def diff_async(
        self,
        *,
        from_branch: str | None = None,
        from_tag: str | None = None,
        from_snapshot_id: str | None = None,
        to_branch: str | None = None,
        to_tag: str | None = None,
        to_snapshot_id: str | None = None,
    ) -> Diff:
        """Async version of :meth:`diff`."""
        return await history.diff(
            self._state,
            from_branch=from_branch,
            from_tag=from_tag,
            from_snapshot_id=from_snapshot_id,
            to_branch=to_branch,
            to_tag=to_tag,
            to_snapshot_id=to_snapshot_id,
        )


def upgrade_icechunk_repository(
    repo: Repository,
    *,
    dry_run: bool,
    delete_unused_v1_files: bool = True,
    prefetch_concurrency: int | None = None,
) -> Repository:
    """Migrate a repository to the latest version of Icechunk (spec 1 -> spec 2).

    This is an administrative operation: run it while no other process reads or writes
    the repository. Only spec version 1 repositories (Icechunk 1.x) can be upgraded;
    anything else raises ``MigrationError`` (a :class:`~icechunk.SessionStateError`).

    Parameters
    ----------
    repo
        The repository to upgrade.
    dry_run
        If True, only compute and log (logger ``icechunk.migration``) what the upgrade
        would do; nothing is written.
    delete_unused_v1_files
        If True (the default), delete ``refs/`` and ``config.yaml`` after upgrading.
    prefetch_concurrency
        Number of snapshot files read concurrently (default 64).

    Returns
    -------
    Repository
        A freshly opened repository (spec version 2 after a real upgrade). The object
        passed in is updated to spec version 2 as well.
    """
    return run(
        upgrade_icechunk_repository_async(
            repo,
            dry_run=dry_run,
            delete_unused_v1_files=delete_unused_v1_files,
            prefetch_concurrency=prefetch_concurrency,
        )
    )


async def upgrade_icechunk_repository_async(
    repo: Repository,
    *,
    dry_run: bool,
    delete_unused_v1_files: bool = True,
    prefetch_concurrency: int | None = None,
) -> Repository:
    """Async version of :func:`upgrade_icechunk_repository`."""
    if not isinstance(repo, Repository):
        raise InvalidInputError(f"expected an icechunk Repository, got {type(repo).__name__}")
    state = repo._state  # this module's own class
    await upgrade_state(
        state,
        dry_run=dry_run,
        delete_unused_v1_files=delete_unused_v1_files,
        prefetch_concurrency=prefetch_concurrency,
    )
    return await Repository.open_async(state.storage)


def _check_attribution(attribution: object) -> Attribution | None:
    if attribution is None or isinstance(attribution, Attribution):
        return attribution
    raise InvalidInputError(
        f"attribution must be an ic.Attribution, got {type(attribution).__name__}"
    )


def _with_settings(storage: Storage, settings: StorageSettings | None) -> Storage:
    """``storage`` read with ``settings`` (the ``storage_settings`` of exists & co)."""
    from icechunk.storage.settings import StorageSettings

    lifecycle.check_storage(storage)
    if settings is None:
        return storage
    if not isinstance(settings, StorageSettings):
        raise InvalidInputError(
            f"storage_settings must be an ic.StorageSettings, got {type(settings).__name__}"
        )
    return storage.with_settings(settings)

