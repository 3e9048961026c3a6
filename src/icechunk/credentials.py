"""Credentials: for repository storages and for virtual chunk containers.

Mirrors the official ``icechunk.credentials`` module: the S3/GCS credential kinds
and their ``*_credentials`` helpers, plus :class:`Credentials` (the wrapper kinds
of ``authorize_virtual_chunk_access``), :func:`containers_credentials` and the
no-auth sentinels :data:`LocalFileSystemAccess` and :data:`HttpAccess`.
"""

from __future__ import annotations

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
from icechunk.virtual_store_config import (
    AnyCredential,
    Credentials,
    HttpAccess,
    LocalFileSystemAccess,
    containers_credentials,
)

__all__ = [
    "AnyCredential",
    "AnyGcsCredential",
    "AnyGcsStaticCredential",
    "AnyS3Credential",
    "Credentials",
    "GcsBearerCredential",
    "GcsCredentials",
    "GcsStaticCredentials",
    "HttpAccess",
    "LocalFileSystemAccess",
    "S3Credentials",
    "S3StaticCredentials",
    "containers_credentials",
    "gcs_anonymous_credentials",
    "gcs_credentials",
    "gcs_from_env_credentials",
    "gcs_refreshable_credentials",
    "gcs_static_credentials",
    "s3_anonymous_credentials",
    "s3_credentials",
    "s3_from_env_credentials",
    "s3_refreshable_credentials",
    "s3_static_credentials",
]
