"""Issue 16 §3: every classify run writes report.md beside a TF-IDF + LR baseline (saved without pickle), and offers
the mean of the two only when it beats both on the validation split; predict / evaluate follow the run's choice."""
import json
import random
import re
import shutil
import sys

import numpy as np
import pytest

from ulmfit.analysis import baseline as bl
from ulmfit import pipeline
from ulmfit.checkpoint import CONFIG_FILE, read_json, write_json
from ulmfit.predict import TextClassifier
from ulmfit.cli import main
from ulmfit.config import apply_overrides, preset
from ulmfit.predict import ensemble_proba
from ulmfit.pipeline import DataSpec
from ulmfit.run_report import compare_with_baseline, write_run_report
from synthetic import labelled_topics

_labelled = labelled_topics


def _config(stage: str, *overrides: str):
    return apply_overrides(preset("tiny", stage), ["train.seed=0", *overrides])


def _classify(lm_dir, out_dir, train, test):
    return pipeline.classify(_config("classify", "epochs=2", "batch_size=16"), lm_dir,
                             DataSpec.from_texts(train=train, test=test), out_dir)


def _block(monkeypatch, package: str) -> None:
    """Make `import package` (and its submodules, even those already imported) raise ImportError."""
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")] + [package]:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny pretrain, then a classify run from it with a test split (a few seconds)."""
    root = tmp_path_factory.mktemp("run_report")
    pipeline.pretrain(_config("pretrain", "max_steps=8", "tokenizer.vocab_size=60", "batch_size=8"),
                      DataSpec.from_texts(train=_labelled(600, 0)[0]), root / "pre")
    train, test = _labelled(240, 1), _labelled(60, 2)
    result = _classify(root / "pre", root / "cls", train, test)
    return {"root": root, "dir": root / "cls", "result": result, "train": train, "test": test}


def _with_choice(run, tmp_path, chosen: bool):
    """A copy of the run dir whose config.json says the ensemble was (or was not) chosen."""
    copy = tmp_path / f"cls_{chosen}"
    shutil.copytree(run["dir"], copy)
    meta = read_json(copy / CONFIG_FILE)
    meta["baseline_ensemble"] = chosen
    meta["ulmfit_weight"] = 0.5 if chosen else 1.0      # the plain mean, whatever this tiny run chose
    write_json(copy / CONFIG_FILE, meta)
    return copy


