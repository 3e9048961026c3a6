"""Decoded views of single metadata files: what ``Repository.inspect_*`` return.

Each function reads one raw object from the storage and returns the dict the official
package (2.3.0) gives for it: equal values of equal types, keys in the same order, so a
debugging session or a golden test can compare the two implementations directly:

``repo_info(storage)``
    the ``repo`` file: ``header``, ``spec_version``, ``branches``, ``tags``,
    ``deleted_tags``, ``snapshots``, ``metadata``, ``latest_updates`` (and
    ``repo_before_updates`` when the file names one).
``snapshot(storage, id)``
    ``snapshots/<id>``: ``id``, ``header``, ``flushed_at``, ``commit_message``,
    ``metadata``, ``manifests`` and ``nodes``.
``manifest(storage, id)``
    ``manifests/<id>``: per-array counts of inline, native and virtual references,
    their totals and the virtual-location ``compression`` block.
``transaction_log(storage, id)``
    ``transactions/<id>``: node ids created, deleted or updated, the written chunk
    coordinates and the moves, plus ``synthetic_composite`` when expiration folded
    ancestors into the snapshot (see below).

How the official output is reproduced:

* ``header`` describes the 39-byte file header: ``written_by`` is the writer name
  with trailing spaces and NULs removed (invalid UTF-8 replaced by U+FFFD);
  ``app_name``/``app_version`` are the parts before and after its first ``-``
  (``ic-2.3.0`` -> ``ic``/``2.3.0``, our ``icechunk-py-0.1.0`` -> ``icechunk``/
  ``py-0.1.0``, exactly what the official package reports for our files), and
  ``app_version`` is left out when the name has no ``-``. ``spec_version`` is
  ``"1.0"``/``"2.0"``, ``file_type`` one of ``snapshot``, ``manifest``,
  ``transaction-log``, ``repo-info``, and ``compression`` is ``"zstd"``.
* Timestamps are RFC 3339 in UTC with a ``Z``, and as many fractional digits as
  chrono's "AutoSi" format uses: none for a whole second, 3 for whole
  milliseconds, otherwise 6 (``...05Z``, ``...05.500Z``, ``...05.000123Z``).
* Lists come in file order (which every writer keeps sorted: snapshots and ids by
  their bytes, nodes by path); ``branches``, ``tags`` and user metadata maps are
  sorted by key. Optional values are left out rather than written as ``null``
  (``parent_id`` of the first snapshot, ``backup_path`` of the newest ops-log entry,
  a dimension's ``name``, ``dictionary_size_bytes``); the only ``null`` values are
  a feature flag reset to its default (``new_value``) and a status without a reason
  (``limited_availability_reason``). The details of an ops-log entry are sorted by
  key after its ``type``. A status ``availability`` is ``"Online"`` or
  ``"ReadOnly"`` (the official package reads the unused ``Offline`` as online).
* A manifest's ``size_bytes`` is the size of the *decompressed* flatbuffer (what
  the official package holds in memory), not the size of the file that the
  snapshot's ``manifests`` entries record. ``uses_location_compression`` is true
  whenever the manifest's ``compression_algorithm`` field is not 0 ("none"); note
  that the field defaults to 1 when a writer leaves it out.
* ``synthetic_composite``: when the repo info lists pruned-ancestor transaction
  logs for the snapshot (expiration collapsed its history), the logs are merged
  like the official ``TransactionLog::merge``: id sets and chunk coordinates are
  united and sorted, moves of one node are chained (first ``from``, last ``to``),
  moves back to their origin dropped, and the rest sorted by destination path.
  Missing pruned logs are listed in ``missing_tx_logs``.
* A spec-1 repository has no repo info: :func:`repo_info` raises
  :class:`~icechunk.exceptions.FormatError` (kind ``unsupported-spec-version``), as
  the official package does. Its snapshots, manifests and transaction logs are
  inspected normally (spec-1 shapes report ``num_chunks`` = length / chunk length,
  rounded up).

Known differences:

* A missing file raises :class:`~icechunk.exceptions.ObjectNotFoundError` (kind
  ``object-not-found``, like the official error) instead of the official
  ``StorageError``.
* A file whose embedded id differs from its name is rejected as corrupt; the
  official package reports the embedded id.
* Timestamps after the year 9999 cannot be rendered (Python's ``datetime`` stops
  there) and raise :class:`~icechunk.exceptions.CorruptObjectError`.
* Compressed virtual locations are decompressed to count them, as the official
  package does, but a manifest holding two ``ArrayManifest`` entries for one node
  (which no writer produces) is counted as one array.
* The merged log depends on the order of the snapshot's pruned-ancestor list in the
  ``repo`` file (oldest first, as the official package writes it): moves are chained
  in that order. This module reads the list as stored.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any

from icechunk._core import keys
from icechunk.exceptions import (
    CorruptObjectError,
    ErrorKind,
    FormatError,
    ObjectNotFoundError,
)
from icechunk.format import flatbuf as fb
from icechunk.format.header import HEADER_LEN, MAGIC, FileType, decode_file
from icechunk.format.ids import encode_base32
from icechunk.format.manifest import InlineChunk, Manifest, NativeChunk, VirtualChunk
from icechunk.format.repo_info import RepoStatus, Update, UpdateKind, decode_repo_info
from icechunk.format.snapshot import decode_snapshot
from icechunk.storage.base import Storage

_FILE_TYPE_NAMES = {
    FileType.SNAPSHOT: "snapshot",
    FileType.MANIFEST: "manifest",
    FileType.TRANSACTION_LOG: "transaction-log",
    FileType.REPO_INFO: "repo-info",
}

_UPDATE_TYPE_NAMES = {
    UpdateKind.REPO_INITIALIZED: "RepoInitializedUpdate",
    UpdateKind.REPO_MIGRATED: "RepoMigratedUpdate",
    UpdateKind.CONFIG_CHANGED: "ConfigChangedUpdate",
    UpdateKind.METADATA_CHANGED: "MetadataChangedUpdate",
    UpdateKind.TAG_CREATED: "TagCreatedUpdate",
    UpdateKind.TAG_DELETED: "TagDeletedUpdate",
    UpdateKind.BRANCH_CREATED: "BranchCreatedUpdate",
    UpdateKind.BRANCH_DELETED: "BranchDeletedUpdate",
    UpdateKind.BRANCH_RESET: "BranchResetUpdate",
    UpdateKind.NEW_COMMIT: "NewCommitUpdate",
    UpdateKind.COMMIT_AMENDED: "CommitAmendedUpdate",
    UpdateKind.NEW_DETACHED_SNAPSHOT: "NewDetachedSnapshotUpdate",
    UpdateKind.GC_RAN: "GCRanUpdate",
    UpdateKind.EXPIRATION_RAN: "ExpirationRanUpdate",
    UpdateKind.FEATURE_FLAG_CHANGED: "FeatureFlagChanged",
    UpdateKind.REPO_STATUS_CHANGED: "RepoStatusChangedUpdate",
}

# manifest ``compression_algorithm`` values
_LOCATION_COMPRESSION_NONE = 0
_LOCATION_COMPRESSION_ZSTD_DICT = 1

SYNTHETIC_COMPOSITE_NOTE = (
    "Synthetic composite: this snapshot's ancestry was collapsed by expiration; the log "
    "below merges its pruned-ancestor logs with its own log. `header` describes this "
    "snapshot's own log only."
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MICROS = 2**63 - 1
_FLATBUFFER_ERRORS = (fb.FlatbufferError, struct.error, IndexError, UnicodeDecodeError, ValueError)


# ---------------------------------------------------------------------------
# shared pieces


def _spec_version_text(version: int, what: str) -> str:
    if version not in (1, 2):
        raise CorruptObjectError(f"{what} is corrupt: unknown spec version {version}")
    return f"{version}.0"


def _header(data: bytes, file_type: FileType) -> dict[str, Any]:
    """The ``header`` block of a file that :func:`decode_file` already accepted."""
    name = data[len(MAGIC) : HEADER_LEN - 3].decode("utf-8", "replace").rstrip(" \0")
    app_name, dash, app_version = name.partition("-")
    out: dict[str, Any] = {"written_by": name, "app_name": app_name}
    if dash:
        out["app_version"] = app_version
    out["spec_version"] = _spec_version_text(data[HEADER_LEN - 3], "file header")
    out["file_type"] = _FILE_TYPE_NAMES[file_type]
    out["compression"] = "zstd"
    return out


def _timestamp(micros: int) -> str:
    """Microseconds since the epoch as chrono writes a ``DateTime<Utc>`` (AutoSi, ``Z``)."""
    if not 0 <= micros <= _MAX_MICROS:
        raise CorruptObjectError(f"timestamp {micros} is out of range")
    try:
        moment = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise CorruptObjectError(
            f"timestamp {micros} lies beyond the year 9999 and cannot be shown"
        ) from None
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    fraction = moment.microsecond
    if fraction == 0:
        return text + "Z"
    if fraction % 1000 == 0:
        return f"{text}.{fraction // 1000:03d}Z"
    return f"{text}.{fraction:06d}Z"


def _json_value(value: Any) -> Any:
    """A decoded metadata value as serde_json renders it (maps sorted by key)."""
    if isinstance(value, dict):
        return {k: _json_value(value[k]) for k in sorted(value, key=lambda s: s.encode())}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


async def _read(storage: Storage, key: str, what: str) -> bytes:
    try:
        return await storage.get(key)
    except ObjectNotFoundError:
        raise ObjectNotFoundError(f"{what} not found: no object {key!r} in storage") from None


def _sorted_by_key(mapping: dict[str, str]) -> dict[str, str]:
    return {k: mapping[k] for k in sorted(mapping, key=lambda s: s.encode())}


# ---------------------------------------------------------------------------
# repo info


async def repo_info(storage: Storage) -> dict[str, Any]:
    """``Repository.inspect_repo_info()``: the decoded ``repo`` file."""
    try:
        data = await storage.get(keys.REPO_INFO_KEY)
    except ObjectNotFoundError:
        if await storage.exists(keys.v1_branch_key("main")):
            err = FormatError(
                "repository version error, this operation requires a repository that is at "
                "least version 2.0, please upgrade your on-disk format before executing this "
                "operation"
            )
            err.kind = ErrorKind.UNSUPPORTED_SPEC_VERSION
            raise err from None
        raise ObjectNotFoundError(
            f"repo info not found: no object {keys.REPO_INFO_KEY!r} in storage"
        ) from None
    return _repo_info_dict(data)


def _repo_info_dict(data: bytes) -> dict[str, Any]:
    info = decode_repo_info(data)
    what = "repo info file 'repo'"
    _, payload = decode_file(data, FileType.REPO_INFO, what)
    try:
        deleted_tags = _string_vector(fb.Table.root(payload), 3)
    except _FLATBUFFER_ERRORS as err:
        raise CorruptObjectError(f"{what} is corrupt: {err}") from None

    snapshots = []
    for entry in info.snapshots.values():
        item: dict[str, Any] = {"id": entry.id}
        if entry.parent_id is not None:
            item["parent_id"] = entry.parent_id
        item["flushed_at"] = _timestamp(entry.flushed_at)
        item["message"] = entry.message
        item["metadata"] = _json_value(entry.metadata)
        snapshots.append(item)

    updates = []
    for update in info.latest_updates:
        item = {"update_type": _update_type(update), "updated_at": _timestamp(update.updated_at)}
        if update.backup_path is not None:
            item["backup_path"] = update.backup_path
        updates.append(item)

    out: dict[str, Any] = {
        "header": _header(data, FileType.REPO_INFO),
        "spec_version": _spec_version_text(info.spec_version, what),
        "branches": _sorted_by_key(info.branches),
        "tags": _sorted_by_key(info.tags),
        "deleted_tags": deleted_tags,
        "snapshots": snapshots,
        "metadata": _json_value(info.metadata),
        "latest_updates": updates,
    }
    if info.repo_before_updates is not None:
        out["repo_before_updates"] = info.repo_before_updates
    return out


def _string_vector(table: fb.Table, field_id: int) -> list[str]:
    """A vector of strings, in file order."""
    buf = table.buf
    position = table._indirect(field_id)  # noqa: SLF001 - the reader has no string-vector helper
    if not position:
        raise fb.FlatbufferError(f"required string vector {field_id} is missing")
    (count,) = struct.unpack_from("<I", buf, position)
    out = []
    for i in range(count):
        slot = position + 4 + 4 * i
        start = slot + struct.unpack_from("<I", buf, slot)[0]
        (length,) = struct.unpack_from("<I", buf, start)
        if start + 4 + length > len(buf):
            raise fb.FlatbufferError("string out of bounds")
        out.append(bytes(buf[start + 4 : start + 4 + length]).decode("utf-8"))
    return out


def _status(status: RepoStatus) -> dict[str, Any]:
    return {
        "availability": "ReadOnly" if int(status.availability) == 1 else "Online",
        "limited_availability_reason": status.reason,
        "set_at": _timestamp(status.set_at),
    }


def _update_type(update: Update) -> dict[str, Any]:
    fields = update.fields
    details: dict[str, Any] = {}
    kind = update.kind
    if kind == UpdateKind.REPO_MIGRATED:
        details["from_version"] = _spec_version_text(fields["from_version"], "ops log")
        details["to_version"] = _spec_version_text(fields["to_version"], "ops log")
    elif kind == UpdateKind.REPO_STATUS_CHANGED:
        details["status"] = _status(fields["status"])
    elif kind == UpdateKind.FEATURE_FLAG_CHANGED:
        details["id"] = fields["id"]
        details["new_value"] = fields["new_value"] if fields["is_set"] else None
    else:
        details.update(fields)  # names, branches and snapshot ids, already text
    out: dict[str, Any] = {"type": _UPDATE_TYPE_NAMES[kind]}
    out.update((name, details[name]) for name in sorted(details))
    return out


# ---------------------------------------------------------------------------
# snapshot


async def snapshot(storage: Storage, snapshot_id: str) -> dict[str, Any]:
    """``Repository.inspect_snapshot(id)``: the decoded ``snapshots/<id>`` file."""
    data = await _read(storage, keys.snapshot_key(snapshot_id), f"snapshot {snapshot_id}")
    snap = decode_snapshot(data, snapshot_id)
    nodes = []
    for node in snap.nodes.values():
        item: dict[str, Any] = {"id": node.id, "path": node.path}
        if node.array is None:
            item["node_type"] = "group"
        else:
            item["node_type"] = "array"
            array = node.array
            names = array.dimension_names or (None,) * len(array.shape)
            shape = []
            for (length, num_chunks), name in zip(array.shape, names, strict=False):
                dim: dict[str, Any] = {} if name is None else {"name": name}
                dim["array_length"] = length
                dim["num_chunks"] = num_chunks
                shape.append(dim)
            item["shape"] = shape
            item["manifest_refs"] = [
                {"id": ref.manifest_id, "extents": [[lo, hi] for lo, hi in ref.extents]}
                for ref in array.manifests
            ]
        nodes.append(item)
    return {
        "id": snap.id,
        "header": _header(data, FileType.SNAPSHOT),
        "flushed_at": _timestamp(snap.flushed_at),
        "commit_message": snap.message,
        "metadata": _json_value(snap.metadata),
        "manifests": [
            {"id": m.id, "size_bytes": m.size_bytes, "num_chunk_refs": m.num_chunk_refs}
            for m in snap.manifest_files
        ],
        "nodes": nodes,
    }


# ---------------------------------------------------------------------------
# manifest


async def manifest(storage: Storage, manifest_id: str) -> dict[str, Any]:
    """``Repository.inspect_manifest(id)``: chunk-reference counts of ``manifests/<id>``."""
    what = f"manifest {manifest_id}"
    data = await _read(storage, keys.manifest_key(manifest_id), what)
    _, payload = decode_file(data, FileType.MANIFEST, what)
    try:
        return _manifest_dict(data, payload, manifest_id)
    except _FLATBUFFER_ERRORS as err:
        if isinstance(err, CorruptObjectError):
            raise
        raise CorruptObjectError(f"{what} is corrupt: {err}") from None


def _manifest_dict(data: bytes, payload: bytes, manifest_id: str) -> dict[str, Any]:
    what = f"manifest {manifest_id}"
    root = fb.Table.root(payload)
    raw_id = root.struct(0, 12)
    if raw_id is None or encode_base32(raw_id) != manifest_id:
        raise CorruptObjectError(f"{what} is corrupt: it holds a different manifest id")
    algorithm = root.scalar(3, "u8", _LOCATION_COMPRESSION_ZSTD_DICT)
    dictionary = root.byte_vector(2)

    compressed = 0
    for array_table in root.required_tables(1, "arrays"):
        for ref in array_table.tables(1) or []:
            if not ref.has(4) and ref.has(8):
                compressed += 1
    if compressed and (algorithm != _LOCATION_COMPRESSION_ZSTD_DICT or dictionary is None):
        raise CorruptObjectError(
            f"{what} is corrupt: compressed chunk location present but no decompression "
            "dictionary available"
        )

    view = Manifest(manifest_id, payload, len(payload))
    arrays = []
    for node_id in view.node_ids:
        counts = {InlineChunk: 0, NativeChunk: 0, VirtualChunk: 0}
        for _, chunk in view.iter_refs(node_id):
            counts[type(chunk)] += 1
        arrays.append(
            {
                "node_id": node_id,
                "num_chunk_refs": sum(counts.values()),
                "num_inline": counts[InlineChunk],
                "num_native": counts[NativeChunk],
                "num_virtual": counts[VirtualChunk],
            }
        )
    total_inline = sum(a["num_inline"] for a in arrays)
    total_native = sum(a["num_native"] for a in arrays)
    total_virtual = sum(a["num_virtual"] for a in arrays)
    compression: dict[str, Any] = {
        "uses_location_compression": algorithm != _LOCATION_COMPRESSION_NONE
    }
    if dictionary is not None:
        compression["dictionary_size_bytes"] = len(dictionary)
    compression["num_compressed_refs"] = compressed
    return {
        "id": manifest_id,
        "header": _header(data, FileType.MANIFEST),
        "size_bytes": len(payload),
        "num_arrays": len(arrays),
        "total_chunk_refs": total_inline + total_native + total_virtual,
        "total_inline": total_inline,
        "total_native": total_native,
        "total_virtual": total_virtual,
        "arrays": arrays,
        "compression": compression,
    }


# ---------------------------------------------------------------------------
# transaction log

# (field id, output name) of the node-id lists, in the official output order
_TX_ID_LISTS = (
    (1, "new_groups"),
    (2, "new_arrays"),
    (3, "deleted_groups"),
    (4, "deleted_arrays"),
    (6, "updated_groups"),
    (5, "updated_arrays"),
)


class _RawTxLog:
    """A transaction log in file order, ids kept as raw bytes (they sort like the text)."""

    __slots__ = ("header", "ids", "chunks", "moves")

    def __init__(self) -> None:
        self.header: dict[str, Any] = {}
        self.ids: dict[str, list[bytes]] = {}
        self.chunks: list[tuple[bytes, list[tuple[int, ...]]]] = []
        # (from path, to path, node id, node type)
        self.moves: list[tuple[str, str, bytes, int]] = []


def _decode_tx_log(data: bytes, snapshot_id: str) -> _RawTxLog:
    what = f"transaction log {snapshot_id}"
    _, payload = decode_file(data, FileType.TRANSACTION_LOG, what)
    log = _RawTxLog()
    log.header = _header(data, FileType.TRANSACTION_LOG)
    try:
        root = fb.Table.root(payload)
        raw_id = root.struct(0, 12)
        if raw_id is None or encode_base32(raw_id) != snapshot_id:
            raise fb.FlatbufferError("it holds a different snapshot id")
        for field_id, name in _TX_ID_LISTS:
            ids = root.struct_vector(field_id, 8)
            if ids is None:
                raise fb.FlatbufferError(f"required field {name!r} is missing")
            log.ids[name] = ids
        for table in root.required_tables(7, "updated_chunks"):
            node = table.struct(0, 8)
            if node is None:
                raise fb.FlatbufferError("updated chunks without a node id")
            coords = [
                tuple(c.scalar_vector(0, "u32") or ())
                for c in table.required_tables(1, "chunks")
            ]
            log.chunks.append((node, coords))
        for table in root.tables(8) or []:
            source, target = table.string(0), table.string(1)
            if source is None or target is None:
                missing = "from" if source is None else "to"
                raise fb.FlatbufferError(f"move operation missing required field {missing!r}")
            node = table.struct(2, 8)
            log.moves.append((source, target, node or bytes(8), table.scalar(3, "u8")))
    except _FLATBUFFER_ERRORS as err:
        raise CorruptObjectError(f"{what} is corrupt: {err}") from None
    return log


def _merge_tx_logs(logs: list[_RawTxLog]) -> _RawTxLog:
    """Union of several logs (oldest first), as the official ``TransactionLog::merge``."""
    merged = _RawTxLog()
    for _, name in _TX_ID_LISTS:
        merged.ids[name] = sorted({i for log in logs for i in log.ids[name]})
    chunks: dict[bytes, set[tuple[int, ...]]] = {}
    for log in logs:
        for node, coords in log.chunks:
            chunks.setdefault(node, set()).update(coords)
    merged.chunks = [(node, sorted(chunks[node])) for node in sorted(chunks)]
    moves: dict[bytes, list[Any]] = {}
    for log in logs:
        for source, target, node, node_type in log.moves:
            if node in moves:
                moves[node][1] = target
            else:
                moves[node] = [source, target, node, node_type]
    kept = [m for m in moves.values() if m[0] != m[1]]
    kept.sort(key=lambda m: tuple(m[1].split("/")))
    merged.moves = [(m[0], m[1], m[2], m[3]) for m in kept]
    return merged


def _tx_log_dict(header: dict[str, Any], log: _RawTxLog) -> dict[str, Any]:
    out: dict[str, Any] = {"header": header}
    for _, name in _TX_ID_LISTS:
        out[name] = [encode_base32(i) for i in log.ids[name]]
    out["updated_chunks"] = [
        {"node_id": encode_base32(node), "chunks": [list(c) for c in coords]}
        for node, coords in log.chunks
    ]
    out["moved_nodes"] = [{"from": source, "to": target} for source, target, _, _ in log.moves]
    return out


async def _pruned_ancestor_tx_logs(storage: Storage, snapshot_id: str) -> list[str]:
    """Transaction logs of ancestors that expiration folded into ``snapshot_id``."""
    try:
        data = await storage.get(keys.REPO_INFO_KEY)
    except ObjectNotFoundError:
        return []  # spec 1: no repo info, no expiration records
    entry = decode_repo_info(data).snapshots.get(snapshot_id)
    if entry is None:
        return []
    return list(entry.pruned_ancestor_tx_logs or [])


async def transaction_log(storage: Storage, snapshot_id: str) -> dict[str, Any]:
    """``Repository.inspect_transaction_log(id)``: the changes committed in a snapshot."""
    data = await _read(
        storage, keys.transaction_key(snapshot_id), f"transaction log of snapshot {snapshot_id}"
    )
    own = _decode_tx_log(data, snapshot_id)
    pruned = await _pruned_ancestor_tx_logs(storage, snapshot_id)
    if not pruned:
        return _tx_log_dict(own.header, own)

    logs, merged_ids, missing = [], [], []
    for pruned_id in pruned:
        try:
            raw = await storage.get(keys.transaction_key(pruned_id))
        except ObjectNotFoundError:
            missing.append(pruned_id)
            continue
        logs.append(_decode_tx_log(raw, pruned_id))
        merged_ids.append(pruned_id)
    logs.append(own)
    out = _tx_log_dict(own.header, _merge_tx_logs(logs))
    out["synthetic_composite"] = {
        "note": SYNTHETIC_COMPOSITE_NOTE,
        "merged_pruned_ancestor_tx_logs": merged_ids,
        "missing_tx_logs": missing,
    }
    return out
