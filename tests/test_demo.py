"""`make demo`'s plan and its shared wall-time budget (issue 14: within 15 minutes on any CPU)."""
import json

import pytest

from ulmfit.apps import demo
from ulmfit.config import apply_overrides, preset


@pytest.mark.parametrize("stage", list(demo.DEMO))
def test_every_demo_stage_is_a_valid_config(stage):
    """A misspelt override would otherwise surface only minutes into a demo run."""
    name, overrides, _share = demo.DEMO[stage]
    cfg = apply_overrides(preset(name, stage), overrides)
    assert cfg.train.epochs >= 1


def test_the_demo_shares_cover_the_whole_budget():
    assert sum(share for *_, share in demo.DEMO.values()) == pytest.approx(1.0)


def test_a_stage_gets_its_share_of_the_time_still_left():
    assert demo.stage_minutes(600, [0.2, 0.3, 0.5]) == pytest.approx(2.0)
    assert demo.stage_minutes(480, [0.3, 0.5]) == pytest.approx(8 * 0.3 / 0.8)


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_an_overrun_is_absorbed_by_the_stages_after_it(tmp_path, monkeypatch):
    """Each stage's max_minutes is its share of what is left when it starts, so a stage that overran (its tokenizing,
    its last validation) shortens the later stages instead of pushing the demo past its budget."""
    clock, given = _Clock(), {}
    monkeypatch.setattr(demo.time, "perf_counter", clock)

    def fake_stage(stage, spent_s):
        def run(cfg, *args, **kwargs):
            given[stage] = cfg.run.max_minutes
            clock.now += spent_s
            run_dir = tmp_path / stage
            run_dir.mkdir()
            (run_dir / "config.json").write_text(json.dumps({"stage": stage}))
            return {"stage": stage}
        return run

    plan = {"pretrain": ("tiny", [], 0.25), "finetune": ("tiny", [], 0.25), "classify": ("tiny", [], 0.5)}
    budget = 10 * 60 * (1 - demo.FINAL_RESERVE)
    monkeypatch.setattr(demo, "pretrain", fake_stage("pretrain", 0.25 * budget + 60))      # a minute over
    monkeypatch.setattr(demo, "finetune", fake_stage("finetune", 0))
    monkeypatch.setattr(demo, "classify", fake_stage("classify", 0))
    demo.run_demo(tmp_path, plan, minutes=10)
    assert given["pretrain"] == pytest.approx(0.25 * budget / 60, abs=0.01)
    left = 0.75 * budget - 60
    assert given["finetune"] == pytest.approx(left / 3 / 60, abs=0.01)
    assert given["classify"] == pytest.approx(left / 60, abs=0.01)
