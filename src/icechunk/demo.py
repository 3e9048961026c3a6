"""End-to-end tour of Icechunk on local disk: ``python -m icechunk.demo [PATH]``.

Creates a repository (in a temporary directory unless PATH is given), writes a small synthetic
temperature field through Zarr, commits, overwrites part of it, tags and branches, commits on
the branch, and then travels back in time. Uses only the public ``icechunk`` API, so the same
script runs against the official package too.
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
import zarr

import icechunk as ic


def _short(snapshot_id: str) -> str:
    return snapshot_id[:12]


def run(path: str) -> None:
    print(f"1. Creating a repository at {path}")
    storage = ic.local_filesystem_storage(path)
    repo = ic.Repository.create(storage)

    # --- first commit: a small temperature field -------------------------------------------
    ny, nx, nt = 4, 6, 3
    lat = np.linspace(-60.0, 60.0, ny)
    base = 15.0 + 15.0 * np.cos(np.deg2rad(lat))[None, :, None]  # warm equator, cold poles
    daily = np.arange(nt, dtype=np.float64)[:, None, None] * 0.5  # slow warming over days
    temperature = np.broadcast_to(base + daily, (nt, ny, nx)).astype("float32")

    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    root.attrs["title"] = "icechunk demo"
    arr = root.create_array(
        "temperature",
        shape=temperature.shape,
        chunks=(1, ny, nx // 2),
        dtype="float32",
        dimension_names=("time", "lat", "lon"),
        attributes={"units": "degC", "long_name": "air temperature"},
        fill_value=float("nan"),
    )
    arr[:] = temperature
    first = session.commit("Add temperature field")
    print(f"2. Wrote temperature{temperature.shape} float32 and committed {_short(first)}")

    # --- second commit: overwrite the last day ---------------------------------------------
    session = repo.writable_session("main")
    arr = zarr.open_array(session.store, path="temperature", mode="r+")
    arr[-1, :, :] = -99.0
    second = session.commit("Overwrite the last day with a sentinel")
    print(f"3. Overwrote temperature[-1] with -99.0 and committed {_short(second)}")

    # --- tag the first commit, branch from the second, commit on the branch ----------------
    repo.create_tag("v1", first)
    repo.create_branch("dev", second)
    print(f"4. Tagged {_short(first)} as 'v1' and branched 'dev' from {_short(second)}")

    session = repo.writable_session("dev")
    arr = zarr.open_array(session.store, path="temperature", mode="r+")
    arr[0, 0, :] = 100.0
    arr.attrs["experiment"] = "hot corner"
    dev_commit = session.commit("Experiment on dev: hot first row")
    print(f"5. Committed {_short(dev_commit)} on 'dev' (main is untouched)")

    # --- time travel -----------------------------------------------------------------------
    print("6. Time travel: temperature[:, 0, 0] as seen from")
    views = {
        "tag v1": repo.readonly_session(tag="v1"),
        "branch main": repo.readonly_session(branch="main"),
        "branch dev": repo.readonly_session(branch="dev"),
        f"snapshot {_short(first)}": repo.readonly_session(snapshot_id=first),
    }
    for label, ro in views.items():
        ro_arr = zarr.open_array(ro.store, path="temperature", mode="r")
        values = np.round(ro_arr[:, 0, 0], 2).tolist()
        print(f"   {label:<22} {values}  attrs={dict(ro_arr.attrs)}")

    v1 = zarr.open_array(repo.readonly_session(tag="v1").store, path="temperature", mode="r")
    main = zarr.open_array(repo.readonly_session(branch="main").store, path="temperature", mode="r")
    assert np.array_equal(v1[:], temperature), "tag v1 must show the original data"
    assert float(main[-1, 0, 0]) == -99.0, "main must show the overwrite"
    assert float(main[0, 0, 0]) != 100.0, "main must not see the dev commit"

    # --- history and refs ------------------------------------------------------------------
    print("7. History of 'main' (newest first):")
    for info in repo.ancestry(branch="main"):
        when = info.written_at.isoformat(timespec="seconds")
        print(f"   {info.id}  {when}  {info.message}")

    print(f"8. Branches: {sorted(repo.list_branches())}")
    print(f"   Tags:     {sorted(repo.list_tags())}")

    reopened = ic.Repository.open(ic.local_filesystem_storage(path))
    assert reopened.lookup_branch("dev") == dev_commit
    print("9. Re-opened the repository from disk: 'dev' points at", _short(dev_commit))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        path = os.path.abspath(args[0])
        if os.path.exists(path) and os.listdir(path):
            print(f"error: {path} exists and is not empty; give a new path", file=sys.stderr)
            return 2
        run(path)
        print(f"Done. The repository stays at {path}")
    else:
        with tempfile.TemporaryDirectory(prefix="icechunk-demo-") as tmp:
            run(os.path.join(tmp, "repo"))
        print("Done. The temporary repository has been removed.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
