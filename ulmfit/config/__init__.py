"""Base layer: every knob, as plain dataclasses with defaults in code.

A stage (pretrain, finetune, classify) is configured by a `StageConfig`: the tokenizer, the AWD-LSTM, the
training stage's optimisation, (classify) the classifier head, and the run's settings (budgets, checkpoints,
precision, seed), each its own dataclass (sections.py). Named presets (`tiny`, `small`, `paper`) are just
instances (presets.py); `--set field=value` overrides are typed and checked (overrides.py). The resolved config
is written as JSON into every output dir and checkpoint, so any stage rebuilds the exact model.

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
from .overrides import apply_overrides, validate
from .presets import CLAS_DROPOUTS, LM_DROPOUTS, PRESET_NAMES, STAGES, preset
from .sections import (BOS_ID, DEFAULT_MAX_TOKENS, DROPOUT_FIELDS, EOS_ID, HEAD_FIELDS, PAD_ID, RUN_FIELDS, SECTIONS,
                       STRATEGIES, UNK_ID, HeadConfig, ModelConfig, RunConfig, StageConfig, TokenizerConfig,
                       TrainConfig)

__all__ = ["apply_overrides", "validate", "CLAS_DROPOUTS", "LM_DROPOUTS", "PRESET_NAMES", "STAGES", "preset",
           "BOS_ID", "DEFAULT_MAX_TOKENS", "DROPOUT_FIELDS", "EOS_ID", "HEAD_FIELDS", "PAD_ID", "RUN_FIELDS",
           "SECTIONS", "STRATEGIES", "UNK_ID", "HeadConfig", "ModelConfig", "RunConfig", "StageConfig",
           "TokenizerConfig", "TrainConfig"]
