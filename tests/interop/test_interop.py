"""Round trips between our icechunk and the official package (2.3.0).

Each test writes a repository with one implementation and has *both*
implementations describe it with ``scenarios/dump_repo.py``; the two
descriptions must be identical.  The scenarios only use the public API, so
the very same scripts run under either package.

The official package lives in its own virtualenv (see tests/helpers/official_env.py).
Set ``ICECHUNK_INTEROP_SELFTEST=1`` to run "ours" with the official package
as well, which checks the harness itself.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import official_env

# the first test of a session may build the official virtualenv (pip install)
pytestmark = [pytest.mark.interop, pytest.mark.timeout(official_env.BUILD_TIMEOUT + 900)]

WRITE_RICH = official_env.SCENARIO_DIR / "write_rich.py"
DUMP_REPO = official_env.SCENARIO_DIR / "dump_repo.py"
APPEND_COMMIT = official_env.SCENARIO_DIR / "append_commit.py"

# names looked up as tags and as branches by dump_repo.py
PROBE_REFS = ("doomed", "never-existed")

INITIAL_SNAPSHOT = "1CECHNKREP0F1RSTCMT0"
MAX_REPORTED_DIFFERENCES = 60


# --------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------


def _short(value, limit=160):
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def iter_differences(left, right, path="$"):
    """Yield a line per difference between two JSON values.

    Strict about types: 1, 1.0 and True are all different."""
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            sub = f"{path}[{key!r}]"
            if key not in right:
                yield f"{sub}: only on the left: {_short(left[key])}"
            elif key not in left:
                yield f"{sub}: only on the right: {_short(right[key])}"
            else:
                yield from iter_differences(left[key], right[key], sub)
        return
    if isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            yield (f"{path}: length {len(left)} != {len(right)}: {_short(left)} != {_short(right)}")
        for i, (a, b) in enumerate(zip(left, right)):
            yield from iter_differences(a, b, f"{path}[{i}]")
        return
    same_type = type(left) is type(right)
    if not same_type or left != right:
        if same_type and isinstance(left, float) and math.isnan(left) and math.isnan(right):
            return
        yield f"{path}: {_short(left)} != {_short(right)}"


_PER_ITEM_PATH = re.compile(r"^\$\['(snapshots|store_probes)'\]\['[^']*'\]")


def summarize_differences(diffs: list[str]) -> list[str]:
    """Fold differences that repeat for every snapshot (or every branch head
    in store_probes) into one line each."""
    groups: dict[str, list[str]] = {}
    for line in diffs:
        key = _PER_ITEM_PATH.sub(r"$['\1'][*]", line)
        groups.setdefault(key, []).append(line)
    out = []
    for key, lines in groups.items():
        out.append(lines[0] if len(lines) == 1 else f"{key}   (x{len(lines)})")
    return out


def assert_same_dump(
    left: dict, right: dict, left_name: str, right_name: str, save_dir: Path
) -> None:
    diffs = list(iter_differences(left, right))
    if not diffs:
        return
    for name, dump in ((left_name, left), (right_name, right)):
        (save_dir / f"dump-{name}.json").write_text(
            json.dumps(dump, sort_keys=True, indent=1, ensure_ascii=False)
        )
    folded = summarize_differences(diffs)
    shown = "\n".join(folded[:MAX_REPORTED_DIFFERENCES])
    more = len(folded) - MAX_REPORTED_DIFFERENCES
    pytest.fail(
        f"{len(diffs)} differences between the dump by {left_name} (left) and "
        f"by {right_name} (right); full dumps saved in {save_dir}\n{shown}"
        + (f"\n... and {more} more" if more > 0 else ""),
        pytrace=False,
    )


# --------------------------------------------------------------------------
# sanity checks of a dump of a write_rich.py repository
# --------------------------------------------------------------------------


def head_nodes(dump: dict, branch: str) -> dict:
    return dump["snapshots"][dump["branches"][branch]]["nodes"]


def check_ancestry(chain: list[dict]) -> None:
    assert chain[-1]["id"] == INITIAL_SNAPSHOT
    assert chain[-1]["message"] == "Repository initialized"
    assert chain[-1]["parent_id"] is None
    for child, parent in itertools.pairwise(chain):
        assert child["parent_id"] == parent["id"]
        child_at = datetime.fromisoformat(child["written_at"])
        assert child_at > datetime.fromisoformat(parent["written_at"])
        assert child_at.utcoffset() == timedelta(0)


def check_rich_dump(dump: dict, summary: dict) -> None:
    """What write_rich.py wrote must be visible in the dump."""
    commits = summary["commits"]
    assert dump["exists"] is True
    assert set(dump["branches"]) == {"main", "dev"}
    assert set(dump["tags"]) == {"v1"}
    assert dump["branches"] == summary["branches"]
    assert dump["tags"] == summary["tags"]
    assert dump["branches"]["main"] == commits["c5"]
    assert dump["branches"]["dev"] == commits["d1"]
    assert dump["tags"]["v1"] == commits["c3"]
    assert dump["session_heads"] == {
        "branch:main": commits["c5"],
        "branch:dev": commits["d1"],
        "tag:v1": commits["c3"],
    }

    main = dump["ancestry"]["branch:main"]
    dev = dump["ancestry"]["branch:dev"]
    v1 = dump["ancestry"]["tag:v1"]
    assert [i["id"] for i in main] == [commits[c] for c in ("c5", "c4", "c3", "c2", "c1")] + [
        INITIAL_SNAPSHOT
    ]
    assert [i["id"] for i in dev] == [commits[c] for c in ("d1", "c3", "c2", "c1")] + [
        INITIAL_SNAPSHOT
    ]
    assert v1 == main[2:]
    assert dev[1:] == main[2:]
    for chain in (main, dev, v1):
        check_ancestry(chain)
    by_id = {i["id"]: i for i in main + dev}
    assert by_id[commits["c1"]]["metadata"] == {"author": "interop-harness", "step": 1}
    assert by_id[commits["c2"]]["metadata"] == {
        "int": 2,
        "float": 0.25,
        "bool": True,
        "null": None,
        "str": "zwei ✓",
        "list": [1, "two", 3.5, None, False],
        "nested": {"k": {"z": [], "e": {}}},
        "negative": -17,
        "big": 2**53 + 1,
    }
    assert by_id[commits["c3"]]["message"] == "c3: resize ✓"
    assert by_id[commits["c4"]]["metadata"] == {}
    assert by_id[commits["c5"]]["metadata"]["list_of_dicts"] == [{"a": 1}, {"b": [2]}]
    assert by_id[INITIAL_SNAPSHOT]["metadata"] == {"__icechunk": {"is_root": True}}

    for sid, snap in dump["snapshots"].items():
        assert snap["session_snapshot_id"] == sid
        assert snap["lookup_snapshot"] == by_id[sid]
        assert snap["num_keys"] == snap["num_unique_keys"]
        for path, node in (snap["nodes"] or {}).items():
            if node["type"] == "array":
                assert node["list_prefix_matches_list"], (sid, path)
    assert dump["snapshots"][INITIAL_SNAPSHOT]["nodes"] is None
    assert dump["snapshots"][INITIAL_SNAPSHOT]["num_keys"] == 0

    # deleted and never-created refs
    for name in PROBE_REFS:
        for kind in ("tag", "branch"):
            err = dump["probes"][name][kind].get("error")
            assert err is not None, (name, kind, dump["probes"][name][kind])
            assert err["NotFoundError"] and err["IcechunkError"], (name, kind, err)

    # c1: full dtype zoo, the group that is deleted later
    c1 = dump["snapshots"][commits["c1"]]["nodes"]
    assert c1["/a/uint8"]["dtype"] == "uint8"
    assert c1["/gone"]["type"] == "group"
    assert c1["/gone/inner"]["shape"] == [4]
    assert c1["/a/float32"]["fill_value"] == "NaN"
    assert c1["/a/complex128"]["fill_value"] == ["NaN", -1.0]
    assert c1["/a/uint64"]["fill_value"] == 2**64 - 1
    assert c1["/a/int16"]["dimension_names"] == ["y", None]
    assert c1["/a/int64"]["dimension_names"] is None
    assert c1["/"]["attributes"]["title"] == "Ünïcødé ✓ 雪 🧊 — interop"
    for dtype in (
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    ):
        node = c1[f"/a/{dtype}"]
        assert node["dtype"] == dtype
        assert node["shape"] == [7, 5] and node["chunks"] == [3, 2]
        # chunk rows 0 and 1 written, row 2 never
        assert node["chunk_keys"] == [f"c/{i}/{j}" for i in range(2) for j in range(3)]

    main_nodes = head_nodes(dump, "main")
    assert main_nodes["/a/int32"]["shape"] == [10, 8]  # grown
    assert main_nodes["/a/float64"]["shape"] == [4, 3]  # shrunk
    assert main_nodes["/a/float64"]["chunk_keys"] == ["c/0/0", "c/0/1", "c/1/0", "c/1/1"]
    assert main_nodes["/a/uint8"]["dtype"] == "float32"  # re-created path
    assert "/gone" not in main_nodes and "/gone/inner" not in main_nodes
    assert "/dev_only" not in main_nodes
    assert main_nodes["/"]["attributes"]["updated"] is True
    assert main_nodes["/a/b"]["attributes"] == {"k": "v", "empty_list": []}
    assert main_nodes["/a/b/sharded"]["shards"] == [32, 16]
    assert len(main_nodes["/a/b/sharded"]["chunk_keys"]) == 6
    assert main_nodes["/many"]["nchunks"] == 1000
    assert len(main_nodes["/many"]["chunk_keys"]) == 998
    assert main_nodes["/a/scalar"]["chunk_keys"] == ["c"]
    assert main_nodes["/a/empty"]["chunk_keys"] == []
    # one native chunk was reset to the fill value (deleted) in c3
    assert "c/1/0" not in main_nodes["/a/b/native"]["chunk_keys"]
    assert len(main_nodes["/a/b/native"]["chunk_keys"]) == 15

    dev_nodes = head_nodes(dump, "dev")
    assert dev_nodes["/dev_only"]["dimension_names"] == ["p", "q"]
    assert dev_nodes["/a/uint8"]["dtype"] == "uint8"
    assert "/gone" in dev_nodes
    assert dev_nodes["/a"]["attributes"]["on_dev"] == [1, 2, 3]

    c4 = dump["snapshots"][commits["c4"]]["diff_from_parent"]
    assert c4["deleted_arrays"] == ["/a/uint8", "/gone/inner"]
    assert c4["deleted_groups"] == ["/gone"]
    c3 = dump["snapshots"][commits["c3"]]["diff_from_parent"]
    assert c3["updated_arrays"] == ["/a/float64", "/a/int32"]

    probes = dump["store_probes"]["main"]
    assert probes["exists a/int8/c/0/0"] == {"ok": True}
    assert probes["exists a/int8/c/2/2"] == {"ok": False}
    assert probes["get nope/zarr.json"] == {"ok": None}


def check_storage_layout(repo: Path, dump: dict) -> None:
    """Large random chunks are stored as chunk objects, small ones inline."""
    chunk_files = [p for p in (repo / "chunks").iterdir() if p.is_file()]
    main_nodes = head_nodes(dump, "main")
    native = main_nodes["/a/b/native"]["chunk_keys"]
    assert len(chunk_files) >= len(native)
    total_keys = sum(len(n.get("chunk_keys") or []) for n in main_nodes.values())
    assert len(chunk_files) < total_keys, "expected small chunks to be inline"
    for sub in ("snapshots", "manifests", "transactions"):
        assert (repo / sub).is_dir(), sub
    assert (repo / "repo").is_file()


def dump_both(repo: Path, run_ours, run_official, save_dir: Path):
    ours = run_ours(DUMP_REPO, repo, *PROBE_REFS)
    official = run_official(DUMP_REPO, repo, *PROBE_REFS)
    assert_same_dump(ours, official, "ours", "official", save_dir)
    return ours, official


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------


def test_ours_writes_official_reads(tmp_path, run_ours, run_official):
    repo = tmp_path / "repo"
    summary = run_ours(WRITE_RICH, repo)
    official = run_official(DUMP_REPO, repo, *PROBE_REFS)
    check_rich_dump(official, summary)
    check_storage_layout(repo, official)
    ours = run_ours(DUMP_REPO, repo, *PROBE_REFS)
    assert_same_dump(ours, official, "ours", "official", tmp_path)


def test_official_writes_ours_reads(tmp_path, run_ours, run_official):
    repo = tmp_path / "repo"
    summary = run_official(WRITE_RICH, repo)
    ours = run_ours(DUMP_REPO, repo, *PROBE_REFS)
    official = run_official(DUMP_REPO, repo, *PROBE_REFS)
    check_rich_dump(official, summary)
    check_storage_layout(repo, official)
    assert_same_dump(ours, official, "ours", "official", tmp_path)


@pytest.mark.parametrize("first", ["official", "ours"])
def test_mixed_writers_share_history(tmp_path, run_ours, run_official, first):
    """One implementation creates the repository, then each appends commits,
    tags and branches on top of the other's; both read the result alike."""
    runners = {"ours": run_ours, "official": run_official}
    second = "ours" if first == "official" else "official"
    repo = tmp_path / "repo"
    summary = runners[first](WRITE_RICH, repo)
    appended_2 = runners[second](APPEND_COMMIT, repo, second)
    appended_1 = runners[first](APPEND_COMMIT, repo, first)

    _, official = dump_both(repo, run_ours, run_official, tmp_path)
    assert set(official["branches"]) == {"main", "dev", f"{first}-branch", f"{second}-branch"}
    assert set(official["tags"]) == {"v1", f"{first}-tag", f"{second}-tag"}
    assert official["branches"]["main"] == appended_1["main"]
    assert official["tags"][f"{second}-tag"] == appended_2["main"]
    chain = official["ancestry"]["branch:main"]
    assert [i["id"] for i in chain[:3]] == [
        appended_1["main"],
        appended_2["main"],
        summary["commits"]["c5"],
    ]
    assert len(chain) == 8
    check_ancestry(chain)
    nodes = head_nodes(official, "main")
    assert f"/appended_{first}" in nodes and f"/appended_{second}" in nodes
    assert nodes["/"]["attributes"][f"touched_by_{first}"] is True
    assert nodes["/"]["attributes"][f"touched_by_{second}"] is True


def test_comparison_helper_reports_differences():
    left = {"a": [1, 2.0, {"x": "NaN"}], "b": True, "only_left": None}
    right = {"a": [1, 2, {"x": "NaN"}, 4], "b": 1, "only_right": {}}
    diffs = list(iter_differences(left, right))
    assert diffs == [
        '$[\'a\']: length 3 != 4: [1, 2.0, {"x": "NaN"}] != [1, 2, {"x": "NaN"}, 4]',
        "$['a'][1]: 2.0 != 2",
        "$['b']: true != 1",
        "$['only_left']: only on the left: null",
        "$['only_right']: only on the right: {}",
    ]
    assert list(iter_differences(left, json.loads(json.dumps(left)))) == []


def test_summarize_differences_folds_snapshots():
    diffs = [
        "$['branches']['main']: \"A\" != \"B\"",
        "$['snapshots']['1CECHNKREP0F1RSTCMT0']['num_keys']: 1 != 2",
        "$['snapshots']['29944G672374KD9YH8F0']['num_keys']: 1 != 2",
    ]
    assert summarize_differences(diffs) == [
        diffs[0],
        "$['snapshots'][*]['num_keys']: 1 != 2   (x2)",
    ]
