"""Workload d: many sequential small commits on one branch.

    python commits.py run --path DIR [--commits 100]

Set-up (not timed): a repository with one int32 array of 1,000 elements in chunks of 10,
committed. Then ``commits`` times: a new writable session on ``main``, open the array,
overwrite one whole chunk (no read needed), commit. ``commit_ms`` is the mean time of the
``commit`` call alone; ``cycle_ms`` the mean of the whole iteration (session + write +
commit); ``commit_ms_first10`` / ``commit_ms_last10`` show whether commits slow down as the
history grows.
"""

from __future__ import annotations

import statistics
import sys
import time

import benchlib
import numpy as np
import zarr

ARRAY = "small"


def run(args) -> None:
    repo = benchlib.create_repo(args)
    session = repo.writable_session("main")
    zarr.create_array(store=session.store, name=ARRAY, shape=(1000,), chunks=(10,),
                      dtype="int32", fill_value=0)
    session.commit("create")
    commit_times: list[float] = []
    cycle_times: list[float] = []
    with benchlib.profiled("loop"):
        for i in range(args.commits):
            t0 = time.perf_counter()
            session = repo.writable_session("main")
            arr = zarr.open_array(session.store, path=ARRAY, mode="r+")
            start = (i * 10) % 1000
            arr[start:start + 10] = np.full(10, i + 1, dtype="int32")
            t1 = time.perf_counter()
            session.commit(f"commit {i}")
            t2 = time.perf_counter()
            commit_times.append(t2 - t1)
            cycle_times.append(t2 - t0)
    n_history = sum(1 for _ in repo.ancestry(branch="main"))
    ms = 1000.0
    metrics = {
        "commit_ms": statistics.fmean(commit_times) * ms,
        "commit_ms_median": statistics.median(commit_times) * ms,
        "commit_ms_first10": statistics.fmean(commit_times[:10]) * ms,
        "commit_ms_last10": statistics.fmean(commit_times[-10:]) * ms,
        "cycle_ms": statistics.fmean(cycle_times) * ms,
        "total_s": sum(cycle_times),
    }
    benchlib.emit(metrics, check=n_history)


def main(argv: list[str]) -> None:
    p = benchlib.parser(__doc__.splitlines()[0], ("run",), ("icechunk",))
    p.add_argument("--commits", type=int, default=100)
    args = p.parse_args(argv)
    run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
