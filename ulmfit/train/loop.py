"""Step 8: the training loop shared by all three stages. It knows nothing about LSTMs.

A run is a list of `Stage`s. Each stage trains some layer groups (the rest are frozen) for some epochs with a fresh
AdamW and its own LR schedule (STLR by default), which is how ULMFiT's stages work: LM fine-tuning may first train
only the last group for one epoch (§3.2), and the classifier unfreezes one group per stage (§3.3, gradual
unfreezing). Within a stage every group gets its discriminative LR, lr_top / 2.6^k (§3.2).

What differs between the LM and the classifier lives in a *task* object (`LMTask` in pipeline code, or
`ClassifierTask`): how to iterate batches, what one step's loss is, and how to evaluate. The loop owns the rest:
schedule, clipping, mixed precision, progress bar, the JSONL log, resume checkpoints and SIGINT/SIGTERM.

Decision (STYLE §12.3): the optimiser state is rebuilt at every stage, as fastai builds a new optimiser per fit.
"""
from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..files import METRICS_FILE, RESUME_FILE, load_state_checked, load_tensors, save_tensors
from ..config import TrainConfig
from ..errors import UlmfitError
from ..runtime import Runtime, rng_state, set_rng_state
from .early_stopping import EarlyStopping
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


@dataclass
class Position:
    stage: int = 0
    epoch: int = 0                       # epoch within the stage
    batch: int = 0                       # next batch to run within the epoch
    step: int = 0                        # optimiser steps taken in the whole run
    history: list = field(default_factory=list)
    spent_s: float = 0.0                 # time-budget seconds used by the finished stages
    stage_used_s: float = 0.0            # and by the current stage, at the last checkpoint


