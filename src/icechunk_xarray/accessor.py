"""The ``.icechunk`` accessor on xarray Datasets and DataArrays.

::

    ds.icechunk.to_icechunk(session, append_dim="time")   # same as icechunk.xarray.to_icechunk
    ds.icechunk.snapshot_id                               # the version ds was read from
    ds.icechunk.diff(repo)                                # what changed on its branch since
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Iterable, Mapping, MutableMapping
from typing import Any

import xarray as xr

from icechunk.exceptions import InvalidInputError
from icechunk.repository import Repository
from icechunk.session import Session
from icechunk_xarray.diff import VersionDiff, diff

__all__ = ["IcechunkDataArrayAccessor", "IcechunkDatasetAccessor", "register_accessors"]

ACCESSOR_NAME = "icechunk"


class _Accessor:
    _obj: xr.Dataset | xr.DataArray

    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    def to_icechunk(
        self,
        session: Session,
        *,
        group: str | None = None,
        mode: Any = None,
        safe_chunks: bool = True,
        align_chunks: bool = False,
        append_dim: Hashable | None = None,
        region: Any = None,
        encoding: Mapping[Any, Any] | None = None,
        split_every: int | None = None,
        chunkmanager_store_kwargs: MutableMapping[Any, Any] | None = None,
    ) -> None:
        """Write to a writable session; see :func:`icechunk.xarray.to_icechunk`.

        Nothing is committed: call ``session.commit(message)`` afterwards.
        """
        from icechunk_xarray.write import to_icechunk

        to_icechunk(
            self._obj,
            session,
            group=group,
            mode=mode,
            safe_chunks=safe_chunks,
            align_chunks=align_chunks,
            append_dim=append_dim,
            region=region,
            encoding=encoding,
            split_every=split_every,
            chunkmanager_store_kwargs=chunkmanager_store_kwargs,
        )

    # the version this object was read from (set by engine="icechunk")

    def _encoding(self) -> Mapping[str, Any]:
        return self._obj.encoding

    @property
    def snapshot_id(self) -> str | None:
        """The snapshot this object was read from with ``engine="icechunk"`` (else None)."""
        return self._encoding().get("icechunk_snapshot_id")

    @property
    def branch(self) -> str | None:
        """The branch named when it was opened with ``engine="icechunk"`` (else None)."""
        return self._encoding().get("icechunk_branch")

    @property
    def group(self) -> str | None:
        return self._encoding().get("icechunk_group")

    def _names(self) -> Iterable[str] | None:
        return None

    def diff(
        self,
        repo: Repository | Session,
        *,
        from_branch: str | None = None,
        from_tag: str | None = None,
        from_snapshot_id: str | None = None,
        to_branch: str | None = None,
        to_tag: str | None = None,
        to_snapshot_id: str | None = None,
        group: str | None = None,
    ) -> VersionDiff:
        """What changed, per variable, between two versions of ``repo``.

        Defaults for an object read with ``engine="icechunk"``: *from* the snapshot it was
        read from, *to* the current tip of the branch it was read from (``main`` if it was
        opened by tag or snapshot), in the group it was read from. So ``ds.icechunk.diff(repo)``
        answers "what has been committed since I opened this?".
        """
        if isinstance(repo, Session):
            repo = repo.repository
        if from_branch is None and from_tag is None and from_snapshot_id is None:
            from_snapshot_id = self.snapshot_id
            if from_snapshot_id is None:
                raise InvalidInputError(
                    "this object was not opened with engine='icechunk': give from_branch=, "
                    "from_tag= or from_snapshot_id="
                )
        if to_branch is None and to_tag is None and to_snapshot_id is None:
            to_branch = self.branch or "main"
        if group is None:
            group = self.group
        return diff(
            repo,
            from_branch=from_branch,
            from_tag=from_tag,
            from_snapshot_id=from_snapshot_id,
            to_branch=to_branch,
            to_tag=to_tag,
            to_snapshot_id=to_snapshot_id,
            group=group,
            variables=self._names(),
        )


class IcechunkDatasetAccessor(_Accessor):
    """``ds.icechunk``: write to Icechunk, and compare the versions a dataset came from."""

    _obj: xr.Dataset


class IcechunkDataArrayAccessor(_Accessor):
    """``da.icechunk``: write to Icechunk; ``diff`` reports on this variable only."""

    _obj: xr.DataArray

    def _encoding(self) -> Mapping[str, Any]:
        # a DataArray taken from a dataset keeps only the variable's encoding; the version
        # information lives on the dataset, so it is only there for DataArrays that carry it
        return self._obj.encoding

    def _names(self) -> Iterable[str] | None:
        return [str(self._obj.name)] if self._obj.name is not None else None


def _registered(cls: type, accessor: type) -> bool:
    return getattr(getattr(cls, ACCESSOR_NAME, None), "__name__", None) == accessor.__name__


def register_accessors() -> None:
    """Register ``.icechunk`` on Dataset and DataArray (idempotent)."""
    for cls, accessor, register in (
        (xr.Dataset, IcechunkDatasetAccessor, xr.register_dataset_accessor),
        (xr.DataArray, IcechunkDataArrayAccessor, xr.register_dataarray_accessor),
    ):
        if _registered(cls, accessor):
            continue
        with warnings.catch_warnings():
            # xarray warns when a name is registered again (module reloads)
            warnings.simplefilter("ignore", xr.core.extensions.AccessorRegistrationWarning)
            register(ACCESSOR_NAME)(accessor)
