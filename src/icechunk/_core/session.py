"""Session: a read view of one snapshot, plus (when writable) a change set and commit."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from icechunk._core import keys
from icechunk._core.changeset import ChangeSet, NodeChange
from icechunk._core.commit import record_amend, record_commit, record_detached
from icechunk._core.conflicts import ConflictSolver
from icechunk._core.flush import transaction_log, write_snapshot
from icechunk._core.history import Diff, diff_from_logs
from icechunk._core.nodes import ChunkType, Node, SessionMode
from icechunk._core.rebase import rebase_target
from icechunk._core.zarr_meta import ArrayMeta, parse_array_meta, parse_node_type
from icechunk._util.backoff import Backoff
from icechunk._util.sync import run
from icechunk.exceptions import (
    AlreadyExistsError,
    BranchNotFoundError,
    ConflictError,
    IcechunkError,
    InvalidInputError,
    NodeNotFoundError,
    ReadOnlyError,
    RebaseFailedError,
    SessionStateError,
)
from icechunk.format.ids import new_id8, new_id12
from icechunk.format.manifest import (
    ChunkCoords,
    ChunkPayload,
    InlineChunk,
    NativeChunk,
    VirtualChunk,
)
from icechunk.format.snapshot import (
    ArrayData,
    NodeSnapshot,
    Snapshot,
)
from icechunk.format.transaction_log import (
    NODE_TYPE_ARRAY,
    NODE_TYPE_GROUP,
    MoveOperation,
    TransactionLog,
)
from icechunk.storage.base import ByteRange

if TYPE_CHECKING:
    from icechunk._core.fork import ForkSession
    from icechunk._core.state import RepoState
    from icechunk._core.store import IcechunkStore
    from icechunk._virtual.resolver import VirtualChunkResolver
    from icechunk.repository import Repository

_MAX_CONCURRENT_WRITES = 32
#: waits between the rebases of a commit that keeps losing the race for its branch
_REBASE_BACKOFF = Backoff(base_s=0.005, cap_s=1.0, max_exponent=8)


def _retrieve_outcome(task: asyncio.Future[Any]) -> None:
    """Mark a background task's failure as seen (its caller gave up on it)."""
    if not task.cancelled():
        task.exception()


