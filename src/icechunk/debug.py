"""Version and environment information for bug reports."""

from __future__ import annotations

import platform
import sys
from importlib import metadata


def user_agent() -> str:
    """The user-agent string this library identifies itself with."""
    from icechunk import __version__

    return f"icechunk-py/{__version__}"


def print_debug_info() -> None:
    """Print the versions of this library, Python and the packages it works with."""
    from icechunk import __version__

    print(f"icechunk-py: {__version__}")
    print(f"python: {sys.version.split()[0]} ({platform.platform()})")
    for package in ("zarr", "numpy", "zstandard", "flatbuffers", "xarray", "dask", "distributed"):
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "not installed"
        print(f"{package}: {version}")
