"""The one retry backoff policy (``icechunk._util.backoff``) and the waits built on it."""

from __future__ import annotations

import asyncio
import random

import pytest

from icechunk._util.backoff import Backoff
from icechunk.storage import StorageRetriesSettings


def _same_draws(policy: Backoff, formula, attempts: range) -> None:
    """``policy`` waits exactly what ``formula(attempt, rng)`` did, for the same random draws."""
    for attempt in attempts:
        ours, theirs = random.Random(attempt), random.Random(attempt)
        assert policy.delay(attempt, ours) == formula(attempt, theirs)
        assert ours.random() == theirs.random()  # and drew as many numbers


def test_expresses_the_storage_retry_waits() -> None:
    retries = StorageRetriesSettings(initial_backoff_ms=100, max_backoff_ms=1000)

    def formula(retry: int, rng: random.Random) -> float:
        return min(1000, 100 * 2 ** min(retry - 1, 40)) / 1000.0 * rng.uniform(0.5, 1.0)

    for retry in range(1, 50):
        assert retries.backoff_seconds(retry, random.Random(retry)) == formula(
            retry, random.Random(retry)
        )


def test_expresses_the_engine_retry_waits() -> None:
    def repo_info(attempt: int, rng: random.Random) -> float:
        if attempt < 3:
            return 0.0
        return rng.uniform(0, min(0.5, 0.002 * 2 ** min(attempt, 10)))

    def rebase(rebases: int, rng: random.Random) -> float:
        return rng.uniform(0, min(1.0, 0.005 * 2 ** min(rebases, 8)))

    def gc_restart(attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(2.0, 0.05 * 2**attempt))

    _same_draws(Backoff(0.002, 0.5, free_attempts=3, max_exponent=10), repo_info, range(30))
    _same_draws(Backoff(0.005, 1.0, max_exponent=8), rebase, range(30))
    _same_draws(Backoff(0.05, 2.0), gc_restart, range(20))


def test_ceiling_jitter_and_validation() -> None:
    policy = Backoff(0.1, 1.0, free_attempts=1, min_fraction=0.5)
    assert [policy.ceiling(a) for a in range(6)] == [0.0, 0.2, 0.4, 0.8, 1.0, 1.0]
    rng = random.Random(0)
    waits = [policy.delay(2, rng) for _ in range(200)]
    assert all(0.2 <= w <= 0.4 for w in waits) and len(set(waits)) > 100
    assert Backoff(1.0, 10.0).ceiling(10_000) == 10.0  # the exponent is bounded
    for bad in ({"base_s": -1}, {"free_attempts": -1}, {"min_fraction": 2.0}):
        with pytest.raises(ValueError):
            Backoff(**{"base_s": 1.0, "cap_s": 1.0, **bad})


def test_sleep_waits_the_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    policy = Backoff(0.01, 1.0, free_attempts=1)
    asyncio.run(policy.sleep(0))
    asyncio.run(policy.sleep(3, random.Random(1)))
    assert slept == [0.0, policy.delay(3, random.Random(1))]
