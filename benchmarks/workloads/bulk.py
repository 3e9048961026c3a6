"""Workloads a, b (and g on S3): bulk write of a float32 array through zarr, then commit;
bulk read of all of it from a fresh read-only session (a fresh process).

    python bulk.py write --path DIR [--impl icechunk|zarr] [--mib 512] [--chunk-mib 1]
    python bulk.py read  --path DIR [--impl icechunk|zarr]

The array is 1-d, ``mib`` MiB of float32 in chunks of ``chunk-mib`` MiB, zarr's default
codecs (bytes + zstd). The data are uniform random floats (they barely compress: the codec
work is the same on every side).
"""

from __future__ import annotations

import sys

import benchlib
import numpy as np
import zarr

ARRAY = "bulk"


def checksum(data: np.ndarray) -> float:
    return float(data[::4099].astype(np.float64).sum())


def write(args) -> None:
    n = int(args.mib * 2**20 // 4)
    chunk = max(1, int(args.chunk_mib * 2**20 // 4))
    data = np.random.default_rng(args.seed).random(n, dtype=np.float32)
    clock = benchlib.Clock(args.impl)
    if args.impl == "zarr":
        store = benchlib.zarr_store(args, read_only=False)
        arr = zarr.create_array(store=store, name=ARRAY, shape=(n,), chunks=(chunk,), dtype="float32")
        with benchlib.profiled("write"), clock.time("total_s"):
            with clock.time("write_s"):
                arr[:] = data
            clock.metrics["commit_s"] = 0.0
    else:
        repo = benchlib.create_repo(args)
        session = repo.writable_session("main")
        arr = zarr.create_array(store=session.store, name=ARRAY, shape=(n,), chunks=(chunk,),
                                dtype="float32")
        with benchlib.profiled("write"), clock.time("total_s"):
            with clock.time("write_s"):
                arr[:] = data
            with clock.time("commit_s"):
                session.commit("bulk write")
    clock.metrics["mb_per_s"] = data.nbytes / 1e6 / clock.metrics["total_s"]
    benchlib.emit(clock.metrics, check=checksum(data), nbytes=data.nbytes,
                  n_chunks=-(-n // chunk))


def read(args) -> None:
    clock = benchlib.Clock(args.impl)
    with benchlib.profiled("read"), clock.time("total_s"):
        with clock.time("open_s"):
            if args.impl == "zarr":
                store = benchlib.zarr_store(args, read_only=True)
            else:
                repo = benchlib.open_repo(args)
                store = repo.readonly_session(branch="main").store
            arr = zarr.open_array(store, path=ARRAY, mode="r")
        with clock.time("read_s"):
            data = arr[:]
    clock.metrics["mb_per_s"] = data.nbytes / 1e6 / clock.metrics["total_s"]
    benchlib.emit(clock.metrics, check=checksum(data), nbytes=data.nbytes)


def main(argv: list[str]) -> None:
    p = benchlib.parser(__doc__.splitlines()[0], ("write", "read"), ("icechunk", "zarr"))
    p.add_argument("--mib", type=float, default=512)
    p.add_argument("--chunk-mib", type=float, default=1)
    args = p.parse_args(argv)
    {"write": write, "read": read}[args.phase](args)


if __name__ == "__main__":
    main(sys.argv[1:])
