"""IcechunkStore: a zarr v3 store over a Session.

Zarr keys map onto the session's node tree: ``<path>/zarr.json`` is a node's
metadata and ``<array path>/<chunk key>`` one chunk of an array (decoded with the
array's own chunk key encoding).
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from zarr.abc.store import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
)
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from icechunk._core.objects import resolve_range
from icechunk._util.sync import check_off_zarr_loop, run
from icechunk._virtual.refs import VirtualChunkSpec, make_virtual_chunk, spec_to_ref
from icechunk._virtual.resolver import VirtualChunkResolver
from icechunk.exceptions import InvalidInputError, ReadOnlyError
from icechunk.format.manifest import ChunkCoords, VirtualChunk
from icechunk.storage.base import ByteRange

if TYPE_CHECKING:
    from icechunk._core.session import Node, Session

_META = "zarr.json"


def _node_path(prefix: str) -> str:
    """Store prefix ``a/b`` (or ``""``) -> node path ``/a/b`` (or ``/``)."""
    prefix = prefix.strip("/")
    return "/" + prefix if prefix else "/"


def _store_prefix(path: str) -> str:
    """Node path ``/a/b`` -> store prefix ``a/b/`` (``""`` for the root)."""
    return "" if path == "/" else path[1:] + "/"


def _to_range(byte_range: ByteRequest | None) -> ByteRange | None:
    if byte_range is None:
        return None
    if isinstance(byte_range, RangeByteRequest):
        return ByteRange(byte_range.start, byte_range.end)
    if isinstance(byte_range, OffsetByteRequest):
        return ByteRange(byte_range.offset, None)
    if isinstance(byte_range, SuffixByteRequest):
        return ByteRange(suffix=byte_range.suffix)
    raise InvalidInputError(f"Unexpected byte_range, got {byte_range!r}")


class IcechunkStore(Store):
    """The zarr store of an icechunk :class:`~icechunk.Session`."""

    supports_writes = True
    supports_listing = True

    def __init__(self, session: Session, read_only: bool | None = None) -> None:
        super().__init__(read_only=session.read_only if read_only is None else read_only)
        self._session = session
        self._is_open = True

    @property
    def session(self) -> Session:
        return self._session

    @property
    def read_only(self) -> bool:
        return self._read_only or self._session.read_only

    @property
    def supports_deletes(self) -> bool:  # type: ignore[override]
        return True

    @property
    def supports_consolidated_metadata(self) -> bool:
        # Every metadata read is served from the snapshot already; consolidating
        # would only add a copy that can go stale.
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IcechunkStore) and other._session is self._session

    def __hash__(self) -> int:
        return id(self._session)

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return ("icechunk.IcechunkStore", self._session.__dask_tokenize__(), self.read_only)

    def __repr__(self) -> str:
        return f"<IcechunkStore of {self._session!r}>"

    def __getstate__(self) -> dict[str, Any]:
        from icechunk._core.fork import ForkSession

        if not self.read_only and not isinstance(self._session, ForkSession):
            raise InvalidInputError(
                "the store of a writable session cannot be pickled: to write from other "
                "processes or dask workers use session.fork() and its store, then "
                "session.merge(*forks); stores of read-only sessions pickle freely"
            )
        return {"session": self._session, "read_only": self._read_only}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["session"], state["read_only"])  # type: ignore[misc]

    def with_read_only(self, read_only: bool = False) -> IcechunkStore:
        # The flag can only restrict: a read-only session's store never becomes writable.
        store = IcechunkStore(self._session, read_only=read_only)
        store._is_open = False  # zarr's convention: opened lazily on first use
        return store

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(
                "this store belongs to a read-only session (or one that already committed): "
                "start a new one with repo.writable_session(branch)"
            )

    # ------------------------------------------------------------------
    # key resolution

    def _resolve_chunk(self, key: str) -> tuple[Node, ChunkCoords] | None:
        """The array node and chunk coordinates a chunk key refers to.

        None when no array holds the key (or the coordinates have the wrong number
        of dimensions); InvalidInputError for keys that cannot name a chunk, like a
        bare node path or ``<array>/d/0``.
        """
        parts = key.split("/")
        if parts[-1].startswith("."):
            return None  # zarr v2 metadata (.zarray, .zattrs, ...), probed by zarr when opening
        for i in range(len(parts), -1, -1):
            node = self._session.get_node("/" + "/".join(parts[:i]) if i else "/")
            if node is None:
                continue
            if i == len(parts):
                raise InvalidInputError(
                    f"{key!r} is the path of a node, not a key: use {key}/zarr.json"
                )
            if not node.is_array:
                break  # under a group: no array holds this key
            rest = "/".join(parts[i:])
            coords = node.meta.parse_chunk_key(rest)
            if coords is not None:
                return node, coords
            if node.meta.is_chunk_key_shaped(rest):
                return None
            raise InvalidInputError(f"{key!r} is not a chunk key of array {node.path}")
        last_c = len(parts) - 1 - parts[::-1].index("c") if "c" in parts else -1
        if last_c < 0 or not all(p.isdigit() for p in parts[last_c + 1 :]):
            # like the official store: neither metadata nor shaped like a chunk key
            raise InvalidInputError(
                f"invalid zarr key {key!r}: expected <path>/zarr.json or <array>/c/<i>/<j>..."
            )
        return None

    def _check_prefix(self, prefix: str) -> None:
        """Reject prefixes that cannot be a node path (partial names, inside an array)."""
        if not prefix:
            return
        path = _node_path(prefix)
        node = self._session.get_node(path)
        if not prefix.endswith("/") and node is None:
            raise InvalidInputError(
                f"bad key prefix {prefix!r}: only prefixes naming a group or array are allowed"
            )
        parts = path.strip("/").split("/")
        if node is None and parts[-1] == "c":
            raise InvalidInputError(f"bad key prefix {prefix!r}: it names chunks, not a node")
        for i in range(len(parts)):
            parent = self._session.get_node("/" + "/".join(parts[:i]) if i else "/")
            if parent is not None and parent.is_array:
                raise InvalidInputError(
                    f"bad key prefix {prefix!r}: it points inside array {parent.path}"
                )

    # ------------------------------------------------------------------
    # reads

    async def get(
        self,
        key: str,
        prototype: BufferPrototype,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        data = await self._get_bytes(key, _to_range(byte_range))
        return None if data is None else prototype.buffer.from_bytes(data)

    async def _get_bytes(self, key: str, byte_range: ByteRange | None) -> bytes | None:
        if key == _META or key.endswith("/" + _META):
            node = self._session.get_node(_node_path(key[: -len(_META)]))
            if node is None:
                return None
            data = node.user_data
            if byte_range is not None:
                start, end = resolve_range(len(data), byte_range)
                data = data[start:end]
            return data
        resolved = self._resolve_chunk(key)
        if resolved is None:
            return None
        return await self._session.get_chunk(*resolved, byte_range=byte_range)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        return list(
            await asyncio.gather(*(self.get(key, prototype, rng) for key, rng in key_ranges))
        )

    async def exists(self, key: str) -> bool:
        if key == _META or key.endswith("/" + _META):
            return self._session.get_node(_node_path(key[: -len(_META)])) is not None
        resolved = self._resolve_chunk(key)
        return resolved is not None and await self._session.chunk_payload(*resolved) is not None

    async def getsize(self, key: str) -> int:
        data = await self._get_bytes(key, None)
        if data is None:
            raise FileNotFoundError(key)
        return len(data)

    # ------------------------------------------------------------------
    # writes

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()
        if not isinstance(value, Buffer):
            raise TypeError(f"expected a zarr Buffer, got {type(value).__name__}")
        if key == _META or key.endswith("/" + _META):
            self._session.set_metadata(_node_path(key[: -len(_META)]), value.to_bytes())
            return
        resolved = self._resolve_chunk(key)
        if resolved is None:
            raise InvalidInputError(
                f"cannot store key {key!r}: icechunk stores zarr.json documents and chunks of "
                "existing arrays only"
            )
        # a view, not a copy: chunks can be large and the write finishes before we return
        await self._session.set_chunk(*resolved, value.as_buffer_like())

    # ------------------------------------------------------------------
    # zarr's synchronous store surface (SupportsGetSync / SetSync / DeleteSync)
    #
    # zarr's FusedCodecPipeline calls these from worker threads (asyncio.to_thread) while
    # zarr's event loop awaits them; each runs the async method on that loop and waits.

    def get_sync(
        self,
        key: str,
        *,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """Blocking :meth:`get` (any thread but zarr's event loop's)."""
        check_off_zarr_loop("IcechunkStore.get_sync")
        if prototype is None:
            prototype = default_buffer_prototype()
        return run(self.get(key, prototype, byte_range))

    def set_sync(self, key: str, value: Buffer) -> None:
        """Blocking :meth:`set` (any thread but zarr's event loop's)."""
        check_off_zarr_loop("IcechunkStore.set_sync")
        run(self.set(key, value))

    def delete_sync(self, key: str) -> None:
        """Blocking :meth:`delete` (any thread but zarr's event loop's)."""
        check_off_zarr_loop("IcechunkStore.delete_sync")
        run(self.delete(key))

    # ------------------------------------------------------------------
    # virtual references

    def set_virtual_ref(
        self,
        key: str,
        location: str,
        *,
        offset: int,
        length: int,
        checksum: str | datetime | None = None,
        validate_container: bool = True,
    ) -> None:
        """Point chunk ``key`` (e.g. ``"array/c/0/0"``) at bytes of the object at ``location``.

        ``checksum`` (an ETag or a last-modified datetime) makes reads fail once the
        object changes; ``validate_container`` rejects locations that no virtual
        chunk container of the repository config serves.
        """
        run(
            self.set_virtual_ref_async(
                key,
                location,
                offset=offset,
                length=length,
                checksum=checksum,
                validate_container=validate_container,
            )
        )

    async def set_virtual_ref_async(
        self,
        key: str,
        location: str,
        *,
        offset: int,
        length: int,
        checksum: str | datetime | None = None,
        validate_container: bool = True,
    ) -> None:
        """Async :meth:`set_virtual_ref`."""
        self._check_writable()
        chunk = make_virtual_chunk(location, offset, length, checksum)
        if validate_container:
            self._resolver().validate_location(chunk.location)
        resolved = self._resolve_chunk(key)
        if resolved is None:
            raise InvalidInputError(
                f"cannot set a virtual reference at {key!r}: it is not a chunk key of an "
                "existing array"
            )
        self._session.set_chunk_ref(*resolved, chunk)

    def set_virtual_refs(
        self,
        array_path: str,
        chunks: list[VirtualChunkSpec],
        *,
        validate_containers: bool = True,
    ) -> list[tuple[int, ...]] | None:
        """Set many virtual references of one array.

        With ``validate_containers``, references whose location no container serves
        are skipped and their chunk indices returned; None when all were set.
        """
        return run(
            self.set_virtual_refs_async(array_path, chunks, validate_containers=validate_containers)
        )

    async def set_virtual_refs_async(
        self,
        array_path: str,
        chunks: list[VirtualChunkSpec],
        *,
        validate_containers: bool = True,
    ) -> list[tuple[int, ...]] | None:
        """Async :meth:`set_virtual_refs`."""
        self._check_writable()
        node = self._array_node(array_path)
        refs = list(map(spec_to_ref, chunks))
        return self._record_refs(node, refs, validate_containers)

    def set_virtual_refs_arr(
        self,
        array_path: str,
        chunk_grid_shape: tuple[int, ...],
        locations: list[str],
        offsets: Any,
        lengths: Any,
        *,
        validate_containers: bool = True,
        arr_offset: tuple[int, ...] | None = None,
        checksum: datetime | str | None = None,
    ) -> list[tuple[int, ...]] | None:
        """Set virtual references from flat (C-order) lists over a chunk grid.

        Empty locations are skipped; ``arr_offset`` shifts every chunk index.
        """
        return run(
            self.set_virtual_refs_arr_async(
                array_path,
                chunk_grid_shape,
                locations,
                offsets,
                lengths,
                validate_containers=validate_containers,
                arr_offset=arr_offset,
                checksum=checksum,
            )
        )

    async def set_virtual_refs_arr_async(
        self,
        array_path: str,
        chunk_grid_shape: tuple[int, ...],
        locations: list[str],
        offsets: Any,
        lengths: Any,
        *,
        validate_containers: bool = True,
        arr_offset: tuple[int, ...] | None = None,
        checksum: datetime | str | None = None,
    ) -> list[tuple[int, ...]] | None:
        """Async :meth:`set_virtual_refs_arr`."""
        self._check_writable()
        node = self._array_node(array_path)
        shape = tuple(int(s) for s in chunk_grid_shape)
        shift = tuple(int(s) for s in arr_offset) if arr_offset is not None else (0,) * len(shape)
        offs, lens = list(offsets), list(lengths)
        total = math.prod(shape)
        if not len(locations) == len(offs) == len(lens) == total or len(shift) != len(shape):
            raise InvalidInputError(
                f"set_virtual_refs_arr: {len(locations)} locations, {len(offs)} offsets and "
                f"{len(lens)} lengths for a chunk grid of shape {list(shape)} ({total} chunks)"
            )
        # C order: the last dimension varies fastest
        grid = itertools.product(*(range(s, s + n) for n, s in zip(shape, shift, strict=True)))
        refs = [
            (coords, make_virtual_chunk(location, int(offset), int(length), checksum))
            for coords, location, offset, length in zip(grid, locations, offs, lens, strict=True)
            if location
        ]
        return self._record_refs(node, refs, validate_containers)

    def _resolver(self) -> VirtualChunkResolver:
        return self._session.virtual_resolver

    def _array_node(self, array_path: str) -> Node:
        node = self._session.get_node(_node_path(array_path))
        if node is None:
            raise InvalidInputError(f"no array at {array_path!r}")
        if not node.is_array:
            raise InvalidInputError(f"{node.path} is a group, not an array")
        return node

    def _record_refs(
        self,
        node: Node,
        refs: list[tuple[ChunkCoords, VirtualChunk]],
        validate: bool,
    ) -> list[tuple[int, ...]] | None:
        failed: list[tuple[int, ...]] = []
        if validate:
            resolver = self._resolver()
            known: dict[str, bool] = {}  # location -> has a container
            accepted = []
            for coords, chunk in refs:
                ok = known.get(chunk.location)
                if ok is None:
                    ok = known[chunk.location] = (
                        resolver.matching_container(chunk.location) is not None
                    )
                if ok:
                    accepted.append((coords, chunk))
                else:
                    failed.append(coords)
            refs = accepted
        self._session.set_chunk_refs(node, refs)
        return failed or None

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        if not await self.exists(key):
            await self.set(key, value)

    async def delete(self, key: str) -> None:
        self._check_writable()
        if key == _META or key.endswith("/" + _META):
            path = _node_path(key[: -len(_META)])
            if self._session.get_node(path) is not None:
                self._session.delete_node(path)
            return
        resolved = self._resolve_chunk(key)
        if resolved is not None:
            self._session.delete_chunk(*resolved)

    async def delete_dir(self, prefix: str) -> None:
        self._check_writable()
        path = _node_path(prefix)
        if self._session.get_node(path) is not None:
            self._session.delete_node(path)
            return
        # a prefix inside an array (e.g. "arr/c"): delete its chunks
        for node in list(self._session.iter_nodes()):
            node_prefix = _store_prefix(node.path)
            if node.is_array and prefix.startswith(node_prefix):
                async for key in self._node_keys(node):
                    if key.startswith(prefix.rstrip("/") + "/") and not key.endswith(_META):
                        await self.delete(key)
        # nodes below a prefix that is not a node itself (implicit group)
        below = "/" if path == "/" else path + "/"
        for node in list(self._session.iter_nodes()):
            if node.path.startswith(below):
                self._session.delete_node(node.path)

    @property
    def supports_partial_writes(self) -> bool:  # type: ignore[override]
        return False

    async def set_partial_values(self, key_start_values: Iterable[tuple[str, int, bytes]]) -> None:
        raise NotImplementedError(
            "icechunk stores do not support partial writes: chunks are written whole"
        )

    async def is_empty(self, prefix: str) -> bool:
        """Whether no key starts with ``prefix`` (a node path)."""
        return await super().is_empty(prefix)

    async def getsize_prefix(self, prefix: str) -> int:
        """Total size of every value under ``prefix`` (a node path)."""
        return await super().getsize_prefix(prefix)

    def sync_clear(self) -> None:
        """Remove every group and array from this session (history is untouched)."""
        run(self.clear())

    async def clear(self) -> None:
        self._check_writable()
        for node in list(self._session.iter_nodes()):
            if self._session.get_node(node.path) is not None:
                self._session.delete_node(node.path)

    # ------------------------------------------------------------------
    # listing

    async def _node_keys(self, node: Node) -> AsyncIterator[str]:
        prefix = _store_prefix(node.path)
        yield prefix + _META
        if node.is_array:
            meta = node.meta
            async for coords in self._session.iter_chunk_coords(node):
                yield prefix + meta.chunk_key(coords)

    async def list(self) -> AsyncIterator[str]:
        for node in list(self._session.iter_nodes()):
            async for key in self._node_keys(node):
                yield key

    def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        self._check_prefix(prefix)  # raised at call time, like the official store
        if prefix and not prefix.endswith("/"):
            prefix += "/"  # a node path: its keys, not those of siblings sharing the start
        return self._list_prefix(prefix)

    async def _list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for node in list(self._session.iter_nodes()):
            node_prefix = _store_prefix(node.path)
            # skip nodes whose keys cannot start with prefix
            if not (node_prefix.startswith(prefix) or prefix.startswith(node_prefix)):
                continue
            async for key in self._node_keys(node):
                if key.startswith(prefix):
                    yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        base = prefix.rstrip("/")
        base = base + "/" if base else ""
        seen: set[str] = set()
        for node in list(self._session.iter_nodes()):
            node_prefix = _store_prefix(node.path)
            if node_prefix == base:
                if _META not in seen:
                    seen.add(_META)
                    yield _META
                if node.is_array and node.meta.key_encoding == "default":
                    if "c" not in seen:  # like the official store, even with no chunks
                        seen.add("c")
                        yield "c"
                elif node.is_array:
                    async for key in self._node_keys(node):
                        child = key[len(base) :].split("/", 1)[0]
                        if child not in seen:
                            seen.add(child)
                            yield child
            elif node_prefix.startswith(base):
                child = node_prefix[len(base) :].split("/", 1)[0]
                if child not in seen:
                    seen.add(child)
                    yield child
            elif base.startswith(node_prefix) and node.is_array:
                async for key in self._node_keys(node):
                    if key.startswith(base):
                        child = key[len(base) :].split("/", 1)[0]
                        if child not in seen:
                            seen.add(child)
                            yield child
