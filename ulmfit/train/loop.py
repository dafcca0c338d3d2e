"""train/ layer, after `schedule` and `tasks`: the training loop shared by all three stages. It knows nothing
about LSTMs.

A run is a list of `Stage`s. Each stage trains some layer groups (the rest are frozen) for some epochs with a fresh
AdamW and its own LR schedule (STLR by default), which is how ULMFiT's stages work: LM fine-tuning may first train
only the last group for one epoch (§3.2), and the classifier unfreezes one group per stage (§3.3, gradual
unfreezing). Within a stage every group gets its discriminative LR, lr_top / 2.6^k (§3.2).

What differs between the LM and the classifier lives in a *task* object (`LMTask` in pipeline code, or
`ClassifierTask`): how to iterate batches, what one step's loss is, and how to evaluate. The loop owns the rest:
schedule, clipping, mixed precision, progress bar and the JSONL log; resume checkpoints and SIGINT/SIGTERM are
resume.py's. Read top down: `train_step` (one optimiser step), `run_epoch` (an epoch, its validation and
checkpoint), `fit` (the stages).

Decision (STYLE §12.3): the optimiser state is rebuilt at every stage, as fastai builds a new optimiser per fit.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..config import RunConfig, TrainConfig
from ..errors import UlmfitError
from ..files import METRICS_FILE, RESUME_FILE
from ..runtime import Runtime
from .early_stopping import EarlyStopping
from .resume import (SAME_PLAN, Interrupted, Position, agreed_flags, load_resume, plan_of, save_due, save_resume,
                     stop_signals)
from .schedule import build_optimizer, discriminative_lrs, lr_at, param_groups, set_trainable


@dataclass
class Stage:
    name: str
    epochs: int
    trainable: list[int]                 # indices into model.layer_groups(), bottom -> top


def stages_from_plan(names: list[str], plan: list[list[int]]) -> list[Stage]:
    """Stages for a per-epoch unfreezing plan (schedule.unfreeze_plan), consecutive equal epochs merged into one
    stage: so the epochs that train all groups after gradual unfreezing share one STLR cycle (one warm-up, one
    decay) instead of restarting the schedule every epoch."""
    stages: list[Stage] = []
    for groups in plan:
        if stages and stages[-1].trainable == list(groups):
            stages[-1].epochs += 1
            continue
        name = names[groups[0]] if len(groups) == 1 else f"{names[groups[0]]}..{names[groups[-1]]}"
        stages.append(Stage(name, 1, list(groups)))
    return stages


class StepResult(NamedTuple):
    loss: torch.Tensor                   # what is backpropagated (e.g. CE + AR + TAR)
    metric: torch.Tensor                 # what the progress bar averages (e.g. CE alone)
    items: int                           # tokens or documents in the batch, for the rate
    carry: object                        # state handed to the next batch (the LM's hidden state)
    lr_mult: float = 1.0                 # e.g. seq_len / bptt for variable-length BPTT


def _build_optimizer(module, stage: Stage, cfg: TrainConfig, rt: Runtime):
    groups = module.layer_groups()
    set_trainable(groups, stage.trainable)
    scales = discriminative_lrs(1.0, len(groups), cfg.lr_decay_per_layer)
    chosen = [groups[i] for i in stage.trainable]
    pg = param_groups(chosen, [cfg.lr * scales[i] for i in stage.trainable], cfg.weight_decay)
    for g in pg:                          # relative to the top group's LR, which the schedule sets each step
        g["lr_scale"] = g["lr"] / cfg.lr
    return build_optimizer(pg, cfg, rt.device)


def _stage_bounds(stages: list[Stage], task, max_steps: int) -> list[int]:
    """Optimiser steps before each stage and at the end: [0, end of stage 1, ...].

    A `max_steps` cap below the natural length is shared out in proportion to each stage's length (at least one
    step per stage while the cap allows), so a capped smoke run still goes through every unfreezing stage
    instead of spending all its steps in the first one.
    """
    lengths, epoch = [], 0
    for st in stages:
        lengths.append(sum(task.n_batches(epoch + e) for e in range(st.epochs)))
        epoch += st.epochs
    if max_steps and max_steps < sum(lengths):
        share = [int(max_steps * n / sum(lengths)) for n in lengths]
        for i in range(len(share)):                 # top up empty stages from the end while steps remain
            if share[i] == 0 and lengths[i] > 0 and sum(share) < max_steps:
                share[i] = 1
        share[-1] += max_steps - sum(share)
        if share[-1] < 0:                           # more stages than steps: the earliest stages win
            share = [1 if i < max_steps else 0 for i in range(len(share))]
        lengths = share
    bounds = [0]
    for n in lengths:
        bounds.append(bounds[-1] + n)
    return bounds


# Under a time budget tqdm's own ETA extrapolates the steps, which the budget will cut short: show the clock's instead.
_BUDGET_BAR = "{desc}: {n_fmt}/{total_fmt} steps [{elapsed}{postfix}]"


class _StageClock:
    """How far through a stage the run is, in [0, 1]: by steps, or by wall time when `max_minutes` gives the stage
    a time budget (whichever is further). The LR schedule reads this fraction, so a time-budgeted run still
    completes its whole STLR / one-cycle shape before the budget runs out."""

    def __init__(self, total_steps: int, seconds: float):
        self.total, self.seconds, self.start = total_steps, seconds, time.perf_counter()

    def pause(self, seconds: float) -> None:
        """Do not count `seconds` (a validation pass) against the training budget."""
        self.start += seconds

    def used(self) -> float:
        """Seconds charged to the budget so far (mid-epoch validations and checkpoints excluded)."""
        return time.perf_counter() - self.start

    def left(self) -> str:
        """The time budget's remainder as m:ss (what a progress bar under a budget should promise)."""
        seconds = max(0, int(self.seconds - (time.perf_counter() - self.start)))
        return f"{seconds // 60}:{seconds % 60:02d}"

    def fraction(self, step_in_stage: int) -> float:
        by_steps = step_in_stage / self.total
        if self.seconds <= 0:
            return by_steps
        return min(1.0, max(by_steps, (time.perf_counter() - self.start) / self.seconds))


