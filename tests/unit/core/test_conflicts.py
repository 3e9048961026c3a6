"""Conflicts between two sessions on one branch, rebase, and the conflict solvers.

Most scenarios are *data* (``conflict_cases.py``); each is played here with our package
and compared with its expected outcome, and, in the interop test, with what the official
package does with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
import zarr.api.asynchronous

import icechunk as ic
from tests.helpers.conflict_cases import (
    CASES,
    apply_edits,
    describe_conflicts,
    make_repo,
    run_named,
    tree_state,
)
from tests.helpers.paths import TESTS

BASE = {
    "/": {"attrs": {}},
    "/a": {"attrs": {}, "data": [0, 0, 0, 0]},
    "/g": {"attrs": {"k": 0}},
    "/g/b": {"attrs": {}, "data": [0, 0, 0, 0]},
}


def expect_state(**changes: Any) -> dict[str, Any]:
    """The setup tree with some entries replaced (value None: entry removed)."""
    state = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        path = "/" + key.replace("__", "/") if key != "root" else "/"
        if value is None:
            state.pop(path, None)
        else:
            state[path] = value
    return state


def failed(*conflicts: list[Any]) -> dict[str, Any]:
    return {"error": "RebaseFailedError", "conflicts": sorted(conflicts, key=json.dumps)}


EXPECTED: dict[str, dict[str, Any]] = {
    "disjoint-detector": {"state": expect_state(a={"attrs": {}, "data": [1, 2, 0, 0]})},
    "disjoint-no-rebase": {"error": "ConflictError"},
    "overlap-detector": failed(["ChunkDoubleUpdate", "/a", [[1], [2]]]),
    "overlap-ours": {"state": expect_state(a={"attrs": {}, "data": [1, 2, 2, 2]})},
    "overlap-theirs": {"state": expect_state(a={"attrs": {}, "data": [1, 1, 1, 2]})},
    "overlap-fail": failed(["ChunkDoubleUpdate", "/a", [[1], [2]]]),
    "array-attrs-differ": failed(["ZarrMetadataDoubleUpdate", "/a", None]),
    "group-attrs-differ": failed(["ZarrMetadataDoubleUpdate", "/g", None]),
    # different keys, but the same zarr.json document: a double update
    "root-attrs-differ": failed(["ZarrMetadataDoubleUpdate", "/", None]),
    "array-attrs-differ-basic": failed(["ZarrMetadataDoubleUpdate", "/a", None]),
    "array-attrs-same": {"state": expect_state(a={"attrs": {"x": 1}, "data": [0, 0, 0, 0]})},
    "group-attrs-same": {"state": expect_state(g={"attrs": {"k": 0, "x": 1}})},
    "attrs-of-other-nodes": {
        "state": expect_state(
            a={"attrs": {"x": 1}, "data": [0, 0, 0, 0]},
            g__b={"attrs": {"x": 2}, "data": [0, 0, 0, 0]},
        )
    },
    "new-node-same-path": failed(["NewNodeConflictsWithExistingNode", "/n", None]),
    "new-node-same-path-basic": failed(["NewNodeConflictsWithExistingNode", "/n", None]),
    "new-node-in-deleted-group": failed(["NewNodeInInvalidGroup", "/g/c", None]),
    "new-node-elsewhere": {
        "state": expect_state(n={"attrs": {}, "data": [0, 0]}, m={"attrs": {}}),
    },
    "attrs-of-deleted-array": failed(["ZarrMetadataUpdateOfDeletedArray", "/a", None]),
    "attrs-of-deleted-group": failed(["ZarrMetadataUpdateOfDeletedGroup", "/g", None]),
    "chunks-in-deleted-array": failed(["ChunksUpdatedInDeletedArray", "/a", None]),
    "chunks-in-deleted-array-basic": failed(["ChunksUpdatedInDeletedArray", "/a", None]),
    "chunks-in-resized-array": failed(["ChunksUpdatedInUpdatedArray", "/a", None]),
    # our improvement: an attribute edit does not move any chunk
    "chunks-in-array-with-new-attrs": {
        "state": expect_state(a={"attrs": {"x": 1}, "data": [5, 0, 0, 0]})
    },
    "chunks-in-array-with-new-dtype": failed(["ChunksUpdatedInUpdatedArray", "/a", None]),
    "truncated-chunk-written-by-them": failed(["ChunkDoubleUpdate", "/a", [[3]]]),
    "delete-of-updated-array-detector": failed(["DeleteOfUpdatedArray", "/a", None]),
    "delete-of-updated-array-basic": {"state": expect_state(a=None)},
    "delete-of-updated-array-fail": failed(["DeleteOfUpdatedArray", "/a", None]),
    "delete-of-array-with-new-attrs-basic": {"state": expect_state(a=None)},
    "delete-of-updated-group-detector": failed(["DeleteOfUpdatedGroup", "/g", None]),
    "delete-of-updated-group-basic": {"state": expect_state(g=None, g__b=None)},
    "delete-of-updated-group-fail": failed(["DeleteOfUpdatedGroup", "/g", None]),
    "delete-of-group-with-new-child-basic": {"state": expect_state(g=None, g__b=None)},
    "both-delete": {"state": expect_state(a=None)},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_case(name: str) -> None:
    assert run_named(ic, name) == EXPECTED[name]


def test_every_conflict_type_but_move_is_covered() -> None:
    produced = {
        conflict[0] for outcome in EXPECTED.values() for conflict in outcome.get("conflicts", [])
    }
    expected = {t.name for t in ic.ConflictType} - {"MoveOperationCannotBeRebased"}
    assert produced == expected


# ---------------------------------------------------------------------------
# the errors themselves


def test_conflict_error_names_both_parents() -> None:
    repo = make_repo(ic)
    base = repo.lookup_branch("main")
    first, second = repo.writable_session("main"), repo.writable_session("main")
    apply_edits(first.store, [["write", "a", 0, 1]])
    apply_edits(second.store, [["write", "a", 1, 2]])
    landed = first.commit("first")
    with pytest.raises(ic.ConflictError) as info:
        second.commit("second")
    assert not isinstance(info.value, ic.RebaseFailedError)
    assert info.value.expected_parent == base
    assert info.value.actual_parent == landed
    assert base in str(info.value) and landed in str(info.value)
    # the session is still usable: rebase and commit
    assert second.has_uncommitted_changes
    second.rebase(ic.ConflictDetector())
    assert second.snapshot_id == landed
    final = second.commit("second, rebased")
    assert [s.id for s in repo.ancestry(branch="main")][:3] == [final, landed, base]
    assert tree_state(repo.readonly_session(branch="main"))["/a"]["data"] == [1, 2, 0, 0]


def test_rebase_failed_error_lists_conflicts() -> None:
    repo = make_repo(ic)
    ours, theirs = repo.writable_session("main"), repo.writable_session("main")
    apply_edits(theirs.store, [["write", "a", slice(0, 4), 1], ["write", "g/b", 3, 1]])
    apply_edits(theirs.store, [["attr", "g", "x", 1]])
    tip = theirs.commit("theirs")
    apply_edits(ours.store, [["write", "a", slice(2, 4), 2], ["write", "g/b", 3, 2]])
    apply_edits(ours.store, [["attr", "g", "x", 2]])
    with pytest.raises(ic.RebaseFailedError) as info:
        ours.rebase(ic.ConflictDetector())
    error = info.value
    assert isinstance(error, ic.ConflictError)
    assert error.snapshot == tip
    assert set(error.conflicts) == {
        ic.Conflict(ic.ConflictType.ChunkDoubleUpdate, "/a"),
        ic.Conflict(ic.ConflictType.ChunkDoubleUpdate, "/g/b"),
        ic.Conflict(ic.ConflictType.ZarrMetadataDoubleUpdate, "/g"),
    }
    by_path = {c.path: c for c in error.conflicts}
    assert sorted(by_path["/a"].conflicted_chunks) == [[2], [3]]
    assert by_path["/g/b"].conflicted_chunks == [[3]]
    assert by_path["/g"].conflicted_chunks in (None, [])
    text = str(error)
    assert "3 conflict" in text and "/g/b" in text and "ChunkDoubleUpdate" in text


def test_conflict_repr_and_equality() -> None:
    many = ic.Conflict(ic.ConflictType.ChunkDoubleUpdate, "/a", [[i] for i in range(8)])
    assert "ChunkDoubleUpdate" in repr(many) and "'/a'" in repr(many) and "+3 more" in repr(many)
    assert many == ic.Conflict(ic.ConflictType.ChunkDoubleUpdate, "/a", [[0]])
    assert ic.ConflictType.ChunkDoubleUpdate.value == 6  # the official numbering
    with pytest.raises(ic.InvalidInputError):
        ic.BasicConflictSolver(on_chunk_conflict="UseOurs")  # type: ignore[arg-type]


def test_solvers_are_checked() -> None:
    repo = make_repo(ic)
    session = repo.writable_session("main")
    apply_edits(session.store, [["write", "a", 0, 1]])
    with pytest.raises(ic.InvalidInputError):
        session.commit("x", rebase_with="detector")  # type: ignore[arg-type]
    with pytest.raises(ic.InvalidInputError):
        session.rebase(object())  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# a failed rebase changes nothing


def session_view(session: ic.Session) -> dict[str, Any]:
    return {
        "snapshot": session.snapshot_id,
        "dirty": session.has_uncommitted_changes,
        "tree": tree_state(session),
        "status": repr(session.status()),
    }


def test_failed_rebase_leaves_the_session_unchanged() -> None:
    repo = make_repo(ic)
    ours, theirs = repo.writable_session("main"), repo.writable_session("main")
    apply_edits(theirs.store, [["write", "a", slice(0, 2), 1], ["attr", "g", "x", 1]])
    theirs.commit("theirs")
    # one conflict UseTheirs could resolve (chunk 1) and one it cannot (the group attrs)
    apply_edits(ours.store, [["write", "a", slice(1, 3), 2], ["attr", "g", "x", 2]])
    before = session_view(ours)
    solver = ic.BasicConflictSolver(on_chunk_conflict=ic.VersionSelection.UseTheirs)
    with pytest.raises(ic.RebaseFailedError) as info:
        ours.rebase(solver)
    assert describe_conflicts(info.value.conflicts) == [["ZarrMetadataDoubleUpdate", "/g", None]]
    assert session_view(ours) == before
    assert before["tree"]["/a"]["data"] == [0, 2, 2, 0]
    # the same through commit(rebase_with=...)
    with pytest.raises(ic.RebaseFailedError):
        ours.commit("ours", rebase_with=solver)
    assert session_view(ours) == before
    # undo the attribute change: now the rebase goes through and takes their chunk 1
    apply_edits(ours.store, [["attr", "g", "x", 1]])
    ours.commit("ours", rebase_with=solver)
    tip = tree_state(repo.readonly_session(branch="main"))
    assert tip["/a"]["data"] == [1, 1, 2, 0]
    assert tip["/g"]["attrs"] == {"k": 0, "x": 1}


# ---------------------------------------------------------------------------
# rebasing over several commits


def test_rebase_over_several_commits() -> None:
    repo = make_repo(ic)
    base = repo.lookup_branch("main")
    ours = repo.writable_session("main")
    apply_edits(ours.store, [["write", "a", 3, 30], ["attr", "g/b", "ours", True]])
    landed = []
    for i, edits in enumerate(
        [
            [["write", "a", 0, 10]],
            [["write", "g/b", slice(0, 4), 11], ["attr", "a", "t", 1]],
            [["array", "g/c", 2], ["write", "a", 1, 12]],
        ]
    ):
        other = repo.writable_session("main")
        apply_edits(other.store, edits)
        landed.append(other.commit(f"other {i}"))
    final = ours.commit("ours", rebase_with=ic.ConflictDetector())
    history = [s.id for s in repo.ancestry(branch="main")]
    assert history[:5] == [final, *reversed(landed), base]
    state = tree_state(repo.readonly_session(branch="main"))
    assert state["/a"] == {"attrs": {"t": 1}, "data": [10, 12, 0, 30]}
    assert state["/g/b"] == {"attrs": {"ours": True}, "data": [11, 11, 11, 11]}
    assert state["/g/c"] == {"attrs": {}, "data": [0, 0]}


def test_conflict_with_a_commit_in_the_middle_is_found() -> None:
    repo = make_repo(ic)
    ours = repo.writable_session("main")
    apply_edits(ours.store, [["write", "a", 2, 99]])
    for edits in ([["write", "a", 0, 1]], [["write", "a", 2, 2]], [["write", "a", 3, 3]]):
        other = repo.writable_session("main")
        apply_edits(other.store, edits)
        other.commit("other")
    with pytest.raises(ic.RebaseFailedError) as info:
        ours.commit("ours", rebase_with=ic.ConflictDetector())
    assert describe_conflicts(info.value.conflicts) == [["ChunkDoubleUpdate", "/a", [[2]]]]
    solver = ic.BasicConflictSolver(on_chunk_conflict=ic.VersionSelection.UseOurs)
    ours.commit("ours", rebase_with=solver)
    assert tree_state(repo.readonly_session(branch="main"))["/a"]["data"] == [1, 0, 99, 3]


def test_rebase_without_new_commits_is_a_no_op() -> None:
    repo = make_repo(ic)
    session = repo.writable_session("main")
    apply_edits(session.store, [["write", "a", 0, 1]])
    before = session_view(session)
    session.rebase(ic.ConflictDetector())
    assert session_view(session) == before


def test_rebased_session_reads_their_data_and_ours() -> None:
    repo = make_repo(ic)
    ours, theirs = repo.writable_session("main"), repo.writable_session("main")
    apply_edits(theirs.store, [["write", "a", 0, 7], ["array", "new", 2], ["write", "new", 1, 8]])
    tip = theirs.commit("theirs")
    apply_edits(ours.store, [["write", "a", 1, 9]])
    ours.rebase(ic.ConflictDetector())
    assert ours.snapshot_id == tip
    state = tree_state(ours)
    assert state["/a"]["data"] == [7, 9, 0, 0]
    assert state["/new"]["data"] == [0, 8]
    assert ours.has_uncommitted_changes


# ---------------------------------------------------------------------------
# retries


def test_rebase_tries_zero_gives_up() -> None:
    repo = make_repo(ic)
    ours, theirs = repo.writable_session("main"), repo.writable_session("main")
    apply_edits(theirs.store, [["write", "a", 0, 1]])
    tip = theirs.commit("theirs")
    apply_edits(ours.store, [["write", "a", 1, 2]])
    with pytest.raises(ic.ConflictError) as info:
        ours.commit("ours", rebase_with=ic.ConflictDetector(), rebase_tries=0)
    assert not isinstance(info.value, ic.RebaseFailedError)
    assert info.value.actual_parent == tip
    # nothing happened to the session: one more try with rebases allowed lands
    ours.commit("ours", rebase_with=ic.ConflictDetector(), rebase_tries=1)
    assert tree_state(repo.readonly_session(branch="main"))["/a"]["data"] == [1, 2, 0, 0]


def test_commit_retries_while_the_branch_keeps_moving(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer commits before each of our first two tries: the third lands."""
    repo = make_repo(ic)
    ours = repo.writable_session("main")
    apply_edits(ours.store, [["write", "a", 3, 3]])
    interruptions = iter([0, 1])
    original = ic.Session._commit_once

    async def interrupted(self: ic.Session, message: str, metadata: dict) -> str:
        if self is ours:
            index = next(interruptions, None)
            if index is not None:
                other = await repo.writable_session_async("main")
                array = await zarr.api.asynchronous.open_array(
                    store=other.store, path="a", mode="r+"
                )
                await array.setitem(index, 10 + index)
                await other.commit_async(f"other {index}")
        return await original(self, message, metadata)

    monkeypatch.setattr(ic.Session, "_commit_once", interrupted)
    with pytest.raises(ic.ConflictError):
        ours.commit("ours", rebase_with=ic.ConflictDetector(), rebase_tries=1)
    interruptions = iter([])
    ours.commit("ours", rebase_with=ic.ConflictDetector(), rebase_tries=1)
    history = [s.message for s in repo.ancestry(branch="main")]
    assert history[:4] == ["ours", "other 1", "other 0", "setup"]
    assert tree_state(repo.readonly_session(branch="main"))["/a"]["data"] == [10, 11, 0, 3]


