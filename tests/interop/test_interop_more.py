"""More round trips between our icechunk and the official package (2.3.0).

Like test_interop.py, but for the repository written by
``scenarios/write_more.py``: datetime / timedelta / string dtypes,
fill-value chunk deletions, a deleted group with children, manifest
splitting from the repo config, a long history, reset branches, a deleted
tag, repo metadata, feature flags, the ops log and the config.  Both
implementations dump the repository with ``dump_repo.py --more`` and the
dumps (including the diff of every commit against its parent) must match.
"""

from __future__ import annotations

import pytest

from tests.helpers import official_env
from tests.interop.test_interop import DUMP_REPO, INITIAL_SNAPSHOT, assert_same_dump, check_ancestry

pytestmark = [pytest.mark.interop, pytest.mark.timeout(official_env.BUILD_TIMEOUT + 900)]

WRITE_MORE = official_env.SCENARIO_DIR / "write_more.py"
PROBE_REFS = ("temp", "never-existed")
LONG_COMMITS = 52

DTYPES = {
    "/t/dt_ns": "datetime64[ns]",
    "/t/dt_s": "datetime64[s]",
    "/t/td_ms": "timedelta64[ms]",
    "/t/td_ns_nat": "timedelta64[ns]",
    "/t/fixed_u": "<U8",
    "/t/fixed_s": "|S8",
    "/t/vlen": "StringDType()",
    "/t/vlen_default": "StringDType()",
}

FILL_VALUES = {
    "/t/dt_ns": {"type": "datetime64", "value": "NaT", "int": -(2**63)},
    "/t/dt_s": {"type": "datetime64", "value": "2000-01-01T00:00:00", "int": 946684800},
    "/t/td_ms": {"type": "timedelta64", "value": "-1 milliseconds", "int": -1},
    "/t/td_ns_nat": {"type": "timedelta64", "value": "NaT", "int": -(2**63)},
    "/t/fixed_u": {"str": "fill"},
    "/t/fixed_s": {"bytes_hex": "7878"},
    "/t/vlen": {"str": "dflt"},
    "/t/vlen_default": {"str": ""},
}

# data_type / fill_value as stored in zarr.json
ZARR_JSON = {
    "/t/dt_ns": (
        {"name": "numpy.datetime64", "configuration": {"unit": "ns", "scale_factor": 1}},
        -(2**63),
    ),
    "/t/td_ms": (
        {"name": "numpy.timedelta64", "configuration": {"unit": "ms", "scale_factor": 1}},
        -1,
    ),
    "/t/fixed_u": ({"name": "fixed_length_utf32", "configuration": {"length_bytes": 32}}, "fill"),
    "/t/fixed_s": (
        {"name": "null_terminated_bytes", "configuration": {"length_bytes": 8}},
        "eHg=",
    ),
    "/t/vlen": ("string", "dflt"),
}

SPLIT_SIZES = [[{"kind": "AnyArray"}, [[{"kind": "Any"}, 4]]]]

COMMIT_METADATA = {
    "int": 1,
    "negative": -(2**40),
    "float": 1.5,
    "tiny": 1e-300,
    "bool_true": True,
    "bool_false": False,
    "null": None,
    "str": "ünï ✓ 🧊",
    "empty_str": "",
    "list": [1, 2.5, "x", None, True, [], {}],
    "object": {"nested": {"deeper": [{"k": "v"}]}},
    "empty_object": {},
    "empty_list": [],
}


