"""Tests for ulmfit/text/batching.py: LM folding and windows (AWD-LSTM §4.1), classification buckets (ULMFiT §3.3)."""
import numpy as np
import pytest
import torch

from ulmfit.text.batching import (ClassificationBatches, LMBatches, fold_stream, sample_bptt_length,
                             token_budget_batches)
from ulmfit.config import PAD_ID
from ulmfit.errors import UlmfitError


def make_corpus(doc_lengths, dtype=np.int32):
    """A corpus whose token ids are their own stream positions, so every id says where it came from."""
    offsets = np.concatenate([[0], np.cumsum(doc_lengths)]).astype(np.int64)
    return np.arange(offsets[-1], dtype=dtype), offsets


def rows_of_epoch(batches, epoch=0):
    """Each row's token sequence over one epoch: all x columns plus the final y column."""
    pieces = list(batches.iter_epoch(epoch))
    return torch.cat([x for x, _ in pieces] + [pieces[-1][1][:, -1:]], dim=1)


class TestFoldStream:
    def test_rows_are_contiguous_stretches(self):
        """Row b of the fold is the b-th contiguous stretch of N // B tokens; the remainder is dropped."""
        folded = fold_stream(np.arange(26), 4)
        assert folded.shape == (4, 6)
        assert np.array_equal(folded[1], np.arange(6, 12))


class TestSampleBPTTLength:
    def test_mean_matches_awd_lstm_mixture(self):
        """Over many draws the mean is near 0.95 * bptt + 0.05 * bptt / 2 (int() truncation costs ~0.5)."""
        rng = np.random.default_rng(0)
        draws = [sample_bptt_length(70, rng) for _ in range(20000)]
        assert abs(np.mean(draws) - (0.95 * 70 + 0.05 * 35)) < 1.0

    def test_minimum_and_cap_respected(self):
        """No draw falls below min_len or above bptt + 20, even with a huge std."""
        rng = np.random.default_rng(0)
        draws = [sample_bptt_length(10, rng, std=50.0) for _ in range(5000)]
        assert min(draws) == 5 and max(draws) == 30


