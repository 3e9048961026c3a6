"""Garbage collection: delete objects no snapshot of the repository can reach any more.

Follows the official package (``icechunk::ops::gc``), spec 2:

1. List ``snapshots/`` once (its creation times decide which snapshots are new).
2. Roots: the history of every branch and tag, plus every snapshot in the repo info that is
   not older than the cutoff (or not listed yet). Walk them: the snapshots, the manifests they
   use and the native chunks those manifests reference are *retained*.
3. Unless ``dry_run``: drop the snapshots that are neither retained nor new from the repo info
   (one compare-and-swap, ops-log entry ``GCRan``). A kept snapshot whose parent is dropped is
   re-parented onto its nearest kept ancestor and remembers the skipped ids in
   ``pruned_ancestor_tx_logs``. If, meanwhile, someone committed on top of a dropped snapshot
   or pointed a ref at one, the whole run starts again.
4. Delete, in this order (a crash never leaves a snapshot whose manifests are gone):
   snapshots, transaction logs (kept: retained snapshots and every pruned id still listed),
   manifests, chunks. Only objects created strictly before the cutoff are candidates. Each
   prefix is listed once, as a stream, and deleted in concurrent batches.
"""

from __future__ import annotations

import asyncio
import copy
import os
import re
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TextIO

from icechunk._core import keys
from icechunk._core.history import ancestry
from icechunk._maintenance.expiration import reparented
from icechunk._util.backoff import Backoff
from icechunk.exceptions import (
    GCDeletesFailingError,
    IcechunkError,
    InvalidInputError,
    InvalidTypeError,
    ObjectNotFoundError,
    ReadOnlyError,
    ReadOnlyStorageError,
    SnapshotNotFoundError,
)
from icechunk.format.manifest import ChunkPayload, NativeChunk, decode_manifest
from icechunk.format.repo_info import Availability, RepoInfo, SnapshotEntry, Update, UpdateKind
from icechunk.format.snapshot import ManifestFileInfo, Snapshot, decode_snapshot
from icechunk.storage.base import ObjectInfo, Storage

if TYPE_CHECKING:
    from icechunk._core.state import RepoState

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DELETE_BATCH = 1000
_MAX_RESTARTS = 20
#: the wait before restart ``attempt`` (0-based): full jitter up to 0.05 s * 2**attempt, 2 s at most
_RESTART_BACKOFF = Backoff(base_s=0.05, cap_s=2.0)
_MAX_ERRORS_KEPT = 10
_OBJECT_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{20}")  # other names are never deleted
PHASES = ("snapshots", "transaction_logs", "manifests", "chunks")


@dataclass
class GCSummary:
    """Summarizes the results of a garbage collection operation on an icechunk repo."""

    bytes_deleted: int = 0
    chunks_deleted: int = 0
    manifests_deleted: int = 0
    snapshots_deleted: int = 0
    attributes_deleted: int = 0
    transaction_logs_deleted: int = 0
    objects_failed_to_delete: int = 0
    throttled_batches: int = 0
    delete_errors: list[str] = field(default_factory=list)
    skipped_phases: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        lines = ["<icechunk.ops.GCSummary>"]
        lines += [f"{name}: {getattr(self, name)}" for name in self.__dataclass_fields__]
        return "\n".join(lines) + "\n"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th>{name}</th><td>{getattr(self, name)}</td></tr>"
            for name in self.__dataclass_fields__
        )
        return f"<table><caption>GCSummary</caption>{rows}</table>"


@dataclass(frozen=True)
class GCLimits:
    """Memory and concurrency bounds of one run."""

    max_snapshots_in_memory: int = 50
    max_compressed_manifest_mem_bytes: int = 512 * 1024 * 1024
    max_concurrent_manifest_fetches: int = 500
    max_concurrent_deletes: int = 10
    max_consecutive_delete_failures: int = 50
    max_concurrent_listings: int | None = None

    def check(self) -> None:
        for name in (
            "max_snapshots_in_memory",
            "max_compressed_manifest_mem_bytes",
            "max_concurrent_manifest_fetches",
            "max_concurrent_deletes",
            "max_consecutive_delete_failures",
        ):
            check_positive_int(getattr(self, name), name)
        if self.max_concurrent_listings is not None:
            check_positive_int(self.max_concurrent_listings, "max_concurrent_listings")


