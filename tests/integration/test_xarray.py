"""xarray integration: ``icechunk.xarray.to_icechunk``, the ``.icechunk`` accessor, the
``engine="icechunk"`` backend and the per-variable diff.

Datasets are small ERA5-like cubes (``time`` x ``lat`` x ``lon``) with CF encodings — a
datetime coordinate, a packed variable (int16 with ``scale_factor``/``add_offset`` and a
``_FillValue``, NaNs included), attributes, a non-index coordinate and a variable without the
time dimension — whose values survive encoding exactly, so every version read back is
compared with ``xr.testing.assert_identical``.
"""

from __future__ import annotations

import json
import shutil
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import zarr

xr = pytest.importorskip("xarray")
dask = pytest.importorskip("dask")

import icechunk as ic  # noqa: E402
import icechunk_xarray  # noqa: E402
from icechunk.xarray import to_icechunk  # noqa: E402
from icechunk_xarray.backend import (  # noqa: E402
    IcechunkBackendEntrypoint,
    looks_like_repository,
    storage_from_url,
)
from tests.helpers.paths import FIXTURES  # noqa: E402

FIXTURE = FIXTURES / "xarray_append"

TIME_ENCODING = {"units": "hours since 2000-01-01", "calendar": "proleptic_gregorian"}
TP_ENCODING = {"dtype": "int16", "scale_factor": 0.01, "add_offset": 0.0, "_FillValue": -9999}


# ----------------------------------------------------------------------
# data


def era5_like(ntime: int = 8, *, start: int = 0, nlat: int = 6, nlon: int = 8) -> xr.Dataset:
    """Time steps ``start .. start+ntime`` of a deterministic ERA5-like dataset."""
    rng = np.random.default_rng(1234)
    total = start + ntime
    t2m = (250 + 40 * rng.random((total, nlat, nlon))).astype("float32")[start:]
    packed = rng.integers(0, 3000, size=(total, nlat, nlon)).astype("int16")[start:]
    # values that int16 * 0.01 + 0.0 decodes to exactly (xarray's decoding arithmetic)
    tp = packed.astype("float64") * 0.01 + 0.0
    tp[..., 0, 0] = np.nan  # a missing value: encoded as _FillValue
    time = pd.date_range("2001-01-01", periods=total, freq="6h")[start:]
    lat = np.linspace(60.0, 35.0, nlat)
    lon = np.linspace(-10.0, 25.0, nlon)
    ds = xr.Dataset(
        {
            "t2m": (
                ("time", "lat", "lon"),
                t2m,
                {"units": "K", "long_name": "2 metre temperature"},
            ),
            "tp": (("time", "lat", "lon"), tp, {"units": "m", "long_name": "Total precipitation"}),
            "orography": (
                ("lat", "lon"),
                np.arange(nlat * nlon, dtype="float64").reshape(nlat, nlon),
                {"units": "m"},
            ),
        },
        coords={
            "time": ("time", time, {"standard_name": "time"}),
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
            "step_hours": ("time", (np.arange(total, dtype="int32") * 6)[start:]),
        },
        attrs={"title": "synthetic reanalysis", "institution": "tests", "history": ["a", "b"]},
    )
    ds.time.encoding.update(TIME_ENCODING)
    ds.tp.encoding.update(TP_ENCODING)
    return ds


