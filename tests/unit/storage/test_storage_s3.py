"""S3 storage against a moto server on 127.0.0.1 (see ``storage_servers.MotoS3``).

The backend conformance checks are the ones of ``test_storage.py``, imported here so
they run against S3 with this module's ``storage`` fixture.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
import traceback
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import zarr

import icechunk as ic
from icechunk.exceptions import PreconditionFailedError, ReadOnlyError, StorageError
from icechunk.storage import (
    S3Credentials,
    S3StaticCredentials,
    S3Storage,
    StorageRetriesSettings,
    StorageSettings,
    UnsafeStorageWarning,
    s3_storage,
)
from tests.helpers.storage_servers import S3_ACCESS_KEY, S3_SECRET_KEY, MotoS3, run_commit_processes
from tests.integration.test_concurrency import check_outcome, setup_repository
from tests.unit.storage.test_storage import (  # noqa: F401  (collected here, run against S3)
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
async def storage(moto_s3: MotoS3):
    storage = moto_s3.storage()
    yield storage
    await storage.close()


def _lost_connection() -> Exception:
    from botocore.exceptions import ConnectionClosedError

    return ConnectionClosedError(endpoint_url="http://simulated/lost-response")


def _drop_replies(storage: S3Storage, *, count: int, perform: bool, conditional_only: bool = True):
    """Make the next ``count`` (conditional) writes fail with a broken connection.

    With ``perform`` the request reaches the server first: its reply is what gets lost.
    Returns the list of intercepted calls.
    """
    real = storage._write
    seen: list[dict[str, Any]] = []

    async def write(client, key, data, *, if_match=None, if_absent=False):
        conditional = if_match is not None or if_absent
        if (conditional or not conditional_only) and len(seen) < count:
            seen.append({"key": key, "if_match": if_match, "if_absent": if_absent})
            if perform:
                await real(client, key, data, if_match=if_match, if_absent=if_absent)
            raise _lost_connection()
        return await real(client, key, data, if_match=if_match, if_absent=if_absent)

    storage._write = write  # type: ignore[method-assign]
    return seen


def _fast_retries(storage: S3Storage, tries: int = 5) -> S3Storage:
    return storage.with_settings(  # type: ignore[return-value]
        StorageSettings(
            retries=StorageRetriesSettings(max_tries=tries, initial_backoff_ms=1, max_backoff_ms=5)
        )
    )


# -- conditional writes ------------------------------------------------------------------------


async def test_conditional_requests_on_the_wire(moto_s3: MotoS3) -> None:
    """put_if_absent sends If-None-Match: *, put_if_version If-Match: <etag>."""
    storage = moto_s3.storage()
    sent: list[dict[str, str]] = []
    client = await storage._client_handle(storage._loop_state())

    def record(request, **_):
        headers = {k: v for k, v in request.headers.items() if k.startswith("If-")}
        sent.append({k: v.decode() if isinstance(v, bytes) else v for k, v in headers.items()})

    client.client.meta.events.register("before-send.s3.PutObject", record)
    version = await storage.put_if_absent("repo", b"1")
    await storage.put_if_version("repo", b"2", version)
    await storage.put("chunks/x", b"3")
    assert sent == [{"If-None-Match": "*"}, {"If-Match": version}, {}]
    # the version token is the ETag S3 reports
    head = moto_s3.client().head_object(Bucket="icechunk-test", Key=f"{storage.prefix}/repo")
    assert (await storage.get_with_version("repo"))[1] == head["ETag"]
    await storage.close()


async def test_concurrent_writers_with_separate_clients(moto_s3: MotoS3) -> None:
    """4 threads, each with its own storage object and event loop, CAS-increment one key."""
    prefix = moto_s3.storage().prefix
    asyncio_storage = moto_s3.storage(prefix)
    await asyncio_storage.put_if_absent("counter", b"0")
    retries: list[int] = []
    errors: list[str] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        async def run() -> int:
            storage = moto_s3.storage(prefix)
            conflicts = 0
            barrier.wait(30)
            for _ in range(10):
                while True:
                    data, version = await storage.get_with_version("counter")
                    try:
                        await storage.put_if_version("counter", b"%d" % (int(data) + 1), version)
                        break
                    except PreconditionFailedError:
                        conflicts += 1
            await storage.close()
            return conflicts

        try:
            retries.append(asyncio.run(run()))
        except Exception:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert await asyncio_storage.get("counter") == b"40"
    await asyncio_storage.close()


async def test_lost_reply_of_put_if_absent_is_success(moto_s3: MotoS3) -> None:
    storage = _fast_retries(moto_s3.storage())
    seen = _drop_replies(storage, count=1, perform=True)
    version = await storage.put_if_absent("repo", b"mine")
    assert len(seen) == 1  # the reply of the one request that was sent got lost
    assert await storage.get_with_version("repo") == (b"mine", version)
    # a genuine conflict is still a conflict
    with pytest.raises(PreconditionFailedError):
        await storage.put_if_absent("repo", b"other")
    await storage.close()


async def test_lost_reply_of_put_if_version_is_success(moto_s3: MotoS3) -> None:
    storage = _fast_retries(moto_s3.storage())
    v1 = await storage.put_if_absent("repo", b"one")
    seen = _drop_replies(storage, count=1, perform=True)
    v2 = await storage.put_if_version("repo", b"two", v1)
    assert seen == [{"key": "repo", "if_match": v1, "if_absent": False}]
    assert v2 != v1 and await storage.get_with_version("repo") == (b"two", v2)
    with pytest.raises(PreconditionFailedError):  # v1 is stale now
        await storage.put_if_version("repo", b"three", v1)
    await storage.close()


async def test_lost_request_is_retried(moto_s3: MotoS3) -> None:
    """The connection breaks before the request arrives: the write is sent again."""
    storage = _fast_retries(moto_s3.storage())
    first = _drop_replies(storage, count=1, perform=False)
    v1 = await storage.put_if_absent("repo", b"one")
    second = _drop_replies(storage, count=1, perform=False)
    v2 = await storage.put_if_version("repo", b"two", v1)
    assert [s["if_absent"] for s in first + second] == [True, False]
    assert await storage.get_with_version("repo") == (b"two", v2)
    await storage.close()


async def test_lost_reply_then_precondition_failure_is_success(moto_s3: MotoS3) -> None:
    """Our first try landed but we could not tell; the retry gets 412 against our own write."""
    storage = _fast_retries(moto_s3.storage())
    v1 = await storage.put_if_absent("repo", b"one")
    real_current = storage._current
    calls = {"n": 0}

    async def current_hides_first_landing(key):
        calls["n"] += 1
        if calls["n"] == 1:  # the read-back races ahead of the (delayed) write
            return (b"one", v1)
        return await real_current(key)

    storage._current = current_hides_first_landing  # type: ignore[method-assign]
    _drop_replies(storage, count=1, perform=True)
    v2 = await storage.put_if_version("repo", b"two", v1)
    assert await storage.get_with_version("repo") == (b"two", v2)
    await storage.close()


async def test_lost_reply_and_someone_else_won_is_conflict(moto_s3: MotoS3) -> None:
    storage = _fast_retries(moto_s3.storage())
    other = moto_s3.storage(storage.prefix)
    v1 = await storage.put_if_absent("repo", b"one")
    real = storage._write

    async def write(client, key, data, *, if_match=None, if_absent=False):
        await other.put_if_version("repo", b"theirs", v1)  # they win the race
        storage._write = real  # type: ignore[method-assign]
        raise _lost_connection()

    storage._write = write  # type: ignore[method-assign]
    with pytest.raises(PreconditionFailedError):
        await storage.put_if_version("repo", b"mine", v1)
    assert await storage.get("repo") == b"theirs"
    await storage.close()
    await other.close()


def test_commit_with_lost_reply_lands_once(moto_s3: MotoS3) -> None:
    """The engine's swap of ``repo`` loses its reply: the commit succeeds, exactly once."""
    storage = _fast_retries(moto_s3.storage())
    repo = ic.Repository.create(storage)
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    root.create_array("a", shape=(4,), chunks=(2,), dtype="int32")[:] = np.arange(4)
    seen = _drop_replies(storage, count=1, perform=True)
    snapshot = session.commit("first")
    assert [s["key"] for s in seen] == ["repo"]
    history = list(repo.ancestry(branch="main"))
    assert [h.message for h in history] == ["first", "Repository initialized"]
    assert history[0].id == snapshot
    reopened = ic.Repository.open(moto_s3.storage(storage.prefix))
    store = reopened.readonly_session(branch="main").store
    np.testing.assert_array_equal(zarr.open_array(store, path="a", mode="r")[:], np.arange(4))


