"""How an array's chunk references are cut into manifests at commit time.

The references are sorted and grouped with numpy (one ``lexsort`` over all of
them) and handed to the manifest writer as columns, never as one Python tuple
per reference: a commit may carry millions of references.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from icechunk.format.coords import coords_array, lex_order
from icechunk.format.manifest import (
    DEFAULT_LOCATION_COMPRESSION,
    ChunkCoords,
    ChunkPayload,
    LocationCompression,
    VirtualChunk,
    encode_manifest,
    encode_manifest_columns,
)
from icechunk.format.manifest_writer import RefColumns

Extents = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class ManifestGroup:
    """The references of one future manifest, sorted by coordinates."""

    cell: tuple[int, ...]  # the split cell (empty without splitting)
    coords: np.ndarray  # (n, ndim) int64
    payloads: list[ChunkPayload]
    extents: Extents  # the bounding box [from, to) of the coordinates

    def __len__(self) -> int:
        return len(self.payloads)

    @property
    def refs(self) -> list[tuple[ChunkCoords, ChunkPayload]]:
        """The references as (coords, payload) pairs."""
        return list(zip(map(tuple, self.coords.tolist()), self.payloads, strict=True))


def group_refs(
    refs: Mapping[ChunkCoords, ChunkPayload | None],
    ndim: int,
    *,
    grid: tuple[int, ...] | None = None,
    split_sizes: tuple[int, ...] | None = None,
) -> list[ManifestGroup]:
    """Sort ``refs`` and cut them into split cells (one group without splitting).

    ``None`` values (deleted chunks) are dropped, and so, with ``grid``, are
    references outside the chunk grid (cut off by a shrink).
    Groups come in cell order.
    """
    n = len(refs)
    if n == 0:
        return []
    payloads = np.fromiter(refs.values(), dtype=object, count=n)
    coords = coords_array(refs, n, ndim)
    if ndim == 0:  # a single chunk
        return [] if payloads[0] is None else [ManifestGroup((), coords, payloads.tolist(), ())]

    cells = None
    if split_sizes:
        cells = coords // np.asarray(split_sizes, dtype=np.int64)
        # cells first, then coordinates; the last lexsort key is the primary one
        order = np.lexsort(list(coords.T[::-1]) + list(cells.T[::-1]))
    else:
        order = lex_order(coords)
    present = np.fromiter(map(operator.is_not, refs.values(), itertools.repeat(None)), bool, n)
    if not present.all():
        order = order[present[order]]
    if grid is not None:
        inside = (coords < np.asarray(grid, dtype=np.int64)).all(axis=1)
        order = order[inside[order]]
    if len(order) == 0:
        return []

    if cells is None:
        bounds = [0, len(order)]
    else:
        sorted_cells = cells[order]
        changes = np.nonzero((sorted_cells[1:] != sorted_cells[:-1]).any(axis=1))[0] + 1
        bounds = [0, *changes.tolist(), len(order)]
    groups = []
    for start, stop in itertools.pairwise(bounds):
        picked = order[start:stop]
        box = coords[picked]
        lo = box.min(axis=0).tolist()
        hi = (box.max(axis=0) + 1).tolist()
        cell = tuple(cells[picked[0]].tolist()) if cells is not None else ()
        extents = tuple(zip(lo, hi, strict=True))
        groups.append(ManifestGroup(cell, box, payloads[picked].tolist(), extents))
    return groups


def encode_group(
    manifest_id: str,
    node_id: str,
    group: ManifestGroup,
    level: int,
    location_compression: LocationCompression | None = DEFAULT_LOCATION_COMPRESSION,
) -> bytes:
    """The manifest file holding one group of one array."""
    kinds = set(map(type, group.payloads))
    if VirtualChunk in kinds and len(kinds) > 1:  # virtual mixed with other kinds: rare
        return encode_manifest(
            manifest_id,
            [(node_id, group.refs)],
            compression_level=level,
            location_compression=location_compression,
        )
    return encode_manifest_columns(
        manifest_id,
        node_id,
        RefColumns(group.coords, group.payloads),
        compression_level=level,
        location_compression=location_compression,
    )