class Interrupted(Exception):
    """Raised after SIGINT/SIGTERM once a resume checkpoint has been written."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; the run was saved, "
                         "continue it with --resume")
        self.signum = signum


def _build_optimizer(module, stage: Stage, cfg: TrainConfig, rt: Runtime):
    groups = module.layer_groups()
    set_trainable(groups, stage.trainable)
    scales = discriminative_lrs(1.0, len(groups), cfg.lr_decay_per_layer)
    chosen = [groups[i] for i in stage.trainable]
    pg = param_groups(chosen, [cfg.lr * scales[i] for i in stage.trainable], cfg.weight_decay)
    for g in pg:                          # relative to the top group's LR, which the schedule sets each step
        g["lr_scale"] = g["lr"] / cfg.lr
    return build_optimizer(pg, cfg, rt.device)


def _stage_bounds(stages: list[Stage], task, cfg: TrainConfig) -> list[int]:
    """Optimiser steps before each stage and at the end: [0, end of stage 1, ...].

    A `max_steps` cap below the natural length is shared out in proportion to each stage's length (at least one
    step per stage while the cap allows), so a capped smoke run still goes through every unfreezing stage
    instead of spending all its steps in the first one.
    """
    lengths, epoch = [], 0
    for st in stages:
        lengths.append(sum(task.n_batches(epoch + e) for e in range(st.epochs)))
        epoch += st.epochs
    if cfg.max_steps and cfg.max_steps < sum(lengths):
        share = [int(cfg.max_steps * n / sum(lengths)) for n in lengths]
        for i in range(len(share)):                 # top up empty stages from the end while steps remain
            if share[i] == 0 and lengths[i] > 0 and sum(share) < cfg.max_steps:
                share[i] = 1
        share[-1] += cfg.max_steps - sum(share)
        if share[-1] < 0:                           # more stages than steps: the earliest stages win
            share = [1 if i < cfg.max_steps else 0 for i in range(len(share))]
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


def fit(model: torch.nn.Module, task, stages: list[Stage], cfg: TrainConfig, rt: Runtime,
        out_dir: Path | None = None, resume: bool = False, desc: str = "train",
        started: float | None = None) -> list[dict]:
    """Run `stages` of training; returns the list of per-epoch metric dicts (also appended to metrics.jsonl).

    `started` (a time.perf_counter() reading) is when the whole stage began: a `max_minutes` budget counts from
    there, so what came before training (tokenizing, encoding) is charged to it and the stage keeps its word.
    """
    module = model
    pos, carry, opt_state = Position(), None, None
    if resume and out_dir is not None:
        pos, carry, opt_state = _load_resume(Path(out_dir), rt, module, _plan(stages))
    first_steps = _stage_bounds(stages, task, cfg)
    run_start = time.perf_counter()
    budget_s = max(cfg.max_minutes * 60 - (run_start - (started or run_start)), 1.0) if cfg.max_minutes else 0.0
    if rt.distributed and rt.all_sum(*first_steps) != [b * rt.world_size for b in first_steps]:
        raise UlmfitError(f"the {rt.world_size} processes disagree on the number of training steps (rank {rt.rank}: "
                          f"{first_steps[-1]}); every rank must read the same corpus and tokenizer")
    stop = {"signum": None}
    handlers = _install_signal_handlers(stop)
    last_save = time.perf_counter()
    stopper = (EarlyStopping(cfg.early_stopping, task.monitor, out_dir if rt.is_main else None, pos.history)
               if cfg.early_stopping else None)
    try:
        for si in range(pos.stage, len(stages)):
            if stopper is not None and stopper.stop:
                break
            stage = stages[si]
            total = first_steps[si + 1] - first_steps[si]
            if total == 0:
                continue
            optimizer = _build_optimizer(module, stage, cfg, rt)
            if opt_state is not None:
                try:                      # a checkpoint older than its "plan" field, of another plan
                    optimizer.load_state_dict(opt_state)
                except (ValueError, KeyError) as e:
                    raise UlmfitError(f"{Path(out_dir) / RESUME_FILE} does not fit this run's optimiser ({e}); "
                                      f"{_SAME_PLAN}") from None
                opt_state = None
            net = (DistributedDataParallel(module, device_ids=[rt.device] if rt.device.type == "cuda" else None)
                   if rt.distributed else module)
            scaler = torch.amp.GradScaler("cuda") if rt.precision == "fp16" else None
            # the stages still to run share what is left of the budget by their steps: time a cheap stage did not
            # need (gradual unfreezing's head-only epoch runs ~3x faster per step) goes to the stages after it
            # (a resumed run keeps what its stages had already used: a kill must not refill the budget)
            left = max(budget_s - pos.spent_s, 1.0) if budget_s else 0.0
            budget = left * total / (first_steps[-1] - first_steps[si])
            clock, time_up = _StageClock(total, budget), False
            clock.pause(-pos.stage_used_s)
            for epoch in range(pos.epoch, stage.epochs):
                if pos.step >= first_steps[si + 1] or time_up:
                    break
                global_epoch = sum(s.epochs for s in stages[:si]) + epoch
                per_epoch = task.n_batches(global_epoch)
                bar = tqdm(total=min(per_epoch, first_steps[si + 1] - pos.step + pos.batch), initial=pos.batch,
                           desc=f"{desc} {stage.name} ep {epoch + 1}/{stage.epochs}", disable=not rt.is_main,
                           dynamic_ncols=True, leave=True, bar_format=_BUDGET_BAR if budget else None)
                net.train()
                t0, sum_loss, n_seen, n_items = time.perf_counter(), 0.0, 0, 0
                try:                      # close the bar first, so an error or a stop message gets its own line
                    for batch in task.batches(global_epoch, pos.batch):
                        progress = clock.fraction(pos.step - first_steps[si])
                        lr = lr_at(cfg.schedule, int(progress * total), total, cfg.lr, cfg)
                        with rt.autocast():
                            result = task.step(net, batch, carry)
                        loss, carry = result.loss, result.carry
                        for g in optimizer.param_groups:
                            g["lr"] = lr * g["lr_scale"] * result.lr_mult
                        optimizer.zero_grad(set_to_none=True)
                        if scaler is not None:
                            scaler.scale(loss).backward()
                            scaler.unscale_(optimizer)
                        else:
                            loss.backward()
                        if cfg.clip > 0:
                            torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.clip)
                        if scaler is not None:
                            scaler.step(optimizer)
                            scaler.update()
                        else:
                            optimizer.step()
                        pos.step += 1
                        pos.batch += 1
                        sum_loss, n_seen, n_items = sum_loss + result.metric.item(), n_seen + 1, n_items + result.items
                        if rt.is_main:
                            rate = n_items / max(time.perf_counter() - t0, 1e-9)
                            shown = task.postfix(sum_loss / n_seen, rate, lr)
                            if budget:                                # the budget's time left, not the steps'
                                shown = {"budget left": clock.left(), **shown}
                            bar.set_postfix(shown, refresh=False)
                            bar.update(1)
                            if pos.step % 10 == 0:
                                _log(out_dir, rt, {"kind": "train", "stage": stage.name, "step": pos.step,
                                                   "loss": sum_loss / n_seen, "lr": lr})
                        signum, save_due = _agreed_flags(stop, _save_due(cfg, pos.step, last_save), rt)
                        pos.stage_used_s = clock.used()
                        if signum:
                            _save_resume(out_dir, rt, module, optimizer, pos, carry, _plan(stages))
                            raise Interrupted(signum, pos.step)
                        if save_due:                                  # not charged to a time budget
                            save_start = time.perf_counter()
                            last_save = _save_resume(out_dir, rt, module, optimizer, pos, carry, _plan(stages))
                            clock.pause(last_save - save_start)
                        if cfg.eval_every and pos.step % cfg.eval_every == 0:    # a finer validation curve
                            eval_start = time.perf_counter()
                            _log(out_dir, rt, {"kind": "eval", "stage": stage.name, "step": pos.step,
                                               "seconds": round(eval_start - run_start, 1),
                                               **task.evaluate(module)})
                            clock.pause(time.perf_counter() - eval_start)
                            net.train()
                        if budget and progress >= 1.0:                # the stage's time budget is spent
                            time_up = rt.all_sum(1.0)[0] > 0 if rt.distributed else True
                        elif budget and rt.distributed:               # ranks must stop at the same step
                            time_up = rt.all_sum(0.0)[0] > 0
                        if pos.step >= first_steps[si + 1] or time_up:
                            break
                finally:
                    bar.close()
                elapsed = time.perf_counter() - t0
                sum_loss, n_seen, n_items = rt.all_sum(sum_loss, n_seen, n_items)    # every rank's batches
                metrics = {"kind": "epoch", "stage": stage.name, "epoch": global_epoch + 1, "step": pos.step,
                           "train_loss": sum_loss / max(n_seen, 1), "seconds": round(elapsed, 2),
                           "elapsed": round(time.perf_counter() - run_start, 1),
                           "items_per_s": round(n_items / max(elapsed, 1e-9), 1)}
                metrics.update(task.evaluate(module))
                if stopper is not None:
                    stopper.update(metrics, module, rt.is_main)
                pos.history.append(metrics)
                _log(out_dir, rt, metrics)
                if rt.is_main:
                    tqdm.write(_describe(metrics))
                pos.epoch, pos.batch = epoch + 1, 0
                carry = task.reset_carry(carry)
                pos.stage_used_s = clock.used()
                last_save = _save_resume(out_dir, rt, module, optimizer, pos, carry, _plan(stages))
                if stopper is not None and stopper.stop:
                    if rt.is_main:
                        tqdm.write(f"early stopping: {stopper.bad_epochs} epoch(s) without a better validation "
                                   f"score; keeping epoch {stopper.best_epoch}")
                    break
            pos.spent_s, pos.stage_used_s = pos.spent_s + clock.used(), 0.0
            pos.stage, pos.epoch, pos.batch = si + 1, 0, 0
    finally:
        _restore_signal_handlers(handlers)
    if stopper is not None:                    # the run ends with its best epoch's weights, not its last
        best = stopper.restore(module)
        if pos.history and best is not None:
            pos.history[-1]["restored_epoch"] = best
        stopper.cleanup()
    return pos.history


def _save_due(cfg: TrainConfig, step: int, last_save: float) -> bool:
    """A resume checkpoint every `save_every` steps, and at least every `save_minutes` of wall time: steps alone
    would leave a slow CPU (500 `paper` steps are tens of minutes there) losing that much work to a SIGKILL."""
    by_steps = bool(cfg.save_every) and step % cfg.save_every == 0
    by_time = cfg.save_minutes > 0 and time.perf_counter() - last_save >= cfg.save_minutes * 60
    return by_steps or by_time


def _agreed_flags(stop: dict, save_due: bool, rt: Runtime) -> tuple[int, bool]:
    """(the signal to stop on, whether to checkpoint now), agreed by every rank in one all-reduce: a signal may
    reach one rank a step before another, and each rank's clock decides `save_due` on its own."""
    signum = stop["signum"] or 0
    if rt.distributed:                    # max over ranks via a sum of one-hot flags: any rank decides for all
        got_int, got_term, due = rt.all_sum(float(signum == signal.SIGINT), float(signum == signal.SIGTERM),
                                            float(save_due))
        signum = signal.SIGINT if got_int else signal.SIGTERM if got_term else 0
        save_due = due > 0
    return int(signum), save_due


