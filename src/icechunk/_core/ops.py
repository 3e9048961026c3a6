"""Public views of the repo info: ops-log entries, repository status, feature flags."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from icechunk._util.clock import us_to_datetime
from icechunk.format.repo_info import Availability, RepoInfo, UpdateKind
from icechunk.format.repo_info import RepoStatus as RawRepoStatus
from icechunk.format.repo_info import Update as RawUpdate


class RepoAvailability(enum.Enum):
    online = 0
    read_only = 1
    offline = 2


class RepoStatus:
    """Whether the repository accepts writes, since when, and why not."""

    def __init__(
        self,
        availability: RepoAvailability,
        set_at: datetime | None = None,
        limited_availability_reason: str | None = None,
    ) -> None:
        self.availability = availability
        self.set_at = set_at or datetime.now(UTC)
        self.limited_availability_reason = limited_availability_reason

    def __repr__(self) -> str:
        reason = (
            f", {self.limited_availability_reason!r}" if self.limited_availability_reason else ""
        )
        return f"RepoStatus({self.availability.name}{reason}, set_at={self.set_at.isoformat()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RepoStatus) and (
            self.availability,
            self.limited_availability_reason,
        ) == (other.availability, other.limited_availability_reason)

    @classmethod
    def _from_raw(cls, raw: RawRepoStatus) -> RepoStatus:
        return cls(RepoAvailability(int(raw.availability)), us_to_datetime(raw.set_at), raw.reason)

    def _to_raw(self) -> RawRepoStatus:
        set_at = self.set_at if self.set_at.tzinfo else self.set_at.replace(tzinfo=UTC)
        return RawRepoStatus(
            Availability(self.availability.value),
            int(set_at.timestamp() * 1_000_000),
            self.limited_availability_reason,
        )


class UpdateType:
    """What an ops-log entry did; one nested class per kind, as in the official package."""

    _fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **fields: Any) -> None:
        for name in self._fields:
            setattr(self, name, fields.get(name))

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(
            getattr(self, f) == getattr(other, f) for f in self._fields
        )


def _kind(name: str, fields: tuple[str, ...]) -> type[UpdateType]:
    return type(name, (UpdateType,), {"_fields": fields, "__qualname__": f"UpdateType.{name}"})


UpdateType.RepoInitialized = _kind("RepoInitialized", ())  # type: ignore[attr-defined]
UpdateType.RepoMigrated = _kind("RepoMigrated", ("from_version", "to_version"))  # type: ignore[attr-defined]
UpdateType.ConfigChanged = _kind("ConfigChanged", ())  # type: ignore[attr-defined]
UpdateType.MetadataChanged = _kind("MetadataChanged", ())  # type: ignore[attr-defined]
UpdateType.TagCreated = _kind("TagCreated", ("name",))  # type: ignore[attr-defined]
UpdateType.TagDeleted = _kind("TagDeleted", ("name", "previous_snap_id"))  # type: ignore[attr-defined]
UpdateType.BranchCreated = _kind("BranchCreated", ("name",))  # type: ignore[attr-defined]
UpdateType.BranchDeleted = _kind("BranchDeleted", ("name", "previous_snap_id"))  # type: ignore[attr-defined]
UpdateType.BranchReset = _kind("BranchReset", ("name", "previous_snap_id"))  # type: ignore[attr-defined]
UpdateType.NewCommit = _kind("NewCommit", ("branch", "new_snap_id"))  # type: ignore[attr-defined]
UpdateType.CommitAmended = _kind(  # type: ignore[attr-defined]
    "CommitAmended", ("branch", "previous_snap_id", "new_snap_id")
)
UpdateType.NewDetachedSnapshot = _kind("NewDetachedSnapshot", ("new_snap_id",))  # type: ignore[attr-defined]
UpdateType.GCRan = _kind("GCRan", ())  # type: ignore[attr-defined]
UpdateType.ExpirationRan = _kind("ExpirationRan", ())  # type: ignore[attr-defined]
UpdateType.FeatureFlagChanged = _kind("FeatureFlagChanged", ("id", "new_value"))  # type: ignore[attr-defined]
UpdateType.RepoStatusChanged = _kind("RepoStatusChanged", ("status",))  # type: ignore[attr-defined]

_KIND_CLASS = {
    UpdateKind.REPO_INITIALIZED: "RepoInitialized",
    UpdateKind.REPO_MIGRATED: "RepoMigrated",
    UpdateKind.CONFIG_CHANGED: "ConfigChanged",
    UpdateKind.METADATA_CHANGED: "MetadataChanged",
    UpdateKind.TAG_CREATED: "TagCreated",
    UpdateKind.TAG_DELETED: "TagDeleted",
    UpdateKind.BRANCH_CREATED: "BranchCreated",
    UpdateKind.BRANCH_DELETED: "BranchDeleted",
    UpdateKind.BRANCH_RESET: "BranchReset",
    UpdateKind.NEW_COMMIT: "NewCommit",
    UpdateKind.COMMIT_AMENDED: "CommitAmended",
    UpdateKind.NEW_DETACHED_SNAPSHOT: "NewDetachedSnapshot",
    UpdateKind.GC_RAN: "GCRan",
    UpdateKind.EXPIRATION_RAN: "ExpirationRan",
    UpdateKind.FEATURE_FLAG_CHANGED: "FeatureFlagChanged",
    UpdateKind.REPO_STATUS_CHANGED: "RepoStatusChanged",
}


@dataclass(frozen=True)
class Update:
    """One entry of the repository's operations log."""

    kind: UpdateType
    updated_at: datetime
    backup_path: str | None = None

    @classmethod
    def _from_raw(cls, raw: RawUpdate) -> Update:
        fields = dict(raw.fields)
        if raw.kind is UpdateKind.FEATURE_FLAG_CHANGED:
            fields["new_value"] = fields.get("new_value") if fields.get("is_set") else None
        if raw.kind is UpdateKind.REPO_STATUS_CHANGED:
            fields["status"] = RepoStatus._from_raw(fields["status"])
        kind_class = getattr(UpdateType, _KIND_CLASS[raw.kind])
        return cls(kind_class(**fields), us_to_datetime(raw.updated_at), raw.backup_path)


