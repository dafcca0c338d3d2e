"""Tests for ulmfit/model/classifier.py: masked concat pooling, BPT3C chunking, the pooling head, the classifier."""
import dataclasses

import pytest
import torch

from ulmfit.model.awd_lstm import AWDLSTMEncoder, LanguageModel
from ulmfit.model.classifier import PoolingHead, TextClassifier, encode_in_chunks, masked_concat_pool
from ulmfit.config import PAD_ID, HeadConfig, ModelConfig
from ulmfit.errors import UlmfitError

E = 8


@pytest.fixture
def config():
    """A tiny AWD-LSTM with every dropout off, so eval and train passes are deterministic."""
    return ModelConfig(vocab_size=50, emb_size=E, hidden_size=12, n_layers=3, dropout_embed=0.0,
                       dropout_input=0.0, dropout_hidden=0.0, dropout_weight=0.0, dropout_output=0.0)


@pytest.fixture
def encoder(config):
    torch.manual_seed(0)
    return AWDLSTMEncoder(config).eval()


def padded_batch(lengths, T=None, vocab=50, seed=0):
    """Right-padded random tokens (B, T) and mask (B, T) for documents of the given lengths."""
    gen = torch.Generator().manual_seed(seed)
    T = T or max(lengths)
    tokens = torch.randint(4, vocab, (len(lengths), T), generator=gen)
    mask = torch.arange(T).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return tokens.masked_fill(~mask, PAD_ID), mask


class TestMaskedConcatPool:
    def test_padded_batch_equals_each_sequence_alone(self):
        """Pooling a right-padded batch gives, row by row, the pooling of each unpadded sequence alone."""
        lengths = [5, 2, 7]
        outputs = torch.randn(3, 7, E)
        mask = torch.arange(7).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
        outputs = outputs.masked_fill(~mask.unsqueeze(-1), 1e4)        # padding values that would win the max
        pooled = masked_concat_pool(outputs, mask)
        for b, n in enumerate(lengths):
            alone = masked_concat_pool(outputs[b:b + 1, :n], torch.ones(1, n, dtype=torch.bool))
            torch.testing.assert_close(pooled[b:b + 1], alone)

    def test_last_is_last_real_token(self):
        """The first E features are the output at each document's last real position, not at position T-1."""
        outputs = torch.randn(2, 6, E)
        mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
        pooled = masked_concat_pool(outputs, mask)
        torch.testing.assert_close(pooled[:, :E], torch.stack([outputs[0, 2], outputs[1, 5]]))

    def test_pooled_size_is_three_times_emb(self):
        """[last, max, mean] concatenates three E-sized vectors."""
        pooled = masked_concat_pool(torch.randn(4, 5, E), torch.ones(4, 5, dtype=torch.bool))
        assert pooled.shape == (4, 3 * E)

    def test_bf16_matches_fp32(self):
        """In bf16 the result stays bf16, padding never wins the max, and it matches fp32 within rounding."""
        outputs = torch.randn(2, 9, E)
        mask = torch.arange(9).unsqueeze(0) < torch.tensor([[9], [4]])
        outputs = outputs.masked_fill(~mask.unsqueeze(-1), 1e4)
        low = masked_concat_pool(outputs.bfloat16(), mask)
        assert low.dtype == torch.bfloat16
        torch.testing.assert_close(low.float(), masked_concat_pool(outputs, mask), atol=2e-2, rtol=2e-2)


class TestEncodeInChunks:
    def test_single_chunk_equals_single_pass(self, encoder):
        """When T <= bptt, BPT3C is exactly one encoder call."""
        tokens, mask = padded_batch([6, 4])
        outputs, mask_kept = encode_in_chunks(encoder, tokens, mask, bptt=10, max_len=100)
        torch.testing.assert_close(outputs, encoder(tokens).raw_outputs[-1])
        assert torch.equal(mask_kept, mask)

    def test_hidden_state_carries_across_chunks(self, encoder):
        """With max_len >= T, chunks of bptt carrying (h, c) reproduce one pass over the whole document."""
        tokens, mask = padded_batch([23, 17])
        outputs, mask_kept = encode_in_chunks(encoder, tokens, mask, bptt=5, max_len=100)
        torch.testing.assert_close(outputs, encoder(tokens).raw_outputs[-1])
        assert torch.equal(mask_kept, mask)

    def test_keeps_each_documents_last_max_len_tokens(self, encoder):
        """Each document pools over its own last max_len real tokens, whose outputs match a single pass."""
        tokens, mask = padded_batch([23, 14])
        outputs, mask_kept = encode_in_chunks(encoder, tokens, mask, bptt=5, max_len=6)
        first = 23 - outputs.shape[1]                                  # absolute position of kept column 0
        assert mask_kept.sum(dim=1).tolist() == [6, 6]
        assert mask_kept[0, 17 - first:].all() and mask_kept[1, 8 - first:14 - first].all()
        torch.testing.assert_close(outputs, encoder(tokens).raw_outputs[-1][:, first:])

    def test_gradients_reach_only_kept_chunks(self, encoder):
        """Chunks before the pooling window build no graph; the kept chunks send gradients to the weights."""
        calls = []

        class Recorder(torch.nn.Module):
            def forward(self, chunk, hidden=None):
                out = encoder(chunk, hidden)
                calls.append(out.raw_outputs[-1])
                return out

        tokens = torch.cat([torch.full((1, 10), 7), torch.full((1, 10), 9)], dim=1)  # token 7 only early
        outputs, mask_kept = encode_in_chunks(Recorder(), tokens, torch.ones(1, 20, dtype=torch.bool),
                                              bptt=5, max_len=10)
        outputs.sum().backward()
        assert [c.grad_fn is None for c in calls] == [True, True, False, False]
        emb_grad = encoder.embedding.weight.grad
        assert emb_grad[7].abs().sum() == 0 and emb_grad[9].abs().sum() > 0
        assert all(p.grad is not None for p in encoder.rnns.parameters() if p.requires_grad)


