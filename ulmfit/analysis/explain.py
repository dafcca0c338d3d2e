"""analysis/ layer (evaluation -> "why this label"): per-token attributions by integrated gradients, and pictures.

Integrated gradients (IG; Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep Networks") explains one
output F (here the logit of one class) of one input x against a baseline input x0:

    IG_i = (x_i - x0_i) * integral_0^1 dF(x0 + a (x - x0)) / dx_i da        summed over the embedding dims of token i

    x (T, E): the looked-up embeddings --a in [0, 1], m + 1 points--> path (m+1, T, E) --the real classifier-->
    logits (m+1, C) --d logit[target] / d path--> grads (m+1, T, E) --trapezoid rule over a--> avg grad (T, E)
    --(x - x0) *, summed over E--> scores (T,)

Why IG rather than the alternatives:
- completeness: the scores add up to F(x) - F(x0), so a score is a share of the logit change, and `delta` (the gap
  left by the finite sum) says whether `steps` was enough. Gradient x input has no such budget: the gradient at x
  alone misses saturation (an LSTM gate that is fully open has ~zero gradient however much the word matters).
- sensitivity: a token whose removal changes the output gets a non-zero score; plain gradients can break this.
- attention: this model has none, and attention weights are not explanations anyway (Jain & Wallace 2019).

The baseline is the pad token's embedding at every text position (the pad row is zero at init and `padding_idx`
keeps it so), i.e. "the same document with its words blanked out"; BOS/EOS keep their embeddings, so they get a
score of exactly 0 and are left out. The path runs through the real forward (BPT3C chunks, masked concat pooling,
head) in eval mode: a forward hook on `encoder.embedding` swaps the looked-up vectors for the path's. A backward
model reads the reversed tokens; its scores are flipped back to reading order.
"""
from __future__ import annotations

import dataclasses
import html
import os
import sys
from pathlib import Path
from typing import NamedTuple

import torch

from ..config import BOS_ID, EOS_ID
from ..errors import UlmfitError

SPACE = "\u2581"       # SentencePiece's word-boundary mark
CASE_MARKERS = ("xxmaj", "xxup")


class IGResult(NamedTuple):
    scores: torch.Tensor           # (T,) one score per position, in the order the model read them
    logits: torch.Tensor           # (C,) at x
    baseline_logits: torch.Tensor  # (C,) at the baseline x0
    target: int                    # the explained class


def integrated_gradients(model, tokens: torch.Tensor, target: int | None = None, steps: int = 48) -> IGResult:
    """IG of one class's logit w.r.t. the token embeddings of one document (tokens (T,) in the model's order).

    All m + 1 points of the path go through the classifier in one batch. `target=None` explains the class
    predicted at x. The model is put in eval mode (no dropout; BatchNorm uses its running statistics, so the
    rows of the batch are independent) and restored afterwards.
    """
    if steps < 1:
        raise UlmfitError(f"integrated gradients needs steps >= 1, got {steps}")
    embedding = model.encoder.embedding
    device = embedding.weight.device
    tokens = tokens.to(device).reshape(-1)                                   # (T,)
    n_tok = tokens.numel()
    with torch.no_grad():
        x = embedding(tokens)                                                # (T, E)
        moving = ~torch.isin(tokens, torch.tensor([BOS_ID, EOS_ID], device=device))  # (T,) the text positions
        x0 = torch.where(moving[:, None], embedding.weight[model.config.pad_id].expand_as(x), x)  # (T, E)
        alphas = torch.linspace(0.0, 1.0, steps + 1, device=device)[:, None, None]  # (m+1, 1, 1)
        path = x0 + alphas * (x - x0)                                        # (m+1, T, E); row 0 = x0, row m = x
    path.requires_grad_(True)
    # One extra row, one token long: BPT3C runs the chunks before the earliest pooling window of the batch under
    # no_grad, and this row's window starts at 0, so every chunk keeps its graph and tokens beyond max_len from
    # the end (which reach the logits only through the hidden state) get their share too.
    fed = torch.cat([path, x[None]])                                         # (m+2, T, E)
    batch = tokens.expand(steps + 2, n_tok)                                  # (m+2, T)
    mask = torch.ones(steps + 2, n_tok, dtype=torch.bool, device=device)
    mask[-1, 1:] = False
    read = [0]

    def substitute(module, inputs, output):                                  # called once per BPT3C chunk
        start, width = read[0], output.shape[1]
        read[0] += width
        return fed[:, start:start + width].to(output.dtype)

    was_training = model.training
    handle = embedding.register_forward_hook(substitute)
    try:
        model.eval()
        with torch.enable_grad():
            logits = model(batch, mask).float()                              # (m+2, C)
    finally:
        handle.remove()
        model.train(was_training)
    if read[0] != n_tok:       # the forward must have looked up each position exactly once, in order
        raise RuntimeError(f"the embedding was read for {read[0]} positions, expected {n_tok}")
    if target is None:
        target = int(logits[steps].argmax())
    grads, = torch.autograd.grad(logits[:steps + 1, target].sum(), path)    # (m+1, T, E)
    weights = torch.full((steps + 1,), 1.0 / steps, device=device)           # trapezoid rule on [0, 1]
    weights[[0, -1]] *= 0.5
    avg_grad = (weights[:, None, None] * grads).sum(dim=0)                   # (T, E)
    scores = ((x - x0) * avg_grad).sum(dim=-1)                               # (T,)
    return IGResult(scores.detach().cpu(), logits[steps].detach().cpu(), logits[0].detach().cpu(), target)


