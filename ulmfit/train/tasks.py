"""train/ layer, after `schedule`: what one training step means for the language model and for the classifier.

`loop.fit` drives either task the same way: `batches(epoch, start)` to iterate, `step(net, batch, carry)` for the
loss, `evaluate(model)` at the end of each epoch.

- LMTask: next-token cross-entropy (in fp32, whatever the autocast dtype) plus AR and TAR (AWD-LSTM §4.6); the
  hidden state is carried from batch to batch (the rows of the folded stream continue each other) and detached so
  backprop stops at the window edge; the LR is scaled by seq_len / bptt (AWD-LSTM §4.1).
- ClassifierTask: cross-entropy with optional class weights and label smoothing; no state between batches.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..config import TrainConfig
from ..model.awd_lstm import detach_hidden
from ..model.regularizers import activation_penalty, temporal_penalty
from ..runtime import Runtime
from .evaluate import evaluate_lm, predict_proba
from .loop import StepResult


class _EpochBatches:
    """The part both tasks share: an epoch's training batches from `self.train` (LMBatches or
    ClassificationBatches, each reshuffled per epoch by its seed), from batch `start` on when resuming."""
    train = None

    def n_batches(self, epoch: int) -> int:
        self.train.set_epoch(epoch)
        return len(self.train)

    def batches(self, epoch: int, start: int):
        return self.train.iter_epoch(epoch, start)


class LMTask(_EpochBatches):
    def __init__(self, train_batches, valid_batches, cfg: TrainConfig, rt: Runtime, n_valid_words: int | None = None):
        self.train, self.valid, self.cfg, self.rt = train_batches, valid_batches, cfg, rt
        self.n_valid_words = n_valid_words

    def step(self, net, batch, carry) -> StepResult:
        x, y = batch[0].to(self.rt.device), batch[1].to(self.rt.device)
        out = net(x, carry)
        ce = F.cross_entropy(out.logits.float().flatten(0, 1), y.flatten())
        loss = ce
        if self.cfg.ar_alpha:
            loss = loss + activation_penalty(out.dropped_outputs[-1], self.cfg.ar_alpha)
        if self.cfg.tar_beta:
            loss = loss + temporal_penalty(out.raw_outputs[-1], self.cfg.tar_beta)
        return StepResult(loss, ce.detach(), x.numel(), detach_hidden(out.hidden), x.shape[1] / self.cfg.bptt)

    def reset_carry(self, carry):
        return None                       # a new epoch is a new (reshuffled) stream: start from zeros

    @staticmethod
    def monitor(metrics: dict) -> tuple:
        """Early stopping's score, smaller is better: the validation loss (= log perplexity)."""
        return (metrics["valid_loss"],)

    def postfix(self, loss: float, rate: float, lr: float) -> dict:
        return {"loss": f"{loss:.3f}", "ppl": f"{math.exp(min(loss, 50)):.1f}", "tok/s": f"{rate:.0f}",
                "lr": f"{lr:.2e}"}

    def evaluate(self, model) -> dict:
        if self.valid is None:
            return {}
        return evaluate_lm(model, self.valid, self.rt, self.n_valid_words)


class ClassifierTask(_EpochBatches):
    def __init__(self, train_batches, valid_batches, valid_labels: np.ndarray | None, cfg: TrainConfig, rt: Runtime,
                 class_weights: torch.Tensor | None = None):
        self.train, self.valid, self.valid_labels = train_batches, valid_batches, valid_labels
        self.cfg, self.rt = cfg, rt
        self.class_weights = None if class_weights is None else class_weights.to(rt.device)
        # a CPU copy for the validation loss, which is computed on CPU probabilities (see `loss`)
        self._cpu_class_weights = None if class_weights is None else class_weights.cpu()

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # the weights live on rt.device for training, but the validation loss comes from CPU probabilities:
        # use the copy on the logits' device
        weight = self.class_weights
        if weight is not None and weight.device != logits.device:
            weight = self._cpu_class_weights.to(logits.device)
        return F.cross_entropy(logits.float(), labels, weight=weight, label_smoothing=self.cfg.label_smoothing)

    def step(self, net, batch, carry) -> StepResult:
        tokens, mask, labels = (t.to(self.rt.device) for t in batch[:3])
        loss = self.loss(net(tokens, mask), labels)
        return StepResult(loss, loss.detach(), int(labels.shape[0]), None)

    def reset_carry(self, carry):
        return None

    def postfix(self, loss: float, rate: float, lr: float) -> dict:
        return {"loss": f"{loss:.4f}", "docs/s": f"{rate:.1f}", "lr": f"{lr:.2e}"}

    @staticmethod
    def monitor(metrics: dict) -> tuple:
        """Early stopping's score, smaller is better: accuracy first, the loss between epochs of equal accuracy."""
        return (-metrics["valid_accuracy"], metrics["valid_loss"])

    def evaluate(self, model) -> dict:
        if self.valid is None:
            return {}
        probs = predict_proba(model, self.valid, self.rt, len(self.valid_labels))
        self.last_valid_probs = probs      # the last call scores the final model: the run's report reuses it
        labels = torch.as_tensor(self.valid_labels)
        loss = self.loss(torch.log(torch.as_tensor(probs).clamp_min(1e-12)), labels).item()
        return {"valid_loss": loss, "valid_accuracy": float((probs.argmax(1) == self.valid_labels).mean())}
