"""Write xarray objects into an Icechunk session: :func:`to_icechunk`.

``to_icechunk(ds, session)`` is ``ds.to_zarr(session.store)`` made safe for parallel writes:

1. xarray's own Zarr backend (:class:`xarray.backends.zarr.ZarrStore`) creates or resizes the
   arrays, writes their metadata and attributes (CF encodings included), and writes every
   in-memory (numpy-backed) variable straight through ``session.store``;
2. dask-backed variables are written through a fork of the session (``session.fork()``) by
   :func:`icechunk.dask.store_dask`, on whatever scheduler is active (threads, processes or a
   ``distributed`` cluster); the forks the tasks wrote through are merged back into ``session``.

Nothing is committed: call ``session.commit(...)`` afterwards. Several ``to_icechunk`` calls
(an initial write and appends, writes to several groups ...) can share one session and
become one commit.
"""

from __future__ import annotations

import inspect
from collections.abc import Hashable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Literal

import xarray as xr
import zarr
from xarray.backends.zarr import ZarrStore

from icechunk.exceptions import InvalidInputError, ReadOnlyError
from icechunk.session import Session
from icechunk.store import IcechunkStore

try:  # xarray >= 2025.09 moved the writing helpers out of backends.api
    from xarray.backends.writers import _validate_dataset_names, dump_to_store
except ImportError:  # pragma: no cover - older xarray
    from xarray.backends.api import (  # type: ignore[attr-defined,no-redef]
        _validate_dataset_names,
        dump_to_store,
    )

if TYPE_CHECKING:
    from icechunk._core.fork import ForkSession

__all__ = ["to_icechunk"]

ZarrWriteModes = Literal["w", "w-", "a", "a-", "r+", "r"]
Region = Mapping[str, slice | Literal["auto"]] | Literal["auto"] | None

# the names xarray's DataArray.to_zarr / open_dataarray use for an unnamed DataArray
_DATAARRAY_NAME = "__xarray_dataarray_name__"
_DATAARRAY_VARIABLE = "__xarray_dataarray_variable__"

# keyword arguments of ZarrStore.open_group that appeared in later xarray versions
_OPEN_GROUP_PARAMS = frozenset(inspect.signature(ZarrStore.open_group).parameters)

# dask.array.store arguments that to_icechunk decides itself
_FORCED_STORE_KWARGS = ("load_stored", "return_stored")
# ... and those it cannot honour: the write always runs now, without locks (forks need none)
_REFUSED_STORE_KWARGS = ("compute", "lock")


def to_icechunk(
    obj: xr.DataArray | xr.Dataset,
    session: Session,
    *,
    group: str | None = None,
    mode: ZarrWriteModes | None = None,
    safe_chunks: bool = True,
    align_chunks: bool = False,
    append_dim: Hashable | None = None,
    region: Region = None,
    encoding: Mapping[Any, Any] | None = None,
    split_every: int | None = None,
    chunkmanager_store_kwargs: MutableMapping[Any, Any] | None = None,
) -> None:
    """Write a Dataset or DataArray to a group of a writable Icechunk session.

    The data (numpy- or dask-backed) is written, but not committed: call
    ``session.commit(message)`` when done.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        What to write. An unnamed DataArray is stored under xarray's usual placeholder name,
        so ``xr.open_dataarray`` reads it back.
    session : icechunk.Session
        A writable session (``repo.writable_session(branch)``), or a fork of one.
    group : str, optional
        The group to write to (created if needed); the root group by default.
    mode : {"w", "w-", "a", "a-", "r+"}, optional
        - ``"w"``: create, replacing whatever the group held;
        - ``"w-"``: create, failing if the group already holds data;
        - ``"a"``: overwrite the variables written (dimension coordinates included), add new
          ones, and append along ``append_dim`` if it is given;
        - ``"a-"``: like ``"a"`` but, with ``append_dim``, leaves the variables that lack
          that dimension untouched;
        - ``"r+"``: change existing values only, no metadata or shape change.

        The default is ``"a"`` when ``append_dim`` is given, ``"r+"`` when ``region`` is
        given, and ``"w-"`` otherwise.
    safe_chunks : bool, default True
        Refuse dask chunks that would share a Zarr chunk between two tasks (and, in mode
        ``"r+"``, region writes that cover Zarr chunks only partly).
    align_chunks : bool, default False
        Rechunk dask arrays to line up with the Zarr chunks before writing (implies
        ``safe_chunks=False``). Needs xarray >= 2025.06.
    append_dim : hashable, optional
        The dimension to append along; every other dimension must keep its size.
    region : dict or "auto", optional
        Where in the existing arrays to write: ``{dim: slice(start, stop)}``, with
        ``"auto"`` for a dimension (or for all of them) to find the slice from the
        coordinate values already stored. Every variable must share a dimension with the
        region; indexed coordinates are not rewritten.
    encoding : dict, optional
        Per-variable encodings for new variables, e.g.
        ``{"t2m": {"dtype": "int16", "scale_factor": 0.01, "chunks": (1, 90, 180)}}``.
    split_every : int, optional
        How many forks each merge task combines in the tree reduction of a dask write.
    chunkmanager_store_kwargs : dict, optional
        Extra keyword arguments for ``dask.array.store``. ``load_stored`` and
        ``return_stored`` are set here (and ignored); ``compute`` and ``lock`` are refused.

    Notes
    -----
    Dask-backed variables are written through ``session.fork()`` and merged back with
    ``session.merge``, so the tasks can run anywhere that reaches the repository's storage
    (a ``distributed`` cluster included). Because the session itself is updated, several
    ``to_icechunk`` calls (including appends that resize arrays) can go into one commit.

    If a write fails part-way (a chunk-alignment error found after some arrays were
    created, a merge conflict between dask tasks ...), the session keeps what was written
    before the failure: ``session.discard_changes()`` to start again.
    """
    dataset = _as_dataset(obj)
    store = _writable_store(session)
    _check_dask_arguments(split_every, chunkmanager_store_kwargs)
    writer = _DatasetWriter(dataset, store, safe_chunks=safe_chunks, align_chunks=align_chunks)
    writer.open(group=group, mode=mode, append_dim=append_dim, region=region)
    writer.write_metadata(encoding)
    writer.write_eager()
    if writer.has_lazy:
        writer.write_lazy(
            store.session,
            split_every=split_every,
            chunkmanager_store_kwargs=chunkmanager_store_kwargs,
        )


