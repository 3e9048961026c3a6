"""A fast manifest encoder for inline and native chunk references.

The generic flatbuffers builder costs tens of Python calls per chunk reference.
Manifests have a fixed shape, so this writer lays the buffer out front to back
itself: shared vtables first, then the root table, the arrays, and one record per
reference (its table followed by its index vector and inline data). Every
uoffset points forward and every scalar is naturally aligned, as the
flatbuffers verifier requires.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence

from icechunk.format.flatbuf import FILE_IDENTIFIER
from icechunk.format.ids import id8_to_bytes, id12_to_bytes

# vtables: [vtable bytes, table bytes, field offsets...]
_VT_ROOT = struct.pack("<6H", 12, 24, 8, 4, 0, 20)  # id, arrays, (dict), compression
_VT_ARRAY = struct.pack("<4H", 8, 16, 8, 4)  # node_id, refs
_VT_INLINE = struct.pack("<4H", 8, 12, 4, 8)  # index, inline
_VT_NATIVE = struct.pack("<7H", 14, 40, 4, 0, 16, 8, 24)  # index, -, offset, length, chunk_id

_NATIVE_TABLE = struct.Struct("<iIQQ12s4x")  # soffset, index uoffset, length, offset, id
_INLINE_TABLE = struct.Struct("<iII")  # soffset, index uoffset, inline uoffset


@functools.cache
def _index_struct(ndim: int) -> struct.Struct:
    return struct.Struct(f"<I{ndim}I")


def _pad8(n: int) -> int:
    return (-n) % 8


def encode_manifest_payload(
    manifest_id: str,
    arrays: Sequence[tuple[str, Sequence[tuple[tuple[int, ...], object]]]],
) -> bytes:
    """The flatbuffer of a manifest whose references are all inline or native.

    ``arrays`` holds (node id, refs) sorted by node id, refs sorted by coordinates;
    payloads are ``InlineChunk`` (has ``data``) or ``NativeChunk``.
    """
    out = bytearray(8)
    vt: dict[str, int] = {}
    for name, table in (
        ("root", _VT_ROOT),
        ("array", _VT_ARRAY),
        ("inline", _VT_INLINE),
        ("native", _VT_NATIVE),
    ):
        vt[name] = len(out)
        out += table
        out += b"\0" * ((-len(out)) % 4)
    out += b"\0" * _pad8(len(out))

    # root table
    root = len(out)
    struct.pack_into("<I4s", out, 0, root, FILE_IDENTIFIER)
    arrays_vec = root + 24
    out += struct.pack(
        "<iI12sB3x", root - vt["root"], arrays_vec - (root + 4), id12_to_bytes(manifest_id), 0
    )
    # arrays vector: count + one uoffset per array table (tables follow, 8-aligned)
    n_arrays = len(arrays)
    vec_end = arrays_vec + 4 + 4 * n_arrays
    first_array = vec_end + _pad8(vec_end)
    out += struct.pack("<I", n_arrays)
    # sizes of each array block are needed before their offsets can be written
    blocks = [_array_block(node_id, refs, vt) for node_id, refs in arrays]
    pos = first_array
    offsets = []
    for block in blocks:
        offsets.append(pos)
        pos += len(block)
    out += struct.pack(
        f"<{n_arrays}I", *(off - (arrays_vec + 4 + 4 * i) for i, off in enumerate(offsets))
    )
    out += b"\0" * _pad8(len(out))
    base = len(out)
    assert base == first_array
    for block, start in zip(blocks, offsets, strict=True):
        out += _relocate(block, start)
    return bytes(out)


class _Block:
    """An array block laid out as if it started at position 0; soffsets fixed later."""

    __slots__ = ("data", "soffset_sites")

    def __init__(self, data: bytearray, soffset_sites: list[tuple[int, int]]) -> None:
        self.data = data
        self.soffset_sites = soffset_sites  # (position in block, vtable position)

    def __len__(self) -> int:
        return len(self.data)


def _array_block(
    node_id: str, refs: Sequence[tuple[tuple[int, ...], object]], vt: dict[str, int]
) -> _Block:
    n = len(refs)
    sites: list[tuple[int, int]] = []
    # array table (16 bytes) then refs vector
    vec = 16
    vec_end = vec + 4 + 4 * n
    first = vec_end + _pad8(vec_end)
    # record sizes
    sizes = []
    for coords, payload in refs:
        idx = 4 + 4 * len(coords)
        data = getattr(payload, "data", None)
        if data is None:
            size = 40 + idx
        else:
            size = 12 + idx + 4 + len(data)
        sizes.append(size + _pad8(size))
    out = bytearray()
    sites.append((0, vt["array"]))
    out += struct.pack("<iI8s", 0, vec - 4, id8_to_bytes(node_id))
    positions = []
    pos = first
    for size in sizes:
        positions.append(pos)
        pos += size
    out += struct.pack("<I", n)
    out += struct.pack(f"<{n}I", *(p - (vec + 4 + 4 * i) for i, p in enumerate(positions)))
    out += b"\0" * _pad8(len(out))
    native_table = _NATIVE_TABLE.pack
    inline_table = _INLINE_TABLE.pack
    for (coords, payload), start in zip(refs, positions, strict=True):
        ndim = len(coords)
        index = _index_struct(ndim).pack(ndim, *coords)
        data = getattr(payload, "data", None)
        if data is None:
            sites.append((start, vt["native"]))
            rec = (
                native_table(0, 36, payload.length, payload.offset, id12_to_bytes(payload.chunk_id))
                + index
            )
        else:
            sites.append((start, vt["inline"]))
            data_vec = 12 + len(index)
            rec = inline_table(0, 8, data_vec - 8) + index + struct.pack("<I", len(data)) + data
        out += rec
        out += b"\0" * _pad8(len(rec))
    return _Block(out, sites)


def _relocate(block: _Block, start: int) -> bytearray:
    data = block.data
    for site, vtable in block.soffset_sites:
        struct.pack_into("<i", data, site, start + site - vtable)
    return data
