"""Repository configuration (the parts this library acts on, and a carrier for the rest).

The configuration is persisted in the repo info file as FlexBuffers of the same
structure the official package uses (its serde encoding). Keys we do not model
are kept and written back untouched.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass, field
from typing import Any

from icechunk.exceptions import InvalidInputError
from icechunk.format.values import decode_flexbuffer, encode_flexbuffer

DEFAULT_INLINE_CHUNK_THRESHOLD_BYTES = 512
DEFAULT_COMPRESSION_LEVEL = 3
DEFAULT_NUM_UPDATES_PER_REPO_INFO_FILE = 1000


class ManifestSplitCondition:
    """Which arrays a splitting rule applies to."""

    def __init__(self, kind: str, value: Any = None) -> None:
        self._kind = kind
        self._value = value

    @classmethod
    def AnyArray(cls) -> ManifestSplitCondition:  # noqa: N802 - official name
        return cls("any_array")

    @classmethod
    def path_matches(cls, regex: str) -> ManifestSplitCondition:
        return cls("path_matches", regex)

    @classmethod
    def name_matches(cls, regex: str) -> ManifestSplitCondition:
        return cls("name_matches", regex)

    @classmethod
    def or_conditions(cls, conditions: list[ManifestSplitCondition]) -> ManifestSplitCondition:
        return cls("or", list(conditions))

    @classmethod
    def and_conditions(cls, conditions: list[ManifestSplitCondition]) -> ManifestSplitCondition:
        return cls("and", list(conditions))

    PathMatches = path_matches
    NameMatches = name_matches
    Or = or_conditions
    And = and_conditions

    def matches(self, path: str) -> bool:
        if self._kind == "any_array":
            return True
        if self._kind == "path_matches":
            return re.search(self._value, path) is not None
        if self._kind == "name_matches":
            return re.search(self._value, path.rsplit("/", 1)[-1]) is not None
        if self._kind == "or":
            return any(c.matches(path) for c in self._value)
        if self._kind == "and":
            return all(c.matches(path) for c in self._value)
        return False

    def to_serde(self) -> Any:
        if self._kind == "any_array":
            return "any_array"
        if self._kind in ("path_matches", "name_matches"):
            return {self._kind: {"regex": self._value}}
        return {self._kind: [c.to_serde() for c in self._value]}

    @classmethod
    def from_serde(cls, value: Any) -> ManifestSplitCondition:
        if value == "any_array" or value == "AnyArray":
            return cls.AnyArray()
        if isinstance(value, dict) and len(value) == 1:
            ((kind, body),) = value.items()
            kind = _snake(kind)
            if kind in ("path_matches", "name_matches"):
                regex = body["regex"] if isinstance(body, dict) else body
                return cls(kind, regex)
            if kind in ("or", "and"):
                return cls(kind, [cls.from_serde(c) for c in body])
        raise InvalidInputError(f"unknown manifest split condition {value!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ManifestSplitCondition) and self.to_serde() == other.to_serde()

    def __hash__(self) -> int:
        return hash(repr(self.to_serde()))

    def __repr__(self) -> str:
        return f"ManifestSplitCondition({self.to_serde()!r})"


class ManifestSplitDimCondition:
    """Which dimensions of a matching array a split size applies to."""

    def __init__(self, kind: str, value: Any = None) -> None:
        self._kind = kind
        self._value = value

    @classmethod
    def Any(cls) -> ManifestSplitDimCondition:  # noqa: N802 - official name
        return cls("Any")

    @classmethod
    def Axis(cls, axis: int) -> ManifestSplitDimCondition:  # noqa: N802
        return cls("Axis", int(axis))

    @classmethod
    def DimensionName(cls, name: str) -> ManifestSplitDimCondition:  # noqa: N802
        return cls("DimensionName", name)

    def matches(self, axis: int, name: str | None) -> bool:
        if self._kind == "Any":
            return True
        if self._kind == "Axis":
            return axis == self._value
        return name is not None and re.search(self._value, name) is not None

    def to_serde(self) -> Any:
        return "Any" if self._kind == "Any" else {self._kind: self._value}

    @classmethod
    def from_serde(cls, value: Any) -> ManifestSplitDimCondition:
        if value == "Any":
            return cls.Any()
        if isinstance(value, dict) and len(value) == 1:
            ((kind, body),) = value.items()
            if kind in ("Axis", "DimensionName"):
                return cls(kind, body)
        raise InvalidInputError(f"unknown manifest split dimension condition {value!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ManifestSplitDimCondition) and self.to_serde() == other.to_serde()

    def __hash__(self) -> int:
        return hash(repr(self.to_serde()))

    def __repr__(self) -> str:
        return f"ManifestSplitDimCondition({self.to_serde()!r})"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass
class ManifestSplittingConfig:
    """Split each matching array's chunk grid into cells of ``num_chunks`` per dimension."""

    split_sizes: list[tuple[ManifestSplitCondition, list[tuple[ManifestSplitDimCondition, int]]]]

    @classmethod
    def from_dict(
        cls, split_sizes: dict[ManifestSplitCondition, dict[ManifestSplitDimCondition, int]]
    ) -> ManifestSplittingConfig:
        return cls([(cond, list(dims.items())) for cond, dims in split_sizes.items()])

    def to_dict(self) -> dict[ManifestSplitCondition, dict[ManifestSplitDimCondition, int]]:
        return {cond: dict(dims) for cond, dims in self.split_sizes}

    def split_sizes_for(
        self, path: str, ndim: int, dimension_names: tuple[str | None, ...] | None
    ) -> tuple[int, ...] | None:
        """Chunks per split cell along each dimension, or None when the array is not split."""
        for cond, dims in self.split_sizes:
            if not cond.matches(path):
                continue
            sizes = []
            for axis in range(ndim):
                name = dimension_names[axis] if dimension_names else None
                size = next((n for d, n in dims if d.matches(axis, name)), 0)
                sizes.append(size if size > 0 else 2**32)
            return tuple(sizes)
        return None

    def to_serde(self) -> Any:
        return {
            "split_sizes": [
                [cond.to_serde(), [{"condition": d.to_serde(), "num_chunks": n} for d, n in dims]]
                for cond, dims in self.split_sizes
            ]
        }

    @classmethod
    def from_serde(cls, value: Any) -> ManifestSplittingConfig:
        out = []
        for cond, dims in value.get("split_sizes") or []:
            out.append(
                (
                    ManifestSplitCondition.from_serde(cond),
                    [
                        (ManifestSplitDimCondition.from_serde(d["condition"]), int(d["num_chunks"]))
                        for d in dims
                    ],
                )
            )
        return cls(out)


