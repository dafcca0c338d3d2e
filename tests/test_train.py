"""The shared training loop: it learns, it freezes what it should, and a resumed run is bit-identical."""
import dataclasses
import os
import signal

import numpy as np
import pytest
import torch

from ulmfit.model.awd_lstm import LanguageModel
from ulmfit.text.batching import LMBatches
from ulmfit.config import ModelConfig, RunConfig, TrainConfig
from ulmfit.runtime import Runtime, seed_everything
from ulmfit.train.tasks import LMTask
from ulmfit.train.loop import Stage, fit, stages_from_plan
from ulmfit.train.resume import Interrupted

RT = Runtime(device=torch.device("cpu"))


def _corpus(n_docs=40, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 30, n_docs)
    ids = rng.integers(4, 50, lengths.sum()).astype(np.uint16)
    return ids, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _setup(cfg: TrainConfig, model_cfg: ModelConfig, seed: int = 0):
    seed_everything(seed)
    ids, offsets = _corpus()
    train = LMBatches(ids, offsets, cfg.batch_size, cfg.bptt, shuffle=True, seed=seed)
    valid = LMBatches(ids[:300], np.array([0, 300]), 2, cfg.bptt, shuffle=False, seed=0, variable_length=False)
    return LanguageModel(model_cfg), LMTask(train, valid, cfg, RT)


def _all_groups(model):
    return list(range(len(model.layer_groups())))


class TestFit:
    def test_one_batch_overfits(self, tiny_config):
        """Repeating a single batch with dropouts off drives its loss down by more than half in 100 steps."""
        model_cfg = dataclasses.replace(tiny_config, emb_size=32, hidden_size=64, dropout_scale=0.0)
        cfg, run = TrainConfig(batch_size=4, bptt=8, lr=3e-2, schedule="constant", ar_alpha=0, tar_beta=0, clip=0, lr_decay_per_layer=1.0, weight_decay=0), RunConfig()
        model, task = _setup(cfg, model_cfg)
        batch = next(iter(task.train.iter_epoch(0, 0)))
        task.batches = lambda epoch, start: (batch for _ in range(100 - start))
        task.n_batches = lambda epoch: 100
        step = task.step
        task.step = lambda net, b, carry: step(net, b, None)   # the same batch from the same (zero) state
        first = task.step(model, batch, None).metric.item()
        fit(model, task, [Stage("all", 1, _all_groups(model))], cfg, run, RT)
        assert task.step(model, batch, None).metric.item() < 0.5 * first

    def test_frozen_groups_do_not_change(self, tiny_config):
        """Training only the top group leaves every LSTM layer's weights exactly as they were."""
        cfg, run = TrainConfig(batch_size=4, bptt=8), RunConfig(max_steps=5)
        model, task = _setup(cfg, tiny_config)
        before = {k: v.clone() for k, v in model.encoder.rnns.state_dict().items()}
        top = len(model.layer_groups()) - 1
        fit(model, task, [Stage("last", 1, [top])], cfg, run, RT)
        after = model.encoder.rnns.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)

    def test_stage_schedule_spans_the_capped_steps(self, tiny_config):
        """With max_steps the run stops after exactly that many optimiser steps and logs one epoch."""
        cfg, run = TrainConfig(batch_size=4, bptt=8, epochs=3), RunConfig(max_steps=7)
        model, task = _setup(cfg, tiny_config)
        history = fit(model, task, [Stage("all", 3, _all_groups(model))], cfg, run, RT)
        assert [h["step"] for h in history] == [7]


class TestResume:
    def test_resumed_run_is_bit_identical(self, tiny_config, tmp_path):
        """A run stopped by SIGTERM mid-epoch and resumed ends with the same weights as an uninterrupted run."""
        cfg, run = TrainConfig(batch_size=4, bptt=8, epochs=2), RunConfig(save_every=3, seed=3)
        model, task = _setup(cfg, tiny_config, run.seed)
        fit(model, task, [Stage("all", 2, _all_groups(model))], cfg, run, RT, out_dir=tmp_path / "a")
        reference = {k: v.clone() for k, v in model.state_dict().items()}

        model, task = _setup(cfg, tiny_config, run.seed)
        batches = task.batches

        def killed_after_7(epoch, start):          # SIGTERM arrives while batch 7 is being trained
            for k, batch in enumerate(batches(epoch, start)):
                if k == 6:
                    os.kill(os.getpid(), signal.SIGTERM)
                yield batch
        task.batches = killed_after_7
        with pytest.raises(Interrupted):
            fit(model, task, [Stage("all", 2, _all_groups(model))], cfg, run, RT, out_dir=tmp_path / "b")
        torch.manual_seed(12345)                  # the resumed run must not depend on the RNG it starts with
        model, task = _setup(cfg, tiny_config, run.seed)
        fit(model, task, [Stage("all", 2, _all_groups(model))], cfg, run, RT, out_dir=tmp_path / "b", resume=True)
        assert all(torch.equal(reference[k], v) for k, v in model.state_dict().items())


