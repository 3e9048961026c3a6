"""Interop scenario: describe a repository completely as JSON.

Usage: python dump_repo.py <repo_path> [probe_ref ...]

Runs unchanged under the official icechunk and under ours.  The output only
contains things that must be identical whichever implementation reads the
same repository: refs, ancestries, commit info, diffs, and for every snapshot
in those ancestries the full Zarr hierarchy with data checksums and the keys
the store lists.  ``probe_ref`` names (e.g. a deleted tag) are looked up as
tags and branches and the outcome (id or error kind) is recorded.

With ``--more`` (anywhere among the arguments) the dump also holds the
repository-level state: repo metadata, feature flags, the ops log (kinds and
their fields, not timestamps or backup paths), the config (as opened and as
fetched from storage) and the manifest files of every snapshot.

JSON only: NaN / infinities are written as the strings "NaN", "Infinity",
"-Infinity"; the dump is printed with sort_keys and allow_nan=False.
"""

import asyncio
import hashlib
import json
import math
import sys

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype

import icechunk as ic

DIFF_FIELDS = (
    "new_groups",
    "new_arrays",
    "deleted_groups",
    "deleted_arrays",
    "updated_groups",
    "updated_arrays",
)


def json_float(x):
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def json_scalar(v):
    """A fill value (numpy or Python scalar) as JSON."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    # before np.integer: numpy counts timedelta64 as a signed integer
    if isinstance(v, (np.datetime64, np.timedelta64)):
        return {"type": type(v).__name__, "value": str(v), "int": int(v.astype("int64"))}
    if isinstance(v, str):
        return {"str": str(v)}
    if isinstance(v, bytes):
        return {"bytes_hex": bytes(v).hex()}
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return json_float(v)
    if isinstance(v, (complex, np.complexfloating)):
        return [json_float(v.real), json_float(v.imag)]
    if v is None:
        return None
    return {"repr": repr(v), "type": type(v).__name__}


def error_kind(exc):
    """Classify an exception by the public classes both packages export."""
    kinds = {}
    for name in ("IcechunkError", "NotFoundError", "RefNotFoundError", "InvalidInputError"):
        cls = getattr(ic, name, None)
        kinds[name] = cls is not None and isinstance(exc, cls)
    kinds["KeyError"] = isinstance(exc, KeyError)
    kinds["ValueError"] = isinstance(exc, ValueError)
    return kinds


def data_sha256(arr):
    data = np.asarray(arr[...])
    if data.dtype.kind in "OT":
        # variable-length strings (StringDType or objects): the in-memory
        # bytes hold pointers, so hash the UTF-8 of each element instead,
        # each preceded by its length
        digest = hashlib.sha256()
        for item in data.reshape(-1).tolist():
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            digest.update(len(raw).to_bytes(8, "little"))
            digest.update(raw)
        return digest.hexdigest()
    data = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
    return hashlib.sha256(data.tobytes(order="C")).hexdigest()


def short_sha(b):
    return None if b is None else hashlib.sha256(b).hexdigest()[:16]


async def alist(agen):
    return [x async for x in agen]


async def store_get(store, key, byte_range=None):
    buf = await store.get(key, prototype=default_buffer_prototype(), byte_range=byte_range)
    return None if buf is None else buf.to_bytes()


async def outcome(coro):
    """Result of an awaitable, or the kind of error it raised."""
    try:
        return {"ok": await coro}
    except Exception as exc:  # noqa: BLE001 - we record what happened
        return {"error": error_kind(exc)}


async def chunk_digests(store, prefix, chunk_keys):
    blobs = await asyncio.gather(*(store_get(store, prefix + k) for k in chunk_keys))
    return {k: short_sha(b) for k, b in zip(chunk_keys, blobs)}


def run(coro):
    return asyncio.run(coro)


def info_dict(info):
    return {
        "id": info.id,
        "parent_id": info.parent_id,
        "message": info.message,
        "metadata": info.metadata,
        "written_at": info.written_at.isoformat(),
    }


def diff_dict(diff):
    out = {f: sorted(getattr(diff, f)) for f in DIFF_FIELDS}
    out["updated_chunks"] = {
        path: sorted([list(c) for c in coords])
        for path, coords in sorted(diff.updated_chunks.items())
    }
    return out


def node_key_prefix(path):
    """Store-key prefix of a node: "" for the root, "a/b/" for "/a/b"."""
    return "" if path == "/" else path.lstrip("/") + "/"


def dump_node(store, path, node, all_keys):
    prefix = node_key_prefix(path)
    raw = run(store_get(store, prefix + "zarr.json"))
    out = {
        "zarr_json": json.loads(raw) if raw is not None else None,
        "zarr_json_sha256": hashlib.sha256(raw).hexdigest() if raw is not None else None,
        "attributes": dict(node.attrs),
        "list_dir": sorted(run(alist(store.list_dir(prefix.rstrip("/"))))),
    }
    if isinstance(node, zarr.Group):
        out["type"] = "group"
        return out
    out["type"] = "array"
    out["shape"] = list(node.shape)
    out["dtype"] = str(np.dtype(node.dtype))
    out["chunks"] = list(node.chunks)
    out["shards"] = None if node.shards is None else list(node.shards)
    out["fill_value"] = json_scalar(node.fill_value)
    dims = node.metadata.dimension_names
    out["dimension_names"] = None if dims is None else list(dims)
    out["nchunks"] = node.nchunks
    out["nchunks_initialized"] = node.nchunks_initialized
    out["data_sha256"] = data_sha256(node)
    listed = run(alist(store.list_prefix(prefix)))
    chunk_keys = sorted(k[len(prefix) :] for k in listed if k != prefix + "zarr.json")
    out["chunk_keys"] = chunk_keys
    from_full_list = sorted(
        k[len(prefix) :] for k in all_keys if k.startswith(prefix) and k != prefix + "zarr.json"
    )
    out["list_prefix_matches_list"] = from_full_list == chunk_keys
    out["chunk_dir"] = sorted(run(alist(store.list_dir(prefix + "c")))) if node.ndim else None
    # raw stored bytes of every chunk (what the codec pipeline produced)
    out["chunk_sha256_16"] = run(chunk_digests(store, prefix, chunk_keys))
    return out


async def store_probes(store):
    """Edge cases of the zarr Store interface, evaluated at a branch head
    written by write_rich.py (keys that do not exist there just give
    False / None)."""
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest

    out = {}
    for key in (
        "zarr.json",
        "a/zarr.json",
        "a/int8/zarr.json",
        "a/int8/c/0/0",
        "a/int8/c/2/2",
        "a/int8/c/0/0/0",
        "a/int8/c",
        "a/scalar/c",
        "a/scalar/c/0",
        "nope/zarr.json",
        "a/b/native/c/0/0",
        "many/c/49/19",
        "a/int8",
        "a/int8/c/x/0",
        "a/int8/d/0/0",
    ):
        out["exists " + key] = await outcome(store.exists(key))
        out["get " + key] = await outcome(_sha(store_get(store, key)))
    ranges = {
        "range(2,10)": RangeByteRequest(2, 10),
        "suffix(5)": SuffixByteRequest(5),
        "offset(7)": OffsetByteRequest(7),
    }
    # native (large) and inline (small) chunks; only in-bounds ranges: the
    # official package errors or even panics on out-of-bounds ones
    for key in (
        "a/b/native/c/0/0",
        "a/b/mixed/c/0/0",
        "a/b/mixed/c/1/0",
        "a/int8/c/0/0",
        "a/b/sharded/c/0/0",
    ):
        for label, br in ranges.items():
            out[f"get {key} {label}"] = await outcome(_sha(store_get(store, key, br)))
    for prefix in ("a/b/nat", "many/c/4", "a/int8/c/"):
        out["list_prefix " + prefix] = await outcome(_sorted_listing(store.list_prefix, prefix))
    for prefix in ("nonexistent", "a/int8/c", "a/b/", "/"):
        out["list_dir " + prefix] = await outcome(_sorted_listing(store.list_dir, prefix))
    return out


async def _sha(coro):
    b = await coro
    return None if b is None else {"len": len(b), "sha256_16": short_sha(b)}


async def _sorted_listing(method, prefix):
    # the official store raises from the call itself, others may raise
    # while iterating: both count as an error
    return sorted(await alist(method(prefix)))


def dump_snapshot(repo, snapshot_id):
    session = repo.readonly_session(snapshot_id=snapshot_id)
    store = session.store
    all_keys = run(alist(store.list()))
    out = {
        "session_snapshot_id": session.snapshot_id,
        "num_keys": len(all_keys),
        "num_unique_keys": len(set(all_keys)),
        "metadata_keys": sorted(
            k for k in all_keys if k == "zarr.json" or k.endswith("/zarr.json")
        ),
        "root_list_dir": sorted(run(alist(store.list_dir("")))),
    }
    try:
        root = zarr.open_group(store, mode="r", zarr_format=3)
    except (zarr.errors.GroupNotFoundError, FileNotFoundError, KeyError):
        out["nodes"] = None  # the initial snapshot has no root group
        return out
    nodes = {"/": dump_node(store, "/", root, all_keys)}
    for name, node in root.members(max_depth=None):
        path = "/" + name
        nodes[path] = dump_node(store, path, node, all_keys)
    out["nodes"] = nodes
    return out


def probe_ref(repo, name):
    out = {}
    for kind, fn in (("tag", repo.lookup_tag), ("branch", repo.lookup_branch)):
        try:
            out[kind] = {"found": fn(name)}
        except Exception as exc:  # noqa: BLE001 - we record what happened
            out[kind] = {"error": error_kind(exc)}
    return out


def plain(value):
    """A field of an ops-log entry or a config object as JSON."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    fields = getattr(type(value), "__match_args__", None)
    if fields is not None:
        return {"kind": type(value).__name__, **{f: plain(getattr(value, f)) for f in fields}}
    return {"repr": repr(value), "type": type(value).__name__}


