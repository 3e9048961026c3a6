"""Conformance of ``icechunk.IcechunkStore`` with zarr's generic store test-suites.

Two parts:

* ``TestIcechunkStoreConformance`` subclasses :class:`zarr.testing.store.StoreTests`,
  the suite every zarr v3 store is expected to pass.  The store under test is the
  ``store`` of a writable session on branch ``main`` of a fresh in-memory repository.
* ``test_zarr_hierarchy_state_machine`` (and a variant that commits between steps)
  drives zarr's :class:`~zarr.testing.stateful.ZarrHierarchyStateMachine` against such a
  store, comparing every observable against a ``zarr.storage.MemoryStore`` model.

Why so many of the generic tests are overridden
-----------------------------------------------
``StoreTests`` assumes a *key/value* store that accepts any key (``"foo"``,
``"foo/bar"``, ``"c/0"`` on an empty store, zero-byte values...).  An Icechunk store is
a zarr *hierarchy*: the only keys it accepts are ``<node>/zarr.json`` (whose value must
be valid zarr v3 metadata) and ``<array>/c/<i>/<j>/...`` chunk keys of an array that
exists, whose coordinates lie inside the array's chunk grid.  Everything else is
rejected with ``icechunk.InvalidInputError`` (or a "node not found" error).  So every
generic test that writes raw keys is overridden here with the *same intent*, after first
creating the group/array nodes the keys belong to (see :func:`make_nodes`).  Each
override says in a comment what was changed and why.  Nothing is skipped outright.

There is also no way to "bypass the store" in the ``get``/``set`` helpers the way the
suite intends (for a ``MemoryStore`` it pokes the backing dict): a session's uncommitted
changes live only in the session and are only reachable through its store.  The helpers
therefore go through the public async store API.
"""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, note, settings
from hypothesis.stateful import precondition, rule, run_state_machine_as_test
from zarr.abc.store import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
    SupportsSyncStore,
    _store_supports_sync_io,
)
from zarr.core.buffer import Buffer, cpu, default_buffer_prototype
from zarr.core.sync import SyncError, _collect_aiterator, sync
from zarr.testing.stateful import ZarrHierarchyStateMachine
from zarr.testing.store import StoreTests
from zarr.testing.utils import assert_bytes_equal

import icechunk as ic

# zarr's array strategies draw data types without a stable v3 spec; that is not our concern.
pytestmark = pytest.mark.filterwarnings(
    "ignore::zarr.core.dtype.common.UnstableSpecificationWarning"
)

# A chunk payload used throughout.  Icechunk refuses zero-length chunks (no valid chunk
# ever encodes to zero bytes), so the suite's ``b""`` payloads are replaced by this one.
CHUNK = b"\x01\x02\x03\x04"


# ----------------------------------------------------------------------------- helpers


def group_metadata(attributes: dict[str, Any] | None = None) -> bytes:
    """A valid zarr v3 group ``zarr.json`` document."""
    doc = {"zarr_format": 3, "node_type": "group", "attributes": attributes or {}}
    return json.dumps(doc).encode()


def array_metadata(shape: Sequence[int], chunks: Sequence[int]) -> bytes:
    """A valid zarr v3 ``uint8`` array ``zarr.json`` with ``/``-separated chunk keys."""
    doc = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(shape),
        "data_type": "uint8",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [{"name": "bytes"}],
        "attributes": {},
    }
    return json.dumps(doc).encode()


def _split_chunk_key(key: str) -> tuple[str, int] | None:
    """``"a/b/c/1/2"`` -> ``("a/b", 2)``; ``"c/0"`` -> ``("", 1)``; metadata keys -> None."""
    parts = key.split("/")
    if parts[-1] == "zarr.json":
        return None
    idx = len(parts) - 1 - parts[::-1].index("c")  # the last "c" component
    return "/".join(parts[:idx]), len(parts) - idx - 1


def _ancestors(path: str) -> list[str]:
    """``"a/b/c"`` -> ``["", "a", "a/b"]``; ``""`` -> ``[]``."""
    if path == "":
        return []
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts))]


def _meta_key(path: str) -> str:
    return f"{path}/zarr.json" if path else "zarr.json"


async def make_nodes(store: ic.IcechunkStore, keys: Iterable[str]) -> dict[str, bytes]:
    """Create the nodes that make ``keys`` legal Icechunk keys; return what was written.

    * ``X/c/i/j/...`` -> an array at ``X`` with one dimension per coordinate, shape 16
      and chunk size 1 along each (so every coordinate < 16 is inside the grid);
    * ``X/zarr.json`` (not already an array) -> a group at ``X``;
    * every ancestor of those nodes (including the root, unless the root is itself an
      array) -> a group.

    Chunks themselves are *not* written.  Returns ``{metadata key: metadata bytes}``.
    """
    arrays: dict[str, int] = {}
    groups: set[str] = set()
    for key in keys:
        split = _split_chunk_key(key)
        if split is None:
            path = key.removesuffix("zarr.json").rstrip("/")
            groups.add(path)
        else:
            path, ndim = split
            arrays[path] = ndim
        groups.update(_ancestors(path))
    groups -= set(arrays)
    written: dict[str, bytes] = {}
    for path in sorted(groups, key=lambda p: (p.count("/"), p)):
        written[_meta_key(path)] = group_metadata()
    for path, ndim in sorted(arrays.items()):
        written[_meta_key(path)] = array_metadata((16,) * ndim, (1,) * ndim)
    for key, value in written.items():
        await store.set(key, cpu.Buffer.from_bytes(value))
    return written


def fresh_storage() -> ic.Storage:
    storage = ic.in_memory_storage()
    ic.Repository.create(storage)
    return storage


def session_store(storage: ic.Storage, *, read_only: bool = False) -> ic.IcechunkStore:
    """The store of a new session on ``main``: writable, or read-only at the tip."""
    repo = ic.Repository.open(storage)
    if read_only:
        return repo.readonly_session(branch="main").store
    return repo.writable_session("main").store


async def commit_sample(storage: ic.Storage) -> dict[str, bytes]:
    """Commit a small hierarchy (root group, array ``a`` with chunk ``a/c/0``) on main."""
    repo = ic.Repository.open(storage)
    session = repo.writable_session("main")
    written = await make_nodes(session.store, ["a/c/0"])
    await session.store.set("a/c/0", cpu.Buffer.from_bytes(CHUNK))
    written["a/c/0"] = CHUNK
    session.commit("sample data")
    return written


