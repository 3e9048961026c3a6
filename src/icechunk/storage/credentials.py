"""Credentials for the object-store backends, with the official package's names.

``S3Credentials.Static(S3StaticCredentials(...))``, ``S3Credentials.Anonymous()``,
``S3Credentials.FromEnv()`` and ``S3Credentials.Refreshable(pickled_function,
current)``; the same shapes for GCS. The ``s3_credentials(...)`` and
``gcs_credentials(...)`` helpers pick one from keyword arguments exactly like the
official helpers do.

Everything here pickles. A refreshable credential holds its provider function
pickled (as the official one does), so the function must be picklable (a
module-level function, not a lambda or a closure); the provider is called
again whenever the credentials it returned have expired.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from icechunk.exceptions import InvalidInputError

__all__ = [
    "AnyGcsCredential",
    "AnyGcsStaticCredential",
    "AnyS3Credential",
    "GcsBearerCredential",
    "GcsCredentials",
    "GcsStaticCredentials",
    "S3Credentials",
    "S3StaticCredentials",
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

# Refresh credentials this long before they expire, so a request signed with
# them does not reach the server after the deadline.
REFRESH_MARGIN = timedelta(seconds=30)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInputError(f"expires_after must be a datetime or None, got {value!r}")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def expired(expires_after: datetime | None, now: datetime | None = None) -> bool:
    """Whether credentials expiring at ``expires_after`` should be refreshed now."""
    if expires_after is None:
        return False
    now = now or datetime.now(UTC)
    return now + REFRESH_MARGIN >= expires_after


# -- S3 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3StaticCredentials:
    """An access key pair (and optional session token) for S3."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    expires_after: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("access_key_id", "secret_access_key"):
            if not isinstance(getattr(self, name), str):
                raise InvalidInputError(f"S3StaticCredentials.{name} must be a str")
        object.__setattr__(self, "expires_after", _aware(self.expires_after))

    def __repr__(self) -> str:  # never print secrets
        return f"S3StaticCredentials(access_key_id={self.access_key_id!r}, secret_access_key=***)"


class _Expiring(Protocol):
    """What a refreshable credential's provider returns."""

    @property
    def expires_after(self) -> datetime | None: ...


C = TypeVar("C", bound=_Expiring)


class _Refreshable(Generic[C]):
    """A pickled provider function plus the credential it gave last (if any)."""

    #: the type of credential the provider returns (set by each subclass)
    _kind: type[C]

    def __init__(self, pickled_function: bytes, current: C | None = None) -> None:
        if not isinstance(pickled_function, bytes | bytearray):
            raise InvalidInputError(
                "Refreshable credentials take the provider function pickled "
                "(pickle.dumps(fn)); use the *_refreshable_credentials(fn) helper"
            )
        if current is not None and not isinstance(current, self._kind):
            raise InvalidInputError(
                f"current must be a {self._kind.__name__} or None, got {current!r}"
            )
        self.pickled_function = bytes(pickled_function)
        self.current: C | None = current
        self._function: Callable[[], object] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"pickled_function": self.pickled_function, "current": self.current}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.pickled_function = state["pickled_function"]
        self.current = state["current"]
        self._function = None

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.pickled_function == other.pickled_function

    def __hash__(self) -> int:
        return hash((type(self), self.pickled_function))

    def fetch(self) -> C:
        """Fresh credentials: the scattered initial ones while valid, else the provider's.

        Blocking (it runs the user's function); backends call it in a thread.
        """
        current = self.current
        if current is not None and not expired(current.expires_after):
            return current
        function = self._function
        if function is None:
            function = self._function = pickle.loads(self.pickled_function)
        fresh = function()
        if not isinstance(fresh, self._kind):
            raise InvalidInputError(
                f"the credentials function returned {type(fresh).__name__}, "
                f"expected {self._kind.__name__}"
            )
        self.current = fresh
        return fresh


class S3Credentials:
    """The ways to authenticate to S3 (namespace of the four kinds)."""

    @dataclass(frozen=True)
    class FromEnv:
        """Credentials from the environment (variables, profile files, instance role)."""

    @dataclass(frozen=True)
    class Anonymous:
        """Unsigned requests, for public buckets."""

    @dataclass(frozen=True)
    class Static:
        """Fixed credentials."""

        credentials: S3StaticCredentials

    class Refreshable(_Refreshable[S3StaticCredentials]):
        """Credentials obtained (and renewed on expiry) by calling a function."""

        _kind = S3StaticCredentials


