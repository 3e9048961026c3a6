"""The factories of the storage backends (``ic.local_filesystem_storage``, ``ic.s3_storage``...).

Names and arguments follow the official package. The network backends' modules load on
the first call of their factory, so importing icechunk loads none of their client
libraries: ``icechunk-py[s3]`` (aiobotocore), ``icechunk-py[gcs]`` (gcsfs), and aiohttp
for ``http_storage``, which either brings.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from icechunk.exceptions import InvalidInputError
from icechunk.storage.base import Storage
from icechunk.storage.credentials import (
    AnyS3Credential,
    GcsBearerCredential,
    S3StaticCredentials,
    gcs_credentials,
    s3_credentials,
)
from icechunk.storage.local import LocalFileSystemStorage
from icechunk.storage.memory import InMemoryStorage
from icechunk.storage.s3_options import TIGRIS_ENDPOINT, ChecksumAlgorithm, S3Options

if TYPE_CHECKING:
    from icechunk.storage.gcs import GcsStorage
    from icechunk.storage.http import HttpStorage
    from icechunk.storage.s3 import S3Storage

__all__ = [
    "gcs_storage",
    "http_storage",
    "in_memory_storage",
    "local_filesystem_storage",
    "r2_storage",
    "s3_storage",
    "tigris_storage",
]


def in_memory_storage() -> Storage:
    """A new, empty storage that lives in this process only."""
    return InMemoryStorage()


def local_filesystem_storage(path: str | os.PathLike[str]) -> Storage:
    """Storage in the directory ``path`` (``~`` expanded, made absolute, created on first write).

    Unlike the official package's local backend, concurrent commits from several
    processes are safe here.
    """
    return LocalFileSystemStorage(path)


def s3_storage(
    *,
    bucket: str,
    prefix: str | None,
    region: str | None = None,
    endpoint_url: str | None = None,
    allow_http: bool = False,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    expires_after: datetime | None = None,
    anonymous: bool | None = None,
    from_env: bool | None = None,
    get_credentials: Callable[[], S3StaticCredentials] | None = None,
    scatter_initial_credentials: bool = False,
    force_path_style: bool = False,
    network_stream_timeout_seconds: int = 60,
    requester_pays: bool = False,
    checksum_algorithm: ChecksumAlgorithm | None = None,
    legacy_rooted_keys: bool | None = None,
    read_headers: dict[str, str] | None = None,
    write_headers: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> S3Storage:
    """Storage in S3 or an S3-compatible object store, under ``s3://bucket/prefix``.

    Parameters
    ----------
    bucket, prefix
        Where the repository lives; ``prefix`` ``None`` or ``""`` is the bucket root.
    region
        The region (``None``: from the environment / AWS configuration).
    endpoint_url, allow_http, force_path_style
        For S3-compatible servers, e.g. ``endpoint_url="http://localhost:9000",
        allow_http=True, force_path_style=True`` for a local MinIO.
    access_key_id, secret_access_key, session_token, expires_after
        Static credentials.
    anonymous
        Do not sign requests (public buckets).
    from_env
        Credentials from the environment (the default when nothing else is given).
    get_credentials, scatter_initial_credentials
        A picklable function returning ``S3StaticCredentials``, called again when
        they expire; see :func:`s3_refreshable_credentials`.
    network_stream_timeout_seconds
        Fail a request when no bytes move for this long (0 disables).
    requester_pays
        Send ``x-amz-request-payer: requester``.
    checksum_algorithm
        Checksum for write requests (``None``: the SDK's default).
    legacy_rooted_keys
        ``True`` uses the old ``/key`` layout at the bucket root (empty prefix only).
    read_headers, write_headers, headers
        Extra HTTP headers for read requests, write requests, or both.

    Settings (retries, timeouts, concurrency, the unsafe switches) come from
    ``RepositoryConfig(storage=StorageSettings(...))`` or
    :meth:`S3Storage.with_settings`.
    """
    args = locals()
    credentials = _s3_credentials_from(args)
    options = _s3_options_from(
        args, force_path_style=force_path_style, requester_pays=requester_pays
    )
    return _s3_storage_from(args, options, credentials)


def r2_storage(
    *,
    bucket: str | None = None,
    prefix: str | None = None,
    account_id: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    allow_http: bool = False,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    expires_after: datetime | None = None,
    anonymous: bool | None = None,
    from_env: bool | None = None,
    get_credentials: Callable[[], S3StaticCredentials] | None = None,
    scatter_initial_credentials: bool = False,
    network_stream_timeout_seconds: int = 60,
    checksum_algorithm: ChecksumAlgorithm | None = None,
    legacy_rooted_keys: bool | None = None,
    read_headers: dict[str, str] | None = None,
    write_headers: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> S3Storage:
    """Storage in Cloudflare R2 (S3-compatible, with conditional writes).

    Give ``account_id`` (the endpoint becomes
    ``https://<account_id>.r2.cloudflarestorage.com``) or ``endpoint_url``;
    ``region`` defaults to ``auto``. Other arguments as in :func:`s3_storage`.
    """
    if endpoint_url is None:
        if not account_id:
            raise InvalidInputError("r2_storage needs account_id or endpoint_url")
        endpoint_url = f"https://{account_id}.r2.cloudflarestorage.com"
    if not bucket:
        raise InvalidInputError("r2_storage needs a bucket")
    args = locals()
    credentials = _s3_credentials_from(args)
    options = _s3_options_from(args, region=region or "auto", force_path_style=True)
    return _s3_storage_from(args, options, credentials, flavor="r2")


def tigris_storage(
    *,
    bucket: str,
    prefix: str | None,
    region: str | None = None,
    endpoint_url: str | None = None,
    use_weak_consistency: bool = False,
    allow_http: bool = False,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    expires_after: datetime | None = None,
    anonymous: bool | None = None,
    from_env: bool | None = None,
    get_credentials: Callable[[], S3StaticCredentials] | None = None,
    scatter_initial_credentials: bool = False,
    network_stream_timeout_seconds: int = 60,
    checksum_algorithm: ChecksumAlgorithm | None = None,
    legacy_rooted_keys: bool | None = None,
    read_headers: dict[str, str] | None = None,
    write_headers: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> S3Storage:
    """Storage in Tigris (S3-compatible, globally distributed).

    By default every request is pinned to ``region`` (``X-Tigris-Regions``) and
    reads bypass caches, which gives read-after-write consistency. With
    ``use_weak_consistency=True`` reads go to the closest region instead and the
    storage is read-only (recently written objects may not be visible yet).
    """
    args = locals()
    credentials = _s3_credentials_from(args)
    options = _s3_options_from(
        args, region=region or "auto", endpoint_url=endpoint_url or TIGRIS_ENDPOINT
    )
    read_extra: dict[str, str] = {}
    all_extra: dict[str, str] = {}
    if not use_weak_consistency:
        if region:
            all_extra["X-Tigris-Regions"] = region
        read_extra["Cache-Control"] = "no-cache"
    return _s3_storage_from(
        args,
        options,
        credentials,
        read_headers={**read_extra, **(read_headers or {})},
        headers={**all_extra, **(headers or {})},
        read_only_reason=(
            "tigris_storage(use_weak_consistency=True) is read-only"
            if use_weak_consistency
            else None
        ),
        flavor="tigris",
    )


# The S3 factories share these: each passes its arguments (``locals()``) to the helpers.
_S3_CREDENTIAL_ARGS = (
    "access_key_id",
    "secret_access_key",
    "session_token",
    "expires_after",
    "anonymous",
    "from_env",
    "get_credentials",
    "scatter_initial_credentials",
)


def _s3_credentials_from(args: dict[str, Any]) -> AnyS3Credential:
    return s3_credentials(**{name: args[name] for name in _S3_CREDENTIAL_ARGS})


def _s3_options_from(args: dict[str, Any], **overrides: Any) -> S3Options:
    common = {
        "region": args["region"],
        "endpoint_url": args["endpoint_url"],
        "allow_http": args["allow_http"],
        "anonymous": bool(args["anonymous"]),
        "network_stream_timeout_seconds": args["network_stream_timeout_seconds"],
        "checksum_algorithm": args["checksum_algorithm"],
    }
    return S3Options(**{**common, **overrides})


def _s3_storage_from(
    args: dict[str, Any], options: S3Options, credentials: AnyS3Credential, **overrides: Any
) -> S3Storage:
    common = {
        "bucket": args["bucket"],
        "prefix": args["prefix"],
        "legacy_rooted_keys": args["legacy_rooted_keys"],
        "read_headers": args["read_headers"],
        "write_headers": args["write_headers"],
        "headers": args["headers"],
    }
    from icechunk.storage.s3 import S3Storage

    return S3Storage(options=options, credentials=credentials, **{**common, **overrides})


def gcs_storage(
    *,
    bucket: str,
    prefix: str | None,
    service_account_file: str | None = None,
    service_account_key: str | None = None,
    application_credentials: str | None = None,
    bearer_token: str | None = None,
    anonymous: bool | None = None,
    from_env: bool | None = None,
    config: dict[str, str] | None = None,
    get_credentials: Callable[[], GcsBearerCredential] | None = None,
    scatter_initial_credentials: bool = False,
    read_headers: dict[str, str] | None = None,
    write_headers: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> GcsStorage:
    """Storage in Google Cloud Storage, under ``gs://bucket/prefix``.

    Credentials as in :func:`gcs_credentials` (default: from the environment).
    ``config`` takes object_store-style keys, notably ``base_url`` (a GCS
    endpoint such as an emulator, also ``endpoint_url``) with ``allow_http``,
    ``skip_signature`` and the service account keys.
    """
    credentials = gcs_credentials(
        service_account_file=service_account_file,
        service_account_key=service_account_key,
        application_credentials=application_credentials,
        bearer_token=bearer_token,
        from_env=from_env,
        anonymous=anonymous,
        get_credentials=get_credentials,
        scatter_initial_credentials=scatter_initial_credentials,
    )
    from icechunk.storage.gcs import GcsStorage

    return GcsStorage(
        bucket=bucket,
        prefix=prefix,
        credentials=credentials,
        config=config,
        read_headers=read_headers,
        write_headers=write_headers,
        headers=headers,
    )


def http_storage(
    base_url: str,
    opts: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> HttpStorage:
    """Read-only storage for a repository served over HTTP(S) at ``base_url``.

    ``opts`` takes object_store client options (``timeout``, ``connect_timeout``,
    ``user_agent``, ``allow_invalid_certificates``); ``headers`` are sent with
    every request (e.g. ``{"authorization": "Bearer <token>"}``). Writes raise
    ``ReadOnlyError``.
    """
    from icechunk.storage.http import HttpStorage

    return HttpStorage(base_url, opts, headers)
