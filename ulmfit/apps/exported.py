"""apps/ layer: serving an exported classifier (export.py): TorchScript + the tokenizer, and nothing of the model code.

    from ulmfit.exported import load
    model = load("export/clickbait-int8")
    model.predict(["You won't believe what happened next"])   # [{"label": ..., "probabilities": {...}}]

This module imports only torch, numpy and ulmfit's tokenizer, batching and baseline modules (the text -> ids
contract, length bucketing, and the numpy TF-IDF scorer): no model class, no training loop, and the TorchScript
file needs no Python source at all. Without ulmfit installed, the same takes a few lines, for SentencePiece runs
whose export.json says "backwards": false and "baseline": false (pre_rules off, or fastai's rules reimplemented):

    import json, torch, sentencepiece as spm
    sp, net = spm.SentencePieceProcessor(model_file="DIR/tokenizer.model"), torch.jit.load("DIR/model.pt")
    ids = [2] + sp.encode(text) + [3]                       # BOS, pieces, EOS (ulmfit's ids, config.py)
    probs = net(torch.tensor([ids]), torch.tensor([len(ids)]))[0].detach()
    labels = json.load(open("DIR/export.json"))["labels"]

An int8 export carries int8 weights packed for a quantized engine; they are repacked at load time for this CPU's
engine (onednn, x86 or fbgemm, or qnnpack on ARM), so `load` sets torch's engine first and refuses, in one line,
a CPU that has none.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..analysis.baseline import BASELINE_DIR, TfidfLR
from ..analysis.metrics import prediction_dicts
from ..config import DEFAULT_MAX_TOKENS, PAD_ID
from ..errors import UlmfitError, refuse_empty_texts
from ..runtime import int8_engines
from ..text.batching import token_budget_batches
from ..text.tokenizer import load_tokenizer

MODEL_FILE, META_FILE = "model.pt", "export.json"      # what export.py writes
FORMAT = "ulmfit-torchscript-classifier"


class ExportedClassifier:
    """A loaded export dir: `.predict_proba(texts)` -> (N, C), `.predict(texts)`, `.label_names`, `.tokenizer`."""

    def __init__(self, export_dir, threads: int | None = None):
        export_dir = Path(export_dir)
        meta_path = export_dir / META_FILE
        if not meta_path.is_file():
            raise UlmfitError(f"{export_dir} is not a ulmfit export (no {META_FILE}); make one with "
                              "`ulmfit export RUN_DIR --out DIR`")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if self.meta.get("format") != FORMAT:
            raise UlmfitError(f"{meta_path} describes a {self.meta.get('format')!r} export, not {FORMAT!r}")
        if self.meta.get("int8"):
            _set_int8_engine(self.meta.get("int8_engine"))
        if threads:
            torch.set_num_threads(threads)
        with warnings.catch_warnings():
            # torch >= 2.10 marks torch.jit deprecated in favour of torch.export, which cannot yet hold torch's
            # int8 LSTM (export.py says why TorchScript); the file loads and runs, and a user can do nothing about it
            warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
            self.net = torch.jit.load(str(export_dir / MODEL_FILE), map_location="cpu").eval()
        self.tokenizer = load_tokenizer(export_dir)
        self.label_names: list[str] = list(self.meta["labels"])
        self.backwards = bool(self.meta.get("backwards"))
        self.baseline = TfidfLR.load(export_dir / BASELINE_DIR) if self.meta.get("baseline") else None

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64,
                      max_tokens: int | None = DEFAULT_MAX_TOKENS) -> np.ndarray:
        """(N, C) probabilities, rows in input order: length-sorted batches of at most `max_tokens` padded tokens
        and `batch_size` documents, like `TextClassifier.predict_proba` (whose figures the parity test compares)."""
        texts = [str(t) for t in texts]
        refuse_empty_texts(texts)
        probs = np.zeros((len(texts), len(self.label_names)), dtype=np.float32)
        if not texts:
            return probs
        encoded = self.tokenizer.encode_documents(texts)
        if self.backwards:
            encoded = [ids[::-1] for ids in encoded]
        lengths = np.array([len(ids) for ids in encoded])
        if max_tokens is None:
            order = np.argsort(-lengths, kind="stable")
            batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        else:
            batches = token_budget_batches(lengths, max_tokens, batch_size)
        with torch.inference_mode():
            for index in batches:
                longest = int(lengths[index].max())
                tokens = torch.full((len(index), longest), PAD_ID, dtype=torch.long)
                for row, i in enumerate(index):
                    tokens[row, :lengths[i]] = torch.as_tensor(encoded[i])
                probs[index] = self.net(tokens, torch.as_tensor(lengths[index], dtype=torch.long)).numpy()
        if self.baseline is not None:
            w = float(self.meta.get("ulmfit_weight", 0.5))        # exports before the weight was recorded: the mean
            probs = (w * probs + (1 - w) * self.baseline.predict_proba(texts)).astype(np.float32)
        return probs

    def predict(self, texts: Sequence[str], batch_size: int = 64,
                max_tokens: int | None = DEFAULT_MAX_TOKENS) -> list[dict]:
        """[{"label": ..., "probabilities": {label: p}}] for each text."""
        probs = self.predict_proba(texts, batch_size, max_tokens)
        return prediction_dicts(self.label_names, probs)


def load(export_dir, threads: int | None = None) -> ExportedClassifier:
    """Load an export dir written by `ulmfit export` (export.py) for prediction on the CPU."""
    return ExportedClassifier(export_dir, threads)


def _set_int8_engine(wanted: str | None) -> None:
    """Use the best quantized engine of the export's CPU family that this CPU has (runtime.int8_engines' order, as
    when quantizing); the weights are repacked for it at load. Weights packed for x86 also run on oneDNN."""
    supported = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    family = "arm" if wanted == "qnnpack" else "x86" if wanted in ("x86", "fbgemm", "onednn") else None
    order = int8_engines(family) if family else ()
    if family == "x86" and "onednn" not in order:
        order = (*order, "onednn")                      # the last resort: slower there, but the same results
    for engine in order:
        if engine in supported:
            torch.backends.quantized.engine = engine
            return
    raise UlmfitError(f"this int8 export was made for the {wanted} quantized engine, which this CPU/torch does not "
                      f"offer (it has: {', '.join(supported) or 'none'}); export the run again here, or without --int8")
