"""GCS storage against fake-gcs-server on 127.0.0.1 (see ``storage_servers.FakeGcs``).

The backend conformance checks are the ones of ``test_storage.py``, imported here so
they run against GCS with this module's ``storage`` fixture.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
import traceback

import numpy as np
import pytest
import zarr

import icechunk as ic
from icechunk.exceptions import PreconditionFailedError
from icechunk.storage import (
    GcsCredentials,
    GcsStaticCredentials,
    GcsStorage,
    StorageRetriesSettings,
    StorageSettings,
    gcs_storage,
)
from tests.helpers.storage_servers import FakeGcs, run_commit_processes
from tests.integration.test_concurrency import check_outcome, setup_repository
from tests.unit.storage.test_storage import (  # noqa: F401  (collected here, run against GCS)
    test_byte_ranges,
    test_concurrent_increments_in_process,
    test_delete,
    test_list_with_prefixes,
    test_missing_key,
    test_put_get_round_trip,
    test_put_if_absent,
    test_put_if_absent_race,
    test_put_if_version,
)


@pytest.fixture
async def storage(fake_gcs: FakeGcs):
    storage = fake_gcs.storage()
    yield storage
    await storage.close()


async def test_versions_are_generations(fake_gcs: FakeGcs) -> None:
    storage = fake_gcs.storage()
    v1 = await storage.put_if_absent("repo", b"one")
    assert v1.isdigit()
    v2 = await storage.put_if_version("repo", b"two", v1)
    assert v2.isdigit() and int(v2) > int(v1)
    assert await storage.get_with_version("repo") == (b"two", v2)
    with pytest.raises(PreconditionFailedError):
        await storage.put_if_version("repo", b"three", "not-a-generation")
    await storage.close()


def test_concurrent_writers_with_separate_clients(fake_gcs: FakeGcs) -> None:
    """4 threads, each with its own storage object and event loop, CAS-increment one key."""
    prefix = fake_gcs.storage().prefix
    asyncio.run(fake_gcs.storage(prefix).put_if_absent("counter", b"0"))
    errors: list[str] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        async def run() -> None:
            storage = fake_gcs.storage(prefix)
            barrier.wait(30)
            for _ in range(10):
                while True:
                    data, version = await storage.get_with_version("counter")
                    try:
                        await storage.put_if_version("counter", b"%d" % (int(data) + 1), version)
                        break
                    except PreconditionFailedError:
                        pass
            await storage.close()

        try:
            asyncio.run(run())
        except Exception:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert asyncio.run(fake_gcs.storage(prefix).get("counter")) == b"40"


async def test_lost_reply_of_conditional_write_is_success(fake_gcs: FakeGcs) -> None:
    import aiohttp

    storage = fake_gcs.storage().with_settings(
        StorageSettings(retries=StorageRetriesSettings(initial_backoff_ms=1, max_backoff_ms=5))
    )
    real = storage._write
    dropped: list[str] = []

    async def write(client, key, data, *, if_match=None, if_absent=False):
        version = await real(client, key, data, if_match=if_match, if_absent=if_absent)
        if len(dropped) < 2:
            dropped.append(key)
            raise aiohttp.ServerDisconnectedError()
        return version

    storage._write = write  # type: ignore[method-assign]
    v1 = await storage.put_if_absent("repo", b"one")
    v2 = await storage.put_if_version("repo", b"two", v1)
    assert dropped == ["repo", "repo"]
    assert await storage.get_with_version("repo") == (b"two", v2)
    await storage.close()


def test_repository_round_trip(fake_gcs: FakeGcs) -> None:
    """Create, write, commit, reopen from a pickled copy of the storage, read back."""
    storage = fake_gcs.storage()
    repo = ic.Repository.create(storage)
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    array = root.create_array("temperature", shape=(6, 8), chunks=(3, 4), dtype="float64")
    data = np.arange(48, dtype="float64").reshape(6, 8)
    array[:] = data
    array.attrs["units"] = "K"
    first = session.commit("write temperature")
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="temperature", mode="r+")[0, :] = -1
    session.commit("first row")

    reopened = ic.Repository.open(pickle.loads(pickle.dumps(storage)))
    latest = zarr.open_array(reopened.readonly_session(branch="main").store, path="temperature")
    expected = data.copy()
    expected[0, :] = -1
    np.testing.assert_array_equal(latest[:], expected)
    assert latest.attrs["units"] == "K"
    old = zarr.open_array(reopened.readonly_session(snapshot_id=first).store, path="temperature")
    np.testing.assert_array_equal(old[:], data)
    assert [s.message for s in reopened.ancestry(branch="main")] == [
        "first row",
        "write temperature",
        "Repository initialized",
    ]


def test_factory_and_credentials(fake_gcs: FakeGcs) -> None:
    storage = gcs_storage(**fake_gcs.storage_kwargs("some/prefix/"))
    assert isinstance(storage, GcsStorage) and storage.prefix == "some/prefix"
    assert isinstance(storage._credentials, GcsCredentials.Anonymous)
    assert "gs://icechunk-test/some/prefix" in repr(storage)
    token = gcs_storage(bucket="b", prefix="p", bearer_token="s3cr3t-bearer")
    assert token._credentials == GcsCredentials.Static(
        GcsStaticCredentials.BearerToken("s3cr3t-bearer")
    )
    assert "s3cr3t" not in repr(token._credentials)
    from_config = gcs_storage(bucket="b", prefix="p", config={"service_account_key": "{}"})
    assert isinstance(from_config._credentials.credentials, GcsStaticCredentials.ServiceAccountKey)
    with pytest.raises(ValueError, match="allow_http"):
        gcs_storage(bucket="b", prefix="p", anonymous=True, config={"base_url": "http://x:1"})
    clone = pickle.loads(pickle.dumps(storage))
    assert clone == storage


@pytest.mark.slow
def test_concurrent_commits_processes_gcs(fake_gcs: FakeGcs) -> None:
    """4 spawned processes x 10 commits each to ``main`` on GCS: none lost, none duplicated."""
    n_workers, n_commits = 4, 10
    storage = fake_gcs.storage()
    setup_repository(storage, n_workers, n_commits)
    outcomes = run_commit_processes(storage, n_workers, n_commits)
    check_outcome(ic.Repository.open(storage), outcomes, n_workers, n_commits)