class TestTimedCheckpoints:
    def _saved_steps_during_epoch(self, cfg, run, tiny_config, out_dir):
        """The step recorded in resume.pt as seen at each batch of a one-epoch run."""
        model, task = _setup(cfg, tiny_config)
        batches, seen = task.batches, []

        def watching(epoch, start):
            for batch in batches(epoch, start):
                path = out_dir / "resume.pt"
                seen.append(torch.load(path, weights_only=True)["position"]["step"] if path.is_file() else None)
                yield batch
        task.batches = watching
        fit(model, task, [Stage("all", 1, _all_groups(model))], cfg, run, RT, out_dir=out_dir)
        return seen

    def test_checkpoints_by_wall_time_between_step_checkpoints(self, tiny_config, tmp_path):
        """With step checkpoints off, `save_minutes` alone writes resume.pt mid-epoch once its time has passed."""
        cfg, run = TrainConfig(batch_size=4, bptt=8), RunConfig(save_every=0, save_minutes=1e-9, max_steps=6)
        assert self._saved_steps_during_epoch(cfg, run, tiny_config, tmp_path) == [None, 1, 2, 3, 4, 5]

    def test_checkpoint_keeps_the_time_budget_used(self, tiny_config, tmp_path):
        """Under a time budget, resume.pt records the seconds already used, so a resumed run does not get the
        whole budget again."""
        cfg, run = TrainConfig(batch_size=4, bptt=8), RunConfig(save_every=1, max_minutes=10.0, max_steps=6)
        model, task = _setup(cfg, tiny_config)
        batches, used = task.batches, []

        def watching(epoch, start):
            for batch in batches(epoch, start):
                path = tmp_path / "resume.pt"
                if path.is_file():
                    used.append(torch.load(path, weights_only=True)["position"]["stage_used_s"])
                yield batch
        task.batches = watching
        fit(model, task, [Stage("all", 1, _all_groups(model))], cfg, run, RT, out_dir=tmp_path)
        assert used and all(u > 0 for u in used) and used == sorted(used)

    def test_no_mid_epoch_checkpoint_when_both_are_off(self, tiny_config, tmp_path):
        cfg, run = TrainConfig(batch_size=4, bptt=8), RunConfig(save_every=0, save_minutes=0, max_steps=6)
        assert self._saved_steps_during_epoch(cfg, run, tiny_config, tmp_path) == [None] * 6


class TestTimeBudget:
    def test_max_minutes_stops_the_run_early(self, tiny_config):
        """A wall-time budget ends training before the epoch does, after at least one step."""
        cfg, run = TrainConfig(batch_size=2, bptt=5, epochs=500), RunConfig(max_minutes=0.005)
        model, task = _setup(cfg, tiny_config)
        history = fit(model, task, [Stage("all", 500, _all_groups(model))], cfg, run, RT)
        assert history and 1 <= history[-1]["step"] < 500 * task.n_batches(0)


    def test_budget_counts_from_the_stage_start(self, tiny_config):
        """Time spent before training (tokenizing) is charged to `max_minutes`: a stage that began 59.9 s ago
        with a one-minute budget trains only for the 1-second minimum left, not for another minute."""
        import time
        cfg, run = TrainConfig(batch_size=2, bptt=5, epochs=500), RunConfig(max_minutes=1.0)
        model, task = _setup(cfg, tiny_config)
        start = time.perf_counter()
        history = fit(model, task, [Stage("all", 500, _all_groups(model))], cfg, run, RT, started=start - 59.9)
        assert time.perf_counter() - start < 20 and history[-1]["step"] >= 1


def test_stages_from_plan_merges_the_epochs_that_train_the_same_groups():
    names = ["lstm_0", "embedding", "head"]
    stages = stages_from_plan(names, [[2], [1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2]])
    assert [(s.name, s.epochs, s.trainable) for s in stages] == [
        ("head", 1, [2]), ("embedding..head", 1, [1, 2]), ("lstm_0..head", 3, [0, 1, 2])]
