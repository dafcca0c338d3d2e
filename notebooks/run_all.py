"""Execute every notebook top to bottom in a fresh kernel: `python notebooks/run_all.py [NAME ...]`.

`make notebooks` calls this; `QUICK=1` (read by the notebooks themselves) selects the CI-sized runs. Each notebook
runs cell by cell in its own new kernel, with notebooks/ as the working directory, so a failure names the notebook
and the cell. The kernel runs the Python that runs this script, not whatever "python3" kernelspec the user has
installed (which may point at another, or a deleted, environment). Each run starts from the notebook its source
builds (never from a committed file's outputs); the executed copies go to notebooks/runs/executed/ for a look, and
the committed .ipynb files stay untouched. Finished training runs are cached in notebooks/runs/ and shared by the
notebooks; delete that folder to retrain from scratch.

`--publish` (`make notebooks-publish`) runs them in full mode and writes each executed notebook over its committed
.ipynb file, outputs included, once it has run to the end. The outputs are cleaned so that a re-publish diffs only
where results changed: progress bars and tqdm's warnings are dropped from stderr, and no execution timestamps or
kernel versions are kept. QUICK=1 never publishes.
"""
from __future__ import annotations

import argparse
import copy
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
from build_notebooks import NOTEBOOKS, build, render, stale, without_outputs  # noqa: E402

CELL_TIMEOUT = 3600 * 4          # seconds per cell: the full (non-QUICK) runs train for a long while on CPU


def run_notebook(name: str, out_dir: Path, publish: bool = False) -> float:
    """Execute notebook `name` cell by cell; raise RuntimeError naming the failing cell.

    The executed copy goes to `out_dir`; with `publish`, a notebook that ran to the end is also cleaned
    (`clean_outputs`) and written over notebooks/<name>.ipynb."""
    nb = build(name)
    start = time.perf_counter()
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    try:
        with tempfile.TemporaryDirectory(prefix="ulmfit-kernel-") as spec_root:
            client = NotebookClient(nb, km=_this_python_kernel(Path(spec_root)), timeout=CELL_TIMEOUT,
                                    record_timing=False, resources={"metadata": {"path": str(HERE)}})
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
    if publish:
        (HERE / f"{name}.ipynb").write_text(render(clean_outputs(nb)), encoding="utf-8")
    return time.perf_counter() - start


# a tqdm bar line: "desc:  42%|####      | 21/50 [00:03<00:04, 6.1it/s, loss=...]", or under a time budget
# (ulmfit.train.loop's bar format) "desc: 21/254 steps [00:05, budget left=0:45, loss=...]"
_PROGRESS = re.compile(r"\d+%\|.*\|\s*\d+/\d+|\d+(\.\d+)?(it/s|s/it)\b|\d+/\d+ steps \[")
_TQDM_WARNING = re.compile(r"TqdmWarning|from \.autonotebook import")


def clean_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """`nb` with small, stable outputs: stderr without progress bars or tqdm warnings (a line rewritten with
    carriage returns keeps its last state), consecutive streams merged, and the built notebook's metadata."""
    clean = without_outputs(nb)
    for cell, executed in zip(clean.cells, nb.cells):
        if cell.cell_type != "code":
            continue
        cell.execution_count = executed.get("execution_count")
        outputs = []
        for out in executed.get("outputs", []):
            if out.output_type == "stream":
                lines = [line.rsplit("\r", 1)[-1] for line in out.text.split("\n")]
                if out.name == "stderr":
                    lines = [ln for ln in lines if not (_PROGRESS.search(ln) or _TQDM_WARNING.search(ln))]
                text = "\n".join(lines)
                if not text.strip():
                    continue
                if outputs and outputs[-1].output_type == "stream" and outputs[-1].name == out.name:
                    outputs[-1].text = outputs[-1].text.rstrip("\n") + "\n" + text
                    continue
                out = nbformat.v4.new_output("stream", name=out.name, text=text)
            else:
                out = copy.deepcopy(out)
            outputs.append(out)
        for out in outputs:
            if out.output_type == "stream":
                out.text = out.text.strip("\n") + "\n"
        cell.outputs = outputs
    return clean


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
    parser.add_argument("--publish", action="store_true",
                        help="full mode only: write each executed notebook, outputs cleaned, over notebooks/NAME.ipynb")
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
    if args.publish and mode == "QUICK":
        print("--publish runs the full mode only: unset QUICK (the committed notebooks hold full-mode outputs)",
              file=sys.stderr)
        return 2
    print(f"executing {len(names)} notebook(s), {mode} mode{', publishing' if args.publish else ''}", flush=True)
    times, total = {}, time.perf_counter()
    for name in names:
        print(f"  {name}.ipynb ...", end=" ", flush=True)
        try:
            times[name] = run_notebook(name, HERE / "runs" / "executed", publish=args.publish)
        except RuntimeError as e:
            print("FAILED", flush=True)
            print(f"\n{e}\n(the executed copy is in notebooks/runs/executed/{name}.ipynb)", file=sys.stderr)
            return 1
        print(f"ok in {times[name]:.0f} s", flush=True)
    print(f"all {len(names)} notebook(s) ran in {time.perf_counter() - total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
