"""What the engine needs to know from a node's ``zarr.json`` document."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

from icechunk.exceptions import InvalidInputError


@dataclass(frozen=True, slots=True)
class ArrayMeta:
    shape: tuple[int, ...]
    chunk_shape: tuple[int, ...]
    dimension_names: tuple[str | None, ...] | None
    key_encoding: str  # "default" or "v2"
    separator: str
    #: number of chunks along each dimension
    grid: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        grid = tuple(
            -(-s // c) if c else 0 for s, c in zip(self.shape, self.chunk_shape, strict=True)
        )
        object.__setattr__(self, "grid", grid)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def in_bounds(self, coords: tuple[int, ...]) -> bool:
        grid = self.grid
        return len(coords) == len(grid) and all(0 <= c < g for c, g in zip(coords, grid))

    def parse_chunk_key(self, rest: str) -> tuple[int, ...] | None:
        """Chunk coordinates from the part of a key after ``<array path>/``."""
        try:
            if self.key_encoding == "default":
                if rest == "c":
                    return () if self.ndim == 0 else None
                prefix = "c" + self.separator
                if not rest.startswith(prefix):
                    return None
                parts = rest[len(prefix) :].split(self.separator)
            else:
                parts = rest.split(self.separator)
                if self.ndim == 0:
                    return () if rest == "0" else None
            coords = tuple(int(p) for p in parts)
        except ValueError:
            return None
        if len(coords) != self.ndim or any(c < 0 for c in coords):
            return None
        if any(not p.isdigit() for p in parts):
            return None
        return coords

    def is_chunk_key_shaped(self, rest: str) -> bool:
        """Whether ``rest`` has the form of a chunk key, whatever its dimensionality."""
        if self.key_encoding == "default":
            if rest == "c":
                return True
            if not rest.startswith("c" + self.separator):
                return False
            rest = rest[2:]
        return all(p.isdigit() for p in rest.split(self.separator))

    def chunk_key(self, coords: tuple[int, ...]) -> str:
        if self.key_encoding == "default":
            return self.separator.join(["c", *map(str, coords)])
        return self.separator.join(map(str, coords)) if coords else "0"


def parse_node_type(user_data: bytes) -> str:
    """``"array"`` or ``"group"`` from a zarr.json document; InvalidInputError otherwise."""
    doc = _load(user_data)
    node_type = doc.get("node_type")
    if doc.get("zarr_format") != 3 or node_type not in ("array", "group"):
        raise InvalidInputError(
            "icechunk stores Zarr v3 metadata only: zarr.json must have zarr_format 3 and "
            "node_type 'array' or 'group'"
        )
    return node_type


@lru_cache(maxsize=4096)
def parse_array_meta(user_data: bytes) -> ArrayMeta:
    doc = _load(user_data)
    try:
        shape = tuple(int(s) for s in doc["shape"])
        grid = doc["chunk_grid"]
        if grid.get("name") != "regular":
            raise InvalidInputError(f"unsupported chunk grid {grid.get('name')!r}")
        chunks = tuple(int(c) for c in grid["configuration"]["chunk_shape"])
        enc = doc.get("chunk_key_encoding") or {"name": "default"}
        name = enc.get("name", "default")
        conf = enc.get("configuration") or {}
        separator = conf.get("separator", "/" if name == "default" else ".")
        names = doc.get("dimension_names")
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise InvalidInputError(f"invalid array metadata in zarr.json: {err}") from None
    if len(chunks) != len(shape):
        raise InvalidInputError("chunk shape and array shape have different lengths")
    if name not in ("default", "v2"):
        raise InvalidInputError(f"unsupported chunk key encoding {name!r}")
    return ArrayMeta(
        shape,
        chunks,
        tuple(names) if names is not None else None,
        name,
        separator,
    )


def _load(user_data: bytes) -> dict:
    try:
        doc = json.loads(user_data)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"zarr.json is not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise InvalidInputError("zarr.json must hold a JSON object")
    return doc
