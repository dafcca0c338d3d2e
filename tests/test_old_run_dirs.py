"""Run dirs written before the configs were split (issue 25: the head, then the run settings, out of "train") load
and predict as they did.

tests/fixtures/classify-run-19b116c/ and classify-run-44da1fe/ are tiny classify runs (emb 4, hidden 6, 2 layers,
head 4) written by the code of those commits: 19b116c's config.json keeps the head's fields and the run settings in
"train", 44da1fe's has a "head" section but the run settings still in "train"; each expected_logits.json holds its
code's logits for three fixed documents. The tokenizers are left out (240 KB); the model is rebuilt from the config.
"""
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from ulmfit.config import HEAD_FIELDS, RUN_FIELDS, HeadConfig, RunConfig, StageConfig, apply_overrides, preset
from ulmfit.files import load_tensors, read_json
from ulmfit.predict import TextClassifier

FIXTURES = Path(__file__).parent / "fixtures"
OLD = FIXTURES / "classify-run-19b116c"        # the head's fields and the run settings in "train"
BEFORE_RUN = FIXTURES / "classify-run-44da1fe"  # a "head" section; the run settings still in "train"


def _config(fixture: Path) -> dict:
    return read_json(fixture / "config.json")["config"]


def test_the_heads_fields_and_run_settings_move_from_train_to_their_sections():
    """The oldest "train" section's max_len and head sizes land in HeadConfig, its budgets, checkpoints, precision
    and seed in RunConfig; nothing is lost or invented."""
    old, config = _config(OLD), StageConfig.from_dict(_config(OLD))
    assert config.head == HeadConfig(max_len=200, head_hidden=4, head_dropout=0.1, head_dropout_final=0.1,
                                     read_tokens=0)
    assert config.run == RunConfig(**{k: old["train"][k] for k in RUN_FIELDS if k in old["train"]})
    assert "seed" in old["train"] and "max_steps" in old["train"]       # the fixture does carry run settings
    new = config.to_dict()
    added = {"early_stopping": 0, "read_tokens": 0}          # fields newer than the fixture come in at their defaults
    assert {**new["train"], **new["head"], **new["run"]} == {**old["train"], **added}
    assert not set(new["train"]) & (set(HEAD_FIELDS) | set(RUN_FIELDS))
    assert new["model"] == old["model"] and new["tokenizer"] == {**old["tokenizer"], "fastai_rules": "fastai_v2"}


def test_the_run_settings_move_out_of_a_config_that_already_has_a_head_section():
    """A run dir of the code just before RunConfig (44da1fe): "head" stays as written, "train"'s run settings
    (here max_steps 3, early_stopping 2, threads 1) land in RunConfig."""
    old, config = _config(BEFORE_RUN), StageConfig.from_dict(_config(BEFORE_RUN))
    assert "head" in old and "run" not in old
    assert asdict(config.head) == old["head"]
    assert (config.run.max_steps, config.run.early_stopping, config.run.threads) == (3, 2, 1)
    new = config.to_dict()
    assert {**new["train"], **new["run"]} == old["train"]


@pytest.mark.parametrize("fixture", [OLD, BEFORE_RUN], ids=lambda p: p.name)
def test_a_config_round_trips_through_its_dict(fixture):
    """Today's layout reads back unchanged (the upgrade leaves a config in today's layout alone)."""
    config = StageConfig.from_dict(_config(fixture))
    assert StageConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize("fixture", [OLD, BEFORE_RUN], ids=lambda p: p.name)
def test_the_old_weights_give_the_old_logits(fixture):
    """The classifier rebuilt from the old config loads the old state_dict strictly and gives the logits that
    the code which wrote it gave."""
    meta = read_json(fixture / "config.json")
    config = StageConfig.from_dict(meta["config"])
    model = TextClassifier.from_config(config.model, len(meta["labels"]), config.head, config.train.bptt)
    model.load_state_dict(load_tensors(fixture / "model.pt"))
    expected = json.loads((fixture / "expected_logits.json").read_text())
    with torch.no_grad():
        logits = model.eval()(torch.tensor(expected["tokens"]), torch.tensor(expected["mask"]))
    torch.testing.assert_close(logits, torch.tensor(expected["logits"]), rtol=0, atol=1e-6)


def test_the_old_qualified_names_still_set_the_head():
    """--set train.max_len=... (the name before the split) sets head.max_len, as --set max_len=... does."""
    config = preset("tiny", "classify")
    assert apply_overrides(config, ["train.max_len=99"]).head.max_len == 99
    assert asdict(apply_overrides(config, ["max_len=99"])) == asdict(apply_overrides(config, ["head.max_len=99"]))


def test_the_old_qualified_names_still_set_the_run_settings():
    """--set train.seed=... and train.max_minutes=... (the names before the split) set run.seed and
    run.max_minutes, as the bare names do."""
    config = preset("tiny", "classify")
    old = apply_overrides(config, ["train.seed=7", "train.max_minutes=2.5"])
    assert (old.run.seed, old.run.max_minutes) == (7, 2.5)
    assert asdict(old) == asdict(apply_overrides(config, ["seed=7", "run.max_minutes=2.5"]))