# -- settings, credentials, pickling -------------------------------------------------------


async def test_unsafe_mode_warns_once_and_writes_plainly(moto_s3: MotoS3) -> None:
    storage = moto_s3.storage().with_settings(
        StorageSettings(unsafe_use_conditional_create=False, unsafe_use_conditional_update=False)
    )
    assert storage.supports_conditional_writes is False
    assert moto_s3.storage().supports_conditional_writes is True
    calls: list[tuple[Any, bool]] = []
    real = storage._write

    async def write(client, key, data, *, if_match=None, if_absent=False):
        calls.append((if_match, if_absent))
        return await real(client, key, data, if_match=if_match, if_absent=if_absent)

    storage._write = write  # type: ignore[method-assign]
    with pytest.warns(UnsafeStorageWarning, match="NOT atomic"):
        v1 = await storage.put_if_absent("repo", b"one")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only once per storage
        v2 = await storage.put_if_version("repo", b"two", v1)
        # the best-effort checks still catch non-racing mistakes
        with pytest.raises(PreconditionFailedError):
            await storage.put_if_absent("repo", b"x")
        with pytest.raises(PreconditionFailedError):
            await storage.put_if_version("repo", b"x", v1)
    assert calls == [(None, False), (None, False)]  # no If-* headers were sent
    assert await storage.get_with_version("repo") == (b"two", v2)
    await storage.close()


