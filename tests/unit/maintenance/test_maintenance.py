"""Maintenance: snapshot expiration, garbage collection, chunk storage statistics and
manifest rewriting, on in-memory, local-filesystem and (for one GC test) S3 storage.

Expectations are computed independently of the code under test: from the public API
(ancestry, list_manifest_files), from listings of the storage before and after, and by
reading every array of every branch, tag and surviving snapshot.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import zarr

import icechunk as ic
from icechunk.format.manifest import NativeChunk, decode_manifest
from icechunk.format.repo_info import decode_repo_info
from tests.helpers.paths import REPO_ROOT, SRC

INITIAL_ID = "1CECHNKREP0F1RSTCMT0"
BIG = 200  # float64 elements per chunk of "big": 1600 bytes, a native chunk object
PREFIXES = ("snapshots/", "manifests/", "transactions/", "chunks/")


@pytest.fixture(params=["memory", "local"])
def storage(request, tmp_path):
    if request.param == "memory":
        return ic.in_memory_storage()
    return ic.local_filesystem_storage(str(tmp_path / "repo"))


# ----------------------------------------------------------------------------- helpers


def listing(storage: ic.Storage) -> dict[str, int]:
    """key -> size of every object under the four object prefixes."""
    out = {}
    for prefix in PREFIXES:
        out.update(dict(storage.list_objects(prefix=prefix)))
    return out


def read_all(session: ic.Session) -> dict[str, list]:
    try:
        root = zarr.open_group(session.store, mode="r")
    except zarr.errors.GroupNotFoundError:
        return {}  # the initial snapshot has no root group
    return {name: array[:].tolist() for name, array in sorted(root.arrays())}


def write(repo: ic.Repository, branch: str, message: str, **changes: tuple) -> str:
    """Commit ``array[index] = value`` for each ``name=(index, value)``."""
    session = repo.writable_session(branch)
    for name, (index, value) in changes.items():
        zarr.open_array(session.store, path=name, mode="r+")[index] = value
    return session.commit(message)


def pause() -> None:
    """Let the clock move on, so objects written before and after differ in time."""
    time.sleep(0.05)


def now() -> datetime:
    return datetime.now(UTC)


def build_history(repo: ic.Repository) -> dict:
    """20 commits on main, a dev branch, a tag, and a deleted branch with 2 commits."""
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    # uncompressed: every chunk is a 1600-byte native chunk object, never inlined
    big = root.create_array(
        "big", shape=(8 * BIG,), chunks=(BIG,), dtype="float64", compressors=None
    )
    big[:] = np.arange(8 * BIG, dtype="float64")
    small = root.create_array("small", shape=(4,), chunks=(2,), dtype="int8")
    small[:] = [1, 2, 3, 4]
    main = [session.commit("c0")]
    for i in range(1, 20):
        lo = (i % 8) * BIG
        main.append(
            write(
                repo,
                "main",
                f"c{i}",
                big=(slice(lo, lo + BIG), np.full(BIG, float(i))),
                small=(i % 4, i),
            )
        )
        if i == 5:
            repo.create_branch("dev", main[5])
            dev = [write(repo, "dev", f"d{j}", big=(slice(0, BIG), -float(j))) for j in (1, 2)]
        if i == 8:
            repo.create_tag("v1", main[8])
        if i == 10:
            repo.create_branch("tmp", main[2])
            tmp = [
                write(repo, "tmp", f"t{j}", big=(slice(BIG, 2 * BIG), 1000.0 + j)) for j in (1, 2)
            ]
            repo.delete_branch("tmp")
    # a session that uploads a chunk but never commits: an orphan chunk object
    orphan = repo.writable_session("main")
    zarr.open_array(orphan.store, path="big", mode="r+")[0:BIG] = 12345.0
    return {"main": main, "dev": dev, "tmp": tmp}


def reachable_snapshots(repo: ic.Repository) -> set[str]:
    ids = set()
    for branch in repo.list_branches():
        ids |= {s.id for s in repo.ancestry(branch=branch)}
    for tag in repo.list_tags():
        ids |= {s.id for s in repo.ancestry(tag=tag)}
    return ids


def referenced_chunks(repo: ic.Repository, snapshot_ids: set[str]) -> set[str]:
    chunks = set()
    for sid in snapshot_ids:
        for info in repo.list_manifest_files(sid):
            manifest = decode_manifest(
                asyncio.run(repo.storage.get(f"manifests/{info.id}")), info.id
            )
            for node in manifest.node_ids:
                chunks |= {
                    p.chunk_id for _, p in manifest.iter_refs(node) if isinstance(p, NativeChunk)
                }
    return chunks


def values_by_ref(repo: ic.Repository) -> dict[str, dict]:
    out = {f"branch:{b}": read_all(repo.readonly_session(branch=b)) for b in repo.list_branches()}
    out |= {f"tag:{t}": read_all(repo.readonly_session(tag=t)) for t in repo.list_tags()}
    return out


# ----------------------------------------------------------------------------- expiration


def test_expire_matches_official_rules(storage) -> None:
    repo = ic.Repository.create(storage)
    hist = build_history(repo)
    pause()
    cutoff = now()
    pause()
    newer = write(repo, "main", "after cutoff", small=(0, 99))
    before = decode_repo_info(asyncio.run(storage.get("repo")))
    tips = set(before.tags.values()) | set(before.branches.values())
    expected = {
        e.id
        for e in before.snapshots.values()
        if e.parent_id is not None and e.flushed_at < cutoff.timestamp() * 1e6 and e.id not in tips
    }
    values = values_by_ref(repo)

    released = repo.expire_snapshots(cutoff)

    assert released == expected
    assert hist["main"][8] not in released and hist["dev"][-1] not in released  # tag / branch
    assert hist["tmp"][0] in released  # the deleted branch's history goes
    info = decode_repo_info(asyncio.run(storage.get("repo")))
    assert set(info.snapshots) == set(before.snapshots) - released
    assert INITIAL_ID in info.snapshots
    # histories now jump from each kept snapshot straight to the root
    assert hist["main"][-1] in released  # no longer a tip: the commit after the cutoff is
    assert [s.id for s in repo.ancestry(branch="main")] == [newer, INITIAL_ID]
    assert [s.id for s in repo.ancestry(tag="v1")] == [hist["main"][8], INITIAL_ID]
    assert [s.id for s in repo.ancestry(branch="dev")] == [hist["dev"][-1], INITIAL_ID]
    # the skipped ancestors are remembered, oldest first, so their tx logs survive GC
    assert info.snapshots[newer].pruned_ancestor_tx_logs == hist["main"]
    assert info.snapshots[hist["dev"][-1]].pruned_ancestor_tx_logs == [
        *hist["main"][:6],
        hist["dev"][0],
    ]
    assert type(next(iter(repo.ops_log())).kind).__name__ == "ExpirationRan"
    assert values_by_ref(repo) == values
    # nothing left to expire: an empty result, still one ops-log entry
    assert repo.expire_snapshots(cutoff) == set()


def test_expire_deletes_expired_refs(storage) -> None:
    repo = ic.Repository.create(storage)
    hist = build_history(repo)
    repo.create_tag("old", hist["main"][3])
    repo.create_tag("root", INITIAL_ID)
    repo.create_branch("same-as-main", hist["main"][-1])
    pause()
    cutoff = now()
    released = repo.expire_snapshots(cutoff, delete_expired_branches=True, delete_expired_tags=True)
    # main keeps its tip; other refs at expired snapshots are deleted, roots never expire
    assert repo.list_branches() == {"main"}
    assert repo.list_tags() == {"root"}
    assert hist["main"][-1] not in released
    assert {hist["main"][3], hist["main"][8], hist["dev"][-1]} <= released
    assert [s.id for s in repo.ancestry(branch="main")] == [hist["main"][-1], INITIAL_ID]
    with pytest.raises(ic.AlreadyExistsError):
        repo.create_tag("old", hist["main"][-1])  # deleted tags cannot be reused (as official)


# ----------------------------------------------------------------------------- GC


def run_gc_scenario(storage: ic.Storage, gap: float = 0.05) -> dict:
    """``gap``: seconds between the history and the cutoff, and between the cutoff and
    what follows; S3 lists whole-second times, so there it must exceed a second."""
    repo = ic.Repository.create(storage)
    hist = build_history(repo)
    time.sleep(gap)
    cutoff = now()
    time.sleep(gap)
    newer = write(repo, "main", "after cutoff", big=(slice(0, BIG), 7.0))
    fresh_orphan = repo.writable_session("main")
    zarr.open_array(fresh_orphan.store, path="big", mode="r+")[BIG : 2 * BIG] = 54321.0
    repo.expire_snapshots(cutoff)

    # what garbage collection must delete, computed from the public API and listings
    objects = listing(storage)
    keep_snaps = reachable_snapshots(repo)
    info = decode_repo_info(asyncio.run(storage.get("repo")))
    keep_tx = keep_snaps | {
        p for e in info.snapshots.values() for p in e.pruned_ancestor_tx_logs or ()
    }
    keep_manifests = {m.id for s in keep_snaps for m in repo.list_manifest_files(s)}
    keep_chunks = referenced_chunks(repo, keep_snaps)
    times = {
        o.key: o.last_modified for p in PREFIXES for o in storage.list_objects_metadata(prefix=p)
    }
    keep = {
        "snapshots/": keep_snaps,
        "transactions/": keep_tx,
        "manifests/": keep_manifests,
        "chunks/": keep_chunks,
    }
    garbage = {
        key
        for key in objects
        for prefix, ids in keep.items()
        if key.startswith(prefix) and key[len(prefix) :] not in ids and times[key] < cutoff
    }
    values = values_by_ref(repo)
    snapshot_values = {s: read_all(repo.readonly_session(snapshot_id=s)) for s in keep_snaps}

    dry = repo.garbage_collect(cutoff, dry_run=True)
    assert listing(storage) == objects, "a dry run deleted something"
    summary = repo.garbage_collect(cutoff)
    after = listing(storage)

    deleted = set(objects) - set(after)
    assert deleted == garbage
    for prefix, field in zip(
        PREFIXES, ("snapshots", "manifests", "transaction_logs", "chunks"), strict=True
    ):
        count = sum(1 for k in deleted if k.startswith(prefix))
        assert getattr(summary, f"{field}_deleted") == count, field
        assert getattr(dry, f"{field}_deleted") == count, field
    assert summary.bytes_deleted == dry.bytes_deleted == sum(objects[k] for k in deleted)
    assert summary.chunks_deleted > 0 and summary.transaction_logs_deleted > 0
    assert summary.objects_failed_to_delete == 0 and summary.skipped_phases == []
    assert summary.attributes_deleted == 0
    # newer objects survive: the commit after the cutoff and the fresh orphan chunk
    assert f"snapshots/{newer}" in after
    assert any(times[k] >= cutoff for k in after if k.startswith("chunks/"))
    assert values_by_ref(repo) == values
    for sid, expected in snapshot_values.items():
        assert read_all(repo.readonly_session(snapshot_id=sid)) == expected
    assert type(next(iter(repo.ops_log())).kind).__name__ == "GCRan"
    # a second run finds nothing
    again = repo.garbage_collect(cutoff)
    assert again.bytes_deleted == 0
    return {"repo": repo, "values": values, "hist": hist}


def test_expire_then_gc_deletes_exactly_the_garbage(storage) -> None:
    run_gc_scenario(storage)


def test_gc_on_s3(moto_s3) -> None:
    run_gc_scenario(moto_s3.storage(), gap=1.1)


def test_gc_without_expiration_keeps_history_and_drops_unreachable(storage) -> None:
    repo = ic.Repository.create(storage)
    hist = build_history(repo)
    repo.reset_branch("dev", hist["main"][5])  # d1, d2 become unreachable
    pause()
    cutoff = now()
    summary = repo.garbage_collect(cutoff)
    info = decode_repo_info(asyncio.run(storage.get("repo")))
    dropped = set(hist["dev"]) | set(hist["tmp"])
    assert not dropped & set(info.snapshots)
    assert summary.snapshots_deleted == len(dropped)
    assert summary.transaction_logs_deleted == len(dropped)
    assert [s.id for s in repo.ancestry(branch="main")] == [*reversed(hist["main"]), INITIAL_ID]


def test_gc_reparents_new_snapshots_over_dropped_ones(storage) -> None:
    """A snapshot too new to collect whose parent is collected: it is re-parented onto
    its nearest kept ancestor, and the dropped parent's transaction log survives."""
    repo = ic.Repository.create(storage)
    session = repo.writable_session("main")
    zarr.group(store=session.store).create_array("a", shape=(4,), chunks=(2,), dtype="int8")
    snaps = [session.commit("s0")]
    snaps += [write(repo, "main", f"s{i}", a=(0, i)) for i in (1, 2)]
    pause()
    cutoff = now()
    pause()
    snaps += [write(repo, "main", f"s{i}", a=(0, i)) for i in (3, 4)]
    repo.reset_branch("main", snaps[1])  # s2..s4 unreachable; s3, s4 too new to collect
    dry = repo.garbage_collect(cutoff, dry_run=True)
    summary = repo.garbage_collect(cutoff)
    assert (summary.snapshots_deleted, summary.transaction_logs_deleted) == (1, 0)
    assert dry == summary
    info = decode_repo_info(asyncio.run(storage.get("repo")))
    assert snaps[2] not in info.snapshots
    assert info.snapshots[snaps[3]].parent_id == snaps[1]
    assert info.snapshots[snaps[3]].pruned_ancestor_tx_logs == [snaps[2]]
    assert asyncio.run(storage.get(f"transactions/{snaps[2]}"))
    assert read_all(repo.readonly_session(snapshot_id=snaps[4]))["a"][0] == 4