def expected_ops_log(summary: dict) -> list[tuple[str, dict]]:
    """The ops log write_more.py produces, oldest first."""
    c = summary["commits"]
    ops = [
        ("RepoInitialized", {}),
        ("ConfigChanged", {}),
        ("NewCommit", {"branch": "main", "new_snap_id": c["m1"]}),
        ("TagCreated", {"name": "temp"}),
        ("NewCommit", {"branch": "main", "new_snap_id": c["m2"]}),
        ("NewCommit", {"branch": "main", "new_snap_id": c["m3"]}),
        ("TagCreated", {"name": "release"}),
        ("NewCommit", {"branch": "main", "new_snap_id": c["m4"]}),
        ("BranchCreated", {"name": "rewound"}),
        ("BranchReset", {"name": "rewound", "previous_snap_id": c["m4"]}),
        ("BranchCreated", {"name": "rewind2"}),
        ("BranchReset", {"name": "rewind2", "previous_snap_id": c["m1"]}),
        ("TagDeleted", {"name": "temp", "previous_snap_id": c["m1"]}),
        ("BranchCreated", {"name": "long"}),
    ]
    ops += [("NewCommit", {"branch": "long", "new_snap_id": sid}) for sid in summary["long"]]
    ops += [
        ("MetadataChanged", {}),
        ("MetadataChanged", {}),
        ("FeatureFlagChanged", {"id": 3, "new_value": False}),
        ("FeatureFlagChanged", {"id": 3, "new_value": None}),
    ]
    return ops


def nodes_at(dump: dict, sid: str) -> dict:
    return dump["snapshots"][sid]["nodes"]


