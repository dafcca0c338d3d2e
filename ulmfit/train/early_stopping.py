"""Early stopping on validation, keeping the best weights: the end of every stage of `ulmfit fit`.

The paper stops at fixed epoch counts (ULMFiT §3.2-3.3, tuned for IMDb on a GPU). On small data the best epoch
moves with the data (issue 27: LM validation perplexity best at epoch 5 on one set, 8 on another, then rising; a
classifier still improving at epoch 20 on a third), so each epoch's validation score decides: the best weights so
far are kept on disk (`best.pt` in the run dir, so a `--resume` keeps them too), training stops once `patience`
epochs in a row have not improved on the best, and the run ends with the best weights, not the last.

A task says what "better" is with `monitor(metrics)`: a tuple, smaller is better (LM: the validation loss;
classifier: minus the validation accuracy, then the validation loss to break ties).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..files import load_tensors, save_tensors

BEST_FILE = "best.pt"


class EarlyStopping:
    def __init__(self, patience: int, monitor, out_dir: Path | None = None, history: list[dict] = ()):
        self.patience, self.monitor = patience, monitor
        self.path = Path(out_dir) / BEST_FILE if out_dir is not None else None
        self.best, self.best_epoch, self.bad_epochs, self._state = None, None, 0, None
        for metrics in history:                   # a resumed run: the epochs before it count
            self._score(metrics)

    def _score(self, metrics: dict) -> bool:
        """Record one epoch's metrics; True when it is the best so far."""
        if "valid_loss" not in metrics:
            return False
        key = self.monitor(metrics)
        if self.best is None or key < self.best:
            self.best, self.best_epoch, self.bad_epochs = key, metrics.get("epoch"), 0
            return True
        self.bad_epochs += 1
        return False

    def update(self, metrics: dict, module: torch.nn.Module, is_main: bool = True) -> None:
        """After an epoch's validation: keep the weights when they are the best so far."""
        if self._score(metrics):
            state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
            self._state = state
            if self.path is not None and is_main:
                save_tensors(self.path, state)
        metrics["best_epoch"] = self.best_epoch

    @property
    def stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def restore(self, module: torch.nn.Module) -> int | None:
        """Load the best weights into `module` (from memory, else from best.pt); the best epoch, or None."""
        state = self._state
        if state is None and self.path is not None and self.path.is_file():
            state = load_tensors(self.path)
        if state is not None:
            module.load_state_dict(state)
        return self.best_epoch

    def cleanup(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
