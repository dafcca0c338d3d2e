"""The config's sections: one dataclass each for the tokenizer, the AWD-LSTM, the optimisation of a training
stage, the classifier head and the run's settings, and `StageConfig`, which holds one of each and is what a run
dir's config.json stores. Defaults live here, in code; presets.py holds the named recipes."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, asdict

from ..errors import UlmfitError

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
    """How one training stage optimises (LM pretraining, LM fine-tuning, or the classifier): batches, epochs, the
    LR schedule, AdamW, the regularisers' weights. Budgets, checkpoints, precision and seeds are RunConfig's."""
    batch_size: int = 64
    bptt: int = 70
    epochs: int = 1
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
class RunConfig:
    """How a run is carried out, not what it learns: its budgets, checkpoints, validation passes, numerics, seed
    and threads. Two runs that differ only here train the same model (up to the budget and the seed)."""
    max_steps: int = 0                   # >0: stop after this many optimiser steps (smoke runs)
    max_minutes: float = 0.0             # >0: a wall-time budget for the stage from its start (tokenizing and
    #                                      epoch-end validation included, eval_every passes not); the LR follows it
    early_stopping: int = 0              # >0: stop after this many epochs without a better validation score and
    #                                      keep the best epoch's weights (early_stopping.py); 0: off
    eval_every: int = 0                  # optimiser steps between extra validations (0: epoch ends only)
    eval_tokens: int = 0                 # LM validation on the first whole documents holding >= N tokens (0: all)
    save_every: int = 500                # optimiser steps between resume checkpoints (0: off)
    save_minutes: float = 5.0            # and at most this much wall time between them (0: off), on any CPU
    precision: str = "fp32"              # fp32 | bf16 | fp16
    seed: int = 0
    threads: int = 0                     # 0: leave torch's default


@dataclass
class StageConfig:
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StageConfig":
        """The config a run dir's config.json holds, from today's layout or an older one (see `_upgrade`)."""
        d = _upgrade(d)
        return cls(**{name: _section_from_dict(kind, d.get(name, {})) for name, kind in SECTIONS.items()})


SECTIONS = {"tokenizer": TokenizerConfig, "model": ModelConfig, "train": TrainConfig, "head": HeadConfig,
            "run": RunConfig}
HEAD_FIELDS = tuple(f.name for f in fields(HeadConfig))
RUN_FIELDS = tuple(f.name for f in fields(RunConfig))
# Fields that lived in "train" before issue 25 gave them their own sections: old run dirs and old --set names
MOVED_FROM_TRAIN = {**{name: "head" for name in HEAD_FIELDS}, **{name: "run" for name in RUN_FIELDS}}


def _upgrade(d: dict) -> dict:
    """Run dirs written before issue 25 kept the head's fields and the run settings in "train": move them to their
    sections, so old run dirs load and rebuild the same model (tests/test_old_run_dirs.py)."""
    train = dict(d.get("train", {}))
    moved = {name: train.pop(name) for name in MOVED_FROM_TRAIN if name in train}
    if not moved:
        return d
    out = {**d, "train": train}
    for section in ("head", "run"):
        mine = {k: v for k, v in moved.items() if MOVED_FROM_TRAIN[k] == section}
        if mine:
            out[section] = {**mine, **d.get(section, {})}
    return out


def _section_from_dict(cls, d: dict):
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise UlmfitError(f"unknown config field(s) {sorted(unknown)} in {cls.__name__}")
    return cls(**d)

