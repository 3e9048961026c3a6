"""Conflicts between a session's changes and commits that landed meanwhile, and solvers.

A rebase compares what this session changed (its change set) with what the
newer commits changed (their transaction logs). Each overlap is a
:class:`Conflict`; a solver decides, per conflict, to keep ours, take theirs, or
fail. :class:`ConflictDetector` fails on every conflict; :class:`BasicConflictSolver`
resolves chunk double-writes and deletes of updated nodes as configured.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ConflictType(enum.Enum):
    """Kinds of conflict (same names and values as the official package)."""

    NewNodeConflictsWithExistingNode = 1
    NewNodeInInvalidGroup = 2
    ZarrMetadataDoubleUpdate = 3
    ZarrMetadataUpdateOfDeletedArray = 4
    ZarrMetadataUpdateOfDeletedGroup = 5
    ChunkDoubleUpdate = 6
    ChunksUpdatedInDeletedArray = 7
    ChunksUpdatedInUpdatedArray = 8
    DeleteOfUpdatedArray = 9
    DeleteOfUpdatedGroup = 10
    MoveOperationCannotBeRebased = 11


class VersionSelection(enum.Enum):
    """Which side wins a chunk written by both."""

    Fail = 0
    UseOurs = 1
    UseTheirs = 2


@dataclass(frozen=True)
class Conflict:
    """One conflict: its kind, the node path, and (for chunks) the coordinates."""

    conflict_type: ConflictType
    path: str
    conflicted_chunks: list[list[int]] | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        chunks = ""
        if self.conflicted_chunks:
            shown = self.conflicted_chunks[:5]
            more = len(self.conflicted_chunks) - len(shown)
            chunks = f", chunks={shown}" + (f" (+{more} more)" if more > 0 else "")
        return f"Conflict({self.conflict_type.name}, {self.path!r}{chunks})"

    __str__ = __repr__


class Resolution(enum.Enum):
    """What a solver decided for one conflict."""

    FAIL = 0
    KEEP_OURS = 1
    TAKE_THEIRS = 2


class ConflictSolver:
    """Decides, conflict by conflict, how a rebase proceeds."""

    def resolve(self, conflict: Conflict) -> Resolution:
        raise NotImplementedError


class ConflictDetector(ConflictSolver):
    """Resolve nothing: any conflict makes the rebase fail (and lists them all)."""

    def resolve(self, conflict: Conflict) -> Resolution:
        return Resolution.FAIL

    def __repr__(self) -> str:
        return "ConflictDetector()"


class BasicConflictSolver(ConflictSolver):
    """Resolve chunk double-writes and deletes of updated nodes; fail on the rest."""

    def __init__(
        self,
        *,
        on_chunk_conflict: VersionSelection = VersionSelection.UseOurs,
        fail_on_delete_of_updated_array: bool = False,
        fail_on_delete_of_updated_group: bool = False,
    ) -> None:
        if not isinstance(on_chunk_conflict, VersionSelection):
            from icechunk.exceptions import InvalidInputError

            raise InvalidInputError(
                f"on_chunk_conflict must be an ic.VersionSelection, got {on_chunk_conflict!r}"
            )
        self.on_chunk_conflict = on_chunk_conflict
        self.fail_on_delete_of_updated_array = fail_on_delete_of_updated_array
        self.fail_on_delete_of_updated_group = fail_on_delete_of_updated_group

    def resolve(self, conflict: Conflict) -> Resolution:
        kind = conflict.conflict_type
        if kind is ConflictType.ChunkDoubleUpdate:
            return {
                VersionSelection.Fail: Resolution.FAIL,
                VersionSelection.UseOurs: Resolution.KEEP_OURS,
                VersionSelection.UseTheirs: Resolution.TAKE_THEIRS,
            }[self.on_chunk_conflict]
        if kind is ConflictType.DeleteOfUpdatedArray:
            return Resolution.FAIL if self.fail_on_delete_of_updated_array else Resolution.KEEP_OURS
        if kind is ConflictType.DeleteOfUpdatedGroup:
            return Resolution.FAIL if self.fail_on_delete_of_updated_group else Resolution.KEEP_OURS
        return Resolution.FAIL

    def __repr__(self) -> str:
        return (
            f"BasicConflictSolver(on_chunk_conflict={self.on_chunk_conflict}, "
            f"fail_on_delete_of_updated_array={self.fail_on_delete_of_updated_array}, "
            f"fail_on_delete_of_updated_group={self.fail_on_delete_of_updated_group})"
        )