class TestReport:
    def test_report_has_every_section(self, run):
        """report.md: scores beside the baseline, per-class tables, confusion matrices, curves, mistakes."""
        text = (run["dir"] / "report.md").read_text()
        for part in ("## Scores", "| valid | ulmfit |", "| test | TF-IDF + LR |", "| test | mean of the two |",
                     "Does the deep model pay off on your data?", "**Delivered model:**",
                     "## ulmfit on valid", "## ulmfit on test", "| class | precision | recall | F1 | support |",
                     "| true \\ predicted | food | sport |", "![confusion matrix (test)](confusion_test.png)",
                     "![loss curves](loss_curves.png)", "![LR schedule](lr_schedule.png)",
                     "## The 5 most confident mistakes (test)",
                     "![attributions of the mistakes (test)](attributions_test.png)"):
            assert part in text, part
        assert text.count("   > ") == 5 and re.search(r"\w\([+-]\d", text)          # words with their scores

    def test_the_pictures_exist(self, run):
        for name in ("confusion_valid.png", "confusion_test.png", "loss_curves.png", "lr_schedule.png",
                     "attributions_test.png"):
            assert (run["dir"] / name).stat().st_size > 1000, name

    def test_baseline_numbers_are_those_of_the_saved_baseline(self, run):
        """The baseline's test accuracy in the results and the table is what the saved baseline scores."""
        texts, labels = run["test"]
        probs = bl.TfidfLR.load(run["dir"] / "baseline").predict_proba(texts)
        accuracy = float(np.mean([["food", "sport"][i] == y for i, y in zip(probs.argmax(1), labels)]))
        assert run["result"]["baseline_test_accuracy"] == pytest.approx(accuracy)
        assert f"| test | TF-IDF + LR | {accuracy:.4f} |" in (run["dir"] / "report.md").read_text()

    def test_config_records_the_valid_decision(self, run):
        """config.json holds the decision: the ULMFiT weight with the lowest valid log-loss (ties: more ULMFiT)."""
        meta = read_json(run["dir"] / CONFIG_FILE)
        acc = meta["baseline_valid_accuracy"]
        assert set(acc) == {"ulmfit", "tfidf_lr", "mean"}
        losses = {float(w): v for w, v in meta["valid_logloss_by_ulmfit_weight"].items()}
        assert set(losses) == {float(w) for w in meta["valid_accuracy_by_ulmfit_weight"]}
        assert meta["ulmfit_weight"] == min(losses, key=lambda w: (losses[w], -w))
        assert meta["baseline_ensemble"] == (meta["ulmfit_weight"] < 1.0)
        assert meta["results"]["report"] == str(run["dir"] / "report.md")

    def test_long_texts_get_no_attributions(self, run, tmp_path):
        """Over max_tokens, a mistake is shown without scores, and the report says why."""
        copy = _with_choice(run, tmp_path, False)
        splits = {"train": run["train"], "valid": run["test"]}
        probs = {"valid": np.tile([[0.1, 0.9]], (len(run["test"][0]), 1))}      # "sport" for every text
        write_run_report(copy, splits, probs, device="cpu", max_tokens=3)
        assert "no scores above 3" in (copy / "report.md").read_text()

    def test_without_matplotlib_the_report_says_so(self, run, tmp_path, monkeypatch):
        """No picture can be drawn: each says why, and the tables are still written."""
        copy = _with_choice(run, tmp_path, False)
        for name in ("confusion_valid.png", "loss_curves.png"):
            (copy / name).unlink()
        _block(monkeypatch, "matplotlib")
        probs = {"valid": np.tile([[0.1, 0.9]], (len(run["test"][0]), 1))}
        write_run_report(copy, {"train": run["train"], "valid": run["test"]}, probs, device="cpu")
        text = (copy / "report.md").read_text()
        assert "(loss curves not drawn: matplotlib is not installed" in text
        assert "(confusion matrix (valid) not drawn: plotting needs matplotlib" in text
        assert "| true \\ predicted |" in text and not (copy / "loss_curves.png").exists()


class TestWithoutScikitLearn:
    def test_the_run_succeeds_and_the_report_says_how_to_get_the_baseline(self, run, tmp_path, monkeypatch):
        """sklearn missing: classify finishes, the report has the one-line hint and everything else."""
        _block(monkeypatch, "sklearn")
        result = _classify(run["root"] / "pre", tmp_path / "cls", run["train"], run["test"])
        text = (tmp_path / "cls" / "report.md").read_text()
        assert bl.INSTALL_HINT in text and "TF-IDF + LR |" not in text
        assert "## ulmfit on test" in text and (tmp_path / "cls" / "loss_curves.png").is_file()
        assert result["baseline_ensemble"] is False and "test_accuracy" in result
        assert read_json(tmp_path / "cls" / CONFIG_FILE)["baseline_ensemble"] is False
        assert not (tmp_path / "cls" / "baseline" / bl.META_FILE).exists()


