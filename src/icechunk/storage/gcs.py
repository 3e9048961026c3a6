"""Google Cloud Storage via gcsfs (its session, endpoint and credentials handling).

Conditional writes use GCS preconditions on the JSON API's multipart upload:
``ifGenerationMatch=0`` to create, ``ifGenerationMatch=<generation>`` to swap.
The version token is the object's generation (a decimal string).

gcsfs's public calls have no generation-CAS argument and retry failed requests
internally (which would re-send a conditional upload whose reply was lost and
report our own write as a conflict), so requests go through gcsfs's request
function *without* its retry decorator, one attempt each; retries, backoff and
the lost-response check happen in ``_remote``. We use ``gcsfs.core``'s plain
``GCSFileSystem`` (not the experimental zonal-bucket subclass).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from icechunk._util.sync import run_blocking
from icechunk.exceptions import InvalidInputError, StorageError
from icechunk.storage._bucket import BucketStorage, range_header
from icechunk.storage._clients import ClientHandle
from icechunk.storage._remote import FailureKind, RangeRead, RangeRequest
from icechunk.storage.base import ObjectInfo, Version
from icechunk.storage.credentials import (
    AnyGcsCredential,
    GcsCredentials,
    GcsStaticCredentials,
)
from icechunk.storage.settings import StorageSettings

_BOUNDARY = "icechunk-" + hashlib.sha256(b"icechunk multipart boundary").hexdigest()[:24]
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def _truthy(value: str | None) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class GcsStorage(BucketStorage):
    """A repository under ``gs://bucket/prefix``.

    ``config`` accepts the official package's keys where they make sense here:
    ``base_url``/``google_base_url`` (also ``endpoint_url``: the server, e.g. an
    emulator), ``skip_signature`` (anonymous), ``service_account``/
    ``service_account_path``, ``service_account_key``, ``application_credentials``
    and ``allow_http``. Without an explicit URL gcsfs honours
    ``STORAGE_EMULATOR_HOST``.
    """

    _delete_batch_size = 1  # one DELETE per object (bounded by the semaphore)

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str | None,
        credentials: AnyGcsCredential | None = None,
        config: dict[str, str] | None = None,
        settings: StorageSettings | None = None,
        read_headers: dict[str, str] | None = None,
        write_headers: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        max_concurrent_requests: int | None = None,
    ) -> None:
        super().__init__(settings, max_concurrent_requests)
        self._check_location(bucket, prefix)
        config = dict(config or {})
        endpoint = (
            config.pop("endpoint_url", None)
            or config.pop("google_base_url", None)
            or config.pop("base_url", None)
        )
        allow_http = _truthy(
            config.pop("allow_http", None) or config.pop("google_allow_http", None)
        )
        if endpoint is not None and endpoint.startswith("http://") and not allow_http:
            raise InvalidInputError(
                f"GCS endpoint {endpoint!r} uses plain http: add 'allow_http': 'true' to config"
            )
        credentials = self._credentials_from_config(credentials, config)
        if not isinstance(
            credentials,
            GcsCredentials.Anonymous
            | GcsCredentials.FromEnv
            | GcsCredentials.Static
            | GcsCredentials.Refreshable,
        ):
            raise InvalidInputError(f"not GCS credentials: {credentials!r}")
        self._bucket = bucket
        self._prefix = (prefix or "").strip("/")
        self._key_base = f"{self._prefix}/" if self._prefix else ""
        self._endpoint = endpoint.rstrip("/") if endpoint else None
        self._credentials = credentials
        self._config = config
        self._read_headers = {**(headers or {}), **(read_headers or {})}
        self._write_headers = {**(headers or {}), **(write_headers or {})}

    @staticmethod
    def _credentials_from_config(
        credentials: AnyGcsCredential | None, config: dict[str, str]
    ) -> AnyGcsCredential:
        def pop(*names: str) -> str | None:
            values = [config.pop(n) for n in names if n in config]
            return values[0] if values else None

        anonymous = _truthy(pop("skip_signature", "google_skip_signature"))
        account = pop(
            "service_account",
            "google_service_account",
            "service_account_path",
            "google_service_account_path",
        )
        key = pop("service_account_key", "google_service_account_key")
        application = pop("application_credentials", "google_application_credentials")
        if credentials is not None and not isinstance(credentials, GcsCredentials.FromEnv):
            return credentials
        if anonymous:
            return GcsCredentials.Anonymous()
        if account is not None:
            return GcsCredentials.Static(GcsStaticCredentials.ServiceAccount(account))
        if key is not None:
            return GcsCredentials.Static(GcsStaticCredentials.ServiceAccountKey(key))
        if application is not None:
            return GcsCredentials.Static(GcsStaticCredentials.ApplicationCredentials(application))
        return credentials if credentials is not None else GcsCredentials.FromEnv()

    # -- identity ---------------------------------------------------------------------

    def describe(self) -> str:
        where = f"gs://{self._bucket}/{self._prefix}".rstrip("/")
        if self._endpoint:
            where += f" at {self._endpoint}"
        return where

    def _ident(self) -> tuple[Any, ...]:
        return ("gcs", self._bucket, self._key_base, self._endpoint)

    # -- the client -------------------------------------------------------------------

    async def _open_client(self) -> ClientHandle:
        try:
            from gcsfs.core import GCSFileSystem  # type: ignore[import-untyped]  # no type stubs (P11 replaces this transport)
        except ImportError as err:  # pragma: no cover - depends on the installation
            raise StorageError("GCS storage needs gcsfs: pip install 'icechunk-py[gcs]'") from err
        token, expires_at = await self._token()
        timeouts = self._settings.effective_timeouts
        kwargs: dict[str, Any] = {}
        if timeouts.read_timeout_ms is not None or timeouts.connect_timeout_ms is not None:
            import aiohttp

            kwargs["requests_timeout"] = aiohttp.ClientTimeout(
                sock_read=(timeouts.read_timeout_ms or 0) / 1000.0 or None,
                sock_connect=(timeouts.connect_timeout_ms or 0) / 1000.0 or None,
            )
        requester_pays = self._config.get("requester_pays")
        fs = await run_blocking(
            GCSFileSystem,
            project=self._config.get("project", ""),
            token=token,
            endpoint_url=self._endpoint,
            asynchronous=True,
            skip_instance_cache=True,
            requester_pays=_truthy(requester_pays) if requester_pays else False,
            **kwargs,
        )
        await fs._set_session()
        request = getattr(type(fs)._request, "__wrapped__", None)
        if request is None:  # an unexpected gcsfs: fall back to its retrying call
            request = type(fs)._request
        client = _GcsClient(fs, request)

        async def close() -> None:
            session = fs._session
            if session is not None and not session.closed:
                await session.close()

        def abandon() -> None:
            connector = getattr(fs._session, "_connector", None)
            if connector is not None:
                connector._close()

        return ClientHandle(client, close, expires_at, abandon)

    async def _token(self) -> tuple[Any, datetime | None]:
        creds = self._credentials
        if isinstance(creds, GcsCredentials.Anonymous):
            return "anon", None
        if isinstance(creds, GcsCredentials.FromEnv):
            return None, None
        if isinstance(creds, GcsCredentials.Refreshable):
            bearer = await run_blocking(creds.fetch)
            return _bearer_credentials(bearer.bearer, bearer.expires_after), bearer.expires_after
        static = creds.credentials
        if isinstance(
            static,
            GcsStaticCredentials.ServiceAccount | GcsStaticCredentials.ApplicationCredentials,
        ):
            return static.path, None
        if isinstance(static, GcsStaticCredentials.ServiceAccountKey):
            try:
                return json.loads(static.key), None
            except ValueError as err:
                raise InvalidInputError("service_account_key is not valid JSON") from err
        if isinstance(static, GcsStaticCredentials.BearerToken):
            return _bearer_credentials(static.token, None), None
        raise InvalidInputError(f"unsupported GCS credentials: {static!r}")

    def _classify(self, err: Exception) -> FailureKind:
        import aiohttp

        if isinstance(err, FileNotFoundError):
            return FailureKind.NOT_FOUND
        if isinstance(err, FileExistsError):  # gcsfs's translation of HTTP 412
            return FailureKind.PRECONDITION
        if isinstance(err, aiohttp.ClientError | TimeoutError | ConnectionError):
            return FailureKind.TRANSIENT
        code = getattr(err, "code", None)
        if type(err).__name__ == "HttpError":
            if code == 412:
                return FailureKind.PRECONDITION
            try:
                status = int(code)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return FailureKind.OTHER
            return FailureKind.TRANSIENT if status in _TRANSIENT_STATUS else FailureKind.OTHER
        if type(err).__name__ in ("ProxyError", "ChecksumError"):  # 502, corrupted transfer
            return FailureKind.TRANSIENT
        return FailureKind.OTHER

    # -- primitives -------------------------------------------------------------------

    async def _read(
        self, client: Any, key: str, start: int, end: int | None, suffix: int | None
    ) -> bytes:
        headers = dict(self._read_headers)
        byte_range = range_header(start, end, suffix)
        if byte_range is not None:
            headers["Range"] = byte_range
        try:
            _, contents = await client.media(self._bucket, self._full(key), headers)
        except Exception as err:
            if getattr(err, "code", None) == 416:
                return b""
            raise
        data: bytes = contents
        return data

    async def _read_if_unchanged(self, client: Any, want: RangeRequest) -> RangeRead:
        # unconditional: the caller compares the versions of the response headers
        headers = {**self._read_headers, "Range": want.range_header}
        response_headers, data = await client.media(self._bucket, self._full(want.key), headers)
        return RangeRead(data, response_headers.get("ETag"), response_headers.get("Last-Modified"))

    async def _read_versioned(self, client: Any, key: str) -> tuple[bytes, Version]:
        name = self._full(key)
        response_headers, contents = await client.media(self._bucket, name, self._read_headers)
        generation = response_headers.get("x-goog-generation")
        if generation:
            return contents, str(generation)
        # No generation header (some emulators): pin the read to the current generation.
        meta = await client.metadata(self._bucket, name, self._read_headers)
        generation = str(meta["generation"])
        _, contents = await client.media(
            self._bucket, name, self._read_headers, generation=generation
        )
        return contents, generation

    async def _write(
        self,
        client: Any,
        key: str,
        data: bytes,
        *,
        if_match: Version | None = None,
        if_absent: bool = False,
    ) -> Version:
        metadata: dict[str, Any] = {"name": self._full(key)}
        storage_class = self._settings.storage_class_for(key)
        if storage_class:
            metadata["storageClass"] = storage_class
        params: dict[str, Any] = {}
        if if_absent:
            params["ifGenerationMatch"] = "0"
        elif if_match is not None:
            if not if_match.isdigit():
                # not a generation of any object: the precondition cannot hold
                raise FileExistsError(f"version {if_match!r} is not a GCS generation")
            params["ifGenerationMatch"] = if_match
        result = await client.upload(self._bucket, metadata, data, self._write_headers, params)
        return str(result["generation"])

    async def _head(self, client: Any, key: str) -> Version | None:
        try:
            meta = await client.metadata(self._bucket, self._full(key), self._read_headers)
        except FileNotFoundError:
            return None
        return str(meta["generation"])

    async def _list_page(
        self, client: Any, prefix: str, token: Any
    ) -> tuple[list[ObjectInfo], Any]:
        page = await client.list(self._bucket, self._key_base + prefix, token, self._read_headers)
        skip = len(self._key_base)
        infos = [
            ObjectInfo(
                item["name"][skip:],
                int(item.get("size", 0)),
                datetime.fromisoformat(item["updated"]),
            )
            for item in page.get("items", ())
        ]
        return infos, page.get("nextPageToken")

    async def _delete_batch(self, client: Any, keys: list[str]) -> None:
        for key in keys:
            try:
                await client.delete(self._bucket, self._full(key), self._write_headers)
            except FileNotFoundError:
                pass


def _bearer_credentials(token: str, expires_after: datetime | None) -> Any:
    from google.oauth2.credentials import Credentials

    expiry = None
    if expires_after is not None:  # google-auth compares naive UTC datetimes
        expiry = expires_after.astimezone(UTC).replace(tzinfo=None)
    # google-auth's Credentials.__init__ has no annotations
    return Credentials(token, expiry=expiry)  # type: ignore[no-untyped-call]


def _json_object(contents: bytes) -> dict[str, Any]:
    """A JSON-API response body (always an object)."""
    value: dict[str, Any] = json.loads(contents)
    return value


class _GcsClient:
    """The few JSON-API calls we need, each one HTTP request (no internal retries)."""

    def __init__(self, fs: Any, request: Any) -> None:
        self.fs = fs
        self._request = request

    async def _call(self, method: str, path: str, *args: str, **kwargs: Any) -> tuple[Any, bytes]:
        _, headers, _, contents = await self._request(self.fs, method, path, *args, **kwargs)
        return headers, contents

    async def media(
        self, bucket: str, name: str, headers: dict[str, str], generation: str | None = None
    ) -> tuple[Any, bytes]:
        url = f"{self.fs._location}/download/storage/v1/b/{{}}/o/{{}}"
        return await self._call(
            "GET", url, bucket, name, headers=headers, alt="media", generation=generation
        )

    async def metadata(self, bucket: str, name: str, headers: dict[str, str]) -> dict[str, Any]:
        _, contents = await self._call("GET", "b/{}/o/{}", bucket, name, headers=headers)
        return _json_object(contents)

    async def list(
        self, bucket: str, prefix: str, token: str | None, headers: dict[str, str]
    ) -> dict[str, Any]:
        _, contents = await self._call(
            "GET",
            "b/{}/o",
            bucket,
            headers=headers,
            prefix=prefix or None,
            pageToken=token,
            maxResults=1000,
            fields="items(name,size,updated),nextPageToken",
        )
        return _json_object(contents)

    async def upload(
        self,
        bucket: str,
        metadata: dict[str, Any],
        data: bytes,
        headers: dict[str, str],
        params: dict[str, Any],
    ) -> dict[str, Any]:
        head = (
            f"--{_BOUNDARY}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
            f"{json.dumps(metadata)}\r\n--{_BOUNDARY}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        body = b"".join((head, data, f"\r\n--{_BOUNDARY}--\r\n".encode()))
        url = f"{self.fs._location}/upload/storage/v1/b/{{}}/o"
        _, contents = await self._call(
            "POST",
            url,
            bucket,
            headers={**headers, "Content-Type": f'multipart/related; boundary="{_BOUNDARY}"'},
            data=body,
            uploadType="multipart",
            **params,
        )
        return _json_object(contents)

    async def delete(self, bucket: str, name: str, headers: dict[str, str]) -> None:
        await self._call("DELETE", "b/{}/o/{}", bucket, name, headers=headers)
