"""Snapshot files (``snapshots/<id>``): the node tree of one version of the repository.

The ``Snapshot`` table of the Icechunk spec, version 2 (``schema/snapshot.fbs``);
spec 1 snapshots, which store shapes, parents and manifest lists differently, are read
too.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import flatbuffers

from icechunk.exceptions import CorruptObjectError
from icechunk.format import flatbuf as fb
from icechunk.format.header import FileType, decode_file, encode_file
from icechunk.format.ids import encode_base32, id8_to_bytes, id12_to_bytes
from icechunk.format.values import decode_flexbuffer, decode_msgpack, encode_metadata_items

NODE_ARRAY = 1
NODE_GROUP = 2


@dataclass(frozen=True, slots=True)
class ManifestRef:
    """One manifest holding chunks of an array, and the chunk-grid box it covers."""

    manifest_id: str
    extents: tuple[tuple[int, int], ...]  # per dimension [from, to)

    def contains(self, coords: tuple[int, ...]) -> bool:
        """Whether the chunk at ``coords`` lies in this manifest's extents."""
        return all(lo <= c < hi for c, (lo, hi) in zip(coords, self.extents, strict=False))


@dataclass(frozen=True, slots=True)
class ArrayData:
    """What a snapshot records of an array beyond its zarr.json.

    Attributes
    ----------
    shape
        Per dimension, (array length, number of chunks).
    dimension_names
        Per dimension, a name or None; None when no names are stored.
    manifests
        The manifests holding the array's chunk references.
    """

    shape: tuple[tuple[int, int], ...]  # per dimension (array_length, num_chunks)
    dimension_names: tuple[str | None, ...] | None
    manifests: tuple[ManifestRef, ...]


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    """One group or array of a snapshot.

    Attributes
    ----------
    id
        The node id (13 characters of base32), kept for the node's lifetime.
    path
        Absolute path, ``/`` for the root.
    user_data
        The node's zarr.json, byte for byte.
    array
        The array's data, None for groups.
    """

    id: str
    path: str
    user_data: bytes  # the node's zarr.json, byte for byte
    array: ArrayData | None  # None for groups

    @property
    def is_array(self) -> bool:
        """Whether the node is an array."""
        return self.array is not None


@dataclass(frozen=True, slots=True)
class ManifestFileInfo:
    """A manifest file of a snapshot: id, stored size in bytes and number of references."""

    id: str
    size_bytes: int
    num_chunk_refs: int


@dataclass(slots=True)
class Snapshot:
    """A decoded snapshot.

    Attributes
    ----------
    id
        The snapshot id.
    nodes
        Every node, by path.
    flushed_at
        Commit time, microseconds since the epoch.
    message, metadata
        The commit message and metadata.
    manifest_files
        Every manifest the snapshot's arrays use.
    parent_id
        Spec 1 only: the parent snapshot.
    spec_version
        The spec version of the file's header.
    """

    id: str
    nodes: dict[str, NodeSnapshot]  # by path
    flushed_at: int  # microseconds since the epoch
    message: str
    metadata: dict[str, Any]
    manifest_files: list[ManifestFileInfo]
    parent_id: str | None = None  # spec 1 only
    spec_version: int = 2
    extra: dict[str, Any] = field(default_factory=dict)


def decode_snapshot(data: bytes, expected_id: str | None = None) -> Snapshot:
    """Decode a snapshot file (spec 1 or 2), checking its id if ``expected_id`` is given.

    Raises
    ------
    CorruptObjectError
        If the header, the flatbuffer or the id is wrong.
    """
    what = f"snapshot {expected_id}" if expected_id else "snapshot"
    spec_version, payload = decode_file(data, FileType.SNAPSHOT, what)
    try:
        snap = _decode(payload, spec_version)
    except (fb.FlatbufferError, struct.error, IndexError, UnicodeDecodeError, ValueError) as err:
        if isinstance(err, CorruptObjectError):
            raise
        raise CorruptObjectError(f"{what} is corrupt: {err}") from None
    if expected_id is not None and snap.id != expected_id:
        raise CorruptObjectError(f"{what} is corrupt: the file holds snapshot {snap.id}")
    return snap