@dataclass(frozen=True)
class FeatureFlag:
    """A repository feature that can be switched off (or back on)."""

    id: int
    name: str
    default_enabled: bool
    setting: bool | None

    @property
    def enabled(self) -> bool:
        return self.default_enabled if self.setting is None else self.setting


#: id -> (name, enabled by default)
KNOWN_FEATURE_FLAGS: dict[int, tuple[str, bool]] = {
    3: ("move_node", True),
    4: ("create_tag", True),
    5: ("delete_tag", True),
}

def status_from_raw(raw: RawRepoStatus) -> RepoStatus:
    """The public view of a repo info status."""
    return RepoStatus._from_raw(raw)


def status_to_raw(status: RepoStatus) -> RawRepoStatus:
    """The repo info form of a public status."""
    return status._to_raw()


def update_from_raw(raw: RawUpdate) -> Update:
    """The public view of an ops-log entry."""
    return Update._from_raw(raw)


def feature_flags(info: RepoInfo) -> list[FeatureFlag]:
    """Every known feature flag with its setting in ``info``."""
    enabled = set(info.enabled_feature_flags or [])
    disabled = set(info.disabled_feature_flags or [])
    out = []
    for flag_id, (name, default) in sorted(KNOWN_FEATURE_FLAGS.items()):
        setting = True if flag_id in enabled else False if flag_id in disabled else None
        out.append(FeatureFlag(flag_id, name, default, setting))
    return out


def flag_enabled(info: RepoInfo, name: str) -> bool:
    """Whether the feature ``name`` is on in ``info``."""
    return next(f.enabled for f in feature_flags(info) if f.name == name)


__all__ = ["FeatureFlag", "RepoAvailability", "RepoStatus", "Update", "UpdateType"]
