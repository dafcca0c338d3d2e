"""The named recipes (`tiny`, `small`, `paper`): each is just a `StageConfig` per stage, written in the fields'
own section names. `paper` is fastai's ULMFiT recipe, not the paper's own settings (see the package docstring)."""
from __future__ import annotations

from ..errors import UlmfitError
from .sections import HeadConfig, ModelConfig, RunConfig, StageConfig, TokenizerConfig, TrainConfig

# fastai's awd_lstm_lm_config / awd_lstm_clas_config dropouts, for the LM and the classifier respectively.
LM_DROPOUTS = dict(dropout_embed=0.02, dropout_input=0.25, dropout_hidden=0.15, dropout_weight=0.2,
                   dropout_output=0.1)
CLAS_DROPOUTS = dict(dropout_embed=0.05, dropout_input=0.4, dropout_hidden=0.3, dropout_weight=0.5,
                     dropout_output=0.4)

# `paper` = fastai's recipe (hidden 1152: fastai 1.0.53's AWD-LSTM and its wt103 LM), not the paper's (1150); see
# the package docstring for every difference.
_SIZES = {                # tokenizer.vocab_size, then the ModelConfig fields
    "paper": dict(vocab_size=30000, emb_size=400, hidden_size=1152, n_layers=3),
    "small": dict(vocab_size=8000, emb_size=256, hidden_size=512, n_layers=3),
    "tiny": dict(vocab_size=1000, emb_size=32, hidden_size=64, n_layers=2),
}

_TRAIN = {
    # stage -> preset -> TrainConfig overrides
    "pretrain": {
        "paper": dict(batch_size=64, bptt=70, epochs=10, lr=2e-3, schedule="one_cycle",
                      lr_decay_per_layer=1.0),
        "small": dict(batch_size=16, bptt=70, epochs=3, lr=5e-3, schedule="stlr", lr_decay_per_layer=1.0),
        "tiny": dict(batch_size=16, bptt=20, epochs=1, lr=3e-3, schedule="one_cycle",
                     lr_decay_per_layer=1.0),
    },
    "finetune": {
        "paper": dict(batch_size=52, bptt=70, epochs=10, lr=1e-3, freeze_first_epoch=True),
        "small": dict(batch_size=32, bptt=70, epochs=4, lr=2e-3, freeze_first_epoch=True),
        "tiny": dict(batch_size=16, bptt=20, epochs=1, lr=3e-3),
    },
    "classify": {
        "paper": dict(batch_size=48, bptt=70, epochs=5, lr=1e-2, clip=0.25),
        "small": dict(batch_size=64, bptt=70, epochs=5, lr=1e-2, clip=0.25),
        "tiny": dict(batch_size=16, bptt=20, epochs=3, lr=1e-2),
    },
}
# HeadConfig overrides per preset (classify only): tiny pools over the last 200 tokens
_HEAD = {"tiny": dict(max_len=200)}
# RunConfig overrides per preset, every stage. `paper` is the GPU recipe (fp16 + GradScaler); `small` runs in fp32
# because on our CPUs without AMX oneDNN's bf16 LSTM backward is slower than fp32 (benchmarks/results/
# lm_throughput.txt; `--precision bf16` where it pays); tiny runs use one thread (below).
_RUN = {"paper": dict(precision="fp16"), "tiny": dict(threads=1)}
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
        run=RunConfig(**_RUN.get(name, {})),
    )
