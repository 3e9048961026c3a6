"""How to reach an S3-compatible endpoint: ``S3Options`` and ``ChecksumAlgorithm``.

Plain values, apart from the S3 backend (``icechunk.storage.s3``) so that naming them
(``ic.S3Options(...)``, ``ic.s3_store(...)``) does not load the backend and its clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlparse

from icechunk.exceptions import InvalidInputError

__all__ = ["TIGRIS_ENDPOINT", "ChecksumAlgorithm", "S3Options"]

#: Tigris's S3 endpoint, used when a Tigris storage or store names none.
TIGRIS_ENDPOINT = "https://t3.storage.dev"


class ChecksumAlgorithm(Enum):
    """Checksum algorithm for S3 write requests (``None``: the SDK's default)."""

    Crc32 = 0
    Crc32c = 1
    Crc64Nvme = 2
    Sha1 = 3
    Sha256 = 4

    @property
    def aws_name(self) -> str:
        return {0: "CRC32", 1: "CRC32C", 2: "CRC64NVME", 3: "SHA1", 4: "SHA256"}[self.value]


@dataclass
class S3Options:
    """How to reach an S3-compatible endpoint (the official ``S3Options``)."""

    region: str | None = None
    endpoint_url: str | None = None
    allow_http: bool = False
    anonymous: bool = False
    force_path_style: bool = False
    network_stream_timeout_seconds: int | None = None
    requester_pays: bool = False
    checksum_algorithm: ChecksumAlgorithm | None = None

    def __post_init__(self) -> None:
        if self.endpoint_url is not None:
            parsed = urlparse(self.endpoint_url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise InvalidInputError(
                    f"endpoint_url must be an http(s) URL like http://localhost:9000, "
                    f"got {self.endpoint_url!r}"
                )
            if parsed.scheme == "http" and not self.allow_http:
                raise InvalidInputError(
                    f"endpoint_url {self.endpoint_url!r} uses plain http: pass allow_http=True "
                    "to allow unencrypted connections"
                )
        if self.checksum_algorithm is not None and not isinstance(
            self.checksum_algorithm, ChecksumAlgorithm
        ):
            raise InvalidInputError(
                f"checksum_algorithm must be a ChecksumAlgorithm, got {self.checksum_algorithm!r}"
            )
