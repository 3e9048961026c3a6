"""ForkSession: a picklable piece of a writable session, and merging forks back.

A fork starts as a copy of its parent's change set (``inherited``). Whatever the
fork changes on top of that is its *delta*; merging applies the deltas of all
forks to the parent at once, after checking that no two forks — and no fork and
the parent since forking — made changes that contradict each other: the same
item changed differently, or one deleting (or shrinking) what another wrote.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from icechunk._core.changeset import ChangeSet, NodeChange
from icechunk._core.conflicts import Conflict, ConflictType
from icechunk._core.session import Session
from icechunk._util.sync import run_blocking
from icechunk.exceptions import InvalidInputError, MergeConflictError, SessionStateError
from icechunk.format.manifest import ChunkCoords, NativeChunk
from icechunk.format.snapshot import Snapshot

if TYPE_CHECKING:
    from icechunk._core.state import RepoState
    from icechunk.repository import Repository

_MISSING: Any = object()
_REVERTED: Any = "reverted"  # a metadata edit undone: back to the snapshot's version


class ForkSession(Session):
    """A writable session that can be pickled to workers and merged back; it cannot commit."""

    def __init__(
        self,
        repo: Repository,
        state: RepoState,
        snapshot: Snapshot,
        *,
        branch: str | None,
        changes: ChangeSet,
        inherited: ChangeSet,
        origin: str,
    ) -> None:
        super().__init__(repo, state, snapshot, branch=branch, read_only=False)
        self._changes = changes
        self._inherited = inherited
        self._origin = origin  # token of the session this fork merges back into

    def __repr__(self) -> str:
        return f"<icechunk.ForkSession of branch={self._branch!r} snapshot={self.snapshot_id}>"

    def __getstate__(self) -> dict[str, Any]:
        return {
            "repo": self._repo,
            "state": self._state,
            "snapshot": self._snapshot,
            "branch": self._branch,
            "changes": self._changes,
            "inherited": self._inherited,
            "origin": self._origin,
            "token": self._token,
            "read_only": self._read_only,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["repo"],
            state["state"],
            state["snapshot"],
            branch=state["branch"],
            changes=state["changes"],
            inherited=state["inherited"],
            origin=state["origin"],
        )
        self._token = state["token"]
        self._read_only = state["read_only"]

    async def commit_async(self, *args: Any, **kwargs: Any) -> str:
        raise SessionStateError(
            "a ForkSession cannot commit: send it back and call session.merge(fork) on the "
            "session it was forked from, then commit that session"
        )

    async def rebase_async(self, solver: Any) -> None:
        raise SessionStateError("a ForkSession cannot be rebased; rebase the parent session")

    # fork(): inherited from Session, a fork of this fork merges back into this fork


def sibling_fork(fork: ForkSession) -> ForkSession:
    """An empty fork beside ``fork`` (same parent), to merge several forks into."""
    return ForkSession(
        fork._repo,
        fork._state,
        fork._snapshot,
        branch=fork._branch,
        changes=fork._inherited.copy(),
        inherited=fork._inherited.copy(),
        origin=fork._origin,
    )


# ----------------------------------------------------------------------
# deltas

_Key = tuple[Any, ...]


def _delta(ours: ChangeSet, base: ChangeSet) -> dict[_Key, Any]:
    """What ``ours`` changed relative to ``base``, keyed by the item changed."""
    delta: dict[_Key, Any] = {}
    for path, change in ours.nodes.items():
        if base.nodes.get(path) != change:
            delta[("node", path)] = change
    for path, change in base.nodes.items():
        if path not in ours.nodes:
            # a node created before forking and deleted since, or an edit undone
            removed = change.is_new or path in ours.deleted
            delta[("node", path)] = None if removed else _REVERTED
    for path, node_id in ours.deleted.items():
        if base.deleted.get(path) != node_id:
            delta[("deleted", path)] = node_id
    for node_id, chunks in ours.chunks.items():
        inherited = base.chunks.get(node_id, {})
        for coords, payload in chunks.items():
            if inherited.get(coords, _MISSING) != payload:
                delta[("chunk", node_id, coords)] = payload
    for node_id, grid in ours.min_grid.items():
        if base.min_grid.get(node_id) != grid:
            delta[("grid", node_id)] = grid
    return delta


@dataclass
class _Effects:
    """What one side's delta does, by node, for the cross-kind checks."""

    deleted: dict[str, str] = field(default_factory=dict)  # node id -> path
    updated: dict[str, str] = field(default_factory=dict)  # node id -> path
    created: set[str] = field(default_factory=set)  # paths
    chunks: dict[str, set[ChunkCoords]] = field(default_factory=dict)
    shrinks: dict[str, tuple[int, ...]] = field(default_factory=dict)


