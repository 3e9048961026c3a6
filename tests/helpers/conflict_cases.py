"""Conflict scenarios as data, playable under either implementation of icechunk.

A scenario is a list of edits "they" commit first and a list of edits "we" commit
afterwards with some solver.  :func:`run_case` plays one on a fresh in-memory repository
and returns a JSON-able outcome (the error and its conflicts, or the state of the branch
tip).  It takes the ``icechunk`` module as an argument and imports nothing from pytest (nor
from ``tests``), so ``tests/unit/core/test_conflicts.py`` also runs it, by file name, under
the official package to compare behaviour.
"""

from __future__ import annotations

import json
from typing import Any

import zarr
import zarr.api.asynchronous
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

# ---------------------------------------------------------------------------
# scenario machinery (works with either implementation of icechunk)

Edit = list[Any]  # ["write", path, index, value], ["attr", path, key, value], ...


def make_repo(icechunk: Any) -> Any:
    """A repository with ``/a`` (4 int chunks), group ``/g`` and ``/g/b`` (4 int chunks)."""
    repo = icechunk.Repository.create(icechunk.in_memory_storage())
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    root.create_array("a", shape=(4,), chunks=(1,), dtype="int64", fill_value=0)
    group = root.create_group("g", attributes={"k": 0})
    group.create_array("b", shape=(4,), chunks=(1,), dtype="int64", fill_value=0)
    session.commit("setup")
    return repo


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent, name


def apply_edits(store: Any, edits: list[Edit]) -> None:
    """Apply edits through the zarr API (paths are relative to the root, no slash)."""
    for edit in edits:
        op, path, *args = edit
        if op == "write":
            index, value = args
            zarr.open_array(store, path=path, mode="r+")[index] = value
        elif op == "attr":
            key, value = args
            zarr.open(store=store, path=path, mode="r+").attrs[key] = value
        elif op == "delete":
            parent, name = _split(path)
            del zarr.open_group(store, path=parent, mode="r+")[name]
        elif op == "array":
            (size,) = args
            parent, name = _split(path)
            group = zarr.open_group(store, path=parent, mode="r+")
            group.create_array(name, shape=(size,), chunks=(1,), dtype="int64", fill_value=0)
        elif op == "group":
            parent, name = _split(path)
            zarr.open_group(store, path=parent, mode="r+").create_group(name)
        elif op == "resize":
            (size,) = args
            zarr.open_array(store, path=path, mode="r+").resize((size,))
        elif op == "dtype":
            # rewrite zarr.json with another data type (as a metadata-level tool would)
            (dtype,) = args
            prototype = default_buffer_prototype()
            raw = sync(store.get(f"{path}/zarr.json", prototype=prototype))
            document = json.loads(raw.to_bytes())
            document["data_type"] = dtype
            data = prototype.buffer.from_bytes(json.dumps(document).encode())
            sync(store.set(f"{path}/zarr.json", data))
        else:
            raise ValueError(f"unknown edit {edit!r}")


def make_solver(icechunk: Any, spec: str | None) -> Any:
    if spec is None:
        return None
    if spec == "detector":
        return icechunk.ConflictDetector()
    if spec == "basic":
        return icechunk.BasicConflictSolver()
    if spec == "basic-fail-array":
        return icechunk.BasicConflictSolver(fail_on_delete_of_updated_array=True)
    if spec == "basic-fail-group":
        return icechunk.BasicConflictSolver(fail_on_delete_of_updated_group=True)
    selection = {"ours": "UseOurs", "theirs": "UseTheirs", "fail": "Fail"}[spec]
    return icechunk.BasicConflictSolver(
        on_chunk_conflict=getattr(icechunk.VersionSelection, selection)
    )


def kind_name(conflict: Any) -> str:
    """The member name of a conflict's type (the official enum has no ``.name``)."""
    kind = conflict.conflict_type
    for name in dir(type(kind)):
        if not name.startswith("_") and getattr(type(kind), name) == kind:
            return name
    raise AssertionError(f"unknown conflict type {kind!r}")


def describe_conflicts(conflicts: list[Any]) -> list[list[Any]]:
    out = []
    for c in conflicts:
        chunks = c.conflicted_chunks
        out.append([kind_name(c), c.path, sorted(list(x) for x in chunks) if chunks else None])
    return sorted(out, key=json.dumps)


def tree_state(session: Any) -> dict[str, Any]:
    """Every node under the root: attributes, and the values of arrays."""
    root = zarr.open_group(session.store, mode="r")
    state: dict[str, Any] = {"/": {"attrs": dict(root.attrs)}}
    for path, node in root.members(max_depth=None):
        entry: dict[str, Any] = {"attrs": dict(node.attrs)}
        if isinstance(node, zarr.Array):
            entry["data"] = [int(x) for x in node[:]]
        state["/" + path] = entry
    return state


def error_outcome(icechunk: Any, error: BaseException) -> dict[str, Any]:
    if isinstance(error, icechunk.RebaseFailedError):
        return {"error": "RebaseFailedError", "conflicts": describe_conflicts(error.conflicts)}
    if isinstance(error, icechunk.ConflictError):
        return {"error": "ConflictError"}
    return {"error": type(error).__name__, "message": str(error)}


