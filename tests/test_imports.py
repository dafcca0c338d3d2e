"""ulmfit's modules import one way (STYLE.md §5.2): a layer imports only the layers before it, so there is no
import cycle either, counting imports inside functions too (a lazy import hides a climb from Python, not from the
reader). The cycle check is the one of ../shared/tools/import_cycles.py, written here so the suite needs nothing
beside the clone; the layer check is this file's own."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ulmfit"

# In data-flow order: a module may import modules of its own layer and of the layers above it, never of one below.
# A layer is named by top-level names under ulmfit/ (a subpackage, or single modules).
LAYERS = [
    ("base", {"errors", "files", "config", "runtime", "validation", "longtext"}),
    ("data", {"data"}),
    ("text", {"text"}),
    ("model", {"model"}),
    ("train", {"train"}),
    ("analysis", {"analysis"}),
    ("run dirs", {"checkpoint"}),
    ("pretrained", {"pretrained"}),
    ("top", {"predict", "pipeline", "run_report", "fit"}),
    ("apps", {"apps"}),
    ("entry", {"cli", "commands", "__main__"}),
]
# The model files are pure nn.Module code (issue 25): the ULMFiT modules import these and nothing else of ulmfit.
PURE_MODEL_IMPORTS = {"ulmfit.config", "ulmfit.errors", "ulmfit.model", "ulmfit.model.regularizers",
                      "ulmfit.model.awd_lstm"}


def _module_name(package: Path, path: Path) -> str:
    parts = [package.name, *path.relative_to(package).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere: top level, inside functions, under TYPE_CHECKING.
    The package itself (`from . import __version__`) is no edge; subpackages are followed."""
    name = package.name
    paths = {_module_name(package, p): p for p in package.rglob("*.py")}
    graph = {}
    for module, path in paths.items():
        # the package a relative import starts from: the module's own for an __init__, else its parent's
        here = module.split(".") if path.stem == "__init__" else module.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    start = here[:len(here) - (node.level - 1)]
                    base = ".".join(filter(None, [".".join(start), node.module]))
                else:
                    base = node.module
                targets.add(base)                                          # from .x import y
                targets.update(f"{base}.{alias.name}" for alias in node.names)  # from . import x
        graph[module] = {t for t in targets if t in paths and t not in (module, name)}
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


def layer_of(module: str) -> int:
    """The index in LAYERS of a module `ulmfit.<top>[.…]`, found by <top>."""
    top = module.split(".")[1]
    for i, (_, names) in enumerate(LAYERS):
        if top in names:
            return i
    raise KeyError(f"{module} is in no layer of tests/test_imports.py's LAYERS")


def climbs(graph: dict[str, set[str]]) -> list[str]:
    """'a -> b' for each import of a module in a later layer."""
    return sorted(f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})"
                  for a, targets in graph.items() if a != PACKAGE.name
                  for b in targets if layer_of(b) > layer_of(a))


def test_the_check_finds_a_cycle_through_a_function_level_import(tmp_path):
    """a imports b at the top, b imports a inside a function: one cycle, and c (which only imports a) is no part."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import f\n")
    (package / "b.py").write_text("def f():\n    from . import a\n")
    (package / "c.py").write_text("import pkg.a\n")
    assert import_cycles(import_graph(package)) == [("pkg.a", "pkg.b")]


def test_the_graph_follows_relative_imports_out_of_a_subpackage(tmp_path):
    """`from ..x import y` in pkg/sub/m.py is an edge to pkg.x; `from . import n` one to pkg.sub.n."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    for name in ("__init__.py", "x.py", "sub/__init__.py", "sub/n.py"):
        (package / name).write_text("")
    (package / "sub" / "m.py").write_text("from ..x import y\nfrom . import n\n")
    assert import_graph(package)["pkg.sub.m"] == {"pkg.x", "pkg.sub", "pkg.sub.n"}


def test_ulmfit_has_no_import_cycles():
    """No module of ulmfit reaches itself through imports."""
    cycles = import_cycles(import_graph(PACKAGE))
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_every_module_sits_in_a_layer():
    """Each module of ulmfit belongs to one layer of LAYERS (a new folder or file must be placed)."""
    for module in import_graph(PACKAGE):
        if module != PACKAGE.name:
            layer_of(module)


def test_no_layer_imports_a_later_one():
    """Imports go one way: base -> data -> text -> model -> train -> analysis -> run dirs -> pretrained -> top
    -> apps -> entry."""
    found = climbs(import_graph(PACKAGE))
    assert not found, "imports that climb back up the layers:\n  " + "\n  ".join(found)


def test_the_model_files_are_pure():
    """awd_lstm.py and classifier.py import torch, config, errors and the regularisers only (no files, tokenizer,
    baseline or evaluation loop): loading and predicting live in ulmfit/predict.py."""
    graph = import_graph(PACKAGE)
    for module in ("ulmfit.model.awd_lstm", "ulmfit.model.classifier"):
        assert graph[module] <= PURE_MODEL_IMPORTS, f"{module} imports {sorted(graph[module] - PURE_MODEL_IMPORTS)}"
