"""Credentials: for repository storages and for virtual chunk containers.

Mirrors the official ``icechunk.credentials`` module: the S3/GCS credential kinds
and their ``*_credentials`` helpers, plus :class:`Credentials` (the wrapper kinds
of ``authorize_virtual_chunk_access``), :func:`containers_credentials` and the
no-auth sentinels :data:`LocalFileSystemAccess` and :data:`HttpAccess`.
"""

from __future__ import annotations

import icechunk.storage.credentials as _storage_credentials
from icechunk.storage.credentials import *  # noqa: F403 - the names of its __all__
from icechunk.storage.object_store_config import (
    AnyCredential,
    Credentials,
    HttpAccess,
    LocalFileSystemAccess,
    containers_credentials,
)

__all__ = [
    "AnyCredential",
    "Credentials",
    "HttpAccess",
    "LocalFileSystemAccess",
    "containers_credentials",
]
__all__ += _storage_credentials.__all__
