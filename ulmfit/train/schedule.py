r"""train/ layer, first file (what to train, and how fast): LR schedules, discriminative LRs and unfreezing (ULMFiT
§3.2-3.3).

Every schedule is a pure function of the step, so a resumed run only needs the step number:

    STLR (ULMFiT §3.2, eq. 3)               one-cycle (fastai)                     constant
    lr_max        /\                        lr_max     .-""-.                      lr_max ___________
                 /   \                                /      "-.
                /      \                             /          "-.
               /         \                          /              "-._
    lr_max/32 /            \ lr_max/32       lr/25 -'                    "-- lr/1e4
              0  cut         T                     0  25%                  T

Discriminative fine-tuning (§3.2) gives layer group l the LR eta_l, with eta_{l-1} = eta_l / 2.6: lower layers hold
more general features and should move less. Gradual unfreezing (§3.3) trains the top group alone first and thaws one
more group per epoch, so the freshly initialised head cannot wreck the pretrained layers below it.

Decision (STYLE §12.3, Adam state on unfreezing): build a fresh optimiser for every stage with `build_optimizer`.
fastai clears the optimiser state whenever groups are frozen or unfrozen; a fresh AdamW does the same thing and
makes the stage boundary explicit. `set_trainable` also drops the .grad of frozen parameters, because AdamW would
otherwise still apply weight decay (and stale moments) to a parameter whose .grad is not None.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..config import STRATEGIES, TrainConfig
from ..errors import UlmfitError


def slanted_triangular_lr(step: int, total_steps: int, lr_max: float,
                          cut_frac: float = 0.1, ratio: float = 32.0) -> float:
    """Learning rate at `step` under STLR (ULMFiT §3.2, eq. 3).

    Rises linearly from lr_max / ratio to lr_max over the first cut = floor(total_steps * cut_frac) steps, then falls
    linearly back to lr_max / ratio at `total_steps`. Eq. 3 divides the decay by cut * (1 / cut_frac - 1), which
    equals total_steps - cut only when total_steps * cut_frac is a whole number; we divide by total_steps - cut so the
    last step lands exactly on lr_max / ratio (and never goes negative), and clamp steps past the end there too.
    """
    cut = max(1, math.floor(total_steps * cut_frac))
    if step < cut:
        p = step / cut
    else:
        p = max(0.0, 1.0 - (step - cut) / max(1, total_steps - cut))
    return lr_max * (1 + p * (ratio - 1)) / ratio


def _cosine(start: float, end: float, pos: float) -> float:
    # half a cosine from start (pos = 0) to end (pos = 1): flat at both ends, as fastai's SchedCos
    return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


def one_cycle_lr(step: int, total_steps: int, lr_max: float, pct_start: float = 0.25, div: float = 25.0,
                 final_div: float = 1e4) -> float:
    """Learning rate at `step` under fastai's one-cycle: cosine up from lr_max / div to lr_max over the first
    `pct_start` of training, then cosine down to lr_max / final_div at `total_steps` (Smith 2018; fastai's
    fit_one_cycle).
    """
    warm = max(1, round(total_steps * pct_start))
    if step < warm:
        return _cosine(lr_max / div, lr_max, step / warm)
    return _cosine(lr_max, lr_max / final_div, min(1.0, (step - warm) / max(1, total_steps - warm)))


def constant_lr(step: int, total_steps: int, lr_max: float) -> float:
    """lr_max at every step (for comparisons and debugging)."""
    return lr_max


def lr_at(schedule: str, step: int, total_steps: int, lr_max: float, cfg: TrainConfig) -> float:
    """The top group's LR at `step` under the schedule named by `cfg.schedule` ("stlr" | "one_cycle" | "constant")."""
    if schedule == "stlr":
        return slanted_triangular_lr(step, total_steps, lr_max, cfg.stlr_cut_frac, cfg.stlr_ratio)
    if schedule == "one_cycle":
        return one_cycle_lr(step, total_steps, lr_max)
    if schedule == "constant":
        return constant_lr(step, total_steps, lr_max)
    raise UlmfitError(f"unknown schedule {schedule!r}; choose stlr, one_cycle or constant")


def discriminative_lrs(lr_top: float, n_groups: int, factor: float = 2.6) -> list[float]:
    """Per-group LRs bottom -> top, the top group at lr_top and each lower one `factor` smaller (ULMFiT §3.2)."""
    return [lr_top / factor ** (n_groups - 1 - i) for i in range(n_groups)]