def test_gc_repo_info_edit_restarts_on_conflicting_changes(storage) -> None:
    """The repo info edit refuses (so GC starts again) when, since GC looked, a ref moved
    onto a snapshot it drops or a commit was made on top of one."""
    from icechunk._maintenance.gc import _RestartGC, drop_snapshots_from_repo_info

    repo = ic.Repository.create(storage)
    hist = build_history(repo)
    info = decode_repo_info(asyncio.run(storage.get("repo")))
    drop = set(hist["tmp"])
    keep = set(info.snapshots) - drop
    fresh = decode_repo_info(asyncio.run(storage.get("repo")))
    drop_snapshots_from_repo_info(fresh, set(keep), drop)
    assert set(fresh.snapshots) == keep
    repo.create_branch("back", hist["tmp"][-1])  # a ref onto a dropped snapshot
    with pytest.raises(_RestartGC):
        drop_snapshots_from_repo_info(
            decode_repo_info(asyncio.run(storage.get("repo"))), set(keep), drop
        )
    on_top = write(repo, "back", "on top", small=(0, 1))  # a commit onto a dropped one
    repo.delete_branch("back")
    with pytest.raises(_RestartGC):
        drop_snapshots_from_repo_info(
            decode_repo_info(asyncio.run(storage.get("repo"))), set(keep), drop
        )
    # a new commit on a kept snapshot is simply kept
    keep_now = set(keep)
    newer = write(repo, "main", "newer", small=(0, 2))
    fresh = decode_repo_info(asyncio.run(storage.get("repo")))
    del fresh.snapshots[on_top]
    drop_snapshots_from_repo_info(fresh, keep_now, drop)
    assert newer in keep_now and newer in fresh.snapshots