class TestLMBatches:
    def test_targets_are_inputs_shifted_by_one(self):
        """y holds, for each position of x, the next token of the same row."""
        ids, offsets = make_corpus([50, 30, 80])
        for x, y in LMBatches(ids, offsets, 4, 6, shuffle=False, seed=0):
            assert torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(y - x, torch.ones_like(x))

    def test_rows_continue_across_batches(self):
        """Row b of batch k + 1 starts with the token that followed row b of batch k."""
        ids, offsets = make_corpus([50, 30, 80])
        batches = list(LMBatches(ids, offsets, 4, 6, shuffle=False, seed=0))
        for (_, y_prev), (x_next, _) in zip(batches, batches[1:]):
            assert torch.equal(y_prev[:, -1], x_next[:, 0])

    def test_unshuffled_rows_are_the_fold(self):
        """Without shuffling the epoch's rows are exactly fold_stream of the corpus."""
        ids, offsets = make_corpus([50, 30, 80])
        rows = rows_of_epoch(LMBatches(ids, offsets, 4, 6, shuffle=False, seed=0))
        assert np.array_equal(rows.numpy(), fold_stream(ids, 4))

    def test_every_token_covered_once_per_epoch(self):
        """A shuffled epoch reads every token once, except the N % B remainder."""
        ids, offsets = make_corpus([17, 1, 40, 0, 23, 9, 31])
        rows = rows_of_epoch(LMBatches(ids, offsets, 4, 5, shuffle=True, seed=3))
        seen = rows.flatten().numpy()
        assert len(np.unique(seen)) == len(seen) == len(ids) - len(ids) % 4

    def test_shuffle_keeps_documents_whole(self):
        """Shuffling permutes whole documents: inside a row, ids rise by one except at document starts."""
        ids, offsets = make_corpus([20, 20, 20, 20])
        row = rows_of_epoch(LMBatches(ids, offsets, 1, 7, shuffle=True, seed=1))[0].numpy()
        jumps = np.flatnonzero(np.diff(row) != 1) + 1
        assert set(row[jumps]) <= set(offsets[:-1])

    def test_shuffle_differs_across_epochs(self):
        """Two epochs of the same seed see different document orders."""
        ids, offsets = make_corpus([10] * 20)
        batches = LMBatches(ids, offsets, 2, 5, shuffle=True, seed=0)
        assert not torch.equal(rows_of_epoch(batches, 0), rows_of_epoch(batches, 1))

    def test_order_reproducible_for_same_seed_and_epoch(self):
        """Two loaders with the same (seed, epoch) give identical batches, window lengths included."""
        ids, offsets = make_corpus([10] * 20)
        a = list(LMBatches(ids, offsets, 2, 5, shuffle=True, seed=7).iter_epoch(4))
        b = list(LMBatches(ids, offsets, 2, 5, shuffle=True, seed=7).iter_epoch(4))
        assert len(a) == len(b) and all(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(a, b))

    def test_resume_continues_from_saved_position(self):
        """load_state_dict after k batches makes the next iteration yield batch k onwards."""
        ids, offsets = make_corpus([10] * 30)
        full = list(LMBatches(ids, offsets, 2, 5, shuffle=True, seed=0).iter_epoch(2))
        first = LMBatches(ids, offsets, 2, 5, shuffle=True, seed=0)
        first.set_epoch(2)
        for _ in zip(range(3), first):
            pass
        resumed = LMBatches(ids, offsets, 2, 5, shuffle=True, seed=0)
        resumed.load_state_dict(first.state_dict())
        resumed.set_epoch(2)
        rest = list(resumed)
        assert len(rest) == len(full) - 3 and torch.equal(rest[0][0], full[3][0])

    def test_len_counts_batches(self):
        """len() is the exact number of batches the current epoch yields."""
        ids, offsets = make_corpus([10] * 30)
        batches = LMBatches(ids, offsets, 2, 5, shuffle=True, seed=0)
        assert len(batches) == len(list(batches))

    def test_variable_length_windows_vary(self):
        """With variable_length the window lengths differ; without it they are all bptt but the last."""
        ids, offsets = make_corpus([5000])
        varied = {x.shape[1] for x, _ in LMBatches(ids, offsets, 2, 20, shuffle=False, seed=0)}
        fixed = [x.shape[1] for x, _ in LMBatches(ids, offsets, 2, 20, False, 0, variable_length=False)]
        assert len(varied) > 3 and set(fixed[:-1]) == {20}

    def test_memmap_input(self, tmp_path):
        """A uint16 corpus loaded with mmap_mode="r" batches like the in-memory array."""
        ids, offsets = make_corpus([100, 57, 300], dtype=np.uint16)
        np.save(tmp_path / "c.ids.npy", ids)
        mapped = np.load(tmp_path / "c.ids.npy", mmap_mode="r")
        got = list(LMBatches(mapped, offsets, 3, 8, shuffle=True, seed=0))
        want = list(LMBatches(ids, offsets, 3, 8, shuffle=True, seed=0))
        assert all(torch.equal(g[0], w[0]) and g[0].dtype == torch.long for g, w in zip(got, want))

    def test_backwards_reverses_stream(self):
        """backwards=True reads the token stream from its end to its start."""
        ids, offsets = make_corpus([30, 30])
        x, y = next(iter(LMBatches(ids, offsets, 1, 5, False, 0, backwards=True, variable_length=False)))
        assert x[0].tolist() == [59, 58, 57, 56, 55] and y[0].tolist() == [58, 57, 56, 55, 54]

    def test_ddp_shards_are_disjoint_blocks_of_global_rows(self):
        """Rank r reads rows [r * B, (r + 1) * B) of the global fold; together the ranks cover it once."""
        ids, offsets = make_corpus([40] * 10)
        full = rows_of_epoch(LMBatches(ids, offsets, 6, 5, shuffle=True, seed=0))
        shards = [rows_of_epoch(LMBatches(ids, offsets, 2, 5, True, 0, rank=r, world_size=3)) for r in range(3)]
        assert torch.equal(torch.cat(shards), full)

    def test_tiny_corpus_is_user_error(self):
        """A corpus too small for the batch size raises UlmfitError."""
        ids, offsets = make_corpus([5])
        with pytest.raises(UlmfitError):
            LMBatches(ids, offsets, 4, 5, shuffle=False, seed=0)


def make_labelled(lengths=(5, 1, 9, 3, 7, 2, 8, 4, 6)):
    ids, offsets = make_corpus(list(lengths))
    return ids + 4, offsets, np.arange(len(lengths)) % 3      # + 4: no real token collides with PAD_ID


