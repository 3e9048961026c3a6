"""Storage settings and credential helpers (no server needed)."""

from __future__ import annotations

import inspect
import pickle
import random
from datetime import UTC, datetime, timedelta

import pytest

import icechunk as ic
from icechunk.storage import (
    GcsBearerCredential,
    GcsCredentials,
    GcsStaticCredentials,
    S3Credentials,
    S3StaticCredentials,
    StorageConcurrencySettings,
    StorageRetriesSettings,
    StorageSettings,
    StorageTimeoutSettings,
    gcs_credentials,
    s3_credentials,
    s3_refreshable_credentials,
)

# What the official package 2.3.0 persists in the repository config for
# StorageSettings with every field set (decoded from a repo it wrote).
OFFICIAL_PERSISTED = {
    "chunks_storage_class": "B",
    "concurrency": {"ideal_concurrent_request_size": 1000, "max_concurrent_requests_for_object": 5},
    "metadata_storage_class": "A",
    "minimum_size_for_multipart_upload": 1234,
    "retries": {"initial_backoff_ms": 10, "max_backoff_ms": 100, "max_tries": 3},
    "storage_class": "STANDARD_IA",
    "timeouts": {
        "connect_timeout_ms": 1,
        "operation_attempt_timeout_ms": 4,
        "operation_timeout_ms": 3,
        "read_timeout_ms": 2,
    },
    "unsafe_use_conditional_create": True,
    "unsafe_use_conditional_update": False,
    "unsafe_use_metadata": False,
}


def test_constructor_arguments_match_the_official_package() -> None:
    expected = {
        StorageSettings: [
            "concurrency",
            "retries",
            "unsafe_use_conditional_create",
            "unsafe_use_conditional_update",
            "unsafe_use_metadata",
            "storage_class",
            "metadata_storage_class",
            "chunks_storage_class",
            "minimum_size_for_multipart_upload",
            "timeouts",
        ],
        StorageConcurrencySettings: [
            "max_concurrent_requests_for_object",
            "ideal_concurrent_request_size",
        ],
        StorageRetriesSettings: ["max_tries", "initial_backoff_ms", "max_backoff_ms"],
        StorageTimeoutSettings: [
            "connect_timeout_ms",
            "read_timeout_ms",
            "operation_timeout_ms",
            "operation_attempt_timeout_ms",
        ],
    }
    for cls, names in expected.items():
        params = inspect.signature(cls).parameters
        assert list(params) == names, cls
        assert all(p.default is None for p in params.values())


def test_dict_round_trip_uses_the_official_layout() -> None:
    settings = StorageSettings.from_dict(OFFICIAL_PERSISTED)
    assert settings.retries == StorageRetriesSettings(3, 10, 100)
    assert settings.timeouts.operation_attempt_timeout_ms == 4
    assert settings.concurrency.max_concurrent_requests_for_object == 5
    assert not settings.conditional_update and settings.conditional_create
    assert settings.to_dict() == OFFICIAL_PERSISTED
    assert StorageSettings.from_dict(None) is None
    assert pickle.loads(pickle.dumps(settings)) == settings


def test_defaults_validation_and_merge() -> None:
    settings = StorageSettings()
    assert settings.conditional_create and settings.conditional_update
    assert settings.effective_retries.effective_max_tries == 10
    assert settings.effective_minimum_size_for_multipart_upload == 100 * 1024 * 1024
    assert settings.storage_class_for("chunks/x") is None
    classes = StorageSettings(storage_class="S", chunks_storage_class="C")
    assert classes.storage_class_for("chunks/abc") == "C"
    assert classes.storage_class_for("snapshots/abc") == "S"
    for bad in (0, -1, 1.5, "3"):
        with pytest.raises(ValueError):
            StorageRetriesSettings(max_tries=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        StorageSettings(retries=StorageTimeoutSettings())  # type: ignore[arg-type]
    retries = StorageRetriesSettings(max_tries=2)
    retries.max_tries = 4  # settable, like the official properties
    assert retries.max_tries == 4
    merged = StorageSettings(storage_class="S", retries=retries).merge(
        StorageSettings(unsafe_use_conditional_update=False)
    )
    assert merged.storage_class == "S" and merged.retries is retries
    assert merged.unsafe_use_conditional_update is False


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    retries = StorageRetriesSettings(initial_backoff_ms=100, max_backoff_ms=1000)
    rng = random.Random(0)
    for n, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (30, 1.0)]:
        waits = [retries.backoff_seconds(n, rng) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 100  # jittered


def test_s3_credentials_dispatch() -> None:
    assert isinstance(s3_credentials(), S3Credentials.FromEnv)
    assert isinstance(s3_credentials(anonymous=True), S3Credentials.Anonymous)
    static = s3_credentials(access_key_id="k", secret_access_key="s", session_token="t")
    assert static == S3Credentials.Static(S3StaticCredentials("k", "s", "t"))
    assert "'s'" not in repr(static)  # no secrets in reprs
    refreshable = s3_credentials(get_credentials=_provider)
    assert isinstance(refreshable, S3Credentials.Refreshable) and refreshable.current is None
    for bad in (
        {"access_key_id": "k"},
        {"anonymous": True, "from_env": True},
        {"access_key_id": "k", "secret_access_key": "s", "get_credentials": _provider},
    ):
        with pytest.raises(ValueError, match="Conflicting"):
            s3_credentials(**bad)  # type: ignore[arg-type]


def _provider() -> S3StaticCredentials:
    return S3StaticCredentials("k", "s", expires_after=datetime.now(UTC) + timedelta(hours=1))


def test_refreshable_credentials_pickle_and_refresh() -> None:
    creds = s3_refreshable_credentials(_provider, scatter_initial_credentials=True)
    first = creds.current
    assert first is not None and creds.fetch() is first  # still valid: no call
    clone = pickle.loads(pickle.dumps(creds))
    assert clone == creds and clone.current == first
    clone.current = S3StaticCredentials("old", "old", expires_after=datetime.now(UTC))
    assert clone.fetch().access_key_id == "k"  # expired: the function was called
    with pytest.raises(ValueError):
        S3Credentials.Refreshable(_provider)  # type: ignore[arg-type]  (must be pickled)


def test_gcs_credentials_dispatch() -> None:
    assert isinstance(gcs_credentials(), GcsCredentials.FromEnv)
    assert isinstance(gcs_credentials(anonymous=True), GcsCredentials.Anonymous)
    assert gcs_credentials(service_account_file="/sa.json") == GcsCredentials.Static(
        GcsStaticCredentials.ServiceAccount("/sa.json")
    )
    assert isinstance(gcs_credentials(get_credentials=_bearer), GcsCredentials.Refreshable)
    token = GcsBearerCredential("abc", expires_after=datetime(2030, 1, 1))
    assert token.expires_after.tzinfo is not None and "abc" not in repr(token)


def _bearer() -> GcsBearerCredential:
    return GcsBearerCredential("token")


def test_memory_and_local_accept_settings(tmp_path) -> None:
    for storage in (ic.in_memory_storage(), ic.local_filesystem_storage(str(tmp_path))):
        assert storage.with_settings(StorageSettings(storage_class="X")) is storage
        assert storage.default_settings() == StorageSettings()