def _expected_slice(data: bytes, byte_range: ByteRequest | None) -> bytes:
    """An oracle for byte-range reads that is independent of the store and of zarr."""
    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset :]
    if isinstance(byte_range, SuffixByteRequest):
        return data[len(data) - byte_range.suffix :]
    raise AssertionError(byte_range)


# ------------------------------------------------------------------------- StoreTests


class TestIcechunkStoreConformance(StoreTests[ic.IcechunkStore, cpu.Buffer]):
    store_cls = ic.IcechunkStore
    buffer_cls = cpu.Buffer

    # The suite wants ``set``/``get`` to bypass the store; for Icechunk the session's
    # pending changes are only reachable through the store, so these use its public API.
    async def set(self, store: ic.IcechunkStore, key: str, value: Buffer) -> None:
        await store.set(key, value)

    async def get(self, store: ic.IcechunkStore, key: str) -> Buffer:
        return await store.get(key, prototype=default_buffer_prototype())

    # ----------------------------------------------------------------- fixtures
    # ``StoreTests`` builds stores with ``store_cls(**store_kwargs)`` /
    # ``store_cls.open(**open_kwargs)``.  IcechunkStore is never constructed directly:
    # it is obtained from a session.  So ``store_kwargs`` describes *where* the store
    # lives (the repository storage and the read-only flag) and the fixtures below turn
    # that into ``repo.writable_session("main").store`` or a read-only session's store.

    @pytest.fixture
    def store_kwargs(self) -> dict[str, Any]:
        return {"storage": fresh_storage(), "read_only": False}

    @pytest.fixture
    async def store(self, open_kwargs: dict[str, Any]) -> ic.IcechunkStore:
        return session_store(open_kwargs["storage"], read_only=open_kwargs["read_only"])

    @pytest.fixture
    async def store_not_open(self, store_kwargs: dict[str, Any]) -> ic.IcechunkStore:
        # A session store comes out open; ``close()`` (zarr's public API) un-opens it,
        # and the ``*_not_open`` tests check it re-opens itself on first use.
        store = session_store(store_kwargs["storage"], read_only=store_kwargs["read_only"])
        store.close()
        return store

    # ------------------------------------------------- abstract tests of the suite

    def test_store_repr(self, store: ic.IcechunkStore) -> None:
        text = repr(store)
        assert isinstance(text, str)
        assert "IcechunkStore" in text

    def test_store_supports_writes(self, store: ic.IcechunkStore) -> None:
        assert store.supports_writes

    def test_store_supports_listing(self, store: ic.IcechunkStore) -> None:
        assert store.supports_listing

    def test_store_supports_deletes(self, store: ic.IcechunkStore) -> None:
        assert store.supports_deletes

    # ------------------------------------------- construction / identity overrides

    # Override: the suite compares with a second store built from the same kwargs via
    # the constructor.  Icechunk stores are bound to a *session*: two stores of the same
    # session are equal, stores of two different sessions (even on the same snapshot)
    # are not, because each session has its own uncommitted changes.
    def test_store_eq(self, store: ic.IcechunkStore, store_kwargs: dict[str, Any]) -> None:
        assert store == store  # noqa: PLR0124 -- self-equality is the property under test
        repo = ic.Repository.open(store_kwargs["storage"])
        session = repo.writable_session("main")
        assert session.store == session.store
        assert session.store != store
        assert store != "not a store"

    # Override: Icechunk refuses to pickle the store of a writable session (writes
    # from several processes must be coordinated with ``Session.fork``), raising
    # ValueError.  Read-only stores do pickle, and the copy reads the same data.  The
    # round-trip uses a local-filesystem repository: an in-memory repository's objects
    # live in the memory of the storage instance and are not part of the pickle.
    async def test_serializable_store(self, store: ic.IcechunkStore, tmp_path: Path) -> None:
        with pytest.raises(ValueError):
            pickle.dumps(store)

        storage = ic.local_filesystem_storage(str(tmp_path / "repo"))
        ic.Repository.create(storage)
        written = await commit_sample(storage)
        reader = session_store(storage, read_only=True)
        copy: ic.IcechunkStore = pickle.loads(pickle.dumps(reader))
        assert isinstance(copy, ic.IcechunkStore)
        assert copy.read_only
        assert sorted(await _collect_aiterator(copy.list())) == sorted(written)
        for key, value in written.items():
            observed = await copy.get(key, prototype=default_buffer_prototype())
            assert observed is not None
            assert observed.to_bytes() == value
        with pytest.raises(ic.ReadOnlyError):
            await copy.set("a/c/1", self.buffer_cls.from_bytes(CHUNK))

    # Override: ``store_cls.open(read_only=...)`` does not exist for Icechunk; the
    # read-only flag comes from the kind of session the store belongs to.
    @pytest.mark.parametrize("read_only", [True, False])
    async def test_store_open_read_only(self, open_kwargs: dict[str, Any], read_only: bool) -> None:
        store = session_store(open_kwargs["storage"], read_only=read_only)
        assert store._is_open
        assert store.read_only == read_only

    # Override: same as the suite but the store comes from a session, not ``open``.
    async def test_store_context_manager(self, open_kwargs: dict[str, Any]) -> None:
        with session_store(open_kwargs["storage"]) as store:
            assert store._is_open
            with pytest.raises(ValueError, match="store is already open"):
                await store._open()
        assert not store._is_open

    # Override: the store of a read-only session rejects every mutation with
    # ``icechunk.ReadOnlyError`` (not zarr's generic message), and the writes are
    # attempted on keys that are valid and exist, so only read-only-ness can fail them.
    async def test_read_only_store_raises(self, open_kwargs: dict[str, Any]) -> None:
        written = await commit_sample(open_kwargs["storage"])
        store = session_store(open_kwargs["storage"], read_only=True)
        assert store.read_only

        with pytest.raises(ic.ReadOnlyError):
            await store.set("a/c/1", self.buffer_cls.from_bytes(CHUNK))
        with pytest.raises(ic.ReadOnlyError):
            await store.set("b/zarr.json", self.buffer_cls.from_bytes(group_metadata()))
        with pytest.raises(ic.ReadOnlyError):
            await store.set_if_not_exists("a/c/1", self.buffer_cls.from_bytes(CHUNK))
        with pytest.raises(ic.ReadOnlyError):
            await store.delete("a/c/0")
        with pytest.raises(ic.ReadOnlyError):
            await store.delete("a/zarr.json")
        with pytest.raises(ic.ReadOnlyError):
            await store.delete_dir("a")
        with pytest.raises(ic.ReadOnlyError):
            await store.clear()

        # nothing changed
        assert sorted(await _collect_aiterator(store.list())) == sorted(written)

    # Override: for Icechunk, whether writes are possible is decided by the *session*
    # (a read-only session can never write, whatever the store flag says), so the
    # suite's "a read-only store turned writable can write" does not apply.  What holds:
    # ``with_read_only`` returns an un-opened IcechunkStore carrying the requested flag
    # and leaves the original store untouched, and it can never grant write access to a
    # read-only session.
    async def test_with_read_only_store(self, open_kwargs: dict[str, Any]) -> None:
        await commit_sample(open_kwargs["storage"])

        writable = session_store(open_kwargs["storage"])
        flagged = writable.with_read_only(read_only=True)
        assert isinstance(flagged, ic.IcechunkStore)
        assert flagged.read_only
        assert not flagged._is_open
        assert not writable.read_only
        await writable.set("a/c/1", self.buffer_cls.from_bytes(CHUNK))  # still writable

        reader = session_store(open_kwargs["storage"], read_only=True)
        unflagged = reader.with_read_only(read_only=False)
        assert isinstance(unflagged, ic.IcechunkStore)
        # Deliberately stricter than the official store, which reports the bare flag:
        # a read-only session's store says so, whatever with_read_only was asked.
        ours = hasattr(ic, "CorruptObjectError")
        assert unflagged.read_only is ours
        assert not unflagged._is_open
        assert reader.read_only
        with pytest.raises(ic.ReadOnlyError):
            await unflagged.set("a/c/1", self.buffer_cls.from_bytes(CHUNK))
        with pytest.raises(ic.ReadOnlyError):
            await unflagged.delete("a/c/0")

    # ---------------------------------------------------------------- reads

    # Override: keys adapted to Icechunk.  ``"foo/c/0.0"`` (dot-separated) and
    # ``"foo/0/0"`` (zarr v2 style) are not keys Icechunk accepts; they become chunk
    # keys of a 2-d / 3-d array.  The nodes are created first.  The zero-length payload
    # is dropped (Icechunk rejects empty chunks, see test_set_zero_length_chunk_rejected)
    # and replaced by reading a ``zarr.json`` document in test_get_metadata.
    @pytest.mark.parametrize("key", ["c/0", "foo/c/0/0", "foo/bar/c/1/2/3"])
    @pytest.mark.parametrize(
        "byte_range",
        [None, RangeByteRequest(1, 4), OffsetByteRequest(1), SuffixByteRequest(1)],
    )
    async def test_get(  # type: ignore[override]
        self, store: ic.IcechunkStore, key: str, byte_range: ByteRequest | None
    ) -> None:
        await make_nodes(store, [key])
        data_buf = self.buffer_cls.from_bytes(CHUNK)
        await self.set(store, key, data_buf)
        observed = await store.get(key, prototype=default_buffer_prototype(), byte_range=byte_range)
        assert observed is not None
        assert observed.to_bytes() == _expected_slice(CHUNK, byte_range)

    # No SuffixByteRequest here: the official 2.3.0 store answers a suffix request on a
    # ``zarr.json`` key with everything *but* the last N bytes (chunks are fine), and
    # zarr itself never issues suffix reads of metadata, so that case is left unpinned.
    @pytest.mark.parametrize("path", ["", "foo", "foo/bar"])
    @pytest.mark.parametrize("byte_range", [None, RangeByteRequest(0, 5), OffsetByteRequest(3)])
    async def test_get_metadata(
        self, store: ic.IcechunkStore, path: str, byte_range: ByteRequest | None
    ) -> None:
        """``zarr.json`` documents are returned byte-for-byte, with byte ranges."""
        written = await make_nodes(store, [_meta_key(path)])
        doc = group_metadata({"answer": 42})
        key = _meta_key(path)
        await store.set(key, self.buffer_cls.from_bytes(doc))
        written[key] = doc
        observed = await store.get(key, prototype=default_buffer_prototype(), byte_range=byte_range)
        assert observed is not None
        assert observed.to_bytes() == _expected_slice(doc, byte_range)
        # and the arrays' metadata too
        await make_nodes(store, ["arr/c/0"])
        observed = await store.get("arr/zarr.json", prototype=default_buffer_prototype())
        assert observed is not None
        assert observed.to_bytes() == array_metadata((16,), (1,))

    async def test_get_missing(self, store: ic.IcechunkStore) -> None:
        """Missing metadata, and unwritten in-grid chunks of an array, read as None."""
        await make_nodes(store, ["a/c/0/0"])
        prototype = default_buffer_prototype()
        assert await store.get("nope/zarr.json", prototype=prototype) is None
        assert await store.get("a/b/zarr.json", prototype=prototype) is None
        assert await store.get("a/c/0/0", prototype=prototype) is None
        assert await store.get("a/c/15/15", prototype=prototype) is None

    # Override: creates the array node before writing its chunk (see test_get).
    async def test_get_not_open(self, store_not_open: ic.IcechunkStore) -> None:
        assert not store_not_open._is_open
        await make_nodes(store_not_open, ["c/0"])
        data_buf = self.buffer_cls.from_bytes(CHUNK)
        await self.set(store_not_open, "c/0", data_buf)
        observed = await store_not_open.get("c/0", prototype=default_buffer_prototype())
        assert_bytes_equal(observed, data_buf)

    # Override: creates the array node before writing its chunk (see test_get).
    async def test_get_raises(self, store: ic.IcechunkStore) -> None:
        await make_nodes(store, ["c/0"])
        await self.set(store, "c/0", self.buffer_cls.from_bytes(CHUNK))
        with pytest.raises((ValueError, TypeError), match=r"Unexpected byte_range, got.*"):
            await store.get("c/0", prototype=default_buffer_prototype(), byte_range=(0, 2))  # type: ignore[arg-type]

    # Override: the suite's keys ``"0"`` .. ``"9"`` are not zarr keys; use the ten
    # chunks ``c/0`` .. ``c/9`` of a 1-d root array plus its ``zarr.json``.
    async def test_get_many(self, store: ic.IcechunkStore) -> None:
        written = await make_nodes(store, ["c/0"])
        expected = dict(written)
        for i in range(10):
            expected[f"c/{i}"] = f"chunk-{i}".encode()
            await self.set(store, f"c/{i}", self.buffer_cls.from_bytes(expected[f"c/{i}"]))
        requests = [(k, default_buffer_prototype(), None) for k in expected]
        observed = await _collect_aiterator(store._get_many(requests))
        assert sorted((k, b.to_bytes()) for k, b in observed) == sorted(expected.items())

    # Override: keys adapted as in test_get; non-empty chunk payloads only; metadata
    # keys are measured too.
    @pytest.mark.parametrize("key", ["c/0", "foo/c/0/0", "foo/bar/c/1/2/3"])
    async def test_getsize(self, store: ic.IcechunkStore, key: str) -> None:  # type: ignore[override]
        written = await make_nodes(store, [key])
        await self.set(store, key, self.buffer_cls.from_bytes(CHUNK))
        assert await store.getsize(key) == len(CHUNK)
        for meta_key, doc in written.items():
            assert await store.getsize(meta_key) == len(doc)

    # Override: an array ``c`` (2-d) with four chunks, and a sibling array ``cc`` that
    # shares the string prefix "c" and must not be counted.  The prefix also covers the
    # array's own ``c/zarr.json``, which the suite (writing bare chunk keys) never had.
    async def test_getsize_prefix(self, store: ic.IcechunkStore) -> None:
        written = await make_nodes(store, ["c/c/0/0", "cc/c/0"])
        keys = ["c/c/0/0", "c/c/0/1", "c/c/1/0", "c/c/1/1"]
        await store._set_many((k, self.buffer_cls.from_bytes(CHUNK)) for k in [*keys, "cc/c/0"])
        expected = len(written["c/zarr.json"]) + len(CHUNK) * len(keys)
        assert await store.getsize_prefix("c") == expected
        assert await store.getsize_prefix("cc") == len(written["cc/zarr.json"]) + len(CHUNK)

    # Override: the suite asks ``getsize("c/1000")`` on an empty store to raise
    # FileNotFoundError.  On Icechunk that key is not even legal there (the root is not
    # an array) and, for an existing array, an unwritten chunk is a fill-value chunk whose
    # reported size is implementation-defined, so only a missing *node* is checked: it
    # raises (icechunk's not-found errors are KeyErrors).
    async def test_getsize_raises(self, store: ic.IcechunkStore) -> None:
        with pytest.raises((FileNotFoundError, KeyError)):
            await store.getsize("nope/zarr.json")
        await make_nodes(store, ["a/zarr.json"])
        with pytest.raises((FileNotFoundError, KeyError)):
            await store.getsize("a/b/zarr.json")

    # ---------------------------------------------------------------- writes

    # Override: keys adapted as in test_get; ``zarr.json`` gets valid group metadata;
    # the empty payload is covered by test_set_zero_length_chunk_rejected.
    @pytest.mark.parametrize("key", ["zarr.json", "c/0", "foo/c/0/0", "foo/bar/c/1/2/3"])
    async def test_set(self, store: ic.IcechunkStore, key: str) -> None:  # type: ignore[override]
        assert not store.read_only
        if key.endswith("zarr.json"):
            data = group_metadata({"k": "v"})
        else:
            await make_nodes(store, [key])
            data = CHUNK
        data_buf = self.buffer_cls.from_bytes(data)
        await store.set(key, data_buf)
        observed = await self.get(store, key)
        assert_bytes_equal(observed, data_buf)
        # overwrite
        if not key.endswith("zarr.json"):
            await store.set(key, self.buffer_cls.from_bytes(b"\x09" * 4))
            observed = await self.get(store, key)
            assert observed.to_bytes() == b"\x09" * 4

    async def test_set_zero_length_chunk_rejected(self, store: ic.IcechunkStore) -> None:
        """No valid chunk encodes to zero bytes; Icechunk refuses to store one."""
        await make_nodes(store, ["c/0"])
        with pytest.raises(ic.InvalidInputError):
            await store.set("c/0", self.buffer_cls.from_bytes(b""))
        assert await store.get("c/0", prototype=default_buffer_prototype()) is None

    @pytest.mark.parametrize("key", ["foo", "foo/bar", "arr/0", "arr/0/0", "arr/c.0", "arr/foo"])
    async def test_set_rejects_non_zarr_keys(self, store: ic.IcechunkStore, key: str) -> None:
        """Keys that are neither ``zarr.json`` nor a ``c/...`` chunk key are refused."""
        await make_nodes(store, ["arr/c/0"])
        with pytest.raises(ic.InvalidInputError):
            await store.set(key, self.buffer_cls.from_bytes(CHUNK))

    async def test_set_rejects_bad_chunks_and_metadata(self, store: ic.IcechunkStore) -> None:
        """Chunks need an existing array and in-grid coordinates; metadata must parse."""
        buf = self.buffer_cls.from_bytes(CHUNK)
        with pytest.raises(ic.IcechunkError):  # no array at the root
            await store.set("c/0", buf)
        with pytest.raises(ic.IcechunkError):  # no array at /missing
            await store.set("missing/c/0", buf)
        await make_nodes(store, ["arr/c/0", "grp/zarr.json"])
        with pytest.raises(ic.IcechunkError):  # /grp is a group, not an array
            await store.set("grp/c/0", buf)
        with pytest.raises(ic.IcechunkError):  # the array has 16 chunks along its axis
            await store.set("arr/c/16", buf)
        with pytest.raises(ic.IcechunkError):  # not JSON
            await store.set("x/zarr.json", self.buffer_cls.from_bytes(b"bar"))
        assert sorted(await _collect_aiterator(store.list())) == [
            "arr/zarr.json",
            "grp/zarr.json",
            "zarr.json",
        ]

    async def test_set_invalid_buffer(self, store: ic.IcechunkStore) -> None:
        """``set`` with something that is not a Buffer is a TypeError/ValueError."""
        await make_nodes(store, ["c/0"])
        with pytest.raises((TypeError, ValueError)):
            await store.set("c/0", 0)  # type: ignore[arg-type]

    # Override: creates the array node before writing its chunk (see test_get).
    async def test_set_not_open(self, store_not_open: ic.IcechunkStore) -> None:
        assert not store_not_open._is_open
        await make_nodes(store_not_open, ["c/0"])
        data_buf = self.buffer_cls.from_bytes(CHUNK)
        await store_not_open.set("c/0", data_buf)
        observed = await self.get(store_not_open, "c/0")
        assert_bytes_equal(observed, data_buf)

    # Override: ``_set_many`` writes concurrently, so a chunk cannot go in the same
    # batch as the metadata of its own array.  The batch holds the metadata of new
    # nodes plus chunks of arrays created beforehand.
    async def test_set_many(self, store: ic.IcechunkStore) -> None:
        await make_nodes(store, ["a/c/0", "b/c/0/0"])
        store_dict = {
            "g/zarr.json": group_metadata({"name": "g"}),
            "h/zarr.json": array_metadata((3,), (3,)),
            "a/c/0": b"a0",
            "a/c/5": b"a5",
            "b/c/0/0": b"b00",
            "b/c/15/15": b"b1515",
        }
        await store._set_many((k, self.buffer_cls.from_bytes(v)) for k, v in store_dict.items())
        for k, v in store_dict.items():
            assert (await self.get(store, k)).to_bytes() == v

    # Override: keys adapted (``c/0/0``.. of a 2-d root array become chunks of arrays
    # ``a`` and ``b``; ``zarr.json`` is the root group's real metadata).  Missing keys are
    # not requested.
    @pytest.mark.parametrize(
        "key_ranges",
        [
            [],
            [("zarr.json", RangeByteRequest(0, 2))],
            [("a/c/0", RangeByteRequest(0, 2)), ("zarr.json", None)],
            [
                ("b/c/0/0", RangeByteRequest(0, 2)),
                ("b/c/0/1", SuffixByteRequest(2)),
                ("b/c/0/2", OffsetByteRequest(2)),
                ("b/c/0/0", None),
                ("a/zarr.json", OffsetByteRequest(10)),
            ],
        ],
    )
    async def test_get_partial_values(  # type: ignore[override]
        self, store: ic.IcechunkStore, key_ranges: list[tuple[str, ByteRequest | None]]
    ) -> None:
        contents = await make_nodes(store, ["a/c/0", "b/c/0/0", "zarr.json"])
        for key, _ in key_ranges:
            if key not in contents:
                contents[key] = f"payload of {key}".encode()
                await self.set(store, key, self.buffer_cls.from_bytes(contents[key]))

        observed = await store.get_partial_values(
            prototype=default_buffer_prototype(), key_ranges=(kr for kr in key_ranges)
        )
        assert len(observed) == len(key_ranges)
        for obs, (key, byte_range) in zip(observed, key_ranges, strict=True):
            assert obs is not None
            assert obs.to_bytes() == _expected_slice(contents[key], byte_range)

    # Override: ``exists("foo")`` is not a legal question for Icechunk; ask about a
    # group's ``zarr.json`` and about chunks of an array instead.
    async def test_exists(self, store: ic.IcechunkStore) -> None:
        assert not await store.exists("foo/zarr.json")
        await store.set("foo/zarr.json", self.buffer_cls.from_bytes(group_metadata()))
        assert await store.exists("foo/zarr.json")

        await make_nodes(store, ["arr/c/0"])
        assert not await store.exists("arr/c/0")
        await store.set("arr/c/0", self.buffer_cls.from_bytes(CHUNK))
        assert await store.exists("arr/c/0")
        assert not await store.exists("arr/c/1")

    # Override: uses valid group metadata instead of b"bar"; also deletes a chunk.
    async def test_delete(self, store: ic.IcechunkStore) -> None:
        await store.set("foo/zarr.json", self.buffer_cls.from_bytes(group_metadata()))
        assert await store.exists("foo/zarr.json")
        await store.delete("foo/zarr.json")
        assert not await store.exists("foo/zarr.json")

        await make_nodes(store, ["arr/c/0"])
        await store.set("arr/c/0", self.buffer_cls.from_bytes(CHUNK))
        await store.set("arr/c/1", self.buffer_cls.from_bytes(CHUNK))
        await store.delete("arr/c/0")
        assert not await store.exists("arr/c/0")
        assert await store.get("arr/c/0", prototype=default_buffer_prototype()) is None
        assert await store.exists("arr/c/1")
        assert await store.exists("arr/zarr.json")

    # Override: ``foo`` is made an array (it has a chunk ``foo/c/0``), the others are
    # groups with valid metadata; otherwise identical to the suite.
    async def test_delete_dir(self, store: ic.IcechunkStore) -> None:
        await make_nodes(store, ["zarr.json", "foo-bar/zarr.json", "foo/c/0"])
        await store.set("foo/c/0", self.buffer_cls.from_bytes(CHUNK))
        await store.delete_dir("foo")
        assert await store.exists("zarr.json")
        assert await store.exists("foo-bar/zarr.json")
        assert not await store.exists("foo/zarr.json")
        assert await store.get("foo/c/0", prototype=default_buffer_prototype()) is None
        assert sorted(await _collect_aiterator(store.list())) == [
            "foo-bar/zarr.json",
            "zarr.json",
        ]

    async def test_delete_dir_chunks(self, store: ic.IcechunkStore) -> None:
        """``delete_dir`` on an array's ``c`` prefix removes its chunks, not the array."""
        await make_nodes(store, ["arr/c/0/0"])
        for key in ["arr/c/0/0", "arr/c/0/1", "arr/c/1/0"]:
            await store.set(key, self.buffer_cls.from_bytes(CHUNK))
        await store.delete_dir("arr/c/0")
        assert sorted(await _collect_aiterator(store.list())) == [
            "arr/c/1/0",
            "arr/zarr.json",
            "zarr.json",
        ]
        await store.delete_dir("arr/c")
        assert sorted(await _collect_aiterator(store.list())) == ["arr/zarr.json", "zarr.json"]

    # Override: ``"nonexistent_key"`` is not a legal key; delete a missing node's
    # metadata and a never-written chunk of an existing array instead.
    async def test_delete_nonexistent_key_does_not_raise(self, store: ic.IcechunkStore) -> None:
        await store.delete("nonexistent/zarr.json")
        await make_nodes(store, ["arr/c/0"])
        await store.delete("arr/c/3")
        await store.delete("arr/c/3")

    # Override: ``foo/bar`` becomes the group ``foo/bar`` (its ``zarr.json``).
    async def test_is_empty(self, store: ic.IcechunkStore) -> None:
        assert await store.is_empty("")
        await make_nodes(store, ["foo/bar/zarr.json"])
        assert not await store.is_empty("")
        assert await store.is_empty("fo")
        assert not await store.is_empty("foo/")
        assert not await store.is_empty("foo")
        assert await store.is_empty("spam/")

    # Override: writes a real hierarchy (the suite's raw ``"key"`` is not legal).
    async def test_clear(self, store: ic.IcechunkStore) -> None:
        await make_nodes(store, ["a/b/c/0"])
        await store.set("a/b/c/0", self.buffer_cls.from_bytes(CHUNK))
        assert not await store.is_empty("")
        await store.clear()
        assert await store.is_empty("")
        assert await _collect_aiterator(store.list()) == ()

    async def test_clear_is_session_local(self, store_kwargs: dict[str, Any]) -> None:
        """``clear`` empties the session, never the committed history."""
        storage = store_kwargs["storage"]
        written = await commit_sample(storage)
        repo = ic.Repository.open(storage)
        before = repo.lookup_branch("main")

        session = repo.writable_session("main")
        await session.store.clear()
        assert await session.store.is_empty("")
        # other sessions still see the committed data
        other = repo.readonly_session(branch="main").store
        assert sorted(await _collect_aiterator(other.list())) == sorted(written)

        session.commit("cleared")
        tip = repo.readonly_session(branch="main").store
        assert await tip.is_empty("")
        old = repo.readonly_session(snapshot_id=before).store
        assert sorted(await _collect_aiterator(old.list())) == sorted(written)

    # ---------------------------------------------------------------- listing

    # Override: ``foo`` is an array (with ten chunks) under a root group, which the
    # listing includes.
    async def test_list(self, store: ic.IcechunkStore) -> None:
        assert await _collect_aiterator(store.list()) == ()
        written = await make_nodes(store, ["foo/c/0"])
        for idx in range(10):
            await store.set(f"foo/c/{idx}", self.buffer_cls.from_bytes(CHUNK))
        expected = sorted([*written, *(f"foo/c/{idx}" for idx in range(10))])
        assert sorted(await _collect_aiterator(store.list())) == expected

    # Override: same keys as the suite, with valid group metadata instead of b"".
    async def test_list_prefix(self, store: ic.IcechunkStore) -> None:
        prefixes = ("", "a/", "a/b/", "a/b/c/")
        store_dict = {p + "zarr.json": group_metadata() for p in prefixes}
        await store._set_many((k, self.buffer_cls.from_bytes(v)) for k, v in store_dict.items())
        for prefix in prefixes:
            observed = sorted(await _collect_aiterator(store.list_prefix(prefix)))
            assert observed == sorted(k for k in store_dict if k.startswith(prefix))

    # Override: ``foo/bar`` and ``foo/baz`` are arrays (under groups ``foo`` and the
    # root, which are listed too); chunks carry a non-empty payload.
    async def test_list_empty_path(self, store: ic.IcechunkStore) -> None:
        written = await make_nodes(store, ["foo/bar/c/1", "foo/baz/c/0"])
        for key in ["foo/bar/c/1", "foo/baz/c/0"]:
            await store.set(key, self.buffer_cls.from_bytes(CHUNK))
        all_keys = sorted([*written, "foo/bar/c/1", "foo/baz/c/0"])

        assert sorted(await _collect_aiterator(store.list())) == all_keys
        assert sorted(await _collect_aiterator(store.list_prefix(""))) == all_keys
        observed = sorted(await _collect_aiterator(store.list_prefix("foo/bar/")))
        assert observed == [k for k in all_keys if k.startswith("foo/bar/")]

    # Override: in the suite ``foo`` has both chunks and children, which no zarr node
    # can.  Here ``foo`` is an array (children ``zarr.json`` and ``c``) and ``g`` a group
    # with an array child and a group child.
    async def test_list_dir(self, store: ic.IcechunkStore) -> None:
        assert await _collect_aiterator(store.list_dir("")) == ()

        await make_nodes(store, ["foo/c/0/0"])
        for key in ["foo/c/0/0", "foo/c/0/1", "foo/c/2/0"]:
            await store.set(key, self.buffer_cls.from_bytes(CHUNK))
        for root in ["foo", "foo/"]:
            assert sorted(await _collect_aiterator(store.list_dir(root))) == ["c", "zarr.json"]
        for root in ["foo/c", "foo/c/"]:
            assert sorted(await _collect_aiterator(store.list_dir(root))) == ["0", "2"]
        assert sorted(await _collect_aiterator(store.list_dir("foo/c/0"))) == ["0", "1"]

        assert await _collect_aiterator(store.list_dir("g")) == ()
        await make_nodes(store, ["g/child1/c/0", "g/child2/zarr.json"])
        for root in ["g", "g/"]:
            observed = sorted(await _collect_aiterator(store.list_dir(root)))
            assert observed == ["child1", "child2", "zarr.json"]
        assert sorted(await _collect_aiterator(store.list_dir(""))) == ["foo", "g", "zarr.json"]

    # Override: ``"k"``/``"k2"`` become chunks of an array; metadata is checked too.
    async def test_set_if_not_exists(self, store: ic.IcechunkStore) -> None:
        written = await make_nodes(store, ["arr/c/0"])
        old = self.buffer_cls.from_bytes(b"0000")
        new = self.buffer_cls.from_bytes(b"1111")
        await self.set(store, "arr/c/0", old)

        await store.set_if_not_exists("arr/c/0", new)  # no error, no change
        assert (await self.get(store, "arr/c/0")).to_bytes() == b"0000"

        await store.set_if_not_exists("arr/c/1", new)
        assert (await self.get(store, "arr/c/1")).to_bytes() == b"1111"

        await store.set_if_not_exists("arr/zarr.json", self.buffer_cls.from_bytes(group_metadata()))
        assert (await self.get(store, "arr/zarr.json")).to_bytes() == written["arr/zarr.json"]

    # -------------------------------------------------- sync protocol (optional)
    # zarr's optional SupportsGetSync/SupportsSetSync/SupportsDeleteSync protocols (which
    # the official 2.3.0 store does not implement; ours runs the async methods on zarr's
    # loop).  The suite's tests are overridden only to use legal keys.

    def test_store_supports_sync_io(self, store: ic.IcechunkStore) -> None:
        assert isinstance(store, SupportsSyncStore)
        assert _store_supports_sync_io(store)

    # The same validation and errors as the async methods.
    async def test_sync_methods_raise_like_async_ones(self, store_kwargs: dict[str, Any]) -> None:
        storage = store_kwargs["storage"]
        await commit_sample(storage)
        store = session_store(storage)
        with pytest.raises(ic.InvalidInputError):
            store.get_sync("a")  # a node path, not a key
        with pytest.raises(ic.InvalidInputError):
            store.set_sync("nope/c/0", self.buffer_cls.from_bytes(CHUNK))  # no such array
        with pytest.raises(TypeError):
            store.set_sync("a/c/1", CHUNK)  # type: ignore[arg-type]
        reader = session_store(storage, read_only=True)
        with pytest.raises(ic.ReadOnlyError):
            reader.set_sync("a/c/1", self.buffer_cls.from_bytes(CHUNK))
        with pytest.raises(ic.ReadOnlyError):
            reader.delete_sync("a/c/0")
        observed = reader.get_sync("a/c/0")
        assert observed is not None
        assert observed.to_bytes() == CHUNK

    def test_sync_methods_refuse_zarr_loop_thread(self, store: ic.IcechunkStore) -> None:
        sync(make_nodes(store, ["s/c/0"]))
        data = self.buffer_cls.from_bytes(CHUNK)

        async def on_zarr_loop() -> list[str]:
            messages = []
            for call in (
                lambda: store.get_sync("s/c/0"),
                lambda: store.set_sync("s/c/0", data),
                lambda: store.delete_sync("s/c/0"),
            ):
                with pytest.raises(SyncError, match="event-loop thread") as info:
                    call()
                messages.append(str(info.value))
            return messages

        messages = sync(on_zarr_loop())
        assert [m.split(" ")[0] for m in messages] == [
            "IcechunkStore.get_sync",
            "IcechunkStore.set_sync",
            "IcechunkStore.delete_sync",
        ]
        assert sync(self.get(store, "s/c/0")) is None  # nothing was written

    # What zarr's FusedCodecPipeline does: the loop awaits worker threads that call the
    # sync methods, here many at once while other tasks keep the loop busy.
    def test_sync_methods_from_worker_threads_while_zarr_loop_busy(
        self, store: ic.IcechunkStore
    ) -> None:
        keys = [f"s/c/{i}" for i in range(12)]
        sync(make_nodes(store, keys))

        def write_then_read(key: str) -> bytes:
            store.set_sync(key, self.buffer_cls.from_bytes(key.encode()))
            observed = store.get_sync(key, byte_range=OffsetByteRequest(2))
            assert observed is not None
            return observed.to_bytes()

        async def busy_loop() -> list[bytes]:
            busy = [asyncio.create_task(asyncio.sleep(0.05 * i)) for i in range(20)]
            got = await asyncio.gather(*(asyncio.to_thread(write_then_read, k) for k in keys))
            await asyncio.gather(*busy)
            await asyncio.to_thread(store.delete_sync, keys[0])
            return got

        got = sync(asyncio.wait_for(busy_loop(), timeout=60))
        assert got == [key.encode()[2:] for key in keys]
        assert sync(self.get(store, keys[0])) is None

    def test_get_sync(self, store: ic.IcechunkStore) -> None:
        getter = self._require_get_sync(store)
        sync(make_nodes(store, ["s/c/0"]))
        sync(self.set(store, "s/c/0", self.buffer_cls.from_bytes(CHUNK)))
        result = getter.get_sync("s/c/0")
        assert result is not None
        assert result.to_bytes() == CHUNK

    def test_get_sync_missing(self, store: ic.IcechunkStore) -> None:
        getter = self._require_get_sync(store)
        sync(make_nodes(store, ["s/c/0"]))
        assert getter.get_sync("s/c/1") is None
        assert getter.get_sync("nonexistent/zarr.json") is None

    def test_set_sync(self, store: ic.IcechunkStore) -> None:
        setter = self._require_set_sync(store)
        sync(make_nodes(store, ["s/c/0"]))
        setter.set_sync("s/c/0", self.buffer_cls.from_bytes(CHUNK))
        assert sync(self.get(store, "s/c/0")).to_bytes() == CHUNK

    def test_delete_sync(self, store: ic.IcechunkStore) -> None:
        setter = self._require_set_sync(store)
        deleter = self._require_delete_sync(store)
        getter = self._require_get_sync(store)
        sync(make_nodes(store, ["s/c/0"]))
        setter.set_sync("s/c/0", self.buffer_cls.from_bytes(CHUNK))
        deleter.delete_sync("s/c/0")
        assert getter.get_sync("s/c/0") is None

    def test_delete_sync_missing(self, store: ic.IcechunkStore) -> None:
        deleter = self._require_delete_sync(store)
        sync(make_nodes(store, ["s/c/0"]))
        deleter.delete_sync("s/c/3")  # should not raise

    @pytest.mark.parametrize("direction", ["set_async_get_sync", "set_sync_get_async"])
    async def test_sync_async_set_get_parity(self, store: ic.IcechunkStore, direction: str) -> None:
        setter = self._require_set_sync(store)
        getter = self._require_get_sync(store)
        await make_nodes(store, ["s/c/0"])
        data_buf = self.buffer_cls.from_bytes(CHUNK)
        if direction == "set_async_get_sync":
            await store.set("s/c/0", data_buf)
            result = getter.get_sync("s/c/0")
        else:
            setter.set_sync("s/c/0", data_buf)
            result = await store.get("s/c/0", prototype=default_buffer_prototype())
        assert result is not None
        assert_bytes_equal(result, data_buf)

    async def test_delete_sync_visible_to_async_get(self, store: ic.IcechunkStore) -> None:
        deleter = self._require_delete_sync(store)
        await make_nodes(store, ["s/c/0"])
        await store.set("s/c/0", self.buffer_cls.from_bytes(CHUNK))
        deleter.delete_sync("s/c/0")
        assert await store.get("s/c/0", prototype=default_buffer_prototype()) is None

    # Override: legal key; the "range past EOF" case is dropped because Icechunk
    # reports an out-of-bounds range as an error rather than truncating it.
    @pytest.mark.parametrize(
        "byte_range",
        [None, RangeByteRequest(1, 4), OffsetByteRequest(1), SuffixByteRequest(1)],
        ids=["none", "range", "offset", "suffix"],
    )
    async def test_get_sync_byte_range_parity(  # type: ignore[override]
        self, store: ic.IcechunkStore, byte_range: ByteRequest | None
    ) -> None:
        getter = self._require_get_sync(store)
        await make_nodes(store, ["s/c/0"])
        await store.set("s/c/0", self.buffer_cls.from_bytes(CHUNK))
        sync_result = getter.get_sync("s/c/0", byte_range=byte_range)
        async_result = await store.get(
            "s/c/0", prototype=default_buffer_prototype(), byte_range=byte_range
        )
        assert sync_result is not None
        assert async_result is not None
        assert_bytes_equal(sync_result, async_result)

    # ------------------------------------------------------ versioning extras

    async def test_writes_are_session_local_until_commit(
        self, store_kwargs: dict[str, Any]
    ) -> None:
        """Another session never sees uncommitted writes; after commit, new ones do."""
        repo = ic.Repository.open(store_kwargs["storage"])
        session = repo.writable_session("main")
        other = repo.writable_session("main").store  # opened before the commit

        written = await make_nodes(session.store, ["arr/c/0"])
        await session.store.set("arr/c/0", self.buffer_cls.from_bytes(CHUNK))
        assert await other.is_empty("")
        assert await other.get("arr/zarr.json", prototype=default_buffer_prototype()) is None

        snapshot = session.commit("write arr")
        expected = sorted([*written, "arr/c/0"])
        for reader in (
            repo.readonly_session(branch="main").store,
            repo.readonly_session(snapshot_id=snapshot).store,
            repo.writable_session("main").store,
        ):
            assert sorted(await _collect_aiterator(reader.list())) == expected
            chunk = await reader.get("arr/c/0", prototype=default_buffer_prototype())
            assert chunk is not None
            assert chunk.to_bytes() == CHUNK
        # a session opened before the commit keeps its own (empty) view
        assert await other.is_empty("")