class Session:
    """A view of one snapshot; writable sessions collect changes and commit them."""

    def __init__(
        self,
        repo: Repository,
        state: RepoState,
        snapshot: Snapshot,
        *,
        branch: str | None,
        read_only: bool,
        rearrange: bool = False,
        rewrite_manifests: bool = False,
    ) -> None:
        self._repo = repo
        self._state = state
        self._rewrite_manifests = rewrite_manifests  # rewrite every manifest on flush
        self._snapshot = snapshot
        self._rearrange = rearrange
        self._branch = branch
        self._read_only = read_only
        self._changes = ChangeSet()
        self._store: IcechunkStore | None = None
        self._token = uuid.uuid4().hex  # forks remember which session they came from

    def __repr__(self) -> str:
        mode = "read-only" if self._read_only else "writable"
        return f"<icechunk.Session {mode} branch={self._branch!r} snapshot={self.snapshot_id}>"

    def __getstate__(self) -> dict[str, Any]:
        if not self._read_only:
            raise InvalidInputError(
                "a writable Session cannot be pickled: to write from other processes or dask "
                "workers, send session.fork() instead, then session.merge(*forks) and commit; "
                "read-only sessions pickle freely"
            )
        state = dict(self.__dict__)
        state["_store"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __dask_tokenize__(self) -> tuple[str, ...]:
        # A read-only view is identified by its snapshot; a writable one is unique.
        if self._read_only:
            return ("icechunk.Session", self._snapshot.id)
        return ("icechunk.Session", uuid.uuid4().hex)  # its changes may still change

    # ------------------------------------------------------------------
    # properties

    @property
    def store(self) -> IcechunkStore:
        """The zarr store of this session."""
        from icechunk._core.store import IcechunkStore

        if self._store is None:
            self._store = IcechunkStore(self)
        return self._store

    @property
    def snapshot_id(self) -> str:
        return self._snapshot.id

    @property
    def branch(self) -> str | None:
        return self._branch

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def repository(self) -> Repository:
        return self._repo

    @property
    def virtual_resolver(self) -> VirtualChunkResolver:
        """Reads and validates this repository's virtual chunk locations (engine level)."""
        resolver: VirtualChunkResolver = self._state.objects.virtual
        return resolver

    @property
    def mode(self) -> SessionMode:
        if self._read_only:
            return SessionMode.readonly
        return SessionMode.rearrange if self._rearrange else SessionMode.writable

    @property
    def config(self) -> Any:
        """The configuration of the repository this session belongs to."""
        return self._state.config

    def get_node_id(self, path: str) -> str:
        """The id of the group or array at ``path`` (stable for the node's lifetime)."""
        return self.require_node(_normalize_path(path)).id

    async def get_node_id_async(self, path: str) -> str:
        return self.get_node_id(path)

    async def chunk_coordinates(
        self, array_path: str, batch_size: int = 1000
    ) -> AsyncIterator[tuple[int, ...]]:
        """Coordinates of every written chunk of an array."""
        node = self.require_node(_normalize_path(array_path))
        if not node.is_array:
            raise InvalidInputError(f"{node.path} is a group, not an array")
        async for coords in self.iter_chunk_coords(node):
            yield coords

    @property
    def has_uncommitted_changes(self) -> bool:
        return not self._changes.is_empty()

    def discard_changes(self) -> None:
        """Forget every uncommitted change."""
        self._check_writable()
        self._changes = ChangeSet()

    def status(self) -> Diff:
        """The uncommitted changes, as a Diff."""
        log = self._transaction_log("")
        return diff_from_logs([log], self._snapshot, self._preview_snapshot())

    def _check_writable(self) -> None:
        if self._read_only:
            raise ReadOnlyError(
                "this session is read-only (a read-only session, or one that already "
                "committed): start a new one with repo.writable_session(branch)"
            )

    # ------------------------------------------------------------------
    # nodes

    def get_node(self, path: str) -> Node | None:
        change = self._changes.nodes.get(path)
        if change is not None:
            base = None if change.is_new else self._snapshot.nodes.get(path)
            return Node(change.id, path, change.user_data, change.is_array, base)
        if path in self._changes.deleted:
            return None
        base = self._snapshot.nodes.get(path)
        if base is None:
            return None
        return Node(base.id, path, base.user_data, base.is_array, base)

    def iter_nodes(self) -> Iterator[Node]:
        """Every node in this session's view (unordered)."""
        for path in self._snapshot.nodes:
            if path not in self._changes.nodes and path not in self._changes.deleted:
                node = self.get_node(path)
                if node is not None:
                    yield node
        for path in list(self._changes.nodes):
            node = self.get_node(path)
            if node is not None:
                yield node

    def _check_data_writable(self) -> None:
        self._check_writable()
        if self._rearrange:
            raise SessionStateError(
                "a rearrange session can only move nodes (session.move); use "
                "repo.writable_session(branch) to change data"
            )

    def set_metadata(self, path: str, user_data: bytes) -> None:
        """Create or update the node at ``path`` from its zarr.json document."""
        self._check_data_writable()
        node_type = parse_node_type(user_data)
        is_array = node_type == "array"
        meta = parse_array_meta(user_data) if is_array else None
        existing = self.get_node(path)
        if existing is not None and existing.is_array != is_array:
            self.delete_node(path, recursive=False)
            existing = None
        if existing is None:
            self._changes.nodes[path] = NodeChange(new_id8(), path, user_data, is_array, True)
            return
        if existing.user_data == user_data:
            return
        is_new = existing.base is None
        if not is_new and existing.base is not None and existing.base.user_data == user_data:
            self._changes.nodes.pop(path, None)  # back to the committed metadata
        else:
            self._changes.nodes[path] = NodeChange(existing.id, path, user_data, is_array, is_new)
        if meta is not None and existing.is_array:
            self._on_resize(existing, meta)

    def _on_resize(self, node: Node, meta: ArrayMeta) -> None:
        grid = meta.grid
        old = self._changes.min_grid.get(node.id)
        if old is None and node.base is not None:
            old = parse_array_meta(node.base.user_data).grid
        if old is not None and len(old) == len(grid):
            self._changes.min_grid[node.id] = tuple(min(a, b) for a, b in zip(old, grid))
        chunks = self._changes.chunks.get(node.id)
        if chunks:
            for coords in [c for c in chunks if not meta.in_bounds(c)]:
                del chunks[coords]

    def delete_node(self, path: str, *, recursive: bool = True) -> None:
        """Delete a node (and, by default, everything below it)."""
        self._check_data_writable()
        paths = [path]
        if recursive:
            prefix = "/" if path == "/" else path + "/"
            paths += [n.path for n in self.iter_nodes() if n.path.startswith(prefix)]
        for p in paths:
            node = self.get_node(p)
            if node is None:
                continue
            self._changes.nodes.pop(p, None)
            self._changes.drop_node(node.id)
            if node.base is not None:
                self._changes.deleted[p] = node.id

    # ------------------------------------------------------------------
    # rearranging

    def move(self, from_path: str, to_path: str) -> None:
        """Move or rename a group or array (and everything below it); no data is copied."""
        run(self.move_async(from_path, to_path))

    async def move_async(self, from_path: str, to_path: str) -> None:
        self._check_writable()
        if not self._rearrange:
            raise SessionStateError(
                "moving nodes needs a rearrange session: repo.rearrange_session(branch)"
            )
        src, dst = _normalize_path(from_path), _normalize_path(to_path)
        node = self.require_node(src)
        if src == "/" or dst == "/":
            raise InvalidInputError("the root group cannot be moved or replaced")
        if self.get_node(dst) is not None:
            raise AlreadyExistsError(f"cannot move {src} to {dst}: a node already exists there")
        if dst.startswith(src + "/"):
            raise InvalidInputError(f"cannot move {src} inside itself ({dst})")
        parent = self.get_node(dst.rsplit("/", 1)[0] or "/")
        if parent is not None and parent.is_array:
            raise InvalidInputError(f"cannot move {src} into array {parent.path}")
        renamed = {}
        for path, snap_node in self._snapshot.nodes.items():
            if path == src or path.startswith(src + "/"):
                new_path = dst + path[len(src) :]
                renamed[new_path] = dataclasses.replace(snap_node, path=new_path)
            else:
                renamed[path] = snap_node
        self._snapshot = dataclasses.replace(self._snapshot, nodes=renamed)
        kind = NODE_TYPE_ARRAY if node.is_array else NODE_TYPE_GROUP
        self._changes.moves.append(MoveOperation(src, dst, node.id, kind))

    def shift_array(self, array_path: str, chunk_offset: Iterable[int]) -> None:
        """Shift every chunk by ``chunk_offset`` chunks; chunks shifted out are dropped."""
        run(self.shift_array_async(array_path, chunk_offset))

    async def shift_array_async(self, array_path: str, chunk_offset: Iterable[int]) -> None:
        offset = tuple(int(o) for o in chunk_offset)
        node = self._require_array(array_path)
        if len(offset) != node.meta.ndim:
            raise InvalidInputError(
                f"chunk_offset has {len(offset)} dimensions, {node.path} has {node.meta.ndim}"
            )
        refs = await self._chunk_refs(node)
        moved = {}
        for coords, payload in refs.items():
            target = tuple(c + o for c, o in zip(coords, offset))
            if node.meta.in_bounds(target):
                moved[target] = payload
        self._replace_chunks(node, refs, moved)

    def reindex_array(
        self,
        array_path: str,
        forward: Callable[[list[int]], Iterable[int] | None],
        backward: Callable[[list[int]], Iterable[int] | None] | None = None,
    ) -> None:
        """Move chunks to the positions ``forward`` maps them to (None: leave in place).

        With ``backward`` (the inverse of ``forward``), positions whose source has
        no chunk are cleared.
        """
        run(self.reindex_array_async(array_path, forward, backward))

    async def reindex_array_async(
        self,
        array_path: str,
        forward: Callable[[list[int]], Iterable[int] | None],
        backward: Callable[[list[int]], Iterable[int] | None] | None = None,
    ) -> None:
        node = self._require_array(array_path)
        refs = await self._chunk_refs(node)
        moved = {}
        for coords, payload in refs.items():
            target = forward(list(coords))
            if target is None:
                continue
            target = tuple(int(t) for t in target)
            if not node.meta.in_bounds(target):
                raise InvalidInputError(f"forward mapped {list(coords)} outside the chunk grid")
            moved[target] = payload
        cleared = set()
        if backward is not None:
            for coords in refs:
                source = backward(list(coords))
                if source is None or tuple(source) not in refs:
                    cleared.add(coords)
        self._replace_chunks(node, {c: refs[c] for c in cleared}, moved)

    def _require_array(self, array_path: str) -> Node:
        self._check_data_writable()
        node = self.require_node(_normalize_path(array_path))
        if not node.is_array:
            raise InvalidInputError(f"{node.path} is a group, not an array")
        return node

    async def _chunk_refs(self, node: Node) -> dict[ChunkCoords, ChunkPayload]:
        refs = {}
        async for coords in self.iter_chunk_coords(node):
            payload = await self.chunk_payload(node, coords)
            if payload is not None:
                refs[coords] = payload
        return refs

    def _replace_chunks(
        self,
        node: Node,
        vacate: dict[ChunkCoords, ChunkPayload],
        moved: dict[ChunkCoords, ChunkPayload],
    ) -> None:
        """Put ``moved`` in place and clear the ``vacate`` positions nothing moved into."""
        chunks = self._changes.chunks.setdefault(node.id, {})
        for coords in vacate:
            if coords not in moved:
                chunks[coords] = None
        chunks.update(moved)

    # ------------------------------------------------------------------
    # chunks

    def _min_grid_excludes(self, node: Node, coords: ChunkCoords) -> bool:
        return self._changes.min_grid_excludes(node.id, coords)

    async def chunk_payload(self, node: Node, coords: ChunkCoords) -> ChunkPayload | None:
        """The reference of one chunk as this session sees it (None: not written)."""
        if not node.meta.in_bounds(coords):
            return None
        changes = self._changes.chunks.get(node.id)
        if changes is not None and coords in changes:
            return changes[coords]
        if node.base is None or node.base.id != node.id or self._min_grid_excludes(node, coords):
            return None
        array = node.base.array
        if array is None:
            return None
        for ref in array.manifests:
            if ref.contains(coords):
                manifest = await self._state.objects.manifest(ref.manifest_id)
                return manifest.lookup(node.id, coords)
        return None

    def chunk_type(self, array_path: str, chunk_coordinates: list[int]) -> ChunkType:
        """Whether a chunk is inline, native, virtual or not written at all."""
        return run(self.chunk_type_async(array_path, chunk_coordinates))

    async def chunk_type_async(self, array_path: str, chunk_coordinates: list[int]) -> ChunkType:
        node = self.require_node(_normalize_path(array_path))
        if not node.is_array:
            raise InvalidInputError(f"{node.path} is a group, not an array")
        payload = await self.chunk_payload(node, tuple(int(c) for c in chunk_coordinates))
        if payload is None:
            return ChunkType.uninitialized
        if isinstance(payload, InlineChunk):
            return ChunkType.inline
        if isinstance(payload, NativeChunk):
            return ChunkType.native
        return ChunkType.virtual

    async def get_chunk(
        self, node: Node, coords: ChunkCoords, byte_range: ByteRange | None = None
    ) -> bytes | None:
        payload = await self.chunk_payload(node, coords)
        if payload is None:
            return None
        return await self._state.objects.chunk_bytes(payload, byte_range)

    async def set_chunk(self, node: Node, coords: ChunkCoords, data: bytes | memoryview) -> None:
        self._check_data_writable()
        if not node.meta.in_bounds(coords):
            raise InvalidInputError(
                f"chunk {list(coords)} is outside the chunk grid {list(node.meta.grid)} "
                f"of array {node.path}"
            )
        if not data:
            raise InvalidInputError(f"empty chunk for {node.path} {list(coords)}: nothing to store")
        if len(data) <= self._state.config.effective_inline_threshold:
            payload: ChunkPayload = InlineChunk(bytes(data))
        else:
            chunk_id = new_id12()
            await self._state.storage.put_fresh(keys.chunk_key(chunk_id), data)
            payload = NativeChunk(chunk_id, 0, len(data))
        self._check_writable()  # a commit may have finished while we uploaded
        self._changes.chunks.setdefault(node.id, {})[coords] = payload

    def set_chunk_ref(self, node: Node, coords: ChunkCoords, payload: ChunkPayload) -> None:
        """Record an already-built reference (a virtual one) for one chunk."""
        self.set_chunk_refs(node, [(coords, payload)])

    def set_chunk_refs(self, node: Node, refs: Sequence[tuple[ChunkCoords, ChunkPayload]]) -> None:
        """Record already-built references (virtual ones); all or none if one is out of bounds."""
        self._check_data_writable()
        in_bounds = node.meta.in_bounds
        for coords, _ in refs:
            if not in_bounds(coords):
                raise InvalidInputError(
                    f"chunk {list(coords)} is outside the chunk grid {list(node.meta.grid)} "
                    f"of array {node.path}"
                )
        self._changes.chunks.setdefault(node.id, {}).update(refs)

    def all_virtual_chunk_locations(self) -> list[str]:
        """The locations of every virtual chunk this session sees (one per chunk)."""
        return run(self.all_virtual_chunk_locations_async())

    async def all_virtual_chunk_locations_async(self) -> list[str]:
        out: list[str] = []
        nodes = sorted((n for n in self.iter_nodes() if n.is_array), key=lambda n: n.path)
        for node in nodes:
            refs = await self._chunk_refs(node)
            out.extend(p.location for p in refs.values() if isinstance(p, VirtualChunk))
        return out

    def delete_chunk(self, node: Node, coords: ChunkCoords) -> None:
        self._check_data_writable()
        if node.meta.in_bounds(coords):
            self._changes.chunks.setdefault(node.id, {})[coords] = None

    async def iter_chunk_coords(self, node: Node) -> AsyncIterator[ChunkCoords]:
        """Coordinates of every written chunk of an array."""
        meta = node.meta
        changes = self._changes.chunks.get(node.id, {})
        if node.base is not None and node.base.array is not None:
            for ref in node.base.array.manifests:
                manifest = await self._state.objects.manifest(ref.manifest_id)
                for coords in manifest.iter_coords(node.id):
                    if (
                        coords not in changes
                        and meta.in_bounds(coords)
                        and not self._min_grid_excludes(node, coords)
                    ):
                        yield coords
        for coords, payload in list(changes.items()):
            if payload is not None:
                yield coords

    # ------------------------------------------------------------------
    # commit

    def commit(
        self,
        message: str,
        metadata: dict[str, Any] | None = None,
        *,
        allow_empty: bool = False,
        rebase_with: Any = None,
        rebase_tries: int = 1000,
    ) -> str:
        """Commit the changes to the branch and return the new snapshot id.

        Raises :class:`ConflictError` if another session committed to the branch
        since this one started. The session is read-only afterwards.
        """
        return run(
            self.commit_async(
                message,
                metadata,
                allow_empty=allow_empty,
                rebase_with=rebase_with,
                rebase_tries=rebase_tries,
            )
        )

    async def commit_async(
        self,
        message: str,
        metadata: dict[str, Any] | None = None,
        *,
        allow_empty: bool = False,
        rebase_with: ConflictSolver | None = None,
        rebase_tries: int = 1000,
    ) -> str:
        self._check_writable()
        if self._branch is None:
            raise ReadOnlyError("this session is not on a branch and cannot commit")
        if not isinstance(message, str):
            raise InvalidInputError(f"commit message must be a str, got {type(message).__name__}")
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidInputError(f"metadata must be a dict, got {type(metadata).__name__}")
        if rebase_with is not None and not isinstance(rebase_with, ConflictSolver):
            raise InvalidInputError(
                "rebase_with must be a conflict solver such as ic.ConflictDetector() or "
                f"ic.BasicConflictSolver(), got {type(rebase_with).__name__}"
            )
        if self._changes.is_empty() and not allow_empty:
            raise IcechunkError("no changes to commit; pass allow_empty=True to commit anyway")
        rebases = 0
        while True:
            try:
                return await self._commit_once(message, metadata or {})
            except ConflictError as conflict:
                if rebase_with is None or isinstance(conflict, RebaseFailedError):
                    raise
                if rebases >= rebase_tries:
                    raise ConflictError(
                        f"gave up after {rebases} rebases: the branch keeps moving. {conflict}",
                        expected_parent=conflict.expected_parent,
                        actual_parent=conflict.actual_parent,
                    ) from None
                # Full jitter keeps many committers from retrying in lockstep.
                await _REBASE_BACKOFF.sleep(rebases)
                await self.rebase_async(rebase_with)
                rebases += 1

    async def _commit_once(self, message: str, metadata: dict[str, Any]) -> str:
        parent = self._snapshot.id
        branch = self._branch
        assert branch is not None
        # Cheap check first, so a stale session does not write objects it cannot use;
        # the file read here is also where the swap below starts from.
        current = await self._state.read_for_update()
        tip = current.info.branches.get(branch)
        if tip is None:
            raise BranchNotFoundError(f"branch {branch!r} no longer exists")
        if tip != parent:
            raise ConflictError(expected_parent=parent, actual_parent=tip)
        metadata = {**self._state.default_commit_metadata, **metadata}
        # the swap below keeps a backup of the file just read: write it meanwhile
        backup = asyncio.ensure_future(self._state.write_backup(current.data))
        backup.add_done_callback(_retrieve_outcome)  # it may end unused if we fail first
        try:
            new_snapshot = await self._flush(message, metadata)
        except BaseException:
            backup.cancel()
            raise

        await record_commit(self._state, branch, parent, new_snapshot, current, backup)
        self._finish(new_snapshot)
        return new_snapshot.id

    def flush(self, message: str, *, metadata: dict[str, Any] | None = None) -> str:
        """Save the changes as a new snapshot without moving any branch.

        The session becomes read-only, based on the new (detached) snapshot.
        """
        return run(self.flush_async(message, metadata=metadata))

    async def flush_async(self, message: str, *, metadata: dict[str, Any] | None = None) -> str:
        self._check_writable()
        parent = self._snapshot.id
        snapshot = await self._flush(
            message, {**self._state.default_commit_metadata, **(metadata or {})}
        )

        await record_detached(self._state, parent, snapshot)
        self._finish(snapshot)
        return snapshot.id

    def amend(
        self,
        message: str,
        *,
        metadata: dict[str, Any] | None = None,
        allow_empty: bool = False,
    ) -> str:
        """Replace the branch's latest commit with one that also has this session's changes."""
        return run(self.amend_async(message, metadata=metadata, allow_empty=allow_empty))

    async def amend_async(
        self,
        message: str,
        *,
        metadata: dict[str, Any] | None = None,
        allow_empty: bool = False,
    ) -> str:
        self._check_writable()
        if self._branch is None:
            raise SessionStateError("only a session on a branch can amend")
        if self._changes.is_empty() and not allow_empty:
            raise IcechunkError("no changes to amend with; pass allow_empty=True to amend anyway")
        info = await self._state.repo_info()
        previous = self._snapshot.id
        entry = info.snapshots.get(previous)
        if entry is None or entry.parent_id is None:
            raise SessionStateError("the first commit of a repository cannot be amended")
        grandparent = entry.parent_id
        branch = self._branch
        tip = info.branches.get(branch)
        if tip != previous:
            raise ConflictError(expected_parent=previous, actual_parent=tip)
        snapshot = await self._flush(
            message, {**self._state.default_commit_metadata, **(metadata or {})}
        )

        await record_amend(self._state, branch, previous, grandparent, snapshot)
        self._finish(snapshot)
        return snapshot.id

    def _finish(self, snapshot: Snapshot) -> None:
        """After a commit, amend or flush: read-only on the new snapshot."""
        self._state.objects.remember_snapshot(snapshot)
        self._snapshot = snapshot
        self._changes = ChangeSet()
        self._read_only = True

    # ------------------------------------------------------------------
    # rebase

    def rebase(self, solver: ConflictSolver) -> None:
        """Move this session onto the branch tip, reconciling changes with ``solver``.

        Raises :class:`RebaseFailedError` listing every conflict the solver could
        not resolve; the session is then unchanged.
        """
        run(self.rebase_async(solver))

    async def rebase_async(self, solver: ConflictSolver) -> None:
        self._check_writable()
        if not isinstance(solver, ConflictSolver):
            raise InvalidInputError(
                f"solver must be e.g. ic.ConflictDetector(), got {type(solver).__name__}"
            )
        if self._branch is None:
            raise SessionStateError("only sessions on a branch can be rebased")
        tip_snapshot = await rebase_target(
            self._state, self._branch, self._snapshot, self._changes, solver
        )
        if tip_snapshot is not None:
            self._move_base(tip_snapshot)

    def _move_base(self, tip: Snapshot) -> None:
        """Re-base the change set on ``tip`` once conflicts are resolved."""
        changes = self._changes
        tip_ids = {n.id for n in tip.nodes.values()}
        # deletions of nodes someone else deleted already
        for path, node_id in list(changes.deleted.items()):
            if node_id not in tip_ids:
                del changes.deleted[path]
        self._snapshot = tip
        # a group we deleted takes the nodes added below it with it
        for path in list(changes.deleted):
            below = "/" if path == "/" else path + "/"
            for other in tip.nodes.values():
                if other.path.startswith(below) and other.path not in changes.deleted:
                    changes.deleted[other.path] = other.id
        for node_id in [n for n in changes.chunks if n not in tip_ids]:
            if not any(c.id == node_id for c in changes.nodes.values()):
                changes.drop_node(node_id)

    # ------------------------------------------------------------------
    # fork and merge

    def fork(self) -> ForkSession:
        """A picklable copy of this session for other threads, processes or machines.

        Write through ``fork.store`` anywhere that reaches the same storage, send the
        fork back, and ``session.merge(fork)`` before committing. Forking writes
        nothing to storage.
        """
        self._check_writable()
        from icechunk._core.fork import ForkSession

        return ForkSession(
            self._repo,
            self._state,
            self._snapshot,
            branch=self._branch,
            changes=self._changes.copy(),
            inherited=self._changes.copy(),
            origin=self._token,
        )

    def merge(self, *others: ForkSession) -> None:
        """Bring the changes of forks into this session (all or nothing)."""
        run(self.merge_async(*others))

    async def merge_async(self, *others: ForkSession) -> None:
        from icechunk._core.fork import merge_forks

        self._check_writable()
        await merge_forks(self, list(others))

    async def _flush(self, message: str, metadata: dict[str, Any]) -> Snapshot:
        """Write manifests, transaction log and snapshot; return the new snapshot."""
        return await write_snapshot(
            self._state,
            self._snapshot,
            self._changes,
            list(self.iter_nodes()),
            message,
            metadata,
            rewrite_manifests=self._rewrite_manifests,
        )

    def _transaction_log(self, snapshot_id: str) -> TransactionLog:
        live = {n.id for n in self.iter_nodes()}
        return transaction_log(snapshot_id, self._snapshot, self._changes, live)

    def _preview_snapshot(self) -> Snapshot:
        """This session's node tree (without manifests), for status()."""
        nodes = {
            n.path: NodeSnapshot(
                n.id, n.path, n.user_data, ArrayData((), None, ()) if n.is_array else None
            )
            for n in self.iter_nodes()
        }
        return Snapshot("", nodes, 0, "", {}, [])

    def require_node(self, path: str) -> Node:
        node = self.get_node(path)
        if node is None:
            raise NodeNotFoundError(f"no group or array at {path!r}")
        return node


def _normalize_path(path: str) -> str:
    if not isinstance(path, str):
        raise InvalidInputError(f"path must be a str, got {type(path).__name__}")
    return "/" + path.strip("/")
