"""Transaction logs (``transactions/<snapshot id>``): what one commit changed.

The ``TransactionLog`` table of the Icechunk spec, version 2
(``schema/transaction_log.fbs``).
"""

from __future__ import annotations

import struct
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from icechunk.exceptions import CorruptObjectError
from icechunk.format import flatbuf as fb
from icechunk.format.coords import coords_array, lex_order
from icechunk.format.header import FileType, decode_file, encode_file
from icechunk.format.ids import encode_base32, id8_to_bytes, id12_to_bytes

NODE_TYPE_GROUP = 0
NODE_TYPE_ARRAY = 1


@dataclass(frozen=True, slots=True)
class MoveOperation:
    """A node that changed path in the commit (spec 2).

    Attributes
    ----------
    from_path, to_path
        The node's path before and after.
    node_id
        The moved node.
    node_type
        ``NODE_TYPE_GROUP`` or ``NODE_TYPE_ARRAY``.
    """

    from_path: str
    to_path: str
    node_id: str
    node_type: int  # NODE_TYPE_GROUP / NODE_TYPE_ARRAY


@dataclass(slots=True)
class TransactionLog:
    """The changes of one commit, as sets of node ids and chunk coordinates.

    Attributes
    ----------
    id
        The id of the snapshot the commit created.
    new_groups, new_arrays, deleted_groups, deleted_arrays
        Nodes created or deleted.
    updated_arrays, updated_groups
        Nodes whose zarr.json changed.
    updated_chunks
        Per array, the coordinates of chunks written or deleted.
    moved_nodes
        Nodes that changed path.
    """

    id: str
    new_groups: set[str] = field(default_factory=set)
    new_arrays: set[str] = field(default_factory=set)
    deleted_groups: set[str] = field(default_factory=set)
    deleted_arrays: set[str] = field(default_factory=set)
    updated_arrays: set[str] = field(default_factory=set)
    updated_groups: set[str] = field(default_factory=set)
    #: changed chunk coordinates per node (a set, or the keys of a session's change set)
    updated_chunks: dict[str, Collection[tuple[int, ...]]] = field(default_factory=dict)
    moved_nodes: list[MoveOperation] = field(default_factory=list)


_ID_LISTS = (
    (1, "new_groups"),
    (2, "new_arrays"),
    (3, "deleted_groups"),
    (4, "deleted_arrays"),
    (5, "updated_arrays"),
    (6, "updated_groups"),
)


def decode_transaction_log(data: bytes, expected_id: str) -> TransactionLog:
    """Decode the transaction log of snapshot ``expected_id``.

    Raises
    ------
    CorruptObjectError
        If the header, the flatbuffer or the id is wrong.
    """
    what = f"transaction log {expected_id}"
    _, payload = decode_file(data, FileType.TRANSACTION_LOG, what)
    try:
        root = fb.Table.root(payload)
        raw = root.struct(0, 12)
        if raw is None or encode_base32(raw) != expected_id:
            raise fb.FlatbufferError("it holds a different id")
        log = TransactionLog(expected_id)
        for field_id, name in _ID_LISTS:
            ids = root.struct_vector(field_id, 8)
            if ids is None:
                raise fb.FlatbufferError(f"required field {name!r} is missing")
            setattr(log, name, {encode_base32(i) for i in ids})
        for t in root.required_tables(7, "updated_chunks"):
            node = t.struct(0, 8)
            if node is None:
                raise fb.FlatbufferError("node id missing")
            log.updated_chunks[encode_base32(node)] = {
                tuple(c.scalar_vector(0, "u32") or ()) for c in t.required_tables(1, "chunks")
            }
        for t in root.tables(8) or []:
            node = t.struct(2, 8)
            log.moved_nodes.append(
                MoveOperation(
                    t.string(0) or "",
                    t.string(1) or "",
                    encode_base32(node) if node else "",
                    t.scalar(3, "u8"),
                )
            )
        return log
    except (fb.FlatbufferError, struct.error, IndexError, UnicodeDecodeError, ValueError) as err:
        raise CorruptObjectError(f"{what} is corrupt: {err}") from None


