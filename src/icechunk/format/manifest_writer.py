"""A vectorised manifest encoder for inline and native chunk references.

The generic flatbuffers builder costs tens of Python calls per chunk reference.
Manifests have a fixed shape, so this writer computes the layout with numpy and
fills one preallocated buffer: shared vtables first, then the root table, the
arrays vector, and per array its table, its reference vector and one record per
reference (the record's table followed by its index vector and inline data).
Every uoffset points forward and every scalar is naturally aligned, as the
flatbuffers verifier requires. The per-reference cost is a few list
comprehensions; the rest is numpy.
"""

from __future__ import annotations

import itertools
import operator
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from icechunk.exceptions import InvalidInputError
from icechunk.format.flatbuf import FILE_IDENTIFIER
from icechunk.format.ids import decode_ids12, id8_to_bytes, id12_to_bytes

# vtables: [vtable bytes, table bytes, field offsets...]
_VT_ROOT = struct.pack("<6H", 12, 24, 8, 4, 0, 20)  # id, arrays, (dict), compression
_VT_ARRAY = struct.pack("<4H", 8, 16, 8, 4)  # node_id, refs
_VT_INLINE = struct.pack("<4H", 8, 12, 4, 8)  # index, inline
_VT_NATIVE = struct.pack("<7H", 14, 40, 4, 0, 16, 8, 24)  # index, -, offset, length, chunk_id

# Record layouts (byte offsets from the record start, which is 8-aligned):
#   native: soffset, index uoffset (=36), length u64 @8, offset u64 @16, id @24, index @40
#   inline: soffset, index uoffset (=8), data uoffset @8, index @12, data vector after it
_NATIVE_HEAD = 40
_data = operator.attrgetter("data")
_length = operator.attrgetter("length")
_offset = operator.attrgetter("offset")
_chunk_id = operator.attrgetter("chunk_id")
_INLINE_HEAD = 12

Ref = tuple[tuple[int, ...], object]


@dataclass(frozen=True, slots=True)
class RefColumns:
    """One array's references as columns: coordinates and payloads, sorted by coordinates."""

    coords: np.ndarray  # (n, ndim) integers
    payloads: Sequence[object]  # InlineChunk / NativeChunk, one per row of coords

    @classmethod
    def from_pairs(cls, refs: Sequence[Ref]) -> RefColumns:
        n = len(refs)
        ndim = len(refs[0][0]) if n else 0
        flat = itertools.chain.from_iterable([c for c, _ in refs])
        coords = np.fromiter(flat, dtype=np.int64, count=n * ndim).reshape(n, ndim)
        return cls(coords, [p for _, p in refs])


def _pad8(n: int) -> int:
    return (-n) % 8


@dataclass
class _Columns:
    """One array's references split by kind, with their positions in the output."""

    node_id: str
    ndim: int
    coords: np.ndarray  # (n, ndim)
    inline: np.ndarray  # (n,) bool
    datas: list[bytes]  # inline payloads, in order
    native: list[object]  # native payloads, in order
    table: int = 0  # absolute position of the array table
    positions: np.ndarray | None = None  # absolute record positions
    end: int = 0


def _columns(node_id: str, refs: Sequence[Ref] | RefColumns) -> _Columns:
    from icechunk.format.manifest import InlineChunk  # the payload classes live there

    cols = refs if isinstance(refs, RefColumns) else RefColumns.from_pairs(refs)
    n, ndim = cols.coords.shape
    if cols.coords.size and (cols.coords.min() < 0 or cols.coords.max() >= 2**32):
        raise InvalidInputError("chunk coordinates must be between 0 and 2**32 - 1")
    payloads = cols.payloads
    kinds = set(map(type, payloads))
    if kinds <= {InlineChunk}:
        inline = np.ones(n, dtype=bool)
        return _Columns(node_id, ndim, cols.coords, inline, list(map(_data, payloads)), [])
    if InlineChunk not in kinds:
        inline = np.zeros(n, dtype=bool)
        return _Columns(node_id, ndim, cols.coords, inline, [], list(payloads))
    objects = np.fromiter(payloads, dtype=object, count=n)
    inline = np.fromiter(map(type, payloads), dtype=object, count=n) == InlineChunk
    datas = list(map(_data, objects[inline]))
    return _Columns(node_id, ndim, cols.coords, inline, datas, objects[~inline].tolist())


