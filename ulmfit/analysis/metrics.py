"""analysis/ layer, first file: classification metrics, and the prediction dict every interface returns.

In: true and predicted class indices (ints in [0, C)) and the C label names. Out: a plain dict (JSON-ready, so
`ulmfit evaluate` can print it as its last line) and a readable table. Pure numpy, so evaluation does not pull
in scikit-learn. ULMFiT (Howard & Ruder 2018, §4) reports error rates = 1 - accuracy; macro-F1 is added
because several of our datasets are imbalanced, where accuracy alone hides a class the model never predicts.

`prediction_dicts` turns (N, C) probabilities into the `{"label", "probabilities"}` dicts that the Python API
(predict.py), `ulmfit predict` (commands.py), `ulmfit serve` and an export (exported.py) all return: one function,
so the four cannot drift apart. It lives here, not in predict.py, because an export must predict without importing
the model code.
"""
from __future__ import annotations

import numpy as np


def prediction_dicts(label_names: list[str], probs: np.ndarray, digits: int | None = None) -> list[dict]:
    """[{"label": the most probable name, "probabilities": {name: p}}] per row of `probs` (N, C); `digits` rounds
    the probabilities (the CLI's and the server's JSON)."""
    def value(q) -> float:
        return float(q) if digits is None else round(float(q), digits)
    return [{"label": label_names[int(p.argmax())], "probabilities": {n: value(q) for n, q in zip(label_names, p)}}
            for p in probs]


def confusion_matrix(y_true: list[int], y_pred: list[int], n_classes: int) -> np.ndarray:
    """(C, C) counts; row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # sklearn's zero_division=0 convention: a class never predicted (or never present) scores 0, not NaN,
    # so macro-F1 penalises a classifier that ignores a class.
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def classification_report(y_true: list[int], y_pred: list[int], label_names: list[str]) -> dict:
    """Accuracy, macro-F1, n, per-class precision/recall/F1/support and the confusion matrix (rows = true).

    Macro-F1 averages the per-class F1 over every class in `label_names`, including classes absent from
    `y_true` (their F1 is 0), matching sklearn's `f1_score(average="macro", labels=range(C))`.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    n_classes = len(label_names)
    for name, ys in (("y_true", y_true), ("y_pred", y_pred)):
        if len(ys) and not (0 <= min(ys) and max(ys) < n_classes):
            raise ValueError(f"{name} holds a class index outside [0, {n_classes})")
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    true_pos = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)                                  # how many of each class are really there
    predicted = matrix.sum(axis=0)                                # how often each class was predicted
    precision = _safe_div(true_pos, predicted.astype(np.float64))
    recall = _safe_div(true_pos, support.astype(np.float64))
    f1 = _safe_div(2 * precision * recall, precision + recall)
    n = int(len(y_true))
    return {
        "accuracy": float(true_pos.sum() / n) if n else 0.0,
        "macro_f1": float(f1.mean()) if n_classes else 0.0,
        "n": n,
        "per_class": {
            label: {"precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
                    "support": int(support[c])}
            for c, label in enumerate(label_names)
        },
        "labels": list(label_names),
        "confusion_matrix": matrix.tolist(),
    }


def format_report(report: dict) -> str:
    """A per-class table, the overall scores and the confusion matrix, as aligned plain text."""
    labels = report["labels"]
    width = max([len("class")] + [len(str(label)) for label in labels])
    lines = [f"{'class':<{width}}  precision  recall      f1  support"]
    for label in labels:
        s = report["per_class"][label]
        lines.append(f"{label:<{width}}  {s['precision']:9.4f}  {s['recall']:6.4f}  {s['f1']:6.4f}  "
                     f"{s['support']:7d}")
    lines.append("")
    lines.append(f"accuracy {report['accuracy']:.4f}   macro-F1 {report['macro_f1']:.4f}   n {report['n']}")
    lines.append("")
    lines.append("confusion matrix (rows = true, columns = predicted)")
    matrix = report["confusion_matrix"]
    cell = max([len(str(label)) for label in labels] + [len(str(v)) for row in matrix for v in row] + [1])
    lines.append(" " * width + "  " + " ".join(f"{str(label):>{cell}}" for label in labels))
    for label, row in zip(labels, matrix):
        lines.append(f"{label:<{width}}  " + " ".join(f"{v:>{cell}d}" for v in row))
    return "\n".join(lines)


def top_losses(probs, y_true, texts, k: int = 10, label_names: list[str] | None = None) -> list[dict]:
    """The k most confident mistakes: misclassified examples by their loss -log p(true class), largest first.

    Reading them is the quickest way to find label noise and what the model has not learned (fastai's
    `top_losses`, restricted to mistakes). Each item: index, text, true, predicted (names when `label_names` is
    given, else indices), probability (of the predicted class) and loss. Fewer than k if there are fewer mistakes.
    """
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    if probs.ndim != 2 or len(probs) != len(y) or len(y) != len(texts):
        raise ValueError(f"probs {probs.shape}, y_true ({len(y)},) and texts ({len(texts)},) must be "
                         "(N, C), (N,) and (N,)")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    rows = np.arange(len(y))
    predicted = probs.argmax(axis=1)
    # clipped: a probability of exactly 0 would give an infinite loss, which is not valid JSON
    loss = -np.log(np.clip(probs[rows, y], 1e-12, None))
    wrong = np.flatnonzero(predicted != y)
    order = wrong[np.argsort(-loss[wrong], kind="stable")][:k]      # stable: ties keep the input order
    name = (lambda c: label_names[c]) if label_names is not None else int
    return [{"index": int(i), "text": texts[i], "true": name(y[i]), "predicted": name(predicted[i]),
             "probability": float(probs[i, predicted[i]]), "loss": float(loss[i])} for i in order]
