"""text/ layer, first file: text -> sub-word ids.

ULMFiT §3 uses fastai's word tokenizer with pre-rules (xxmaj, xxup, xxrep, xxwrep, HTML fixes); fastai later
moved to SentencePiece (Kudo & Richardson 2018), which we use here: a unigram (default), BPE or word model
trained on the corpus, with fixed special ids pad=0 unk=1 bos=2 eos=3 and the pre-rule markers as single
user-defined pieces. A document is BOS + pieces(line1) + EOS + pieces(line2) + EOS + ... (EOS = end of line;
lines are `doc.split("\\n")` after the pre-rules, blank ones included, so HTML breaks become EOS too).

A whole corpus is numericalised into memory-mapped arrays by `Tokenizer.encode_corpus`, which hands the
tokenizer to `corpus.py` (the on-disk format and the worker processes; it calls back `encode_documents`).
"""
from __future__ import annotations

import hashlib
import html
import io
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import sentencepiece as spm

from ..config import BOS_ID, EOS_ID, PAD_ID, UNK_ID, TokenizerConfig
from .corpus import write_corpus
from ..errors import UlmfitError
from ..files import atomic_write_bytes

# ---- fastai-style pre-rules -------------------------------------------------------------------------------
# after fastai.text.core: fix_html, replace_rep, replace_wrep, replace_all_caps, replace_maj
MARKERS = ("xxmaj", "xxup", "xxrep", "xxwrep", "xxunk")
# The leading "▁" (SentencePiece's space) makes " xxmaj" one piece instead of two ("▁" + "xxmaj").
USER_SYMBOLS = tuple("\u2581" + m for m in MARKERS)

_HTML = (("<br />", "\n"), ("<br/>", "\n"), ("<br>", "\n"), ("\\n", "\n"), ('\\"', '"'), ("<unk>", " xxunk "))
_WIKI = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))      # WikiText's escaped separators
# 4+ of the same non-digit char (fastai uses 3+, which also rewrites "1000" and "..."; both read badly).
_RE_REP = re.compile(r"([^\s\d])\1{3,}")
# a word followed by 2+ copies of itself on the same line ("very very very" -> xxwrep 3 very)
_RE_WREP = re.compile(r"(?<!\S)(\w+)((?:[^\S\n]+\1(?!\S)){2,})")
_RE_CAP = re.compile(r"(?<!\S)[A-ZÀ-ÖØ-Þ]\S*")                 # tokens that start with a capital
_RE_SPACES = re.compile(r"[^\S\n]{2,}")


def _case(m: re.Match) -> str:
    # str methods, not per-character loops: this runs for every capitalised token (~15% of WikiText).
    w = m.group(0)
    rest = w[1:]
    if rest == rest.lower():
        return f"xxmaj {w.lower()}"                              # Capitalised word (or a single capital)
    if w.isupper():
        return f"xxup {w.lower()}"                               # ALL-CAPS word (2+ capitals)
    return w                                                     # mixed case (McDonald): leave it alone


def apply_rules(text: str) -> str:
    """fastai's pre-rules: HTML/WikiText fixes, then the xxrep, xxwrep, xxup, xxmaj markers (§3, fastai)."""
    for old, new in _HTML:
        if old in text:
            text = text.replace(old, new)
    if "&" in text:
        text = html.unescape(text)
    if "@" in text:
        for old, new in _WIKI:
            text = text.replace(old, new)
    text = _RE_REP.sub(lambda m: f" xxrep {len(m.group(0))} {m.group(1)} ", text)
    text = _RE_WREP.sub(lambda m: f"xxwrep {len(m.group(0).split())} {m.group(1)}", text)
    text = _RE_CAP.sub(_case, text)
    return _RE_SPACES.sub(" ", text)


_UNDO_MAJ = re.compile(r"xxmaj\s*(\S)")
_UNDO_UP = re.compile(r"xxup\s*(\S+)")
_UNDO_WREP = re.compile(r"xxwrep\s*(\d+)\s*(\S+)")
_UNDO_REP = re.compile(r"xxrep\s*(\d+)\s*(\S)")


def undo_rules(text: str) -> str:
    """Invert `apply_rules` as far as it can be: markers -> case and repetitions (in the reverse order)."""
    text = _UNDO_UP.sub(lambda m: m.group(1).upper(), text)
    text = _UNDO_MAJ.sub(lambda m: m.group(1).upper(), text)
    text = _UNDO_WREP.sub(lambda m: " ".join([m.group(2)] * min(int(m.group(1)), 1000)), text)
    text = _UNDO_REP.sub(lambda m: m.group(2) * min(int(m.group(1)), 1000), text)
    return text.replace("xxunk", "<unk>")


