"""Tests for ulmfit/analysis/metrics.py on a hand-made three-class example whose scores are worked out by hand."""
import json

import pytest

from ulmfit.analysis.metrics import classification_report, format_report

# true a a a b b c ; predicted a a b b c c
#            predicted a  b  c
#   true a             2  1  0      precision a = 2/2, b = 1/2, c = 1/2
#   true b             0  1  1      recall    a = 2/3, b = 1/2, c = 1/1
#   true c             0  0  1      F1        a = 0.8, b = 0.5, c = 2/3
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]
LABELS = ["a", "b", "c"]


@pytest.fixture
def report():
    return classification_report(Y_TRUE, Y_PRED, LABELS)


class TestClassificationReport:
    def test_accuracy(self, report):
        """Accuracy is the fraction of exact matches (4 of 6)."""
        assert report["accuracy"] == pytest.approx(4 / 6)
        assert report["n"] == 6

    def test_macro_f1(self, report):
        """Macro-F1 is the unweighted mean of the per-class F1 scores."""
        assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)

    def test_per_class_scores(self, report):
        """Per-class precision, recall and support match the hand computation."""
        a, b, c = (report["per_class"][k] for k in LABELS)
        assert (a["precision"], a["recall"], a["support"]) == pytest.approx((1.0, 2 / 3, 3))
        assert (b["precision"], b["recall"], b["support"]) == pytest.approx((0.5, 0.5, 2))
        assert (c["precision"], c["recall"], c["f1"]) == pytest.approx((0.5, 1.0, 2 / 3))

    def test_confusion_matrix_rows_are_true_classes(self, report):
        """The confusion matrix has one row per true class and one column per predicted class."""
        assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]

    def test_never_predicted_class_scores_zero(self):
        """A class that is never predicted gets precision and F1 0, not NaN, and drags macro-F1 down."""
        rep = classification_report([0, 1], [0, 0], ["x", "y"])
        assert rep["per_class"]["y"]["precision"] == 0.0
        assert rep["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)

    def test_report_is_json_serialisable(self, report):
        """The report round-trips through JSON, so `evaluate` can print it as its last line."""
        assert json.loads(json.dumps(report)) == report

    def test_out_of_range_index_is_rejected(self):
        """A predicted index with no label name is an error, not a silently wrong matrix."""
        with pytest.raises(ValueError):
            classification_report([0, 1], [0, 2], ["x", "y"])


class TestFormatReport:
    def test_shows_scores_and_matrix(self, report):
        """The text report names every class and prints the overall accuracy and each matrix row."""
        text = format_report(report)
        assert "accuracy 0.6667" in text
        assert all(label in text for label in LABELS)
        assert text.splitlines()[-3].split() == ["a", "2", "1", "0"]
