"""Interop scenario on S3: write a small repository, or describe one, via ``ic.s3_storage``.

Usage: python s3_round_trip.py write|read <endpoint_url> <bucket> <prefix> <key> <secret>

Runs unchanged under the official icechunk and under ours (public API only).
"""

import hashlib
import json
import sys

import numpy as np
import zarr

import icechunk as ic


def open_storage(endpoint, bucket, prefix, key, secret):
    return ic.s3_storage(
        bucket=bucket,
        prefix=prefix,
        endpoint_url=endpoint,
        allow_http=True,
        force_path_style=True,
        access_key_id=key,
        secret_access_key=secret,
        region="us-east-1",
    )


def write(storage):
    repo = ic.Repository.create(storage)
    session = repo.writable_session("main")
    root = zarr.group(store=session.store, attributes={"title": "s3 interop"})
    temp = root.create_array("temperature", shape=(32, 32), chunks=(16, 16), dtype="float64")
    temp[:] = np.random.default_rng(42).random((32, 32))  # native chunk objects, not inline
    small = root.create_array("small", shape=(4,), chunks=(2,), dtype="int32")
    small[:] = np.arange(4, dtype="int32")  # inline chunks
    first = session.commit("first")
    repo.create_tag("v1", first)
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="temperature", mode="r+")[0, :] = -1
    session.commit("second")
    print(json.dumps({"written": True}))


def read(storage):
    repo = ic.Repository.open(storage)
    out = {
        "ancestry": [info.message for info in repo.ancestry(branch="main")],
        "tags": sorted(repo.list_tags()),
        "branches": sorted(repo.list_branches()),
    }
    for kind, name in (("branch", "main"), ("tag", "v1")):
        store = repo.readonly_session(**{kind: name}).store
        root = zarr.open_group(store, mode="r")
        out[name] = {
            "title": root.attrs["title"],
            "temperature": hashlib.sha256(root["temperature"][:].tobytes()).hexdigest(),
            "small": root["small"][:].tolist(),
        }
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    {"write": write, "read": read}[mode](open_storage(*rest))