class Tokenizer:
    """A trained SentencePiece model plus the pre-rules switch (inferred on load from the marker pieces)."""

    def __init__(self, model_path: Path):
        self.model_path = Path(model_path)
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(self.model_path))
        except (OSError, RuntimeError) as e:
            raise UlmfitError(f"cannot read tokenizer model {self.model_path}: {e}") from None
        ids = (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id())
        if ids != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise UlmfitError(f"{self.model_path} has special ids {ids}, expected (0, 1, 2, 3): "
                              "not an ulmfit tokenizer")
        self.vocab_size = self.sp.get_piece_size()
        self.pre_rules = self.sp.piece_to_id(USER_SYMBOLS[0]) != UNK_ID

    # ---- training and files --------------------------------------------------------------------------------
    @classmethod
    def train(cls, documents: Iterable[str], config: TokenizerConfig, out_dir: Path) -> "Tokenizer":
        """Train SentencePiece on `documents` (streamed, no temp file); writes tokenizer.model + vocab.txt."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        n_lines = [0]

        def sentences() -> Iterator[str]:
            for doc in documents:
                for line in (apply_rules(doc) if config.pre_rules else doc).split("\n"):
                    line = line.strip()
                    if line:
                        n_lines[0] += 1
                        yield line

        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=sentences(), model_writer=model, vocab_size=config.vocab_size,
                model_type=config.model_type, character_coverage=config.character_coverage,
                pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
                user_defined_symbols=list(USER_SYMBOLS) if config.pre_rules else [],
                normalization_rule_name="nmt_nfkc_cf" if config.lowercase else "nmt_nfkc",
                hard_vocab_limit=False,          # a small corpus gives a smaller vocab instead of failing
                input_sentence_size=config.max_sentences, shuffle_input_sentence=True,
                max_sentence_length=1 << 16, num_threads=os.cpu_count() or 1, minloglevel=2)
        except RuntimeError as e:
            if n_lines[0] == 0:
                raise UlmfitError("no text to train the tokenizer on: every document is empty") from None
            msg = str(e).splitlines()[0]
            need = re.search(r"smaller than required_chars\. \d+ vs (\d+)", msg)
            if need:
                raise UlmfitError(f"tokenizer vocab_size={config.vocab_size} is too small for this corpus: "
                                  f"it needs at least {need.group(1)} (special tokens + characters); "
                                  "raise vocab_size") from None
            raise UlmfitError(f"SentencePiece training failed: {msg}") from None
        atomic_write_bytes(out_dir / "tokenizer.model", model.getvalue())
        tok = cls(out_dir / "tokenizer.model")
        tok._write_vocab(out_dir / "vocab.txt")
        if tok.vocab_size < config.vocab_size:
            warnings.warn(f"the corpus only supports {tok.vocab_size} pieces; vocabulary shrunk from "
                          f"{config.vocab_size} to {tok.vocab_size}", stacklevel=2)
        return tok

    @classmethod
    def load(cls, out_dir_or_model_path) -> "Tokenizer":
        """Load `<dir>/tokenizer.model` (or a .model path); UlmfitError if it is missing or corrupt."""
        path = Path(out_dir_or_model_path)
        if path.is_dir():
            path = path / "tokenizer.model"
        if not path.is_file():
            raise UlmfitError(f"no tokenizer at {path}: train one first (ulmfit tokenizer ...)")
        return cls(path)

    def save(self, out_dir) -> None:
        """Copy tokenizer.model and vocab.txt into out_dir."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if (out_dir / "tokenizer.model").resolve() != self.model_path.resolve():
            shutil.copyfile(self.model_path, out_dir / "tokenizer.model")
        self._write_vocab(out_dir / "vocab.txt")

    def _write_vocab(self, path: Path) -> None:
        pieces = (self.sp.id_to_piece(i) for i in range(self.vocab_size))    # line i = id i
        atomic_write_bytes(path, ("\n".join(pieces) + "\n").encode("utf-8"))

    def id_to_piece(self, i: int) -> str:
        return self.sp.id_to_piece(int(i))

    def surface(self, i: int) -> str:
        """How token `i` reads inside running text ("▁film" -> " film"), for showing tokens to people."""
        return self.sp.id_to_piece(int(i)).replace("\u2581", " ")

    def fingerprint(self) -> str:
        """sha256 of the model file: checkpoints store it to catch a mismatched tokenizer."""
        return hashlib.sha256(self.model_path.read_bytes()).hexdigest()

    # ---- encoding ------------------------------------------------------------------------------------------
    def _prepare(self, text: str) -> str:
        return apply_rules(text) if self.pre_rules else text

    def encode(self, text: str) -> list[int]:
        """Ids for one text (newlines count as spaces), without BOS/EOS."""
        return self.sp.encode(self._prepare(text).replace("\n", " "))

    def encode_document(self, doc: str) -> list[int]:
        """BOS + pieces of each line of `doc` (blank lines too), each followed by EOS (the contract)."""
        return self.encode_documents([doc])[0]

    def encode_documents(self, docs: list[str]) -> list[list[int]]:
        """`encode_document` of each of `docs`, in one SentencePiece call (what a corpus chunk is encoded with)."""
        return encode_docs(self.sp, docs, self.pre_rules)

    def decode(self, ids) -> str:
        """Text back from ids: drops pad/bos, eos -> newline, undoes the pre-rules."""
        ids = np.asarray(ids).ravel().tolist()
        lines, line = [], []
        for i in ids:
            if i == EOS_ID:
                lines.append(line)
                line = []
            elif i not in (PAD_ID, BOS_ID):
                line.append(i)
        if line or not lines:
            lines.append(line)
        text = "\n".join(self.sp.decode(piece_ids) for piece_ids in lines)
        return undo_rules(text) if self.pre_rules else text

    def encode_corpus(self, documents: Iterable[str], prefix: Path, processes: int = 1,
                      desc: str = "tokenize", chunk_chars: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
        """Numericalise `documents` into <prefix>.ids.npy/.offsets.npy; return memmaps (see `corpus.write_corpus`)."""
        return write_corpus(self, documents, prefix, processes, desc, chunk_chars)


# ---- every tokenizer kind: SentencePiece (above) or fastai's spaCy words (fastai_tokenizer.py) -------------
def load_tokenizer(path):
    """The tokenizer of a run dir (or a tokenizer dir or file), whichever kind it holds."""
    from .fastai_tokenizer import VOCAB_FILE, FastaiTokenizer
    path = Path(path)
    if path.name == VOCAB_FILE or (path.is_dir() and (path / VOCAB_FILE).is_file()):
        return FastaiTokenizer.load(path)
    return Tokenizer.load(path)


def train_tokenizer(documents: Iterable[str], config: TokenizerConfig, out_dir: Path):
    """Train the kind `config.model_type` names: SentencePiece (unigram, bpe, word) or fastai's word vocabulary."""
    if config.model_type == "fastai":
        from .fastai_tokenizer import FastaiTokenizer
        return FastaiTokenizer.train(documents, config, out_dir)
    return Tokenizer.train(documents, config, out_dir)


def tokenizer_files(run_dir: Path) -> list[Path]:
    """The files that hold a run dir's tokenizer, of whichever kind (for checks that a run is complete)."""
    from .fastai_tokenizer import RULES_FILE, VOCAB_FILE
    run_dir = Path(run_dir)
    if (run_dir / VOCAB_FILE).is_file():      # the rule record exists for fastai_v1 only (absent = v2)
        return [run_dir / VOCAB_FILE] + [run_dir / RULES_FILE] * (run_dir / RULES_FILE).is_file()
    return [run_dir / "tokenizer.model"]


def encode_docs(sp, docs: list[str], pre_rules: bool) -> list[list[int]]:
    """Each document as BOS + pieces(line) + EOS per line: the contract every encoded corpus follows."""
    per_doc = []
    for doc in docs:
        text = apply_rules(doc) if pre_rules else doc
        # every line gets its EOS, blank ones too: the contract's per-word count (WikiText: words + lines)
        per_doc.append([line.strip() for line in text.split("\n")])
    flat = sp.encode([line for lines in per_doc for line in lines], num_threads=1)    # one C++ call per chunk
    out, k = [], 0
    for lines in per_doc:
        ids = [BOS_ID]
        for pieces in flat[k:k + len(lines)]:
            ids += pieces
            ids.append(EOS_ID)
        k += len(lines)
        out.append(ids)
    return out
