"""The 39-byte header and zstd payload shared by every metadata file.

Layout (the Icechunk spec, version 2, "Binary File Format"): 12 bytes of magic
(``ICE🧊CHUNK`` in UTF-8), 24 bytes naming the writer (space padded), then one byte
each for the spec version, the file type and the compression (1 = zstd).
"""

from __future__ import annotations

import enum

import zstandard

from icechunk.exceptions import CorruptObjectError, UnsupportedSpecVersionError

MAGIC = "ICE\N{ICE CUBE}CHUNK".encode()
HEADER_LEN = 39
WRITER_NAME = "icechunk-py-0.1.0"
LATEST_SPEC_VERSION = 2
COMPRESSION_ZSTD = 1
DEFAULT_COMPRESSION_LEVEL = 3


class FileType(enum.IntEnum):
    """The file type byte of the header."""

    SNAPSHOT = 1
    MANIFEST = 2
    ATTRIBUTES = 3
    TRANSACTION_LOG = 4
    CHUNK = 5
    REPO_INFO = 6


_compressors: dict[int, zstandard.ZstdCompressor] = {}


def encode_file(
    file_type: FileType,
    payload: bytes,
    *,
    spec_version: int = LATEST_SPEC_VERSION,
    level: int = DEFAULT_COMPRESSION_LEVEL,
) -> bytes:
    """Header + zstd-compressed flatbuffer."""
    compressor = _compressors.get(level)
    if compressor is None:
        compressor = _compressors[level] = zstandard.ZstdCompressor(level=level)
    header = (
        MAGIC
        + WRITER_NAME.encode("ascii").ljust(24, b" ")
        + bytes([spec_version, int(file_type), COMPRESSION_ZSTD])
    )
    return header + compressor.compress(payload)


def decode_file(data: bytes, expected: FileType, what: str) -> tuple[int, bytes]:
    """Check the header and decompress. Returns ``(spec_version, flatbuffer bytes)``.

    ``what`` names the object in error messages (e.g. ``snapshot ABC...``).
    """
    if len(data) < HEADER_LEN:
        raise CorruptObjectError(
            f"{what} is corrupt: {len(data)} bytes is shorter than the {HEADER_LEN}-byte header"
        )
    if data[:12] != MAGIC:
        raise CorruptObjectError(f"{what} is corrupt: it does not start with the icechunk magic")
    spec_version, file_type, compression = data[36], data[37], data[38]
    if spec_version not in (1, 2):
        raise UnsupportedSpecVersionError(
            f"{what} was written with icechunk spec version {spec_version}; this library "
            f"reads versions 1 and 2. Upgrade the icechunk package."
        )
    if file_type != expected:
        raise CorruptObjectError(
            f"{what} is corrupt: file type {file_type}, expected {int(expected)} ({expected.name})"
        )
    if compression != COMPRESSION_ZSTD:
        raise CorruptObjectError(f"{what} is corrupt: unknown compression code {compression}")
    try:
        # A streaming decompressor also handles frames that do not record their size.
        decompressor = zstandard.ZstdDecompressor().decompressobj()
        payload = decompressor.decompress(data[HEADER_LEN:])
        if not decompressor.eof:
            raise zstandard.ZstdError("truncated zstd frame")
    except zstandard.ZstdError as err:
        raise CorruptObjectError(f"{what} is corrupt: {err}") from None
    return spec_version, payload
