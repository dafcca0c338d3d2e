"""ulmfit against fastai itself: imported weights give fastai's logits, exported files load into fastai.

Runs benchmarks/fastai_equivalence.py (the same checks the results file records at wt103's 60k vocabulary) at a
small vocabulary: fastai 2.8.12 builds its AWD-LSTM LM at the published sizes (400 / 1152 / 3 layers) with random
weights, saves it with `Learner.save`, `ulmfit lm import` reads it, both score the same ids (max |logit diff| <=
1e-5, forward and backward); then `ulmfit lm export --fastai` and fastai's `load_pretrained` the other way round.
Needs fastai (`make install-fastai`; .ci/run installs it) and skips with the reason elsewhere.
"""
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastai", reason="fastai is not installed (make install-fastai: fastai 2.8.12 without "
                                     "torchvision)")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fastai_equivalence.py"


def test_import_and_export_match_fastai_logits():
    done = subprocess.run([sys.executable, str(SCRIPT), "--vocab", "96", "--seq", "21", "--batch", "3"],
                          capture_output=True, text=True, timeout=600)
    checks = [line for line in done.stdout.splitlines() if "max |logit diff|" in line]
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert len(checks) == 4 and all("(ok," in line for line in checks)           # import + export, fwd + bwd
    assert {line.split()[1] for line in checks} == {"forward", "backward"}
