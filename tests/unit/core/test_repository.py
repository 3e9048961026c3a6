"""Behaviour of Repository / Session / IcechunkStore through the public API, on in-memory
and local-filesystem storage, driven by zarr."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

import icechunk as ic

OURS = hasattr(ic, "CorruptObjectError")
BRANCH_NOT_FOUND = ic.BranchNotFoundError if OURS else ic.RefNotFoundError
TAG_NOT_FOUND = ic.TagNotFoundError if OURS else ic.RefNotFoundError

INITIAL_ID = "1CECHNKREP0F1RSTCMT0"
CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


@pytest.fixture(params=["memory", "local", "s3"])
def storage(request, tmp_path):
    if request.param == "memory":
        return ic.in_memory_storage()
    if request.param == "s3":  # moto on 127.0.0.1 (tests/conftest.py), a fresh prefix per test
        return request.getfixturevalue("moto_s3").storage()
    return ic.local_filesystem_storage(str(tmp_path / "repo"))


@pytest.fixture
def repo(storage) -> ic.Repository:
    return ic.Repository.create(storage)


# ----------------------------------------------------------------------------- helpers


def keys(store, prefix: str = "") -> set[str]:
    async def collect():
        source = store.list_prefix(prefix) if prefix else store.list()
        return [key async for key in source]

    found = sync(collect())
    assert len(found) == len(set(found)), "store listed a key twice"
    return set(found)


def chunk_keys(store, array_path: str) -> set[str]:
    return {k for k in keys(store, array_path + "/") if not k.endswith("zarr.json")}


def get_json(store, key: str) -> dict:
    buf = sync(store.get(key, prototype=default_buffer_prototype()))
    assert buf is not None, key
    return json.loads(buf.to_bytes())


def commit_attrs(repo: ic.Repository, message: str, branch: str = "main", **attrs) -> str:
    """Commit a root group whose attributes are updated with ``attrs``."""
    session = repo.writable_session(branch)
    root = zarr.open_group(store=session.store, mode="a")
    root.attrs.update(attrs)
    return session.commit(message)


def read_attrs(repo: ic.Repository, **version) -> dict:
    session = repo.readonly_session(**version)
    return dict(zarr.open_group(store=session.store, mode="r").attrs)


def reopen(storage) -> ic.Repository:
    return ic.Repository.open(storage)


def normalized_chunks(updated_chunks) -> dict[str, set[tuple[int, ...]]]:
    return {path: {tuple(c) for c in coords} for path, coords in updated_chunks.items()}


# ----------------------------------------------------------------------------- repository


def test_create_open_exists(storage):
    assert ic.Repository.exists(storage) is False
    repo = ic.Repository.create(storage)
    assert ic.Repository.exists(storage) is True
    assert repo.list_branches() == {"main"}
    assert repo.list_tags() == set()
    assert repo.lookup_branch("main") == INITIAL_ID

    history = list(repo.ancestry(branch="main"))
    assert len(history) == 1
    assert history[0].id == INITIAL_ID
    assert history[0].parent_id is None
    assert history[0].message == "Repository initialized"

    snap = commit_attrs(repo, "first", answer=42)
    again = reopen(storage)
    assert again.lookup_branch("main") == snap
    assert read_attrs(again, branch="main") == {"answer": 42}


def test_open_or_create(storage):
    created = ic.Repository.open_or_create(storage)
    assert ic.Repository.exists(storage)
    snap = commit_attrs(created, "first", x=1)
    opened = ic.Repository.open_or_create(storage)
    assert opened.lookup_branch("main") == snap
    assert opened.list_branches() == {"main"}


def test_list_types(repo):
    branches = repo.list_branches()
    tags = repo.list_tags()
    assert isinstance(branches, set) and all(isinstance(b, str) for b in branches)
    assert isinstance(tags, set)
    assert isinstance(repo.lookup_branch("main"), str)


# ----------------------------------------------------------------------------- branches


def test_branches(repo):
    c1 = commit_attrs(repo, "c1", step=1)
    c2 = commit_attrs(repo, "c2", step=2)

    repo.create_branch("dev", c1)
    assert repo.list_branches() == {"main", "dev"}
    assert repo.lookup_branch("dev") == c1
    assert read_attrs(repo, branch="dev") == {"step": 1}

    d1 = commit_attrs(repo, "d1", branch="dev", step=10)
    assert repo.lookup_branch("dev") == d1
    assert repo.lookup_branch("main") == c2
    assert [s.id for s in repo.ancestry(branch="dev")] == [d1, c1, INITIAL_ID]
    assert [s.id for s in repo.ancestry(branch="main")] == [c2, c1, INITIAL_ID]

    # plain reset
    repo.reset_branch("dev", c2)
    assert repo.lookup_branch("dev") == c2
    assert read_attrs(repo, branch="dev") == {"step": 2}

    # compare-and-swap reset: succeeds when the branch is where we say it is ...
    repo.reset_branch("dev", d1, from_snapshot_id=c2)
    assert repo.lookup_branch("dev") == d1
    # ... and fails, leaving the branch alone, when it is not
    with pytest.raises(ic.ConflictError):
        repo.reset_branch("dev", c1, from_snapshot_id=c2)
    assert repo.lookup_branch("dev") == d1

    repo.delete_branch("dev")
    assert repo.list_branches() == {"main"}
    with pytest.raises(BRANCH_NOT_FOUND):
        repo.lookup_branch("dev")
    # the snapshot of a deleted branch is still there
    assert repo.lookup_snapshot(d1).message == "d1"
    assert read_attrs(repo, snapshot_id=d1) == {"step": 10}

    # a deleted branch name can be used again
    repo.create_branch("dev", INITIAL_ID)
    assert repo.lookup_branch("dev") == INITIAL_ID


def test_branch_from_initial_snapshot_has_no_root(repo):
    commit_attrs(repo, "c1", step=1)
    repo.create_branch("empty", INITIAL_ID)
    session = repo.readonly_session("empty")
    assert keys(session.store) == set()


def test_writable_session_on_new_branch(repo):
    c1 = commit_attrs(repo, "c1", step=1)
    repo.create_branch("feature", c1)
    session = repo.writable_session("feature")
    assert session.branch == "feature"
    assert session.snapshot_id == c1
    assert not session.read_only


# ----------------------------------------------------------------------------- tags


def test_tags(repo):
    c1 = commit_attrs(repo, "c1", step=1)
    c2 = commit_attrs(repo, "c2", step=2)

    repo.create_tag("v1", c1)
    repo.create_tag("v2", c2)
    assert repo.list_tags() == {"v1", "v2"}
    assert repo.lookup_tag("v1") == c1
    assert [s.id for s in repo.ancestry(tag="v1")] == [c1, INITIAL_ID]
    assert read_attrs(repo, tag="v1") == {"step": 1}
    session = repo.readonly_session(tag="v2")
    assert session.snapshot_id == c2
    assert session.read_only

    # tags cannot be moved
    with pytest.raises(ic.AlreadyExistsError):
        repo.create_tag("v1", c2)
    assert repo.lookup_tag("v1") == c1

    # a tag does not follow the branch
    commit_attrs(repo, "c3", step=3)
    assert repo.lookup_tag("v2") == c2

    repo.delete_tag("v1")
    assert repo.list_tags() == {"v2"}
    with pytest.raises(TAG_NOT_FOUND):
        repo.lookup_tag("v1")
    # deleting a tag does not delete its snapshot
    assert read_attrs(repo, snapshot_id=c1) == {"step": 1}


def test_tag_and_branch_with_same_name(repo):
    c1 = commit_attrs(repo, "c1", step=1)
    c2 = commit_attrs(repo, "c2", step=2)
    repo.create_branch("same", c2)
    repo.create_tag("same", c1)
    assert repo.lookup_branch("same") == c2
    assert repo.lookup_tag("same") == c1


# ----------------------------------------------------------------------------- history


def test_ancestry_and_log(repo):
    ids = [commit_attrs(repo, f"commit {i}", i=i) for i in range(5)]
    history = list(repo.ancestry(branch="main"))
    assert [s.id for s in history] == ids[::-1] + [INITIAL_ID]
    assert [s.message for s in history] == [f"commit {i}" for i in range(4, -1, -1)] + [
        "Repository initialized"
    ]
    assert [s.id for s in repo.ancestry(snapshot_id=ids[2])] == [ids[2], ids[1], ids[0], INITIAL_ID]
    if OURS:  # `log` is our alias; the official 2.3.0 has no Repository.log
        assert [s.id for s in repo.log("main")] == [s.id for s in history]


def test_snapshot_info_fields(repo):
    ids = [commit_attrs(repo, f"c{i}", i=i) for i in range(3)]
    history = list(repo.ancestry(branch="main"))

    for newer, older in itertools.pairwise(history):
        assert newer.parent_id == older.id
        assert newer.written_at > older.written_at
    assert history[-1].parent_id is None

    for info in history:
        assert isinstance(info.id, str) and len(info.id) == 20
        assert set(info.id) <= CROCKFORD
        assert isinstance(info.written_at, datetime)
        assert info.written_at.utcoffset() == timedelta(0)
        looked_up = repo.lookup_snapshot(info.id)
        assert looked_up.id == info.id
        assert looked_up.parent_id == info.parent_id
        assert looked_up.written_at == info.written_at
        assert looked_up.message == info.message
        assert looked_up.metadata == info.metadata
        if OURS:
            assert info.commit_message == info.message
            assert isinstance(info.manifests, list)

    assert repo.lookup_snapshot(ids[0]).metadata == {}
    assert abs(history[0].written_at - datetime.now(UTC)) < timedelta(minutes=5)


METADATA = {
    "string": "héllo ✓",
    "int": 42,
    "negative": -7,
    "big": 2**53,
    "float": 2.5,
    "bool_true": True,
    "bool_false": False,
    "none": None,
    "list": [1, "two", 3.0, None, [True]],
    "nested": {"a": {"b": {"c": [1, 2, {"d": "e"}]}}, "empty": {}},
}


def test_commit_metadata_round_trip(storage):
    repo = ic.Repository.create(storage)
    session = repo.writable_session("main")
    zarr.group(store=session.store)
    snap = session.commit("with metadata", metadata=METADATA)

    for r in (repo, reopen(storage)):
        got = r.lookup_snapshot(snap).metadata
        assert got == METADATA
        assert type(got["int"]) is int
        assert type(got["float"]) is float
        assert type(got["bool_true"]) is bool
        assert next(r.ancestry(branch="main")).metadata == METADATA


# ----------------------------------------------------------------------------- sessions


def test_readonly_session_versions(repo):
    c1 = commit_attrs(repo, "c1", step=1)
    time.sleep(0.05)
    between = datetime.now(UTC)
    time.sleep(0.05)
    c2 = commit_attrs(repo, "c2", step=2)
    repo.create_tag("first", c1)

    by_branch = repo.readonly_session("main")
    assert by_branch.snapshot_id == c2
    assert by_branch.read_only
    assert repo.readonly_session(branch="main").snapshot_id == c2
    assert repo.readonly_session(tag="first").snapshot_id == c1
    assert repo.readonly_session(snapshot_id=c1).snapshot_id == c1

    old = repo.readonly_session("main", as_of=between)
    assert old.snapshot_id == c1
    assert dict(zarr.open_group(store=old.store, mode="r").attrs) == {"step": 1}
    assert repo.readonly_session("main", as_of=datetime.now(UTC)).snapshot_id == c2

    # as_of is inclusive: "written at or before"
    c1_time = repo.lookup_snapshot(c1).written_at
    assert repo.readonly_session("main", as_of=c1_time).snapshot_id == c1
    just_before = c1_time - timedelta(microseconds=1)
    assert repo.readonly_session("main", as_of=just_before).snapshot_id == INITIAL_ID


def test_session_becomes_read_only_after_commit(repo):
    session = repo.writable_session("main")
    assert not session.read_only
    assert session.branch == "main"
    assert session.snapshot_id == INITIAL_ID
    zarr.group(store=session.store, attributes={"a": 1})
    snap = session.commit("c1")
    assert session.read_only
    assert session.store.read_only
    assert session.snapshot_id == snap
    # the committed data is still readable from the same session
    assert dict(zarr.open_group(store=session.store, mode="r").attrs) == {"a": 1}
    with pytest.raises(ValueError):
        zarr.open_group(store=session.store, mode="a")


def test_discard_changes(repo):
    c1 = commit_attrs(repo, "c1", keep=True)
    session = repo.writable_session("main")
    assert session.has_uncommitted_changes is False
    root = zarr.open_group(store=session.store)
    root.attrs["keep"] = False
    root.create_array("tmp", shape=(3,), dtype="i1")
    assert session.has_uncommitted_changes is True

    session.discard_changes()
    assert session.has_uncommitted_changes is False
    root = zarr.open_group(store=session.store, mode="r")
    assert dict(root.attrs) == {"keep": True}
    assert "tmp" not in root
    assert keys(session.store) == {"zarr.json"}
    with pytest.raises(ic.IcechunkError):
        session.commit("nothing left")
    assert repo.lookup_branch("main") == c1

    # the session is still usable
    zarr.open_group(store=session.store).attrs["keep"] = "again"
    assert session.has_uncommitted_changes is True
    session.commit("c2")
    assert read_attrs(repo, branch="main") == {"keep": "again"}


def test_status(repo):
    session = repo.writable_session("main")
    status = session.status()
    assert status.new_groups == set() and status.new_arrays == set()
    assert status.updated_chunks == {}

    root = zarr.group(store=session.store)
    sub = root.create_group("g1")
    root.create_array("a", shape=(10,), chunks=(5,), dtype="i4", fill_value=0)[:] = np.arange(10)
    sub.create_array("b", shape=(4, 4), chunks=(2, 2), dtype="f8")

    status = session.status()
    assert status.new_groups == {"/", "/g1"}
    assert status.new_arrays == {"/a", "/g1/b"}
    assert status.deleted_groups == set()
    assert status.deleted_arrays == set()
    assert status.updated_groups == set()
    assert status.updated_arrays == set()
    assert normalized_chunks(status.updated_chunks) == {"/a": {(0,), (1,)}}
    session.commit("c1")

    session = repo.writable_session("main")
    root = zarr.open_group(store=session.store)
    root.attrs["changed"] = True
    root["a"][7] = 70
    status = session.status()
    assert status.updated_groups == {"/"}
    assert status.new_arrays == set()
    assert normalized_chunks(status.updated_chunks) == {"/a": {(1,)}}


def test_create_and_delete_in_same_session_is_no_change(repo):
    commit_attrs(repo, "c1", x=1)
    session = repo.writable_session("main")
    root = zarr.open_group(store=session.store)
    root.create_array("short_lived", shape=(3,), dtype="f4")
    assert session.status().new_arrays == {"/short_lived"}
    del root["short_lived"]
    assert session.status().new_arrays == set()
    assert session.has_uncommitted_changes is False


def test_diff(repo):
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    g1 = root.create_group("g1")
    g1.create_array("b", shape=(4,), chunks=(2,), dtype="f8")[:] = 1.0
    root.create_group("stays")
    root.create_array("a", shape=(10,), chunks=(5,), dtype="i4", fill_value=0)[:] = np.arange(10)
    c1 = session.commit("c1")

    session = repo.writable_session("main")
    root = zarr.open_group(store=session.store)
    root["a"][0:5] = 7  # chunk 0 changes
    del root["g1"]  # group and its array go away
    root.attrs["x"] = 1  # root group updated
    root.create_array("c", shape=(2,), dtype="u1")
    root.create_group("new_group")
    root["stays"].create_array("inner", shape=(1,), dtype="i8")[:] = 5
    c2 = session.commit("c2")

    diff = repo.diff(from_snapshot_id=c1, to_snapshot_id=c2)
    assert diff.new_groups == {"/new_group"}
    assert diff.new_arrays == {"/c", "/stays/inner"}
    assert diff.deleted_groups == {"/g1"}
    assert diff.deleted_arrays == {"/g1/b"}
    assert diff.updated_groups == {"/"}
    assert diff.updated_arrays == set()
    assert normalized_chunks(diff.updated_chunks) == {"/a": {(0,)}, "/stays/inner": {(0,)}}

    # same diff through branch / tag names
    repo.create_tag("before", c1)
    by_name = repo.diff(from_tag="before", to_branch="main")
    assert by_name.new_arrays == diff.new_arrays
    assert by_name.deleted_groups == diff.deleted_groups
    assert normalized_chunks(by_name.updated_chunks) == normalized_chunks(diff.updated_chunks)

    # a metadata-only change shows up as an updated array
    session = repo.writable_session("main")
    zarr.open_array(store=session.store, path="a").attrs["units"] = "m"
    c3 = session.commit("c3")
    diff = repo.diff(from_snapshot_id=c2, to_snapshot_id=c3)
    assert diff.updated_arrays == {"/a"}
    assert diff.updated_chunks == {}
    assert diff.new_arrays == set() and diff.updated_groups == set()


# ----------------------------------------------------------------------------- zarr


def test_groups_and_nested_groups(repo):
    session = repo.writable_session("main")
    root = zarr.group(store=session.store, attributes={"level": 0})
    a = root.create_group("a", attributes={"level": 1})
    b = a.create_group("b", attributes={"level": 2})
    b.create_group("c")
    root.create_group("z")
    b.create_array("data", shape=(2,), dtype="i2")
    session.commit("tree")

    root = zarr.open_group(store=repo.readonly_session("main").store, mode="r")
    paths = {path for path, _ in root.members(max_depth=None)}
    assert paths == {"a", "a/b", "a/b/c", "z", "a/b/data"}
    assert dict(root["a/b"].attrs) == {"level": 2}
    assert isinstance(root["a/b/c"], zarr.Group)
    assert isinstance(root["a/b/data"], zarr.Array)
    assert sorted(name for name, _ in root["a/b"].members()) == ["c", "data"]
    store = repo.readonly_session("main").store
    assert keys(store) == {
        "zarr.json",
        "a/zarr.json",
        "a/b/zarr.json",
        "a/b/c/zarr.json",
        "z/zarr.json",
        "a/b/data/zarr.json",
    }
    assert get_json(store, "a/b/zarr.json")["node_type"] == "group"


DTYPES = [
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
]


def sample(dtype: str, shape, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    if dt.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    return (rng.standard_normal(shape) * 1000).astype(dt)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes_round_trip(storage, dtype):
    repo = ic.Repository.create(storage)
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    data = sample(dtype, (7, 5))
    arr = root.create_array("x", shape=(9, 5), chunks=(4, 3), dtype=dtype)
    arr[:7] = data
    session.commit(f"{dtype} array")

    arr = zarr.open_array(store=reopen(storage).readonly_session("main").store, path="x", mode="r")
    assert arr.dtype == np.dtype(dtype)
    got = arr[...]
    np.testing.assert_array_equal(got[:7], data)
    np.testing.assert_array_equal(got[7:], np.zeros((2, 5), dtype=dtype))  # default fill value
    assert get_json(repo.readonly_session("main").store, "x/zarr.json")["data_type"] == dtype


@pytest.mark.parametrize(
    ("dtype", "fill_value"),
    [
        ("float32", np.nan),
        ("float64", np.nan),
        ("float64", -np.inf),
        ("int64", -1),
        ("uint8", 255),
        ("bool", True),
        ("complex64", 1 + 2j),
    ],
)
def test_fill_values(repo, dtype, fill_value):
    session = repo.writable_session("main")
    arr = zarr.create_array(
        store=session.store, name="f", shape=(6,), chunks=(2,), dtype=dtype, fill_value=fill_value
    )
    arr[2:4] = sample(dtype, (2,), seed=3)
    session.commit("fill")

    arr = zarr.open_array(store=repo.readonly_session("main").store, path="f", mode="r")
    want = np.full(6, fill_value, dtype=dtype)
    want[2:4] = sample(dtype, (2,), seed=3)
    np.testing.assert_array_equal(arr[...], want)  # NaN == NaN here
    assert chunk_keys(repo.readonly_session("main").store, "f") == {"f/c/1"}
    if isinstance(fill_value, float) and np.isnan(fill_value):
        assert np.isnan(arr.fill_value)
        assert get_json(repo.readonly_session("main").store, "f/zarr.json")["fill_value"] == "NaN"
    else:
        assert arr.fill_value == fill_value


def test_resize_grow_and_shrink(repo):
    session = repo.writable_session("main")
    arr = zarr.create_array(
        store=session.store, name="r", shape=(10,), chunks=(4,), dtype="i2", fill_value=-5
    )
    arr[:] = np.arange(10)
    session.commit("ten")

    session = repo.writable_session("main")
    arr = zarr.open_array(store=session.store, path="r")
    arr.resize((4,))  # on a chunk boundary: chunks 1 and 2 are dropped
    assert chunk_keys(session.store, "r") == {"r/c/0"}
    session.commit("shrunk")
    arr = zarr.open_array(store=repo.readonly_session("main").store, path="r", mode="r")
    assert arr.shape == (4,)
    assert arr[...].tolist() == [0, 1, 2, 3]

    session = repo.writable_session("main")
    arr = zarr.open_array(store=session.store, path="r")
    arr.resize((14,))
    arr[12:] = [12, 13]
    session.commit("grown")
    arr = zarr.open_array(store=repo.readonly_session("main").store, path="r", mode="r")
    assert arr.shape == (14,)
    assert arr[...].tolist() == [0, 1, 2, 3] + [-5] * 8 + [12, 13]
    assert get_json(repo.readonly_session("main").store, "r/zarr.json")["shape"] == [14]

    # the old version still has the old shape and data
    old = repo.lookup_snapshot(repo.lookup_branch("main")).parent_id
    old = repo.lookup_snapshot(old).parent_id
    arr = zarr.open_array(store=repo.readonly_session(snapshot_id=old).store, path="r", mode="r")
    assert arr[...].tolist() == list(range(10))


def test_resize_shrink_inside_a_chunk(repo):
    """zarr only drops chunks that are wholly outside the new shape; a partially kept chunk
    keeps its stored bytes, so growing again shows them (same as with any zarr store)."""
    session = repo.writable_session("main")
    arr = zarr.create_array(
        store=session.store, name="r", shape=(10,), chunks=(4,), dtype="i2", fill_value=-5
    )
    arr[:] = np.arange(10)
    arr.resize((5,))
    assert chunk_keys(session.store, "r") == {"r/c/0", "r/c/1"}
    assert arr[...].tolist() == [0, 1, 2, 3, 4]
    arr.resize((12,))
    assert arr[...].tolist() == [0, 1, 2, 3, 4, 5, 6, 7] + [-5] * 4
    session.commit("resize")
    arr = zarr.open_array(store=repo.readonly_session("main").store, path="r", mode="r")
    assert arr[...].tolist() == [0, 1, 2, 3, 4, 5, 6, 7] + [-5] * 4


def test_delete_array(repo):
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    root.create_array("gone", shape=(4,), chunks=(2,), dtype="f4")[:] = 1.0
    root.create_array("kept", shape=(2,), dtype="f4")[:] = 2.0
    c1 = session.commit("two arrays")

    session = repo.writable_session("main")
    root = zarr.open_group(store=session.store)
    del root["gone"]
    assert "gone" not in root
    assert not any(k.startswith("gone/") for k in keys(session.store))
    assert session.status().deleted_arrays == {"/gone"}
    c2 = session.commit("delete")

    root = zarr.open_group(store=repo.readonly_session("main").store, mode="r")
    assert sorted(root.array_keys()) == ["kept"]
    with pytest.raises(KeyError):
        root["gone"]
    assert not any(k.startswith("gone/") for k in keys(repo.readonly_session("main").store))
    assert repo.diff(from_snapshot_id=c1, to_snapshot_id=c2).deleted_arrays == {"/gone"}
    old = zarr.open_group(store=repo.readonly_session(snapshot_id=c1).store, mode="r")
    assert old["gone"][...].tolist() == [1.0] * 4


def test_delete_chunk_by_writing_fill_value(repo):
    assert zarr.config.get("array.write_empty_chunks") is False
    session = repo.writable_session("main")
    arr = zarr.create_array(
        store=session.store, name="a", shape=(8,), chunks=(2,), dtype="i4", fill_value=0
    )
    arr[:] = np.arange(1, 9)
    c1 = session.commit("full")
    assert chunk_keys(repo.readonly_session("main").store, "a") == {f"a/c/{i}" for i in range(4)}

    session = repo.writable_session("main")
    arr = zarr.open_array(store=session.store, path="a")
    arr[2:4] = 0  # chunk 1 becomes all fill value
    assert chunk_keys(session.store, "a") == {"a/c/0", "a/c/2", "a/c/3"}
    c2 = session.commit("clear chunk 1")

    store = repo.readonly_session("main").store
    assert chunk_keys(store, "a") == {"a/c/0", "a/c/2", "a/c/3"}
    values = zarr.open_array(store=store, path="a", mode="r")[...]
    assert values.tolist() == [1, 2, 0, 0, 5, 6, 7, 8]
    diff = repo.diff(from_snapshot_id=c1, to_snapshot_id=c2)
    assert normalized_chunks(diff.updated_chunks) == {"/a": {(1,)}}

    # deleting a chunk through the store API directly
    session = repo.writable_session("main")
    sync(session.store.delete("a/c/3"))
    assert chunk_keys(session.store, "a") == {"a/c/0", "a/c/2"}
    session.commit("delete chunk 3")
    values = zarr.open_array(store=repo.readonly_session("main").store, path="a", mode="r")[...]
    assert values.tolist() == [1, 2, 0, 0, 5, 6, 0, 0]


def test_attributes_unicode_and_nested(storage):
    repo = ic.Repository.create(storage)
    attrs = {
        "title": "Température – 東京 – 🧊",
        "nested": {"list": [1, 2.5, "x", None, True], "deep": {"deeper": {"k": "v"}}},
        "empty_list": [],
        "empty_dict": {},
        "ünïcödé key": "value",
    }
    session = repo.writable_session("main")
    root = zarr.group(store=session.store, attributes=attrs)
    root.create_array("arr", shape=(1,), dtype="i1", attributes={"units": "°C", "n": attrs})
    session.commit("attributes")

    store = reopen(storage).readonly_session("main").store
    root = zarr.open_group(store=store, mode="r")
    assert dict(root.attrs) == attrs
    assert dict(root["arr"].attrs) == {"units": "°C", "n": attrs}
    assert get_json(store, "zarr.json")["attributes"] == attrs


def test_dimension_names(repo):
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    root.create_array("named", shape=(2, 3, 4), dtype="f4", dimension_names=["time", "y", "x"])
    root.create_array("partly", shape=(2, 3), dtype="f4", dimension_names=["time", None])
    root.create_array("unnamed", shape=(2,), dtype="f4")
    session.commit("dims")

    store = repo.readonly_session("main").store
    root = zarr.open_group(store=store, mode="r")
    assert root["named"].metadata.dimension_names == ("time", "y", "x")
    assert root["partly"].metadata.dimension_names == ("time", None)
    assert root["unnamed"].metadata.dimension_names is None
    assert get_json(store, "named/zarr.json")["dimension_names"] == ["time", "y", "x"]
    assert "dimension_names" not in get_json(store, "unnamed/zarr.json")


def test_many_chunks(storage):
    repo = ic.Repository.create(storage)
    session = repo.writable_session("main")
    arr = zarr.create_array(
        store=session.store, name="many", shape=(20, 50), chunks=(1, 1), dtype="i4", fill_value=-1
    )
    data = np.arange(1000, dtype="i4").reshape(20, 50)
    arr[:] = data
    assert len(chunk_keys(session.store, "many")) == 1000
    snap = session.commit("1000 chunks")

    store = reopen(storage).readonly_session(snapshot_id=snap).store
    np.testing.assert_array_equal(zarr.open_array(store=store, path="many", mode="r")[...], data)
    assert chunk_keys(store, "many") == {f"many/c/{i}/{j}" for i in range(20) for j in range(50)}
    diff = repo.diff(from_snapshot_id=INITIAL_ID, to_snapshot_id=snap)
    assert len(normalized_chunks(diff.updated_chunks)["/many"]) == 1000


def test_zero_dimensional_array(repo):
    session = repo.writable_session("main")
    arr = zarr.create_array(
        store=session.store, name="scalar", shape=(), dtype="f8", fill_value=1.5
    )
    assert arr[()] == 1.5
    assert chunk_keys(session.store, "scalar") == set()
    arr[()] = 3.25
    assert chunk_keys(session.store, "scalar") == {"scalar/c"}
    c1 = session.commit("scalar")

    arr = zarr.open_array(store=repo.readonly_session("main").store, path="scalar", mode="r")
    assert arr.shape == ()
    assert arr[()] == 3.25
    diff = repo.diff(from_snapshot_id=INITIAL_ID, to_snapshot_id=c1)
    assert normalized_chunks(diff.updated_chunks) == {"/scalar": {()}}


def test_sharded_array(storage):
    repo = ic.Repository.create(storage)
    session = repo.writable_session("main")
    arr = zarr.create_array(
        store=session.store, name="sh", shape=(8, 10), chunks=(2, 2), shards=(4, 4), dtype="u4"
    )
    data = np.arange(80, dtype="u4").reshape(8, 10)
    arr[:] = data
    session.commit("sharded")

    store = reopen(storage).readonly_session("main").store
    arr = zarr.open_array(store=store, path="sh", mode="r")
    assert arr.shards == (4, 4)
    assert arr.chunks == (2, 2)
    np.testing.assert_array_equal(arr[...], data)
    np.testing.assert_array_equal(arr[3:6, 1:9], data[3:6, 1:9])  # partial shard reads
    # one stored object per shard: a 2 x 3 shard grid
    assert chunk_keys(store, "sh") == {f"sh/c/{i}/{j}" for i in range(2) for j in range(3)}
    assert get_json(store, "sh/zarr.json")["codecs"][0]["name"] == "sharding_indexed"


def test_data_persists_across_open(tmp_path):
    path = str(tmp_path / "persist")
    repo = ic.Repository.create(ic.local_filesystem_storage(path))
    session = repo.writable_session("main")
    root = zarr.group(store=session.store, attributes={"kind": "persist"})
    native = np.random.default_rng(1).standard_normal((64, 64))  # chunks too big to inline
    root.create_array("big", shape=native.shape, chunks=(32, 32), dtype="f8")[:] = native
    root.create_array("small", shape=(3,), dtype="i2")[:] = [1, 2, 3]
    c1 = session.commit("persist", metadata={"who": "test"})
    repo.create_tag("t", c1)
    repo.create_branch("b", c1)

    del repo, session, root
    again = ic.Repository.open(ic.local_filesystem_storage(path))
    assert again.lookup_branch("main") == c1
    assert again.lookup_tag("t") == c1
    assert again.list_branches() == {"main", "b"}
    assert again.lookup_snapshot(c1).metadata == {"who": "test"}
    root = zarr.open_group(store=again.readonly_session(tag="t").store, mode="r")
    assert dict(root.attrs) == {"kind": "persist"}
    np.testing.assert_array_equal(root["big"][...], native)
    assert root["small"][...].tolist() == [1, 2, 3]

    # and a second writer on the reopened repository builds on it
    session = again.writable_session("main")
    zarr.open_array(store=session.store, path="small")[0] = 100
    c2 = session.commit("second")
    third = ic.Repository.open(ic.local_filesystem_storage(path))
    assert [s.id for s in third.ancestry(branch="main")] == [c2, c1, INITIAL_ID]
    small = zarr.open_array(store=third.readonly_session("main").store, path="small", mode="r")
    assert small[...].tolist() == [100, 2, 3]
