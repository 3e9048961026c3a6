"""What changed between two versions of a repository, per variable.

``repo.diff(...)`` lists node paths and chunk coordinates; :func:`diff` turns that into one
row per variable (array) of a group: added, deleted or modified, whether its metadata
(attributes, shape, encoding) changed, how many of its chunks were rewritten and which index
ranges of which dimensions those chunks cover::

    >>> print(icechunk_xarray.diff(repo, from_tag="v1", to_branch="main"))
    Changes from 1CECHNKREP0F1RSTCMT0 to 5JDSHXMM45RFNGWDP40G
    variable  change    metadata  chunks   where
    tas       modified  yes       2 of 8   time[4:7]
    time      modified  yes       2 of 2   time[4:7]
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import zarr

from icechunk.exceptions import InvalidInputError
from icechunk.repository import Diff, Repository
from icechunk.session import Session

__all__ = ["VariableChange", "VersionDiff", "diff"]


@dataclass
class VariableChange:
    """How one variable (Zarr array) changed between two versions."""

    name: str
    """Path of the array relative to the group compared."""
    status: str
    """``"added"``, ``"deleted"`` or ``"modified"``."""
    metadata_changed: bool = False
    """Its ``zarr.json`` changed: attributes, shape (e.g. an append), codecs ..."""
    dims: tuple[str, ...] | None = None
    shape: tuple[int, ...] | None = None
    chunk_shape: tuple[int, ...] | None = None
    changed_chunks: list[tuple[int, ...]] = field(default_factory=list)
    """Coordinates (chunk indices) of the chunks written."""

    @property
    def n_changed_chunks(self) -> int:
        return len(self.changed_chunks)

    @property
    def n_chunks(self) -> int | None:
        """How many chunks the array has (in the newer version)."""
        if self.shape is None or self.chunk_shape is None:
            return None
        return math.prod(math.ceil(s / c) if c else 0 for s, c in zip(self.shape, self.chunk_shape))

    @property
    def extent(self) -> dict[str, slice]:
        """Per dimension, the index range covered by the changed chunks."""
        if not self.changed_chunks or self.shape is None or self.chunk_shape is None:
            return {}
        names = self.dims or tuple(f"dim_{i}" for i in range(len(self.shape)))
        out = {}
        for axis, (name, size, chunk) in enumerate(zip(names, self.shape, self.chunk_shape)):
            low = min(c[axis] for c in self.changed_chunks) * chunk
            high = min((max(c[axis] for c in self.changed_chunks) + 1) * chunk, size)
            out[name] = slice(low, high)
        return out

    def where(self) -> str:
        """The extent as text, leaving out dimensions covered whole."""
        if not self.changed_chunks:
            return ""
        extent = self.extent
        if not extent:
            return f"{self.n_changed_chunks} chunk(s)"
        sizes = dict(zip(extent, self.shape or ()))
        parts = [
            f"{dim}[{s.start}:{s.stop}]"
            for dim, s in extent.items()
            if not (s.start == 0 and s.stop == sizes.get(dim))
        ]
        return ", ".join(parts) if parts else "everywhere"


@dataclass
class VersionDiff:
    """The changes between two versions of a repository, by variable (see :func:`diff`)."""

    from_snapshot_id: str
    to_snapshot_id: str
    group: str
    variables: dict[str, VariableChange]
    new_groups: list[str]
    deleted_groups: list[str]
    updated_groups: list[str]
    raw: Diff = field(repr=False)
    """The repository-level :class:`icechunk.Diff` this was built from."""

    def is_empty(self) -> bool:
        return not (self.variables or self.new_groups or self.deleted_groups or self.updated_groups)

    def __getitem__(self, name: str) -> VariableChange:
        return self.variables[name]

    def __contains__(self, name: object) -> bool:
        return name in self.variables

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.variables.values())

    def __len__(self) -> int:
        return len(self.variables)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per variable: variable, change, metadata, chunks, where."""
        rows = []
        for name in sorted(self.variables):
            change = self.variables[name]
            total = change.n_chunks
            chunks = (
                f"{change.n_changed_chunks} of {total}"
                if total is not None and change.status != "deleted"
                else str(change.n_changed_chunks)
            )
            rows.append(
                {
                    "variable": name,
                    "change": change.status,
                    "metadata": "yes" if change.metadata_changed else "",
                    "chunks": chunks if change.status != "deleted" else "",
                    "where": change.where() if change.status != "deleted" else "",
                }
            )
        return rows

    def to_dataframe(self) -> Any:
        """The rows as a pandas DataFrame indexed by variable."""
        import pandas as pd

        columns = ["variable", "change", "metadata", "chunks", "where"]
        return pd.DataFrame(self.rows(), columns=columns).set_index("variable")

    def _title(self) -> str:
        where = f" in group /{self.group}" if self.group else ""
        return f"Changes from {self.from_snapshot_id} to {self.to_snapshot_id}{where}"

    def _group_lines(self) -> list[str]:
        lines = []
        for label, names in (
            ("new groups", self.new_groups),
            ("deleted groups", self.deleted_groups),
            ("groups with changed attributes", self.updated_groups),
        ):
            if names:
                lines.append(f"{label}: {', '.join(n or '/' for n in names)}")
        return lines

    def __str__(self) -> str:
        lines = [self._title()]
        rows = self.rows()
        if rows:
            header = list(rows[0])
            widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in header]
            lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
            for row in rows:
                lines.append(
                    "  ".join(str(row[h]).ljust(w) for h, w in zip(header, widths)).rstrip()
                )
        lines.extend(self._group_lines())
        if self.is_empty():
            lines.append("no changes")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        from html import escape

        parts = [f"<p><b>{escape(self._title())}</b></p>"]
        rows = self.rows()
        if rows:
            header = "".join(f"<th>{escape(h)}</th>" for h in rows[0])
            body = "".join(
                "<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row.values()) + "</tr>"
                for row in rows
            )
            parts.append(f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>")
        parts.extend(f"<p>{escape(line)}</p>" for line in self._group_lines())
        if self.is_empty():
            parts.append("<p>no changes</p>")
        return "".join(parts)


def diff(
    repo: Repository | Session,
    *,
    from_branch: str | None = None,
    from_tag: str | None = None,
    from_snapshot_id: str | None = None,
    to_branch: str | None = None,
    to_tag: str | None = None,
    to_snapshot_id: str | None = None,
    group: str | None = None,
    variables: Iterable[str] | None = None,
) -> VersionDiff:
    """The changes from one version to a later one, per variable of ``group``.

    Give one of ``from_branch``/``from_tag``/``from_snapshot_id`` and one of the ``to_*``
    arguments (the ``from`` version must be an ancestor of the ``to`` version, as for
    ``Repository.diff``). ``group`` limits the report to the arrays under that group (names
    are relative to it); ``variables`` limits it further to those names.
    """
    if isinstance(repo, Session):
        repo = repo.repository
    if not isinstance(repo, Repository):
        raise InvalidInputError(f"diff needs an icechunk Repository, got {type(repo).__name__}")
    old = _snapshot_of(repo, from_branch, from_tag, from_snapshot_id, "from")
    new = _snapshot_of(repo, to_branch, to_tag, to_snapshot_id, "to")
    raw = repo.diff(from_snapshot_id=old, to_snapshot_id=new)
    prefix = "/" + group.strip("/") if group and group.strip("/") else ""
    wanted = set(variables) if variables is not None else None

    def relative(path: str) -> str | None:
        if prefix and not (path == prefix or path.startswith(prefix + "/")):
            return None
        name = path[len(prefix) :].lstrip("/")
        if wanted is not None and name not in wanted:
            return None
        return name

    changes: dict[str, VariableChange] = {}
    new_session = old_session = None
    for status, paths in (
        ("added", raw.new_arrays),
        ("deleted", raw.deleted_arrays),
        ("modified", raw.updated_arrays | set(raw.updated_chunks)),
    ):
        for path in sorted(paths):
            name = relative(path)
            if name is None or name in changes:
                continue
            change = VariableChange(
                name=name,
                status=status,
                metadata_changed=path in raw.updated_arrays,
                changed_chunks=[tuple(c) for c in raw.updated_chunks.get(path, [])],
            )
            if status == "deleted":
                old_session = old_session or repo.readonly_session(snapshot_id=old)
                _describe_array(change, old_session, path)
            else:
                new_session = new_session or repo.readonly_session(snapshot_id=new)
                _describe_array(change, new_session, path)
            changes[name] = change

    def groups(paths: set[str]) -> list[str]:
        names = [relative(p) for p in sorted(paths)]
        return [n for n in names if n is not None]

    return VersionDiff(
        from_snapshot_id=old,
        to_snapshot_id=new,
        group=prefix.lstrip("/"),
        variables=changes,
        new_groups=groups(raw.new_groups),
        deleted_groups=groups(raw.deleted_groups),
        updated_groups=groups(raw.updated_groups),
        raw=raw,
    )


def _snapshot_of(
    repo: Repository, branch: str | None, tag: str | None, snapshot_id: str | None, side: str
) -> str:
    given = [v for v in (branch, tag, snapshot_id) if v is not None]
    if len(given) != 1:
        raise InvalidInputError(
            f"give exactly one of {side}_branch=, {side}_tag= and {side}_snapshot_id="
        )
    if branch is not None:
        return repo.lookup_branch(branch)
    if tag is not None:
        return repo.lookup_tag(tag)
    return str(snapshot_id)


def _describe_array(change: VariableChange, session: Session, path: str) -> None:
    try:
        array = zarr.open_array(session.store, path=path.lstrip("/"), mode="r", zarr_format=3)
    except Exception:  # not readable through zarr: leave the shape unknown
        return
    change.shape = tuple(array.shape)
    shards = getattr(array, "shards", None)
    change.chunk_shape = tuple(shards or array.chunks)
    names = getattr(array.metadata, "dimension_names", None)
    if names is not None and all(n is not None for n in names):
        change.dims = tuple(str(n) for n in names)
