"""Build the notebooks from their reviewable sources: `python notebooks/build_notebooks.py`.

Each notebook is written as a plain Python file in `notebooks/src/<name>.py`, in the "percent" format:

    # %% [markdown]
    # # A heading
    # Prose, every line behind "# ".
    # %%
    code = "a code cell"
    # %% [include] _setup.py
    (the cells of src/_setup.py are inlined here: the setup every notebook shares)

This script turns each source into `notebooks/<name>.ipynb` with nbformat, outputs cleared, so a diff of a notebook's
code is a diff of Python and the committed .ipynb files are always rebuilt by one command. The committed files are
*published*, outputs included (`make notebooks-publish`, i.e. `run_all.py --publish`): a notebook counts as up to
date when its cells match its source, whatever its outputs, so this script rewrites (and clears) only the notebooks
whose source changed, and `--check` only reports those (`run_all.py` calls it before executing anything).
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
# data-flow order: the teaching notebooks, then the two reproductions
NOTEBOOKS = ["00_overview", "01_tokens_and_batches", "02_regularizers", "03_awd_lstm", "04_pretrain_and_finetune",
             "05_classifier", "clickbait", "sentiment_imdb"]
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def parse_cells(path: Path) -> list[tuple[str, str]]:
    """(kind, source) for each cell of a percent-format file; `# %% [include] FILE` inlines FILE's cells."""
    cells: list[tuple[str, list[str]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# %%"):
            marker = line[4:].strip()
            if marker.startswith("[include]"):
                cells += [(kind, src.splitlines()) for kind, src in parse_cells(SRC / marker[9:].strip())]
                cells.append(("skip", []))               # lines after an include open no cell by themselves
            else:
                cells.append(("markdown" if marker == "[markdown]" else "code", []))
        elif cells:
            cells[-1][1].append(line)
        elif line.strip() and not line.startswith("#"):
            raise ValueError(f"{path}: code before the first '# %%' marker")
    out = []
    for kind, lines in cells:
        if kind == "skip":
            continue
        if kind == "markdown":
            lines = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in lines]
        text = "\n".join(lines).strip("\n")
        if text:
            out.append((kind, text))
    return out


def build(name: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    for kind, text in parse_cells(SRC / f"{name}.py"):
        nb.cells.append(nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text))
    for i, cell in enumerate(nb.cells):                   # stable ids: a rebuild without edits changes nothing
        cell.id = f"{name[:20]}-{i:03d}".replace("_", "-")
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def without_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `nb` as `build` makes it: no outputs, execution counts or cell metadata; the built metadata."""
    nb = copy.deepcopy(nb)
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    for cell in nb.cells:
        cell.metadata = {}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def _code(source: str) -> list[str]:
    """A code cell's lines that run: what its outputs depend on (comment-only and blank lines aside)."""
    return [line.rstrip() for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def with_kept_outputs(name: str) -> nbformat.NotebookNode:
    """The notebook `build` makes, with each code cell's outputs taken from the published .ipynb: for edits of
    prose and comments only. Raises ValueError, naming the cell, when any code changed, since
    its outputs would then no longer be what the code prints."""
    old = [c for c in nbformat.read(HERE / f"{name}.ipynb", as_version=4).cells if c.cell_type == "code"]
    nb = build(name)
    new = [c for c in nb.cells if c.cell_type == "code"]
    if len(old) != len(new):
        raise ValueError(f"{name}: {len(new)} code cells against {len(old)} published; re-execute it instead")
    for k, (was, cell) in enumerate(zip(old, new)):
        if _code(was.source) != _code(cell.source):
            raise ValueError(f"{name}: code cell {k + 1} changed ({cell.source.splitlines()[0][:60]!r}...); "
                             "re-execute it instead (make notebooks-publish)")
        cell.outputs, cell.execution_count = was.outputs, was.get("execution_count")
    return nb


def stale(names=NOTEBOOKS) -> list[str]:
    """The notebooks whose .ipynb file, outputs aside, differs from what their source builds."""
    def current(name: str) -> bool:
        path = HERE / f"{name}.ipynb"
        return path.is_file() and render(without_outputs(nbformat.read(path, as_version=4))) == render(build(name))
    return [n for n in names if not current(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks to build (default: all)")
    parser.add_argument("--check", action="store_true", help="only report .ipynb files that are out of date")
    parser.add_argument("--force", action="store_true", help="rebuild every named notebook, clearing its outputs")
    parser.add_argument("--prose-only", action="store_true", help="rebuild the out-of-date notebooks keeping their "
                        "outputs: for edits of markdown and comments only (refused when code changed)")
    args = parser.parse_args()
    names = args.names or NOTEBOOKS
    out_of_date = stale(names)
    if args.check:
        for name in out_of_date:
            print(f"notebooks/{name}.ipynb is out of date: run python notebooks/build_notebooks.py")
        return 1 if out_of_date else 0
    for name in names:
        if not args.force and name not in out_of_date:
            print(f"notebooks/{name}.ipynb is up to date (its outputs are kept)")
            continue
        if args.prose_only:
            try:
                nb = with_kept_outputs(name)
            except ValueError as e:
                print(f"build_notebooks: {e}", file=sys.stderr)
                return 1
        else:
            nb = build(name)
        nbformat.validate(nb)
        (HERE / f"{name}.ipynb").write_text(render(nb), encoding="utf-8")
        print(f"wrote notebooks/{name}.ipynb ({len(nb.cells)} cells, "
              + ("outputs kept: prose only)" if args.prose_only
                 else "outputs cleared: make notebooks-publish executes it again)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