def fresh_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Per-variable encodings for a first write (chunks included)."""
    return {
        "time": dict(TIME_ENCODING, chunks=(4,)),
        "tp": dict(TP_ENCODING, chunks=(2, 3, 4)),
        "t2m": {"chunks": (2, 3, 4)},
    }


def strip(ds: xr.Dataset) -> xr.Dataset:
    """A copy without encodings (so a dataset can be written again from scratch)."""
    return ds.drop_encoding()


def read(target: Any, **kwargs: Any) -> xr.Dataset:
    return xr.open_dataset(target, engine="icechunk", **kwargs).load()


@pytest.fixture
def repo(tmp_path: Path) -> ic.Repository:
    return ic.Repository.create(ic.local_filesystem_storage(str(tmp_path / "repo")))


# ----------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("backing", ["numpy", "dask"])
def test_round_trip_cf_encodings(repo: ic.Repository, backing: str) -> None:
    ds = era5_like()
    source = ds.chunk(time=2, lat=3, lon=4) if backing == "dask" else ds
    session = repo.writable_session("main")
    to_icechunk(source, session, encoding=fresh_encoding(ds))
    assert session.has_uncommitted_changes  # written, not committed
    sid = session.commit("first")

    for back in (
        read(repo, snapshot_id=sid),
        xr.open_zarr(repo.readonly_session(snapshot_id=sid).store).load(),
        read(repo, chunks={}),
    ):
        xr.testing.assert_identical(back, ds)
        assert back.time.encoding["units"] == TIME_ENCODING["units"]
        assert back.tp.encoding["scale_factor"] == 0.01
        assert back.tp.encoding["dtype"] == np.dtype("int16")

    group = zarr.open_group(repo.readonly_session("main").store, mode="r")
    tp = group["tp"]
    assert tp.dtype == np.dtype("int16")
    assert tp.chunks == (2, 3, 4)
    assert tp.metadata.dimension_names == ("time", "lat", "lon")
    assert tp.attrs["_FillValue"] == -9999
    assert tp.attrs["scale_factor"] == 0.01
    assert group["time"].dtype == np.dtype("int64")
    assert group["time"].attrs["units"] == TIME_ENCODING["units"]
    assert group.attrs["title"] == "synthetic reanalysis"
    raw = group["tp"][0]
    assert raw[0, 0] == -9999 and raw[1, 1] == round(ds.tp.values[0, 1, 1] * 100)
    assert len(list(repo.ancestry(branch="main"))) == 2  # one commit on top of the root


def test_dataarray_round_trip(repo: ic.Repository) -> None:
    ds = era5_like(4)
    session = repo.writable_session("main")
    to_icechunk(ds.t2m, session, group="named")
    to_icechunk(ds.t2m.rename(None), session, group="unnamed")
    to_icechunk(ds.lat.rename("lat"), session, group="coordname")
    session.commit("dataarrays")
    xr.testing.assert_identical(
        xr.open_dataarray(repo, engine="icechunk", group="named").load(), ds.t2m
    )
    unnamed = xr.open_dataarray(repo, engine="icechunk", group="unnamed").load()
    xr.testing.assert_identical(unnamed, ds.t2m.rename(None))
    coord = xr.open_dataarray(repo, engine="icechunk", group="coordname").load()
    xr.testing.assert_identical(coord, ds.lat)


# ----------------------------------------------------------------------
# appends, regions, overwrites


@pytest.mark.parametrize(
    ("backing", "mode"), [("numpy", "a"), ("dask", "a"), ("dask", "a-"), ("numpy", None)]
)
def test_append_in_several_commits(repo: ic.Repository, backing: str, mode: str | None) -> None:
    full = era5_like(12)
    steps = [(0, 4), (4, 6), (6, 9), (9, 12)]

    def piece(lo: int, hi: int) -> xr.Dataset:
        part = full.isel(time=slice(lo, hi))
        if lo > 0:
            part = strip(part)  # appends reuse the stored encoding
        return part.chunk(time=2) if backing == "dask" else part

    session = repo.writable_session("main")
    to_icechunk(piece(*steps[0]), session, encoding=fresh_encoding(full))
    snapshots = [session.commit("initial")]
    for lo, hi in steps[1:]:
        session = repo.writable_session("main")
        kwargs: dict[str, Any] = {"append_dim": "time"}
        if mode is not None:
            kwargs["mode"] = mode
        if backing == "dask":
            kwargs["align_chunks"] = True  # appends start mid-chunk: fit the dask chunks
        to_icechunk(piece(lo, hi), session, **kwargs)
        snapshots.append(session.commit(f"append {lo}:{hi}"))

    for sid, (_, hi) in zip(snapshots, steps):
        xr.testing.assert_identical(read(repo, snapshot_id=sid), full.isel(time=slice(0, hi)))
    xr.testing.assert_identical(read(repo), full)

    diff = repo.diff(from_snapshot_id=snapshots[0], to_snapshot_id=snapshots[1])
    if mode == "a-":  # variables without the append dimension are left alone
        assert "/orography" not in diff.updated_chunks and "/lat" not in diff.updated_chunks
    else:  # "a" rewrites them (with the same values)
        assert "/orography" in diff.updated_chunks
    assert "/t2m" in diff.updated_arrays  # resized


def test_append_and_write_in_one_session(repo: ic.Repository) -> None:
    """Several to_icechunk calls, dask appends included, become a single commit."""
    full = era5_like(10)
    session = repo.writable_session("main")
    to_icechunk(full.isel(time=slice(0, 4)), session, encoding=fresh_encoding(full))
    to_icechunk(strip(full.isel(time=slice(4, 6))).chunk(time=2), session, append_dim="time")
    to_icechunk(strip(full.isel(time=slice(6, 10))).chunk(time=2), session, append_dim="time")
    to_icechunk(full[["orography"]], session, group="static")
    session.commit("everything at once")
    assert len(list(repo.ancestry(branch="main"))) == 2
    xr.testing.assert_identical(read(repo), full)
    xr.testing.assert_identical(read(repo, group="static"), full[["orography"]])


@pytest.mark.parametrize("backing", ["numpy", "dask"])
def test_region_writes(repo: ic.Repository, backing: str) -> None:
    full = era5_like(8)
    template = full.copy(deep=True)
    template["t2m"][:] = 0.0
    template["tp"][:] = np.nan
    session = repo.writable_session("main")
    to_icechunk(template, session, encoding=fresh_encoding(full))
    first = session.commit("template")

    def region_piece(sl: slice) -> xr.Dataset:
        part = strip(full[["t2m", "tp"]].isel(time=sl)).drop_vars(["step_hours"])
        return part.chunk(time=2) if backing == "dask" else part

    def explicit(part: xr.Dataset) -> xr.Dataset:
        # with an explicit region over time, coordinates without time cannot be written
        return part.drop_vars(["lat", "lon"])

    session = repo.writable_session("main")
    # an explicit region (default mode "r+"), then one found from the coordinates
    to_icechunk(explicit(region_piece(slice(0, 4))), session, region={"time": slice(0, 4)})
    to_icechunk(region_piece(slice(4, 8)), session, region="auto")
    second = session.commit("fill in")

    xr.testing.assert_identical(read(repo, snapshot_id=first), template)
    xr.testing.assert_identical(read(repo, snapshot_id=second), full)
    diff = repo.diff(from_snapshot_id=first, to_snapshot_id=second)
    assert set(diff.updated_chunks) == {"/t2m", "/tp"}  # only data chunks, no metadata
    assert not diff.updated_arrays

    session = repo.writable_session("main")
    with pytest.raises(ValueError, match="non-pre-existing"):
        to_icechunk(
            explicit(strip(full[["t2m"]]).rename(t2m="new").drop_vars("step_hours")),
            session,
            region={"time": slice(0, 8)},
        )


@pytest.mark.parametrize("backing", ["numpy", "dask"])
def test_mode_w_overwrites(repo: ic.Repository, backing: str) -> None:
    old = era5_like(6)
    session = repo.writable_session("main")
    to_icechunk(old, session, encoding=fresh_encoding(old))
    first = session.commit("old")

    new = xr.Dataset(
        {"sst": (("y", "x"), np.arange(20.0).reshape(4, 5), {"units": "degC"})},
        coords={"y": np.arange(4), "x": np.arange(5) * 2.5},
        attrs={"title": "replaced"},
    )
    session = repo.writable_session("main")
    with pytest.raises(FileExistsError):
        to_icechunk(new, session)  # default mode "w-" refuses to overwrite
    to_icechunk(new.chunk(y=2) if backing == "dask" else new, session, mode="w")
    second = session.commit("overwrite")

    xr.testing.assert_identical(read(repo), new)
    xr.testing.assert_identical(read(repo, snapshot_id=first), old)  # still there
    raw = repo.diff(from_snapshot_id=first, to_snapshot_id=second)
    assert "/t2m" in raw.deleted_arrays and "/sst" in raw.new_arrays


def test_rechunked_and_mixed_backing(repo: ic.Repository) -> None:
    """Official icechunk issue #1199: rechunked dask data next to numpy-backed variables."""
    ds = era5_like(8)
    mixed = ds.chunk(time=4).chunk(time=2, lat=3, lon=4)  # dask rechunked
    mixed["orography"] = ds.orography.load()  # numpy-backed data variable
    mixed = mixed.assign_coords(step_hours=ds.step_hours.load())  # numpy-backed coordinate
    session = repo.writable_session("main")
    to_icechunk(mixed, session, mode="w", encoding=fresh_encoding(ds))
    session.commit("mixed")
    xr.testing.assert_identical(read(repo), ds)

    # safe_chunks: dask chunks that straddle zarr chunks are refused...
    session = repo.writable_session("main")
    with pytest.raises(ValueError, match="overlap"):
        to_icechunk(strip(ds).chunk(time=3), session, mode="w", encoding=fresh_encoding(ds))
    # ...unless align_chunks rechunks them to fit
    session = repo.writable_session("main")
    to_icechunk(
        strip(ds).chunk(time=3), session, mode="w", encoding=fresh_encoding(ds), align_chunks=True
    )
    session.commit("aligned")
    xr.testing.assert_identical(read(repo), ds)


