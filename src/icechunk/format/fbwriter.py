"""A front-to-back flatbuffer writer for files whose size grows with history.

The ``flatbuffers`` package's ``Builder`` costs several Python calls per scalar; for a repo
info file that lists every snapshot it dominates each commit. This writer lays a parent out
before its children: a table is one ``struct.pack`` with placeholder offsets, and each child
written afterwards fills in the offset that points at it (``at=``). Every uoffset therefore
points forward, scalars are naturally aligned and identical vtables are shared, which is
what the flatbuffers verifier requires.

Table layouts are described by a spec, a tuple of ``(slot, kind)`` with kind a struct code
(``"B"``, ``"H"``, ``"I"``, ``"i"``, ``"Q"``), ``"12s"`` for a 12-byte id struct, or
``"off"`` for a reference to a child (string, vector or table) written later.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from icechunk.format.flatbuf import FILE_IDENTIFIER

Spec = tuple[tuple[int, str], ...]

_SIZES = {"B": 1, "H": 2, "I": 4, "i": 4, "Q": 8, "12s": 12, "off": 4}
_ALIGNS = {"B": 1, "H": 2, "I": 4, "i": 4, "Q": 8, "12s": 1, "off": 4}
_u32_into = struct.Struct("<I").pack_into


@dataclass(frozen=True, slots=True)
class _Layout:
    vtable: bytes
    body: struct.Struct  # soffset, then the fields in storage order
    order: tuple[int, ...]  # for each stored field, its index in the spec
    links: tuple[int, ...]  # byte offsets (from the table start) of the "off" fields, spec order
    wide: bool  # holds an 8-byte field: the table starts at 4 mod 8


@functools.cache
def _layout(spec: Spec) -> _Layout:
    # widest alignment first so that no padding is needed between fields
    order = sorted(range(len(spec)), key=lambda i: -_ALIGNS[spec[i][1]])
    fmt = "<i"
    at = 4
    where: dict[int, int] = {}
    for i in order:
        kind = spec[i][1]
        where[i] = at
        fmt += "I" if kind == "off" else kind
        at += _SIZES[kind]
    slots = max((slot for slot, _ in spec), default=-1) + 1
    field_at = [0] * slots
    for i, (slot, _) in enumerate(spec):
        field_at[slot] = where[i]
    vtable = struct.pack(f"<{2 + slots}H", 4 + 2 * slots, at, *field_at)
    links = tuple(where[i] for i, (_, kind) in enumerate(spec) if kind == "off")
    wide = any(kind == "Q" for _, kind in spec)
    return _Layout(vtable, struct.Struct(fmt), tuple(order), links, wide)


def field_offset(spec: Spec, slot: int) -> int:
    """Where a table of this spec stores ``slot``, in bytes from the table start."""
    offset: int = struct.unpack_from("<H", _layout(spec).vtable, 4 + 2 * slot)[0]
    return offset


class FlatWriter:
    """Accumulates one flatbuffer; the first table written is the root.

    With ``root=False`` it writes a detached block instead (no file header, no root): a
    table and its children that :meth:`embed` copies into another writer. Offsets are
    relative, so such a block stays valid wherever it lands on an 8-byte boundary.
    """

    def __init__(self, root: bool = True) -> None:
        self.buf = bytearray(8 if root else 0)
        if root:
            self.buf[4:8] = FILE_IDENTIFIER
        self._root = root
        self._vtables: dict[bytes, int] = {}
        self.first_table: int | None = None  # position of the first table (the root)

    def _pad(self, align: int, extra: int = 0) -> None:
        gap = (-(len(self.buf) + extra)) % align
        if gap:
            self.buf += bytes(gap)

    def _link(self, at: int | None) -> None:
        """Point the offset field at ``at`` (None: the root offset) to the current end."""
        if at is not None:
            _u32_into(self.buf, at, len(self.buf) - at)
        elif self._root:
            _u32_into(self.buf, 0, len(self.buf))

    def table(self, spec: Spec, values: Sequence[Any], at: int | None = None) -> tuple[int, ...]:
        """Write a table; return the positions of its ``"off"`` fields (spec order).

        ``values`` follows the spec; the values of ``"off"`` fields are ignored (use 0).
        """
        layout = _layout(spec)
        vtable = self._vtables.get(layout.vtable)
        if vtable is None:
            self._pad(2)
            vtable = self._vtables[layout.vtable] = len(self.buf)
            self.buf += layout.vtable
        if layout.wide:
            self._pad(8, 4)
        else:
            self._pad(4)
        self._link(at)
        pos = len(self.buf)
        if self.first_table is None:
            self.first_table = pos
        self.buf += layout.body.pack(pos - vtable, *[values[i] or 0 for i in layout.order])
        return tuple(pos + link for link in layout.links)

    def string(self, text: str, at: int) -> None:
        """A string (UTF-8, NUL-terminated) that the offset field at ``at`` points to."""
        raw = text.encode("utf-8")
        self._pad(4)
        self._link(at)
        self.buf += struct.pack("<I", len(raw))
        self.buf += raw
        self.buf += b"\0"

    def bytes_vector(self, raw: bytes, at: int) -> None:
        """A ``[uint8]`` vector that the offset field at ``at`` points to."""
        self._pad(4)
        self._link(at)
        self.buf += struct.pack("<I", len(raw))
        self.buf += raw

    def scalar_vector(self, kind: str, values: Sequence[int], at: int) -> None:
        """A vector of scalars of struct code ``kind`` that the field at ``at`` points to."""
        self._pad(max(4, _SIZES[kind]), 4)
        self._link(at)
        self.buf += struct.pack(f"<I{len(values)}{kind}", len(values), *values)

    def struct_vector(self, items: Sequence[bytes], at: int) -> None:
        """A vector of byte-aligned structs given as raw bytes (ids)."""
        self._pad(4)
        self._link(at)
        self.buf += struct.pack("<I", len(items))
        self.buf += b"".join(items)

    def offset_vector(self, count: int, at: int) -> range:
        """A vector of ``count`` references; returns the position of each element."""
        self._pad(4)
        self._link(at)
        self.buf += struct.pack("<I", count)
        start = len(self.buf)
        self.buf += bytes(4 * count)
        return range(start, start + 4 * count, 4)

    def strings(self, texts: Iterable[str], at: int) -> None:
        """A vector of strings."""
        texts = list(texts)
        for text, slot in zip(texts, self.offset_vector(len(texts), at), strict=True):
            self.string(text, slot)

    def detached(self) -> tuple[bytes, int]:
        """A ``root=False`` writer's block and the position of its (first) table in it."""
        if self._root or self.first_table is None:
            raise ValueError("not a detached block with a table")
        return bytes(self.buf), self.first_table

    def embed(self, block: bytes, table_at: int, at: int) -> int:
        """Copy a detached block (see ``root=False``); point ``at`` to its table.

        Returns the block's position.
        """
        self._pad(8)
        start = len(self.buf)
        _u32_into(self.buf, at, start + table_at - at)
        self.buf += block
        return start

    def finish(self) -> bytes:
        """The finished flatbuffer."""
        return bytes(self.buf)
