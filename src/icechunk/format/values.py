"""Encoding of user metadata values: FlexBuffers (spec 2) and MessagePack (spec 1 read)."""

from __future__ import annotations

import math
from typing import Any

import msgpack
from flatbuffers import flexbuffers

from icechunk.exceptions import CorruptObjectError, InvalidInputError

_MAX_U64 = 2**64 - 1
_MIN_I64 = -(2**63)


def _add(builder: flexbuffers.Builder, value: Any) -> None:
    """Append an already validated value."""
    if value is None:
        builder.Null()
    elif isinstance(value, bool):
        builder.Bool(value)
    elif isinstance(value, int):
        # serde writes non-negative integers as unsigned, like the official package.
        builder.UInt(value) if value >= 0 else builder.Int(value)
    elif isinstance(value, float):
        builder.Float(value)
    elif isinstance(value, str):
        builder.String(value)
    elif isinstance(value, dict):
        with builder.Map():
            for key in sorted(value):
                builder.Key(key)
                _add(builder, value[key])
    else:
        with builder.Vector():
            for item in value:
                _add(builder, item)


def _validate(value: Any, where: str) -> None:
    # Checked before building: an error inside the builder's Map/Vector context
    # managers would be masked by their own consistency errors.
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not _MIN_I64 <= value <= _MAX_U64:
            raise InvalidInputError(f"{where}: integer {value} does not fit in 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{where}: {value} is not valid JSON")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"{where}: dictionary keys must be str, got {key!r}")
            _validate(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _validate(item, f"{where}[{i}]")
    else:
        raise InvalidInputError(
            f"{where}: values must be JSON-like (None, bool, int, float, str, list, dict), "
            f"got {type(value).__name__}"
        )


def encode_flexbuffer(value: Any, where: str = "metadata") -> bytes:
    """One JSON-like value as FlexBuffers."""
    _validate(value, where)
    builder = flexbuffers.Builder()
    _add(builder, value)
    return bytes(builder.Finish())


def decode_flexbuffer(data: bytes) -> Any:
    """One FlexBuffers value as plain Python (dict, list, str, numbers, bool, None)."""
    try:
        return _plain(flexbuffers.Loads(data))
    except Exception as err:  # the flexbuffers reader raises bare exceptions on bad input
        raise CorruptObjectError(f"invalid FlexBuffers metadata value: {err}") from None


def decode_msgpack(data: bytes) -> Any:
    """One MessagePack value (spec 1 metadata) as plain Python."""
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
