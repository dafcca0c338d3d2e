"""Tests for ulmfit/text/tokenizer.py: pre-rules, SentencePiece with fixed special ids, round trips."""
import os

import numpy as np
import pytest

from ulmfit.config import BOS_ID, EOS_ID, PAD_ID, UNK_ID, TokenizerConfig
from ulmfit.errors import UlmfitError
from ulmfit.text.tokenizer import MARKERS, Tokenizer, apply_rules, undo_rules

WORDS = ("the a film movie was is good bad great terrible story actor plot we they it and but very not "
         "really river city music game song team year people world time").split()


def make_docs(n=120, seed=0) -> list[str]:
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        lines = [" ".join(rng.choice(WORDS, size=rng.integers(4, 12))) for _ in range(rng.integers(1, 4))]
        lines[0] = lines[0].capitalize() + " ."
        docs.append("\n".join(lines) + ("\nTHE END <br />Wow !!!!" if i % 7 == 0 else ""))
    return docs


SENTENCES = ["The film was GREAT , and the story was very very very good .",
             "It was a 1 @,@ 000 km @-@ long river in the city .",
             "We really liked the actor !!!! &amp; the music",
             "Bad plot <br /><br />Terrible game"]


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> Tokenizer:
    # the round-trip sentences are in the corpus so that every character has a piece (no unk)
    docs = make_docs() + SENTENCES * 3
    return Tokenizer.train(docs, TokenizerConfig(vocab_size=64), tmp_path_factory.mktemp("tok"))


def words(text: str) -> list[str]:
    return text.split()


class TestRules:
    def test_case_markers(self):
        """Capitalised -> xxmaj w, ALL-CAPS -> xxup w, mixed case untouched."""
        assert apply_rules("Hello NASA McDonald I") == "xxmaj hello xxup nasa McDonald xxmaj i"

    def test_repetitions(self):
        """4+ repeated characters -> xxrep n c; 3+ repeated words -> xxwrep n w; digits untouched."""
        assert words(apply_rules("wow !!!! 10000")) == ["wow", "xxrep", "4", "!", "10000"]
        assert words(apply_rules("very very very good")) == ["xxwrep", "3", "very", "good"]

    def test_html_and_wikitext(self):
        """HTML breaks become newlines, entities are unescaped, WikiText @-@ escapes are undone."""
        assert apply_rules("a<br />b &amp; c") == "a\nb & c"
        assert apply_rules("1 @,@ 000 km @-@ long 3 @.@ 5") == "1,000 km-long 3.5"

    @pytest.mark.parametrize("text", ["The film was GREAT and very very very good", "wow !!!! really",
                                      "McDonald said I LOVE it"])
    def test_undo_inverts(self, text):
        """undo_rules(apply_rules(t)) gives t back (up to spacing) for whitespace-separated text."""
        assert words(undo_rules(apply_rules(text))) == words(text)


