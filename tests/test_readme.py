"""The README's technique index points at code, tests and notebooks that exist."""
import ast
import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _index_rows() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Technique index", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[1:]]           # skip the header row


def _defines(path: Path, names: list[str]) -> bool:
    """Whether the test file defines the pytest id's names: `Class`, `Class::test` or `test` (parsed, not run)."""
    scope = ast.parse(path.read_text(encoding="utf-8")).body
    for name in names:
        found = [n for n in scope if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name == name]
        if not found:
            return False
        scope = found[0].body
    return True


def test_defines_resolves_test_ids():
    """The id resolver finds a class and its method, and misses a renamed one (else the index check is blind)."""
    path = ROOT / "tests" / "test_pipeline.py"
    assert _defines(path, ["TestPipeline", "test_from_classifier_reuses_its_encoder_under_a_new_label_set"])
    assert not _defines(path, ["TestPipeline", "test_from_classifier_renamed"])
    assert not _defines(path, ["TestPipelines"])


def test_every_technique_names_real_code_tests_and_notebooks():
    """Each index row names code that imports, test files and test ids (`::Class::test`) that exist, and notebooks."""
    rows = _index_rows()
    assert len(rows) >= 14                                                # one per paper technique, at least
    for technique, code, tests, notebook in rows:
        module = None
        for name in re.findall(r"`([\w.]+)`", code):              # `layer.module.attr` or a bare `attr`
            if "." in name:
                module_name, _, name = name.rpartition(".")
                module = importlib.import_module(f"ulmfit.{module_name}")
            assert module is not None and hasattr(module, name), f"{technique}: {name} not in {module}"
        for path, ids in re.findall(r"`(tests/[\w/]+\.py)((?:::\w+)*)", tests):   # tests/x.py::Class::test
            assert (ROOT / path).is_file(), f"{technique}: {path} is missing"
            names = ids.split("::")[1:]
            assert _defines(ROOT / path, names), f"{technique}: {path}{ids} is not defined"
        for name in re.findall(r"`(\w+)`", notebook):
            assert (ROOT / "notebooks" / f"{name}.ipynb").is_file(), f"{technique}: notebook {name} is missing"


def test_the_files_to_read_first_have_the_line_counts_the_readme_and_layout_give():
    """The README's and docs/layout.md's "Read these first" lists name real files at their real sizes, and the
    totals add up (a count that drifts as the code grows would mislead a newcomer's first hour)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8").split("**Read these first**", 1)[1].split("\n- ", 1)[0]
    layout = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8").split("**Read these first**", 1)[1]
    layout = layout.split("```", 2)[1]
    listed = {"README": [("ulmfit/" + path, int(n)) for path, n in re.findall(r"`([\w/]+\.py)`\s+(\d+)", readme)],
              "layout": [(path, int(n)) for path, n in re.findall(r"(ulmfit/[\w/]+\.py)\s+(\d+)", layout)]}
    for where, files in listed.items():
        assert len(files) == 8, where
        for path, n in files:
            assert len((ROOT / path).read_text(encoding="utf-8").splitlines()) == n, (where, path)
    assert listed["README"] == listed["layout"]
    total = sum(n for _, n in listed["README"])
    assert f"{total:,} lines" in readme