def test_gc_delete_failures_are_reported_then_stop_the_run() -> None:
    """Deletes that fail (injected around a real in-memory storage) are counted and the
    later kinds skipped; too many failures in a row stop the run with a typed error."""
    from icechunk.exceptions import GCDeletesFailingError, StorageError
    from tests.unit.storage.test_storage_faults import FlakyStorage

    class FailingDeletes(FlakyStorage):
        failing_prefix: str | None = "transactions/"

        async def delete(self, keys) -> None:
            keys = list(keys)
            if self.failing_prefix and any(k.startswith(self.failing_prefix) for k in keys):
                raise StorageError("injected: delete refused")
            await self.inner.delete(keys)

    storage = FailingDeletes(ic.in_memory_storage(), before=0.0, after=0.0, seed=0)
    repo = ic.Repository.create(storage)
    build_history(repo)
    repo.expire_snapshots(now())
    before = listing(storage)
    summary = repo.garbage_collect(now())
    after = listing(storage)
    assert summary.snapshots_deleted > 0
    assert summary.transaction_logs_deleted == 0 and summary.objects_failed_to_delete > 0
    assert summary.delete_errors and "injected" in summary.delete_errors[0]
    assert summary.skipped_phases == ["manifests", "chunks"]
    assert {k for k in before if k.startswith(("manifests/", "chunks/"))} <= set(after)
    with pytest.raises(GCDeletesFailingError):
        repo.garbage_collect(now(), max_consecutive_delete_failures=1)
    storage.failing_prefix = None
    summary = repo.garbage_collect(now())
    assert summary.transaction_logs_deleted > 0 and summary.chunks_deleted > 0
    assert summary.objects_failed_to_delete == 0 and summary.skipped_phases == []


