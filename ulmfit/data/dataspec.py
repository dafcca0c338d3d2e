"""data/ layer, last file: where a stage's text comes from, read into documents or train / valid / test splits.

A `DataSpec` names a registry dataset (datasets.py), the user's files (readers.py), or texts held in memory
(`DataSpec.from_texts`, `DataSpec.from_frame`: a notebook's lists or DataFrame, never written to a file). Every
source is read into (texts, labels as str) and checked the same way, and from there on files and memory share
one road: the same seeded validation split when none is given, the same errors, the same stages.

    DataSpec --lm_documents-->     {"train", "valid"}: documents                   (pretrain, finetune)
    DataSpec --labelled_splits-->  {"train", "valid"[, "test"]}: (texts, labels)   (classify)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


from . import download, readers
from .splits import hold_out, split_documents
from ..errors import UlmfitError, empty_texts


# ---- texts held in memory ---------------------------------------------------------------------------------
@dataclass
class Texts:
    """One split held in memory, already checked (as a file is when read): texts, and labels as str or None."""
    texts: list[str]
    labels: list[str] | None
    split: str = "train"                  # names the split in messages

    def describe(self) -> str:
        return f"{len(self.texts)} {self.split} texts in memory"


def _missing(value) -> bool:
    """None, NaN or pandas.NA: what an empty DataFrame cell holds."""
    try:
        return value is None or bool(value != value)
    except TypeError:                     # pandas.NA != pandas.NA is NA, which has no truth value
        return True


def texts_in_memory(texts, labels=None, split: str = "train") -> Texts:
    """Check and convert texts (any iterable: a list, a pandas Series...) and optional labels into `Texts`.

    Labels may be any values; they are compared as str, as a file's labels are, so 1 and "1" are one class.
    An empty or missing text or label, or a different number of labels and texts, is a UlmfitError.
    """
    texts, labels = list(texts), None if labels is None else list(labels)
    if not texts:
        raise UlmfitError(f"the {split} data holds no texts")
    if labels is not None and len(labels) != len(texts):
        raise UlmfitError(f"the {split} data has {len(texts)} texts but {len(labels)} labels; "
                          "pass one label per text")
    empty = sorted({i for i, t in enumerate(texts) if _missing(t)} | set(empty_texts(texts)))
    if empty:
        raise UlmfitError(f"{len(empty)} {split} text(s) are empty or missing (the first is number {empty[0]}, "
                          "counting from 0); remove them")
    if labels is not None:
        empty = [i for i, y in enumerate(labels) if _missing(y) or not str(y).strip()]
        if empty:
            raise UlmfitError(f"{len(empty)} {split} label(s) are empty or missing (the first is number "
                              f"{empty[0]}, counting from 0)")
        labels = [str(y).strip() for y in labels]       # a file's labels are stripped strings too
    return Texts([str(t) for t in texts], labels, split)


def _from_pair(value, split: str) -> Texts:
    """(texts, labels), or texts alone -> Texts. A pair is a 2-tuple whose first item is not itself a text."""
    if isinstance(value, Texts):
        return value
    if isinstance(value, (str, Path)):
        raise UlmfitError(f"{split}: from_texts takes texts, not a path; pass files as DataSpec(train=[path])")
    if isinstance(value, tuple) and len(value) == 2 and not isinstance(value[0], str):
        return texts_in_memory(value[0], value[1], split)
    return texts_in_memory(value, None, split)


def _from_frame(frame, text_col: str, label_col: str | None, split: str) -> Texts:
    """A DataFrame's columns -> Texts. Duck-typed (`.columns` and `frame[column]`), so pandas is never imported."""
    columns = getattr(frame, "columns", None)
    if columns is None:
        raise UlmfitError(f"the {split} data is a {type(frame).__name__}, not a DataFrame; "
                          "use DataSpec.from_texts for lists")
    columns = list(columns)
    for col in [text_col] + ([label_col] if label_col is not None else []):
        if col not in columns:
            raise UlmfitError(f"the {split} frame has no column {col!r}; its columns: "
                              f"{', '.join(map(str, columns))}")
    return texts_in_memory(frame[text_col], None if label_col is None else frame[label_col], split)


