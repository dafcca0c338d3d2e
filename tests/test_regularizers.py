"""Behaviour matrix of STYLE §9.1 for every regulariser in ulmfit/model/regularizers.py."""
import warnings

import pytest
import torch
from torch import nn

from ulmfit.model.regularizers import (EmbeddingDropout, LockedDropout, WeightDropLSTM, activation_penalty,
                                 dropout_mask, temporal_penalty)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class TestDropoutMask:
    def test_has_requested_shape(self, gen):
        """The mask has exactly the requested shape."""
        assert dropout_mask(torch.zeros(1), (3, 1, 5), 0.3, gen).shape == (3, 1, 5)

    def test_all_ones_at_p_zero(self, gen):
        """At p=0 nothing is dropped and nothing is rescaled."""
        assert torch.equal(dropout_mask(torch.zeros(1), (4, 6), 0.0, gen), torch.ones(4, 6))

    def test_values_are_zero_or_rescaled(self, gen):
        """Every entry is either 0 or 1/(1-p)."""
        mask = dropout_mask(torch.zeros(1), (200, 50), 0.4, gen)
        assert mask.unique().tolist() == [0.0, pytest.approx(1 / 0.6)]

    def test_mean_is_about_one(self, gen):
        """The rescale keeps the expected value at 1."""
        mask = dropout_mask(torch.zeros(1), (1000, 100), 0.3, gen)
        assert mask.mean().item() == pytest.approx(1.0, abs=0.01)

    def test_is_fp32_for_low_precision_input(self, gen):
        """A mask for a bf16 tensor is drawn in fp32, so 1/(1-p) is not rounded."""
        assert dropout_mask(torch.zeros(1, dtype=torch.bfloat16), (3,), 0.5, gen).dtype == torch.float32

    def test_rejects_p_of_one(self):
        """p must be in [0, 1): p=1 would divide by zero."""
        with pytest.raises(ValueError):
            dropout_mask(torch.zeros(1), (3,), 1.0)


class TestLockedDropout:
    def test_output_shape_equals_input_shape(self, gen):
        """The output has the input's (B, T, H) shape."""
        assert LockedDropout(0.5).train()(torch.randn(4, 7, 3), gen).shape == (4, 7, 3)

    @pytest.mark.parametrize("p, training", [(0.5, False), (0.0, True)])
    def test_is_identity_in_eval_or_at_p_zero(self, p, training, gen):
        """In eval mode, or at p=0, the input comes back unchanged."""
        x = torch.randn(4, 7, 3)
        assert torch.equal(LockedDropout(p).train(training)(x, gen), x)

    def test_shares_mask_across_time(self, gen):
        """One mask is drawn per (sequence, unit) and reused at every time step."""
        y = LockedDropout(0.5).train()(torch.ones(4, 7, 3), gen)
        assert torch.equal(y, y[:, :1, :].expand_as(y))

    def test_masks_differ_across_batch_rows(self, gen):
        """Different sequences of the batch get different masks."""
        y = LockedDropout(0.5).train()(torch.ones(16, 2, 32), gen)
        assert not all(torch.equal(y[0], y[b]) for b in range(1, 16))

    def test_kept_units_are_rescaled(self, gen):
        """A kept activation comes out as x / (1 - p)."""
        x = torch.randn(4, 7, 3)
        y = LockedDropout(0.25).train()(x, gen)
        kept = y != 0
        assert torch.allclose(y[kept], x[kept] / 0.75)

    def test_gradient_is_zero_exactly_where_masked(self):
        """The gradient is the rebuilt mask: 0 where dropped, 1/(1-p) where kept."""
        x = torch.randn(4, 7, 3, requires_grad=True)
        LockedDropout(0.5).train()(x, seeded(3)).sum().backward()
        mask = dropout_mask(x, (4, 1, 3), 0.5, seeded(3))
        assert torch.equal(x.grad, mask.expand_as(x))

    def test_drop_rate_matches_nn_dropout_for_one_step(self, gen):
        """With T=1 it drops the same fraction as nn.Dropout, within tolerance."""
        x = torch.ones(500, 1, 100)
        ours = (LockedDropout(0.3).train()(x, gen) == 0).float().mean().item()
        torch.manual_seed(0)
        theirs = (nn.Dropout(0.3).train()(x) == 0).float().mean().item()
        assert ours == pytest.approx(theirs, abs=0.01)

    def test_keeps_bf16_activations_bf16(self, gen):
        """A bf16 input stays bf16 so the next layer of a bf16 model gets the dtype it expects."""
        x = torch.randn(4, 7, 3, dtype=torch.bfloat16)
        assert LockedDropout(0.5).train()(x, gen).dtype == torch.bfloat16


