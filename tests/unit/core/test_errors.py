"""Error behaviour: missing things, corrupt files, wrong arguments and refused operations.

Our package raises stricter exception types than the official icechunk 2.3.0 (e.g.
``BranchNotFoundError`` instead of ``RefNotFoundError``, ``CorruptObjectError``
instead of ``FormatError``/``StorageError``).  ``OURS`` selects which ones are expected,
so the same tests validate the official package and check our contract.
"""

from __future__ import annotations

import os
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.core.buffer import cpu, default_buffer_prototype
from zarr.core.sync import sync

import icechunk as ic
from tests.helpers.paths import FIXTURES

OURS = hasattr(ic, "CorruptObjectError")

if OURS:
    BRANCH_NOT_FOUND = ic.BranchNotFoundError
    TAG_NOT_FOUND = ic.TagNotFoundError
    CORRUPT = ic.CorruptObjectError
    REPO_EXISTS = ic.RepositoryExistsError
    DELETE_MAIN = ic.InvalidInputError
    COMMIT_READ_ONLY = ic.ReadOnlyError
    BAD_ARGUMENT = ic.InvalidInputError
else:  # official icechunk 2.3.0
    BRANCH_NOT_FOUND = ic.RefNotFoundError
    TAG_NOT_FOUND = ic.RefNotFoundError
    CORRUPT = ic.IcechunkError  # FormatError for headers, StorageError for zstd payloads
    REPO_EXISTS = ic.InvalidInputError  # "repositories can only be created in clean prefixes"
    DELETE_MAIN = ic.SessionStateError
    COMMIT_READ_ONLY = ic.SessionStateError
    BAD_ARGUMENT = TypeError

BASIC = FIXTURES / "basic" / "repo"
MAIN_TIP = "9RMWCZNDAB03TF4F42KG"  # expected.json of the basic fixture
MISSING_ID = "00000000000000000000"  # well formed, never written
INITIAL_ID = "1CECHNKREP0F1RSTCMT0"


@pytest.fixture
def repo() -> ic.Repository:
    repo = ic.Repository.create(ic.in_memory_storage())
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    root.create_array("a", shape=(4,), chunks=(2,), dtype="i4", fill_value=0)[:] = [1, 2, 3, 4]
    session.commit("first")
    return repo


@pytest.fixture
def basic_copy(tmp_path) -> Path:
    """A writable copy of the basic fixture repository (``tests/data`` stays untouched)."""
    target = tmp_path / "repo"
    shutil.copytree(BASIC, target)
    for dirpath, _dirnames, filenames in os.walk(target):
        os.chmod(dirpath, os.stat(dirpath).st_mode | stat.S_IWUSR | stat.S_IXUSR)
        for filename in filenames:
            path = os.path.join(dirpath, filename)
            os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)
    return target


def open_repo(path: Path) -> ic.Repository:
    return ic.Repository.open(ic.local_filesystem_storage(str(path)))


def read_everything(repo: ic.Repository, **version) -> dict[str, np.ndarray]:
    session = repo.readonly_session(**version)
    root = zarr.open_group(store=session.store, mode="r")
    return {name: array[...] for name, array in root.arrays()}


def assert_is_typed(exc: BaseException) -> None:
    assert isinstance(exc, ic.IcechunkError)
    if OURS:
        assert isinstance(exc, ValueError)


# ----------------------------------------------------------------------------- not found


def test_missing_repository(tmp_path):
    storage = ic.local_filesystem_storage(str(tmp_path / "nothing-here"))
    assert ic.Repository.exists(storage) is False
    with pytest.raises(ic.RepositoryNotFoundError) as info:
        ic.Repository.open(storage)
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, ic.NotFoundError)
    assert isinstance(info.value, ic.IcechunkError)


def test_missing_repository_in_existing_empty_dir(tmp_path):
    storage = ic.local_filesystem_storage(str(tmp_path))
    assert ic.Repository.exists(storage) is False
    with pytest.raises(ic.RepositoryNotFoundError):
        ic.Repository.open(storage)
    assert ic.Repository.exists(storage) is False


def test_missing_repository_in_memory():
    storage = ic.in_memory_storage()
    assert ic.Repository.exists(storage) is False
    with pytest.raises(ic.RepositoryNotFoundError):
        ic.Repository.open(storage)