def kind_fields(kind):
    fields = getattr(type(kind), "__match_args__", None)
    if fields is None:
        fields = sorted(
            a
            for a in dir(kind)
            if not a.startswith("_") and not a[0].isupper() and not callable(getattr(kind, a))
        )
    return {f: plain(getattr(kind, f)) for f in fields}


def split_condition(cond, family, variants):
    """A manifest-split condition as JSON.  The argument-less variants are
    recognised by class name (the official package has one class per
    variant) or else by equality with a fresh instance, so that the config
    round trip is compared, not how the classes are shaped."""
    name = type(cond).__name__
    if name in variants:
        return {"kind": name}
    cls = getattr(ic, family)
    for variant in variants:
        try:
            if cond == getattr(cls, variant)():
                return {"kind": variant}
        except Exception:  # noqa: BLE001, S112 - not comparable: try the next one
            continue
    return plain(cond)


def config_dict(config):
    if config is None:
        return None
    manifest = config.manifest
    splitting = None if manifest is None else manifest.splitting
    split_sizes = None
    if splitting is not None:
        split_sizes = [
            [
                split_condition(cond, "ManifestSplitCondition", ("AnyArray",)),
                [
                    [split_condition(dim, "ManifestSplitDimCondition", ("Any",)), size]
                    for dim, size in dims
                ],
            ]
            for cond, dims in splitting.split_sizes
        ]
    return {
        "inline_chunk_threshold_bytes": config.inline_chunk_threshold_bytes,
        "manifest_is_none": manifest is None,
        "split_sizes": split_sizes,
    }