def test_gc_with_cutoff_in_the_past_deletes_nothing(storage) -> None:
    repo = ic.Repository.create(storage)
    build_history(repo)
    repo.expire_snapshots(now())
    before = listing(storage)
    summary = repo.garbage_collect(now() - timedelta(days=1))
    assert listing(storage) == before
    assert summary.bytes_deleted == 0 and summary.snapshots_deleted == 0


def check_after_concurrent_gc(
    repo: ic.Repository, hist: dict, written: list[tuple[str, float]], summary: ic.GCSummary
) -> None:
    """Every commit of the writer reads back; the history and a later GC are sound."""
    assert summary.snapshots_deleted > 0
    assert repo.lookup_branch("main") == written[-1][0]
    for sid, value in written:
        data = read_all(repo.readonly_session(snapshot_id=sid))
        assert data["big"][:BIG] == [value] * BIG
    ancestry = [s.id for s in repo.ancestry(branch="main")]
    assert ancestry == [*reversed([sid for sid, _ in written]), hist["main"][-1], INITIAL_ID]
    values = values_by_ref(repo)
    repo.garbage_collect(now())
    assert values_by_ref(repo) == values


def test_gc_while_another_thread_commits(storage) -> None:
    repo = ic.Repository.create(storage)
    hist = build_history(repo)
    pause()
    cutoff = now()
    pause()
    repo.expire_snapshots(cutoff)
    done = threading.Event()
    written: list[tuple[str, float]] = []
    finished_at: list[float] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            i = 0
            while not done.is_set() or i < 3:
                i += 1
                value = 5000.0 + i
                written.append((write(repo, "main", f"w{i}", big=(slice(0, BIG), value)), value))
                finished_at.append(time.monotonic())
        except BaseException as err:  # noqa: BLE001 - reported by the test
            errors.append(err)

    thread = threading.Thread(target=writer)
    thread.start()
    while not finished_at and thread.is_alive():
        time.sleep(0.001)  # the writer is under way before GC starts
    gc_start = time.monotonic()
    try:  # small limits: many small steps, each letting the writer's coroutines run
        summary = repo.garbage_collect(
            cutoff, max_snapshots_in_memory=1, max_concurrent_manifest_fetches=1
        )
    finally:
        gc_end = time.monotonic()
        done.set()
        thread.join(timeout=120)
    assert not errors, errors
    # the writer was committing before GC started and until after it ended
    assert finished_at[0] < gc_start and finished_at[-1] > gc_end
    check_after_concurrent_gc(repo, hist, written, summary)


