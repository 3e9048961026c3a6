"""AncestryGraph: the commit history of a repository, drawn as text or SVG."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from icechunk.format.repo_info import RepoInfo, SnapshotEntry


@dataclass
class AncestryGraph:
    """Commits newest first, each with the refs pointing at it and its parent."""

    entries: list[SnapshotEntry]
    labels: dict[str, list[str]] = field(default_factory=dict)
    plain: bool = False

    @classmethod
    def build(cls, info: RepoInfo, starts: list[str], plain: bool) -> AncestryGraph:
        seen: dict[str, SnapshotEntry] = {}
        for start in starts:
            current: str | None = start
            while current is not None and current not in seen:
                entry = info.snapshots[current]
                seen[current] = entry
                current = entry.parent_id
        labels: dict[str, list[str]] = {}
        for name, target in sorted(info.branches.items()):
            labels.setdefault(target, []).append(name)
        for name, target in sorted(info.tags.items()):
            labels.setdefault(target, []).append(f"tag: {name}")
        entries = sorted(seen.values(), key=lambda e: e.flushed_at, reverse=True)
        return cls(entries, {k: v for k, v in labels.items() if k in seen}, plain)

    def lines(self) -> list[str]:
        out = []
        for entry in self.entries:
            refs = self.labels.get(entry.id)
            label = f" ({', '.join(refs)})" if refs else ""
            parent = f" <- {entry.parent_id[:8]}" if entry.parent_id else ""
            out.append(f"* {entry.id[:12]}{label} {entry.message}{parent}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        return f"<AncestryGraph of {len(self.entries)} snapshots>"

    def _repr_svg_(self) -> str:
        height = 22 * len(self.entries) + 10
        rows = []
        for i, line in enumerate(self.lines()):
            y = 22 * i + 20
            fill = "#000" if self.plain else "#1f6feb"
            rows.append(f'<circle cx="10" cy="{y - 4}" r="4" fill="{fill}"/>')
            rows.append(f'<text x="22" y="{y}" font-family="monospace">{escape(line[2:])}</text>')
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="900" height="{height}">'
            + "".join(rows)
            + "</svg>"
        )
