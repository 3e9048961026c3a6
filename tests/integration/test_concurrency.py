"""Concurrent commits to one branch: every commit either lands or raises ConflictError.

Several writers (processes or threads) each commit repeatedly to branch ``main`` of the
same repository, without rebasing.  Each writer owns the array ``/w{k}`` (created by a
set-up commit) and, in attempt ``i``, writes element ``i`` of it plus an attribute
``i{i}``, then commits ``"w{k}-{i}"``.  A commit whose session was opened on a tip that
has since moved must fail with ``icechunk.ConflictError``; nothing else may go wrong.

What is checked afterwards (:func:`check_outcome`):

* every attempt either landed (returned a snapshot id) or raised ``ConflictError``;
* the landed snapshot ids are distinct and are exactly the commits that the ancestry
  of ``main`` has on top of the two initial ones ("Repository initialized" and the
  set-up commit) -- a commit reported as landed but missing from the branch would be a
  *lost commit*;
* walking the ancestry from oldest to newest, every snapshot holds exactly the writes of
  the commits up to and including it (so each landed commit's own write is visible at
  its own snapshot, earlier writes are never lost, and writes whose commit conflicted
  never appear), and the tip holds every landed write.
"""

from __future__ import annotations

import itertools
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import icechunk as ic

FILL = -1
INITIAL_COMMITS = 2  # "Repository initialized" + the set-up commit
BARRIER_TIMEOUT = 60.0
JOIN_TIMEOUT = 120.0


def value_of(worker: int, attempt: int) -> int:
    """The value worker ``worker`` writes in attempt ``attempt`` (never the fill value)."""
    return 1000 * (worker + 1) + attempt


def setup_repository(storage: ic.Storage, n_workers: int, n_commits: int) -> ic.Repository:
    """Create the repository and commit one array ``/w{k}`` per worker, all fill values."""
    repo = ic.Repository.create(storage)
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    for k in range(n_workers):
        root.create_array(f"w{k}", shape=(n_commits,), chunks=(1,), dtype="int64", fill_value=FILL)
    session.commit("set up one array per worker")
    return repo


def commit_loop(
    repo: ic.Repository,
    worker: int,
    n_commits: int,
    barrier: Any,
) -> dict[str, Any]:
    """Run ``n_commits`` write+commit attempts for ``worker``; never retries.

    Returns ``{"worker", "landed": [(snapshot_id, attempt, value)], "conflicts",
    "errors": [(attempt, traceback text)]}``.
    """
    landed: list[tuple[str, int, int]] = []
    conflicts = 0
    errors: list[tuple[int, str]] = []
    barrier.wait(BARRIER_TIMEOUT)  # start all writers together to maximise contention
    for attempt in range(n_commits):
        value = value_of(worker, attempt)
        try:
            session = repo.writable_session("main")
            array = zarr.open_array(session.store, path=f"w{worker}", mode="r+")
            array[attempt] = value
            array.attrs[f"i{attempt}"] = value
            snapshot_id = session.commit(
                f"w{worker}-{attempt}", metadata={"worker": worker, "attempt": attempt}
            )
        except ic.ConflictError:
            conflicts += 1
        except Exception:
            errors.append((attempt, traceback.format_exc()))
        else:
            landed.append((snapshot_id, attempt, value))
    return {"worker": worker, "landed": landed, "conflicts": conflicts, "errors": errors}


