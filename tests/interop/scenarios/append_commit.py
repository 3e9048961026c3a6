"""Interop scenario: continue the history of a repository made by write_rich.py.

Usage: python append_commit.py <repo_path> <label>

Adds one commit on ``main`` (new array, changed data and attributes), a tag
``<label>-tag`` on it and a branch ``<label>-branch`` with one commit of its
own.  Meant to be run by one implementation on a repository the other one
wrote, so that both sides update each other's ``repo`` file.

Prints a JSON summary of the ids it created.
"""

import json
import sys

import numpy as np
import zarr

import icechunk as ic


def main(path, label):
    rng = np.random.default_rng(sum(label.encode()))
    repo = ic.Repository.open(ic.local_filesystem_storage(path))

    s = repo.writable_session("main")
    root = zarr.open_group(s.store, mode="r+")
    arr = root.create_array(
        f"appended_{label}",
        shape=(6, 4),
        chunks=(4, 4),
        dtype="float64",
        fill_value=float("nan"),
        dimension_names=("y", "x"),
        attributes={"by": label},
    )
    arr[:] = rng.standard_normal((6, 4))
    root["many"][0, :] = rng.integers(-5, 5, size=40, dtype="int16")
    root.attrs[f"touched_by_{label}"] = True
    main_id = s.commit(f"append by {label}", metadata={"label": label, "n": 1})
    repo.create_tag(f"{label}-tag", main_id)

    repo.create_branch(f"{label}-branch", main_id)
    s = repo.writable_session(f"{label}-branch")
    root = zarr.open_group(s.store, mode="r+")
    root[f"appended_{label}"][0, 0] = 42.0
    branch_id = s.commit(f"branch work by {label}")

    print(json.dumps({"main": main_id, "branch": branch_id}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
