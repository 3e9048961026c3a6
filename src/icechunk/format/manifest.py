"""Manifest files (``manifests/<id>``): chunk references of one or more arrays.

:class:`Manifest` is a lazy view over the decoded flatbuffer: looking up a chunk
binary-searches the sorted reference vector in place, so opening a manifest with
a million references costs one decompression, not a million Python objects.
"""

from __future__ import annotations

import operator
import random
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import flatbuffers
import zstandard

from icechunk.exceptions import CorruptObjectError
from icechunk.format import flatbuf as fb
from icechunk.format.chunk_refs import (
    ChunkCoords,
    ChunkPayload,
    InlineChunk,
    NativeChunk,
    VirtualChunk,
)
from icechunk.format.header import FileType, decode_file, encode_file
from icechunk.format.ids import encode_base32, id8_to_bytes, id12_to_bytes
from icechunk.format.manifest_writer import RefColumns, encode_manifest_payload

__all__ = [
    "DEFAULT_LOCATION_COMPRESSION",
    "ChunkCoords",
    "ChunkPayload",
    "InlineChunk",
    "LocationCompression",
    "Manifest",
    "NativeChunk",
    "VirtualChunk",
    "decode_manifest",
    "encode_manifest",
    "encode_manifest_columns",
    "train_location_dictionary",
]

_location = operator.attrgetter("location")


class Manifest:
    """Read access to one manifest file."""

    __slots__ = ("id", "size_bytes", "_root", "_arrays", "_dictionary")

    def __init__(self, manifest_id: str, payload: bytes, size_bytes: int) -> None:
        self.id = manifest_id
        self.size_bytes = size_bytes
        self._root = fb.Table.root(payload)
        self._arrays: dict[str, fb.Table] = {}
        for t in self._root.required_tables(1, "arrays"):
            raw = t.struct(0, 8)
            if raw is None:
                raise fb.FlatbufferError("array node id missing")
            if not t.has(1):
                raise fb.FlatbufferError("array refs missing")
            self._arrays[encode_base32(raw)] = t
        self._dictionary: zstandard.ZstdDecompressor | None = None

    @property
    def node_ids(self) -> list[str]:
        """The ids of the arrays with references here, in the file's (sorted) order."""
        return list(self._arrays)

    def num_refs(self, node_id: str | None = None) -> int:
        """The number of references of one array, or of all of them."""
        if node_id is None:
            return sum(t.vector_len(1) for t in self._arrays.values())
        t = self._arrays.get(node_id)
        return t.vector_len(1) if t is not None else 0

    def lookup(self, node_id: str, coords: ChunkCoords) -> ChunkPayload | None:
        """The reference for one chunk, or None if this manifest does not hold it."""
        t = self._arrays.get(node_id)
        if t is None:
            return None
        lo, hi = 0, t.vector_len(1)
        while lo < hi:
            mid = (lo + hi) // 2
            ref = t.table_at(1, mid)
            index = tuple(ref.scalar_vector(0, "u32") or ())
            if index == coords:
                return self._payload(ref)
            if index < coords:
                lo = mid + 1
            else:
                hi = mid
        return None

    def iter_refs(self, node_id: str) -> Iterator[tuple[ChunkCoords, ChunkPayload]]:
        """Every reference of an array, in index order."""
        t = self._arrays.get(node_id)
        if t is None:
            return
        for ref in t.tables(1) or []:
            yield tuple(ref.scalar_vector(0, "u32") or ()), self._payload(ref)

    def iter_coords(self, node_id: str) -> Iterator[ChunkCoords]:
        """The coordinates of every reference of an array, in index order."""
        t = self._arrays.get(node_id)
        if t is None:
            return
        for ref in t.tables(1) or []:
            yield tuple(ref.scalar_vector(0, "u32") or ())

    def _payload(self, ref: fb.Table) -> ChunkPayload:
        raw_id = ref.struct(4, 12)
        if raw_id is not None:
            return NativeChunk(encode_base32(raw_id), ref.scalar(2, "u64"), ref.scalar(3, "u64"))
        location = None
        compressed = ref.byte_vector(8)
        if compressed is not None:
            location = self._decompress_location(compressed)
        else:
            location = ref.string(5)
        if location is not None:
            modified = ref.scalar(7, "u32")
            return VirtualChunk(
                location,
                ref.scalar(2, "u64"),
                ref.scalar(3, "u64"),
                ref.string(6),
                modified or None,
            )
        data = ref.byte_vector(1)
        if data is None:
            raise CorruptObjectError(f"manifest {self.id} is corrupt: chunk reference without data")
        return InlineChunk(data)

    def _decompress_location(self, compressed: bytes) -> str:
        if self._dictionary is None:
            raw = self._root.byte_vector(2)
            dict_data = zstandard.ZstdCompressionDict(raw) if raw else None
            self._dictionary = zstandard.ZstdDecompressor(dict_data=dict_data)
        try:
            obj = self._dictionary.decompressobj()
            return obj.decompress(compressed).decode("utf-8")
        except (zstandard.ZstdError, UnicodeDecodeError) as err:
            raise CorruptObjectError(
                f"manifest {self.id} is corrupt: bad compressed location: {err}"
            ) from None


