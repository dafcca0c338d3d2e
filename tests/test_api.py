"""The Python API from memory (issue 16): a notebook trains, evaluates, predicts and saves from lists of texts and
labels (or a DataFrame) through the same pipeline functions the CLI runs, without writing an input file."""
import csv

import numpy as np
import pytest

from ulmfit import pipeline
from ulmfit.predict import TextClassifier
from ulmfit.config import apply_overrides, preset
from ulmfit.errors import UlmfitError
from ulmfit.pipeline import DataSpec, labelled_splits, lm_documents
from synthetic import TOPICS, labelled_topics

_labelled = labelled_topics


def _write_csv(path, texts, labels):
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *zip(texts, labels)])
    return str(path)


def _config(stage: str, *overrides: str):
    return apply_overrides(preset("tiny", stage), ["train.seed=0", *overrides])


class _Frame:
    """All that from_frame uses of a DataFrame: `.columns` and `frame[column]`."""

    def __init__(self, **columns):
        self._columns = columns

    @property
    def columns(self):
        return list(self._columns)

    def __getitem__(self, name):
        return self._columns[name]


class TestFromTexts:
    def test_same_splits_as_the_same_data_in_a_csv(self, tmp_path):
        """Lists and a CSV of the same rows give the same seeded train/valid split and the same test split."""
        train, test = _labelled(50, 1), _labelled(10, 2)
        from_files = DataSpec(train=[_write_csv(tmp_path / "train.csv", *train)],
                              test=_write_csv(tmp_path / "test.csv", *test))
        from_lists = DataSpec.from_texts(train=train, test=test)
        assert labelled_splits(from_lists, 3, 0.2) == labelled_splits(from_files, 3, 0.2)

    def test_same_lm_documents_as_the_same_texts_in_a_csv(self, tmp_path):
        """Texts alone give the LM stages the same documents and held-out part as a CSV of them."""
        texts, labels = _labelled(50, 1)
        from_file = lm_documents(DataSpec(train=[_write_csv(tmp_path / "train.csv", texts, labels)]))
        assert lm_documents(DataSpec.from_texts(train=texts)) == from_file

    def test_labels_are_compared_as_strings(self):
        """Integer labels become "0" and "1", as a file's labels would be read."""
        texts, _ = _labelled(6, 1)
        splits = labelled_splits(DataSpec.from_texts(train=(texts, [0, 1] * 3), valid=(texts, [1] * 6)), 0, 0.1)
        assert set(splits["train"][1]) == {"0", "1"} and splits["valid"][1] == ["1"] * 6

    def test_mismatched_lengths_are_a_user_error(self):
        """Three texts with two labels is refused when the spec is made, naming both counts."""
        with pytest.raises(UlmfitError, match="3 texts but 2 labels"):
            DataSpec.from_texts(train=(["a b", "c d", "e f"], ["x", "y"]))

    @pytest.mark.parametrize("text", ["", "   ", None, float("nan")])
    def test_an_empty_or_missing_text_is_a_user_error(self, text):
        """An empty, blank, None or NaN text is refused with its position."""
        with pytest.raises(UlmfitError, match="number 1"):
            DataSpec.from_texts(train=(["a b", text, "c d"], ["x", "y", "x"]))

    @pytest.mark.parametrize("label", ["", None, float("nan")])
    def test_an_empty_or_missing_label_is_a_user_error(self, label):
        """A missing label would otherwise become a class named "None" or "nan"."""
        with pytest.raises(UlmfitError, match="label"):
            DataSpec.from_texts(train=(["a b", "c d", "e f"], ["x", label, "y"]))

    def test_texts_without_labels_cannot_train_a_classifier(self):
        """Texts alone are LM data: asking them for labelled splits says that labels are missing."""
        with pytest.raises(UlmfitError, match="no labels"):
            labelled_splits(DataSpec.from_texts(train=_labelled(10, 1)[0]), 0, 0.1)