_SAME_PLAN = ("resume with the --strategy, --epochs and --set options of the interrupted run, or pass --force to "
              "start afresh")


def _plan(stages: list[Stage]) -> list:
    """What a resume checkpoint must agree on: the stages, their epochs and trainable groups."""
    return [[s.name, s.epochs, list(s.trainable)] for s in stages]


def _save_resume(out_dir, rt: Runtime, module, optimizer, pos: Position, carry, plan=None) -> float:
    """Write resume.pt (rank 0) and return the clock reading after it. Every rank must call it: the per-rank
    carries and RNG states are gathered."""
    if out_dir is None:
        return time.perf_counter()
    ranks = rt.gather({"carry": _to_device(carry, "cpu"), "rng": rng_state()})   # each rank's own stream state
    if rt.is_main:
        save_tensors(Path(out_dir) / RESUME_FILE, {
            "model": module.state_dict(), "optimizer": optimizer.state_dict(), "ranks": ranks, "plan": plan,
            "position": {"stage": pos.stage, "epoch": pos.epoch, "batch": pos.batch, "step": pos.step,
                         "history": pos.history, "world_size": rt.world_size, "spent_s": pos.spent_s,
                         "stage_used_s": pos.stage_used_s}})
    rt.barrier()            # every rank waits out rank 0's write, so all pause their budget clocks by the same time
    return time.perf_counter()