def test_threaded_scheduler_and_split_every(repo: ic.Repository) -> None:
    ds = era5_like(16)
    session = repo.writable_session("main")
    with dask.config.set(scheduler="threads"):
        to_icechunk(
            ds.chunk(time=2, lat=3, lon=4),
            session,
            encoding=fresh_encoding(ds),
            split_every=3,
            chunkmanager_store_kwargs={"return_stored": False},  # forced by to_icechunk
        )
    session.commit("threads")
    xr.testing.assert_identical(read(repo), ds)

    session = repo.writable_session("main")
    with pytest.raises(ic.InvalidInputError, match="split_every"):
        to_icechunk(strip(ds).chunk(time=2), session, mode="w", split_every=1)
    with pytest.raises(ic.InvalidInputError, match="lock"):
        to_icechunk(
            strip(ds).chunk(time=2), session, mode="w", chunkmanager_store_kwargs={"lock": True}
        )
    assert not session.has_uncommitted_changes  # refused before writing anything


def test_groups_and_datatree(repo: ic.Repository) -> None:
    ds = era5_like(4)
    session = repo.writable_session("main")
    to_icechunk(ds[["t2m"]], session, encoding={"t2m": {"chunks": (2, 3, 4)}})
    to_icechunk(ds[["orography"]], session, group="static")
    to_icechunk(ds[["tp"]], session, group="static/nested")
    sid = session.commit("groups")

    tree = xr.open_datatree(repo, engine="icechunk", snapshot_id=sid).load()
    assert set(tree.groups) == {"/", "/static", "/static/nested"}
    xr.testing.assert_identical(tree["/static/nested"].to_dataset(), ds[["tp"]])
    # coordinates equal to the parent's are inherited from it
    xr.testing.assert_identical(tree["/static"].to_dataset()[["orography"]], ds[["orography"]])

    sub = xr.open_datatree(repo, engine="icechunk", group="static").load()
    assert set(sub.groups) == {"/", "/nested"}
    xr.testing.assert_identical(sub["nested"].to_dataset(), ds[["tp"]])
    xr.testing.assert_identical(read(repo, group="/static/nested/"), ds[["tp"]])


