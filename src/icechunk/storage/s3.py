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
import threading
from dataclasses import dataclass
from datetime import UTC
from enum import Enum
from typing import Any
from urllib.parse import urlparse

from icechunk.exceptions import InvalidInputError, StorageError
from icechunk.storage._remote import (
    BucketStorage,
    ClientHandle,
    FailureKind,
    range_header,
)
from icechunk.storage.base import ObjectInfo, Version
from icechunk.storage.credentials import AnyS3Credential, S3Credentials
from icechunk.storage.settings import StorageSettings

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


class ChecksumAlgorithm(Enum):
    """Checksum algorithm for S3 write requests (``None``: the SDK's default)."""

    Crc32 = 0
    Crc32c = 1
    Crc64Nvme = 2
    Sha1 = 3
    Sha256 = 4

    @property
    def aws_name(self) -> str:
        return {0: "CRC32", 1: "CRC32C", 2: "CRC64NVME", 3: "SHA1", 4: "SHA256"}[self.value]


@dataclass
class S3Options:
    """How to reach an S3-compatible endpoint (the official ``S3Options``)."""

    region: str | None = None
    endpoint_url: str | None = None
    allow_http: bool = False
    anonymous: bool = False
    force_path_style: bool = False
    network_stream_timeout_seconds: int | None = None
    requester_pays: bool = False
    checksum_algorithm: ChecksumAlgorithm | None = None

    def __post_init__(self) -> None:
        if self.endpoint_url is not None:
            parsed = urlparse(self.endpoint_url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise InvalidInputError(
                    f"endpoint_url must be an http(s) URL like http://localhost:9000, "
                    f"got {self.endpoint_url!r}"
                )
            if parsed.scheme == "http" and not self.allow_http:
                raise InvalidInputError(
                    f"endpoint_url {self.endpoint_url!r} uses plain http: pass allow_http=True "
                    "to allow unencrypted connections"
                )
        if self.checksum_algorithm is not None and not isinstance(
            self.checksum_algorithm, ChecksumAlgorithm
        ):
            raise InvalidInputError(
                f"checksum_algorithm must be a ChecksumAlgorithm, got {self.checksum_algorithm!r}"
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
            import aiobotocore.session

            _SESSION = aiobotocore.session.get_session()
        return _SESSION


def _client_error_info(err: Exception) -> tuple[int | None, str]:
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return None, ""
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(response.get("Error", {}).get("Code", ""))
    return status, code


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
        try:
            from botocore import UNSIGNED
            from botocore.config import Config
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
        credentials = self._credentials
        kwargs: dict[str, Any] = {}
        expires_at = None
        static = None
        if isinstance(credentials, S3Credentials.Anonymous) or options.anonymous:
            config["signature_version"] = UNSIGNED
        elif isinstance(credentials, S3Credentials.Static):
            static = credentials.credentials
        elif isinstance(credentials, S3Credentials.Refreshable):
            static = await asyncio.to_thread(credentials.fetch)
            expires_at = static.expires_after
        if static is not None:
            kwargs["aws_access_key_id"] = static.access_key_id
            kwargs["aws_secret_access_key"] = static.secret_access_key
            if static.session_token is not None:
                kwargs["aws_session_token"] = static.session_token
        session = await asyncio.to_thread(_shared_session)
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

        return ClientHandle(client, close, expires_at, abandon)

    def _classify(self, err: Exception) -> FailureKind:
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            HTTPClientError,
            IncompleteReadError,
            SSLError,
        )

        if isinstance(err, ClientError):
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
        if isinstance(err, SSLError):
            return FailureKind.OTHER
        if isinstance(
            err, HTTPClientError | ConnectionError | IncompleteReadError | TimeoutError | OSError
        ):
            return FailureKind.TRANSIENT
        try:
            import aiohttp
        except ImportError:  # pragma: no cover
            return FailureKind.OTHER
        if isinstance(err, aiohttp.ClientError):
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
            return await body.read()

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
        return response["ETag"]

    async def _head(self, client: Any, key: str) -> Version | None:
        try:
            response = await client.head_object(**self._params(key))
        except Exception as err:
            if self._classify(err) is FailureKind.NOT_FOUND:
                return None
            raise
        return response["ETag"]

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
        return await client.create_multipart_upload(**params)

    async def _mpu_part(
        self, key: str, upload_id: str, number: int, body: bytes, client: Any
    ) -> str:
        response = await client.upload_part(
            **self._params(key), UploadId=upload_id, PartNumber=number, Body=body
        )
        return response["ETag"]

    async def _mpu_complete(
        self, key: str, upload_id: str, parts: list[dict[str, Any]], client: Any
    ) -> None:
        await client.complete_multipart_upload(
            **self._params(key), UploadId=upload_id, MultipartUpload={"Parts": parts}
        )

    async def _mpu_abort(self, key: str, upload_id: str, client: Any) -> None:
        await client.abort_multipart_upload(**self._params(key), UploadId=upload_id)
