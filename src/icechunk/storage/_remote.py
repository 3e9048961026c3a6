"""Machinery shared by the network backends (S3, GCS, HTTP).

A backend subclasses :class:`RemoteStorage` and implements single-attempt
primitives (``_read``, ``_write``, ``_head``, ``_list_page``, ...) that talk to
its client library and raise that library's errors, plus ``_classify`` to sort
those errors. This module turns them into the :class:`Storage` interface:

* **one client per event loop.** aiohttp-based clients belong to the loop that
  created them, and the engine calls storage from zarr's background loop as well
  as from others (``asyncio.run``, pytest-asyncio, worker threads). Each running
  loop gets its own client, semaphore and lock, created on first use; states of
  closed loops are dropped. Clients with expiring credentials are rebuilt.
* **bounded concurrency**: at most ``max_concurrent_requests`` requests in flight
  per storage and loop.
* **retries** of transient failures (5xx, throttling, timeouts, broken
  connections) with exponential backoff and jitter, per ``StorageSettings``.
* **conditional writes that survive lost responses.** When a conditional PUT
  fails in a way that leaves its outcome unknown (the request may have been
  applied and only the reply lost), the object is read back: if it holds
  exactly our bytes the write landed and its version is returned; if it is
  unchanged the PUT is retried; anything else is a genuine conflict. A
  precondition failure seen *after* such an ambiguous attempt is checked the
  same way, because our own earlier attempt may be the writer that won.
* **unsafe mode**: with ``unsafe_use_conditional_create/update=False`` the
  conditional writes become check-then-write (not atomic) and the first one
  warns with :class:`UnsafeStorageWarning`.
* **pickling**: only the configuration is pickled; clients are rebuilt lazily.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import os
import threading
import warnings
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from enum import Enum
from typing import Any, NamedTuple, TypeVar

from icechunk.exceptions import (
    IcechunkError,
    InvalidInputError,
    ObjectNotFoundError,
    PreconditionFailedError,
    ReadOnlyError,
    StorageError,
)
from icechunk.storage._clients import (
    ClientHandle,
    LoopState,
    close_all,
    on_fork_in_child,
    spawn_close,
)
from icechunk.storage.base import ByteRange, ObjectInfo, Storage, Version
from icechunk.storage.credentials import expired
from icechunk.storage.settings import DEFAULT_MAX_CONCURRENT_REQUESTS, StorageSettings

T = TypeVar("T")

#: Seconds a replaced client (credentials refreshed) stays open for requests in flight.
_RETIRED_CLIENT_GRACE = 120.0


class UnsafeStorageWarning(UserWarning):
    """A storage is configured without atomic conditional writes: commits can be lost."""


class FailureKind(Enum):
    """How a backend error is handled."""

    TRANSIENT = "transient"  # retry; for a conditional write the outcome is unknown
    NOT_FOUND = "not found"
    PRECONDITION = "precondition failed"
    OTHER = "other"


class RangeRequest(NamedTuple):
    """The arguments of :meth:`RemoteStorage.get_if_unchanged`, for a backend's attempt."""

    key: str
    start: int
    end: int
    etag: str | None
    last_modified: int | None

    @property
    def range_header(self) -> str:
        return f"bytes={self.start}-{self.end - 1}"


class RangeRead(NamedTuple):
    """What one ranged read of :meth:`RemoteStorage.get_if_unchanged` returned."""

    data: bytes
    etag: str | None
    #: as the server reports it: a datetime, an HTTP date string, or None
    last_modified: Any
    refused: bool = False  # the server answered 412 to the conditional read


def validate_range(byte_range: ByteRange) -> tuple[int, int | None, int | None]:
    """``(start, end, suffix)`` of a byte range, rejecting invalid ones like the other backends."""
    if byte_range.suffix is not None:
        if byte_range.suffix < 0:
            raise InvalidInputError(f"byte range suffix must be >= 0, got {byte_range.suffix}")
        return 0, None, byte_range.suffix
    start, end = byte_range.start, byte_range.end
    if start < 0 or (end is not None and end < start):
        raise InvalidInputError(f"invalid byte range: start={start}, end={end}")
    return start, end, None


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"storage keys must be non-empty strings, got {key!r}")
    return key


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    return data if isinstance(data, bytes) else bytes(data)