class TestBaselineRoundTrip:
    @pytest.mark.parametrize("n_classes", [2, 3])
    def test_reloaded_baseline_gives_sklearns_probabilities(self, n_classes, tmp_path):
        """Saved as JSON + npz and rebuilt with numpy alone, the baseline gives the probabilities of sklearn's own
        fitted pipeline (same C) within 1e-6, also for accents, punctuation, short words and unknown words."""
        from sklearn.linear_model import LogisticRegression
        rng = random.Random(n_classes)
        words = ("Café naïve ÉCOLE a I x ab don't 3.14 well-known straße İstanbul ﬁne the film great dull "
                 "\ttab  two\n\nlines").split(" ")
        texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 15))) for _ in range(300)]
        y = np.array([rng.randrange(n_classes) for _ in texts])
        labels = [f"c{k}" for k in range(n_classes)]
        fitted, by_c = bl.fit_baseline((texts[:200], y[:200]), (texts[200:], y[200:]), labels)
        assert set(by_c) == set(bl.C_GRID) and fitted.C in by_c
        fitted.save(tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [bl.META_FILE, bl.VOCAB_FILE, bl.WEIGHTS_FILE]
        features = bl.tfidf_features()
        reference = LogisticRegression(C=fitted.C, max_iter=2000).fit(features.fit_transform(texts[:200]), y[:200])
        unseen = texts[200:] + ["ZZZ qqq", "x", "Ab."]
        expected = reference.predict_proba(features.transform(unseen))
        np.testing.assert_allclose(bl.TfidfLR.load(tmp_path).predict_proba(unseen), expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose(fitted.predict_proba(unseen), expected, rtol=0, atol=1e-6)


class TestEnsembleDecision:
    Y = np.array([0, 0, 1, 1])
    # ulmfit right on rows 0 and 2, the baseline (less sure) on rows 1 and 3: their mean is right on all four
    WIN = (np.array([[.9, .1], [.4, .6], [.1, .9], [.6, .4]]), np.array([[.45, .55], [.8, .2], [.55, .45], [.2, .8]]))
    # ulmfit right everywhere, the baseline confidently wrong: the mean is wrong on every row
    LOSE = (np.array([[.9, .1], [.9, .1], [.1, .9], [.1, .9]]), np.array([[0., 1.], [0., 1.], [1., 0.], [1., 0.]]))

    def _compare(self, valid, test):
        ys = {"valid": self.Y, "test": self.Y}
        return compare_with_baseline(ys, {"valid": valid[0], "test": test[0]}, {"valid": valid[1], "test": test[1]})

    def test_valid_says_yes_test_says_no(self):
        """The mean wins on valid and loses on test: the ensemble is chosen (test is only reported)."""
        scores = self._compare(self.WIN, self.LOSE)
        assert scores["offer"]["baseline_ensemble"] is True
        assert scores["offer"]["baseline_valid_accuracy"] == {"ulmfit": 0.5, "tfidf_lr": 0.5, "mean": 1.0}
        assert scores["test"]["mean of the two"]["accuracy"] < scores["test"]["ulmfit"]["accuracy"]

    def test_the_baseline_alone_when_it_is_best(self):
        """TF-IDF + LR right everywhere on valid, ULMFiT wrong: the run dir delivers the baseline alone."""
        right = np.array([[.6, .4], [.6, .4], [.4, .6], [.4, .6]])            # right, not sure
        wrong = np.array([[0., 1.], [0., 1.], [1., 0.], [1., 0.]])            # wrong, sure: any mix is wrong
        offer = bl.ensemble_offer(self.Y, wrong, right)
        assert offer["ulmfit_weight"] == 0.0 and offer["delivered"] == "TF-IDF + LR alone"

    def test_valid_says_no_test_says_yes(self):
        """The mirror case: the mean loses on valid and wins on test, so it is not chosen."""
        assert self._compare(self.LOSE, self.WIN)["offer"]["baseline_ensemble"] is False

    def test_confidence_counts_where_accuracy_ties(self):
        """Log-loss decides what accuracy cannot: both models right on every text, TF-IDF + LR barely and ULMFiT
        surely, so ULMFiT alone (equal accuracy at every weight) has the lowest log-loss."""
        sure = np.array([[.95, .05], [.95, .05], [.05, .95], [.05, .95]])
        barely = np.array([[.55, .45], [.55, .45], [.45, .55], [.45, .55]])
        offer = bl.ensemble_offer(self.Y, sure, barely)
        assert set(offer["valid_accuracy_by_ulmfit_weight"].values()) == {1.0}
        assert offer["ulmfit_weight"] == 1.0
        assert bl.ensemble_offer(self.Y, barely, sure)["ulmfit_weight"] == 0.0     # and the mirror image

    def test_a_tie_is_no_gain(self):
        """A mix must beat ULMFiT alone; equalling it keeps ULMFiT alone."""
        same = np.array([[.9, .1], [.9, .1], [.1, .9], [.1, .9]])
        assert bl.ensemble_offer(self.Y, same, same)["baseline_ensemble"] is False


class TestPredictWithTheBaseline:
    def _alone(self, run_dir, texts):
        model = TextClassifier.from_pretrained(run_dir, device="cpu", baseline=False)
        return model.predict_proba(texts), bl.TfidfLR.load(run_dir / "baseline").predict_proba(texts)

    def test_ensemble_proba_follows_the_run_dir(self, run, tmp_path):
        """Chosen: the mean of classifier and baseline; not chosen, or baseline=False: the classifier alone."""
        texts = run["test"][0][:12]
        ulmfit, tfidf = self._alone(run["dir"], texts)
        assert np.abs(ulmfit - tfidf).max() > 1e-3                  # else a wrong mix could pass
        chosen, not_chosen = _with_choice(run, tmp_path, True), _with_choice(run, tmp_path, False)
        np.testing.assert_allclose(ensemble_proba([chosen], texts)[0], (ulmfit + tfidf) / 2, atol=1e-6)
        np.testing.assert_allclose(ensemble_proba([chosen], texts, baseline=False)[0], ulmfit, atol=1e-6)
        np.testing.assert_allclose(ensemble_proba([not_chosen], texts)[0], ulmfit, atol=1e-6)
        model = TextClassifier.from_pretrained(chosen, device="cpu")
        assert [p["label"] for p in model.predict(texts)] == [model.label_names[i] for i in
                                                               ((ulmfit + tfidf) / 2).argmax(1)]

    def test_predict_cli_and_no_baseline(self, run, tmp_path, capsys):
        """`ulmfit predict` prints the mean for a dir that chose it, and the classifier alone with --no-baseline."""
        texts = run["test"][0][:4]
        ulmfit, tfidf = self._alone(run["dir"], texts)
        chosen = _with_choice(run, tmp_path, True)
        for flags, expected in (([], (ulmfit + tfidf) / 2), (["--no-baseline"], ulmfit)):
            assert main(["predict", str(chosen), *texts, *flags]) == 0
            out = json.loads(capsys.readouterr().out.splitlines()[-1])
            got = np.array([[p["probabilities"][n] for n in ("food", "sport")] for p in out["predictions"]])
            np.testing.assert_allclose(got, expected, atol=2e-6)

    def test_evaluate_cli_names_the_dirs_with_a_baseline(self, run, tmp_path, capsys):
        """`ulmfit evaluate` scores the mean where chosen and lists those dirs; --no-baseline lists none."""
        texts, labels = run["test"]
        data = tmp_path / "test.csv"
        data.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in zip(texts, labels)))
        ulmfit, tfidf = self._alone(run["dir"], texts)
        chosen = _with_choice(run, tmp_path, True)
        for flags, probs, listed in (([], (ulmfit + tfidf) / 2, [str(chosen)]), (["--no-baseline"], ulmfit, [])):
            assert main(["evaluate", str(chosen), "--data", str(data), *flags]) == 0
            out = json.loads(capsys.readouterr().out.splitlines()[-1])
            expected = np.mean([["food", "sport"][i] == y for i, y in zip(probs.argmax(1), labels)])
            assert out["baseline"] == listed and out["accuracy"] == pytest.approx(expected)