WRITER_SCRIPT = """
import sys, time, zarr, icechunk as ic
repo = ic.Repository.open(ic.local_filesystem_storage(sys.argv[1]))
stop = sys.argv[2]
i = 0
while True:
    i += 1
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="big", mode="r+")[0:200] = 5000.0 + i
    print(session.commit(f"w{i}"), 5000.0 + i, time.time(), flush=True)
    if i >= 3 and __import__("os").path.exists(stop):
        break
"""


def test_gc_while_another_process_commits(tmp_path) -> None:
    import os
    import subprocess
    import sys

    path = tmp_path / "repo"
    repo = ic.Repository.create(ic.local_filesystem_storage(str(path)))
    hist = build_history(repo)
    pause()
    cutoff = now()
    pause()
    repo.expire_snapshots(cutoff)
    stop = tmp_path / "stop"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(path), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the writer has committed once: it is under way
    assert first, proc.stderr.read() if proc.stderr else ""
    gc_start = time.time()
    try:
        summary = repo.garbage_collect(cutoff)
    finally:
        gc_end = time.time()
        stop.touch()
        # not communicate(): it reads the pipe itself and would drop lines that readline()
        # above already buffered
        out = proc.stdout.read()
        err = proc.stderr.read() if proc.stderr else ""
        proc.wait(timeout=120)
    assert proc.returncode == 0, err
    lines = [first, *out.splitlines()]
    written = [(line.split()[0], float(line.split()[1])) for line in lines]
    times = [float(line.split()[2]) for line in lines]
    # the writer was committing before GC started and until after it ended
    assert times[0] < gc_start and times[-1] > gc_end
    check_after_concurrent_gc(repo, hist, written, summary)


