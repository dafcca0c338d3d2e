"""Tests for ulmfit/train/tasks.py: the classifier task's class-weighted loss, wherever the model's device is.

The weights follow the model to `rt.device`, but the validation loss is computed on CPU probabilities. On a GPU
that mixed devices; here the `meta` device stands in for the GPU, so the test needs none.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ulmfit.train import tasks
from ulmfit.config import TrainConfig
from ulmfit.runtime import Runtime
from ulmfit.train.tasks import ClassifierTask

WEIGHTS = torch.tensor([0.5, 1.5])
LABELS = np.array([0, 1, 1])


@pytest.fixture
def meta_task() -> ClassifierTask:
    """A ClassifierTask whose runtime device is `meta`, so its class weights are not on the CPU."""
    task = ClassifierTask(None, object(), LABELS, TrainConfig(), Runtime(device=torch.device("meta")), WEIGHTS)
    assert task.class_weights.device.type == "meta"
    return task


class TestClassWeights:
    def test_loss_follows_the_logits_device(self, meta_task):
        """loss() on CPU logits works with the weights elsewhere, and equals the weighted cross-entropy."""
        logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.from_numpy(LABELS)
        torch.testing.assert_close(meta_task.loss(logits, labels), F.cross_entropy(logits, labels, weight=WEIGHTS))

    def test_validation_loss_is_weighted(self, meta_task, monkeypatch):
        """evaluate() scores CPU probabilities with the weights: sum_i w_y_i * -log p_i[y_i] / sum_i w_y_i."""
        probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], dtype=np.float32)
        monkeypatch.setattr(tasks, "predict_proba", lambda model, batches, rt, n: probs)
        result = meta_task.evaluate(model=None)
        w = WEIGHTS.numpy()[LABELS]
        expect = (w * -np.log(probs[np.arange(3), LABELS])).sum() / w.sum()
        assert result["valid_loss"] == pytest.approx(expect, rel=1e-5)
        assert result["valid_accuracy"] == pytest.approx(2 / 3)