def check_outcome(
    repo: ic.Repository,
    outcomes: list[dict[str, Any]],
    n_workers: int,
    n_commits: int,
) -> None:
    assert sorted(o["worker"] for o in outcomes) == list(range(n_workers))

    # every attempt either landed or raised ConflictError -- no other exception
    errors = [(o["worker"], a, tb) for o in outcomes for a, tb in o["errors"]]
    assert not errors, "unexpected exceptions:\n" + "\n".join(
        f"worker {w} attempt {a}:\n{tb}" for w, a, tb in errors
    )
    attempts = sum(len(o["landed"]) + o["conflicts"] for o in outcomes)
    assert attempts == n_workers * n_commits
    for o in outcomes:
        assert len(o["landed"]) + o["conflicts"] == n_commits, o

    # writes keyed by the snapshot that claims to have landed them
    claimed: dict[str, tuple[int, int, int]] = {}
    for o in outcomes:
        for snapshot_id, attempt, value in o["landed"]:
            assert snapshot_id not in claimed, f"snapshot {snapshot_id} returned twice"
            claimed[snapshot_id] = (o["worker"], attempt, value)
    assert claimed, "no commit landed at all"

    ancestry = list(repo.ancestry(branch="main"))
    ids = [info.id for info in ancestry]
    assert len(set(ids)) == len(ids)
    on_branch = ids[: len(ids) - INITIAL_COMMITS]
    lost = set(claimed) - set(on_branch)
    assert not lost, (
        f"{len(lost)} of {len(claimed)} commits reported as landed are not in the "
        f"ancestry of main (lost commits): {sorted(claimed[s] for s in lost)}"
    )
    assert len(claimed) == len(ancestry) - INITIAL_COMMITS
    assert set(claimed) == set(on_branch)
    assert ancestry[-1].parent_id is None
    for child, parent in itertools.pairwise(ancestry):
        assert child.parent_id == parent.id

    # replay the branch oldest -> newest; each snapshot holds exactly the writes so far
    expected_data = {k: np.full(n_commits, FILL, dtype="int64") for k in range(n_workers)}
    expected_attrs: dict[int, dict[str, int]] = {k: {} for k in range(n_workers)}
    for info in reversed(ancestry[: len(ancestry) - INITIAL_COMMITS]):
        worker, attempt, value = claimed[info.id]
        assert info.message == f"w{worker}-{attempt}"
        assert info.metadata == {"worker": worker, "attempt": attempt}
        expected_data[worker][attempt] = value
        expected_attrs[worker][f"i{attempt}"] = value
        store = repo.readonly_session(snapshot_id=info.id).store
        assert_state(store, expected_data, expected_attrs, where=f"snapshot {info.id}")

    # the tip holds every landed write (and nothing from a conflicted attempt)
    tip = repo.readonly_session(branch="main")
    assert tip.snapshot_id == ids[0]
    assert_state(tip.store, expected_data, expected_attrs, where="tip of main")
    for worker, attempt, value in claimed.values():
        assert expected_data[worker][attempt] == value


def assert_state(
    store: ic.IcechunkStore,
    expected_data: dict[int, np.ndarray],
    expected_attrs: dict[int, dict[str, int]],
    *,
    where: str,
) -> None:
    for worker, data in expected_data.items():
        array = zarr.open_array(store, path=f"w{worker}", mode="r")
        np.testing.assert_array_equal(array[:], data, err_msg=f"/w{worker} at {where}")
        assert dict(array.attrs) == expected_attrs[worker], f"/w{worker} attrs at {where}"


# ------------------------------------------------------------------------ processes


def test_concurrent_commits_processes(tmp_path: Path) -> None:
    """4 spawned processes x 10 commits each to ``main`` of a local-filesystem repo."""
    from tests.helpers.storage_servers import run_commit_processes

    n_workers, n_commits = 4, 10
    storage = ic.local_filesystem_storage(tmp_path / "repo")
    setup_repository(storage, n_workers, n_commits)
    outcomes = run_commit_processes(storage, n_workers, n_commits)
    check_outcome(ic.Repository.open(storage), outcomes, n_workers, n_commits)


# -------------------------------------------------------------------------- threads


@pytest.fixture(params=["local", "memory"])
def storage_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], ic.Storage]:
    """A way to reach one repository's storage; every call gives access to the same repo."""
    if request.param == "local":
        path = str(tmp_path / "repo")
        return lambda: ic.local_filesystem_storage(path)
    storage = ic.in_memory_storage()  # in-memory repos live in the storage instance
    return lambda: storage


def test_concurrent_commits_threads(storage_factory: Callable[[], ic.Storage]) -> None:
    """8 threads x 5 commits each; each thread opens its own Repository instance."""
    n_workers, n_commits = 8, 5
    setup_repository(storage_factory(), n_workers, n_commits)
    barrier = threading.Barrier(n_workers)

    def run(worker: int) -> dict[str, Any]:
        try:
            repo = ic.Repository.open(storage_factory())
            return commit_loop(repo, worker, n_commits, barrier)
        except BaseException:
            barrier.abort()
            return {
                "worker": worker,
                "landed": [],
                "conflicts": 0,
                "errors": [(-1, traceback.format_exc())],
            }

    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        outcomes = list(pool.map(run, range(n_workers), timeout=JOIN_TIMEOUT))

    check_outcome(ic.Repository.open(storage_factory()), outcomes, n_workers, n_commits)


def test_concurrent_commits_threads_shared_repository(
    storage_factory: Callable[[], ic.Storage],
) -> None:
    """8 threads x 5 commits each, all through one shared Repository object."""
    n_workers, n_commits = 8, 5
    repo = setup_repository(storage_factory(), n_workers, n_commits)
    barrier = threading.Barrier(n_workers)

    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        outcomes = list(
            pool.map(
                lambda k: commit_loop(repo, k, n_commits, barrier),
                range(n_workers),
                timeout=JOIN_TIMEOUT,
            )
        )

    check_outcome(repo, outcomes, n_workers, n_commits)
