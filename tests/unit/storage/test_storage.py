"""Tests for the in-memory and local filesystem storage backends."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

import icechunk.storage
from icechunk.exceptions import (
    InvalidInputError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
)
from icechunk.storage import (
    ByteRange,
    InMemoryStorage,
    LocalFileSystemStorage,
    Storage,
    in_memory_storage,
    local_filesystem_storage,
)


@pytest.fixture(params=["memory", "local"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "memory":
        return in_memory_storage()
    return local_filesystem_storage(tmp_path / "repo")


async def _increment(storage: Storage, key: str, times: int) -> int:
    """Add 1 to the integer in ``key`` ``times`` times with compare-and-swap; return retries."""
    retries = 0
    for _ in range(times):
        while True:
            data, version = await storage.get_with_version(key)
            try:
                await storage.put_if_version(key, str(int(data) + 1).encode(), version)
                break
            except PreconditionFailedError:
                retries += 1
    return retries


# -- both backends --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_put_get_round_trip(storage: Storage) -> None:
    assert not await storage.exists("snapshots/ABC")
    await storage.put("snapshots/ABC", b"hello")
    assert await storage.exists("snapshots/ABC")
    assert await storage.get("snapshots/ABC") == b"hello"
    await storage.put("snapshots/ABC", b"")  # overwrite, empty object
    assert await storage.get("snapshots/ABC") == b""
    await storage.put("top", bytearray(b"xyz"))
    assert await storage.get("top") == b"xyz"


@pytest.mark.asyncio
async def test_put_fresh_takes_a_view_and_keeps_no_reference(storage: Storage) -> None:
    buffer = bytearray(b"chunk bytes")
    await storage.put_fresh("chunks/NEW", memoryview(buffer))
    buffer[:5] = b"XXXXX"  # the caller reuses its buffer once put_fresh returned
    assert await storage.get("chunks/NEW") == b"chunk bytes"
    assert await storage.get("chunks/NEW", ByteRange(0, 5)) == b"chunk"
    assert [o.key async for o in storage.list("chunks/")] == ["chunks/NEW"]


@pytest.mark.asyncio
async def test_byte_ranges(storage: Storage) -> None:
    data = bytes(range(100))
    await storage.put("chunks/c", data)
    get = storage.get
    assert await get("chunks/c", ByteRange(10, 20)) == data[10:20]
    assert await get("chunks/c", ByteRange(90)) == data[90:]
    assert await get("chunks/c", ByteRange(95, 500)) == data[95:]
    assert await get("chunks/c", ByteRange(150)) == b""
    assert await get("chunks/c", ByteRange(5, 5)) == b""
    assert await get("chunks/c", ByteRange(suffix=7)) == data[-7:]
    assert await get("chunks/c", ByteRange(suffix=0)) == b""
    assert await get("chunks/c", ByteRange(suffix=1000)) == data
    assert await get("chunks/c", ByteRange()) == data
    for bad in (ByteRange(-1), ByteRange(10, 5), ByteRange(suffix=-3)):
        with pytest.raises(InvalidInputError):
            await get("chunks/c", bad)


@pytest.mark.asyncio
async def test_missing_key(storage: Storage) -> None:
    with pytest.raises(ObjectNotFoundError, match="nope/missing"):
        await storage.get("nope/missing")
    with pytest.raises(KeyError):
        await storage.get("nope/missing", ByteRange(0, 1))
    with pytest.raises(ObjectNotFoundError):
        await storage.get_with_version("missing")
    assert not await storage.exists("missing")


@pytest.mark.asyncio
async def test_put_if_absent(storage: Storage) -> None:
    version = await storage.put_if_absent("repo", b"v1")
    assert (await storage.get_with_version("repo")) == (b"v1", version)
    with pytest.raises(PreconditionFailedError):
        await storage.put_if_absent("repo", b"v2")
    assert await storage.get("repo") == b"v1"
    # the error is also a StorageError / OSError for generic handlers
    with pytest.raises(StorageError):
        await storage.put_if_absent("repo", b"v3")


@pytest.mark.asyncio
async def test_put_if_version(storage: Storage) -> None:
    v1 = await storage.put_if_absent("repo", b"one")
    v2 = await storage.put_if_version("repo", b"two", v1)
    assert v2 != v1
    assert await storage.get_with_version("repo") == (b"two", v2)
    with pytest.raises(PreconditionFailedError):
        await storage.put_if_version("repo", b"three", v1)  # stale
    assert await storage.get("repo") == b"two"
    v3 = await storage.put_if_version("repo", b"three", v2)
    assert await storage.get_with_version("repo") == (b"three", v3)
    with pytest.raises(PreconditionFailedError):
        await storage.put_if_version("missing", b"x", v3)
    with pytest.raises(PreconditionFailedError):
        await storage.put_if_version("missing/dir/key", b"x", v3)


@pytest.mark.asyncio
async def test_list_with_prefixes(storage: Storage) -> None:
    keys = [
        "repo",
        "snapshots/S1",
        "snapshots/S2",
        "chunks/ab/c1",
        "chunks/ab/c2",
        "chunks/cd",
        "chunksx",
        "overwritten/repo.1",
    ]
    for i, key in enumerate(keys):
        await storage.put(key, b"x" * i)
    assert await storage.list_keys() == sorted(keys)
    assert await storage.list_keys("snapshots/") == ["snapshots/S1", "snapshots/S2"]
    assert await storage.list_keys("chunks/") == ["chunks/ab/c1", "chunks/ab/c2", "chunks/cd"]
    assert await storage.list_keys("chunks") == [
        "chunks/ab/c1",
        "chunks/ab/c2",
        "chunks/cd",
        "chunksx",
    ]
    assert await storage.list_keys("chunks/a") == ["chunks/ab/c1", "chunks/ab/c2"]
    assert await storage.list_keys("chunks/ab/c2") == ["chunks/ab/c2"]
    assert await storage.list_keys("snap") == ["snapshots/S1", "snapshots/S2"]
    assert await storage.list_keys("manifests/") == []
    assert await storage.list_keys("nothing/deeper/") == []
    infos = {info.key: info async for info in storage.list()}
    assert {k: infos[k].size_bytes for k in keys} == {k: i for i, k in enumerate(keys)}
    for info in infos.values():
        assert isinstance(info.last_modified, datetime)
        assert info.last_modified.utcoffset() is not None
        assert (
            abs((datetime.now(info.last_modified.tzinfo) - info.last_modified).total_seconds()) < 60
        )


@pytest.mark.asyncio
async def test_delete(storage: Storage) -> None:
    for key in ("a", "d/b", "d/e/c"):
        await storage.put(key, b"1")
    await storage.delete(["a", "d/e/c", "never/existed", "d/b/not-a-dir"])
    assert await storage.list_keys() == ["d/b"]
    with pytest.raises(ObjectNotFoundError):
        await storage.get("d/e/c")
    await storage.delete("d/b")  # a single key is one key, not its characters
    await storage.delete([])
    assert await storage.list_keys() == []


@pytest.mark.asyncio
async def test_concurrent_increments_in_process(storage: Storage) -> None:
    await storage.put_if_absent("counter", b"0")
    await asyncio.gather(*(_increment(storage, "counter", 10) for _ in range(4)))
    assert await storage.get("counter") == b"40"


@pytest.mark.asyncio
async def test_put_if_absent_race(storage: Storage) -> None:
    results = await asyncio.gather(
        *(storage.put_if_absent("repo", str(i).encode()) for i in range(8)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1
    assert all(isinstance(r, PreconditionFailedError) for r in results if r not in winners)


# -- local filesystem -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_local_layout_and_lazy_root(tmp_path: Path) -> None:
    root = tmp_path / "lazy" / "repo"
    storage = local_filesystem_storage(root)
    assert not root.exists()
    assert await storage.list_keys() == []
    await storage.put("chunks/abc", b"data")
    assert (root / "chunks" / "abc").read_bytes() == b"data"
    version = await storage.put_if_absent("repo", b"r1")
    await storage.put_if_version("repo", b"r2", version)
    names = sorted(os.listdir(root))
    assert names == [".repo.lock", "chunks", "repo"]  # no temp files left behind
    assert await storage.list_keys() == ["chunks/abc", "repo"]
    (root / "chunks" / ".tmp-leftover").write_bytes(b"partial")
    assert await storage.list_keys("chunks/") == ["chunks/abc"]


@pytest.mark.asyncio
async def test_local_version_is_sha256(tmp_path: Path) -> None:
    storage = local_filesystem_storage(tmp_path)
    version = await storage.put_if_absent("repo", b"content")
    assert version == hashlib.sha256(b"content").hexdigest()
    assert await storage.get_with_version("repo") == (b"content", version)
    # a plain put in between (another writer) invalidates the version
    await storage.put("repo", b"other")
    with pytest.raises(PreconditionFailedError):
        await storage.put_if_version("repo", b"mine", version)


@pytest.mark.asyncio
async def test_local_large_reads(tmp_path: Path) -> None:
    storage = LocalFileSystemStorage(tmp_path)
    data = os.urandom(3 * storage.inline_read_limit + 17)
    await storage.put("chunks/big", data)
    assert await storage.get("chunks/big") == data
    assert await storage.get("chunks/big", ByteRange(5, len(data) - 5)) == data[5:-5]
    assert await storage.get("chunks/big", ByteRange(suffix=100)) == data[-100:]
    assert await storage.get("chunks/big", ByteRange(100, 200)) == data[100:200]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "key",
    [
        "../escape",
        "/etc/passwd",
        "a/../../x",
        "a//b",
        "a/",
        "",
        ".",
        "./a",
        ".repo.lock",
        "d/.tmp-1",
    ],
)
async def test_local_rejects_bad_keys(tmp_path: Path, key: str) -> None:
    storage = local_filesystem_storage(tmp_path / "root")
    with pytest.raises(InvalidInputError):
        await storage.get(key)
    with pytest.raises(InvalidInputError):
        await storage.put(key, b"x")
    with pytest.raises(InvalidInputError):
        await storage.exists(key)
    with pytest.raises(InvalidInputError):
        await storage.delete([key])
    with pytest.raises(InvalidInputError):
        await storage.put_if_absent(key, b"x")
    assert not (tmp_path / "escape").exists()


@pytest.mark.asyncio
async def test_local_rejects_bad_list_prefix(tmp_path: Path) -> None:
    storage = local_filesystem_storage(tmp_path)
    for prefix in ("../", "/etc/", "a/../"):
        with pytest.raises(InvalidInputError):
            await storage.list_keys(prefix)


@pytest.mark.asyncio
async def test_local_directory_key_and_messages(tmp_path: Path) -> None:
    storage = local_filesystem_storage(tmp_path)
    await storage.put("chunks/x", b"1")
    with pytest.raises(InvalidInputError):
        await storage.get("chunks")
    with pytest.raises(InvalidInputError):
        await storage.put("chunks", b"1")
    assert not await storage.exists("chunks")
    with pytest.raises(ObjectNotFoundError) as info:
        await storage.get("chunks/y")
    assert "chunks/y" in str(info.value) and str(tmp_path) in str(info.value)
    with pytest.raises(ObjectNotFoundError):
        await storage.get("chunks/x/under-a-file")
    with pytest.raises(StorageError):
        await storage.put("chunks/x/under-a-file", b"1")


@pytest.mark.asyncio
async def test_local_delete_prunes_empty_dirs_not_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    storage = local_filesystem_storage(root)
    await storage.put("chunks/a/b/c", b"1")
    await storage.put("chunks/z", b"1")
    await storage.delete(["chunks/a/b/c"])
    assert sorted(os.listdir(root / "chunks")) == ["z"]
    await storage.delete(["chunks/z"])
    assert root.is_dir() and os.listdir(root) == []
    await storage.put("chunks/a/b/c", b"2")  # directories come back on demand
    assert await storage.get("chunks/a/b/c") == b"2"


def test_local_pickle_eq_describe(tmp_path: Path) -> None:
    storage = local_filesystem_storage(tmp_path)
    clone = pickle.loads(pickle.dumps(storage))
    assert isinstance(clone, LocalFileSystemStorage)
    assert clone == storage and hash(clone) == hash(storage)
    assert clone != local_filesystem_storage(tmp_path / "other")
    assert storage.describe() == f"local filesystem at {tmp_path}"
    assert str(tmp_path) in repr(storage)


def test_factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(in_memory_storage(), InMemoryStorage)
    monkeypatch.setenv("HOME", str(tmp_path))
    home = local_filesystem_storage("~/data")
    assert isinstance(home, LocalFileSystemStorage)
    assert home.root == os.path.join(str(tmp_path), "data")
    monkeypatch.chdir(tmp_path)
    assert local_filesystem_storage("rel/dir").root == str(tmp_path / "rel" / "dir")
    assert local_filesystem_storage(Path("x")) == local_filesystem_storage(str(tmp_path / "x"))
    for bad in (123, None, b"/tmp/bytes", ""):
        with pytest.raises(InvalidInputError):
            local_filesystem_storage(bad)  # type: ignore[arg-type]
    assert set(icechunk.storage.__all__) >= {"Storage", "ByteRange", "ObjectInfo", "Version"}


_WORKER = """
import asyncio, sys
from icechunk.exceptions import PreconditionFailedError
from icechunk.storage import local_filesystem_storage

async def main(root, times):
    storage = local_filesystem_storage(root)
    print("ready", flush=True)
    sys.stdin.readline()  # wait until every process is ready, then race
    retries = 0
    for _ in range(times):
        while True:
            data, version = await storage.get_with_version("counter")
            try:
                await storage.put_if_version("counter", str(int(data) + 1).encode(), version)
                break
            except PreconditionFailedError:
                retries += 1
    print(retries, flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def test_local_multiprocess_compare_and_swap(tmp_path: Path) -> None:
    """4 processes x 25 read-modify-write increments of one key lose no update."""
    root = tmp_path / "shared"
    asyncio.run(local_filesystem_storage(root).put_if_absent("counter", b"0"))
    src = str(Path(icechunk.storage.__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(root), "25"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.close()
        outputs = []
        for proc in procs:
            assert proc.stdout is not None
            outputs.append(proc.stdout.read())
            proc.wait(timeout=120)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], outputs
    assert asyncio.run(local_filesystem_storage(root).get("counter")) == b"100"
    assert sorted(os.listdir(root)) == [".counter.lock", "counter"]