def _effects(delta: dict[_Key, Any], base: ChangeSet) -> _Effects:
    out = _Effects()
    for key, value in delta.items():
        kind = key[0]
        if kind == "deleted":
            out.deleted[value] = key[1]
        elif kind == "node" and value is None:
            removed = base.nodes[key[1]]
            out.deleted[removed.id] = key[1]
        elif kind == "node" and value is _REVERTED:
            out.updated[base.nodes[key[1]].id] = key[1]
        elif kind == "node":
            if value.is_new:
                out.created.add(key[1])
            else:
                out.updated[value.id] = key[1]
        elif kind == "chunk":
            out.chunks.setdefault(key[1], set()).add(key[2])
        else:
            out.shrinks[key[1]] = value
    return out


def _contradictions(a: _Effects, b: _Effects, is_array: dict[str, bool]) -> list[Conflict]:
    """Conflicts where what ``a`` did makes what ``b`` did impossible."""
    found = []
    for node_id, path in a.deleted.items():
        if node_id in b.deleted:
            continue
        if b.chunks.get(node_id):
            found.append(Conflict(ConflictType.ChunksUpdatedInDeletedArray, path))
        elif node_id in b.updated:
            kind = (
                ConflictType.ZarrMetadataUpdateOfDeletedArray
                if is_array.get(node_id, True)
                else ConflictType.ZarrMetadataUpdateOfDeletedGroup
            )
            found.append(Conflict(kind, path))
        below = path.rstrip("/") + "/"
        for created in sorted(b.created):
            if created.startswith(below) and created not in a.created:
                found.append(Conflict(ConflictType.NewNodeInInvalidGroup, created))
    for node_id, grid in a.shrinks.items():
        cut = sorted(c for c in b.chunks.get(node_id, ()) if any(x >= g for x, g in zip(c, grid)))
        if cut:
            path = a.updated.get(node_id) or b.updated.get(node_id) or node_id
            found.append(Conflict(ConflictType.ChunkDoubleUpdate, path, [list(c) for c in cut]))
    return found


class _Sameness:
    """Decides whether two claims on one key are the same value.

    Two uploads of identical bytes count as the same chunk. Uploads get fresh random ids,
    so that takes their contents: rather than hashing every chunk a fork writes, a merge
    notes the pairs it could not decide (``undecided``), reads just those chunks, and
    plans again with their ``digests``.
    """

    def __init__(self, digests: dict[NativeChunk, bytes] | None = None) -> None:
        self.digests = digests or {}
        self.undecided: set[NativeChunk] = set()

    def __call__(self, a: Any, b: Any) -> bool:
        if a == b:
            return True
        if not (isinstance(a, NativeChunk) and isinstance(b, NativeChunk)):
            return False
        if a.length != b.length:
            return False
        da, db = self.digests.get(a), self.digests.get(b)
        if da is None or db is None:
            self.undecided.update((a, b))
            return False
        return da == db


async def _digests(session: Session, chunks: set[NativeChunk]) -> dict[NativeChunk, bytes]:
    """Content digests of these chunks, read concurrently."""
    objects = session._state.objects
    semaphore = asyncio.Semaphore(16)

    async def digest(chunk: NativeChunk) -> bytes:
        async with semaphore:
            data = await objects.chunk_bytes(chunk, None)
        return await run_blocking(_blake2b, data)

    found = await asyncio.gather(*(digest(c) for c in chunks))
    return dict(zip(chunks, found, strict=True))


