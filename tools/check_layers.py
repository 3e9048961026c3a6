"""The layers contract of ``src/`` (run by ``make lint``; exits non-zero on any violation).

Checks, over the runtime imports of every module (module level and inside functions; imports
under ``if TYPE_CHECKING:`` are for the type checker only and do not count):

1. **Layers**: a module imports only modules of its own layer or of the layers below it
   (``LAYERS``, bottom first; ``docs/architecture.md`` draws them). Some layers are
   *siblings* of each other: neither may import the other.
2. **Third-party integrations**: nothing below the integration layer imports xarray or dask.
3. **No cycles**: the graph of runtime imports between the project's modules has no cycle
   (a package's ``__init__`` counts as a module of its own; importing ``a.b`` does not count
   as importing ``a``).
4. **Size**: no module is longer than ``MAX_LINES`` lines.

``python tools/check_layers.py --graph`` prints the import graph instead.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 700

#: (layer name, module prefixes), bottom layer first. A module belongs to the layer of its
#: longest matching prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("icechunk.exceptions", "icechunk._util", "icechunk._version")),
    ("format", ("icechunk.format",)),
    ("storage", ("icechunk.storage",)),
    ("virtual", ("icechunk._virtual",)),
    ("core", ("icechunk._core",)),
    ("maintenance", ("icechunk._maintenance",)),
    (
        "facade",
        (
            "icechunk",
            "icechunk.repository",
            "icechunk.session",
            "icechunk.store",
            "icechunk.config",
            "icechunk.conflicts",
            "icechunk.credentials",
            "icechunk.ops",
            "icechunk.snapshots",
            "icechunk.types",
            "icechunk.virtual",
        ),
    ),
    (
        "integrations",
        (
            "icechunk.dask",
            "icechunk.distributed",
            "icechunk.xarray",
            "icechunk.demo",
            "icechunk_xarray",
        ),
    ),
]
#: pairs of layers that are side by side: neither imports the other
SIBLINGS = {frozenset({"format", "storage"})}
#: third-party packages only the integration layer may import
INTEGRATION_ONLY = ("xarray", "dask", "distributed")


@dataclass(frozen=True)
class Import:
    target: str  # a project module, or a top-level third-party package name
    line: int


def module_files() -> dict[str, Path]:
    modules = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), str(path))
    skipped = _type_checking_nodes(tree)
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.level, node.module)
            names = [base]
            names += [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
        for name in names:
            target = name
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target:
                if target != module:
                    yield Import(target, node.lineno)
            else:
                yield Import(name.split(".")[0], node.lineno)


def layer_of(module: str) -> str | None:
    best: tuple[int, str] | None = None
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), name)
    return best[1] if best else None


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def check() -> list[str]:
    modules = module_files()
    order = {name: i for i, (name, _) in enumerate(LAYERS)}
    problems: list[str] = []
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        rel = path.relative_to(SRC.parent)
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            problems.append(f"{rel}: {lines} lines (more than {MAX_LINES}): split it by job")
        layer = layer_of(module)
        if layer is None:
            problems.append(f"{rel}: module {module} is in no layer of tools/check_layers.py")
            continue
        for imp in imports_of(module, path, modules):
            if imp.target not in modules:
                if imp.target in INTEGRATION_ONLY and layer != "integrations":
                    problems.append(
                        f"{rel}:{imp.line}: {module} ({layer}) imports {imp.target}: only "
                        "the integration layer may"
                    )
                continue
            graph[module].add(imp.target)
            target_layer = layer_of(imp.target)
            if target_layer is None or target_layer == layer:
                continue
            if frozenset({layer, target_layer}) in SIBLINGS or order[target_layer] > order[layer]:
                problems.append(
                    f"{rel}:{imp.line}: {module} ({layer}) imports {imp.target} "
                    f"({target_layer}): a layer imports only the layers below it"
                )
    for cycle in find_cycles(graph):
        problems.append(f"import cycle among {len(cycle)} modules: {', '.join(cycle)}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", action="store_true", help="print the import graph")
    args = parser.parse_args()
    if args.graph:
        modules = module_files()
        for module, path in modules.items():
            targets = sorted({i.target for i in imports_of(module, path, modules)} & set(modules))
            print(f"{module} [{layer_of(module)}] -> {', '.join(targets)}")
        return 0
    problems = check()
    for problem in problems:
        print(problem)
    if problems:
        print(f"layers contract: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("layers contract: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