def _decode(payload: bytes, spec_version: int) -> Snapshot:
    root = fb.Table.root(payload)
    raw_id = root.struct(0, 12)
    if raw_id is None:
        raise fb.FlatbufferError("snapshot id missing")
    raw_parent = root.struct(1, 12)
    metadata: dict[str, Any] = {}
    for item in root.required_tables(5, "metadata"):
        value = item.byte_vector(1)
        if value is None:
            raise fb.FlatbufferError("metadata value missing")
        decode = decode_msgpack if spec_version == 1 else decode_flexbuffer
        metadata[item.required_string(0, "name")] = decode(value)

    manifests_v2 = root.tables(7)
    if manifests_v2 is not None:
        manifest_files = [
            ManifestFileInfo(_id12(t, 0), t.scalar(1, "u64"), t.scalar(2, "u32"))
            for t in manifests_v2
        ]
    else:
        manifest_files = [
            ManifestFileInfo(
                encode_base32(raw[:12]),
                struct.unpack_from("<Q", raw, 16)[0],
                struct.unpack_from("<I", raw, 24)[0],
            )
            for raw in root.struct_vector(6, 32) or []
        ]

    nodes = {}
    for t in root.required_tables(2, "nodes"):
        node = _decode_node(t)
        nodes[node.path] = node
    return Snapshot(
        id=encode_base32(raw_id),
        nodes=nodes,
        flushed_at=root.scalar(3, "u64"),
        message=root.required_string(4, "message"),
        metadata=metadata,
        manifest_files=manifest_files,
        parent_id=encode_base32(raw_parent) if raw_parent is not None else None,
        spec_version=spec_version,
    )


def _id12(t: fb.Table, field_id: int) -> str:
    raw = t.struct(field_id, 12)
    if raw is None:
        raise fb.FlatbufferError("required id missing")
    return encode_base32(raw)


