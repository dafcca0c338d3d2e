"""ulmfit's modules import one way (STYLE.md §5: data-flow order), so there is no import cycle, counting imports
inside functions too: a lazy import hides a cycle from Python, not from the reader. The same check as
../shared/tools/import_cycles.py, written here so the suite needs nothing beside the clone."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ulmfit"


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere: top level, inside functions, under TYPE_CHECKING.
    The package itself (`from . import __version__`) is no edge. `package` is flat (no subpackages)."""
    name = package.name
    modules = {name if p.stem == "__init__" else f"{name}.{p.stem}": p for p in package.glob("*.py")}
    graph = {}
    for module, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(filter(None, [name, node.module])) if node.level else node.module
                targets.add(base)                                          # from .x import y
                targets.update(f"{base}.{alias.name}" for alias in node.names)  # from . import x
        graph[module] = {t for t in targets if t in modules and t not in (module, name)}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Each group of modules that reach one another through imports (a strongly connected component > 1)."""
    reach = {}
    for start in graph:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        reach[start] = seen
    return sorted({tuple(sorted(m for m in reach[a] if a in reach[m])) for a in graph if a in reach[a]})


def test_the_check_finds_a_cycle_through_a_function_level_import(tmp_path):
    """a imports b at the top, b imports a inside a function: one cycle, and c (which only imports a) is no part."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import f\n")
    (package / "b.py").write_text("def f():\n    from . import a\n")
    (package / "c.py").write_text("import pkg.a\n")
    assert import_cycles(import_graph(package)) == [("pkg.a", "pkg.b")]


def test_ulmfit_has_no_import_cycles():
    """No module of ulmfit reaches itself through imports."""
    cycles = import_cycles(import_graph(PACKAGE))
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)