class TestTraining:
    def test_special_ids_pinned(self, tok):
        """pad=0 unk=1 bos=2 eos=3, the ids every model and checkpoint rely on."""
        assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
        assert [tok.sp.id_to_piece(i) for i in range(4)] == ["<pad>", "<unk>", "<s>", "</s>"]

    def test_markers_are_single_pieces(self, tok):
        """Each pre-rule marker is one user-defined piece."""
        for marker in MARKERS:
            assert "\u2581" + marker in tok.sp.encode(f"a {marker} b", out_type=str)
            assert tok.sp.piece_to_id("\u2581" + marker) != UNK_ID

    def test_files_written(self, tok):
        """Training writes tokenizer.model and vocab.txt (one piece per id) and nothing else."""
        folder = tok.model_path.parent
        assert sorted(p.name for p in folder.iterdir()) == ["tokenizer.model", "vocab.txt"]
        assert len((folder / "vocab.txt").read_text(encoding="utf-8").splitlines()) == tok.vocab_size

    def test_no_stray_files(self, tmp_path, monkeypatch):
        """Training leaves no tmp/ in the working directory and keeps the input file."""
        monkeypatch.chdir(tmp_path)
        corpus = tmp_path / "corpus.txt"
        corpus.write_text("\n".join(make_docs(30)))
        Tokenizer.train(corpus.read_text().split("\n"), TokenizerConfig(vocab_size=60), tmp_path / "out")
        assert sorted(os.listdir(tmp_path)) == ["corpus.txt", "out"]

    @pytest.mark.parametrize("model_type", ["bpe", "word"])
    def test_model_types(self, tmp_path, model_type):
        """bpe and word models train with the same special ids."""
        tok = Tokenizer.train(make_docs(60), TokenizerConfig(vocab_size=40, model_type=model_type), tmp_path)
        assert tok.sp.bos_id() == BOS_ID and tok.decode(tok.encode_document("The film")) == "The film"

    def test_vocab_too_large_shrinks(self, tmp_path):
        """A vocab larger than the corpus supports shrinks with a warning."""
        with pytest.warns(UserWarning, match="shrunk"):
            tok = Tokenizer.train(make_docs(20), TokenizerConfig(vocab_size=5000), tmp_path)
        assert tok.vocab_size < 5000

    def test_vocab_too_small(self, tmp_path):
        """A vocab smaller than the characters + specials is a clear user error."""
        with pytest.raises(UlmfitError, match="too small"):
            Tokenizer.train(make_docs(20), TokenizerConfig(vocab_size=10), tmp_path)

    def test_empty_corpus(self, tmp_path):
        """Training on nothing is a user error."""
        with pytest.raises(UlmfitError, match="no text"):
            Tokenizer.train(["", "\n"], TokenizerConfig(vocab_size=50), tmp_path)


class TestEncodeDecode:
    def test_document_structure(self, tok):
        """A document is BOS, then every line (a blank one too) followed by EOS."""
        ids = tok.encode_document("the film\n\nwas good")
        assert ids[0] == BOS_ID and ids[-1] == EOS_ID and ids.count(EOS_ID) == 3 and ids.count(BOS_ID) == 1

    @pytest.mark.parametrize("text", SENTENCES)
    def test_round_trip(self, tok, text):
        """decode(encode_document(text)) is readable text: rules undone, escapes fixed, breaks as newlines."""
        expected = apply_rules(text)             # the canonical form: HTML/WikiText fixes applied
        assert words(tok.decode(tok.encode_document(text))) == words(undo_rules(expected))

    def test_decode_skips_pad(self, tok):
        """Padding and BOS are dropped, EOS becomes a newline."""
        ids = tok.encode("the film") + [EOS_ID] + tok.encode("was good") + [PAD_ID, PAD_ID]
        assert tok.decode([BOS_ID] + ids) == "the film\nwas good"

    def test_no_rules(self, tmp_path):
        """With pre_rules off no markers exist, and load infers the setting."""
        tok = Tokenizer.train(make_docs(40), TokenizerConfig(vocab_size=70, pre_rules=False), tmp_path)
        assert not Tokenizer.load(tmp_path).pre_rules and tok.sp.piece_to_id("\u2581xxmaj") == UNK_ID


class TestFiles:
    def test_load_and_fingerprint(self, tok, tmp_path):
        """load() from a folder or the model path gives the same tokenizer; save() copies it."""
        tok.save(tmp_path)
        again = Tokenizer.load(tmp_path)
        assert again.fingerprint() == tok.fingerprint() == Tokenizer.load(tok.model_path).fingerprint()
        assert again.pre_rules and again.encode("The film") == tok.encode("The film")

    def test_load_missing_or_corrupt(self, tmp_path):
        """A missing or corrupt model is a user error."""
        with pytest.raises(UlmfitError, match="no tokenizer"):
            Tokenizer.load(tmp_path)
        (tmp_path / "tokenizer.model").write_bytes(b"not a model")
        with pytest.raises(UlmfitError, match="cannot read"):
            Tokenizer.load(tmp_path)
