#!/usr/bin/env python
"""Generate docs/compatibility.md: every public name of the official icechunk
package and its status here.

How it works
------------
1. ``tests/interop/scenarios/api_surface.py`` runs twice: under the official
   package (the interop virtualenv under ``.cache/``, built on first use;
   ``--official-python`` or ``ICECHUNK_OFFICIAL_PYTHON`` to choose another
   interpreter) and under ours (this interpreter with ``src/`` on the path).
   Each run prints a JSON description of the public API.
2. Every official name -- top-level names, members of every top-level class,
   names exported by submodules -- gets a *computed* state: ``ok`` (present
   here and its parameters accept every call the official ones accept),
   ``differs`` (present, with the differences found), or ``missing``.
3. ``docs/compatibility_status.json`` (hand-maintained) says why a name is
   missing or differs: ``not yet`` (with the issue, P2..P7, that will bring
   it), ``absent`` (deliberately left out, with a reason) or ``differs``
   (present but behaves differently, with a reason).  Keys are names
   (``Repository.create``, ``icechunk.xarray.to_icechunk``) or fnmatch
   patterns (``s3_*``).  Members of a missing class and names of a missing
   submodule inherit the entry of their class or module.
4. The page is rendered from both; ``supported`` is never written by hand.

Problems (``--check``, and tests/interop/test_api_surface.py, fail on them):
an official name missing here with no entry; an entry that says ``not yet`` /
``absent`` for a name we now provide (stale: delete it); an entry whose
pattern matches nothing it applies to; a malformed entry; and with
``--check``, a page that differs from what this script would write.

Usage::

    make compat                              # --prune, then regenerate the page
    python tools/compat_report.py            # regenerate the page only
    python tools/compat_report.py --prune    # also delete stale entries of the status file
    python tools/compat_report.py --check    # verify only, write nothing
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
INTEROP_DIR = REPO_ROOT / "tests" / "interop"
SCENARIO = INTEROP_DIR / "scenarios" / "api_surface.py"
STATUS_FILE = REPO_ROOT / "docs" / "compatibility_status.json"
PAGE = REPO_ROOT / "docs" / "compatibility.md"
FALLBACK_OFFICIAL_PYTHONS = ("/tmp/offvenv/bin/python",)

STATUSES = ("not yet", "absent", "differs")
ISSUE_RE = re.compile(r"^P[2-9]$")

# classes users never construct themselves (the official constructors take
# private pyo3 objects), so their constructor signatures are not compared
PRIVATE_CONSTRUCTORS = frozenset({"Repository", "Session", "ForkSession", "IcechunkStore"})
# third-party and builtin bases that matter to users (isinstance, except, zarr)
MEANINGFUL_FOREIGN_BASES = frozenset(
    {
        "builtins.BaseException",
        "builtins.Exception",
        "builtins.str",
        "builtins.int",
        "zarr.abc.store.Store",
    }
)

CALLABLE_KINDS = frozenset({"function", "class", "exception", "enum", "method"})
DATA_KINDS = frozenset({"attribute", "property", "constant", "enum_member"})
KIND_LABELS = {
    "function": "function",
    "class": "class",
    "exception": "exception",
    "enum": "enum",
    "method": "method",
    "attribute": "attribute",
    "property": "attribute",
    "constant": "constant",
    "enum_member": "enum member",
    "module": "module",
    "type_alias": "type alias",
    "unknown": "?",
}


# --------------------------------------------------------------------------
# running the scenario
# --------------------------------------------------------------------------


def _official_env():
    """``tests/helpers/official_env.py``, the interop harness's virtualenv and runners."""
    sys.path.insert(0, str(REPO_ROOT))
    try:
        from tests.helpers import official_env
    finally:
        sys.path.remove(str(REPO_ROOT))
    return official_env


def official_python(explicit: str | None = None) -> str:
    """The interpreter with the official package: explicit, then
    ``ICECHUNK_OFFICIAL_PYTHON``, then the interop virtualenv (built if
    needed), then a known reference virtualenv."""
    chosen = explicit or os.environ.get("ICECHUNK_OFFICIAL_PYTHON")
    if chosen:
        return chosen
    env = _official_env()
    try:
        return str(env.ensure_official_python())
    except env.OfficialEnvError as exc:
        for candidate in FALLBACK_OFFICIAL_PYTHONS:
            if Path(candidate).exists():
                print(
                    f"note: the interop environment is unavailable, using {candidate}",
                    file=sys.stderr,
                )
                return candidate
        raise SystemExit(f"no interpreter with the official icechunk package:\n{exc}")


