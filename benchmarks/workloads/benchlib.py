"""Shared by the workload scripts: command line, repositories, timing, memory, output.

Every workload script runs under either implementation of ``icechunk`` (ours with ``src/`` on
``PYTHONPATH``, or the official package in its own virtualenv) and, for the bulk workloads,
against plain zarr stores (``--impl zarr``). It runs one *phase* (``write``, ``read`` ...) and
prints one JSON document on its last line::

    {"metrics": {"write_s": 1.23, ...}, "check": ..., "info": {...}}

Times are measured inside the process with ``time.perf_counter`` around the work alone:
interpreter start-up, imports and generating the input data are not counted. The import of
``icechunk`` itself (after zarr and numpy) is timed apart, as ``import_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

S3_DEFAULTS = {
    "bucket": "icechunk-bench",
    "region": "us-east-1",
    "access_key_id": "bench-key",
    "secret_access_key": "bench-secret",
}


def parser(description: str, phases: tuple[str, ...], impls: tuple[str, ...]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("phase", choices=phases)
    p.add_argument("--impl", choices=impls, default="icechunk",
                   help="icechunk (whichever the interpreter imports) or plain zarr")
    p.add_argument("--path", required=True,
                   help="local directory of the repository / store, or the S3 prefix")
    p.add_argument("--storage", choices=("local", "s3"), default="local")
    p.add_argument("--s3-endpoint", default=None, help="e.g. http://127.0.0.1:5000 (moto)")
    p.add_argument("--s3-bucket", default=S3_DEFAULTS["bucket"])
    p.add_argument("--seed", type=int, default=0)
    return p


# ------------------------------------------------------------------ timing and memory


class Clock:
    """Named wall-clock intervals (seconds). Made with ``impl="icechunk"``, it imports
    icechunk first (so that no timed block pays for it) and records how long that took."""

    def __init__(self, impl: str | None = None) -> None:
        self.metrics: dict[str, float] = {}
        if impl == "icechunk":
            with self.time("import_s"):
                import icechunk  # noqa: F401

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.metrics[name] = time.perf_counter() - start


@contextmanager
def profiled(region: str) -> Iterator[None]:
    """Sample this block with py-spy when ``BENCH_PROFILE`` names ``region`` (benchmarks/
    hotspots.py sets it, with ``BENCH_PYSPY`` = the py-spy executable and ``BENCH_PYSPY_OUT`` =
    the output file). py-spy attaches to this process before the block and stops after it,
    so set-up and data generation are not in the profile. A no-op otherwise."""
    if os.environ.get("BENCH_PROFILE") != region:
        yield
        return
    cmd = [os.environ["BENCH_PYSPY"], "record", "--pid", str(os.getpid()), "--format", "raw",
           "--rate", os.environ.get("BENCH_PYSPY_RATE", "250"),
           "--output", os.environ["BENCH_PYSPY_OUT"], "--nonblocking"]
    if os.environ.get("BENCH_PYSPY_IDLE") == "1":
        cmd.append("--idle")
    if os.environ.get("BENCH_PYSPY_GIL") == "1":
        cmd.append("--gil")
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # let it attach
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        _, err = spy.communicate(timeout=120)
        if spy.returncode not in (0, -signal.SIGINT):
            sys.stderr.write(err.decode(errors="replace"))


def peak_rss_mib() -> float:
    """High-water mark of this process's resident set (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset the high-water mark to the current RSS (Linux >= 4.0: ``clear_refs`` 5), so
    that ``peak_rss_mib`` afterwards is the peak of what follows. False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def current_rss_mib() -> float:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return float("nan")


def emit(metrics: dict[str, float], check: Any = None, **extra: Any) -> None:
    info: dict[str, Any] = {"python": sys.version.split()[0], "pid": os.getpid()}
    ic = sys.modules.get("icechunk")
    if ic is not None:
        info["icechunk_version"] = getattr(ic, "__version__", None)
        info["icechunk_file"] = getattr(ic, "__file__", None)
    zarr = sys.modules.get("zarr")
    if zarr is not None:
        info["zarr_version"] = zarr.__version__
    metrics = dict(metrics)
    metrics.setdefault("peak_rss_mib", peak_rss_mib())
    doc = {"metrics": metrics, "check": check, "info": info, **extra}
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------ icechunk repositories


def icechunk_storage(args: argparse.Namespace) -> Any:
    import icechunk

    if args.storage == "local":
        return icechunk.local_filesystem_storage(args.path)
    return icechunk.s3_storage(
        bucket=args.s3_bucket,
        prefix=args.path,
        endpoint_url=args.s3_endpoint,
        allow_http=True,
        force_path_style=True,
        access_key_id=S3_DEFAULTS["access_key_id"],
        secret_access_key=S3_DEFAULTS["secret_access_key"],
        region=S3_DEFAULTS["region"],
    )


def create_repo(args: argparse.Namespace, config: Any = None,
                authorize: dict[str, Any] | None = None) -> Any:
    import icechunk

    return icechunk.Repository.create(icechunk_storage(args), config,
                                      authorize_virtual_chunk_access=authorize)


def open_repo(args: argparse.Namespace, authorize: dict[str, Any] | None = None) -> Any:
    import icechunk

    return icechunk.Repository.open(icechunk_storage(args),
                                    authorize_virtual_chunk_access=authorize)


# ------------------------------------------------------------------ plain zarr stores


def zarr_store(args: argparse.Namespace, *, read_only: bool) -> Any:
    from zarr.storage import FsspecStore, LocalStore

    if args.storage == "local":
        return LocalStore(args.path, read_only=read_only)
    return FsspecStore.from_url(
        f"s3://{args.s3_bucket}/{args.path}",
        read_only=read_only,
        storage_options={
            "endpoint_url": args.s3_endpoint,
            "key": S3_DEFAULTS["access_key_id"],
            "secret": S3_DEFAULTS["secret_access_key"],
            "client_kwargs": {"region_name": S3_DEFAULTS["region"]},
        },
    )


# ------------------------------------------------------------------ bulk store writes


def set_chunks(store: Any, array_path: str, n_chunks: int, chunk_elems: int,
               batch: int = 100) -> None:
    """Write ``n_chunks`` chunks of an uncompressed int32 1-d array straight through the
    store API (``await store.set(key, buffer)``, ``batch`` at a time, concurrently; 100 is
    the fastest batch for the official package, whose per-call cost grows with the number
    of calls in flight: 57 us a call at 100, 150 us at 5,000; ours 17 us either way).

    Chunk ``i`` holds the value ``i + 1`` repeated: the bytes are exactly what zarr would
    write for an array created with ``compressors=None``, so zarr reads them back. This is
    how both implementations get many chunk references quickly: going through zarr's codec
    pipeline costs ~100 us per chunk, the same on both sides, and would swamp the commit.
    """
    import numpy as np
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    proto = default_buffer_prototype()

    async def run() -> None:
        for start in range(0, n_chunks, batch):
            stop = min(n_chunks, start + batch)
            values = np.repeat(np.arange(start + 1, stop + 1, dtype="<i4"), chunk_elems)
            values = values.reshape(stop - start, chunk_elems)
            await asyncio.gather(*(
                store.set(f"{array_path}/c/{i}", proto.buffer.from_bytes(values[i - start].tobytes()))
                for i in range(start, stop)
            ))

    sync(run())
