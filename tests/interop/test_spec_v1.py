"""Spec version 1 against the official package (2.3.0).

(a) the official package writes a spec-1 repository, ours reads it exactly as
    the official package does;
(b) ours upgrades such a repository to spec 2: the result is the one the
    official upgrade produces (same ``repo`` content, same files), both
    packages read it alike and both can keep committing on it;
(c) ours upgrades the ``spec_v1`` fixture (``tests/data/fixtures``) and the official package
    reads and extends it.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from icechunk.format.repo_info import decode_repo_info
from icechunk.format.values import decode_flexbuffer
from tests.helpers import official_env
from tests.helpers.paths import FIXTURES
from tests.interop.test_interop import INITIAL_SNAPSHOT, assert_same_dump, check_ancestry

pytestmark = [pytest.mark.interop, pytest.mark.timeout(official_env.BUILD_TIMEOUT + 900)]

SCENARIOS = official_env.SCENARIO_DIR
WRITE_V1 = SCENARIOS / "write_v1.py"
DUMP_REPO = SCENARIOS / "dump_repo.py"
UPGRADE = SCENARIOS / "upgrade_repo.py"
COMMIT = SCENARIOS / "commit_generic.py"

# names looked up as tags and as branches by dump_repo.py
PROBES = ("doomed", "gone-too", "scratch", "never-existed")
V1_FIXTURE = FIXTURES / "spec_v1" / "repo"


@pytest.fixture(scope="module")
def v1_repo(tmp_path_factory, run_official):
    """A spec-1 repository written by the official package, and its summary."""
    path = tmp_path_factory.mktemp("v1-official") / "repo"
    summary = run_official(WRITE_V1, path)
    return path, summary


def copy_repo(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o700 if p.is_dir() else p.stat().st_mode | 0o600)
    return dst


def dump_both(path, run_ours, run_official, save_dir, probes=PROBES, store_probes=True):
    """Dumps by both packages, which must agree.

    ``store_probes=False`` drops the store edge-case probes of dump_repo.py, which
    are written for write_rich.py repositories (paths that the fixture lacks).
    """
    ours = run_ours(DUMP_REPO, path, *probes)
    official = run_official(DUMP_REPO, path, *probes)
    if not store_probes:
        ours.pop("store_probes")
        official.pop("store_probes")
    assert_same_dump(ours, official, "ours", "official", save_dir)
    return official


def repo_info_view(path: Path) -> dict:
    """The ``repo`` file of ``path`` as plain data, migration time blanked out."""
    info = decode_repo_info((path / "repo").read_bytes())
    out = dataclasses.asdict(info)
    out["config"] = decode_flexbuffer(info.config) if info.config is not None else None
    updates = [dataclasses.asdict(u) for u in info.latest_updates]
    assert updates[0]["kind"] == 2  # RepoMigratedUpdate
    assert updates[0]["fields"] == {"from_version": 1, "to_version": 2}
    updates[0]["updated_at"] = "<now>"
    out["latest_updates"] = updates
    return out


def check_v1_dump(dump: dict, summary: dict) -> None:
    commits = summary["commits"]
    assert dump["branches"] == summary["branches"]
    assert dump["tags"] == summary["tags"]
    assert set(dump["branches"]) == {"main", "dev"}
    assert set(dump["tags"]) == {"v1", "genesis"}
    assert dump["tags"]["genesis"] == INITIAL_SNAPSHOT
    main = dump["ancestry"]["branch:main"]
    assert [i["id"] for i in main] == [commits[c] for c in ("c6", "c5", "c4", "c3", "c2", "c1")] + [
        INITIAL_SNAPSHOT
    ]
    check_ancestry(main)
    check_ancestry(dump["ancestry"]["branch:dev"])
    for name in ("doomed", "gone-too", "scratch", "never-existed"):
        for kind in ("tag", "branch"):
            assert "error" in dump["probes"][name][kind], (name, kind)
    nodes = dump["snapshots"][commits["c6"]]["nodes"]
    assert nodes["/a/int32"]["shape"] == [12, 8]
    assert nodes["/split"]["shape"] == [9, 7]
    assert nodes["/a/float64"]["shape"] == [4, 3]
    assert "/gone" not in nodes
    assert dump["snapshots"][commits["c1"]]["nodes"]["/gone/inner"]["shape"] == [4]
    assert commits["s1"] not in dump["snapshots"]  # only reachable from a deleted branch


# --------------------------------------------------------------------------
# (a) reading


def test_official_writes_v1_ours_reads(v1_repo, run_ours, run_official, tmp_path):
    path, summary = v1_repo
    assert (path / "refs" / "branch.main" / "ref.json").is_file()
    assert (path / "refs" / "tag.doomed" / "ref.json.deleted").is_file()
    assert (path / "config.yaml").is_file()
    assert not (path / "repo").exists()
    official = dump_both(path, run_ours, run_official, tmp_path)
    check_v1_dump(official, summary)


def test_v1_config_yaml_read_like_official(v1_repo, run_ours, run_official):
    path, _ = v1_repo
    script = (
        "import json, sys, icechunk as ic\n"
        "c = ic.Repository.fetch_config(ic.local_filesystem_storage(sys.argv[1]))\n"
        "r = ic.Repository.open(ic.local_filesystem_storage(sys.argv[1]))\n"
        "print(json.dumps({'persisted': c.inline_chunk_threshold_bytes,\n"
        "  'open': r.config.inline_chunk_threshold_bytes,\n"
        "  'split': r.config.manifest.splitting is not None,\n"
        "  'spec': int(r.spec_version)}))\n"
    )
    ours = run_ours(script, path)
    official = run_official(script, path)
    assert ours == official == {"persisted": 64, "open": 64, "split": True, "spec": 1}


# --------------------------------------------------------------------------
# (b) upgrading a repository the official package wrote


def test_ours_upgrades_like_official(v1_repo, run_ours, run_official, tmp_path):
    path, summary = v1_repo
    before = run_official(DUMP_REPO, path, *PROBES)

    ours_copy = copy_repo(path, tmp_path / "ours")
    official_copy = copy_repo(path, tmp_path / "official")

    # dry runs write nothing
    for runner, copy in ((run_ours, ours_copy), (run_official, official_copy)):
        dry = runner(UPGRADE, copy, "--dry-run")
        assert dry["files_after"] == dry["files_before"]
        assert dry["spec_before"] == dry["spec_returned"] == dry["spec_reopened"] == 1

    ours_up = run_ours(UPGRADE, ours_copy)
    official_up = run_official(UPGRADE, official_copy)
    for up in (ours_up, official_up):
        assert up["spec_before"] == 1
        assert up["spec_returned"] == up["spec_reopened"] == 2
        assert up["branches"] == summary["branches"]
        assert up["tags"] == summary["tags"]
    # same files: repo added, refs/ and config.yaml gone, nothing else touched
    ours_files = dict(ours_up["files_after"])
    official_files = dict(official_up["files_after"])
    assert ours_files.pop("repo") and official_files.pop("repo")
    assert ours_files == official_files
    removed = set(ours_up["files_before"]) - set(ours_up["files_after"])
    assert removed == {k for k in ours_up["files_before"] if k.startswith("refs/")} | {
        "config.yaml"
    }
    # same repo info (refs, snapshots, ops log, config, status)
    assert repo_info_view(ours_copy) == repo_info_view(official_copy)

    # both read the upgraded repository as they read the spec-1 one
    after = dump_both(ours_copy, run_ours, run_official, tmp_path)
    assert_same_dump(after, before, "upgraded", "spec-1", tmp_path)

    # and both keep writing on it, on top of each other's commits
    by_official = run_official(COMMIT, ours_copy, "official")
    by_ours = run_ours(COMMIT, ours_copy, "ours")
    final = dump_both(ours_copy, run_ours, run_official, tmp_path)
    assert final["branches"]["main"] == by_ours["main"]
    chain = [i["id"] for i in final["ancestry"]["branch:main"]]
    assert chain[:3] == [by_ours["main"], by_official["main"], summary["commits"]["c6"]]
    check_ancestry(final["ancestry"]["branch:main"])
    assert final["tags"]["official-tag"] == by_official["main"]
    nodes = final["snapshots"][by_ours["main"]]["nodes"]
    assert "/from_official" in nodes and "/from_ours" in nodes


def test_upgrade_twice_refused_like_official(v1_repo, run_ours, run_official, tmp_path):
    path, _ = v1_repo
    copy = copy_repo(path, tmp_path / "repo")
    run_ours(UPGRADE, copy)
    script = (
        "import json, sys, icechunk as ic\n"
        "r = ic.Repository.open(ic.local_filesystem_storage(sys.argv[1]))\n"
        "try:\n"
        "    ic.upgrade_icechunk_repository(r, dry_run=False)\n"
        "    out = {'ok': True}\n"
        "except Exception as e:\n"
        "    out = {'SessionStateError': isinstance(e, ic.SessionStateError),\n"
        "           'IcechunkError': isinstance(e, ic.IcechunkError),\n"
        "           'mentions_version': 'version' in str(e)}\n"
        "print(json.dumps(out))\n"
    )
    ours = run_ours(script, copy)
    official = run_official(script, copy)
    assert (
        ours
        == official
        == {
            "SessionStateError": True,
            "IcechunkError": True,
            "mentions_version": True,
        }
    )


def test_official_upgrade_ours_commits(v1_repo, run_ours, run_official, tmp_path):
    """The other direction: the official package upgrades, ours writes first."""
    path, summary = v1_repo
    copy = copy_repo(path, tmp_path / "repo")
    run_official(UPGRADE, copy, "--keep-v1-files")
    assert (copy / "refs" / "branch.main" / "ref.json").is_file()  # kept, and ignored
    by_ours = run_ours(COMMIT, copy, "ours")
    by_official = run_official(COMMIT, copy, "official")
    final = dump_both(copy, run_ours, run_official, tmp_path)
    chain = [i["id"] for i in final["ancestry"]["branch:main"]]
    assert chain[:3] == [by_official["main"], by_ours["main"], summary["commits"]["c6"]]


# --------------------------------------------------------------------------
# (c) upgrading the spec_v1 fixture


def test_ours_upgrades_fixture_official_reads(run_ours, run_official, tmp_path):
    copy = copy_repo(V1_FIXTURE, tmp_path / "repo")
    probes = ("gone", "never-existed")
    before = dump_both(copy, run_ours, run_official, tmp_path, probes, store_probes=False)
    up = run_ours(UPGRADE, copy)
    assert up["spec_reopened"] == 2
    assert not any(k.startswith("refs/") for k in up["files_after"])
    after = dump_both(copy, run_ours, run_official, tmp_path, probes, store_probes=False)
    assert_same_dump(after, before, "upgraded", "spec-1", tmp_path)

    by_official = run_official(COMMIT, copy, "official")
    by_ours = run_ours(COMMIT, copy, "ours")
    assert by_official["touched"] == by_ours["touched"] == "big"
    final = dump_both(copy, run_ours, run_official, tmp_path, probes, store_probes=False)
    chain = [i["id"] for i in final["ancestry"]["branch:main"]]
    assert chain[:2] == [by_ours["main"], by_official["main"]]
    assert chain[2:] == [i["id"] for i in before["ancestry"]["branch:main"]]
    assert (
        final["snapshots"][by_ours["main"]]["nodes"]["/values"]["attributes"]
        == (before["snapshots"][chain[2]]["nodes"]["/values"]["attributes"])
    )
