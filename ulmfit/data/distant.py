"""data/ layer: sentence-level distant supervision from document labels (beyond the paper; used for Rotten Tomatoes).

A review-level sentiment classifier (ULMFiT §3.3 on IMDb) transfers only partly to single sentences such as
Rotten Tomatoes': it was trained on 250-word reviews, and on one sentence it leans to "pos". The labelled
reviews, though, hold a few hundred thousand sentences that mostly share their review's polarity. Cutting them
into sentences that inherit their document's label gives a large, noisy, sentence-level task in the target's
format; a classifier trained on it (`ulmfit classify --from-classifier`) is the starting point for the small
sentence dataset. Three cheap ways to make the inherited label less noisy, each a `keep` mask here:

- extreme documents only (IMDb ratings 1-2 and 9-10), where almost every opinionated sentence agrees;
- sentences on which the review-level classifier already agrees with the document's label (self-distillation);
- unlabelled documents that the review-level classifier labels with high confidence (pseudo-labels).

    review (pos, 10/10): "I loved it. The plot follows a detective in Oslo. Best film of the year!"
    -> ("I loved it.", pos)  ("The plot follows a detective in Oslo.", pos)  ("Best film of the year!", pos)
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

# a sentence ends at . ! or ? (and an optional closing quote or bracket), before whitespace and a capital
_SENTENCE_END = re.compile(r'(?<=[.!?])["\')]?\s+(?=["\'(]?[A-Z])')
_HTML_BREAK = re.compile(r"<br\s*/?>")


def split_sentences(document: str, min_words: int = 5, max_words: int = 50) -> list[str]:
    """The sentences of a document (HTML breaks and newlines end one too) that have min..max whitespace words;
    shorter ones are mostly fragments ("10/10."), longer ones mostly run-ons the splitter missed."""
    sentences = []
    for paragraph in _HTML_BREAK.sub("\n", document).split("\n"):
        for sentence in _SENTENCE_END.split(paragraph.strip()):
            if min_words <= len(sentence.split()) <= max_words:
                sentences.append(sentence.strip())
    return sentences


def sentences_with_labels(documents: Sequence[str], labels: Sequence[str], min_words: int = 5,
                          max_words: int = 50) -> tuple[list[str], list[str], np.ndarray]:
    """Every sentence of every document with its document's label, and each sentence's document index."""
    sentences, sentence_labels, doc_index = [], [], []
    for i, (document, label) in enumerate(zip(documents, labels)):
        for sentence in split_sentences(document, min_words, max_words):
            sentences.append(sentence)
            sentence_labels.append(label)
            doc_index.append(i)
    return sentences, sentence_labels, np.array(doc_index, dtype=np.int64)


def balanced_subsample(labels: Sequence[str], keep: np.ndarray, per_class: int, seed: int,
                       classes: Sequence[str] | None = None) -> np.ndarray:
    """Sorted indices of up to `per_class` kept examples of each class: as many of each as the rarest class has,
    so that a "pos"-leaning filter does not become a "pos"-leaning dataset. One permutation is drawn per class,
    in the order of `classes` (default: sorted)."""
    labels = np.asarray(labels)
    keep = np.asarray(keep, dtype=bool)
    classes = sorted(set(labels.tolist())) if classes is None else list(classes)
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(keep & (labels == c))) for c in classes]
    n = min(per_class, *(len(p) for p in pools))
    return np.sort(np.concatenate([p[:n] for p in pools]))


def agreement(prob_pos: np.ndarray, labels: Sequence[str], positive: str = "pos") -> np.ndarray:
    """The classifier's probability for each example's own (binary) label."""
    is_pos = np.asarray(labels) == positive
    return np.where(is_pos, prob_pos, 1.0 - prob_pos)
