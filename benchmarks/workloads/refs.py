"""Workloads c and f: many tiny chunks in one commit, then random reads from a fresh session.

    python refs.py write --path DIR [--chunks 100000] [--chunk-bytes 4] [--virtual]
    python refs.py read  --path DIR [--reads 1000] [--virtual]

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

``--virtual``: the chunks are virtual references into one local file (``DIR-data/refs.bin``,
written first, not timed) set with ``store.set_virtual_refs`` in batches of 10,000 (the
API VirtualiZarr uses); the repository has a ``file://`` virtual chunk container for it.

read (a fresh process): open the repository, a read-only session on ``main`` and the array,
then read ``reads`` randomly chosen chunks one by one through zarr (``arr[i]``).
``first_s`` is open + the first read (what it costs to reach one chunk in a fresh session);
``total_s`` is open + all reads.
"""

from __future__ import annotations

import sys
from pathlib import Path

import benchlib
import numpy as np
import zarr

ARRAY = "refs"


def write(args) -> None:
    elems = max(1, args.chunk_bytes // 4)
    clock = benchlib.Clock(args.impl)
    if args.virtual:
        repo = benchlib.create_repo(args, _virtual_config(args), _authorize(args))
    else:
        repo = benchlib.create_repo(args)
    session = repo.writable_session("main")
    zarr.create_array(store=session.store, name=ARRAY, shape=(args.chunks * elems,),
                      chunks=(elems,), dtype="int32", compressors=None, fill_value=0)
    if args.virtual:
        location = _write_data_file(args, elems)
    with benchlib.profiled("set"), clock.time("write_s"):
        if args.virtual:
            _set_virtual_refs(session.store, location, args.chunks, 4 * elems)
        else:
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


def _data_dir(args) -> Path:
    return Path(f"{args.path.rstrip('/')}-data").resolve()


def _virtual_config(args):
    import icechunk

    config = icechunk.RepositoryConfig.default()
    store_config = icechunk.local_filesystem_store(str(_data_dir(args)))
    prefix = f"file://{_data_dir(args)}/"
    config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(prefix, store_config))
    return config


def _authorize(args) -> dict:
    return {f"file://{_data_dir(args)}/": None}


def _write_data_file(args, elems: int) -> str:
    """Chunk ``i`` holds ``i + 1``, as the store.set variant writes."""
    path = _data_dir(args) / "refs.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.repeat(np.arange(1, args.chunks + 1, dtype="<i4"), elems).tofile(path)
    return f"file://{path}"


def _set_virtual_refs(store, location: str, n_chunks: int, chunk_bytes: int,
                      batch: int = 10_000) -> None:
    import icechunk

    for start in range(0, n_chunks, batch):
        specs = [icechunk.VirtualChunkSpec(index=[i], location=location,
                                           offset=i * chunk_bytes, length=chunk_bytes)
                 for i in range(start, min(n_chunks, start + batch))]
        failed = store.set_virtual_refs(ARRAY, specs, validate_containers=False)
        if failed:
            raise RuntimeError(f"virtual refs not set: {failed[:5]}")


def read(args) -> None:
    # the chunk indices are read from the array's shape, so only --reads and --seed matter
    clock = benchlib.Clock(args.impl)
    with benchlib.profiled("read"), clock.time("total_s"):
        with clock.time("first_s"):
            with clock.time("open_s"):
                repo = benchlib.open_repo(args, _authorize(args) if args.virtual else None)
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
    p.add_argument("--virtual", action="store_true",
                   help="virtual references into a local file instead of inline chunks")
    args = p.parse_args(argv)
    {"write": write, "read": read}[args.phase](args)


if __name__ == "__main__":
    main(sys.argv[1:])