def _blake2b(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _value(changes: ChangeSet, key: _Key) -> Any:
    kind = key[0]
    if kind == "node":
        return changes.nodes.get(key[1])
    if kind == "deleted":
        return changes.deleted.get(key[1], _MISSING)
    if kind == "chunk":
        return changes.chunks.get(key[1], {}).get(key[2], _MISSING)
    return changes.min_grid.get(key[1])


# ----------------------------------------------------------------------
# merging


async def merge_forks(session: Session, forks: list[ForkSession]) -> None:
    """Apply every fork's delta to ``session``, or raise MergeConflictError listing all conflicts."""
    for fork in forks:
        if not isinstance(fork, ForkSession):
            raise InvalidInputError(
                f"merge takes ForkSession objects (from session.fork()), got {type(fork).__name__}"
            )
        if fork.snapshot_id != session.snapshot_id:
            raise InvalidInputError(
                f"cannot merge a fork of snapshot {fork.snapshot_id} into a session on "
                f"{session.snapshot_id}: fork and merge within the same session"
            )
        if fork._origin not in (session._token, getattr(session, "_origin", None)):
            raise InvalidInputError(
                "this fork was made from another session: merge a fork only into the session "
                "it was forked from (or into a sibling fork combining them)"
            )
    same = _Sameness()
    claims, conflicts = _plan(session, forks, same)
    if same.undecided:  # uploads of equal length under different ids: compare their bytes
        same = _Sameness(await _digests(session, same.undecided))
        claims, conflicts = _plan(session, forks, same)
    if conflicts:
        unique = list(dict.fromkeys(conflicts))
        raise MergeConflictError(
            f"cannot merge: {len(unique)} conflict(s) between forks: "
            + "; ".join(map(str, unique[:10])),
            snapshot=session.snapshot_id,
            conflicts=unique,
        )
    _apply(session, claims)


def _plan(
    session: Session, forks: list[ForkSession], same: _Sameness
) -> tuple[dict[_Key, Any], list[Conflict]]:
    """What merging would claim, and the conflicts it would meet (no side effects)."""
    deltas = [_delta(fork._changes, fork._inherited) for fork in forks]
    is_array = {n.id: n.is_array for n in session._snapshot.nodes.values()}
    for fork in forks:
        is_array.update({c.id: c.is_array for c in fork._changes.nodes.values()})
    is_array.update({c.id: c.is_array for c in session._changes.nodes.values()})

    clashes: dict[_Key, None] = {}
    conflicts: list[Conflict] = []
    claims: dict[_Key, Any] = {}
    effects = [_effects(d, fork._inherited) for d, fork in zip(deltas, forks)]
    for index, (fork, delta) in enumerate(zip(forks, deltas)):
        # what the parent changed since this fork was made
        since = _delta(session._changes, fork._inherited)
        parent = _effects(since, fork._inherited)
        conflicts += _contradictions(parent, effects[index], is_array)
        conflicts += _contradictions(effects[index], parent, is_array)
        for key, value in delta.items():
            if key in claims:
                if not same(claims[key], value):
                    clashes[key] = None
                continue
            current = _value(session._changes, key)
            if not same(current, _value(fork._inherited, key)) and not same(current, value):
                clashes[key] = None
            claims[key] = value
        for other in range(index):
            conflicts += _contradictions(effects[other], effects[index], is_array)
            conflicts += _contradictions(effects[index], effects[other], is_array)
    return claims, _describe(session, list(clashes)) + conflicts


def _apply(session: Session, delta: dict[_Key, Any]) -> None:
    changes = session._changes
    for key, value in delta.items():
        if key[0] == "deleted":
            if session.get_node(key[1]) is not None:
                session.delete_node(key[1], recursive=False)
            changes.deleted[key[1]] = value
    for key, value in delta.items():
        if key[0] == "node":
            if value is None or value is _REVERTED:
                removed = changes.nodes.pop(key[1], None)
                if value is None and removed is not None and removed.is_new:
                    changes.drop_node(removed.id)
            else:
                assert isinstance(value, NodeChange)
                changes.nodes[key[1]] = value
        elif key[0] == "grid":
            old = changes.min_grid.get(key[1])
            changes.min_grid[key[1]] = (
                value if old is None else tuple(min(a, b) for a, b in zip(old, value))
            )
    live = {n.id for n in session.iter_nodes()}
    for key, value in delta.items():
        if key[0] == "chunk" and key[1] in live:
            changes.chunks.setdefault(key[1], {})[key[2]] = value


def _describe(session: Session, keys: list[_Key]) -> list[Conflict]:
    paths = {n.id: n.path for n in session._snapshot.nodes.values()}
    paths.update({n.id: n.path for n in session.iter_nodes()})
    chunks: dict[str, list[list[int]]] = {}
    out = []
    for key in keys:
        if key[0] == "chunk":
            chunks.setdefault(paths.get(key[1], key[1]), []).append(list(key[2]))
        elif key[0] == "node":
            out.append(Conflict(ConflictType.ZarrMetadataDoubleUpdate, key[1]))
        elif key[0] == "deleted":
            node = session._snapshot.nodes.get(key[1])
            kind = (
                ConflictType.DeleteOfUpdatedArray
                if node is None or node.is_array
                else ConflictType.DeleteOfUpdatedGroup
            )
            out.append(Conflict(kind, key[1]))
        else:
            out.append(Conflict(ConflictType.ZarrMetadataDoubleUpdate, paths.get(key[1], key[1])))
    for path, coords in sorted(chunks.items()):
        out.append(Conflict(ConflictType.ChunkDoubleUpdate, path, sorted(coords)))
    return out
