"""data/ layer, the registered datasets' own archive formats (the readers `registry.DATASETS[name].reader` calls).

Each reader takes the folder `download.fetch` returned and gives {split: texts} for a language-model corpus or
{split: (texts, labels)} for a labelled one. The user's own files are readers.py's.
"""
from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import UlmfitError

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
    the upstream archive `archive`: a tarball of 8-bit (cp1252) text, decoded as such, or a zip of UTF-8 text."""
    texts, labels = [], []
    for label, names in files.items():
        found = [folder / n for n in names if (folder / n).is_file()]
        if found:
            text = read_utf8(found[0])
        elif archive.endswith(".zip"):               # NLTK's packaging (SUBJ): already UTF-8
            import zipfile
            with zipfile.ZipFile(folder / archive) as z:
                text = z.read(members[label]).decode("utf-8")
        else:
            import tarfile
            with tarfile.open(folder / archive) as tar:
                text = tar.extractfile(members[label]).read().decode("cp1252", errors="replace")
        lines = [s for s in (line.strip() for line in text.split("\n")) if s]
        texts += lines
        labels += [label] * len(lines)
    return {"train": (texts, labels)}


# ---- wikipedia_2015: 65M words of raw English Wikipedia (a WikiText-103 stand-in for LM pretraining) -----------
WIKI_REMOVED = ("American Beauty (1999 film)",)     # also in WikiText's valid/test split: never pretrain on it
WIKI_MIN_WORDS = 50
WIKI_VALID_EVERY = 250      # document k is validation when k % 250 == 125: ~105 whole articles, spread over shards


class WikiDocuments:
    """wikipedia_2015 as a re-iterable stream of documents (title line, then one paragraph per line), read from
    either form of the corpus and never held in memory: the mirror's 4 gzip shards (documents separated by one
    blank line) or the upstream WikiExtractor files (`<doc ...>` blocks), which are processed on the fly as the
    mirror was made. Both forms give the same 26,284 documents, byte for byte, once each line is stripped of the
    whitespace at its ends and whitespace-only lines are dropped, which is what this reader does for both
    (benchmarks/results/wikipedia_2015.txt). `part` picks "train", "valid" (every WIKI_VALID_EVERY-th document, offset by half) or
    "all"."""

    def __init__(self, files: Sequence[Path], part: str = "all", upstream: bool = False):
        if part not in ("train", "valid", "all"):
            raise ValueError(part)
        self.files, self.part, self.upstream = list(files), part, upstream

    def _all(self):
        for path in self.files:
            if self.upstream:
                yield from wikiextractor_documents(_open_text(path))
            else:
                with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
                    doc: list[str] = []
                    for raw in f:
                        line = raw.strip()      # as the upstream path: whitespace at line ends is not text
                        if line:
                            doc.append(line)
                        elif raw == "\n" and doc:      # one empty line ends a document (a " " line does not)
                            yield "\n".join(doc)
                            doc = []
                    if doc:
                        yield "\n".join(doc)

    def __iter__(self):
        half = WIKI_VALID_EVERY // 2
        for k, doc in enumerate(self._all()):
            is_valid = k % WIKI_VALID_EVERY == half
            if self.part == "all" or (self.part == "valid") == is_valid:
                yield doc


def _open_text(path: Path):
    with open(path, encoding="utf-8", newline="\n") as f:
        yield from f


def wikiextractor_documents(lines: Iterable[str]):
    """WikiExtractor output (`<doc id=.. url=.. title="T">`, the title line, paragraphs, `</doc>`) -> documents
    as the mirror holds them: the title line first, then the paragraphs; blank lines dropped, and documents whose
    paragraphs hold fewer than WIKI_MIN_WORDS words (the title not counted) and the WIKI_REMOVED articles left out."""
    doc: list[str] | None = None
    title = None
    for raw in lines:
        line = raw.rstrip("\n")
        if line.startswith("<doc ") and line.endswith(">"):
            start = line.find(' title="')
            title = line[start + 8:-2] if start >= 0 else None
            doc = []
        elif line == "</doc>":
            if doc and title not in WIKI_REMOVED and sum(len(s.split()) for s in doc[1:]) >= WIKI_MIN_WORDS:
                yield "\n".join(doc)
            doc = None
        elif doc is not None and line.strip():
            doc.append(line.strip())          # the first line is the title, as WikiExtractor writes it


def read_wikipedia_2015(folder: Path) -> dict:
    """{"train", "valid"} -> `WikiDocuments` streams (no test split: pretraining data is never scored; the LMs
    are compared on WikiText-2's test split)."""
    shards = sorted(folder.glob("wiki-*.txt.gz"))
    upstream = not shards
    files = shards or sorted(p for p in folder.glob("*_wiki_*") if p.is_file())
    if not files:
        raise UlmfitError(f"{folder} holds neither the mirror's wiki-*.txt.gz shards nor the upstream files")
    return {part: WikiDocuments(files, part, upstream) for part in ("train", "valid")}


def read_tweeteval(folder: Path) -> dict:
    """TweetEval's official train / val / test: one tweet per line in `{split}_text.txt`, its label id on the
    same line of `{split}_labels.txt`, named by `mapping.txt` ("0<TAB>name"). Tweets are stripped of the space
    every line ends with."""
    def lines(name: str) -> list[str]:
        path = folder / f"{name}.gz" if (folder / f"{name}.gz").is_file() else folder / name
        return read_utf8(path).split("\n")
    names = dict(line.split("\t", 1) for line in lines("mapping.txt") if line.strip())
    out = {}
    for split, ours in (("train", "train"), ("val", "valid"), ("test", "test")):
        texts = lines(f"{split}_text.txt")
        labels = [s.strip() for s in lines(f"{split}_labels.txt")]
        if texts and not texts[-1] and labels and not labels[-1]:
            texts, labels = texts[:-1], labels[:-1]                # the final newline
        if len(texts) != len(labels):
            raise UlmfitError(f"{folder}: {split}_text.txt has {len(texts)} lines but {split}_labels.txt "
                              f"{len(labels)}")
        out[ours] = ([t.strip() for t in texts], [names[y] for y in labels])
    return out


def read_20newsgroups(folder: Path) -> dict:
    """20 Newsgroups bydate, official train / test: the mirror's `label,id,text` CSV shards, or the upstream
    `20news-bydate.tar.gz` (one post per file, decoded as Latin-1 as scikit-learn does). Sorted by label, id."""
    out = {}
    for split in ("train", "test"):
        rows = []
        shards = sorted(folder.glob(f"{split}-*.csv.gz"))
        if shards:
            for shard in shards:
                with gzip.open(shard, "rt", encoding="utf-8", newline="") as f:
                    rows += [(r["label"], int(r["id"]), r["text"]) for r in csv.DictReader(f)]
        else:
            import re
            import tarfile
            pattern = re.compile(rf"20news-bydate-{split}/([^/]+)/(\d+)$")
            with tarfile.open(folder / "20news-bydate.tar.gz", "r:gz") as tar:
                for member in tar:
                    m = pattern.match(member.name)
                    if m and member.isfile():
                        rows.append((m.group(1), int(m.group(2)),
                                     tar.extractfile(member).read().decode("latin-1")))
        rows.sort(key=lambda r: r[:2])
        out[split] = ([r[2] for r in rows], [r[0] for r in rows])
    return out