# ----------------------------------------------------------------------
# reading versions


def build_history(repo: ic.Repository) -> dict[str, xr.Dataset]:
    """A few commits on main and a branch; returns snapshot id -> expected dataset."""
    full = era5_like(10)
    expected: dict[str, xr.Dataset] = {}
    session = repo.writable_session("main")
    to_icechunk(full.isel(time=slice(0, 4)), session, encoding=fresh_encoding(full))
    sid = session.commit("initial")
    expected[sid] = full.isel(time=slice(0, 4))
    repo.create_tag("v1", sid)
    repo.create_branch("experiment", sid)

    session = repo.writable_session("main")
    to_icechunk(strip(full.isel(time=slice(4, 7))), session, append_dim="time")
    sid = session.commit("append")
    expected[sid] = full.isel(time=slice(0, 7))
    repo.create_tag("v2", sid)

    session = repo.writable_session("main")
    # dask chunks [7] and [8, 9] line up with the zarr chunks (6:8) and (8:10)
    later = strip(full.isel(time=slice(7, 10))).chunk(time=(1, 2))
    to_icechunk(later, session, append_dim="time")
    sid = session.commit("append more")
    expected[sid] = full

    session = repo.writable_session("experiment")
    bias = full.isel(time=slice(0, 4)).copy(deep=True)
    bias["t2m"] = bias.t2m + np.float32(1.5)
    to_icechunk(strip(bias[["t2m"]]).drop_vars("step_hours"), session, region="auto")
    sid = session.commit("warm bias")
    expected[sid] = bias
    return expected