def param_groups(layer_groups: Sequence[tuple[str, Sequence[nn.Parameter]]], lrs: Sequence[float],
                 weight_decay: float) -> list[dict]:
    """torch.optim param-group dicts, one or two per layer group, each parameter in exactly one of them.

    A parameter shared by two groups (the tied embedding/decoder weight) stays in the first group that lists it,
    since torch refuses a parameter in two groups. As fastai does by default (wd_bn_bias=False), biases and norm
    weights (every parameter with ndim <= 1) get no weight decay: they hold offsets and scales, not feature
    detectors, and shrinking them towards 0 only hurts; their dict is named "<group>.no_decay".
    Each dict carries "name", "lr" and "lr_scale" = lr / lrs[-1], so the loop can set lr = lr_top * lr_scale.
    """
    if len(lrs) != len(layer_groups):
        raise ValueError(f"{len(lrs)} learning rates for {len(layer_groups)} layer groups")
    seen: set[int] = set()
    out = []
    for (name, params), lr in zip(layer_groups, lrs):
        decay, no_decay = [], []
        for p in params:
            if id(p) in seen:
                continue
            seen.add(id(p))
            (no_decay if p.ndim <= 1 else decay).append(p)
        for suffix, chosen, wd in (("", decay, weight_decay), (".no_decay", no_decay, 0.0)):
            if chosen:
                out.append({"params": chosen, "lr": lr, "weight_decay": wd, "name": name + suffix,
                            "lr_scale": lr / lrs[-1]})
    return out


def build_optimizer(groups: list[dict], cfg: TrainConfig, device: torch.device | str = "cpu") -> torch.optim.AdamW:
    """A fresh AdamW (decoupled weight decay) over `groups`, on torch's multi-tensor path: fused on CUDA, foreach else.

    betas come from cfg (fastai's ULMFiT scripts use (0.8, 0.99); the paper says beta1 = 0.7).
    """
    fast_path = {"fused": True} if torch.device(device).type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                             weight_decay=cfg.weight_decay, **fast_path)


def unfreeze_plan(n_groups: int, strategy: str, n_epochs: int) -> list[list[int]]:
    """The trainable layer-group indices (bottom = 0, head = n_groups - 1) for each of `n_epochs` epochs.

    - "gradual" (ULMFiT §3.3): the head alone in epoch 1, one more group from the top each epoch, then all groups.
      With fewer epochs than groups the lowest groups never thaw, as the paper's one-group-per-epoch rule implies.
    - "full": every group in every epoch (the no-unfreezing ablation, §5).
    - "frozen": the head alone in every epoch (feature extraction).
    - "chain-thaw" (Felbo et al. 2017, §3.3 of their paper): the head alone, then each other group alone starting
      from the *bottom* (their "starting from the first layer"), then all groups. One epoch per stage (they train
      each to convergence; an epoch is our budget). The final all-groups stage is kept when epochs are short, by
      dropping single-group stages; extra epochs train all groups.
    """
    head, everything = [n_groups - 1], list(range(n_groups))
    if strategy == "gradual":
        return [list(range(max(0, n_groups - 1 - e), n_groups)) for e in range(n_epochs)]
    if strategy == "full":
        return [everything for _ in range(n_epochs)]
    if strategy == "frozen":
        return [head for _ in range(n_epochs)]
    if strategy == "chain-thaw":
        singles = [head] + [[g] for g in range(n_groups - 1)]
        if n_epochs <= len(singles):
            return singles[:max(0, n_epochs - 1)] + [everything][:n_epochs]
        return singles + [everything] * (n_epochs - len(singles))
    raise UlmfitError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")


def set_trainable(layer_groups: Sequence[tuple[str, Sequence[nn.Parameter]]],
                  trainable: Sequence[int] | int) -> None:
    """Set requires_grad on: True for the groups at indices `trainable` (an int n means the top n), False elsewhere.

    A parameter listed in several groups (the tied weight) trains if any of its groups does.
    """
    if isinstance(trainable, int):
        trainable = range(len(layer_groups) - trainable, len(layer_groups))
    chosen = {id(p) for i in trainable for p in layer_groups[i][1]}
    for _, params in layer_groups:
        for p in params:
            p.requires_grad_(id(p) in chosen)
            if id(p) not in chosen:
                p.grad = None        # a leftover grad would let AdamW decay and move a frozen parameter
