"""Interop scenario: build a feature-rich repository on local disk.

Usage: python write_rich.py <repo_path>

Runs unchanged under the official icechunk and under ours: it only imports
``icechunk``, ``zarr`` and ``numpy``.  All data comes from a seeded RNG, so
two runs write the same arrays (ids and timestamps differ, of course).

History written (newest last)::

    main: init - c1 structure - c2 bulk - c3 resize  - c4 deletions - c5 late
                                      |          \\
                         tag "doomed" (deleted)   tag "v1", branch dev - d1

Prints a JSON summary: branch heads, tags, commit ids by label.
"""

import json
import sys

import numpy as np
import zarr

import icechunk as ic

SEED = 20240611

ROOT_ATTRS = {
    "title": "Ünïcødé ✓ 雪 🧊 — interop",
    "nested": {
        "list": [1, 2.5, None, True, "x", {"deep": [[], {}]}],
        "object": {"a": {"b": {"c": "d"}}},
    },
    "empty_object": {},
    "empty_list": [],
    "int_big": 2**62,
    "negative": -7,
    "float": 0.1,
    "bool": False,
    "null": None,
}
A_ATTRS = {"description": "dtype zoo", "κλειδί": "τιμή", "emoji 🐍": ["🦀", "🐍"]}

# dtype -> (fill value, dimension names)
DTYPES = {
    "bool": (True, ("y", "x")),
    "int8": (-1, ("y", "x")),
    "int16": (0, ("y", None)),
    "int32": (-1, ("rows", "cols")),
    "int64": (-(2**62), None),
    "uint8": (255, ("y", "x")),
    "uint16": (0, None),
    "uint32": (7, ("y", "x")),
    "uint64": (2**64 - 1, ("y", "x")),
    "float16": (float("nan"), ("y", "x")),
    "float32": (float("nan"), (None, "x")),
    "float64": (-1.0, ("y", "x")),
    "complex64": (0j, ("y", "x")),
    "complex128": (complex(float("nan"), -1.0), ("y", "x")),
}


def make_data(rng, dtype, shape):
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    if dt.kind == "f":
        data = (rng.standard_normal(shape) * 100).astype(dt)
        flat = data.reshape(-1)
        if flat.size >= 4:
            flat[1] = np.inf
            flat[2] = -0.0
            flat[3] = np.nan
        return data
    if dt.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    raise ValueError(dtype)