def test_engine_opens_every_version(repo: ic.Repository, tmp_path: Path) -> None:
    expected = build_history(repo)
    path = str(tmp_path / "repo")
    by_id = {sid: ds for sid, ds in expected.items()}

    for branch in ("main", "experiment"):
        tip = repo.lookup_branch(branch)
        xr.testing.assert_identical(read(path, branch=branch), by_id[tip])
        for info in repo.ancestry(branch=branch):
            if info.id not in by_id:
                continue  # the repository's root commit
            want = by_id[info.id]
            for target in (path, repo, repo.readonly_session(snapshot_id=info.id)):
                kwargs = {} if isinstance(target, ic.Session) else {"snapshot_id": info.id}
                xr.testing.assert_identical(read(target, **kwargs), want)
            at = read(repo, branch=branch, as_of=info.written_at)
            assert at.encoding["icechunk_snapshot_id"] == info.id
            xr.testing.assert_identical(at, want)
            xr.testing.assert_identical(read(path, branch=branch, as_of=info.written_at), want)

    for tag in ("v1", "v2"):
        sid = repo.lookup_tag(tag)
        opened = read(path, tag=tag, chunks={})
        xr.testing.assert_identical(opened, by_id[sid])
        assert opened.icechunk.snapshot_id == sid

    # no engine= needed for a repository directory
    xr.testing.assert_identical(xr.open_dataset(path).load(), by_id[repo.lookup_branch("main")])
    # before the first commit there is nothing to read
    first = list(repo.ancestry(branch="main"))[-1]
    with pytest.raises(ic.SnapshotNotFoundError):
        read(repo, as_of=first.written_at - timedelta(days=1))


def test_open_zarr_on_session_stores_without_warnings(repo: ic.Repository) -> None:
    expected = build_history(repo)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. xarray's consolidated-metadata fallback warning
        for sid, want in expected.items():
            store = repo.readonly_session(snapshot_id=sid).store
            xr.testing.assert_identical(xr.open_zarr(store).load(), want)
            xr.testing.assert_identical(xr.open_zarr(store, consolidated=False).load(), want)
            xr.testing.assert_identical(
                xr.open_dataset(store, engine="zarr", chunks=None).load(), want
            )
        session = repo.writable_session("main")
        to_icechunk(xr.Dataset({"extra": ("z", np.arange(3))}), session, group="extra")
        # a writable session's store shows its uncommitted changes
        assert xr.open_zarr(session.store, group="extra")["extra"].values.tolist() == [0, 1, 2]
        xr.testing.assert_identical(
            read(session, group="extra"), xr.Dataset({"extra": ("z", np.arange(3))})
        )


def test_dask_names_follow_the_version(repo: ic.Repository, tmp_path: Path) -> None:
    """Opening the same target with the same arguments after a commit gives new dask names."""
    ds = era5_like(4)
    session = repo.writable_session("main")
    to_icechunk(ds, session, encoding=fresh_encoding(ds))
    session.commit("one")
    before = xr.open_dataset(repo, engine="icechunk", chunks={})
    path = str(tmp_path / "repo")
    before_path = xr.open_dataset(path, engine="icechunk", chunks={})
    session = repo.writable_session("main")
    to_icechunk(strip(ds[["t2m"]] + np.float32(1)).drop_vars("step_hours"), session, region="auto")
    session.commit("two")
    after = xr.open_dataset(repo, engine="icechunk", chunks={})
    assert before.t2m.data.name != after.t2m.data.name
    np.testing.assert_allclose((after.t2m - before.t2m).values, 1.0, atol=1e-4)
    after_path = xr.open_dataset(path, engine="icechunk", chunks={})  # the path's mtime moved
    assert before_path.t2m.data.name != after_path.t2m.data.name
    np.testing.assert_allclose((after_path.t2m - before_path.t2m).values, 1.0, atol=1e-4)

    s1 = repo.readonly_session("main")
    s2 = repo.readonly_session(snapshot_id=s1.snapshot_id)
    one = xr.open_dataset(s1, engine="icechunk", chunks={})
    two = xr.open_dataset(s2, engine="icechunk", chunks={})
    assert one.t2m.data.name == two.t2m.data.name  # same snapshot: same names


def test_official_fixture(tmp_path: Path) -> None:
    path = tmp_path / "xarray_append"
    shutil.copytree(FIXTURE / "repo", path)
    expected = json.loads((FIXTURE / "expected.json").read_text())
    assert looks_like_repository(path)
    for kwargs in ({}, {"chunks": {}}, {"branch": "main"}):
        ds = xr.open_dataset(path, engine="icechunk", **kwargs).load()
        times = [str(t)[:19] for t in ds.time.values.astype("datetime64[s]")]
        assert times == expected["decoded_time_main"]
        np.testing.assert_array_equal(
            ds.tas.values.ravel(), np.asarray(expected["xarray_tas_main_values"], "float32")
        )
    previous = expected["ancestry_newest_first"]["main"][1]
    first = xr.open_dataset(str(path), engine="icechunk", snapshot_id=previous)
    assert first.sizes["time"] == len(expected["decoded_time_main"]) - 3
    repo = ic.Repository.open(ic.local_filesystem_storage(str(path)))
    report = first.icechunk.diff(repo)
    assert report["tas"].status == "modified" and report["tas"].metadata_changed
    assert report["tas"].where().startswith("time[")


