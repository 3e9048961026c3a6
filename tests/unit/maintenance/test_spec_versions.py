"""Spec versions: reading spec 1, upgrading spec 1 to spec 2, refusing unknown versions.

The spec-1 repository is a private copy of ``tests/data/fixtures/spec_v1`` (written by
the official icechunk 2.3.0 with ``spec_version=1``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import zarr

import icechunk as ic
from icechunk._core.spec_v1 import (
    V1Refs,
    fetch_v1_config,
    parse_v1_config_yaml,
    read_v1_refs,
    v1_config_to_flexbuffer,
)
from icechunk._maintenance.migration import MigrationError, plan_upgrade, synthetic_ops_log
from icechunk.format.header import FileType, decode_file
from icechunk.format.repo_info import (
    Availability,
    SnapshotEntry,
    UpdateKind,
    decode_repo_info,
    encode_repo_info,
)
from icechunk.format.snapshot import decode_snapshot
from icechunk.format.values import decode_flexbuffer
from tests.helpers.paths import FIXTURES

FIXTURE = FIXTURES / "spec_v1"

EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
INITIAL = "1CECHNKREP0F1RSTCMT0"
MAIN_TIP = EXPECTED["branches"]["main"]
SIDE_TIP = EXPECTED["branches"]["side"]
T1 = EXPECTED["tags"]["t1"]
UPGRADE_HINT = r"(?i)upgrade the icechunk"

# config.yaml as icechunk 2.3.0 writes it (serde_yaml: enum variants as !tags)
CONFIG_YAML = """\
inline_chunk_threshold_bytes: 64
get_partial_values_concurrency: null
compression:
  algorithm: null
  level: 5
max_concurrent_requests: null
caching:
  num_snapshot_nodes: 10
  num_chunk_refs: null
storage:
  concurrency:
    max_concurrent_requests_for_object: 5
    ideal_concurrent_request_size: 4096
  unsafe_use_conditional_update: false
  timeouts: null
virtual_chunk_containers:
  s3://bucket/:
    name: null
    url_prefix: s3://bucket/
    store: !s3
      region: us-east-1
      endpoint_url: null
      anonymous: false
manifest:
  preload:
    max_total_refs: 100
    preload_if: !name_matches
      regex: t.*
  splitting:
    split_sizes:
    - - !or
        - !path_matches
          regex: ^/a.*
        - !name_matches
          regex: '1:2'
      - - condition: !Axis 0
          num_chunks: 4
        - condition: !DimensionName x
          num_chunks: 2
        - condition: Any
          num_chunks: 3
    - - any_array
      - - condition: Any
          num_chunks: 5
