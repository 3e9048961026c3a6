"""Maintenance under either implementation: build a history then expire + GC, or read.

Usage:

``python maintenance_read.py build REPO_PATH``
    Create a repository with branches, tags, a deleted branch, a reset branch and an
    orphan chunk upload, then ``expire_snapshots`` + ``garbage_collect`` (dry run first)
    with a cutoff between the old history and a few newer commits, then
    ``rewrite_manifests`` on main. Prints, with snapshots named by their commit
    message so the two implementations can be compared: what expiration released, the
    GC summaries, the parent and pruned transaction logs of every snapshot left, and
    which snapshot / transaction-log files survive.

``python maintenance_read.py read REPO_PATH``
    Print the values of every array of every branch and tag, the ancestry of each ref,
    the manifest files of each tip, the chunk storage statistics and the newest
    ops-log entries.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from datetime import UTC, datetime

import numpy as np
import zarr

import icechunk as ic

N = 100  # float64 elements per chunk of "big" (uncompressed: 800-byte native chunks)


def arrays(session) -> dict:
    try:
        root = zarr.open_group(session.store, mode="r")
    except zarr.errors.GroupNotFoundError:
        return {}
    return {name: array[:].tolist() for name, array in sorted(root.arrays())}


def commit(repo, branch: str, message: str, index: int, value: float) -> str:
    session = repo.writable_session(branch)
    zarr.open_array(session.store, path="big", mode="r+")[index * N : (index + 1) * N] = value
    zarr.open_array(session.store, path="small", mode="r+")[index % 4] = int(value) % 100
    return session.commit(message)


def summary_dict(summary) -> dict:
    fields = ("chunks", "manifests", "snapshots", "attributes", "transaction_logs")
    return {f: getattr(summary, f"{f}_deleted") for f in fields}


def build(path: str) -> dict:
    storage = ic.local_filesystem_storage(path)
    repo = ic.Repository.create(storage)
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    root.create_array("big", shape=(6 * N,), chunks=(N,), dtype="float64", compressors=None)
    root.create_array("small", shape=(4,), chunks=(2,), dtype="int8")
    root["big"][:] = np.arange(6 * N, dtype="float64")
    session.commit("c0")
    for i in range(1, 8):
        commit(repo, "main", f"c{i}", i % 6, float(i))
        if i == 3:
            repo.create_branch("dev", repo.lookup_branch("main"))
            commit(repo, "dev", "d1", 0, -1.0)
            commit(repo, "dev", "d2", 1, -2.0)
        if i == 5:
            repo.create_tag("v1", repo.lookup_branch("main"))
            repo.create_branch("tmp", repo.lookup_branch("main"))
            commit(repo, "tmp", "t1", 2, 100.0)
            repo.delete_branch("tmp")
    repo.create_branch("reset", repo.lookup_branch("main"))
    commit(repo, "reset", "r1", 3, 200.0)
    orphan = repo.writable_session("main")  # uploads a chunk, never commits
    zarr.open_array(orphan.store, path="big", mode="r+")[0:N] = 12345.0
    time.sleep(1.2)  # whole seconds: some stores list times truncated to the second
    cutoff = datetime.now(UTC)
    time.sleep(1.2)
    commit(repo, "main", "n1", 4, 300.0)
    commit(repo, "reset", "r2", 5, 400.0)
    commit(repo, "reset", "r3", 5, 401.0)
    repo.reset_branch("reset", repo.lookup_branch("dev"))  # r1..r3 leave every history

    names = {s.id: s.message for b in repo.list_branches() for s in repo.ancestry(branch=b)}
    names |= {s.id: s.message for t in repo.list_tags() for s in repo.ancestry(tag=t)}
    for update in repo.ops_log():
        for attr in ("new_snap_id", "previous_snap_id"):
            sid = getattr(update.kind, attr, None)
            if sid is not None and sid not in names:
                names[sid] = repo.lookup_snapshot(sid).message

    def name(sid: str) -> str:
        return names.get(sid, sid)

    released = repo.expire_snapshots(cutoff)
    dry = repo.garbage_collect(cutoff, dry_run=True)
    summary = repo.garbage_collect(cutoff)
    history = {}
    for ref in [
        *(("branch", b) for b in sorted(repo.list_branches())),
        *(("tag", t) for t in sorted(repo.list_tags())),
    ]:
        kwargs = {ref[0]: ref[1]}
        history[f"{ref[0]}:{ref[1]}"] = [name(s.id) for s in repo.ancestry(**kwargs)]
    files = {
        folder: sorted(name(f) for f in os.listdir(os.path.join(path, folder)))
        for folder in ("snapshots", "transactions")
    }
    counts = {
        folder: len(os.listdir(os.path.join(path, folder))) for folder in ("manifests", "chunks")
    }
    rewritten = repo.rewrite_manifests("rewrite", branch="main", metadata={"by": "test"})
    return {
        "released": sorted(name(s) for s in released),
        "dry_run": summary_dict(dry),
        "gc": summary_dict(summary),
        "history": history,
        "files": files,
        "counts": counts,
        "rewrite_metadata": repo.lookup_snapshot(rewritten).metadata,
        "rewrite_parent": name(repo.lookup_snapshot(rewritten).parent_id),
    }


def read(path: str) -> dict:
    repo = ic.Repository.open(ic.local_filesystem_storage(path))
    refs = {}
    for branch in sorted(repo.list_branches()):
        refs[f"branch:{branch}"] = (
            repo.readonly_session(branch=branch),
            repo.lookup_branch(branch),
        )
    for tag in sorted(repo.list_tags()):
        refs[f"tag:{tag}"] = (repo.readonly_session(tag=tag), repo.lookup_tag(tag))
    out: dict = {"refs": {}}
    for name, (session, tip) in refs.items():
        kwargs = {"branch": name[7:]} if name.startswith("branch:") else {"tag": name[4:]}
        ancestry = list(repo.ancestry(**kwargs))
        out["refs"][name] = {
            "tip": tip,
            "values": arrays(session),
            "ancestry": [s.id for s in ancestry],
            "history_values": [arrays(repo.readonly_session(snapshot_id=s.id)) for s in ancestry],
            "num_manifests": len(repo.list_manifest_files(tip)),
            "metadata": repo.lookup_snapshot(tip).metadata,
        }
    stats = repo.chunk_storage_stats()
    out["stats"] = [stats.native_bytes, stats.virtual_bytes, stats.inlined_bytes]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        out["total_chunks_storage"] = repo.total_chunks_storage()
    out["ops"] = [type(u.kind).__name__ for u in list(repo.ops_log())[:4]]
    return out


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    print(json.dumps(build(path) if mode == "build" else read(path)))


if __name__ == "__main__":
    main()