class CompressionAlgorithm(enum.Enum):
    """Compression of metadata files (zstd is the only one the format defines)."""

    Zstd = 0

    @staticmethod
    def default() -> CompressionAlgorithm:
        return CompressionAlgorithm.Zstd


@dataclass
class CachingConfig:
    """Cache sizes (accepted for compatibility; this library sizes its caches itself)."""

    num_snapshot_nodes: int | None = None
    num_chunk_refs: int | None = None
    num_transaction_changes: int | None = None
    num_bytes_attributes: int | None = None
    num_bytes_chunks: int | None = None

    @classmethod
    def default(cls) -> CachingConfig:
        return cls()


class ManifestPreloadCondition(ManifestSplitCondition):
    """Which arrays' manifests to load when a session opens."""

    @classmethod
    def true(cls) -> ManifestPreloadCondition:
        return cls("any_array")

    @classmethod
    def false(cls) -> ManifestPreloadCondition:
        return cls("or", [])

    @classmethod
    def num_refs(cls, from_refs: int | None, to_refs: int | None) -> ManifestPreloadCondition:
        return cls("num_refs", (from_refs, to_refs))


# the official class also spells its constructors with capitals, True/False included
setattr(ManifestPreloadCondition, "True", ManifestPreloadCondition.true)  # noqa: B010
setattr(ManifestPreloadCondition, "False", ManifestPreloadCondition.false)  # noqa: B010
ManifestPreloadCondition.NumRefs = ManifestPreloadCondition.num_refs  # type: ignore[attr-defined]


@dataclass
class ManifestPreloadConfig:
    """Manifest preloading (accepted for compatibility; manifests load on first use here)."""

    max_total_refs: int | None = None
    preload_if: ManifestPreloadCondition | None = None
    max_arrays_to_scan: int | None = None


@dataclass
class CompressionConfig:
    algorithm: str | None = None
    level: int | None = None

    @classmethod
    def default(cls) -> CompressionConfig:
        return cls("zstd", DEFAULT_COMPRESSION_LEVEL)


