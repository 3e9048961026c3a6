"""The public API of the official icechunk package, name by name, against ours.

``scenarios/api_surface.py`` describes the public API of whichever package
it imports; it runs under the official package and under ours, and
``tools/compat_report.py`` merges both descriptions with the hand-written
reasons in ``docs/compatibility_status.json`` into ``docs/compatibility.md``.

These tests fail when

- an official public name (top level, a member of an official class, or a
  name a submodule exports) is missing here and no entry of the status file
  says why (``not yet`` with its issue, or ``absent`` with a reason);
- an entry says ``not yet`` / ``absent`` for a name we now provide, or
  matches no official name (the page would be stale the other way);
- the status file is malformed;
- ``docs/compatibility.md`` is not what the tool would write now.

The usual fix after adding names to ``src/icechunk``: ``make compat`` (it
runs ``tools/compat_report.py --prune``, which deletes the entries the new
names made stale, then regenerates the page); review both diffs.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.helpers import official_env

# the first test of a session may build the official virtualenv (pip install)
pytestmark = [pytest.mark.interop, pytest.mark.timeout(official_env.BUILD_TIMEOUT + 900)]

SCENARIO = official_env.SCENARIO_DIR / "api_surface.py"
TOOL = official_env.REPO_ROOT / "tools" / "compat_report.py"
FIX_HINT = (
    "run `make compat`: it deletes the entries of docs/compatibility_status.json that names "
    "landed since have made stale, and regenerates docs/compatibility.md; review both diffs"
)


def _load_tool():
    spec = importlib.util.spec_from_file_location("compat_report", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("compat_report", module)
    spec.loader.exec_module(module)
    return module


compat_report = _load_tool()


@pytest.fixture(scope="module")
def surfaces(run_official, run_ours):
    return run_official(SCENARIO), run_ours(SCENARIO)


@pytest.fixture(scope="module")
def status():
    return compat_report.load_status()


@pytest.fixture(scope="module")
def report(surfaces, status):
    if official_env.selftest():
        pytest.skip("ICECHUNK_INTEROP_SELFTEST=1 runs 'ours' with the official package")
    official, ours = surfaces
    return compat_report.build_report(official, ours, status)


def _listing(lines: list[str], limit: int = 80) -> str:
    shown = "\n".join(f"  - {line}" for line in lines[:limit])
    if len(lines) > limit:
        shown += f"\n  ... and {len(lines) - limit} more"
    return shown


def test_introspection_sees_the_official_api(surfaces):
    """Guard against an introspection that silently finds nothing."""
    official, ours = surfaces
    top = official["top"]
    assert official["package"]["version"] == official_env.ICECHUNK_VERSION
    assert len(top) > 100, sorted(top)
    for name in ("Repository", "Session", "IcechunkStore", "RepositoryConfig", "SnapshotInfo"):
        assert top[name]["kind"] == "class", (name, top[name])
    repo = top["Repository"]["members"]
    assert len(repo) > 60, sorted(repo)
    assert repo["writable_session"]["kind"] == "method"
    assert [p["name"] for p in repo["writable_session"]["params"]] == ["branch"]
    assert repo["spec_version"]["kind"] in ("property", "attribute")
    # pyo3 classes: text signatures, getset descriptors, enum-like members
    config = top["RepositoryConfig"]
    assert "inline_chunk_threshold_bytes" in [p["name"] for p in config["params"]]
    assert config["members"]["inline_chunk_threshold_bytes"]["kind"] == "attribute"
    assert set(top["ChunkType"]["enum_members"]) >= {"native", "inline", "virtual"}
    assert top["ConflictError"]["icechunk_bases"] == ["IcechunkError"]
    assert "zarr.abc.store.Store" in top["IcechunkStore"]["foreign_bases"]
    # submodules users import, even where the optional dependency is missing
    for module in ("icechunk.xarray", "icechunk.dask", "icechunk.distributed"):
        assert official["modules"][module]["status"] in ("imported", "source"), module
    assert "to_icechunk" in official["modules"]["icechunk.xarray"]["names"]
    assert "store_dask" in official["modules"]["icechunk.dask"]["names"]
    # ours is introspected from src/, the same way
    assert official_env.selftest() or ours["package"]["file"].startswith(
        str(official_env.SRC_DIR)
    ), ours["package"]["file"]
    assert ours["top"]["Repository"]["kind"] == "class"


def test_status_file_is_valid(status):
    problems = compat_report.validate_status(status)
    assert not problems, "docs/compatibility_status.json:\n" + _listing(problems)


def test_every_official_name_is_here_or_explained(report):
    assert not report.unlisted, (
        f"{len(report.unlisted)} official public names are missing here and "
        "docs/compatibility_status.json does not say why; implement them or add an entry "
        "('not yet' with the issue that brings them, or 'absent' with a reason):\n"
        + _listing(report.unlisted)
    )


def test_no_stale_status_entries(report):
    assert not report.stale, (
        "docs/compatibility_status.json has entries that no longer hold; "
        + FIX_HINT
        + ":\n"
        + _listing(report.stale)
    )


def test_compatibility_page_is_up_to_date(report, status):
    expected = compat_report.render_markdown(report, status)
    page = compat_report.PAGE
    current = page.read_text(encoding="utf-8") if page.exists() else ""
    if current == expected:
        return
    import difflib

    diff = list(
        difflib.unified_diff(
            current.splitlines(),
            expected.splitlines(),
            "docs/compatibility.md (on disk)",
            "docs/compatibility.md (generated now)",
            lineterm="",
            n=0,
        )
    )
    pytest.fail(
        f"docs/compatibility.md is out of date: {FIX_HINT}\n" + "\n".join(diff[:80]),
        pytrace=False,
    )
