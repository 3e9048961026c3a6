"""Storage backends and the factories that build them (``ic.local_filesystem_storage``...).

Factory names and arguments follow the official package: ``s3_storage``,
``r2_storage``, ``tigris_storage``, ``gcs_storage``, ``http_storage``, the
``*_credentials`` helpers and ``StorageSettings``. The network backends need
extras: ``icechunk-py[s3]`` (aiobotocore) and ``icechunk-py[gcs]`` (gcsfs);
``http_storage`` needs aiohttp, which either brings.

This package is a façade: its modules never import it. The network backends'
modules (and their client libraries) load on first use: a factory's call, or the
first access to one of their classes here (``icechunk.storage.S3Storage``...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from icechunk.storage.base import ByteRange, ObjectInfo, Storage, Version
from icechunk.storage.credentials import (
    AnyGcsCredential,
    AnyGcsStaticCredential,
    AnyS3Credential,
    GcsBearerCredential,
    GcsCredentials,
    GcsStaticCredentials,
    S3Credentials,
    S3StaticCredentials,
    gcs_anonymous_credentials,
    gcs_credentials,
    gcs_from_env_credentials,
    gcs_refreshable_credentials,
    gcs_static_credentials,
    s3_anonymous_credentials,
    s3_credentials,
    s3_from_env_credentials,
    s3_refreshable_credentials,
    s3_static_credentials,
)
from icechunk.storage.factories import (
    gcs_storage,
    http_storage,
    in_memory_storage,
    local_filesystem_storage,
    r2_storage,
    s3_storage,
    tigris_storage,
)
from icechunk.storage.local import LocalFileSystemStorage
from icechunk.storage.memory import InMemoryStorage

# Object stores of virtual chunk containers (the official package exports them here too).
from icechunk.storage.object_store_config import (
    AnyObjectStoreConfig,
    ObjectStoreConfig,
    gcs_store,
    http_store,
    local_filesystem_store,
    s3_store,
)
from icechunk.storage.s3_options import TIGRIS_ENDPOINT, ChecksumAlgorithm, S3Options
from icechunk.storage.settings import (
    StorageConcurrencySettings,
    StorageRetriesSettings,
    StorageSettings,
    StorageTimeoutSettings,
)

if TYPE_CHECKING:
    from icechunk.storage._remote import RemoteStorage, UnsafeStorageWarning
    from icechunk.storage.gcs import GcsStorage
    from icechunk.storage.http import HttpStorage
    from icechunk.storage.s3 import S3Storage

__all__ = [
    "AnyGcsCredential",
    "AnyGcsStaticCredential",
    "AnyS3Credential",
    "ByteRange",
    "ChecksumAlgorithm",
    "GcsBearerCredential",
    "GcsCredentials",
    "GcsStaticCredentials",
    "GcsStorage",
    "HttpStorage",
    "InMemoryStorage",
    "LocalFileSystemStorage",
    "ObjectInfo",
    "RemoteStorage",
    "S3Credentials",
    "S3Options",
    "S3StaticCredentials",
    "S3Storage",
    "Storage",
    "StorageConcurrencySettings",
    "StorageRetriesSettings",
    "StorageSettings",
    "StorageTimeoutSettings",
    "UnsafeStorageWarning",
    "Version",
    "gcs_anonymous_credentials",
    "gcs_credentials",
    "gcs_from_env_credentials",
    "gcs_refreshable_credentials",
    "gcs_static_credentials",
    "gcs_storage",
    "http_storage",
    "in_memory_storage",
    "local_filesystem_storage",
    "r2_storage",
    "s3_anonymous_credentials",
    "s3_credentials",
    "s3_from_env_credentials",
    "s3_refreshable_credentials",
    "s3_static_credentials",
    "s3_storage",
    "tigris_storage",
    "AnyObjectStoreConfig",
    "ObjectStoreConfig",
    "gcs_store",
    "http_store",
    "local_filesystem_store",
    "s3_store",
]

_LAZY_NAMES = ("GcsStorage", "HttpStorage", "RemoteStorage", "S3Storage", "UnsafeStorageWarning")


def __getattr__(name: str) -> Any:
    """The classes of the network backends, loading their module on first access."""
    value: Any
    if name == "S3Storage":
        from icechunk.storage.s3 import S3Storage as value
    elif name == "GcsStorage":
        from icechunk.storage.gcs import GcsStorage as value
    elif name == "HttpStorage":
        from icechunk.storage.http import HttpStorage as value
    elif name == "RemoteStorage":
        from icechunk.storage._remote import RemoteStorage as value
    elif name == "UnsafeStorageWarning":
        from icechunk.storage._remote import UnsafeStorageWarning as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_NAMES})