def test_gc_progress_only_on_a_terminal(storage, capsys) -> None:
    from icechunk._maintenance.gc import Progress

    class Tty:
        def __init__(self) -> None:
            self.text = ""

        def isatty(self) -> bool:
            return True

        def write(self, s: str) -> None:
            self.text += s

        def flush(self) -> None:
            pass

    repo = ic.Repository.create(storage)
    build_history(repo)
    repo.garbage_collect(now())  # stderr is captured (not a terminal): quiet
    assert capsys.readouterr().err == ""
    tty = Tty()
    progress = Progress(stream=tty)
    assert progress.enabled
    progress.phase("chunks")
    progress.update(listed=3, found=2)
    progress.close()
    assert "gc: chunks" in tty.text and tty.text.endswith("\n")


# ----------------------------------------------------------------------------- stats


def test_chunk_storage_stats_hand_computed(storage) -> None:
    repo = ic.Repository.create(storage)
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    big = root.create_array(
        "big", shape=(4 * BIG,), chunks=(BIG,), dtype="float64", compressors=None
    )
    big[:] = np.arange(4 * BIG, dtype="float64") + 1
    small = root.create_array("small", shape=(4,), chunks=(2,), dtype="int8", compressors=None)
    small[:] = [1, 2, 3, 4]
    first = session.commit("c1")  # 4 native chunks; 1 manifest with 2 inline chunks of 2 B
    write(repo, "main", "c2", big=(slice(0, BIG), 9.0))  # one more native chunk
    write(repo, "main", "c3", small=(3, 7))  # a new small manifest: 2 more inline chunks
    repo.create_tag("first", first)
    stats = repo.chunk_storage_stats()
    assert isinstance(stats, ic.ChunkStorageStats)
    assert stats.native_bytes == 5 * BIG * 8
    assert stats.inlined_bytes == 2 * 2 * 2
    assert stats.virtual_bytes == 0
    assert stats.total_bytes() == stats.non_virtual_bytes() == 5 * BIG * 8 + 8
    assert (stats + stats).native_bytes == 2 * stats.native_bytes
    native = sum(size for key, size in listing(storage).items() if key.startswith("chunks/"))
    assert stats.native_bytes == native
    with pytest.warns(DeprecationWarning):
        assert repo.total_chunks_storage() == stats.native_bytes
    with pytest.warns(DeprecationWarning):
        assert asyncio.run(repo.total_chunks_storage_async()) == stats.native_bytes
    assert asyncio.run(repo.chunk_storage_stats_async()) == stats
    # an uncommitted upload and an unreachable commit are not counted
    write(repo, "main", "c4", big=(slice(BIG, 2 * BIG), 5.0))
    repo.reset_branch("main", repo.lookup_tag("first"))
    assert repo.chunk_storage_stats().native_bytes == 4 * BIG * 8


# ----------------------------------------------------------------------------- rewrite


def split_config(n: int) -> ic.RepositoryConfig:
    splitting = ic.ManifestSplittingConfig.from_dict(
        {ic.ManifestSplitCondition.AnyArray(): {ic.ManifestSplitDimCondition.Any(): n}}
    )
    return ic.RepositoryConfig(manifest=ic.ManifestConfig(splitting=splitting))


def build_for_rewrite(storage: ic.Storage) -> ic.Repository:
    repo = ic.Repository.create(storage)
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    a = root.create_array("a", shape=(12,), chunks=(1,), dtype="int32")
    a[:] = np.arange(12) + 1
    b = root.create_array("b", shape=(2, 6 * BIG), chunks=(1, BIG), dtype="float64")
    b[:] = np.arange(12 * BIG, dtype="float64").reshape(2, 6 * BIG)
    session.commit("data")
    write(repo, "main", "more", a=(0, 100))
    return repo


