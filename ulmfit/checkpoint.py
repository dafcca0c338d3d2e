"""Run-dir layer (after analysis/, before pretrained/): saving and loading run dirs: `config.json` + `model.pt` (a
state_dict) + the tokenizer. Nothing is pickled.

A run dir (the output of `pretrain`, `finetune` or `classify`) holds:

    config.json      the resolved StageConfig, the stage name, label names, the tokenizer's fingerprint
    model.pt         the model's state_dict only (tensors), loaded with torch.load(weights_only=True)
    tokenizer.model  the SentencePiece model, vocab.txt beside it (or fastai_vocab.json: fastai's word vocabulary)
    metrics.jsonl    one JSON object per evaluation (written by the training loop)
    resume.pt        (while training) model + optimiser + schedule position + RNG states, for --resume

Every file is written atomically and tensors are loaded weights-only, by the helpers of files.py, which also names
the files; they are importable from here too (`checkpoint.save_tensors`, `checkpoint.CONFIG_FILE`, ...).

Layer: run dirs, after `analysis/` and before `pretrained/` (STYLE.md §5.2): it reads configs (base) and
tokenizers (text/), never a model class; `ulmfit.predict` builds the models from what `load_run` returns.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .config import SECTIONS, StageConfig, validate
from .errors import RunFinished, UlmfitError
from .files import (CONFIG_FILE, METRICS_FILE, RESUME_FILE, TOKENIZER_FILE, WEIGHTS_FILE,  # noqa: F401 (re-exported)
                    atomic_write_bytes, build_checked, load_state_checked, load_tensors, read_json, save_tensors,
                    write_json)
from .validation import check_finite_weights, check_run_meta
from .text.tokenizer import Tokenizer, load_tokenizer, tokenizer_files


def prepare_out_dir(out_dir: Path, resume: bool, force: bool, protect: tuple[Path, ...] = ()) -> Path:
    """Create `out_dir`, refusing to mix two runs: a dir that holds another run needs --resume or --force.

    `--resume` continues from resume.pt; where there is none yet it starts afresh with a warning, and where the run
    has finished it raises `RunFinished`."""
    out_dir = Path(out_dir)
    for other in protect:
        if other is not None and out_dir.resolve() == Path(other).resolve():
            raise UlmfitError(f"--out {out_dir} is the input run dir; choose a new out dir (inputs are never "
                              "overwritten)")
    if out_dir.exists() and not out_dir.is_dir():
        raise UlmfitError(f"--out {out_dir} exists and is not a directory")
    occupied = out_dir.is_dir() and any((out_dir / f).exists() for f in (CONFIG_FILE, WEIGHTS_FILE, RESUME_FILE))
    if occupied and not (resume or force):
        raise UlmfitError(f"{out_dir} already holds a run; pass --resume to continue it, --force to overwrite it, "
                          "or choose another --out")
    if resume and not (out_dir / RESUME_FILE).is_file():
        if (out_dir / WEIGHTS_FILE).is_file() and (out_dir / CONFIG_FILE).is_file():
            raise RunFinished(out_dir)
        # Died before its first checkpoint (or never started): start again, so that a supervisor loop
        # `until ulmfit ... --resume; do :; done` needs no special first call.
        warnings.warn(f"--resume: {out_dir} holds no checkpoint yet; starting the run from the beginning",
                      stacklevel=2)
        resume = False
    if not resume:                            # a fresh run: nothing left of an earlier one (a run killed before its
        for name in (RESUME_FILE, METRICS_FILE, CONFIG_FILE, WEIGHTS_FILE):   # first checkpoint must not look finished)
            (out_dir / name).unlink(missing_ok=True)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UlmfitError(f"cannot create {out_dir}: {e.strerror}") from None
    return out_dir


def save_run(out_dir: Path, model: torch.nn.Module, config: StageConfig, stage: str, tokenizer: Tokenizer,
             extra: dict | None = None) -> None:
    """Write config.json, model.pt and the tokenizer into `out_dir` (weights first, config last)."""
    out_dir = Path(out_dir)
    module = getattr(model, "module", model)                 # unwrap DistributedDataParallel
    save_tensors(out_dir / WEIGHTS_FILE, {k: v.detach().cpu() for k, v in module.state_dict().items()})
    tokenizer.save(out_dir)
    meta = {"stage": stage, "config": config.to_dict(), "tokenizer_fingerprint": tokenizer.fingerprint(),
            "ulmfit_version": _version(), **(extra or {})}
    write_json(out_dir / CONFIG_FILE, meta)


def load_run(run_dir: Path, stages: tuple[str, ...] | None = None):
    """Read a run dir back: (meta, StageConfig, state_dict, tokenizer), checking that the pieces match."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UlmfitError(f"model dir {run_dir} does not exist")
    missing = [p.name for p in [run_dir / CONFIG_FILE, run_dir / WEIGHTS_FILE, *tokenizer_files(run_dir)]
               if not p.is_file()]
    if missing:
        raise UlmfitError(f"model dir {run_dir} is missing {', '.join(missing)}; was the run finished?")
    meta = read_json(run_dir / CONFIG_FILE)
    check_run_meta(meta, run_dir / CONFIG_FILE, SECTIONS)     # types of every field, the file and field named
    if stages and meta["stage"] not in stages:
        raise UlmfitError(f"{run_dir} holds a {meta['stage']} run; expected {' or '.join(stages)}")
    config = StageConfig.from_dict(meta["config"])
    try:                                  # and the values: a tampered size or rate fails here, not inside torch
        validate(config)
    except UlmfitError as e:
        raise UlmfitError(f"{run_dir / CONFIG_FILE}: {e}") from None
    tokenizer = load_tokenizer(run_dir)
    if meta.get("tokenizer_fingerprint") not in (None, tokenizer.fingerprint()):
        raise UlmfitError(f"{tokenizer_files(run_dir)[0]} does not match the model it sits beside (its fingerprint "
                          "differs from the one recorded at training time)")
    if tokenizer.vocab_size != config.model.vocab_size:
        raise UlmfitError(f"the tokenizer in {run_dir} has {tokenizer.vocab_size} tokens but the model expects "
                          f"{config.model.vocab_size}")
    state = load_tensors(run_dir / WEIGHTS_FILE)
    if not isinstance(state, dict):
        raise UlmfitError(f"{run_dir / WEIGHTS_FILE} does not hold a state_dict")
    check_finite_weights(state, run_dir / WEIGHTS_FILE)
    return meta, config, state, tokenizer


def _version() -> str:
    from . import __version__
    return __version__
