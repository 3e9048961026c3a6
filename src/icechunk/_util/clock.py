"""Time as the format stores it: microseconds since the Unix epoch, in UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_us() -> int:
    """The current time in microseconds since the epoch."""
    return time.time_ns() // 1000


def us_to_datetime(us: int) -> datetime:
    """A timezone-aware UTC datetime from microseconds since the epoch (exact)."""
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)