# ----------------------------------------------------------------------
# helpers


def _as_dataset(obj: Any) -> xr.Dataset:
    """The Dataset that ``DataArray.to_zarr`` would write for ``obj``."""
    if isinstance(obj, xr.Dataset):
        return obj
    if not isinstance(obj, xr.DataArray):
        raise TypeError(
            f"to_icechunk writes an xarray Dataset or DataArray, got {type(obj).__name__}"
        )
    if obj.name is None:
        return obj.to_dataset(name=_DATAARRAY_VARIABLE)
    if obj.name in obj.coords or obj.name in obj.dims:
        # a variable cannot share its name with a coordinate: store it under the
        # placeholder and remember the real name, as xarray does
        dataset = obj.to_dataset(name=_DATAARRAY_VARIABLE)
        dataset.attrs[_DATAARRAY_NAME] = obj.name
        return dataset
    return obj.to_dataset()


def _writable_store(session: Any) -> IcechunkStore:
    if isinstance(session, IcechunkStore):
        session = session.session
    if not isinstance(session, Session):
        raise TypeError(
            "to_icechunk writes into an icechunk Session (repo.writable_session(branch)), "
            f"got {type(session).__name__}"
        )
    if session.read_only:
        raise ReadOnlyError(
            "to_icechunk needs a writable session: repo.writable_session(branch), "
            "not readonly_session(...)"
        )
    return session.store


def _check_dask_arguments(split_every: int | None, store_kwargs: Mapping[Any, Any] | None) -> None:
    """Refuse what store_dask would refuse before anything is written to the session."""
    if split_every is not None and split_every < 2:
        raise InvalidInputError("split_every must be at least 2")
    for name in _REFUSED_STORE_KWARGS:
        if name in (store_kwargs or {}):
            raise InvalidInputError(
                f"to_icechunk does not support {name!r} in chunkmanager_store_kwargs"
            )


def _is_dask(data: Any) -> bool:
    try:
        from dask.base import is_dask_collection
    except ImportError:  # pragma: no cover - dask is optional
        return False
    return bool(is_dask_collection(data))


class _SplitWriter:
    """Collects what xarray's ZarrStore asks to write, in-memory and lazy sources apart.

    Stands in for :class:`xarray.backends.common.ArrayWriter` (only ``add`` is called).
    """

    def __init__(self) -> None:
        self.eager: list[tuple[Any, zarr.Array, tuple[slice, ...] | None]] = []
        self.lazy: list[tuple[Any, zarr.Array, tuple[slice, ...] | None]] = []

    def add(self, source: Any, target: zarr.Array, region: tuple[slice, ...] | None = None) -> None:
        if _is_dask(source):
            self.lazy.append((source, target, region))
        elif hasattr(source, "chunks") and not hasattr(source, "__array_function__"):
            raise NotImplementedError(
                f"to_icechunk writes numpy- and dask-backed data; got {type(source).__name__}"
            )
        else:
            self.eager.append((source, target, region))


