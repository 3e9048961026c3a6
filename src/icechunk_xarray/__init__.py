"""xarray integration for the pure-Python Icechunk (``icechunk-py``).

- ``engine="icechunk"`` for :func:`xarray.open_dataset` / :func:`xarray.open_datatree`
  (:class:`IcechunkBackendEntrypoint`, registered through the ``xarray.backends`` entry point):
  opens any branch, tag, snapshot or past state (``as_of=``) of a repository given as a path,
  an ``s3://`` / ``gs://`` URL, a Repository or a Session.
- the ``.icechunk`` accessor on Datasets and DataArrays: ``ds.icechunk.to_icechunk(session)``
  and ``ds.icechunk.diff(repo)``.
- :func:`diff`: a repository diff reported per variable (which variables and chunks changed).

The accessor is registered when this package is imported. xarray has no entry point for
accessors; it loads the backend entry points (and with them this package) the first time it
looks for an engine that is not built in (``engine="icechunk"``, or no ``engine=``), so
``import icechunk_xarray`` (or ``import icechunk.xarray``) is the reliable way to get it.
"""

from icechunk_xarray.accessor import (
    IcechunkDataArrayAccessor,
    IcechunkDatasetAccessor,
    register_accessors,
)
from icechunk_xarray.backend import IcechunkBackendEntrypoint, open_session, storage_from_url
from icechunk_xarray.diff import VariableChange, VersionDiff, diff

register_accessors()


def to_icechunk(obj, session, **kwargs):  # type: ignore[no-untyped-def]
    """Same as :func:`icechunk.xarray.to_icechunk`."""
    from icechunk_xarray.write import to_icechunk as write

    return write(obj, session, **kwargs)


__all__ = [
    "IcechunkBackendEntrypoint",
    "IcechunkDataArrayAccessor",
    "IcechunkDatasetAccessor",
    "VariableChange",
    "VersionDiff",
    "diff",
    "open_session",
    "register_accessors",
    "storage_from_url",
    "to_icechunk",
]
