"""Minimal flatbuffers access: a bounds-checked table reader and builder helpers.

The per-file modules address fields by their ids in the tables of the Icechunk
spec, version 2; ``schema/*.fbs`` writes those tables down (the tests compile it
with flatc as an oracle), but no generated code runs here. Reading is done lazily
from the buffer, so large manifests can be searched without decoding every chunk
reference.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

import flatbuffers

FILE_IDENTIFIER = b"Ichk"

_u8 = struct.Struct("<B").unpack_from
_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from
_i32 = struct.Struct("<i").unpack_from
_u64 = struct.Struct("<Q").unpack_from
_SCALARS: dict[str, Callable[[bytes, int], tuple[int, ...]]] = {
    "u8": _u8,
    "u16": _u16,
    "u32": _u32,
    "i32": _i32,
    "u64": _u64,
}


class FlatbufferError(ValueError):
    """The buffer is not a valid flatbuffer for the expected schema."""


class Table:
    """A view of one flatbuffers table inside ``buf`` at ``pos``.

    Fields are addressed by their id (their position in the schema's table). Absent
    optional fields read as None (or the given default); the ``required_*`` accessors
    raise :class:`FlatbufferError` instead.

    Parameters
    ----------
    buf
        The whole flatbuffer.
    pos
        The table's position in ``buf``.
    """

    __slots__ = ("buf", "pos", "_vt", "_vtlen")

    def __init__(self, buf: bytes, pos: int) -> None:
        if pos < 0 or pos + 4 > len(buf):
            raise FlatbufferError(f"table offset {pos} out of bounds")
        self.buf = buf
        self.pos = pos
        vt = pos - _i32(buf, pos)[0]
        if vt < 0 or vt + 4 > len(buf):
            raise FlatbufferError(f"vtable offset {vt} out of bounds")
        self._vt = vt
        self._vtlen = _u16(buf, vt)[0]

    @classmethod
    def root(cls, buf: bytes) -> Table:
        """The root table of the flatbuffer ``buf``."""
        if len(buf) < 8:
            raise FlatbufferError("buffer too short")
        return cls(buf, _u32(buf, 0)[0])

    def _field(self, field_id: int) -> int:
        """Absolute position of a field's data, or 0 if absent."""
        o = 4 + 2 * field_id
        if o >= self._vtlen:
            return 0
        rel = _u16(self.buf, self._vt + o)[0]
        return self.pos + rel if rel else 0

    def has(self, field_id: int) -> bool:
        """Whether the field is present."""
        return self._field(field_id) != 0

    def scalar(self, field_id: int, kind: str, default: int = 0) -> int:
        """A scalar field; ``kind`` is ``"u8"``, ``"u16"``, ``"u32"``, ``"i32"`` or ``"u64"``."""
        p = self._field(field_id)
        return _SCALARS[kind](self.buf, p)[0] if p else default

    def _indirect(self, field_id: int) -> int:
        p = self._field(field_id)
        return p + _u32(self.buf, p)[0] if p else 0

    def table(self, field_id: int) -> Table | None:
        """A sub-table field (or a union's table), None if absent."""
        p = self._indirect(field_id)
        return Table(self.buf, p) if p else None

    def required_table(self, field_id: int, name: str) -> Table:
        """A sub-table field that must be present (``name`` is for the error)."""
        t = self.table(field_id)
        if t is None:
            raise FlatbufferError(f"required field {name!r} is missing")
        return t

    def _vector(self, field_id: int) -> tuple[int, int] | None:
        p = self._indirect(field_id)
        if not p:
            return None
        n = _u32(self.buf, p)[0]
        return p + 4, n

    def string(self, field_id: int) -> str | None:
        """A string field, decoded from UTF-8; None if absent."""
        v = self._vector(field_id)
        if v is None:
            return None
        start, n = v
        if start + n > len(self.buf):
            raise FlatbufferError("string out of bounds")
        return bytes(self.buf[start : start + n]).decode("utf-8")

    def required_string(self, field_id: int, name: str) -> str:
        """A string field that must be present (``name`` is for the error)."""
        s = self.string(field_id)
        if s is None:
            raise FlatbufferError(f"required field {name!r} is missing")
        return s

    def byte_vector(self, field_id: int) -> bytes | None:
        """A ``[uint8]`` field as bytes; None if absent."""
        v = self._vector(field_id)
        if v is None:
            return None
        start, n = v
        if start + n > len(self.buf):
            raise FlatbufferError("vector out of bounds")
        return bytes(self.buf[start : start + n])

    def struct(self, field_id: int, size: int) -> bytes | None:
        """Raw bytes of an inline struct field."""
        p = self._field(field_id)
        if not p:
            return None
        if p + size > len(self.buf):
            raise FlatbufferError("struct out of bounds")
        return bytes(self.buf[p : p + size])

    def struct_vector(self, field_id: int, size: int) -> list[bytes] | None:
        """Raw bytes of each struct in a vector of structs."""
        v = self._vector(field_id)
        if v is None:
            return None
        start, n = v
        if start + n * size > len(self.buf):
            raise FlatbufferError("vector out of bounds")
        buf = self.buf
        return [bytes(buf[start + i * size : start + (i + 1) * size]) for i in range(n)]

    def scalar_vector(self, field_id: int, kind: str) -> list[int] | None:
        """A vector of unsigned integers (``"u8"`` ... ``"u64"``); None if absent."""
        v = self._vector(field_id)
        if v is None:
            return None
        start, n = v
        fmt = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q"}[kind]
        size = struct.calcsize(fmt)
        if start + n * size > len(self.buf):
            raise FlatbufferError("vector out of bounds")
        return list(struct.unpack_from(f"<{n}{fmt}", self.buf, start))

    def vector_len(self, field_id: int) -> int:
        """The length of a vector field (0 if absent)."""
        v = self._vector(field_id)
        return v[1] if v else 0

    def table_at(self, field_id: int, index: int) -> Table:
        """Element ``index`` of a vector of tables (no bounds check on index)."""
        v = self._vector(field_id)
        assert v is not None
        p = v[0] + 4 * index
        return Table(self.buf, p + _u32(self.buf, p)[0])

    def tables(self, field_id: int) -> list[Table] | None:
        """Every table of a vector of tables; None if absent."""
        v = self._vector(field_id)
        if v is None:
            return None
        start, n = v
        if start + 4 * n > len(self.buf):
            raise FlatbufferError("vector out of bounds")
        buf = self.buf
        out = []
        for i in range(n):
            p = start + 4 * i
            out.append(Table(buf, p + _u32(buf, p)[0]))
        return out

    def required_tables(self, field_id: int, name: str) -> list[Table]:
        """A vector of tables that must be present (``name`` is for the error)."""
        t = self.tables(field_id)
        if t is None:
            raise FlatbufferError(f"required field {name!r} is missing")
        return t


# ---------------------------------------------------------------------------
# Writing


def new_builder(size: int = 1024) -> flatbuffers.Builder:
    """A back-to-front flatbuffers builder with an initial buffer of ``size`` bytes."""
    return flatbuffers.Builder(size)


def finish(builder: flatbuffers.Builder, root: int) -> bytes:
    """Finish the buffer on table ``root`` with the ``Ichk`` identifier; return its bytes."""
    builder.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def struct_vector(
    builder: flatbuffers.Builder, items: Sequence[bytes], size: int, align: int
) -> int:
    """A vector of fixed-size structs given as raw (already padded) bytes."""
    builder.StartVector(size, len(items), align)
    for item in reversed(items):
        builder.Prep(align, size)
        builder.head = builder.head - size
        builder.Bytes[builder.head : builder.head + size] = item
    return builder.EndVector()


def offset_vector(builder: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    """A vector of references to already written tables or strings."""
    builder.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        builder.PrependUOffsetTRelative(off)
    return builder.EndVector()


def scalar_vector(builder: flatbuffers.Builder, values: Sequence[int], kind: str) -> int:
    """A vector of unsigned integers of ``kind`` (``"u8"`` ... ``"u64"``)."""
    fmt = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q"}[kind]
    size = struct.calcsize(fmt)
    builder.StartVector(size, len(values), size)
    raw = struct.pack(f"<{len(values)}{fmt}", *values)
    builder.head = builder.head - len(raw)
    builder.Bytes[builder.head : builder.head + len(raw)] = raw
    return builder.EndVector()


def add_struct(builder: flatbuffers.Builder, slot: int, data: bytes, align: int = 1) -> None:
    """Store an inline struct (raw bytes) in table slot ``slot``."""
    builder.Prep(align, len(data))
    builder.head = builder.head - len(data)
    builder.Bytes[builder.head : builder.head + len(data)] = data
    builder.Slot(slot)
