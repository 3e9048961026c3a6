"""Storage settings: concurrency, retries, timeouts and the unsafe switches.

The classes and their constructor arguments mirror the official package
(``ic.StorageSettings(concurrency=..., retries=..., timeouts=...)``). Every
field may be ``None``, meaning "the default"; the ``effective_*`` helpers
resolve those defaults in one place. Settings are plain picklable values that
travel with a :class:`~icechunk.storage.base.Storage` to other processes.

``to_dict``/``from_dict`` use the field names as keys, which is also how the
official package persists storage settings inside the repository config.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Self, overload

from icechunk._util.backoff import Backoff
from icechunk.exceptions import InvalidInputError

#: Default number of tries for a request, including the first one.
DEFAULT_MAX_TRIES = 10
DEFAULT_INITIAL_BACKOFF_MS = 100
DEFAULT_MAX_BACKOFF_MS = 180_000
DEFAULT_MAX_CONCURRENT_REQUESTS_FOR_OBJECT = 18
DEFAULT_IDEAL_CONCURRENT_REQUEST_SIZE = 12 * 1024 * 1024
DEFAULT_MINIMUM_SIZE_FOR_MULTIPART_UPLOAD = 100 * 1024 * 1024
#: Requests in flight at once for one storage on one event loop (the official
#: ``RepositoryConfig.max_concurrent_requests`` default).
DEFAULT_MAX_CONCURRENT_REQUESTS = 256


def _check_positive(name: str, value: int | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an int or None, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidInputError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


class _Settings:
    """Shared helpers: validation on set, dict round trip."""

    _allow_zero: frozenset[str] = frozenset()
    _nested: dict[str, type[_Settings]] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        if name.endswith(("_ms", "_tries", "_size", "_for_object", "_upload")):
            _check_positive(name, value, allow_zero=name in self._allow_zero)
        super().__setattr__(name, value)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, _Settings) else value
        return out

    @overload
    @classmethod
    def from_dict(cls, value: None) -> None: ...

    @overload
    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Self: ...

    @classmethod
    def from_dict(cls, value: dict[str, Any] | None) -> Self | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise InvalidInputError(f"{cls.__name__}.from_dict expects a dict, got {value!r}")
        kwargs: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name in value:
                item = value[f.name]
                nested = cls._nested.get(f.name)
                kwargs[f.name] = nested.from_dict(item) if nested and item is not None else item
        make: Callable[..., Self] = cls  # a dataclass: its fields are its arguments
        return make(**kwargs)


@dataclass
class StorageRetriesSettings(_Settings):
    """How failed requests are retried: exponential backoff with jitter.

    ``max_tries`` counts the first try too (1 disables retries; default 10).
    The wait before retry ``n`` (1-based) is a random duration between half and
    all of ``min(max_backoff_ms, initial_backoff_ms * 2**(n-1))``.
    """

    max_tries: int | None = None
    initial_backoff_ms: int | None = None
    max_backoff_ms: int | None = None

    _allow_zero = frozenset({"initial_backoff_ms", "max_backoff_ms"})

    @property
    def effective_max_tries(self) -> int:
        return DEFAULT_MAX_TRIES if self.max_tries is None else self.max_tries

    def _backoff(self) -> Backoff:
        """The wait policy these settings describe (defaults filled in)."""
        initial = (
            DEFAULT_INITIAL_BACKOFF_MS
            if self.initial_backoff_ms is None
            else self.initial_backoff_ms
        )
        cap = DEFAULT_MAX_BACKOFF_MS if self.max_backoff_ms is None else self.max_backoff_ms
        return Backoff(initial / 1000.0, cap / 1000.0, min_fraction=0.5)

    def backoff_seconds(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        return self._backoff().delay(retry - 1, rng)


@dataclass
class StorageTimeoutSettings(_Settings):
    """Timeouts in milliseconds; ``None`` keeps the client library's default.

    ``connect_timeout_ms`` bounds opening a connection, ``read_timeout_ms`` a
    pause while reading a response, ``operation_attempt_timeout_ms`` one
    request, and ``operation_timeout_ms`` one operation including its retries.
    """

    connect_timeout_ms: int | None = None
    read_timeout_ms: int | None = None
    operation_timeout_ms: int | None = None
    operation_attempt_timeout_ms: int | None = None


@dataclass
class StorageConcurrencySettings(_Settings):
    """How large reads are split into concurrent ranged requests.

    A read of more than ``ideal_concurrent_request_size`` bytes (default 12 MiB)
    is split into at most ``max_concurrent_requests_for_object`` (default 18)
    concurrent range requests.
    """

    max_concurrent_requests_for_object: int | None = None
    ideal_concurrent_request_size: int | None = None

    @property
    def effective_max_concurrent_requests_for_object(self) -> int:
        v = self.max_concurrent_requests_for_object
        return DEFAULT_MAX_CONCURRENT_REQUESTS_FOR_OBJECT if v is None else v

    @property
    def effective_ideal_concurrent_request_size(self) -> int:
        v = self.ideal_concurrent_request_size
        return DEFAULT_IDEAL_CONCURRENT_REQUEST_SIZE if v is None else v


@dataclass
class StorageSettings(_Settings):
    """How icechunk uses a storage backend (arguments as in the official package).

    ``unsafe_use_conditional_create`` / ``unsafe_use_conditional_update``
    (default True) may be set to False for S3-compatible stores that do not
    implement ``If-None-Match``/``If-Match`` on PUT. Concurrent writers can then
    silently overwrite each other's commits; the backend warns when it is used
    this way.
    """

    concurrency: StorageConcurrencySettings | None = None
    retries: StorageRetriesSettings | None = None
    unsafe_use_conditional_create: bool | None = None
    unsafe_use_conditional_update: bool | None = None
    unsafe_use_metadata: bool | None = None
    storage_class: str | None = None
    metadata_storage_class: str | None = None
    chunks_storage_class: str | None = None
    minimum_size_for_multipart_upload: int | None = None
    timeouts: StorageTimeoutSettings | None = field(default=None)

    _nested = {
        "concurrency": StorageConcurrencySettings,
        "retries": StorageRetriesSettings,
        "timeouts": StorageTimeoutSettings,
    }

    def __post_init__(self) -> None:
        for name, kind in self._nested.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise InvalidInputError(
                    f"StorageSettings.{name} must be a {kind.__name__} or None, got {value!r}"
                )

    # -- effective values -------------------------------------------------

    @property
    def effective_retries(self) -> StorageRetriesSettings:
        return self.retries if self.retries is not None else StorageRetriesSettings()

    @property
    def effective_concurrency(self) -> StorageConcurrencySettings:
        return self.concurrency if self.concurrency is not None else StorageConcurrencySettings()

    @property
    def effective_timeouts(self) -> StorageTimeoutSettings:
        return self.timeouts if self.timeouts is not None else StorageTimeoutSettings()

    @property
    def conditional_create(self) -> bool:
        return self.unsafe_use_conditional_create is not False

    @property
    def conditional_update(self) -> bool:
        return self.unsafe_use_conditional_update is not False

    @property
    def effective_minimum_size_for_multipart_upload(self) -> int:
        v = self.minimum_size_for_multipart_upload
        return DEFAULT_MINIMUM_SIZE_FOR_MULTIPART_UPLOAD if v is None else v

    def storage_class_for(self, key: str) -> str | None:
        """The storage class for an object: chunks vs metadata, else the common one."""
        specific = (
            self.chunks_storage_class if key.startswith("chunks/") else self.metadata_storage_class
        )
        return specific if specific is not None else self.storage_class

    def merge(self, other: StorageSettings | None) -> StorageSettings:
        """These settings with every field that ``other`` sets taken from ``other``."""
        if other is None:
            return self
        kwargs = {f.name: getattr(self, f.name) for f in fields(self)}
        for f in fields(other):
            value = getattr(other, f.name)
            if value is not None:
                kwargs[f.name] = value
        return StorageSettings(**kwargs)
