"""Typed exceptions raised by icechunk.

Every error derives from :class:`IcechunkError`. Lookups of things that do not
exist are also :class:`KeyError`; invalid arguments are also :class:`ValueError`,
so code written against the standard exception types keeps working.
"""

from __future__ import annotations


class IcechunkError(Exception):
    """Root of every icechunk exception."""

    def __str__(self) -> str:  # KeyError subclasses would otherwise quote the message
        return str(self.args[0]) if self.args else self.__class__.__name__

    @property
    def message(self) -> str:
        return str(self)


class NotFoundError(IcechunkError, KeyError):
    """Something that was looked up does not exist."""


class RepositoryNotFoundError(NotFoundError):
    """No icechunk repository exists at the given storage location."""


class RefNotFoundError(NotFoundError):
    """A branch or tag does not exist."""


class BranchNotFoundError(RefNotFoundError):
    """The branch does not exist."""


class TagNotFoundError(RefNotFoundError):
    """The tag does not exist."""


class SnapshotNotFoundError(NotFoundError):
    """The snapshot id is not part of the repository."""


class NodeNotFoundError(NotFoundError):
    """No group or array exists at the given path."""


class ObjectNotFoundError(NotFoundError):
    """A storage object (file) is missing."""


class InvalidInputError(IcechunkError, ValueError):
    """An argument has the wrong type or value."""


class AlreadyExistsError(IcechunkError, ValueError):
    """Something being created already exists (repository, branch, tag, node)."""


class RepositoryExistsError(AlreadyExistsError):
    """A repository already exists at the storage location."""


class SessionStateError(IcechunkError):
    """The session cannot do this in its current state (e.g. it already committed)."""


class ReadOnlyError(SessionStateError, ValueError):
    """A write was attempted through a read-only session or repository."""


class FormatError(IcechunkError, ValueError):
    """Data does not follow the Icechunk format."""


class CorruptObjectError(FormatError):
    """A metadata file could not be decoded: wrong header, truncated, or invalid."""


class UnsupportedSpecVersionError(IcechunkError):
    """The repository uses a format version this library cannot handle."""


class StorageError(IcechunkError, OSError):
    """The storage backend failed (I/O error, permission, network)."""


class PreconditionFailedError(StorageError):
    """A conditional write lost: the object exists, or changed since it was read."""


class ConflictError(IcechunkError):
    """The branch tip moved since this session started: someone else committed first.

    ``expected_parent`` is the snapshot the session was based on and
    ``actual_parent`` the branch tip found when trying to commit.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        expected_parent: str | None = None,
        actual_parent: str | None = None,
    ) -> None:
        if message is None:
            message = (
                f"Failed to commit, expected parent: {expected_parent}, "
                f"actual parent: {actual_parent}. Another session committed to this "
                "branch first: rebase the session (session.rebase(ic.ConflictDetector())) "
                "or start a new session and redo the change."
            )
        super().__init__(message)
        self.expected_parent = expected_parent
        self.actual_parent = actual_parent


class RebaseFailedError(ConflictError):
    """Rebasing could not reconcile this session's changes with newer commits.

    ``conflicts`` lists every :class:`~icechunk.Conflict` found; ``snapshot`` is
    the commit the rebase stopped at.
    """

    def __init__(self, message: str, *, snapshot: str | None, conflicts: list) -> None:
        super().__init__(message, expected_parent=None, actual_parent=snapshot)
        self.snapshot = snapshot
        self.conflicts = list(conflicts)


class MergeConflictError(RebaseFailedError):
    """Forked sessions (or a fork and its parent) changed the same things."""
