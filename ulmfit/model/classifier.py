"""model/ layer, after `awd_lstm`: the ULMFiT text classifier (Howard & Ruder 2018, §3.3).

In: a right-padded batch of documents, tokens (B, T) long and mask (B, T) bool (True at real tokens).
Out: logits (B, C) in fp32.

    tokens --BPT3C--> last-layer LSTM outputs (B, T_kept, E) --masked concat pool--> (B, 3E) --head--> (B, C)

- BPT3C ("BPTT for Text Classification", §3.3): a long document is read in bptt-sized chunks that carry the
  hidden state; only the chunks feeding the pooling keep their graph (`encode_in_chunks`).
- Concat pooling (§3.3, eq. 4): h_c = [h_T, maxpool(H), meanpool(H)], taken over real tokens only, so padding
  never leaks into the max or the mean (fastai v1's head pooled over padding; see STYLE.md §4).
- The head: two blocks of BatchNorm -> Dropout -> Linear, with a ReLU between them (§3.3).

The encoder is the fine-tuned AWD-LSTM encoder; `load_encoder_state` copies it from a LanguageModel
state_dict.

Pure nn.Module code: it imports torch, the configs, the regularised encoder (awd_lstm.py) and nothing else.
A trained classifier is loaded and used through ulmfit/predict.py: `ulmfit.TextClassifier.from_pretrained(run_dir)`
(this class plus loading, tokenising, `predict_proba`/`predict`, the baseline mean and int8).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..config import HeadConfig, ModelConfig
from ..errors import UlmfitError
from .awd_lstm import AWDLSTMEncoder, detach_hidden


def masked_concat_pool(outputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[last real output, max over real positions, mean over real positions] (ULMFiT §3.3, eq. 4).

    Args:
        outputs: (B, T, E) encoder outputs.
        mask: (B, T) bool, True where a position counts. Usually right padding (True then False), but any
            pattern works: "last" is the last True position, so a BPT3C window mask is fine too.
    Returns:
        (B, 3E) in the dtype of `outputs`.
    """
    B, T, _ = outputs.shape
    keep = mask.unsqueeze(-1)                                            # (B, T, 1)
    positions = torch.arange(T, device=mask.device).expand(B, T)         # (B, T)
    # every document has at least its BOS token; clamp anyway so an empty row gives zeros, not an index error
    last_idx = torch.where(mask, positions, -1).amax(dim=1).clamp(min=0)  # (B,)
    last = outputs[torch.arange(B, device=outputs.device), last_idx]     # (B, E)
    # -inf in the outputs' own dtype, so a padded position can never win the max (also in bf16)
    max_pool = outputs.masked_fill(~keep, float("-inf")).amax(dim=1)    # (B, T, E) -> (B, E)
    # sum in fp32: a bf16 running sum over ~1000 positions loses most of its mantissa
    count = mask.sum(dim=1, keepdim=True).clamp(min=1).float()           # (B, 1)
    mean_pool = outputs.float().masked_fill(~keep, 0.0).sum(dim=1) / count  # (B, E)
    return torch.cat([last, max_pool, mean_pool.to(outputs.dtype)], dim=1)  # (B, 3E)