class _Running:
    """What one stage's batches share: the model (and its DDP wrapper), the task, the optimiser and GradScaler, the
    stage's step bounds and clock, the run's position and the carried state (the LM's hidden state)."""

    def __init__(self, module, task, stage: Stage, cfg: TrainConfig, settings: RunConfig, rt: Runtime, out_dir,
                 desc: str, pos: Position, carry, bounds: tuple[int, int], budget: float, epoch_offset: int, run_start: float,
                 stop: dict, last_save: float, plan: list, stopper: EarlyStopping | None):
        self.module, self.task, self.stage, self.cfg, self.settings, self.rt = module, task, stage, cfg, settings, rt
        self.out_dir, self.desc, self.pos, self.carry = out_dir, desc, pos, carry
        self.first, self.last = bounds
        self.budget, self.epoch_offset, self.run_start = budget, epoch_offset, run_start
        self.stop, self.last_save, self.time_up = stop, last_save, False
        self.plan, self.stopper = plan, stopper
        self.optimizer = _build_optimizer(module, stage, cfg, rt)   # first: it sets which parameters train,
        self.net = (DistributedDataParallel(module, device_ids=[rt.device] if rt.device.type == "cuda" else None)
                    if rt.distributed else module)                  # which DDP reads when it wraps the model
        # fp16 needs loss scaling; disabled, the scaler's calls are plain backward() and step() (as nanoGPT does)
        self.scaler = torch.amp.GradScaler("cuda", enabled=rt.precision == "fp16")
        self.clock = _StageClock(self.last - self.first, budget)
        self.clock.pause(-pos.stage_used_s)   # a resumed stage keeps what it had used: a kill must not refill it

    def done(self) -> bool:
        return self.pos.step >= self.last or self.time_up


