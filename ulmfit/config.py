"""Base layer: every knob, as plain dataclasses with defaults in code.

A stage (pretrain, finetune, classify) is configured by a `StageConfig`: the tokenizer, the AWD-LSTM, the
training stage and (classify) the classifier head, each its own dataclass. Named presets (`tiny`, `small`,
`paper`) are just instances. The resolved config is written as JSON into every output dir and checkpoint, so
any stage rebuilds the exact model.

`paper` is fastai's ULMFiT recipe, the one its published WikiText-103 LM and IMDb scripts use (hidden 1152; LM
fine-tuning batch 52 at LR 1e-3; classifier batch 48; Adam beta1 0.8), not the paper's own settings (Howard &
Ruder 2018 §4: hidden 1150; batch 64; LM fine-tuning LR 0.004; Adam beta1 0.7). The name is kept for the commands
and run dirs that use it; set the paper's values with --set (e.g. --set lr=4e-3 --set adam_beta1=0.7).

Names, translated for readers of the papers and of the reference code:

| ours                 | paper / awd-lstm-lm / fastai            |
|----------------------|-----------------------------------------|
| vocab_size           | V / ntoken / vocab_sz                   |
| emb_size             | - / emsize, ninp / emb_sz               |
| hidden_size          | - / nhid / n_hid                        |
| dropout_embed        | p_E / dropoute / embed_p                |
| dropout_input        | - / dropouti / input_p                  |
| dropout_hidden       | - / dropouth / hidden_p                 |
| dropout_weight       | - / wdrop / weight_p                    |
| dropout_output       | - / dropout / output_p                  |
| dropout_scale        | - / - / drop_mult                       |
| ar_alpha, tar_beta   | alpha, beta (AWD-LSTM §4.6)             |
| lr_decay_per_layer   | 2.6 (ULMFiT §3.2, discriminative LR)    |
| stlr_cut_frac/ratio  | cut_frac, ratio (ULMFiT §3.2, eq. 3)    |
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field, fields, asdict

from .errors import UlmfitError
from .validation import check_seed

# Special-token ids are fixed for every tokenizer we train (pinned by tests/test_tokenizer.py).
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

# Prediction's token budget per batch (documents x padded length): 64 documents of 256 tokens (the batch of the
# README's throughput figures), so up to 256 tokens the batches are the fixed 64-document ones, and beyond it they
# shrink: 16 documents of 1,000 tokens. Here, in the base layer, because the API, the CLI (whose --help must not
# import torch), `serve` and an export all use it.
DEFAULT_MAX_TOKENS = 64 * 256

# The classifier's unfreezing strategies (train/schedule.unfreeze_plan says what each does).
STRATEGIES = ("gradual", "full", "frozen", "chain-thaw")

DROPOUT_FIELDS = ("dropout_embed", "dropout_input", "dropout_hidden", "dropout_weight", "dropout_output")


@dataclass
class TokenizerConfig:
    vocab_size: int = 30000
    model_type: str = "unigram"          # unigram | bpe | word (SentencePiece) | fastai (spaCy + fastai's rules)
    pre_rules: bool = True               # fastai-style xxmaj/xxup/xxrep/xxwrep and HTML fixes
    lowercase: bool = False              # pre_rules already lower-case through xxmaj/xxup markers
    character_coverage: float = 0.9999
    max_sentences: int = 2_000_000       # lines sampled to train SentencePiece (memory bound)
    min_freq: int = 3                    # fastai kind: words seen fewer times become xxunk (fastai's default)
    fastai_rules: str = "fastai_v2"      # fastai kind: fastai_v2's rules, or fastai_v1's (what wt103-fwd/bwd were
                                         # trained with; imports of them choose it, fastai_tokenizer.py)


@dataclass
class ModelConfig:
    """AWD-LSTM (Merity et al. 2017) sizes and dropouts. `vocab_size` comes from the tokenizer."""
    vocab_size: int = 0
    emb_size: int = 400
    hidden_size: int = 1152
    n_layers: int = 3
    dropout_embed: float = 0.02
    dropout_input: float = 0.25
    dropout_hidden: float = 0.15
    dropout_weight: float = 0.2
    dropout_output: float = 0.1
    dropout_scale: float = 1.0
    tie_weights: bool = True
    out_bias: bool = True
    pad_id: int = PAD_ID

    def dropout(self, name: str) -> float:
        """The effective probability of one dropout: the field times `dropout_scale` (fastai's drop_mult)."""
        if name not in DROPOUT_FIELDS:
            raise KeyError(name)
        return getattr(self, name) * self.dropout_scale


@dataclass
class TrainConfig:
    """One training stage: LM pretraining, LM fine-tuning, or classifier training."""
    batch_size: int = 64
    bptt: int = 70
    epochs: int = 1
    max_steps: int = 0                   # >0: stop after this many optimiser steps (smoke runs)
    lr: float = 1e-3                     # the peak LR (eta_max) of the top layer group
    schedule: str = "stlr"               # stlr | one_cycle | constant
    stlr_cut_frac: float = 0.1
    stlr_ratio: float = 32.0
    lr_decay_per_layer: float = 2.6      # eta_{l-1} = eta_l / 2.6
    adam_beta1: float = 0.8              # fastai's ULMFiT scripts; the paper says 0.7 (see the docstring)
    adam_beta2: float = 0.99
    weight_decay: float = 0.01           # decoupled (AdamW)
    clip: float = 0.4
    ar_alpha: float = 2.0
    tar_beta: float = 1.0
    freeze_first_epoch: bool = False     # LM fine-tuning: train only the last layer group in epoch 1
    backwards: bool = False              # train on the reversed token stream
    # classifier-only fields (ignored by the LM stages); the head's architecture is HeadConfig's
    strategy: str = "gradual"            # gradual | full | frozen | chain-thaw
    label_smoothing: float = 0.0
    class_weights: bool = False
    no_pretraining: bool = False
    valid_frac: float = 0.1              # seeded validation split where a dataset has none
    # run-level knobs
    save_every: int = 500                # optimiser steps between resume checkpoints (0: off)
    save_minutes: float = 5.0            # and at most this much wall time between them (0: off), on any CPU
    eval_every: int = 0                  # optimiser steps between extra validations (0: epoch ends only)
    max_minutes: float = 0.0             # >0: a wall-time budget for the stage from its start (tokenizing and
    #                                      epoch-end validation included, eval_every passes not); the LR follows it
    eval_tokens: int = 0                 # LM validation on the first whole documents holding >= N tokens (0: all)
    early_stopping: int = 0              # >0: stop after this many epochs without a better validation score and
    #                                      keep the best epoch's weights (early_stopping.py); 0: off
    precision: str = "fp32"              # fp32 | bf16 | fp16
    seed: int = 0
    threads: int = 0                     # 0: leave torch's default


@dataclass
class HeadConfig:
    """The classifier's architecture beyond the encoder (ULMFiT §3.3): what `TextClassifier` needs besides the
    ModelConfig and bptt, so rebuilding a classifier needs no training settings. Used by the classify stage only."""
    max_len: int = 1400                  # BPT3C: tokens at the end of a document that feed the pooling
    head_hidden: int = 50
    head_dropout: float = 0.1            # dropout before the hidden linear layer (fastai ps[0])
    head_dropout_final: float = 0.1      # dropout before the output layer
    read_tokens: int = 0                 # >0: the classifier reads each text's first N tokens only (in its reading
    #                                      order), in training and prediction alike: `ulmfit fit` sets it when long
    #                                      texts would leave its budget too few epochs; 0: the whole text


@dataclass
class StageConfig:
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    head: HeadConfig = field(default_factory=HeadConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StageConfig":
        """The config a run dir's config.json holds, from today's layout or an older one (see `_upgrade`)."""
        d = _upgrade(d)
        return cls(**{name: _section_from_dict(kind, d.get(name, {})) for name, kind in SECTIONS.items()})


SECTIONS = {"tokenizer": TokenizerConfig, "model": ModelConfig, "train": TrainConfig, "head": HeadConfig}
HEAD_FIELDS = tuple(f.name for f in fields(HeadConfig))


def _upgrade(d: dict) -> dict:
    """Run dirs written before issue 25 (no "head" section) kept the head's fields in "train": move them, so old
    run dirs load and rebuild the same classifier (tests/test_old_run_dirs.py)."""
    train = dict(d.get("train", {}))
    moved = {name: train.pop(name) for name in HEAD_FIELDS if name in train}
    if not moved:
        return d
    return {**d, "train": train, "head": {**moved, **d.get("head", {})}}


def _section_from_dict(cls, d: dict):
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise UlmfitError(f"unknown config field(s) {sorted(unknown)} in {cls.__name__}")
    return cls(**d)


# ---- presets --------------------------------------------------------------------------------------------
# fastai's awd_lstm_lm_config / awd_lstm_clas_config dropouts, for the LM and the classifier respectively.
LM_DROPOUTS = dict(dropout_embed=0.02, dropout_input=0.25, dropout_hidden=0.15, dropout_weight=0.2,
                   dropout_output=0.1)
CLAS_DROPOUTS = dict(dropout_embed=0.05, dropout_input=0.4, dropout_hidden=0.3, dropout_weight=0.5,
                     dropout_output=0.4)

# `paper` = fastai's recipe (hidden 1152: fastai 1.0.53's AWD-LSTM and its wt103 LM), not the paper's (1150); see
# the module docstring for every difference.
_SIZES = {                # tokenizer.vocab_size, then the ModelConfig fields
    "paper": dict(vocab_size=30000, emb_size=400, hidden_size=1152, n_layers=3),
    "small": dict(vocab_size=8000, emb_size=256, hidden_size=512, n_layers=3),
    "tiny": dict(vocab_size=1000, emb_size=32, hidden_size=64, n_layers=2),
}

_TRAIN = {
    # stage -> preset -> TrainConfig overrides. `paper` is the GPU recipe (fp16 + GradScaler); `small` runs in
    # fp32 because on our CPUs (AVX-512 bf16 but no AMX) oneDNN's bf16 LSTM backward is slower than fp32
    # (benchmarks/results/lm_throughput.txt); bf16 still pays off for inference.
    "pretrain": {
        "paper": dict(batch_size=64, bptt=70, epochs=10, lr=2e-3, schedule="one_cycle", precision="fp16",
                      lr_decay_per_layer=1.0),
        "small": dict(batch_size=16, bptt=70, epochs=3, lr=5e-3, schedule="stlr", lr_decay_per_layer=1.0),
        "tiny": dict(batch_size=16, bptt=20, epochs=1, lr=3e-3, schedule="one_cycle", threads=1,
                     lr_decay_per_layer=1.0),
    },
    "finetune": {
        "paper": dict(batch_size=52, bptt=70, epochs=10, lr=1e-3, freeze_first_epoch=True, precision="fp16"),
        "small": dict(batch_size=32, bptt=70, epochs=4, lr=2e-3, freeze_first_epoch=True),
        "tiny": dict(batch_size=16, bptt=20, epochs=1, lr=3e-3, threads=1),
    },
    "classify": {
        "paper": dict(batch_size=48, bptt=70, epochs=5, lr=1e-2, clip=0.25, precision="fp16"),
        "small": dict(batch_size=64, bptt=70, epochs=5, lr=1e-2, clip=0.25),
        "tiny": dict(batch_size=16, bptt=20, epochs=3, lr=1e-2, threads=1),
    },
}
# HeadConfig overrides per preset (classify only): tiny pools over the last 200 tokens
_HEAD = {"tiny": dict(max_len=200)}
# Pretraining (§3.1) trains every layer at one LR: discriminative LRs are the fine-tuning technique of §3.2.
# `small` is what a 30-minute CPU budget buys most from (benchmarks/results/wt2_budget_sweep.txt): hidden 512
# rather than 768, batch 16 rather than 64 (four times the updates for the same tokens/s), STLR's short warm-up.
# tiny runs use one thread: at these sizes a second thread costs more in synchronisation than it computes.
# dropout_scale is fastai's drop_mult: 0.3 for LM fine-tuning and 0.5 for the classifier (its IMDb recipe). A CPU
# pretraining run sees only a couple of epochs, where regularisation costs more than it saves: 0.2 for `small`.
_DROPOUT_SCALE = {"pretrain": 1.0, "finetune": 0.3, "classify": 0.5}
_DROPOUT_SCALE_SMALL_PRETRAIN = 0.2

PRESET_NAMES = tuple(_SIZES)
STAGES = tuple(_TRAIN)


def preset(name: str, stage: str) -> StageConfig:
    """The config for `stage` ("pretrain" | "finetune" | "classify") under preset `name` (`paper`: fastai's
    ULMFiT recipe, not the paper's own settings; see the module docstring)."""
    if name not in _SIZES:
        raise UlmfitError(f"unknown preset {name!r}; choose one of {', '.join(PRESET_NAMES)}")
    if stage not in _TRAIN:
        raise ValueError(f"unknown stage {stage!r}")
    sizes = dict(_SIZES[name])
    dropouts = CLAS_DROPOUTS if stage == "classify" else LM_DROPOUTS
    return StageConfig(
        tokenizer=TokenizerConfig(vocab_size=sizes.pop("vocab_size")),
        model=ModelConfig(**sizes, **dropouts,
                          dropout_scale=(_DROPOUT_SCALE_SMALL_PRETRAIN if (name, stage) == ("small", "pretrain")
                                         else _DROPOUT_SCALE[stage])),
        train=TrainConfig(**_TRAIN[stage][name]),
        head=HeadConfig(**(_HEAD.get(name, {}) if stage == "classify" else {})),
    )


# ---- typed overrides: --set field=value -------------------------------------------------------------------
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
        if key.startswith("train.") and key[len("train."):] in HEAD_FIELDS:     # the name before issue 25
            key = "head." + key[len("train."):]
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
    m, t, h = config.model, config.train, config.head
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
    if min(t.epochs, t.max_steps, t.max_minutes, t.eval_every, t.save_every, t.save_minutes, t.eval_tokens,
           t.early_stopping) < 0:
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
    for name in ("clip", "ar_alpha", "tar_beta", "threads"):
        if getattr(t, name) < 0:
            raise UlmfitError(f"train.{name} must be >= 0, got {getattr(t, name)}")
    check_seed(t.seed, "train.seed")
    if m.vocab_size < 0 or not 0 <= m.pad_id < (m.vocab_size or m.pad_id + 1):   # vocab_size 0: the tokenizer's
        raise UlmfitError(f"model.pad_id must be in [0, model.vocab_size) and model.vocab_size >= 0, got "
                          f"{m.pad_id} and {m.vocab_size}")
    tk = config.tokenizer
    if not (0 < tk.character_coverage <= 1 and tk.max_sentences > 0 and tk.min_freq >= 0):
        raise UlmfitError("tokenizer.character_coverage must be in (0, 1], tokenizer.max_sentences > 0 and "
                          f"tokenizer.min_freq >= 0, got {tk.character_coverage}, {tk.max_sentences}, {tk.min_freq}")
    for name, choices in _CHOICES.items():
        for obj in (config.tokenizer, m, t, h):
            if hasattr(obj, name) and getattr(obj, name) not in choices:
                raise UlmfitError(f"{name}={getattr(obj, name)!r}: choose one of {', '.join(choices)}")
