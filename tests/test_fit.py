"""`ulmfit fit`: one budget for both stages, a run dir every command takes, one-line errors that write nothing
(issue 27)."""
import json

import pytest

from synthetic import labelled_topics, pretrain_tiny
from ulmfit.cli import main
from ulmfit.data.dataspec import DataSpec
from ulmfit.fit import fit
from ulmfit.train import recipe


@pytest.fixture(scope="module")
def pre(tmp_path_factory):
    return pretrain_tiny(tmp_path_factory.mktemp("fit"))


def _csv(path, n, seed):
    texts, labels = labelled_topics(n, seed)
    path.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in zip(texts, labels)))
    return path


@pytest.fixture(scope="module")
def fitted(pre, tmp_path_factory):
    root = tmp_path_factory.mktemp("fitted")
    spec = DataSpec.from_texts(labelled_topics(200, 1), labelled_topics(60, 2), labelled_topics(60, 3))
    result = fit(spec, root / "run", pretrained=pre, minutes=0.8, threads=1)
    return root / "run", result


class TestFit:
    def test_one_run_dir_for_every_command(self, fitted, capsys):
        """The classifier, its LM in lm/, report.md and fit.json; `predict` takes the dir as it takes classify's."""
        run, _ = fitted
        assert {"config.json", "model.pt", "report.md", "fit.json", "lm"} <= {p.name for p in run.iterdir()}
        assert (run / "lm" / "model.pt").is_file()
        assert main(["predict", str(run), "Bake the flour with sugar in the oven."]) == 0
        assert "food" in capsys.readouterr().out

    def test_keeps_the_budget(self, fitted):
        """The whole run, both stages and the report, ends within its minutes (plus a margin for the last pass)."""
        _, result = fitted
        assert result["minutes_total"] <= 0.8 * 1.15
        plan = json.loads((fitted[0] / "fit.json").read_text())["plan"]
        assert plan["lm_epochs"] >= 1 and plan["cls_epochs"] >= 1

    def test_report_ends_with_how_the_budget_was_spent(self, fitted):
        """report.md's last section gives each stage's minutes and the plan's decisions, as fit.json has them;
        the encoder is named as the run dir's own lm/, not a machine path."""
        run, _ = fitted
        report = (run / "report.md").read_text()
        tail = report[report.index("## How `ulmfit fit` spent its budget"):]
        summary = json.loads((run / "fit.json").read_text())
        assert f"LM fine-tuning {summary['lm_minutes']:.2f} min" in tail
        assert all(f"- {why}" in tail for why in summary["plan"]["why"])
        assert "run `lm`." in report

    def test_early_stopping_is_on_in_both_stages(self, fitted):
        """Both stages record their best epoch (early stopping keeps its weights)."""
        run, _ = fitted
        for d in (run / "lm", run):
            history = json.loads((d / "config.json").read_text())["history"]
            assert history and all("best_epoch" in h for h in history)


def test_backwards_fit_from_a_backward_lm_and_the_two_directions_ensemble(pre, fitted, tmp_path_factory, capsys):
    """`fit --backwards` from a backward LM gives a backward classifier, and `predict FWD BWD` averages the two
    directions (ULMFiT §3.3's bidirectional ensemble)."""
    root = tmp_path_factory.mktemp("fit-bwd")
    pre_bwd = pretrain_tiny(root, backwards=True)
    spec = DataSpec.from_texts(labelled_topics(200, 1), labelled_topics(60, 2))
    fit(spec, root / "run", pretrained=pre_bwd, minutes=0.8, threads=1, backwards=True)
    assert json.loads((root / "run" / "config.json").read_text())["config"]["train"]["backwards"] is True
    capsys.readouterr()
    assert main(["predict", str(fitted[0]), str(root / "run"), "Bake the flour with sugar in the oven."]) == 0
    assert "food" in capsys.readouterr().out