def run_case(icechunk: Any, theirs: list[Edit], ours: list[Edit], solver: str | None) -> dict:
    """They commit ``theirs``; then we (opened on the same snapshot) commit ``ours``."""
    repo = make_repo(icechunk)
    our_session = repo.writable_session("main")
    their_session = repo.writable_session("main")
    apply_edits(their_session.store, theirs)
    their_session.commit("theirs")
    apply_edits(our_session.store, ours)
    try:
        our_session.commit("ours", rebase_with=make_solver(icechunk, solver))
    except Exception as error:
        return error_outcome(icechunk, error)
    try:
        return {"state": tree_state(repo.readonly_session(branch="main"))}
    except Exception as error:  # the commit landed, but what it wrote cannot be read
        return {"unreadable": f"{type(error).__name__}: {error}"}


# ---------------------------------------------------------------------------
# the cases: name -> (theirs, ours, solver)

CASES: dict[str, tuple[list[Edit], list[Edit], str | None]] = {
    # disjoint chunks
    "disjoint-detector": ([["write", "a", 0, 1]], [["write", "a", 1, 2]], "detector"),
    "disjoint-no-rebase": ([["write", "a", 0, 1]], [["write", "a", 1, 2]], None),
    # overlapping chunks
    "overlap-detector": (
        [["write", "a", slice(0, 3), 1]],
        [["write", "a", slice(1, 4), 2]],
        "detector",
    ),
    "overlap-ours": ([["write", "a", slice(0, 3), 1]], [["write", "a", slice(1, 4), 2]], "ours"),
    "overlap-theirs": (
        [["write", "a", slice(0, 3), 1]],
        [["write", "a", slice(1, 4), 2]],
        "theirs",
    ),
    "overlap-fail": ([["write", "a", slice(0, 3), 1]], [["write", "a", slice(1, 4), 2]], "fail"),
    # attributes
    "array-attrs-differ": ([["attr", "a", "x", 1]], [["attr", "a", "x", 2]], "detector"),
    "group-attrs-differ": ([["attr", "g", "x", 1]], [["attr", "g", "x", 2]], "detector"),
    "root-attrs-differ": ([["attr", "", "x", 1]], [["attr", "", "y", 2]], "detector"),
    "array-attrs-differ-basic": ([["attr", "a", "x", 1]], [["attr", "a", "x", 2]], "basic"),
    "array-attrs-same": ([["attr", "a", "x", 1]], [["attr", "a", "x", 1]], "detector"),
    "group-attrs-same": ([["attr", "g", "x", 1]], [["attr", "g", "x", 1]], "detector"),
    "attrs-of-other-nodes": ([["attr", "a", "x", 1]], [["attr", "g/b", "x", 2]], "detector"),
    # new nodes
    "new-node-same-path": ([["array", "n", 2]], [["group", "n"]], "detector"),
    "new-node-same-path-basic": ([["array", "n", 2]], [["array", "n", 2]], "basic"),
    "new-node-in-deleted-group": ([["delete", "g"]], [["array", "g/c", 2]], "detector"),
    "new-node-elsewhere": ([["array", "n", 2]], [["group", "m"]], "detector"),
    # edits of deleted nodes
    "attrs-of-deleted-array": ([["delete", "a"]], [["attr", "a", "x", 1]], "detector"),
    "attrs-of-deleted-group": ([["delete", "g"]], [["attr", "g", "x", 1]], "detector"),
    "chunks-in-deleted-array": ([["delete", "a"]], [["write", "a", 0, 5]], "detector"),
    "chunks-in-deleted-array-basic": ([["delete", "a"]], [["write", "a", 0, 5]], "basic"),
    # resized arrays
    "chunks-in-resized-array": ([["resize", "a", 6]], [["write", "a", 0, 5]], "detector"),
    "chunks-in-array-with-new-attrs": ([["attr", "a", "x", 1]], [["write", "a", 0, 5]], "detector"),
    # the chunk grid is the same, but our chunks were encoded for int64
    "chunks-in-array-with-new-dtype": (
        [["dtype", "a", "int32"]],
        [["write", "a", 0, 5]],
        "detector",
    ),
    # our shrink-and-regrow truncated chunk 3, which they wrote meanwhile
    "truncated-chunk-written-by-them": (
        [["write", "a", 3, 7]],
        [["resize", "a", 2], ["resize", "a", 4], ["write", "a", 0, 1]],
        "detector",
    ),
    # deletes of updated nodes
    "delete-of-updated-array-detector": ([["write", "a", 0, 5]], [["delete", "a"]], "detector"),
    "delete-of-updated-array-basic": ([["write", "a", 0, 5]], [["delete", "a"]], "basic"),
    "delete-of-updated-array-fail": (
        [["write", "a", 0, 5]],
        [["delete", "a"]],
        "basic-fail-array",
    ),
    "delete-of-array-with-new-attrs-basic": ([["attr", "a", "x", 1]], [["delete", "a"]], "basic"),
    "delete-of-updated-group-detector": ([["attr", "g", "x", 1]], [["delete", "g"]], "detector"),
    "delete-of-updated-group-basic": ([["attr", "g", "x", 1]], [["delete", "g"]], "basic"),
    "delete-of-updated-group-fail": (
        [["attr", "g", "x", 1]],
        [["delete", "g"]],
        "basic-fail-group",
    ),
    "delete-of-group-with-new-child-basic": ([["group", "g/new"]], [["delete", "g"]], "basic"),
    "both-delete": ([["delete", "a"]], [["delete", "a"]], "detector"),
}


def run_named(icechunk: Any, name: str) -> dict:
    theirs, ours, solver = CASES[name]
    return run_case(icechunk, theirs, ours, solver)
