"""Using trained run dirs, for the CLI: the forward + backward ensemble and LM sampling.

Loading and predicting live on the model classes (`TextClassifier.from_pretrained(dir).predict(texts)`,
`LanguageModel.from_pretrained(dir)`); the functions here are the CLI's thin wrappers around them, which also
take the CLI's Runtime (device and mixed precision).

The ensemble (ULMFiT §3.3, "Bidirectional language model") averages the class probabilities of several classifier
dirs — typically one trained on the forward stream and one on the backward stream; each dir's config says which
way its model reads, so the texts are reversed for the backward one. A dir whose report chose to average in its
TF-IDF + LR baseline (on validation, see run_report.py) contributes that mean; `baseline=False` (the CLI's
--no-baseline) takes each classifier alone. `int8` (the CLI's --int8) loads every model with int8 LSTMs and Linear
layers (quantize.py), on the CPU.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .awd_lstm import LanguageModel, detach_hidden
from .classifier import DEFAULT_MAX_TOKENS, TextClassifier
from .config import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from .errors import UlmfitError
from .longtext import progress
from .runtime import Runtime
from .validation import check_seed


def _device(rt: Runtime | None, device) -> torch.device | None:
    return torch.device(device) if device is not None else (rt.device if rt is not None else None)


def load_classifier(run_dir: Path, rt: Runtime | None = None, device=None, baseline: bool = True,
                    int8: bool = False) -> TextClassifier:
    """`TextClassifier.from_pretrained` on the device of `rt` (or `device`), with the run's baseline if it chose it."""
    return TextClassifier.from_pretrained(run_dir, device=_device(rt, device), baseline=baseline, int8=int8)


def load_language_model(run_dir: Path, rt: Runtime | None = None, device=None, int8: bool = False) -> LanguageModel:
    """`LanguageModel.from_pretrained` on the device of `rt` (or `device`)."""
    return LanguageModel.from_pretrained(run_dir, device=_device(rt, device), int8=int8)


def classifier_proba(model: TextClassifier, texts: list[str], batch_size: int = 64, rt: Runtime | None = None,
                     max_tokens: int | None = DEFAULT_MAX_TOKENS) -> np.ndarray:
    """(N, C) probabilities of one loaded classifier for `texts`: `model.predict_proba` under `rt`."""
    return model.predict_proba(texts, batch_size, rt, max_tokens)


def ensemble_proba(run_dirs: list[Path], texts: list[str], batch_size: int = 64, rt: Runtime | None = None,
                   baseline: bool = True, int8: bool = False,
                   max_tokens: int | None = DEFAULT_MAX_TOKENS) -> tuple[np.ndarray, list[str]]:
    """Average the probabilities of several classifier dirs, which must share their label names; with `baseline`,
    each dir's own probabilities include its TF-IDF + LR baseline where that run chose the ensemble."""
    default = "cuda" if torch.cuda.is_available() and not int8 else "cpu"      # int8 kernels are CPU-only
    rt = rt or Runtime(device=torch.device(default))
    total, names = None, None
    for run_dir in run_dirs:
        model = load_classifier(run_dir, rt, baseline=baseline, int8=int8)
        if names is not None and model.label_names != names:
            raise UlmfitError(f"{run_dir} has labels {model.label_names}, unlike {names} of {run_dirs[0]}; "
                              "an ensemble needs the same labels")
        names = model.label_names
        with progress(model, texts, Path(run_dir).name):      # a bar on stderr for long inputs
            probs = classifier_proba(model, texts, batch_size, rt, max_tokens)
        total = probs if total is None else total + probs
    return total / len(run_dirs), names


@torch.no_grad()
def generate(model: LanguageModel, prompt: str, n_words: int = 50, temperature: float = 0.8, top_k: int = 40,
             seed: int = 0) -> str:
    """Sample a continuation of `prompt`; temperature -> 0 gives greedy decoding (argmax at every step)."""
    if not temperature >= 0 or temperature == float("inf") or top_k < 0 or n_words < 0:    # NaN too
        raise UlmfitError("temperature (finite), top_k and n_words must be >= 0")
    check_seed(seed, "seed")
    tokenizer, device = model.tokenizer, next(model.parameters()).device
    backwards = model.stage_config.train.backwards
    prompt_ids = tokenizer.encode_document(prompt)
    if prompt_ids and prompt_ids[-1] == EOS_ID:
        prompt_ids = prompt_ids[:-1]           # continue the prompt's line rather than starting a new one
    if backwards:
        prompt_ids = prompt_ids[::-1]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    banned = torch.tensor([PAD_ID, BOS_ID, UNK_ID])
    out = model(torch.tensor([prompt_ids], device=device))
    hidden, logits, new_ids = detach_hidden(out.hidden), out.logits[0, -1].float().cpu(), []
    for _ in range(max(8, 6 * n_words)):
        logits[banned] = -float("inf")
        if temperature <= 1e-6:
            next_id = int(logits.argmax())
        else:
            scaled = logits / temperature
            if 0 < top_k < scaled.numel():
                threshold = torch.topk(scaled, top_k).values[-1]
                scaled = scaled.masked_fill(scaled < threshold, -float("inf"))
            next_id = int(torch.multinomial(torch.softmax(scaled, -1), 1, generator=generator))
        new_ids.append(next_id)
        if len(tokenizer.decode(new_ids).split()) > n_words:
            new_ids.pop()
            break
        out = model(torch.tensor([[next_id]], device=device), hidden)
        hidden, logits = out.hidden, out.logits[0, -1].float().cpu()
    ids = list(prompt_ids) + new_ids
    return tokenizer.decode(ids[::-1] if backwards else ids)