@pytest.mark.parametrize(
    "call",
    [
        lambda repo: repo.lookup_branch("nope"),
        lambda repo: repo.writable_session("nope"),
        lambda repo: repo.readonly_session("nope"),
        lambda repo: repo.readonly_session(branch="nope"),
        lambda repo: list(repo.ancestry(branch="nope")),
        lambda repo: repo.delete_branch("nope"),
        lambda repo: repo.reset_branch("nope", INITIAL_ID),
    ],
    ids=["lookup", "writable", "readonly", "readonly-kw", "ancestry", "delete", "reset"],
)
def test_unknown_branch(repo, call):
    with pytest.raises(BRANCH_NOT_FOUND) as info:
        call(repo)
    assert isinstance(info.value, ic.RefNotFoundError)
    assert isinstance(info.value, ic.NotFoundError)
    assert isinstance(info.value, KeyError)


@pytest.mark.parametrize(
    "call",
    [
        lambda repo: repo.lookup_tag("nope"),
        lambda repo: repo.readonly_session(tag="nope"),
        lambda repo: list(repo.ancestry(tag="nope")),
        lambda repo: repo.delete_tag("nope"),
    ],
    ids=["lookup", "readonly", "ancestry", "delete"],
)
def test_unknown_tag(repo, call):
    with pytest.raises(TAG_NOT_FOUND) as info:
        call(repo)
    assert isinstance(info.value, ic.RefNotFoundError)
    assert isinstance(info.value, KeyError)


def test_branch_and_tag_namespaces_are_separate(repo):
    repo.create_tag("only-a-tag", repo.lookup_branch("main"))
    with pytest.raises(BRANCH_NOT_FOUND):
        repo.lookup_branch("only-a-tag")
    with pytest.raises(TAG_NOT_FOUND):
        repo.lookup_tag("main")


@pytest.mark.parametrize(
    "call",
    [
        lambda repo: repo.lookup_snapshot(MISSING_ID),
        lambda repo: repo.readonly_session(snapshot_id=MISSING_ID),
        lambda repo: list(repo.ancestry(snapshot_id=MISSING_ID)),
        lambda repo: repo.create_branch("new", MISSING_ID),
        lambda repo: repo.create_tag("new", MISSING_ID),
        lambda repo: repo.reset_branch("main", MISSING_ID),
    ],
    ids=["lookup", "readonly", "ancestry", "create-branch", "create-tag", "reset"],
)
def test_unknown_snapshot(repo, call):
    with pytest.raises(ic.SnapshotNotFoundError) as info:
        call(repo)
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, ic.IcechunkError)
    # nothing was created by the failed calls
    assert repo.list_branches() == {"main"}
    assert repo.list_tags() == set()


@pytest.mark.parametrize(
    "call",
    [
        lambda repo: repo.lookup_snapshot("not-an-id"),
        lambda repo: repo.readonly_session(snapshot_id="not-an-id"),
        lambda repo: repo.create_branch("new", "not-an-id"),
    ],
    ids=["lookup", "readonly", "create-branch"],
)
def test_malformed_snapshot_id(repo, call):
    with pytest.raises((ic.InvalidInputError, ic.SnapshotNotFoundError)) as info:
        call(repo)
    assert isinstance(info.value, ic.IcechunkError)


def test_as_of_before_first_snapshot(repo):
    with pytest.raises(ic.IcechunkError):
        repo.readonly_session("main", as_of=datetime(2000, 1, 1, tzinfo=UTC))


# ----------------------------------------------------------------------------- corrupt files


def test_sanity_basic_copy_reads(basic_copy):
    """The uncorrupted copy reads fine: the failures below come from the damage."""
    repo = open_repo(basic_copy)
    assert repo.lookup_branch("main") == MAIN_TIP
    data = read_everything(repo, branch="main")
    assert set(data) == {"counts", "flags", "temperature"}


def test_corrupt_repo_file_truncated(basic_copy):
    repo_file = basic_copy / "repo"
    repo_file.write_bytes(repo_file.read_bytes()[:20])
    with pytest.raises(CORRUPT) as info:
        open_repo(basic_copy).list_branches()
    assert_is_typed(info.value)


