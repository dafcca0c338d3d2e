"""Shared fixtures: a tiny model config, a seeded generator and a batch of tokens (STYLE §9)."""
import os

import pytest
import torch
from hypothesis import HealthCheck, settings

from ulmfit.config import ModelConfig
from ulmfit.runtime import precision_problem

TINY_BATCH_SIZE, TINY_BPTT = 4, 7

# Tests use tiny models, for which a second thread costs more in synchronisation than it computes (and on a
# shared machine it can cost 100x). Subprocesses the tests start choose their own threads.
torch.set_num_threads(1)

# Property tests (tests/test_properties.py): a few dozen examples each in the default suite, many more in CI's long
# pass (`HYPOTHESIS_PROFILE=ci-long`, .ci/run). No deadline: a shared CPU makes per-example timings meaningless.
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci-long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.bf16` tests run a bf16 LSTM on the CPU: they skip, with the reason, where the CPU (or
    ULMFIT_DISABLE_BF16=1) rules bf16 out, e.g. on AVX2-only CPUs whose oneDNN has no bf16 LSTM."""
    problem = precision_problem("bf16", "cpu")
    if problem:
        skip = pytest.mark.skip(reason=f"needs CPU bf16: {problem}")
        for item in items:
            if "bf16" in item.keywords:
                item.add_marker(skip)


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