async def test_pickle_round_trip(moto_s3: MotoS3) -> None:
    storage = moto_s3.storage()
    await storage.put("chunks/a", b"payload")  # a live client exists now
    clone = pickle.loads(pickle.dumps(storage))
    assert clone == storage and hash(clone) == hash(storage)
    assert clone is not storage and clone._states == {}
    assert await clone.get("chunks/a") == b"payload"
    await clone.put("chunks/b", b"more")
    assert await storage.get("chunks/b") == b"more"
    # a repository (and its sessions) pickle with it
    repo = ic.Repository.create(moto_s3.storage())
    again = pickle.loads(pickle.dumps(repo))
    assert [s.message for s in again.ancestry(branch="main")] == ["Repository initialized"]
    await storage.close()
    await clone.close()


def test_usable_from_several_event_loops(moto_s3: MotoS3) -> None:
    """One storage object, used from zarr's loop, fresh asyncio.run loops and threads."""
    storage = moto_s3.storage()
    repo = ic.Repository.create(storage)  # zarr's background loop
    asyncio.run(storage.put("chunks/x", b"1"))
    assert asyncio.run(storage.get("chunks/x")) == b"1"  # a new loop, a new client
    result: list[bytes] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(storage.get("chunks/x"))))
    thread.start()
    thread.join(30)
    assert result == [b"1"]
    assert [s.message for s in repo.ancestry(branch="main")] == ["Repository initialized"]
    # states of closed loops are dropped when another loop turns up (at most one lingers)
    assert sum(loop.is_closed() for loop in storage._states) <= 1


_PROVIDED: list[datetime] = []


def _short_lived_credentials() -> S3StaticCredentials:
    """Credentials that need refreshing 0.3 s after they were handed out (30 s margin)."""
    expires = datetime.now(UTC) + timedelta(seconds=30.3)
    _PROVIDED.append(expires)
    return S3StaticCredentials(S3_ACCESS_KEY, S3_SECRET_KEY, expires_after=expires)


