"""Tests for ulmfit/text/fastai_tokenizer.py: fastai v2's rules on spaCy tokens, its vocabulary, files, pickling.

They need spaCy but not fastai: the fastai token lists below were generated once by real fastai 2.8.12 (with
spaCy 3.8.18); tests/test_fastai_tokenizer_agreement.py compares the two live where fastai is installed.
"""
import json
import pickle
import sys
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("spacy", reason="the fastai tokenizer kind needs spaCy (pip install 'spacy>=3,<4')")

from ulmfit.config import TokenizerConfig  # noqa: E402
from ulmfit.errors import UlmfitError  # noqa: E402
from ulmfit.text.fastai_tokenizer import FASTAI_SPECIALS, VOCAB_FILE, FastaiTokenizer, make_vocab  # noqa: E402

DOCS = ["The film was good . The plot was good !", "the film was bad", "A film , a plot , a song .",
        "it was good good good", "<br />the END"] * 3


@pytest.fixture(scope="module")
def bare() -> FastaiTokenizer:
    """Only the special tokens: enough to look at tokens (the vocabulary plays no part in them)."""
    return FastaiTokenizer(list(FASTAI_SPECIALS))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> FastaiTokenizer:
    return FastaiTokenizer.train(DOCS, TokenizerConfig(vocab_size=100, min_freq=3),
                                 tmp_path_factory.mktemp("fastai"))


class TestRules:
    def test_capitalised_word_gets_xxmaj(self, bare):
        """A capitalised word becomes xxmaj + the word in lower case."""
        assert bare.tokenize("Hello there") == ["xxbos", "xxmaj", "hello", "there"]

    def test_all_caps_word_gets_xxup(self, bare):
        """A word in capitals becomes xxup + the word in lower case; a single capital is only lower-cased."""
        assert bare.tokenize("so GOOD I said") == ["xxbos", "so", "xxup", "good", "i", "said"]

    def test_character_repetition_gets_xxrep(self, bare):
        """Three or more of one character become xxrep n c."""
        assert bare.tokenize("wow!!!!") == ["xxbos", "wow", "xxrep", "4", "!"]

    def test_word_repetition_gets_xxwrep(self, bare):
        """Three or more of one word become xxwrep n w."""
        assert bare.tokenize("so so so good") == ["xxbos", "xxwrep", "3", "so", "good"]

    def test_html_breaks_become_newline_tokens(self, bare):
        """<br /> becomes a newline, which spaCy keeps as a whitespace token."""
        assert bare.tokenize("bad<br /><br />good") == ["xxbos", "bad", "\n\n", "good"]

    def test_spaces_around_slash_and_hash(self, bare):
        """/ and # are split off their words."""
        assert bare.tokenize("and/or #1") == ["xxbos", "and", "/", "or", "#", "1"]

    def test_runs_of_spaces_collapse(self, bare):
        """Several spaces between words leave no whitespace token behind."""
        assert bare.tokenize("a    b") == ["xxbos", "a", "b"]

    def test_xxbos_first_and_no_xxeos(self, bare):
        """Every document starts with xxbos, even an empty one, and gets no xxeos."""
        assert bare.tokenize("") == ["xxbos"] and bare.tokenize("end .")[-1] == "."

    # Generated once with fastai 2.8.12 and spaCy 3.8.18:
    #   from fastai.text.all import tokenize_df; import pandas as pd
    #   frame, _ = tokenize_df(pd.DataFrame({"text": texts}), "text", n_workers=0); print(list(frame["text"]))
    @pytest.mark.parametrize("text, expected", [
        ("Hello World!  This is   a TEST.\n\nNew para \n here <br /><br />x",
         ["xxbos", "xxmaj", "hello", "xxmaj", "world", "!", "xxmaj", "this", "is", "a", "xxup", "test", ".",
          "\n\n", "xxmaj", "new", "para", "\n\u2581", "here", "\n\n", "x"]),
        ("wow!!!! so so so good, 1000 ... &amp; &#39;hi&quot;",
         ["xxbos", "wow", "xxrep", "4", "!", "xxwrep", "3", "so", "good", ",", "1", "xxrep", "3", "0",
          "\u2026", "&", "&", "&", "'", "hi", "&", "'"]),
        ("a/b #tag \\ c \t d", ["xxbos", "a", "/", "b", "#", "tag", "\\", "c", "\t\u2581", "d"]),
        ("I am OK. McDonald's USA", ["xxbos", "i", "am", "xxup", "ok", ".", "mcdonald", "'s", "xxup", "usa"]),
        ("(xxbos) <unk> \u00c9 \u00c9mile \u00c9COLE",
         ["xxbos", "(", "xxbos", ")", "xxunk", "\u00e9", "\u00e9mile", "\u00e9cole"]),
        (" = The 1 @,@ 000 km @-@ long river , 3 @.@ 5 m = \n",
         ["xxbos", "=", "xxmaj", "the", "1", "@,@", "xxrep", "3", "0", "km", "-", "long", "river", ",", "3.5",
          "m", "="]),
    ])
    def test_matches_fastai(self, bare, text, expected):
        """Token lists pinned from real fastai 2.8.12 for texts that exercise every rule and whitespace."""
        assert bare.tokenize(text) == expected


