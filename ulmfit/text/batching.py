"""text/ layer, last file (tokens -> batches): language-model windows and length-bucketed classification batches.

Language model (AWD-LSTM §4.1, ULMFiT §3.1-3.2). A corpus is one stream of token ids (N,). We fold it into B
parallel rows (B, N // B) so that row b of batch k+1 continues row b of batch k: that is what lets the hidden
state carry over from one batch to the next (the loop detaches it, it never resets it). Targets are the inputs
shifted one token along the row. Window lengths are random around `bptt` (AWD-LSTM §4.1); the loop scales the LR
by seq_len / bptt, where seq_len = x.shape[1] of the batch it got.

    the stream, documents shuffled then concatenated (N = 26):  a b c d e f g h i j k l m n o p q r s t u v w x y z
    folded into B = 4 rows of N // B = 6 tokens; "y z" (N % B) is dropped this epoch:

                 batch 0    batch 1
                |<-T=3->|  |<-T=2->|
        row 0   | a b c |  | d e |  f      <- the last token of a row is only ever a target
        row 1   | g h i |  | j k |  l
        row 2   | m n o |  | p q |  r
        row 3   | s t u |  | v w |  x

    batch 0:  x = [a b c]   y = [b c d]     (B, T) = (4, 3); y is x moved one token to the right,
                  [g h i]       [h i j]     so y's last column is the first column of the next window.
                  [m n o]       [n o p]
                  [s t u]       [t u v]

The stream is never built: the permuted documents form a *virtual* stream described by their cumulative lengths
(n_docs + 1 numbers), and each window gathers its (B, T + 1) positions from the memory-mapped ids through a
searchsorted. WikiText-103's 103M tokens stay on disk. Under DDP the global fold has B = batch_size * world_size
rows and rank r reads rows [r * batch_size, (r + 1) * batch_size) (contiguous rows, not a sampler over windows,
which would break the hidden-state carry-over; fastai#1933).

Classification (ULMFiT §3.3): documents are bucketed by length, right-padded with PAD_ID and come with a bool mask
(B, T), True at real tokens. Training batches are "sortish" (fastai's SortishSampler idea): random chunks of 50
batches, sorted by length inside, the batch holding the longest document first so an out-of-memory shows at once;
a last training batch that would leave a rank one document (the head's BatchNorm cannot train on one) joins the
batch before it.
Evaluation batches are sorted by length, longest first; `index` puts predictions back in the original order. For
prediction they can be cut by a token budget instead of a document count (`token_budget_batches`): many short texts
in a batch, few long ones, so that documents x padded length stays about the same from batch to batch.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from ..config import PAD_ID
from ..errors import UlmfitError

SORTISH_CHUNK_BATCHES = 50      # fastai's SortishSampler sorts chunks of 50 batches


def fold_stream(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """The stream (N,) cut into `batch_size` contiguous rows (B, N // B); the remainder N % B is dropped."""
    n_cols = len(ids) // batch_size
    return np.asarray(ids[: n_cols * batch_size]).reshape(batch_size, n_cols)


def sample_bptt_length(bptt: int, rng: np.random.Generator, p: float = 0.95, std: float = 5.0,
                       min_len: int = 5, max_len: int | None = None) -> int:
    """A random window length (AWD-LSTM §4.1): N(bptt, std) with probability p, else N(bptt / 2, std).

    Floored at `min_len` as AWD-LSTM does (no tiny or negative windows) and capped at `max_len`, default bptt + 20:
    AWD-LSTM's code carries that cap, commented out, as its guard against a rare out-of-memory long window; we keep
    it on because a fixed worst case makes memory use predictable (it is 4 std above the mean, so it rarely bites).
    """
    base = bptt if rng.random() < p else bptt / 2
    seq_len = int(rng.normal(base, std))            # int() truncates like AWD-LSTM's main.py
    return max(min_len, min(seq_len, bptt + 20 if max_len is None else max_len))


def _epoch_rng(seed: int, epoch: int, stream: int) -> np.random.Generator:
    # one independent generator per (seed, epoch, purpose): the data order never depends on how much of
    # another epoch was consumed, which is what makes a resumed run see the same batches.
    return np.random.default_rng([seed, epoch, stream])


class LMBatches:
    """Language-model batches (x, y), each a LongTensor (B, T), over one epoch of a shuffled, folded stream.

    `ids` (memmap is fine) and `offsets` (n_docs + 1) follow the on-disk corpus format: doc i is
    ids[offsets[i]:offsets[i + 1]]. The document order is a permutation that depends only on (seed, epoch), and
    so do the window lengths, so `iter_epoch(epoch, start_batch)` replays any epoch from any batch.
    `backwards=True` reverses the whole token stream (for the backward LM of the §3.3 ensemble).
    """

    def __init__(self, ids: np.ndarray, offsets: np.ndarray, batch_size: int, bptt: int, shuffle: bool, seed: int,
                 backwards: bool = False, variable_length: bool = True, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.ids, self.offsets = ids, np.asarray(offsets, dtype=np.int64)
        self.doc_lengths = np.diff(self.offsets)
        self.batch_size, self.bptt, self.shuffle, self.seed = batch_size, bptt, shuffle, seed
        self.backwards, self.variable_length = backwards, variable_length
        self.n_tokens = int(self.doc_lengths.sum())
        self.n_cols = self.n_tokens // (batch_size * world_size)     # tokens per row of the global fold
        if self.n_cols < 2:
            raise UlmfitError(f"the corpus has {self.n_tokens} tokens, too few for {batch_size * world_size} "
                              "rows of at least 2 tokens; lower batch_size")
        self.first_row = rank * batch_size                           # this rank's rows in the global fold
        self.epoch, self.position, self._resume_batch = 0, 0, 0
        self._prepared_epoch = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch `for x, y in batches` iterates (keeps a resume point loaded for this same epoch)."""
        if epoch != self.epoch:
            self._resume_batch = 0
        self.epoch = epoch

    def _prepare(self, epoch: int) -> None:
        if self._prepared_epoch == epoch:
            return
        n_docs = len(self.doc_lengths)
        self._order = _epoch_rng(self.seed, epoch, 0).permutation(n_docs) if self.shuffle else np.arange(n_docs)
        self._starts = np.concatenate([[0], np.cumsum(self.doc_lengths[self._order])])   # (n_docs + 1,)
        rng, col, self._windows = _epoch_rng(self.seed, epoch, 1), 0, []
        while col < self.n_cols - 1:                                 # the last column is only a target
            seq_len = sample_bptt_length(self.bptt, rng) if self.variable_length else self.bptt
            seq_len = min(seq_len, self.n_cols - 1 - col)
            self._windows.append((col, seq_len))
            col += seq_len
        self._prepared_epoch = epoch

    def _gather(self, positions: np.ndarray) -> np.ndarray:
        """Token ids at `positions` of this epoch's virtual stream, read from the (memory-mapped) ids."""
        if self.backwards:
            positions = self.n_tokens - 1 - positions
        k = np.searchsorted(self._starts, positions, side="right") - 1          # which document, in epoch order
        return np.asarray(self.ids[self.offsets[self._order[k]] + positions - self._starts[k]])

    def iter_epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x, y) for `epoch` from batch `start_batch` on; `self.position` counts the batches handed out."""
        self._prepare(epoch)
        self.epoch, self.position = epoch, start_batch
        rows = np.arange(self.first_row, self.first_row + self.batch_size, dtype=np.int64)[:, None] * self.n_cols
        for k in range(start_batch, len(self._windows)):
            col, seq_len = self._windows[k]
            tokens = self._gather(rows + col + np.arange(seq_len + 1))          # (B, T + 1)
            tokens = torch.from_numpy(tokens.astype(np.int64))
            self.position = k + 1
            yield tokens[:, :-1], tokens[:, 1:]                                  # (B, T), (B, T)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        start, self._resume_batch = self._resume_batch, 0
        return self.iter_epoch(self.epoch, start)

    def __len__(self) -> int:
        """Batches in the current epoch (exact: the window lengths are drawn up front from (seed, epoch))."""
        self._prepare(self.epoch)
        return len(self._windows)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "batch": self.position}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a saved position: the next iteration starts at the first batch not yet handed out."""
        self.seed, self.epoch = state["seed"], state["epoch"]
        self.position = self._resume_batch = state["batch"]


def _sortish_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                     world_size: int) -> list[np.ndarray]:
    """Random chunks of ~50 batches sorted by length inside; the batch with the longest document first.

    No batch gives a rank fewer than 2 documents (see `_merge_short_tail`), and every document comes at least once.
    """
    perm = _pad(rng.permutation(len(lengths)), world_size)
    chunk = batch_size * SORTISH_CHUNK_BATCHES                   # a multiple of batch_size: no batch straddles
    # a last chunk too small for 2 documents per rank joins the chunk before it, so the short tail that
    # _merge_short_tail folds in lies in the same length-sorted chunk (documents of similar lengths)
    cuts = range(chunk, len(perm) - 2 * world_size + 1, chunk)
    order = np.concatenate([c[np.argsort(-lengths[c], kind="stable")] for c in np.split(perm, cuts)])
    batches = _merge_short_tail(_split(order, batch_size), world_size)
    first = int(np.argmax([lengths[b].max() for b in batches]))
    rest = [batches[i] for i in rng.permutation(len(batches)) if i != first]
    return [batches[first]] + rest