def decode_manifest(data: bytes, expected_id: str) -> Manifest:
    """Open the manifest file ``data``, which must hold the manifest ``expected_id``.

    Raises
    ------
    CorruptObjectError
        If the header, the flatbuffer or the id is wrong.
    """
    what = f"manifest {expected_id}"
    _, payload = decode_file(data, FileType.MANIFEST, what)
    try:
        manifest = Manifest(expected_id, payload, len(data))
        raw = manifest._root.struct(0, 12)  # noqa: SLF001
    except (fb.FlatbufferError, struct.error, IndexError, ValueError) as err:
        raise CorruptObjectError(f"{what} is corrupt: {err}") from None
    if raw is None or encode_base32(raw) != expected_id:
        raise CorruptObjectError(f"{what} is corrupt: it holds a different manifest id")
    return manifest


@dataclass(frozen=True, slots=True)
class LocationCompression:
    """How virtual locations are compressed (the official defaults).

    Manifests with enough virtual references store each location as a zstd frame
    compressed with a dictionary trained on a sample of them (``compressed_location``
    and ``location_dictionary`` in the Icechunk spec, version 2).

    Parameters
    ----------
    min_num_chunks
        Compress only manifests with at least this many references, as many virtual.
    max_training_samples
        At most this many locations train the dictionary.
    max_dict_size
        The dictionary's size in bytes.
    level
        The zstd level of each location frame.
    """

    min_num_chunks: int = 1000
    max_training_samples: int = 100
    max_dict_size: int = 2048
    level: int = 3

    @classmethod
    def from_config(cls, config: object | None) -> LocationCompression:
        """From a ``ManifestVirtualChunkLocationCompressionConfig`` (None fields: defaults)."""
        d = cls()
        if config is None:
            return d

        def value(name: str, default: int) -> int:
            v = getattr(config, name, None)
            return default if v is None else int(v)

        return cls(
            value("min_num_chunks", d.min_num_chunks),
            value("dictionary_max_training_samples", d.max_training_samples),
            value("dictionary_max_size_bytes", d.max_dict_size),
            value("compression_level", d.level),
        )


DEFAULT_LOCATION_COMPRESSION = LocationCompression()


