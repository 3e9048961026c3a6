"""Write or read a repository of virtual chunks and print JSON; runs under either implementation.

Usage::

    python virtual_refs.py write REPO DATA_DIR N   # data file + repo with N virtual chunks
    python virtual_refs.py read REPO DATA_DIR      # values, locations, containers

``write`` creates ``DATA_DIR/values.bin`` (N*4 int32 values) and ``DATA_DIR/small.bin``,
a repository whose config has a ``file://DATA_DIR/`` container, an array ``big`` of N
virtual chunks (one per 4 values; N >= 1000 gives a dictionary-compressed manifest),
an array ``checked`` whose chunks carry an ETag-free last-modified checksum, and one
native chunk next to the virtual ones. ``read`` authorises the container and prints
every array's values and ``all_virtual_chunk_locations``.
"""

from __future__ import annotations

import datetime
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import zarr

import icechunk as ic


def container(data_dir: Path) -> ic.VirtualChunkContainer:
    return ic.VirtualChunkContainer(f"file://{data_dir}/", ic.local_filesystem_store(str(data_dir)))


def write(repo_path: str, data_dir: Path, n: int) -> dict:
    data_dir.mkdir(parents=True, exist_ok=True)
    values = np.arange(n * 4, dtype="<i4")
    (data_dir / "values.bin").write_bytes(values.tobytes())
    small = np.arange(100, 108, dtype="<i4")
    (data_dir / "small.bin").write_bytes(small.tobytes())
    config = ic.RepositoryConfig.default()
    config.set_virtual_chunk_container(container(data_dir))
    prefix = f"file://{data_dir}/"
    repo = ic.Repository.create(
        ic.local_filesystem_storage(repo_path),
        config=config,
        authorize_virtual_chunk_access={prefix: ic.credentials.LocalFileSystemAccess},
    )
    session = repo.writable_session("main")
    root = zarr.group(session.store)
    root.create_array("big", shape=(n * 4,), chunks=(4,), dtype="<i4", compressors=None)
    checked = root.create_array(
        "checked", shape=(12,), chunks=(4,), dtype="<i4", compressors=None, fill_value=-1
    )
    location = f"{prefix}values.bin"
    specs = [ic.VirtualChunkSpec([i], location, 16 * i, 16) for i in range(n)]
    failed = session.store.set_virtual_refs("big", specs)
    stamp = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    session.store.set_virtual_ref(
        "checked/c/0", f"{prefix}small.bin", offset=0, length=16, checksum=stamp
    )
    session.store.set_virtual_ref("checked/c/1", f"{prefix}small.bin", offset=16, length=16)
    checked[8:12] = np.array([7, 7, 7, 7], dtype="<i4")  # an inline chunk among virtual ones
    snapshot = session.commit("virtual refs")
    return {"snapshot": snapshot, "failed": failed}


def read(repo_path: str, data_dir: Path) -> dict:
    prefix = f"file://{data_dir}/"
    repo = ic.Repository.open(
        ic.local_filesystem_storage(repo_path),
        authorize_virtual_chunk_access={prefix: ic.credentials.LocalFileSystemAccess},
    )
    containers = repo.config.virtual_chunk_containers or {}
    session = repo.readonly_session("main")
    root = zarr.open_group(session.store, mode="r")
    arrays = {name: array[:].tolist() for name, array in sorted(root.arrays())}
    locations = session.all_virtual_chunk_locations()
    return {
        "containers": sorted(containers),
        "arrays": arrays,
        "num_locations": len(locations),
        "distinct_locations": sorted(set(locations)),
        "chunk_types": [
            str(session.chunk_type("/checked", [i])).rsplit(".", 1)[-1].lower() for i in range(3)
        ],
    }


def main() -> None:
    warnings.simplefilter("ignore")
    mode, repo_path, data_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3]).resolve()
    if mode == "write":
        out = write(repo_path, data_dir, int(sys.argv[4]))
    else:
        out = read(repo_path, data_dir)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
