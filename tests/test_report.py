"""The demo report: a markdown table plus loss-curve and LR-schedule PNGs, written from run dirs alone."""
import json

import pytest

from ulmfit.config import preset
from ulmfit.analysis.plots import write_report


@pytest.fixture
def fake_runs(tmp_path):
    """Two run dirs with a config.json and a few metrics.jsonl records each."""
    runs = {}
    for stage in ("finetune", "classify"):
        run = tmp_path / stage
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"stage": stage, "config": preset("tiny", stage).to_dict()}))
        records = [{"kind": "train", "step": s, "loss": 3 - s / 10, "lr": 0.01 * s / 10} for s in (10, 20, 30)]
        records.append({"kind": "epoch", "step": 30, "valid_loss": 2.5})
        (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
        runs[stage] = run
    return runs


class TestReport:
    def test_writes_markdown_and_both_plots(self, fake_runs, tmp_path):
        """report.md links loss_curves.png and lr_schedule.png, and both files exist."""
        results = {"finetune": {"valid_ppl": 40.0, "seconds": 60}, "classify": {"test_accuracy": 0.9, "seconds": 90}}
        path = write_report(fake_runs, results, tmp_path / "out", "demo", ["a note"])
        text = path.read_text()
        assert "| classify |" in text and "test_accuracy 0.9" in text and "- a note" in text
        assert (tmp_path / "out" / "loss_curves.png").stat().st_size > 1000
        assert (tmp_path / "out" / "lr_schedule.png").stat().st_size > 1000

    def test_drawing_leaves_pyplots_backend_alone(self, fake_runs, tmp_path):
        """A notebook that trains a run keeps its inline plots: the report draws without switching pyplot's
        backend (it once called matplotlib.use("Agg"), and every later plt.show() in clickbait.ipynb drew nothing)."""
        import matplotlib
        before = matplotlib.get_backend()
        matplotlib.use("svg")                  # any backend other than Agg, as a notebook's inline one is
        try:
            write_report(fake_runs, {}, tmp_path / "out", "demo", [])
            assert matplotlib.get_backend() == "svg"
        finally:
            matplotlib.use(before)


@pytest.mark.slow
def test_quick_demo_runs_all_three_stages(tmp_path, monkeypatch):
    """`python -m ulmfit.apps.demo --quick` pretrains on WikiText-2, then `fit`s clickbait headlines (LM fine-tuning
    and the classifier), and writes its report."""
    from ulmfit.apps.demo import main
    assert main(["--runs", str(tmp_path), "--quick"]) == 0
    assert (tmp_path / "report.md").is_file() and (tmp_path / "fit" / "model.pt").is_file()
    assert (tmp_path / "fit" / "lm" / "model.pt").is_file()
