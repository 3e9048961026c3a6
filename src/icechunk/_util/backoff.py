"""The retry backoff policy: capped exponential growth with jitter.

Every retry loop of the library (storage requests, commit rebases, repo info updates,
garbage collection restarts) waits with a :class:`Backoff`, so the formula lives here only.
Randomising the wait keeps many clients that failed together from retrying in lockstep.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits before retries: ``ceiling(attempt) * uniform(min_fraction, 1)``.

    ``ceiling(attempt)`` is ``min(cap_s, base_s * 2**min(attempt, max_exponent))``, or 0
    for the first ``free_attempts`` attempts (those retry at once). ``attempt`` counts
    from 0, so ``base_s`` is the ceiling of the first non-free wait when there are no
    free attempts. ``min_fraction`` 0 is "full jitter" (any wait up to the ceiling);
    0.5 waits at least half of it.
    """

    base_s: float
    cap_s: float
    free_attempts: int = 0
    max_exponent: int = 40
    min_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.cap_s < 0:
            raise ValueError(f"backoff durations must be >= 0, got {self.base_s}, {self.cap_s}")
        if self.free_attempts < 0 or self.max_exponent < 0:
            raise ValueError("free_attempts and max_exponent must be >= 0")
        if not 0.0 <= self.min_fraction <= 1.0:
            raise ValueError(f"min_fraction must be in [0, 1], got {self.min_fraction}")

    def ceiling(self, attempt: int) -> float:
        """The longest wait before attempt ``attempt`` (0 for a free attempt)."""
        if attempt < self.free_attempts:
            return 0.0
        return min(self.cap_s, self.base_s * 2.0 ** min(attempt, self.max_exponent))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """A random wait in seconds before attempt ``attempt``.

        ``rng`` (default: the ``random`` module) is only drawn from for non-free attempts.
        """
        if attempt < self.free_attempts:
            return 0.0
        uniform = rng.uniform if rng is not None else random.uniform
        return self.ceiling(attempt) * uniform(self.min_fraction, 1.0)

    async def sleep(self, attempt: int, rng: random.Random | None = None) -> None:
        """Wait :meth:`delay` seconds; a zero wait still yields to the event loop once."""
        await asyncio.sleep(self.delay(attempt, rng))
