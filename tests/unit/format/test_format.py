"""Format layer: ids, header, and round trips of every file type written by the official package."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from icechunk.exceptions import CorruptObjectError, InvalidInputError, UnsupportedSpecVersionError
from icechunk.format import flatbuf as fb
from icechunk.format.header import HEADER_LEN, MAGIC, FileType, decode_file, encode_file
from icechunk.format.ids import (
    INITIAL_SNAPSHOT_ID,
    decode_base32,
    encode_base32,
    normalize_id12,
)
from icechunk.format.manifest import (
    InlineChunk,
    VirtualChunk,
    decode_manifest,
    encode_manifest,
)
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
from icechunk.format.snapshot import decode_snapshot, encode_snapshot
from icechunk.format.transaction_log import decode_transaction_log, encode_transaction_log
from icechunk.format.values import decode_flexbuffer, decode_msgpack, encode_flexbuffer
from tests.helpers.paths import FIXTURES


def fixture_files(folder: str) -> list[Path]:
    return sorted(FIXTURES.glob(f"*/repo/{folder}/*"))


def test_initial_snapshot_id_is_the_crockford_text_of_its_bytes() -> None:
    raw = bytes.fromhex("0b1cc8d6787580f0e33a6534")
    assert encode_base32(raw) == INITIAL_SNAPSHOT_ID
    assert decode_base32(INITIAL_SNAPSHOT_ID, 12) == raw


def test_base32_round_trips_and_preserves_byte_order() -> None:
    raws = [os.urandom(12) for _ in range(300)]
    texts = [encode_base32(r) for r in raws]
    assert all(decode_base32(t, 12) == r for t, r in zip(texts, raws, strict=True))
    assert sorted(texts) == [encode_base32(r) for r in sorted(raws)]
    node = os.urandom(8)
    assert len(encode_base32(node)) == 13 and decode_base32(encode_base32(node), 8) == node


def test_base32_decoding_is_lenient_but_validates() -> None:
    assert normalize_id12(INITIAL_SNAPSHOT_ID.lower()) == INITIAL_SNAPSHOT_ID
    with pytest.raises(InvalidInputError):
        normalize_id12("not-an-id")
    with pytest.raises(InvalidInputError):
        normalize_id12("1CECHNKREP0F1RSTCMT")  # one character short
    with pytest.raises(InvalidInputError):
        normalize_id12("1CECHNKREP0F1RSTCMTZ")  # non-zero padding bits


def test_header_layout() -> None:
    data = encode_file(FileType.MANIFEST, b"payload")
    assert data[:12] == MAGIC == "ICE\N{ICE CUBE}CHUNK".encode()
    assert data[12:36].rstrip(b" ").decode().startswith("icechunk-py")
    assert data[36:39] == bytes([2, FileType.MANIFEST, 1])
    assert decode_file(data, FileType.MANIFEST, "x") == (2, b"payload")


@pytest.mark.parametrize(
    ("mangle", "error"),
    [
        (lambda d: d[:20], CorruptObjectError),
        (lambda d: b"X" + d[1:], CorruptObjectError),
        (lambda d: d[:37] + bytes([FileType.SNAPSHOT]) + d[38:], CorruptObjectError),
        (lambda d: d[:38] + b"\x00" + d[39:], CorruptObjectError),
        (lambda d: d[:36] + b"\x09" + d[37:], UnsupportedSpecVersionError),
        (lambda d: d[: HEADER_LEN + 5], CorruptObjectError),
        (lambda d: d[:HEADER_LEN] + b"garbage" * 5, CorruptObjectError),
    ],
)
def test_header_rejects_bad_files(mangle, error) -> None:
    data = encode_file(FileType.MANIFEST, b"payload" * 50)
    with pytest.raises(error):
        decode_file(mangle(data), FileType.MANIFEST, "manifest X")


def test_flexbuffers_match_the_bytes_the_official_package_writes() -> None:
    assert encode_flexbuffer({"is_root": True}).hex() == "69735f726f6f740001090101010168022401"
    assert encode_flexbuffer(1).hex() == "010801"
    assert encode_flexbuffer("fixture").hex() == "07666978747572650008140" + "1"
    value = {"s": "héllo ✓", "i": -3, "u": 2**63, "f": 2.5, "b": False, "n": None, "l": [1, {}]}
    assert decode_flexbuffer(encode_flexbuffer(value)) == value


def test_flexbuffers_reject_values_that_are_not_json() -> None:
    with pytest.raises(InvalidInputError):
        encode_flexbuffer({"x": object()})
    with pytest.raises(InvalidInputError):
        encode_flexbuffer(float("nan"))
    with pytest.raises(InvalidInputError):
        encode_flexbuffer(2**70)


def test_msgpack_metadata_of_spec_1() -> None:
    assert decode_msgpack(bytes.fromhex("81a769735f726f6f74c3")) == {"is_root": True}


@pytest.mark.parametrize(
    "path", fixture_files("snapshots"), ids=lambda p: f"{p.parts[-4]}-{p.name}"
)
def test_snapshots_round_trip(path: Path) -> None:
    snap = decode_snapshot(path.read_bytes(), path.name)
    assert snap.id == path.name
    if snap.spec_version == 2:
        assert decode_snapshot(encode_snapshot(snap), snap.id) == snap


@pytest.mark.parametrize(
    "path", fixture_files("manifests"), ids=lambda p: f"{p.parts[-4]}-{p.name}"
)
def test_manifests_round_trip_and_lookup(path: Path) -> None:
    manifest = decode_manifest(path.read_bytes(), path.name)
    arrays = [(n, list(manifest.iter_refs(n))) for n in manifest.node_ids]
    assert arrays and all(refs for _, refs in arrays)
    for node_id, refs in arrays:
        assert [c for c, _ in refs] == sorted(c for c, _ in refs)
        for coords, payload in refs:
            assert manifest.lookup(node_id, coords) == payload
        assert manifest.lookup(node_id, tuple(999 for _ in refs[0][0])) is None
    again = decode_manifest(encode_manifest(path.name, arrays), path.name)
    assert [(n, list(again.iter_refs(n))) for n in again.node_ids] == arrays


@pytest.mark.parametrize(
    "path", fixture_files("transactions"), ids=lambda p: f"{p.parts[-4]}-{p.name}"
)
def test_transaction_logs_round_trip(path: Path) -> None:
    log = decode_transaction_log(path.read_bytes(), path.name)
    assert decode_transaction_log(encode_transaction_log(log), log.id) == log


@pytest.mark.parametrize(
    "path", sorted(FIXTURES.glob("*/repo/repo")), ids=str
)
def test_repo_info_round_trips(path: Path) -> None:
    info = decode_repo_info(path.read_bytes())
    assert "main" in info.branches
    assert info.latest_updates[0].backup_path is None
    assert all(u.backup_path for u in info.latest_updates[1:])
    assert decode_repo_info(encode_repo_info(info)) == info


def test_a_file_under_the_wrong_name_is_rejected() -> None:
    path = fixture_files("snapshots")[-1]
    with pytest.raises(CorruptObjectError):
        decode_snapshot(
            path.read_bytes(), INITIAL_SNAPSHOT_ID if path.name != INITIAL_SNAPSHOT_ID else "0" * 20
        )
    with pytest.raises(CorruptObjectError):
        decode_manifest(path.read_bytes(), path.name)  # a snapshot is not a manifest


def _rich_repo_info() -> RepoInfo:
    first = SnapshotEntry("M" * 19 + "0", None, 1, "first", {})
    second = SnapshotEntry("Q" * 19 + "0", first.id, 2, "second ✓", {"who": "me", "n": [1, 2]})
    pruned = SnapshotEntry("T" * 19 + "0", second.id, 3, "", {}, [first.id])
    return RepoInfo(
        branches={"main": pruned.id, "dev": second.id},
        tags={"v1": first.id},
        deleted_tags={"old", "older"},
        snapshots={e.id: e for e in (first, second, pruned)},
        latest_updates=[
            Update(UpdateKind.NEW_COMMIT, 30, {"branch": "main", "new_snap_id": pruned.id}),
            Update(
                UpdateKind.REPO_STATUS_CHANGED,
                20,
                {"status": RepoStatus(Availability.READ_ONLY, 5, "moving")},
                "repo.backup.1",
            ),
            Update(
                UpdateKind.FEATURE_FLAG_CHANGED,
                10,
                {"id": 3, "new_value": True, "is_set": False},
                "repo.backup.0",
            ),
        ],
        status=RepoStatus(Availability.ONLINE, 7, None),
        metadata={"project": "demo"},
        repo_before_updates="repo.backup.older",
        config=b"inline_chunk_threshold_bytes: 12\n",
        enabled_feature_flags=[2, 1],
        disabled_feature_flags=[4],
    )


def test_repo_info_encoder_keeps_every_field() -> None:
    info = _rich_repo_info()
    first = decode_repo_info(encode_repo_info(info))
    assert first == replace(info, enabled_feature_flags=[1, 2])
    # encoded again from its cached pieces: still the same
    assert decode_repo_info(encode_repo_info(first)) == first


def test_repo_info_encoder_moves_parents_when_snapshots_sort_before_them() -> None:
    info = _rich_repo_info()
    encode_repo_info(info)  # the entries are now cached with their parents' positions
    early = SnapshotEntry("0" * 20, None, 0, "sorts first", {})
    info.snapshots[early.id] = early
    info.tags["early"] = early.id
    again = decode_repo_info(encode_repo_info(info))
    assert again.snapshots == info.snapshots
    assert again.tags["early"] == early.id
    assert again.snapshots["T" * 19 + "0"].parent_id == "Q" * 19 + "0"


def _virtual_refs(n: int) -> list[tuple[tuple[int, int], VirtualChunk]]:
    refs = []
    for i in range(n):
        etag = None if i % 3 else f'"etag-{i}"'
        modified = 0 if i % 2 else 1_700_000_000 + i
        location = f"s3://bucket/data/file-{i % 7}.nc" if i % 5 else f"file:///tmp/é-{i}.h5"
        refs.append(((i // 40, i % 40), VirtualChunk(location, 8 * i, 100 + i, etag, modified)))
    return refs


@pytest.mark.parametrize("n", [1, 37, 1500], ids=lambda n: f"{n}-refs")
def test_virtual_manifests_round_trip(n: int) -> None:
    refs = _virtual_refs(n)
    data = encode_manifest("M" * 19 + "0", [("N" * 12 + "0", refs)])
    manifest = decode_manifest(data, "M" * 19 + "0")
    expected = [(c, replace(p, last_modified=p.last_modified or None)) for c, p in refs]
    assert list(manifest.iter_refs("N" * 12 + "0")) == expected
    assert manifest.lookup("N" * 12 + "0", refs[-1][0]) == expected[-1][1]
    plain = encode_manifest("M" * 19 + "0", [("N" * 12 + "0", refs)], location_compression=None)
    assert list(decode_manifest(plain, "M" * 19 + "0").iter_refs("N" * 12 + "0")) == expected

    # from 1000 virtual refs on, locations are stored zstd-compressed with a dictionary
    def dictionary(raw: bytes) -> bytes | None:
        return fb.Table.root(decode_file(raw, FileType.MANIFEST, "manifest")[1]).byte_vector(2)

    assert dictionary(plain) is None
    assert (dictionary(data) is not None) == (n >= 1000)


def test_manifest_mixing_virtual_and_inline_refs_round_trips() -> None:
    refs: list = _virtual_refs(20)
    refs[3] = (refs[3][0], InlineChunk(b"inline"))
    data = encode_manifest("M" * 19 + "0", [("N" * 12 + "0", refs)])
    got = list(decode_manifest(data, "M" * 19 + "0").iter_refs("N" * 12 + "0"))
    assert got[3] == refs[3] and got[4][1].location == refs[4][1].location
