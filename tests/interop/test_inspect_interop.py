"""``Repository.inspect_*``: ours and the official package (2.3.0) on the same files.

``scenarios/write_inspect.py`` writes a repository (commits with inline and native
chunks, a tag, a deleted tag, branches, a move, an amend, a detached snapshot and
the repository-level records); ``scenarios/inspect_repo.py`` then runs every
``inspect_*`` on every metadata file, once under each package. The two outputs must
be identical.

The repository is written by our package, and (second case) by the official one
with an expiration at the end, so the transaction-log merge of expired ancestors
(``synthetic_composite``) is compared too.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers import official_env

# the first test of a session may build the official virtualenv (pip install)
pytestmark = [pytest.mark.interop, pytest.mark.timeout(official_env.BUILD_TIMEOUT + 900)]

WRITE_INSPECT = official_env.SCENARIO_DIR / "write_inspect.py"
INSPECT_REPO = official_env.SCENARIO_DIR / "inspect_repo.py"
MAX_REPORTED_DIFFERENCES = 40


def differences(left, right, path="$"):
    """A line per difference; strict about types (1, 1.0 and True all differ)."""
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            if key not in right:
                yield f"{path}[{key!r}]: only official: {json.dumps(left[key])[:200]}"
            elif key not in left:
                yield f"{path}[{key!r}]: only ours: {json.dumps(right[key])[:200]}"
            else:
                yield from differences(left[key], right[key], f"{path}[{key!r}]")
    elif isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            yield f"{path}: official has {len(left)} items, ours {len(right)}"
        for i, (a, b) in enumerate(zip(left, right, strict=False)):
            yield from differences(a, b, f"{path}[{i}]")
    elif type(left) is not type(right) or left != right:
        yield f"{path}: official {left!r} != ours {right!r}"


def unavailable(dump: dict) -> list[str]:
    out = [] if isinstance(dump["repo"], dict) else [f"repo: {dump['repo']}"]
    for kind in ("snapshots", "manifests", "transactions"):
        out += [f"{kind}/{i}: {v}" for i, v in dump[kind].items() if not isinstance(v, dict)]
    return out


@pytest.mark.parametrize("writer", ["ours", "official"])
def test_inspect_output_equals_official(writer, run_ours, run_official, tmp_path):
    repo = tmp_path / "repo"
    if writer == "ours":
        ids = run_ours(WRITE_INSPECT, repo)
    else:
        ids = run_official(WRITE_INSPECT, repo, "--expire")

    official = run_official(INSPECT_REPO, repo)
    ours = run_ours(INSPECT_REPO, repo)

    # the official package could read everything, so the comparison covers it all
    assert not unavailable(official)
    assert official["repo"]["deleted_tags"] == ["doomed"]
    assert official["repo"]["tags"] == {"v1": ids["c1"]}
    assert set(official["repo"]["branches"]) == {"main", "dev"}
    manifests = official["manifests"].values()
    assert sum(m["total_inline"] for m in manifests) > 0
    assert sum(m["total_native"] for m in manifests) > 0
    assert any(t["moved_nodes"] for t in official["transactions"].values())
    composites = [
        t["synthetic_composite"]
        for t in official["transactions"].values()
        if "synthetic_composite" in t
    ]
    assert bool(composites) == (writer == "official")
    if writer == "ours":
        assert official["repo"]["header"]["written_by"] == "icechunk-py-0.1.0"

    diffs = list(differences(official, ours))
    if diffs:
        for name, dump in (("official", official), ("ours", ours)):
            (tmp_path / f"inspect-{name}.json").write_text(
                json.dumps(dump, indent=1, sort_keys=True, ensure_ascii=False)
            )
        shown = "\n".join(diffs[:MAX_REPORTED_DIFFERENCES])
        pytest.fail(
            f"{len(diffs)} differences between the official inspect_* output (left) and "
            f"ours (right); both saved in {tmp_path}\n{shown}",
            pytrace=False,
        )