class TestClassificationBatches:
    def test_padding_and_mask(self):
        """Rows hold their document then PAD_ID; the mask is True exactly at real tokens."""
        ids, offsets, labels = make_labelled()
        for tokens, mask, _, index in ClassificationBatches(ids, offsets, labels, 4, shuffle=True, seed=0):
            for row, i in enumerate(index.tolist()):
                doc = ids[offsets[i]:offsets[i + 1]]
                assert tokens[row, :len(doc)].tolist() == doc.tolist()
                assert (tokens[row, len(doc):] == PAD_ID).all() and mask[row].sum() == len(doc)
                assert mask[row, :len(doc)].all()

    def test_every_example_once_with_its_label(self):
        """One epoch yields each document exactly once, with its own label."""
        ids, offsets, labels = make_labelled()
        seen = [(i, lab) for _, _, lab, idx in ClassificationBatches(ids, offsets, labels, 4, True, 0)
                for i, lab in zip(idx.tolist(), lab.tolist())]
        assert sorted(i for i, _ in seen) == list(range(len(labels)))
        assert all(labels[i] == lab for i, lab in seen)

    def test_sorted_descending_when_not_shuffled(self):
        """Evaluation order is by length, longest first, across and within batches."""
        ids, offsets, labels = make_labelled()
        lengths = [m.sum().item() for _, mask, _, _ in ClassificationBatches(ids, offsets, labels, 4, False, 0)
                   for m in mask]
        assert lengths == sorted(lengths, reverse=True)

    def test_largest_batch_first_when_shuffled(self):
        """The sortish order puts the batch with the longest document first, for every epoch."""
        ids, offsets, labels = make_labelled(np.random.default_rng(0).integers(1, 50, 300))
        batches = ClassificationBatches(ids, offsets, labels, 8, shuffle=True, seed=0)
        for epoch in range(3):
            first = next(iter(batches.iter_epoch(epoch)))
            assert first[0].shape[1] == np.diff(offsets).max()

    def test_sortish_batches_are_tight(self):
        """Sortish batches pad far less than random batches would (documents in a batch have similar lengths)."""
        ids, offsets, labels = make_labelled(np.random.default_rng(0).integers(1, 200, 800))
        padded = sum(mask.numel() for _, mask, _, _ in ClassificationBatches(ids, offsets, labels, 8, True, 0))
        assert padded < 1.2 * len(ids)

    def test_shuffle_reproducible_and_varies_by_epoch(self):
        """The order depends only on (seed, epoch)."""
        ids, offsets, labels = make_labelled(range(1, 40))
        a, b = (ClassificationBatches(ids, offsets, labels, 4, True, 5) for _ in range(2))
        order = lambda batches, e: np.concatenate(batches.batch_indices(e)).tolist()   # noqa: E731
        assert order(a, 1) == order(b, 1) and order(a, 1) != order(a, 2)

    def test_backwards_reverses_each_document(self):
        """backwards=True reverses each document before right-padding."""
        ids, offsets, labels = make_labelled()
        tokens, mask, _, index = next(iter(ClassificationBatches(ids, offsets, labels, 9, False, 0,
                                                                 backwards=True)))
        i = index[1].item()
        assert tokens[1, :mask[1].sum()].tolist() == ids[offsets[i]:offsets[i + 1]][::-1].tolist()

    def test_max_tokens_keeps_last_tokens(self):
        """max_tokens truncates to the last max_tokens tokens of each document."""
        ids, offsets, labels = make_labelled()
        tokens, _, _, index = next(iter(ClassificationBatches(ids, offsets, labels, 2, False, 0, max_tokens=3)))
        i = index[0].item()
        assert tokens.shape[1] == 3 and tokens[0].tolist() == ids[offsets[i + 1] - 3:offsets[i + 1]].tolist()

    def test_ddp_shards_are_disjoint_and_cover(self):
        """Ranks get disjoint documents, the same number of batches, and together every document."""
        ids, offsets, labels = make_labelled(range(1, 25))
        shards = [ClassificationBatches(ids, offsets, labels, 3, True, 0, rank=r, world_size=2) for r in range(2)]
        seen = [np.concatenate(s.batch_indices(0)).tolist() for s in shards]
        assert len(shards[0].batch_indices(0)) == len(shards[1].batch_indices(0)) == len(shards[0])
        assert not set(seen[0]) & set(seen[1]) and sorted(seen[0] + seen[1]) == list(range(24))