def _segment_key(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


def encode_transaction_log(log: TransactionLog, *, compression_level: int = 3) -> bytes:
    """The transaction log file of ``log``: id lists sorted, chunks and moves in spec order."""
    if not log.moved_nodes:
        payload = _encode_without_moves(log)
        return encode_file(FileType.TRANSACTION_LOG, payload, level=compression_level)
    b = fb.new_builder(1024)
    lists = {
        name: fb.struct_vector(b, [id8_to_bytes(i) for i in sorted(getattr(log, name))], 8, 1)
        for _, name in _ID_LISTS
    }
    chunk_offs = []
    for node_id in sorted(log.updated_chunks):
        coords = []
        for c in sorted(log.updated_chunks[node_id]):
            vec = fb.scalar_vector(b, c, "u32")
            b.StartObject(1)
            b.PrependUOffsetTRelativeSlot(0, vec, 0)
            coords.append(b.EndObject())
        coords_vec = fb.offset_vector(b, coords)
        b.StartObject(2)
        fb.add_struct(b, 0, id8_to_bytes(node_id))
        b.PrependUOffsetTRelativeSlot(1, coords_vec, 0)
        chunk_offs.append(b.EndObject())
    updated_chunks = fb.offset_vector(b, chunk_offs)
    move_offs = []
    for move in sorted(log.moved_nodes, key=lambda m: _segment_key(m.to_path)):
        src = b.CreateString(move.from_path)
        dst = b.CreateString(move.to_path)
        b.StartObject(4)
        b.PrependUOffsetTRelativeSlot(0, src, 0)
        b.PrependUOffsetTRelativeSlot(1, dst, 0)
        fb.add_struct(b, 2, id8_to_bytes(move.node_id))
        b.PrependUint8(move.node_type)
        b.Slot(3)
        move_offs.append(b.EndObject())
    moved = fb.offset_vector(b, move_offs)
    b.StartObject(10)
    fb.add_struct(b, 0, id12_to_bytes(log.id))
    for field_id, name in _ID_LISTS:
        b.PrependUOffsetTRelativeSlot(field_id, lists[name], 0)
    b.PrependUOffsetTRelativeSlot(7, updated_chunks, 0)
    b.PrependUOffsetTRelativeSlot(8, moved, 0)
    root = b.EndObject()
    return encode_file(FileType.TRANSACTION_LOG, fb.finish(b, root), level=compression_level)


_VT_ROOT = struct.pack("<12H", 24, 48, 4, 16, 20, 24, 28, 32, 36, 40, 44, 0)
_VT_UPDATED = struct.pack("<4H", 8, 16, 8, 4)  # node_id, chunks
_VT_INDICES = struct.pack("<3Hxx", 6, 8, 4)  # coords


def _encode_without_moves(log: TransactionLog) -> bytes:
    """Front-to-back layout of a transaction log (fast for many chunk coordinates).

    Objects are appended in order and every uoffset is patched once its target's
    position is known, so all offsets point forward as flatbuffers requires.
    """
    out = bytearray(8)
    vt_root = len(out)
    out += _VT_ROOT
    vt_updated = len(out)
    out += _VT_UPDATED
    vt_indices = len(out)
    out += _VT_INDICES
    root = len(out)
    struct.pack_into("<I4s", out, 0, root, fb.FILE_IDENTIFIER)
    out += struct.pack("<i12s", root - vt_root, id12_to_bytes(log.id)) + bytes(32)

    def patch(site: int) -> None:
        struct.pack_into("<I", out, site, len(out) - site)

    for i, (_, name) in enumerate(_ID_LISTS):
        patch(root + 16 + 4 * i)
        ids = sorted(getattr(log, name))
        out += struct.pack("<I", len(ids)) + b"".join(id8_to_bytes(x) for x in ids)
    patch(root + 44)  # moved_nodes: empty
    out += struct.pack("<I", 0)
    patch(root + 40)  # updated_chunks
    nodes = sorted(log.updated_chunks)
    vector = len(out)
    out += struct.pack("<I", len(nodes)) + bytes(4 * len(nodes))
    for i, node_id in enumerate(nodes):
        patch(vector + 4 + 4 * i)
        table = len(out)
        out += struct.pack("<iI8s", table - vt_updated, 0, id8_to_bytes(node_id))
        patch(table + 4)
        out += _chunk_indices(log.updated_chunks[node_id], len(out), vt_indices)
    return bytes(out)


def sorted_coords(coords: Collection[tuple[int, ...]]) -> np.ndarray:
    """Chunk coordinates as an ``(n, ndim)`` array in lexicographic order."""
    first = next(iter(coords), None)
    if first is None:
        return np.zeros((0, 0), dtype=np.int64)
    array = coords_array(coords, len(coords), len(first))
    ordered: np.ndarray = array[lex_order(array)]
    return ordered


def _chunk_indices(chunks: Collection[tuple[int, ...]], start: int, vt_indices: int) -> bytes:
    """A vector of ChunkIndices tables laid out at ``start`` (4-aligned), entries after it."""
    coords = sorted_coords(chunks)
    n, ndim = coords.shape
    entry_words = 3 + ndim
    first = start + 4 + 4 * n
    words = np.empty(1 + n + n * entry_words, dtype="<u4")
    words[0] = n
    positions = first + 4 * entry_words * np.arange(n, dtype=np.int64)
    words[1 : 1 + n] = positions - (start + 4 + 4 * np.arange(n, dtype=np.int64))
    entries = words[1 + n :].reshape(n, entry_words)
    entries[:, 0] = positions - vt_indices  # soffset to the shared vtable
    entries[:, 1] = 4  # uoffset of the coords vector, right after the table
    entries[:, 2] = ndim
    entries[:, 3:] = coords
    return words.tobytes()
