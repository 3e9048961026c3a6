"""Session-wide fixtures shared by the test modules.

The object-store servers (moto for S3, fake-gcs-server for GCS) are started on
127.0.0.1 the first time a test asks for them and stopped when the session ends;
see ``tests/helpers/storage_servers.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# gcsfs's experimental zonal-bucket support probes every bucket and stalls against
# an emulator; our backend uses the plain filesystem class, but keep gcsfs itself
# from enabling it when it is imported.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

from tests.helpers.storage_servers import FakeGcs, MotoS3  # noqa: E402


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """A moto S3 server with bucket ``storage_servers.S3_BUCKET``."""
    server = MotoS3()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[FakeGcs]:
    """A fake-gcs-server with bucket ``storage_servers.GCS_BUCKET``."""
    server = FakeGcs()
    try:
        yield server
    finally:
        server.stop()
