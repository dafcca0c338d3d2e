"""Tests for ulmfit/data/readers.py: a user's CSV/TSV/JSONL/class-folder/plain-text data, one-line errors."""
import gzip
import json
import warnings

import pytest

from ulmfit.data import readers
from ulmfit.errors import UlmfitError
from ulmfit.data.readers import read_labelled_file, read_text_files, read_utf8


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def one_line_error(fn, *args, match: str, **kwargs) -> str:
    with pytest.raises(UlmfitError, match=match) as e:
        fn(*args, **kwargs)
    assert "\n" not in str(e.value)
    return str(e.value)


class TestLabelledFormats:
    def test_csv(self, tmp_path):
        """A CSV gives texts and string labels, quoted newlines intact."""
        f = write(tmp_path / "d.csv", 'text,label\n"good\nfilm",1\nbad,0\n')
        assert read_labelled_file(f) == (["good\nfilm", "bad"], ["1", "0"])

    def test_several_text_columns(self, tmp_path):
        """Several text columns are joined with a newline, in the order given."""
        f = write(tmp_path / "d.csv", "title,body,y\nHi,there,a\nYo,you,b\n")
        assert read_labelled_file(f, ["title", "body"], "y")[0] == ["Hi\nthere", "Yo\nyou"]

    def test_tsv_gz(self, tmp_path):
        """A gzipped TSV is read by its inner suffix."""
        f = tmp_path / "d.tsv.gz"
        f.write_bytes(gzip.compress(b"text\tlabel\nx, y\tpos\nz\tneg\n"))
        assert read_labelled_file(f) == (["x, y", "z"], ["pos", "neg"])

    def test_jsonl(self, tmp_path):
        """JSONL rows are objects; numeric labels become strings."""
        f = write(tmp_path / "d.jsonl", json.dumps({"text": "a", "label": 1}) + "\n\n" +
                  json.dumps({"text": "b", "label": 0}) + "\n")
        assert read_labelled_file(f) == (["a", "b"], ["1", "0"])

    def test_texts_only(self, tmp_path):
        """label_col=None reads the texts of an unlabelled file (LM text, prediction)."""
        f = write(tmp_path / "d.csv", "text\nonly\none\n")
        assert read_labelled_file(f, "text", None) == (["only", "one"], [])

    def test_class_folders(self, tmp_path):
        """A folder per class (aclImdb layout) gives the folder names as labels; unsup/ is skipped."""
        for label, text in [("neg", "bad"), ("pos", "good"), ("unsup", "meh")]:
            (tmp_path / label).mkdir()
            write(tmp_path / label / "0_1.txt", text)
        assert read_labelled_file(tmp_path) == (["bad", "good"], ["neg", "pos"])


class TestLabelledErrors:
    def test_missing_file(self, tmp_path):
        """A missing file is named."""
        one_line_error(read_labelled_file, tmp_path / "nope.csv", match="nope.csv")

    def test_missing_column(self, tmp_path):
        """A missing column lists the available ones."""
        f = write(tmp_path / "d.csv", "review,sentiment\nx,1\ny,0\n")
        msg = one_line_error(read_labelled_file, f, "text", "sentiment", match="no column 'text'")
        assert "review, sentiment" in msg

    def test_empty_file(self, tmp_path):
        """An empty file is reported as empty."""
        one_line_error(read_labelled_file, write(tmp_path / "d.csv", ""), match="empty")

    def test_header_only(self, tmp_path):
        """A header without rows is reported."""
        one_line_error(read_labelled_file, write(tmp_path / "d.csv", "text,label\n"), match="no rows")

    def test_non_utf8(self, tmp_path):
        """A non-UTF-8 byte is reported with its offset and line."""
        f = tmp_path / "d.csv"
        f.write_bytes(b"text,label\nok,1\ncaf\xe9,0\n")
        one_line_error(read_labelled_file, f, match=r"0xe9 at offset 19 \(line 3\)")

    def test_single_class(self, tmp_path):
        """A file with only one label cannot train a classifier."""
        f = write(tmp_path / "d.csv", "text,label\na,x\nb,x\n")
        one_line_error(read_labelled_file, f, match="two classes")

    def test_empty_text(self, tmp_path):
        """An empty text is reported with its example number."""
        f = write(tmp_path / "d.csv", 'text,label\na,x\n"  ",y\n')
        one_line_error(read_labelled_file, f, match="empty text.*example 2")

    def test_bad_json(self, tmp_path):
        """A JSONL line that is not JSON is reported with its line number."""
        f = write(tmp_path / "d.jsonl", '{"text": "a"}\n{oops\n')
        one_line_error(read_labelled_file, f, match="line 2")

    def test_unknown_format(self, tmp_path):
        """An unknown suffix lists the supported formats."""
        one_line_error(read_labelled_file, write(tmp_path / "d.xlsx", "x"), match="unknown format")


