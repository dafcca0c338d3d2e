"""Sentence-level distant supervision (ulmfit/data/distant.py): splitting, label inheritance, balancing."""
import numpy as np
import pytest

from ulmfit.data.distant import agreement, balanced_subsample, sentences_with_labels, split_sentences


def test_split_sentences_on_end_marks_and_html_breaks():
    """A sentence ends at . ! ? before a capital, and at an HTML break; fragments under min_words are dropped."""
    doc = 'I loved every minute of it. The plot follows a detective!<br /><br />Best film of the year? Wow.'
    assert split_sentences(doc, min_words=3) == ["I loved every minute of it.", "The plot follows a detective!",
                                                 "Best film of the year?"]


def test_split_sentences_keeps_abbreviation_like_lowercase_continuations():
    """No split before a lower-case word, so "vs. the" stays inside its sentence."""
    assert split_sentences("It was good vs. the original one.", min_words=1) == ["It was good vs. the original one."]


def test_split_sentences_drops_run_ons():
    assert split_sentences(" ".join(["word"] * 60) + ".", max_words=50) == []


def test_sentences_inherit_their_document_label_and_index():
    texts, labels, doc = sentences_with_labels(["Great fun for all. Loved the cast a lot.", "Dull and slow, avoid it."],
                                               ["pos", "neg"], min_words=3)
    assert texts == ["Great fun for all.", "Loved the cast a lot.", "Dull and slow, avoid it."]
    assert labels == ["pos", "pos", "neg"] and doc.tolist() == [0, 0, 1]


def test_balanced_subsample_takes_equal_kept_counts_per_class():
    """As many of each class as the rarest kept class has; only kept examples; seeded."""
    labels = ["pos"] * 10 + ["neg"] * 4
    keep = np.ones(14, dtype=bool)
    keep[0] = keep[10] = False
    idx = balanced_subsample(labels, keep, per_class=100, seed=0)
    assert sorted(labels[i] for i in idx) == ["neg"] * 3 + ["pos"] * 3
    assert 0 not in idx and 10 not in idx
    assert idx.tolist() == balanced_subsample(labels, keep, per_class=100, seed=0).tolist()
    assert len(balanced_subsample(labels, keep, per_class=2, seed=0)) == 4


def test_agreement_is_the_probability_of_the_own_label():
    assert agreement(np.array([0.9, 0.9]), ["pos", "neg"]).tolist() == [0.9, pytest.approx(0.1)]

