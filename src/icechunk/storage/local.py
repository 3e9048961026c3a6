"""Storage in a directory of the local filesystem (POSIX only).

Keys map to files below the root (``/`` separates subdirectories). Names that
start with ``.`` are reserved for this backend: temporary files (``.tmp-*``)
and lock files (``.<name>.lock``). Keys with such components are rejected and
listings skip them.

A reader never sees a partial object: :meth:`put` writes a temporary file in the
target directory and renames it into place. :meth:`put_fresh` (chunks, manifests,
snapshots, transaction logs and ``repo`` backups, all under fresh random names) writes
in place: nothing refers to such an object until the ``repo`` file does. Neither
fsyncs; the swap of the ``repo`` file (the commit point) fsyncs the file and its
directory. If the process dies at any point, the repository stays readable at its
last commit, and at worst unreferenced (possibly partial) objects are left for
garbage collection. A power failure is another matter: the kernel may not have
written the objects of the latest commits to disk yet, as with any storage that does
not fsync every object.

The conditional writes (used for ``repo`` only) are safe for many processes at
once: the check and the swap happen while holding ``fcntl.flock`` on the
per-key lock file. The version token is the hex SHA-256 of the content. Lock
files are never deleted (deleting them would let two processes lock two
different files of the same name).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import hashlib
import inspect
import itertools
import os
import secrets
import stat
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator
from datetime import UTC, datetime
from typing import TypeVar

from icechunk._util.sync import run_blocking
from icechunk.exceptions import (
    IcechunkError,
    InvalidInputError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
)
from icechunk.storage.base import ByteRange, ObjectInfo, Storage, Version, resolve_byte_range

T = TypeVar("T")

_TMP_PREFIX = ".tmp-"
_TMP_COUNTER = itertools.count()
_TMP_SALT = secrets.token_hex(4)  # differs between processes that reuse a pid
_LIST_BATCH = 1000
_MKDIR_ATTEMPTS = 10  # a concurrent delete may prune a directory we just created
# errno values meaning "this filesystem cannot make hard links"
_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV}


def normalize_root(path: str | os.PathLike[str]) -> str:
    """The absolute form of a root directory (``~`` expanded)."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise InvalidInputError(
            f"local storage path must be a non-empty str or PathLike, got {path!r}"
        )
    return os.path.abspath(os.path.expanduser(path))


def _version(data: bytes) -> Version:
    return hashlib.sha256(data).hexdigest()