# ---------------------------------------------------------------------------
# a branch moved somewhere else


def test_branch_reset_to_an_unrelated_snapshot() -> None:
    repo = make_repo(ic)
    setup_snapshot = repo.lookup_branch("main")
    initial = [s.id for s in repo.ancestry(branch="main")][-1]
    side = repo.writable_session("main")
    apply_edits(side.store, [["write", "a", 0, 1]])
    side_snapshot = side.commit("on main, then abandoned")
    repo.create_branch("side", side_snapshot)

    ours = repo.writable_session("main")  # on side_snapshot
    apply_edits(ours.store, [["write", "a", 1, 2]])
    repo.reset_branch("main", initial)  # main goes back before the arrays existed
    before = session_view(ours)
    with pytest.raises(ic.RebaseFailedError) as info:
        ours.rebase(ic.ConflictDetector())
    assert info.value.conflicts == []
    assert "reset" in str(info.value) and initial in str(info.value)
    assert session_view(ours) == before
    with pytest.raises(ic.ConflictError):
        ours.commit("ours", rebase_with=ic.BasicConflictSolver())
    assert repo.lookup_branch("main") == initial

    # a reset to a sibling (shares an ancestor, but not our snapshot)
    repo.reset_branch("main", setup_snapshot)
    other = repo.writable_session("main")
    apply_edits(other.store, [["write", "a", 3, 3]])
    other.commit("sibling of side_snapshot")
    with pytest.raises(ic.RebaseFailedError) as info:
        ours.rebase(ic.ConflictDetector())
    assert info.value.conflicts == []