# ----------------------------------------------------------------------
# accessor and diff


def test_accessor_writes_what_to_icechunk_writes(tmp_path: Path) -> None:
    ds = era5_like(6)
    repos = [
        ic.Repository.create(ic.local_filesystem_storage(str(tmp_path / name)))
        for name in ("function", "accessor")
    ]
    for i, repo in enumerate(repos):
        session = repo.writable_session("main")
        first = ds.isel(time=slice(0, 4))
        later = strip(ds.isel(time=slice(4, 6))).chunk(time=2)
        if i == 0:
            to_icechunk(first, session, encoding=fresh_encoding(ds))
            to_icechunk(later, session, append_dim="time")
            to_icechunk(ds.t2m, session, group="da")
        else:
            first.icechunk.to_icechunk(session, encoding=fresh_encoding(ds))
            later.icechunk.to_icechunk(session, append_dim="time")
            ds.t2m.icechunk.to_icechunk(session, group="da")
        session.commit("write")

    def contents(repo: ic.Repository) -> dict[str, Any]:
        store = repo.readonly_session("main").store
        root = zarr.open_group(store, mode="r")
        out: dict[str, Any] = {}
        for path, node in root.members(max_depth=None):
            meta = node.metadata.to_dict()
            data = node[...].tobytes() if isinstance(node, zarr.Array) else None
            out[path] = (json.dumps(meta, sort_keys=True, default=str), data)
        out["/"] = json.dumps(root.metadata.to_dict(), sort_keys=True, default=str)
        return out

    assert contents(repos[0]) == contents(repos[1])
    xr.testing.assert_identical(read(repos[1]), ds)
    assert hasattr(xr.Dataset, "icechunk") and hasattr(xr.DataArray, "icechunk")


def test_diff_per_variable(repo: ic.Repository) -> None:
    expected = build_history(repo)
    v1, v2 = repo.lookup_tag("v1"), repo.lookup_tag("v2")
    report = icechunk_xarray.diff(repo, from_tag="v1", to_tag="v2")
    assert (report.from_snapshot_id, report.to_snapshot_id) == (v1, v2)
    t2m = report["t2m"]
    assert t2m.status == "modified" and t2m.metadata_changed
    assert t2m.dims == ("time", "lat", "lon") and t2m.shape == (7, 6, 8)
    # time steps 4..6 live in zarr chunks 2 and 3 along time (chunks of 2)
    assert {c[0] for c in t2m.changed_chunks} == {2, 3}
    assert t2m.extent["time"] == slice(4, 7)
    assert t2m.where() == "time[4:7]"
    assert t2m.n_chunks == 4 * 2 * 2
    text = str(report)
    assert "t2m" in text and "time[4:7]" in text and v1 in text
    assert "<table>" in report._repr_html_()
    frame = report.to_dataframe()
    assert frame.loc["t2m", "where"] == "time[4:7]"

    # opened by tag: diff defaults to "since what I read, up to the tip of main"
    old = xr.open_dataset(repo, engine="icechunk", tag="v1")
    since = old.icechunk.diff(repo)
    assert since.to_snapshot_id == repo.lookup_branch("main")
    assert since["t2m"].extent["time"] == slice(4, 10)
    only = old.t2m.icechunk.diff(repo, from_tag="v1", to_branch="main")
    assert list(only.variables) == ["t2m"]

    # the experiment branch: only t2m's data changed
    exp = icechunk_xarray.diff(repo, from_tag="v1", to_branch="experiment")
    assert set(exp.variables) == {"t2m"} and not exp["t2m"].metadata_changed
    assert exp["t2m"].where() == "everywhere"

    # new, deleted and grouped variables
    session = repo.writable_session("main")
    to_icechunk(xr.Dataset({"new": ("n", np.arange(5.0))}), session, group="extra")
    zarr.open_group(session.store, mode="r+").__delitem__("orography")
    session.commit("add and remove")
    last = icechunk_xarray.diff(repo, from_tag="v2", to_branch="main")
    assert last["extra/new"].status == "added" and last["orography"].status == "deleted"
    assert last.new_groups == ["extra"]
    grouped = icechunk_xarray.diff(repo, from_tag="v2", to_branch="main", group="extra")
    assert list(grouped.variables) == ["new"]
    assert len(expected) == 4
    empty = icechunk_xarray.diff(repo, from_branch="main", to_branch="main")
    assert empty.is_empty() and "no changes" in str(empty)


