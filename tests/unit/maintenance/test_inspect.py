"""``Repository.inspect_*`` against the official package's own output.

Every fixture folder in ``tests/data/fixtures`` holds ``inspect.json``: what the official
icechunk 2.3.0 returns from ``inspect_repo_info()``, ``inspect_snapshot(id)``,
``inspect_manifest(id)`` and ``inspect_transaction_log(id)`` for every metadata file of
its ``repo/``. Our results must be equal, value for value and type for type. An entry
``"unavailable: <Error>"`` means the official call raised that exception.

Each fixture repository is copied to a temporary directory first, so the data in
``tests/data`` stays as the official package wrote it.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import zarr

import icechunk as ic
from icechunk.format.header import HEADER_LEN, MAGIC, FileType, decode_file
from tests.helpers.paths import FIXTURES

FIXTURE_NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "inspect.json").is_file())
KINDS = ("snapshots", "manifests", "transactions")


@cache
def golden(name: str) -> dict:
    return json.loads((FIXTURES / name / "inspect.json").read_text())


CASES = [pytest.param(name, "repo", None, id=f"{name}-repo") for name in FIXTURE_NAMES] + [
    pytest.param(name, kind, object_id, id=f"{name}-{kind}-{object_id}")
    for name in FIXTURE_NAMES
    for kind in KINDS
    for object_id in golden(name)[kind]
]


@pytest.fixture(scope="module")
def fixture_repo(tmp_path_factory):
    """``fixture_repo(name)``: the fixture's repository, opened from a private copy."""
    opened: dict[str, ic.Repository] = {}

    def get(name: str) -> ic.Repository:
        if name not in opened:
            copy = tmp_path_factory.mktemp(f"inspect-{name}") / "repo"
            shutil.copytree(FIXTURES / name / "repo", copy)
            opened[name] = ic.Repository.open(ic.local_filesystem_storage(str(copy)))
        return opened[name]

    return get


def inspect(repo: ic.Repository, kind: str, object_id: str | None):
    if kind == "repo":
        return repo.inspect_repo_info()
    call = {
        "snapshots": repo.inspect_snapshot,
        "manifests": repo.inspect_manifest,
        "transactions": repo.inspect_transaction_log,
    }[kind]
    return call(object_id)


