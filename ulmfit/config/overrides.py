"""Typed `--set field=value` overrides, and the checks every config passes before a run starts (a message that
names the field, never a traceback from deep inside torch)."""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import fields

from ..errors import UlmfitError
from ..validation import check_seed
from .sections import DROPOUT_FIELDS, MOVED_FROM_TRAIN, SECTIONS, STRATEGIES, StageConfig

_CHOICES = {
    "model_type": ("unigram", "bpe", "word", "fastai"),
    "fastai_rules": ("fastai_v2", "fastai_v1"),
    "schedule": ("stlr", "one_cycle", "constant"),
    "strategy": STRATEGIES,
    "precision": ("fp32", "bf16", "fp16"),
}


def _convert(raw: str, current, name: str):
    kind = type(current)
    try:
        if kind is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            value = float(raw)
            if not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            value = float(raw)             # an int like "1" is a fine float
            if not math.isfinite(value):
                raise UlmfitError(f"--set {name}={raw}: the value must be a finite number")
            return value
    except ValueError:
        raise UlmfitError(f"--set {name}={raw}: expected a {kind.__name__}") from None
    return raw


def apply_overrides(config: StageConfig, overrides: list[str]) -> StageConfig:
    """Apply `field=value` strings (bare `lr` or qualified `train.lr`), type-checked, to a copy of `config`."""
    config = dataclasses.replace(config, **{s: dataclasses.replace(getattr(config, s)) for s in SECTIONS})
    sections = {s: getattr(config, s) for s in SECTIONS}
    qualified = {f"{s}.{f.name}": (obj, f.name) for s, obj in sections.items() for f in fields(obj)}
    for item in overrides:
        if "=" not in item:
            raise UlmfitError(f"--set expects field=value, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key.startswith("train.") and key[len("train."):] in MOVED_FROM_TRAIN:   # the name before issue 25
            key = f"{MOVED_FROM_TRAIN[key[len('train.'):]]}.{key[len('train.'):]}"
        matches = [q for q in qualified if q == key or q.split(".", 1)[1] == key]
        if not matches:
            names = list(qualified) + sorted({q.split(".", 1)[1] for q in qualified})
            close = difflib.get_close_matches(key, names, n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise UlmfitError(f"unknown config field {key!r}{hint}")
        if len(matches) > 1:
            raise UlmfitError(f"config field {key!r} is ambiguous; write one of {', '.join(matches)}")
        obj, name = qualified[matches[0]]
        value = _convert(raw, getattr(obj, name), key)
        if name in _CHOICES and value not in _CHOICES[name]:
            raise UlmfitError(f"--set {key}={raw}: choose one of {', '.join(_CHOICES[name])}")
        setattr(obj, name, value)
    validate(config)
    return config


def validate(config: StageConfig) -> None:
    """Reject values no run could use, with a message that names the field."""
    m, t, h, r = config.model, config.train, config.head, config.run
    for name in DROPOUT_FIELDS:
        p = m.dropout(name)
        if not 0.0 <= p < 1.0:
            raise UlmfitError(f"{name} * dropout_scale = {p:g} is outside [0, 1)")
    if m.dropout_scale < 0:
        raise UlmfitError("dropout_scale must be >= 0")
    positive = {"model.emb_size": m.emb_size, "model.hidden_size": m.hidden_size, "model.n_layers": m.n_layers,
                "train.batch_size": t.batch_size, "train.bptt": t.bptt, "train.lr": t.lr,
                "tokenizer.vocab_size": config.tokenizer.vocab_size, "train.stlr_ratio": t.stlr_ratio}
    for name, value in positive.items():
        if not value > 0:
            raise UlmfitError(f"{name} must be > 0, got {value}")
    if min(t.epochs, r.max_steps, r.max_minutes, r.eval_every, r.save_every, r.save_minutes, r.eval_tokens,
           r.early_stopping) < 0:
        raise UlmfitError("epochs, max_steps, max_minutes, eval_every, save_every, save_minutes, eval_tokens and "
                          "early_stopping must be >= 0")
    if not 0 < t.stlr_cut_frac < 1:
        raise UlmfitError(f"stlr_cut_frac must be in (0, 1), got {t.stlr_cut_frac}")
    if not (0 <= h.head_dropout < 1 and 0 <= h.head_dropout_final < 1 and 0 <= t.label_smoothing < 1):
        raise UlmfitError("head dropouts and label_smoothing must be in [0, 1)")
    if not 0 < t.valid_frac < 1:
        raise UlmfitError(f"valid_frac must be in (0, 1), got {t.valid_frac}")
    # what torch and the code need beyond that (issue 30): AdamW, the layer LRs, BPT3C, the head, the seeds
    if t.weight_decay < 0:
        raise UlmfitError(f"train.weight_decay must be >= 0, got {t.weight_decay}")
    for name in ("adam_beta1", "adam_beta2"):
        if not 0 <= getattr(t, name) < 1:
            raise UlmfitError(f"train.{name} must be in [0, 1), got {getattr(t, name)}")
    if not t.lr_decay_per_layer > 0:
        raise UlmfitError(f"train.lr_decay_per_layer must be > 0, got {t.lr_decay_per_layer}")
    for name in ("max_len", "head_hidden"):
        if not getattr(h, name) > 0:
            raise UlmfitError(f"head.{name} must be > 0, got {getattr(h, name)}")
    if h.read_tokens < 0:
        raise UlmfitError(f"head.read_tokens must be >= 0 (0: the whole text), got {h.read_tokens}")
    for name in ("clip", "ar_alpha", "tar_beta"):
        if getattr(t, name) < 0:
            raise UlmfitError(f"train.{name} must be >= 0, got {getattr(t, name)}")
    if r.threads < 0:
        raise UlmfitError(f"run.threads must be >= 0, got {r.threads}")
    check_seed(r.seed, "run.seed")
    if m.vocab_size < 0 or not 0 <= m.pad_id < (m.vocab_size or m.pad_id + 1):   # vocab_size 0: the tokenizer's
        raise UlmfitError(f"model.pad_id must be in [0, model.vocab_size) and model.vocab_size >= 0, got "
                          f"{m.pad_id} and {m.vocab_size}")
    tk = config.tokenizer
    if not (0 < tk.character_coverage <= 1 and tk.max_sentences > 0 and tk.min_freq >= 0):
        raise UlmfitError("tokenizer.character_coverage must be in (0, 1], tokenizer.max_sentences > 0 and "
                          f"tokenizer.min_freq >= 0, got {tk.character_coverage}, {tk.max_sentences}, {tk.min_freq}")
    for name, choices in _CHOICES.items():
        for obj in (config.tokenizer, m, t, h, r):
            if hasattr(obj, name) and getattr(obj, name) not in choices:
                raise UlmfitError(f"{name}={getattr(obj, name)!r}: choose one of {', '.join(choices)}")