class _DatasetWriter:
    """One ``to_icechunk`` call: metadata and in-memory data, then the dask-backed data."""

    def __init__(
        self,
        dataset: xr.Dataset,
        store: IcechunkStore,
        *,
        safe_chunks: bool,
        align_chunks: bool,
    ) -> None:
        self.dataset = dataset
        self.store = store
        self.safe_chunks = safe_chunks
        self.align_chunks = align_chunks
        self.writer = _SplitWriter()
        self.xstore: ZarrStore | None = None

    def open(
        self,
        *,
        group: str | None,
        mode: ZarrWriteModes | None,
        append_dim: Hashable | None,
        region: Region,
    ) -> None:
        mode = _default_mode(mode=mode, append_dim=append_dim, region=region)
        kwargs: dict[str, Any] = {
            "mode": mode,
            "group": group,
            "zarr_format": 3,
            "consolidated": False,
            "consolidate_on_close": False,
            "append_dim": append_dim,
            "write_region": region,
            "safe_chunks": self.safe_chunks,
        }
        if "align_chunks" in _OPEN_GROUP_PARAMS:
            kwargs["align_chunks"] = self.align_chunks
        elif self.align_chunks:
            raise InvalidInputError(f"align_chunks needs xarray >= 2025.06, not {xr.__version__}")
        self.xstore = ZarrStore.open_group(self.store, **kwargs)
        self.dataset = self.xstore._validate_and_autodetect_region(self.dataset)

    def write_metadata(self, encoding: Mapping[Any, Any] | None) -> None:
        """Create or resize the arrays, write attributes and queue the data writes."""
        assert self.xstore is not None, "open() first"
        _validate_dataset_names(self.dataset)
        encoding = dict(encoding or {})
        self.xstore._validate_encoding(encoding)
        dump_to_store(self.dataset, self.xstore, self.writer, encoding=encoding)

    def write_eager(self) -> None:
        """Write the in-memory variables through the session's store."""
        for source, target, region in self.writer.eager:
            target[region if region else ...] = source
        self.writer.eager = []

    @property
    def has_lazy(self) -> bool:
        return bool(self.writer.lazy)

    def write_lazy(
        self,
        session: Session,
        *,
        split_every: int | None,
        chunkmanager_store_kwargs: MutableMapping[Any, Any] | None,
    ) -> None:
        """Write the dask-backed variables through a fork and merge it into ``session``."""
        from icechunk.dask import store_dask

        kwargs = dict(chunkmanager_store_kwargs or {})
        for name in _FORCED_STORE_KWARGS:
            kwargs.pop(name, None)
        # the arrays exist now (metadata went through the session), so a fork sees them
        fork: ForkSession = session.fork()
        sources, targets, regions = [], [], []
        for source, target, region in self.writer.lazy:
            sources.append(source)
            targets.append(_reopen(target, fork.store))
            regions.append(region if region else tuple(slice(None) for _ in source.shape))
        self.writer.lazy = []
        merged = store_dask(
            sources=sources,
            targets=targets,
            regions=regions,
            split_every=split_every,
            **kwargs,
        )
        session.merge(merged)


def _reopen(array: zarr.Array, store: IcechunkStore) -> zarr.Array:
    """``array`` opened again on another store (a fork's), with the same array config."""
    config = getattr(getattr(array, "_async_array", None), "config", None)
    kwargs: dict[str, Any] = {"config": config} if config is not None else {}
    return zarr.open_array(store, path=array.path, mode="r+", zarr_format=3, **kwargs)


def _default_mode(
    *, mode: ZarrWriteModes | None, append_dim: Hashable | None, region: Region
) -> ZarrWriteModes:
    """The write mode, defaulted and checked against ``append_dim`` and ``region``."""
    if mode is None:
        if append_dim is not None:
            mode = "a"
        elif region is not None:
            mode = "r+"
        else:
            mode = "w-"
    if mode not in ("w", "w-", "a", "a-", "r+"):
        raise ValueError(f"mode must be one of 'w', 'w-', 'a', 'a-' or 'r+', not {mode!r}")
    if append_dim is not None and mode not in ("a", "a-"):
        raise ValueError(f"append_dim needs mode='a', 'a-' or None, not mode={mode!r}")
    if region is not None and mode not in ("a", "a-", "r+"):
        raise ValueError(f"region needs mode='a', 'a-', 'r+' or None, not mode={mode!r}")
    return mode