def _decode_node(t: fb.Table) -> NodeSnapshot:
    raw = t.struct(0, 8)
    if raw is None:
        raise fb.FlatbufferError("node id missing")
    path = t.required_string(1, "path")
    user_data = t.byte_vector(2)
    if user_data is None:
        raise fb.FlatbufferError(f"node {path}: user_data missing")
    kind = t.scalar(3, "u8")
    body = t.required_table(4, "node_data")
    if kind == NODE_GROUP:
        return NodeSnapshot(encode_base32(raw), path, user_data, None)
    if kind != NODE_ARRAY:
        raise fb.FlatbufferError(f"node {path}: unknown node type {kind}")

    shape_v2 = body.tables(3)
    if shape_v2 is not None:
        shape = tuple((s.scalar(0, "u64"), s.scalar(1, "u32")) for s in shape_v2)
    else:
        shape_list = []
        for raw_dim in body.struct_vector(0, 16) or []:
            length, chunk = struct.unpack("<QQ", raw_dim)
            shape_list.append((length, -(-length // chunk) if chunk else 0))
        shape = tuple(shape_list)
    names_t = body.tables(1)
    names = None if names_t is None else tuple(n.string(0) or None for n in names_t)
    manifests = []
    for m in body.required_tables(2, "manifests"):
        extents = tuple(struct.unpack("<II", r) for r in m.struct_vector(1, 8) or [])
        manifests.append(ManifestRef(_id12(m, 0), extents))
    return NodeSnapshot(
        encode_base32(raw), path, user_data, ArrayData(shape, names, tuple(manifests))
    )


def encode_snapshot(snap: Snapshot, *, compression_level: int = 3) -> bytes:
    """Encode a spec-2 snapshot."""
    b = fb.new_builder(8192)
    node_offs = []
    for path in sorted(snap.nodes, key=lambda p: p.encode()):
        node = snap.nodes[path]
        p = b.CreateString(node.path)
        ud = b.CreateByteVector(node.user_data)
        if node.array is None:
            b.StartObject(0)
            body = b.EndObject()
            kind = NODE_GROUP
        else:
            body = _encode_array(b, node.array)
            kind = NODE_ARRAY
        b.StartObject(6)
        fb.add_struct(b, 0, id8_to_bytes(node.id))
        b.PrependUOffsetTRelativeSlot(1, p, 0)
        b.PrependUOffsetTRelativeSlot(2, ud, 0)
        b.PrependUint8Slot(3, kind, 0)
        b.PrependUOffsetTRelativeSlot(4, body, 0)
        node_offs.append(b.EndObject())
    nodes = fb.offset_vector(b, node_offs)

    msg = b.CreateString(snap.message)
    items = []
    for name, value in encode_metadata_items(snap.metadata):
        n = b.CreateString(name)
        v = b.CreateByteVector(value)
        b.StartObject(2)
        b.PrependUOffsetTRelativeSlot(0, n, 0)
        b.PrependUOffsetTRelativeSlot(1, v, 0)
        items.append(b.EndObject())
    metadata = fb.offset_vector(b, items)
    manifest_files_v1 = fb.struct_vector(b, [], 32, 8)
    mf_offs = []
    for mf in sorted(snap.manifest_files, key=lambda m: m.id):
        b.StartObject(4)
        fb.add_struct(b, 0, id12_to_bytes(mf.id))
        b.PrependUint64Slot(1, mf.size_bytes, 0)
        b.PrependUint32Slot(2, mf.num_chunk_refs, 0)
        mf_offs.append(b.EndObject())
    manifest_files_v2 = fb.offset_vector(b, mf_offs)

    b.StartObject(9)
    fb.add_struct(b, 0, id12_to_bytes(snap.id))
    b.PrependUOffsetTRelativeSlot(2, nodes, 0)
    b.PrependUint64Slot(3, snap.flushed_at, 0)
    b.PrependUOffsetTRelativeSlot(4, msg, 0)
    b.PrependUOffsetTRelativeSlot(5, metadata, 0)
    b.PrependUOffsetTRelativeSlot(6, manifest_files_v1, 0)
    b.PrependUOffsetTRelativeSlot(7, manifest_files_v2, 0)
    root = b.EndObject()
    return encode_file(FileType.SNAPSHOT, fb.finish(b, root), level=compression_level)


def _encode_array(b: flatbuffers.Builder, array: ArrayData) -> int:
    names = None
    if array.dimension_names is not None:
        offs = []
        for name in array.dimension_names:
            s = b.CreateString(name) if name else None
            b.StartObject(1)
            if s is not None:
                b.PrependUOffsetTRelativeSlot(0, s, 0)
            offs.append(b.EndObject())
        names = fb.offset_vector(b, offs)
    refs = []
    for m in array.manifests:
        ext = fb.struct_vector(b, [struct.pack("<II", lo, hi) for lo, hi in m.extents], 8, 4)
        b.StartObject(2)
        fb.add_struct(b, 0, id12_to_bytes(m.manifest_id))
        b.PrependUOffsetTRelativeSlot(1, ext, 0)
        refs.append(b.EndObject())
    manifests = fb.offset_vector(b, refs)
    dims = []
    for length, num_chunks in array.shape:
        b.StartObject(2)
        b.PrependUint64Slot(0, length, 0)
        b.PrependUint32Slot(1, num_chunks, 0)
        dims.append(b.EndObject())
    shape_v2 = fb.offset_vector(b, dims)
    shape_v1 = fb.struct_vector(b, [], 16, 8)
    b.StartObject(4)
    b.PrependUOffsetTRelativeSlot(0, shape_v1, 0)
    if names is not None:
        b.PrependUOffsetTRelativeSlot(1, names, 0)
    b.PrependUOffsetTRelativeSlot(2, manifests, 0)
    b.PrependUOffsetTRelativeSlot(3, shape_v2, 0)
    return b.EndObject()