class TestTokenBudgetBatches:
    """Prediction batches cut by padded tokens (documents x longest length), not by a document count."""

    def test_batches_respect_the_budget_and_the_document_cap(self):
        """Every batch pads to at most max_tokens and holds at most max_docs documents; each document comes once,
        longest first."""
        lengths = np.random.default_rng(0).integers(1, 300, 500)
        batches = token_budget_batches(lengths, max_tokens=1000, max_docs=32)
        assert all(len(b) * lengths[b].max() <= 1000 and len(b) <= 32 for b in batches)
        order = np.concatenate(batches)
        assert sorted(order.tolist()) == list(range(500)) and (np.diff(lengths[order]) <= 0).all()

    def test_short_documents_share_big_batches_and_long_ones_small(self):
        """With a budget of 64 x 256 tokens: 15-token texts fill the 64-document cap, 1,000-token texts go 16 at
        a time."""
        short = token_budget_batches(np.full(200, 15), 64 * 256, 64)
        long = token_budget_batches(np.full(40, 1000), 64 * 256, 64)
        assert [len(b) for b in short] == [64, 64, 64, 8] and [len(b) for b in long] == [16, 16, 8]

    def test_a_document_over_the_budget_goes_alone(self):
        """A document longer than max_tokens is a batch of one, not an error."""
        assert [len(b) for b in token_budget_batches(np.array([50, 5, 5]), 20, 8)] == [1, 2]

    def test_classification_batches_take_the_budget(self):
        """ClassificationBatches(batch_tokens=...) yields those batches, padded to each one's longest document,
        and its len counts them."""
        ids, offsets, labels = make_labelled(range(1, 30))
        batches = ClassificationBatches(ids, offsets, labels, 8, False, 0, batch_tokens=40)
        shapes = [tuple(tokens.shape) for tokens, _, _, _ in batches]
        assert len(shapes) == len(batches) and all(b * t <= 40 and b <= 8 for b, t in shapes)
        assert sum(b for b, _ in shapes) == 29


def sizes_per_rank(batches):
    """The number of documents in each of this rank's batches for epoch 0."""
    return [len(b) for b in batches.batch_indices(0)]


class TestShortLastTrainingBatch:
    """The head's BatchNorm cannot train on one document, so no training batch may give a rank fewer than 2."""

    def test_one_left_over_document_joins_a_batch(self):
        """17 documents in batches of 16: every training batch holds >= 2, and each document comes once."""
        ids, offsets, labels = make_labelled(range(1, 18))
        batches = ClassificationBatches(ids, offsets, labels, 16, shuffle=True, seed=0)
        for epoch in range(3):
            indices = batches.batch_indices(epoch)
            assert min(len(b) for b in indices) >= 2
            assert sorted(np.concatenate(indices).tolist()) == list(range(17))

    def test_len_matches_iteration_after_merging(self):
        """len() counts the batches iteration yields, the merged one counted once (the loop plans steps by it)."""
        ids, offsets, labels = make_labelled(range(1, 18))
        batches = ClassificationBatches(ids, offsets, labels, 16, shuffle=True, seed=0)
        assert len(batches) == len(list(batches)) == 1

    def test_lone_document_after_full_chunks_is_kept(self):
        """801 documents (16 full sortish chunks of 50 x 16 + 1): the leftover still lands in a batch of >= 2."""
        ids, offsets, labels = make_labelled(np.random.default_rng(0).integers(1, 30, 801))
        batches = ClassificationBatches(ids, offsets, labels, 16, shuffle=True, seed=0)
        indices = batches.batch_indices(0)
        assert min(map(len, indices)) >= 2 and len(indices) == len(batches) == 50
        assert sorted(np.concatenate(indices).tolist()) == list(range(801))

    def test_evaluation_batches_are_not_merged(self):
        """Without shuffling (evaluation, BatchNorm in eval mode) a last batch of one document is fine."""
        ids, offsets, labels = make_labelled(range(1, 18))
        assert sizes_per_rank(ClassificationBatches(ids, offsets, labels, 16, shuffle=False, seed=0)) == [16, 1]

    @pytest.mark.parametrize("n_docs, batch_size, world_size", [(1, 16, 1), (2, 16, 2), (3, 1, 1)])
    def test_too_few_documents_per_rank_is_user_error(self, n_docs, batch_size, world_size):
        """A training set that cannot give each rank a batch of 2 documents raises UlmfitError."""
        ids, offsets, labels = make_labelled(range(1, n_docs + 1))
        with pytest.raises(UlmfitError, match="at least 2 documents"):
            ClassificationBatches(ids, offsets, labels, batch_size, shuffle=True, seed=0, world_size=world_size)

    @pytest.mark.parametrize("n_docs", [25, 33, 65])
    def test_two_ranks_with_uneven_documents(self, n_docs):
        """An odd number of documents over 2 ranks (the padding repeats one): each rank's batches hold >= 2
        documents, both ranks count the same batches as len() says, and together they cover every document."""
        ids, offsets, labels = make_labelled(np.random.default_rng(n_docs).integers(1, 40, n_docs))
        shards = [ClassificationBatches(ids, offsets, labels, 16, True, 0, rank=r, world_size=2) for r in range(2)]
        for epoch in range(3):
            per_rank = [s.batch_indices(epoch) for s in shards]
            assert len(per_rank[0]) == len(per_rank[1]) == len(shards[0]) == len(shards[1])
            assert all(len(b) >= 2 for batches in per_rank for b in batches)
            seen = np.concatenate([np.concatenate(batches) for batches in per_rank])
            assert set(seen.tolist()) == set(range(n_docs)) and len(seen) == n_docs + 1     # one repeated
