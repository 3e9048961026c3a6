"""Many processes committing to one branch with ``rebase_with=ConflictDetector()``.

8 spawned processes x 10 commits each, all on ``main`` of one repository, on local
disk and on S3 (a moto server).  Process ``p`` owns elements ``10p .. 10p+9`` of the shared array
``/shared`` (one element per chunk, so the writes are disjoint) and writes one of
them per commit.  Every commit must land -- a rebase over disjoint chunk writes
never fails -- so afterwards:

* the branch has exactly 80 commits on top of the set-up ones, all distinct, each
  message once;
* replaying the branch from oldest to newest, every snapshot holds exactly the
  writes of the commits up to and including it;
* the tip holds all 80 values.

The wall time of the whole run is printed (``-s``) and kept as a test property.
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import icechunk as ic

N_PROCESSES = 8
N_COMMITS = 10
FILL = -1
INITIAL = 2  # "Repository initialized" + "setup"


def value(process: int, attempt: int) -> int:
    return 1000 * (process + 1) + attempt


def writer(storage: ic.Storage, process: int, barrier: Any, results: Any) -> None:
    """A spawned process: 10 commits, each rebased as often as needed."""
    landed: list[tuple[str, int]] = []
    error = None
    try:
        repo = ic.Repository.open(storage)
        barrier.wait(60)
        for attempt in range(N_COMMITS):
            session = repo.writable_session("main")
            array = zarr.open_array(session.store, path="shared", mode="r+")
            array[N_COMMITS * process + attempt] = value(process, attempt)
            snapshot = session.commit(
                f"p{process}-{attempt}",
                metadata={"process": process, "attempt": attempt},
                rebase_with=ic.ConflictDetector(),
            )
            landed.append((snapshot, attempt))
    except BaseException:
        error = traceback.format_exc()
    results.put({"process": process, "landed": landed, "error": error})


@pytest.fixture(params=["local", "s3"])
def shared_storage(request: Any, tmp_path: Path) -> ic.Storage:
    """A storage every spawned process can reach (it travels pickled)."""
    if request.param == "local":
        return ic.local_filesystem_storage(tmp_path / "repo")
    return request.getfixturevalue("moto_s3").storage()


@pytest.mark.slow
def test_8_processes_x_10_commits_with_rebase(
    shared_storage: ic.Storage, record_property: Any
) -> None:
    repo = ic.Repository.create(shared_storage)
    session = repo.writable_session("main")
    zarr.create_array(
        session.store,
        name="shared",
        shape=(N_PROCESSES * N_COMMITS,),
        chunks=(1,),
        dtype="int64",
        fill_value=FILL,
    )
    session.commit("setup")

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(N_PROCESSES + 1)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=writer, args=(shared_storage, p, barrier, results))
        for p in range(N_PROCESSES)
    ]
    for process in processes:
        process.start()
    barrier.wait(120)  # every writer has started and opened the repository
    started = time.monotonic()
    outcomes = [results.get(timeout=240) for _ in processes]
    elapsed = time.monotonic() - started
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    record_property("wall_time_s", round(elapsed, 2))
    print(f"\n{N_PROCESSES} processes x {N_COMMITS} commits with rebase: {elapsed:.2f} s")

    errors = [o["error"] for o in outcomes if o["error"]]
    assert not errors, "\n".join(errors)
    claimed: dict[str, tuple[int, int]] = {}
    for outcome in outcomes:
        assert [a for _, a in outcome["landed"]] == list(range(N_COMMITS))
        for snapshot, attempt in outcome["landed"]:
            assert snapshot not in claimed, f"snapshot {snapshot} reported twice"
            claimed[snapshot] = (outcome["process"], attempt)
    assert len(claimed) == N_PROCESSES * N_COMMITS

    ancestry = list(repo.ancestry(branch="main"))
    ids = [info.id for info in ancestry]
    assert len(ids) == N_PROCESSES * N_COMMITS + INITIAL
    assert len(set(ids)) == len(ids)
    assert set(ids[:-INITIAL]) == set(claimed)  # no lost and no extra commits
    messages = [info.message for info in ancestry[:-INITIAL]]
    assert sorted(messages) == sorted(
        f"p{p}-{a}" for p in range(N_PROCESSES) for a in range(N_COMMITS)
    )
    for child, parent in itertools.pairwise(ancestry):
        assert child.parent_id == parent.id

    # each process's commits land in its own order
    order = {info.id: i for i, info in enumerate(reversed(ancestry))}
    for outcome in outcomes:
        positions = [order[s] for s, _ in outcome["landed"]]
        assert positions == sorted(positions)

    # replay: every snapshot holds exactly the writes so far
    expected = np.full(N_PROCESSES * N_COMMITS, FILL, dtype="int64")
    for info in reversed(ancestry[:-INITIAL]):
        process, attempt = claimed[info.id]
        assert info.message == f"p{process}-{attempt}"
        assert info.metadata == {"process": process, "attempt": attempt}
        expected[N_COMMITS * process + attempt] = value(process, attempt)
        store = repo.readonly_session(snapshot_id=info.id).store
        got = zarr.open_array(store, path="shared", mode="r")[:]
        np.testing.assert_array_equal(got, expected, err_msg=f"at {info.message}")
    tip = zarr.open_array(repo.readonly_session(branch="main").store, path="shared", mode="r")
    assert (tip[:] != FILL).all()
