"""Object ids: random 12-byte ids (snapshots, manifests, chunks) and 8-byte node ids.

Ids travel through the engine as their canonical Crockford base32 text. The
alphabet is in ascending ASCII order and the encoding is big-endian, so sorting
the text sorts the raw bytes too — which is the order the format requires.
"""

from __future__ import annotations

import os

import numpy as np

from icechunk.exceptions import InvalidInputError

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {ch: i for i, ch in enumerate(ALPHABET)}
_DECODE.update({ch.lower(): i for ch, i in list(_DECODE.items())})
_DECODE.update({"O": 0, "o": 0, "I": 1, "i": 1, "L": 1, "l": 1})
_INT_DIGITS = "0123456789abcdefghijklmnopqrstuv"
_TO_INT_DIGITS = {
    code: _INT_DIGITS[_DECODE[chr(code)]] if chr(code) in _DECODE else "!" for code in range(128)
}

ID12_LEN = 12
ID8_LEN = 8
ID12_TEXT_LEN = 20
ID8_TEXT_LEN = 13

#: The id of the first snapshot of every repository.
INITIAL_SNAPSHOT_ID = "1CECHNKREP0F1RSTCMT0"


_PAIRS = [ALPHABET[i >> 5] + ALPHABET[i & 31] for i in range(1024)]


def encode_base32(raw: bytes) -> str:
    """Crockford base32 of ``raw`` (upper case, no padding, zero bits appended)."""
    bits = len(raw) * 8
    pad = (-bits) % 5
    value = int.from_bytes(raw, "big") << pad
    count = (bits + pad) // 5
    # two characters (10 bits) per step: ids are encoded on every metadata read
    head = ALPHABET[value >> (5 * (count - 1))] if count % 2 else ""
    pairs = count // 2
    return head + "".join(_PAIRS[(value >> (10 * (pairs - 1 - i))) & 1023] for i in range(pairs))


def decode_base32(text: str, size: int) -> bytes:
    """Inverse of :func:`encode_base32` for an id of ``size`` bytes."""
    bits = size * 8
    pad = (-bits) % 5
    if not isinstance(text, str) or len(text) != (bits + pad) // 5:
        raise InvalidInputError(
            f"invalid id {text!r}: expected {(bits + pad) // 5} Crockford base32 characters"
        )
    # Crockford digits -> Python's base-32 digits; anything else -> "!" so the check fails
    digits = text.translate(_TO_INT_DIGITS)
    if not (digits.isascii() and digits.isalnum()):
        raise InvalidInputError(f"invalid id {text!r}: not Crockford base32")
    value = int(digits, 32)
    if value & ((1 << pad) - 1):
        raise InvalidInputError(f"invalid id {text!r}: non-zero padding bits")
    return (value >> pad).to_bytes(size, "big")


_DECODE_TABLE = np.full(256, 255, dtype=np.uint8)
for _ch, _value in _DECODE.items():
    _DECODE_TABLE[ord(_ch)] = _value
_GROUP_SHIFTS = np.array([20, 15, 10, 5, 0], dtype=np.uint64)


def decode_ids12(texts: list[str]) -> np.ndarray:
    """Many 12-byte ids at once: an ``(n, 12)`` uint8 array (the vectorised decode_base32)."""
    n = len(texts)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    if (lengths != ID12_TEXT_LEN).any():
        decode_base32(texts[int(np.argmax(lengths != ID12_TEXT_LEN))], ID12_LEN)  # raises
    raw = np.frombuffer("".join(texts).encode("ascii", errors="replace"), dtype=np.uint8)
    values = _DECODE_TABLE[raw].reshape(n, ID12_TEXT_LEN)
    invalid = (values == 255).any(axis=1)
    if invalid.any():
        decode_base32(texts[int(np.argmax(invalid))], ID12_LEN)
    # four groups of 5 characters (25 bits each), then 100 bits -> 96 bits + 4 padding
    groups = (values.reshape(n, 4, 5).astype(np.uint64) << _GROUP_SHIFTS).sum(axis=2)
    high = (groups[:, 0] << np.uint64(25)) | groups[:, 1]  # first 50 bits
    low = (groups[:, 2] << np.uint64(25)) | groups[:, 3]  # last 50 bits
    padded = (low & np.uint64(15)) != 0
    if padded.any():
        decode_base32(texts[int(np.argmax(padded))], ID12_LEN)
    upper = high >> np.uint64(2)  # bits 0..47
    lower = ((high & np.uint64(3)) << np.uint64(46)) | (low >> np.uint64(4))  # bits 48..95
    out = np.empty((n, 12), dtype=np.uint8)
    out[:, :6] = (upper << np.uint64(16)).astype(">u8").view(np.uint8).reshape(n, 8)[:, :6]
    out[:, 6:] = (lower << np.uint64(16)).astype(">u8").view(np.uint8).reshape(n, 8)[:, :6]
    return out


def id12_to_bytes(text: str) -> bytes:
    """The 12 raw bytes of a snapshot, manifest or chunk id given as text."""
    return decode_base32(text, ID12_LEN)


def id8_to_bytes(text: str) -> bytes:
    """The 8 raw bytes of a node id given as text."""
    return decode_base32(text, ID8_LEN)


def normalize_id12(text: str) -> str:
    """Validate a user-given 12-byte id and return its canonical text."""
    if not isinstance(text, str):
        raise InvalidInputError(f"snapshot id must be a str, got {type(text).__name__}")
    return encode_base32(decode_base32(text, ID12_LEN))


def new_id12() -> str:
    """A fresh random snapshot/manifest/chunk id."""
    return encode_base32(os.urandom(ID12_LEN))


def new_id8() -> str:
    """A fresh random node id."""
    return encode_base32(os.urandom(ID8_LEN))