def test_branch_deleted_while_session_open() -> None:
    repo = make_repo(ic)
    repo.create_branch("dev", repo.lookup_branch("main"))
    session = repo.writable_session("dev")
    apply_edits(session.store, [["write", "a", 0, 1]])
    repo.delete_branch("dev")
    with pytest.raises((ic.ConflictError, ic.BranchNotFoundError)):
        session.commit("x", rebase_with=ic.ConflictDetector())
    with pytest.raises(ic.BranchNotFoundError):
        session.rebase(ic.ConflictDetector())


# ---------------------------------------------------------------------------
# larger chunks (stored as chunk files, not inline) behave the same


def test_native_chunks_use_theirs_and_ours() -> None:
    def setup() -> ic.Repository:
        repo = ic.Repository.create(ic.in_memory_storage())
        session = repo.writable_session("main")
        zarr.create_array(
            session.store,
            name="big",
            shape=(4, 256),
            chunks=(1, 256),
            dtype="float64",
            fill_value=0.0,
            compressors=None,
        )
        session.commit("setup")
        return repo

    rng = np.random.default_rng(1)
    mine, yours = rng.random((3, 256)), rng.random((3, 256))
    for selection, expect_row1 in (
        (ic.VersionSelection.UseOurs, mine[0]),
        (ic.VersionSelection.UseTheirs, yours[1]),
    ):
        repo = setup()
        ours, theirs = repo.writable_session("main"), repo.writable_session("main")
        zarr.open_array(theirs.store, path="big", mode="r+")[0:3] = yours
        theirs.commit("theirs")
        zarr.open_array(ours.store, path="big", mode="r+")[1:4] = mine
        ours.commit("ours", rebase_with=ic.BasicConflictSolver(on_chunk_conflict=selection))
        got = zarr.open_array(repo.readonly_session(branch="main").store, path="big", mode="r")
        np.testing.assert_array_equal(got[0], yours[0])
        np.testing.assert_array_equal(got[1], expect_row1)
        np.testing.assert_array_equal(got[3], mine[2])


