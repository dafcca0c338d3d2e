"""text/ layer, beside `tokenizer` (the `fastai` kind): text -> word ids exactly as fastai makes them (v2; or v1,
below).

ULMFiT §3 / §4 tokenised with fastai's word pipeline; this module reproduces the default one of fastai
2.8.12 (`fastai.text.core`: `Tokenizer.from_df` -> `tokenize_df` -> `TokenizeWithRules(SpacyTokenizer())`)
token for token, so that a model or a vocabulary can be compared with fastai's:

    text --rules on the string, in fastai's order--> spaCy's blank English tokenizer --"▁" for " "--> tokens
         fix_html, replace_rep, replace_wrep, spec_add_spaces, rm_useless_spaces,
         replace_all_caps, replace_maj, lowercase (which also puts "xxbos " in front)

Whitespace is not dropped: spaCy keeps a run of whitespace other than one plain space as a token, so a blank
line gives "\\n\\n" and "\\n " gives "\\n▁" (fastai's post-rule writes spaces inside a token as "▁").
The vocabulary follows fastai's `make_vocab` (text/data.py): the 9 special tokens first (xxunk=0, xxpad=1,
xxbos=2, xxeos=3, ...), then the words seen >= min_freq times by count (ties: first seen first), cut to
max_vocab, then 1 to 8 "xxfake" entries to reach a multiple of 8. Unknown words map to xxunk.

Agreement with fastai rests on the same spaCy rules: it is checked against fastai 2.8.12 with spaCy 3.8
(tests/test_fastai_tokenizer_agreement.py, benchmarks/fastai_tokenizer_agreement.py); another spaCy version
may split a few words differently. spaCy is an optional dependency, imported on first use.

A second rule set, `fastai_v1`, is fastai 1.0.53's (fastai/text/transform.py), the version that trained the
published WikiText-103 LM (wt103-fwd/bwd, June 2019); imports of that model select it (fastai_interop.py):

    "xxbos " + text --fix_html, replace_rep, replace_wrep, spec_add_spaces, rm_useless_spaces--> spaCy
         --replace_all_caps, deal_caps (per spaCy token)--> tokens

What differs from v2: repeats are marked from 4 (v2: 3), so "1999" stays a word; xxwrep counts a word *with the
separator after it* repeated 4+ times; xxup/xxmaj are decided per spaCy token ("NASA's" -> xxup nasa 's, "I'm"
gets no xxmaj); "..." is kept, " @,@ " becomes ","; spaces go around "\\n" (v2: around "\\"); no "▁" and
no strip. Checked against fastai 1.0.53 itself on 1,453 real texts, both on spaCy 3.8.18: all identical
(tests/test_fastai1_tokenizer.py, benchmarks/results/fastai1_tokenizer_agreement.txt). fastai 1.0.53 ran on spaCy 2
in 2019; against it on spaCy 2.3.9, 1,429 of the 1,453 agree: spaCy 3 splits "14-year" into 14 - year.
The rule set is stored with the vocabulary (`fastai_rules.json` beside it; absent = v2, as every older run dir).
The rules themselves, both sets, are in fastai_rules.py (string -> string, or token list -> token list: no spaCy).
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm.auto import tqdm

from ..config import TokenizerConfig
from .corpus import write_corpus
from .fastai_rules import (apply_rules, apply_rules_v1, check_rules, deal_caps_v1, describe_rules,
                           replace_all_caps_v1)
from ..errors import UlmfitError
from ..files import atomic_write_bytes

FASTAI_SPECIALS = ("xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxrep", "xxwrep", "xxup", "xxmaj")
VOCAB_FILE = "fastai_vocab.json"
RULES_FILE = "fastai_rules.json"      # which rule set the vocabulary was made with; written only for fastai_v1
FAKE = "xxfake"                       # fastai's filler that rounds the vocabulary up to a multiple of 8

def _blank_english():
    """spaCy's rule-based English tokenizer, the special tokens kept whole (as fastai's SpacyTokenizer)."""
    try:
        import spacy
        from spacy.symbols import ORTH
    except ImportError:
        raise UlmfitError("fastai-exact tokenization needs spaCy: pip install 'spacy>=3,<4' (the [fastai] extra)") from None
    nlp = spacy.blank("en")
    for special in FASTAI_SPECIALS:
        nlp.tokenizer.add_special_case(special, [{ORTH: special}])
    return nlp


def _check_vocab(vocab) -> None:
    if not isinstance(vocab, (list, tuple)) or not all(isinstance(w, str) for w in vocab):
        raise UlmfitError("a fastai vocabulary must be a JSON list of strings")
    # ids 0-3 are fixed (the model's padding row, xxbos); fastai v1 put the other five specials in another order
    missing = [w for w in FASTAI_SPECIALS[4:] if w not in vocab]
    if tuple(vocab[:4]) != FASTAI_SPECIALS[:4] or missing:
        raise UlmfitError(f"a fastai vocabulary must start with {' '.join(FASTAI_SPECIALS[:4])} and hold "
                          f"{' '.join(FASTAI_SPECIALS[4:])}; got {vocab[:4]!r}, missing {missing!r}")  # repr: "\n"
    words = Counter(w for w in vocab if w != FAKE)         # fastai repeats only its filler
    repeated = [w for w, n in words.items() if n > 1]
    if repeated:
        raise UlmfitError(f"a fastai vocabulary must not repeat a word; {len(repeated)} do, "
                          f"e.g. {repeated[0]!r}")


def make_vocab(counts: Counter, min_freq: int, max_vocab: int) -> list[str]:
    """fastai's make_vocab: the specials, then words by count (>= min_freq), <= max_vocab, then filler."""
    vocab = [w for w, n in counts.most_common(max_vocab) if n >= min_freq and w not in FASTAI_SPECIALS]
    vocab = (list(FASTAI_SPECIALS) + vocab)[:max_vocab]
    return vocab + [FAKE] * (8 - len(vocab) % 8)           # 1..8: a multiple of 8 still gets 8 (fastai does)