@dataclass
class ManifestVirtualChunkLocationCompressionConfig:
    """zstd-dictionary compression of virtual chunk locations in manifests.

    A manifest with at least ``min_num_chunks`` references, of which at least
    ``min_num_chunks`` are virtual, stores its locations compressed with a
    dictionary (at most ``dictionary_max_size_bytes``) trained on up to
    ``dictionary_max_training_samples`` of them. None means the default
    (1000, 100, 2048, level 3).
    """

    min_num_chunks: int | None = None
    dictionary_max_training_samples: int | None = field(default=None, kw_only=True)
    dictionary_max_size_bytes: int | None = field(default=None, kw_only=True)
    compression_level: int | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        for name, (low, limit) in _LOCATION_COMPRESSION_LIMITS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInputError(f"{name} must be an int or None, got {value!r}")
            if not low <= value <= limit:
                raise InvalidInputError(f"{name} must be in [{low}, {limit}], got {value}")

    def to_serde(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_serde(cls, value: Any) -> ManifestVirtualChunkLocationCompressionConfig | None:
        if not isinstance(value, dict):
            return None
        return cls(**{name: value.get(name) for name in _LOCATION_COMPRESSION_LIMITS})


#: the allowed range of each ManifestVirtualChunkLocationCompressionConfig field
_LOCATION_COMPRESSION_LIMITS = {
    "min_num_chunks": (0, 2**16 - 1),
    "dictionary_max_training_samples": (0, 2**16 - 1),
    "dictionary_max_size_bytes": (0, 2**32 - 1),
    "compression_level": (-(2**31), 2**31 - 1),
}


@dataclass
class ManifestConfig:
    preload: Any = None
    splitting: ManifestSplittingConfig | None = None
    virtual_chunk_location_compression: ManifestVirtualChunkLocationCompressionConfig | None = None
    max_concurrent_manifest_fetches_during_commit: int | None = None

    @classmethod
    def default(cls) -> ManifestConfig:
        return cls()


@dataclass
class RepositoryConfig:
    """Repository settings. ``None`` means "use the default" (or the persisted value)."""

    inline_chunk_threshold_bytes: int | None = None
    get_partial_values_concurrency: int | None = None
    compression: CompressionConfig | None = None
    max_concurrent_requests: int | None = None
    caching: Any = None
    storage: Any = None
    virtual_chunk_containers: dict[str, Any] | None = None
    manifest: ManifestConfig | None = None
    repo_update_retries: Any = None
    num_updates_per_repo_info_file: int | None = None
    max_concurrent_decodes: int | None = None
    previous_file: str | None = None
    _other: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def default(cls) -> RepositoryConfig:
        return cls()

    # -- effective values ------------------------------------------------
    @property
    def effective_inline_threshold(self) -> int:
        v = self.inline_chunk_threshold_bytes
        return DEFAULT_INLINE_CHUNK_THRESHOLD_BYTES if v is None else v

    @property
    def effective_compression_level(self) -> int:
        if self.compression is None or self.compression.level is None:
            return DEFAULT_COMPRESSION_LEVEL
        return self.compression.level

    @property
    def splitting(self) -> ManifestSplittingConfig | None:
        return self.manifest.splitting if self.manifest is not None else None

    @property
    def location_compression(self) -> ManifestVirtualChunkLocationCompressionConfig:
        """The effective virtual-location compression settings of new manifests."""
        configured = (
            self.manifest.virtual_chunk_location_compression if self.manifest is not None else None
        )
        return configured or ManifestVirtualChunkLocationCompressionConfig()

    # -- virtual chunk containers ----------------------------------------
    def set_virtual_chunk_container(self, cont: Any) -> None:
        """Add (or replace) a virtual chunk container, keyed by its url_prefix.

        A named container replaces any other container of the same name.
        """
        from icechunk._virtual.containers import VirtualChunkContainer

        if not isinstance(cont, VirtualChunkContainer):
            raise InvalidInputError(
                f"expected an ic.VirtualChunkContainer, got {type(cont).__name__}"
            )
        containers = dict(self.virtual_chunk_containers or {})
        if cont.name is not None:
            containers = {k: v for k, v in containers.items() if v.name != cont.name}
        containers[cont.url_prefix] = cont
        self.virtual_chunk_containers = containers

    def get_virtual_chunk_container(self, name: str) -> Any:
        """The container registered under url prefix ``name``, or None."""
        return (self.virtual_chunk_containers or {}).get(name)

    def clear_virtual_chunk_containers(self) -> None:
        """Remove every virtual chunk container (the config then stores an empty map)."""
        self.virtual_chunk_containers = {}

    @property
    def effective_num_updates_per_repo_info_file(self) -> int:
        v = self.num_updates_per_repo_info_file
        return DEFAULT_NUM_UPDATES_PER_REPO_INFO_FILE if v is None else v

    # -- merge and serde -------------------------------------------------
    def merge(self, other: RepositoryConfig | None) -> RepositoryConfig:
        """This config with every field that ``other`` sets replaced by ``other``'s."""
        if other is None:
            return self
        merged = RepositoryConfig(**{k: getattr(self, k) for k in _FIELDS})
        merged._other = {**self._other, **other._other}
        for k in _FIELDS:
            if getattr(other, k) is not None:
                setattr(merged, k, getattr(other, k))
        return merged

    def to_serde(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self._other)
        out["inline_chunk_threshold_bytes"] = self.inline_chunk_threshold_bytes
        out["get_partial_values_concurrency"] = self.get_partial_values_concurrency
        out["num_updates_per_repo_info_file"] = self.num_updates_per_repo_info_file
        for name in (
            "max_concurrent_requests",
            "max_concurrent_decodes",
            "previous_file",
            "repo_update_retries",
        ):
            value = getattr(self, name)
            out[name] = value.to_serde() if hasattr(value, "to_serde") else value
        if self.compression is not None:
            out["compression"] = {
                "algorithm": self.compression.algorithm and "Zstd",
                "level": self.compression.level,
            }
        else:
            out.setdefault("compression", None)
        manifest = dict(out.get("manifest") or {}) if isinstance(out.get("manifest"), dict) else {}
        if self.manifest is not None:
            manifest.setdefault("preload", None)
            manifest["max_concurrent_manifest_fetches_during_commit"] = (
                self.manifest.max_concurrent_manifest_fetches_during_commit
            )
            manifest["splitting"] = (
                self.manifest.splitting.to_serde() if self.manifest.splitting else None
            )
            vlc = self.manifest.virtual_chunk_location_compression
            manifest["virtual_chunk_location_compression"] = (
                vlc.to_serde() if vlc is not None else None
            )
            out["manifest"] = manifest
        else:
            out.setdefault("manifest", None)
        if self.storage is not None and hasattr(self.storage, "to_dict"):
            out["storage"] = self.storage.to_dict()
        if self.virtual_chunk_containers is not None:
            out["virtual_chunk_containers"] = {
                prefix: cont.to_serde() for prefix, cont in self.virtual_chunk_containers.items()
            }
        else:
            out["virtual_chunk_containers"] = None
        for k in ("caching", "storage"):
            v = getattr(self, k)
            if k == "storage" and hasattr(v, "to_dict"):
                continue
            if isinstance(v, CachingConfig):
                out[k] = dataclasses.asdict(v)
            elif isinstance(v, dict | list) or v is None:
                out[k] = v if v is not None else out.get(k)
        return out

    def to_bytes(self) -> bytes:
        return encode_flexbuffer(self.to_serde(), "repository config")

    @classmethod
    def from_bytes(cls, data: bytes) -> RepositoryConfig:
        value = decode_flexbuffer(data)
        if not isinstance(value, dict):
            raise InvalidInputError("persisted repository config is not a map")
        cfg = cls()
        cfg.inline_chunk_threshold_bytes = value.get("inline_chunk_threshold_bytes")
        cfg.get_partial_values_concurrency = value.get("get_partial_values_concurrency")
        cfg.num_updates_per_repo_info_file = value.get("num_updates_per_repo_info_file")
        cfg.max_concurrent_requests = value.get("max_concurrent_requests")
        cfg.max_concurrent_decodes = value.get("max_concurrent_decodes")
        cfg.previous_file = value.get("previous_file")
        cfg.repo_update_retries = value.get("repo_update_retries")
        comp = value.get("compression")
        if isinstance(comp, dict):
            cfg.compression = CompressionConfig(
                "zstd" if comp.get("algorithm") else None, comp.get("level")
            )
        manifest = value.get("manifest")
        if isinstance(manifest, dict):
            splitting = manifest.get("splitting")
            cfg.manifest = ManifestConfig(
                virtual_chunk_location_compression=(
                    ManifestVirtualChunkLocationCompressionConfig.from_serde(
                        manifest.get("virtual_chunk_location_compression")
                    )
                ),
                max_concurrent_manifest_fetches_during_commit=manifest.get(
                    "max_concurrent_manifest_fetches_during_commit"
                ),
                preload=manifest.get("preload"),
                splitting=ManifestSplittingConfig.from_serde(splitting) if splitting else None,
            )
        cfg.caching = value.get("caching")
        cfg.storage = value.get("storage")
        containers = value.get("virtual_chunk_containers")
        if isinstance(containers, dict):
            from icechunk._virtual.containers import VirtualChunkContainer

            cfg.virtual_chunk_containers = {
                str(prefix): VirtualChunkContainer.from_serde(cont)
                for prefix, cont in containers.items()
            }
        cfg._other = {k: v for k, v in value.items() if k not in _KNOWN_KEYS}
        return cfg


_FIELDS = (
    "inline_chunk_threshold_bytes",
    "get_partial_values_concurrency",
    "compression",
    "max_concurrent_requests",
    "caching",
    "storage",
    "virtual_chunk_containers",
    "manifest",
    "repo_update_retries",
    "num_updates_per_repo_info_file",
    "max_concurrent_decodes",
    "previous_file",
)
_KNOWN_KEYS = set(_FIELDS)