class TestPoolingHead:
    def test_output_shape(self):
        """The head maps (B, 3E) pooled features to (B, C) logits."""
        assert PoolingHead(3 * E, n_classes=5).eval()(torch.randn(4, 3 * E)).shape == (4, 5)

    def test_list_of_hidden_sizes(self):
        """hidden=[16, 8] builds three Linear layers of the requested sizes."""
        head = PoolingHead(3 * E, 3, hidden=[16, 8], dropouts=(0.1, 0.1, 0.1))
        linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linears] == [(3 * E, 16), (16, 8), (8, 3)]

    def test_wrong_number_of_dropouts_is_rejected(self):
        """Each Linear layer needs its own dropout probability."""
        with pytest.raises(ValueError):
            PoolingHead(3 * E, 3, hidden=50, dropouts=(0.1,))


class TestTextClassifier:
    def test_logits_shape_and_dtype(self, config):
        """forward returns fp32 logits (B, C)."""
        tokens, mask = padded_batch([9, 5, 3])
        logits = TextClassifier(config, n_classes=4, bptt=4).eval()(tokens, mask)
        assert logits.shape == (3, 4) and logits.dtype == torch.float32

    def test_padded_row_equals_document_alone(self, config):
        """In eval mode a document's logits do not depend on the padding added by its batch mates."""
        model = TextClassifier(config, n_classes=3, bptt=4, max_len=6).eval()
        tokens, mask = padded_batch([11, 5])
        with torch.no_grad():
            batch = model(tokens, mask)
            alone = model(tokens[1:, :5], mask[1:, :5])
        torch.testing.assert_close(batch[1:], alone)

    @pytest.mark.bf16
    def test_bf16_autocast_gives_fp32_logits(self, config):
        """Under CPU bf16 autocast the logits are still fp32 and finite."""
        tokens, mask = padded_batch([9, 5])
        model = TextClassifier(config, n_classes=2, bptt=4).eval()
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
            logits = model(tokens, mask)
        assert logits.dtype == torch.float32 and torch.isfinite(logits).all()

    def test_layer_groups_partition_parameters(self, config):
        """The groups run embedding, lstm_0..lstm_{L-1}, head and hold every parameter exactly once."""
        model = TextClassifier(config, n_classes=2)
        groups = model.layer_groups()
        assert [name for name, _ in groups] == ["embedding", "lstm_0", "lstm_1", "lstm_2", "head"]
        ids = [id(p) for _, params in groups for p in params]
        assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
        assert all(params for _, params in groups)

    def test_load_encoder_state_copies_weights(self, config):
        """After loading, the classifier's encoder state equals the language model's encoder state."""
        lm = LanguageModel(config)
        model = TextClassifier(config, n_classes=2)
        model.load_encoder_state(lm.state_dict())
        for key, value in lm.encoder.state_dict().items():
            assert torch.equal(model.encoder.state_dict()[key], value), key

    def test_load_encoder_state_rejects_other_sizes(self, config):
        """A language model with another vocabulary raises a UlmfitError that names the mismatch."""
        lm = LanguageModel(dataclasses.replace(config, vocab_size=60))
        with pytest.raises(UlmfitError, match="embedding"):
            TextClassifier(config, n_classes=2).load_encoder_state(lm.state_dict())

    def test_from_config_reads_train_config(self, config):
        """max_len and the head sizes come from the classify stage's HeadConfig, bptt from its TrainConfig."""
        model = TextClassifier.from_config(config, 3, HeadConfig(max_len=99, head_hidden=21), bptt=13)
        assert (model.bptt, model.max_len) == (13, 99)
        assert model.head.layers[2].out_features == 21
