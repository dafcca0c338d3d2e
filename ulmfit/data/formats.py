"""data/ layer, the registered datasets' own archive formats (the readers `registry.DATASETS[name].reader` calls).

Each reader takes the folder `download.fetch` returned and gives {split: texts} for a language-model corpus or
{split: (texts, labels)} for a labelled one. The user's own files are readers.py's.
"""
from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

from .readers import read_utf8

# Each reader takes the folder `download.fetch` returned and accepts both forms: the mirror files
# (../shared/data/<name>/, recompressed copies) and the upstream release (archives, as downloaded).


class ArticleStream:
    """WikiText split as a re-iterable stream of articles (a new article starts at a top-level ` = Title = `),
    each with its non-empty lines stripped; the file is re-opened on every pass, never held in memory."""

    def __init__(self, path: Path, member: str | None = None):
        self.path, self.member = path, member

    def _lines(self):
        import zipfile
        if self.member is None:
            with gzip.open(self.path, "rt", encoding="utf-8") as f:
                yield from f
        else:
            with zipfile.ZipFile(self.path) as z, z.open(self.member) as raw:
                yield from io.TextIOWrapper(raw, encoding="utf-8")

    def __iter__(self):
        doc: list[str] = []
        for line in self._lines():
            s = line.strip()
            if s.startswith("= ") and s.endswith(" =") and not s.startswith("= ="):
                if doc:
                    yield "\n".join(doc)
                doc = []
            doc.append(s)     # blank lines too: each is an end-of-line in the per-word count (217,646 valid)
        if doc:
            yield "\n".join(doc)


def read_wikitext(folder: Path, version: str, lazy: bool = False) -> dict:
    """{"train", "valid", "test"} -> articles, from wiki.*.tokens.gz (mirror) or the upstream zip."""
    out = {}
    for split in ("train", "valid", "test"):
        if (folder / f"wiki.{split}.tokens.gz").is_file():
            stream = ArticleStream(folder / f"wiki.{split}.tokens.gz")
        else:
            stream = ArticleStream(folder / f"wikitext-{version}-v1.zip",
                                   f"wikitext-{version}/wiki.{split}.tokens")
        out[split] = stream if lazy else list(stream)
    return out


def read_ptb(folder: Path) -> dict:
    """PTB has no document boundaries: each split is one document, one sentence per line (EOS after each)."""
    out = {}
    for split in ("train", "valid", "test"):
        name = f"ptb.{split}.txt"
        text = read_utf8(folder / (name + ".gz") if (folder / (name + ".gz")).is_file() else folder / name)
        out[split] = ["\n".join(s for s in (line.strip() for line in text.split("\n")) if s)]
    return out


def read_imdb(folder: Path, ratings: bool = False) -> dict:
    """{"train", "test"} -> (texts, "neg"/"pos"), {"unsup"} -> (50k texts, "unsup"); sorted by label, id.
    With `ratings`, each split is (texts, labels, star ratings) (1-4 neg, 7-10 pos, 0 unsup)."""
    import lzma as _lzma
    rows: dict[str, list] = {"train": [], "test": [], "unsup": []}
    if (folder / "train.csv.xz").is_file():
        for split in rows:
            with _lzma.open(folder / f"{split}.csv.xz", "rt", encoding="utf-8", newline="") as f:
                rows[split] = [(r["label"], int(r["id"]), r["text"], int(r["rating"])) for r in csv.DictReader(f)]
    else:
        import re
        import tarfile
        pattern = re.compile(r"aclImdb/(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt$")
        with tarfile.open(folder / "aclImdb_v1.tar.gz", "r:gz") as tar:
            for member in tar:                 # one sequential pass over the 100k files, nothing extracted
                m = pattern.match(member.name)
                if m:
                    split = "unsup" if m.group(2) == "unsup" else m.group(1)
                    text = tar.extractfile(member).read().decode("utf-8")
                    rows[split].append((m.group(2), int(m.group(3)), text, int(m.group(4))))
    out = {}
    for split, r in rows.items():
        r.sort(key=lambda row: row[:2])
        out[split] = ([row[2] for row in r], [row[0] for row in r]) + (([row[3] for row in r],) if ratings else ())
    return out


def read_imdb_sample(folder: Path) -> dict:
    """fastai's IMDB_SAMPLE: is_valid=False -> "train" (800), True -> "test" (200); negative/positive."""
    if (folder / "texts.csv.gz").is_file():
        text = read_utf8(folder / "texts.csv.gz")
    elif (folder / "texts.csv").is_file():
        text = read_utf8(folder / "texts.csv")
    else:
        import tarfile
        with tarfile.open(folder / "imdb_sample.tgz") as tar:
            text = tar.extractfile("imdb_sample/texts.csv").read().decode("utf-8")
    out: dict = {"train": ([], []), "test": ([], [])}
    for row in csv.DictReader(io.StringIO(text, newline="")):
        texts, labels = out["test" if row["is_valid"] == "True" else "train"]
        texts.append(row["text"])
        labels.append(row["label"])
    return out


def read_line_labelled(folder: Path, files: dict[str, tuple[str, ...]], archive: str | None = None,
                       members: dict[str, str] | None = None) -> dict:
    """One text per non-empty line, labelled by its file: {"train": (texts, labels)} (no official split).
    `files` maps label -> candidate file names (first found wins); otherwise label -> `members[label]` inside
    the upstream tarball `archive`, whose 8-bit (cp1252) text is decoded as such."""
    texts, labels = [], []
    for label, names in files.items():
        found = [folder / n for n in names if (folder / n).is_file()]
        if found:
            text = read_utf8(found[0])
        else:
            import tarfile
            with tarfile.open(folder / archive) as tar:
                text = tar.extractfile(members[label]).read().decode("cp1252", errors="replace")
        lines = [s for s in (line.strip() for line in text.split("\n")) if s]
        texts += lines
        labels += [label] * len(lines)
    return {"train": (texts, labels)}
