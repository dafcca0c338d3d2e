"""data/ layer, the user's own data: files -> texts (+ string labels), with one-line errors. (The registered
datasets' archive formats are formats.py's.)

Formats (issue 2, "A user's own data"):
- CSV / TSV with a header: `text_cols` (one or several columns, joined with "\\n") and `label_col`; a .csv whose
  header line is tab-separated (or a .tsv comma-separated) is read as what it is, with a one-line warning;
- JSONL: one object per line with the same keys;
- a folder per class (the aclImdb layout `root/<label>/*.txt`; an `unsup/` folder is skipped);
- plain-text files for LM corpora (`read_text_files`).
Any of the files may be compressed (.gz, .xz, .bz2). Labels are kept as strings; mapping them to ids is the
classifier's job. Everything the user can get wrong raises `UlmfitError` with a one-line message.
"""
from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import sys
import warnings
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import UlmfitError, empty_texts
from ..validation import check_strings

_OPENERS = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))        # reviews can be longer than csv's 128 kB default


def _base_suffix(path: Path) -> str:
    """The format suffix under any compression suffix: data.csv.gz -> .csv."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _OPENERS:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def read_utf8(path) -> str:
    """The whole (decompressed) file as str; a bad byte is reported with its offset and line number."""
    path = Path(path)
    if not path.exists():
        raise UlmfitError(f"no such file: {path}")
    if path.is_dir():
        raise UlmfitError(f"{path} is a folder, expected a file")
    opener = _OPENERS.get(path.suffix.lower(), open)
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise UlmfitError(f"cannot read {path}: {e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UlmfitError(f"{path} is not UTF-8: byte 0x{data[e.start]:02x} at offset {e.start} "
                          f"(line {line}); re-save it as UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text        # drop a BOM (Excel writes one)


def read_labelled_file(path, text_cols: str | Sequence[str] = "text", label_col: str | None = "label",
                       need_two_classes: bool = True) -> tuple[list[str], list[str]]:
    """(texts, labels) from a CSV/TSV/JSONL file or a folder per class; see the module docstring.
    `label_col=None` reads texts only (for LM text or prediction): labels are then [] and not checked.
    `need_two_classes` refuses a file of one class, which cannot train a classifier; pass False for test or
    validation data (one class is legitimate there) or for one of several training files."""
    path = Path(path)
    texts, labels, _ = _read_columns(path, text_cols, label_col)
    if label_col is None:
        labels = []
    _check_labelled(path, texts, labels, need_labels=label_col is not None, need_two_classes=need_two_classes)
    return texts, labels


def read_for_prediction(path, text_cols: str | Sequence[str] = "text") -> tuple[list[str], list[dict], list[str]]:
    """(texts, rows, header) for `ulmfit predict --file`: the texts to classify and every column of each input
    row, which the predictions file keeps. A folder per class gives the columns text and label (the folder name);
    a .txt file gives one text per non-empty line, in the column text."""
    path = Path(path)
    if path.is_file() and _base_suffix(path) == ".txt":
        texts = read_text_files([path], split="line")
        return texts, [{"text": t} for t in texts], ["text"]
    texts, labels, table = _read_columns(path, text_cols, None)
    _check_labelled(path, texts, [], need_labels=False, need_two_classes=False)
    if table is None:
        table = [{"text": t, "label": y} for t, y in zip(texts, labels)], ["text", "label"]
    return texts, table[0], table[1]


def read_table(path) -> tuple[list[dict], list[str]]:
    """(rows, header) of a CSV/TSV/JSONL file: every column of every row, as the file has them."""
    path = Path(path)
    kind = _base_suffix(path)
    if kind in (".csv", ".tsv"):
        return _read_csv(path, "\t" if kind == ".tsv" else ",")
    if kind in (".jsonl", ".ndjson"):
        return _read_jsonl(path)
    if not path.exists():
        raise UlmfitError(f"no such file: {path}")
    raise UlmfitError(f"{path}: unknown format {kind or '(no suffix)'}; use .csv, .tsv, .jsonl or a folder per class")


def _read_columns(path: Path, text_cols, label_col) -> tuple[list[str], list[str], tuple | None]:
    """(texts, labels, (rows, header)) of a file; a folder per class gives its folder names and no table."""
    if not path.exists():
        raise UlmfitError(f"no such file or folder: {path}")
    cols = [text_cols] if isinstance(text_cols, str) else list(text_cols)
    if not cols:
        raise UlmfitError("give at least one text column")
    if path.is_dir():
        return (*_read_class_folders(path), None)
    rows, header = read_table(path)
    for col in cols + ([label_col] if label_col is not None else []):
        if col not in header:
            raise UlmfitError(f"{path} has no column {col!r}; available columns: {', '.join(map(str, header))}")
    texts = ["\n".join(_cell(row.get(c)) for c in cols) for row in rows]
    labels = [_cell(row.get(label_col)).strip() for row in rows] if label_col is not None else []
    return texts, labels, (rows, header)


def _cell(value) -> str:
    return "" if value is None else str(value)


def _read_csv(path: Path, delimiter: str) -> tuple[list[dict], list[str]]:
    """A header line with the other delimiter and none of this one (a TSV named .csv, or the reverse) is read
    with the other delimiter, with a one-line warning: a one-column table whose name holds tabs is never meant."""
    text = read_utf8(path)
    if not text.strip():
        raise UlmfitError(f"{path} is empty")
    header_line, other = text.split("\n", 1)[0], "," if delimiter == "\t" else "\t"
    if delimiter not in header_line and other in header_line:
        looks, lacks, kind = ("tab", "comma", "TSV") if other == "\t" else ("comma", "tab", "CSV")
        warnings.warn(f"{path} looks {looks}-separated (its header line has {looks}s and no {lacks}s): reading it "
                      f"as {kind}; rename it .{kind.lower()}", stacklevel=2)
        delimiter = other
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    except csv.Error as e:
        raise UlmfitError(f"{path}: bad CSV: {e}") from None
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:                             # DictReader would keep the last column of that name, silently
        raise UlmfitError(f"{path}: the header has the column {twice[0]!r} twice; rename one of them")
    if not rows:
        raise UlmfitError(f"{path} has a header but no rows")
    return rows, header


def _read_jsonl(path: Path) -> tuple[list[dict], list[str]]:
    rows, header = [], {}
    for i, line in enumerate(read_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UlmfitError(f"{path} line {i} is not valid JSON: {e.msg}") from None
        if not isinstance(row, dict):
            raise UlmfitError(f"{path} line {i}: expected a JSON object, got {type(row).__name__}")
        check_strings(row, f"{path} line {i}")        # JSON can spell a lone surrogate ("\\ud800"); UTF-8 cannot
        rows.append(row)
        header.update(dict.fromkeys(row))
    if not rows:
        raise UlmfitError(f"{path} is empty")
    return rows, list(header)


def _read_class_folders(root: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    classes = sorted(p for p in root.iterdir()
                     if p.is_dir() and not p.name.startswith(".") and p.name != "unsup")
    if not classes:
        raise UlmfitError(f"{root} has no sub-folders: expected one folder per class (root/<label>/*.txt)")
    for folder in classes:
        for file in sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")):
            texts.append(read_utf8(file))
            labels.append(folder.name)
    if not texts:
        raise UlmfitError(f"{root}: the class folders hold no files")
    return texts, labels


def _check_labelled(path: Path, texts: list[str], labels: list[str], need_labels: bool,
                    need_two_classes: bool) -> None:
    empty = empty_texts(texts)
    if empty:
        raise UlmfitError(f"{path}: {len(empty)} example(s) have an empty text (first: example "
                          f"{empty[0] + 1}); remove them or pick another --text-col")
    if not need_labels:
        return
    no_label = [i for i, label in enumerate(labels) if not label]
    if no_label:
        raise UlmfitError(f"{path}: {len(no_label)} example(s) have no label "
                          f"(first: example {no_label[0] + 1})")
    classes = sorted(set(labels))
    if need_two_classes and len(classes) < 2:
        raise UlmfitError(f"{path}: every example has the label {classes[0]!r}; a classifier needs at least "
                          "two classes")


def read_text_files(paths, split: str = "file") -> list[str]:
    """Documents from plain-text files (folders are searched for *.txt): one per file, non-empty line, or
    blank-line-separated paragraph (`split` = "file" | "line" | "blank")."""
    if split not in ("file", "line", "blank"):
        raise UlmfitError(f"split={split!r}: choose file, line or blank")
    files: list[Path] = []
    for p in [paths] if isinstance(paths, (str, Path)) else list(paths):
        p = Path(p)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*.txt") if f.is_file())
            if not found:
                raise UlmfitError(f"{p} holds no .txt files")
            files += found
        else:
            files.append(p)
    if not files:
        raise UlmfitError("no text files given")
    docs: list[str] = []
    for f in files:
        text = read_utf8(f).replace("\r\n", "\n")
        docs += _split_text(text, split)
    if not docs:
        where = files[0] if len(files) == 1 else "the text files"
        raise UlmfitError(f"{where}: no text (every file is empty)")
    return docs


def _split_text(text: str, split: str) -> Iterable[str]:
    if split == "file":
        return [text.strip("\n")] if text.strip() else []
    if split == "line":
        return [line for line in text.split("\n") if line.strip()]
    return [p.strip("\n") for p in text.split("\n\n") if p.strip()]