def _load_resume(out_dir: Path, rt: Runtime, module, plan=None):
    """(position, this rank's carry, optimiser state) from out_dir/resume.pt; a fresh start when there is none."""
    path = out_dir / RESUME_FILE
    seen = rt.all_sum(float(path.is_file()))[0]
    if seen == 0:
        return Position(), None, None
    if seen != rt.world_size:             # multi-node without a shared --out: ranks would start at different steps
        raise UlmfitError(f"{path} is visible to {int(seen)} of {rt.world_size} processes; --out must be on a "
                          "filesystem every node shares")
    saved = load_tensors(path)
    if not isinstance(saved, dict) or not {"model", "optimizer", "position", "ranks"} <= set(saved):
        raise UlmfitError(f"{path} is not a ulmfit resume checkpoint")
    if saved.get("plan") is not None and plan is not None and saved["plan"] != plan:
        raise UlmfitError(f"{path} was written by a run with another training plan (stages "
                          f"{', '.join(str(s[0]) for s in saved['plan'])}, not {', '.join(s[0] for s in plan)}); "
                          f"{_SAME_PLAN}")
    position = dict(saved["position"])
    written_by = position.pop("world_size", 1)
    if written_by != rt.world_size:
        raise UlmfitError(f"{path} was written by a run on {written_by} process(es); resume it on {written_by}, "
                          f"not {rt.world_size} (each process owns a slice of the data streams)")
    load_state_checked(module, saved["model"], path)
    if rt.is_main:
        tqdm.write(f"[resume] resuming {out_dir} from step {position['step']}")
    mine = saved["ranks"][rt.rank]
    set_rng_state(mine["rng"])
    return Position(**position), _to_device(mine["carry"], rt.device), saved["optimizer"]


def _to_device(obj, device):
    """Tensors nested in tuples/lists (the LM's hidden state) moved to `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(o, device) for o in obj)
    return obj


def _log(out_dir, rt: Runtime, record: dict) -> None:
    if out_dir is None or not rt.is_main:
        return
    with open(Path(out_dir) / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _describe(metrics: dict) -> str:
    shown = {k: v for k, v in metrics.items() if k not in ("kind",)}
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())


def _install_signal_handlers(stop: dict):
    def handler(signum, frame):
        stop["signum"] = signum
    try:
        return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:                    # not in the main thread (e.g. a notebook worker): no handlers
        return {}


def _restore_signal_handlers(previous: dict) -> None:
    for s, h in previous.items():
        signal.signal(s, h)
