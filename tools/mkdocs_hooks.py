"""mkdocs hooks (``hooks:`` in mkdocs.yml) that keep the nav in step with ``docs/``.

- A page of ``docs/`` that the nav does not list is added under "More", so a new page is
  always reachable (and never silently left out of the site).
- Guides that the nav lists but that have not been written yet (``PENDING``) get a short
  placeholder page, so that ``mkdocs build --strict`` passes while they are being written.
  Any other missing page is left to mkdocs, which fails the strict build.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.icechunk")

PENDING = {
    "concurrency.md": "Concurrency and distributed writes",
    "storage.md": "Storage",
}


def _nav_pages(nav: Any) -> set[str]:
    pages: set[str] = set()
    if isinstance(nav, str):
        pages.add(nav)
    elif isinstance(nav, list):
        for item in nav:
            pages |= _nav_pages(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            pages |= _nav_pages(value)
    return pages


def on_config(config: Any) -> Any:
    docs = Path(config["docs_dir"])
    listed = _nav_pages(config["nav"] or [])
    extra = sorted(
        str(path.relative_to(docs)).replace("\\", "/")
        for path in docs.rglob("*.md")
        if not any(part.startswith((".", "_")) for part in path.relative_to(docs).parts)
    )
    extra = [page for page in extra if page not in listed]
    if extra:
        log.info("pages not in the nav, added under 'More': %s", ", ".join(extra))
        config["nav"].append({"More": extra})
    return config


def on_files(files: Files, config: Any) -> Files:
    for name, title in PENDING.items():
        if files.get_file_from_path(name) is None:
            log.info("%s is not written yet: using a placeholder page", name)
            files.append(
                File.generated(
                    config,
                    name,
                    content=f"# {title}\n\nThis guide is being written.\n",
                )
            )
    return files
