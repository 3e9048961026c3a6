"""Find conflicts between a session's change set and the commits that landed meanwhile."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from icechunk._core.changeset import ChangeSet
from icechunk._core.conflicts import Conflict, ConflictSolver, ConflictType, Resolution
from icechunk.exceptions import BranchNotFoundError, RebaseFailedError
from icechunk.format.manifest import ChunkCoords
from icechunk.format.snapshot import NodeSnapshot, Snapshot
from icechunk.format.transaction_log import TransactionLog

if TYPE_CHECKING:
    from icechunk._core.state import RepoState


@dataclass
class TheirChanges:
    """The union of the transaction logs of the commits we rebase over."""

    updated_arrays: set[str] = field(default_factory=set)
    updated_groups: set[str] = field(default_factory=set)
    chunks: dict[str, set[ChunkCoords]] = field(default_factory=dict)

    @classmethod
    def combine(cls, logs: list[TransactionLog]) -> TheirChanges:
        out = cls()
        for log in logs:
            out.updated_arrays |= log.updated_arrays
            out.updated_groups |= log.updated_groups
            for node_id, coords in log.updated_chunks.items():
                out.chunks.setdefault(node_id, set()).update(coords)
        return out


# A conflict and what to do with our change set if the solver takes their side.
Finding = tuple[Conflict, Callable[[], None] | None]


def _chunk_layout(node: NodeSnapshot) -> dict:
    """The parts of an array's zarr.json that decide what its chunks mean.

    Attributes and dimension names can change under written chunks; shape, data
    type, codecs, fill value or chunking cannot.
    """
    doc = json.loads(node.user_data)
    doc.pop("attributes", None)
    doc.pop("dimension_names", None)
    return doc


def find_conflicts(
    changes: ChangeSet, base: Snapshot, tip: Snapshot, theirs: TheirChanges
) -> list[Finding]:
    """Every conflict between ``changes`` (made on ``base``) and the commits up to ``tip``."""
    findings: list[Finding] = []
    tip_by_id = {n.id: n for n in tip.nodes.values()}
    base_by_id = {n.id: n for n in base.nodes.values()}

    for path, change in changes.nodes.items():
        if change.is_new:
            existing = tip.nodes.get(path)
            if existing is not None and changes.deleted.get(path) != existing.id:
                findings.append(
                    (Conflict(ConflictType.NewNodeConflictsWithExistingNode, path), None)
                )
            parent = path.rsplit("/", 1)[0] or "/"
            if path != "/" and parent not in changes.nodes:
                in_tip = tip.nodes.get(parent)
                gone = parent in base.nodes and in_tip is None
                if (in_tip is not None and in_tip.is_array) or gone:
                    findings.append((Conflict(ConflictType.NewNodeInInvalidGroup, path), None))
            continue
        now = tip_by_id.get(change.id)
        if now is None:
            kind = (
                ConflictType.ZarrMetadataUpdateOfDeletedArray
                if change.is_array
                else ConflictType.ZarrMetadataUpdateOfDeletedGroup
            )
            findings.append((Conflict(kind, path), None))
            continue
        updated = theirs.updated_arrays if change.is_array else theirs.updated_groups
        if change.id in updated and now.user_data != change.user_data:
            findings.append((Conflict(ConflictType.ZarrMetadataDoubleUpdate, path), None))

    for path, node_id in changes.deleted.items():
        now = tip_by_id.get(node_id)
        if now is None:
            continue  # they deleted it too
        was = base_by_id[node_id]
        if was.is_array:
            if node_id in theirs.updated_arrays or theirs.chunks.get(node_id):
                findings.append((Conflict(ConflictType.DeleteOfUpdatedArray, path), None))
        else:
            added_below = [
                p for p in tip.nodes if p.startswith(path.rstrip("/") + "/") and p not in base.nodes
            ]
            if node_id in theirs.updated_groups or added_below:
                findings.append((Conflict(ConflictType.DeleteOfUpdatedGroup, path), None))

    for node_id, ours in changes.chunks.items():
        if not ours or node_id not in base_by_id:
            continue  # chunks of an array created in this session
        path = base_by_id[node_id].path
        now = tip_by_id.get(node_id)
        if now is None:
            findings.append((Conflict(ConflictType.ChunksUpdatedInDeletedArray, path), None))
            continue
        if node_id in theirs.updated_arrays and _chunk_layout(now) != _chunk_layout(
            base_by_id[node_id]
        ):
            findings.append((Conflict(ConflictType.ChunksUpdatedInUpdatedArray, path), None))
        overlap = sorted(set(ours) & theirs.chunks.get(node_id, set()))
        if overlap:

            def take_theirs(ours: dict = ours, overlap: list = overlap) -> None:
                for coords in overlap:
                    ours.pop(coords, None)

            conflict = Conflict(
                ConflictType.ChunkDoubleUpdate, now.path, [list(c) for c in overlap]
            )
            findings.append((conflict, take_theirs))
    # chunks they wrote where our shrink (and regrow) cut the array off
    for node_id, grid in changes.min_grid.items():
        now = tip_by_id.get(node_id)
        if now is None or node_id not in base_by_id:
            continue
        cut = sorted(
            c for c in theirs.chunks.get(node_id, ()) if any(x >= g for x, g in zip(c, grid))
        )
        if cut:
            conflict = Conflict(ConflictType.ChunkDoubleUpdate, now.path, [list(c) for c in cut])
            findings.append((conflict, None))
    return findings


def resolve(findings: list[Finding], solver: object) -> list[Conflict]:
    """Apply the solver's decisions; return the conflicts it could not resolve."""
    failed = []
    decisions = []
    for conflict, take_theirs in findings:
        decision = solver.resolve(conflict)  # type: ignore[attr-defined]
        if decision is Resolution.FAIL or (decision is Resolution.TAKE_THEIRS and not take_theirs):
            failed.append(conflict)
        decisions.append((decision, take_theirs))
    if failed:
        return failed
    for decision, take_theirs in decisions:
        if decision is Resolution.TAKE_THEIRS and take_theirs is not None:
            take_theirs()
    return []