previous_file: null
num_updates_per_repo_info_file: null
"""


def _make_writable(root: Path) -> None:
    for dirpath, _dirs, names in os.walk(root):
        os.chmod(dirpath, os.stat(dirpath).st_mode | stat.S_IWUSR | stat.S_IXUSR)
        for name in names:
            path = os.path.join(dirpath, name)
            os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)


@pytest.fixture
def v1_path(tmp_path) -> Path:
    path = tmp_path / "repo"
    shutil.copytree(FIXTURE / "repo", path)
    _make_writable(path)
    return path


def storage_of(path: Path):
    return ic.local_filesystem_storage(str(path))


def open_repo(path: Path, config=None) -> ic.Repository:
    return ic.Repository.open(storage_of(path), config=config)


def tree(path: Path) -> dict[str, str]:
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file() and not p.name.endswith(".lock"):
            out[p.relative_to(path).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def read_values(repo: ic.Repository, **version) -> dict[str, np.ndarray]:
    session = repo.readonly_session(**version)
    root = zarr.open_group(session.store, mode="r")
    return {name: arr[...] for name, arr in root.arrays()}


def history(repo: ic.Repository) -> dict[str, list[tuple]]:
    out = {}
    for b in sorted(repo.list_branches()):
        out[b] = [
            (s.id, s.parent_id, s.written_at, s.message, s.metadata)
            for s in repo.ancestry(branch=b)
        ]
    return out


# --------------------------------------------------------------------------
# reading spec 1


def test_v1_read_fixture(v1_path):
    repo = open_repo(v1_path)
    assert repo.spec_version == 1
    assert ic.Repository.exists(storage_of(v1_path))
    assert repo.list_branches() == {"main", "side"}
    assert repo.list_tags() == {"t1"}
    assert repo.lookup_branch("main") == MAIN_TIP
    assert repo.lookup_tag("t1") == T1
    with pytest.raises(ic.TagNotFoundError, match="deleted"):
        repo.lookup_tag("gone")
    for branch, ids in EXPECTED["ancestry_newest_first"].items():
        infos = list(repo.ancestry(branch=branch))
        assert [i.id for i in infos] == ids
        for info in infos:
            exp = EXPECTED["snapshots"][info.id]
            assert info.message == exp["message"]
            assert info.parent_id == exp["parent_id"]
            assert info.metadata == exp["metadata"]
            assert info.written_at.isoformat() == exp["written_at"]
    side = read_values(repo, branch="side")
    assert side["values"][16:].tolist() == [-1.0] * 4
    assert ic.Repository.fetch_config(storage_of(v1_path)) is None


def test_v1_refs_reader(v1_path):
    refs = asyncio.run(read_v1_refs(storage_of(v1_path)))
    assert refs.branches == {"main": MAIN_TIP, "side": SIDE_TIP}
    assert refs.tags == {"t1": T1}
    assert refs.deleted_tags == {"gone": T1}  # the snapshot the tag named when deleted
    assert "refs/tag.gone/ref.json.deleted" in refs.keys
    # a tombstone without its ref.json: deleted, target unknown
    (v1_path / "refs" / "tag.lost").mkdir()
    (v1_path / "refs" / "tag.lost" / "ref.json.deleted").write_bytes(b"")
    refs = asyncio.run(read_v1_refs(storage_of(v1_path)))
    assert refs.deleted_tags["lost"] is None
    assert "lost" not in refs.tags
    # a deleted tag's ref.json is never read for the refs themselves
    (v1_path / "refs" / "tag.gone" / "ref.json").write_text("garbage")
    refs = asyncio.run(read_v1_refs(storage_of(v1_path)))
    assert refs.deleted_tags["gone"] is None
    assert open_repo(v1_path).list_tags() == {"t1"}


def test_v1_corrupt_ref_is_reported(v1_path):
    (v1_path / "refs" / "branch.side" / "ref.json").write_text('{"snap": 1}')
    with pytest.raises(ic.CorruptObjectError, match=r"branch\.side"):
        open_repo(v1_path).list_branches()


def test_v1_writes_are_refused_with_upgrade_hint(v1_path):
    repo = open_repo(v1_path)
    before = tree(v1_path)
    with pytest.raises(ic.UnsupportedSpecVersionError, match="upgrade_icechunk_repository"):
        repo.writable_session("main")
    with pytest.raises(ic.UnsupportedSpecVersionError, match="upgrade_icechunk_repository"):
        repo.create_tag("new", MAIN_TIP)
    assert tree(v1_path) == before


def test_config_yaml_parsing():
    tree_ = parse_v1_config_yaml(CONFIG_YAML)
    split = tree_["manifest"]["splitting"]["split_sizes"]
    assert split[0][0] == {
        "or": [{"path_matches": {"regex": "^/a.*"}}, {"name_matches": {"regex": "1:2"}}]
    }
    assert split[0][1][0] == {"condition": {"Axis": 0}, "num_chunks": 4}
    assert split[0][1][1] == {"condition": {"DimensionName": "x"}, "num_chunks": 2}
    assert split[1] == ["any_array", [{"condition": "Any", "num_chunks": 5}]]
    assert tree_["virtual_chunk_containers"]["s3://bucket/"]["store"] == {
        "s3": {"region": "us-east-1", "endpoint_url": None, "anonymous": False}
    }
    assert tree_["manifest"]["preload"]["preload_if"] == {"name_matches": {"regex": "t.*"}}
    assert tree_["compression"] == {"algorithm": None, "level": 5}
    # YAML 1.2 core scalars, like serde_yaml (no YAML 1.1 yes/no, octal or sexagesimal)
    assert parse_v1_config_yaml("a: yes\nb: 010\nc: 1:20\nd: ~\ne: 0x10\nf: .inf\ng: 1e3") == {
        "a": "yes",
        "b": 10,
        "c": "1:20",
        "d": None,
        "e": 16,
        "f": float("inf"),
        "g": 1000.0,
    }
    assert parse_v1_config_yaml("") == {}
    with pytest.raises(ic.CorruptObjectError):
        parse_v1_config_yaml("- just\n- a list\n")
    with pytest.raises(ic.CorruptObjectError):
        parse_v1_config_yaml("a: [unclosed\n")
    assert decode_flexbuffer(v1_config_to_flexbuffer(CONFIG_YAML)) == tree_


def test_v1_config_yaml_is_the_repository_config(v1_path):
    (v1_path / "config.yaml").write_text(CONFIG_YAML)
    config = asyncio.run(fetch_v1_config(storage_of(v1_path)))
    assert config.inline_chunk_threshold_bytes == 64
    assert config.compression.level == 5
    assert config.splitting is not None
    assert config.splitting.split_sizes_for("/a/b", 2, ("y", "x")) == (4, 2)
    assert config.splitting.split_sizes_for("/q", 1, None) == (5,)

    assert ic.Repository.fetch_config(storage_of(v1_path)).inline_chunk_threshold_bytes == 64
    repo = open_repo(v1_path)
    assert repo.config.inline_chunk_threshold_bytes == 64
    assert repo.config.effective_compression_level == 5
    # explicit settings win over the persisted ones
    repo = open_repo(v1_path, ic.RepositoryConfig(inline_chunk_threshold_bytes=9))
    assert repo.config.inline_chunk_threshold_bytes == 9
    assert repo.config.effective_compression_level == 5


# --------------------------------------------------------------------------
# the synthetic ops log


def _entry(sid, parent, t):
    return SnapshotEntry(sid, parent, t, f"msg {sid}", {})


def test_synthetic_ops_log_order_and_times():
    snaps = {
        "R": _entry("R", None, 1_000_000),
        "A": _entry("A", "R", 2_000_000),
        "B": _entry("B", "A", 3_000_000),
        "D": _entry("D", "A", 2_500_000),
        "E": _entry("E", "D", 2_600_000),
    }
    refs = V1Refs(
        branches={"dev": "E", "main": "B", "zz": "D"},
        tags={"t1": "A", "t2": "A"},
        deleted_tags={"old": "A", "lost": None, "gone": "GONE"},
    )
    log = synthetic_ops_log(refs, snaps)
    got = [(u.kind, u.updated_at, u.fields) for u in reversed(log)]  # oldest first
    assert got == [
        (UpdateKind.REPO_INITIALIZED, 1_000_000, {}),
        # a deleted tag whose snapshot is gone: at the root's time + 1 ms / + 2 ms
        (UpdateKind.TAG_CREATED, 1_001_000, {"name": "gone"}),
        (UpdateKind.TAG_DELETED, 1_002_000, {"name": "gone", "previous_snap_id": "GONE"}),
        (UpdateKind.NEW_COMMIT, 2_000_000, {"branch": "main", "new_snap_id": "A"}),
        (UpdateKind.TAG_CREATED, 2_001_000, {"name": "t1"}),
        (UpdateKind.TAG_CREATED, 2_001_001, {"name": "t2"}),  # ties bumped by 1 µs
        (UpdateKind.TAG_CREATED, 2_001_002, {"name": "old"}),
        (UpdateKind.TAG_DELETED, 2_002_000, {"name": "old", "previous_snap_id": "A"}),
        (UpdateKind.NEW_COMMIT, 2_500_000, {"branch": "dev", "new_snap_id": "D"}),
        # zz's only own snapshot D was attributed to dev already
        (UpdateKind.BRANCH_CREATED, 2_501_000, {"name": "zz"}),
        (UpdateKind.NEW_COMMIT, 2_600_000, {"branch": "dev", "new_snap_id": "E"}),
        (UpdateKind.BRANCH_CREATED, 2_601_000, {"name": "dev"}),
        (UpdateKind.NEW_COMMIT, 3_000_000, {"branch": "main", "new_snap_id": "B"}),
    ]
    times = [u.updated_at for u in log]
    assert times == sorted(times, reverse=True)
    assert len(set(times)) == len(times)
    assert all(u.backup_path is None for u in log)


def test_synthetic_ops_log_without_main():
    assert synthetic_ops_log(V1Refs(branches={"dev": "X"}), {}) == []


# --------------------------------------------------------------------------
# upgrading spec 1 -> spec 2


def test_upgrade_dry_run_writes_nothing(v1_path, caplog):
    repo = open_repo(v1_path)
    before = tree(v1_path)
    with caplog.at_level(logging.INFO, logger="icechunk.migration"):
        returned = ic.upgrade_icechunk_repository(repo, dry_run=True)
    assert tree(v1_path) == before
    assert returned.spec_version == 1 and repo.spec_version == 1
    assert open_repo(v1_path).spec_version == 1
    assert "dry run" in caplog.text
    assert "4 snapshots" in caplog.text  # initial + 3 commits
    with pytest.raises(ic.UnsupportedSpecVersionError):
        repo.writable_session("main")


def test_upgrade_plan_matches_history(v1_path):
    plan = asyncio.run(plan_upgrade(storage_of(v1_path), now_us=4_000_000_000_000_000))
    info = plan.repo_info
    assert info.spec_version == 2
    assert info.branches == EXPECTED["branches"]
    assert info.tags == EXPECTED["tags"]
    assert info.deleted_tags == set(EXPECTED["deleted_tags"])
    assert set(info.snapshots) == set(EXPECTED["snapshots"])
    for sid, entry in info.snapshots.items():
        assert entry.parent_id == EXPECTED["snapshots"][sid]["parent_id"]
        assert entry.message == EXPECTED["snapshots"][sid]["message"]
        assert entry.metadata == EXPECTED["snapshots"][sid]["metadata"]
    t = {sid: e.flushed_at for sid, e in info.snapshots.items()}
    qz3 = EXPECTED["ancestry_newest_first"]["main"][1]
    assert qz3 == T1
    got = [(u.kind, u.updated_at, u.fields) for u in info.latest_updates]
    expected_old_first = sorted(
        [
            (UpdateKind.REPO_INITIALIZED, t[INITIAL], {}),
            (UpdateKind.NEW_COMMIT, t[qz3], {"branch": "main", "new_snap_id": qz3}),
            (UpdateKind.NEW_COMMIT, t[MAIN_TIP], {"branch": "main", "new_snap_id": MAIN_TIP}),
            (UpdateKind.BRANCH_CREATED, t[SIDE_TIP] + 1000, {"name": "side"}),
            (UpdateKind.NEW_COMMIT, t[SIDE_TIP], {"branch": "side", "new_snap_id": SIDE_TIP}),
            (UpdateKind.TAG_CREATED, t[T1] + 1000, {"name": "t1"}),
            (UpdateKind.TAG_CREATED, t[T1] + 1001, {"name": "gone"}),
            (UpdateKind.TAG_DELETED, t[T1] + 2000, {"name": "gone", "previous_snap_id": T1}),
        ],
        key=lambda x: x[1],
    )
    assert (
        got
        == [(UpdateKind.REPO_MIGRATED, 4_000_000_000_000_000, {"from_version": 1, "to_version": 2})]
        + expected_old_first[::-1]
    )
    assert info.status.availability == Availability.ONLINE
    assert info.status.set_at == t[INITIAL]
    assert info.config is None and plan.config_bytes is None
    assert info.metadata == {}
    assert sorted(plan.keys_to_delete) == sorted(
        p.relative_to(v1_path).as_posix() for p in (v1_path / "refs").rglob("*") if p.is_file()
    )
    assert decode_repo_info(plan.repo_info_bytes).branches == info.branches


def test_upgrade(v1_path):
    repo = open_repo(v1_path)
    before_tree = tree(v1_path)
    before_history = history(repo)
    before_values = {b: read_values(repo, branch=b) for b in ("main", "side")}

    new = ic.upgrade_icechunk_repository(repo, dry_run=False)

    after_tree = tree(v1_path)
    assert "repo" in after_tree
    assert not any(k.startswith("refs/") for k in after_tree)
    assert not (v1_path / "refs").exists() or not any((v1_path / "refs").rglob("*.json"))
    # snapshots, manifests, transaction logs and chunks are untouched
    kept = {k: v for k, v in before_tree.items() if not k.startswith("refs/")}
    assert {k: after_tree[k] for k in kept} == kept
    assert set(after_tree) == set(kept) | {"repo"}
    spec, _ = decode_file((v1_path / "repo").read_bytes(), FileType.REPO_INFO, "repo")
    assert spec == 2

    for r in (new, repo, open_repo(v1_path)):
        assert r.spec_version == 2
        assert history(r) == before_history
        assert r.list_tags() == {"t1"}
        with pytest.raises(ic.TagNotFoundError):
            r.lookup_tag("gone")
        for b, values in before_values.items():
            got = read_values(r, branch=b)
            assert got.keys() == values.keys()
            for name in values:
                np.testing.assert_array_equal(got[name], values[name])
    info = decode_repo_info((v1_path / "repo").read_bytes())
    assert info.latest_updates[0].kind == UpdateKind.REPO_MIGRATED
    assert len(info.latest_updates) == 9
    assert "gone" in info.deleted_tags
    # a deleted tag name stays unusable
    with pytest.raises(ic.AlreadyExistsError):
        new.create_tag("gone", MAIN_TIP)


def test_commit_after_upgrade(v1_path):
    repo = open_repo(v1_path)
    ic.upgrade_icechunk_repository(repo, dry_run=False)
    # the object passed in works on the spec-2 repository too
    session = repo.writable_session("main")
    root = zarr.open_group(session.store, mode="r+")
    root["values"][0:3] = [10.0, 11.0, 12.0]
    root["values"].resize((24,))
    root.attrs["after"] = "upgrade"
    new_id = session.commit("after upgrade", metadata={"n": 1})

    fresh = open_repo(v1_path)
    assert fresh.lookup_branch("main") == new_id
    ids = [s.id for s in fresh.ancestry(branch="main")]
    assert ids == [new_id, *EXPECTED["ancestry_newest_first"]["main"]]
    snap = decode_snapshot((v1_path / "snapshots" / new_id).read_bytes(), new_id)
    assert snap.spec_version == 2 and snap.parent_id is None
    root = zarr.open_group(fresh.readonly_session("main").store, mode="r")
    values = root["values"][...]
    before = read_values(fresh, snapshot_id=MAIN_TIP)
    assert values.shape == (24,)
    assert values[:3].tolist() == [10.0, 11.0, 12.0]
    np.testing.assert_array_equal(values[3:20], before["values"][3:20])
    assert root.attrs["after"] == "upgrade"
    assert root.attrs["title"] == "v1 fixture"
    # the unchanged array still points at its spec-1 manifest
    np.testing.assert_array_equal(read_values(fresh, branch="main")["big"], before["big"])
    big_refs = {m.manifest_id for m in snap.nodes["/big"].array.manifests}
    v1_snap = decode_snapshot((v1_path / "snapshots" / MAIN_TIP).read_bytes(), MAIN_TIP)
    assert big_refs == {m.manifest_id for m in v1_snap.nodes["/big"].array.manifests}
    assert big_refs <= {m.id for m in snap.manifest_files}
    diff = fresh.diff(from_snapshot_id=MAIN_TIP, to_branch="main")
    assert diff.updated_arrays == {"/values"} and diff.updated_groups == {"/"}
    # and more ref operations
    fresh.create_tag("after", new_id)
    fresh.create_branch("side2", SIDE_TIP)
    fresh.delete_branch("side")
    assert fresh.list_branches() == {"main", "side2"}
    info = decode_repo_info((v1_path / "repo").read_bytes())
    assert [u.kind for u in info.latest_updates[:5]] == [
        UpdateKind.BRANCH_DELETED,
        UpdateKind.BRANCH_CREATED,
        UpdateKind.TAG_CREATED,
        UpdateKind.NEW_COMMIT,
        UpdateKind.REPO_MIGRATED,
    ]
    assert info.latest_updates[4].backup_path is not None


def test_upgrade_twice_is_refused(v1_path):
    repo = open_repo(v1_path)
    ic.upgrade_icechunk_repository(repo, dry_run=False)
    before = tree(v1_path)
    for r in (repo, open_repo(v1_path)):
        for dry_run in (True, False):
            with pytest.raises(ic.SessionStateError, match="version 1") as err:
                ic.upgrade_icechunk_repository(r, dry_run=dry_run)
            assert isinstance(err.value, MigrationError)
    assert tree(v1_path) == before


def test_upgrade_of_fresh_v2_repository_is_refused(tmp_path):
    repo = ic.Repository.create(storage_of(tmp_path / "v2"))
    with pytest.raises(MigrationError, match="invalid repository version"):
        ic.upgrade_icechunk_repository(repo, dry_run=True)


def test_upgrade_arguments(v1_path):
    repo = open_repo(v1_path)
    with pytest.raises(TypeError):
        ic.upgrade_icechunk_repository(repo)  # dry_run is required, keyword only
    with pytest.raises(ic.InvalidInputError):
        ic.upgrade_icechunk_repository(repo, dry_run=False, prefetch_concurrency=0)
    with pytest.raises(ic.InvalidInputError):
        ic.upgrade_icechunk_repository("not a repo", dry_run=True)
    assert open_repo(v1_path).spec_version == 1


def test_upgrade_keeping_v1_files(v1_path):
    repo = open_repo(v1_path)
    before = tree(v1_path)
    ic.upgrade_icechunk_repository(repo, dry_run=False, delete_unused_v1_files=False)
    after = tree(v1_path)
    assert set(after) == set(before) | {"repo"}
    # once 'repo' exists, refs/ is ignored: a stale v1 ref does not matter
    (v1_path / "refs" / "branch.main" / "ref.json").write_text(json.dumps({"snapshot": INITIAL}))
    assert open_repo(v1_path).lookup_branch("main") == MAIN_TIP


def test_upgrade_with_config(v1_path):
    (v1_path / "config.yaml").write_text(CONFIG_YAML)
    repo = open_repo(v1_path)
    assert repo.config.inline_chunk_threshold_bytes == 64
    new = ic.upgrade_icechunk_repository(repo, dry_run=False)
    assert not (v1_path / "config.yaml").exists()
    info = decode_repo_info((v1_path / "repo").read_bytes())
    assert decode_flexbuffer(info.config) == parse_v1_config_yaml(CONFIG_YAML)
    for r in (new, repo, open_repo(v1_path)):
        assert r.config.inline_chunk_threshold_bytes == 64
        assert r.config.effective_compression_level == 5
        assert r.config.splitting is not None
    assert ic.Repository.fetch_config(storage_of(v1_path)).inline_chunk_threshold_bytes == 64


def test_upgrade_failure_before_switch_leaves_v1(v1_path, monkeypatch):
    """A crash (or a lost race) before 'repo' exists leaves a readable spec-1 repository."""
    repo = open_repo(v1_path)
    before = tree(v1_path)

    async def lost_race(key, data):
        raise ic.PreconditionFailedError(f"{key} exists")

    monkeypatch.setattr(repo.storage, "put_if_absent", lost_race)
    with pytest.raises(MigrationError, match="another process"):
        ic.upgrade_icechunk_repository(repo, dry_run=False)
    assert tree(v1_path) == before
    assert open_repo(v1_path).spec_version == 1
    assert repo.spec_version == 1


def test_upgrade_failure_after_switch_is_undone(v1_path, monkeypatch):
    import icechunk._maintenance.migration as migration_module

    repo = open_repo(v1_path)
    before = tree(v1_path)
    real_open = migration_module.open_repository

    async def broken_open(storage, config=None, *args, **kwargs):
        if await storage.exists("repo"):
            raise ic.CorruptObjectError("simulated failure")
        return await real_open(storage, config, *args, **kwargs)

    # the migration checks the switched repository by opening it
    monkeypatch.setattr(migration_module, "open_repository", broken_open)
    with pytest.raises(MigrationError, match="undone"):
        ic.upgrade_icechunk_repository(repo, dry_run=False)
    monkeypatch.undo()
    assert tree(v1_path) == before
    assert open_repo(v1_path).spec_version == 1


def test_upgrade_in_memory_repository():
    """A spec-1 repository on any storage (here: files copied into memory)."""
    storage = ic.in_memory_storage()

    async def fill():
        for p in (FIXTURE / "repo").rglob("*"):
            if p.is_file():
                await storage.put(p.relative_to(FIXTURE / "repo").as_posix(), p.read_bytes())

    asyncio.run(fill())
    repo = ic.Repository.open(storage)
    assert repo.spec_version == 1
    new = ic.upgrade_icechunk_repository(repo, dry_run=False, prefetch_concurrency=1)
    assert new.spec_version == 2
    assert new.lookup_branch("main") == MAIN_TIP
    assert asyncio.run(storage.list_keys("refs/")) == []


# --------------------------------------------------------------------------
# unknown (newer) spec versions


def _v2_repo(tmp_path) -> tuple[Path, str]:
    path = tmp_path / "v2"
    repo = ic.Repository.create(storage_of(path))
    session = repo.writable_session("main")
    zarr.create_group(session.store, attributes={"x": 1})
    arr = zarr.create_array(session.store, name="a", shape=(4,), chunks=(2,), dtype="int32")
    arr[:] = np.arange(4, dtype="int32")
    return path, session.commit("c1")


def _set_header_byte(path: Path, value: int) -> None:
    data = bytearray(path.read_bytes())
    data[36] = value
    path.write_bytes(bytes(data))


def test_repo_file_with_newer_header_is_refused(tmp_path):
    path, _ = _v2_repo(tmp_path)
    _set_header_byte(path / "repo", 3)
    with pytest.raises(ic.UnsupportedSpecVersionError, match=UPGRADE_HINT):
        open_repo(path)
    assert ic.Repository.exists(storage_of(path))


def test_repo_info_with_newer_spec_version_is_refused(tmp_path):
    path, _ = _v2_repo(tmp_path)
    info = decode_repo_info((path / "repo").read_bytes())
    info.spec_version = 3
    (path / "repo").write_bytes(encode_repo_info(info))
    before = tree(path)
    with pytest.raises(ic.UnsupportedSpecVersionError, match=UPGRADE_HINT):
        open_repo(path)
    assert tree(path) == before


def test_snapshot_with_newer_spec_version_is_refused(tmp_path):
    path, c1 = _v2_repo(tmp_path)
    _set_header_byte(path / "snapshots" / c1, 3)
    repo = open_repo(path)  # the repo file itself is fine
    before = tree(path)
    with pytest.raises(ic.UnsupportedSpecVersionError, match=UPGRADE_HINT):
        repo.readonly_session("main")
    with pytest.raises(ic.UnsupportedSpecVersionError, match=UPGRADE_HINT):
        repo.writable_session("main")
    assert tree(path) == before
    # older snapshots stay readable
    assert repo.readonly_session(snapshot_id=INITIAL).snapshot_id == INITIAL


@pytest.mark.parametrize("folder", ["manifests", "transactions"])
def test_other_files_with_newer_spec_version_are_refused(tmp_path, folder):
    path, c1 = _v2_repo(tmp_path)
    for p in (path / folder).iterdir():
        _set_header_byte(p, 3)
    repo = open_repo(path)
    with pytest.raises(ic.UnsupportedSpecVersionError, match=UPGRADE_HINT):
        if folder == "manifests":
            zarr.open_array(repo.readonly_session("main").store, path="a", mode="r")[...]
        else:
            repo.diff(from_snapshot_id=INITIAL, to_snapshot_id=c1)
