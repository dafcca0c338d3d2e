"""A tiny pretrain -> finetune -> classify -> evaluate/predict/generate run through the CLI, on data it makes."""
import hashlib
import json
import random

import pytest

from ulmfit.cli import main

TOPICS = {
    "sport": "match goal team player score coach league win season striker referee".split(),
    "food": "recipe bake flour sugar oven taste dinner spice butter salad kitchen".split(),
}
COMMON = "the a of and to in is was with for on this that".split()


def _sentence(rng, topic):
    words = [rng.choice(TOPICS[topic] if rng.random() < 0.5 else COMMON) for _ in range(rng.randint(5, 12))]
    return " ".join(words).capitalize() + "."


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

    def test_runs_load_back_with_one_call(self, runs):
        """LanguageModel.from_pretrained and TextClassifier.from_pretrained rebuild the saved models."""
        from ulmfit.awd_lstm import LanguageModel
        from ulmfit.classifier import TextClassifier
        lm = LanguageModel.from_pretrained(runs / "ft")
        clf = TextClassifier.from_pretrained(runs / "cls")
        assert lm.config.vocab_size == clf.tokenizer.vocab_size
        assert clf.label_names == ["food", "sport"]

    def test_predict_api_batches_and_returns_probabilities(self, runs):
        """predict(texts) gives one label and a probability per class for every text."""
        from ulmfit.classifier import TextClassifier
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
        """evaluate prints a report whose last line is JSON with accuracy, macro_f1 and n."""
        assert main(["evaluate", str(runs / "cls"), "--data", str(runs / "test.csv")]) == 0
        result = _last_json(capsys)
        assert result["n"] == 60 and 0 <= result["accuracy"] <= 1 and 0 <= result["macro_f1"] <= 1

    def test_ensemble_of_two_dirs_averages(self, runs, capsys):
        """evaluate accepts several dirs (the forward + backward ensemble) and scores their average."""
        assert main(["evaluate", str(runs / "cls"), str(runs / "cls"), "--data", str(runs / "test.csv")]) == 0
        assert _last_json(capsys)["models"] == [str(runs / "cls")] * 2

    def test_predict_file_writes_a_csv(self, runs, capsys):
        """predict --file in.csv --out out.csv writes one row per text with its label and probabilities."""
        assert main(["predict", str(runs / "cls"), "--file", str(runs / "test.csv"),
                     "--out", str(runs / "pred.csv")]) == 0
        lines = (runs / "pred.csv").read_text().splitlines()
        assert lines[0] == "text,label,p_food,p_sport" and len(lines) == 61

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
