"""Virtual chunk references: chunks whose bytes live in HDF5/netCDF4 files outside the repo.

Real HDF5 files are written with h5py (netCDF4 ones with h5netcdf); their chunk byte
ranges come from h5py's low-level chunk index (``DatasetID.get_chunk_info``) and are
referenced from a repository. Reads go through zarr/xarray and must return what h5py
reads from the file itself -- from local files, from S3 (moto) and over HTTP.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import icechunk as ic
from icechunk._util.sync import run
from icechunk.format.manifest import VirtualChunk, decode_manifest

h5py = pytest.importorskip("h5py")
xr = pytest.importorskip("xarray")

from tests.helpers.storage_servers import (  # noqa: E402
    GCS_BUCKET,
    S3_ACCESS_KEY,
    S3_BUCKET,
    S3_REGION,
    S3_SECRET_KEY,
    MotoS3,
    serve_directory,
    unique_prefix,
)

# -- HDF5 helpers -------------------------------------------------------------------------


def chunk_refs(dataset: Any) -> list[tuple[tuple[int, ...], int, int]]:
    """(chunk index, byte offset, byte length) of every stored chunk of an h5py dataset."""
    dsid = dataset.id
    if dataset.chunks is None:  # contiguous: one chunk covering the whole dataset
        return [((0,) * dataset.ndim, dsid.get_offset(), dsid.get_storage_size())]
    out = []
    for i in range(dsid.get_num_chunks()):
        info = dsid.get_chunk_info(i)
        index = tuple(o // c for o, c in zip(info.chunk_offset, dataset.chunks, strict=True))
        out.append((index, info.byte_offset, info.size))
    return out


def write_hdf5(path: Path) -> dict[str, np.ndarray]:
    """An HDF5 file with a chunked, a gzip-compressed and a contiguous dataset."""
    rng = np.random.default_rng(42)
    values = {
        "temperature": rng.normal(15, 8, size=(6, 8, 10)).astype("<f4"),
        "counts": np.arange(30 * 20, dtype="<i8").reshape(30, 20),
        "flat": np.linspace(0, 1, 50, dtype="<f8"),
    }
    with h5py.File(path, "w") as f:
        f.create_dataset("temperature", data=values["temperature"], chunks=(2, 4, 5))
        f.create_dataset("counts", data=values["counts"], chunks=(8, 8), compression="gzip")
        f.create_dataset("flat", data=values["flat"])  # contiguous
    return values


def virtualize(
    store: ic.IcechunkStore,
    h5_path: Path,
    location: str,
    *,
    checksum: str | datetime.datetime | None = None,
) -> None:
    """Create one zarr array per dataset of ``h5_path``, its chunks virtual refs to ``location``."""
    root = zarr.open_group(store, mode="a")
    with h5py.File(h5_path, "r") as f:
        for name, dataset in f.items():
            chunks = dataset.chunks or dataset.shape
            compressors: Any = None
            if dataset.compression == "gzip":  # HDF5 "gzip" is a zlib stream
                compressors = [zarr.codecs.numcodecs.Zlib(level=4)]
            root.create_array(
                name,
                shape=dataset.shape,
                chunks=chunks,
                dtype=dataset.dtype,
                compressors=compressors,
                fill_value=0,
                dimension_names=[f"{name}_{d}" for d in range(dataset.ndim)],
            )
            specs = [
                ic.VirtualChunkSpec(
                    list(index),
                    location,
                    offset,
                    length,
                    etag_checksum=checksum if isinstance(checksum, str) else None,
                    last_updated_at_checksum=(
                        checksum if isinstance(checksum, datetime.datetime) else None
                    ),
                )
                for index, offset, length in chunk_refs(dataset)
            ]
            assert store.set_virtual_refs(name, specs) is None


def local_container(directory: Path) -> tuple[str, ic.VirtualChunkContainer]:
    prefix = f"file://{directory}/"
    return prefix, ic.VirtualChunkContainer(prefix, ic.local_filesystem_store(str(directory)))


def local_repo(
    tmp_path: Path, data_dir: Path, *, authorize: bool = True
) -> tuple[ic.Repository, str]:
    prefix, container = local_container(data_dir)
    config = ic.RepositoryConfig.default()
    config.set_virtual_chunk_container(container)
    access = {prefix: ic.credentials.LocalFileSystemAccess} if authorize else None
    repo = ic.Repository.create(
        ic.local_filesystem_storage(str(tmp_path / "repo")),
        config=config,
        authorize_virtual_chunk_access=access,
    )
    return repo, prefix


def file_etag(path: Path) -> str:
    """The ETag object stores give a local file (inode-mtime_us-size, hex)."""
    st = os.stat(path)
    return f"{st.st_ino:x}-{st.st_mtime_ns // 1000:x}-{st.st_size:x}"


def rewrite_in_place(path: Path) -> None:
    """Change a file's bytes (same size) and make sure its mtime moves on."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    time.sleep(0.01)
    path.write_bytes(bytes(data))
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


