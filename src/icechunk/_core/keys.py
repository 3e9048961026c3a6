"""Storage keys of the objects that make up a repository."""

from __future__ import annotations

REPO_INFO_KEY = "repo"
SNAPSHOTS = "snapshots/"
MANIFESTS = "manifests/"
TRANSACTIONS = "transactions/"
CHUNKS = "chunks/"
OVERWRITTEN = "overwritten/"
V1_REFS = "refs/"
V1_CONFIG_KEY = "config.yaml"


def snapshot_key(snapshot_id: str) -> str:
    return SNAPSHOTS + snapshot_id


def manifest_key(manifest_id: str) -> str:
    return MANIFESTS + manifest_id


def transaction_key(snapshot_id: str) -> str:
    return TRANSACTIONS + snapshot_id


def chunk_key(chunk_id: str) -> str:
    return CHUNKS + chunk_id


def backup_key(name: str) -> str:
    return OVERWRITTEN + name


def v1_branch_key(name: str) -> str:
    return f"{V1_REFS}branch.{name}/ref.json"


def v1_tag_key(name: str) -> str:
    return f"{V1_REFS}tag.{name}/ref.json"
