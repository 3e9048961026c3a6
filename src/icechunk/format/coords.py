"""Chunk coordinates as numpy arrays: building them and sorting them lexicographically."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np


def coords_array(coords: Iterable[tuple[int, ...]], count: int, ndim: int) -> np.ndarray:
    """``count`` coordinate tuples of ``ndim`` dimensions as an ``(count, ndim)`` int64 array."""
    flat = itertools.chain.from_iterable(coords)
    return np.fromiter(flat, dtype=np.int64, count=count * ndim).reshape(count, ndim)


def is_lex_sorted(coords: np.ndarray) -> bool:
    """Whether the rows are in strictly increasing lexicographic order."""
    n, ndim = coords.shape
    if n < 2:
        return True
    if ndim == 1:
        return bool((coords[1:, 0] > coords[:-1, 0]).all())
    step = coords[1:] - coords[:-1]
    nonzero = step != 0
    first = nonzero.argmax(axis=1)  # the first dimension that differs
    return bool(nonzero.any(axis=1).all() and (step[np.arange(n - 1), first] > 0).all())


def lex_order(coords: np.ndarray) -> np.ndarray:
    """The permutation that sorts the rows lexicographically (first dimension first)."""
    n, ndim = coords.shape
    if ndim == 0 or is_lex_sorted(coords):
        return np.arange(n)
    return np.lexsort(coords.T[::-1])