@pytest.fixture
def h5_file(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = data_dir / "sample.h5"
    return path, write_hdf5(path)


# -- configuration ------------------------------------------------------------------------


def test_container_config_round_trip(tmp_path: Path) -> None:
    config = ic.RepositoryConfig.default()
    assert config.virtual_chunk_containers is None
    local = ic.VirtualChunkContainer("file:///data/", ic.local_filesystem_store("/data"))
    s3 = ic.VirtualChunkContainer(
        "s3://bucket/prefix/",
        ic.s3_store(
            region="us-east-1",
            endpoint_url="http://localhost:9000",
            allow_http=True,
            s3_compatible=True,
        ),
        name="bk",
    )
    http = ic.VirtualChunkContainer("https://example.com/", ic.http_store(headers={"a": "b"}))
    gcs = ic.VirtualChunkContainer("gs://bucket/", ic.gcs_store({"service_account": "x"}))
    for cont in (local, s3, http, gcs):
        config.set_virtual_chunk_container(cont)
    assert set(config.virtual_chunk_containers or {}) == {
        "file:///data/",
        "s3://bucket/prefix/",
        "https://example.com/",
        "gs://bucket/",
    }
    assert config.get_virtual_chunk_container("s3://bucket/prefix/") == s3
    assert config.get_virtual_chunk_container("nope") is None
    # a named container replaces the container of the same name
    moved = ic.VirtualChunkContainer("s3://bucket/other/", ic.s3_store(), name="bk")
    config.set_virtual_chunk_container(moved)
    assert "s3://bucket/prefix/" not in (config.virtual_chunk_containers or {})
    assert isinstance(moved.store, ic.ObjectStoreConfig.S3)

    repo = ic.Repository.create(ic.local_filesystem_storage(str(tmp_path / "r")), config=config)
    reopened = ic.Repository.open(ic.local_filesystem_storage(str(tmp_path / "r")))
    assert reopened.config.virtual_chunk_containers == config.virtual_chunk_containers
    assert repo.authorized_virtual_container_prefixes == set()

    config.clear_virtual_chunk_containers()
    assert config.virtual_chunk_containers == {}


def test_container_validation() -> None:
    with pytest.raises(ic.InvalidInputError):
        ic.VirtualChunkContainer("s3://bucket/", ic.local_filesystem_store("/data"))
    with pytest.raises(ic.InvalidInputError):
        ic.VirtualChunkContainer("file:///", ic.local_filesystem_store("/"))
    with pytest.raises(ic.InvalidInputError):
        ic.RepositoryConfig.default().set_virtual_chunk_container("s3://bucket/")  # type: ignore[arg-type]
    creds = ic.containers_credentials(
        {
            "s3://b/": ic.s3_credentials(anonymous=True),
            "file:///d/": ic.credentials.LocalFileSystemAccess,
            "gs://g/": None,
        }
    )
    assert isinstance(creds["s3://b/"], ic.Credentials.S3)
    assert creds["gs://g/"] is None
    with pytest.raises(ic.InvalidInputError):
        ic.containers_credentials({"s3://b/": "secret"})


def test_credentials_must_suit_the_container(tmp_path: Path) -> None:
    prefix, container = local_container(tmp_path)
    config = ic.RepositoryConfig.default()
    config.set_virtual_chunk_container(container)
    with pytest.raises(ic.InvalidCredentialsError):
        ic.Repository.create(
            ic.in_memory_storage(),
            config=config,
            authorize_virtual_chunk_access={prefix: ic.credentials.HttpAccess},
        )
    with pytest.warns(DeprecationWarning, match="LocalFileSystemAccess"):
        ic.Repository.create(
            ic.in_memory_storage(), config=config, authorize_virtual_chunk_access={prefix: None}
        )


# -- local HDF5 files ---------------------------------------------------------------------


def test_hdf5_chunks_read_through_zarr(tmp_path: Path, h5_file) -> None:
    path, values = h5_file
    repo, prefix = local_repo(tmp_path, path.parent)
    session = repo.writable_session("main")
    virtualize(session.store, path, f"{prefix}{path.name}")
    for name, expected in values.items():
        got = zarr.open_array(session.store, path=name, mode="r")[...]
        np.testing.assert_array_equal(got, expected)
        assert session.chunk_type(name, [0] * expected.ndim) == ic.ChunkType.virtual
    snapshot = session.commit("virtual hdf5")

    # a fresh open needs the container authorised again
    reopened = ic.Repository.open(
        ic.local_filesystem_storage(str(tmp_path / "repo")),
        authorize_virtual_chunk_access={prefix: ic.credentials.LocalFileSystemAccess},
    )
    assert reopened.authorized_virtual_container_prefixes == {prefix}
    ro = reopened.readonly_session(snapshot_id=snapshot)
    with h5py.File(path, "r") as f:
        for name in values:
            np.testing.assert_array_equal(
                zarr.open_array(ro.store, path=name, mode="r")[...], f[name][...]
            )
        # a partial selection touches only some chunks
        np.testing.assert_array_equal(
            zarr.open_array(ro.store, path="temperature", mode="r")[1:4, 2:7, 3],
            f["temperature"][1:4, 2:7, 3],
        )
    locations = ro.all_virtual_chunk_locations()
    n_chunks = 3 * 2 * 2 + 4 * 3 + 1
    assert locations == [f"{prefix}{path.name}"] * n_chunks


def test_netcdf4_dataset_through_xarray(tmp_path: Path) -> None:
    pytest.importorskip("h5netcdf")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    nc_path = data_dir / "weather.nc"
    rng = np.random.default_rng(0)
    source = xr.Dataset(
        {
            "tas": (("time", "lat", "lon"), rng.normal(280, 5, (4, 6, 8)).astype("float32")),
            "pr": (("time", "lat", "lon"), rng.gamma(1, 2, (4, 6, 8))),
        },
        coords={
            "time": np.arange(4, dtype="int64"),
            "lat": np.linspace(-50, 50, 6),
            "lon": np.linspace(0, 315, 8),
        },
        attrs={"title": "virtual weather"},
    )
    source["tas"].attrs = {"units": "K", "long_name": "air temperature"}
    encoding = {
        "tas": {"chunksizes": (1, 3, 4), "_FillValue": -999.0},
        "pr": {"chunksizes": (2, 6, 8), "_FillValue": -1.0},
    }
    source.to_netcdf(nc_path, engine="h5netcdf", encoding=encoding)

    repo, prefix = local_repo(tmp_path, data_dir)
    session = repo.writable_session("main")
    raw = xr.open_dataset(nc_path, engine="h5netcdf", decode_cf=False)
    root = zarr.group(session.store, attributes=dict(raw.attrs))
    with h5py.File(nc_path, "r") as f:
        for name, var in raw.variables.items():
            dataset = f[name]
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in var.attrs.items()}
            fill = attrs.pop("_FillValue", 0)  # xarray masks by the zarr fill value's twin
            root.create_array(
                name,
                shape=dataset.shape,
                chunks=dataset.chunks or dataset.shape,
                dtype=dataset.dtype,
                compressors=None,
                fill_value=fill,
                dimension_names=list(var.dims),
                attributes=attrs,
            )
            specs = [
                ic.VirtualChunkSpec(list(i), f"{prefix}{nc_path.name}", off, n)
                for i, off, n in chunk_refs(dataset)
            ]
            assert session.store.set_virtual_refs(name, specs) is None
    session.commit("virtual netCDF")

    ro = repo.readonly_session("main")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        virtual = xr.open_zarr(ro.store, consolidated=False, zarr_format=3)
        expected = xr.open_dataset(nc_path, engine="h5netcdf")
    xr.testing.assert_identical(virtual.compute(), expected.compute())
    assert virtual["tas"].attrs["units"] == "K"


