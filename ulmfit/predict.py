"""Top layer: a trained run dir -> predictions. Loading, tokenising, `predict_proba` / `predict`, the baseline
mean, int8, the forward + backward ensemble and LM sampling, for the Python API and every interface.

The model files (model/awd_lstm.py, model/classifier.py) are pure nn.Module code. The classes of the same name here
are those modules with a run dir's life added: `from_pretrained` (config.json + model.pt + tokenizer, checkpoint.py),
and, for the classifier, `predict_proba` and `predict`. So the Python API reads as it always has:

    from ulmfit import TextClassifier, LanguageModel      # these classes (ulmfit/__init__.py imports them lazily)
    clf = TextClassifier.from_pretrained("runs/my-clf")    # eval mode, GPU if there is one
    clf.predict(["a text"])                                # [{"label": ..., "probabilities": {...}}]
    clf.predict_proba(texts)                               # (N, C), columns in clf.label_names

One text's path to a prediction goes one way: tokenizer (text/) -> `ClassificationBatches` (text/) -> the
classifier's forward (model/) under `evaluate.predict_proba` (train/, the loop that scores the test split in
`classify`, so both give the same numbers) -> the TF-IDF + LR mean (analysis/baseline.py) where the run's report
chose it on validation (config.json: "baseline_ensemble", see run_report.py), unless `baseline=False` ->
`prediction_dicts` (analysis/metrics.py, shared with `serve`, `ulmfit predict` and an export).
`from_pretrained(..., int8=True)` quantizes the LSTMs and Linear layers to int8 for CPU inference (quantize.py).

The ensemble (ULMFiT §3.3, "Bidirectional language model") averages the class probabilities of several classifier
dirs, typically one trained on the forward stream and one on the backward stream; each dir's config says which
way its model reads, so the texts are reversed for the backward one. The functions taking a `Runtime` are the
CLI's (device and mixed precision).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .analysis.baseline import delivered_name, mix, run_baseline, ulmfit_weight
from .analysis.metrics import prediction_dicts
from .checkpoint import CONFIG_FILE, build_checked, load_run
from .config import BOS_ID, DEFAULT_MAX_TOKENS, EOS_ID, PAD_ID, UNK_ID
from .errors import UlmfitError, refuse_empty_texts
from .longtext import progress
from .model import awd_lstm, classifier, quantize
from .model.awd_lstm import detach_hidden
from .pretrained.model_zoo import resolve_pretrained
from .runtime import Runtime
from .validation import check_seed
from .text.batching import ClassificationBatches
from .train import evaluate

__all__ = ["DEFAULT_MAX_TOKENS", "LanguageModel", "TextClassifier", "classifier_proba", "ensemble_proba",
           "generate", "load_classifier", "load_language_model", "prediction_dicts"]


def _default_device(device) -> torch.device | str:
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


class LanguageModel(awd_lstm.LanguageModel):
    """`model.awd_lstm.LanguageModel` loadable from a run dir (same weights, same forward)."""

    @classmethod
    def from_pretrained(cls, run_dir, device: str | torch.device | None = None, int8: bool = False) -> "LanguageModel":
        """Load a `pretrain`/`finetune` run dir (config.json + model.pt + tokenizer), or a registry name (the
        shipped `ulmfit-wiki-fwd`, fastai's `wt103-fwd`), in eval mode, with `.tokenizer` and `.stage_config`
        attached; on the GPU when there is one, unless `device` says otherwise. With `int8`, on the CPU with int8
        LSTMs and decoder (`quantize.quantize_language_model`)."""
        if int8:
            device = quantize.int8_device(device)  # refused here, before the loading, if int8 cannot run
        run_dir = resolve_pretrained(run_dir)
        _meta, stage_config, state, tokenizer = load_run(run_dir, stages=("pretrain", "finetune"))
        model = build_checked(lambda: cls(stage_config.model), state, Path(run_dir))
        model.tokenizer, model.stage_config = tokenizer, stage_config
        model = model.to(_default_device(device)).eval()
        return quantize.quantize_language_model(model) if int8 else model


class TextClassifier(classifier.TextClassifier):
    """`model.classifier.TextClassifier` loadable from a `classify` run dir, with `predict_proba` and `predict`."""

    baseline = None                # an analysis.baseline.TfidfLR whose probabilities predict_proba averages in
    int8 = False                   # quantize.quantize_classifier sets it: eval only, CPU, fp32 runtime

    @classmethod
    def from_pretrained(cls, run_dir, device: str | torch.device | None = None, baseline: bool = True,
                        int8: bool = False) -> "TextClassifier":
        """Load a `classify` run dir in eval mode, with `.tokenizer`, `.label_names` and `.stage_config` attached;
        on the GPU when there is one, unless `device` says otherwise. With `baseline` (the default), also the
        run's TF-IDF + LR baseline when the run chose to average it in (`.baseline`, else None). With `int8`, on
        the CPU with int8 LSTMs and head (`quantize.quantize_classifier`; the files on disk are not changed)."""
        if int8:
            device = quantize.int8_device(device)  # refused here, before the loading, if int8 cannot run
        meta, stage_config, state, tokenizer = load_run(run_dir, stages=("classify",))
        labels = meta.get("labels")
        if not labels:
            raise UlmfitError(f"{Path(run_dir) / CONFIG_FILE} names no labels")
        model = build_checked(lambda: cls.from_config(stage_config.model, len(labels), stage_config.head,
                                                      stage_config.train.bptt), state, Path(run_dir))
        model.tokenizer, model.label_names, model.stage_config = tokenizer, list(labels), stage_config
        model.baseline = run_baseline(run_dir, meta) if baseline else None
        # the delivered model (chosen on validation, issue 27): ULMFiT alone, TF-IDF + LR alone, or a mix
        model.ulmfit_weight = ulmfit_weight(meta) if model.baseline is not None else 1.0
        model.delivered = delivered_name(model.ulmfit_weight)
        model = model.to(_default_device(device)).eval()
        return quantize.quantize_classifier(model) if int8 else model

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64, rt: Runtime | None = None,
                      max_tokens: int | None = DEFAULT_MAX_TOKENS) -> np.ndarray:
        """(N, C) class probabilities for `texts`, columns in the order of `.label_names`, rows in input order.

        The texts are sorted by length and cut into batches of at most `max_tokens` padded tokens (documents x the
        batch's longest length) and at most `batch_size` documents (`batching.token_budget_batches`);
        `max_tokens=None` cuts them by `batch_size` alone. Needs a model loaded with `from_pretrained` (it carries
        the tokenizer). `rt` (the CLI's) sets the device and mixed precision; by default the model's own device in
        fp32. With a `.baseline`, the run's delivered mix: `.ulmfit_weight` x the classifier's probabilities
        + the rest x the baseline's (`.delivered` says it in words).
        """
        if getattr(self, "tokenizer", None) is None:
            raise UlmfitError("predict needs a classifier loaded with TextClassifier.from_pretrained(run_dir)")
        if self.int8 and rt is not None:
            quantize.check_int8_runtime(rt.device, rt.precision)
        texts = [str(t) for t in texts]
        refuse_empty_texts(texts)
        if not texts:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        encoded = self.tokenizer.encode_documents(texts)
        offsets = np.cumsum([0] + [len(e) for e in encoded])
        ids = np.fromiter((i for e in encoded for i in e), dtype=np.int64, count=int(offsets[-1]))
        batches = ClassificationBatches(ids, offsets, None, batch_size, shuffle=False, seed=0,
                                        backwards=self.stage_config.train.backwards, batch_tokens=max_tokens)
        # the same loop that scores the test split during `classify`, so both give the same numbers; inference
        # mode on top of its no_grad also skips autograd's version counters (the outputs are only read)
        with torch.inference_mode():
            probs = evaluate.predict_proba(self, batches, rt or Runtime(device=next(self.parameters()).device),
                                           len(texts))
        if self.baseline is not None:
            probs = mix(probs, self.baseline.predict_proba(texts), getattr(self, "ulmfit_weight", 0.5))
        return probs

    def predict(self, texts: Sequence[str], batch_size: int = 64,
                max_tokens: int | None = DEFAULT_MAX_TOKENS) -> list[dict]:
        """[{"label": ..., "probabilities": {label: p}}] for each text, from `predict_proba`."""
        return prediction_dicts(self.label_names, self.predict_proba(texts, batch_size, max_tokens=max_tokens))


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
