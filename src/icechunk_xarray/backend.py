"""The xarray backend ``engine="icechunk"``: open any version of an Icechunk repository.

Registered through the ``xarray.backends`` entry point, so once the package is installed::

    ds = xr.open_dataset("path/to/repo", engine="icechunk")                 # tip of main
    ds = xr.open_dataset(repo, engine="icechunk", tag="v1", chunks={})      # a tag, with dask
    ds = xr.open_dataset("s3://bucket/prefix", engine="icechunk",
                         snapshot_id="...", storage_options={"anon": True})
    tree = xr.open_datatree(session, engine="icechunk")                     # every group

A target is a local path, an ``s3://`` / ``gs://`` URL, a :class:`icechunk.Repository`, a
:class:`icechunk.Session` or a session's store. With a repository (or a path or URL), choose
the version with one of ``branch=``, ``tag=`` or ``snapshot_id=``, optionally with
``as_of=datetime`` (the last commit of the branch at that time); the default is ``main``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from xarray.backends.common import BackendEntrypoint, datatree_from_dict_with_io_cleanup
from xarray.backends.store import StoreBackendEntrypoint
from xarray.backends.zarr import ZarrStore
from xarray.core.dataset import Dataset
from xarray.core.datatree import DataTree
from xarray.core.treenode import NodePath

import icechunk
from icechunk.exceptions import InvalidInputError
from icechunk.repository import Repository
from icechunk.session import Session
from icechunk.store import IcechunkStore

__all__ = [
    "IcechunkBackendEntrypoint",
    "open_session",
    "storage_from_url",
]

_DEFAULT_BRANCH = "main"


# ----------------------------------------------------------------------
# targets -> sessions


@dataclass(frozen=True)
class OpenedVersion:
    """The session a target resolved to, and how it was asked for."""

    session: Session
    branch: str | None
    tag: str | None

    @property
    def snapshot_id(self) -> str:
        return self.session.snapshot_id


def open_session(
    target: Any,
    *,
    branch: str | None = None,
    tag: str | None = None,
    snapshot_id: str | None = None,
    as_of: datetime | None = None,
    storage_options: dict[str, Any] | None = None,
    config: Any = None,
) -> Session:
    """The session ``xr.open_dataset(target, engine="icechunk", ...)`` reads from.

    ``target`` is a local path, an ``s3://`` or ``gs://`` URL, a Repository, a Session or a
    session's store; a Session (or store) is used as it is, uncommitted changes included.
    """
    return _resolve(
        target,
        branch=branch,
        tag=tag,
        snapshot_id=snapshot_id,
        as_of=as_of,
        storage_options=storage_options,
        config=config,
    ).session


def _resolve(
    target: Any,
    *,
    branch: str | None,
    tag: str | None,
    snapshot_id: str | None,
    as_of: datetime | None,
    storage_options: dict[str, Any] | None,
    config: Any,
) -> OpenedVersion:
    if isinstance(target, IcechunkStore):
        target = target.session
    if isinstance(target, Session):
        if any(v is not None for v in (branch, tag, snapshot_id, as_of)):
            raise InvalidInputError(
                "a Session is already one version: branch=, tag=, snapshot_id= and as_of= "
                "apply to a repository, a path or a URL"
            )
        if storage_options:
            raise InvalidInputError("storage_options apply to a path or a URL, not a Session")
        return OpenedVersion(target, target.branch, None)
    if isinstance(target, Repository):
        if storage_options:
            raise InvalidInputError("storage_options apply to a path or a URL, not a Repository")
        repo = target
    elif isinstance(target, str | os.PathLike):
        storage = storage_from_url(target, storage_options)
        repo = Repository.open(storage, config=config) if config else Repository.open(storage)
    else:
        raise InvalidInputError(
            "engine='icechunk' opens a repository path, an s3:// or gs:// URL, an "
            f"icechunk.Repository or an icechunk.Session; got {type(target).__name__}"
        )
    chosen = [v for v in (branch, tag, snapshot_id) if v is not None]
    if len(chosen) > 1:
        raise InvalidInputError("give at most one of branch=, tag= and snapshot_id=")
    if not chosen:
        branch = _DEFAULT_BRANCH
    if as_of is not None and branch is None:
        raise InvalidInputError("as_of= picks a commit of a branch: give branch= (or no version)")
    session = repo.readonly_session(branch, tag=tag, snapshot_id=snapshot_id, as_of=as_of)
    return OpenedVersion(session, branch, tag)


# ----------------------------------------------------------------------
# storage from a URL


def storage_from_url(
    url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> icechunk.Storage:
    """The icechunk Storage for a local path, ``file://``, ``s3://`` or ``gs://`` URL.

    ``storage_options`` take the keyword arguments of ``icechunk.s3_storage`` /
    ``icechunk.gcs_storage`` (``region``, ``endpoint_url``, ``anonymous`` ...) and the usual
    fsspec spellings: ``anon``, ``key``/``secret``/``token``, ``client_kwargs`` with
    ``region_name``/``endpoint_url`` for S3; ``anon``, ``endpoint_url`` and ``token`` (a
    service-account file, its parsed JSON, ``"anon"`` or ``"google_default"``) for GCS.
    """
    text = os.fspath(url)
    options = dict(storage_options or {})
    scheme, sep, rest = text.partition("://")
    if not sep:
        return _local(text, options)
    scheme = scheme.lower()
    if scheme == "file":
        return _local(rest, options)
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise InvalidInputError(f"no bucket in {text!r}")
    prefix = prefix.strip("/")
    if scheme in ("s3", "s3a"):
        factory = _factory("s3_storage", "s3")
        kwargs = _s3_kwargs(options)
    elif scheme in ("gs", "gcs"):
        factory = _factory("gcs_storage", "gcs")
        kwargs = _gcs_kwargs(options)
    else:
        raise InvalidInputError(
            f"engine='icechunk' opens local paths, s3:// and gs:// URLs; not {scheme}://"
        )
    _check_accepted(factory, kwargs)
    return factory(bucket=bucket, prefix=prefix or None, **kwargs)


def _local(path: str, options: dict[str, Any]) -> icechunk.Storage:
    if options:
        raise InvalidInputError(f"storage_options do not apply to a local path: {sorted(options)}")
    return icechunk.local_filesystem_storage(path)


def _factory(name: str, extra: str) -> Any:
    factory = getattr(icechunk, name, None)
    if factory is None:
        raise InvalidInputError(
            f"this version of icechunk has no {name}() yet, so {extra} URLs cannot be opened "
            f"(install icechunk-py[{extra}] with {extra.upper()} support); open the repository "
            "yourself and pass the Repository or a Session instead"
        )
    return factory


def _check_accepted(factory: Any, kwargs: dict[str, Any]) -> None:
    import inspect

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        accepted = sorted(set(params) - {"bucket", "prefix"})
        raise InvalidInputError(
            f"unknown storage_options {unknown} for {factory.__name__}; accepted: {accepted}"
        )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _s3_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    client = dict(options.pop("client_kwargs", None) or {})
    config_kwargs = dict(options.pop("config_kwargs", None) or {})
    aliases = {
        "key": "access_key_id",
        "aws_access_key_id": "access_key_id",
        "secret": "secret_access_key",
        "aws_secret_access_key": "secret_access_key",
        "token": "session_token",
        "aws_session_token": "session_token",
        "region_name": "region",
        "endpoint": "endpoint_url",
    }
    for source in (client, options):
        for name, value in source.items():
            if name == "anon":
                out["anonymous"] = _truthy(value)
            elif name == "use_ssl":
                out["allow_http"] = not _truthy(value)
            elif name == "requester_pays":
                out["requester_pays"] = _truthy(value)
            else:
                out[aliases.get(name, name)] = value
    style = (config_kwargs.pop("s3", None) or {}).get("addressing_style")
    if style == "path":
        out["force_path_style"] = True
    if config_kwargs:
        raise InvalidInputError(f"unsupported S3 config_kwargs: {sorted(config_kwargs)}")
    endpoint = out.get("endpoint_url")
    if isinstance(endpoint, str) and endpoint.startswith("http://"):
        out.setdefault("allow_http", True)
    return out


def _gcs_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name == "anon":
            out["anonymous"] = _truthy(value)
        elif name == "token":
            if value in ("anon", None):
                out["anonymous"] = True
            elif value in ("google_default", "cloud"):
                out["from_env"] = True
            elif isinstance(value, dict):
                out["service_account_key"] = json.dumps(value)
            elif isinstance(value, str | os.PathLike) and os.path.exists(value):
                out["service_account_file"] = os.fspath(value)
            else:
                out["bearer_token"] = value
        elif name == "project":
            continue  # gcsfs needs it for listing buckets; icechunk does not
        elif name == "endpoint_url":  # gcsfs's name for an emulator or private endpoint
            config = dict(out.get("config") or {})
            config.setdefault("base_url", value)
            if str(value).startswith("http://"):
                config.setdefault("allow_http", "true")
            out["config"] = config
        elif name == "config":
            out["config"] = {**dict(value or {}), **dict(out.get("config") or {})}
        else:
            out[name] = value
    return out


# ----------------------------------------------------------------------
# recognising a repository on disk


def looks_like_repository(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a local directory holding an Icechunk repository."""
    try:
        text = os.fspath(path)
    except TypeError:
        return False
    if not isinstance(text, str):
        return False
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif "://" in text:
        return False
    text = os.path.expanduser(text.rstrip("/") or "/")
    if not os.path.isdir(text):
        return False
    if os.path.isfile(os.path.join(text, "repo")):  # spec version 2
        return True
    # spec version 1: refs/branch.main/ref.json (and a snapshots/ folder)
    return os.path.isfile(os.path.join(text, "refs", "branch.main", "ref.json"))