def test_checksums_detect_changed_files(tmp_path: Path, h5_file) -> None:
    path, values = h5_file
    repo, prefix = local_repo(tmp_path, path.parent)
    location = f"{prefix}{path.name}"
    session = repo.writable_session("main")
    virtualize(session.store, path, location, checksum=file_etag(path))
    root = zarr.open_group(session.store, mode="a")
    root.create_array("stamped", shape=(50,), chunks=(50,), dtype="<f8", compressors=None)
    with h5py.File(path, "r") as f:
        ((_, offset, length),) = chunk_refs(f["flat"])
    stamp = datetime.datetime.fromtimestamp(os.stat(path).st_mtime + 1, datetime.UTC)
    session.store.set_virtual_ref(
        "stamped/c/0", location, offset=offset, length=length, checksum=stamp
    )
    np.testing.assert_array_equal(root["counts"][...], values["counts"])
    np.testing.assert_array_equal(root["stamped"][...], values["flat"])
    session.commit("checked refs")

    rewrite_in_place(path)
    ro = repo.readonly_session("main")
    with pytest.raises(ic.VirtualChunkModifiedError, match="modified"):
        zarr.open_array(ro.store, path="counts", mode="r")[...]
    with pytest.raises(ic.VirtualChunkModifiedError):
        zarr.open_array(ro.store, path="stamped", mode="r")[...]
    assert issubclass(ic.VirtualChunkModifiedError, ic.StorageError)


