"""Interop scenario: a small history that touches every kind of metadata record.

Usage: python write_inspect.py <repo_path> [--expire]

Runs unchanged under the official icechunk and under ours (it only imports
``icechunk``, ``zarr`` and ``numpy``).  Written, newest last::

    main: init - c1 arrays - c2 overwrite - c3 move /grp -> /grp2 - c4 (amended: delete
          a chunk and an array, attributes)
    dev:  from c1 - d1 (chunk + attrs); reset to c1 afterwards
    tags: v1 -> c1, doomed -> c1 (deleted); branch tmp created and deleted
    plus a detached snapshot (flush), repository metadata, a feature flag set and
    reset, the status made read-only and online again, and the config saved.

Chunks: ``/mixed`` (int32, 4 chunks of 1024) has chunk 0 constant (stored inline)
and chunks 1-2 random (native); ``/small`` is inline only, ``/grp/big`` native only.

``--expire`` (official package only) then commits c5 and expires everything
older than it, so the repo info records pruned-ancestor transaction logs.

Prints a JSON summary: commit ids by label.
"""

import datetime as dt
import json
import sys
import time

import numpy as np
import zarr

import icechunk as ic

SEED = 20250101


def main(path, expire):
    rng = np.random.default_rng(SEED)
    repo = ic.Repository.create(ic.local_filesystem_storage(path))
    ids = {}

    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    root.attrs["title"] = "inspect ✓"
    grp = root.create_group("grp")
    mixed = root.create_array(
        "mixed", shape=(4096,), chunks=(1024,), dtype="int32", fill_value=0,
        dimension_names=("t",),
    )
    mixed[:1024] = 7
    mixed[1024:3072] = rng.integers(-(2**31), 2**31 - 1, size=2048, dtype="int32")
    small = root.create_array("small", shape=(6,), chunks=(2,), dtype="int8", fill_value=-1)
    small[:] = np.arange(6, dtype="int8")
    big = grp.create_array(
        "big", shape=(40, 30), chunks=(16, 16), dtype="float64", fill_value=float("nan"),
        dimension_names=(None, "x"),
    )
    big[:] = rng.standard_normal((40, 30))
    ids["c1"] = session.commit(
        "c1 arrays",
        metadata={"author": "inspect", "step": 1, "ratio": 0.5, "neg": -3,
                  "nested": {"z": [1, None, True], "a": "b"}, "huge": 2**63},
    )

    repo.create_tag("v1", ids["c1"])
    repo.create_tag("doomed", ids["c1"])
    repo.delete_tag("doomed")
    repo.create_branch("dev", ids["c1"])

    session = repo.writable_session("main")
    zarr.open_array(session.store, path="mixed", mode="r+")[3072:] = 1
    zarr.open_array(session.store, path="grp/big", mode="r+")[:16, :16] = 2.5
    ids["c2"] = session.commit("c2 overwrite")

    session = repo.writable_session("dev")
    zarr.open_array(session.store, path="small", mode="r+")[:2] = 9
    zarr.open_group(store=session.store).attrs["branch"] = "dev"
    ids["d1"] = session.commit("d1 on dev")

    session = repo.rearrange_session("main")
    session.move("/grp", "/grp2")
    ids["c3"] = session.commit("c3 move")

    session = repo.writable_session("main")
    root = zarr.open_group(store=session.store)
    del root["small"]
    ids["c4_first"] = session.commit("c4 delete")
    session = repo.writable_session("main")
    zarr.open_group(store=session.store).attrs["amended"] = True
    ids["c4"] = session.amend("c4 delete, amended")

    session = repo.writable_session("dev")
    zarr.open_group(store=session.store).attrs["detached"] = 1
    ids["detached"] = session.flush("detached snapshot")
    repo.reset_branch("dev", ids["c1"])
    repo.create_branch("tmp", ids["c2"])
    repo.delete_branch("tmp")

    repo.set_metadata({"owner": "inspect", "levels": [1, 2, 3]})
    repo.update_metadata({"ratio": 1.0})
    repo.set_feature_flag("move_node", False)
    repo.set_feature_flag("move_node", None)
    whole_second = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    repo.set_status(ic.RepoStatus(ic.RepoAvailability.read_only, whole_second, "maintenance"))
    repo.set_status(ic.RepoStatus(ic.RepoAvailability.online, whole_second.replace(microsecond=250000)))
    repo.save_config()

    if expire:
        time.sleep(0.05)
        cut = dt.datetime.now(dt.UTC)
        time.sleep(0.05)
        session = repo.writable_session("main")
        zarr.open_array(session.store, path="mixed", mode="r+")[:1024] = 3
        ids["c5"] = session.commit("c5 after the cut")
        ids["expired"] = sorted(repo.expire_snapshots(cut))

    print(json.dumps(ids, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1], "--expire" in sys.argv[2:])