def more_sections(repo, storage, snapshot_ids):
    """Repository-level state (``--more``)."""
    return {
        "repo_metadata": repo.get_metadata(),
        "feature_flags": [
            {
                "id": f.id,
                "name": f.name,
                "default_enabled": f.default_enabled,
                "setting": f.setting,
                "enabled": f.enabled,
            }
            # the official package lists them in no fixed order
            for f in sorted(repo.feature_flags(), key=lambda f: f.id)
        ],
        "ops_log": [
            {"kind": type(u.kind).__name__, "fields": kind_fields(u.kind)} for u in repo.ops_log()
        ],
        "config": config_dict(repo.config),
        "fetched_config": config_dict(ic.Repository.fetch_config(storage)),
        "manifest_files": {
            sid: sorted(
                [m.id, m.num_chunk_refs, m.size_bytes] for m in repo.list_manifest_files(sid)
            )
            for sid in snapshot_ids
        },
    }


def main(path, probes):
    more = "--more" in probes
    probes = [p for p in probes if p != "--more"]
    repo = ic.Repository.open(ic.local_filesystem_storage(path))
    branches = {b: repo.lookup_branch(b) for b in sorted(repo.list_branches())}
    tags = {t: repo.lookup_tag(t) for t in sorted(repo.list_tags())}

    ancestry = {}
    snapshot_infos = {}
    for b in branches:
        chain = [info_dict(i) for i in repo.ancestry(branch=b)]
        ancestry["branch:" + b] = chain
        for i in chain:
            snapshot_infos[i["id"]] = i
    for t in tags:
        chain = [info_dict(i) for i in repo.ancestry(tag=t)]
        ancestry["tag:" + t] = chain
        for i in chain:
            snapshot_infos[i["id"]] = i

    snapshots = {}
    for sid, info in sorted(snapshot_infos.items()):
        snap = dump_snapshot(repo, sid)
        snap["lookup_snapshot"] = info_dict(repo.lookup_snapshot(sid))
        snap["ancestry_from_id_len"] = sum(1 for _ in repo.ancestry(snapshot_id=sid))
        if info["parent_id"] is not None:
            snap["diff_from_parent"] = diff_dict(
                repo.diff(from_snapshot_id=info["parent_id"], to_snapshot_id=sid)
            )
        snapshots[sid] = snap

    heads = {}
    probes_at_heads = {}
    for b in branches:
        session = repo.readonly_session(branch=b)
        heads["branch:" + b] = session.snapshot_id
        probes_at_heads[b] = run(store_probes(session.store))
    for t in tags:
        heads["tag:" + t] = repo.readonly_session(tag=t).snapshot_id

    dump = {
        "exists": ic.Repository.exists(ic.local_filesystem_storage(path)),
        "branches": branches,
        "tags": tags,
        "session_heads": heads,
        "ancestry": ancestry,
        "snapshots": snapshots,
        "store_probes": probes_at_heads,
        "probes": {name: probe_ref(repo, name) for name in probes},
    }
    if more:
        dump["more"] = more_sections(repo, ic.local_filesystem_storage(path), sorted(snapshots))
    sys.stdout.write(json.dumps(dump, sort_keys=True, allow_nan=False, ensure_ascii=True))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
