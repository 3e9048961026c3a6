"""Interop scenario: what write_rich.py leaves out.

Usage: python write_more.py <repo_path>

Runs unchanged under the official icechunk and under ours (imports only
``icechunk``, ``zarr`` and ``numpy``; data from a seeded RNG).

* the repository is created with a config (inline threshold, manifest
  splitting every 4 chunks along every dimension), saved with save_config;
* datetime64 / timedelta64 / fixed-length (U8, S8) / variable-length string
  arrays with fill values;
* chunks deleted by fill-value writes, a group with children deleted;
* a 1,024-chunk array spread over many manifests, then a commit changing a
  single chunk;
* a branch "long" with 52 small commits, made from the initial snapshot;
* reset branches, a deleted tag, repo metadata, a feature flag set and unset.

History::

    main:    init - m1 dtypes - m2 deletions - m3 big - m4 one chunk
    rewound: (created at m4) reset to m2
    rewind2: (created at m1) reset to m3 (with from_snapshot_id)
    long:    init - l00 .. l51
    tags:    release -> m3, temp -> m1 (deleted)

Prints a JSON summary: commit ids by label, refs, and what the writer itself
saw (manifest files of m3 and m4).
"""

import json
import sys

import numpy as np
import zarr

import icechunk as ic

SEED = 20250101
LONG_COMMITS = 52

NAT = np.datetime64("NaT", "ns")

# name -> (dtype, fill value, first 5 values written)
DTYPE_ARRAYS = {
    "dt_ns": (
        "datetime64[ns]",
        NAT,
        np.array(
            ["1970-01-01", "2024-02-29T12:34:56.789012345", "NaT", "1677-09-22", "2262-04-11"],
            dtype="datetime64[ns]",
        ),
    ),
    "dt_s": (
        "datetime64[s]",
        np.datetime64("2000-01-01T00:00:00", "s"),
        np.array(
            ["1900-01-01T00:00:01", "2038-01-19T03:14:08", "NaT", "0001-01-01", "9999-12-31"],
            dtype="datetime64[s]",
        ),
    ),
    "td_ms": (
        "timedelta64[ms]",
        np.timedelta64(-1, "ms"),
        np.array([0, 1, -86_400_000, 2**40, -(2**40)], dtype="timedelta64[ms]"),
    ),
    "td_ns_nat": (
        "timedelta64[ns]",
        np.timedelta64("NaT", "ns"),
        np.array([5, "NaT", 7, -8, 9], dtype="timedelta64[ns]"),
    ),
    "fixed_u": ("U8", "fill", np.array(["", "a", "Ünï✓", "雪🧊", "exactly8"], dtype="U8")),
    "fixed_s": ("S8", b"xx", np.array([b"", b"a", b"\x00b", b"\xff\xfe", b"exactly8"], dtype="S8")),
    "vlen": (
        str,
        "dflt",
        np.array(["", "short", "Ünïcødé ✓ 雪 🧊", "x" * 300, "tab\tnew\nline"], dtype=object),
    ),
    "vlen_default": ("string", None, np.array(["a", "", "bb", "ccc", "🐍"], dtype=object)),
}

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

REPO_METADATA = {"owner": "interop", "n": 1, "nested": {"a": [1, None, 2.5]}, "flag": False}
REPO_METADATA_UPDATE = {"n": 2, "extra": "ünï"}


def make_config():
    splitting = ic.ManifestSplittingConfig.from_dict(
        {ic.ManifestSplitCondition.AnyArray(): {ic.ManifestSplitDimCondition.Any(): 4}}
    )
    return ic.RepositoryConfig(
        inline_chunk_threshold_bytes=64,
        manifest=ic.ManifestConfig(splitting=splitting),
    )


def manifest_ids(repo, snapshot_id):
    return sorted(m.id for m in repo.list_manifest_files(snapshot_id))