def train_step(run: _Running, batch, lr: float) -> StepResult:
    """One optimiser step on `batch` with the top group at `lr`: the task's loss under autocast, backward (scaled
    under fp16), gradient clipping on the unscaled gradients, the step. The result's carry feeds the next batch."""
    with run.rt.autocast():
        result = run.task.step(run.net, batch, run.carry)
    for g in run.optimizer.param_groups:
        g["lr"] = lr * g["lr_scale"] * result.lr_mult
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(result.loss).backward()
    run.scaler.unscale_(run.optimizer)
    if run.cfg.clip > 0:
        torch.nn.utils.clip_grad_norm_(run.module.parameters(), run.cfg.clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    return result


def _after_step(run: _Running, progress: float) -> None:
    """Between steps: stop on a signal (saved), the periodic resume checkpoint, `eval_every`'s validation and the
    stage's time budget. Each is agreed by every rank, so the ranks stop and save at the same step."""
    pos, rt = run.pos, run.rt
    signum, due = agreed_flags(run.stop, save_due(run.settings, pos.step, run.last_save), rt)
    pos.stage_used_s = run.clock.used()
    if signum:
        save_resume(run.out_dir, rt, run.module, run.optimizer, pos, run.carry, run.plan)
        raise Interrupted(signum, pos.step)
    if due:                                                       # not charged to a time budget
        save_start = time.perf_counter()
        run.last_save = save_resume(run.out_dir, rt, run.module, run.optimizer, pos, run.carry, run.plan)
        run.clock.pause(run.last_save - save_start)
    if run.settings.eval_every and pos.step % run.settings.eval_every == 0:  # a finer validation curve
        eval_start = time.perf_counter()
        _log(run.out_dir, rt, {"kind": "eval", "stage": run.stage.name, "step": pos.step,
                               "seconds": round(eval_start - run.run_start, 1), **run.task.evaluate(run.module)})
        run.clock.pause(time.perf_counter() - eval_start)
        run.net.train()
    if run.budget and progress >= 1.0:                            # the stage's time budget is spent
        run.time_up = rt.all_sum(1.0)[0] > 0 if rt.distributed else True
    elif run.budget and rt.distributed:                           # ranks must stop at the same step
        run.time_up = rt.all_sum(0.0)[0] > 0


def run_epoch(run: _Running, epoch: int) -> None:
    """Epoch `epoch` of the running stage from `run.pos.batch` on, then its validation, log line and checkpoint."""
    pos, cfg, rt, stage = run.pos, run.cfg, run.rt, run.stage
    global_epoch = run.epoch_offset + epoch
    total = run.last - run.first
    bar = tqdm(total=min(run.task.n_batches(global_epoch), run.last - pos.step + pos.batch), initial=pos.batch,
               desc=f"{run.desc} {stage.name} ep {epoch + 1}/{stage.epochs}", disable=not rt.is_main,
               dynamic_ncols=True, leave=True, bar_format=_BUDGET_BAR if run.budget else None)
    run.net.train()
    t0, sum_loss, n_seen, n_items = time.perf_counter(), 0.0, 0, 0
    try:                                  # close the bar first, so an error or a stop message gets its own line
        for batch in run.task.batches(global_epoch, pos.batch):
            progress = run.clock.fraction(pos.step - run.first)
            lr = lr_at(cfg.schedule, int(progress * total), total, cfg.lr, cfg)
            result = train_step(run, batch, lr)
            run.carry = result.carry
            pos.step, pos.batch = pos.step + 1, pos.batch + 1
            sum_loss, n_seen, n_items = sum_loss + result.metric.item(), n_seen + 1, n_items + result.items
            if rt.is_main:
                _show(run, bar, sum_loss / n_seen, n_items / max(time.perf_counter() - t0, 1e-9), lr)
            _after_step(run, progress)
            if run.done():
                break
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    sum_loss, n_seen, n_items = rt.all_sum(sum_loss, n_seen, n_items)    # every rank's batches
    metrics = {"kind": "epoch", "stage": stage.name, "epoch": global_epoch + 1, "step": pos.step,
               "train_loss": sum_loss / max(n_seen, 1), "seconds": round(elapsed, 2),
               "elapsed": round(time.perf_counter() - run.run_start, 1),
               "items_per_s": round(n_items / max(elapsed, 1e-9), 1)}
    metrics.update(run.task.evaluate(run.module))
    if run.stopper is not None:                     # keeps the best weights so far (early_stopping.py)
        run.stopper.update(metrics, run.module, rt.is_main)
    pos.history.append(metrics)
    _log(run.out_dir, rt, metrics)
    if rt.is_main:
        tqdm.write(_describe(metrics))
    pos.epoch, pos.batch = epoch + 1, 0
    run.carry = run.task.reset_carry(run.carry)
    pos.stage_used_s = run.clock.used()
    run.last_save = save_resume(run.out_dir, rt, run.module, run.optimizer, pos, run.carry, run.plan)


def _show(run: _Running, bar, mean_loss: float, rate: float, lr: float) -> None:
    """The progress bar's postfix and the JSONL's train line every 10 steps (rank 0)."""
    shown = run.task.postfix(mean_loss, rate, lr)
    if run.budget:                                                # the budget's time left, not the steps'
        shown = {"budget left": run.clock.left(), **shown}
    bar.set_postfix(shown, refresh=False)
    bar.update(1)
    if run.pos.step % 10 == 0:
        _log(run.out_dir, run.rt, {"kind": "train", "stage": run.stage.name, "step": run.pos.step,
                                   "loss": mean_loss, "lr": lr})


def fit(model: torch.nn.Module, task, stages: list[Stage], cfg: TrainConfig, settings: RunConfig, rt: Runtime,
        out_dir: Path | None = None, resume: bool = False, desc: str = "train",
        started: float | None = None) -> list[dict]:
    """Run `stages` of training, optimised as `cfg` says, under `settings`' budgets, checkpoints and early
    stopping; returns the list of per-epoch metric dicts (also appended to metrics.jsonl).

    `started` (a time.perf_counter() reading) is when the whole stage began: a `max_minutes` budget counts from
    there, so what came before training (tokenizing, encoding) is charged to it and the stage keeps its word.
    """
    pos, carry, opt_state = Position(), None, None
    plan = plan_of(stages)
    if resume and out_dir is not None:
        pos, carry, opt_state = load_resume(Path(out_dir), rt, model, plan)
    stopper = (EarlyStopping(settings.early_stopping, task.monitor, out_dir if rt.is_main else None, pos.history)
               if settings.early_stopping else None)
    bounds = _stage_bounds(stages, task, settings.max_steps)
    run_start = time.perf_counter()
    budget_s = (max(settings.max_minutes * 60 - (run_start - (started or run_start)), 1.0) if settings.max_minutes
                else 0.0)
    if rt.distributed and rt.all_sum(*bounds) != [b * rt.world_size for b in bounds]:
        raise UlmfitError(f"the {rt.world_size} processes disagree on the number of training steps (rank {rt.rank}: "
                          f"{bounds[-1]}); every rank must read the same corpus and tokenizer")
    last_save = time.perf_counter()
    with stop_signals() as stop:
        for si in range(pos.stage, len(stages)):
            total = bounds[si + 1] - bounds[si]
            if total == 0:
                continue
            if stopper is not None and stopper.stop:
                break
            # the stages still to run share what is left of the budget by their steps: time a cheap stage did not
            # need (gradual unfreezing's head-only epoch runs ~3x faster per step) goes to the stages after it
            left = max(budget_s - pos.spent_s, 1.0) if budget_s else 0.0
            run = _Running(model, task, stages[si], cfg, settings, rt, out_dir, desc, pos, carry,
                           (bounds[si], bounds[si + 1]), left * total / (bounds[-1] - bounds[si]), sum(s.epochs for s in stages[:si]), run_start,
                           stop, last_save, plan, stopper)
            if opt_state is not None:                             # resumed mid-stage: the optimiser it had
                try:                      # a checkpoint older than its "plan" field, of another plan
                    run.optimizer.load_state_dict(opt_state)
                except (ValueError, KeyError) as e:
                    raise UlmfitError(f"{Path(out_dir) / RESUME_FILE} does not fit this run's optimiser ({e}); "
                                      f"{SAME_PLAN}") from None
                opt_state = None
            for epoch in range(pos.epoch, stages[si].epochs):
                if run.done():
                    break
                run_epoch(run, epoch)
                if stopper is not None and stopper.stop:
                    if rt.is_main:
                        tqdm.write(f"early stopping: {stopper.bad_epochs} epoch(s) without a better validation "
                                   f"score; keeping epoch {stopper.best_epoch}")
                    break
            carry, last_save = run.carry, run.last_save
            pos.spent_s, pos.stage_used_s = pos.spent_s + run.clock.used(), 0.0
            pos.stage, pos.epoch, pos.batch = si + 1, 0, 0
    if stopper is not None:                    # the run ends with its best epoch's weights, not its last
        best = stopper.restore(model)
        if pos.history and best is not None:
            pos.history[-1]["restored_epoch"] = best
        stopper.cleanup()
    return pos.history


def _log(out_dir, rt: Runtime, record: dict) -> None:
    if out_dir is None or not rt.is_main:
        return
    with open(Path(out_dir) / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _describe(metrics: dict) -> str:
    shown = {k: v for k, v in metrics.items() if k not in ("kind",)}
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