async def test_refreshable_credentials(moto_s3: MotoS3) -> None:
    _PROVIDED.clear()
    kwargs = moto_s3.storage_kwargs()
    del kwargs["access_key_id"], kwargs["secret_access_key"]
    storage = s3_storage(
        **kwargs, get_credentials=_short_lived_credentials, scatter_initial_credentials=True
    )
    assert isinstance(storage._credentials, S3Credentials.Refreshable)
    assert len(_PROVIDED) == 1  # scattered: called once at construction
    await storage.put("chunks/a", b"1")
    assert await storage.get("chunks/a") == b"1"
    assert len(_PROVIDED) == 1
    await asyncio.sleep(0.4)
    assert await storage.get("chunks/a") == b"1"
    assert len(_PROVIDED) == 2  # expired: the function was called again
    clone = pickle.loads(pickle.dumps(storage))  # the function travels pickled
    assert await clone.get("chunks/a") == b"1"
    await storage.close()
    await clone.close()


def test_factory_arguments_and_errors(moto_s3: MotoS3) -> None:
    with pytest.raises(ValueError, match="allow_http"):
        s3_storage(bucket="b", prefix="p", endpoint_url="http://127.0.0.1:1", from_env=True)
    with pytest.raises(ValueError, match="Conflicting"):
        s3_storage(bucket="b", prefix="p", access_key_id="x", anonymous=True)
    storage = s3_storage(bucket="b", prefix="/a/b/", anonymous=True, region="eu-west-1")
    assert storage.prefix == "a/b" and isinstance(storage._credentials, S3Credentials.Anonymous)
    assert "s3://b/a/b" in repr(storage)
    r2 = ic.storage.r2_storage(bucket="b", prefix="p", account_id="acct", anonymous=True)
    assert r2.options.endpoint_url == "https://acct.r2.cloudflarestorage.com"
    tigris = ic.storage.tigris_storage(
        bucket="b", prefix="p", region="iad", use_weak_consistency=True, anonymous=True
    )
    with pytest.raises(ReadOnlyError):
        asyncio.run(tigris.put("k", b""))


async def test_missing_bucket_is_a_clear_error(moto_s3: MotoS3) -> None:
    kwargs = moto_s3.storage_kwargs()
    kwargs["bucket"] = "no-such-bucket"
    storage = _fast_retries(s3_storage(**kwargs))
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        await storage.put("chunks/a", b"1")
    await storage.close()


async def test_multipart_upload_and_split_reads(moto_s3: MotoS3) -> None:
    from icechunk.storage import ByteRange, StorageConcurrencySettings

    storage = moto_s3.storage().with_settings(
        StorageSettings(
            minimum_size_for_multipart_upload=6 * 1024 * 1024,
            concurrency=StorageConcurrencySettings(ideal_concurrent_request_size=1024 * 1024),
        )
    )
    data = np.random.default_rng(0).integers(0, 256, 11 * 1024 * 1024, dtype=np.uint8).tobytes()
    await storage.put("chunks/big", data)
    assert await storage.get("chunks/big") == data
    assert (
        await storage.get("chunks/big", ByteRange(100, 5 * 1024 * 1024 + 7))
        == data[100 : 5 * 1024 * 1024 + 7]
    )
    await storage.close()


# -- engine on S3 across processes ------------------------------------------------------------


@pytest.mark.slow
def test_concurrent_commits_processes_s3(moto_s3: MotoS3) -> None:
    """4 spawned processes x 10 commits each to ``main`` on S3: none lost, none duplicated.

    Each process gets the storage pickled (endpoint and static credentials) and opens
    its own connections.
    """
    n_workers, n_commits = 4, 10
    storage = s3_storage(**moto_s3.storage_kwargs())
    setup_repository(storage, n_workers, n_commits)
    outcomes = run_commit_processes(storage, n_workers, n_commits)
    check_outcome(ic.Repository.open(storage), outcomes, n_workers, n_commits)
