"""Format versions this library reads and writes."""

from __future__ import annotations

import enum

from icechunk.format.header import LATEST_SPEC_VERSION


class SpecVersion(enum.IntEnum):
    """Icechunk on-disk format versions."""

    v1 = 1
    v2 = 2

    @staticmethod
    def current() -> SpecVersion:
        return SpecVersion(LATEST_SPEC_VERSION)


def spec_version() -> int:
    """The format version new repositories are written in."""
    return LATEST_SPEC_VERSION


def supported_spec_versions() -> list[SpecVersion]:
    """Every format version this library can read."""
    return [SpecVersion.v1, SpecVersion.v2]