# ----------------------------------------------------------------------
# the entry point


class IcechunkBackendEntrypoint(BackendEntrypoint):
    """``engine="icechunk"``: read a branch, tag, snapshot or past state of a repository.

    Keyword arguments beyond xarray's decoding options:

    - ``branch=``, ``tag=``, ``snapshot_id=``: the version (default: branch ``main``);
    - ``as_of=datetime``: the last commit of the branch at that time;
    - ``group=``: the group to open (``open_datatree`` opens it and everything below);
    - ``storage_options=``: for ``s3://`` and ``gs://`` URLs (see :func:`storage_from_url`);
    - ``config=``: an ``icechunk.RepositoryConfig`` for opening a path or URL.

    ``chunks=`` is xarray's own: ``chunks={}`` gives dask arrays chunked like the Zarr arrays.
    The dataset's ``encoding`` records what was read: ``icechunk_snapshot_id``, and
    ``icechunk_branch`` / ``icechunk_tag`` when the version was named that way.
    """

    description = "Open versions (branches, tags, snapshots, as-of times) of Icechunk repositories"
    url = "https://icechunk.io/en/latest/xarray/"
    supports_groups = True

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        if isinstance(filename_or_obj, Repository | Session | IcechunkStore):
            return True
        return looks_like_repository(filename_or_obj)

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: Any,
        *,
        mask_and_scale: Any = True,
        decode_times: Any = True,
        concat_characters: Any = True,
        decode_coords: Any = True,
        drop_variables: str | Iterable[str] | None = None,
        use_cftime: Any = None,
        decode_timedelta: Any = None,
        group: str | None = None,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
        as_of: datetime | None = None,
        storage_options: dict[str, Any] | None = None,
        config: Any = None,
        use_zarr_fill_value_as_mask: bool | None = None,
    ) -> Dataset:
        args = locals()
        opened = _resolve(filename_or_obj, **_pick(args, _VERSION_ARGS))
        store = ZarrStore.open_group(
            opened.session.store, group=_group_path(group), **_zarr_options(args)
        )
        ds = _decode(store, args)
        _record_version(ds, opened, group)
        return ds

    def open_datatree(  # type: ignore[override]
        self,
        filename_or_obj: Any,
        *,
        mask_and_scale: Any = True,
        decode_times: Any = True,
        concat_characters: Any = True,
        decode_coords: Any = True,
        drop_variables: str | Iterable[str] | None = None,
        use_cftime: Any = None,
        decode_timedelta: Any = None,
        group: str | None = None,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
        as_of: datetime | None = None,
        storage_options: dict[str, Any] | None = None,
        config: Any = None,
        use_zarr_fill_value_as_mask: bool | None = None,
    ) -> DataTree:
        args = _pick(locals(), _OPEN_ARGS)
        groups = self.open_groups_as_dict(filename_or_obj, **args)
        return datatree_from_dict_with_io_cleanup(groups)

    def open_groups_as_dict(  # type: ignore[override]
        self,
        filename_or_obj: Any,
        *,
        mask_and_scale: Any = True,
        decode_times: Any = True,
        concat_characters: Any = True,
        decode_coords: Any = True,
        drop_variables: str | Iterable[str] | None = None,
        use_cftime: Any = None,
        decode_timedelta: Any = None,
        group: str | None = None,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
        as_of: datetime | None = None,
        storage_options: dict[str, Any] | None = None,
        config: Any = None,
        use_zarr_fill_value_as_mask: bool | None = None,
    ) -> dict[str, Dataset]:
        args = locals()
        opened = _resolve(filename_or_obj, **_pick(args, _VERSION_ARGS))
        parent = str(NodePath("/") / NodePath(group)) if group else "/"
        stores = ZarrStore.open_store(opened.session.store, group=parent, **_zarr_options(args))
        groups: dict[str, Dataset] = {}
        for path, store in stores.items():
            ds = _decode(store, args)
            _record_version(ds, opened, path)
            name = str(NodePath(path).relative_to(parent)) if group else str(NodePath(path))
            groups[name if name != "." else "/"] = ds
        return groups