class TestMisnamedDelimiters:
    def test_tab_separated_csv_is_read_as_tsv(self, tmp_path):
        """A .csv whose header line has tabs and no commas is read as TSV, with a warning that says to rename it."""
        f = write(tmp_path / "d.csv", "text\tlabel\nx, y\tpos\nz\tneg\n")
        with pytest.warns(UserWarning, match=r"looks tab-separated.*rename it \.tsv"):
            assert read_labelled_file(f) == (["x, y", "z"], ["pos", "neg"])

    def test_comma_separated_tsv_is_read_as_csv(self, tmp_path):
        """The reverse: a .tsv whose header line has commas and no tabs is read as CSV, with a warning."""
        f = write(tmp_path / "d.tsv", "text,label\na,pos\nb,neg\n")
        with pytest.warns(UserWarning, match=r"looks comma-separated.*rename it \.csv"):
            assert read_labelled_file(f) == (["a", "b"], ["pos", "neg"])

    def test_one_column_csv_is_left_alone(self, tmp_path):
        """A one-column CSV (no tab, no comma in its header) is read as CSV without a warning."""
        f = write(tmp_path / "d.csv", "text\nhello\tthere\n")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert read_labelled_file(f, "text", None) == (["hello\tthere"], [])


class TestForPrediction:
    def test_keeps_every_column(self, tmp_path):
        """The rows keep every input column, in the file's order, beside the texts to classify."""
        f = write(tmp_path / "d.csv", "id,title,body,source\n7,Hi,there,web\n8,Yo,you,mail\n")
        texts, rows, header = readers.read_for_prediction(f, ["title", "body"])
        assert texts == ["Hi\nthere", "Yo\nyou"]
        assert header == ["id", "title", "body", "source"] and rows[1]["source"] == "mail"

    def test_text_file_is_a_text_per_line(self, tmp_path):
        """A .txt file gives one text per non-empty line, in the column text."""
        texts, rows, header = readers.read_for_prediction(write(tmp_path / "d.txt", "good film\n\nbad film\n"))
        assert texts == ["good film", "bad film"] and header == ["text"] and rows[1] == {"text": "bad film"}

    def test_class_folders_give_text_and_label(self, tmp_path):
        """A folder per class gives the columns text and label (the folder name)."""
        for label in ("neg", "pos"):
            (tmp_path / label).mkdir()
            write(tmp_path / label / "1.txt", f"a {label} review")
        texts, rows, header = readers.read_for_prediction(tmp_path)
        assert header == ["text", "label"] and rows == [{"text": t, "label": y} for t, y in
                                                        zip(texts, ["neg", "pos"])]


class TestTextFiles:
    def test_one_document_per_file(self, tmp_path):
        """By default each file is one document."""
        write(tmp_path / "a.txt", "line one\nline two\n")
        write(tmp_path / "b.txt", "other\n")
        assert read_text_files(tmp_path) == ["line one\nline two", "other"]

    def test_split_lines_and_paragraphs(self, tmp_path):
        """split="line" and split="blank" give one document per line / per paragraph."""
        f = write(tmp_path / "a.txt", "a\nb\n\nc\n")
        assert read_text_files(f, split="line") == ["a", "b", "c"]
        assert read_text_files([f], split="blank") == ["a\nb", "c"]

    def test_errors(self, tmp_path):
        """Missing files, empty files and non-UTF-8 bytes are one-line errors."""
        one_line_error(read_text_files, tmp_path / "x.txt", match="no such file")
        one_line_error(read_text_files, write(tmp_path / "e.txt", "\n"), match="no text")
        (tmp_path / "bad.txt").write_bytes(b"ok\n\xff")
        one_line_error(read_utf8, tmp_path / "bad.txt", match="offset 3 \\(line 2\\)")
