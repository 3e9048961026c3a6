"""Object store configurations of virtual chunk containers, and their credentials.

``ObjectStoreConfig`` says *how to reach* the objects virtual chunks point into
(``ic.local_filesystem_store``, ``ic.s3_store``, ``ic.http_store``,
``ic.gcs_store``); ``Credentials`` say *with which identity*. Configurations are
persisted in the repository config with the official package's serde layout, so
either implementation reads the other's containers:

* ``"in_memory"``
* ``{"local_file_system": "/path"}``
* ``{"s3" | "s3_compatible" | "tigris": {S3Options fields}}``
* ``{"gcs": {option: value}}``, ``{"azure": {option: value}}``
* ``{"http": {option: value, ..., "headers": {name: value}}}`` (options flattened,
  ``headers`` only when non-empty)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from icechunk.exceptions import InvalidInputError
from icechunk.storage.credentials import AnyGcsCredential, AnyS3Credential
from icechunk.storage.s3_options import ChecksumAlgorithm, S3Options

# the official serde names are the lowercased AWS names ("crc32", ..., "sha256")
_CHECKSUM_BY_NAME = {a.aws_name.lower(): a for a in ChecksumAlgorithm}
_CHECKSUM_BY_NAME["crc64_nvme"] = ChecksumAlgorithm.Crc64Nvme


def _str_map(value: Mapping[str, Any] | None, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be a dict of strings, got {value!r}")
    return {str(k): str(v) for k, v in value.items()}


def s3_options_to_serde(opts: S3Options) -> dict[str, Any]:
    """``S3Options`` as the official package serialises it."""
    algorithm = opts.checksum_algorithm
    return {
        "region": opts.region,
        "endpoint_url": opts.endpoint_url,
        "anonymous": bool(opts.anonymous),
        "allow_http": bool(opts.allow_http),
        "force_path_style": bool(opts.force_path_style),
        "network_stream_timeout_seconds": opts.network_stream_timeout_seconds,
        "requester_pays": bool(opts.requester_pays),
        "checksum_algorithm": algorithm.aws_name.lower() if algorithm is not None else None,
    }


def s3_options_from_serde(value: Any) -> S3Options:
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"bad persisted S3 options: {value!r}")
    algorithm = value.get("checksum_algorithm")
    opts = S3Options.__new__(S3Options)  # persisted values are taken as they are
    opts.region = value.get("region")
    opts.endpoint_url = value.get("endpoint_url")
    opts.anonymous = bool(value.get("anonymous", False))
    opts.allow_http = bool(value.get("allow_http", False))
    opts.force_path_style = bool(value.get("force_path_style", False))
    opts.network_stream_timeout_seconds = value.get("network_stream_timeout_seconds")
    opts.requester_pays = bool(value.get("requester_pays", False))
    opts.checksum_algorithm = (
        _CHECKSUM_BY_NAME.get(str(algorithm).lower()) if algorithm is not None else None
    )
    return opts


class ObjectStoreConfig:
    """Where virtual chunks live: one of the nested variants (``ObjectStoreConfig.S3(...)``...)."""

    _variant = ""
    #: url schemes a container of this store may use
    schemes: tuple[str, ...] = ()

    def to_serde(self) -> Any:
        raise NotImplementedError

    def _fields(self) -> tuple[Any, ...]:
        return ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._fields() == self._fields()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self._fields())))

    def __repr__(self) -> str:
        args = ", ".join(repr(f) for f in self._fields())
        return f"ObjectStoreConfig.{type(self).__name__}({args})"

    @staticmethod
    def from_serde(value: Any) -> ObjectStoreConfig:
        """The configuration persisted as ``value`` (see the module docstring)."""
        if value == "in_memory":
            return InMemory()
        if not isinstance(value, Mapping) or len(value) != 1:
            raise InvalidInputError(f"bad persisted object store config: {value!r}")
        ((variant, body),) = value.items()
        if variant == "local_file_system":
            return LocalFileSystem(str(body))
        if variant in ("s3", "s3_compatible", "tigris"):
            cls = {"s3": S3, "s3_compatible": S3Compatible, "tigris": Tigris}[variant]
            return cls(s3_options_from_serde(body))
        if variant == "gcs":
            return Gcs(body or {})
        if variant == "azure":
            return Azure(body or {})
        if variant == "http":
            body = dict(body or {})
            headers = body.pop("headers", None)
            return Http(body, headers)
        raise InvalidInputError(f"unknown object store kind {variant!r} in persisted config")


class InMemory(ObjectStoreConfig):
    """An in-memory store (accepted for compatibility; it cannot hold virtual chunks)."""

    schemes = ("memory",)

    def to_serde(self) -> Any:
        return "in_memory"


class LocalFileSystem(ObjectStoreConfig):
    """Files on the local filesystem (``file://`` locations)."""

    schemes = ("file",)

    def __init__(self, path: str) -> None:
        self.path = str(path)

    def _fields(self) -> tuple[Any, ...]:
        return (self.path,)

    def to_serde(self) -> Any:
        return {"local_file_system": self.path}


class S3Like(ObjectStoreConfig):
    """Base of the S3 variants (S3, S3Compatible, Tigris): configured by ``S3Options``."""

    schemes: tuple[str, ...] = ("s3",)
    _variant = "s3"

    def __init__(self, options: S3Options | None = None) -> None:
        if options is None:
            options = S3Options()
        if not isinstance(options, S3Options):
            raise InvalidInputError(f"expected ic.S3Options, got {type(options).__name__}")
        self.options = options

    @property
    def opts(self) -> S3Options:
        return self.options

    def _fields(self) -> tuple[Any, ...]:
        return (self.options,)

    def to_serde(self) -> Any:
        return {self._variant: s3_options_to_serde(self.options)}


class S3(S3Like):
    """Amazon S3 (``s3://bucket/...`` locations)."""

    _variant = "s3"


class S3Compatible(S3Like):
    """An S3-compatible store such as MinIO (``s3://bucket/...`` locations)."""

    _variant = "s3_compatible"


class Tigris(S3Like):
    """Tigris (``s3://`` or ``tigris://`` locations)."""

    _variant = "tigris"
    schemes = ("s3", "tigris")


class Gcs(ObjectStoreConfig):
    """Google Cloud Storage (``gs://`` or ``gcs://`` locations)."""

    schemes = ("gs", "gcs")

    def __init__(self, opts: Mapping[str, str] | None = None) -> None:
        self.opts = _str_map(opts, "Gcs options")

    def _fields(self) -> tuple[Any, ...]:
        return (self.opts,)

    def to_serde(self) -> Any:
        return {"gcs": dict(self.opts)}


class Azure(ObjectStoreConfig):
    """Azure Blob Storage (kept in configs; reading Azure virtual chunks is not supported)."""

    schemes = ("az", "azure", "abfs")

    def __init__(self, opts: Mapping[str, str] | None = None) -> None:
        self.opts = _str_map(opts, "Azure options")

    def _fields(self) -> tuple[Any, ...]:
        return (self.opts,)

    def to_serde(self) -> Any:
        return {"azure": dict(self.opts)}


class Http(ObjectStoreConfig):
    """Plain HTTP(S) servers (``http://`` / ``https://`` locations)."""

    schemes = ("http", "https")

    def __init__(
        self,
        opts: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.opts = _str_map(opts, "Http options")
        self.headers = _str_map(headers, "Http headers")

    def _fields(self) -> tuple[Any, ...]:
        return (self.opts, self.headers)

    def to_serde(self) -> Any:
        body: dict[str, Any] = dict(self.opts)
        if self.headers:
            body["headers"] = dict(self.headers)
        return {"http": body}


for _cls in (InMemory, LocalFileSystem, S3, S3Compatible, Tigris, Gcs, Azure, Http):
    _cls.__qualname__ = f"ObjectStoreConfig.{_cls.__name__}"
    setattr(ObjectStoreConfig, _cls.__name__, _cls)

AnyObjectStoreConfig = InMemory | LocalFileSystem | S3 | S3Compatible | Gcs | Azure | Tigris | Http


def local_filesystem_store(path: str) -> LocalFileSystem:
    """An ObjectStoreConfig for local files under ``path``."""
    return LocalFileSystem(path)


def s3_store(
    region: str | None = None,
    endpoint_url: str | None = None,
    allow_http: bool = False,
    anonymous: bool = False,
    s3_compatible: bool = False,
    force_path_style: bool = False,
    network_stream_timeout_seconds: int = 60,
    requester_pays: bool = False,
    checksum_algorithm: ChecksumAlgorithm | None = None,
) -> S3Compatible | S3:
    """An ObjectStoreConfig for S3 (or, with ``s3_compatible``, an S3-compatible store)."""
    options = S3Options(
        region=region,
        endpoint_url=endpoint_url,
        allow_http=allow_http,
        anonymous=anonymous,
        force_path_style=force_path_style,
        network_stream_timeout_seconds=network_stream_timeout_seconds,
        requester_pays=requester_pays,
        checksum_algorithm=checksum_algorithm,
    )
    return S3Compatible(options) if s3_compatible else S3(options)


def http_store(
    opts: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Http:
    """An ObjectStoreConfig for HTTP(S) servers; ``headers`` go with every request."""
    return Http(opts, headers)


def gcs_store(opts: dict[str, str] | None = None) -> Gcs:
    """An ObjectStoreConfig for Google Cloud Storage (``opts``: gcs client options)."""
    return Gcs(opts)


# -- credentials --------------------------------------------------------------------------


class Credentials:
    """Credentials for a virtual chunk container (namespace of the kinds)."""

    class _Wrapped:
        def __init__(self, credentials: Any) -> None:
            self.credentials = credentials

        def __eq__(self, other: object) -> bool:
            return type(other) is type(self) and other.credentials == self.credentials

        def __hash__(self) -> int:
            return hash((type(self).__name__, id(self.credentials)))

        def __repr__(self) -> str:
            return f"Credentials.{type(self).__name__}({self.credentials!r})"

    class S3(_Wrapped):
        """S3 credentials (``ic.s3_credentials(...)``)."""

    class Gcs(_Wrapped):
        """GCS credentials (``ic.gcs_credentials(...)``)."""

    class Azure(_Wrapped):
        """Azure credentials (accepted; Azure virtual chunks cannot be read here)."""

    class _Sentinel:
        def __eq__(self, other: object) -> bool:
            return type(other) is type(self)

        def __hash__(self) -> int:
            return hash(type(self).__name__)

        def __repr__(self) -> str:
            return f"Credentials.{type(self).__name__}()"

    class LocalFileSystemAccess(_Sentinel):
        """Authorises a ``file://`` container (no credentials needed)."""

    class HttpAccess(_Sentinel):
        """Authorises an ``http(s)://`` container (no credentials needed)."""


#: Explicit sentinel authorising a ``file://`` virtual chunk container.
LocalFileSystemAccess = Credentials.LocalFileSystemAccess()
#: Explicit sentinel authorising an ``http(s)://`` virtual chunk container.
HttpAccess = Credentials.HttpAccess()

AnyCredential = (
    Credentials.S3
    | Credentials.Gcs
    | Credentials.Azure
    | Credentials.LocalFileSystemAccess
    | Credentials.HttpAccess
)


def wrap_credential(cred: Any) -> Any:
    """``cred`` as a :class:`Credentials` variant (None stays None)."""
    if cred is None or isinstance(cred, AnyCredential):
        return cred
    if isinstance(cred, AnyS3Credential):
        return Credentials.S3(cred)
    if isinstance(cred, AnyGcsCredential):
        return Credentials.Gcs(cred)
    raise InvalidInputError(
        f"not credentials for a virtual chunk container: {cred!r}; use ic.s3_credentials(...), "
        "ic.gcs_credentials(...), ic.credentials.LocalFileSystemAccess or "
        "ic.credentials.HttpAccess"
    )


def containers_credentials(m: Mapping[str, Any]) -> dict[str, Any]:
    """Map container url prefixes to :class:`Credentials` for ``authorize_virtual_chunk_access``.

    Values are S3/GCS credentials, the ``LocalFileSystemAccess`` / ``HttpAccess``
    sentinels, or None (use the defaults: environment or anonymous access).
    """
    if not isinstance(m, Mapping):
        raise InvalidInputError(f"containers_credentials takes a dict, got {type(m).__name__}")
    return {str(prefix): wrap_credential(cred) for prefix, cred in m.items()}


__all__ = [
    "AnyCredential",
    "AnyObjectStoreConfig",
    "Credentials",
    "HttpAccess",
    "LocalFileSystemAccess",
    "ObjectStoreConfig",
    "containers_credentials",
    "gcs_store",
    "http_store",
    "local_filesystem_store",
    "s3_store",
]
