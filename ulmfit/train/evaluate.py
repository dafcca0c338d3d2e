"""train/ layer, beside `loop`: evaluation without gradients — LM perplexity and classifier probabilities.

Perplexity is reported per token (our subword tokens) and, when the corpus says how many words it has, per word:
exp(total NLL / n_words). Per-word perplexity is what makes a subword model comparable with word-level results
such as AWD-LSTM's 65.8 on WikiText-2 test (the NLL of a word is the sum of the NLLs of its pieces).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..model.awd_lstm import detach_hidden
from ..runtime import Runtime


@torch.no_grad()
def evaluate_lm(model, batches, rt: Runtime, n_words: int | None = None) -> dict:
    """Mean NLL over every predicted token of `batches` (a non-shuffled LMBatches), and the perplexities.

    Folding into B rows leaves the first token of each row and the remainder N mod B unpredicted; for per-word
    perplexity the mean NLL is scaled up to the whole stream (N - 1 predictions), a correction of < 0.01%.
    """
    was_training = model.training
    model.eval()
    total_nll, n_tokens, hidden = 0.0, 0, None
    for x, y in batches.iter_epoch(0, 0):
        x, y = x.to(rt.device), y.to(rt.device)
        with rt.autocast():
            out = model(x, hidden)
        hidden = detach_hidden(out.hidden)
        total_nll += F.cross_entropy(out.logits.float().flatten(0, 1), y.flatten(), reduction="sum").item()
        n_tokens += y.numel()
    total_nll, n_tokens = rt.all_sum(total_nll, n_tokens)
    model.train(was_training)
    mean = total_nll / max(n_tokens, 1)
    result = {"valid_loss": mean, "valid_ppl": math.exp(min(mean, 50.0))}
    if n_words:
        stream_predictions = batches.n_tokens - 1
        result["valid_ppl_word"] = math.exp(min(mean * stream_predictions / n_words, 50.0))
    return result


@torch.no_grad()
def predict_proba(model, batches, rt: Runtime, n_items: int) -> np.ndarray:
    """Class probabilities (n_items, C) in the original order of the examples (batches are length-sorted)."""
    was_training = model.training
    model.eval()
    probs = None
    for tokens, mask, _labels, index in batches.iter_epoch(0, 0):
        with rt.autocast():
            logits = model(tokens.to(rt.device), mask.to(rt.device))
        p = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        if probs is None:
            probs = np.zeros((n_items, p.shape[1]), dtype=np.float32)
        probs[index.numpy()] = p
    model.train(was_training)
    return probs if probs is not None else np.zeros((0, 0), dtype=np.float32)
