"""The AWD-LSTM encoder and LM head of ulmfit/model/awd_lstm.py (STYLE §9.2)."""
import dataclasses
import math

import pytest
import torch
from torch import nn

from ulmfit.model.awd_lstm import AWDLSTMEncoder, LanguageModel, detach_hidden, init_hidden, layer_sizes
from ulmfit.errors import UlmfitError
from ulmfit.model.regularizers import activation_penalty, temporal_penalty


def no_dropout(config):
    return dataclasses.replace(config, dropout_scale=0.0)


def plain_stack(encoder: AWDLSTMEncoder) -> nn.ModuleList:
    """nn.LSTM layers holding copies of the encoder's weights."""
    stack = nn.ModuleList(nn.LSTM(i, o, batch_first=True) for i, o in layer_sizes(encoder.config))
    with torch.no_grad():
        for rnn, lstm in zip(encoder.rnns, stack):
            lstm.weight_ih_l0.copy_(rnn.weight_ih)
            lstm.weight_hh_l0.copy_(rnn.weight_hh_raw)
            lstm.bias_ih_l0.copy_(rnn.bias_ih)
            lstm.bias_hh_l0.copy_(rnn.bias_hh)
    return stack


class TestEncoder:
    def test_output_and_hidden_shapes(self, tiny_config, tiny_tokens):
        """Outputs are (B, T, H_l) per layer with H_last = E; hidden is (1, B, H_l) per layer."""
        out = AWDLSTMEncoder(tiny_config)(tiny_tokens)
        sizes = [12, 12, 8]
        assert [tuple(o.shape) for o in out.raw_outputs] == [(4, 7, s) for s in sizes]
        assert [tuple(o.shape) for o in out.dropped_outputs] == [(4, 7, s) for s in sizes]
        hidden_shapes = [(tuple(h.shape), tuple(c.shape)) for h, c in out.hidden]
        assert hidden_shapes == [((1, 4, s), (1, 4, s)) for s in sizes]

    def test_equals_plain_lstm_stack_without_dropout(self, tiny_config, tiny_tokens):
        """With every dropout at 0 (even in training mode) it equals embedding + a plain nn.LSTM stack."""
        encoder = AWDLSTMEncoder(no_dropout(tiny_config)).train()
        out = encoder(tiny_tokens)
        x = encoder.embedding(tiny_tokens)
        for lstm, raw in zip(plain_stack(encoder), out.raw_outputs):
            x, _ = lstm(x)
            assert torch.equal(x, raw)

    def test_new_batch_size_needs_no_resizing(self, tiny_config, tiny_tokens):
        """A call with a different batch size after a first call gets hidden states of the new size."""
        encoder = AWDLSTMEncoder(tiny_config)
        encoder(tiny_tokens)
        out = encoder(tiny_tokens[:3, :5])
        assert [tuple(h.shape) for h, _ in out.hidden] == [(1, 3, 12), (1, 3, 12), (1, 3, 8)]
        assert out.raw_outputs[-1].shape == (3, 5, 8)

    def test_rejects_hidden_of_another_batch_size(self, tiny_config, tiny_tokens):
        """A hidden state for B rows cannot be reused for B' rows: a clear error, no silent resize."""
        encoder = AWDLSTMEncoder(tiny_config)
        with pytest.raises(ValueError, match="batch size"):
            encoder(tiny_tokens[:3], encoder(tiny_tokens).hidden)

    def test_last_raw_output_at_final_step_is_final_hidden(self, tiny_config, tiny_tokens):
        """The last layer's raw output at the final time step equals its final h."""
        out = AWDLSTMEncoder(tiny_config).train()(tiny_tokens)
        assert torch.equal(out.raw_outputs[-1][:, -1], out.hidden[-1][0][0])

    def test_carried_hidden_continues_the_sequence(self, tiny_config, tiny_tokens):
        """In eval mode, two windows with the hidden state carried over equal one long window."""
        encoder = AWDLSTMEncoder(tiny_config).eval()
        whole = encoder(tiny_tokens).raw_outputs[-1]
        first = encoder(tiny_tokens[:, :3])
        second = encoder(tiny_tokens[:, 3:], first.hidden)
        assert torch.allclose(torch.cat([first.raw_outputs[-1], second.raw_outputs[-1]], 1), whole, atol=1e-6)

    def test_eval_mode_is_deterministic(self, tiny_config, tiny_tokens):
        """Two eval forwards give the same output."""
        encoder = AWDLSTMEncoder(tiny_config).eval()
        assert torch.equal(encoder(tiny_tokens).raw_outputs[-1], encoder(tiny_tokens).raw_outputs[-1])

    def test_same_seed_same_output_in_training(self, tiny_config, tiny_tokens):
        """With every regulariser on, the same seed gives the same output, another seed another one."""
        encoder = AWDLSTMEncoder(tiny_config).train()
        outputs = []
        for seed in (7, 7, 8):
            torch.manual_seed(seed)
            outputs.append(encoder(tiny_tokens).dropped_outputs[-1])
        assert torch.equal(outputs[0], outputs[1]) and not torch.equal(outputs[0], outputs[2])

    def test_initialisation(self, tiny_config):
        """Embedding uniform on ±0.1 with a zero pad row; LSTM weights uniform on ±1/sqrt(H_l)."""
        encoder = AWDLSTMEncoder(tiny_config)
        weight = encoder.embedding.weight
        assert weight.abs().max() <= 0.1 and weight.abs().max() > 0.09
        assert torch.equal(weight[tiny_config.pad_id], torch.zeros(8))
        for rnn, (_, out_size) in zip(encoder.rnns, layer_sizes(tiny_config)):
            assert all(p.abs().max() <= 1 / math.sqrt(out_size) for p in rnn.parameters())

    def test_dropouts_follow_config_and_scale(self, tiny_config):
        """Each regulariser's p is the config field times dropout_scale."""
        encoder = AWDLSTMEncoder(dataclasses.replace(tiny_config, dropout_scale=0.5))
        assert encoder.embedding_dropout.p == pytest.approx(0.01) and encoder.input_dropout.p == 0.125
        assert [d.p for d in encoder.layer_dropouts] == [0.075, 0.075, 0.05]
        assert all(rnn.weight_p == 0.1 for rnn in encoder.rnns)

    def test_requires_a_vocabulary_size(self, tiny_config):
        """vocab_size=0 (not yet set from the tokenizer) is a user error."""
        with pytest.raises(UlmfitError, match="vocab_size"):
            AWDLSTMEncoder(dataclasses.replace(tiny_config, vocab_size=0))


