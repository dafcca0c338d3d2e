"""data/ layer, beside `download` and `dataspec`: the one validation-split policy (issue 25).

Where a dataset or the user's data has no validation (or test) split, one is held out of train:

- labelled data, by `stratified_split`: the same fraction of every class, by a seeded permutation, so a small
  or imbalanced set keeps every class in both parts; at least one example is held out. The kept examples stay in
  their order. Registry datasets (download.load_labelled), the user's files and texts in memory
  (dataspec.labelled_splits) all go through it.
- language-model documents, by `split_documents`: a seeded 10% of the documents, or, where there are too few
  documents to hold out whole ones (one long file), the last 10% of the lines.

Imports the base layer only.
"""
from __future__ import annotations

import numpy as np

from ..errors import UlmfitError

LM_VALID_FRAC = 0.1          # of the documents (or lines) of an LM corpus without a validation split
LM_MIN_DOCUMENTS = 20        # fewer documents than this: hold out lines instead


def stratified_split(labels: list[str], frac: float, seed: int) -> tuple[list[int], list[int]]:
    """(kept, held-out) indices: `frac` of each class held out by a seeded permutation; both sorted. Where the
    rounding holds out nothing (a handful of examples), one seeded example is held out."""
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(labels)
    held = []
    for label in sorted(set(labels)):
        idx = np.flatnonzero(labels_arr == label)
        held += rng.permutation(idx)[:int(round(frac * len(idx)))].tolist()
    if not held and len(labels) > 1:
        held = [int(rng.integers(len(labels)))]
    held_set = set(held)
    return [i for i in range(len(labels)) if i not in held_set], sorted(held)


def take(pair: tuple[list, list], idx) -> tuple[list, list]:
    """The (texts, labels) at positions `idx`."""
    texts, labels = pair
    return [texts[i] for i in idx], [labels[i] for i in idx]


def hold_out(pair: tuple[list, list], frac: float, seed: int) -> tuple[tuple[list, list], tuple[list, list]]:
    """(kept, held-out) (texts, labels) of `pair`, by `stratified_split`."""
    keep, held = stratified_split(pair[1], frac, seed)
    return take(pair, keep), take(pair, held)


def standard_splits(splits: dict, seed: int, valid_frac: float, test_frac: float, test_seed: int) -> dict:
    """train / valid / test of a registry dataset: a missing test split is held out of train with `test_seed`
    (fixed, so every run scores on the same test set), then a missing valid split with `seed`."""
    out = {k: splits[k] for k in ("train", "valid", "test") if k in splits}
    if "test" not in out:
        out["train"], out["test"] = hold_out(out["train"], test_frac, test_seed)
    if "valid" not in out:
        out["train"], out["valid"] = hold_out(out["train"], valid_frac, seed)
    return {k: out[k] for k in ("train", "valid", "test")}


def split_documents(train: list[str]) -> tuple[list[str], list[str]]:
    """(train, valid) documents of an LM corpus without a validation split: a seeded 10% of the documents, or
    the last 10% of the lines where there are fewer than LM_MIN_DOCUMENTS documents."""
    if len(train) >= LM_MIN_DOCUMENTS:
        order = np.random.default_rng(0).permutation(len(train))
        cut = int(len(train) * LM_VALID_FRAC)
        return [train[i] for i in order[cut:]], [train[i] for i in order[:cut]]
    lines = "\n".join(train).split("\n")
    cut = len(lines) - max(1, int(len(lines) * LM_VALID_FRAC))
    if cut < 1:
        raise UlmfitError("the training text is too short to hold out a validation part; pass --valid FILE")
    return ["\n".join(lines[:cut])], ["\n".join(lines[cut:])]
