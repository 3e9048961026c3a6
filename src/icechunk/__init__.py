"""A pure-Python implementation of Icechunk: transactional, versioned Zarr v3 storage.

``import icechunk as ic`` offers the API of the official icechunk package, and the
repositories it writes follow the Icechunk format (spec version 2), so either
implementation reads what the other wrote.

The names below come from the façade modules (``icechunk.repository``, ``.session``,
``.store``, ``.config``, ...). The virtual chunk store configs and the
``credentials`` module load on first use (``__getattr__``), and ``icechunk.storage`` loads
its network backends only when a storage is made, so ``import icechunk`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from icechunk import snapshots, types
from icechunk._core.graph import (
    AncestryGraph,
)
from icechunk._core.versions import (
    SpecVersion,
    spec_version,
    supported_spec_versions,
)
from icechunk._maintenance.stats import (
    ChunkStorageStats,
)
from icechunk._util.debug import (
    Attribution,
    initialize_logs,
    print_debug_info,
    set_logs_filter,
    shutdown_telemetry,
    user_agent,
)
from icechunk._version import (
    __version__,
)
from icechunk.config import (
    CachingConfig,
    CompressionAlgorithm,
    CompressionConfig,
    ManifestConfig,
    ManifestPreloadCondition,
    ManifestPreloadConfig,
    ManifestSplitCondition,
    ManifestSplitDimCondition,
    ManifestSplittingConfig,
    ManifestVirtualChunkLocationCompressionConfig,
    RepositoryConfig,
)
from icechunk.conflicts import (
    BasicConflictSolver,
    Conflict,
    ConflictDetector,
    ConflictSolver,
    ConflictType,
    VersionSelection,
)
from icechunk.exceptions import (
    AlreadyExistsError,
    BranchNotFoundError,
    ConflictError,
    CorruptObjectError,
    ErrorKind,
    FormatError,
    IcechunkError,
    InternalError,
    InvalidCredentialsError,
    InvalidInputError,
    InvalidTypeError,
    InvalidVirtualRefError,
    MergeConflictError,
    NodeNotFoundError,
    NotFoundError,
    NoVirtualChunkContainerError,
    ObjectNotFoundError,
    PreconditionFailedError,
    ReadOnlyError,
    ReadOnlyStorageError,
    RebaseFailedError,
    RefNotFoundError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    SessionStateError,
    SnapshotNotFoundError,
    StorageError,
    TagNotFoundError,
    UnauthorizedVirtualChunkContainerError,
    UnsupportedSpecVersionError,
    VirtualChunkFetchError,
    VirtualChunkModifiedError,
)
from icechunk.format.snapshot import (
    ManifestFileInfo,
)
from icechunk.ops import (
    FeatureFlag,
    GCSummary,
    RepoAvailability,
    RepoStatus,
    Update,
    UpdateType,
)
from icechunk.repository import (
    Diff,
    Repository,
    SnapshotInfo,
    upgrade_icechunk_repository,
)
from icechunk.session import (
    ChunkType,
    ForkSession,
    Session,
    SessionMode,
)
from icechunk.storage import (
    AnyGcsCredential,
    AnyGcsStaticCredential,
    AnyS3Credential,
    ChecksumAlgorithm,
    GcsBearerCredential,
    GcsCredentials,
    GcsStaticCredentials,
    S3Credentials,
    S3Options,
    S3StaticCredentials,
    Storage,
    StorageConcurrencySettings,
    StorageRetriesSettings,
    StorageSettings,
    StorageTimeoutSettings,
    gcs_credentials,
    gcs_from_env_credentials,
    gcs_refreshable_credentials,
    gcs_static_credentials,
    gcs_storage,
    http_storage,
    in_memory_storage,
    local_filesystem_storage,
    r2_storage,
    s3_anonymous_credentials,
    s3_credentials,
    s3_from_env_credentials,
    s3_refreshable_credentials,
    s3_static_credentials,
    s3_storage,
    tigris_storage,
)
from icechunk.store import (
    IcechunkStore,
)
from icechunk.virtual import (
    VirtualChunkContainer,
    VirtualChunkSpec,
)

if TYPE_CHECKING:
    from icechunk import credentials
    from icechunk.storage.object_store_config import (
        AnyCredential,
        AnyObjectStoreConfig,
        Credentials,
        ObjectStoreConfig,
        containers_credentials,
        gcs_store,
        http_store,
        local_filesystem_store,
        s3_store,
    )

#: name -> module, for the names loaded on first use
_LAZY: dict[str, str] = {
    "credentials": "icechunk.credentials",
    "AnyCredential": "icechunk.storage.object_store_config",
    "AnyObjectStoreConfig": "icechunk.storage.object_store_config",
    "Credentials": "icechunk.storage.object_store_config",
    "ObjectStoreConfig": "icechunk.storage.object_store_config",
    "containers_credentials": "icechunk.storage.object_store_config",
    "gcs_store": "icechunk.storage.object_store_config",
    "http_store": "icechunk.storage.object_store_config",
    "local_filesystem_store": "icechunk.storage.object_store_config",
    "s3_store": "icechunk.storage.object_store_config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'icechunk' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = loaded if module == f"icechunk.{name}" else getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AlreadyExistsError",
    "AncestryGraph",
    "AnyCredential",
    "AnyGcsCredential",
    "AnyGcsStaticCredential",
    "AnyObjectStoreConfig",
    "AnyS3Credential",
    "Attribution",
    "BasicConflictSolver",
    "BranchNotFoundError",
    "CachingConfig",
    "ChecksumAlgorithm",
    "ChunkStorageStats",
    "ChunkType",
    "CompressionAlgorithm",
    "CompressionConfig",
    "Conflict",
    "ConflictDetector",
    "ConflictError",
    "ConflictSolver",
    "ConflictType",
    "CorruptObjectError",
    "Credentials",
    "Diff",
    "ErrorKind",
    "FeatureFlag",
    "ForkSession",
    "FormatError",
    "GCSummary",
    "GcsBearerCredential",
    "GcsCredentials",
    "GcsStaticCredentials",
    "IcechunkError",
    "IcechunkStore",
    "InternalError",
    "InvalidCredentialsError",
    "InvalidInputError",
    "InvalidTypeError",
    "InvalidVirtualRefError",
    "ManifestConfig",
    "ManifestFileInfo",
    "ManifestPreloadCondition",
    "ManifestPreloadConfig",
    "ManifestSplitCondition",
    "ManifestSplitDimCondition",
    "ManifestSplittingConfig",
    "ManifestVirtualChunkLocationCompressionConfig",
    "MergeConflictError",
    "NoVirtualChunkContainerError",
    "NodeNotFoundError",
    "NotFoundError",
    "ObjectNotFoundError",
    "ObjectStoreConfig",
    "PreconditionFailedError",
    "ReadOnlyError",
    "ReadOnlyStorageError",
    "RebaseFailedError",
    "RefNotFoundError",
    "RepoAvailability",
    "RepoStatus",
    "Repository",
    "RepositoryConfig",
    "RepositoryExistsError",
    "RepositoryNotFoundError",
    "S3Credentials",
    "S3Options",
    "S3StaticCredentials",
    "Session",
    "SessionMode",
    "SessionStateError",
    "SnapshotInfo",
    "SnapshotNotFoundError",
    "SpecVersion",
    "Storage",
    "StorageConcurrencySettings",
    "StorageError",
    "StorageRetriesSettings",
    "StorageSettings",
    "StorageTimeoutSettings",
    "TagNotFoundError",
    "UnauthorizedVirtualChunkContainerError",
    "UnsupportedSpecVersionError",
    "Update",
    "UpdateType",
    "VersionSelection",
    "VirtualChunkContainer",
    "VirtualChunkFetchError",
    "VirtualChunkModifiedError",
    "VirtualChunkSpec",
    "__version__",
    "containers_credentials",
    "credentials",
    "gcs_credentials",
    "gcs_from_env_credentials",
    "gcs_refreshable_credentials",
    "gcs_static_credentials",
    "gcs_storage",
    "gcs_store",
    "http_storage",
    "http_store",
    "in_memory_storage",
    "initialize_logs",
    "local_filesystem_storage",
    "local_filesystem_store",
    "print_debug_info",
    "r2_storage",
    "s3_anonymous_credentials",
    "s3_credentials",
    "s3_from_env_credentials",
    "s3_refreshable_credentials",
    "s3_static_credentials",
    "s3_storage",
    "s3_store",
    "set_logs_filter",
    "shutdown_telemetry",
    "spec_version",
    "supported_spec_versions",
    "tigris_storage",
    "upgrade_icechunk_repository",
    "user_agent",
]
