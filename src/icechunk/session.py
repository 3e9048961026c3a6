"""Sessions: the official ``icechunk.session`` module's names.

A :class:`Session` reads one snapshot and, when writable, records changes and commits them;
a :class:`ForkSession` is a picklable piece of a writable session for other processes and
dask workers. Both live in the engine (``_core.session``, ``_core.fork``).
"""

from icechunk._core.fork import ForkSession
from icechunk._core.session import ChunkType, Session, SessionMode

__all__ = ["ChunkType", "ForkSession", "Session", "SessionMode"]