async def rebase_target(
    state: RepoState,
    branch: str,
    base_snapshot: Snapshot,
    changes: ChangeSet,
    solver: ConflictSolver,
) -> Snapshot | None:
    """The branch tip to re-base ``changes`` onto once ``solver`` resolved every conflict.

    None when the session is already at the tip. Raises :class:`RebaseFailedError` with
    the conflicts ``solver`` could not resolve, or when the tip does not descend from the
    session's snapshot.
    """
    info = await state.repo_info()
    tip = info.branches.get(branch)
    if tip is None:
        raise BranchNotFoundError(f"branch {branch!r} no longer exists")
    base = base_snapshot.id
    if tip == base:
        return None
    if changes.moves:
        moved = [
            Conflict(ConflictType.MoveOperationCannotBeRebased, m.from_path) for m in changes.moves
        ]
        raise RebaseFailedError(
            "node moves cannot be rebased: start a new rearrange session on the new tip",
            snapshot=tip,
            conflicts=moved,
        )
    newer: list[str] = []
    current: str | None = tip
    while current is not None and current != base:
        newer.append(current)
        entry = info.snapshots.get(current)
        current = entry.parent_id if entry else None
    if current != base:
        raise RebaseFailedError(
            f"branch {branch!r} was reset to {tip}, which does not descend from this "
            f"session's snapshot {base}: start a new session",
            snapshot=tip,
            conflicts=[],
        )
    objects = state.objects
    logs = await asyncio.gather(*(objects.transaction_log(s) for s in reversed(newer)))
    tip_snapshot = await objects.snapshot(tip)
    findings = find_conflicts(
        changes, base_snapshot, tip_snapshot, TheirChanges.combine(list(logs))
    )
    failed = resolve(findings, solver)
    if failed:
        listing = "; ".join(map(str, failed[:10]))
        more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
        raise RebaseFailedError(
            f"rebase onto {tip} failed with {len(failed)} conflict(s): {listing}{more}",
            snapshot=tip,
            conflicts=failed,
        )
    return tip_snapshot