class LimitOutOfRangeError(InvalidInputError, OverflowError):
    """A negative limit (an :class:`OverflowError`, as the official package raises)."""


def check_positive_int(value: object, name: str) -> None:
    """Typed errors for a limit that is not an int >= 1 (as the official package)."""
    if not isinstance(value, int):
        raise InvalidTypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise LimitOutOfRangeError(f"{name} must be at least 1, got {value}")
    if value == 0:
        raise InvalidInputError(f"{name}: invalid zero value, it must be at least 1")


# ----------------------------------------------------------------------
# progress


class Progress:
    """A one-line progress display on stderr, shown only when stderr is a terminal."""

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self._stream, "isatty", None)
            enabled = bool(isatty and isatty()) and not os.environ.get("ICECHUNK_NO_PROGRESS")
        self.enabled = enabled
        self._label = ""
        self._listed = 0
        self._found = 0
        self._done = 0
        self._last = 0.0
        self._width = 0

    def phase(self, label: str) -> None:
        self._label, self._listed, self._found, self._done = label, 0, 0, 0
        self._draw(force=True)

    def update(self, *, listed: int = 0, found: int = 0, done: int = 0) -> None:
        self._listed += listed
        self._found += found
        self._done += done
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        line = f"gc: {self._label}: {self._listed} listed, {self._found} garbage"
        if self._done:
            line += f", {self._done} deleted"
        pad = " " * max(self._width - len(line), 0)
        self._width = len(line)
        self._stream.write("\r" + line + pad)
        self._stream.flush()

    def close(self) -> None:
        if self.enabled and self._width:
            self._draw(force=True)
            self._stream.write("\n")
            self._stream.flush()
            self._width = 0


# ----------------------------------------------------------------------
# reachability


def pointed_snapshot_ids(info: RepoInfo) -> list[str]:
    """Every snapshot in the history of a tag or branch (each once, tips first)."""
    seen: set[str] = set()
    out: list[str] = []
    for tip in [
        *(info.tags[t] for t in sorted(info.tags)),
        *(info.branches[b] for b in sorted(info.branches)),
    ]:
        for entry in ancestry(info, tip):
            if entry.id in seen:
                break  # the rest of this history was walked from another ref
            seen.add(entry.id)
            out.append(entry.id)
    return out


