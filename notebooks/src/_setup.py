# %% [markdown]
# **Setup.** `QUICK=1` in the environment selects the CI-sized run (the `tiny` preset, a few hundred optimiser
# steps, small data slices: a few minutes on 2 CPU cores); without it the notebook uses the `small` preset and real
# budgets. Data comes from `$ULMFIT_MIRROR` (default: `../../shared/data` when that folder exists), else from the
# download cache. Training runs land in `runs/` next to the notebooks and are shared between them.
# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

QUICK = os.environ.get("QUICK", "0") == "1"
_default_mirror = Path("../../shared/data")
if not os.environ.get("ULMFIT_MIRROR") and _default_mirror.is_dir():
    os.environ["ULMFIT_MIRROR"] = str(_default_mirror.resolve())
PRESET = "tiny" if QUICK else "small"
RUNS = Path("runs") / ("quick" if QUICK else "full")       # git-ignored; delete it to retrain from scratch
RUNS.mkdir(parents=True, exist_ok=True)
if QUICK:
    # tiny models are all small ops: on a shared 2-core machine two OpenMP threads spin-wait on each other and run
    # ~10x slower than one (measured on the CI box); the pipeline's `threads=0` keeps this setting
    torch.set_num_threads(1)
torch.manual_seed(0)
plt.rcParams.update({"figure.figsize": (6, 3), "figure.dpi": 80, "axes.grid": True, "grid.alpha": 0.3})
print(f"QUICK={QUICK}  preset={PRESET}  mirror={os.environ.get('ULMFIT_MIRROR')}  runs={RUNS}")
