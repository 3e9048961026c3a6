"""``to_icechunk`` with dask-backed data on a ``distributed.LocalCluster`` of two processes.

Every dask task writes through its own copy of a fork, pickled to a worker process; the forks
are merged back in a tree and the session commits once. Initial writes, appends in several
commits, region writes and ``mode="w"`` overwrites are checked version by version.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
distributed = pytest.importorskip("distributed")

import icechunk as ic  # noqa: E402
from icechunk.xarray import to_icechunk  # noqa: E402
from tests.integration.test_xarray import era5_like, fresh_encoding, read, strip  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def test_write_append_region_overwrite_on_a_cluster(tmp_path: Path, client: Any) -> None:
    repo = ic.Repository.create(ic.local_filesystem_storage(str(tmp_path / "repo")))
    full = era5_like(16)
    versions: list[tuple[str, xr.Dataset]] = []

    with distributed.get_task_stream(client) as stream:
        session = repo.writable_session("main")
        to_icechunk(
            full.isel(time=slice(0, 8)).chunk(time=2, lat=3, lon=4),
            session,
            encoding=fresh_encoding(full),
            split_every=2,
        )
        versions.append((session.commit("initial"), full.isel(time=slice(0, 8))))

        for lo, hi in ((8, 12), (12, 16)):
            session = repo.writable_session("main")
            to_icechunk(
                strip(full.isel(time=slice(lo, hi))).chunk(time=2), session, append_dim="time"
            )
            versions.append((session.commit(f"append {lo}:{hi}"), full.isel(time=slice(0, hi))))

        warmer = full.copy(deep=True)
        warmer["t2m"][4:12] = warmer.t2m[4:12] + np.float32(2)
        session = repo.writable_session("main")
        piece = strip(warmer[["t2m"]].isel(time=slice(4, 12))).drop_vars(["step_hours"])
        to_icechunk(piece.chunk(time=2, lat=3), session, region="auto")
        versions.append((session.commit("region"), warmer))

        replaced = xr.Dataset(
            {"sst": (("y", "x"), np.arange(48.0).reshape(6, 8))},
            coords={"y": np.arange(6), "x": np.arange(8)},
        )
        session = repo.writable_session("main")
        to_icechunk(replaced.chunk(y=2), session, mode="w")
        versions.append((session.commit("overwrite"), replaced))

    workers = {entry["worker"] for entry in stream.data}
    assert len(workers) == 2, "the writes should have run on both worker processes"
    assert len(list(repo.ancestry(branch="main"))) == len(versions) + 1
    for sid, want in versions:
        xr.testing.assert_identical(read(repo, snapshot_id=sid), want)
    # lazily read back on the cluster too
    lazy = xr.open_dataset(repo, engine="icechunk", snapshot_id=versions[3][0], chunks={})
    xr.testing.assert_identical(lazy.compute(), versions[3][1])