def run_surface(python: str, *, ours: bool) -> dict:
    env = _official_env()
    if ours:
        return env.run_script(python, SCENARIO, env=env.ours_env(), isolated=False, label="ours")
    return env.run_script(python, SCENARIO, env=env._clean_env(), isolated=True, label="official")


# --------------------------------------------------------------------------
# the status file
# --------------------------------------------------------------------------


def load_status(path: Path = STATUS_FILE) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def validate_status(status: dict) -> list[str]:
    problems = []
    entries = status.get("entries")
    if not isinstance(entries, dict):
        return [f"{STATUS_FILE.name}: 'entries' must be an object"]
    issues = status.get("issues", {})
    for key, entry in entries.items():
        where = f"{STATUS_FILE.name}: {key!r}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be an object")
            continue
        unknown = set(entry) - {"status", "issue", "reason"}
        if unknown:
            problems.append(f"{where}: unknown fields {sorted(unknown)}")
        state = entry.get("status")
        if state not in STATUSES:
            problems.append(f"{where}: status must be one of {list(STATUSES)}, not {state!r}")
            continue
        issue = entry.get("issue")
        reason = entry.get("reason")
        if issue is not None and (not isinstance(issue, str) or not ISSUE_RE.match(issue)):
            problems.append(f"{where}: issue must look like 'P4', not {issue!r}")
        if issue is not None and issues and issue not in issues:
            problems.append(f"{where}: issue {issue} is not in the 'issues' table")
        if reason is not None and (not isinstance(reason, str) or not reason.strip()):
            problems.append(f"{where}: reason must be a non-empty string")
        if state == "not yet" and issue is None:
            problems.append(f"{where}: 'not yet' needs the issue that will bring it")
        if state in ("absent", "differs") and not reason:
            problems.append(f"{where}: {state!r} needs a reason")
    return problems


def _is_pattern(key: str) -> bool:
    return any(ch in key for ch in "*?[")


# --------------------------------------------------------------------------
# comparing
# --------------------------------------------------------------------------

POSITIONAL = ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")
_TUPLE_FIELD = re.compile(r"^_\d+$")