# ----------------------------------------------------------------------
# targets, storage URLs and errors


def test_guess_can_open(repo: ic.Repository, tmp_path: Path) -> None:
    entry = IcechunkBackendEntrypoint()
    path = tmp_path / "repo"
    assert entry.guess_can_open(str(path)) and entry.guess_can_open(path)
    assert entry.guess_can_open(f"file://{path}")
    assert entry.guess_can_open(repo) and entry.guess_can_open(repo.readonly_session("main"))
    assert not entry.guess_can_open(str(tmp_path))
    assert not entry.guess_can_open(str(tmp_path / "missing"))
    assert not entry.guess_can_open("data.nc") and not entry.guess_can_open("s3://b/p")
    spec1 = tmp_path / "v1" / "refs" / "branch.main"
    spec1.mkdir(parents=True)
    (spec1 / "ref.json").write_text("{}")
    assert entry.guess_can_open(tmp_path / "v1")
    assert "icechunk" in xr.backends.list_engines()


def test_storage_from_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def fake_s3_storage(
        *,
        bucket: str,
        prefix: str | None,
        region: str | None = None,
        endpoint_url: str | None = None,
        allow_http: bool = False,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        anonymous: bool | None = None,
        force_path_style: bool = False,
    ) -> str:
        args = {k: v for k, v in locals().items() if k != "calls"}
        calls.append(("s3", {k: v for k, v in args.items() if v not in (None, False)}))
        return "s3-storage"

    def fake_gcs_storage(
        *,
        bucket: str,
        prefix: str | None,
        config: dict[str, str] | None = None,
        service_account_file: str | None = None,
        service_account_key: str | None = None,
        bearer_token: str | None = None,
        anonymous: bool | None = None,
        from_env: bool | None = None,
    ) -> str:
        args = {k: v for k, v in locals().items() if k != "calls"}
        calls.append(("gcs", {k: v for k, v in args.items() if v is not None}))
        return "gcs-storage"

    monkeypatch.setattr(ic, "s3_storage", fake_s3_storage, raising=False)
    monkeypatch.setattr(ic, "gcs_storage", fake_gcs_storage, raising=False)

    assert storage_from_url("s3://bucket/some/prefix/", {"anon": True, "region": "eu"}) == (
        "s3-storage"
    )
    assert calls[-1] == (
        "s3",
        {"bucket": "bucket", "prefix": "some/prefix", "anonymous": True, "region": "eu"},
    )
    storage_from_url(
        "s3://b",
        {
            "key": "K",
            "secret": "S",
            "token": "T",
            "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "r"},
            "config_kwargs": {"s3": {"addressing_style": "path"}},
        },
    )
    assert calls[-1][1] == {
        "bucket": "b",
        "access_key_id": "K",
        "secret_access_key": "S",
        "session_token": "T",
        "endpoint_url": "http://127.0.0.1:9000",
        "region": "r",
        "allow_http": True,
        "force_path_style": True,
    }
    with pytest.raises(ic.InvalidInputError, match="unknown storage_options"):
        storage_from_url("s3://b/p", {"no_such_option": 1})

    key_file = tmp_path / "sa.json"
    key_file.write_text("{}")
    storage_from_url("gs://bkt/pre", {"token": str(key_file)})
    assert calls[-1] == (
        "gcs",
        {"bucket": "bkt", "prefix": "pre", "service_account_file": str(key_file)},
    )
    storage_from_url("gcs://bkt", {"token": "anon", "project": "p"})
    assert calls[-1][1] == {"bucket": "bkt", "anonymous": True}  # no prefix: None
    storage_from_url("gs://bkt", {"token": {"type": "service_account"}})
    assert json.loads(calls[-1][1]["service_account_key"]) == {"type": "service_account"}

    storage_from_url("gs://bkt/p", {"anon": True, "endpoint_url": "http://127.0.0.1:1"})
    assert calls[-1][1]["config"] == {"base_url": "http://127.0.0.1:1", "allow_http": "true"}

    monkeypatch.delattr(ic, "s3_storage")
    with pytest.raises(ic.InvalidInputError, match="s3_storage"):
        xr.open_dataset("s3://bucket/prefix", engine="icechunk")
    with pytest.raises(ic.InvalidInputError, match="not az://"):
        storage_from_url("az://container/prefix")
    with pytest.raises(ic.InvalidInputError, match="local path"):
        storage_from_url(str(tmp_path), {"anon": True})


