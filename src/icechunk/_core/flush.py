"""Flush: turn a session's change set into new manifests, a transaction log and a snapshot.

Only arrays whose chunks, grid or splitting changed get new manifests; with manifest
splitting, only the split cells a change touched are rewritten (the others keep their
manifest). Every new object gets a fresh random name, so they are written concurrently and
nothing refers to them until the commit swaps the repo info file.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from icechunk._core import keys
from icechunk._core.changeset import ChangeSet
from icechunk._core.manifest_plan import encode_group, group_refs
from icechunk._core.nodes import Node
from icechunk._core.zarr_meta import ArrayMeta, parse_array_meta
from icechunk._util.clock import now_us
from icechunk.format.ids import new_id12
from icechunk.format.manifest import ChunkCoords, ChunkPayload, Manifest, decode_manifest
from icechunk.format.snapshot import (
    ArrayData,
    ManifestFileInfo,
    ManifestRef,
    NodeSnapshot,
    Snapshot,
    encode_snapshot,
)
from icechunk.format.transaction_log import MoveOperation, TransactionLog, encode_transaction_log

if TYPE_CHECKING:
    from icechunk._core.state import RepoState

_MAX_CONCURRENT_WRITES = 32


async def write_snapshot(
    state: RepoState,
    base: Snapshot,
    changes: ChangeSet,
    view: list[Node],
    message: str,
    metadata: dict[str, Any],
    *,
    rewrite_manifests: bool = False,
) -> Snapshot:
    """Write manifests, transaction log and snapshot; return the new snapshot."""
    objects = state.objects
    storage = state.storage
    level = state.config.effective_compression_level
    snapshot_id = new_id12()
    known_files = {m.id: m for m in base.manifest_files}
    new_files: list[tuple[str, bytes, int]] = []  # id, data, num refs

    nodes: dict[str, NodeSnapshot] = {}
    for node in view:
        if not node.is_array:
            nodes[node.path] = NodeSnapshot(node.id, node.path, node.user_data, None)
            continue
        meta = node.meta
        manifests = await _array_manifests(
            state, changes, node, meta, new_files, level, rewrite_manifests
        )
        names = meta.dimension_names
        if names is not None and all(n is None for n in names):
            names = None
        nodes[node.path] = NodeSnapshot(
            node.id,
            node.path,
            node.user_data,
            ArrayData(
                tuple(zip(meta.shape, meta.grid, strict=True)),
                names,
                tuple(manifests),
            ),
        )

    for manifest_id, data, count in new_files:
        known_files[manifest_id] = ManifestFileInfo(manifest_id, len(data), count)
    used = {ref.manifest_id for n in nodes.values() if n.array for ref in n.array.manifests}
    snapshot = Snapshot(
        id=snapshot_id,
        nodes=nodes,
        flushed_at=now_us(),
        message=message,
        metadata=dict(metadata),
        manifest_files=[known_files[i] for i in sorted(used)],
    )
    log = transaction_log(snapshot_id, base, changes, {n.id for n in view})
    files = [(keys.manifest_key(i), data) for i, data, _ in new_files]
    files.append(
        (
            keys.transaction_key(snapshot_id),
            encode_transaction_log(log, compression_level=level),
        )
    )
    files.append(
        (keys.snapshot_key(snapshot_id), encode_snapshot(snapshot, compression_level=level))
    )
    # All at once: nothing refers to the new snapshot until the repo file is swapped.
    semaphore = asyncio.Semaphore(_MAX_CONCURRENT_WRITES)

    async def write(key: str, data: bytes) -> None:
        async with semaphore:
            await storage.put_fresh(key, data)  # fresh random names, unreferenced yet

    await asyncio.gather(*(write(key, data) for key, data in files))
    for manifest_id, data, _ in new_files:
        objects.remember_manifest(decode_manifest(data, manifest_id))
    return snapshot


async def _array_manifests(
    state: RepoState,
    changes_set: ChangeSet,
    node: Node,
    meta: ArrayMeta,
    new_files: list[tuple[str, bytes, int]],
    level: int,
    rewrite_manifests: bool,
) -> list[ManifestRef]:
    """The manifest refs of an array after this session's changes."""
    changes = changes_set.chunks.get(node.id, {})
    old_refs: tuple[ManifestRef, ...] = ()
    if node.base is not None and node.base.array is not None:
        old_refs = node.base.array.manifests
    resized = node.id in changes_set.min_grid and (
        node.base is None
        or changes_set.min_grid[node.id] != parse_array_meta(node.base.user_data).grid
    )
    grid_changed = node.base is not None and (
        parse_array_meta(node.base.user_data).grid != meta.grid
    )
    grid_changed = grid_changed or rewrite_manifests
    if not changes and not resized and not grid_changed:
        return list(old_refs)

    splitting = state.config.splitting
    sizes = None
    if splitting is not None:
        sizes = splitting.split_sizes_for(node.path, meta.ndim, meta.dimension_names)

    def cell_of(coords: ChunkCoords) -> tuple[int, ...]:
        return tuple(c // s for c, s in zip(coords, sizes)) if sizes else ()

    changed_cells = {cell_of(c) for c in changes} if sizes and old_refs else set()
    keep: list[ManifestRef] = []
    refs: dict[ChunkCoords, ChunkPayload] = {}
    for ref in old_refs:
        cells = _cells_of_extents(ref.extents, sizes)
        if (
            sizes
            and not resized
            and not grid_changed
            and cells is not None
            and cells not in changed_cells
        ):
            keep.append(ref)
            continue
        manifest: Manifest = await state.objects.manifest(ref.manifest_id)
        for coords, payload in manifest.iter_refs(node.id):
            # chunks cut off by a shrink earlier in this session stay gone
            if not changes_set.min_grid_excludes(node.id, coords):
                refs[coords] = payload
    if refs:
        refs.update(changes)  # deletions stay in as None; group_refs drops them
    else:
        refs = changes
    grid = meta.grid
    groups = group_refs(
        refs,
        meta.ndim,
        # only a resize can leave references outside the grid
        grid=grid if resized or grid_changed else None,
        split_sizes=sizes,
    )
    out = list(keep)
    for group in groups:
        manifest_id = new_id12()
        data = encode_group(manifest_id, node.id, group, level, state.location_compression())
        new_files.append((manifest_id, data, len(group)))
        extents = group.extents
        if sizes:
            extents = tuple(
                (k * s, min((k + 1) * s, g))
                for k, s, g in zip(group.cell, sizes, grid, strict=True)
            )
        out.append(ManifestRef(manifest_id, extents))
    return out


def transaction_log(
    snapshot_id: str, base_snapshot: Snapshot, changes: ChangeSet, live: set[str]
) -> TransactionLog:
    """The transaction log of ``changes`` on ``base_snapshot`` (``live``: ids still present)."""
    log = TransactionLog(snapshot_id)
    base = base_snapshot.nodes
    for change in changes.nodes.values():
        if change.is_new:
            (log.new_arrays if change.is_array else log.new_groups).add(change.id)
        else:
            (log.updated_arrays if change.is_array else log.updated_groups).add(change.id)
    for path, node_id in changes.deleted.items():
        old = base[path]
        (log.deleted_arrays if old.is_array else log.deleted_groups).add(node_id)
    log.moved_nodes = _collapse_moves(changes.moves)
    for node_id, chunks in changes.chunks.items():
        if chunks and node_id in live:
            log.updated_chunks[node_id] = chunks.keys()
    return log


def _cells_of_extents(
    extents: tuple[tuple[int, int], ...], sizes: tuple[int, ...] | None
) -> tuple[int, ...] | None:
    """The single split cell a manifest's extents lie in, or None if they span several."""
    if not sizes:
        return None
    cell = []
    for (lo, hi), s in zip(extents, sizes, strict=False):
        if hi <= lo or lo // s != (hi - 1) // s:
            return None
        cell.append(lo // s)
    return tuple(cell)


def _collapse_moves(moves: list[MoveOperation]) -> list[MoveOperation]:
    """One move per node (first source, last destination), identity moves dropped."""
    first: dict[str, MoveOperation] = {}
    last: dict[str, str] = {}
    for move in moves:
        first.setdefault(move.node_id, move)
        last[move.node_id] = move.to_path
    return [
        MoveOperation(m.from_path, last[node_id], node_id, m.node_type)
        for node_id, m in first.items()
        if m.from_path != last[node_id]
    ]
