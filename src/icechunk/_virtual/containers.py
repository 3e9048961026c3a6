"""Virtual chunk containers: which object store serves the locations under a URL prefix.

A :class:`VirtualChunkContainer` in the repository config pairs a ``url_prefix``
(``s3://bucket/data/``, ``file:///data/``...) with the ``ObjectStoreConfig`` that reaches
it; :func:`container_problem` says whether the two fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from icechunk.exceptions import InvalidInputError
from icechunk.storage.object_store_config import InMemory, ObjectStoreConfig

__all__ = ["VirtualChunkContainer", "container_problem", "scheme_of"]


def scheme_of(url: str) -> str:
    """The lowercased scheme of ``url`` (``""`` without one)."""
    return url.split("://", 1)[0].lower() if "://" in url else ""


class VirtualChunkContainer:
    """Which object store serves virtual chunks whose location starts with ``url_prefix``.

    ``name`` (optional) lets locations be written relative to the container, as
    ``vcc://<name>/<path>``.
    """

    def __init__(self, url_prefix: str, store: ObjectStoreConfig, name: str | None = None) -> None:
        if not isinstance(url_prefix, str) or "://" not in url_prefix:
            raise InvalidInputError(
                f"url_prefix must be a URL prefix like 's3://bucket/' or 'file:///data/', "
                f"got {url_prefix!r}"
            )
        if not isinstance(store, ObjectStoreConfig):
            raise InvalidInputError(
                f"store must be an ObjectStoreConfig (ic.s3_store(), ic.local_filesystem_store(), "
                f"...), got {type(store).__name__}"
            )
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise InvalidInputError(
                "VirtualChunkContainer name must be non-empty and not contain '/'"
            )
        problem = container_problem(url_prefix, store)
        if problem is not None:
            raise InvalidInputError(problem)
        self.url_prefix = url_prefix
        self.store = store
        self.name = name

    def to_serde(self) -> dict[str, Any]:
        return {"name": self.name, "store": self.store.to_serde(), "url_prefix": self.url_prefix}

    @classmethod
    def from_serde(cls, value: Any) -> VirtualChunkContainer:
        """A persisted container, taken as it is (invalid ones are ignored when reading)."""
        if not isinstance(value, Mapping) or "url_prefix" not in value or "store" not in value:
            raise InvalidInputError(f"bad persisted virtual chunk container: {value!r}")
        cont = cls.__new__(cls)
        cont.url_prefix = str(value["url_prefix"])
        cont.store = ObjectStoreConfig.from_serde(value["store"])
        cont.name = value.get("name")
        return cont

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, VirtualChunkContainer)
            and other.url_prefix == self.url_prefix
            and other.store == self.store
            and other.name == self.name
        )

    def __hash__(self) -> int:
        return hash((self.url_prefix, self.name))

    def __repr__(self) -> str:
        return (
            f"VirtualChunkContainer(url_prefix={self.url_prefix!r}, store={self.store!r}, "
            f"name={self.name!r})"
        )


def container_problem(url_prefix: str, store: ObjectStoreConfig) -> str | None:
    """Why ``url_prefix`` cannot be served by ``store`` (None when it can)."""
    scheme = scheme_of(url_prefix)
    if isinstance(store, InMemory) or scheme not in store.schemes:
        return f"invalid url prefix scheme ({scheme}) for this object store config: {store!r}"
    rest = url_prefix.split("://", 1)[1]
    if scheme == "file":
        path = urlsplit(url_prefix).path
        if len(path) < 2 and not urlsplit(url_prefix).netloc:
            return "url prefix for file:// containers must include a path"
        if any(seg in (".", "..") for seg in path.split("/")):
            return "url prefix for file:// containers must be a canonical url"
    elif not rest.split("/", 1)[0]:
        return f"url prefix for {scheme}:// containers must include a host or bucket"
    return None