def test_missing_and_unauthorised_containers(tmp_path: Path, h5_file) -> None:
    path, _ = h5_file
    repo, prefix = local_repo(tmp_path, path.parent)
    session = repo.writable_session("main")
    virtualize(session.store, path, f"{prefix}{path.name}")
    session.commit("virtual")
    storage = ic.local_filesystem_storage(str(tmp_path / "repo"))

    # not authorised: a typed error, never fill values
    unauthorised = ic.Repository.open(storage)
    store = unauthorised.readonly_session("main").store
    with pytest.raises(ic.UnauthorizedVirtualChunkContainerError, match=prefix):
        zarr.open_array(store, path="flat", mode="r")[...]

    # no container (cleared by the config given at open)
    config = ic.RepositoryConfig.default()
    config.clear_virtual_chunk_containers()
    no_container = ic.Repository.open(
        storage,
        config=config,
        authorize_virtual_chunk_access={prefix: ic.credentials.LocalFileSystemAccess},
    )
    store = no_container.readonly_session("main").store
    with pytest.raises(ic.NoVirtualChunkContainerError):
        zarr.open_array(store, path="counts", mode="r")[...]

    # the file is gone
    path.unlink()
    authorised = ic.Repository.open(
        storage, authorize_virtual_chunk_access={prefix: ic.credentials.LocalFileSystemAccess}
    )
    with pytest.raises(ic.VirtualChunkFetchError, match="not found"):
        zarr.open_array(authorised.readonly_session("main").store, path="flat", mode="r")[...]


def test_set_virtual_ref_validation(tmp_path: Path) -> None:
    repo, prefix = local_repo(tmp_path, tmp_path)
    session = repo.writable_session("main")
    store = session.store
    zarr.create_array(store, name="x", shape=(8,), chunks=(4,), dtype="<i4", compressors=None)
    with pytest.raises(ic.NoVirtualChunkContainerError):
        store.set_virtual_ref("x/c/0", "s3://elsewhere/f.nc", offset=0, length=16)
    store.set_virtual_ref(
        "x/c/0", "s3://elsewhere/f.nc", offset=0, length=16, validate_container=False
    )
    with pytest.raises(ic.InvalidVirtualRefError):
        store.set_virtual_ref("x/c/0", "relative/path.nc", offset=0, length=16)
    with pytest.raises(ic.InvalidVirtualRefError):
        store.set_virtual_ref("x/c/0", f"{prefix}f", offset=-1, length=16)
    with pytest.raises(ic.InvalidInputError):
        store.set_virtual_ref("x/c/9", f"{prefix}f", offset=0, length=16)
    # dot segments of file URLs are resolved
    store.set_virtual_ref("x/c/1", f"{prefix}sub/../f.bin", offset=0, length=16)
    failed = store.set_virtual_refs(
        "x",
        [
            ic.VirtualChunkSpec([0], "s3://elsewhere/f.nc", 0, 16),
            ic.VirtualChunkSpec([1], f"{prefix}g.bin", 16, 16),
        ],
    )
    assert failed == [(0,)]
    assert sorted(session.all_virtual_chunk_locations()) == [
        f"{prefix}g.bin",
        "s3://elsewhere/f.nc",
    ]
    assert store.set_virtual_refs("x", [], validate_containers=False) is None
    assert (
        store.set_virtual_refs_arr(
            "x",
            (2,),
            [f"{prefix}a.bin", ""],
            np.array([0, 0], dtype="uint64"),
            np.array([16, 16], dtype="uint64"),
            arr_offset=(0,),
        )
        is None
    )
    assert session.chunk_type("x", [0]) == ic.ChunkType.virtual
    spec = ic.VirtualChunkSpec([3, 4], "s3://b/k", 5, 6, etag_checksum="abc")
    assert (spec.index, spec.location, spec.offset, spec.length) == ([3, 4], "s3://b/k", 5, 6)
    assert spec.etag_checksum == "abc" and spec.last_updated_at_checksum is None


