"""benchmarks/gpu_check.py: it refuses without CUDA, fills its data folder, survives a broken cell, and its
`--device cpu` toy run prints one JSON line (so its logic is tested on machines without a GPU)."""
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
MIRROR = Path(os.environ.get("ULMFIT_MIRROR") or ROOT.parent / "shared" / "data")


@pytest.fixture(scope="module")
def gpu_check():
    """The script imported as a module (it is not part of the package)."""
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_refuses_without_cuda_in_one_line():
    """With no CUDA device visible it exits 2 with one line on stderr and prints nothing on stdout."""
    proc = run_script(env={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "--device cpu" in proc.stderr


def test_prepare_copies_the_datasets_from_the_mirror(gpu_check, tmp_path, monkeypatch):
    """--prepare copies wikitext2/ and clickbait/ from $ULMFIT_MIRROR into the data folder."""
    for name in gpu_check.NEEDED:
        (tmp_path / "mirror" / name).mkdir(parents=True)
        (tmp_path / "mirror" / name / "file.gz").write_bytes(b"data")
    monkeypatch.setenv("ULMFIT_MIRROR", str(tmp_path / "mirror"))
    assert gpu_check.main(["--prepare", "--data", str(tmp_path / "gpu_data")]) == 0
    copied = [(tmp_path / "gpu_data" / name / "file.gz").read_bytes() for name in gpu_check.NEEDED]
    assert copied == [b"data", b"data"]


def test_prepare_without_a_source_is_a_one_line_error(gpu_check, tmp_path, monkeypatch, capsys):
    """--prepare from a folder without the datasets exits 2 with one line naming ULMFIT_MIRROR."""
    monkeypatch.setenv("ULMFIT_MIRROR", str(tmp_path / "empty"))
    assert gpu_check.main(["--prepare", "--data", str(tmp_path / "gpu_data")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "ULMFIT_MIRROR" in err


def test_a_failing_cell_is_recorded_and_the_next_still_runs(gpu_check, capsys):
    """An exception in one cell becomes that cell's error (ok false); the following cell still runs."""
    cells, deadline = {}, time.monotonic() + 60

    def broken(seconds):
        raise RuntimeError("CUDA error: out of memory\nmore lines")

    gpu_check.run_cell(cells, "broken", broken, 30, deadline, "cpu")
    gpu_check.run_cell(cells, "fine", lambda seconds: {"ok": True}, 30, deadline, "cpu")
    assert cells["broken"]["ok"] is False
    assert cells["broken"]["error"] == "RuntimeError: CUDA error: out of memory"
    assert cells["fine"]["ok"] is True


def test_a_cell_past_the_budget_is_reported_not_run(gpu_check, capsys):
    """Once the check's time budget is spent a cell is not started, and it fails the check."""
    cells = {}
    gpu_check.run_cell(cells, "late", lambda seconds: {"ok": True}, 30, time.monotonic() + 1, "cpu")
    assert cells["late"]["ok"] is False and "time budget" in cells["late"]["error"]


@pytest.mark.slow
@pytest.mark.skipif(not all((MIRROR / name).is_dir() for name in ("wikitext2", "clickbait")),
                    reason=f"needs wikitext2/ and clickbait/ in {MIRROR} (set ULMFIT_MIRROR)")
def test_cpu_toy_run_prints_one_json_line(tmp_path):
    """`--device cpu` runs every cell at toy size and prints one JSON line (also in --out) with ok true."""
    out = tmp_path / "check.json"
    proc = run_script("--device", "cpu", "--data", str(MIRROR), "--out", str(out))
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and len(lines) == 1, proc.stderr[-3000:]
    report = json.loads(lines[0])
    assert {"ok", "device", "torch", "cuda", "cudnn", "wall_s", "cells"} <= set(report) and report["ok"] is True
    cells = {"tests", "data", "lm_fp32", "lm_bf16", "lm_fp16", "classifier", "pipeline"}
    assert set(report["cells"]) == cells
    assert report["cells"]["lm_fp16"]["available"] is False and "CUDA" in report["cells"]["lm_fp16"]["reason"]
    assert report["cells"]["lm_fp32"]["lstm_dtype"] == ["float32"] and report["cells"]["lm_fp32"]["tok_s"] > 0
    assert json.loads(out.read_text()) == report
