"""`make demo`'s plan and its shared wall-time budget (issue 14: within 15 minutes on any CPU; issue 27: pretrain,
then `ulmfit fit`)."""
import json

import pytest

from ulmfit.apps import demo
from ulmfit.config import apply_overrides, preset


@pytest.mark.parametrize("plan", [demo.PRETRAIN, demo.QUICK_PRETRAIN], ids=["demo", "quick"])
def test_the_pretraining_overrides_are_a_valid_config(plan):
    """A misspelt override would otherwise surface only minutes into a demo run."""
    name, overrides = plan
    cfg = apply_overrides(preset(name, "pretrain"), overrides)
    assert cfg.train.epochs >= 1


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_fit_gets_what_pretraining_left_of_the_budget(tmp_path, monkeypatch):
    """Pretraining's max_minutes is its share of the budget; fit is given the minutes still left when it starts,
    so a pretraining that overran (its tokenizing, its last validation) shortens fit instead of pushing the demo
    past its budget."""
    clock, given = _Clock(), {}
    monkeypatch.setattr(demo.time, "perf_counter", clock)

    def fake_pretrain(cfg, data, out, force):
        given["pretrain"] = cfg.run.max_minutes
        clock.now += cfg.run.max_minutes * 60 + 60                  # a minute over its share
        out.mkdir(parents=True)
        (out / "config.json").write_text(json.dumps({"stage": "pretrain"}))
        return {"valid_ppl": 80.0}

    def fake_fit(data, out, pretrained, minutes, force):
        given["fit"], given["data"] = minutes, data.dataset
        (out / "lm").mkdir(parents=True)
        (out / "config.json").write_text(json.dumps({"stage": "classify"}))
        (out / "fit.json").write_text(json.dumps({"lm": {"valid_ppl": 30.0}}))
        return {"test_accuracy": 0.99, "lm_minutes": 2.0, "classifier_minutes": 3.0}

    monkeypatch.setattr(demo, "pretrain", fake_pretrain)
    monkeypatch.setattr(demo, "fit", fake_fit)
    results = demo.run_demo(tmp_path, minutes=10)
    assert given["pretrain"] == pytest.approx(10 * demo.PRETRAIN_SHARE, abs=0.01)
    assert given["fit"] == pytest.approx(10 * (1 - demo.PRETRAIN_SHARE) - 1, abs=0.01)
    assert given["data"] == "clickbait"
    assert list(results) == ["pretrain", "finetune", "classify"]
    assert results["finetune"]["seconds"] == 120 and results["classify"]["seconds"] == 180   # the report's rows


def test_a_finished_stage_is_reused(tmp_path, monkeypatch):
    """An interrupted demo picks up where it stopped: a complete run dir is not trained again."""
    for stage, marker in (("pretrain", "model.pt"), ("fit", "fit.json")):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / marker).write_text(json.dumps({"lm": {"valid_ppl": 30.0}}))
        (tmp_path / stage / "config.json").write_text(json.dumps({"results": {"test_accuracy": 0.99}}))

    def refuse(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr(demo, "pretrain", refuse)
    monkeypatch.setattr(demo, "fit", refuse)
    assert demo.run_demo(tmp_path, minutes=10)["classify"]["test_accuracy"] == 0.99
