"""A hypothesis state machine: sessions, forks, commits and rebases against a model.

The system is one branch of an in-memory repository holding a small 1-D array
``/a`` (6 chunks of one element) with an attribute ``k``.  Random interleavings of

* opening writable sessions,
* writing chunks and setting ``k`` in sessions and forks,
* committing (without rebasing, or with ``ConflictDetector`` / ``BasicConflictSolver``
  taking ours or theirs), rebasing explicitly,
* forking sessions (and forks) and merging forks back into what they came from,

run against a model that predicts every outcome exactly: the data each session and
fork sees, and whether an operation lands or raises ``ConflictError``,
``RebaseFailedError`` or ``MergeConflictError``.  The model's rules:

* a commit on the branch tip lands; otherwise, without a solver it is a
  ``ConflictError``; with one, the session first rebases;
* a rebase fails (and changes nothing) if we wrote a chunk that a newer commit
  wrote (unless the solver picks a side), or if we changed ``k`` and a newer
  commit did too, to a different final value (identical edits do not conflict);
  ``UseTheirs`` drops our overlapping chunks;
* a merge fails (and changes nothing) if two forks changed the same chunk (or
  ``k``) differently, or the parent changed it after forking and the fork changed
  it to something else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
import zarr
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import icechunk as ic

N = 6
VALUES = st.integers(0, 3)  # small, so identical writes happen; 0 (the fill value) deletes
ATTRS = st.integers(1, 2)
SOLVERS = ("detector", "ours", "theirs", "fail")
MISSING: Any = object()


def make_solver(spec: str | None) -> Any:
    if spec is None:
        return None
    if spec == "detector":
        return ic.ConflictDetector()
    selection = {
        "ours": ic.VersionSelection.UseOurs,
        "theirs": ic.VersionSelection.UseTheirs,
        "fail": ic.VersionSelection.Fail,
    }[spec]
    return ic.BasicConflictSolver(on_chunk_conflict=selection)


@dataclass(frozen=True)
class Commit:
    data: tuple[int, ...]
    attr: int | None  # the value of k (None: not set)
    written: frozenset[int]  # chunks this commit wrote
    attr_touched: bool  # whether this commit recorded a metadata update of /a


@dataclass
class Writer:
    """What the model knows of a session or fork."""

    handle: Any
    base: int  # index into history of the snapshot it is based on
    writes: dict[int, int] = field(default_factory=dict)
    attr_change: int | None = None
    open: bool = True
    # forks only
    parent: Writer | None = None
    inherited_writes: dict[int, int] = field(default_factory=dict)
    inherited_attr: int | None = None
    name: str = ""

    def __repr__(self) -> str:  # keeps hypothesis's failure reports readable
        return self.name

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.name)


class BranchMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.repo = ic.Repository.create(ic.in_memory_storage())
        session = self.repo.writable_session("main")
        zarr.create_array(
            session.store, name="a", shape=(N,), chunks=(1,), dtype="int64", fill_value=0
        )
        session.commit("setup")
        self.history = [Commit((0,) * N, None, frozenset(), False)]
        self.sessions: list[Writer] = []
        self.forks: list[Writer] = []
        self.counter = 0

    # -- helpers -------------------------------------------------------------

    def open_sessions(self) -> list[Writer]:
        return [s for s in self.sessions if s.open]

    def writers(self) -> list[Writer]:
        return self.open_sessions() + self.forks

    def view(self, writer: Writer) -> tuple[list[int], int | None]:
        base = self.history[writer.base]
        data = list(base.data)
        for index, value in writer.writes.items():
            data[index] = value
        attr = writer.attr_change if writer.attr_change is not None else base.attr
        return data, attr

    def plan_rebase(self, s: Writer, solver: str | None) -> tuple[str, dict[int, int] | None]:
        """("ok", our writes afterwards) or ("conflict" | "failed", None)."""
        tip = len(self.history) - 1
        if s.base == tip:
            return "ok", dict(s.writes)
        if solver is None:
            return "conflict", None
        newer = self.history[s.base + 1 :]
        theirs = frozenset().union(*(c.written for c in newer))
        attr_conflict = (
            s.attr_change is not None
            and any(c.attr_touched for c in newer)
            and self.history[-1].attr != s.attr_change
        )
        overlap = set(s.writes) & theirs
        if attr_conflict or (overlap and solver in ("detector", "fail")):
            return "failed", None
        writes = dict(s.writes)
        if solver == "theirs":
            for index in overlap:
                del writes[index]
        return "ok", writes

    # -- rules ---------------------------------------------------------------

    @precondition(lambda self: len(self.open_sessions()) < 4)
    @rule()
    def open_session(self) -> None:
        self.counter += 1
        session = self.repo.writable_session("main")
        self.sessions.append(Writer(session, len(self.history) - 1, name=f"s{self.counter}"))

    @precondition(lambda self: self.writers())
    @rule(data=st.data(), index=st.integers(0, N - 1), value=VALUES)
    def write(self, data: st.DataObject, index: int, value: int) -> None:
        writer = data.draw(st.sampled_from(self.writers()), label="writer")
        zarr.open_array(writer.handle.store, path="a", mode="r+")[index] = value
        writer.writes[index] = value
        self.check_writer(writer)

    @precondition(lambda self: self.writers())
    @rule(data=st.data(), value=ATTRS)
    def set_attr(self, data: st.DataObject, value: int) -> None:
        writer = data.draw(st.sampled_from(self.writers()), label="writer")
        zarr.open_array(writer.handle.store, path="a", mode="r+").attrs["k"] = value
        _, current = self.view(writer)
        if value == current:
            return
        if value == self.history[writer.base].attr:
            writer.attr_change = None  # back to the committed value
        else:
            writer.attr_change = value
        self.check_writer(writer)

    @precondition(lambda self: self.open_sessions())
    @rule(data=st.data(), solver=st.sampled_from((None, *SOLVERS)))
    def commit(self, data: st.DataObject, solver: str | None) -> None:
        s = data.draw(st.sampled_from(self.open_sessions()), label="session")
        before = self.view(s)
        if not s.writes and s.attr_change is None:
            try:
                s.handle.commit("empty", rebase_with=make_solver(solver))
            except ic.ConflictError as error:
                raise AssertionError(f"an empty commit raised a conflict: {error!r}") from None
            except ic.IcechunkError:
                return
            raise AssertionError("an empty commit landed without allow_empty")
        outcome, writes = self.plan_rebase(s, solver)
        try:
            s.handle.commit(f"{s.name} {solver}", rebase_with=make_solver(solver))
        except ic.RebaseFailedError as error:
            assert outcome == "failed", f"unexpected {error!r}; model says {outcome}"
            assert self.view(s) == before
            self.check_writer(s)
            return
        except ic.ConflictError as error:
            assert outcome == "conflict", f"unexpected {error!r}; model says {outcome}"
            self.check_writer(s)
            return
        assert outcome == "ok", f"the commit landed, the model expected {outcome}"
        assert writes is not None
        tip = self.history[-1]
        data_after = list(tip.data)
        for index, value in writes.items():
            data_after[index] = value
        attr = s.attr_change if s.attr_change is not None else tip.attr
        self.history.append(
            Commit(tuple(data_after), attr, frozenset(writes), s.attr_change is not None)
        )
        s.open = False

    @precondition(lambda self: self.open_sessions())
    @rule(data=st.data(), solver=st.sampled_from(SOLVERS))
    def rebase(self, data: st.DataObject, solver: str) -> None:
        s = data.draw(st.sampled_from(self.open_sessions()), label="session")
        outcome, writes = self.plan_rebase(s, solver)
        try:
            s.handle.rebase(make_solver(solver))
        except ic.RebaseFailedError as error:
            assert outcome == "failed", f"unexpected {error!r}; model says {outcome}"
            self.check_writer(s)
            return
        assert outcome == "ok", f"the rebase went through, the model expected {outcome}"
        assert writes is not None
        s.base = len(self.history) - 1
        s.writes = writes
        self.check_writer(s)

    @precondition(lambda self: self.open_sessions() and len(self.forks) < 6)
    @rule(data=st.data())
    def fork(self, data: st.DataObject) -> None:
        s = data.draw(st.sampled_from(self.open_sessions()), label="session")
        self.counter += 1
        self.forks.append(
            Writer(
                s.handle.fork(),
                s.base,
                writes=dict(s.writes),
                attr_change=s.attr_change,
                parent=s,
                inherited_writes=dict(s.writes),
                inherited_attr=s.attr_change,
                name=f"f{self.counter}",
            )
        )
        self.check_writer(self.forks[-1])

    @precondition(lambda self: self.forks and len(self.forks) < 6)
    @rule(data=st.data())
    def fork_a_fork(self, data: st.DataObject) -> None:
        """A fork of a fork; it merges back into the fork it came from."""
        parent = data.draw(st.sampled_from(self.forks), label="fork")
        self.counter += 1
        self.forks.append(
            Writer(
                parent.handle.fork(),
                parent.base,
                writes=dict(parent.writes),
                attr_change=parent.attr_change,
                parent=parent,
                inherited_writes=dict(parent.writes),
                inherited_attr=parent.attr_change,
                name=f"f{self.counter}",
            )
        )
        self.check_writer(self.forks[-1])

    @precondition(lambda self: self.forks)
    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        first = data.draw(st.sampled_from(self.forks), label="fork")
        parent = first.parent
        assert parent is not None
        siblings = [f for f in self.forks if f.parent is parent and f is not first]
        chosen = [first]
        if siblings and data.draw(st.booleans(), label="two forks"):
            chosen.append(data.draw(st.sampled_from(siblings), label="second fork"))
        before = self.view(parent)
        try:
            parent.handle.merge(*(f.handle for f in chosen))
        except ic.MergeConflictError as error:
            expected = self.plan_merge(parent, chosen)
            assert expected is None, f"unexpected {error!r}"
            assert self.view(parent) == before
            self.check_writer(parent)
            return
        except ic.ReadOnlyError:
            assert not parent.open, "merging into an open session raised ReadOnlyError"
            return
        except ic.InvalidInputError:
            assert any(f.base != parent.base for f in chosen), "merge refused a valid fork"
            return
        assert parent.open, "merged into a session that already committed"
        assert all(f.base == parent.base for f in chosen), "merged a fork of another snapshot"
        claims = self.plan_merge(parent, chosen)
        assert claims is not None, "the merge went through, the model expected a conflict"
        for key, value in claims.items():
            if key == "attr":
                parent.attr_change = value
            else:
                parent.writes[key] = value
        self.check_writer(parent)

    def plan_merge(self, parent: Writer, forks: list[Writer]) -> dict[Any, Any] | None:
        """What the merge changes in the parent, or None for a conflict."""
        claims: dict[Any, Any] = {}
        clash = False
        for f in forks:
            delta: dict[Any, Any] = {}
            for index, value in f.writes.items():
                if f.inherited_writes.get(index, MISSING) != value:
                    delta[index] = value
            if f.attr_change != f.inherited_attr:
                delta["attr"] = f.attr_change
            for key, value in delta.items():
                if key in claims:
                    clash = clash or claims[key] != value
                    continue
                if key == "attr":
                    current, inherited = parent.attr_change, f.inherited_attr
                else:
                    current = parent.writes.get(key, MISSING)
                    inherited = f.inherited_writes.get(key, MISSING)
                if current != inherited and current != value:
                    clash = True
                claims[key] = value
        return None if clash else claims

    # -- checks --------------------------------------------------------------
    # Each rule checks the writers it touched and the tip; teardown checks every
    # writer. (Checking everything after every step made shrinking a failure slow.)

    def check_writer(self, writer: Writer) -> None:
        array = zarr.open_array(writer.handle.store, path="a", mode="r")
        data, attr = self.view(writer)
        assert array[:].tolist() == data, writer.name
        assert dict(array.attrs) == ({} if attr is None else {"k": attr}), writer.name

    @invariant()
    def tip_matches_the_model(self) -> None:
        if getattr(self, "_checked_tip", None) == len(self.history):
            return
        session = self.repo.readonly_session(branch="main")
        array = zarr.open_array(session.store, path="a", mode="r")
        tip = self.history[-1]
        assert array[:].tolist() == list(tip.data)
        assert dict(array.attrs) == ({} if tip.attr is None else {"k": tip.attr})
        assert len(list(self.repo.ancestry(branch="main"))) == len(self.history) + 1
        self._checked_tip = len(self.history)

    def teardown(self) -> None:
        for writer in self.writers():
            self.check_writer(writer)


# Shrinking a failing run of this machine can take minutes (hypothesis gives up after
# five), so by default a failure is reported as found: at most 40 steps, each writer
# printed by name. ICECHUNK_HYPOTHESIS_SHRINK=1 turns shrinking on for debugging.
_PHASES = [Phase.explicit, Phase.reuse, Phase.generate]
if os.environ.get("ICECHUNK_HYPOTHESIS_SHRINK") == "1":
    _PHASES.append(Phase.shrink)

BranchMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    phases=_PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_branch_model = BranchMachine.TestCase
