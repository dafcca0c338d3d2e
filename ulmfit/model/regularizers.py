"""model/ layer, first file (batches -> regularised activations): the AWD-LSTM regularisers, written out by hand.

Merity, Keskar & Socher 2017, "Regularizing and Optimizing LSTM Language Models" (AWD-LSTM), used as the
ULMFiT backbone (Howard & Ruder 2018, §3.1):

| technique                        | AWD-LSTM § | here                 | acts on                          |
|----------------------------------|------------|----------------------|----------------------------------|
| weight-drop (DropConnect on U)   | §2         | `WeightDropLSTM`     | hidden-to-hidden weights         |
| variational ("locked") dropout   | §4.2       | `LockedDropout`      | activations, one mask per seq.   |
| embedding dropout                | §4.3       | `EmbeddingDropout`   | whole rows (word types) of E     |
| activation regularisation (AR)   | §4.6       | `activation_penalty` | dropped output of the last layer |
| temporal activation reg. (TAR)   | §4.6       | `temporal_penalty`   | raw output of the last layer     |

Every regulariser is the identity in eval mode and at p=0, and takes an optional `generator` so that a test
can redraw the exact mask. Masks are drawn and scaled in fp32 (never in bf16/fp16, where 1/(1-p) would
round), and index tensors are never cast. Shapes are batch-first: B batch, T time, E embedding, H hidden, V vocabulary.
"""
from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def dropout_mask(like: torch.Tensor, shape: tuple[int, ...], p: float,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """A tensor of `shape` whose entries are 0 with probability p and 1/(1-p) otherwise.

    Scaling kept entries by 1/(1-p) keeps the expected activation unchanged, so eval mode needs no rescale.
    The mask lives on `like`'s device, in fp32 even when `like` is bf16/fp16 (fp64 stays fp64).
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    dtype = torch.float32 if like.dtype in _LOW_PRECISION or not like.is_floating_point() else like.dtype
    if p == 0.0:
        return torch.ones(shape, device=like.device, dtype=dtype)
    # Uniform draws thresholded in place: Bernoulli(1-p) with the same law as bernoulli_, but the CPU's
    # vectorised uniform generator is ~3x faster, which matters for weight-drop's 4H x H mask every batch.
    mask = torch.rand(shape, generator=generator, device=like.device, dtype=dtype)
    return mask.ge_(p).div_(1.0 - p)


def _apply_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # The product is taken in the mask's fp32 and rounded once back to x's dtype, so a bf16 activation stays
    # bf16 for the next layer (a model cast with .to(bfloat16) must not see fp32 inputs).
    return (x * mask).to(x.dtype)


class LockedDropout(nn.Module):
    """Variational dropout (AWD-LSTM §4.2; Gal & Ghahramani 2016): one mask per (sequence, unit), reused at
    every time step, so the same units are silenced for the whole BPTT window."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x (B, T, H) -> (B, T, H)."""
        if not self.training or self.p == 0.0:
            return x
        mask = dropout_mask(x, (x.size(0), 1, x.size(2)), self.p, generator)   # (B, 1, H): broadcast over T
        return _apply_mask(x, mask)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class EmbeddingDropout(nn.Module):
    """Embedding dropout (AWD-LSTM §4.3; Gal & Ghahramani 2016): drop whole rows (word types) of the embedding
    matrix for the batch, so a dropped word vanishes at every position it occurs; kept rows scale by 1/(1-p).

    It owns no weights: it is handed the `nn.Embedding`, so the embedding (tied to the decoder) is registered
    once. Masking the looked-up vectors by mask[tokens] equals looking up in (mask * weight) but costs
    O(B*T*E) instead of O(V*E) per batch, and no gradient reaches a dropped row either way.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, tokens: torch.Tensor, embedding: nn.Embedding,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """tokens (B, T) long -> (B, T, E)."""
        vectors = embedding(tokens)                                        # (B, T, E)
        if not self.training or self.p == 0.0:
            return vectors
        row_mask = dropout_mask(embedding.weight, (embedding.num_embeddings, 1), self.p, generator)  # (V, 1)
        return _apply_mask(vectors, row_mask[tokens])                      # (B, T, 1) broadcast over E

    def extra_repr(self) -> str:
        return f"p={self.p}"


class WeightDropLSTM(nn.Module):
    """One LSTM layer with weight-drop (AWD-LSTM §2; DropConnect, Wan et al. 2013) on the hidden-to-hidden
    matrix U, running on torch's fused LSTM kernel (oneDNN on CPU, cuDNN on CUDA).

    The module owns its parameters: `weight_ih` (4H, I), `weight_hh_raw` (4H, H), `bias_ih`, `bias_hh`
    (gate order i, f, g, o, as in `nn.LSTM`). Each training forward draws a fresh elementwise mask for
    `weight_hh_raw` and calls the functional `torch.lstm` with the dropped copy, so autograd carries the
    gradient to the raw parameter (zero where dropped) and nothing is ever written into a parameter. Because no
    `nn.LSTM` is wrapped, there is no parameter deletion, no `flatten_parameters` patching, nothing that
    breaks on `.to(device)`, `.to(dtype)` or `load_state_dict` (awd-lstm-lm#86/#119, fastai#2591).
    """

    def __init__(self, input_size: int, hidden_size: int, weight_p: float = 0.0):
        super().__init__()
        self.input_size, self.hidden_size, self.weight_p = input_size, hidden_size, weight_p
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh_raw = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform on ±1/sqrt(H) for every weight and bias, as `nn.LSTM` and AWD-LSTM do."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def dropped_weight_hh(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """The hidden-to-hidden matrix for this forward: masked in training, the raw parameter otherwise."""
        if not self.training or self.weight_p == 0.0:
            return self.weight_hh_raw
        mask = dropout_mask(self.weight_hh_raw, self.weight_hh_raw.shape, self.weight_p, generator)
        return _apply_mask(self.weight_hh_raw, mask)

    def _kernel_weights(self, weight_hh: torch.Tensor,
                        dtype: torch.dtype | None = None) -> list[torch.Tensor]:
        """The kernel's four weights, cast to `dtype` when given (the casts are differentiable, so the fp32
        parameters still get fp32 gradients)."""
        parts = [self.weight_ih, weight_hh, self.bias_ih, self.bias_hh]
        if weight_hh.device.type != "cuda":   # the CPU (oneDNN) kernel takes separate tensors as they are
            return parts if dtype is None else [part.to(dtype) for part in parts]
        # cuDNN takes its fast path (and stays silent) only if the weights are consecutive views of one
        # buffer, as nn.LSTM's flattened weights are. One cat per forward builds that buffer, and the cast is
        # of the whole buffer, so the views stay consecutive; autograd routes each slice's gradient back to
        # its parameter.
        flat = torch.cat([part.reshape(-1) for part in parts])
        if dtype is not None:
            flat = flat.to(dtype)
        return [chunk.view_as(part) for chunk, part in zip(flat.split([p.numel() for p in parts]), parts)]

    def forward(self, x: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor],
                generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T, I), hidden (h, c) each (1, B, H) -> output (B, T, H), (h, c) each (1, B, H).

        Under autocast the LSTM runs in exactly the autocast dtype, on every device. Autocast alone does not
        give that on CUDA: its cuDNN RNN wrapper (ATen's AutocastRNN.cpp) casts to fp16 whatever the autocast
        dtype is, so a bf16 run would train its LSTMs in fp16 with no GradScaler. So we switch autocast off
        for this one call and cast the input, the state and the weights ourselves. For CPU bf16 that is what
        autocast already did (bf16 in, bf16 out); CPU fp16 autocast, which oneDNN could not run, now runs.
        """
        weight_hh, device_type, cast_to = self.dropped_weight_hh(generator), x.device.type, None
        if (torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)
                and x.dtype != torch.float64):     # autocast leaves fp64 alone, and so do we
            cast_to = torch.get_autocast_dtype(device_type)
            x, hidden = x.to(cast_to), (hidden[0].to(cast_to), hidden[1].to(cast_to))
        with torch.autocast(device_type, enabled=False) if cast_to else contextlib.nullcontext():
            weights = self._kernel_weights(weight_hh, cast_to)
            # Positional args of the functional op: has_biases, num_layers, dropout, train, bidirectional,
            # batch_first. `train` only tells the kernel to keep what backward needs, so it follows grad mode.
            output, h, c = torch.lstm(x, hidden, weights, True, 1, 0.0, torch.is_grad_enabled(), False, True)
        return output, (h, c)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, weight_p={self.weight_p}"


def activation_penalty(dropped_output: torch.Tensor, alpha: float) -> torch.Tensor:
    """AR (AWD-LSTM §4.6): alpha * mean((m ⊙ h_t)^2) over the *dropped* output of the last layer, in fp32.

    dropped_output (B, T, H) -> scalar. Penalising large activations keeps the LSTM's outputs small.
    """
    return alpha * dropped_output.float().pow(2).mean()


def temporal_penalty(raw_output: torch.Tensor, beta: float) -> torch.Tensor:
    """TAR (AWD-LSTM §4.6): beta * mean((h_t - h_{t-1})^2) over the *raw* output of the last layer, in fp32.

    raw_output (B, T, H) -> scalar. Penalising the step between consecutive outputs favours slow states.
    """
    raw = raw_output.float()
    if raw.size(1) < 2:
        return raw.new_zeros(())                                          # no step to compare: no penalty
    return beta * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
