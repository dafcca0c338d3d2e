"""Early stopping: the loop stops after `patience` epochs without a better validation score and ends with the best
epoch's weights (issue 27)."""
import numpy as np
import torch

from ulmfit.config import RunConfig, TrainConfig
from ulmfit.model.awd_lstm import LanguageModel
from ulmfit.runtime import Runtime, seed_everything
from ulmfit.text.batching import LMBatches
from ulmfit.train.early_stopping import BEST_FILE, EarlyStopping
from ulmfit.train.loop import Stage, fit
from ulmfit.train.tasks import ClassifierTask, LMTask

RT = Runtime(device=torch.device("cpu"))


class _ScriptedLM(LMTask):
    """An LM task whose validation losses follow a script, recording the weights each epoch ended with."""

    def __init__(self, *args, losses, **kw):
        super().__init__(*args, **kw)
        self.losses, self.seen = list(losses), []

    def evaluate(self, model):
        self.seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"valid_loss": self.losses[len(self.seen) - 1]}


def _run(tiny_config, tmp_path, losses, patience, epochs=6):
    seed_everything(0)
    rng = np.random.default_rng(0)
    ids = rng.integers(4, 50, 400).astype(np.uint16)
    cfg, run = TrainConfig(batch_size=4, bptt=8, lr=1e-2), RunConfig(early_stopping=patience)
    task = _ScriptedLM(LMBatches(ids, np.array([0, 400]), 4, 8, shuffle=True, seed=0), None, cfg, RT, losses=losses)
    model = LanguageModel(tiny_config)
    history = fit(model, task, [Stage("all", epochs, [0, 1, 2, 3])], cfg, run, RT, out_dir=tmp_path)
    return model, task, history


def test_stops_after_patience_and_keeps_the_best(tiny_config, tmp_path):
    """Losses 3, 2, 2.5, 2.6, ...: with patience 2 the run stops after epoch 4 with epoch 2's weights."""
    model, task, history = _run(tiny_config, tmp_path, [3.0, 2.0, 2.5, 2.6, 1.0, 1.0], patience=2)
    assert len(history) == 4 and history[-1]["restored_epoch"] == 2 and history[-1]["best_epoch"] == 2
    for k, v in model.state_dict().items():
        assert torch.equal(v, task.seen[1][k]), k
    assert not (tmp_path / BEST_FILE).exists()          # a finished run leaves no best.pt behind


def test_off_runs_every_epoch(tiny_config, tmp_path):
    """early_stopping=0 trains every epoch and keeps the last weights."""
    model, task, history = _run(tiny_config, tmp_path, [3.0, 2.0, 2.5, 2.6, 2.7, 2.8], patience=0)
    assert len(history) == 6 and "restored_epoch" not in history[-1]
    assert all(torch.equal(v, task.seen[-1][k]) for k, v in model.state_dict().items())


def test_classifier_monitor_breaks_ties_by_loss():
    """Equal accuracy: the lower validation loss is the better epoch."""
    better = ClassifierTask.monitor({"valid_accuracy": 0.8, "valid_loss": 0.4})
    assert better < ClassifierTask.monitor({"valid_accuracy": 0.8, "valid_loss": 0.5})
    assert ClassifierTask.monitor({"valid_accuracy": 0.81, "valid_loss": 0.9}) < better


def test_resumed_history_counts(tiny_config):
    """A resumed run's earlier epochs count towards the patience and the best score."""
    stopper = EarlyStopping(2, LMTask.monitor, None, [{"epoch": 1, "valid_loss": 2.0},
                                                       {"epoch": 2, "valid_loss": 2.5}])
    model = LanguageModel(tiny_config)
    stopper.update({"epoch": 3, "valid_loss": 2.4}, model)
    assert stopper.stop and stopper.best_epoch == 1
