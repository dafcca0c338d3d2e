"""pretrained/ layer (stage 2 with a word-level vocabulary): carry a pretrained LM over to the target corpus's own
vocabulary.

A subword tokenizer covers any text, so fine-tuning reuses the pretrained one as it is. A word-level vocabulary
does not: the target corpus has words the general corpus never saw, which would all become <unk>. So, as fastai's
`match_embeds` does for ULMFiT §3.2, the target run gets its own word vocabulary; the rows of words both
vocabularies share are copied, and a word new to the target starts from the mean embedding row (and the mean
decoder bias) — a neutral point that fine-tuning then moves.

    old vocab:  <pad> <unk> <s> </s> the  cat  ...        new vocab:  <pad> <unk> <s> </s> the  meme  ...
    old rows:   e0    e1    e2  e3   e4   e5              new rows:   e0    e1    e2  e3   e4   mean(E)
"""
from __future__ import annotations

import torch

EMBEDDING_KEYS = ("encoder.embedding.weight", "decoder.weight")     # (V, E) rows indexed by token id
BIAS_KEYS = ("decoder.bias",)                                       # (V,)


def vocabulary(tokenizer) -> list[str]:
    """The tokenizer's pieces in id order."""
    return [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size)]


def match_embeddings(state: dict[str, torch.Tensor], old_vocab: list[str],
                     new_vocab: list[str]) -> tuple[dict[str, torch.Tensor], int]:
    """A copy of the LM `state` re-indexed from `old_vocab` to `new_vocab`, and how many tokens were new.

    Shared tokens keep their rows; new tokens get the mean row of the old matrix (of the old bias for the decoder
    bias). A tied decoder weight is the same tensor as the embedding in `state`, and stays one tensor.
    """
    old_index = {piece: i for i, piece in enumerate(old_vocab)}
    found = [old_index.get(piece, -1) for piece in new_vocab]
    known = torch.tensor([i >= 0 for i in found])
    source = torch.tensor([max(i, 0) for i in found])
    out, remapped = dict(state), {}
    for key in EMBEDDING_KEYS + BIAS_KEYS:
        if key not in state:
            continue
        old = state[key]
        if old.data_ptr() in remapped:                  # the tied decoder weight: reuse the new embedding
            out[key] = remapped[old.data_ptr()]
            continue
        mean = old.float().mean(dim=0).to(old.dtype)
        new = old[source].clone()                       # (V_new, E) or (V_new,)
        new[~known] = mean
        remapped[old.data_ptr()] = out[key] = new
    return out, int((~known).sum())