def test_errors(repo: ic.Repository) -> None:
    ds = era5_like(2)
    with pytest.raises(ic.ReadOnlyError):
        to_icechunk(ds, repo.readonly_session("main"))
    with pytest.raises(TypeError, match="Session"):
        to_icechunk(ds, zarr.storage.MemoryStore())
    with pytest.raises(TypeError, match="Dataset or DataArray"):
        to_icechunk(ds.to_dataframe(), repo.writable_session("main"))
    session = repo.writable_session("main")
    with pytest.raises(ValueError, match="append_dim"):
        to_icechunk(ds, session, mode="w", append_dim="time")
    with pytest.raises(ValueError, match="region"):
        to_icechunk(ds, session, mode="w", region={"time": slice(0, 2)})
    with pytest.raises(ValueError, match="mode"):
        to_icechunk(ds, session, mode="x")  # type: ignore[arg-type]
    to_icechunk(ds, session)
    session.commit("ok")
    with pytest.raises(ValueError, match="append_dim"):
        to_icechunk(strip(ds), repo.writable_session("main"), append_dim="nope")
    with pytest.raises(ic.InvalidInputError, match="at most one"):
        read(repo, branch="main", tag="v1")
    with pytest.raises(ic.InvalidInputError, match="Session is already one version"):
        read(repo.readonly_session("main"), branch="main")
    with pytest.raises(ic.InvalidInputError, match="as_of"):
        read(repo, tag="x", as_of=pd.Timestamp.now(tz="UTC").to_pydatetime())
    with pytest.raises(ic.InvalidInputError, match="engine='icechunk' opens"):
        read(42)


def test_entry_point_registers_the_accessor(repo: ic.Repository, tmp_path: Path) -> None:
    """A fresh interpreter: opening with engine="icechunk" loads the package and the accessor."""
    import subprocess
    import sys

    session = repo.writable_session("main")
    to_icechunk(era5_like(2), session)
    session.commit("x")
    script = (
        "import sys, xarray as xr\n"
        "assert 'icechunk_xarray' not in sys.modules\n"
        "assert not hasattr(xr.Dataset, 'icechunk')\n"
        f"ds = xr.open_dataset({str(tmp_path / 'repo')!r})\n"  # engine guessed
        "assert hasattr(xr.Dataset, 'icechunk') and hasattr(xr.DataArray, 'icechunk')\n"
        "print(ds.icechunk.snapshot_id)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == repo.lookup_branch("main")


@pytest.mark.parametrize("service", ["s3", "gcs"])
def test_open_object_store_urls(service: str, request: pytest.FixtureRequest) -> None:
    """engine="icechunk" on s3:// and gs:// URLs, against the local S3 and GCS emulators."""
    if not hasattr(ic, "s3_storage") or not hasattr(ic, "gcs_storage"):
        pytest.skip("no S3/GCS storage in this version")
    pytest.importorskip("moto" if service == "s3" else "gcsfs")
    from tests.helpers import storage_servers

    server = request.getfixturevalue("moto_s3" if service == "s3" else "fake_gcs")
    kwargs = server.storage_kwargs()
    repo = ic.Repository.create(server.storage(kwargs["prefix"]))
    ds = era5_like(4)
    session = repo.writable_session("main")
    to_icechunk(ds, session, encoding=fresh_encoding(ds))
    sid = session.commit("remote")
    if service == "s3":
        url = f"s3://{storage_servers.S3_BUCKET}/{kwargs['prefix']}"
        options = {  # fsspec spellings
            "key": storage_servers.S3_ACCESS_KEY,
            "secret": storage_servers.S3_SECRET_KEY,
            "client_kwargs": {"endpoint_url": server.url, "region_name": storage_servers.S3_REGION},
            "config_kwargs": {"s3": {"addressing_style": "path"}},
        }
    else:
        url = f"gs://{storage_servers.GCS_BUCKET}/{kwargs['prefix']}"
        options = {"token": "anon", "endpoint_url": server.url}
    opened = xr.open_dataset(url, engine="icechunk", storage_options=options, chunks={})
    assert opened.icechunk.snapshot_id == sid
    xr.testing.assert_identical(opened.load(), ds)