def encode_in_chunks(encoder: AWDLSTMEncoder, tokens: torch.Tensor, mask: torch.Tensor, bptt: int,
                     max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """BPT3C: the last layer's outputs for the positions that feed the pooling, and their mask (ULMFiT §3.3).

    The batch is read in chunks of `bptt` tokens; the hidden state (h, c) of each chunk starts the next one.
    Document b (length n_b, right-padded) pools over its own last `max_len` real tokens,
    [max(0, n_b - max_len), n_b). Chunks that end before any document's window starts only carry the hidden
    state forward: they run under no_grad and their outputs are dropped, which bounds activation memory by
    max_len instead of the document length. From the first chunk that feeds the pooling on, the graph is kept,
    so gradients flow back through those chunks (and across their boundaries) but not further.

        T = 5 chunks, max_len = 2.5 chunks, all documents of length T:

        position  0         bptt      2bptt     3bptt     4bptt     T
                  |---c0----|---c1----|---c2----|---c3----|---c4----|
        no_grad   [=========][=========]                              outputs dropped
        hidden     (0) ----> h1 -----> h2 --detach--> h3 ----> h4
        with grad                      [=========][=========][=========]  outputs kept: (B, 3 chunks, E)
        mask_kept                           [########################]  the last max_len positions

    Pooling reads `raw_outputs[-1]`, the last layer before its output dropout: the head applies its own
    dropout (fastai's SentenceEncoder + PoolingLinearClassifier do the same).

    Returns:
        outputs (B, T_kept, E) for positions [T - T_kept, T), and mask_kept (B, T_kept) bool: True only at
        real tokens inside each document's own pooling window.
    """
    B, T = tokens.shape
    lengths = mask.sum(dim=1)                                            # (B,)
    window_start = (lengths - max_len).clamp(min=0)                      # (B,) first pooled position per doc
    grad_from = int(window_start.min()) // bptt * bptt                   # start of the first kept chunk
    hidden = None
    kept = []
    for start in range(0, T, bptt):
        chunk = tokens[:, start:start + bptt]                            # (B, <=bptt)
        if start < grad_from:
            with torch.no_grad():
                hidden = encoder(chunk, hidden).hidden
            continue
        if start == grad_from and hidden is not None:
            # the no_grad chunks built no graph; detaching states the intent and guards a caller's graph
            hidden = detach_hidden(hidden)
        out = encoder(chunk, hidden)
        hidden = out.hidden
        kept.append(out.raw_outputs[-1])                                 # (B, <=bptt, E)
    positions = torch.arange(grad_from, T, device=mask.device)           # (T_kept,)
    mask_kept = mask[:, grad_from:] & (positions.unsqueeze(0) >= window_start.unsqueeze(1))  # (B, T_kept)
    return torch.cat(kept, dim=1), mask_kept                             # (B, T_kept, E), (B, T_kept)


class PoolingHead(nn.Module):
    """The classifier head of ULMFiT §3.3: [BatchNorm -> Dropout -> Linear -> ReLU] per hidden layer, then
    BatchNorm -> Dropout -> Linear to the C class logits.

    `hidden` is one size or a list of sizes (the paper and fastai use [50]); `dropouts` has one probability
    per Linear layer, bottom first (len(hidden) + 1).
    """

    def __init__(self, in_size: int, n_classes: int, hidden: int | Sequence[int] = 50,
                 dropouts: Sequence[float] = (0.1, 0.1)):
        super().__init__()
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        sizes = [in_size, *hidden, n_classes]
        if len(dropouts) != len(sizes) - 1:
            raise ValueError(f"need {len(sizes) - 1} dropouts (one per Linear layer), got {len(dropouts)}")
        layers: list[nn.Module] = []
        for i, (n_in, n_out, p) in enumerate(zip(sizes[:-1], sizes[1:], dropouts)):
            layers += [nn.BatchNorm1d(n_in), nn.Dropout(p), nn.Linear(n_in, n_out)]
            if i < len(sizes) - 2:
                layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.layers(pooled)                                       # (B, 3E) -> (B, C)


class TextClassifier(nn.Module):
    """The AWD-LSTM encoder + BPT3C + masked concat pooling + `PoolingHead` (ULMFiT §3.3).

    Everything the constructor needs is in plain configs, so a checkpoint (state_dict + config) rebuilds it.
    """

    def __init__(self, model_config: ModelConfig, n_classes: int, bptt: int = 70, max_len: int = 1400,
                 head_hidden: int | Sequence[int] = 50, head_dropouts: Sequence[float] = (0.1, 0.1),
                 read_tokens: int = 0):
        super().__init__()
        if n_classes < 2:
            raise UlmfitError(f"a classifier needs at least 2 classes, got {n_classes}")
        self.config = model_config
        self.n_classes, self.bptt, self.max_len, self.read_tokens = n_classes, bptt, max_len, read_tokens
        self.encoder = AWDLSTMEncoder(model_config)
        self.head = PoolingHead(3 * model_config.emb_size, n_classes, head_hidden, head_dropouts)

    @classmethod
    def from_config(cls, model_config: ModelConfig, n_classes: int, head: HeadConfig | None = None,
                    bptt: int = 70) -> "TextClassifier":
        """Build from the model config, the classify stage's HeadConfig (max_len, head sizes) and its bptt."""
        h = head or HeadConfig()
        return cls(model_config, n_classes, bptt=bptt, max_len=h.max_len, head_hidden=h.head_hidden,
                   head_dropouts=(h.head_dropout, h.head_dropout_final), read_tokens=h.read_tokens)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits (B, C) in fp32 for right-padded tokens (B, T) with mask (B, T) True at real tokens."""
        if self.read_tokens and tokens.shape[1] > self.read_tokens:     # right-padded: the first N real tokens
            tokens, mask = tokens[:, :self.read_tokens], mask[:, :self.read_tokens]
        outputs, mask_kept = encode_in_chunks(self.encoder, tokens, mask, self.bptt, self.max_len)
        pooled = masked_concat_pool(outputs, mask_kept)                  # (B, 3E)
        # BatchNorm statistics in fp32; under autocast the Linear layers still run in bf16
        return self.head(pooled.float()).float()                         # (B, C)

    def layer_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        """Parameter groups bottom -> top for discriminative LRs and gradual unfreezing (ULMFiT §3.2-3.3):
        ("embedding",), ("lstm_0",) ... ("lstm_{L-1}",), ("head",). Every parameter appears exactly once."""
        names = ["embedding"] + [f"lstm_{i}" for i in range(self.config.n_layers)]
        groups: dict[str, list[nn.Parameter]] = {name: [] for name in names}
        for name, param in self.encoder.named_parameters():           # named_parameters() dedupes shared ones
            group = _encoder_group(name)
            if group not in groups:
                raise RuntimeError(f"encoder parameter {name!r} has no layer group")
            groups[group].append(param)
        groups["head"] = list(self.head.parameters())
        return list(groups.items())

    def load_encoder_state(self, lm_state_dict: dict[str, torch.Tensor]) -> None:
        """Copy the encoder weights from a LanguageModel or TextClassifier state_dict (its `encoder.*` keys; a
        decoder or head is ignored).

        Raises UlmfitError naming the offending keys if the two models were built with different sizes.
        """
        prefix = "encoder."
        state = {k[len(prefix):]: v for k, v in lm_state_dict.items() if k.startswith(prefix)}
        if not state:
            raise UlmfitError("the language-model weights hold no 'encoder.*' keys; "
                              "pass the state_dict of a ulmfit LanguageModel")
        own = self.encoder.state_dict()
        problems = [f"missing {k}" for k in sorted(set(own) - set(state))]
        problems += [f"unexpected {k}" for k in sorted(set(state) - set(own))]
        problems += [f"{k}: language model {tuple(state[k].shape)} vs classifier {tuple(v.shape)}"
                     for k, v in own.items() if k in state and state[k].shape != v.shape]
        if problems:
            shown = "; ".join(problems[:4]) + (f"; ... ({len(problems)} in all)" if len(problems) > 4 else "")
            raise UlmfitError(f"the language model does not fit this classifier's encoder ({shown}); "
                              "build the classifier with the language model's model config and tokenizer")
        self.encoder.load_state_dict(state)


def _encoder_group(param_name: str) -> str:
    """'embedding.weight' -> 'embedding'; 'rnns.2.weight_hh_raw' -> 'lstm_2'."""
    head, _, rest = param_name.partition(".")
    if head == "rnns":
        return f"lstm_{rest.partition('.')[0]}"
    return head