def test_rewrite_manifests_with_splitting(storage) -> None:
    repo = build_for_rewrite(storage)
    before = read_all(repo.readonly_session("main"))
    parent = repo.lookup_branch("main")
    assert len(repo.list_manifest_files(parent)) == 2
    split = ic.Repository.open(storage, config=split_config(4))
    sid = split.rewrite_manifests("split", branch="main", metadata={"who": "test"})
    assert repo.lookup_branch("main") == sid
    info = repo.lookup_snapshot(sid)
    assert info.parent_id == parent and info.message == "split"
    assert info.metadata["who"] == "test"
    assert info.metadata["__icechunk"]["splitting_config"] == {
        "split_sizes": [["any_array", [{"condition": "Any", "num_chunks": 4}]]]
    }
    # a: 12 chunks in 3 cells; b: 2 x 6 chunks in 1 x 2 cells
    assert len(repo.list_manifest_files(sid)) == 3 + 2
    assert read_all(repo.readonly_session("main")) == before
    assert repo.diff(from_snapshot_id=parent, to_snapshot_id=sid).is_empty()
    # back to one manifest per array, amending the rewrite commit
    again = repo.rewrite_manifests("merge back", branch="main", commit_method="amend")
    assert repo.lookup_snapshot(again).parent_id == parent
    assert len(repo.list_manifest_files(again)) == 2
    assert repo.lookup_snapshot(again).metadata["__icechunk"]["splitting_config"] == {
        "split_sizes": [
            [{"path_matches": {"regex": ".*"}}, [{"num_chunks": 2**32 - 1, "condition": "Any"}]]
        ]
    }
    assert read_all(repo.readonly_session("main")) == before
    assert asyncio.run(repo.rewrite_manifests_async("async", branch="main"))


# ----------------------------------------------------------------------------- bad input


def test_bad_input_gives_typed_errors(storage) -> None:
    repo = ic.Repository.create(storage)
    naive = datetime.now()
    for call in (
        lambda: repo.expire_snapshots(naive),
        lambda: repo.expire_snapshots("2020-01-01"),
        lambda: repo.garbage_collect(naive),
        lambda: repo.garbage_collect(1234),
    ):
        with pytest.raises(ic.InvalidTypeError) as err:
            call()
        assert isinstance(err.value, TypeError) and isinstance(err.value, ic.IcechunkError)
    with pytest.raises(ic.InvalidTypeError):
        repo.expire_snapshots(now(), delete_expired_tags="yes")
    with pytest.raises(ic.InvalidTypeError):
        repo.garbage_collect(now(), dry_run=1)
    with pytest.raises(ic.InvalidInputError):
        repo.garbage_collect(now(), max_concurrent_deletes=0)
    with pytest.raises(ic.InvalidInputError):
        repo.chunk_storage_stats(max_snapshots_in_memory=0)
    with pytest.raises(ic.InvalidInputError):
        repo.rewrite_manifests("m", branch="main", commit_method="squash")
    with pytest.raises(ic.InvalidTypeError):
        repo.rewrite_manifests(42, branch="main")
    with pytest.raises(ic.BranchNotFoundError):
        repo.rewrite_manifests("m", branch="nope")
    # other time zones are fine
    east = datetime.now(UTC).astimezone(__import__("datetime").timezone(timedelta(hours=9)))
    assert repo.expire_snapshots(east) == set()


def test_read_only_repository_refuses_maintenance(storage) -> None:
    repo = ic.Repository.create(storage)
    build_history(repo)
    repo.set_status(
        ic.RepoStatus(ic.RepoAvailability.read_only, limited_availability_reason="frozen")
    )
    before = listing(storage)
    with pytest.raises(ic.ReadOnlyError):
        repo.expire_snapshots(now())
    with pytest.raises(ic.ReadOnlyError):
        repo.garbage_collect(now())
    with pytest.raises(ic.ReadOnlyError):
        repo.rewrite_manifests("m", branch="main")
    assert listing(storage) == before
    assert repo.chunk_storage_stats().native_bytes > 0  # reading is fine


def test_read_only_storage_refuses_maintenance(tmp_path) -> None:
    from tests.helpers.storage_servers import serve_directory

    path = tmp_path / "repo"
    repo = ic.Repository.create(ic.local_filesystem_storage(str(path)))
    build_history(repo)
    with serve_directory(path) as server:
        remote = ic.Repository.open(ic.http_storage(server.url))
        with pytest.raises(ic.ReadOnlyStorageError):
            remote.garbage_collect(now())
        with pytest.raises(ic.ReadOnlyStorageError):
            remote.expire_snapshots(now())


# ----------------------------------------------------------------------------- docs


def test_docs_examples_run(tmp_path, monkeypatch) -> None:
    page = REPO_ROOT / "docs" / "maintenance.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for block in blocks:
            exec(compile(block, str(page), "exec"), namespace)  # noqa: S102