def compare_params(official: list[dict] | None, ours: list[dict] | None) -> list[str]:
    """What calls the official signature accepts that ours does not."""
    if official is None or ours is None:
        return []
    # pyo3 tuple variants (``Credentials.S3(_0)``) take their fields by position
    official = [
        {**p, "kind": "POSITIONAL_ONLY"} if _TUPLE_FIELD.match(p["name"]) else p for p in official
    ]
    problems: list[str] = []
    ours_by_name = {p["name"]: p for p in ours}
    ours_pos = [p for p in ours if p["kind"] in POSITIONAL]
    ours_var_pos = any(p["kind"] == "VAR_POSITIONAL" for p in ours)
    ours_var_kw = any(p["kind"] == "VAR_KEYWORD" for p in ours)
    matched: set[str] = set()

    def check_default(p: dict, q: dict) -> None:
        if "default" not in p:
            return
        if "default" not in q:
            problems.append(f"`{p['name']}` has no default here")
        elif "..." not in (p["default"], q["default"]) and p["default"] != q["default"]:
            problems.append(
                f"`{p['name']}` defaults to {q['default']} here, {p['default']} officially"
            )

    official_pos = [p for p in official if p["kind"] in POSITIONAL]
    for i, p in enumerate(official_pos):
        if p["kind"] == "POSITIONAL_ONLY":
            if i < len(ours_pos):
                q = ours_pos[i]
            elif ours_var_pos:
                continue
            else:
                problems.append(f"missing positional parameter {i + 1} (`{p['name']}`)")
                continue
        else:
            q = ours_by_name.get(p["name"])
            if q is None:
                if ours_var_kw and not ours_var_pos:
                    problems.append(f"`{p['name']}` cannot be passed by position here")
                elif ours_var_pos and not ours_var_kw:
                    problems.append(f"`{p['name']}` cannot be passed by keyword here")
                elif not ours_var_pos:
                    problems.append(f"missing parameter `{p['name']}`")
                continue
            if q["kind"] == "KEYWORD_ONLY":
                problems.append(f"`{p['name']}` is keyword-only here")
            elif q["kind"] == "POSITIONAL_ONLY":
                problems.append(f"`{p['name']}` is positional-only here")
            elif q["kind"] == "POSITIONAL_OR_KEYWORD" and ours_pos.index(q) != i:
                problems.append(
                    f"`{p['name']}` is positional parameter {ours_pos.index(q) + 1} here, "
                    f"{i + 1} officially"
                )
        matched.add(q["name"])
        check_default(p, q)
    for p in official:
        if p["kind"] != "KEYWORD_ONLY":
            continue
        q = ours_by_name.get(p["name"])
        if q is None:
            if not ours_var_kw:
                problems.append(f"missing keyword `{p['name']}`")
            continue
        if q["kind"] not in ("KEYWORD_ONLY", "POSITIONAL_OR_KEYWORD"):
            problems.append(f"`{p['name']}` cannot be passed by keyword here")
        matched.add(q["name"])
        check_default(p, q)
    if any(p["kind"] == "VAR_POSITIONAL" for p in official) and not ours_var_pos:
        problems.append("no `*args` here")
    if any(p["kind"] == "VAR_KEYWORD" for p in official) and not ours_var_kw:
        problems.append("no `**kwargs` here")
    for q in ours:
        if q["name"] in matched or q["kind"] in ("VAR_POSITIONAL", "VAR_KEYWORD"):
            continue
        if "default" not in q:
            problems.append(f"requires `{q['name']}`, which the official signature does not have")
    return problems


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def compare_objects(off: dict, ours: dict, *, compare_constructor: bool = True) -> list[str]:
    """Differences that break official usage of a name we have."""
    problems: list[str] = []
    ok, uk = off.get("kind"), ours.get("kind")
    if ok in CALLABLE_KINDS and uk not in CALLABLE_KINDS:
        problems.append(f"is {_a(KIND_LABELS.get(uk, uk))} here, a callable officially")
        return problems
    if ok in DATA_KINDS and uk not in DATA_KINDS:
        what = "property" if ok in ("property", "attribute") else KIND_LABELS[ok]
        problems.append(f"is {_a(KIND_LABELS.get(uk, uk))} here, {_a(what)} officially")
        return problems
    if ok == "module" and uk != "module":
        problems.append(f"is {_a(KIND_LABELS.get(uk, uk))} here, a module officially")
        return problems
    missing_bases = sorted(set(off.get("icechunk_bases", [])) - set(ours.get("icechunk_bases", [])))
    if missing_bases and ok in ("class", "exception", "enum"):
        problems.append("not a subclass of " + ", ".join(f"`{b}`" for b in missing_bases) + " here")
    foreign = (set(off.get("foreign_bases", [])) & MEANINGFUL_FOREIGN_BASES) - set(
        ours.get("foreign_bases", [])
    )
    if foreign:
        problems.append(
            "not a subclass of " + ", ".join(f"`{b}`" for b in sorted(foreign)) + " here"
        )
    constructor = (
        ok in ("class", "exception")
        and uk != "enum"  # an Enum is called with a value; pyo3 enums cannot be called
        and compare_constructor
        and off.get("params")  # an empty official signature: not constructible by users
    )
    if ok in ("function", "method") or constructor:
        problems.extend(compare_params(off.get("params"), ours.get("params")))
    if off.get("async") and not ours.get("async") and uk in ("function", "method"):
        problems.append("not a coroutine function here")
    return problems


# --------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------


@dataclass
class Row:
    key: str  # "Repository", "Repository.create", "icechunk.xarray.to_icechunk"
    name: str  # as shown in its table
    kind: str
    state: str  # ok | differs | missing
    details: list[str] = field(default_factory=list)
    status: str = ""  # rendered status
    category: str = ""  # supported | differs | not yet | absent | unlisted
    issue: str | None = None
    container: str | None = None  # class or module key the row belongs to
    entry: dict | None = None  # the status entry that explains it
    covered: bool = False  # unlisted, but reported through the row it belongs to