def _layout(col: _Columns, table: int) -> int:
    """Place the array's table, reference vector and records from ``table`` on; return the end."""
    n = len(col.inline)
    col.table = table
    vec = table + 16
    vec_end = vec + 4 + 4 * n
    first = vec_end + _pad8(vec_end)
    index_bytes = 4 + 4 * col.ndim
    sizes = np.full(n, _NATIVE_HEAD + index_bytes, dtype=np.int64)
    if col.datas:
        lens = np.fromiter(map(len, col.datas), dtype=np.int64, count=len(col.datas))
        sizes[col.inline] = _INLINE_HEAD + index_bytes + 4 + lens
    sizes += (-sizes) % 8
    ends = np.cumsum(sizes)
    col.positions = first + ends - sizes
    col.end = first + int(ends[-1]) if n else first
    return col.end


def encode_manifest_payload(
    manifest_id: str, arrays: Sequence[tuple[str, Sequence[Ref] | RefColumns]]
) -> bytes:
    """The flatbuffer of a manifest whose references are all inline or native.

    ``arrays`` holds (node id, refs) sorted by node id, refs sorted by coordinates
    (as (coords, payload) pairs or as :class:`RefColumns`); payloads are
    ``InlineChunk`` or ``NativeChunk``.
    """
    head = bytearray(8)
    vt: dict[str, int] = {}
    for name, vtable in (
        ("root", _VT_ROOT),
        ("array", _VT_ARRAY),
        ("inline", _VT_INLINE),
        ("native", _VT_NATIVE),
    ):
        vt[name] = len(head)
        head += vtable
        head += b"\0" * ((-len(head)) % 4)
    head += b"\0" * _pad8(len(head))

    root = len(head)
    struct.pack_into("<I4s", head, 0, root, FILE_IDENTIFIER)
    arrays_vec = root + 24
    head += struct.pack(
        "<iI12sB3x", root - vt["root"], arrays_vec - (root + 4), id12_to_bytes(manifest_id), 0
    )
    columns = [_columns(node_id, refs) for node_id, refs in arrays]
    vec_end = arrays_vec + 4 + 4 * len(columns)
    pos = vec_end + _pad8(vec_end)
    for col in columns:
        pos = _layout(col, pos)
    head += struct.pack(
        f"<I{len(columns)}I",
        len(columns),
        *(col.table - (arrays_vec + 4 + 4 * i) for i, col in enumerate(columns)),
    )

    out = np.zeros(pos, dtype=np.uint8)
    out[: len(head)] = np.frombuffer(bytes(head), dtype=np.uint8)
    for col in columns:
        _fill(out, col, vt)
    return out.tobytes()