class TestHidden:
    def test_init_hidden_is_zero_with_layer_sizes(self, tiny_config):
        """init_hidden gives zero (h, c) of shape (1, B, H_l) for each layer."""
        hidden = init_hidden(tiny_config, 5)
        assert [tuple(h.shape) for h, _ in hidden] == [(1, 5, 12), (1, 5, 12), (1, 5, 8)]
        assert all(not h.any() and not c.any() for h, c in hidden)

    def test_detach_hidden_leaves_no_grad_fn(self, tiny_config, tiny_tokens):
        """After detach_hidden no state carries a grad_fn, so backprop stops at the window edge."""
        hidden = LanguageModel(tiny_config)(tiny_tokens).hidden
        assert all(h.grad_fn is not None for h, _ in hidden)
        assert all(h.grad_fn is None and c.grad_fn is None for h, c in detach_hidden(hidden))


class TestLanguageModel:
    def test_logit_shape(self, tiny_config, tiny_tokens):
        """The LM returns logits (B, T, V)."""
        assert LanguageModel.from_config(tiny_config)(tiny_tokens).logits.shape == (4, 7, 50)

    def test_decoder_reads_the_dropped_last_output(self, tiny_config, tiny_tokens):
        """The logits are the decoder applied to dropped_outputs[-1]."""
        model = LanguageModel(tiny_config).train()
        out = model(tiny_tokens)
        assert torch.allclose(out.logits, model.decoder(out.dropped_outputs[-1]))

    def test_tied_weights_share_storage_after_load_state_dict(self, tiny_config):
        """Decoder and embedding share one tensor, and still do after load_state_dict."""
        model, other = LanguageModel(tiny_config), LanguageModel(tiny_config)
        model.load_state_dict(other.state_dict())
        assert model.decoder.weight is model.encoder.embedding.weight
        assert model.decoder.weight.data_ptr() == model.encoder.embedding.weight.data_ptr()
        assert torch.equal(model.decoder.weight, other.encoder.embedding.weight)

    def test_decoder_bias_starts_at_zero(self, tiny_config):
        """AWD-LSTM initialises the decoder bias to zero."""
        assert not LanguageModel(tiny_config).decoder.bias.any()

    @pytest.mark.parametrize("tie", [True, False])
    def test_layer_groups_cover_every_parameter_once(self, tiny_config, tie):
        """layer_groups names lstm_0..lstm_{L-1}, embedding and holds each parameter exactly once."""
        model = LanguageModel(dataclasses.replace(tiny_config, tie_weights=tie))
        groups = model.layer_groups()
        assert [name for name, _ in groups] == ["lstm_0", "lstm_1", "lstm_2", "embedding"]
        ids = [id(p) for _, params in groups for p in params]
        assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}

    def test_one_optimizer_step_changes_the_output(self, tiny_config, tiny_tokens):
        """One Adam step on the LM loss changes every LSTM's raw weight and the eval output."""
        model = LanguageModel(tiny_config)
        before = model.eval()(tiny_tokens).logits.detach()
        raw_before = [rnn.weight_hh_raw.detach().clone() for rnn in model.encoder.rnns]
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        logits = model.train()(tiny_tokens).logits
        nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 50), tiny_tokens[:, 1:].reshape(-1)).backward()
        optimizer.step()
        assert all(not torch.equal(r.weight_hh_raw, b) for r, b in zip(model.encoder.rnns, raw_before))
        assert not torch.allclose(model.eval()(tiny_tokens).logits, before)

    @pytest.mark.bf16
    def test_trains_under_bf16_autocast(self, tiny_config, tiny_tokens):
        """Under CPU bf16 autocast the LM runs in bf16, the loss and AR/TAR are fp32, grads are fp32."""
        model = LanguageModel(tiny_config).train()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(tiny_tokens)
            loss = nn.functional.cross_entropy(out.logits.float().view(-1, 50), tiny_tokens.view(-1))
            loss = loss + activation_penalty(out.dropped_outputs[-1], 2.0)
            loss = loss + temporal_penalty(out.raw_outputs[-1], 1.0)
        loss.backward()
        assert out.logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
        assert tiny_tokens.dtype == torch.int64
        assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in model.parameters())
