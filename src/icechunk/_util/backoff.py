"""One retry backoff policy: exponential growth, capped, with full jitter."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """How long to wait before retry number ``attempt`` (counting from 0).

    The first ``free_attempts`` retries go at once; after that the wait is drawn uniformly
    from ``[0, min(cap_s, base_s * 2**min(attempt, max_exponent))]`` ("full jitter"), which
    keeps many clients that failed together from retrying in lockstep.
    """

    base_s: float
    cap_s: float
    free_attempts: int = 0
    max_exponent: int = 40

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry ``attempt`` (0 for the free ones)."""
        if attempt < self.free_attempts:
            return 0.0
        return min(self.cap_s, self.base_s * 2 ** min(attempt, self.max_exponent))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """A random wait in ``[0, ceiling(attempt)]``."""
        ceiling = self.ceiling(attempt)
        if ceiling <= 0.0:
            return 0.0
        return (rng or random).uniform(0.0, ceiling)

    async def sleep(self, attempt: int) -> None:
        """Wait before retry ``attempt``."""
        wait = self.delay(attempt)
        if wait > 0.0:
            await asyncio.sleep(wait)