def _fill(out: np.ndarray, col: _Columns, vt: dict[str, int]) -> None:
    words = out.view("<u4")
    table = col.table
    positions = col.positions
    assert positions is not None
    n = len(positions)
    vec = table + 16
    # array table: soffset, refs uoffset, node id; then the refs vector
    words[table // 4] = table - vt["array"]
    words[table // 4 + 1] = vec - (table + 4)
    out[table + 8 : table + 16] = np.frombuffer(id8_to_bytes(col.node_id), dtype=np.uint8)
    words[vec // 4] = n
    words[vec // 4 + 1 : vec // 4 + 1 + n] = positions - (vec + 4 + 4 * np.arange(n))

    if col.datas and not col.native:
        lens = np.fromiter(map(len, col.datas), dtype=np.int64, count=n)
        if n and (lens == lens[0]).all():
            _fill_uniform_inline(out, col, vt["inline"], int(lens[0]))
            return
    elif col.native and not col.datas:
        _fill_uniform_native(out, col, vt["native"])
        return
    _fill_mixed(out, col, vt)


def _records(out: np.ndarray, col: _Columns) -> tuple[np.ndarray, np.ndarray]:
    """Equal-sized records as an ``(n, size)`` byte matrix and its ``(n, size/4)`` word view."""
    positions = col.positions
    assert positions is not None
    n = len(positions)
    start = int(positions[0])
    block = out[start : col.end].reshape(n, (col.end - start) // n)
    return block, block.view("<u4")


def _fill_uniform_inline(out: np.ndarray, col: _Columns, vtable: int, length: int) -> None:
    block, words = _records(out, col)
    ndim = col.ndim
    words[:, 0] = col.positions - vtable
    words[:, 1] = 8
    words[:, 2] = _INLINE_HEAD + 4 + 4 * ndim - 8
    words[:, 3] = ndim
    words[:, 4 : 4 + ndim] = col.coords
    words[:, 4 + ndim] = length
    data_at = _INLINE_HEAD + 4 + 4 * ndim + 4
    data = np.frombuffer(b"".join(col.datas), dtype=np.uint8)
    block[:, data_at : data_at + length] = data.reshape(len(col.datas), length)


def _fill_uniform_native(out: np.ndarray, col: _Columns, vtable: int) -> None:
    block, words = _records(out, col)
    quads = block.view("<u8")
    refs = col.native
    k = len(refs)
    words[:, 0] = col.positions - vtable
    words[:, 1] = _NATIVE_HEAD - 4
    quads[:, 1] = np.fromiter(map(_length, refs), dtype=np.uint64, count=k)
    quads[:, 2] = np.fromiter(map(_offset, refs), dtype=np.uint64, count=k)
    block[:, 24:36] = decode_ids12(list(map(_chunk_id, refs)))
    words[:, 10] = col.ndim
    words[:, 11 : 11 + col.ndim] = col.coords


def _fill_mixed(out: np.ndarray, col: _Columns, vt: dict[str, int]) -> None:
    words = out.view("<u4")
    quads = out.view("<u8")
    positions = col.positions
    assert positions is not None
    ndim = col.ndim
    dims = np.arange(ndim)
    inline = col.inline
    if col.datas:
        at = positions[inline]
        w = at // 4
        words[w] = at - vt["inline"]
        words[w + 1] = 8
        words[w + 2] = _INLINE_HEAD + 4 + 4 * ndim - 8
        words[w + 3] = ndim
        words[(w + 4)[:, None] + dims] = col.coords[inline]
        lens = np.fromiter(map(len, col.datas), dtype=np.int64, count=len(col.datas))
        words[w + 4 + ndim] = lens
        starts = at + _INLINE_HEAD + 4 + 4 * ndim + 4
        total = int(lens.sum())
        if total:
            shifts = starts - (np.cumsum(lens) - lens)
            dest = np.repeat(shifts, lens) + np.arange(total)
            out[dest] = np.frombuffer(b"".join(col.datas), dtype=np.uint8)
    if col.native:
        native = ~inline
        at = positions[native]
        w = at // 4
        words[w] = at - vt["native"]
        words[w + 1] = _NATIVE_HEAD - 4
        refs = col.native
        k = len(refs)
        quads[at // 8 + 1] = np.fromiter(map(_length, refs), dtype=np.uint64, count=k)
        quads[at // 8 + 2] = np.fromiter(map(_offset, refs), dtype=np.uint64, count=k)
        out[(at + 24)[:, None] + np.arange(12)] = decode_ids12(list(map(_chunk_id, refs)))
        words[w + 10] = ndim
        words[(w + 11)[:, None] + dims] = col.coords[native]
