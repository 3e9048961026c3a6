"""Repository-level edits of the repo info: metadata, status, feature flags, the ops log."""

from __future__ import annotations

from typing import Any

from icechunk._core import keys
from icechunk._core.ops import (
    KNOWN_FEATURE_FLAGS,
    RepoStatus,
    Update,
    status_to_raw,
    update_from_raw,
)
from icechunk._core.state import RepoState
from icechunk.exceptions import InvalidInputError, ObjectNotFoundError
from icechunk.format.repo_info import RepoInfo, UpdateKind, decode_repo_info
from icechunk.format.repo_info import Update as RawUpdate
from icechunk.format.values import encode_metadata_items


async def save_config(state: RepoState) -> None:
    """Persist the state's configuration in the repo info."""
    data = state.config.to_bytes()

    def mutate(info: RepoInfo) -> RawUpdate:
        info.config = data
        return RawUpdate(UpdateKind.CONFIG_CHANGED, 0)

    await state.update_repo_info(mutate)


async def set_metadata(state: RepoState, metadata: dict[str, Any]) -> None:
    """Replace the repository-level metadata."""
    encode_metadata_items(metadata)  # validates

    def mutate(info: RepoInfo) -> RawUpdate:
        info.metadata = dict(metadata)
        return RawUpdate(UpdateKind.METADATA_CHANGED, 0)

    await state.update_repo_info(mutate)


async def update_metadata(state: RepoState, metadata: dict[str, Any]) -> dict[str, Any]:
    """Merge ``metadata`` into the repository metadata; return the result."""
    encode_metadata_items(metadata)
    result: dict[str, Any] = {}

    def mutate(info: RepoInfo) -> RawUpdate:
        info.metadata = {**info.metadata, **metadata}
        result.clear()
        result.update(info.metadata)
        return RawUpdate(UpdateKind.METADATA_CHANGED, 0)

    await state.update_repo_info(mutate)
    return result


async def set_status(state: RepoState, status: RepoStatus) -> None:
    """Make the repository read-only, offline or online again."""
    if not isinstance(status, RepoStatus):
        raise InvalidInputError(f"status must be an ic.RepoStatus, got {type(status).__name__}")
    raw = status_to_raw(status)

    def mutate(info: RepoInfo) -> RawUpdate:
        info.status = raw
        return RawUpdate(UpdateKind.REPO_STATUS_CHANGED, 0, {"status": raw})

    await state.update_repo_info(mutate, allow_offline=True)


async def set_feature_flag(state: RepoState, name: str, setting: bool | None) -> None:
    """Enable (True), disable (False) or reset to its default (None) a feature."""
    ids = {n: i for i, (n, _) in KNOWN_FEATURE_FLAGS.items()}
    if name not in ids:
        raise InvalidInputError(f"unknown feature flag {name!r}; known: {sorted(ids)}")
    flag = ids[name]

    def mutate(info: RepoInfo) -> RawUpdate:
        enabled = set(info.enabled_feature_flags or [])
        disabled = set(info.disabled_feature_flags or [])
        enabled.discard(flag)
        disabled.discard(flag)
        if setting is True:
            enabled.add(flag)
        elif setting is False:
            disabled.add(flag)
        info.enabled_feature_flags = sorted(enabled) or None
        info.disabled_feature_flags = sorted(disabled) or None
        return RawUpdate(
            UpdateKind.FEATURE_FLAG_CHANGED,
            0,
            {"id": flag, "new_value": bool(setting), "is_set": setting is not None},
        )

    await state.update_repo_info(mutate)


async def ops_log(state: RepoState) -> list[Update]:
    """Every administrative change of the repository, newest first (across backups)."""
    info = await state.repo_info()
    out = [update_from_raw(u) for u in info.latest_updates]
    older = info.repo_before_updates
    seen = set()
    while older is not None and older not in seen:
        seen.add(older)
        try:
            data = await state.storage.get(keys.backup_key(older))
        except ObjectNotFoundError:
            break  # expired history: the log ends here
        backup = decode_repo_info(data)
        out.extend(update_from_raw(u) for u in backup.latest_updates[1:])
        older = backup.repo_before_updates
    return out
