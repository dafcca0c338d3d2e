"""Tests for ulmfit/train/schedule.py: STLR and one-cycle (ULMFiT §3.2), discriminative LRs, param groups, unfreezing."""
import math

import pytest
import torch
from torch import nn

from ulmfit.config import ModelConfig, TrainConfig
from ulmfit.errors import UlmfitError
from ulmfit.train.schedule import (build_optimizer, constant_lr, discriminative_lrs, lr_at, one_cycle_lr, param_groups,
                             set_trainable, slanted_triangular_lr, unfreeze_plan)


class TiedLM(nn.Module):
    """A three-group stand-in for the LM: embedding, a LayerNorm'd linear, and a decoder tied to the embedding."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(10, 4)
        self.body = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.decoder = nn.Linear(4, 10)
        self.decoder.weight = self.embedding.weight

    def forward(self, tokens):
        return self.decoder(self.norm(self.body(self.embedding(tokens))))

    def layer_groups(self):
        # the tied weight is listed twice on purpose: param_groups must keep it once
        return [("embedding", [self.embedding.weight]), ("body", [*self.body.parameters(), *self.norm.parameters()]),
                ("head", [self.decoder.weight, self.decoder.bias])]


class TestSlantedTriangular:
    def test_endpoints(self):
        """lr_max / ratio at step 0, lr_max at the cut, lr_max / ratio at the last step."""
        lr = lambda t: slanted_triangular_lr(t, 1000, 0.01, cut_frac=0.1, ratio=32)   # noqa: E731
        assert lr(0) == pytest.approx(0.01 / 32)
        assert lr(100) == pytest.approx(0.01)
        assert lr(1000) == pytest.approx(0.01 / 32)

    def test_rises_then_falls_monotonically(self):
        """The LR strictly rises up to the cut and strictly falls after it."""
        lrs = [slanted_triangular_lr(t, 205, 1.0) for t in range(206)]
        cut = math.floor(205 * 0.1)
        assert all(a < b for a, b in zip(lrs[:cut], lrs[1:cut + 1]))
        assert all(a > b for a, b in zip(lrs[cut:-1], lrs[cut + 1:]))

    def test_never_below_floor_when_total_is_not_a_multiple(self):
        """With total_steps * cut_frac fractional, and past the end, the LR stays at or above lr_max / ratio."""
        assert min(slanted_triangular_lr(t, 105, 1.0) for t in range(120)) == pytest.approx(1 / 32)


class TestOtherSchedules:
    def test_one_cycle_endpoints(self):
        """One-cycle starts at lr_max / div, peaks at lr_max after pct_start, ends at lr_max / final_div."""
        assert one_cycle_lr(0, 400, 1.0) == pytest.approx(1 / 25)
        assert one_cycle_lr(100, 400, 1.0) == pytest.approx(1.0)
        assert one_cycle_lr(400, 400, 1.0) == pytest.approx(1e-4)

    def test_lr_at_dispatches_by_name(self):
        """lr_at picks the named schedule, with STLR's cut_frac and ratio from the TrainConfig."""
        cfg = TrainConfig(stlr_cut_frac=0.2, stlr_ratio=10.0)
        assert lr_at("stlr", 0, 100, 1.0, cfg) == pytest.approx(0.1)
        assert lr_at("one_cycle", 25, 100, 1.0, cfg) == one_cycle_lr(25, 100, 1.0)
        assert lr_at("constant", 7, 100, 0.3, cfg) == constant_lr(7, 100, 0.3) == 0.3

    def test_unknown_schedule_is_user_error(self):
        """An unknown schedule name raises UlmfitError."""
        with pytest.raises(UlmfitError):
            lr_at("cosine", 0, 10, 1.0, TrainConfig())


class TestDiscriminativeLRs:
    def test_ratio_between_groups(self):
        """Group k from the top gets exactly lr_top / 2.6^k (ULMFiT §3.2), the top group lr_top itself."""
        assert discriminative_lrs(0.01, 4) == pytest.approx([0.01 / 2.6 ** 3, 0.01 / 2.6 ** 2, 0.01 / 2.6, 0.01])