def main(path):
    rng = np.random.default_rng(SEED)
    storage = ic.local_filesystem_storage(path)
    repo = ic.Repository.create(storage, config=make_config())
    repo.save_config()
    initial = repo.lookup_branch("main")
    commits = {}

    # ---- m1: new dtypes, a tree of groups to delete, a sparse array -------
    s = repo.writable_session("main")
    root = zarr.create_group(s.store, zarr_format=3, attributes={"scenario": "write_more"})
    t = root.create_group("t", attributes={"what": "dtypes"})
    for name, (dtype, fill, values) in DTYPE_ARRAYS.items():
        kwargs = {} if fill is None else {"fill_value": fill}
        arr = t.create_array(
            name, shape=(7,), chunks=(3,), dtype=dtype, dimension_names=("time",), **kwargs
        )
        # elements 5..6 stay unwritten: chunk 2 never initialized
        arr[:5] = values
    tree = root.create_group("tree", attributes={"doomed": True})
    sub = tree.create_group("sub", attributes={"level": 2})
    x = sub.create_array("x", shape=(4, 4), chunks=(2, 2), dtype="float32", fill_value=0.0)
    x[:] = rng.random((4, 4), dtype=np.float32)
    y = tree.create_array("y", shape=(3,), chunks=(3,), dtype="U8", fill_value="")
    y[:] = np.array(["p", "q", "r"], dtype="U8")
    sparse = root.create_array("sparse", shape=(8,), chunks=(2,), dtype="int32", fill_value=0)
    sparse[:] = np.arange(1, 9, dtype="int32")
    commits["m1"] = s.commit("m1: dtypes ✓", metadata=COMMIT_METADATA)
    repo.create_tag("temp", commits["m1"])

    # ---- m2: chunks back to the fill value, a group with children deleted
    s = repo.writable_session("main")
    root = zarr.open_group(s.store, mode="r+")
    root["sparse"][2:4] = 0
    root["sparse"][6:8] = 0
    root["t/dt_ns"][3:6] = NAT
    root["t/td_ms"][0:3] = np.timedelta64(-1, "ms")
    root["t/fixed_u"][0:3] = "fill"
    root["t/fixed_s"][0:3] = b"xx"
    root["t/vlen"][0:3] = "dflt"
    root["t/vlen_default"][3:6] = ""
    del root["tree"]
    commits["m2"] = s.commit("m2: deletions", metadata={"step": 2})

    # ---- m3: 1,024 chunks over many manifests -----------------------------
    s = repo.writable_session("main")
    root = zarr.open_group(s.store, mode="r+")
    big = root.create_array(
        "big",
        shape=(32, 32),
        chunks=(1, 1),
        dtype="int16",
        fill_value=-1,
        dimension_names=("row", "col"),
    )
    big[:] = rng.integers(0, 30000, size=(32, 32), dtype="int16")
    commits["m3"] = s.commit("m3: big", metadata={"step": 3})
    repo.create_tag("release", commits["m3"])

    # ---- m4: a single chunk changes ----------------------------------------
    s = repo.writable_session("main")
    root = zarr.open_group(s.store, mode="r+")
    root["big"][5, 7] = 12345
    commits["m4"] = s.commit("m4: one chunk", metadata={"step": 4})

    # ---- branches reset, tag deleted ---------------------------------------
    repo.create_branch("rewound", commits["m4"])
    repo.reset_branch("rewound", commits["m2"])
    repo.create_branch("rewind2", commits["m1"])
    repo.reset_branch("rewind2", commits["m3"], from_snapshot_id=commits["m1"])
    repo.delete_tag("temp")

    # ---- a long history from the initial snapshot ------------------------
    repo.create_branch("long", initial)
    long_ids = []
    for i in range(LONG_COMMITS):
        s = repo.writable_session("long")
        if i == 0:
            root = zarr.create_group(s.store, zarr_format=3)
            root.create_array("counter", shape=(LONG_COMMITS,), chunks=(4,), dtype="int32")
        else:
            root = zarr.open_group(s.store, mode="r+")
        root["counter"][i] = i + 1
        root.attrs["step"] = i
        long_ids.append(s.commit(f"l{i:02d}", metadata={"i": i}))
    commits["long_last"] = long_ids[-1]

    # ---- repo metadata, feature flags ---------------------------------------
    repo.set_metadata(REPO_METADATA)
    updated = repo.update_metadata(REPO_METADATA_UPDATE)
    repo.set_feature_flag("move_node", False)
    flag_off = {f.name: f.enabled for f in repo.feature_flags()}["move_node"]
    repo.set_feature_flag("move_node", None)

    summary = {
        "initial": initial,
        "commits": commits,
        "long": long_ids,
        "branches": {b: repo.lookup_branch(b) for b in sorted(repo.list_branches())},
        "tags": {t: repo.lookup_tag(t) for t in sorted(repo.list_tags())},
        "manifests": {k: manifest_ids(repo, commits[k]) for k in ("m1", "m2", "m3", "m4")},
        "update_metadata_returned": updated,
        "move_node_enabled_while_off": flag_off,
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
