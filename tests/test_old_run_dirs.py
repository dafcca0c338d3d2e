"""Run dirs written before the configs were split (issue 25) load and predict as they did.

tests/fixtures/classify-run-19b116c/ is a tiny classify run (emb 4, hidden 6, 2 layers, head 4) written by the code
of commit 19b116c: its config.json keeps the head's fields in "train", and expected_logits.json holds that code's
logits for three fixed documents. The tokenizer is left out (240 KB); the model is rebuilt from the config alone.
"""
import json
from dataclasses import asdict
from pathlib import Path

import torch

from ulmfit.config import HeadConfig, StageConfig, apply_overrides, preset
from ulmfit.files import load_tensors, read_json
from ulmfit.predict import TextClassifier

FIXTURE = Path(__file__).parent / "fixtures" / "classify-run-19b116c"


def _old_config() -> dict:
    return read_json(FIXTURE / "config.json")["config"]


def test_the_heads_fields_move_from_train_to_head():
    """The old "train" section's max_len and head sizes land in HeadConfig; nothing is lost or invented."""
    old, config = _old_config(), StageConfig.from_dict(_old_config())
    assert config.head == HeadConfig(max_len=200, head_hidden=4, head_dropout=0.1, head_dropout_final=0.1,
                                     read_tokens=0)
    new = config.to_dict()
    added = {"early_stopping": 0, "read_tokens": 0}          # fields newer than the fixture come in at their defaults
    assert {**new["train"], **new["head"]} == {**old["train"], **added}
    assert new["model"] == old["model"] and new["tokenizer"] == {**old["tokenizer"], "fastai_rules": "fastai_v2"}


def test_a_config_round_trips_through_its_dict():
    """Today's layout reads back unchanged (the upgrade leaves a config with a "head" section alone)."""
    config = StageConfig.from_dict(_old_config())
    assert StageConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_the_old_weights_give_the_old_logits():
    """The classifier rebuilt from the old config loads the old state_dict strictly and gives its logits."""
    meta = read_json(FIXTURE / "config.json")
    config = StageConfig.from_dict(meta["config"])
    model = TextClassifier.from_config(config.model, len(meta["labels"]), config.head, config.train.bptt)
    model.load_state_dict(load_tensors(FIXTURE / "model.pt"))
    expected = json.loads((FIXTURE / "expected_logits.json").read_text())
    with torch.no_grad():
        logits = model.eval()(torch.tensor(expected["tokens"]), torch.tensor(expected["mask"]))
    torch.testing.assert_close(logits, torch.tensor(expected["logits"]), rtol=0, atol=1e-6)


def test_the_old_qualified_names_still_set_the_head():
    """--set train.max_len=... (the name before the split) sets head.max_len, as --set max_len=... does."""
    config = preset("tiny", "classify")
    assert apply_overrides(config, ["train.max_len=99"]).head.max_len == 99
    assert asdict(apply_overrides(config, ["max_len=99"])) == asdict(apply_overrides(config, ["head.max_len=99"]))
