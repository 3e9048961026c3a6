"""ForkSession: a picklable piece of a writable session, and merging forks back.

A fork starts as a copy of its parent's change set (``inherited``). Whatever the
fork changes on top of that is its *delta*; merging applies the deltas of all
forks to the parent at once, after checking that no two forks — and no fork and
the parent since forking — changed the same thing differently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from icechunk.changeset import ChangeSet, NodeChange
from icechunk.conflicts import Conflict, ConflictType
from icechunk.exceptions import InvalidInputError, MergeConflictError, SessionStateError
from icechunk.format.manifest import ChunkCoords, ChunkPayload, NativeChunk
from icechunk.format.snapshot import Snapshot
from icechunk.session import Session

if TYPE_CHECKING:
    from icechunk.repository import Repository

_MISSING: Any = object()


class ForkSession(Session):
    """A writable session that can be pickled to workers and merged back; it cannot commit."""

    def __init__(
        self,
        repo: Repository,
        snapshot: Snapshot,
        *,
        branch: str | None,
        changes: ChangeSet,
        inherited: ChangeSet,
    ) -> None:
        super().__init__(repo, snapshot, branch=branch, read_only=False)
        self._changes = changes
        self._inherited = inherited

    def __repr__(self) -> str:
        return f"<icechunk.ForkSession of branch={self._branch!r} snapshot={self.snapshot_id}>"

    def __getstate__(self) -> dict[str, Any]:
        return {
            "repo": self._repo,
            "snapshot": self._snapshot,
            "branch": self._branch,
            "changes": self._changes,
            "inherited": self._inherited,
            "read_only": self._read_only,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["repo"],
            state["snapshot"],
            branch=state["branch"],
            changes=state["changes"],
            inherited=state["inherited"],
        )
        self._read_only = state["read_only"]

    async def commit_async(self, *args: Any, **kwargs: Any) -> str:
        raise SessionStateError(
            "a ForkSession cannot commit: send it back and call session.merge(fork) on the "
            "session it was forked from, then commit that session"
        )

    async def rebase_async(self, solver: Any) -> None:
        raise SessionStateError("a ForkSession cannot be rebased; rebase the parent session")

    def fork(self) -> ForkSession:
        self._check_writable()
        return ForkSession(
            self._repo,
            self._snapshot,
            branch=self._branch,
            changes=self._changes.copy(),
            inherited=self._inherited.copy(),
        )


# ----------------------------------------------------------------------
# deltas and merging

_Key = tuple[Any, ...]


def _delta(fork: ForkSession) -> dict[_Key, Any]:
    """What the fork changed since it was forked, keyed by the item changed."""
    ours, base = fork._changes, fork._inherited
    delta: dict[_Key, Any] = {}
    for path, change in ours.nodes.items():
        if base.nodes.get(path) != change:
            delta[("node", path)] = change
    for path in base.nodes:
        if path not in ours.nodes:
            delta[("node", path)] = None  # the fork deleted (or reverted) the parent's node
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


def _same(a: Any, b: Any) -> bool:
    """Equal values; two uploads of identical bytes count as the same chunk."""
    if a == b:
        return True
    return (
        isinstance(a, NativeChunk)
        and isinstance(b, NativeChunk)
        and a.digest is not None
        and a.digest == b.digest
        and a.length == b.length
    )


def _current(changes: ChangeSet, key: _Key) -> Any:
    kind = key[0]
    if kind == "node":
        return changes.nodes.get(key[1])
    if kind == "deleted":
        return changes.deleted.get(key[1], _MISSING)
    if kind == "chunk":
        return changes.chunks.get(key[1], {}).get(key[2], _MISSING)
    return changes.min_grid.get(key[1])


def _inherited_value(fork: ForkSession, key: _Key) -> Any:
    return _current(fork._inherited, key)


def merge_forks(session: Session, forks: list[ForkSession]) -> None:
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
    claims: dict[_Key, tuple[int, Any]] = {}
    clashes: dict[_Key, None] = {}
    for index, fork in enumerate(forks):
        for key, value in _delta(fork).items():
            if key in claims:
                if not _same(claims[key][1], value):
                    clashes[key] = None
                continue
            # the parent (or an earlier merge) changed this item after the fork was made
            current = _current(session._changes, key)
            if not _same(current, _inherited_value(fork, key)) and not _same(current, value):
                clashes[key] = None
            claims[key] = (index, value)
    if clashes:
        conflicts = _describe(session, list(clashes))
        raise MergeConflictError(
            f"cannot merge: {len(conflicts)} conflict(s) between forks: "
            + "; ".join(map(str, conflicts[:10])),
            snapshot=session.snapshot_id,
            conflicts=conflicts,
        )
    _apply(session, {key: value for key, (_, value) in claims.items()})


def _apply(session: Session, delta: dict[_Key, Any]) -> None:
    changes = session._changes
    for key, value in delta.items():
        if key[0] == "deleted":
            node = session.get_node(key[1])
            if node is not None:
                session.delete_node(key[1], recursive=False)
            changes.deleted[key[1]] = value
    for key, value in delta.items():
        if key[0] == "node":
            if value is None:
                changes.nodes.pop(key[1], None)
            else:
                assert isinstance(value, NodeChange)
                changes.nodes[key[1]] = value
        elif key[0] == "grid":
            old = changes.min_grid.get(key[1])
            changes.min_grid[key[1]] = (
                value if old is None else tuple(min(a, b) for a, b in zip(old, value))
            )
    for key, value in delta.items():
        if key[0] == "chunk":
            payload: ChunkPayload | None = value
            coords: ChunkCoords = key[2]
            changes.chunks.setdefault(key[1], {})[coords] = payload


def _describe(session: Session, keys: list[_Key]) -> list[Conflict]:
    paths = {n.id: n.path for n in session.iter_nodes()}
    paths.update({n.id: n.path for n in session._snapshot.nodes.values()})
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