def check_more_dump(dump: dict, summary: dict) -> None:
    """What write_more.py wrote must be visible in the dump."""
    c = summary["commits"]
    assert summary["initial"] == INITIAL_SNAPSHOT
    assert dump["branches"] == summary["branches"]
    assert dump["tags"] == summary["tags"] == {"release": c["m3"]}
    assert dump["branches"] == {
        "main": c["m4"],
        "rewound": c["m2"],
        "rewind2": c["m3"],
        "long": c["long_last"],
    }
    for name in PROBE_REFS:
        for kind in ("tag", "branch"):
            err = dump["probes"][name][kind].get("error")
            assert err is not None and err["NotFoundError"], (name, kind, err)

    main = dump["ancestry"]["branch:main"]
    assert [i["id"] for i in main] == [c[k] for k in ("m4", "m3", "m2", "m1")] + [INITIAL_SNAPSHOT]
    long = dump["ancestry"]["branch:long"]
    assert len(long) == LONG_COMMITS + 1 >= 51
    assert [i["id"] for i in long] == summary["long"][::-1] + [INITIAL_SNAPSHOT]
    assert [i["metadata"] for i in long[:-1]] == [{"i": i} for i in range(LONG_COMMITS)][::-1]
    for chain in (main, long, dump["ancestry"]["branch:rewound"]):
        check_ancestry(chain)
    assert main[3]["metadata"] == COMMIT_METADATA
    assert main[3]["message"] == "m1: dtypes ✓"

    # m1: the new dtypes, their fill values and zarr.json encoding
    m1 = nodes_at(dump, c["m1"])
    for path, dtype in DTYPES.items():
        node = m1[path]
        assert node["dtype"] == dtype, path
        assert node["fill_value"] == FILL_VALUES[path], path
        assert node["shape"] == [7] and node["chunks"] == [3], path
        assert node["chunk_keys"] == ["c/0", "c/1"], path
        assert node["dimension_names"] == ["time"], path
    for path, (data_type, fill) in ZARR_JSON.items():
        assert m1[path]["zarr_json"]["data_type"] == data_type, path
        assert m1[path]["zarr_json"]["fill_value"] == fill, path
    assert m1["/t/vlen"]["data_sha256"] != m1["/t/vlen_default"]["data_sha256"]
    assert {"/tree", "/tree/sub", "/tree/sub/x", "/tree/y"} <= set(m1)

    # m2: chunks written with the fill value are gone, so is /tree
    m2 = nodes_at(dump, c["m2"])
    assert m2["/sparse"]["chunk_keys"] == ["c/0", "c/2"]
    assert m2["/t/dt_ns"]["chunk_keys"] == ["c/0"]
    for path in ("/t/td_ms", "/t/fixed_u", "/t/fixed_s", "/t/vlen"):
        assert m2[path]["chunk_keys"] == ["c/1"], path
    assert m2["/t/vlen_default"]["chunk_keys"] == ["c/0"]
    assert not any(p.startswith("/tree") for p in m2)
    diff2 = dump["snapshots"][c["m2"]]["diff_from_parent"]
    assert diff2["deleted_groups"] == ["/tree", "/tree/sub"]
    assert diff2["deleted_arrays"] == ["/tree/sub/x", "/tree/y"]
    assert diff2["updated_chunks"]["/sparse"] == [[1], [3]]
    assert diff2["updated_chunks"]["/t/dt_ns"] == [[1]]

    # m3 / m4: 1,024 chunks over many manifests; m4 replaces just one
    m4 = nodes_at(dump, c["m4"])
    assert m4["/big"]["nchunks"] == 1024
    assert len(m4["/big"]["chunk_keys"]) == 1024
    assert dump["snapshots"][c["m4"]]["diff_from_parent"]["updated_chunks"] == {"/big": [[5, 7]]}
    assert len(dump["snapshots"][c["m3"]]["diff_from_parent"]["updated_chunks"]["/big"]) == 1024
    more = dump["more"]
    files = more["manifest_files"]
    ids3 = {m[0] for m in files[c["m3"]]}
    ids4 = {m[0] for m in files[c["m4"]]}
    assert sorted(ids3) == summary["manifests"]["m3"]
    assert sorted(ids4) == summary["manifests"]["m4"]
    assert len(ids3) >= 64 + 2, "the 32x32 array should be split 4x4 into 64 manifests"
    assert len(ids4 - ids3) == 1 and len(ids3 - ids4) == 1, (ids4 - ids3, ids3 - ids4)
    assert sum(m[1] for m in files[c["m3"]]) == sum(m[1] for m in files[c["m4"]])
    assert files[INITIAL_SNAPSHOT] == []

    # repository-level state
    assert more["repo_metadata"] == summary["update_metadata_returned"]
    assert more["repo_metadata"] == {
        "owner": "interop",
        "n": 2,
        "nested": {"a": [1, None, 2.5]},
        "flag": False,
        "extra": "ünï",
    }
    assert summary["move_node_enabled_while_off"] is False
    flags = {f["name"]: f for f in more["feature_flags"]}
    assert flags["move_node"]["setting"] is None and flags["move_node"]["enabled"] is True
    for config in (more["config"], more["fetched_config"]):
        assert config == {
            "inline_chunk_threshold_bytes": 64,
            "manifest_is_none": False,
            "split_sizes": SPLIT_SIZES,
        }
    got = [(op["kind"], op["fields"]) for op in reversed(more["ops_log"])]
    want = expected_ops_log(summary)
    for i, (g, w) in enumerate(zip(got, want)):
        kind, fields = g
        assert kind == w[0], (i, g, w)
        assert set(fields) >= set(w[1]), (i, g, w)
        assert {k: fields[k] for k in w[1]} == w[1], (i, g, w)
    assert len(got) == len(want)


def dump(runner, repo):
    return runner(DUMP_REPO, repo, *PROBE_REFS, "--more")


def test_more_ours_writes_official_reads(tmp_path, run_ours, run_official):
    repo = tmp_path / "repo"
    summary = run_ours(WRITE_MORE, repo)
    official = dump(run_official, repo)
    check_more_dump(official, summary)
    ours = dump(run_ours, repo)
    assert_same_dump(ours, official, "ours", "official", tmp_path)


def test_more_official_writes_ours_reads(tmp_path, run_ours, run_official):
    repo = tmp_path / "repo"
    summary = run_official(WRITE_MORE, repo)
    official = dump(run_official, repo)
    check_more_dump(official, summary)
    ours = dump(run_ours, repo)
    assert_same_dump(ours, official, "ours", "official", tmp_path)
