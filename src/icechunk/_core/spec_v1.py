"""Spec-version-1 repositories: refs, ``config.yaml`` and the history they imply.

A spec-1 repository has no ``repo`` file. Its branches and tags are small JSON
files under ``refs/`` (``refs/branch.<name>/ref.json``, ``refs/tag.<name>/ref.json``
holding ``{"snapshot":"<id>"}``); deleting a tag leaves its ``ref.json`` in place
and adds an empty tombstone ``refs/tag.<name>/ref.json.deleted``. Each snapshot
names its parent. The optional repository configuration is ``config.yaml``, the
YAML form (serde) of the same structure a spec-2 ``repo`` file stores as
FlexBuffers.

This module reads all of that, for reading spec-1 repositories and for upgrading
them to spec 2 (:mod:`icechunk._maintenance.migration`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from icechunk._core import keys
from icechunk._core.config import RepositoryConfig
from icechunk.exceptions import (
    CorruptObjectError,
    InvalidInputError,
    ObjectNotFoundError,
    SnapshotNotFoundError,
)
from icechunk.format.ids import normalize_id12
from icechunk.format.repo_info import RepoInfo, SnapshotEntry
from icechunk.format.snapshot import decode_snapshot
from icechunk.format.values import encode_flexbuffer
from icechunk.storage.base import Storage

REF_FILE = "ref.json"
TAG_TOMBSTONE_FILE = "ref.json.deleted"
BRANCH_PREFIX = "branch."
TAG_PREFIX = "tag."


@dataclass
class V1Refs:
    """The refs of a spec-1 repository.

    ``branches`` and ``tags`` are in the order the official package lists them
    (bytewise by name); ``deleted_tags`` maps each tombstoned tag name to the
    snapshot its ``ref.json`` still names (``None`` if that file is gone), in the
    order of the tombstone keys.
    """

    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    deleted_tags: dict[str, str | None] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)  # every object under refs/


def _ref_target(key: str, data: bytes) -> str:
    try:
        value = json.loads(data)
        return normalize_id12(value["snapshot"])
    except (ValueError, KeyError, TypeError, InvalidInputError) as err:
        raise CorruptObjectError(f"ref file {key} is corrupt: {err}") from None


async def read_v1_refs(storage: Storage) -> V1Refs:
    """Branches, live tags and deleted tags of a spec-1 repository."""
    all_keys = await storage.list_keys(keys.V1_REFS)
    present = set(all_keys)
    refs = V1Refs(keys=all_keys)
    branch_names: set[str] = set()
    tag_names: set[str] = set()
    tombstones: list[tuple[str, str]] = []  # (key, tag name)
    for key in all_keys:
        rest = key[len(keys.V1_REFS) :]
        folder, sep, leaf = rest.partition("/")
        if not sep:
            continue
        if folder.startswith(BRANCH_PREFIX):
            if leaf == REF_FILE:
                branch_names.add(folder[len(BRANCH_PREFIX) :])
        elif folder.startswith(TAG_PREFIX):
            name = folder[len(TAG_PREFIX) :]
            if leaf == REF_FILE:
                tag_names.add(name)
            elif leaf == TAG_TOMBSTONE_FILE:
                tombstones.append((key, name))

    async def target(key: str) -> str:
        try:
            return _ref_target(key, await storage.get(key))
        except ObjectNotFoundError:
            raise CorruptObjectError(f"ref file {key} vanished while reading the refs") from None

    branches = sorted(branch_names, key=str.encode)
    tags = sorted(tag_names - {name for _, name in tombstones}, key=str.encode)
    deleted = [name for _, name in sorted(tombstones, key=lambda t: t[0].encode())]
    deleted_with_ref = [n for n in deleted if keys.v1_tag_key(n) in present]

    async def deleted_target(key: str) -> str | None:
        # only informative (the upgrade's ops log): unreadable means unknown
        try:
            return await target(key)
        except CorruptObjectError:
            return None

    targets = await asyncio.gather(
        *(target(keys.v1_branch_key(n)) for n in branches),
        *(target(keys.v1_tag_key(n)) for n in tags),
        *(deleted_target(keys.v1_tag_key(n)) for n in deleted_with_ref),
    )
    found = iter(targets)
    refs.branches = {n: next(found) for n in branches}
    refs.tags = {n: next(found) for n in tags}
    by_name = {n: next(found) for n in deleted_with_ref}
    refs.deleted_tags = {n: by_name.get(n) for n in deleted}
    return refs


async def load_v1_snapshot_entries(
    storage: Storage,
    tips: Iterable[str],
    known: dict[str, SnapshotEntry] | None = None,
) -> dict[str, SnapshotEntry]:
    """Every snapshot reachable from ``tips`` through parent links.

    ``known`` may hold entries fetched earlier (a prefetch); missing ones are read.
    """
    known = known or {}
    entries: dict[str, SnapshotEntry] = {}
    for tip in tips:
        current: str | None = tip
        while current is not None and current not in entries:
            entry = known.get(current)
            if entry is None:
                entry = await read_snapshot_entry(storage, current)
            entries[current] = entry
            current = entry.parent_id
    return entries


async def read_snapshot_entry(storage: Storage, snapshot_id: str) -> SnapshotEntry:
    """The history entry (parent, time, message, metadata) of one snapshot file."""
    try:
        data = await storage.get(keys.snapshot_key(snapshot_id))
    except ObjectNotFoundError:
        raise SnapshotNotFoundError(
            f"snapshot {snapshot_id} not found in {storage.describe()}"
        ) from None
    snap = decode_snapshot(data, snapshot_id)
    return SnapshotEntry(snap.id, snap.parent_id, snap.flushed_at, snap.message, snap.metadata)


async def load_v1_repo_info(storage: Storage, objects: Any = None) -> RepoInfo:
    """The repo info a spec-1 repository implies (no ops log, spec_version 1).

    ``objects`` (unused) keeps the signature of the engine's former loader.
    """
    refs = await read_v1_refs(storage)
    entries = await load_v1_snapshot_entries(
        storage, [*refs.tags.values(), *refs.branches.values()]
    )
    return RepoInfo(
        branches=dict(refs.branches),
        tags=dict(refs.tags),
        deleted_tags=set(refs.deleted_tags),
        snapshots=entries,
        latest_updates=[],
        spec_version=1,
    )


# ---------------------------------------------------------------------------
# config.yaml


class _ConfigLoader(yaml.SafeLoader):
    """YAML 1.2 core-schema scalars (like serde_yaml); ``!Variant value`` -> ``{Variant: value}``."""


_ConfigLoader.yaml_implicit_resolvers = {}
_IMPLICIT = (
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    (
        "tag:yaml.org,2002:int",
        r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$",
        list("-+0123456789"),
    ),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
)
for _tag, _regex, _first in _IMPLICIT:
    _ConfigLoader.add_implicit_resolver(_tag, re.compile(_regex), _first)


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = loader.construct_scalar(node).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


def _construct_variant(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    # serde_yaml writes a non-unit enum variant as a tagged node: `!Axis 0`,
    # `!path_matches {regex: ...}`, `!or [...]`. Its serde shape is {variant: value}.
    if isinstance(node, yaml.MappingNode):
        value: Any = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        plain = yaml.ScalarNode(
            loader.resolve(yaml.ScalarNode, node.value, (True, False)),
            node.value,
            node.start_mark,
            node.end_mark,
        )
        value = loader.construct_object(plain, deep=True)
    return {suffix: value}


_ConfigLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_ConfigLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_ConfigLoader.add_multi_constructor("!", _construct_variant)


def parse_v1_config_yaml(data: bytes | str) -> dict[str, Any]:
    """``config.yaml`` as its serde tree (dicts, lists, scalars; variants as 1-key dicts)."""
    try:
        value = yaml.load(data, Loader=_ConfigLoader)  # noqa: S506 - restricted SafeLoader
    except yaml.YAMLError as err:
        raise CorruptObjectError(f"config.yaml is not valid YAML: {err}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CorruptObjectError("config.yaml is corrupt: it does not hold a mapping")
    return value


def v1_config_to_flexbuffer(data: bytes | str) -> bytes:
    """``config.yaml`` re-encoded the way a spec-2 ``repo`` file stores the config."""
    try:
        return encode_flexbuffer(parse_v1_config_yaml(data), "config.yaml")
    except InvalidInputError as err:
        raise CorruptObjectError(f"config.yaml holds an unsupported value: {err}") from None


async def fetch_v1_config_bytes(storage: Storage) -> bytes | None:
    """The persisted config of a spec-1 repository as FlexBuffers, or None without one."""
    try:
        data = await storage.get(keys.V1_CONFIG_KEY)
    except ObjectNotFoundError:
        return None
    return v1_config_to_flexbuffer(data)


async def fetch_v1_config(storage: Storage) -> RepositoryConfig | None:
    """The persisted :class:`RepositoryConfig` of a spec-1 repository, or None."""
    data = await fetch_v1_config_bytes(storage)
    return None if data is None else RepositoryConfig.from_bytes(data)
