"""The format layer's own imports: no cycles between its modules, nothing from upper layers.

Read statically from the sources, so an import hidden inside a function counts too; only
imports under ``if TYPE_CHECKING:`` are left out (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import icechunk.format

FORMAT_DIR = Path(icechunk.format.__file__).parent
ALLOWED_OUTSIDE = {"icechunk.exceptions"}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(path: Path) -> set[str]:
    """Absolute names of the ``icechunk`` modules a file imports at run time."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for other in node.orelse:
                visit(other)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("icechunk"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("icechunk"):
                found.add(node.module)
            if node.module == "icechunk.format":  # from icechunk.format import flatbuf
                found.update(
                    f"icechunk.format.{a.name}"
                    for a in node.names
                    if (FORMAT_DIR / f"{a.name}.py").is_file()
                )
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def format_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(FORMAT_DIR.glob("*.py")):
        name = "icechunk.format" if path.stem == "__init__" else f"icechunk.format.{path.stem}"
        graph[name] = runtime_imports(path) - {"icechunk.format", name}
    return graph


def test_format_modules_import_only_format_and_exceptions() -> None:
    for module, imports in format_graph().items():
        outside = {i for i in imports if not i.startswith("icechunk.format")} - ALLOWED_OUTSIDE
        assert not outside, f"{module} imports {sorted(outside)}"


def test_no_import_cycle_between_format_modules() -> None:
    graph = format_graph()
    assert "icechunk.format.manifest" not in graph["icechunk.format.manifest_writer"]

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, set()):
            if nxt == target:
                return True
            if nxt not in seen:
                seen.add(nxt)
                if reaches(nxt, target, seen):
                    return True
        return False

    cycles = [m for m in graph if reaches(m, m, set())]
    assert cycles == [], f"import cycles through {cycles}"
