"""Encoding of user metadata values: FlexBuffers (spec 2) and MessagePack (spec 1 read)."""

from __future__ import annotations

import math
from typing import Any

import msgpack
from flatbuffers import flexbuffers

from icechunk.exceptions import CorruptObjectError, InvalidInputError

_MAX_U64 = 2**64 - 1
_MIN_I64 = -(2**63)


def _add(builder: flexbuffers.Builder, value: Any, where: str) -> None:
    if value is None:
        builder.Null()
    elif isinstance(value, bool):
        builder.Bool(value)
    elif isinstance(value, int):
        # serde writes non-negative integers as unsigned, like the official package.
        if 0 <= value <= _MAX_U64:
            builder.UInt(value)
        elif _MIN_I64 <= value < 0:
            builder.Int(value)
        else:
            raise InvalidInputError(f"{where}: integer {value} does not fit in 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{where}: {value} is not valid JSON")
        builder.Float(value)
    elif isinstance(value, str):
        builder.String(value)
    elif isinstance(value, dict):
        with builder.Map():
            for key in sorted(value):
                if not isinstance(key, str):
                    raise InvalidInputError(f"{where}: dictionary keys must be str, got {key!r}")
                builder.Key(key)
                _add(builder, value[key], f"{where}.{key}")
    elif isinstance(value, list | tuple):
        with builder.Vector():
            for i, item in enumerate(value):
                _add(builder, item, f"{where}[{i}]")
    else:
        raise InvalidInputError(
            f"{where}: values must be JSON-like (None, bool, int, float, str, list, dict), "
            f"got {type(value).__name__}"
        )


def encode_flexbuffer(value: Any, where: str = "metadata") -> bytes:
    """One JSON-like value as FlexBuffers."""
    builder = flexbuffers.Builder()
    _add(builder, value, where)
    return bytes(builder.Finish())


def decode_flexbuffer(data: bytes) -> Any:
    try:
        return _plain(flexbuffers.Loads(data))
    except Exception as err:  # the flexbuffers reader raises bare exceptions on bad input
        raise CorruptObjectError(f"invalid FlexBuffers metadata value: {err}") from None


def decode_msgpack(data: bytes) -> Any:
    try:
        return _plain(msgpack.unpackb(data, raw=False, strict_map_key=False))
    except Exception as err:
        raise CorruptObjectError(f"invalid MessagePack metadata value: {err}") from None


def _plain(value: Any) -> Any:
    """Normalise decoded containers to dict/list/scalars."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return value


def encode_metadata_items(metadata: dict[str, Any]) -> list[tuple[str, bytes]]:
    """A metadata dict as sorted (name, flexbuffer) pairs."""
    if not isinstance(metadata, dict):
        raise InvalidInputError(f"metadata must be a dict, got {type(metadata).__name__}")
    items = []
    for name in sorted(metadata):
        if not isinstance(name, str):
            raise InvalidInputError(f"metadata keys must be str, got {name!r}")
        items.append((name, encode_flexbuffer(metadata[name], f"metadata[{name!r}]")))
    return items