@dataclasses.dataclass
class Explanation:
    """Why `model` gives `label` to a text: one IG score per token, in reading order (BOS/EOS left out)."""
    tokens: list[str]          # the tokenizer's pieces, SentencePiece's "▁" shown as a space: "".join -> the text
    scores: list[float]        # > 0 pushes towards `label`, < 0 away from it (units of its logit)
    label: str                 # the explained class: the prediction unless a target was asked for
    probability: float         # the model's probability of `label` for this text
    delta: float               # completeness gap: sum(scores) - (logit - baseline_logit); small when steps suffice
    logit: float               # the logit of `label` at the text
    baseline_logit: float      # ... and at the baseline (every text token replaced by pad)
    predicted: str             # the model's prediction (equals `label` when no target was given)
    steps: int

    def by_word(self) -> list[tuple[str, float]]:
        """Pieces merged into words (a piece that starts with a space starts a word); IG scores add up. A case
        marker (xxmaj, xxup: the pre-rules' "capitalised", "all capitals") is part of the word after it: its score
        goes to that word, which is shown with its case restored ("xxmaj an" -> "An")."""
        words: list[list] = []
        case, carried = None, 0.0
        for tok, score in zip(self.tokens, self.scores):
            if tok.strip() in CASE_MARKERS:
                case, carried = tok.strip(), carried + score
                continue
            if tok.startswith(" ") or not words or case:
                word = tok.strip()
                word = word[:1].upper() + word[1:] if case == "xxmaj" else word.upper() if case == "xxup" else word
                words.append([word, score + carried])
                case, carried = None, 0.0
            else:
                words[-1][0] += tok
                words[-1][1] += score
        if case:                                  # a marker at the very end (a cut text): shown as itself
            words.append([case, carried])
        return [(w, s) for w, s in words]

    def _repr_html_(self) -> str:            # a notebook cell that ends in an Explanation shows it coloured
        return to_html(self)


def attributions(model, text: str, target: str | int | None = None, steps: int = 48) -> Explanation:
    """Explain `model`'s label for `text` (a classifier loaded with `TextClassifier.from_pretrained`).

    `target` is a label name (or index) to explain instead of the prediction.
    """
    tokenizer, names = getattr(model, "tokenizer", None), getattr(model, "label_names", None)
    if tokenizer is None or names is None:
        raise UlmfitError("explain needs a classifier loaded with TextClassifier.from_pretrained(run_dir)")
    if not str(text).strip():
        raise UlmfitError("empty text: nothing to explain")
    ids = tokenizer.encode_document(str(text))
    backwards = model.stage_config.train.backwards
    read = int(getattr(model, "read_tokens", 0) or 0)
    if read and len(ids) > read:          # the classifier reads only its first `read` tokens: explain those
        ids = ids[-read:] if backwards else ids[:read]
    result = integrated_gradients(model, torch.tensor(ids[::-1] if backwards else ids), _class_index(target, names),
                                  steps)
    scores = result.scores.flip(0) if backwards else result.scores          # back to reading order
    keep = [i for i, t in enumerate(ids) if t not in (BOS_ID, EOS_ID)]
    probs = torch.softmax(result.logits, dim=0)
    logit, base = float(result.logits[result.target]), float(result.baseline_logits[result.target])
    return Explanation(tokens=[tokenizer.surface(ids[i]) for i in keep],
                       scores=[float(scores[i]) for i in keep], label=names[result.target],
                       probability=float(probs[result.target]), delta=float(scores.sum()) - (logit - base),
                       logit=logit, baseline_logit=base, predicted=names[int(probs.argmax())], steps=steps)


def _class_index(target, names: list[str]) -> int | None:
    if target is None:
        return None
    if str(target) in names:                 # a name first: labels such as "1", "2" are names, not indices
        return names.index(str(target))
    if isinstance(target, int) and 0 <= target < len(names):
        return target
    raise UlmfitError(f"unknown target {target!r}; the model's labels are {names}")


def to_html(expl: Explanation) -> str:
    """The text with each token on a green (for the label) or red (against) background, by |score|."""
    top = max((abs(s) for s in expl.scores), default=0.0) or 1.0
    spans = []
    for tok, score in zip(expl.tokens, expl.scores):
        rgb = "0,160,60" if score > 0 else "220,40,40"
        spans.append(f'<span style="background:rgba({rgb},{0.8 * abs(score) / top:.3f})" '
                     f'title="{score:+.4f}">{html.escape(tok)}</span>')
    head = (f"<div><b>{html.escape(expl.label)}</b> p={expl.probability:.4f} "
            f"(integrated gradients, {expl.steps} steps, completeness gap {expl.delta:+.2e})</div>")
    return f'{head}<div style="white-space:pre-wrap;line-height:1.8">{"".join(spans)}</div>'