def test_corrupt_repo_file_payload_bytes_flipped(basic_copy):
    repo_file = basic_copy / "repo"
    data = bytearray(repo_file.read_bytes())
    middle = 39 + (len(data) - 39) // 2  # inside the zstd payload after the 39-byte header
    for i in range(middle, middle + 8):
        data[i] ^= 0xFF
    repo_file.write_bytes(bytes(data))
    with pytest.raises(CORRUPT) as info:
        repo = open_repo(basic_copy)
        repo.list_branches()
        repo.list_tags()
        repo.lookup_branch("main")
    assert_is_typed(info.value)


def test_corrupt_repo_file_bad_magic(basic_copy):
    repo_file = basic_copy / "repo"
    data = bytearray(repo_file.read_bytes())
    assert data[:3] == b"ICE"
    data[:12] = b"NOTICECHUNK!"
    repo_file.write_bytes(bytes(data))
    with pytest.raises(CORRUPT) as info:
        open_repo(basic_copy).list_branches()
    assert_is_typed(info.value)


def test_corrupt_snapshot_truncated(basic_copy):
    snapshot_file = basic_copy / "snapshots" / MAIN_TIP
    data = snapshot_file.read_bytes()
    snapshot_file.write_bytes(data[: len(data) // 2])
    repo = open_repo(basic_copy)
    with pytest.raises(CORRUPT) as info:
        read_everything(repo, snapshot_id=MAIN_TIP)
    assert_is_typed(info.value)
    with pytest.raises(CORRUPT):
        read_everything(repo, branch="main")


def test_corrupt_manifest_garbage(basic_copy):
    for manifest in (basic_copy / "manifests").iterdir():
        manifest.write_bytes(b"this is not a manifest " * 10)
    repo = open_repo(basic_copy)
    with pytest.raises(CORRUPT) as info:
        read_everything(repo, branch="main")
    assert_is_typed(info.value)


def test_corrupt_manifest_payload_bytes_flipped(basic_copy):
    for manifest in (basic_copy / "manifests").iterdir():
        data = bytearray(manifest.read_bytes())
        for i in range(45, len(data) - 4):
            data[i] ^= 0x5A
        manifest.write_bytes(bytes(data))
    repo = open_repo(basic_copy)
    with pytest.raises(CORRUPT):
        read_everything(repo, branch="main")


def test_missing_chunk_file(basic_copy):
    chunk_files = list((basic_copy / "chunks").iterdir())
    assert chunk_files, "the basic fixture has native chunks"
    for chunk in chunk_files:
        chunk.unlink()
    repo = open_repo(basic_copy)
    # metadata is still readable ...
    root = zarr.open_group(store=repo.readonly_session("main").store, mode="r")
    assert root["temperature"].shape == (40, 30)
    # ... but the data must not silently come back as fill value
    with pytest.raises(ic.IcechunkError):
        root["temperature"][...]


# ----------------------------------------------------------------------------- bad arguments


def test_local_filesystem_storage_wrong_type():
    with pytest.raises(BAD_ARGUMENT):
        ic.local_filesystem_storage(123)


@pytest.mark.parametrize(
    "call",
    [
        lambda repo: repo.writable_session(5),
        lambda repo: repo.lookup_branch(5),
        lambda repo: repo.create_tag("t", 5),
    ],
    ids=["writable_session", "lookup_branch", "create_tag"],
)
def test_wrong_argument_types(repo, call):
    with pytest.raises((TypeError, ic.InvalidInputError)):
        call(repo)


def test_readonly_session_needs_exactly_one_version(repo):
    with pytest.raises(ValueError):
        repo.readonly_session()
    with pytest.raises(ValueError):
        repo.readonly_session("main", tag="x")


def test_as_of_needs_branch(repo):
    with pytest.raises(ValueError):
        repo.readonly_session(as_of=datetime.now(UTC))


# ----------------------------------------------------------------------------- refused


def test_create_existing_repository(tmp_path):
    storage = ic.local_filesystem_storage(str(tmp_path / "repo"))
    ic.Repository.create(storage)
    with pytest.raises(REPO_EXISTS) as info:
        ic.Repository.create(storage)
    assert isinstance(info.value, ic.IcechunkError)
    assert isinstance(info.value, ValueError)
    if OURS:
        assert isinstance(info.value, ic.AlreadyExistsError)


def test_create_existing_in_memory_repository():
    storage = ic.in_memory_storage()
    ic.Repository.create(storage)
    with pytest.raises(REPO_EXISTS):
        ic.Repository.create(storage)


def test_delete_main_refused(repo):
    with pytest.raises(DELETE_MAIN) as info:
        repo.delete_branch("main")
    assert isinstance(info.value, ic.IcechunkError)
    assert "main" in repo.list_branches()


def test_recreate_deleted_tag_refused(repo):
    snap = repo.lookup_branch("main")
    repo.create_tag("t", snap)
    repo.delete_tag("t")
    with pytest.raises(ic.AlreadyExistsError) as info:
        repo.create_tag("t", snap)
    assert_is_typed(info.value)
    assert "t" not in repo.list_tags()
    with pytest.raises(TAG_NOT_FOUND):
        repo.delete_tag("t")


def test_create_existing_tag_refused(repo):
    first = repo.lookup_branch("main")
    repo.create_tag("t", first)
    with pytest.raises(ic.AlreadyExistsError) as info:
        repo.create_tag("t", INITIAL_ID)
    assert_is_typed(info.value)
    assert repo.lookup_tag("t") == first


def test_create_existing_branch_refused(repo):
    with pytest.raises(ic.AlreadyExistsError) as info:
        repo.create_branch("main", INITIAL_ID)
    assert_is_typed(info.value)
    assert repo.lookup_branch("main") != INITIAL_ID
    repo.create_branch("dev", INITIAL_ID)
    with pytest.raises(ic.AlreadyExistsError):
        repo.create_branch("dev", repo.lookup_branch("main"))
    assert repo.lookup_branch("dev") == INITIAL_ID


def test_readonly_store_refuses_writes(repo):
    session = repo.readonly_session("main")
    store = session.store
    assert session.read_only and store.read_only
    doc = cpu.Buffer.from_bytes(b'{"zarr_format":3,"node_type":"group","attributes":{}}')
    with pytest.raises(ic.ReadOnlyError) as info:
        sync(store.set("new/zarr.json", doc))
    assert isinstance(info.value, ic.IcechunkError)
    if OURS:
        assert isinstance(info.value, ValueError)
        # the official 2.3.0 silently ignores deletes on a read-only store
        with pytest.raises(ic.ReadOnlyError):
            sync(store.delete("a/zarr.json"))
    # zarr itself refuses to open a read-only store for writing
    with pytest.raises(ValueError):
        zarr.open_group(store=store, mode="a")
    root = zarr.open_group(store=store, mode="r")
    assert root["a"][...].tolist() == [1, 2, 3, 4]
    proto = default_buffer_prototype()
    assert sync(store.get("new/zarr.json", prototype=proto)) is None


def test_commit_without_changes_refused(repo):
    session = repo.writable_session("main")
    before = repo.lookup_branch("main")
    with pytest.raises(ic.IcechunkError):
        session.commit("nothing")
    assert repo.lookup_branch("main") == before
    # allowed explicitly
    new = session.commit("nothing, on purpose", allow_empty=True)
    assert new != before
    assert repo.lookup_branch("main") == new


def test_commit_twice_refused(repo):
    session = repo.writable_session("main")
    root = zarr.open_group(store=session.store)
    root["a"][0] = 100
    first = session.commit("one")
    assert session.read_only
    with pytest.raises(COMMIT_READ_ONLY) as info:
        session.commit("two", allow_empty=True)
    assert isinstance(info.value, ic.IcechunkError)
    assert repo.lookup_branch("main") == first
    with pytest.raises(ic.ReadOnlyError):
        sync(session.store.set("a/c/0", cpu.Buffer.from_bytes(b"xx")))


def test_readonly_session_commit_refused(repo):
    session = repo.readonly_session("main")
    with pytest.raises(COMMIT_READ_ONLY):
        session.commit("ro", allow_empty=True)


def test_reset_branch_compare_and_swap_conflict(repo):
    tip = repo.lookup_branch("main")
    with pytest.raises(ic.ConflictError):
        repo.reset_branch("main", INITIAL_ID, from_snapshot_id=INITIAL_ID)
    assert repo.lookup_branch("main") == tip


def test_concurrent_commit_conflict(repo):
    tip = repo.lookup_branch("main")
    one = repo.writable_session("main")
    two = repo.writable_session("main")
    zarr.open_group(store=one.store).attrs["who"] = "one"
    zarr.open_group(store=two.store).attrs["who"] = "two"
    winner = one.commit("one")
    with pytest.raises(ic.ConflictError) as info:
        two.commit("two")
    assert info.value.expected_parent == tip
    assert info.value.actual_parent == winner
    assert repo.lookup_branch("main") == winner
