"""Execute every notebook top to bottom in a fresh kernel: `python notebooks/run_all.py [NAME ...]`.

`make notebooks` calls this; `QUICK=1` (read by the notebooks themselves) selects the CI-sized runs. Each notebook
runs cell by cell in its own new kernel, with notebooks/ as the working directory, so a failure names the notebook
and the cell. The kernel runs the Python that runs this script, not whatever "python3" kernelspec the user has
installed (which may point at another, or a deleted, environment). The committed .ipynb files stay untouched
(outputs cleared); the executed copies go to notebooks/runs/executed/ for a look. Finished training runs are cached
in notebooks/runs/ and shared by the notebooks; delete that folder to retrain from scratch.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from build_notebooks import NOTEBOOKS, stale  # noqa: E402

CELL_TIMEOUT = 3600 * 4          # seconds per cell: the full (non-QUICK) runs train for a long while on CPU


def run_notebook(name: str, out_dir: Path) -> float:
    """Execute notebooks/<name>.ipynb cell by cell; raise RuntimeError naming the failing cell."""
    nb = nbformat.read(HERE / f"{name}.ipynb", as_version=4)
    start = time.perf_counter()
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    try:
        with tempfile.TemporaryDirectory(prefix="ulmfit-kernel-") as spec_root:
            client = NotebookClient(nb, km=_this_python_kernel(Path(spec_root)), timeout=CELL_TIMEOUT,
                                    resources={"metadata": {"path": str(HERE)}})
            with client.setup_kernel(cleanup_kc=True):      # we made the kernel manager: shut its kernel down too
                for n, index in enumerate(code_cells, 1):
                    cell = nb.cells[index]
                    try:
                        client.execute_cell(cell, index)
                    except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
                        first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                        raise RuntimeError(f"{name}.ipynb failed in cell {index} (code cell {n} of "
                                           f"{len(code_cells)}), which starts with {first!r}:\n{_short(e)}") from None
    finally:
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_dir / f"{name}.ipynb")
    return time.perf_counter() - start


def _this_python_kernel(spec_root: Path) -> KernelManager:
    """A kernel manager whose kernel runs sys.executable, from a kernelspec written under `spec_root`."""
    write_kernel_spec(spec_root / "python3")               # argv: sys.executable -m ipykernel_launcher ...
    return KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_root)]))


def _short(error: Exception, keep: int = 40) -> str:
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines()       # no terminal colour codes
    return "\n".join(lines[-keep:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"notebooks to run (default: all of {', '.join(NOTEBOOKS)})")
    args = parser.parse_args()
    names = [n.removesuffix(".ipynb").split("/")[-1] for n in args.names] or NOTEBOOKS
    unknown = [n for n in names if n not in NOTEBOOKS]
    if unknown:
        print(f"unknown notebook(s) {unknown}; choose from {', '.join(NOTEBOOKS)}", file=sys.stderr)
        return 2
    out_of_date = stale(names)
    if out_of_date:
        print(f"notebooks out of date with notebooks/src/: {', '.join(out_of_date)}; "
              "run python notebooks/build_notebooks.py", file=sys.stderr)
        return 1
    mode = "QUICK" if os.environ.get("QUICK", "0") == "1" else "full"
    print(f"executing {len(names)} notebook(s), {mode} mode", flush=True)
    times, total = {}, time.perf_counter()
    for name in names:
        print(f"  {name}.ipynb ...", end=" ", flush=True)
        try:
            times[name] = run_notebook(name, HERE / "runs" / "executed")
        except RuntimeError as e:
            print("FAILED", flush=True)
            print(f"\n{e}\n(the executed copy is in notebooks/runs/executed/{name}.ipynb)", file=sys.stderr)
            return 1
        print(f"ok in {times[name]:.0f} s", flush=True)
    print(f"all {len(names)} notebook(s) ran in {time.perf_counter() - total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