class FastaiTokenizer:
    """fastai's word tokenizer and vocabulary: same tokens, same ids (v2's rules, or v1's with rules="fastai_v1")."""
    kind = "fastai"
    unk_id, pad_id, bos_id, eos_id = 0, 1, 2, 3

    def __init__(self, vocab: list[str], path: Path | None = None, rules: str = "fastai_v2"):
        _check_vocab(vocab)
        self.rules = check_rules(rules)
        self.vocab = list(vocab)
        self.vocab_size = len(self.vocab)
        self.path = None if path is None else Path(path)
        # as fastai's Numericalize, the filler has no id of its own: a literal "xxfake" in text is unknown
        self.word_to_id = {w: i for i, w in enumerate(self.vocab) if w != FAKE}
        self._nlp = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_nlp": None}         # a worker process builds its own spaCy pipeline

    # ---- training and files -----------------------------------------------------------------------------
    @classmethod
    def train(cls, documents: Iterable[str], config: TokenizerConfig, out_dir: Path) -> "FastaiTokenizer":
        """Count fastai's tokens over `documents`, keep make_vocab's vocabulary; writes out_dir/VOCAB_FILE.

        config.vocab_size is fastai's max_vocab and config.min_freq its min_freq."""
        rules = check_rules(config.fastai_rules)
        nlp = _blank_english()                             # fail before reading a corpus if spaCy is missing
        counts: Counter = Counter()                        # first seen first among equal counts, as fastai's
        total = len(documents) if hasattr(documents, "__len__") else None
        for tokens in _tokenize_with(nlp, tqdm(documents, total=total, desc="fastai vocab", unit="doc",
                                               disable=None), rules):
            counts.update(tokens)
        tok = cls(make_vocab(counts, config.min_freq, config.vocab_size), rules=rules)
        tok._nlp = nlp
        tok.save(out_dir)
        return tok

    @classmethod
    def load(cls, dir_or_file) -> "FastaiTokenizer":
        """Load `<dir>/fastai_vocab.json` (or that file); UlmfitError if it is missing or not a vocabulary."""
        path = Path(dir_or_file)
        if path.is_dir():
            path = path / VOCAB_FILE
        if not path.is_file():
            raise UlmfitError(f"no fastai vocabulary at {path}: train one first (ulmfit tokenizer ...)")
        try:
            vocab = json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UlmfitError(f"{path} is not a fastai vocabulary (corrupt JSON: {e})") from None
        rules_path = path.with_name(RULES_FILE)
        try:
            rules = json.loads(rules_path.read_text(encoding="utf-8"))["rules"] if rules_path.is_file() else "fastai_v2"
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise UlmfitError(f"{rules_path} is not a fastai rule record ({type(e).__name__}: {e})") from None
        try:
            return cls(vocab, path, rules)
        except UlmfitError as e:
            raise UlmfitError(f"{path}: {e}") from None

    def _canonical_bytes(self) -> bytes:
        # one word per line keeps the file diffable; the same bytes are hashed by `fingerprint`
        return (json.dumps(self.vocab, ensure_ascii=False, indent=0) + "\n").encode("utf-8")

    def save(self, out_dir) -> None:
        """Write out_dir/fastai_vocab.json (atomically): a JSON list, index = id; and fastai_rules.json for v1."""
        self.path = Path(out_dir) / VOCAB_FILE
        rules_path = self.path.with_name(RULES_FILE)
        if self.rules == "fastai_v2":                  # v2 is what a vocabulary without a record means
            rules_path.unlink(missing_ok=True)
        else:
            atomic_write_bytes(rules_path, (json.dumps({"rules": self.rules, "describe": describe_rules(self.rules)})
                                            + "\n").encode("utf-8"))
        atomic_write_bytes(self.path, self._canonical_bytes())

    def fingerprint(self) -> str:
        """sha256 of the vocabulary file's bytes (and, for v1, the rule set's name): checkpoints store it to catch a
        mismatched tokenizer, so a v1 model whose rule record went missing is refused rather than fed v2 tokens."""
        extra = b"" if self.rules == "fastai_v2" else f"\nrules={self.rules}".encode()
        return hashlib.sha256(self._canonical_bytes() + extra).hexdigest()

    # ---- tokens and ids ---------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """fastai's tokens for one document, "xxbos" first."""
        return self.tokenize_documents([text])[0]

    def tokenize_documents(self, docs: list[str]) -> list[list[str]]:
        """`tokenize` of each of `docs`, through one batched spaCy pipe (the fast path)."""
        if self._nlp is None:
            self._nlp = _blank_english()
        return list(_tokenize_with(self._nlp, docs, self.rules))

    def encode(self, text: str) -> list[int]:
        """Ids of one text, without the leading xxbos."""
        return self.encode_document(text)[1:]

    def encode_document(self, doc: str) -> list[int]:
        """Ids of one document, xxbos first: what fastai feeds the model."""
        return self.encode_documents([doc])[0]

    def encode_documents(self, docs: list[str]) -> list[list[int]]:
        """`encode_document` of each of `docs` (what a corpus chunk is encoded with)."""
        lookup = self.word_to_id
        return [[lookup.get(t, self.unk_id) for t in tokens] for tokens in self.tokenize_documents(docs)]

    def id_to_piece(self, i: int) -> str:
        return self.vocab[i]

    def surface(self, i: int) -> str:
        """How token `i` reads inside running text: a word after a space (fastai writes spaces in tokens as "▁")."""
        return " " + self.vocab[int(i)].replace("\u2581", " ")

    def decode(self, ids) -> str:
        """Readable text: drops xxbos/xxpad, undoes xxmaj/xxup, then xxrep/xxwrep; tokens joined by spaces."""
        ids = np.asarray(ids).ravel().tolist()
        words = [self.vocab[i] for i in ids if i not in (self.bos_id, self.pad_id)]
        return " ".join(_undo_repeats(_undo_case(words))).replace("\u2581", " ")

    def encode_corpus(self, documents: Iterable[str], prefix: Path, processes: int = 1,
                      desc: str = "tokenize", chunk_chars: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
        """Numericalise `documents` into <prefix>.ids.npy/.offsets.npy; return memmaps (see write_corpus)."""
        return write_corpus(self, documents, prefix, processes, desc, chunk_chars)


def _tokenize_with(nlp, docs: Iterable[str], rules: str = "fastai_v2") -> Iterable[list[str]]:
    # the blank pipeline has no components: the tokenizer's own pipe gives nlp.pipe's Docs, minus its overhead
    if rules == "fastai_v1":
        for doc in nlp.tokenizer.pipe((apply_rules_v1(str(d)) for d in docs), batch_size=1000):
            yield deal_caps_v1(replace_all_caps_v1([t.text for t in doc]))
        return
    for doc in nlp.tokenizer.pipe((apply_rules(str(d)) for d in docs), batch_size=1000):
        yield [t.text.replace(" ", "\u2581") for t in doc]          # fastai's post-rule replace_space


def _undo_case(words: list[str]) -> list[str]:
    out, case = [], None
    for w in words:
        if w in ("xxmaj", "xxup"):
            case = w
            continue
        if case == "xxmaj":
            w = w[:1].upper() + w[1:]
        elif case == "xxup":
            w = w.upper()
        out.append(w)
        case = None
    return out


def _undo_repeats(words: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(words):
        if words[i] in ("xxrep", "xxwrep") and i + 2 < len(words) and words[i + 1].isdigit():
            n, w = min(int(words[i + 1]), 1000), words[i + 2]     # the cap keeps a corrupt count harmless
            out.append(w * n if words[i] == "xxrep" else " ".join([w] * n))
            i += 3
        else:
            out.append(words[i])
            i += 1
    return out