class TestEmbeddingDropout:
    def make(self):
        torch.manual_seed(0)
        return nn.Embedding(10, 5, padding_idx=0), torch.tensor([[1, 2, 3, 1], [3, 4, 1, 9]])

    def test_output_shape(self, gen):
        """Tokens (B, T) come out as vectors (B, T, E)."""
        emb, tokens = self.make()
        assert EmbeddingDropout(0.5).train()(tokens, emb, gen).shape == (2, 4, 5)

    @pytest.mark.parametrize("p, training", [(0.5, False), (0.0, True)])
    def test_equals_plain_embedding_in_eval_or_at_p_zero(self, p, training, gen):
        """In eval mode, or at p=0, it is exactly nn.Embedding."""
        emb, tokens = self.make()
        assert torch.equal(EmbeddingDropout(p).train(training)(tokens, emb, gen), emb(tokens))

    def test_dropped_word_is_zero_at_every_position(self):
        """A word type whose row is dropped vanishes at every position where it occurs."""
        emb, tokens = self.make()
        row_mask = dropout_mask(emb.weight, (10, 1), 0.5, seeded(1)).squeeze(1)
        y = EmbeddingDropout(0.5).train()(tokens, emb, seeded(1))
        dropped = row_mask[tokens] == 0
        assert dropped.any() and (~dropped).any()
        assert torch.equal(y[dropped], torch.zeros_like(y[dropped]))
        assert (y[~dropped].abs().sum(-1) > 0).all()

    def test_kept_rows_are_rescaled(self, gen):
        """Kept word vectors are the embedding row times 1/(1-p)."""
        emb, tokens = self.make()
        y = EmbeddingDropout(0.2).train()(tokens, emb, gen)
        kept = y.abs().sum(-1) > 0
        assert torch.allclose(y[kept], emb(tokens)[kept] / 0.8)

    def test_equals_lookup_in_masked_weight_matrix(self):
        """With a given mask it equals an embedding lookup in (row mask * weight), AWD-LSTM's formulation."""
        emb, tokens = self.make()
        row_mask = dropout_mask(emb.weight, (10, 1), 0.5, seeded(2))
        expected = nn.functional.embedding(tokens, emb.weight * row_mask, padding_idx=0)
        assert torch.allclose(EmbeddingDropout(0.5).train()(tokens, emb, seeded(2)), expected)

    def test_no_gradient_reaches_dropped_rows(self):
        """Dropped rows of the embedding matrix get a zero gradient; kept, used rows do not."""
        emb, tokens = self.make()
        EmbeddingDropout(0.5).train()(tokens, emb, seeded(1)).sum().backward()
        row_mask = dropout_mask(emb.weight, (10, 1), 0.5, seeded(1)).squeeze(1)
        used = torch.zeros(10, dtype=torch.bool)
        used[tokens.flatten()] = True
        assert (emb.weight.grad[row_mask == 0] == 0).all()
        assert (emb.weight.grad[(row_mask > 0) & used].abs().sum(-1) > 0).all()