class TestFromFrame:
    def test_a_frame_reads_like_lists(self):
        """from_frame takes the text and label columns of each split's frame, duck-typed (no pandas needed)."""
        (texts, labels), (vtexts, vlabels) = _labelled(20, 1), _labelled(5, 2)
        frame = DataSpec.from_frame(_Frame(body=texts, topic=labels), text_col="body", label_col="topic",
                                    valid=_Frame(body=vtexts, topic=vlabels))
        lists = DataSpec.from_texts(train=(texts, labels), valid=(vtexts, vlabels))
        assert labelled_splits(frame, 0, 0.1) == labelled_splits(lists, 0, 0.1)

    def test_a_missing_column_is_a_user_error_that_lists_the_columns(self):
        """A wrong column name says which columns the frame does have."""
        with pytest.raises(UlmfitError, match="no column 'text'; its columns: body, topic"):
            DataSpec.from_frame(_Frame(body=["a b"], topic=["x"]))

    def test_a_pandas_dataframe(self):
        """A real pandas DataFrame, with integer labels, gives the splits of the same lists (pandas is optional)."""
        pd = pytest.importorskip("pandas", reason="pandas is not installed; from_frame is duck-typed and tested "
                                                  "with a stand-in frame above")
        texts, labels = _labelled(20, 1)
        numbers = [sorted(TOPICS).index(y) for y in labels]
        frame = DataSpec.from_frame(pd.DataFrame({"text": texts, "label": numbers}))
        assert labelled_splits(frame, 0, 0.1) == labelled_splits(DataSpec.from_texts((texts, numbers)), 0, 0.1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """pretrain -> finetune -> classify on the tiny preset, every stage fed from lists (a few seconds)."""
    root = tmp_path_factory.mktemp("api")
    corpus, _ = _labelled(600, 0)
    pipeline.pretrain(_config("pretrain", "max_steps=8", "tokenizer.vocab_size=60", "batch_size=8"),
                      DataSpec.from_texts(train=corpus), root / "pre")
    train, test = _labelled(240, 1), _labelled(60, 2)
    pipeline.finetune(_config("finetune", "max_steps=4", "batch_size=8"), root / "pre",
                      DataSpec.from_texts(train=train), root / "ft")
    result = pipeline.classify(_config("classify", "epochs=2", "batch_size=16"), root / "ft",
                               DataSpec.from_texts(train=train, test=test), root / "cls")
    return {"dir": root / "cls", "result": result, "test": test}


class TestTrainedFromLists:
    def test_the_run_loads_with_its_labels(self, trained):
        """The classifier trained from lists loads back with one call, in eval mode, with the sorted labels."""
        model = TextClassifier.from_pretrained(trained["dir"], device="cpu")
        assert model.label_names == ["food", "sport"] and not model.training

    def test_predict_and_predict_proba_agree(self, trained):
        """predict_proba is an (N, C) array of distributions; predict names each row's most probable label."""
        model = TextClassifier.from_pretrained(trained["dir"], device="cpu")
        texts = trained["test"][0][:7]
        probs = model.predict_proba(texts)
        assert probs.shape == (7, 2)
        np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
        assert [p["label"] for p in model.predict(texts)] == [model.label_names[i] for i in probs.argmax(1)]

    def test_evaluate_from_lists_scores_what_classify_scored(self, trained):
        """pipeline.evaluate on the test lists gives the test accuracy that classify reported, with the report
        (the classifier alone: a run that chose to average in its TF-IDF baseline is tested in test_run_report.py)."""
        report = pipeline.evaluate(trained["dir"], *trained["test"], baseline=False)
        assert report["accuracy"] == pytest.approx(trained["result"]["test_accuracy"])
        assert report["n"] == 60 and np.sum(report["confusion_matrix"]) == 60
        assert set(report["per_class"]) == {"food", "sport"}

    def test_evaluate_with_an_unknown_label_is_a_user_error(self, trained):
        """A label the model never saw names itself and the known ones."""
        with pytest.raises(UlmfitError, match="'drinks'.*known labels"):
            pipeline.evaluate(trained["dir"], ["Bake the flour."], ["drinks"])
