"""Build the notebooks from their reviewable sources: `python notebooks/build_notebooks.py`.

Each notebook is written as a plain Python file in `notebooks/src/<name>.py`, in the "percent" format:

    # %% [markdown]
    # # A heading
    # Prose, every line behind "# ".
    # %%
    code = "a code cell"
    # %% [include] _setup.py
    (the cells of src/_setup.py are inlined here: the setup every notebook shares)

This script turns each source into `notebooks/<name>.ipynb` with nbformat, outputs cleared, so a diff of a notebook
is a diff of Python and the committed .ipynb files are always rebuilt by one command. `--check` only reports
whether the .ipynb files are up to date (`run_all.py` calls it before executing anything).
"""
from __future__ import annotations

import argparse
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


def stale(names=NOTEBOOKS) -> list[str]:
    """The notebooks whose .ipynb file differs from what their source builds."""
    return [n for n in names
            if not (HERE / f"{n}.ipynb").is_file() or (HERE / f"{n}.ipynb").read_text(encoding="utf-8") != render(build(n))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks to build (default: all)")
    parser.add_argument("--check", action="store_true", help="only report .ipynb files that are out of date")
    args = parser.parse_args()
    names = args.names or NOTEBOOKS
    if args.check:
        out_of_date = stale(names)
        for name in out_of_date:
            print(f"notebooks/{name}.ipynb is out of date: run python notebooks/build_notebooks.py")
        return 1 if out_of_date else 0
    for name in names:
        nb = build(name)
        nbformat.validate(nb)
        (HERE / f"{name}.ipynb").write_text(render(nb), encoding="utf-8")
        print(f"wrote notebooks/{name}.ipynb ({len(nb.cells)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