class TestFitErrors:
    @pytest.mark.parametrize("minutes, says", [("0", "positive"), ("-3", "positive"), ("soon", "not a number"),
                                               ("nan", "positive")])
    def test_bad_minutes(self, pre, tmp_path, capsys, minutes, says):
        out = tmp_path / "run"
        code = main(["fit", "--train", str(_csv(tmp_path / "t.csv", 40, 1)), "--pretrained", str(pre),
                     "--minutes", minutes, "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and says in err and len(err.splitlines()) == 1 and not out.exists()

    def test_budget_too_small_says_the_least_it_needs(self, pre, tmp_path, capsys):
        out = tmp_path / "run"
        code = main(["fit", "--train", str(_csv(tmp_path / "t.csv", 40, 1)), "--pretrained", str(pre),
                     "--minutes", "0.001", "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "too small" in err and "minutes" in err and not out.exists()

    def _refused(self, pre, tmp_path, capsys, *extra):
        out = tmp_path / "run"
        code = main(["fit", "--train", str(_csv(tmp_path / "t.csv", 40, 1)), "--pretrained", str(pre),
                     "--out", str(out), *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and not out.exists()
        return err

    def test_valid_labels_the_training_file_lacks(self, pre, tmp_path, capsys):
        valid = tmp_path / "v.csv"
        valid.write_text("text,label\nA goal in the match.,sport\nAn odd one.,weather\n")
        assert "weather" in self._refused(pre, tmp_path, capsys, "--valid", str(valid))

    def test_empty_unlabelled_file(self, pre, tmp_path, capsys):
        empty = tmp_path / "more.txt"
        empty.write_text("\n\n")
        assert "holds no text" in self._refused(pre, tmp_path, capsys, "--unlabelled", str(empty))


class TestRecipe:
    def test_small_data_gets_small_batches(self):
        """500 texts: batches of 8 (62 updates an epoch); 20,000: 64."""
        assert recipe.cls_batch_size(500) == 8 and recipe.cls_batch_size(2000) == 32
        assert recipe.cls_batch_size(20000) == 64

    def test_short_texts_get_short_windows(self):
        stats = recipe.DataStats(n_train=2000, n_classes=2, mean_tokens=20, lm_tokens=40000)
        assert recipe.lm_bptt(stats) == 35
        assert recipe.lm_bptt(recipe.DataStats(2000, 2, 300, 600000)) == 70

    def test_a_generous_budget_asks_for_every_epoch(self):
        """When the budget holds them, 10 LM and 20 classifier epochs (early stopping ends them sooner)."""
        stats = recipe.DataStats(n_train=2000, n_classes=2, mean_tokens=20, lm_tokens=40000)
        plan = recipe.plan(stats, recipe.Speeds(5000, 5000), seconds=3600)
        assert (plan.lm_epochs, plan.cls_epochs) == (10, 20)

    def test_a_tight_budget_splits_by_what_each_stage_wants(self):
        stats = recipe.DataStats(n_train=2000, n_classes=2, mean_tokens=20, lm_tokens=400000)
        plan = recipe.plan(stats, recipe.Speeds(2000, 2000), seconds=300)
        total = plan.lm_minutes + plan.cls_minutes
        assert total <= 5 and recipe.LM_SHARE_RANGE[0] <= plan.lm_minutes / total <= recipe.LM_SHARE_RANGE[1]


    def test_gradual_unfreezing_epochs_are_counted_cheaper(self):
        """The head-only and partly frozen epochs cost less than an all-layers one, so a budget of 2.5 all-layers
        epochs starts 4 classifier epochs (0.35 + 0.45 + 0.7 = 1.5 before the 4th); the 20th starts once the
        first 19 (17.5 all-layers epochs) fit."""
        assert recipe.unfreezing_cost(3) == pytest.approx(1.5) and recipe.unfreezing_cost(5) == pytest.approx(3.5)
        assert recipe.cls_epochs_in(seconds=25, epoch_s=10, cap=20) == 4
        assert recipe.cls_epochs_in(seconds=175.1, epoch_s=10, cap=20) == 20
        assert recipe.cls_epochs_in(seconds=174.9, epoch_s=10, cap=20) == 19
        assert recipe.cls_epochs_in(seconds=1, epoch_s=10, cap=20) == 1


    def test_the_test_texts_are_reserved_once(self):
        """Scoring a test split costs one pass at inference speed, planned before the stages share the budget:
        500 IMDb-like reviews and 2,000 test reviews in 280 s leave the stages less time than no test split,
        and stages + reserve stay within the budget (without this, the classifier got 6 seconds)."""
        stats, speeds = recipe.DataStats(450, 2, 376, 192_087), recipe.Speeds(2426, 4936)
        assert recipe.reserve_seconds(stats, speeds, 0, 0, 2000) - recipe.RESERVE_SECONDS == pytest.approx(
            2000 * 376 / (4936 * recipe.INFER_SPEEDUP))
        alone = recipe.plan(stats, speeds, 280, n_valid=50)
        tested = recipe.plan(stats, speeds, 280, n_valid=50, n_test=2000)
        assert tested.lm_minutes + tested.cls_minutes < alone.lm_minutes + alone.cls_minutes
        reserve = recipe.reserve_seconds(stats, speeds, 50, tested.read_tokens, 2000)
        assert (tested.lm_minutes + tested.cls_minutes) * 60 + reserve <= 280


class TestReadTokens:
    def test_long_texts_are_read_to_what_the_budget_affords(self):
        """20 Newsgroups-like texts (734 tokens) in 15 minutes: the classifier reads a prefix, and gets its
        CLS_MIN_EPOCHS epochs; short texts are read whole."""
        long = recipe.plan(recipe.DataStats(1800, 20, 734, 1_450_000), recipe.Speeds(2000, 3200), 900, n_valid=200)
        assert recipe.READ_TOKENS_MIN <= long.read_tokens < 734 and long.cls_epochs >= recipe.CLS_MIN_EPOCHS
        assert f"head.read_tokens={long.read_tokens}" in long.classify
        short = recipe.plan(recipe.DataStats(1800, 2, 31, 62_000), recipe.Speeds(2000, 3200), 300, n_valid=200)
        assert short.read_tokens == 0

    def test_the_classifier_reads_only_the_prefix(self, tiny_config):
        """With read_tokens=N, a long text's logits are those of its first N tokens, and a short text's unchanged."""
        import torch
        from ulmfit.model.classifier import TextClassifier
        torch.manual_seed(0)
        model = TextClassifier(tiny_config, 2, bptt=5, read_tokens=12).eval()
        tokens = torch.randint(4, 50, (1, 30))
        full, prefix = torch.ones(1, 30, dtype=torch.bool), torch.ones(1, 12, dtype=torch.bool)
        with torch.no_grad():
            assert torch.allclose(model(tokens, full), model(tokens[:, :12], prefix))
            model.read_tokens = 0
            assert not torch.allclose(model(tokens, full), model(tokens[:, :12], prefix))