def main(path):
    rng = np.random.default_rng(SEED)
    storage = ic.local_filesystem_storage(path)
    repo = ic.Repository.create(storage)
    commits = {}

    # ---- c1: hierarchy, attributes, one small array per dtype ------------
    s = repo.writable_session("main")
    root = zarr.create_group(s.store, attributes=ROOT_ATTRS, zarr_format=3)
    a = root.create_group("a", attributes=A_ATTRS)
    a.create_group("b")  # no attributes
    for dtype, (fill, dims) in DTYPES.items():
        arr = a.create_array(
            dtype,
            shape=(7, 5),
            chunks=(3, 2),
            dtype=dtype,
            fill_value=fill,
            dimension_names=dims,
            attributes={"dtype": dtype, "units": "m/s", "scale": 0.5},
        )
        data = make_data(rng, dtype, (7, 5))
        # rows 5..6 stay unwritten: chunk row 2 is never initialized and
        # chunk row 1 is partly fill value
        arr[:5, :] = data[:5]
    scalar = a.create_array("scalar", shape=(), dtype="float64", fill_value=0.0)
    scalar[...] = 3.25
    a.create_array("empty", shape=(0, 3), chunks=(1, 1), dtype="int32")
    gone = root.create_group("gone", attributes={"doomed": True})
    inner = gone.create_array("inner", shape=(4,), chunks=(2,), dtype="int32")
    inner[:] = np.arange(4, dtype="int32")
    commits["c1"] = s.commit(
        "c1: structure and dtype zoo",
        metadata={"author": "interop-harness", "step": 1},
    )

    # ---- c2: native chunks, mixed inline/native, 1000 chunks, sharding ---
    s = repo.writable_session("main")
    root = zarr.open_group(s.store, mode="r+")
    b = root["a/b"]
    native = b.create_array(
        "native",
        shape=(256, 256),
        chunks=(64, 64),
        dtype="float64",
        dimension_names=("lat", "lon"),
    )
    native[:] = rng.random((256, 256))  # random doubles: incompressible
    mixed = b.create_array("mixed", shape=(8, 512), chunks=(1, 512), dtype="float32")
    mixed_data = np.empty((8, 512), dtype="float32")
    mixed_data[0::2] = rng.random((4, 512), dtype=np.float32)  # 2 KiB, native
    mixed_data[1::2] = np.arange(4, dtype="float32")[:, None] + 1  # constant, inline
    mixed[:] = mixed_data
    many = root.create_array(
        "many",
        shape=(50, 40),
        chunks=(1, 2),
        dtype="int16",
        fill_value=-32768,
        dimension_names=("t", "x"),
    )
    many[:] = rng.integers(-1000, 1000, size=(50, 40), dtype="int16")  # 1000 chunks
    sharded = b.create_array(
        "sharded",
        shape=(64, 48),
        chunks=(8, 8),
        shards=(32, 16),
        dtype="int32",
        fill_value=0,
        attributes={"sharded": True},
    )
    sharded[:40, :] = rng.integers(1, 1 << 20, size=(40, 48), dtype="int32")
    commits["c2"] = s.commit(
        "c2: bulk data",
        metadata={
            "int": 2,
            "float": 0.25,
            "bool": True,
            "null": None,
            "str": "zwei ✓",
            "list": [1, "two", 3.5, None, False],
            "nested": {"k": {"z": [], "e": {}}},
            "negative": -17,
            "big": 2**53 + 1,
        },
    )
    repo.create_tag("doomed", commits["c2"])

    # ---- c3: resize (grow and shrink), chunk overwrite and deletion ------
    s = repo.writable_session("main")
    root = zarr.open_group(s.store, mode="r+")
    grow = root["a/int32"]
    grow.resize((10, 8))
    grow[7:, 5:] = rng.integers(-5, 5, size=(3, 3), dtype="int32")
    shrink = root["a/float64"]
    shrink.resize((4, 3))
    native = root["a/b/native"]
    native[0:64, 0:64] = rng.random((64, 64))
    native[64:128, 0:64] = 0.0  # all fill value: the chunk is deleted
    root.attrs["updated"] = True
    root.attrs["title"] = "Ünïcødé ✓ 雪 🧊 — interop, updated"
    root["a/b"].attrs.update({"k": "v", "empty_list": []})
    commits["c3"] = s.commit("c3: resize ✓", metadata={"op": "resize", "count": 3, "ratio": 0.5})
    repo.create_tag("v1", commits["c3"])

    # ---- dev branch -------------------------------------------------------
    repo.create_branch("dev", commits["c3"])
    s = repo.writable_session("dev")
    root = zarr.open_group(s.store, mode="r+")
    dev_only = root.create_array(
        "dev_only",
        shape=(5, 6),
        chunks=(5, 3),
        dtype="uint16",
        dimension_names=("p", "q"),
        attributes={"branch": "dev"},
    )
    dev_only[:] = rng.integers(0, 60000, size=(5, 6), dtype="uint16")
    root["a/int8"][0, :] = np.arange(5, dtype="int8")
    root["a"].attrs["on_dev"] = [1, 2, 3]
    commits["d1"] = s.commit("d1: work on dev", metadata={"branch": "dev"})

    # ---- c4: deletions, no commit metadata --------------------------------
    repo.delete_tag("doomed")
    s = repo.writable_session("main")
    root = zarr.open_group(s.store, mode="r+")
    del root["a/uint8"]
    del root["gone"]  # a group together with its array
    commits["c4"] = s.commit("c4: deletions")

    # ---- c5: re-create a deleted path, touch a few of the many chunks ----
    s = repo.writable_session("main")
    root = zarr.open_group(s.store, mode="r+")
    reborn = root["a"].create_array(
        "uint8",
        shape=(3,),
        chunks=(2,),
        dtype="float32",
        fill_value=float("nan"),
    )
    reborn[:] = np.array([1.5, -2.5, 4.0], dtype="float32")
    many = root["many"]
    many[10:12, :] = rng.integers(-1000, 1000, size=(2, 40), dtype="int16")
    many[20, 4:8] = -32768  # two chunks back to fill value
    commits["c5"] = s.commit(
        "c5: late changes",
        metadata={"last": True, "list_of_dicts": [{"a": 1}, {"b": [2]}], "pi": 3.14159},
    )

    summary = {
        "branches": {b: repo.lookup_branch(b) for b in sorted(repo.list_branches())},
        "tags": {t: repo.lookup_tag(t) for t in sorted(repo.list_tags())},
        "commits": commits,
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
