"""A tiny pretrain -> finetune -> classify -> evaluate/predict/generate run through the CLI, on data it makes."""
import hashlib
import json
import random

import numpy as np
import pytest
import torch

from ulmfit import checkpoint as ckpt
from ulmfit import pipeline
from ulmfit.cli import main
from ulmfit.predict import classifier_proba, ensemble_proba, load_classifier
from ulmfit.data.readers import read_labelled_file

TOPICS = {
    "sport": "match goal team player score coach league win season striker referee".split(),
    "food": "recipe bake flour sugar oven taste dinner spice butter salad kitchen".split(),
}
COMMON = "the a of and to in is was with for on this that".split()


def _sentence(rng, topic):
    words = [rng.choice(TOPICS[topic] if rng.random() < 0.5 else COMMON) for _ in range(rng.randint(5, 12))]
    return " ".join(words).capitalize() + "."


def _write_labelled(path, topics, seed=1):
    """A CSV with one synthetic sentence per topic in `topics`, in that order."""
    rng = random.Random(seed)
    path.write_text("\n".join(["text,label"] + [f"{_sentence(rng, t)},{t}" for t in topics]) + "\n")
    return path


def _texts_of_many_lengths(n: int, seed: int = 2) -> list[str]:
    """n texts of 1 to 30 synthetic sentences (about 10 to 400 tokens), in no order of length."""
    rng = random.Random(seed)
    return [" ".join(_sentence(rng, rng.choice(list(TOPICS))) for _ in range(rng.randint(1, 30))) for _ in range(n)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three finished stages on synthetic data (a few seconds on the tiny preset)."""
    root = tmp_path_factory.mktemp("pipeline")
    rng = random.Random(0)
    (root / "corpus.txt").write_text("\n".join(_sentence(rng, rng.choice(list(TOPICS))) for _ in range(600)))
    for name, n in (("train.csv", 240), ("test.csv", 60)):
        rows = ["text,label"] + [f"{_sentence(rng, t)},{t}" for t in (rng.choice(list(TOPICS)) for _ in range(n))]
        (root / name).write_text("\n".join(rows) + "\n")
    common = ["--preset", "tiny", "--seed", "0"]
    assert main(["pretrain", "--train", str(root / "corpus.txt"), "--out", str(root / "pre"), "--max-steps", "8",
                 "--set", "tokenizer.vocab_size=60", "--set", "batch_size=8", *common]) == 0
    assert main(["finetune", "--pretrained", str(root / "pre"), "--train", str(root / "train.csv"),
                 "--out", str(root / "ft"), "--max-steps", "5", "--set", "batch_size=8", *common]) == 0
    assert main(["classify", "--finetuned", str(root / "ft"), "--train", str(root / "train.csv"),
                 "--test", str(root / "test.csv"), "--out", str(root / "cls"), "--epochs", "4",
                 "--set", "batch_size=16", *common]) == 0
    # the backward half of the §3.3 ensemble: an LM and a classifier on the reversed token stream
    assert main(["pretrain", "--train", str(root / "corpus.txt"), "--out", str(root / "pre_bwd"), "--backwards",
                 "--max-steps", "8", "--set", "tokenizer.vocab_size=60", "--set", "batch_size=8", *common]) == 0
    assert main(["classify", "--pretrained", str(root / "pre_bwd"), "--backwards", "--train", str(root / "train.csv"),
                 "--out", str(root / "cls_bwd"), "--epochs", "2", "--set", "batch_size=16", *common]) == 0
    return root


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


class TestPipeline:
    @pytest.mark.parametrize("stage", ["pre", "ft", "cls"])
    def test_each_stage_writes_a_complete_run_dir(self, runs, stage):
        """config.json, a state_dict and the tokenizer, and no leftover resume checkpoint."""
        names = {p.name for p in (runs / stage).iterdir()}
        assert {"config.json", "model.pt", "tokenizer.model", "vocab.txt", "metrics.jsonl"} <= names
        assert "resume.pt" not in names

    @pytest.mark.parametrize("stage", ["ft", "cls"])
    def test_runs_load_back_with_one_call(self, runs, stage):
        """from_pretrained rebuilds the saved model in eval mode: every state_dict tensor equals the saved one."""
        from ulmfit.predict import LanguageModel
        from ulmfit.predict import TextClassifier
        model = (LanguageModel if stage == "ft" else TextClassifier).from_pretrained(runs / stage)
        saved, state = ckpt.load_tensors(runs / stage / ckpt.WEIGHTS_FILE), model.state_dict()
        assert state.keys() == saved.keys() and all(torch.equal(state[k], saved[k]) for k in saved)
        assert not model.training
        if stage == "cls":
            assert model.label_names == ["food", "sport"]

    def test_predictions_come_back_in_input_order(self, runs):
        """Documents of very different lengths (batched longest first) get, row by row, what each gets alone."""
        from ulmfit.predict import TextClassifier
        clf = TextClassifier.from_pretrained(runs / "cls")
        rng = random.Random(1)
        texts = [" ".join(_sentence(rng, t) for _ in range(n)) for n, t in
                 zip((1, 9, 3, 14, 2, 6), ("food", "sport", "sport", "food", "food", "sport"))]
        rows = lambda preds: np.array([[p["probabilities"][n] for n in clf.label_names] for p in preds])  # noqa: E731
        alone = rows([clf.predict([t])[0] for t in texts])
        assert len(np.unique(alone.round(5), axis=0)) == len(texts)       # any mix-up of rows would show
        np.testing.assert_allclose(rows(clf.predict(texts, batch_size=4)), alone, rtol=1e-5, atol=1e-6)

    def test_token_budget_batches_give_the_fixed_count_probabilities(self, runs):
        """Cut by a budget of 300 padded tokens (1 to 8 documents a batch), predict_proba returns what the fixed
        8-document batching returns, to fp32 rounding (the LSTM kernel rounds other batch shapes differently)."""
        from ulmfit.predict import TextClassifier
        clf = TextClassifier.from_pretrained(runs / "cls")
        texts = _texts_of_many_lengths(40)
        assert max(len(ids) for ids in clf.tokenizer.encode_documents(texts)) * 8 > 300     # the budget bites
        np.testing.assert_allclose(clf.predict_proba(texts, batch_size=8, max_tokens=300),
                                   clf.predict_proba(texts, batch_size=8, max_tokens=None), rtol=1e-5, atol=1e-6)

    def test_token_budget_batches_keep_the_input_order(self, runs):
        """Row i of predict_proba under a token budget is what text i gets alone."""
        from ulmfit.predict import TextClassifier
        clf = TextClassifier.from_pretrained(runs / "cls")
        texts = _texts_of_many_lengths(12)
        alone = np.concatenate([clf.predict_proba([t]) for t in texts])
        np.testing.assert_allclose(clf.predict_proba(texts, max_tokens=300), alone, rtol=1e-5, atol=1e-6)

    def test_predict_api_batches_and_returns_probabilities(self, runs):
        """predict(texts) gives one label and a probability per class for every text."""
        from ulmfit.predict import TextClassifier
        preds = TextClassifier.from_pretrained(runs / "cls").predict(["Bake the flour.", "Goal for the team!"] * 40)
        assert len(preds) == 80
        assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-4 for p in preds)

    def test_finetune_never_touches_the_pretrained_dir(self, runs, capsys):
        """Fine-tuning into the pretrained dir itself is refused with exit code 2."""
        before = hashlib.sha256((runs / "pre" / "model.pt").read_bytes()).hexdigest()
        code = main(["finetune", "--pretrained", str(runs / "pre"), "--train", str(runs / "train.csv"),
                     "--out", str(runs / "pre"), "--force", "--preset", "tiny"])
        assert code == 2 and "never overwritten" in capsys.readouterr().err
        assert hashlib.sha256((runs / "pre" / "model.pt").read_bytes()).hexdigest() == before

    def test_evaluate_ends_with_a_json_line(self, runs, capsys):
        """evaluate's JSON line scores the model's own predictions (--no-baseline: whatever the run chose, see
        test_run_report.py): its accuracy is the one recomputed from classifier_proba, and the one classify itself
        reported for --test."""
        assert main(["evaluate", str(runs / "cls"), "--data", str(runs / "test.csv"), "--no-baseline"]) == 0
        result = _last_json(capsys)
        texts, labels = read_labelled_file(runs / "test.csv")
        model = load_classifier(runs / "cls", baseline=False)
        predicted = [model.label_names[i] for i in classifier_proba(model, texts).argmax(1)]
        assert result["n"] == 60
        assert result["accuracy"] == pytest.approx(np.mean([p == y for p, y in zip(predicted, labels)]))
        results = ckpt.read_json(runs / "cls" / ckpt.CONFIG_FILE)["results"]
        assert results["test_accuracy"] == pytest.approx(result["accuracy"])

    def test_ensemble_averages_forward_and_backward(self, runs):
        """ensemble_proba of a forward and a backward classifier is the mean of their own probabilities.

        baseline=False: on this tiny data both runs may deliver TF-IDF + LR alone (lowest validation log-loss),
        whose probabilities are the same for both dirs and would hide a wrong mix of the two LSTMs."""
        texts, _ = read_labelled_file(runs / "test.csv")
        forward = load_classifier(runs / "cls", baseline=False)
        backward = load_classifier(runs / "cls_bwd", baseline=False)
        assert not forward.stage_config.train.backwards and backward.stage_config.train.backwards
        p_forward, p_backward = classifier_proba(forward, texts), classifier_proba(backward, texts)
        assert np.abs(p_forward - p_backward).max() > 1e-3        # else a wrong mix of the two could pass
        probs, names = ensemble_proba([runs / "cls", runs / "cls_bwd"], texts, baseline=False)
        assert names == forward.label_names
        np.testing.assert_allclose(probs, (p_forward + p_backward) / 2, rtol=1e-5, atol=1e-6)

    def test_evaluate_scores_the_ensemble(self, runs, capsys):
        """evaluate with the two dirs scores the argmax of the averaged probabilities."""
        assert main(["evaluate", str(runs / "cls"), str(runs / "cls_bwd"), "--data", str(runs / "test.csv")]) == 0
        result = _last_json(capsys)
        texts, labels = read_labelled_file(runs / "test.csv")
        models = [load_classifier(runs / d) for d in ("cls", "cls_bwd")]
        mean = sum(classifier_proba(m, texts) for m in models) / 2
        predicted = [models[0].label_names[i] for i in mean.argmax(1)]
        assert result["models"] == [str(runs / "cls"), str(runs / "cls_bwd")]
        assert result["accuracy"] == pytest.approx(np.mean([p == y for p, y in zip(predicted, labels)]))

    def test_predict_with_two_dirs_writes_the_average(self, runs, tmp_path):
        """predict --file with the forward and backward dirs writes, per text, the mean of their probabilities."""
        import csv
        assert main(["predict", str(runs / "cls"), str(runs / "cls_bwd"), "--file", str(runs / "test.csv"),
                     "--out", str(tmp_path / "pred.csv")]) == 0
        texts, _ = read_labelled_file(runs / "test.csv")
        models = [load_classifier(runs / d) for d in ("cls", "cls_bwd")]
        mean = sum(classifier_proba(m, texts) for m in models) / 2
        with open(tmp_path / "pred.csv", newline="") as f:
            written = np.array([[float(row[f"p_{n}"]) for n in models[0].label_names] for row in csv.DictReader(f)])
        np.testing.assert_allclose(written, mean, atol=2e-6)

    def test_predict_file_writes_a_csv(self, runs, capsys):
        """predict --file in.csv --out out.csv writes one row per text: its columns, the prediction, probabilities."""
        assert main(["predict", str(runs / "cls"), "--file", str(runs / "test.csv"),
                     "--out", str(runs / "pred.csv")]) == 0
        lines = (runs / "pred.csv").read_text().splitlines()
        assert lines[0] == "text,label,prediction,probability,p_food,p_sport" and len(lines) == 61

    def test_greedy_generation_ignores_the_seed(self, runs, capsys):
        """With temperature 0 decoding is greedy, so two seeds give the same text."""
        outs = []
        for seed in ("1", "2"):
            assert main(["generate", str(runs / "ft"), "The team", "--n-words", "8", "--temperature", "0",
                         "--seed", seed]) == 0
            outs.append(_last_json(capsys)["text"])
        assert outs[0] == outs[1] and outs[0].lower().startswith("the team")

    def test_from_classifier_reuses_its_encoder_under_a_new_label_set(self, runs, tmp_path):
        """classify --from-classifier starts from another classifier's encoder; the head is new, so the labels
        may differ. With the frozen strategy the encoder must come out exactly as it went in."""
        import torch
        from ulmfit import checkpoint as ckpt
        rows = (runs / "train.csv").read_text().splitlines()
        relabelled = [rows[0]] + [r.replace(",food", ",cooking").replace(",sport", ",other") for r in rows[1:]]
        (tmp_path / "train.csv").write_text("\n".join(relabelled) + "\n")
        assert main(["classify", "--from-classifier", str(runs / "cls"), "--train", str(tmp_path / "train.csv"),
                     "--out", str(tmp_path / "cls2"), "--strategy", "frozen", "--max-steps", "3",
                     "--preset", "tiny", "--set", "batch_size=16"]) == 0
        source = ckpt.load_tensors(runs / "cls" / ckpt.WEIGHTS_FILE)
        meta, _, target, _ = ckpt.load_run(tmp_path / "cls2")
        encoder = [k for k in source if k.startswith("encoder.")]
        assert encoder and all(torch.equal(source[k], target[k]) for k in encoder)
        assert meta["labels"] == ["cooking", "other"] and meta["encoder_from"] == "classify"

    def test_one_leftover_training_document_trains(self, runs, tmp_path, capsys):
        """17 training documents in batches of 16 (a last batch of one, on which BatchNorm fails) train to the end."""
        train = _write_labelled(tmp_path / "train.csv", ["food", "sport"] * 8 + ["food"])
        assert main(["classify", "--finetuned", str(runs / "ft"), "--train", str(train), "--valid",
                     str(runs / "test.csv"), "--out", str(tmp_path / "cls"), "--epochs", "2", "--strategy", "full",
                     "--preset", "tiny", "--set", "batch_size=16"]) == 0
        result = _last_json(capsys)
        assert result["n_train"] == 17 and np.isfinite(result["valid_loss"])

    def test_class_weights_are_inverse_frequency(self, runs, tmp_path, monkeypatch, capsys):
        """class_weights=true weighs each class by 1 / its count, scaled so the mean weight over the training
        documents is 1, and the run ends with a finite (weighted) validation loss."""
        seen = {}

        class Recording(pipeline.ClassifierTask):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                seen["weights"] = self.class_weights

        monkeypatch.setattr(pipeline, "ClassifierTask", Recording)
        train = _write_labelled(tmp_path / "train.csv", ["food"] * 10 + ["sport"] * 30)
        assert main(["classify", "--finetuned", str(runs / "ft"), "--train", str(train), "--valid",
                     str(runs / "test.csv"), "--out", str(tmp_path / "cls"), "--max-steps", "3",
                     "--preset", "tiny", "--set", "batch_size=16", "--set", "class_weights=true"]) == 0
        counts = np.array([10, 30])                                   # food, sport (sorted label names)
        weights = seen["weights"].cpu().numpy()
        np.testing.assert_allclose(weights, 40 / (2 * counts), rtol=1e-6)
        assert (weights * counts).sum() / counts.sum() == pytest.approx(1.0)
        assert np.isfinite(_last_json(capsys)["valid_loss"])
