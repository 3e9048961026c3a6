"""Version and environment information for bug reports."""

from __future__ import annotations

import logging
import platform
import sys
from dataclasses import dataclass
from importlib import metadata


@dataclass(frozen=True)
class Attribution:
    """Who is making requests: client, workload and principal labels."""

    client: str | None = None
    workload: str | None = None
    principal: str | None = None


def initialize_logs() -> None:
    """Send this library's log records (logger ``icechunk``) to stderr."""
    logger = logging.getLogger("icechunk")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


def set_logs_filter(log_filter_directive: str | None) -> None:
    """Set the log level of the ``icechunk`` logger (e.g. ``"debug"``; None resets it)."""
    level = (log_filter_directive or "warning").rsplit("=", 1)[-1].upper()
    logging.getLogger("icechunk").setLevel(getattr(logging, level, logging.WARNING))


def shutdown_telemetry() -> None:
    """Nothing to do: this implementation collects no telemetry."""


def user_agent() -> str:
    """The user-agent string this library identifies itself with."""
    from icechunk._version import __version__

    return f"icechunk-py/{__version__}"


def print_debug_info() -> None:
    """Print the versions of this library, Python and the packages it works with."""
    from icechunk._version import __version__

    print(f"icechunk-py: {__version__}")
    print(f"python: {sys.version.split()[0]} ({platform.platform()})")
    for package in ("zarr", "numpy", "zstandard", "flatbuffers", "xarray", "dask", "distributed"):
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "not installed"
        print(f"{package}: {version}")
