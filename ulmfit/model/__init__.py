"""Layer 3 of ulmfit, model: pure `nn.Module` code (STYLE.md §5.2). Imports torch and the base layer only:
no files, no tokenizer (loading a run dir is `ulmfit.predict`'s job).

`regularizers` (the four dropouts, AR/TAR), `awd_lstm` (encoder + LM head), `classifier` (BPT3C, concat pooling,
the head), `quantize` (int8 LSTMs and Linear layers).
"""