# ---------------------------------------------------------------------------
# the official package, for comparison


def _official_python() -> Path:
    """The official package's interpreter (built on first use, like the interop tests')."""
    explicit = os.environ.get("ICECHUNK_OFFICIAL_PYTHON")
    if explicit:
        return Path(explicit)
    from tests.helpers import official_env

    try:
        return official_env.ensure_official_python()
    except official_env.OfficialEnvError as exc:
        if official_env.optional():
            pytest.skip(f"the official icechunk package is not available: {exc}")
        raise


# Where we deliberately differ, and what the official package (2.3.0) does instead:
# identical metadata edits and attribute edits under chunk writes conflict there,
# and a node created in a group deleted meanwhile vanishes from the tree without
# an error (the commit lands; /g/c is not reachable from the root).
DIFFERENT_FROM_OFFICIAL: dict[str, dict[str, Any]] = {
    "array-attrs-same": failed(["ZarrMetadataDoubleUpdate", "/a", None]),
    "group-attrs-same": failed(["ZarrMetadataDoubleUpdate", "/g", None]),
    "chunks-in-array-with-new-attrs": failed(["ChunksUpdatedInUpdatedArray", "/a", None]),
    "new-node-in-deleted-group": {"state": expect_state(g=None, g__b=None)},
}

CASES_FILE = TESTS / "helpers" / "conflict_cases.py"

_RUNNER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("conflict_cases", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import icechunk
out = {}
for name in json.loads(sys.argv[2]):
    out[name] = module.run_named(icechunk, name)
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def official_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    official_python = _official_python()
    names = sorted(CASES)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RUST_LOG")}
    result = subprocess.run(
        [str(official_python), "-c", _RUNNER, str(CASES_FILE), json.dumps(names)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path_factory.mktemp("official"),
        env=env,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.interop
@pytest.mark.parametrize("name", sorted(CASES))
def test_same_outcome_as_official(name: str, official_outcomes: dict[str, Any]) -> None:
    ours = json.loads(json.dumps(run_named(ic, name)))
    theirs = official_outcomes[name]
    if name in DIFFERENT_FROM_OFFICIAL:
        assert theirs == DIFFERENT_FROM_OFFICIAL[name]
        assert ours == EXPECTED[name] != theirs
    else:
        assert ours == theirs


if __name__ == "__main__":  # pragma: no cover - a convenience for comparing by hand
    print(json.dumps({n: run_named(ic, n) for n in sorted(CASES)}, indent=1))
    sys.exit(0)