_PROGRAMMING_ERRORS = (NameError, TypeError, AttributeError, AssertionError, ImportError)


class RemoteStorage(Storage):
    """Base of the network backends; see the module docstring."""

    #: Keys per delete request.
    _delete_batch_size: int = 1000
    #: Set (to a reason) by read-only backends.
    _read_only_reason: str | None = None

    def __init__(
        self,
        settings: StorageSettings | None = None,
        max_concurrent_requests: int | None = None,
    ) -> None:
        if settings is not None and not isinstance(settings, StorageSettings):
            raise InvalidInputError(f"settings must be a StorageSettings, got {settings!r}")
        if max_concurrent_requests is not None and (
            not isinstance(max_concurrent_requests, int) or max_concurrent_requests < 1
        ):
            raise InvalidInputError(
                f"max_concurrent_requests must be a positive int, got {max_concurrent_requests!r}"
            )
        self._settings = settings if settings is not None else StorageSettings()
        self._max_concurrent_requests = max_concurrent_requests or DEFAULT_MAX_CONCURRENT_REQUESTS
        self._init_runtime()

    # -- runtime state (never pickled) ------------------------------------------------

    _RUNTIME = ("_states", "_states_lock", "_finalizer", "_pid", "_warned")

    def _init_runtime(self) -> None:
        self._states: dict[asyncio.AbstractEventLoop, LoopState] = {}
        self._states_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, close_all, self._states)
        self._pid = os.getpid()
        self._warned = False
        on_fork_in_child(id(self), self._forget_clients)

    def _forget_clients(self) -> None:
        """In a forked child: the parent's clients and connections are not ours to use."""
        self._finalizer.detach()
        for state in self._states.values():  # drop the inherited copies of the sockets
            for handle in (state.handle, *state.retired):
                if handle is not None and handle.abandon is not None:
                    with contextlib.suppress(Exception):
                        handle.abandon()
        self._states = {}
        self._states_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, close_all, self._states)
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._RUNTIME}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    @property
    def supports_conditional_writes(self) -> bool:  # type: ignore[override]
        return self._settings.conditional_create and self._settings.conditional_update

    @property
    def settings(self) -> StorageSettings:
        """The settings in force (defaults filled in lazily)."""
        return self._settings

    def default_settings(self) -> StorageSettings:
        """A copy of this storage's settings (the official package's name)."""
        return StorageSettings.from_dict(self._settings.to_dict())

    def with_settings(
        self,
        settings: StorageSettings | None = None,
        max_concurrent_requests: int | None = None,
    ) -> RemoteStorage:
        """A copy of this storage with ``settings`` merged over its own (same location)."""
        state = self.__getstate__()
        state["_settings"] = self._settings.merge(settings)
        if max_concurrent_requests is not None:
            state["_max_concurrent_requests"] = max_concurrent_requests
        clone = object.__new__(type(self))
        clone.__setstate__(state)  # a copy of the configuration, with clients of its own
        return clone

    async def close(self) -> None:
        """Close the clients (this loop's now; others' on their own loops)."""
        with self._states_lock:
            states = dict(self._states)
            self._states.clear()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        mine = states.pop(loop, None) if loop is not None else None
        close_all(states)
        if mine is not None:
            handles = [h for h in (mine.handle, *mine.retired) if h is not None]
            mine.handle = None
            mine.retired.clear()
            for handle in handles:
                with contextlib.suppress(Exception):
                    await handle.close()

    def _loop_state(self) -> LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is not None:
            return state
        with self._states_lock:
            dead = {lp: st for lp, st in self._states.items() if lp.is_closed()}
            for lp in dead:
                del self._states[lp]
            state = self._states.get(loop)
            if state is None:
                state = LoopState(asyncio.Semaphore(self._max_concurrent_requests), asyncio.Lock())
                self._states[loop] = state
        close_all(dead)
        return state

    async def _client_handle(self, state: LoopState) -> ClientHandle:
        handle = state.handle
        if handle is not None and not expired(handle.expires_at):
            return handle
        async with state.lock:
            handle = state.handle
            if handle is not None and not expired(handle.expires_at):
                return handle
            fresh = await self._open_client()
            state.handle = fresh
        if handle is not None:  # retire the old client once requests in flight are done
            state.retired.append(handle)
            loop = asyncio.get_running_loop()
            loop.call_later(_RETIRED_CLIENT_GRACE, self._close_retired, state, handle)
        return fresh

    @staticmethod
    def _close_retired(state: LoopState, handle: ClientHandle) -> None:
        if handle in state.retired:
            state.retired.remove(handle)
            spawn_close(asyncio.get_running_loop(), handle)

    # -- what a backend implements ---------------------------------------------------------

    async def _open_client(self) -> ClientHandle:
        raise NotImplementedError

    def _classify(self, err: Exception) -> FailureKind:
        raise NotImplementedError

    async def _read(
        self, client: Any, key: str, start: int, end: int | None, suffix: int | None
    ) -> bytes:
        """Bytes of ``key``: all (start=0, end=None), ``[start, end)`` or the last ``suffix``.

        Ranges are non-empty here; reading from past the end returns ``b""``.
        """
        raise NotImplementedError

    async def _read_versioned(self, client: Any, key: str) -> tuple[bytes, Version]:
        raise NotImplementedError

    async def _write(
        self,
        client: Any,
        key: str,
        data: bytes,
        *,
        if_match: Version | None = None,
        if_absent: bool = False,
    ) -> Version:
        raise NotImplementedError

    async def _head(self, client: Any, key: str) -> Version | None:
        """The object's current version, or None if it does not exist."""
        raise NotImplementedError

    async def _list_page(
        self, client: Any, prefix: str, token: Any
    ) -> tuple[list[ObjectInfo], Any]:
        """One page of the listing and the token of the next page (None at the end)."""
        raise NotImplementedError

    async def _delete_batch(self, client: Any, keys: list[str]) -> None:
        raise NotImplementedError

    async def _read_if_unchanged(self, client: Any, want: RangeRequest) -> RangeRead:
        """One attempt of :meth:`get_if_unchanged`."""
        raise NotImplementedError

    async def _write_large(self, key: str, data: bytes) -> None:
        """Write a large object; backends with multipart uploads override this."""
        await self._retrying("write", key, functools.partial(self._write_fn, key, data))

    def _location(self, key: str) -> str:
        """Where ``key`` lives, for messages."""
        return f"{key!r} in {self.describe()}"

    # -- the retry loop -------------------------------------------------------------------

    def _operation_timeout(self) -> asyncio.Timeout:
        ms = self._settings.effective_timeouts.operation_timeout_ms
        return asyncio.timeout(ms / 1000.0 if ms else None)

    async def _attempt(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        state = self._loop_state()
        async with state.semaphore:
            handle = await self._client_handle(state)
            ms = self._settings.effective_timeouts.operation_attempt_timeout_ms
            async with asyncio.timeout(ms / 1000.0 if ms else None):
                return await fn(handle.client)

    def _translate(self, err: BaseException, key: str, action: str) -> BaseException:
        if isinstance(err, (IcechunkError, *_PROGRAMMING_ERRORS)):
            return err  # already ours, or a bug that should surface as itself
        kind = self._classify(err) if isinstance(err, Exception) else FailureKind.OTHER
        if kind is FailureKind.NOT_FOUND:
            return ObjectNotFoundError(f"object {self._location(key)} not found")
        if kind is FailureKind.PRECONDITION:
            return PreconditionFailedError(f"conditional write of {self._location(key)} failed")
        detail = str(err) or type(err).__name__
        return StorageError(f"cannot {action} {self._location(key)}: {detail}")

    async def _retrying(self, action: str, key: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``fn(client)``, retrying transient failures; errors come out translated."""
        retries = self._settings.effective_retries
        tries = max(retries.effective_max_tries, 1)
        try:
            async with self._operation_timeout():
                attempt = 0
                while True:
                    attempt += 1
                    try:
                        return await self._attempt(fn)
                    except Exception as err:
                        if attempt >= tries or self._classify(err) is not FailureKind.TRANSIENT:
                            raise self._translate(err, key, action) from err
                    await asyncio.sleep(retries.backoff_seconds(attempt))
        except TimeoutError as err:
            raise StorageError(
                f"cannot {action} {self._location(key)}: operation timed out"
            ) from err

    # -- reads ------------------------------------------------------------------------

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        _check_key(key)
        if byte_range is None:
            return await self._retrying(
                "read", key, functools.partial(self._read_fn, key, 0, None, None)
            )
        start, end, suffix = validate_range(byte_range)
        if suffix == 0 or (end is not None and end == start):
            if not await self.exists(key):
                raise ObjectNotFoundError(f"object {self._location(key)} not found")
            return b""
        if suffix is None and end is not None:
            parts = self._split(start, end)
            if len(parts) > 1:
                pieces = await asyncio.gather(
                    *(
                        self._retrying(
                            "read", key, functools.partial(self._read_fn, key, s, e, None)
                        )
                        for s, e in parts
                    )
                )
                return b"".join(pieces)
        return await self._retrying(
            "read", key, functools.partial(self._read_fn, key, start, end, suffix)
        )

    def _split(self, start: int, end: int) -> list[tuple[int, int]]:
        """Split a large range read into concurrent requests (StorageConcurrencySettings)."""
        concurrency = self._settings.effective_concurrency
        ideal = concurrency.effective_ideal_concurrent_request_size
        size = end - start
        if size <= ideal + ideal // 2:
            return [(start, end)]
        count = min(-(-size // ideal), concurrency.effective_max_concurrent_requests_for_object)
        step = -(-size // count)
        return [(s, min(s + step, end)) for s in range(start, end, step)]

    async def _read_fn(
        self, key: str, start: int, end: int | None, suffix: int | None, client: Any
    ) -> bytes:
        return await self._read(client, key, start, end, suffix)

    async def get_if_unchanged(
        self,
        key: str,
        start: int,
        end: int,
        etag: str | None = None,
        last_modified: int | None = None,
        *,
        action: str = "read",
    ) -> RangeRead:
        """Bytes ``[start, end)`` of ``key`` and its version as the server reports it.

        The read is conditional on the object still having ``etag`` (else on not being
        modified after ``last_modified``, in seconds) where the backend can make it so:
        S3 fails it with ``PreconditionFailedError``, HTTP servers answer
        ``refused=True``; GCS reads unconditionally and the caller compares the versions
        returned. One operation, retried like the others; ``action`` names it in errors.
        """
        want = RangeRequest(key, start, end, etag, last_modified)

        async def attempt(client: Any) -> RangeRead:
            return await self._read_if_unchanged(client, want)

        return await self._retrying(action, key, attempt)

    async def get_with_version(self, key: str) -> tuple[bytes, Version]:
        _check_key(key)
        return await self._retrying("read", key, functools.partial(self._read_versioned_fn, key))

    async def _read_versioned_fn(self, key: str, client: Any) -> tuple[bytes, Version]:
        return await self._read_versioned(client, key)

    async def exists(self, key: str) -> bool:
        _check_key(key)
        return await self._version_of(key) is not None

    async def _version_of(self, key: str) -> Version | None:
        return await self._retrying("read", key, functools.partial(self._head_fn, key))

    async def _head_fn(self, key: str, client: Any) -> Version | None:
        return await self._head(client, key)

    async def _current(self, key: str) -> tuple[bytes, Version] | None:
        try:
            return await self.get_with_version(key)
        except ObjectNotFoundError:
            return None

    # -- writes -----------------------------------------------------------------------

    def _check_writable(self, key: str) -> None:
        _check_key(key)
        if self._read_only_reason is not None:
            raise ReadOnlyError(f"cannot write {self._location(key)}: {self._read_only_reason}")

    async def _write_fn(
        self,
        key: str,
        data: bytes,
        client: Any,
        if_match: Version | None = None,
        if_absent: bool = False,
    ) -> Version:
        return await self._write(client, key, data, if_match=if_match, if_absent=if_absent)

    async def put(self, key: str, data: bytes) -> None:
        self._check_writable(key)
        data = _as_bytes(data)
        if len(data) > self._settings.effective_minimum_size_for_multipart_upload:
            await self._write_large(key, data)
            return
        await self._retrying("write", key, functools.partial(self._write_fn, key, data))

    async def put_if_absent(self, key: str, data: bytes) -> Version:
        self._check_writable(key)
        data = _as_bytes(data)
        if not self._settings.conditional_create:
            self._warn_unsafe()
            if await self.exists(key):
                raise PreconditionFailedError(f"object {self._location(key)} already exists")
            return await self._retrying("write", key, functools.partial(self._write_fn, key, data))
        return await self._conditional_put(key, data, None)

    async def put_if_version(self, key: str, data: bytes, version: Version) -> Version:
        self._check_writable(key)
        data = _as_bytes(data)
        if not isinstance(version, str):
            raise InvalidInputError(f"version must be a str token, got {version!r}")
        if not self._settings.conditional_update:
            self._warn_unsafe()
            if await self._version_of(key) != version:
                raise self._conflict(key, version)
            return await self._retrying("write", key, functools.partial(self._write_fn, key, data))
        return await self._conditional_put(key, data, version)

    def _conflict(self, key: str, expected: Version | None) -> PreconditionFailedError:
        if expected is None:
            return PreconditionFailedError(f"object {self._location(key)} already exists")
        return PreconditionFailedError(
            f"object {self._location(key)} changed since version {expected!r} was read"
        )

    async def _conditional_put(self, key: str, data: bytes, expected: Version | None) -> Version:
        """Create (``expected is None``) or swap ``key`` atomically; see the module docstring."""
        retries = self._settings.effective_retries
        tries = max(retries.effective_max_tries, 1)
        write = functools.partial(
            self._write_fn, key, data, if_match=expected, if_absent=expected is None
        )
        ambiguous = False  # an earlier attempt may have been applied
        try:
            async with self._operation_timeout():
                attempt = 0
                while True:
                    attempt += 1
                    try:
                        return await self._attempt(write)
                    except Exception as err:
                        kind = self._classify(err)
                        if kind is FailureKind.PRECONDITION or (
                            kind is FailureKind.NOT_FOUND and expected is not None
                        ):
                            if ambiguous:
                                current = await self._current(key)
                                if current is not None and current[0] == data:
                                    return current[1]  # our earlier attempt won
                            raise self._conflict(key, expected) from None
                        if kind is not FailureKind.TRANSIENT:
                            raise self._translate(err, key, "write") from err
                        last_error = err
                    # Outcome unknown: look at what the object holds now.
                    ambiguous = True
                    current = await self._current(key)
                    if current is not None and current[0] == data:
                        return current[1]  # it landed; only the reply was lost
                    untouched = (
                        current is None
                        if expected is None
                        else (current is not None and current[1] == expected)
                    )
                    if not untouched:
                        raise self._conflict(key, expected)
                    if attempt >= tries:
                        raise self._translate(last_error, key, "write") from last_error
                    await asyncio.sleep(retries.backoff_seconds(attempt))
        except TimeoutError as err:
            raise StorageError(
                f"cannot write {self._location(key)}: operation timed out; the conditional "
                "write may or may not have been applied"
            ) from err

    def _warn_unsafe(self) -> None:
        if self._warned:
            return
        self._warned = True
        warnings.warn(
            f"{self.describe()} is configured with unsafe_use_conditional_create/update=False: "
            "conditional writes are emulated by check-then-write, which is NOT atomic. "
            "Concurrent commits to this repository can overwrite each other and lose data. "
            "Only use this with a single writer, on stores without conditional PUT support.",
            UnsafeStorageWarning,
            stacklevel=3,
        )

    # -- listing and deletion ----------------------------------------------------------

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        if not isinstance(prefix, str):
            raise InvalidInputError(f"list prefix must be a str, got {prefix!r}")
        token: Any = None
        while True:
            infos, token = await self._retrying(
                "list", prefix or "/", functools.partial(self._list_fn, prefix, token)
            )
            for info in infos:
                yield info
            if token is None:
                return

    async def _list_fn(
        self, prefix: str, token: Any, client: Any
    ) -> tuple[builtins.list[ObjectInfo], Any]:
        return await self._list_page(client, prefix, token)

    async def delete(self, keys: Iterable[str]) -> None:
        if isinstance(keys, str):  # one key, not its characters
            keys = [keys]
        keys = [_check_key(k) for k in keys]
        if not keys:
            return
        self._check_writable(keys[0])
        size = self._delete_batch_size
        batches = [keys[i : i + size] for i in range(0, len(keys), size)]
        await asyncio.gather(
            *(
                self._retrying("delete", batch[0], functools.partial(self._delete_fn, batch))
                for batch in batches
            )
        )

    async def _delete_fn(self, keys: builtins.list[str], client: Any) -> None:
        await self._delete_batch(client, keys)
