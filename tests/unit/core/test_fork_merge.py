"""Fork/merge: picklable forks written anywhere, merged back into one commit.

The protocol: ``fork = session.fork()`` (writes nothing), send the fork to other
threads/processes, write through ``fork.store``, send it back, then
``session.merge(*forks)`` (all or nothing: any conflict raises
``MergeConflictError`` listing every conflict) and ``session.commit(...)``.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest
import zarr

import icechunk as ic
from icechunk.distributed import extract_session, merge_sessions

# ---------------------------------------------------------------------------
# helpers


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``root`` with its size and modification time."""
    out = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory) / name
            stat = path.stat()
            out[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return out


def make_repo(storage: ic.Storage) -> ic.Repository:
    """``/x`` and ``/y``: (8, 8) int64 arrays in (2, 8) chunks; group ``/g`` with ``/g/z``."""
    repo = ic.Repository.create(storage)
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    for name in ("x", "y"):
        root.create_array(name, shape=(8, 8), chunks=(2, 8), dtype="int64", fill_value=-1)
    group = root.create_group("g")
    group.create_array("z", shape=(4,), chunks=(1,), dtype="int64", fill_value=0)
    session.commit("setup")
    return repo


def local_repo(tmp_path: Path) -> tuple[ic.Repository, Path]:
    path = tmp_path / "repo"
    return make_repo(ic.local_filesystem_storage(str(path))), path


def memory_repo() -> ic.Repository:
    return make_repo(ic.in_memory_storage())


def open_array(session: ic.Session, path: str) -> zarr.Array:
    return zarr.open_array(session.store, path=path, mode="r" if session.read_only else "r+")


def tip_array(repo: ic.Repository, path: str) -> np.ndarray:
    return open_array(repo.readonly_session(branch="main"), path)[:]


def write_rows(fork: ic.ForkSession, path: str, rows: slice, value: int) -> ic.ForkSession:
    open_array(fork, path)[rows] = value
    return fork


def node_paths(session: ic.Session) -> list[str]:
    return sorted(n.path for n in session.iter_nodes())


def session_view(session: ic.Session) -> dict[str, Any]:
    return {
        "snapshot": session.snapshot_id,
        "dirty": session.has_uncommitted_changes,
        "status": repr(session.status()),
        "x": open_array(session, "x")[:].tolist(),
        "y": open_array(session, "y")[:].tolist(),
        "nodes": node_paths(session),
    }


# ---------------------------------------------------------------------------
# forking writes nothing


def test_fork_of_a_clean_session_writes_nothing(tmp_path: Path) -> None:
    repo, path = local_repo(tmp_path)
    session = repo.writable_session("main")
    before = listing(path)
    fork = session.fork()
    forks = [session.fork() for _ in range(5)]
    pickle.dumps(fork)
    assert listing(path) == before
    assert fork.snapshot_id == session.snapshot_id
    assert not fork.has_uncommitted_changes
    assert all(not f.has_uncommitted_changes for f in forks)
    assert isinstance(fork, ic.ForkSession)


def test_fork_of_a_dirty_session_writes_nothing(tmp_path: Path) -> None:
    repo, path = local_repo(tmp_path)
    session = repo.writable_session("main")
    zarr.group(store=session.store).create_array("new", shape=(4,), chunks=(2,), dtype="int8")
    open_array(session, "x")[0] = 1
    before = listing(path)
    fork = session.fork()
    assert listing(path) == before
    # the fork sees the parent's uncommitted changes
    assert "/new" in node_paths(fork)
    assert open_array(fork, "x")[0].tolist() == [1] * 8


# ---------------------------------------------------------------------------
# pickling


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_fork_pickles_and_unpickled_forks_write(tmp_path: Path, dumps: Any) -> None:
    repo, _ = local_repo(tmp_path)
    session = repo.writable_session("main")
    forks = [pickle.loads(dumps(session.fork())) for _ in range(2)]
    write_rows(forks[0], "x", slice(0, 4), 10)
    write_rows(forks[1], "x", slice(4, 8), 20)
    back = [pickle.loads(dumps(f)) for f in forks]  # the round trip home
    session.merge(*back)
    session.commit("two forks")
    assert tip_array(repo, "x")[:, 0].tolist() == [10] * 4 + [20] * 4


def test_fork_store_and_arrays_pickle(tmp_path: Path) -> None:
    repo, _ = local_repo(tmp_path)
    session = repo.writable_session("main")
    fork = session.fork()
    array = pickle.loads(cloudpickle.dumps(open_array(fork, "y")))
    array[2:4] = 7
    store = pickle.loads(pickle.dumps(fork.store))
    assert isinstance(store.session, ic.ForkSession)
    (found,) = extract_session(array)
    session.merge(found)
    session.commit("via a pickled array")
    assert tip_array(repo, "y")[2:4].tolist() == [[7] * 8] * 2


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_writable_session_and_store_refuse_to_pickle(dumps: Any) -> None:
    repo = memory_repo()
    session = repo.writable_session("main")
    for obj in (session, session.store, open_array(session, "x")):
        with pytest.raises(Exception, match=r"fork\(\)"):
            dumps(obj)


def test_read_only_sessions_and_stores_pickle(tmp_path: Path) -> None:
    repo, _ = local_repo(tmp_path)
    session = repo.writable_session("main")
    open_array(session, "x")[0] = 3
    committed = session.commit("x0")
    readers = [
        repo.readonly_session(branch="main"),
        repo.readonly_session(snapshot_id=committed),
        session,  # read-only once committed
    ]
    for reader in readers:
        for dumps in (pickle.dumps, cloudpickle.dumps):
            clone = pickle.loads(dumps(reader))
            assert clone.read_only and clone.snapshot_id == committed
            assert open_array(clone, "x")[0].tolist() == [3] * 8
            store = pickle.loads(dumps(reader.store))
            assert zarr.open_array(store, path="x", mode="r")[0].tolist() == [3] * 8


# ---------------------------------------------------------------------------
# forks in other processes


def process_write(fork: ic.ForkSession, worker: int) -> ic.ForkSession:
    """Runs in a spawned process: write rows 2k..2k+1 of /x (and /y for worker 0)."""
    array = zarr.open_array(fork.store, path="x", mode="r+")
    array[2 * worker : 2 * worker + 2] = np.arange(16).reshape(2, 8) + 100 * (worker + 1)
    if worker == 0:
        zarr.open_array(fork.store, path="y", mode="r+")[6:8] = 5
    return fork


def test_forks_in_three_processes_commit_once(tmp_path: Path) -> None:
    repo, _ = local_repo(tmp_path)
    history = [s.id for s in repo.ancestry(branch="main")]
    session = repo.writable_session("main")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        forks = pool.starmap(process_write, [(session.fork(), k) for k in range(3)])
    assert len({id(f) for f in forks}) == 3
    session.merge(*forks)
    snapshot = session.commit("three processes")
    assert [s.id for s in repo.ancestry(branch="main")] == [snapshot, *history]
    x = tip_array(repo, "x")
    for k in range(3):
        expected = np.arange(16).reshape(2, 8) + 100 * (k + 1)
        np.testing.assert_array_equal(x[2 * k : 2 * k + 2], expected)
    assert (x[6:] == -1).all()
    assert (tip_array(repo, "y")[6:] == 5).all() and (tip_array(repo, "y")[:6] == -1).all()


# ---------------------------------------------------------------------------
# what a fork cannot do


def test_fork_cannot_commit_or_rebase() -> None:
    repo = memory_repo()
    session = repo.writable_session("main")
    fork = session.fork()
    write_rows(fork, "x", slice(0, 2), 1)
    with pytest.raises(ic.SessionStateError, match="merge"):
        fork.commit("nope")
    with pytest.raises(ic.SessionStateError):
        fork.rebase(ic.ConflictDetector())
    assert repo.lookup_branch("main") == session.snapshot_id


def test_fork_of_read_only_session_is_refused() -> None:
    repo = memory_repo()
    with pytest.raises(ic.ReadOnlyError):
        repo.readonly_session(branch="main").fork()


# ---------------------------------------------------------------------------
# merge conflicts


def test_merge_lists_every_conflict_at_once() -> None:
    repo = memory_repo()
    session = repo.writable_session("main")
    first, second, third = session.fork(), session.fork(), session.fork()
    write_rows(first, "x", slice(0, 4), 1)
    write_rows(first, "y", slice(6, 8), 1)
    write_rows(second, "x", slice(2, 6), 2)
    write_rows(third, "y", slice(6, 8), 3)
    write_rows(third, "g/z", slice(0, 1), 3)  # no conflict here
    before = session_view(session)
    with pytest.raises(ic.MergeConflictError) as info:
        session.merge(first, second, third)
    error = info.value
    assert isinstance(error, ic.RebaseFailedError)
    found = {(c.conflict_type, c.path): sorted(c.conflicted_chunks or []) for c in error.conflicts}
    assert found == {
        (ic.ConflictType.ChunkDoubleUpdate, "/x"): [[1, 0]],
        (ic.ConflictType.ChunkDoubleUpdate, "/y"): [[3, 0]],
    }
    assert "/x" in str(error) and "/y" in str(error)
    # all or nothing: the parent is unchanged, not even /g/z merged
    assert session_view(session) == before
    assert open_array(session, "g/z")[:].tolist() == [0, 0, 0, 0]
    # without the offending forks, the merge goes through
    session.merge(first)
    session.commit("first only")
    assert tip_array(repo, "x")[:, 0].tolist() == [1, 1, 1, 1, -1, -1, -1, -1]


def test_identical_inline_writes_do_not_conflict() -> None:
    repo = memory_repo()
    session = repo.writable_session("main")
    first, second = session.fork(), session.fork()
    write_rows(first, "x", slice(0, 2), 4)
    write_rows(second, "x", slice(0, 2), 4)
    session.merge(first, second)
    session.commit("same values twice")
    assert tip_array(repo, "x")[:2].tolist() == [[4] * 8] * 2


def test_identical_native_writes_do_not_conflict() -> None:
    """Chunks above the inline threshold go to chunk files with random ids; same bytes though."""
    repo = ic.Repository.create(ic.in_memory_storage())
    session = repo.writable_session("main")
    zarr.create_array(
        session.store,
        name="big",
        shape=(2, 512),
        chunks=(1, 512),
        dtype="float64",
        fill_value=0.0,
        compressors=None,
    )
    session.commit("setup")
    data = np.random.default_rng(0).random(512)
    session = repo.writable_session("main")
    first, second = session.fork(), session.fork()
    zarr.open_array(first.store, path="big", mode="r+")[0] = data
    zarr.open_array(second.store, path="big", mode="r+")[0] = data
    session.merge(first, second)
    session.commit("same values twice")
    got = zarr.open_array(repo.readonly_session(branch="main").store, path="big", mode="r")
    np.testing.assert_array_equal(got[0], data)


def test_native_writes_of_equal_size_but_other_bytes_conflict() -> None:
    """Equal lengths under different ids: the merge compares the bytes, and they differ."""
    repo = ic.Repository.create(ic.in_memory_storage())
    session = repo.writable_session("main")
    zarr.create_array(
        session.store, name="big", shape=(2, 512), chunks=(1, 512), dtype="float64",
        fill_value=0.0, compressors=None,
    )  # fmt: skip
    session.commit("setup")
    session = repo.writable_session("main")
    first, second = session.fork(), session.fork()
    zarr.open_array(first.store, path="big", mode="r+")[0] = np.full(512, 1.0)
    zarr.open_array(second.store, path="big", mode="r+")[0] = np.full(512, 2.0)
    with pytest.raises(ic.MergeConflictError):
        session.merge(first, second)
    # the parent itself rewrote the chunk after forking: the same question, same answer
    third = session.fork()
    zarr.open_array(third.store, path="big", mode="r+")[1] = np.full(512, 3.0)
    zarr.open_array(session.store, path="big", mode="r+")[1] = np.full(512, 4.0)
    with pytest.raises(ic.MergeConflictError):
        session.merge(third)
    zarr.open_array(session.store, path="big", mode="r+")[1] = np.full(512, 3.0)
    session.merge(third)  # now both wrote the same bytes
    session.commit("merged")
    got = zarr.open_array(repo.readonly_session(branch="main").store, path="big", mode="r")
    assert got[1].tolist() == [3.0] * 512


def test_parent_and_fork_changing_the_same_chunk_conflict() -> None:
    repo = memory_repo()
    session = repo.writable_session("main")
    fork = session.fork()
    write_rows(fork, "x", slice(0, 1), 1)  # chunk (0, 0)
    write_rows(fork, "y", slice(0, 2), 1)
    open_array(session, "x")[1] = 2  # chunk (0, 0) too, after forking
    open_array(session, "y")[4:6] = 2  # another chunk: fine
    before = session_view(session)
    with pytest.raises(ic.MergeConflictError) as info:
        session.merge(fork)
    assert [(c.conflict_type, c.path, c.conflicted_chunks) for c in info.value.conflicts] == [
        (ic.ConflictType.ChunkDoubleUpdate, "/x", [[0, 0]])
    ]
    assert session_view(session) == before


def test_parent_changes_after_forking_are_kept() -> None:
    repo = memory_repo()
    session = repo.writable_session("main")
    fork = session.fork()
    write_rows(fork, "x", slice(0, 2), 1)
    open_array(session, "x")[2:4] = 2
    open_array(session, "y").attrs["parent"] = True
    session.merge(fork)
    session.commit("both")
    x = tip_array(repo, "x")[:, 0].tolist()
    assert x == [1, 1, 2, 2, -1, -1, -1, -1]
    assert dict(open_array(repo.readonly_session(branch="main"), "y").attrs) == {"parent": True}


def test_fork_of_uncommitted_changes_merges_without_duplicates_or_reverts() -> None:
    repo = memory_repo()
    history = [s.id for s in repo.ancestry(branch="main")]
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    root.create_array("new", shape=(6,), chunks=(2,), dtype="int32", fill_value=0)
    root.create_group("h", attributes={"v": 1})
    open_array(session, "x")[0:2] = 9
    forks = [session.fork() for _ in range(2)]
    open_array(forks[0], "new")[0:2] = 1
    open_array(forks[1], "new")[2:4] = 2
    zarr.open_group(forks[1].store, path="h", mode="r+").create_group("inner")
    # the parent keeps changing after forking
    open_array(session, "new").attrs["after"] = "fork"
    open_array(session, "new")[4:6] = 3
    zarr.open_group(session.store, path="h", mode="r+").attrs["v"] = 2
    open_array(session, "x")[0:2] = 8
    nodes_before = node_paths(session)
    session.merge(*forks)
    paths = node_paths(session)
    assert len(paths) == len(set(paths))
    assert paths == sorted([*nodes_before, "/h/inner"])
    snapshot = session.commit("new array, filled by forks")
    assert [s.id for s in repo.ancestry(branch="main")] == [snapshot, *history]
    tip = repo.readonly_session(branch="main")
    assert open_array(tip, "new")[:].tolist() == [1, 1, 2, 2, 3, 3]
    assert dict(open_array(tip, "new").attrs) == {"after": "fork"}
    assert dict(zarr.open_group(tip.store, path="h", mode="r").attrs) == {"v": 2}
    assert open_array(tip, "x")[:2].tolist() == [[8] * 8] * 2
    assert sorted(n.path for n in tip.iter_nodes()) == sorted([*nodes_before, "/h/inner"])


def test_merging_into_a_session_on_another_snapshot_fails_clearly() -> None:
    repo = memory_repo()
    session = repo.writable_session("main")
    fork = session.fork()
    write_rows(fork, "x", slice(0, 2), 1)
    other = repo.writable_session("main")
    open_array(other, "y")[0] = 1
    moved = other.commit("meanwhile")
    newer = repo.writable_session("main")
    with pytest.raises(ic.IcechunkError, match=moved) as info:
        newer.merge(fork)
    assert session.snapshot_id in str(info.value)
    assert not newer.has_uncommitted_changes
    # rebasing the parent first moves it off the fork's snapshot too
    session.rebase(ic.ConflictDetector())
    with pytest.raises(ic.IcechunkError, match=moved):
        session.merge(fork)


def test_merge_takes_only_forks() -> None:
    repo = memory_repo()
    session = repo.writable_session("main")
    with pytest.raises(ic.InvalidInputError):
        session.merge(repo.writable_session("main"))  # type: ignore[arg-type]


def test_merging_a_fork_twice_is_harmless() -> None:
    repo = memory_repo()
    session = repo.writable_session("main")
    fork = write_rows(session.fork(), "x", slice(0, 2), 1)
    session.merge(fork)
    session.merge(fork)
    session.commit("once")
    assert tip_array(repo, "x")[:, 0].tolist() == [1, 1] + [-1] * 6


def test_forks_merge_into_forks() -> None:
    repo = memory_repo()
    session = repo.writable_session("main")
    forks = [write_rows(session.fork(), "x", slice(2 * k, 2 * k + 2), k) for k in range(4)]
    left = merge_sessions(forks[0], forks[1])
    forks[2].merge(forks[3])
    assert isinstance(left, ic.ForkSession)
    with pytest.raises(ic.MergeConflictError):
        merge_sessions(forks[0], write_rows(session.fork(), "x", slice(0, 1), 99))
    session.merge(left, forks[2])
    session.commit("tree")
    assert tip_array(repo, "x")[:, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


# ---------------------------------------------------------------------------
# conflicts that are not about the same chunk: merge must check these too


def merge_outcome(edits: list[Any]) -> tuple[ic.Session, BaseException | None, dict[str, Any]]:
    """Each item of ``edits`` edits one fork; then merge them all."""
    repo = memory_repo()
    session = repo.writable_session("main")
    forks = [session.fork() for _ in edits]
    for fork, edit in zip(forks, edits):
        edit(fork)
    before = session_view(session)
    try:
        session.merge(*forks)
    except ic.MergeConflictError as error:
        return session, error, before
    return session, None, before


def delete(path: str) -> Any:
    parent, _, name = path.rpartition("/")
    return lambda fork: zarr.open_group(fork.store, path=parent, mode="r+").__delitem__(name)


def test_merge_delete_of_array_vs_chunk_write() -> None:
    session, error, before = merge_outcome(
        [delete("g/z"), lambda f: open_array(f, "g/z").__setitem__(0, 5)]
    )
    assert error is not None, "a chunk write into an array another fork deleted was dropped"
    assert [c.path for c in error.conflicts] == ["/g/z"]
    assert session_view(session) == before


def test_merge_attribute_edit_vs_delete() -> None:
    session, error, before = merge_outcome(
        [lambda f: open_array(f, "g/z").attrs.__setitem__("u", 1), delete("g/z")]
    )
    assert error is not None, "one fork's delete or the other's attribute edit was dropped"
    assert [c.path for c in error.conflicts] == ["/g/z"]
    assert session_view(session) == before


def test_merge_delete_of_group_vs_new_child() -> None:
    session, error, before = merge_outcome(
        [delete("g"), lambda f: zarr.open_group(f.store, path="g", mode="r+").create_group("c")]
    )
    assert error is not None, f"merged tree has an orphan: {node_paths(session)}"
    assert session_view(session) == before


def test_merge_shrink_vs_chunk_write_beyond_new_shape() -> None:
    session, error, before = merge_outcome(
        [lambda f: open_array(f, "x").resize((4, 8)), lambda f: write_rows(f, "x", slice(6, 8), 1)]
    )
    assert error is not None, "a chunk written beyond another fork's shrink was dropped"
    assert session_view(session) == before


def test_merge_two_forks_creating_the_same_node() -> None:
    def create(fork: ic.ForkSession) -> None:
        zarr.group(store=fork.store).create_array("n", shape=(2,), chunks=(1,), dtype="int8")

    session, error, before = merge_outcome([create, create])
    assert error is not None
    assert [c.path for c in error.conflicts] == ["/n"]
    assert session_view(session) == before


def test_merge_fork_deleting_a_node_the_parent_created() -> None:
    """A fork undoes the parent's uncommitted array: nothing is left to commit."""
    repo = memory_repo()
    session = repo.writable_session("main")
    zarr.group(store=session.store).create_array("tmp", shape=(2,), chunks=(1,), dtype="int8")
    open_array(session, "tmp")[:] = 1
    fork = session.fork()
    delete("tmp")(fork)
    session.merge(fork)
    assert "/tmp" not in node_paths(session)
    assert not session.has_uncommitted_changes


def test_merging_a_fork_into_another_session_on_the_same_snapshot() -> None:
    """Either refused, or the fork's writes land -- never silently dropped."""
    repo = memory_repo()
    parent, other = repo.writable_session("main"), repo.writable_session("main")
    zarr.group(store=parent.store).create_array("n", shape=(4,), chunks=(1,), dtype="int64")
    fork = parent.fork()
    open_array(fork, "n")[:] = 5
    write_rows(fork, "x", slice(0, 2), 5)
    try:
        other.merge(fork)
    except ic.IcechunkError:
        assert not other.has_uncommitted_changes
        return
    other.commit("merged someone else's fork")
    tip = repo.readonly_session(branch="main")
    assert "/n" in node_paths(tip), "the fork's chunks of /n were merged without /n"
    assert open_array(tip, "n")[:].tolist() == [5] * 4


def test_fork_of_a_fork_merges_back_into_its_parent_fork() -> None:
    """The sub-fork never touched chunk 0; its parent fork rewrote it after forking."""
    repo = memory_repo()
    session = repo.writable_session("main")
    fork = session.fork()
    open_array(fork, "g/z")[0] = 1
    sub = fork.fork()
    open_array(fork, "g/z")[0] = 2
    open_array(sub, "g/z")[1] = 3
    fork.merge(sub)
    assert open_array(fork, "g/z")[:].tolist() == [2, 3, 0, 0]
    session.merge(fork)
    session.commit("fork of a fork")
    assert tip_array(repo, "g/z").tolist() == [2, 3, 0, 0]


def test_fork_of_a_fork_conflict_with_its_parent_fork_is_found() -> None:
    """After the sub-fork was made, the parent fork reverted k and the sub-fork changed it."""
    repo = memory_repo()
    session = repo.writable_session("main")
    fork = session.fork()
    open_array(fork, "g/z").attrs["k"] = 1
    sub = fork.fork()
    open_array(fork, "g/z").attrs.pop("k")  # back to the committed attributes
    open_array(sub, "g/z").attrs["k"] = 2
    assert dict(open_array(fork, "g/z").attrs) == {}
    with pytest.raises(ic.MergeConflictError) as info:
        fork.merge(sub)
    # a revert is not a delete: no ZarrMetadataUpdateOfDeletedArray
    assert [(c.conflict_type, c.path) for c in info.value.conflicts] == [
        (ic.ConflictType.ZarrMetadataDoubleUpdate, "/g/z")
    ]
    assert dict(open_array(fork, "g/z").attrs) == {}


def test_fork_reverting_the_parents_metadata_edit_is_not_a_delete() -> None:
    """One fork undoes the parent's uncommitted attribute edit, another writes a chunk."""
    repo = memory_repo()
    session = repo.writable_session("main")
    open_array(session, "g/z").attrs["k"] = 1
    reverting, writing = session.fork(), session.fork()
    open_array(reverting, "g/z").attrs.pop("k")  # back to the committed attributes
    open_array(writing, "g/z")[0] = 5
    session.merge(reverting, writing)
    session.commit("revert and write")
    tip = repo.readonly_session(branch="main")
    assert dict(open_array(tip, "g/z").attrs) == {}
    assert open_array(tip, "g/z")[:].tolist() == [5, 0, 0, 0]
