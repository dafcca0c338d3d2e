"""train/ layer, beside `loop`: resume checkpoints and the signals that stop a run, so that `fit` reads as a loop.

A run can be stopped and continued at any optimiser step: `save_resume` writes out_dir/resume.pt (the model, the
optimiser, the `Position` in the run and, per rank, the carried state and RNG streams), and `load_resume` puts all
of it back, so a resumed run continues with the batches and random draws it would have had. SIGINT/SIGTERM only
set a flag (`stop_signals`); the loop sees it after the step, every rank agrees on it (`agreed_flags`), writes
resume.pt and raises `Interrupted`. A SIGKILL loses the work since the last checkpoint, which `save_due` bounds by
steps and by wall time.

Imports the base layer only (file helpers, not checkpoint.py: resume.pt is the loop's own file).
"""
from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import RunConfig
from ..errors import UlmfitError
from ..files import RESUME_FILE, load_state_checked, load_tensors, save_tensors
from ..runtime import Runtime, rng_state, set_rng_state


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


def save_due(cfg: RunConfig, step: int, last_save: float) -> bool:
    """A resume checkpoint every `save_every` steps, and at least every `save_minutes` of wall time: steps alone
    would leave a slow CPU (500 `paper` steps are tens of minutes there) losing that much work to a SIGKILL."""
    by_steps = bool(cfg.save_every) and step % cfg.save_every == 0
    by_time = cfg.save_minutes > 0 and time.perf_counter() - last_save >= cfg.save_minutes * 60
    return by_steps or by_time


def agreed_flags(stop: dict, due: bool, rt: Runtime) -> tuple[int, bool]:
    """(the signal to stop on, whether to checkpoint now), agreed by every rank in one all-reduce: a signal may
    reach one rank a step before another, and each rank's clock decides `save_due` on its own."""
    signum = stop["signum"] or 0
    if rt.distributed:                    # max over ranks via a sum of one-hot flags: any rank decides for all
        got_int, got_term, any_due = rt.all_sum(float(signum == signal.SIGINT), float(signum == signal.SIGTERM),
                                                float(due))
        signum = signal.SIGINT if got_int else signal.SIGTERM if got_term else 0
        due = any_due > 0
    return int(signum), due


SAME_PLAN = ("resume with the --strategy, --epochs and --set options of the interrupted run, or pass --force to "
             "start afresh")


def plan_of(stages) -> list:
    """What a resume checkpoint must agree on: the stages, their epochs and trainable groups."""
    return [[s.name, s.epochs, list(s.trainable)] for s in stages]


def save_resume(out_dir, rt: Runtime, module, optimizer, pos: Position, carry, plan=None) -> float:
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


def load_resume(out_dir: Path, rt: Runtime, module, plan=None):
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
                          f"{SAME_PLAN}")
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


@contextmanager
def stop_signals():
    """A dict whose "signum" SIGINT/SIGTERM set while the block runs (the loop stops after the step, saved);
    the previous handlers come back afterwards. Outside the main thread (a notebook worker) there are none."""
    stop = {"signum": None}

    def handler(signum, frame):
        stop["signum"] = signum
    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:                    # not in the main thread: no handlers
        previous = {}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