class TestParamGroups:
    def test_cover_every_parameter_once_with_tied_weight(self):
        """Every parameter of the model is in exactly one group, the tied weight included."""
        model = TiedLM()
        groups = param_groups(model.layer_groups(), discriminative_lrs(1e-3, 3), 0.01)
        ids = [id(p) for g in groups for p in g["params"]]
        assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}

    def test_no_weight_decay_on_biases_and_norms(self):
        """Matrices get the weight decay; biases and LayerNorm parameters get none."""
        groups = param_groups(TiedLM().layer_groups(), [1.0, 1.0, 1.0], 0.01)
        for g in groups:
            assert g["weight_decay"] == (0.0 if all(p.ndim <= 1 for p in g["params"]) else 0.01)

    def test_lr_scale_relative_to_top(self):
        """Each group carries its name, its LR lr_top / 2.6^k and lr_scale = lr / lr_top = 1 / 2.6^k.
        (lr_top is not 1, or a missing division by lr_top would go unseen.)"""
        groups = param_groups(TiedLM().layer_groups(), discriminative_lrs(0.02, 3), 0.01)
        k = {"embedding": 2, "body": 1, "head": 0}                    # groups below the top
        assert [g["name"] for g in groups][:2] == ["embedding", "body"]
        for g in groups:
            depth = k[g["name"].split(".")[0]]
            assert g["lr"] == pytest.approx(0.02 / 2.6 ** depth)
            assert g["lr_scale"] == pytest.approx(1 / 2.6 ** depth)

    def test_language_model_groups_cover_parameters_once(self):
        """The real LanguageModel's layer groups give param groups covering its parameters exactly once."""
        from ulmfit.model.awd_lstm import LanguageModel
        model = LanguageModel(ModelConfig(vocab_size=50, emb_size=8, hidden_size=12, n_layers=3))
        layer_groups = model.layer_groups()
        groups = param_groups(layer_groups, discriminative_lrs(1e-3, len(layer_groups)), 0.01)
        ids = [id(p) for g in groups for p in g["params"]]
        assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}


class TestUnfreezing:
    def test_gradual_plan(self):
        """Gradual: the head alone, then one more group from the top each epoch, then all."""
        assert unfreeze_plan(3, "gradual", 4) == [[2], [1, 2], [0, 1, 2], [0, 1, 2]]

    def test_full_and_frozen_plans(self):
        """Full trains every group every epoch; frozen trains only the head."""
        assert unfreeze_plan(3, "full", 2) == [[0, 1, 2], [0, 1, 2]]
        assert unfreeze_plan(3, "frozen", 2) == [[2], [2]]

    def test_chain_thaw_plan(self):
        """Chain-thaw: the head, then each other group alone from the bottom, then all groups."""
        assert unfreeze_plan(3, "chain-thaw", 5) == [[2], [0], [1], [0, 1, 2], [0, 1, 2]]

    def test_chain_thaw_short_budget_ends_with_all(self):
        """With fewer epochs than stages chain-thaw still ends by training every group."""
        assert unfreeze_plan(4, "chain-thaw", 3) == [[3], [0], [0, 1, 2, 3]]

    def test_unknown_strategy_is_user_error(self):
        """An unknown strategy raises UlmfitError."""
        with pytest.raises(UlmfitError):
            unfreeze_plan(3, "thaw-all", 2)

    def test_set_trainable_flags(self):
        """Only parameters of the chosen groups require grad; the tied weight follows the head group."""
        model = TiedLM()
        set_trainable(model.layer_groups(), [2])
        assert model.decoder.weight.requires_grad and model.embedding.weight.requires_grad
        assert not any(p.requires_grad for p in model.body.parameters())

    def test_set_trainable_accepts_top_n(self):
        """An int n makes the top n groups trainable."""
        model = TiedLM()
        set_trainable(model.layer_groups(), 1)
        assert model.decoder.bias.requires_grad and not model.norm.weight.requires_grad

    def test_frozen_parameters_unchanged_after_step(self):
        """After one AdamW step with weight decay, frozen parameters (even with an old grad) have not moved."""
        torch.manual_seed(0)
        model = TiedLM()
        model(torch.arange(10)).sum().backward()                         # leaves grads everywhere
        set_trainable(model.layer_groups(), [2])
        before = [p.detach().clone() for p in model.body.parameters()]
        optimizer = build_optimizer(param_groups(model.layer_groups(), [1e-2] * 3, 0.1), TrainConfig(lr=1e-2))
        head_before = model.decoder.bias.detach().clone()
        model(torch.arange(10)).sum().backward()
        optimizer.step()
        assert all(torch.equal(b, p) for b, p in zip(before, model.body.parameters()))
        assert not torch.equal(head_before, model.decoder.bias)


class TestBuildOptimizer:
    def test_adamw_with_config_betas(self):
        """build_optimizer makes an AdamW with the config's betas on the foreach path on CPU."""
        groups = param_groups(TiedLM().layer_groups(), [1.0] * 3, 0.01)
        optimizer = build_optimizer(groups, TrainConfig(adam_beta1=0.7, adam_beta2=0.99), "cpu")
        assert isinstance(optimizer, torch.optim.AdamW)
        assert optimizer.defaults["betas"] == (0.7, 0.99) and optimizer.defaults["foreach"] is True