def differences(expected, actual, path="$"):
    """A line per difference; strict about types (1, 1.0 and True all differ)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                yield f"{path}.{key}: missing"
            elif key not in expected:
                yield f"{path}.{key}: unexpected {actual[key]!r}"
            else:
                yield from differences(expected[key], actual[key], f"{path}.{key}")
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            yield f"{path}: {len(actual)} items, expected {len(expected)}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
            yield from differences(e, a, f"{path}[{i}]")
    elif type(expected) is not type(actual) or expected != actual:
        yield f"{path}: {actual!r}, expected {expected!r}"


@pytest.mark.parametrize(("name", "kind", "object_id"), CASES)
def test_inspect_matches_official(fixture_repo, name, kind, object_id):
    repo = fixture_repo(name)
    want = golden(name)[kind] if object_id is None else golden(name)[kind][object_id]
    if isinstance(want, str):
        assert want.startswith("unavailable: "), want
        error_name = want.removeprefix("unavailable: ")
        with pytest.raises(ic.IcechunkError) as info:
            inspect(repo, kind, object_id)
        assert error_name in [cls.__name__ for cls in type(info.value).__mro__]
        return
    got = inspect(repo, kind, object_id)
    diffs = list(differences(want, got))
    assert not diffs, "\n".join(diffs[:40])


def test_every_metadata_file_is_covered():
    """inspect.json lists every snapshot, manifest and transaction log of its repo."""
    for name in FIXTURE_NAMES:
        for kind in KINDS:
            folder = FIXTURES / name / "repo" / kind
            on_disk = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
            assert sorted(golden(name)[kind]) == on_disk, (name, kind)


def test_spec1_repo_info_is_a_format_error(fixture_repo):
    if "spec_v1" not in FIXTURE_NAMES:
        pytest.skip("no spec_v1 fixture")
    with pytest.raises(ic.FormatError) as info:
        fixture_repo("spec_v1").inspect_repo_info()
    assert info.value.kind == "unsupported-spec-version"
    assert "at least version 2.0" in str(info.value)


# ---------------------------------------------------------------------------
# details checked against the official package by hand (see the module docstring
# of icechunk._maintenance.inspect); these pin them without needing the fixtures' luck


def _stamp_writer(path: Path, writer: bytes) -> None:
    data = bytearray(path.read_bytes())
    data[len(MAGIC) : HEADER_LEN - 3] = writer.ljust(24, b" ")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("writer", "header"),
    [
        (b"icechunk-py-0.1.0", {"app_name": "icechunk", "app_version": "py-0.1.0"}),
        (b"a-b-c\0\0\0", {"written_by": "a-b-c", "app_name": "a", "app_version": "b-c"}),
        (b"foo", {"app_name": "foo"}),
        (b"", {"app_name": ""}),
        (b" lead-x", {"app_name": " lead", "app_version": "x"}),
        (b"x\xff-y", {"written_by": "x\ufffd-y", "app_name": "x\ufffd", "app_version": "y"}),
    ],
)
def test_header_writer_name(tmp_path, writer, header):
    repo = ic.Repository.create(ic.local_filesystem_storage(str(tmp_path)))
    snap_id = repo.lookup_branch("main")
    _stamp_writer(tmp_path / "snapshots" / snap_id, writer)
    want = {
        "written_by": writer.rstrip(b" \0").decode("utf-8", "replace"),
        "spec_version": "2.0",
        "file_type": "snapshot",
        "compression": "zstd",
        **header,
    }
    assert repo.inspect_snapshot(snap_id)["header"] == want


@pytest.mark.parametrize(
    ("microsecond", "text"),
    [
        (0, "2024-01-02T03:04:05Z"),
        (500000, "2024-01-02T03:04:05.500Z"),
        (123000, "2024-01-02T03:04:05.123Z"),
        (123, "2024-01-02T03:04:05.000123Z"),
        (999999, "2024-01-02T03:04:05.999999Z"),
    ],
)
def test_timestamps_use_autosi_fractions(tmp_path, microsecond, text):
    repo = ic.Repository.create(ic.local_filesystem_storage(str(tmp_path)))
    set_at = datetime(2024, 1, 2, 3, 4, 5, microsecond, tzinfo=UTC)
    repo.set_status(ic.RepoStatus(ic.RepoAvailability.read_only, set_at, "why"))
    update = repo.inspect_repo_info()["latest_updates"][0]
    assert update["update_type"] == {
        "type": "RepoStatusChangedUpdate",
        "status": {
            "availability": "ReadOnly",
            "limited_availability_reason": "why",
            "set_at": text,
        },
    }
    assert "backup_path" not in update  # the newest entry has no backup yet


def test_manifest_size_is_the_decompressed_size(tmp_path):
    repo = ic.Repository.create(ic.local_filesystem_storage(str(tmp_path)))
    session = repo.writable_session("main")
    array = zarr.create_array(session.store, name="a", shape=(8,), chunks=(4,), dtype="int64")
    array[:] = np.arange(8)
    snap_id = session.commit("one")
    (info,) = repo.inspect_snapshot(snap_id)["manifests"]
    path = tmp_path / "manifests" / info["id"]
    assert info["size_bytes"] == path.stat().st_size
    _, payload = decode_file(path.read_bytes(), FileType.MANIFEST, "manifest")
    inspected = repo.inspect_manifest(info["id"])
    assert inspected["size_bytes"] == len(payload) != info["size_bytes"]
    assert inspected["total_inline"] == 2
    assert inspected["compression"] == {
        "uses_location_compression": False,
        "num_compressed_refs": 0,
    }