async def test_async_api_and_concurrent_reads(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    values = np.arange(64 * 16, dtype="<i4")
    (data_dir / "v.bin").write_bytes(values.tobytes())
    repo, prefix = local_repo(tmp_path, data_dir)
    session = repo.writable_session("main")
    store = session.store
    arr = await zarr.api.asynchronous.create_array(
        store, name="v", shape=(values.size,), chunks=(16,), dtype="<i4", compressors=None
    )
    await store.set_virtual_ref_async("v/c/0", f"{prefix}v.bin", offset=0, length=64)
    specs = [ic.VirtualChunkSpec([i], f"{prefix}v.bin", 64 * i, 64) for i in range(1, 64)]
    assert await store.set_virtual_refs_async("v", specs) is None
    # every chunk is fetched concurrently and lands at its own position
    np.testing.assert_array_equal(await arr.getitem(slice(None)), values)
    assert len(await session.all_virtual_chunk_locations_async()) == 64


def test_many_concurrent_reads_through_zarrs_fused_pipeline(tmp_path: Path) -> None:
    """More concurrent array reads than zarr's loop has default worker threads: each holds
    one (FusedCodecPipeline) while IcechunkStore.get_sync waits for a file read, which must
    not need one too."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    values = np.arange(4 * 256, dtype="<i4")
    (data_dir / "v.bin").write_bytes(values.tobytes())
    repo, prefix = local_repo(tmp_path, data_dir)
    session = repo.writable_session("main")
    root = zarr.group(session.store)
    count = 40  # the default executor has at most 32 threads
    for i in range(count):
        root.create_array(f"a{i}", shape=values.shape, chunks=(256,), dtype="<i4", compressors=None)
        specs = [ic.VirtualChunkSpec([c], f"{prefix}v.bin", 1024 * c, 1024) for c in range(4)]
        assert session.store.set_virtual_refs(f"a{i}", specs) is None
    session.commit("refs")
    store = repo.readonly_session("main").store

    async def read_all() -> list[Any]:
        group = await zarr.api.asynchronous.open_group(store=store, mode="r")
        arrays = [await group.getitem(f"a{i}") for i in range(count)]
        return await asyncio.gather(*(a.getitem(slice(None)) for a in arrays))

    with zarr.config.set({"codec_pipeline.path": "zarr.core.codec_pipeline.FusedCodecPipeline"}):
        results = run(asyncio.wait_for(read_all(), timeout=60))
    for got in results:
        np.testing.assert_array_equal(got, values)


# -- manifests with many virtual refs ----------------------------------------------------


def test_many_refs_use_compressed_locations(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    n = 1500
    values = np.arange(n * 2, dtype="<i4")
    for part in range(3):  # several objects: locations differ
        (data_dir / f"part-{part}.bin").write_bytes(values.tobytes())
    repo, prefix = local_repo(tmp_path, data_dir)
    session = repo.writable_session("main")
    zarr.create_array(
        session.store, name="v", shape=(n * 2,), chunks=(2,), dtype="<i4", compressors=None
    )
    specs = [ic.VirtualChunkSpec([i], f"{prefix}part-{i % 3}.bin", 8 * i, 8) for i in range(n)]
    session.store.set_virtual_refs("v", specs)
    session.commit("many refs")

    manifests = list((tmp_path / "repo" / "manifests").iterdir())
    assert len(manifests) == 1
    manifest = decode_manifest(manifests[0].read_bytes(), manifests[0].name)
    root = manifest._root  # noqa: SLF001
    assert root.byte_vector(2), "expected a location dictionary"
    node_id = manifest.node_ids[0]
    first = manifest._arrays[node_id].table_at(1, 0)  # noqa: SLF001
    assert first.byte_vector(8) is not None and first.string(5) is None
    refs = dict(manifest.iter_refs(node_id))
    assert refs[(7,)] == VirtualChunk(f"{prefix}part-1.bin", 56, 8)

    ro = repo.readonly_session("main")
    np.testing.assert_array_equal(zarr.open_array(ro.store, path="v", mode="r")[...], values)

    # below the threshold (or with a higher configured one) locations stay plain
    config = ic.RepositoryConfig.default()
    config.manifest = ic.ManifestConfig(
        virtual_chunk_location_compression=ic.ManifestVirtualChunkLocationCompressionConfig(
            min_num_chunks=5000
        )
    )
    repo2 = ic.Repository.open(
        ic.local_filesystem_storage(str(tmp_path / "repo")),
        config=config,
        authorize_virtual_chunk_access={prefix: ic.credentials.LocalFileSystemAccess},
    )
    session = repo2.writable_session("main")
    session.store.set_virtual_ref("v/c/0", f"{prefix}part-2.bin", offset=0, length=8)
    session.commit("rewrite")
    newest = max((tmp_path / "repo" / "manifests").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    plain = decode_manifest(newest.read_bytes(), newest.name)
    assert not plain._root.byte_vector(2)  # noqa: SLF001
    assert len(dict(plain.iter_refs(plain.node_ids[0]))) == n


# -- S3 and HTTP --------------------------------------------------------------------------


@pytest.fixture
def s3_data(moto_s3: MotoS3, h5_file) -> Iterator[tuple[str, str, Path, dict[str, np.ndarray]]]:
    path, values = h5_file
    folder = unique_prefix("virtual")
    key = f"{folder}/{path.name}"
    moto_s3.client().put_object(Bucket=S3_BUCKET, Key=key, Body=path.read_bytes())
    yield f"s3://{S3_BUCKET}/{folder}/", key, path, values


def s3_repo(moto_s3: MotoS3, prefix: str, tmp_path: Path) -> ic.Repository:
    store = ic.s3_store(
        region=S3_REGION,
        endpoint_url=moto_s3.url,
        allow_http=True,
        s3_compatible=True,
        force_path_style=True,
    )
    config = ic.RepositoryConfig.default()
    config.set_virtual_chunk_container(ic.VirtualChunkContainer(prefix, store))
    credentials = ic.containers_credentials(
        {prefix: ic.s3_credentials(access_key_id=S3_ACCESS_KEY, secret_access_key=S3_SECRET_KEY)}
    )
    return ic.Repository.open_or_create(
        ic.local_filesystem_storage(str(tmp_path / "repo")),
        config=config,
        authorize_virtual_chunk_access=credentials,
    )


def test_s3_virtual_reads(moto_s3: MotoS3, s3_data, tmp_path: Path) -> None:
    prefix, key, path, values = s3_data
    etag = moto_s3.client().head_object(Bucket=S3_BUCKET, Key=key)["ETag"]
    repo = s3_repo(moto_s3, prefix, tmp_path)
    session = repo.writable_session("main")
    virtualize(session.store, path, f"{prefix}{path.name}", checksum=etag)
    session.commit("s3 refs")
    ro = s3_repo(moto_s3, prefix, tmp_path).readonly_session("main")
    for name, expected in values.items():
        np.testing.assert_array_equal(zarr.open_array(ro.store, path=name, mode="r")[...], expected)

    # overwrite the object: the ETag no longer matches
    moto_s3.client().put_object(Bucket=S3_BUCKET, Key=key, Body=b"x" * path.stat().st_size)
    ro = s3_repo(moto_s3, prefix, tmp_path).readonly_session("main")
    with pytest.raises(ic.VirtualChunkModifiedError):
        zarr.open_array(ro.store, path="temperature", mode="r")[...]


def test_http_virtual_reads(tmp_path: Path, h5_file) -> None:
    path, values = h5_file
    with serve_directory(path.parent) as server:
        prefix = f"{server.url}/"
        config = ic.RepositoryConfig.default()
        config.set_virtual_chunk_container(ic.VirtualChunkContainer(prefix, ic.http_store()))
        access = {prefix: ic.credentials.HttpAccess}
        repo = ic.Repository.create(
            ic.local_filesystem_storage(str(tmp_path / "repo")),
            config=config,
            authorize_virtual_chunk_access=access,
        )
        session = repo.writable_session("main")
        stamp = datetime.datetime.fromtimestamp(path.stat().st_mtime + 1, datetime.UTC)
        virtualize(session.store, path, f"{prefix}{path.name}", checksum=stamp)
        session.commit("http refs")
        ro = repo.readonly_session("main")
        for name, expected in values.items():
            np.testing.assert_array_equal(
                zarr.open_array(ro.store, path=name, mode="r")[...], expected
            )
        rewrite_in_place(path)
        with pytest.raises(ic.VirtualChunkModifiedError):
            zarr.open_array(repo.readonly_session("main").store, path="flat", mode="r")[...]
        # a missing object is a fetch error, not fill values
        path.unlink()
        with pytest.raises(ic.VirtualChunkFetchError):
            zarr.open_array(repo.readonly_session("main").store, path="counts", mode="r")[...]


# -- interop with the official package ----------------------------------------------------


@pytest.fixture(scope="module")
def official_env_module() -> Any:
    from tests.helpers import official_env

    official_env.official_python_or_skip()
    return official_env


@pytest.mark.interop
@pytest.mark.parametrize("writer", ["ours", "official"])
def test_interop_virtual_refs(tmp_path: Path, official_env_module: Any, writer: str) -> None:
    env = official_env_module
    script = env.SCENARIO_DIR / "virtual_refs.py"
    repo, data = str(tmp_path / "repo"), str(tmp_path / "data")
    run_writer = env.run_ours if writer == "ours" else env.run_official
    run_reader = env.run_official if writer == "ours" else env.run_ours
    n = 1100  # enough for a dictionary-compressed manifest
    written = run_writer(script, "write", repo, data, str(n))
    assert written["failed"] is None
    manifests = {
        p.name: decode_manifest(p.read_bytes(), p.name)
        for p in (tmp_path / "repo/manifests").iterdir()
    }
    big = [m for m in manifests.values() if m.num_refs() == n]
    assert len(big) == 1 and big[0]._root.byte_vector(2)  # noqa: SLF001
    for result in (run_reader(script, "read", repo, data), run_writer(script, "read", repo, data)):
        assert result["arrays"]["big"] == list(range(n * 4))
        assert result["arrays"]["checked"] == [100, 101, 102, 103, 104, 105, 106, 107, 7, 7, 7, 7]
        assert result["num_locations"] == n + 2
        prefix = f"file://{Path(data).resolve()}/"
        assert result["containers"] == [prefix]
        assert result["distinct_locations"] == [f"{prefix}small.bin", f"{prefix}values.bin"]
        assert result["chunk_types"] == ["virtual", "virtual", "inline"]


def test_gcs_virtual_reads(fake_gcs: Any, tmp_path: Path, h5_file) -> None:
    path, values = h5_file
    folder = unique_prefix("virtual")
    storage = fake_gcs.storage(prefix=folder)  # upload the file with our GCS backend
    run(storage.put(path.name, path.read_bytes()))
    prefix = f"gs://{GCS_BUCKET}/{folder}/"
    config = ic.RepositoryConfig.default()
    store = ic.gcs_store({"base_url": fake_gcs.url, "allow_http": "true"})
    config.set_virtual_chunk_container(ic.VirtualChunkContainer(prefix, store))
    access = ic.containers_credentials({prefix: ic.gcs_credentials(anonymous=True)})
    repo = ic.Repository.create(
        ic.local_filesystem_storage(str(tmp_path / "repo")),
        config=config,
        authorize_virtual_chunk_access=access,
    )
    session = repo.writable_session("main")
    virtualize(session.store, path, f"{prefix}{path.name}")
    session.commit("gcs refs")
    ro = repo.readonly_session("main")
    for name, expected in values.items():
        np.testing.assert_array_equal(zarr.open_array(ro.store, path=name, mode="r")[...], expected)
