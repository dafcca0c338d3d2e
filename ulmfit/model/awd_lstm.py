"""model/ layer, after `regularizers` (regularised layers -> model): the AWD-LSTM encoder and its LM head.

AWD-LSTM (Merity, Keskar & Socher 2017) is the backbone ULMFiT pretrains and fine-tunes (Howard & Ruder 2018,
§3.1). Data flow, batch-first, with the regularisers of `regularizers.py`:

    tokens (B, T) --embedding + embedding dropout (§4.3)--> (B, T, E) --locked dropout_input (§4.2)-->
    LSTM_0 (E -> H) --locked dropout_hidden--> LSTM_1 (H -> H) --...--> LSTM_{L-1} (H -> E)
      --locked dropout_output--> decoder (E -> V), its weight tied to the embedding (§4.4, Press & Wolf 2017)

Every LSTM has weight-drop on its hidden-to-hidden matrix (§2). The last layer outputs E, not H, so that the
decoder can share the embedding matrix (§4.5 "independent embedding size and hidden size").

Shape letters: B batch, T time (BPTT window), E embedding size, H hidden size, V vocabulary, L layers.

The forward keeps no state: the hidden state goes in and comes out, and the training loop detaches it between
windows (`detach_hidden`), otherwise backprop would run through the whole corpus. Per-layer raw and dropped
outputs come back too, because AR reads the dropped and TAR the raw output of the last layer (§4.6).

Pure nn.Module code: it imports torch, the configs and the regularisers only. Loading a run dir
(`LanguageModel.from_pretrained`) lives in ulmfit/predict.py.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import UlmfitError
from .regularizers import EmbeddingDropout, LockedDropout, WeightDropLSTM

Hidden = list  # per layer (h, c), each (1, B, H_l); a plain list so that it is easy to print and detach

EMBEDDING_INIT_RANGE = 0.1   # AWD-LSTM's `initrange`: embedding (and an untied decoder) uniform on ±0.1


def layer_sizes(config: ModelConfig) -> list[tuple[int, int]]:
    """(input, output) size of each LSTM layer: E -> H -> ... -> H -> E."""
    sizes = [config.emb_size] + [config.hidden_size] * (config.n_layers - 1) + [config.emb_size]
    return list(zip(sizes[:-1], sizes[1:]))


def init_hidden(config: ModelConfig, batch_size: int, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> Hidden:
    """Zero (h, c) for every layer, each (1, B, H_l): the state at the start of a stream."""
    return [(torch.zeros(1, batch_size, out_size, device=device, dtype=dtype),
             torch.zeros(1, batch_size, out_size, device=device, dtype=dtype))
            for _, out_size in layer_sizes(config)]


def detach_hidden(hidden: Hidden) -> Hidden:
    """The same state cut from the graph: the next window starts here but does not backprop into the last."""
    return [(h.detach(), c.detach()) for h, c in hidden]


class EncoderOutput(NamedTuple):
    raw_outputs: list[torch.Tensor]       # per layer (B, T, H_l), before any dropout; the last has size E
    dropped_outputs: list[torch.Tensor]   # per layer after locked dropout (hidden; output p last)
    hidden: Hidden                        # per layer (h, c), each (1, B, H_l)


class AWDLSTMEncoder(nn.Module):
    """Embedding -> L weight-dropped LSTM layers, with embedding, input, hidden and output dropout."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.vocab_size <= 0:
            raise UlmfitError("model.vocab_size must be set (it comes from the tokenizer)")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.emb_size, padding_idx=config.pad_id)
        self.embedding_dropout = EmbeddingDropout(config.dropout("dropout_embed"))
        self.input_dropout = LockedDropout(config.dropout("dropout_input"))
        self.rnns = nn.ModuleList(WeightDropLSTM(i, o, config.dropout("dropout_weight"))
                                  for i, o in layer_sizes(config))
        # Between layers dropout_hidden; after the last layer dropout_output (what the decoder/pooling sees).
        layer_ps = [config.dropout("dropout_hidden")] * (config.n_layers - 1)
        layer_ps.append(config.dropout("dropout_output"))
        self.layer_dropouts = nn.ModuleList(LockedDropout(p) for p in layer_ps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """AWD-LSTM's initialisation: embedding uniform on ±0.1 (pad row zero), LSTMs as `nn.LSTM` does."""
        nn.init.uniform_(self.embedding.weight, -EMBEDDING_INIT_RANGE, EMBEDDING_INIT_RANGE)
        with torch.no_grad():
            self.embedding.weight[self.config.pad_id].zero_()
        for rnn in self.rnns:
            rnn.reset_parameters()

    def forward(self, tokens: torch.Tensor, hidden: Hidden | None = None,
                generator: torch.Generator | None = None) -> EncoderOutput:
        """tokens (B, T) long, hidden from the previous window or None (zeros) -> EncoderOutput."""
        batch_size = tokens.size(0)
        if hidden is None:
            hidden = init_hidden(self.config, batch_size, tokens.device, self.embedding.weight.dtype)
        elif hidden[0][0].size(1) != batch_size:
            raise ValueError(f"hidden state is for batch size {hidden[0][0].size(1)} but tokens have "
                             f"{batch_size} rows; pass hidden=None to start a new stream")
        x = self.embedding_dropout(tokens, self.embedding, generator)    # (B, T) -> (B, T, E)
        x = self.input_dropout(x, generator)
        raw_outputs, dropped_outputs, new_hidden = [], [], []
        for rnn, dropout, state in zip(self.rnns, self.layer_dropouts, hidden):
            x, state = rnn(x, state, generator)                          # (B, T, I) -> (B, T, H_l)
            raw_outputs.append(x)
            new_hidden.append(state)
            x = dropout(x, generator)
            dropped_outputs.append(x)
        return EncoderOutput(raw_outputs, dropped_outputs, new_hidden)


class LMOutput(NamedTuple):
    logits: torch.Tensor                  # (B, T, V)
    hidden: Hidden
    raw_outputs: list[torch.Tensor]
    dropped_outputs: list[torch.Tensor]


class LanguageModel(nn.Module):
    """AWD-LSTM encoder + linear decoder over the vocabulary, tied to the embedding (AWD-LSTM §4.4)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = AWDLSTMEncoder(config)
        self.decoder = nn.Linear(config.emb_size, config.vocab_size, bias=config.out_bias)
        if config.tie_weights:
            self.decoder.weight = self.encoder.embedding.weight            # one Parameter, two uses
        else:
            nn.init.uniform_(self.decoder.weight, -EMBEDDING_INIT_RANGE, EMBEDDING_INIT_RANGE)
        if self.decoder.bias is not None:
            nn.init.zeros_(self.decoder.bias)

    @classmethod
    def from_config(cls, config: ModelConfig) -> "LanguageModel":
        """A freshly initialised language model with the sizes and dropouts of `config`."""
        return cls(config)

    def forward(self, tokens: torch.Tensor, hidden: Hidden | None = None,
                generator: torch.Generator | None = None) -> LMOutput:
        """tokens (B, T) long -> LMOutput with logits (B, T, V) read from the last dropped output."""
        encoded = self.encoder(tokens, hidden, generator)
        logits = self.decoder(encoded.dropped_outputs[-1])                 # (B, T, E) -> (B, T, V)
        return LMOutput(logits, encoded.hidden, encoded.raw_outputs, encoded.dropped_outputs)

    def layer_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        """Parameter groups for discriminative fine-tuning (ULMFiT §3.2), bottom -> top (fastai's order):
        ("lstm_0", ...), ..., ("lstm_{L-1}", ...), ("embedding", [embedding/decoder weight(s), decoder bias]).

        Every parameter appears exactly once; the tied embedding/decoder weight sits in the top group, which
        is the one trained first when the LM is fine-tuned with the rest frozen.
        """
        groups = [(f"lstm_{i}", list(rnn.parameters())) for i, rnn in enumerate(self.encoder.rnns)]
        top = [self.encoder.embedding.weight]
        if self.decoder.weight is not self.encoder.embedding.weight:
            top.append(self.decoder.weight)
        if self.decoder.bias is not None:
            top.append(self.decoder.bias)
        groups.append(("embedding", top))
        return groups