def train_location_dictionary(
    num_refs: int, locations: Sequence[str], config: LocationCompression
) -> bytes | None:
    """A zstd dictionary for ``locations`` (the virtual refs of a manifest), or None.

    As the official writer: only when the manifest has at least ``min_num_chunks``
    refs and as many virtual ones; trained once on a uniform sample of at most
    ``max_training_samples`` locations; skipped when half the samples are shorter
    than 8 bytes. A failed training means "no compression", not a failed commit.
    """
    if num_refs < config.min_num_chunks or len(locations) < config.min_num_chunks:
        return None
    if not locations or config.max_training_samples <= 0 or config.max_dict_size <= 0:
        return None
    if len(locations) > config.max_training_samples:
        sample = random.sample(locations, config.max_training_samples)
    else:
        sample = list(locations)
    samples: list[bytes | bytearray | memoryview] = [loc.encode("utf-8") for loc in sample]
    if sum(1 for s in samples if len(s) < 8) >= len(samples) // 2:
        return None
    total = sum(map(len, samples))
    if 0 < total < config.max_dict_size:  # zstd wants at least a dictionary's worth
        samples = samples * (config.max_dict_size // total + 2)
    try:
        return zstandard.train_dictionary(config.max_dict_size, samples).as_bytes()
    except zstandard.ZstdError:
        return None


def encode_manifest(
    manifest_id: str,
    arrays: Iterable[tuple[str, Sequence[tuple[ChunkCoords, ChunkPayload]]]],
    *,
    compression_level: int = 3,
    location_compression: LocationCompression | None = DEFAULT_LOCATION_COMPRESSION,
) -> bytes:
    """Encode a manifest. ``arrays`` holds (node id, refs sorted by coords) pairs.

    Manifests with virtual references compress their locations with a trained zstd
    dictionary when ``location_compression`` allows it (None: never compress).
    """
    ordered = sorted(arrays, key=lambda a: a[0])
    locations = [p.location for _, refs in ordered for _, p in refs if type(p) is VirtualChunk]
    if not locations:
        payload = encode_manifest_payload(manifest_id, ordered)
        return encode_file(FileType.MANIFEST, payload, level=compression_level)
    num_refs = sum(len(refs) for _, refs in ordered)
    dictionary, compress = _location_dictionary(num_refs, locations, location_compression)
    if all(_one_kind(refs) for _, refs in ordered):
        payload = encode_manifest_payload(
            manifest_id, ordered, dictionary=dictionary, compress=compress
        )
        return encode_file(FileType.MANIFEST, payload, level=compression_level)
    b = fb.new_builder(1 << 16)
    array_offs = []
    for node_id, refs in ordered:
        ref_offs = [_encode_ref(b, coords, payload, compress) for coords, payload in refs]
        refs_vec = fb.offset_vector(b, ref_offs)
        b.StartObject(3)
        fb.add_struct(b, 0, id8_to_bytes(node_id))
        b.PrependUOffsetTRelativeSlot(1, refs_vec, 0)
        array_offs.append(b.EndObject())
    arrays_vec = fb.offset_vector(b, array_offs)
    dict_vec = b.CreateByteVector(dictionary) if dictionary is not None else None
    b.StartObject(5)
    fb.add_struct(b, 0, id12_to_bytes(manifest_id))
    b.PrependUOffsetTRelativeSlot(1, arrays_vec, 0)
    if dict_vec is not None:
        # compression_algorithm = zstd dictionary (1) is the default: left absent
        b.PrependUOffsetTRelativeSlot(2, dict_vec, 0)
    else:
        b.PrependUint8(0)  # compression_algorithm = none, written explicitly (default is 1)
        b.Slot(3)
    root = b.EndObject()
    return encode_file(FileType.MANIFEST, fb.finish(b, root), level=compression_level)


def encode_manifest_columns(
    manifest_id: str,
    node_id: str,
    refs: RefColumns,
    *,
    compression_level: int = 3,
    location_compression: LocationCompression | None = DEFAULT_LOCATION_COMPRESSION,
) -> bytes:
    """A manifest of one array given as columns: all references virtual, or none virtual."""
    dictionary = compress = None
    if refs.payloads and type(refs.payloads[0]) is VirtualChunk:
        locations: list[str] = list(map(_location, refs.payloads))
        dictionary, compress = _location_dictionary(len(locations), locations, location_compression)
    payload = encode_manifest_payload(
        manifest_id, [(node_id, refs)], dictionary=dictionary, compress=compress
    )
    return encode_file(FileType.MANIFEST, payload, level=compression_level)


def _location_dictionary(
    num_refs: int, locations: Sequence[str], config: LocationCompression | None
) -> tuple[bytes | None, Callable[[bytes], bytes] | None]:
    """The trained dictionary for these locations and a compressor bound to it, if any."""
    if config is None:
        return None, None
    dictionary = train_location_dictionary(num_refs, locations, config)
    if dictionary is None:
        return None, None
    compressor = zstandard.ZstdCompressor(
        level=config.level, dict_data=zstandard.ZstdCompressionDict(dictionary)
    )
    return dictionary, compressor.compress


def _one_kind(refs: Sequence[tuple[ChunkCoords, ChunkPayload]]) -> bool:
    """All virtual or none virtual (what the columnar writer handles)."""
    virtual = [type(p) is VirtualChunk for _, p in refs]
    return all(virtual) or not any(virtual)


def _encode_ref(
    b: flatbuffers.Builder,
    coords: ChunkCoords,
    payload: ChunkPayload,
    compress: Callable[[bytes], bytes] | None = None,
) -> int:
    index = fb.scalar_vector(b, coords, "u32")
    if isinstance(payload, InlineChunk):
        data = b.CreateByteVector(payload.data)
        b.StartObject(10)
        b.PrependUOffsetTRelativeSlot(0, index, 0)
        b.PrependUOffsetTRelativeSlot(1, data, 0)
        return b.EndObject()
    if isinstance(payload, NativeChunk):
        b.StartObject(10)
        b.PrependUOffsetTRelativeSlot(0, index, 0)
        b.PrependUint64Slot(2, payload.offset, 0)
        b.PrependUint64Slot(3, payload.length, 0)
        fb.add_struct(b, 4, id12_to_bytes(payload.chunk_id))
        return b.EndObject()
    if compress is not None:
        location = b.CreateByteVector(compress(payload.location.encode("utf-8")))
        location_slot = 8
    else:
        location = b.CreateString(payload.location)
        location_slot = 5
    etag = b.CreateString(payload.etag) if payload.etag is not None else None
    b.StartObject(10)
    b.PrependUOffsetTRelativeSlot(0, index, 0)
    b.PrependUint64Slot(2, payload.offset, 0)
    b.PrependUint64Slot(3, payload.length, 0)
    b.PrependUOffsetTRelativeSlot(location_slot, location, 0)
    if etag is not None:
        b.PrependUOffsetTRelativeSlot(6, etag, 0)
    if payload.last_modified:
        b.PrependUint32Slot(7, payload.last_modified, 0)
    return b.EndObject()