@dataclass
class Report:
    official_version: str | None
    top: list[Row]
    classes: dict[str, list[Row]]  # class name -> member rows
    modules: dict[str, list[Row]]  # module name -> name rows
    ours_only: list[str]
    invalid: list[str]
    unlisted: list[str]
    stale: list[str]
    prunable: list[str] = field(default_factory=list)
    official: dict = field(default_factory=dict, repr=False)
    ours: dict = field(default_factory=dict, repr=False)

    @property
    def problems(self) -> list[str]:
        out = [f"invalid status entry: {p}" for p in self.invalid]
        out += [
            f"official name missing here and not listed in {STATUS_FILE.name}: {k}"
            for k in self.unlisted
        ]
        out += [f"stale status entry: {p}" for p in self.stale]
        return out

    def all_rows(self) -> list[Row]:
        rows = list(self.top)
        for members in self.classes.values():
            rows += members
        for names in self.modules.values():
            rows += names
        return rows


class _Resolver:
    def __init__(self, status: dict) -> None:
        entries = status.get("entries", {})
        self.exact = {k: v for k, v in entries.items() if not _is_pattern(k)}
        self.patterns = sorted(
            ((k, v) for k, v in entries.items() if _is_pattern(k)),
            key=lambda kv: (-len(kv[0]), kv[0]),
        )
        self.used: set[str] = set()
        self.stale: list[str] = []
        self.prunable: set[str] = set()  # entries `--prune` may delete

    def lookup(self, key: str, state: str) -> tuple[str, dict] | None:
        if key in self.exact:
            return key, self.exact[key]
        for pattern, entry in self.patterns:
            if not fnmatch.fnmatchcase(key, pattern):
                continue
            # patterns only explain what they can: a 'not yet' pattern covers
            # missing names, a 'differs' pattern names that are present
            if (entry["status"] == "differs") == (state != "missing"):
                return pattern, entry
        return None


def _render(entry: dict, details: list[str]) -> tuple[str, str]:
    state = entry["status"]
    reason = entry.get("reason")
    issue = entry.get("issue")
    if state == "not yet":
        return "not yet", f"not yet (planned in {issue}" + (f"; {reason})" if reason else ")")
    if state == "absent":
        return "absent", f"absent ({reason})"
    parts = [reason] if reason else []
    if issue:
        parts.append(f"to be aligned in {issue}")
    parts += details
    return "differs", "differs (" + "; ".join(parts) + ")"


def _render_inherited(entry: dict, source: str) -> tuple[str, str]:
    """Status of a name explained by another row: its class, its module, the
    same member of a base class, or the top-level name a submodule re-exports."""
    see = f"`ic.{source}`" if "." not in source else f"`{source}`"
    if entry["status"] == "not yet":
        return "not yet", f"not yet (planned in {entry['issue']}; see {see})"
    return "absent", f"absent (see {see})"


def _resolve_row(row: Row, resolver: _Resolver, inherited: Row | None) -> None:
    found = resolver.lookup(row.key, row.state)
    if found is not None:
        key, entry = found
        resolver.used.add(key)
        row.issue = entry.get("issue")
        if entry["status"] in ("not yet", "absent") and row.state != "missing":
            if not _is_pattern(key):
                resolver.prunable.add(key)
                resolver.stale.append(
                    f"{key!r} is listed as {entry['status']!r} but is now present here"
                    + (f" (differences: {'; '.join(row.details)})" if row.details else "")
                    + f": `make compat` deletes its entry from {STATUS_FILE.name} (or make it"
                    " 'differs' with a reason, if it behaves differently)"
                )
            found = None
        elif entry["status"] == "differs" and row.state == "missing":
            resolver.stale.append(
                f"{key!r} is listed as 'differs' but it is missing here: "
                "make it 'not yet' (with an issue) or 'absent' (with a reason)"
            )
            found = None
        else:
            row.entry = entry
            row.category, row.status = _render(entry, row.details)
            return
    if row.state == "ok":
        row.category, row.status = "supported", "supported"
    elif row.state == "differs":
        row.category, row.status = "differs", "differs (" + "; ".join(row.details) + ")"
    elif inherited is not None and inherited.entry is not None and inherited.state == "missing":
        row.issue = inherited.issue
        row.entry = inherited.entry
        row.category, row.status = _render_inherited(inherited.entry, inherited.key)
    elif inherited is not None and inherited.category == "unlisted":
        # reported once, for the class or module or base member that explains it
        row.category, row.status = "unlisted", "**missing, not listed**"
        row.covered = True
    else:
        row.category, row.status = "unlisted", "**missing, not listed**"


