"""S3 and S3-compatible object stores (AWS, MinIO, R2, Tigris, ...) via aiobotocore.

Conditional writes are real conditional requests: create-only PUTs send
``If-None-Match: *`` and compare-and-swap PUTs ``If-Match: <etag>``; the
version token is the object's ETag (as S3 returns it, quotes included). HTTP
412 (and 409 ``ConditionalRequestConflict``, S3's answer to two conditional
writes racing) become :class:`~icechunk.exceptions.PreconditionFailedError`.

Why aiobotocore directly rather than through s3fs's filesystem calls: s3fs
retries failed calls itself, so a conditional PUT whose reply was lost would be
sent again and come back as 412 against our *own* write, which must not be
reported as a conflict; and it folds 412 into a generic ``OSError(EINVAL)``.
Retries are therefore done here (``_remote``), one request per attempt, with
botocore's own retries switched off. s3fs and aiobotocore are installed
together by the ``s3`` extra (``pip install icechunk-py[s3]``).
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import ssl
import sys
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from icechunk._util.sync import run_blocking
from icechunk.exceptions import InvalidInputError, StorageError
from icechunk.storage._bucket import BucketStorage, range_header
from icechunk.storage._clients import ClientHandle
from icechunk.storage._remote import FailureKind, RangeRead, RangeRequest
from icechunk.storage.base import ObjectInfo, Version
from icechunk.storage.credentials import AnyS3Credential, S3Credentials, S3StaticCredentials
from icechunk.storage.s3_options import ChecksumAlgorithm, S3Options
from icechunk.storage.settings import StorageSettings

# S3Options and ChecksumAlgorithm live in s3_options (light, for the package's namespace)
__all__ = ["ChecksumAlgorithm", "S3Options", "S3Storage"]

_MIN_PART_SIZE = 5 * 1024 * 1024
_MAX_PARTS = 10_000

_THROTTLING_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
    }
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
_READ_OPS = ("GetObject", "HeadObject", "ListObjectsV2")
_WRITE_OPS = (
    "PutObject",
    "DeleteObjects",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
)


_SESSION: Any = None
_SESSION_LOCK = threading.Lock()


def _shared_session() -> Any:
    """One aiobotocore session per process: creating one loads the service models (slow).

    Sessions are not tied to an event loop; the clients made from them are.
    """
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            import aiobotocore.session  # type: ignore[import-untyped]  # no type stubs (P11 replaces this transport)

            _SESSION = aiobotocore.session.get_session()
        return _SESSION


def _client_error_info(err: Exception) -> tuple[int | None, str]:
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return None, ""
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(response.get("Error", {}).get("Code", ""))
    return status, code


def _seconds(ms: int | None, fallback_s: int | None) -> float:
    """A timeout in seconds: the setting, else the option, else botocore's default (60 s)."""
    if ms is not None:
        return ms / 1000.0
    if fallback_s:
        return float(fallback_s)
    return 60.0


#: Environment variables that change how botocore reaches S3 in ways the lean client does not
#: reproduce; with one of them set, the lean client is not used.
_BOTOCORE_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT",
    "AWS_REQUEST_CHECKSUM_CALCULATION",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)
#: Settings of an AWS config file with the same effect.
_BOTOCORE_CONFIG = re.compile(
    r"^\s*(endpoint_url|use_fips_endpoint|use_dualstack_endpoint|addressing_style"
    r"|use_accelerate_endpoint|services|s3|request_checksum_calculation|ca_bundle"
    r"|s3_us_east_1_regional_endpoint)\s*=",
    re.M,
)


