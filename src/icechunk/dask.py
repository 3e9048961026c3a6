"""Writing dask arrays into icechunk: every task writes through a fork, forks merge in a tree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from icechunk._core.fork import ForkSession
from icechunk.distributed import merge_sessions
from icechunk.exceptions import InvalidInputError

_UNSUPPORTED = ("compute", "return_stored", "load_stored", "lock")


def store_dask(
    *,
    sources: Sequence[Any],
    targets: Sequence[Any],
    regions: Sequence[tuple[slice, ...]] | None = None,
    split_every: int | None = None,
    **store_kwargs: Any,
) -> ForkSession:
    """Like ``dask.array.store``, for zarr arrays opened on a ForkSession's store.

    Runs the writes now (on whatever scheduler is active: threads, processes or a
    ``distributed`` cluster), merges the forks every task wrote through in a tree
    of at most ``split_every`` forks per merge, and returns the merged fork.
    Merge it into the session it came from (``session.merge(fork)``), then commit.
    """
    import dask
    import dask.array

    for name in _UNSUPPORTED:
        if name in store_kwargs:
            raise InvalidInputError(f"store_dask does not support the {name!r} argument")
    if split_every is not None and split_every < 2:
        raise InvalidInputError("split_every must be at least 2")
    for target in targets:
        session = getattr(getattr(target, "store", None), "session", None)
        if not isinstance(session, ForkSession):
            raise InvalidInputError(
                "store_dask targets must be zarr arrays opened on a ForkSession's store: "
                "fork = session.fork(); zarr.open_array(fork.store, path=..., mode='a')"
            )
    region_list = list(regions) if regions is not None else [None] * len(targets)
    writers: dict[int, int] = {}
    for target in targets:
        writers[id(target)] = writers.get(id(target), 0) + 1
    for src, target, region in zip(sources, targets, region_list, strict=True):
        _check_alignment(src, target, region, shared=writers[id(target)] > 1)
    stored = dask.array.store(
        list(sources),
        list(targets),
        regions=list(regions) if regions is not None else None,
        lock=False,
        compute=False,
        return_stored=True,
        load_stored=False,
    )
    arrays = stored if isinstance(stored, tuple) else (stored,)
    blocks = [block for array in arrays for block in array.to_delayed().ravel()]
    merged = _tree_merge(blocks, split_every or 8)
    # compute-time options (scheduler=, num_workers=, ...) go to dask.compute
    (result,) = dask.compute(merged, **store_kwargs)
    return result


def _check_alignment(
    source: Any, target: Any, region: tuple[slice, ...] | None, *, shared: bool
) -> None:
    """Refuse dask blocks that share a zarr chunk (or shard): two tasks would each
    rewrite it, and one of the writes would be lost.

    With several sources writing regions of one target (``shared``), the region
    edges must fall on chunk boundaries too.
    """
    unit = getattr(target, "shards", None) or target.chunks
    starts = [0] * len(unit)
    if region is not None:
        starts = [(sl.start or 0) if isinstance(sl, slice) else int(sl) for sl in region]
    for dim, (sizes, step) in enumerate(zip(source.chunks, unit)):
        offset = starts[dim]
        edges = [size for size in sizes[:-1]]
        if shared:
            if offset % step:
                raise InvalidInputError(
                    f"the region starting at {offset} along dimension {dim} does not start "
                    f"on a zarr chunk boundary (chunks of {step}) and another region of the "
                    "same array may share that chunk: align the regions to the zarr chunks"
                )
            edges = list(sizes)
        for size in edges:
            offset += size
            if offset % step and offset != target.shape[dim]:
                raise InvalidInputError(
                    f"dask chunks {source.chunks[dim]} along dimension {dim} split the zarr "
                    f"{'shards' if getattr(target, 'shards', None) else 'chunks'} of size {step} "
                    f"(a block boundary falls at {offset}): rechunk the dask array to "
                    "multiples of the zarr chunks, e.g. source.rechunk(target.chunks)"
                )


def _tree_merge(items: list[Any], split_every: int) -> Any:
    """A delayed reduction: merge groups of ``split_every`` until one fork is left."""
    from dask import delayed

    merge = delayed(merge_sessions, pure=False)
    level = list(items)
    while len(level) > 1 or not level:
        if not level:
            raise InvalidInputError("store_dask got no source arrays")
        level = [merge(*level[i : i + split_every]) for i in range(0, len(level), split_every)]
    return level[0] if isinstance(level[0], ForkSession) else merge(level[0])
