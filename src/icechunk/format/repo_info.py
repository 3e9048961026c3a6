"""The repo info file (``repo``, spec 2): refs, snapshot list, ops log, config."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Any

from icechunk.exceptions import CorruptObjectError
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
    ONLINE = 0
    READ_ONLY = 1
    OFFLINE = 2


@dataclass(slots=True)
class RepoStatus:
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
    id: str
    parent_id: str | None
    flushed_at: int  # microseconds since the epoch
    message: str
    metadata: dict[str, Any]
    pruned_ancestor_tx_logs: list[str] | None = None


@dataclass(slots=True)
class RepoInfo:
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


# ---------------------------------------------------------------------------
# decode


def decode_repo_info(data: bytes) -> RepoInfo:
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


def encode_repo_info(info: RepoInfo, *, compression_level: int = 3) -> bytes:
    b = fb.new_builder(4096)
    order = sorted(info.snapshots)
    index = {sid: i for i, sid in enumerate(order)}

    def metadata_vector(metadata: dict[str, Any]) -> int:
        items = []
        for name, value in encode_metadata_items(metadata):
            n = b.CreateString(name)
            v = b.CreateByteVector(value)
            b.StartObject(2)
            b.PrependUOffsetTRelativeSlot(0, n, 0)
            b.PrependUOffsetTRelativeSlot(1, v, 0)
            items.append(b.EndObject())
        return fb.offset_vector(b, items)

    def status_table(status: RepoStatus) -> int:
        reason = b.CreateString(status.reason) if status.reason is not None else None
        b.StartObject(3)
        b.PrependUint8Slot(0, int(status.availability), 0)
        b.PrependUint64Slot(1, status.set_at, 0)
        if reason is not None:
            b.PrependUOffsetTRelativeSlot(2, reason, 0)
        return b.EndObject()

    def ref_vector(refs: dict[str, str]) -> int:
        offs = []
        for name in sorted(refs, key=lambda s: s.encode()):
            n = b.CreateString(name)
            b.StartObject(2)
            b.PrependUOffsetTRelativeSlot(0, n, 0)
            b.PrependUint32Slot(1, index[refs[name]], 0)
            offs.append(b.EndObject())
        return fb.offset_vector(b, offs)

    snap_offs = []
    for sid in order:
        e = info.snapshots[sid]
        msg = b.CreateString(e.message)
        meta = metadata_vector(e.metadata)
        pruned = None
        if e.pruned_ancestor_tx_logs:
            pruned = fb.struct_vector(
                b, [id12_to_bytes(x) for x in e.pruned_ancestor_tx_logs], 12, 1
            )
        b.StartObject(6)
        fb.add_struct(b, 0, id12_to_bytes(sid))
        parent = -1 if e.parent_id is None else index[e.parent_id]
        if parent == -1:
            b.PrependInt32(parent)
            b.Slot(1)
        else:
            b.PrependInt32Slot(1, parent, 0)
        b.PrependUint64Slot(2, e.flushed_at, 0)
        b.PrependUOffsetTRelativeSlot(3, msg, 0)
        b.PrependUOffsetTRelativeSlot(4, meta, 0)
        if pruned is not None:
            b.PrependUOffsetTRelativeSlot(5, pruned, 0)
        snap_offs.append(b.EndObject())
    snapshots = fb.offset_vector(b, snap_offs)

    tags = ref_vector(info.tags)
    branches = ref_vector(info.branches)
    deleted = fb.offset_vector(
        b, [b.CreateString(t) for t in sorted(info.deleted_tags, key=lambda s: s.encode())]
    )
    status = status_table(info.status)
    metadata = metadata_vector(info.metadata)
    updates = fb.offset_vector(b, [_encode_update(b, u) for u in info.latest_updates])
    before = (
        b.CreateString(info.repo_before_updates) if info.repo_before_updates is not None else None
    )
    config = b.CreateByteVector(info.config) if info.config is not None else None
    enabled = (
        fb.scalar_vector(b, sorted(info.enabled_feature_flags), "u16")
        if info.enabled_feature_flags
        else None
    )
    disabled = (
        fb.scalar_vector(b, sorted(info.disabled_feature_flags), "u16")
        if info.disabled_feature_flags
        else None
    )

    b.StartObject(13)
    b.PrependUint8Slot(0, info.spec_version, 0)
    b.PrependUOffsetTRelativeSlot(1, tags, 0)
    b.PrependUOffsetTRelativeSlot(2, branches, 0)
    b.PrependUOffsetTRelativeSlot(3, deleted, 0)
    b.PrependUOffsetTRelativeSlot(4, snapshots, 0)
    b.PrependUOffsetTRelativeSlot(5, status, 0)
    b.PrependUOffsetTRelativeSlot(6, metadata, 0)
    b.PrependUOffsetTRelativeSlot(7, updates, 0)
    if before is not None:
        b.PrependUOffsetTRelativeSlot(8, before, 0)
    if config is not None:
        b.PrependUOffsetTRelativeSlot(9, config, 0)
    if enabled is not None:
        b.PrependUOffsetTRelativeSlot(10, enabled, 0)
    if disabled is not None:
        b.PrependUOffsetTRelativeSlot(11, disabled, 0)
    root = b.EndObject()
    return encode_file(FileType.REPO_INFO, fb.finish(b, root), level=compression_level)


def _encode_update(b: Any, u: Update) -> int:
    layout = _UPDATE_FIELDS[u.kind]
    # strings and sub-tables first: they cannot be created inside a table
    offsets: dict[str, int] = {}
    for name, kind_of in layout:
        if kind_of == "str":
            offsets[name] = b.CreateString(u.fields[name])
        elif kind_of == "status":
            st: RepoStatus = u.fields[name]
            reason = b.CreateString(st.reason) if st.reason is not None else None
            b.StartObject(3)
            b.PrependUint8Slot(0, int(st.availability), 0)
            b.PrependUint64Slot(1, st.set_at, 0)
            if reason is not None:
                b.PrependUOffsetTRelativeSlot(2, reason, 0)
            offsets[name] = b.EndObject()
    b.StartObject(max(len(layout), 1))
    for i, (name, kind_of) in enumerate(layout):
        value = u.fields[name]
        if kind_of in ("str", "status"):
            b.PrependUOffsetTRelativeSlot(i, offsets[name], 0)
        elif kind_of == "id12":
            fb.add_struct(b, i, id12_to_bytes(value))
        elif kind_of == "bool":
            b.PrependBoolSlot(i, bool(value), False)
        elif kind_of == "u8":
            b.PrependUint8Slot(i, value, 0)
        elif kind_of == "u16":
            b.PrependUint16Slot(i, value, 0)
    body = b.EndObject()
    backup = b.CreateString(u.backup_path) if u.backup_path is not None else None
    b.StartObject(4)
    b.PrependUint8Slot(0, int(u.kind), 0)
    b.PrependUOffsetTRelativeSlot(1, body, 0)
    b.PrependUint64Slot(2, u.updated_at, 0)
    if backup is not None:
        b.PrependUOffsetTRelativeSlot(3, backup, 0)
    return b.EndObject()
