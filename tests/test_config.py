"""Presets parse, overrides are type-checked, configs round-trip through JSON."""
import json

import pytest

from ulmfit.config import PRESET_NAMES, STAGES, StageConfig, apply_overrides, preset
from ulmfit.errors import UlmfitError


class TestPresets:
    @pytest.mark.parametrize("name", PRESET_NAMES)
    @pytest.mark.parametrize("stage", STAGES)
    def test_every_preset_round_trips_through_json(self, name, stage):
        """A preset survives to_dict -> JSON -> from_dict unchanged, as it does inside a checkpoint."""
        config = preset(name, stage)
        assert StageConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config

    def test_paper_preset_matches_the_papers_sizes(self):
        """`paper` is emb 400, hidden 1152, 3 layers with fastai's LM dropouts (ULMFiT §4, AWD-LSTM)."""
        m = preset("paper", "pretrain").model
        assert (m.emb_size, m.hidden_size, m.n_layers) == (400, 1152, 3)
        assert (m.dropout_embed, m.dropout_input, m.dropout_hidden, m.dropout_weight, m.dropout_output) == (
            0.02, 0.25, 0.15, 0.2, 0.1)

    def test_classifier_preset_uses_classifier_dropouts(self):
        """The classify stage starts from fastai's awd_lstm_clas_config dropouts."""
        assert preset("paper", "classify").model.dropout_weight == 0.5

    def test_unknown_preset_is_a_user_error(self):
        """A misspelt preset names the valid ones."""
        with pytest.raises(UlmfitError, match="paper"):
            preset("papr", "pretrain")


class TestOverrides:
    def test_int_is_accepted_for_a_float_field(self):
        """`lr=1` converts to 1.0 instead of failing the type check (nanoGPT's trap)."""
        assert apply_overrides(preset("tiny", "pretrain"), ["lr=1"]).train.lr == 1.0

    def test_qualified_and_bare_names_both_work(self):
        """`train.epochs` and `emb_size` both resolve to their unique field."""
        config = apply_overrides(preset("tiny", "pretrain"), ["train.epochs=3", "emb_size=16"])
        assert (config.train.epochs, config.model.emb_size) == (3, 16)

    def test_ambiguous_name_asks_for_the_section(self):
        """`vocab_size` exists in tokenizer and model, so it must be qualified."""
        with pytest.raises(UlmfitError, match="tokenizer.vocab_size"):
            apply_overrides(preset("tiny", "pretrain"), ["vocab_size=10"])

    def test_unknown_field_suggests_close_matches(self):
        """A typo gets a did-you-mean with the closest valid names."""
        with pytest.raises(UlmfitError, match="did you mean.*dropout_weight"):
            apply_overrides(preset("tiny", "pretrain"), ["dropout_wieght=0.1"])

    @pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
    def test_non_finite_numbers_are_rejected(self, value):
        """NaN and infinities never reach a run."""
        with pytest.raises(UlmfitError, match="finite"):
            apply_overrides(preset("tiny", "pretrain"), [f"lr={value}"])

    def test_out_of_range_dropout_is_rejected(self):
        """An effective dropout of 1 or more is refused, naming the field."""
        with pytest.raises(UlmfitError, match="dropout_hidden"):
            apply_overrides(preset("tiny", "pretrain"), ["dropout_hidden=1.5"])

    def test_bool_and_choice_fields_are_checked(self):
        """Booleans parse from words; choice fields list their options."""
        assert apply_overrides(preset("tiny", "finetune"), ["backwards=yes"]).train.backwards is True
        with pytest.raises(UlmfitError, match="gradual"):
            apply_overrides(preset("tiny", "classify"), ["strategy=sideways"])

    def test_overrides_do_not_mutate_the_input(self):
        """apply_overrides returns a copy."""
        base = preset("tiny", "pretrain")
        apply_overrides(base, ["lr=0.5"])
        assert base.train.lr != 0.5


def test_pretraining_presets_train_every_layer_at_one_lr():
    """ULMFiT §3.1 pretrains at a single LR; the 2.6 ratio is the fine-tuning technique of §3.2."""
    for name in ("tiny", "small", "paper"):
        assert preset(name, "pretrain").train.lr_decay_per_layer == 1.0
        assert preset(name, "finetune").train.lr_decay_per_layer == 2.6
