"""A pure-Python implementation of Icechunk: transactional, versioned Zarr v3 storage.

``import icechunk as ic`` offers the API of the official icechunk package, and the
repositories it writes follow the Icechunk format (spec version 2), so either
implementation reads what the other wrote.
"""

from icechunk._core.config import (
    CachingConfig,
    CompressionAlgorithm,
    CompressionConfig,
    ManifestConfig,
    ManifestPreloadCondition,
    ManifestPreloadConfig,
    ManifestSplitCondition,
    ManifestSplitDimCondition,
    ManifestSplittingConfig,
    RepositoryConfig,
)
from icechunk._core.conflicts import (
    BasicConflictSolver,
    Conflict,
    ConflictDetector,
    ConflictSolver,
    ConflictType,
    VersionSelection,
)
from icechunk._core.fork import ForkSession
from icechunk._core.ops import FeatureFlag, RepoAvailability, RepoStatus, Update, UpdateType
from icechunk._core.versions import SpecVersion, spec_version, supported_spec_versions
from icechunk._maintenance.migration import upgrade_icechunk_repository
from icechunk.exceptions import (
    AlreadyExistsError,
    BranchNotFoundError,
    ConflictError,
    CorruptObjectError,
    ErrorKind,
    FormatError,
    IcechunkError,
    InternalError,
    InvalidInputError,
    MergeConflictError,
    NodeNotFoundError,
    NotFoundError,
    ObjectNotFoundError,
    PreconditionFailedError,
    ReadOnlyError,
    RebaseFailedError,
    RefNotFoundError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    SessionStateError,
    SnapshotNotFoundError,
    StorageError,
    TagNotFoundError,
    UnsupportedSpecVersionError,
)
from icechunk.format.snapshot import ManifestFileInfo
from icechunk.repository import Diff, Repository, SnapshotInfo
from icechunk.session import ChunkType, Session, SessionMode
from icechunk.storage import (
    Storage,
    in_memory_storage,
    local_filesystem_storage,
)
from icechunk.store import IcechunkStore

__version__ = "0.1.0"

from icechunk._core.graph import AncestryGraph
from icechunk._util.debug import (
    Attribution,
    initialize_logs,
    print_debug_info,
    set_logs_filter,
    shutdown_telemetry,
    user_agent,
)

__all__ = [
    "ErrorKind",
    "AncestryGraph",
    "Attribution",
    "CachingConfig",
    "CompressionAlgorithm",
    "ManifestPreloadCondition",
    "ManifestPreloadConfig",
    "initialize_logs",
    "set_logs_filter",
    "shutdown_telemetry",
    "InternalError",
    "print_debug_info",
    "user_agent",
    "SessionMode",
    "FeatureFlag",
    "RepoAvailability",
    "RepoStatus",
    "SpecVersion",
    "Update",
    "UpdateType",
    "spec_version",
    "supported_spec_versions",
    "BasicConflictSolver",
    "Conflict",
    "ConflictDetector",
    "ConflictSolver",
    "ConflictType",
    "ForkSession",
    "MergeConflictError",
    "RebaseFailedError",
    "VersionSelection",
    "AlreadyExistsError",
    "BranchNotFoundError",
    "ChunkType",
    "CompressionConfig",
    "ConflictError",
    "CorruptObjectError",
    "Diff",
    "FormatError",
    "IcechunkError",
    "IcechunkStore",
    "InvalidInputError",
    "ManifestConfig",
    "ManifestFileInfo",
    "ManifestSplitCondition",
    "ManifestSplitDimCondition",
    "ManifestSplittingConfig",
    "NodeNotFoundError",
    "NotFoundError",
    "ObjectNotFoundError",
    "PreconditionFailedError",
    "ReadOnlyError",
    "RefNotFoundError",
    "Repository",
    "RepositoryConfig",
    "RepositoryExistsError",
    "RepositoryNotFoundError",
    "Session",
    "SessionStateError",
    "SnapshotInfo",
    "SnapshotNotFoundError",
    "Storage",
    "StorageError",
    "TagNotFoundError",
    "UnsupportedSpecVersionError",
    "__version__",
    "in_memory_storage",
    "local_filesystem_storage",
    "upgrade_icechunk_repository",
]

# Object-store backends (S3 and compatibles, GCS, read-only HTTP), their credentials and
# settings; the network clients are imported lazily, on first use of a storage.
from icechunk.storage import (  # noqa: E402
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
    r2_storage,
    s3_anonymous_credentials,
    s3_credentials,
    s3_from_env_credentials,
    s3_refreshable_credentials,
    s3_static_credentials,
    s3_storage,
    tigris_storage,
)

__all__ += [
    "AnyGcsCredential",
    "AnyGcsStaticCredential",
    "AnyS3Credential",
    "ChecksumAlgorithm",
    "GcsBearerCredential",
    "GcsCredentials",
    "GcsStaticCredentials",
    "S3Credentials",
    "S3Options",
    "S3StaticCredentials",
    "StorageConcurrencySettings",
    "StorageRetriesSettings",
    "StorageSettings",
    "StorageTimeoutSettings",
    "gcs_credentials",
    "gcs_from_env_credentials",
    "gcs_refreshable_credentials",
    "gcs_static_credentials",
    "gcs_storage",
    "http_storage",
    "r2_storage",
    "s3_anonymous_credentials",
    "s3_credentials",
    "s3_from_env_credentials",
    "s3_refreshable_credentials",
    "s3_static_credentials",
    "s3_storage",
    "tigris_storage",
]

# Maintenance: snapshot expiration, garbage collection, storage statistics.
from icechunk._maintenance.gc import GCSummary  # noqa: E402
from icechunk._maintenance.stats import ChunkStorageStats  # noqa: E402
from icechunk.exceptions import InvalidTypeError, ReadOnlyStorageError  # noqa: E402

__all__ += ["ChunkStorageStats", "GCSummary", "InvalidTypeError", "ReadOnlyStorageError"]

# Virtual chunks: references to byte ranges of objects outside the repository.
from icechunk import credentials  # noqa: E402
from icechunk._core.config import ManifestVirtualChunkLocationCompressionConfig  # noqa: E402
from icechunk._virtual.containers import VirtualChunkContainer  # noqa: E402
from icechunk._virtual.refs import VirtualChunkSpec  # noqa: E402
from icechunk.exceptions import (  # noqa: E402
    InvalidCredentialsError,
    InvalidVirtualRefError,
    NoVirtualChunkContainerError,
    UnauthorizedVirtualChunkContainerError,
    VirtualChunkFetchError,
    VirtualChunkModifiedError,
)
from icechunk.storage.object_store_config import (  # noqa: E402
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

__all__ += [
    "AnyCredential",
    "AnyObjectStoreConfig",
    "Credentials",
    "InvalidCredentialsError",
    "InvalidVirtualRefError",
    "ManifestVirtualChunkLocationCompressionConfig",
    "NoVirtualChunkContainerError",
    "ObjectStoreConfig",
    "UnauthorizedVirtualChunkContainerError",
    "VirtualChunkContainer",
    "VirtualChunkFetchError",
    "VirtualChunkModifiedError",
    "VirtualChunkSpec",
    "containers_credentials",
    "credentials",
    "gcs_store",
    "http_store",
    "local_filesystem_store",
    "s3_store",
]