def _row(key, name, off, ours, *, container=None, compare_constructor=True) -> Row:
    kind = KIND_LABELS.get(off.get("kind"), off.get("kind", "?"))
    if ours is None:
        return Row(key, name, kind, "missing", container=container)
    details = compare_objects(off, ours, compare_constructor=compare_constructor)
    return Row(key, name, kind, "differs" if details else "ok", details, container=container)


def build_report(official: dict, ours: dict, status: dict) -> Report:
    invalid = validate_status(status)
    if invalid:
        # render with what is valid; the problems are reported
        good = {
            k: v
            for k, v in status.get("entries", {}).items()
            if isinstance(v, dict) and v.get("status") in STATUSES
        }
        status = {**status, "entries": good}
    resolver = _Resolver(status)
    off_top, ours_top = official["top"], ours["top"]

    top_rows: dict[str, Row] = {}
    for name, off in sorted(off_top.items()):
        row = _row(
            name,
            name,
            off,
            ours_top.get(name),
            compare_constructor=name not in PRIVATE_CONSTRUCTORS,
        )
        _resolve_row(row, resolver, None)
        top_rows[name] = row

    classes: dict[str, list[Row]] = {}
    member_rows: dict[str, Row] = {}
    # base classes first, so a subclass's missing member can share its base's entry
    class_names = sorted(
        (n for n, o in off_top.items() if o.get("members")),
        key=lambda n: (len(off_top[n].get("icechunk_bases", [])), n),
    )
    for cname in class_names:
        off = off_top[cname]
        ours_members = (ours_top.get(cname) or {}).get("members", {})
        rows = []
        for mname, moff in sorted(off["members"].items()):
            key = f"{cname}.{mname}"
            row = _row(key, mname, moff, ours_members.get(mname), container=cname)
            inherited = top_rows[cname] if top_rows[cname].state == "missing" else None
            if inherited is None:
                for base in off.get("icechunk_bases", []):
                    base_row = member_rows.get(f"{base}.{mname}")
                    if base_row is not None and base_row.state == "missing":
                        inherited = base_row
                        break
            _resolve_row(row, resolver, inherited)
            rows.append(row)
            member_rows[key] = row
        classes[cname] = rows
    classes = dict(sorted(classes.items()))

    modules: dict[str, list[Row]] = {}
    ours_modules = ours.get("modules", {})
    for mod, off_mod in sorted(official.get("modules", {}).items()):
        if off_mod.get("status") == "missing":
            continue
        short = mod.split(".", 1)[1]
        mod_row = top_rows.get(short)
        ours_mod = ours_modules.get(mod, {})
        mod_present = ours_mod.get("status") in ("imported", "source")
        if mod_row is None:
            # a submodule the package does not import by default (xarray, dask, ...)
            mod_row = Row(mod, mod, "module", "ok" if mod_present else "missing")
            _resolve_row(mod_row, resolver, None)
            top_rows[mod] = mod_row
        ours_names = ours_mod.get("names", {}) if mod_present else {}
        rows = []
        for name, off_obj in sorted(off_mod.get("names", {}).items()):
            row = _row(
                f"{mod}.{name}",
                name,
                off_obj,
                ours_names.get(name),
                container=mod,
                compare_constructor=name not in PRIVATE_CONSTRUCTORS,
            )
            inherited = None
            if not mod_present:
                inherited = mod_row
            elif name in top_rows and top_rows[name].state == "missing":
                inherited = top_rows[name]  # re-exported; its own entry explains it
            _resolve_row(row, resolver, inherited)
            rows.append(row)
        modules[mod] = rows

    for pattern, _entry in resolver.patterns:
        if pattern not in resolver.used:
            resolver.prunable.add(pattern)
            resolver.stale.append(
                f"pattern {pattern!r} applies to no official name: delete it from {STATUS_FILE.name}"
            )
    for key in resolver.exact:
        if key not in resolver.used:
            resolver.prunable.add(key)
            resolver.stale.append(
                f"{key!r} is not an official public name (or is no longer needed): "
                f"delete it from {STATUS_FILE.name}"
            )

    report = Report(
        official_version=official.get("package", {}).get("version"),
        top=[top_rows[k] for k in sorted(top_rows, key=_top_sort_key)],
        classes=classes,
        modules=modules,
        # internal modules (icechunk.format, ...) are left out: they are not API
        ours_only=sorted(
            n for n in set(ours_top) - set(off_top) if ours_top[n].get("kind") != "module"
        ),
        invalid=invalid,
        unlisted=[],
        stale=resolver.stale,
        prunable=sorted(resolver.prunable),
    )
    report.unlisted = [
        r.key for r in report.all_rows() if r.category == "unlisted" and not r.covered
    ]
    report.official, report.ours = official, ours
    return report


