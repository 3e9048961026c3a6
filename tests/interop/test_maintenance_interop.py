"""Maintenance (expire_snapshots, garbage_collect, rewrite_manifests) against the official
package (2.3.0).

``scenarios/maintenance_read.py build`` writes the same history under each implementation
and runs expiration and GC with a cutoff in the middle of it; naming snapshots by their
commit message, both must release, delete and re-parent exactly the same things. Then each
implementation reads the other's repository (``read``): every branch, tag and snapshot of
their histories must read the same in both.
"""

from __future__ import annotations

import pytest

from tests.helpers import official_env

pytestmark = [pytest.mark.interop, pytest.mark.timeout(official_env.BUILD_TIMEOUT + 900)]

SCENARIO = "maintenance_read.py"
INITIAL_SNAPSHOT = "1CECHNKREP0F1RSTCMT0"


@pytest.fixture(scope="module")
def built(tmp_path_factory, official_python) -> dict:
    """Our repository and the official one, after the same maintenance."""
    official_env.check_ours_is_ours()
    root = tmp_path_factory.mktemp("maintenance")
    ours, official = root / "ours", root / "official"
    return {
        "ours": (ours, official_env.run_ours(SCENARIO, "build", ours)),
        "official": (official, official_env.run_official(SCENARIO, "build", official)),
    }


def test_maintenance_does_what_the_official_package_does(built) -> None:
    _, ours = built["ours"]
    _, official = built["official"]
    assert ours.keys() == official.keys()
    for key in official:
        assert ours[key] == official[key], key
    # the scenario exercises what it means to
    assert official["gc"]["chunks"] > 0 and official["gc"]["transaction_logs"] > 0
    assert official["dry_run"] == official["gc"]
    assert "r1" not in official["files"]["snapshots"]
    assert "r1" in official["files"]["transactions"]  # pruned ancestor of the kept r2


@pytest.mark.parametrize("writer", ["ours", "official"])
def test_both_read_the_repository_after_maintenance(built, writer) -> None:
    path, _ = built[writer]
    read_by_official = official_env.run_official(SCENARIO, "read", path)
    read_by_ours = official_env.run_ours(SCENARIO, "read", path)
    assert read_by_ours == read_by_official
    refs = read_by_official["refs"]
    assert set(refs) == {"branch:main", "branch:dev", "branch:reset", "tag:v1"}
    for name, ref in refs.items():
        assert ref["values"] == ref["history_values"][0]
        # expiration left tip -> root (main also has the rewrite_manifests commit)
        assert len(ref["ancestry"]) == (3 if name == "branch:main" else 2)
        assert ref["ancestry"][-1] == INITIAL_SNAPSHOT
    assert read_by_official["ops"][:2] == ["NewCommit", "GCRan"]
    assert read_by_official["stats"][0] == read_by_official["total_chunks_storage"] > 0
