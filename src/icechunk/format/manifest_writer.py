"""A vectorised manifest encoder (``Manifest`` of the Icechunk spec, version 2).

Each array of the manifest holds inline and native references, or only virtual ones
(the generic builder in :mod:`icechunk.format.manifest` writes arrays that mix virtual
references with others).

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from icechunk.exceptions import InvalidInputError
from icechunk.format.chunk_refs import ChunkCoords, ChunkPayload, InlineChunk, VirtualChunk
from icechunk.format.flatbuf import FILE_IDENTIFIER
from icechunk.format.ids import decode_ids12, id8_to_bytes, id12_to_bytes

# vtables: [vtable bytes, table bytes, field offsets...]
_VT_ROOT = struct.pack("<6H", 12, 24, 8, 4, 0, 20)  # id, arrays, (dict), compression
_VT_ROOT_DICT = struct.pack("<5H", 10, 24, 8, 4, 20)  # id, arrays, dictionary
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
# virtual: soffset, index uoffset (=32), offset u64 @8, length u64 @16, location uoffset @24,
# etag uoffset @28, last-modified u32 @32, index @36, then the location and the etag
_VIRTUAL_HEAD = 36
_location = operator.attrgetter("location")
_etag = operator.attrgetter("etag")
_modified = operator.attrgetter("last_modified")


def _vt_virtual(compressed: bool, etag: bool, modified: bool) -> bytes:
    """The vtable of virtual records; slot 5 is the location string, 8 the compressed one."""
    location = (0, 24) if compressed else (24, 0)
    fields = (4, 0, 8, 16, 0, location[0], 28 if etag else 0, 32 if modified else 0, location[1])
    return struct.pack("<11H", 22, _VIRTUAL_HEAD, *fields)


class LocationEncoder:
    """Location -> its stored bytes, computed once per distinct location.

    Strings are stored with their NUL (``nul`` = 1); with ``compress`` (a zstd compressor
    bound to the manifest's dictionary) each location is its own compressed frame.
    """

    def __init__(self, compress: Callable[[bytes], bytes] | None = None) -> None:
        self._compress = compress
        self.nul = 0 if compress is not None else 1
        self._cache: dict[str, bytes] = {}

    def __call__(self, location: str) -> bytes:
        stored = self._cache.get(location)
        if stored is None:
            raw = location.encode("utf-8")
            stored = self._compress(raw) if self._compress is not None else raw + b"\0"
            self._cache[location] = stored
        return stored


@dataclass
class VirtualRecords:
    """The variable parts of an array's virtual references, as columns."""

    locations: list[bytes]  # as stored (NUL-terminated string or compressed frame)
    location_lens: np.ndarray  # stored length, without a string's NUL
    location_nul: int  # 1 for strings, 0 for compressed bytes
    etags: list[bytes]  # NUL-terminated, only for references that have one
    has_etag: np.ndarray  # bool
    etag_lens: np.ndarray  # stored length with the NUL (0 without an etag)
    offsets: np.ndarray
    lengths: np.ndarray
    modified: np.ndarray  # u32 seconds, 0 for none

    @classmethod
    def of(
        cls, payloads: Sequence[ChunkPayload], location_bytes: LocationEncoder
    ) -> VirtualRecords:
        """The columns of ``payloads`` (all :class:`VirtualChunk`)."""
        n = len(payloads)
        locations = list(map(location_bytes, map(_location, payloads)))
        nul = location_bytes.nul
        lens = np.fromiter(map(len, locations), dtype=np.int64, count=n) - nul
        raw_etags = list(map(_etag, payloads))
        has_etag = np.fromiter((e is not None for e in raw_etags), dtype=bool, count=n)
        etags = [e.encode("utf-8") + b"\0" for e in raw_etags if e is not None]
        etag_lens = np.zeros(n, dtype=np.int64)
        etag_lens[has_etag] = np.fromiter(map(len, etags), dtype=np.int64, count=len(etags))
        modified = np.fromiter((m or 0 for m in map(_modified, payloads)), np.int64, count=n)
        if modified.size and (modified.min() < 0 or modified.max() >= 2**32):
            raise InvalidInputError("last-modified checksums must fit in 32 bits")
        return cls(
            locations,
            lens,
            nul,
            etags,
            has_etag,
            etag_lens,
            np.fromiter(map(_offset, payloads), dtype=np.uint64, count=n),
            np.fromiter(map(_length, payloads), dtype=np.uint64, count=n),
            modified,
        )

    def location_span(self) -> np.ndarray:
        """Bytes from the location's length prefix to the etag's (4-aligned)."""
        return _align4(4 + self.location_lens + self.location_nul)

    def tail_sizes(self) -> np.ndarray:
        """Bytes after the index vector: the location and the etag (if any)."""
        etag = np.where(self.has_etag, _align4(4 + self.etag_lens), 0)
        return self.location_span() + etag


def _align4(n: np.ndarray) -> np.ndarray:
    aligned: np.ndarray = n + (-n) % 4
    return aligned


Ref = tuple[ChunkCoords, ChunkPayload]


@dataclass(frozen=True, slots=True)
class RefColumns:
    """One array's references as columns: coordinates and payloads, sorted by coordinates."""

    coords: np.ndarray  # (n, ndim) integers
    payloads: Sequence[ChunkPayload]  # one per row of coords

    @classmethod
    def from_pairs(cls, refs: Sequence[Ref]) -> RefColumns:
        """The columns of ``(coords, payload)`` pairs."""
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
    native: list[ChunkPayload]  # native payloads, in order
    virtual: VirtualRecords | None = None  # set when every reference is virtual
    table: int = 0  # absolute position of the array table
    positions: np.ndarray | None = None  # absolute record positions
    end: int = 0


def _columns(
    node_id: str, refs: Sequence[Ref] | RefColumns, location_bytes: LocationEncoder
) -> _Columns:
    cols = refs if isinstance(refs, RefColumns) else RefColumns.from_pairs(refs)
    n, ndim = cols.coords.shape
    if cols.coords.size and (cols.coords.min() < 0 or cols.coords.max() >= 2**32):
        raise InvalidInputError("chunk coordinates must be between 0 and 2**32 - 1")
    payloads = cols.payloads
    kinds = set(map(type, payloads))
    if VirtualChunk in kinds:
        if kinds != {VirtualChunk}:
            raise ValueError("virtual references mixed with others: use the generic encoder")
        no = np.zeros(n, dtype=bool)
        records = VirtualRecords.of(payloads, location_bytes)
        return _Columns(node_id, ndim, cols.coords, no, [], [], records)
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
    if col.virtual is not None:
        sizes = _VIRTUAL_HEAD + index_bytes + col.virtual.tail_sizes()
    else:
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
    manifest_id: str,
    arrays: Sequence[tuple[str, Sequence[Ref] | RefColumns]],
    *,
    dictionary: bytes | None = None,
    compress: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """The flatbuffer of a manifest whose arrays each hold one kind of reference.

    ``arrays`` holds (node id, refs) sorted by node id, refs sorted by coordinates
    (as (coords, payload) pairs or as :class:`RefColumns`); an array's payloads are
    ``InlineChunk`` and ``NativeChunk``, or all ``VirtualChunk``. With ``dictionary``
    (a trained zstd dictionary, stored in the manifest) virtual locations are stored as
    ``compress(location)``, otherwise as strings.
    """
    compressed = dictionary is not None
    location_bytes = LocationEncoder(compress if compressed else None)
    head = bytearray(8)
    vt: dict[str, int] = {}
    vtables = [
        ("root", _VT_ROOT_DICT if compressed else _VT_ROOT),
        ("array", _VT_ARRAY),
        ("inline", _VT_INLINE),
        ("native", _VT_NATIVE),
    ]
    vtables += [
        (f"virtual{kind}", _vt_virtual(compressed, etag=bool(kind & 2), modified=bool(kind & 1)))
        for kind in range(4)
    ]
    for name, vtable in vtables:
        vt[name] = len(head)
        head += vtable
        head += b"\0" * ((-len(head)) % 4)
    head += b"\0" * _pad8(len(head))

    root = len(head)
    struct.pack_into("<I4s", head, 0, root, FILE_IDENTIFIER)
    arrays_vec = root + 24
    head += struct.pack(
        "<iI12sI", root - vt["root"], arrays_vec - (root + 4), id12_to_bytes(manifest_id), 0
    )
    columns = [_columns(node_id, refs, location_bytes) for node_id, refs in arrays]
    vec_end = arrays_vec + 4 + 4 * len(columns)
    pos = vec_end + _pad8(vec_end)
    for col in columns:
        pos = _layout(col, pos)
    head += struct.pack(
        f"<I{len(columns)}I",
        len(columns),
        *(col.table - (arrays_vec + 4 + 4 * i) for i, col in enumerate(columns)),
    )
    size = pos
    if dictionary is not None:
        # the dictionary vector goes last; the root's slot 2 points at it
        struct.pack_into("<I", head, root + 20, pos - (root + 20))
        size = pos + 4 + len(dictionary)
        size += _pad8(size)  # the word views below need whole words

    out = np.zeros(size, dtype=np.uint8)
    out[: len(head)] = np.frombuffer(bytes(head), dtype=np.uint8)
    if dictionary is not None:
        out[pos : pos + 4] = np.frombuffer(struct.pack("<I", len(dictionary)), dtype=np.uint8)
        out[pos + 4 : pos + 4 + len(dictionary)] = np.frombuffer(dictionary, dtype=np.uint8)
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

    if col.virtual is not None:
        _fill_virtual(out, col, col.virtual, vt)
        return
    if col.datas and not col.native:
        lens = np.fromiter(map(len, col.datas), dtype=np.int64, count=n)
        if n and (lens == lens[0]).all():
            _fill_uniform_inline(out, col, vt["inline"], int(lens[0]))
            return
    elif col.native and not col.datas:
        _fill_uniform_native(out, col, vt["native"])
        return
    _fill_mixed(out, col, vt)


def _fill_virtual(out: np.ndarray, col: _Columns, rec: VirtualRecords, vt: dict[str, int]) -> None:
    words = out.view("<u4")
    quads = out.view("<u8")
    at = col.positions
    assert at is not None
    ndim = col.ndim
    w = at // 4
    vtables = np.array([vt[f"virtual{kind}"] for kind in range(4)], dtype=np.int64)
    kinds = rec.has_etag.astype(np.int64) * 2 + (rec.modified != 0)
    words[w] = at - vtables[kinds]
    words[w + 1] = _VIRTUAL_HEAD - 4
    quads[at // 8 + 1] = rec.offsets
    quads[at // 8 + 2] = rec.lengths
    location_at = at + _VIRTUAL_HEAD + 4 + 4 * ndim
    words[w + 6] = location_at - (at + 24)
    words[w + 8] = rec.modified
    words[w + 9] = ndim
    words[(w + 10)[:, None] + np.arange(ndim)] = col.coords
    words[location_at // 4] = rec.location_lens
    _scatter(out, location_at + 4, rec.locations)
    if rec.etags:
        etag_at = (location_at + rec.location_span())[rec.has_etag]
        words[w[rec.has_etag] + 7] = etag_at - (at[rec.has_etag] + 28)
        words[etag_at // 4] = rec.etag_lens[rec.has_etag] - 1
        _scatter(out, etag_at + 4, rec.etags)


_SCATTER_BATCH = 1 << 16


def _scatter(out: np.ndarray, starts: np.ndarray, pieces: list[bytes]) -> None:
    """Copy ``pieces[i]`` to ``out[starts[i]:]``, in batches to bound the index arrays."""
    for first in range(0, len(pieces), _SCATTER_BATCH):
        batch = pieces[first : first + _SCATTER_BATCH]
        lens = np.fromiter(map(len, batch), dtype=np.int64, count=len(batch))
        total = int(lens.sum())
        if not total:
            continue
        shifts = starts[first : first + len(batch)] - (np.cumsum(lens) - lens)
        out[np.repeat(shifts, lens) + np.arange(total)] = np.frombuffer(
            b"".join(batch), dtype=np.uint8
        )


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
    positions = col.positions
    assert positions is not None
    ndim = col.ndim
    words[:, 0] = positions - vtable
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
    positions = col.positions
    assert positions is not None
    words[:, 0] = positions - vtable
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
        _scatter(out, at + _INLINE_HEAD + 4 + 4 * ndim + 4, col.datas)
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