class TestWeightDropLSTM:
    def pair(self, p: float = 0.5):
        """Our layer and an nn.LSTM holding the same weights."""
        torch.manual_seed(0)
        ours, plain = WeightDropLSTM(5, 6, p), nn.LSTM(5, 6, batch_first=True)
        with torch.no_grad():
            for mine, theirs in [("weight_ih", "weight_ih_l0"), ("weight_hh_raw", "weight_hh_l0"),
                                 ("bias_ih", "bias_ih_l0"), ("bias_hh", "bias_hh_l0")]:
                getattr(ours, mine).copy_(getattr(plain, theirs))
        return ours, plain

    def inputs(self, batch_size: int = 3):
        torch.manual_seed(1)
        return torch.randn(batch_size, 4, 5), (torch.randn(1, batch_size, 6), torch.randn(1, batch_size, 6))

    def test_shapes_match_nn_lstm(self, gen):
        """Output and (h, c) have the shapes nn.LSTM gives."""
        ours, plain = self.pair()
        x, hidden = self.inputs()
        out, (h, c) = ours.train()(x, hidden, gen)
        ref, (h_ref, c_ref) = plain(x, hidden)
        assert (out.shape, h.shape, c.shape) == (ref.shape, h_ref.shape, c_ref.shape)

    @pytest.mark.parametrize("p, training", [(0.5, False), (0.0, True)])
    def test_is_bit_equal_to_nn_lstm_in_eval_or_at_p_zero(self, p, training):
        """In eval mode, or at p=0, it is bit-equal to nn.LSTM with the same weights."""
        ours, plain = self.pair(p)
        x, hidden = self.inputs()
        out, (h, c) = ours.train(training)(x, hidden)
        ref, (h_ref, c_ref) = plain(x, hidden)
        assert torch.equal(out, ref) and torch.equal(h, h_ref) and torch.equal(c, c_ref)

    def test_drops_about_p_of_weight_hh(self):
        """The dropped hidden-to-hidden matrix has a fraction ≈ p of zeros, the rest rescaled."""
        layer = WeightDropLSTM(20, 30, 0.4).train()
        dropped = layer.dropped_weight_hh(seeded(0))
        assert (dropped == 0).float().mean().item() == pytest.approx(0.4, abs=0.03)
        assert torch.allclose(dropped[dropped != 0], layer.weight_hh_raw[dropped != 0] / 0.6)

    def test_drops_only_weight_hh(self):
        """The training output equals nn.LSTM run with the rebuilt dropped U and untouched W and biases."""
        ours, plain = self.pair(0.5)
        x, hidden = self.inputs()
        out, _ = ours.train()(x, hidden, seeded(4))
        with torch.no_grad():
            plain.weight_hh_l0.mul_(dropout_mask(ours.weight_hh_raw, (24, 6), 0.5, seeded(4)))
        assert torch.allclose(out, plain(x, hidden)[0], atol=1e-6)

    def test_draws_a_fresh_mask_each_forward(self):
        """Two training forwards on the same input give different outputs."""
        ours, _ = self.pair()
        x, hidden = self.inputs()
        assert not torch.equal(ours.train()(x, hidden)[0], ours(x, hidden)[0])

    def test_raw_weight_gets_gradient_zero_where_dropped(self):
        """weight_hh_raw receives a gradient, and it is zero exactly where the weight was dropped."""
        ours, _ = self.pair()
        x, hidden = self.inputs()
        ours.train()(x, hidden, seeded(5))[0].sum().backward()
        mask = dropout_mask(ours.weight_hh_raw, (24, 6), 0.5, seeded(5))
        grad = ours.weight_hh_raw.grad
        assert (grad[mask == 0] == 0).all() and (grad[mask > 0] != 0).float().mean() > 0.9

    def test_never_mutates_the_raw_weight(self, gen):
        """A training forward and backward leave weight_hh_raw untouched."""
        ours, _ = self.pair()
        before = ours.weight_hh_raw.detach().clone()
        x, hidden = self.inputs()
        ours.train()(x, hidden, gen)[0].sum().backward()
        assert torch.equal(ours.weight_hh_raw, before)

    def test_one_optimizer_step_changes_raw_weight_and_output(self, gen):
        """After one SGD step both the raw weight and the layer's (eval) output change (pytorch#65688)."""
        ours, _ = self.pair()
        x, hidden = self.inputs()
        weight_before, out_before = ours.weight_hh_raw.detach().clone(), ours.eval()(x, hidden)[0].detach()
        optimizer = torch.optim.SGD(ours.parameters(), lr=0.5)
        ours.train()(x, hidden, gen)[0].pow(2).sum().backward()
        optimizer.step()
        assert not torch.equal(ours.weight_hh_raw, weight_before)
        assert not torch.allclose(ours.eval()(x, hidden)[0], out_before)

    def test_state_dict_round_trips(self):
        """Loading the state_dict into a fresh layer reproduces the eval output exactly."""
        ours, _ = self.pair()
        fresh = WeightDropLSTM(5, 6, 0.5)
        fresh.load_state_dict(ours.state_dict())
        assert set(ours.state_dict()) == {"weight_ih", "weight_hh_raw", "bias_ih", "bias_hh"}
        x, hidden = self.inputs()
        assert torch.equal(fresh.eval()(x, hidden)[0], ours.eval()(x, hidden)[0])

    @pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
    def test_works_after_to_dtype(self, dtype, gen):
        """After .to(dtype) the layer trains in that dtype and the raw weight still gets its gradient."""
        ours, _ = self.pair()
        ours = ours.to(dtype).train()
        x, hidden = self.inputs()
        out, _ = ours(x.to(dtype), tuple(s.to(dtype) for s in hidden), gen)
        out.float().sum().backward()
        assert out.dtype == dtype and ours.weight_hh_raw.grad.dtype == dtype

    def test_emits_no_warning(self, gen):
        """Forward and backward raise no warning at all (e.g. no 'not part of single contiguous chunk')."""
        ours, _ = self.pair()
        x, hidden = self.inputs()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ours.train()(x, hidden, gen)[0].sum().backward()
        assert [str(w.message) for w in caught] == []

    def test_runs_on_the_fused_kernel(self, gen):
        """The recurrence is one aten::lstm call per layer, not a Python loop over time steps."""
        ours, _ = self.pair()
        x, hidden = self.inputs()
        with torch.autograd.profiler.profile() as prof:
            ours.train()(x, hidden, gen)
        names = [event.name for event in prof.function_events]
        assert names.count("aten::lstm") == 1 and "aten::lstm_cell" not in names

    @pytest.mark.gpu
    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    def test_runs_on_cuda_without_warning(self, gen):
        """After .to('cuda') it runs on cuDNN with no weight-format warning."""
        ours, _ = self.pair()
        x, hidden = self.inputs()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out, _ = ours.cuda().train()(x.cuda(), tuple(s.cuda() for s in hidden))
            out.sum().backward()
        assert out.is_cuda and [str(w.message) for w in caught] == []

    @pytest.mark.bf16
    def test_runs_in_bf16_under_cpu_bf16_autocast(self, gen):
        """Under CPU bf16 autocast the output and (h, c) are bf16, as autocast alone made them before."""
        ours, _ = self.pair()
        x, hidden = self.inputs()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, (h, c) = ours.train()(x, hidden, gen)
        assert (out.dtype, h.dtype, c.dtype) == (torch.bfloat16,) * 3

    @pytest.mark.bf16
    def test_fp32_parameters_get_fp32_gradients_under_autocast(self, gen):
        """The casts to the autocast dtype are differentiable: every fp32 parameter gets an fp32 gradient."""
        ours, _ = self.pair()
        x, hidden = self.inputs()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = ours.train()(x, hidden, gen)
        out.float().sum().backward()
        assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in ours.parameters())

    def test_autocast_dtype_decides_the_lstm_dtype(self, gen):
        """Under fp16 autocast the LSTM runs in fp16: the autocast dtype decides, not a hard-coded bf16."""
        ours, _ = self.pair()
        x, hidden = self.inputs()
        with torch.autocast("cpu", dtype=torch.float16):
            if torch.get_autocast_dtype("cpu") != torch.float16 or not torch.is_autocast_enabled("cpu"):
                pytest.skip("this torch's CPU autocast does not take float16")
            out, (h, c) = ours.train()(x, hidden, gen)
        out.float().sum().backward()
        assert (out.dtype, h.dtype, c.dtype) == (torch.float16,) * 3
        assert ours.weight_hh_raw.grad.dtype == torch.float32

    @pytest.mark.gpu
    @pytest.mark.skipif(not torch.cuda.is_available() or not torch.cuda.is_bf16_supported(),
                        reason="needs a CUDA device with bf16")
    def test_runs_in_bf16_under_cuda_bf16_autocast(self, gen):
        """Under CUDA bf16 autocast the LSTM runs in bf16 (autocast alone runs cuDNN in fp16), silently."""
        ours, _ = self.pair()
        x, hidden = self.inputs()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out, (h, c) = ours.cuda().train()(x.cuda(), tuple(s.cuda() for s in hidden))
            out.float().sum().backward()
        assert (out.dtype, h.dtype, c.dtype) == (torch.bfloat16,) * 3
        assert ours.weight_hh_raw.grad.dtype == torch.float32
        assert [str(w.message) for w in caught] == []


