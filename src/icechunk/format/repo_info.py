"""The repo info file (``repo``, spec 2): refs, snapshot list, ops log, config.

The ``Repo`` table of the Icechunk spec, version 2 (2.1 adds the pruned ancestor
transaction logs of a snapshot); ``schema/repo.fbs`` lists its fields.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Any

from icechunk.exceptions import CorruptObjectError
from icechunk.format import fbwriter as fbw
from icechunk.format import flatbuf as fb
from icechunk.format.header import FileType, decode_file, encode_file
from icechunk.format.ids import encode_base32, id12_to_bytes
from icechunk.format.values import decode_flexbuffer, encode_metadata_items


class UpdateKind(enum.IntEnum):
    """Union codes of ``UpdateType`` (the order of the union defines them)."""

    REPO_INITIALIZED = 1
    REPO_MIGRATED = 2
    CONFIG_CHANGED = 3
    METADATA_CHANGED = 4
    TAG_CREATED = 5
    TAG_DELETED = 6
    BRANCH_CREATED = 7
    BRANCH_DELETED = 8
    BRANCH_RESET = 9
    NEW_COMMIT = 10
    COMMIT_AMENDED = 11
    NEW_DETACHED_SNAPSHOT = 12
    GC_RAN = 13
    EXPIRATION_RAN = 14
    FEATURE_FLAG_CHANGED = 15
    REPO_STATUS_CHANGED = 16


class Availability(enum.IntEnum):
    """``RepoAvailability``: whether the repository accepts reads and writes."""

    ONLINE = 0
    READ_ONLY = 1
    OFFLINE = 2


@dataclass(slots=True)
class RepoStatus:
    """The repository's availability, when it was set and why.

    Attributes
    ----------
    availability
        Online, read-only or offline.
    set_at
        Microseconds since the epoch.
    reason
        Free text explaining a limited availability, if any.
    """

    availability: Availability = Availability.ONLINE
    set_at: int = 0  # microseconds since the epoch
    reason: str | None = None


@dataclass(slots=True)
class Update:
    """One ops-log entry. ``fields`` holds the kind-specific values by schema name."""

    kind: UpdateKind
    updated_at: int  # microseconds since the epoch
    fields: dict[str, Any] = field(default_factory=dict)
    backup_path: str | None = None


@dataclass(slots=True)
class SnapshotEntry:
    """What the repo info file records of one snapshot (``SnapshotInfo``).

    Attributes
    ----------
    id, parent_id
        Snapshot ids (no parent for the first snapshot).
    flushed_at
        Commit time, microseconds since the epoch.
    message, metadata
        The commit message and metadata.
    pruned_ancestor_tx_logs
        Spec 2.1: transaction logs of ancestors removed by expiration, oldest first;
        None when nothing was expired.
    """

    id: str
    parent_id: str | None
    flushed_at: int  # microseconds since the epoch
    message: str
    metadata: dict[str, Any]
    pruned_ancestor_tx_logs: list[str] | None = None


@dataclass(slots=True)
class RepoInfo:
    """The decoded repo info file.

    Attributes
    ----------
    branches, tags
        Ref name -> snapshot id.
    deleted_tags
        Names that can never be used for a tag again.
    snapshots
        Every snapshot of the repository, by id.
    latest_updates
        The ops log, newest first.
    status, metadata
        Repository availability and user metadata.
    repo_before_updates
        The backup holding older ops-log entries, if any.
    config
        The repository configuration as FlexBuffers bytes.
    enabled_feature_flags, disabled_feature_flags
        Feature flag ids set explicitly (None: not written).
    spec_version
        The repository's spec version.
    """

    branches: dict[str, str]
    tags: dict[str, str]
    deleted_tags: set[str]
    snapshots: dict[str, SnapshotEntry]
    latest_updates: list[Update]
    status: RepoStatus = field(default_factory=RepoStatus)
    metadata: dict[str, Any] = field(default_factory=dict)
    repo_before_updates: str | None = None
    config: bytes | None = None
    enabled_feature_flags: list[int] | None = None
    disabled_feature_flags: list[int] | None = None
    spec_version: int = 2


# Field layout of each UpdateType member: (name, kind) in field-id order.
_UPDATE_FIELDS: dict[UpdateKind, tuple[tuple[str, str], ...]] = {
    UpdateKind.REPO_INITIALIZED: (),
    UpdateKind.REPO_MIGRATED: (("from_version", "u8"), ("to_version", "u8")),
    UpdateKind.CONFIG_CHANGED: (),
    UpdateKind.METADATA_CHANGED: (),
    UpdateKind.TAG_CREATED: (("name", "str"),),
    UpdateKind.TAG_DELETED: (("name", "str"), ("previous_snap_id", "id12")),
    UpdateKind.BRANCH_CREATED: (("name", "str"),),
    UpdateKind.BRANCH_DELETED: (("name", "str"), ("previous_snap_id", "id12")),
    UpdateKind.BRANCH_RESET: (("name", "str"), ("previous_snap_id", "id12")),
    UpdateKind.NEW_COMMIT: (("branch", "str"), ("new_snap_id", "id12")),
    UpdateKind.COMMIT_AMENDED: (
        ("branch", "str"),
        ("previous_snap_id", "id12"),
        ("new_snap_id", "id12"),
    ),
    UpdateKind.NEW_DETACHED_SNAPSHOT: (("new_snap_id", "id12"),),
    UpdateKind.GC_RAN: (),
    UpdateKind.EXPIRATION_RAN: (),
    UpdateKind.FEATURE_FLAG_CHANGED: (("id", "u16"), ("new_value", "bool"), ("is_set", "bool")),
    UpdateKind.REPO_STATUS_CHANGED: (("status", "status"),),
}


def copy_repo_info(info: RepoInfo) -> RepoInfo:
    """A copy of ``info`` that can be changed without touching the original.

    Snapshot entries and statuses are shared: they are replaced, never changed in place.
    """
    return RepoInfo(
        branches=dict(info.branches),
        tags=dict(info.tags),
        deleted_tags=set(info.deleted_tags),
        snapshots=dict(info.snapshots),
        latest_updates=[
            Update(u.kind, u.updated_at, dict(u.fields), u.backup_path) for u in info.latest_updates
        ],
        status=info.status,
        metadata=dict(info.metadata),
        repo_before_updates=info.repo_before_updates,
        config=info.config,
        enabled_feature_flags=_copy_list(info.enabled_feature_flags),
        disabled_feature_flags=_copy_list(info.disabled_feature_flags),
        spec_version=info.spec_version,
    )


def _copy_list(values: list[int] | None) -> list[int] | None:
    return None if values is None else list(values)


# ---------------------------------------------------------------------------
# decode


def decode_repo_info(data: bytes) -> RepoInfo:
    """Decode the ``repo`` file.

    Raises
    ------
    CorruptObjectError
        If the header or the flatbuffer is wrong.
    """
    _, payload = decode_file(data, FileType.REPO_INFO, "repo info file 'repo'")
    try:
        return _decode(payload)
    except (fb.FlatbufferError, struct.error, IndexError, UnicodeDecodeError, ValueError) as err:
        if isinstance(err, CorruptObjectError):
            raise
        raise CorruptObjectError(f"repo info file 'repo' is corrupt: {err}") from None


def _decode_status(t: fb.Table) -> RepoStatus:
    return RepoStatus(Availability(t.scalar(0, "u8")), t.scalar(1, "u64"), t.string(2))


def _decode_metadata(tables: list[fb.Table] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in tables or []:
        value = item.byte_vector(1)
        if value is None:
            raise fb.FlatbufferError("metadata value missing")
        out[item.required_string(0, "name")] = decode_flexbuffer(value)
    return out


def _decode(payload: bytes) -> RepoInfo:
    root = fb.Table.root(payload)
    snap_tables = root.required_tables(4, "snapshots")
    ids = []
    for t in snap_tables:
        raw = t.struct(0, 12)
        if raw is None:
            raise fb.FlatbufferError("snapshot id missing")
        ids.append(encode_base32(raw))
    snapshots: dict[str, SnapshotEntry] = {}
    for sid, t in zip(ids, snap_tables, strict=True):
        parent = t.scalar(1, "i32", 0)
        if parent >= len(ids) or parent < -1:
            raise fb.FlatbufferError(f"parent offset {parent} out of range")
        pruned = t.struct_vector(5, 12)
        snapshots[sid] = SnapshotEntry(
            id=sid,
            parent_id=None if parent == -1 else ids[parent],
            flushed_at=t.scalar(2, "u64"),
            message=t.required_string(3, "message"),
            metadata=_decode_metadata(t.tables(4)),
            pruned_ancestor_tx_logs=None if pruned is None else [encode_base32(p) for p in pruned],
        )

    def refs(field_id: int, name: str) -> dict[str, str]:
        out = {}
        for r in root.required_tables(field_id, name):
            idx = r.scalar(1, "u32")
            if idx >= len(ids):
                raise fb.FlatbufferError(f"{name} snapshot index {idx} out of range")
            out[r.required_string(0, "name")] = ids[idx]
        return out

    deleted = root._vector(3)  # noqa: SLF001 - vector of strings
    if deleted is None:
        raise fb.FlatbufferError("required field 'deleted_tags' is missing")
    deleted_tags = set()
    start, n = deleted
    for i in range(n):
        p = start + 4 * i
        sp = p + struct.unpack_from("<I", payload, p)[0]
        ln = struct.unpack_from("<I", payload, sp)[0]
        deleted_tags.add(bytes(payload[sp + 4 : sp + 4 + ln]).decode("utf-8"))

    status_t = root.required_table(5, "status")
    updates = [_decode_update(u) for u in root.required_tables(7, "latest_updates")]
    return RepoInfo(
        spec_version=root.scalar(0, "u8"),
        tags=refs(1, "tags"),
        branches=refs(2, "branches"),
        deleted_tags=deleted_tags,
        snapshots=snapshots,
        status=_decode_status(status_t),
        metadata=_decode_metadata(root.tables(6)),
        latest_updates=updates,
        repo_before_updates=root.string(8),
        config=root.byte_vector(9),
        enabled_feature_flags=root.scalar_vector(10, "u16"),
        disabled_feature_flags=root.scalar_vector(11, "u16"),
    )


def _decode_update(t: fb.Table) -> Update:
    code = t.scalar(0, "u8")
    try:
        kind = UpdateKind(code)
    except ValueError:
        raise fb.FlatbufferError(f"unknown ops-log update type {code}") from None
    body = t.required_table(1, "update_type")
    fields: dict[str, Any] = {}
    for i, (name, kind_of) in enumerate(_UPDATE_FIELDS[kind]):
        if kind_of == "str":
            fields[name] = body.required_string(i, name)
        elif kind_of == "id12":
            raw = body.struct(i, 12)
            if raw is None:
                raise fb.FlatbufferError(f"required field {name!r} is missing")
            fields[name] = encode_base32(raw)
        elif kind_of == "bool":
            fields[name] = bool(body.scalar(i, "u8"))
        elif kind_of == "status":
            fields[name] = _decode_status(body.required_table(i, name))
        else:
            fields[name] = body.scalar(i, kind_of)
    return Update(kind, t.scalar(2, "u64"), fields, t.string(3))


# ---------------------------------------------------------------------------
# encode


_KIND_CODES = {"str": "off", "status": "off", "id12": "12s", "bool": "B", "u8": "B", "u16": "H"}
_UPDATE_BODY: dict[UpdateKind, fbw.Spec] = {
    kind: tuple((i, _KIND_CODES[k]) for i, (_, k) in enumerate(layout))
    for kind, layout in _UPDATE_FIELDS.items()
}
_SNAPSHOT: fbw.Spec = ((0, "12s"), (1, "i"), (2, "Q"), (3, "off"), (4, "off"))
_SNAPSHOT_PRUNED: fbw.Spec = (*_SNAPSHOT, (5, "off"))
_METADATA_ITEM: fbw.Spec = ((0, "off"), (1, "off"))
_REF: fbw.Spec = ((0, "off"), (1, "I"))
_STATUS: fbw.Spec = ((0, "B"), (1, "Q"))
_STATUS_REASON: fbw.Spec = (*_STATUS, (2, "off"))
_UPDATE: fbw.Spec = ((0, "B"), (1, "off"), (2, "Q"))
_UPDATE_BACKUP: fbw.Spec = (*_UPDATE, (3, "off"))
_ROOT_REQUIRED: fbw.Spec = ((0, "B"), *((slot, "off") for slot in range(1, 8)))


def encode_repo_info(info: RepoInfo, *, compression_level: int = 3) -> bytes:
    """The ``repo`` file for ``info`` (snapshots sorted by id, refs by name)."""
    w = fbw.FlatWriter()
    order = sorted(info.snapshots)
    index = {sid: i for i, sid in enumerate(order)}
    enabled = sorted(info.enabled_feature_flags or ())
    disabled = sorted(info.disabled_feature_flags or ())
    present = [
        slot
        for slot, wanted in (
            (8, info.repo_before_updates is not None),
            (9, info.config is not None),
            (10, bool(enabled)),
            (11, bool(disabled)),
        )
        if wanted
    ]
    spec = _ROOT_REQUIRED + tuple((slot, "off") for slot in present)
    links = w.table(spec, (info.spec_version, *[0] * (len(spec) - 1)))
    tags_at, branches_at, deleted_at, snaps_at, status_at, meta_at, updates_at = links[:7]

    _write_refs(w, info.tags, index, tags_at)
    _write_refs(w, info.branches, index, branches_at)
    w.strings(sorted(info.deleted_tags, key=str.encode), deleted_at)
    for sid, at in zip(order, w.offset_vector(len(order), snaps_at), strict=True):
        _write_snapshot(w, info.snapshots[sid], index, at)
    _write_status(w, info.status, status_at)
    _write_metadata(w, info.metadata, meta_at)
    for update, at in zip(
        info.latest_updates, w.offset_vector(len(info.latest_updates), updates_at), strict=True
    ):
        _write_update(w, update, at)
    for slot, at in zip(present, links[7:], strict=True):
        if slot == 8:
            w.string(info.repo_before_updates or "", at)
        elif slot == 9:
            w.bytes_vector(info.config or b"", at)
        else:
            w.scalar_vector("H", enabled if slot == 10 else disabled, at)
    return encode_file(FileType.REPO_INFO, w.finish(), level=compression_level)


def _write_refs(w: fbw.FlatWriter, refs: dict[str, str], index: dict[str, int], at: int) -> None:
    names = sorted(refs, key=str.encode)
    for name, slot in zip(names, w.offset_vector(len(names), at), strict=True):
        (name_at,) = w.table(_REF, (0, index[refs[name]]), slot)
        w.string(name, name_at)


def _write_snapshot(
    w: fbw.FlatWriter, entry: SnapshotEntry, index: dict[str, int], at: int
) -> None:
    block, table_at, parent_at = _snapshot_block(entry)
    start = w.embed(block, table_at, at)
    parent = -1 if entry.parent_id is None else index[entry.parent_id]
    struct.pack_into("<i", w.buf, start + parent_at, parent)


# Snapshot entries never change, but their parent's position in the sorted list does: each
# entry is encoded once as a detached block, and the parent index is patched in per file.
_BLOCKS: dict[str, tuple[SnapshotEntry, bytes, int, int]] = {}
_MAX_BLOCKS = 200_000


def _snapshot_block(entry: SnapshotEntry) -> tuple[bytes, int, int]:
    cached = _BLOCKS.get(entry.id)
    if cached is not None and cached[0] is entry:
        return cached[1:]
    sub = fbw.FlatWriter(root=False)
    pruned = entry.pruned_ancestor_tx_logs
    spec = _SNAPSHOT_PRUNED if pruned else _SNAPSHOT
    links = sub.table(spec, (id12_to_bytes(entry.id), 0, entry.flushed_at, 0, 0, 0))
    sub.string(entry.message, links[0])
    _write_metadata(sub, entry.metadata, links[1])
    if pruned:
        sub.struct_vector([id12_to_bytes(x) for x in pruned], links[2])
    if len(_BLOCKS) >= _MAX_BLOCKS:
        _BLOCKS.clear()
    block, table_at = sub.detached()
    result = (block, table_at, table_at + fbw.field_offset(spec, 1))
    _BLOCKS[entry.id] = (entry, *result)
    return result


def _write_metadata(w: fbw.FlatWriter, metadata: dict[str, Any], at: int) -> None:
    items = encode_metadata_items(metadata) if metadata else []
    for (name, value), slot in zip(items, w.offset_vector(len(items), at), strict=True):
        name_at, value_at = w.table(_METADATA_ITEM, (0, 0), slot)
        w.string(name, name_at)
        w.bytes_vector(value, value_at)


def _write_status(w: fbw.FlatWriter, status: RepoStatus, at: int) -> None:
    values = (int(status.availability), status.set_at, 0)
    if status.reason is None:
        w.table(_STATUS, values, at)
    else:
        (reason_at,) = w.table(_STATUS_REASON, values, at)
        w.string(status.reason, reason_at)


def _write_update(w: fbw.FlatWriter, u: Update, at: int) -> None:
    if u.kind == UpdateKind.REPO_STATUS_CHANGED:  # holds a status: not hashable, and rare
        _write_update_tables(w, u, at)
        return
    key = (u.kind, u.updated_at, u.backup_path, *u.fields.items())
    cached = _UPDATE_BLOCKS.get(key)
    if cached is None:
        sub = fbw.FlatWriter(root=False)
        _write_update_tables(sub, u, None)
        if len(_UPDATE_BLOCKS) >= _MAX_BLOCKS:
            _UPDATE_BLOCKS.clear()
        cached = _UPDATE_BLOCKS[key] = sub.detached()
    w.embed(cached[0], cached[1], at)


# Ops-log entries are copied with every repo file but rarely change: cached by content.
_UPDATE_BLOCKS: dict[tuple[Any, ...], tuple[bytes, int]] = {}


def _write_update_tables(w: fbw.FlatWriter, u: Update, at: int | None) -> None:
    values = (int(u.kind), 0, u.updated_at, 0)
    links = w.table(_UPDATE if u.backup_path is None else _UPDATE_BACKUP, values, at)
    layout = _UPDATE_FIELDS[u.kind]
    body_values = []
    for name, kind_of in layout:
        value = u.fields[name]
        if kind_of == "id12":
            value = id12_to_bytes(value)
        elif kind_of in ("str", "status"):
            value = 0
        body_values.append(int(value) if kind_of in ("bool", "u8", "u16") else value)
    body_links = iter(w.table(_UPDATE_BODY[u.kind], body_values, links[0]))
    for name, kind_of in layout:
        if kind_of == "str":
            w.string(u.fields[name], next(body_links))
        elif kind_of == "status":
            _write_status(w, u.fields[name], next(body_links))
    if u.backup_path is not None:
        w.string(u.backup_path, links[1])
