"""Read-only HTTP storage: a repository directory served by a local HTTP server."""

from __future__ import annotations

import asyncio
import functools
import pickle
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import zarr

import icechunk as ic
from icechunk.exceptions import ObjectNotFoundError, ReadOnlyError, StorageError
from icechunk.storage import ByteRange, HttpStorage, http_storage
from tests.helpers.storage_servers import serve_directory


@pytest.fixture(scope="module")
def served_repo(tmp_path_factory: pytest.TempPathFactory):
    """A repository written on local disk (two commits, a tag, a branch), served over HTTP."""
    path = tmp_path_factory.mktemp("http-repo") / "repo"
    repo = ic.Repository.create(ic.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    root = zarr.group(store=session.store, attributes={"title": "served"})
    temp = root.create_array("temperature", shape=(4, 6), chunks=(2, 3), dtype="float32")
    temp[:] = np.arange(24, dtype="float32").reshape(4, 6)
    big = root.create_array("big", shape=(64, 64), chunks=(32, 32), dtype="float64")
    big[:] = np.linspace(0, 1, 64 * 64).reshape(64, 64)  # native chunk objects, not inline
    first = session.commit("first")
    repo.create_tag("v1", first)
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="temperature", mode="r+")[0, :] = -1
    second = session.commit("second")
    repo.create_branch("dev", first)
    with serve_directory(path) as server:
        yield {"url": server.url, "path": path, "first": first, "second": second}


def test_read_repository_over_http(served_repo) -> None:
    repo = ic.Repository.open(http_storage(served_repo["url"]))
    expected = np.arange(24, dtype="float32").reshape(4, 6)
    main = repo.readonly_session(branch="main")
    assert main.snapshot_id == served_repo["second"]
    root = zarr.open_group(main.store, mode="r")
    assert root.attrs["title"] == "served"
    latest = expected.copy()
    latest[0, :] = -1
    np.testing.assert_array_equal(root["temperature"][:], latest)
    np.testing.assert_array_equal(root["big"][:], np.linspace(0, 1, 64 * 64).reshape(64, 64))
    tagged = zarr.open_array(repo.readonly_session(tag="v1").store, path="temperature", mode="r")
    np.testing.assert_array_equal(tagged[:], expected)
    dev = zarr.open_array(repo.readonly_session(branch="dev").store, path="temperature", mode="r")
    np.testing.assert_array_equal(dev[1:3, 2:5], expected[1:3, 2:5])
    assert [s.message for s in repo.ancestry(branch="main")] == [
        "second",
        "first",
        "Repository initialized",
    ]
    assert set(repo.list_branches()) == {"main", "dev"}
    assert set(repo.list_tags()) == {"v1"}


def test_writes_fail_clearly(served_repo) -> None:
    repo = ic.Repository.open(http_storage(served_repo["url"] + "/"))
    with pytest.raises(ReadOnlyError, match="HTTP storage is read-only"):
        repo.create_branch("feature", served_repo["first"])
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="temperature", mode="r+")[0, 0] = 42
    with pytest.raises(ReadOnlyError, match="read-only"):
        session.commit("nope")
    storage = http_storage(served_repo["url"])
    for write in (
        lambda: storage.put("chunks/x", b"1"),
        lambda: storage.put_if_absent("x", b"1"),
        lambda: storage.put_if_version("repo", b"1", "v"),
        lambda: storage.delete(["repo"]),
    ):
        with pytest.raises(ReadOnlyError):
            asyncio.run(write())
    assert not (served_repo["path"] / "chunks" / "x").exists()


async def test_storage_reads(served_repo) -> None:
    storage = http_storage(served_repo["url"])
    data = (served_repo["path"] / "repo").read_bytes()
    assert await storage.get("repo") == data
    assert await storage.get("repo", ByteRange(3, 17)) == data[3:17]
    assert await storage.get("repo", ByteRange(suffix=9)) == data[-9:]
    assert await storage.get("repo", ByteRange(len(data) - 2, len(data) + 100)) == data[-2:]
    assert await storage.get("repo", ByteRange(len(data) + 5)) == b""
    assert await storage.get("repo", ByteRange(4, 4)) == b""
    body, version = await storage.get_with_version("repo")
    assert body == data and version
    assert await storage.exists("repo")
    assert not await storage.exists("nothing/here")
    with pytest.raises(ObjectNotFoundError, match="nothing/here"):
        await storage.get("nothing/here")
    with pytest.raises(ObjectNotFoundError):
        await storage.get("nothing/here", ByteRange(0, 4))
    with pytest.raises(StorageError, match="cannot list"):
        await storage.list_keys()
    assert storage.supports_conditional_writes
    clone = pickle.loads(pickle.dumps(storage))
    assert clone == storage and isinstance(clone, HttpStorage)
    assert await clone.get("repo", ByteRange(0, 4)) == data[:4]
    await storage.close()
    await clone.close()


async def test_server_without_range_support(tmp_path: Path) -> None:
    """The stdlib handler ignores Range and answers 200: ranges are cut locally."""
    (tmp_path / "obj").write_bytes(bytes(range(200)))
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        storage = http_storage(f"http://127.0.0.1:{server.server_address[1]}")
        assert await storage.get("obj", ByteRange(10, 20)) == bytes(range(10, 20))
        assert await storage.get("obj", ByteRange(suffix=5)) == bytes(range(195, 200))
        assert await storage.get("obj", ByteRange(190)) == bytes(range(190, 200))
        await storage.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_factory_validation() -> None:
    with pytest.raises(ValueError):
        http_storage("ftp://example.invalid/repo")
    with pytest.raises(ValueError, match="duration"):
        http_storage("http://127.0.0.1:1/repo", opts={"timeout": "soon"})
    storage = http_storage("http://127.0.0.1:1/a/repo", opts={"timeout": "30s"})
    assert storage.base_url == "http://127.0.0.1:1/a/repo/"
    assert "HTTP storage at http://127.0.0.1:1/a/repo/" in repr(storage)