class TestPenalties:
    def test_are_scalars(self):
        """AR and TAR return 0-d tensors."""
        x = torch.randn(2, 5, 3)
        assert activation_penalty(x, 2.0).shape == () and temporal_penalty(x, 1.0).shape == ()

    def test_are_zero_at_zero_coefficient(self):
        """α=0 and β=0 switch the penalties off."""
        x = torch.randn(2, 5, 3)
        assert activation_penalty(x, 0.0).item() == 0.0 and temporal_penalty(x, 0.0).item() == 0.0

    def test_tar_is_zero_for_constant_activations(self):
        """TAR is zero for activations that do not change over time."""
        assert temporal_penalty(torch.randn(2, 1, 3).expand(2, 6, 3), 1.0).item() == 0.0

    def test_ar_is_linear_in_alpha(self):
        """Doubling α doubles AR."""
        x = torch.randn(2, 5, 3)
        assert activation_penalty(x, 4.0).item() == pytest.approx(2 * activation_penalty(x, 2.0).item())

    def test_match_hand_written_formulas(self):
        """AR = α·mean(h²) and TAR = β·mean((h_t - h_{t-1})²), as in awd-lstm-lm."""
        x = torch.randn(2, 5, 3)
        assert activation_penalty(x, 2.0).item() == pytest.approx(2.0 * (x ** 2).sum().item() / 30)
        diff = x[:, 1:] - x[:, :-1]
        assert temporal_penalty(x, 1.5).item() == pytest.approx(1.5 * (diff ** 2).sum().item() / 24)

    def test_gradients_are_finite_and_non_zero(self):
        """Both penalties backpropagate a finite, non-zero gradient for random input."""
        x = torch.randn(2, 5, 3, requires_grad=True)
        (activation_penalty(x, 2.0) + temporal_penalty(x, 1.0)).backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0

    def test_are_fp32_for_bf16_activations(self):
        """The penalties are computed in fp32 even when the activations are bf16."""
        x = torch.randn(2, 5, 3, dtype=torch.bfloat16)
        assert activation_penalty(x, 2.0).dtype == temporal_penalty(x, 1.0).dtype == torch.float32