AnyS3Credential = (
    S3Credentials.Static
    | S3Credentials.Anonymous
    | S3Credentials.FromEnv
    | S3Credentials.Refreshable
)


def s3_refreshable_credentials(
    get_credentials: Callable[[], S3StaticCredentials],
    scatter_initial_credentials: bool = False,
) -> S3Credentials.Refreshable:
    """Credentials obtained by calling ``get_credentials`` (again whenever they expire).

    The function must be picklable. With ``scatter_initial_credentials`` it is
    called once now and its result travels with pickled copies of the storage,
    so many workers do not all call it at start-up (the credentials are then
    part of the pickle).
    """
    current = get_credentials() if scatter_initial_credentials else None
    return S3Credentials.Refreshable(pickle.dumps(get_credentials), current)


def s3_static_credentials(
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None = None,
    expires_after: datetime | None = None,
) -> S3Credentials.Static:
    """Fixed S3 credentials."""
    return S3Credentials.Static(
        S3StaticCredentials(access_key_id, secret_access_key, session_token, expires_after)
    )


def s3_anonymous_credentials() -> S3Credentials.Anonymous:
    """No credentials: requests are not signed (public buckets)."""
    return S3Credentials.Anonymous()


def s3_from_env_credentials() -> S3Credentials.FromEnv:
    """Credentials from the environment (AWS_* variables, profiles, instance metadata)."""
    return S3Credentials.FromEnv()


def s3_credentials(
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    expires_after: datetime | None = None,
    anonymous: bool | None = None,
    from_env: bool | None = None,
    get_credentials: Callable[[], S3StaticCredentials] | None = None,
    scatter_initial_credentials: bool = False,
) -> AnyS3Credential:
    """S3 credentials from keyword arguments; with none given, from the environment.

    Exactly one way must be chosen: a key pair (``access_key_id`` and
    ``secret_access_key``, optionally ``session_token``/``expires_after``),
    ``anonymous=True``, ``from_env=True`` or ``get_credentials``.
    """
    static_given = (
        access_key_id is not None
        or secret_access_key is not None
        or session_token is not None
        or expires_after is not None
    )
    if (
        (from_env is None or from_env)
        and not static_given
        and not anonymous
        and get_credentials is None
    ):
        return s3_from_env_credentials()
    if anonymous and not static_given and not from_env and get_credentials is None:
        return s3_anonymous_credentials()
    if get_credentials is not None and not static_given and not from_env and not anonymous:
        return s3_refreshable_credentials(get_credentials, scatter_initial_credentials)
    if (
        access_key_id
        and secret_access_key
        and not from_env
        and not anonymous
        and get_credentials is None
    ):
        return s3_static_credentials(
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
            expires_after=expires_after,
        )
    raise InvalidInputError(
        "Conflicting arguments to s3_credentials function: give either access_key_id and "
        "secret_access_key, or anonymous=True, or from_env=True, or get_credentials"
    )


# -- GCS -----------------------------------------------------------------------------------


class GcsBearerCredential:
    """An OAuth2 bearer token for GCS, possibly expiring."""

    def __init__(self, bearer: str, *, expires_after: datetime | None = None) -> None:
        if not isinstance(bearer, str):
            raise InvalidInputError("GcsBearerCredential.bearer must be a str")
        self._bearer = bearer
        self._expires_after = _aware(expires_after)

    @property
    def bearer(self) -> str:
        return self._bearer

    @property
    def expires_after(self) -> datetime | None:
        return self._expires_after

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GcsBearerCredential):
            return NotImplemented
        return (self._bearer, self._expires_after) == (other._bearer, other._expires_after)

    def __hash__(self) -> int:
        return hash((self._bearer, self._expires_after))

    def __repr__(self) -> str:
        return f"GcsBearerCredential(bearer=***, expires_after={self._expires_after!r})"