# The keyword arguments of the entry point's methods, by where they go.
_DECODER_ARGS = (
    "mask_and_scale",
    "decode_times",
    "concat_characters",
    "decode_coords",
    "drop_variables",
    "use_cftime",
    "decode_timedelta",
)
_VERSION_ARGS = ("branch", "tag", "snapshot_id", "as_of", "storage_options", "config")
_OPEN_ARGS = (*_DECODER_ARGS, "group", *_VERSION_ARGS, "use_zarr_fill_value_as_mask")


def _pick(args: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return {name: args[name] for name in names}


def _zarr_options(args: dict[str, Any]) -> dict[str, Any]:
    return dict(
        mode="r",
        consolidated=False,
        consolidate_on_close=False,
        zarr_format=3,
        use_zarr_fill_value_as_mask=args["use_zarr_fill_value_as_mask"],
    )


def _decode(store: ZarrStore, args: dict[str, Any]) -> Dataset:
    return StoreBackendEntrypoint().open_dataset(store, **_pick(args, _DECODER_ARGS))


def _group_path(group: str | None) -> str | None:
    if group is None:
        return None
    group = str(group).strip("/")
    return group or None


def _record_version(ds: Dataset, opened: OpenedVersion, group: str | None) -> None:
    ds.encoding["icechunk_snapshot_id"] = opened.snapshot_id
    if opened.branch is not None:
        ds.encoding["icechunk_branch"] = opened.branch
    if opened.tag is not None:
        ds.encoding["icechunk_tag"] = opened.tag
    ds.encoding["icechunk_group"] = _group_path(group) or ""
