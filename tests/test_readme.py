"""The README's technique index points at code, tests and notebooks that exist."""
import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _index_rows() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Technique index", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[1:]]           # skip the header row


def test_every_technique_names_real_code_tests_and_notebooks():
    rows = _index_rows()
    assert len(rows) >= 14                                                # one per paper technique, at least
    for technique, code, tests, notebook in rows:
        module = None
        for name in re.findall(r"`([\w.]+)`", code):                      # `module.attr` or a bare `attr`
            if "." in name:
                module_name, _, name = name.partition(".")
                module = importlib.import_module(f"ulmfit.{module_name}")
            assert module is not None and hasattr(module, name), f"{technique}: {name} not in {module}"
        for path in re.findall(r"`(tests/[\w/]+\.py)", tests):
            assert (ROOT / path).is_file(), f"{technique}: {path} is missing"
        for name in re.findall(r"`(\w+)`", notebook):
            assert (ROOT / "notebooks" / f"{name}.ipynb").is_file(), f"{technique}: notebook {name} is missing"