def pread(fd: int, start: int, size: int) -> bytes:
    """Read ``size`` bytes at ``start`` of the open file ``fd`` (fewer only at end of file)."""
    data = os.pread(fd, size, start)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, start + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _open_regular(path: str) -> tuple[int, int]:
    """Open a file for reading: ``(fd, size)``; a directory is an IsADirectoryError."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def _read_file(path: str, byte_range: ByteRange | None = None) -> bytes:
    fd, size = _open_regular(path)
    try:
        start, stop = resolve_byte_range(byte_range, size)
        return pread(fd, start, stop - start)
    finally:
        os.close(fd)


def _large_explicit_range(byte_range: ByteRange | None, limit: int) -> bool:
    return (
        byte_range is not None
        and byte_range.suffix is None
        and byte_range.end is not None
        and byte_range.end - byte_range.start > limit
    )


def _read_versioned(path: str) -> tuple[bytes, Version]:
    data = _read_file(path)
    return data, _version(data)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_in_dir(
    directory: str, name: str, flags: int, make_dirs: bool = True
) -> tuple[int, str]:
    """Open ``directory/name`` with ``flags``, creating missing directories if allowed."""
    path = os.path.join(directory, name)
    for _ in range(_MKDIR_ATTEMPTS):
        try:
            return os.open(path, flags | os.O_CLOEXEC, 0o666), path
        except FileNotFoundError:
            if not make_dirs:
                raise
        os.makedirs(directory, exist_ok=True)
    return os.open(path, flags | os.O_CLOEXEC, 0o666), path


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _temp_name() -> str:
    # unique within the process; O_EXCL settles clashes with other processes or leftovers
    return f"{_TMP_PREFIX}{os.getpid():x}-{next(_TMP_COUNTER):x}-{_TMP_SALT}"


def _write_new(directory: str, name: str, data: bytes | memoryview, durable: bool) -> str:
    """Create ``directory/name`` (it must not exist yet) holding ``data``; return its path.

    On failure the half-written file is removed again.
    """
    fd, path = _create_in_dir(directory, name, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        try:
            _write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return path


def _write_temp(directory: str, data: bytes, durable: bool) -> str:
    """Write ``data`` to a new temporary file in ``directory``; return its path."""
    while True:
        try:
            return _write_new(directory, _temp_name(), data, durable)
        except FileExistsError:
            if not os.path.isdir(directory):  # a path component is a file
                raise


def _lock_key(directory: str, name: str, make_dirs: bool) -> int:
    """Take an exclusive ``flock`` on ``directory/.<name>.lock``; closing the fd releases it.

    flock locks belong to the open file description, so this also excludes
    other threads of the same process (unlike ``fcntl.lockf``).
    """
    fd, _ = _create_in_dir(directory, f".{name}.lock", os.O_RDWR | os.O_CREAT, make_dirs)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


class LocalFileSystemStorage(Storage, backend="local_filesystem"):
    """Objects stored as files below ``root`` (created on first write)."""

    #: Reads of at most this many bytes run inline on the event loop: for data in
    #: the page cache, open+pread takes ~10 us while a thread hop costs ~100 us.
    inline_read_limit: int = 64 * 1024

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = normalize_root(root)

    @property
    def root(self) -> str:
        """Absolute path of the root directory."""
        return self._root

    def describe(self) -> str:
        return f"local filesystem at {self._root}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LocalFileSystemStorage):
            return NotImplemented
        return self._root == other._root

    def __hash__(self) -> int:
        return hash((LocalFileSystemStorage, self._root))

    # -- paths and errors ------------------------------------------------------

    def _path(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"storage keys must be non-empty strings, got {key!r}")
        parts = key.split("/")
        if any(not p or p.startswith(".") or "\0" in p for p in parts):
            raise InvalidInputError(
                f"invalid key {key!r} for {self.describe()}: keys are relative '/'-separated "
                "paths without empty, '.' or '..' components (names starting with '.' are reserved)"
            )
        return os.path.join(self._root, *parts)

    def _error(self, key: str, err: OSError, reading: bool = True) -> IcechunkError:
        if reading and isinstance(err, FileNotFoundError | NotADirectoryError):
            return ObjectNotFoundError(f"object {key!r} not found in {self.describe()}")
        if isinstance(err, IsADirectoryError):
            return InvalidInputError(f"key {key!r} is a directory in {self.describe()}")
        action = "read" if reading else "write"
        return StorageError(f"cannot {action} {key!r} in {self.describe()}: {err}")

    async def _run(self, key: str, reading: bool, func: Callable[..., T], *args: object) -> T:
        """Run blocking ``func(*args)`` in a thread, translating OS errors."""
        try:
            return await run_blocking(func, *args)
        except IcechunkError:
            raise
        except OSError as err:
            raise self._error(key, err, reading) from err

    # -- reads -----------------------------------------------------------------

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        path = self._path(key)
        if _large_explicit_range(byte_range, self.inline_read_limit):
            # a chunk read (its size is in the manifest): straight to a worker thread
            return await self._run(key, True, _read_file, path, byte_range)
        try:
            fd, size = _open_regular(path)
        except OSError as err:
            raise self._error(key, err) from err
        try:
            start, stop = resolve_byte_range(byte_range, size)
            if stop - start <= self.inline_read_limit:
                return pread(fd, start, stop - start)
        except OSError as err:
            raise self._error(key, err) from err
        finally:
            os.close(fd)
        # Large read: reopen in the worker thread so no descriptor can leak if
        # this task is cancelled before the thread starts. Files are only ever
        # replaced whole, so the thread still reads one consistent version.
        return await self._run(key, True, _read_file, path, byte_range)

    async def get_with_version(self, key: str) -> tuple[bytes, Version]:
        return await self._run(key, True, _read_versioned, self._path(key))

    async def exists(self, key: str) -> bool:
        path = self._path(key)
        try:
            return stat.S_ISREG(os.stat(path).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as err:
            raise self._error(key, err) from err

    # -- writes ----------------------------------------------------------------

    async def put(self, key: str, data: bytes) -> None:
        await self._run(key, False, self._put_sync, self._path(key), data)

    @staticmethod
    def _put_sync(path: str, data: bytes) -> None:
        tmp = _write_temp(os.path.dirname(path), data, durable=False)
        try:
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    async def put_fresh(self, key: str, data: bytes | memoryview) -> None:
        await self._run(key, False, self._put_fresh_sync, self._path(key), data)

    @staticmethod
    def _put_fresh_sync(path: str, data: bytes | memoryview) -> None:
        # straight to the final name: no reader looks for it before a commit refers to it
        _write_new(os.path.dirname(path), os.path.basename(path), data, durable=False)

    async def put_if_absent(self, key: str, data: bytes) -> Version:
        return await self._run(key, False, self._create_sync, key, self._path(key), data)

    def _create_sync(self, key: str, path: str, data: bytes) -> Version:
        directory, name = os.path.split(path)
        exists = PreconditionFailedError(f"object {key!r} already exists in {self.describe()}")
        lock = _lock_key(directory, name, make_dirs=True)
        try:
            tmp = _write_temp(directory, data, durable=True)
            try:
                try:
                    os.link(tmp, path)  # atomic create: fails if the target exists
                except FileExistsError:
                    raise exists from None
                except OSError as err:
                    if err.errno not in _NO_LINK_ERRNOS:
                        raise
                    # No hard links on this filesystem: the lock still excludes
                    # other conditional writers.
                    if os.path.lexists(path):
                        raise exists from None
                    os.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            _fsync_dir(directory)
        finally:
            os.close(lock)
        return _version(data)

    async def put_if_version(self, key: str, data: bytes, version: Version) -> Version:
        return await self._run(key, False, self._swap_sync, key, self._path(key), data, version)

    def _swap_sync(self, key: str, path: str, data: bytes, version: Version) -> Version:
        directory, name = os.path.split(path)
        changed = PreconditionFailedError(
            f"object {key!r} in {self.describe()} changed since version {version!r} was read"
        )
        try:
            lock = _lock_key(directory, name, make_dirs=False)
        except (FileNotFoundError, NotADirectoryError):
            raise changed from None  # not even the directory exists
        try:
            try:
                current = _read_file(path)
            except (FileNotFoundError, NotADirectoryError):
                raise changed from None
            if _version(current) != version:
                raise changed
            tmp = _write_temp(directory, data, durable=True)
            try:
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            _fsync_dir(directory)
        finally:
            os.close(lock)
        return _version(data)

    # -- listing and deletion --------------------------------------------------

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        walker = self._walk(prefix)
        try:
            while True:
                batch = await run_blocking(_take, walker, _LIST_BATCH)
                for info in batch:
                    yield info
                if len(batch) < _LIST_BATCH:
                    return
        finally:
            if inspect.getgeneratorstate(walker) != inspect.GEN_RUNNING:  # else a thread owns it
                walker.close()

    def _walk(self, prefix: str) -> Generator[ObjectInfo, None, None]:
        if not isinstance(prefix, str):
            raise InvalidInputError(f"list prefix must be a str, got {prefix!r}")
        *dirs, name_prefix = prefix.split("/")
        if dirs:
            self._path("/".join(dirs))  # validates the directory part
        yield from self._scan(
            os.path.join(self._root, *dirs), "".join(d + "/" for d in dirs), name_prefix
        )

    def _scan(self, directory: str, key_base: str, name_prefix: str = "") -> Iterator[ObjectInfo]:
        try:
            entries = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return
        with entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") or not name.startswith(name_prefix):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        yield from self._scan(entry.path, f"{key_base}{name}/")
                        continue
                    st = entry.stat()
                except FileNotFoundError:  # deleted while we were listing
                    continue
                if stat.S_ISREG(st.st_mode):
                    mtime = datetime.fromtimestamp(st.st_mtime, tz=UTC)
                    yield ObjectInfo(key_base + name, st.st_size, mtime)

    async def delete(self, keys: Iterable[str]) -> None:
        if isinstance(keys, str):  # one key, not its characters
            keys = [keys]
        items = [(key, self._path(key)) for key in keys]
        if items:
            await run_blocking(self._delete_sync, items)

    def _delete_sync(self, items: builtins.list[tuple[str, str]]) -> None:
        parents: set[str] = set()
        for key, path in items:
            try:
                os.unlink(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as err:
                raise self._error(key, err, reading=False) from err
            parents.add(os.path.dirname(path))
        # Remove directories left empty, deepest first, never the root itself.
        for directory in sorted(parents, key=len, reverse=True):
            while len(directory) > len(self._root):
                try:
                    os.rmdir(directory)
                except OSError:
                    break
                directory = os.path.dirname(directory)


def _take(iterator: Iterator[ObjectInfo], n: int) -> list[ObjectInfo]:
    return list(itertools.islice(iterator, n))
