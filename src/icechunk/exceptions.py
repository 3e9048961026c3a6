"""Typed exceptions raised by icechunk.

Every error derives from :class:`IcechunkError`. Lookups of things that do not
exist are also :class:`KeyError`; invalid arguments are also :class:`ValueError`,
so code written against the standard exception types keeps working.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorKind(enum.StrEnum):
    """Machine-readable category of an error (``err.kind``), as in the official package."""

    ANCESTOR_NODE_NOT_FOUND = "ancestor-node-not-found"
    BAD_KEY_PREFIX = "bad-key-prefix"
    BAD_METADATA = "bad-metadata"
    BAD_PREFIX = "bad-prefix"
    BAD_REDIRECT = "bad-redirect"
    BAD_SNAPSHOT_CHAIN_FOR_DIFF = "bad-snapshot-chain-for-diff"
    BRANCH_ALREADY_EXISTS = "branch-already-exists"
    BRANCH_NOT_FOUND = "branch-not-found"
    BRANCH_UPDATE_CONFLICT = "branch-update-conflict"
    CANNOT_DELETE_MAIN = "cannot-delete-main"
    CANNOT_FORK_READ_ONLY_SESSION = "cannot-fork-read-only-session"
    CANNOT_PARSE_URL = "cannot-parse-url"
    CHUNK_NOT_FOUND = "chunk-not-found"
    COMMIT_CONFLICT = "commit-conflict"
    COMMIT_NOT_ALLOWED = "commit-not-allowed"
    CONCURRENCY = "concurrency"
    CONFIG_DESERIALIZATION = "config-deserialization"
    CONFIG_UPDATED = "config-updated"
    CONFLICTING_PATH_NOT_FOUND = "conflicting-path-not-found"
    DESERIALIZATION = "deserialization"
    DUPLICATE_SNAPSHOT_ID = "duplicate-snapshot-id"
    EMPTY_PREFIX_CREATION = "empty-prefix-creation"
    FEATURE_FLAG_DISABLED = "feature-flag-disabled"
    FLUSH = "flush"
    GC_DELETES_FAILING = "gc-deletes-failing"
    INCONSISTENT_MANIFESTS = "inconsistent-manifests"
    INVALID_ARRAY_METADATA = "invalid-array-metadata"
    INVALID_BYTE_RANGE = "invalid-byte-range"
    INVALID_CHUNK_INDEX = "invalid-chunk-index"
    INVALID_COMMIT_CONFIGURATION = "invalid-commit-configuration"
    INVALID_CREDENTIALS = "invalid-credentials"
    INVALID_FEATURE_FLAG = "invalid-feature-flag"
    INVALID_FILE_FORMAT = "invalid-file-format"
    INVALID_KEY = "invalid-key"
    INVALID_MANIFEST_SPLIT_INDEX = "invalid-manifest-split-index"
    INVALID_OBJECT_SIZE = "invalid-object-size"
    INVALID_PATH = "invalid-path"
    INVALID_REF_NAME = "invalid-ref-name"
    INVALID_REF_TYPE = "invalid-ref-type"
    INVALID_REPOSITORY_MIGRATION = "invalid-repository-migration"
    INVALID_SNAPSHOT_ID = "invalid-snapshot-id"
    INVALID_VIRTUAL_REF = "invalid-virtual-ref"
    IO = "io"
    KEY_NOT_FOUND = "key-not-found"
    MANIFEST_INFO_NOT_FOUND = "manifest-info-not-found"
    MERGE_FAILED = "merge-failed"
    MERGE_NOT_ALLOWED = "merge-not-allowed"
    MOVE_DESTINATION_PARENT_MISSING = "move-destination-parent-missing"
    MOVE_DESTINATION_PARENT_NOT_GROUP = "move-destination-parent-not-group"
    MOVE_INTO_SELF_OR_DESCENDANT = "move-into-self-or-descendant"
    MOVE_WONT_OVERWRITE = "move-wont-overwrite"
    NODE_ALREADY_EXISTS = "node-already-exists"
    NODE_NOT_FOUND = "node-not-found"
    NON_REARRANGE_SESSION = "non-rearrange-session"
    NOT_ALLOWED = "not-allowed"
    NOT_AN_ARRAY = "not-an-array"
    NOT_A_GROUP = "not-a-group"
    NOT_ON_BRANCH = "not-on-branch"
    NO_AMEND_FOR_INITIAL_COMMIT = "no-amend-for-initial-commit"
    NO_CHANGES_TO_COMMIT = "no-changes-to-commit"
    NO_CONTAINER_FOR_VIRTUAL_CHUNK = "no-container-for-virtual-chunk"
    NO_SNAPSHOT = "no-snapshot"
    NO_SNAPSHOT_AT_TIME = "no-snapshot-at-time"
    OBJECT_NOT_FOUND = "object-not-found"
    OBJECT_STORE = "object-store"
    PARENT_DIRECTORY_NOT_CLEAN = "parent-directory-not-clean"
    PARTIAL_VALUES_PANIC = "partial-values-panic"
    PICKLE = "pickle"
    POISON_LOCK = "poison-lock"
    READ_ONLY_REPOSITORY = "read-only-repository"
    READ_ONLY_SESSION = "read-only-session"
    READ_ONLY_STORAGE = "read-only-storage"
    READ_ONLY_STORE = "read-only-store"
    REARRANGE_SESSION_ONLY = "rearrange-session-only"
    REBASE_FAILED = "rebase-failed"
    REBASE_TX_LOG_PRUNED = "rebase-tx-log-pruned"
    REF_NOT_FOUND = "ref-not-found"
    REPOSITORY_NOT_FOUND = "repository-not-found"
    REPO_INFO_UPDATED = "repo-info-updated"
    SEMAPHORE_ACQUIRE = "semaphore-acquire"
    SERIALIZATION = "serialization"
    SNAPSHOT_NOT_FOUND = "snapshot-not-found"
    SNAPSHOT_TIMESTAMP = "snapshot-timestamp"
    STORAGE_CONFIG = "storage-config"
    STORAGE_OTHER = "storage-other"
    TAG_ALREADY_EXISTS = "tag-already-exists"
    TAG_ERROR = "tag-error"
    TAG_NOT_FOUND = "tag-not-found"
    TAG_PREVIOUSLY_DELETED = "tag-previously-deleted"
    THROTTLED = "throttled"
    UNAUTHORIZED_VIRTUAL_CHUNK_CONTAINER = "unauthorized-virtual-chunk-container"
    UNCOMMITTED_CHANGES = "uncommitted-changes"
    UNIMPLEMENTED = "unimplemented"
    UNKNOWN = "unknown"
    UNSUPPORTED_OPERATION_FOR_VERSION = "unsupported-operation-for-version"
    UNSUPPORTED_SPEC_VERSION = "unsupported-spec-version"
    UPDATE_ATTEMPTS_EXHAUSTED = "update-attempts-exhausted"
    VIRTUAL_CHUNK_FETCH = "virtual-chunk-fetch"
    VIRTUAL_CHUNK_MODIFIED = "virtual-chunk-modified"
    ZERO_LENGTH_CHUNK = "zero-length-chunk"


class IcechunkError(Exception):
    """Root of every icechunk exception."""

    kind = ErrorKind.UNKNOWN

    def __str__(self) -> str:  # KeyError subclasses would otherwise quote the message
        return str(self.args[0]) if self.args else self.__class__.__name__

    @property
    def message(self) -> str:
        return str(self)

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword-only arguments, which default exception pickling
        # loses: rebuild from the message and the instance attributes instead.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(
    cls: type[IcechunkError], args: tuple[Any, ...], state: dict[str, Any]
) -> IcechunkError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class NotFoundError(IcechunkError, KeyError):
    """Something that was looked up does not exist."""

    kind = ErrorKind.OBJECT_NOT_FOUND


class RepositoryNotFoundError(NotFoundError):
    """No icechunk repository exists at the given storage location."""

    kind = ErrorKind.REPOSITORY_NOT_FOUND


class RefNotFoundError(NotFoundError):
    """A branch or tag does not exist."""

    kind = ErrorKind.REF_NOT_FOUND


class BranchNotFoundError(RefNotFoundError):
    """The branch does not exist."""

    kind = ErrorKind.BRANCH_NOT_FOUND


class TagNotFoundError(RefNotFoundError):
    """The tag does not exist."""

    kind = ErrorKind.TAG_NOT_FOUND


class SnapshotNotFoundError(NotFoundError):
    """The snapshot id is not part of the repository."""

    kind = ErrorKind.SNAPSHOT_NOT_FOUND


class NodeNotFoundError(NotFoundError):
    """No group or array exists at the given path."""

    kind = ErrorKind.NODE_NOT_FOUND


class ObjectNotFoundError(NotFoundError):
    """A storage object (file) is missing."""

    kind = ErrorKind.OBJECT_NOT_FOUND


class InvalidInputError(IcechunkError, ValueError):
    """An argument has the wrong type or value."""

    kind = ErrorKind.NOT_ALLOWED


class AlreadyExistsError(IcechunkError, ValueError):
    """Something being created already exists (repository, branch, tag, node)."""

    kind = ErrorKind.NODE_ALREADY_EXISTS


class RepositoryExistsError(AlreadyExistsError):
    """A repository already exists at the storage location."""

    kind = ErrorKind.PARENT_DIRECTORY_NOT_CLEAN


class SessionStateError(IcechunkError):
    """The session cannot do this in its current state (e.g. it already committed)."""

    kind = ErrorKind.NOT_ALLOWED


class ReadOnlyError(SessionStateError, ValueError):
    """A write was attempted through a read-only session or repository."""

    kind = ErrorKind.READ_ONLY_SESSION


class FormatError(IcechunkError, ValueError):
    """Data does not follow the Icechunk format."""

    kind = ErrorKind.INVALID_FILE_FORMAT


class CorruptObjectError(FormatError):
    """A metadata file could not be decoded: wrong header, truncated, or invalid."""

    kind = ErrorKind.DESERIALIZATION


class UnsupportedSpecVersionError(FormatError):
    """The repository uses a format version this library cannot handle."""

    kind = ErrorKind.UNSUPPORTED_SPEC_VERSION


class StorageError(IcechunkError, OSError):
    """The storage backend failed (I/O error, permission, network)."""

    kind = ErrorKind.STORAGE_OTHER


class PreconditionFailedError(StorageError):
    """A conditional write lost: the object exists, or changed since it was read."""

    kind = ErrorKind.CONCURRENCY


class ConflictError(IcechunkError):
    """The branch tip moved since this session started: someone else committed first.

    ``expected_parent`` is the snapshot the session was based on and
    ``actual_parent`` the branch tip found when trying to commit.
    """

    kind = ErrorKind.COMMIT_CONFLICT

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

    kind = ErrorKind.REBASE_FAILED

    def __init__(self, message: str, *, snapshot: str | None, conflicts: list[Any]) -> None:
        super().__init__(message, expected_parent=None, actual_parent=None)
        self.snapshot = snapshot
        self.conflicts = list(conflicts)


class MergeConflictError(RebaseFailedError):
    """Forked sessions (or a fork and its parent) changed the same things."""

    kind = ErrorKind.MERGE_FAILED


class InternalError(IcechunkError):
    """A bug in this library: please report it."""

    kind = ErrorKind.UNKNOWN


class InvalidTypeError(InvalidInputError, TypeError):
    """An argument has the wrong type (e.g. a naive datetime where an aware one is needed).

    Also a :class:`TypeError`, which is what the official package raises for these.
    """


class ReadOnlyStorageError(ReadOnlyError):
    """The storage cannot be written (e.g. HTTP storage): maintenance needs write access."""

    kind = ErrorKind.READ_ONLY_STORAGE


class GCDeletesFailingError(StorageError):
    """Garbage collection gave up: too many delete requests failed in a row."""

    kind = ErrorKind.GC_DELETES_FAILING


# -- virtual chunk references ---------------------------------------------------------------


class InvalidVirtualRefError(InvalidInputError):
    """A virtual chunk reference (location, offset, length, checksum) is malformed."""

    kind = ErrorKind.INVALID_VIRTUAL_REF


class NoVirtualChunkContainerError(InvalidInputError):
    """No virtual chunk container of the repository config matches a virtual location."""

    kind = ErrorKind.NO_CONTAINER_FOR_VIRTUAL_CHUNK


class UnauthorizedVirtualChunkContainerError(InvalidInputError):
    """A virtual chunk container exists but was not authorised when opening the repository.

    Pass ``authorize_virtual_chunk_access={url_prefix: credentials}`` to
    ``Repository.open`` (or ``create``/``open_or_create``/``reopen``).
    """

    kind = ErrorKind.UNAUTHORIZED_VIRTUAL_CHUNK_CONTAINER


class InvalidCredentialsError(InvalidInputError):
    """Credentials given for a virtual chunk container do not suit its store."""

    kind = ErrorKind.INVALID_CREDENTIALS


class VirtualChunkFetchError(StorageError):
    """The bytes of a virtual chunk could not be read (missing object, short read, I/O)."""

    kind = ErrorKind.VIRTUAL_CHUNK_FETCH


class VirtualChunkModifiedError(StorageError):
    """The object a virtual chunk points into changed after the reference was written."""

    kind = ErrorKind.VIRTUAL_CHUNK_MODIFIED