def _top_sort_key(key: str) -> tuple[int, str]:
    return (1 if key.startswith("icechunk.") else 0, key.lower())


# --------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------


def _code(name: str) -> str:
    return f"`{name}`"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _summary(rows: list[Row]) -> dict[str, int]:
    counts = {"total": len(rows)}
    for cat in ("supported", "differs", "not yet", "absent", "unlisted"):
        counts[cat] = sum(1 for r in rows if r.category == cat)
    return counts


def render_markdown(report: Report, status: dict) -> str:
    issues = status.get("issues", {})
    out: list[str] = []
    add = out.append
    version = report.official_version or "?"
    add("# Compatibility with the official icechunk package")
    add("")
    add(
        f"Every public name of the official `icechunk` {version} Python package, and its status "
        "in this implementation. "
        "**Generated** by `tools/compat_report.py` (`make compat`) from a live introspection of "
        "both packages (`tests/interop/scenarios/api_surface.py`) and the hand-written reasons in "
        "`docs/compatibility_status.json`; do not edit this page by hand. "
        "`tests/interop/test_api_surface.py` fails when the page is out of date, when an official "
        "name is missing here without an entry, and when an entry says a name is missing that we "
        "now provide; after adding or changing public names, run `make compat` (it also deletes "
        "the entries that have become stale) and review the diff."
    )
    add("")
    add("Statuses:")
    add("")
    add(
        "- **supported**: present here, and its parameters accept every call the official "
        "signature accepts (same names, positions, keyword-ness and literal defaults); for "
        "classes, the same icechunk base classes."
    )
    add(
        "- **differs**: present, but the signature or the behaviour differs; the reason or "
        "the differences found follow."
    )
    add("- **not yet**: not implemented yet; the issue that will bring it follows.")
    add("- **absent**: deliberately left out; the reason follows.")
    add("")

    all_rows = report.all_rows()
    add("## Summary")
    add("")
    add("| names | official | supported | differs | not yet | absent | unlisted |")
    add("|---|---:|---:|---:|---:|---:|---:|")
    groups = [
        ("top-level", report.top),
        ("class members", [r for rows in report.classes.values() for r in rows]),
        ("submodule names", [r for rows in report.modules.values() for r in rows]),
        ("all", all_rows),
    ]
    for label, rows in groups:
        c = _summary(rows)
        add(
            f"| {label} | {c['total']} | {c['supported']} | {c['differs']} | "
            f"{c['not yet']} | {c['absent']} | {c['unlisted']} |"
        )
    add("")
    by_issue: dict[str, int] = {}
    for r in all_rows:
        if r.category == "not yet" and r.issue:
            by_issue[r.issue] = by_issue.get(r.issue, 0) + 1
    if by_issue:
        add("Names not here yet (class members counted one by one), by the issue that brings them:")
        add("")
        for issue in sorted(by_issue):
            title = issues.get(issue)
            add(f"- {issue}{f' ({title})' if title else ''}: {by_issue[issue]}")
        add("")

    add("## Top-level names")
    add("")
    add("`import icechunk as ic; ic.<name>`, and the submodules users import.")
    add("")
    add("| name | kind | status |")
    add("|---|---|---|")
    for r in report.top:
        add(f"| {_code(r.name)} | {r.kind} | {_md_escape(r.status)} |")
    add("")

    add("## Classes")
    add("")
    add(
        "Public methods, attributes and enum members of each official class (what it inherits "
        "from builtins, the standard library or zarr's `Store` is left out). Members of a class "
        "that is not here share its status."
    )
    add("")
    top_by_name = {r.key: r for r in report.top}
    for cname, rows in report.classes.items():
        crow = top_by_name[cname]
        add(f"### {cname}")
        add("")
        if crow.state == "missing":
            add(f"{crow.status[0].upper()}{crow.status[1:]}. Members:")
            add("")
            add(", ".join(_code(r.name) for r in rows) + ".")
            add("")
            continue
        add("| member | kind | status |")
        add("|---|---|---|")
        for r in rows:
            add(f"| {_code(r.name)} | {r.kind} | {_md_escape(r.status)} |")
        add("")

    add("## Submodules")
    add("")
    add(
        "Names exported by each official submodule (`from icechunk.<module> import <name>`): "
        "its `__all__`, or else the public names it defines."
    )
    add("")
    for mod, rows in report.modules.items():
        mrow = top_by_name.get(mod) or top_by_name.get(mod.split(".", 1)[1])
        add(f"### {mod}")
        add("")
        if mrow is not None and mrow.state == "missing":
            add(f"{mrow.status[0].upper()}{mrow.status[1:]}. Names:")
            add("")
            add(", ".join(_code(r.name) for r in rows) + ".")
            add("")
            continue
        add("| name | kind | status |")
        add("|---|---|---|")
        for r in rows:
            add(f"| {_code(r.name)} | {r.kind} | {_md_escape(r.status)} |")
        add("")

    add("## Only here")
    add("")
    if report.ours_only:
        add(
            "Top-level names (modules aside) of this implementation that the official package "
            "does not have: " + ", ".join(_code(n) for n in report.ours_only) + "."
        )
    else:
        add("None.")
    add("")
    return "\n".join(out)


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------


