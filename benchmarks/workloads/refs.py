"""Workloads c and f: many tiny chunks in one commit, then random reads from a fresh session.

    python refs.py write --path DIR [--chunks 100000] [--chunk-bytes 4]
    python refs.py read  --path DIR [--reads 1000]

write: create a 1-d int32 array with one chunk per ``chunk-bytes`` bytes (no compressor),
write all its chunks through the store API (``store.set``, concurrently, in batches; see
``benchlib.set_chunks``), then commit. ``commit_s`` is the commit alone; ``peak_rss_mib``
the process's RSS high-water mark (``resource.getrusage``) over the whole phase, writes
included (the ``f`` memory metric), and ``commit_peak_rss_mib`` the high-water mark of the
commit alone (reset just before it through ``/proc/self/clear_refs``), and
``commit_rss_growth_mib`` how far above the RSS at its start the commit went.

With the default 4-byte chunks every chunk is below both packages' inline threshold (512
bytes), so the commit writes a manifest of ``chunks`` inline references and no chunk
objects; ``--chunk-bytes 1024`` makes them native references (one object per chunk).

read (a fresh process): open the repository, a read-only session on ``main`` and the array,
then read ``reads`` randomly chosen chunks one by one through zarr (``arr[i]``).
``first_s`` is open + the first read (what it costs to reach one chunk in a fresh session);
``total_s`` is open + all reads.
"""

from __future__ import annotations

import sys

import benchlib
import numpy as np
import zarr

ARRAY = "refs"


def write(args) -> None:
    elems = max(1, args.chunk_bytes // 4)
    clock = benchlib.Clock(args.impl)
    repo = benchlib.create_repo(args)
    session = repo.writable_session("main")
    zarr.create_array(store=session.store, name=ARRAY, shape=(args.chunks * elems,),
                      chunks=(elems,), dtype="int32", compressors=None, fill_value=0)
    with benchlib.profiled("set"), clock.time("write_s"):
        benchlib.set_chunks(session.store, ARRAY, args.chunks, elems)
    m = clock.metrics
    m["rss_before_commit_mib"] = benchlib.current_rss_mib()
    m["peak_rss_before_commit_mib"] = benchlib.peak_rss_mib()
    reset = benchlib.reset_peak_rss()
    with benchlib.profiled("commit"), clock.time("commit_s"):
        session.commit(f"{args.chunks} chunks")
    if reset:
        m["commit_peak_rss_mib"] = benchlib.peak_rss_mib()
        m["commit_rss_growth_mib"] = m["commit_peak_rss_mib"] - m["rss_before_commit_mib"]
        m["peak_rss_mib"] = max(m["peak_rss_before_commit_mib"], m["commit_peak_rss_mib"])
    else:
        m["peak_rss_mib"] = benchlib.peak_rss_mib()
    benchlib.emit(clock.metrics, check=args.chunks)


def read(args) -> None:
    # the chunk indices are read from the array's shape, so only --reads and --seed matter
    clock = benchlib.Clock(args.impl)
    with benchlib.profiled("read"), clock.time("total_s"):
        with clock.time("first_s"):
            with clock.time("open_s"):
                repo = benchlib.open_repo(args)
                session = repo.readonly_session(branch="main")
                arr = zarr.open_array(session.store, path=ARRAY, mode="r")
            elems = arr.chunks[0]
            n_chunks = arr.shape[0] // elems
            picks = np.random.default_rng(args.seed).integers(0, n_chunks, args.reads)
            values = [int(arr[int(picks[0]) * elems])]
        for k in picks[1:]:
            values.append(int(arr[int(k) * elems]))
    clock.metrics["reads_s"] = clock.metrics["total_s"] - clock.metrics["open_s"]
    ok = all(v == int(k) + 1 for v, k in zip(values, picks))
    benchlib.emit(clock.metrics, check=n_chunks if ok else f"wrong values read: {values[:5]}")


def main(argv: list[str]) -> None:
    p = benchlib.parser(__doc__.splitlines()[0], ("write", "read"), ("icechunk",))
    p.add_argument("--chunks", type=int, default=100_000)
    p.add_argument("--chunk-bytes", type=int, default=4)
    p.add_argument("--reads", type=int, default=1000)
    args = p.parse_args(argv)
    {"write": write, "read": read}[args.phase](args)


if __name__ == "__main__":
    main(sys.argv[1:])
