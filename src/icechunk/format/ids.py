"""Object ids: random 12-byte ids (snapshots, manifests, chunks) and 8-byte node ids.

Ids travel through the engine as their canonical Crockford base32 text. The
alphabet is in ascending ASCII order and the encoding is big-endian, so sorting
the text sorts the raw bytes too — which is the order the format requires.
"""

from __future__ import annotations

import os

from icechunk.exceptions import InvalidInputError

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {ch: i for i, ch in enumerate(ALPHABET)}
_DECODE.update({ch.lower(): i for ch, i in list(_DECODE.items())})
_DECODE.update({"O": 0, "o": 0, "I": 1, "i": 1, "L": 1, "l": 1})

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
    value = 0
    try:
        for ch in text:
            value = (value << 5) | _DECODE[ch]
    except KeyError:
        raise InvalidInputError(f"invalid id {text!r}: not Crockford base32") from None
    if value & ((1 << pad) - 1):
        raise InvalidInputError(f"invalid id {text!r}: non-zero padding bits")
    return (value >> pad).to_bytes(size, "big")


def id12_to_bytes(text: str) -> bytes:
    return decode_base32(text, ID12_LEN)


def id8_to_bytes(text: str) -> bytes:
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