class TestVocab:
    def test_specials_first_in_fastai_order(self, trained):
        """The 9 special tokens take ids 0..8: xxunk=0, xxpad=1, xxbos=2, xxeos=3, ..."""
        assert tuple(trained.vocab[:9]) == FASTAI_SPECIALS
        assert [trained.id_to_piece(i) for i in (0, 1, 2, 3)] == ["xxunk", "xxpad", "xxbos", "xxeos"]

    def test_min_freq_and_order_by_count(self):
        """Words seen < min_freq times are left out; the rest follow by count, ties first seen first."""
        vocab = make_vocab(Counter({"b": 3, "a": 5, "c": 3, "rare": 2}), min_freq=3, max_vocab=100)
        assert vocab[9:12] == ["a", "b", "c"] and "rare" not in vocab

    def test_padded_to_multiple_of_eight_with_xxfake(self):
        """xxfake fills up to a multiple of 8; a vocabulary already at one still gets 8 (as fastai does)."""
        assert make_vocab(Counter({"a": 5}), 3, 100)[10:] == ["xxfake"] * 6
        full = make_vocab(Counter({w: 9 for w in "abcdefg"}), 3, 16)
        assert len(full) == 24 and full[16:] == ["xxfake"] * 8

    def test_max_vocab_counts_the_specials(self):
        """max_vocab bounds specials + words before the filler: the least frequent words are cut."""
        vocab = make_vocab(Counter({w: 10 - i for i, w in enumerate("abc")}), 1, 10)
        assert vocab[9:10] == ["a"] and "b" not in vocab

    def test_unknown_word_is_id_zero(self, trained):
        """A word outside the vocabulary (or fastai's filler) encodes as xxunk, id 0."""
        assert trained.encode("zebra xxfake film") == [0, 0, trained.vocab.index("film")]

    def test_encode_document_starts_with_bos(self, trained):
        """encode_document puts xxbos (2) first; encode leaves it out."""
        assert trained.encode_document("film") == [2] + trained.encode("film")

    def test_decode_undoes_markers(self, trained):
        """decode drops xxbos and turns xxmaj/xxup/xxwrep back into case and repeats."""
        assert trained.decode(trained.encode_document("The END good good good")) == "The END good good good"


class TestFiles:
    def test_save_load_round_trip(self, trained, tmp_path):
        """A saved vocabulary loads back equal, with the same fingerprint."""
        trained.save(tmp_path)
        again = FastaiTokenizer.load(tmp_path)
        assert again.vocab == trained.vocab and again.fingerprint() == trained.fingerprint()

    def test_fingerprint_is_sha256_of_the_file(self, trained, tmp_path):
        """The fingerprint is the sha256 of the bytes save() writes."""
        import hashlib
        trained.save(tmp_path)
        assert trained.fingerprint() == hashlib.sha256((tmp_path / VOCAB_FILE).read_bytes()).hexdigest()

    @pytest.mark.parametrize("content", ["[\"xxunk\", ", json.dumps(["a", "b"]), json.dumps({"xxunk": 0}),
                                         json.dumps(list(FASTAI_SPECIALS) + ["a", "a"])])
    def test_bad_vocab_file_is_refused_in_one_line(self, tmp_path, content):
        """Corrupt JSON, a non-list, missing specials, a repeated word: a one-line UlmfitError naming the file."""
        (tmp_path / VOCAB_FILE).write_text(content)
        with pytest.raises(UlmfitError) as err:
            FastaiTokenizer.load(tmp_path)
        assert VOCAB_FILE in str(err.value) and "\n" not in str(err.value)

    def test_missing_vocab_file(self, tmp_path):
        """Loading from a dir without the file is a UlmfitError."""
        with pytest.raises(UlmfitError, match="no fastai vocabulary"):
            FastaiTokenizer.load(tmp_path)


class TestProcesses:
    def test_pickles(self, trained):
        """An unpickled tokenizer (spaCy left behind, rebuilt on use) encodes the same."""
        again = pickle.loads(pickle.dumps(trained))
        assert again.encode_documents(DOCS) == trained.encode_documents(DOCS)

    def test_encode_corpus_two_processes_equals_one(self, trained, tmp_path):
        """Worker processes give the same ids and offsets as the parent."""
        one = trained.encode_corpus(DOCS, tmp_path / "p1", processes=1)
        two = trained.encode_corpus(DOCS, tmp_path / "p2", processes=2, chunk_chars=60)
        assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])

    def test_missing_spacy_names_the_extra(self, monkeypatch):
        """Without spaCy, tokenizing raises one line that says which extra to install."""
        monkeypatch.setitem(sys.modules, "spacy", None)            # makes `import spacy` raise ImportError
        with pytest.raises(UlmfitError) as err:
            FastaiTokenizer(list(FASTAI_SPECIALS)).tokenize("hello")
        assert str(err.value) == "fastai-exact tokenization needs spaCy: pip install 'spacy>=3,<4' (the [fastai] extra)"
