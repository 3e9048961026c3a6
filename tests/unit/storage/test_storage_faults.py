"""Fault injection: commits land fully or not at all, and retries hide transient faults.

Two layers are exercised:

* *below* the retry layer: the S3 backend's client (talking to moto) fails a seeded
  fraction of its requests with a broken connection, either before the request is
  sent or after the server applied it (the reply is lost). With retries enabled
  every operation must still succeed, every commit land exactly once, and no
  commit be misreported as a conflict.
* *above* the retry layer: a :class:`FlakyStorage` wrapper makes a seeded fraction
  of storage calls raise. Commits then fail, but each one either lands completely
  or leaves no trace, and the repository stays readable at its last commit.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterable
from typing import Any

import numpy as np
import pytest
import zarr

import icechunk as ic
from icechunk.exceptions import IcechunkError, StorageError
from icechunk.storage import (
    ByteRange,
    ObjectInfo,
    S3Storage,
    Storage,
    StorageRetriesSettings,
    StorageSettings,
    Version,
)
from tests.helpers.storage_servers import MotoS3

N = 24  # elements of the test array, one per commit attempt

# -- below the retry layer: a flaky network under the S3 backend --------------------------


class _FlakyS3Client:
    """Proxy of an aiobotocore client whose data calls fail at a seeded rate."""

    CALLS = frozenset(
        {"get_object", "put_object", "head_object", "list_objects_v2", "delete_objects"}
    )

    def __init__(self, client: Any, rng: random.Random, rate: float, log: list[str]) -> None:
        self._client, self._rng, self._rate, self._log = client, rng, rate, log

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in self.CALLS:
            return attr

        async def call(**kwargs: Any) -> Any:
            from botocore.exceptions import ConnectionClosedError

            roll = self._rng.random()
            if roll < self._rate / 2:
                self._log.append(f"{name}: not sent")
                raise ConnectionClosedError(endpoint_url="http://injected/before")
            result = await attr(**kwargs)
            if roll < self._rate:
                self._log.append(f"{name}: reply lost")
                if "Body" in result:
                    result["Body"].close()
                raise ConnectionClosedError(endpoint_url="http://injected/after")
            return result

        return call


def _flaky_s3(moto_s3: MotoS3, rate: float, seed: int, log: list[str]) -> S3Storage:
    storage = moto_s3.storage().with_settings(
        StorageSettings(
            retries=StorageRetriesSettings(max_tries=25, initial_backoff_ms=1, max_backoff_ms=4)
        )
    )
    rng = random.Random(seed)
    real_open = storage._open_client

    async def open_client():
        handle = await real_open()
        handle.client = _FlakyS3Client(handle.client, rng, rate, log)
        return handle

    storage._open_client = open_client  # type: ignore[method-assign]
    return storage  # type: ignore[return-value]


def test_retries_hide_transient_faults(moto_s3: MotoS3) -> None:
    log: list[str] = []
    storage = _flaky_s3(moto_s3, rate=0.25, seed=1234, log=log)
    repo = ic.Repository.create(storage)
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    root.create_array("a", shape=(N,), chunks=(4,), dtype="int64", fill_value=0)
    root.create_array("b", shape=(64, 64), chunks=(16, 16), dtype="float64", fill_value=0)
    ids = [session.commit("set up")]
    for i in range(8):
        session = repo.writable_session("main")
        zarr.open_array(session.store, path="a", mode="r+")[i] = i + 1
        zarr.open_array(session.store, path="b", mode="r+")[i * 8 : i * 8 + 8, :] = i + 0.5
        ids.append(session.commit(f"commit {i}"))  # never a ConflictError: we are alone
    assert any("reply lost" in entry for entry in log) and any("not sent" in e for e in log)
    assert any(e.startswith("put_object: reply lost") for e in log)

    clean = ic.Repository.open(moto_s3.storage(storage.prefix))
    history = list(clean.ancestry(branch="main"))
    assert [h.id for h in history] == ids[::-1] + [history[-1].id]  # each exactly once
    store = clean.readonly_session(branch="main").store
    expected_b = np.zeros((64, 64))
    for i in range(8):
        expected_b[i * 8 : i * 8 + 8, :] = i + 0.5
    np.testing.assert_array_equal(zarr.open_array(store, path="a", mode="r")[:8], np.arange(1, 9))
    np.testing.assert_array_equal(zarr.open_array(store, path="b", mode="r")[:], expected_b)


# -- above the retry layer: storage calls that fail -----------------------------------------


class FlakyStorage(Storage):
    """Wrap a storage; a seeded fraction of calls raise ``StorageError``.

    ``before`` is the rate of failures before the call reaches ``inner`` (nothing
    happened), ``after`` the rate of failures after it (the call took effect but the
    caller sees an error, like a lost reply).
    """

    def __init__(self, inner: Storage, *, before: float, after: float, seed: int) -> None:
        self.inner, self.before, self.after = inner, before, after
        self.rng = random.Random(seed)
        self.enabled = True
        self.injected = {"before": 0, "after": 0}

    async def _call(self, name: str, *args: Any) -> Any:
        roll = self.rng.random() if self.enabled else 1.0
        if roll < self.before:
            self.injected["before"] += 1
            raise StorageError(f"injected fault in {name} (not applied)")
        result = await getattr(self.inner, name)(*args)
        if roll < self.before + self.after:
            self.injected["after"] += 1
            raise StorageError(f"injected fault in {name} (applied, reply lost)")
        return result

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        return await self._call("get", key, byte_range)

    async def get_with_version(self, key: str) -> tuple[bytes, Version]:
        return await self._call("get_with_version", key)

    async def put(self, key: str, data: bytes) -> None:
        await self._call("put", key, data)

    async def put_if_absent(self, key: str, data: bytes) -> Version:
        return await self._call("put_if_absent", key, data)

    async def put_if_version(self, key: str, data: bytes, version: Version) -> Version:
        return await self._call("put_if_version", key, data, version)

    async def exists(self, key: str) -> bool:
        return await self._call("exists", key)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        async for info in self.inner.list(prefix):
            yield info

    async def delete(self, keys: Iterable[str]) -> None:
        await self._call("delete", keys)


def _state_of(repo: ic.Repository, snapshot_id: str) -> tuple[np.ndarray, dict[str, Any]]:
    store = repo.readonly_session(snapshot_id=snapshot_id).store
    array = zarr.open_array(store, path="a", mode="r")
    return array[:], dict(array.attrs)


@pytest.mark.parametrize("after", [0.0, 0.03], ids=["faults-before", "lost-replies-too"])
def test_commits_land_fully_or_not_at_all(after: float) -> None:
    inner = ic.in_memory_storage()
    flaky = FlakyStorage(inner, before=0.06, after=after, seed=20240611)
    flaky.enabled = False
    repo = ic.Repository.create(flaky)
    session = repo.writable_session("main")
    zarr.create_array(session.store, name="a", shape=(N,), chunks=(1,), dtype="int64", fill_value=0)
    session.commit("set up")
    flaky.enabled = True

    landed: dict[str, int] = {}
    failed: list[int] = []
    for i in range(N):
        try:
            session = repo.writable_session("main")
            array = zarr.open_array(session.store, path="a", mode="r+")
            array[i] = i + 1
            array.attrs[f"i{i}"] = i + 1
            landed[session.commit(f"attempt {i}")] = i
        except (IcechunkError, OSError):
            failed.append(i)
    flaky.enabled = False
    assert landed and failed, (landed, failed, flaky.injected)

    # A clean view of what is on storage.
    clean = ic.Repository.open(inner)
    history = list(clean.ancestry(branch="main"))
    attempts_on_branch = []
    for info in history[:-2]:  # minus "set up" and "Repository initialized"
        assert info.message.startswith("attempt ")
        attempts_on_branch.append(int(info.message.split()[1]))
    # every commit reported as landed is on the branch, once; a failed one is there
    # only if its reply was lost after the swap (it then landed completely)
    assert set(landed.values()) <= set(attempts_on_branch)
    assert len(attempts_on_branch) == len(set(attempts_on_branch))
    if after == 0.0:
        assert sorted(attempts_on_branch) == sorted(landed.values())
    # each snapshot holds exactly the writes of the commits up to it: nothing partial
    expected = np.zeros(N, dtype="int64")
    attrs: dict[str, Any] = {}
    for info in reversed(history[:-2]):
        i = int(info.message.split()[1])
        expected[i] = i + 1
        attrs[f"i{i}"] = i + 1
        data, got_attrs = _state_of(clean, info.id)
        np.testing.assert_array_equal(data, expected)
        assert got_attrs == attrs
    # and the repository (through the flaky storage too) reads at its last commit
    tip = repo.readonly_session(branch="main")
    assert tip.snapshot_id == history[0].id
    np.testing.assert_array_equal(zarr.open_array(tip.store, path="a", mode="r")[:], expected)