def to_text(expl: Explanation, color: bool | None = None) -> str:
    """A header, then one line per word (Explanation.by_word): score, word, a bar of |score|; ANSI colours on a
    terminal."""
    if color is None:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    change = expl.logit - expl.baseline_logit
    lines = [f"{expl.label}  p={expl.probability:.4f}" + ("" if expl.label == expl.predicted
                                                          else f"  (predicted: {expl.predicted})"),
             f"integrated gradients, {expl.steps} steps: logit {expl.logit:+.4f} vs baseline "
             f"{expl.baseline_logit:+.4f} (change {change:+.4f}); completeness gap {expl.delta:+.2e}",
             "score > 0: the word pushes towards the label"]
    words = expl.by_word()
    top = max((abs(s) for _, s in words), default=0.0) or 1.0
    shown = [(w or SPACE, s) for w, s in words]
    width = max((len(w) for w, _ in shown), default=0)
    for tok, score in shown:
        cell = f"{tok:<{width}}"                                             # pad before colouring: ANSI has width 0
        if color:
            cell = f"\x1b[{'32' if score > 0 else '31'}m{cell}\x1b[0m"
        lines.append(f"  {score:+.4f}  {cell}  {'#' * round(20 * abs(score) / top)}")
    return "\n".join(lines)


def plot_confusion(matrix, label_names: list[str], path) -> Path:
    """Save the confusion matrix (rows = true, columns = predicted) as a PNG with the counts written in.

    The colour is the row-normalised fraction (the recall of each true class), so a small class reads as
    clearly as a big one. matplotlib is an optional (dev) dependency, hence the import here.
    """
    Figure, FigureCanvasAgg = _matplotlib()
    import numpy as np
    counts = np.asarray(matrix)
    n = len(label_names)
    if counts.shape != (n, n):
        raise ValueError(f"a {n}-class confusion matrix must be ({n}, {n}), got {counts.shape}")
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    # Figure + the Agg canvas, not pyplot: no global backend switch, so a notebook's inline backend is untouched
    fig = Figure(figsize=(1.5 + 0.6 * n, 1.2 + 0.6 * n))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                    color="white" if fractions[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), [str(name) for name in label_names], rotation=45, ha="right")
    ax.set_yticks(range(n), [str(name) for name in label_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)


def plot_attributions(explanations: list[Explanation], path, width: int = 80) -> Path:
    """The explanations as a PNG, one block each: a header (label, p) and the words on a green (for the label) or
    red (against) background by |score|, as `to_html` colours them. A picture, because GitHub shows a notebook's or
    a report's images but not its coloured HTML. `width`: characters a line holds before it wraps."""
    Figure, FigureCanvasAgg = _matplotlib()
    blocks = []                                  # per explanation: its header, then lines of (word, score)
    for expl in explanations:
        lines, line, used = [], [], 0
        for word, score in expl.by_word():
            if line and used + len(word) + 1 > width:
                lines.append(line)
                line, used = [], 0
            line.append((word, score))
            used += len(word) + 1
        blocks.append((f"{expl.label}  p={expl.probability:.3f}" + ("" if expl.label == expl.predicted else
                                                                    f"  (predicted: {expl.predicted})"),
                       lines + [line], max((abs(s) for _, s in expl.by_word()), default=0.0) or 1.0))
    rows = sum(1 + len(lines) for _, lines, _ in blocks) + len(blocks) - 1
    fig = Figure(figsize=(0.105 * width + 0.4, 0.3 * rows + 0.3))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width + 2)
    ax.set_ylim(rows + 0.5, -0.5)
    ax.axis("off")
    row = 0
    for header, lines, top in blocks:
        ax.text(1, row, header, family="monospace", weight="bold", va="center", fontsize=9)
        for line in lines:
            row, x = row + 1, 1
            for word, score in line:
                rgb = (0.0, 0.63, 0.24) if score > 0 else (0.86, 0.16, 0.16)
                ax.text(x, row, word, family="monospace", va="center", fontsize=9,
                        bbox={"facecolor": (*rgb, 0.8 * abs(score) / top), "edgecolor": "none", "pad": 1.5})
                x += len(word) + 1
        row += 2
    fig.savefig(path, dpi=100)
    return Path(path)


def _matplotlib():
    """matplotlib's Figure and Agg canvas (not pyplot: no global backend switch, so a notebook's inline backend is
    untouched). matplotlib is an optional (dev) dependency, hence the import here."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UlmfitError("plotting needs matplotlib: pip install matplotlib") from None
    return Figure, FigureCanvasAgg