class _ByteBudget:
    """At most ``limit`` bytes in flight (a single larger request still runs, alone)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._cond = asyncio.Condition()

    async def acquire(self, n: int) -> int:
        n = min(n, self._limit)
        async with self._cond:
            await self._cond.wait_for(lambda: self._used + n <= self._limit)
            self._used += n
        return n

    async def release(self, n: int) -> None:
        async with self._cond:
            self._used -= n
            self._cond.notify_all()


async def fetch_snapshot(storage: Storage, snapshot_id: str) -> Snapshot:
    """Read a snapshot file (without going through the repository's cache)."""
    try:
        data = await storage.get(keys.snapshot_key(snapshot_id))
    except ObjectNotFoundError:
        raise SnapshotNotFoundError(
            f"snapshot {snapshot_id} is missing from {storage.describe()}"
        ) from None
    return decode_snapshot(data, snapshot_id)


async def visit_chunk_refs(
    storage: Storage,
    snapshot_ids: Iterable[str],
    limits: GCLimits,
    visit: Callable[[ChunkPayload], None],
) -> set[str]:
    """Call ``visit`` on every chunk reference of every manifest the snapshots use (each
    manifest read once); returns the ids of those manifests.

    Snapshots are fetched ``max_snapshots_in_memory`` at a time; manifests concurrently,
    within the memory budget.
    """
    ids = list(dict.fromkeys(snapshot_ids))
    window = limits.max_snapshots_in_memory
    files: dict[str, ManifestFileInfo] = {}
    for start in range(0, len(ids), window):
        batch = ids[start : start + window]
        for snap in await asyncio.gather(*(fetch_snapshot(storage, s) for s in batch)):
            for info in snap.manifest_files:
                files.setdefault(info.id, info)
        await asyncio.sleep(0)  # long walks share the event loop with other work

    budget = _ByteBudget(limits.max_compressed_manifest_mem_bytes)
    slots = asyncio.Semaphore(limits.max_concurrent_manifest_fetches)

    async def one(info: ManifestFileInfo) -> None:
        async with slots:
            held = await budget.acquire(max(info.size_bytes, 1))
            try:
                try:
                    data = await storage.get(keys.manifest_key(info.id))
                except ObjectNotFoundError:
                    raise ObjectNotFoundError(
                        f"manifest {info.id} is missing from {storage.describe()}: "
                        "the repository is damaged"
                    ) from None
                manifest = decode_manifest(data, info.id)
                for node_id in manifest.node_ids:
                    for _, payload in manifest.iter_refs(node_id):
                        visit(payload)
            finally:
                await budget.release(held)

    await asyncio.gather(*(one(f) for f in files.values()))
    return set(files)


# ----------------------------------------------------------------------
# deleting


def object_time_us(info: ObjectInfo) -> int:
    """Latest possible creation (last modification) time of a listed object, in µs.

    Object stores such as S3 list times truncated to whole seconds, so a time without a
    fraction of a second may stand for any moment of that second: the end of the second is
    used, so an object written just after the cutoff is never taken for an older one.
    """
    modified = info.last_modified
    if modified.tzinfo is None:
        modified = modified.replace(tzinfo=UTC)
    us = (modified - _EPOCH) // timedelta(microseconds=1)
    if modified.microsecond == 0:
        us += 999_999
    return us


def _object_id(key: str, prefix: str) -> str | None:
    """The id in ``key`` (``prefix`` + an object id); None for any other name."""
    object_id = key[len(prefix) :]
    return object_id if key.startswith(prefix) and _OBJECT_ID.fullmatch(object_id) else None


@dataclass
class _PhaseResult:
    listed: int = 0
    deleted: int = 0
    bytes: int = 0
    failed: int = 0


class _Deleter:
    """Deletes keys in batches, several batches at a time; counts failures."""

    def __init__(
        self, storage: Storage, limits: GCLimits, summary: GCSummary, progress: Progress
    ) -> None:
        self._storage = storage
        self.max_in_flight = limits.max_concurrent_deletes
        self._slots = asyncio.Semaphore(limits.max_concurrent_deletes)
        self._max_failures = limits.max_consecutive_delete_failures
        self._consecutive = 0
        self._summary = summary
        self._progress = progress

    async def delete(self, batch: list[tuple[str, int]], result: _PhaseResult) -> None:
        async with self._slots:
            try:
                await self._storage.delete([k for k, _ in batch])
            except (IcechunkError, OSError) as err:
                self._consecutive += 1
                result.failed += len(batch)
                message = f"{type(err).__name__}: {err}"
                errors = self._summary.delete_errors
                if message not in errors and len(errors) < _MAX_ERRORS_KEPT:
                    errors.append(message)
                if self._consecutive >= self._max_failures:
                    raise GCDeletesFailingError(
                        f"garbage collection stopped: {self._consecutive} delete requests "
                        f"failed in a row; last error: {message}"
                    ) from err
                return
            self._consecutive = 0
            result.deleted += len(batch)
            result.bytes += sum(size for _, size in batch)
            self._progress.update(done=len(batch))


async def _aiter(items: Iterable[ObjectInfo]) -> AsyncIterator[ObjectInfo]:
    for item in items:
        yield item


@dataclass
class _SnapshotListing:
    """The one listing of ``snapshots/``, kept compactly: it is needed twice."""

    times: dict[str, int] = field(default_factory=dict)  # id -> latest creation time (µs)
    sizes: dict[str, int] = field(default_factory=dict)

    @classmethod
    async def read(cls, storage: Storage, progress: Progress) -> _SnapshotListing:
        out = cls()
        async for info in storage.list(keys.SNAPSHOTS):
            progress.update(listed=1)
            object_id = _object_id(info.key, keys.SNAPSHOTS)
            if object_id is not None:
                out.times[object_id] = object_time_us(info)
                out.sizes[object_id] = info.size_bytes
        return out

    async def replay(self) -> AsyncIterator[ObjectInfo]:
        """The listing again, as objects whose time is the one recorded."""
        for object_id, us in self.times.items():
            when = _EPOCH + timedelta(microseconds=us)
            yield ObjectInfo(keys.snapshot_key(object_id), self.sizes[object_id], when)


async def sweep(
    listing: AsyncIterable[ObjectInfo],
    prefix: str,
    keep: set[str],
    cutoff_us: int,
    *,
    dry_run: bool,
    deleter: _Deleter,
    progress: Progress,
) -> _PhaseResult:
    """Delete the listed objects that are older than the cutoff and not in ``keep``."""
    result = _PhaseResult()
    tasks: set[asyncio.Task[None]] = set()
    batch: list[tuple[str, int]] = []

    async def flush() -> None:
        nonlocal batch
        if not batch:
            return
        todo, batch = batch, []
        if dry_run:
            result.deleted += len(todo)
            result.bytes += sum(size for _, size in todo)
            return
        tasks.add(asyncio.ensure_future(deleter.delete(todo, result)))
        if len(tasks) >= 2 * deleter.max_in_flight:  # a bounded backlog of batches
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            tasks.difference_update(done)
            for task in done:
                task.result()  # GCDeletesFailingError stops the run here

    try:
        async for info in listing:
            result.listed += 1
            if result.listed % 100 == 0:
                await asyncio.sleep(0)  # long listings share the event loop
            progress.update(listed=1)
            object_id = _object_id(info.key, prefix)
            if object_id is None:
                continue
            if object_time_us(info) < cutoff_us and object_id not in keep:
                batch.append((info.key, info.size_bytes))
                progress.update(found=1)
                if len(batch) >= _DELETE_BATCH:
                    await flush()
        await flush()
        while tasks:
            task = tasks.pop()
            await task
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
    return result


# ----------------------------------------------------------------------
# the repo info edit


class _RestartGC(Exception):
    """The repo info changed in a way this run cannot absorb: start again."""


def drop_snapshots_from_repo_info(info: RepoInfo, keep: set[str], drop: set[str]) -> Update:
    """Remove ``drop`` from ``info`` (in place); new snapshots found are added to ``keep``."""
    final: dict[str, SnapshotEntry] = {}
    for sid, entry in info.snapshots.items():
        kept, dropped = sid in keep, sid in drop
        if kept and dropped:
            raise IcechunkError(f"garbage collection bug: snapshot {sid} both kept and dropped")
        if dropped:
            continue
        parent_dropped = entry.parent_id is not None and entry.parent_id in drop
        if not kept:  # committed since this run started
            if parent_dropped:
                raise _RestartGC
            keep.add(sid)
        elif parent_dropped:
            entry = reparented(info, entry, lambda a: a.id in keep)
        final[sid] = entry
    for target in [*info.tags.values(), *info.branches.values()]:
        if target not in final:
            raise _RestartGC
    info.snapshots = final
    return Update(UpdateKind.GC_RAN, 0)


# ----------------------------------------------------------------------
# the whole run


def check_writable(state: RepoState, what: str) -> None:
    """Typed errors for repositories maintenance cannot change."""
    reason = getattr(state.storage, "_read_only_reason", None)
    if reason is not None:
        raise ReadOnlyStorageError(f"cannot {what}: {reason}")
    state.require_writable_spec(what)


def check_online(info: RepoInfo, what: str) -> None:
    """Typed error when the repository status is read-only or offline."""
    if info.status.availability != Availability.ONLINE:
        reason = f": {info.status.reason}" if info.status.reason else ""
        raise ReadOnlyError(
            f"cannot {what}: the repository is {info.status.availability.name.lower()}{reason}"
        )


async def garbage_collect(
    state: RepoState,
    cutoff_us: int,
    *,
    dry_run: bool = False,
    limits: GCLimits | None = None,
    progress: Progress | None = None,
) -> GCSummary:
    """Delete unreachable objects created before ``cutoff_us`` (see the module docstring)."""
    limits = limits or GCLimits()
    limits.check()
    progress = progress or Progress()
    check_writable(state, "garbage collect")
    info = await state.repo_info()
    check_online(info, "garbage collect")
    try:
        for attempt in range(_MAX_RESTARTS):
            try:
                return await _one_attempt(state, cutoff_us, dry_run, limits, progress)
            except _RestartGC:
                await _RESTART_BACKOFF.sleep(attempt)
        raise IcechunkError(
            f"garbage collection restarted {_MAX_RESTARTS} times: the repository keeps "
            "changing under it (commits on top of snapshots it wanted to drop)"
        )
    finally:
        progress.close()


async def _one_attempt(
    state: RepoState, cutoff_us: int, dry_run: bool, limits: GCLimits, progress: Progress
) -> GCSummary:
    storage = state.storage
    # 1. list snapshots first: a snapshot written after this listing counts as new
    progress.phase("listing snapshots")
    listed = await _SnapshotListing.read(storage, progress)
    info = await state.repo_info()
    new_snaps = [s for s in info.snapshots if listed.times.get(s, cutoff_us) >= cutoff_us]

    # 2. everything reachable from a ref or from a new snapshot is retained
    progress.phase("finding retained objects")
    roots = [*pointed_snapshot_ids(info), *new_snaps]
    keep_snapshots = set(roots)
    keep_chunks: set[str] = set()

    def visit(payload: ChunkPayload) -> None:
        if isinstance(payload, NativeChunk):
            keep_chunks.add(payload.chunk_id)

    keep_manifests = await visit_chunk_refs(storage, roots, limits, visit)
    drop = set(info.snapshots) - keep_snapshots

    # 3. drop the other snapshots from the repo info (on a copy for a dry run)
    kept_before = set(keep_snapshots)

    def mutate(fresh: RepoInfo) -> Update:
        keep_snapshots.clear()
        keep_snapshots.update(kept_before)
        return drop_snapshots_from_repo_info(fresh, keep_snapshots, drop)

    if dry_run:
        final = copy.deepcopy(info)
        mutate(final)
    else:  # always written, as the official package does: the ops log records the run
        final = await state.update_repo_info(mutate)

    keep_tx = set(keep_snapshots)
    for entry in final.snapshots.values():
        keep_tx.update(entry.pruned_ancestor_tx_logs or ())

    # 4. delete, snapshots first and chunks last
    summary = GCSummary()
    deleter = _Deleter(storage, limits, summary, progress)
    plan: list[tuple[str, str, Callable[[], AsyncIterable[ObjectInfo]], set[str]]] = [
        ("snapshots", keys.SNAPSHOTS, listed.replay, keep_snapshots),
        ("transaction_logs", keys.TRANSACTIONS, lambda: storage.list(keys.TRANSACTIONS), keep_tx),
        ("manifests", keys.MANIFESTS, lambda: storage.list(keys.MANIFESTS), keep_manifests),
        ("chunks", keys.CHUNKS, lambda: storage.list(keys.CHUNKS), keep_chunks),
    ]
    failed_phase = False
    for name, prefix, listing, keep in plan:
        if failed_phase:
            summary.skipped_phases.append(name)
            continue
        progress.phase(name.replace("_", " "))
        result = await sweep(
            listing(), prefix, keep, cutoff_us, dry_run=dry_run, deleter=deleter, progress=progress
        )
        setattr(summary, f"{name}_deleted", result.deleted)
        summary.bytes_deleted += result.bytes
        summary.objects_failed_to_delete += result.failed
        failed_phase = result.failed > 0
    return summary
