"""Tests for ulmfit/text/corpus.py: numericalised corpora on disk, streamed from worker processes, memory-mapped back."""
import os

import numpy as np
import pytest

from ulmfit.text.corpus import _CorpusWriter, load_corpus
from ulmfit.errors import UlmfitError
from test_tokenizer import make_docs, tok  # noqa: F401  (the tokenizer fixture, trained once per module)


class TestCorpus:
    def test_encode_corpus(self, tok, tmp_path):
        """The corpus on disk is uint16 ids + int64 offsets, doc i = encode_document(doc i), memory-mapped."""
        docs = make_docs(30, seed=1)
        ids, offsets = tok.encode_corpus(docs, tmp_path / "c", chunk_chars=500)
        assert isinstance(ids, np.memmap) and ids.dtype == np.uint16 and offsets.dtype == np.int64
        assert len(offsets) == 31 and offsets[-1] == len(ids)
        for i, doc in enumerate(docs):
            assert ids[offsets[i]:offsets[i + 1]].tolist() == tok.encode_document(doc)
        assert np.array_equal(load_corpus(tmp_path / "c")[1], offsets)

    def test_two_processes_same_result(self, tok, tmp_path):
        """Two worker processes produce exactly the single-process corpus."""
        docs = make_docs(60, seed=2)
        one = tok.encode_corpus(docs, tmp_path / "one", chunk_chars=400)
        two = tok.encode_corpus(iter(docs), tmp_path / "two", processes=2, chunk_chars=400)
        assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])

    def test_interrupted_leaves_nothing(self, tok, tmp_path):
        """An exception while tokenising leaves no .npy (or temp) file behind."""
        def docs():
            yield from make_docs(5)
            raise KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):
            tok.encode_corpus(docs(), tmp_path / "c", chunk_chars=10)
        assert os.listdir(tmp_path) == []

    def test_int32_writer(self, tmp_path):
        """The streaming writer produces a valid .npy for int32 ids (vocab > 65535)."""
        w = _CorpusWriter(tmp_path / "big", np.int32)
        w(np.array([70000, 3], np.int32), np.array([2]))
        w.close()
        ids, offsets = load_corpus(tmp_path / "big")
        assert ids.dtype == np.int32 and ids.tolist() == [70000, 3] and offsets.tolist() == [0, 2]

    def test_load_missing(self, tmp_path):
        """Loading a corpus that does not exist is a user error."""
        with pytest.raises(UlmfitError):
            load_corpus(tmp_path / "nope")
