"""Typed, cached access to a repository's immutable objects on storage."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from icechunk._core import keys
from icechunk.exceptions import (
    CorruptObjectError,
    NoVirtualChunkContainerError,
    ObjectNotFoundError,
    SnapshotNotFoundError,
)
from icechunk.format.manifest import (
    ChunkPayload,
    InlineChunk,
    Manifest,
    NativeChunk,
    decode_manifest,
)
from icechunk.format.snapshot import Snapshot, decode_snapshot
from icechunk.format.transaction_log import TransactionLog, decode_transaction_log
from icechunk.storage.base import ByteRange, Storage


class _LRU:
    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str) -> Any:
        value = self.data.get(key)
        if value is not None:
            self.data.move_to_end(key)
        return value

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.size:
            self.data.popitem(last=False)


class RepoObjects:
    """Reads (and caches) snapshots, manifests and transaction logs; reads chunk bytes."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._snapshots = _LRU(64)
        self._manifests = _LRU(256)
        self._tx_logs = _LRU(64)
        #: reads virtual chunks (a VirtualChunkResolver, set by the Repository)
        self.virtual: Any = None

    async def snapshot(self, snapshot_id: str) -> Snapshot:
        snap = self._snapshots.get(snapshot_id)
        if snap is None:
            try:
                data = await self.storage.get(keys.snapshot_key(snapshot_id))
            except ObjectNotFoundError:
                raise SnapshotNotFoundError(
                    f"snapshot {snapshot_id} not found in {self.storage.describe()}"
                ) from None
            snap = decode_snapshot(data, snapshot_id)
            self._snapshots.put(snapshot_id, snap)
        return snap

    def remember_snapshot(self, snap: Snapshot) -> None:
        self._snapshots.put(snap.id, snap)

    async def manifest(self, manifest_id: str) -> Manifest:
        manifest = self._manifests.get(manifest_id)
        if manifest is None:
            try:
                data = await self.storage.get(keys.manifest_key(manifest_id))
            except ObjectNotFoundError:
                raise ObjectNotFoundError(
                    f"manifest {manifest_id} is missing from {self.storage.describe()}: "
                    "the repository is damaged"
                ) from None
            manifest = decode_manifest(data, manifest_id)
            self._manifests.put(manifest_id, manifest)
        return manifest

    def remember_manifest(self, manifest: Manifest) -> None:
        self._manifests.put(manifest.id, manifest)

    async def transaction_log(self, snapshot_id: str) -> TransactionLog:
        log = self._tx_logs.get(snapshot_id)
        if log is None:
            try:
                data = await self.storage.get(keys.transaction_key(snapshot_id))
            except ObjectNotFoundError:
                raise ObjectNotFoundError(
                    f"transaction log of snapshot {snapshot_id} is missing from "
                    f"{self.storage.describe()}"
                ) from None
            log = decode_transaction_log(data, snapshot_id)
            self._tx_logs.put(snapshot_id, log)
        return log

    async def chunk_bytes(self, payload: ChunkPayload, byte_range: ByteRange | None) -> bytes:
        """The bytes of a chunk (or a range of them)."""
        if isinstance(payload, InlineChunk):
            data = payload.data
            if byte_range is None:
                return data
            start, end = resolve_range(len(data), byte_range)
            return data[start:end]
        if isinstance(payload, NativeChunk):
            start, end = resolve_range(payload.length, byte_range)
            try:
                data = await self.storage.get(
                    keys.chunk_key(payload.chunk_id),
                    ByteRange(payload.offset + start, payload.offset + end),
                )
            except ObjectNotFoundError:
                raise ObjectNotFoundError(
                    f"chunk object {payload.chunk_id} is missing from "
                    f"{self.storage.describe()}: the repository is damaged"
                ) from None
            if len(data) != end - start:
                raise CorruptObjectError(
                    f"chunk object {payload.chunk_id} is truncated: expected "
                    f"{end - start} bytes, got {len(data)}"
                )
            return data
        if self.virtual is None:
            raise NoVirtualChunkContainerError(
                f"chunk refers to virtual location {payload.location!r}, but no virtual chunk "
                "containers are configured"
            )
        start, end = resolve_range(payload.length, byte_range)
        return await self.virtual.fetch(payload, start, end)


def resolve_range(length: int, byte_range: ByteRange | None) -> tuple[int, int]:
    """Absolute [start, end) of ``byte_range`` within an object of ``length`` bytes."""
    if byte_range is None:
        return 0, length
    if byte_range.suffix is not None:
        return max(length - byte_range.suffix, 0), length
    end = length if byte_range.end is None else min(byte_range.end, length)
    start = min(byte_range.start, end)
    return start, end