def _pad(order: np.ndarray, multiple: int) -> np.ndarray:
    # DDP: every rank needs a non-empty last batch, so repeat the last few documents (at most world_size - 1),
    # as torch's DistributedSampler does. With one process nothing is repeated.
    extra = -len(order) % multiple
    return np.concatenate([order, order[len(order) - extra:]]) if extra else order


def _merge_short_tail(batches: list[np.ndarray], world_size: int) -> list[np.ndarray]:
    # The classifier head's BatchNorm raises on a training batch of one document ("Expected more than 1 value
    # per channel"), and under DDP a last global batch of world_size documents gives each rank one. fastai drops
    # that batch; we append it to the batch before it instead, which keeps every document in every epoch.
    if len(batches) > 1 and len(batches[-1]) < 2 * world_size:
        batches = batches[:-2] + [np.concatenate(batches[-2:])]
    return batches


def _split(order: np.ndarray, size: int) -> list[np.ndarray]:
    return [order[i:i + size] for i in range(0, len(order), size)]


def token_budget_batches(lengths: np.ndarray, max_tokens: int, max_docs: int) -> list[np.ndarray]:
    """Document indices, longest first, cut so that each batch's padded size (documents x its longest length) is at
    most `max_tokens`, with at most `max_docs` documents; a document longer than `max_tokens` goes alone.

    The idea of fairseq's --max-tokens: the work per batch is bounded, not the document count, so short texts share
    big batches and a 1,000-token document does not pad 63 others to its length."""
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)             # sorted: the first is the batch's longest
        size = max(1, min(max_docs, max_tokens // longest))
        batches.append(order[start:start + size])
        start += size
    return batches


class ClassificationBatches:
    """(tokens (B, T), mask (B, T), labels (B,), index (B,)) batches of documents bucketed by length (ULMFiT §3.3).

    `tokens` is right-padded with PAD_ID, `mask` is True at real tokens, `index` gives each row's position in the
    input so predictions can be put back in order. `backwards=True` reverses each document before padding.
    `max_tokens` (default None: BPT3C reads long documents whole) keeps only the last `max_tokens` tokens fed to
    the model, the ones BPT3C's pooling would see. `labels=None` yields labels of -1 (prediction).
    `batch_tokens` (evaluation on one process only) cuts the length-sorted documents by `token_budget_batches`,
    `batch_size` then capping the documents per batch.
    """

    def __init__(self, ids: np.ndarray, offsets: np.ndarray, labels: np.ndarray | None, batch_size: int,
                 shuffle: bool, seed: int, backwards: bool = False, max_tokens: int | None = None,
                 rank: int = 0, world_size: int = 1, batch_tokens: int | None = None):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if batch_tokens is not None and (shuffle or world_size > 1):
            raise ValueError("batch_tokens is for evaluation on one process (shuffle=False, world_size=1)")
        self.ids, self.offsets = ids, np.asarray(offsets, dtype=np.int64)
        self.lengths = np.diff(self.offsets)
        if max_tokens is not None:
            self.lengths = np.minimum(self.lengths, max_tokens)
        n_docs = len(self.lengths)
        if n_docs == 0:
            raise UlmfitError("no documents to batch")
        self.labels = np.full(n_docs, -1) if labels is None else np.asarray(labels)
        if len(self.labels) != n_docs:
            raise UlmfitError(f"{len(self.labels)} labels for {n_docs} documents")
        self.batch_size, self.shuffle, self.seed, self.backwards = batch_size, shuffle, seed, backwards
        self.rank, self.world_size, self.batch_tokens = rank, world_size, batch_tokens
        self.epoch = 0
        if shuffle:                       # training: BatchNorm in train mode needs 2+ documents per rank
            self._check_trainable(n_docs)

    def _check_trainable(self, n_docs: int) -> None:
        per_rank = "" if self.world_size == 1 else " per process"
        if self.batch_size < 2:
            raise UlmfitError(f"batch_size={self.batch_size} trains on one document at a time; the classifier "
                              f"head's BatchNorm needs at least 2 documents{per_rank} in a batch: use batch_size >= 2")
        if n_docs + (-n_docs % self.world_size) < 2 * self.world_size:
            raise UlmfitError(f"{n_docs} training document(s) over {self.world_size} process(es) cannot fill a batch "
                              f"of at least 2 documents{per_rank}, which the classifier head's BatchNorm needs; "
                              "add training documents" + (" or use fewer processes" if per_rank else ""))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batch_indices(self, epoch: int) -> list[np.ndarray]:
        """This rank's document indices, batch by batch, for `epoch`."""
        global_size = self.batch_size * self.world_size
        if self.shuffle:
            batches = _sortish_batches(self.lengths, global_size, _epoch_rng(self.seed, epoch, 2), self.world_size)
        elif self.batch_tokens is not None:
            batches = token_budget_batches(self.lengths, self.batch_tokens, self.batch_size)
        else:
            batches = _split(_pad(np.argsort(-self.lengths, kind="stable"), self.world_size), global_size)
        # strided, not contiguous: every rank gets documents of about the same length, so no rank waits
        return [b[self.rank::self.world_size] for b in batches]

    def collate(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pad the documents at `index` into one batch."""
        lengths = self.lengths[index]
        # right padding after each document's last token, masked out of the pooling: which id fills it never
        # changes a real position's output, so fastai-vocabulary models (xxpad = 1) share this PAD_ID (0) filler
        tokens = np.full((len(index), max(int(lengths.max()), 1)), PAD_ID, dtype=np.int64)      # (B, T)
        for row, (i, n) in enumerate(zip(index, lengths)):
            doc = np.asarray(self.ids[self.offsets[i]:self.offsets[i + 1]])
            if self.backwards:
                doc = doc[::-1]
            tokens[row, :n] = doc[len(doc) - n:]
        mask = torch.arange(tokens.shape[1])[None, :] < torch.from_numpy(lengths)[:, None]      # (B, T)
        return (torch.from_numpy(tokens), mask, torch.from_numpy(self.labels[index].astype(np.int64)),
                torch.from_numpy(np.asarray(index, dtype=np.int64)))

    def iter_epoch(self, epoch: int, start_batch: int = 0):
        """Yield the batches of `epoch` from batch `start_batch` on."""
        for index in self.batch_indices(epoch)[start_batch:]:
            yield self.collate(index)

    def __iter__(self):
        return self.iter_epoch(self.epoch)

    def __len__(self) -> int:
        """Batches per epoch on each rank (exact: the loop plans its steps by it, and every rank must agree)."""
        if self.batch_tokens is not None:
            return len(self.batch_indices(0))
        global_size = self.batch_size * self.world_size
        n_docs = len(self.lengths) + (-len(self.lengths) % self.world_size)      # after _pad
        n_batches = -(-n_docs // global_size)
        if self.shuffle and n_batches > 1 and 0 < n_docs % global_size < 2 * self.world_size:
            n_batches -= 1                                                       # _merge_short_tail
        return n_batches
