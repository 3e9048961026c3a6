"""Interop scenario: one more commit, tag and branch on any repository.

Usage: python commit_generic.py <repo_path> <label>

Runs unchanged under the official icechunk and under ours.  On ``main`` it adds
an array ``from_<label>``, writes one element of the first existing array (by
path) and sets a root attribute; then it tags that commit ``<label>-tag`` and
creates branch ``<label>-branch`` with one commit of its own.  Prints the ids.
"""

import json
import sys

import numpy as np
import zarr

import icechunk as ic


def main(path, label):
    repo = ic.Repository.open(ic.local_filesystem_storage(path))
    s = repo.writable_session("main")
    root = zarr.open_group(s.store, mode="r+")
    arrays = sorted(
        (name, node)
        for name, node in root.members(max_depth=None)
        if isinstance(node, zarr.Array)
        and node.ndim >= 1
        and node.size > 0
        and np.dtype(node.dtype).kind in "iuf"
    )
    touched = None
    if arrays:
        touched, arr = arrays[0]
        arr[(0,) * arr.ndim] = 7
    new = root.create_array(
        f"from_{label}",
        shape=(5, 3),
        chunks=(2, 2),
        dtype="float32",
        fill_value=float("nan"),
        dimension_names=("y", "x"),
        attributes={"by": label},
    )
    new[:4] = np.arange(12, dtype="float32").reshape(4, 3)
    root.attrs[f"touched_by_{label}"] = True
    main_id = s.commit(f"commit by {label}", metadata={"label": label})
    repo.create_tag(f"{label}-tag", main_id)
    repo.create_branch(f"{label}-branch", main_id)
    s = repo.writable_session(f"{label}-branch")
    root = zarr.open_group(s.store, mode="r+")
    root[f"from_{label}"][0, 0] = 42.0
    branch_id = s.commit(f"branch work by {label}")
    print(json.dumps({"main": main_id, "branch": branch_id, "touched": touched}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
