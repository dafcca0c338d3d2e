"""Shared fixtures: a tiny model config, a seeded generator and a batch of tokens (STYLE §9)."""
import pytest
import torch

from ulmfit.config import ModelConfig

TINY_BATCH_SIZE, TINY_BPTT = 4, 7

# Tests use tiny models, for which a second thread costs more in synchronisation than it computes (and on a
# shared machine it can cost 100x). Subprocesses the tests start choose their own threads.
torch.set_num_threads(1)


@pytest.fixture
def tiny_config() -> ModelConfig:
    """vocab 50, emb 8, hidden 12, 3 layers; dropouts are the LM defaults (every regulariser on)."""
    return ModelConfig(vocab_size=50, emb_size=8, hidden_size=12, n_layers=3)


@pytest.fixture
def gen() -> torch.Generator:
    """A CPU generator seeded with 0, for tests that redraw a mask or need reproducible randomness."""
    return torch.Generator().manual_seed(0)


@pytest.fixture
def tiny_tokens(tiny_config, gen) -> torch.Tensor:
    """(B=4, T=7) token ids in [4, vocab), i.e. no pad/unk/bos/eos."""
    return torch.randint(4, tiny_config.vocab_size, (TINY_BATCH_SIZE, TINY_BPTT), generator=gen)
