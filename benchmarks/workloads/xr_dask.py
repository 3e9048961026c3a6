"""Workload e: xarray + dask (threaded scheduler): write a dataset, read it back and reduce.

    python xr_dask.py write --path DIR [--impl icechunk|zarr] [--mb 100]
    python xr_dask.py read  --path DIR [--impl icechunk|zarr]

The dataset has two float64 variables ``(time, y, x)`` of ``mb / 2`` MB each, 250 x 250 per
time step, dask chunks of 10 time steps (5 MB; xarray writes them as the zarr chunks), plus
the three dimension coordinates. The data are generated in memory before the clock starts.

Both phases first run ``warm_up`` (xarray's and dask's lazy imports) before the clock starts.

write: ``icechunk.xarray.to_icechunk(ds, session, mode="w")`` then ``session.commit``; for
plain zarr ``ds.to_zarr(LocalStore, mode="w", consolidated=False)``.
read (a fresh process): open the repository and a read-only session,
``xr.open_zarr(session.store, consolidated=False)`` and ``ds.mean().compute()``.
"""

from __future__ import annotations

import sys

import benchlib
import dask
import numpy as np
import xarray as xr

NY = NX = 250
CHUNK_T = 10


def dataset(mb: float, seed: int) -> xr.Dataset:
    nt = max(CHUNK_T, round(mb * 1e6 / (2 * NY * NX * 8)))
    rng = np.random.default_rng(seed)
    dims = ("time", "y", "x")
    ds = xr.Dataset(
        {
            "temperature": (dims, rng.standard_normal((nt, NY, NX))),
            "pressure": (dims, rng.standard_normal((nt, NY, NX)) + 1000.0),
        },
        coords={
            "time": np.arange(nt, dtype="int64"),
            "y": np.linspace(-90, 90, NY),
            "x": np.linspace(-180, 180, NX),
        },
    )
    return ds.chunk({"time": CHUNK_T, "y": NY, "x": NX})


def warm_up() -> None:
    """Run the same code paths once on a tiny dataset in memory, before the clock starts:
    xarray and dask import much on first use (every installed xarray backend, in our venv our
    own icechunk_xarray one; ``dask.distributed`` if installed; ...), and that is the same
    for every implementation, not what this workload measures."""
    import zarr

    xr.backends.list_engines()
    small = xr.Dataset({"a": (("t", "x"), np.ones((4, 4)))}).chunk({"t": 2})
    store = zarr.storage.MemoryStore()
    small.to_zarr(store, mode="w", consolidated=False)
    xr.open_zarr(store, consolidated=False).mean().compute()


def checksum(means: xr.Dataset) -> float:
    return round(float(means["temperature"]) + float(means["pressure"]), 6)


def write(args) -> None:
    ds = dataset(args.mb, args.seed)
    nbytes = int(ds.nbytes)
    expected = ds.mean().compute()
    warm_up()
    clock = benchlib.Clock(args.impl)
    if args.impl == "zarr":
        store = benchlib.zarr_store(args, read_only=False)
        with benchlib.profiled("write"), clock.time("total_s"):
            ds.to_zarr(store, mode="w", consolidated=False)
    else:
        from icechunk.xarray import to_icechunk

        repo = benchlib.create_repo(args)
        session = repo.writable_session("main")
        with benchlib.profiled("write"), clock.time("total_s"):
            with clock.time("write_s"):
                to_icechunk(ds, session, mode="w")
            with clock.time("commit_s"):
                session.commit("xarray write")
    clock.metrics["mb_per_s"] = nbytes / 1e6 / clock.metrics["total_s"]
    benchlib.emit(clock.metrics, check=checksum(expected), nbytes=nbytes)


def read(args) -> None:
    clock = benchlib.Clock(args.impl)
    warm_up()
    with benchlib.profiled("read"), clock.time("total_s"):
        with clock.time("open_s"):
            if args.impl == "zarr":
                store = benchlib.zarr_store(args, read_only=True)
            else:
                repo = benchlib.open_repo(args)
                store = repo.readonly_session(branch="main").store
            ds = xr.open_zarr(store, consolidated=False)
        with clock.time("mean_s"):
            means = ds.mean().compute()
    nbytes = int(ds.nbytes)
    clock.metrics["mb_per_s"] = nbytes / 1e6 / clock.metrics["total_s"]
    benchlib.emit(clock.metrics, check=checksum(means), nbytes=nbytes)


def main(argv: list[str]) -> None:
    p = benchlib.parser(__doc__.splitlines()[0], ("write", "read"), ("icechunk", "zarr"))
    p.add_argument("--mb", type=float, default=100)
    args = p.parse_args(argv)
    with dask.config.set(scheduler="threads"):
        {"write": write, "read": read}[args.phase](args)


if __name__ == "__main__":
    main(sys.argv[1:])
