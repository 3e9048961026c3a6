"""Interop on S3 (moto on 127.0.0.1): the official package reads a repository we wrote
there, and we read one it wrote; both describe each repository identically."""

from __future__ import annotations

import pytest

from tests.helpers import official_env
from tests.helpers.storage_servers import (
    S3_ACCESS_KEY,
    S3_BUCKET,
    S3_SECRET_KEY,
    MotoS3,
    unique_prefix,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(official_env.BUILD_TIMEOUT + 600)]

SCRIPT = official_env.SCENARIO_DIR / "s3_round_trip.py"


@pytest.mark.parametrize("writer", ["ours", "official"])
def test_s3_repository_round_trip(moto_s3: MotoS3, run_ours, run_official, writer: str) -> None:
    args = (
        moto_s3.url,
        S3_BUCKET,
        unique_prefix(f"interop-{writer}"),
        S3_ACCESS_KEY,
        S3_SECRET_KEY,
    )
    write = run_ours if writer == "ours" else run_official
    assert write(SCRIPT, "write", *args) == {"written": True}
    by_ours = run_ours(SCRIPT, "read", *args)
    by_official = run_official(SCRIPT, "read", *args)
    assert by_ours == by_official
    assert by_ours["ancestry"] == ["second", "first", "Repository initialized"]
    assert by_ours["tags"] == ["v1"] and by_ours["branches"] == ["main"]
    assert by_ours["main"]["small"] == [0, 1, 2, 3]
    assert by_ours["main"]["temperature"] != by_ours["v1"]["temperature"]