class GcsStaticCredentials:
    """Fixed GCS credentials (namespace of the four kinds)."""

    @dataclass(frozen=True)
    class ServiceAccount:
        """A service account JSON file."""

        path: str

    @dataclass(frozen=True)
    class ServiceAccountKey:
        """A serialized service account key (the JSON text)."""

        key: str

        def __repr__(self) -> str:
            return "ServiceAccountKey(key=***)"

    @dataclass(frozen=True)
    class ApplicationCredentials:
        """An application default credentials (ADC) file."""

        path: str

    @dataclass(frozen=True)
    class BearerToken:
        """An OAuth2 bearer token."""

        token: str

        def __repr__(self) -> str:
            return "BearerToken(token=***)"


AnyGcsStaticCredential = (
    GcsStaticCredentials.ServiceAccount
    | GcsStaticCredentials.ServiceAccountKey
    | GcsStaticCredentials.ApplicationCredentials
    | GcsStaticCredentials.BearerToken
)


class GcsCredentials:
    """The ways to authenticate to GCS (namespace of the four kinds)."""

    @dataclass(frozen=True)
    class Anonymous:
        """Unauthenticated requests, for public buckets."""

    @dataclass(frozen=True)
    class FromEnv:
        """Credentials from the environment (application default credentials)."""

    @dataclass(frozen=True)
    class Static:
        """Fixed credentials."""

        credentials: AnyGcsStaticCredential

    class Refreshable(_Refreshable[GcsBearerCredential]):
        """Bearer tokens obtained (and renewed on expiry) by calling a function."""

        _kind = GcsBearerCredential


AnyGcsCredential = (
    GcsCredentials.Anonymous
    | GcsCredentials.FromEnv
    | GcsCredentials.Static
    | GcsCredentials.Refreshable
)


def gcs_static_credentials(
    *,
    service_account_file: str | None = None,
    service_account_key: str | None = None,
    application_credentials: str | None = None,
    bearer_token: str | None = None,
) -> AnyGcsStaticCredential:
    """Fixed GCS credentials: the first of the arguments that is given."""
    if service_account_file is not None:
        return GcsStaticCredentials.ServiceAccount(service_account_file)
    if service_account_key is not None:
        return GcsStaticCredentials.ServiceAccountKey(service_account_key)
    if application_credentials is not None:
        return GcsStaticCredentials.ApplicationCredentials(application_credentials)
    if bearer_token is not None:
        return GcsStaticCredentials.BearerToken(bearer_token)
    raise InvalidInputError("Conflicting arguments to gcs_static_credentials function")


def gcs_refreshable_credentials(
    get_credentials: Callable[[], GcsBearerCredential],
    scatter_initial_credentials: bool = False,
) -> GcsCredentials.Refreshable:
    """Bearer tokens obtained by calling ``get_credentials`` (again whenever they expire)."""
    current = get_credentials() if scatter_initial_credentials else None
    return GcsCredentials.Refreshable(pickle.dumps(get_credentials), current)


def gcs_anonymous_credentials() -> GcsCredentials.Anonymous:
    """No credentials (public buckets, emulators)."""
    return GcsCredentials.Anonymous()


def gcs_from_env_credentials() -> GcsCredentials.FromEnv:
    """Credentials from the environment (application default credentials)."""
    return GcsCredentials.FromEnv()


def gcs_credentials(
    *,
    service_account_file: str | None = None,
    service_account_key: str | None = None,
    application_credentials: str | None = None,
    bearer_token: str | None = None,
    from_env: bool | None = None,
    anonymous: bool | None = None,
    get_credentials: Callable[[], GcsBearerCredential] | None = None,
    scatter_initial_credentials: bool = False,
) -> AnyGcsCredential:
    """GCS credentials from keyword arguments; with none given, from the environment."""
    static_given = (
        service_account_file is not None
        or service_account_key is not None
        or application_credentials is not None
        or bearer_token is not None
    )
    if anonymous:
        return gcs_anonymous_credentials()
    if (from_env is None or from_env) and not static_given and get_credentials is None:
        return gcs_from_env_credentials()
    if static_given and not from_env:
        return GcsCredentials.Static(
            gcs_static_credentials(
                service_account_file=service_account_file,
                service_account_key=service_account_key,
                application_credentials=application_credentials,
                bearer_token=bearer_token,
            )
        )
    if get_credentials is not None:
        return gcs_refreshable_credentials(get_credentials, scatter_initial_credentials)
    raise InvalidInputError("Conflicting arguments to gcs_credentials function")