def generate(
    *,
    official_py: str | None = None,
    ours_py: str | None = None,
    official_json: str | None = None,
    ours_json: str | None = None,
) -> tuple[Report, str]:
    if official_json:
        official = json.loads(Path(official_json).read_text())
    else:
        official = run_surface(official_python(official_py), ours=False)
    if ours_json:
        ours = json.loads(Path(ours_json).read_text())
    else:
        ours = run_surface(ours_py or sys.executable, ours=True)
    status = load_status()
    report = build_report(official, ours, status)
    return report, render_markdown(report, status)


def prune_status(keys, path: Path = STATUS_FILE) -> None:
    status = load_status(path)
    for key in keys:
        status["entries"].pop(key, None)
    dump_status(status, path)


def dump_status(status: dict, path: Path = STATUS_FILE) -> None:
    text = json.dumps(status, indent=2, ensure_ascii=False) + "\n"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; fail if stale")
    parser.add_argument("--official-python", help="interpreter with the official icechunk")
    parser.add_argument("--ours-python", help="interpreter for ours (default: this one)")
    parser.add_argument("--official-json", help="use a saved api_surface.py output")
    parser.add_argument("--ours-json", help="use a saved api_surface.py output")
    parser.add_argument("--output", default=str(PAGE), help="page to write")
    parser.add_argument(
        "--prune",
        action="store_true",
        help=f"first delete from {STATUS_FILE.name} the entries that are stale because the "
        "name is now here (or matches nothing)",
    )
    args = parser.parse_args(argv)
    if args.prune and args.check:
        parser.error("--prune writes the status file; it does not go with --check")

    report, text = generate(
        official_py=args.official_python,
        ours_py=args.ours_python,
        official_json=args.official_json,
        ours_json=args.ours_json,
    )
    if args.prune and report.prunable:
        prune_status(report.prunable)
        for key in report.prunable:
            print(f"pruned {key!r} from {STATUS_FILE.name}", file=sys.stderr)
        status = load_status()
        report = build_report(report.official, report.ours, status)
        text = render_markdown(report, status)
    output = Path(args.output)
    current = output.read_text(encoding="utf-8") if output.exists() else None
    problems = list(report.problems)
    if args.check:
        if current != text:
            problems.append(f"{output} is out of date: run `make compat`")
    elif current != text:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)
    else:
        print(f"{output} is up to date", file=sys.stderr)

    counts = _summary(report.all_rows())
    print(
        "official names: {total}; supported {supported}, differs {differs}, "
        "not yet {not yet}, absent {absent}, unlisted {unlisted}".format(**counts),
        file=sys.stderr,
    )
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