def _config_file() -> str:
    """The text of the AWS config file ('' if there is none)."""
    path = os.environ.get("AWS_CONFIG_FILE") or os.path.join("~", ".aws", "config")
    try:
        with open(os.path.expanduser(path), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _proxied(url: str) -> bool:
    """Whether botocore would send requests to ``url`` through a proxy (from the environment)."""
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        return False
    import urllib.request

    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    proxies = urllib.request.getproxies()
    if scheme not in proxies and "all" not in proxies:
        return False
    return not urllib.request.proxy_bypass(host.rsplit(":", 1)[0] if "]" not in host else host)


def _env_credentials() -> S3StaticCredentials | None:
    """The key pair of the environment variables (botocore's first credential source)."""
    akid = os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not akid or not secret or os.environ.get("AWS_CREDENTIAL_EXPIRATION"):
        return None
    token = os.environ.get("AWS_SESSION_TOKEN") or os.environ.get("AWS_SECURITY_TOKEN")
    return S3StaticCredentials(akid, secret, token or None)


def _lean_plan(
    options: S3Options,
    bucket: str,
    static: S3StaticCredentials | None,
    anonymous: bool,
) -> tuple[str, bool, str, S3StaticCredentials | None] | None:
    """``(endpoint, path_style, region, credentials)`` for the lean client, or None.

    None when botocore would do something the lean client does not: find credentials in
    profiles, SSO or instance metadata, take the region or endpoint from a config file,
    go through a proxy, use FIPS/dual-stack/accelerated endpoints, or follow a region
    redirect on every request (no region known for AWS).
    """
    from icechunk.storage._s3http import aws_region_ok, virtual_hostable

    if any(os.environ.get(name) for name in _BOTOCORE_ENV):
        return None
    if not anonymous and static is None:
        static = _env_credentials()  # S3Credentials.FromEnv
        if static is None:
            return None
    config_text: str | None = None
    region = options.region or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        config_text = _config_file()
        if options.endpoint_url is None or re.search(r"^\s*region\s*=", config_text, re.M):
            return None
        region = "us-east-1"  # botocore signs for us-east-1 when no region is configured
    if config_text is None:
        config_text = _config_file()
    if _BOTOCORE_CONFIG.search(config_text):
        return None
    if options.endpoint_url is not None:
        endpoint = options.endpoint_url
        path_style = True  # botocore's choice for custom endpoints
    else:
        if not aws_region_ok(region):
            return None  # other partitions (China, ...) have other endpoints
        endpoint = f"https://s3.{region}.amazonaws.com"
        path_style = options.force_path_style or not virtual_hostable(bucket)
    if _proxied(endpoint):
        return None
    return endpoint, path_style, region, None if anonymous else static


def _add_headers(headers: dict[str, str], request: Any, **_: Any) -> None:
    for name, value in headers.items():
        request.headers[name] = value


class S3Storage(BucketStorage):
    """A repository under ``s3://bucket/prefix``."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str | None,
        options: S3Options | None = None,
        credentials: AnyS3Credential | None = None,
        settings: StorageSettings | None = None,
        legacy_rooted_keys: bool | None = None,
        read_headers: dict[str, str] | None = None,
        write_headers: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        read_only_reason: str | None = None,
        max_concurrent_requests: int | None = None,
        flavor: str = "s3",
    ) -> None:
        super().__init__(settings, max_concurrent_requests)
        self._check_location(bucket, prefix)
        if credentials is None:
            credentials = S3Credentials.FromEnv()
        if not isinstance(
            credentials,
            S3Credentials.Static
            | S3Credentials.Anonymous
            | S3Credentials.FromEnv
            | S3Credentials.Refreshable,
        ):
            raise InvalidInputError(f"not S3 credentials: {credentials!r}")
        self._bucket = bucket
        self._prefix = (prefix or "").strip("/")
        self._options = options if options is not None else S3Options()
        self._credentials = credentials
        rooted = bool(legacy_rooted_keys) and not self._prefix
        self._key_base = f"{self._prefix}/" if self._prefix else ("/" if rooted else "")
        self._read_headers = {**(headers or {}), **(read_headers or {})}
        self._write_headers = {**(headers or {}), **(write_headers or {})}
        self._read_only_reason = read_only_reason
        self._flavor = flavor

    # -- identity ---------------------------------------------------------------------

    @property
    def options(self) -> S3Options:
        return self._options

    def describe(self) -> str:
        where = f"{self._flavor}://{self._bucket}/{self._prefix}".rstrip("/")
        if self._options.endpoint_url:
            where += f" at {self._options.endpoint_url}"
        return where

    def _ident(self) -> tuple[Any, ...]:
        return (self._flavor, self._bucket, self._key_base, self._options.endpoint_url)

    def _params(self, key: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"Bucket": self._bucket}
        if key is not None:
            params["Key"] = self._full(key)
        if self._options.requester_pays:
            params["RequestPayer"] = "requester"
        return params

    # -- the client -------------------------------------------------------------------

    async def _open_client(self) -> ClientHandle:
        """The lean client (``_s3http``) when it can do what botocore would; else aiobotocore.

        The lean client sends GetObject, PutObject and HeadObject itself and hands every
        other operation (listing, deletes, multipart uploads) -- and any request it cannot
        make the way botocore would -- to an aiobotocore client created on first use.
        """
        options, credentials = self._options, self._credentials
        static: S3StaticCredentials | None = None
        anonymous = isinstance(credentials, S3Credentials.Anonymous) or options.anonymous
        if anonymous:
            pass
        elif isinstance(credentials, S3Credentials.Static):
            static = credentials.credentials
        elif isinstance(credentials, S3Credentials.Refreshable):
            static = await run_blocking(credentials.fetch)
        expires_at = static.expires_after if static is not None else None
        lean = _lean_plan(options, self._bucket, static, anonymous)
        if lean is None:
            client, close, abandon = await self._open_full_client(static, anonymous)
            return ClientHandle(client, close, expires_at, abandon)

        from icechunk.storage._s3http import LeanS3Client, Signer

        endpoint, path_style, region, signing = lean
        if signing is None:
            signer = Signer(region, None, None, None)
        else:
            signer = Signer(
                region, signing.access_key_id, signing.secret_access_key, signing.session_token
            )
        timeouts = self._settings.effective_timeouts
        full_abandon: list[Callable[[], None]] = []

        async def full_client() -> Any:
            client, _, abandon = await self._open_full_client(static, anonymous)
            full_abandon.append(abandon)
            return client

        checksum = options.checksum_algorithm
        client = LeanS3Client(
            endpoint_url=endpoint,
            bucket=self._bucket,
            path_style=path_style,
            signer=signer,
            connect_timeout=_seconds(timeouts.connect_timeout_ms, None),
            read_timeout=_seconds(timeouts.read_timeout_ms, options.network_stream_timeout_seconds),
            max_idle=min(self._max_concurrent_requests, 128),
            full_client=full_client,
            read_headers=self._read_headers,
            write_headers=self._write_headers,
            checksum_algorithm=checksum.aws_name if checksum is not None else None,
        )

        def abandon_full(_full: Any) -> None:
            for fn in full_abandon:
                fn()

        def abandon_lean() -> None:
            client.abandon(abandon_full)

        return ClientHandle(client, client.close, expires_at, abandon_lean)

    async def _open_full_client(
        self, static: S3StaticCredentials | None, anonymous: bool
    ) -> tuple[Any, Callable[[], Awaitable[None]], Callable[[], None]]:
        """An aiobotocore client: ``(client, close, abandon)``."""
        try:
            from botocore import UNSIGNED  # type: ignore[import-untyped]  # no type stubs (P11 replaces this transport)
            from botocore.config import Config  # type: ignore[import-untyped]  # no type stubs (P11 replaces this transport)
        except ImportError as err:  # pragma: no cover - depends on the installation
            raise StorageError(
                "S3 storage needs aiobotocore: pip install 'icechunk-py[s3]'"
            ) from err
        options, timeouts = self._options, self._settings.effective_timeouts
        config: dict[str, Any] = {
            "retries": {"total_max_attempts": 1},  # retries happen in _remote
            "max_pool_connections": min(self._max_concurrent_requests, 128),
            "user_agent_extra": "icechunk-py",
        }
        if timeouts.connect_timeout_ms is not None:
            config["connect_timeout"] = timeouts.connect_timeout_ms / 1000.0
        if timeouts.read_timeout_ms is not None:
            config["read_timeout"] = timeouts.read_timeout_ms / 1000.0
        elif options.network_stream_timeout_seconds:
            config["read_timeout"] = float(options.network_stream_timeout_seconds)
        if options.force_path_style:
            config["s3"] = {"addressing_style": "path"}
        kwargs: dict[str, Any] = {}
        if anonymous:
            config["signature_version"] = UNSIGNED
        elif static is not None:
            kwargs["aws_access_key_id"] = static.access_key_id
            kwargs["aws_secret_access_key"] = static.secret_access_key
            if static.session_token is not None:
                kwargs["aws_session_token"] = static.session_token
        session = await run_blocking(_shared_session)
        creator = session.create_client(
            "s3",
            region_name=options.region,
            endpoint_url=options.endpoint_url,
            config=Config(**config),
            **kwargs,
        )
        client = await creator.__aenter__()
        events = client.meta.events
        for ops, extra in ((_READ_OPS, self._read_headers), (_WRITE_OPS, self._write_headers)):
            if extra:
                for op in ops:
                    events.register(f"before-sign.s3.{op}", functools.partial(_add_headers, extra))

        async def close() -> None:
            await creator.__aexit__(None, None, None)

        def abandon() -> None:  # the loop is gone: drop the connections without awaiting
            http = getattr(getattr(client, "_endpoint", None), "http_session", None)
            for sess in list((getattr(http, "_sessions", None) or {}).values()):
                connector = getattr(sess, "_connector", None)
                if connector is not None:
                    connector._close()

        return client, close, abandon

    def _classify(self, err: Exception) -> FailureKind:
        response = getattr(err, "response", None)
        if isinstance(response, dict) and "Error" in response:  # botocore's or the lean one's
            status, code = _client_error_info(err)
            if status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return FailureKind.PRECONDITION
            if code == "NoSuchBucket":
                return FailureKind.OTHER
            if status == 404 or code in _NOT_FOUND_CODES:
                return FailureKind.NOT_FOUND
            if (status is not None and (status >= 500 or status in (408, 429))) or (
                code in _THROTTLING_CODES
            ):
                return FailureKind.TRANSIENT
            return FailureKind.OTHER
        if isinstance(err, ssl.SSLCertVerificationError):
            return FailureKind.OTHER  # retrying does not fix a certificate
        if isinstance(err, TimeoutError | OSError):  # also the lean client's broken connections
            return FailureKind.TRANSIENT
        if "botocore" not in sys.modules:  # then it cannot be one of botocore's errors
            return FailureKind.OTHER
        from botocore.exceptions import (  # type: ignore[import-untyped]  # no type stubs
            ConnectionError,
            HTTPClientError,
            IncompleteReadError,
            SSLError,
        )

        if isinstance(err, SSLError):
            return FailureKind.OTHER
        if isinstance(err, HTTPClientError | ConnectionError | IncompleteReadError):
            return FailureKind.TRANSIENT
        aiohttp = sys.modules.get("aiohttp")
        if aiohttp is not None and isinstance(err, aiohttp.ClientError):
            return FailureKind.TRANSIENT
        return FailureKind.OTHER

    def _translate(self, err: BaseException, key: str, action: str) -> Any:
        _, code = _client_error_info(err) if isinstance(err, Exception) else (None, "")
        if code == "NoSuchBucket":
            return StorageError(f"bucket {self._bucket!r} does not exist ({self.describe()})")
        if type(err).__name__ == "NoCredentialsError":
            return StorageError(
                f"no S3 credentials found for {self.describe()}: pass access_key_id/"
                "secret_access_key, anonymous=True, or configure the AWS environment"
            )
        return super()._translate(err, key, action)

    # -- primitives -------------------------------------------------------------------

    async def _read(
        self, client: Any, key: str, start: int, end: int | None, suffix: int | None
    ) -> bytes:
        params = self._params(key)
        byte_range = range_header(start, end, suffix)
        if byte_range is not None:
            params["Range"] = byte_range
        try:
            response = await client.get_object(**params)
        except Exception as err:
            status, code = _client_error_info(err)
            if status == 416 or code == "InvalidRange":
                return b""  # the object exists but is shorter than start
            raise
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data

    async def _read_if_unchanged(self, client: Any, want: RangeRequest) -> RangeRead:
        params = self._params(want.key)
        params["Range"] = want.range_header
        etag = want.etag
        if etag is not None:
            params["IfMatch"] = etag if etag.startswith('"') else f'"{etag}"'
        elif want.last_modified:
            params["IfUnmodifiedSince"] = datetime.fromtimestamp(want.last_modified, UTC)
        response = await client.get_object(**params)
        async with response["Body"] as body:
            data = await body.read()
        return RangeRead(data, response.get("ETag"), response.get("LastModified"))

    async def _read_versioned(self, client: Any, key: str) -> tuple[bytes, Version]:
        response = await client.get_object(**self._params(key))
        async with response["Body"] as body:
            data = await body.read()
        return data, response["ETag"]

    async def _write(
        self,
        client: Any,
        key: str,
        data: bytes,
        *,
        if_match: Version | None = None,
        if_absent: bool = False,
    ) -> Version:
        params = self._params(key)
        params["Body"] = data
        if if_absent:
            params["IfNoneMatch"] = "*"
        if if_match is not None:
            params["IfMatch"] = if_match
        storage_class = self._settings.storage_class_for(key)
        if storage_class:
            params["StorageClass"] = storage_class
        if self._options.checksum_algorithm is not None:
            params["ChecksumAlgorithm"] = self._options.checksum_algorithm.aws_name
        response = await client.put_object(**params)
        etag: Version = response["ETag"]
        return etag

    async def _head(self, client: Any, key: str) -> Version | None:
        try:
            response = await client.head_object(**self._params(key))
        except Exception as err:
            if self._classify(err) is FailureKind.NOT_FOUND:
                return None
            raise
        etag: Version = response["ETag"]
        return etag

    async def _list_page(
        self, client: Any, prefix: str, token: Any
    ) -> tuple[list[ObjectInfo], Any]:
        params = self._params()
        params["Prefix"] = self._key_base + prefix
        if token is not None:
            params["ContinuationToken"] = token
        response = await client.list_objects_v2(**params)
        skip = len(self._key_base)
        infos = [
            ObjectInfo(item["Key"][skip:], int(item["Size"]), item["LastModified"].astimezone(UTC))
            for item in response.get("Contents", ())
        ]
        token = response.get("NextContinuationToken") if response.get("IsTruncated") else None
        return infos, token

    async def _delete_batch(self, client: Any, keys: list[str]) -> None:
        params = self._params()
        params["Delete"] = {"Objects": [{"Key": self._full(k)} for k in keys], "Quiet": True}
        response = await client.delete_objects(**params)
        failed = [e for e in response.get("Errors", ()) if e.get("Code") not in _NOT_FOUND_CODES]
        if failed:
            first = failed[0]
            raise StorageError(
                f"could not delete {len(failed)} object(s) from {self.describe()}, e.g. "
                f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message', '')}".rstrip()
            )

    # -- multipart upload for large objects -----------------------------------------------

    async def _write_large(self, key: str, data: bytes) -> None:
        ideal = self._settings.effective_concurrency.effective_ideal_concurrent_request_size
        part_size = max(_MIN_PART_SIZE, ideal, -(-len(data) // _MAX_PARTS))
        created = await self._retrying("write", key, functools.partial(self._mpu_create, key))
        upload_id = created["UploadId"]
        try:
            etags = await asyncio.gather(
                *(
                    self._retrying(
                        "write",
                        key,
                        functools.partial(
                            self._mpu_part,
                            key,
                            upload_id,
                            number,
                            data[offset : offset + part_size],
                        ),
                    )
                    for number, offset in enumerate(range(0, len(data), part_size), start=1)
                )
            )
            parts = [{"ETag": etag, "PartNumber": n} for n, etag in enumerate(etags, start=1)]
            await self._retrying(
                "write", key, functools.partial(self._mpu_complete, key, upload_id, parts)
            )
        except BaseException:
            try:
                await self._retrying(
                    "write", key, functools.partial(self._mpu_abort, key, upload_id)
                )
            except Exception:
                pass  # the original error matters more; lifecycle rules clean up
            raise

    async def _mpu_create(self, key: str, client: Any) -> dict[str, Any]:
        params = self._params(key)
        storage_class = self._settings.storage_class_for(key)
        if storage_class:
            params["StorageClass"] = storage_class
        created: dict[str, Any] = await client.create_multipart_upload(**params)
        return created

    async def _mpu_part(
        self, key: str, upload_id: str, number: int, body: bytes, client: Any
    ) -> str:
        response = await client.upload_part(
            **self._params(key), UploadId=upload_id, PartNumber=number, Body=body
        )
        etag: str = response["ETag"]
        return etag

    async def _mpu_complete(
        self, key: str, upload_id: str, parts: list[dict[str, Any]], client: Any
    ) -> None:
        await client.complete_multipart_upload(
            **self._params(key), UploadId=upload_id, MultipartUpload={"Parts": parts}
        )

    async def _mpu_abort(self, key: str, upload_id: str, client: Any) -> None:
        await client.abort_multipart_upload(**self._params(key), UploadId=upload_id)