# ---- the spec ---------------------------------------------------------------------------------------------
@dataclass
class DataSpec:
    """Where a stage's text comes from: a registry dataset, the user's files, or `Texts` held in memory."""
    dataset: str | None = None
    train: list[str | Texts] = field(default_factory=list)     # one or more files (their rows are joined)
    valid: str | Texts | None = None
    test: str | Texts | None = None
    text_cols: list[str] = field(default_factory=lambda: ["text"])
    label_col: str = "label"

    @classmethod
    def from_texts(cls, train, valid=None, test=None) -> "DataSpec":
        """Data held in memory: each split is (texts, labels), or texts alone for the LM stages.

        Without `valid`, a seeded part of `train` is held out, exactly as for files.
        """
        return cls(train=[_from_pair(train, "train")],
                   valid=None if valid is None else _from_pair(valid, "valid"),
                   test=None if test is None else _from_pair(test, "test"))

    @classmethod
    def from_frame(cls, frame, text_col: str = "text", label_col: str | None = "label", valid=None,
                   test=None) -> "DataSpec":
        """`from_texts` for DataFrames: one frame per split; `label_col=None` reads the texts only."""
        read = lambda df, split: _from_frame(df, text_col, label_col, split)  # noqa: E731
        return cls(train=[read(frame, "train")], valid=None if valid is None else read(valid, "valid"),
                   test=None if test is None else read(test, "test"))

    def describe(self) -> str:
        return self.dataset or ",".join(s.describe() if isinstance(s, Texts) else str(s) for s in self.train)


# ---- language-model documents -----------------------------------------------------------------------------
def lm_documents(data: DataSpec) -> dict[str, list[str]]:
    """LM corpus splits (train, valid[, test]) as lists of documents."""
    if data.dataset:                       # labelled sets give their texts (+ IMDb's unsup reviews in train)
        # a large corpus's train split stays a re-iterable stream (read once for the tokenizer, once to encode)
        return {k: v if k == "train" and not isinstance(v, (list, tuple)) else list(v)
                for k, v in download.load_lm_corpus(data.dataset).items()}
    if not data.train:
        raise UlmfitError("no training data: pass --dataset NAME or --train FILE")
    train = [d for source in data.train for d in _read_any_text(source, data)]
    if data.valid:
        valid = _read_any_text(data.valid, data)
    else:
        train, valid = split_documents(train)
    return {"train": train, "valid": valid}


def _read_any_text(source: str | Texts, data: DataSpec) -> list[str]:
    if isinstance(source, Texts):          # labelled texts give their texts, as a labelled file does
        return list(source.texts)
    path = Path(source)
    if not path.is_dir() and any(s in (".csv", ".tsv", ".jsonl", ".ndjson") for s in path.suffixes):
        texts, _ = readers.read_labelled_file(path, data.text_cols, None)
        return list(texts)
    return list(readers.read_text_files([path]))        # a text file, or a folder of .txt files


# ---- labelled splits --------------------------------------------------------------------------------------
def labelled_splits(data: DataSpec, seed: int, valid_frac: float) -> dict[str, tuple[list[str], list[str]]]:
    """train / valid / test as (texts, labels); valid is held out of train (splits.py: stratified, seeded) when
    the data has none."""
    if data.dataset:
        if data.dataset not in download.DATASETS or download.DATASETS[data.dataset].kind == "lm":
            raise UlmfitError(f"{data.dataset!r} is not a labelled dataset; `ulmfit data list` shows the choices")
        return download.load_labelled(data.dataset, seed=seed)
    if not data.train:
        raise UlmfitError("no training data: pass --dataset NAME or --train FILE --text-col C --label-col C")
    texts, labels = [], []
    for source in data.train:
        t, y = _read_labelled(source, data)
        texts += t
        labels += y
    splits = {}
    if data.valid:
        splits["train"], splits["valid"] = (texts, labels), _read_labelled(data.valid, data)
    else:                                  # the one policy of splits.py: stratified, seeded
        if max(1, int(round(len(texts) * valid_frac))) >= len(texts):
            raise UlmfitError(f"train.valid_frac={valid_frac:g} holds out all {len(texts)} examples: no training "
                              "examples are left; lower it or pass --valid FILE")
        splits["train"], splits["valid"] = hold_out((texts, labels), valid_frac, seed)
    if data.test:
        splits["test"] = _read_labelled(data.test, data)
    return splits


def _read_labelled(source: str | Texts, data: DataSpec) -> tuple[list[str], list[str]]:
    if isinstance(source, Texts):
        if source.labels is None:
            raise UlmfitError(f"the {source.split} texts have no labels; pass (texts, labels) for a classifier")
        return list(source.texts), list(source.labels)
    # no per-file class check: a valid or test file may hold one class, and so may each of several train files;
    # `classify` checks that the training labels, all files together, hold two classes or more
    texts, labels = readers.read_labelled_file(Path(source), data.text_cols, data.label_col, need_two_classes=False)
    return list(texts), [str(y) for y in labels]