# ------------------------------------------------ zarr's FusedCodecPipeline end to end

FUSED = {"codec_pipeline.path": "zarr.core.codec_pipeline.FusedCodecPipeline"}


def test_fused_codec_pipeline_reads_and_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arrays written and read through zarr's FusedCodecPipeline, which uses the sync
    methods from a worker thread: full and partial chunk writes, an all-fill chunk
    (deleted), then reads before and after the commit."""
    calls: dict[str, int] = {"get_sync": 0, "set_sync": 0, "delete_sync": 0}
    for name in calls:
        method = getattr(ic.IcechunkStore, name)

        def counted(
            self: Any, *args: Any, _name: str = name, _method: Any = method, **kw: Any
        ) -> Any:
            calls[_name] += 1
            return _method(self, *args, **kw)

        monkeypatch.setattr(ic.IcechunkStore, name, counted)

    repo = ic.Repository.create(ic.local_filesystem_storage(str(tmp_path / "repo")))
    session = repo.writable_session("main")
    expected = np.arange(30 * 20, dtype="float64").reshape(30, 20)
    with zarr.config.set(FUSED):
        root = zarr.group(session.store)
        array = root.create_array(
            "values", shape=(30, 20), chunks=(8, 8), dtype="float64", fill_value=-1.0
        )
        assert type(array._async_array.codec_pipeline).__name__ == "FusedCodecPipeline"
        array[:] = expected
        array[3:5, 2:19] = 7.5  # partial chunks: read, merge, write back
        expected[3:5, 2:19] = 7.5
        array[24:, 16:] = -1.0  # a whole chunk of fill values: deleted
        expected[24:, 16:] = -1.0
        np.testing.assert_array_equal(array[...], expected)
        np.testing.assert_array_equal(array[5:13, 1:3], expected[5:13, 1:3])
        assert calls["set_sync"] > 0 and calls["get_sync"] > 0 and calls["delete_sync"] > 0
        assert sync(session.store.get("values/c/3/2", default_buffer_prototype())) is None
        session.commit("written through the fused pipeline")

        reader = zarr.open_array(repo.readonly_session("main").store, path="values", mode="r")
        assert type(reader._async_array.codec_pipeline).__name__ == "FusedCodecPipeline"
        before = calls["get_sync"]
        np.testing.assert_array_equal(reader[...], expected)
        assert calls["get_sync"] > before


# ------------------------------------------------------------- stateful hierarchy

# Modest settings: each example builds a fresh in-memory repository.
HIERARCHY_SETTINGS = settings(
    max_examples=20,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    report_multiple_bugs=False,
    derandomize=True,  # reproducible in CI; widen max_examples locally to explore more
    database=None,
)


class IcechunkHierarchyStateMachine(ZarrHierarchyStateMachine):
    """zarr's hierarchy machine on the store of a fresh in-memory repository's session.

    One adaptation (documented on :meth:`check_list_dir`); everything else, including
    the ``check_list_prefix_from_root`` invariant after every step, is zarr's.
    """

    def __init__(self) -> None:
        self.repo = ic.Repository.create(ic.in_memory_storage())
        self.session = self.repo.writable_session("main")
        super().__init__(self.session.store)

    # Override: the model (a MemoryStore) lists an array's ``c`` prefix only once a
    # chunk exists.  The official Icechunk store lists ``c`` for *every* array, chunks
    # or not (the chunk grid belongs to the array node).  Both are accepted: the
    # listings must match exactly, except that an extra ``c`` directly under an array
    # is tolerated.
    @precondition(lambda self: bool(self.all_groups))
    @rule(data=st.data())
    def check_list_dir(self, data: st.DataObject) -> None:
        path = self.draw_directory(data)
        note(f"list_dir for {path=!r}")
        model_ls = sorted(self._sync_iter(self.model.list_dir(path)))
        store_ls = sorted(self._sync_iter(self.store.list_dir(path)))
        if path in self.all_arrays and "c" not in model_ls:
            store_ls = [name for name in store_ls if name != "c"]
        assert model_ls == store_ls, (model_ls, store_ls)


def test_zarr_hierarchy_state_machine() -> None:
    """zarr's hierarchy state machine against one writable session's store."""
    run_state_machine_as_test(IcechunkHierarchyStateMachine, settings=HIERARCHY_SETTINGS)


class CommittingHierarchyStateMachine(IcechunkHierarchyStateMachine):
    """The hierarchy machine, plus a rule that commits and continues in a new session.

    After a commit, the rest of the run works on the store of a *fresh* writable
    session, so every later rule and invariant also checks that the committed snapshot
    round-trips the whole hierarchy (metadata, chunks, deletions).  A read-only session
    at the snapshot must list exactly what the committed session listed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.commits = 0

    @precondition(lambda self: self.session.has_uncommitted_changes)
    @rule()
    def commit_and_reopen(self) -> None:
        before = sorted(self._sync_iter(self.store.list_prefix("")))
        snapshot_id = self.session.commit(f"step {self.commits}")
        self.commits += 1
        note(f"committed {snapshot_id}")
        assert self.repo.lookup_branch("main") == snapshot_id
        at_snapshot = self.repo.readonly_session(snapshot_id=snapshot_id).store
        assert sorted(self._sync_iter(at_snapshot.list_prefix(""))) == before
        self.session = self.repo.writable_session("main")
        self.store = self.session.store
        assert not self.session.has_uncommitted_changes

    @precondition(lambda self: bool(self.all_arrays))
    @precondition(lambda self: not self.session.has_uncommitted_changes)
    @rule(data=st.data())
    def check_array_at_tip(self, data: st.DataObject) -> None:
        """Right after a commit, the branch tip holds exactly the model's array data."""
        path = data.draw(st.sampled_from(sorted(self.all_arrays)))
        tip = self.repo.readonly_session(branch="main").store
        actual = zarr.open_array(tip, path=path, mode="r")[...]
        expected = zarr.open_array(self.model, path=path, mode="r")[...]
        np.testing.assert_equal(actual, expected)


def test_zarr_hierarchy_state_machine_with_commits() -> None:
    run_state_machine_as_test(CommittingHierarchyStateMachine, settings=HIERARCHY_SETTINGS)
