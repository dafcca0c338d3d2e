"""Tests for ulmfit/analysis/explain.py (integrated gradients, rendering, the confusion-matrix picture, `ulmfit explain`) and
for `metrics.top_losses`.

Two models: a random-weight TextClassifier for the properties IG must have on any model (completeness, the path's
ends are the real forward), and a tiny classifier pair (forward + backward) trained in seconds on synthetic texts
in which one cue word alone decides the label, for what an explanation must find.
"""
import dataclasses
import json
import random
import sys

import numpy as np
import pytest
import torch

from ulmfit.model.classifier import TextClassifier
from ulmfit.cli import main
from ulmfit.config import BOS_ID, EOS_ID, PAD_ID, ModelConfig
from ulmfit.errors import UlmfitError
from ulmfit.analysis.explain import (Explanation, attributions, integrated_gradients, plot_attributions, plot_confusion,
                                    to_html, to_text)
from ulmfit.predict import classifier_proba, load_classifier
from ulmfit.analysis.metrics import top_losses

# ---- a random-weight classifier: the axioms ------------------------------------------------------------------


@pytest.fixture
def random_classifier():
    """3 classes, bptt 4 and max_len 6, so a 14-token document spans 4 chunks and outgrows its pooling window."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=50, emb_size=8, hidden_size=12, n_layers=3)
    return TextClassifier(config, n_classes=3, bptt=4, max_len=6).eval()


def _document(n_words: int, seed: int = 0) -> torch.Tensor:
    words = torch.randint(4, 50, (n_words,), generator=torch.Generator().manual_seed(seed))
    return torch.cat([torch.tensor([BOS_ID]), words, torch.tensor([EOS_ID])])        # (n_words + 2,)


class TestIntegratedGradients:
    @pytest.mark.parametrize("n_words", [3, 12], ids=["one-chunk", "longer-than-max_len"])
    def test_completeness(self, random_classifier, n_words):
        """The scores add up to logit(x) - logit(baseline), within 1% of that change, at 64 steps."""
        result = integrated_gradients(random_classifier, _document(n_words), target=1, steps=64)
        change = result.logits[1] - result.baseline_logits[1]
        assert abs(float(result.scores.sum() - change)) < 0.01 * abs(float(change))

    def test_ends_of_the_path_are_the_real_forward(self, random_classifier):
        """The logits at x are the classifier's own; those at the baseline are the document with its words -> pad."""
        tokens = _document(12)
        result = integrated_gradients(random_classifier, tokens, target=0, steps=8)
        blanked = torch.where((tokens == BOS_ID) | (tokens == EOS_ID), tokens, torch.full_like(tokens, PAD_ID))
        with torch.no_grad():
            mask = torch.ones(1, len(tokens), dtype=torch.bool)
            expected = [random_classifier(t[None], mask)[0] for t in (tokens, blanked)]
        assert torch.allclose(result.logits, expected[0], atol=1e-5)
        assert torch.allclose(result.baseline_logits, expected[1], atol=1e-5)

    def test_tokens_before_the_pooling_window_get_scores(self, random_classifier):
        """BPT3C reads the first chunks without a graph; IG still reaches the tokens there (via the hidden state)."""
        scores = integrated_gradients(random_classifier, _document(12), target=2, steps=8).scores
        # window [8, 14): BPT3C keeps graphs from chunk 2 (position 8) on, so positions 1-7 are outside them
        assert (scores[1:8] != 0).all()

    def test_bos_and_eos_score_zero(self, random_classifier):
        """BOS/EOS keep their embeddings in the baseline, so they get exactly no attribution."""
        scores = integrated_gradients(random_classifier, _document(5), steps=8).scores
        assert scores[0] == 0 and scores[-1] == 0 and (scores[1:-1] != 0).all()

    def test_restores_the_model(self, random_classifier):
        """A model in training mode comes back in training mode, with no hook left on the embedding."""
        random_classifier.train()
        integrated_gradients(random_classifier, _document(4), steps=4)
        assert random_classifier.training
        assert not random_classifier.encoder.embedding._forward_hooks

    def test_zero_steps_is_a_user_error(self, random_classifier):
        """steps=0 is refused with a UlmfitError."""
        with pytest.raises(UlmfitError, match="steps"):
            integrated_gradients(random_classifier, _document(4), steps=0)


# ---- a planted cue: a trained forward + backward pair ---------------------------------------------------------

FILLER = "the a movie film plot actor was is and it this story scene music ending very".split()
CUES = {"pos": "good", "neg": "bad"}


def _cue_text(rng, label):
    words = [rng.choice(FILLER) for _ in range(rng.randint(6, 12))]
    words.insert(rng.randint(0, len(words)), CUES[label])
    return " ".join(words)


def _write_csv(path, rng, n):
    labels = [rng.choice(list(CUES)) for _ in range(n)]
    path.write_text("\n".join(["text,label"] + [f"{_cue_text(rng, lab)},{lab}" for lab in labels]) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def cue_runs(tmp_path_factory):
    """Forward and backward classifiers (sharing one tokenizer) where "good" means pos and "bad" means neg."""
    root = tmp_path_factory.mktemp("explain")
    rng = random.Random(0)
    (root / "corpus.txt").write_text("\n".join(_cue_text(rng, rng.choice(list(CUES))) for _ in range(300)) + "\n")
    train, test = _write_csv(root / "train.csv", rng, 300), _write_csv(root / "test.csv", rng, 60)
    common = ["--preset", "tiny", "--seed", "0", "--threads", "1"]
    lm = ["--max-steps", "2", "--set", "batch_size=8", *common]
    cls = ["--train", train, "--test", test, "--epochs", "6", "--strategy", "full", "--set", "batch_size=16", "--set", "dropout_scale=0.1", *common]
    assert main(["pretrain", "--train", str(root / "corpus.txt"), "--out", str(root / "pre"),
                 "--set", "tokenizer.vocab_size=50", *lm]) == 0
    assert main(["classify", "--pretrained", str(root / "pre"), "--out", str(root / "cls"), *cls]) == 0
    assert main(["pretrain", "--train", str(root / "corpus.txt"), "--out", str(root / "pre_bwd"), "--backwards",
                 "--tokenizer", str(root / "pre"), *lm]) == 0
    assert main(["classify", "--pretrained", str(root / "pre_bwd"), "--backwards", "--out", str(root / "cls_bwd"),
                 *cls]) == 0
    models = {way: load_classifier(root / name, device="cpu") for way, name in (("fwd", "cls"), ("bwd", "cls_bwd"))}
    texts = [_cue_text(random.Random(7 + i), "pos" if i % 2 else "neg") for i in range(20)]
    explained = {way: [attributions(m, t, steps=32) for t in texts] for way, m in models.items()}
    return root, models, texts, explained


def _cue_index(expl: Explanation) -> int:
    hits = [i for i, tok in enumerate(expl.tokens) if tok.strip() in CUES.values()]
    assert len(hits) == 1, expl.tokens                       # the cue is one piece (vocab 50 holds every word)
    return hits[0]


def _top_index(expl: Explanation) -> int:
    return int(np.argmax(np.abs(expl.scores)))


class TestPlantedCue:
    def test_models_learned_the_cue(self, cue_runs):
        """Precondition: both classifiers label nearly every test text right (else the cue test means nothing)."""
        root, models, texts, explained = cue_runs
        for name in ("cls", "cls_bwd"):
            assert json.loads((root / name / "config.json").read_text())["results"]["test_accuracy"] >= 0.9

    def test_cue_gets_the_largest_attribution(self, cue_runs):
        """In at least 80% of new texts the cue word has the largest |score| (the forward model)."""
        hits = [_top_index(e) == _cue_index(e) for e in cue_runs[3]["fwd"]]
        assert np.mean(hits) >= 0.8, hits

    def test_backward_model_answers_in_reading_order(self, cue_runs):
        """The backward model's tokens are the forward tokenization, and its top token is the cue there too."""
        fwd, bwd = cue_runs[3]["fwd"], cue_runs[3]["bwd"]
        assert all(b.tokens == f.tokens for f, b in zip(fwd, bwd))
        hits = [_top_index(b) == _cue_index(b) for b in bwd]
        assert np.mean(hits) >= 0.8, hits

    @pytest.mark.parametrize("way", ["fwd", "bwd"])
    def test_probability_is_the_models(self, cue_runs, way):
        """The label and probability reported equal those of ordinary prediction (classifier_proba)."""
        _, models, texts, explained = cue_runs
        probs = classifier_proba(models[way], texts)
        names = models[way].label_names
        for expl, p in zip(explained[way], probs):
            assert expl.label == expl.predicted == names[int(p.argmax())]
            assert expl.probability == pytest.approx(float(p.max()), abs=1e-4)

    @pytest.mark.parametrize("way", ["fwd", "bwd"])
    def test_completeness_on_the_trained_model(self, cue_runs, way):
        """The completeness gap stays under 5% of the logit change at 32 steps."""
        for expl in cue_runs[3][way]:
            assert abs(expl.delta) < 0.05 * abs(expl.logit - expl.baseline_logit)

    def test_target_explains_another_label(self, cue_runs):
        """target= explains the named label; an unknown one is a UlmfitError listing the labels."""
        model, text = cue_runs[1]["fwd"], cue_runs[2][0]
        other = next(n for n in model.label_names if n != cue_runs[3]["fwd"][0].predicted)
        assert attributions(model, text, target=other, steps=4).label == other
        with pytest.raises(UlmfitError, match="labels are"):
            attributions(model, text, target="maybe", steps=4)


class TestCommand:
    def test_explain_prints_scores_and_a_json_line(self, cue_runs, capsys):
        """`ulmfit explain DIR text` prints a line per token, then one JSON object with label, scores and delta."""
        assert main(["explain", str(cue_runs[0] / "cls"), "the film was good", "--steps", "16"]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        result = json.loads(lines[-1])
        assert set(result) == {"label", "probability", "tokens", "scores", "delta"}
        assert len(result["tokens"]) == len(result["scores"]) == 4
        assert any(line.split()[1:2] == ["good"] for line in lines[:-1])

    def test_unknown_target_is_one_line_exit_2(self, cue_runs, capsys):
        """--target with a label the model does not know: exit 2 and one stderr line."""
        assert main(["explain", str(cue_runs[0] / "cls"), "the film", "--target", "meh"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "unknown target" in err[0]


# ---- rendering -----------------------------------------------------------------------------------------------


def _explanation(tokens, scores) -> Explanation:
    return Explanation(tokens=tokens, scores=scores, label="pos", probability=0.9, delta=0.0, logit=1.0,
                       baseline_logit=0.0, predicted="pos", steps=8)


class TestRendering:
    def test_html_escapes_and_has_one_span_per_token(self):
        """A <script> token comes out escaped, and every token is one span."""
        page = to_html(_explanation([" a", " <script>alert(1)</script>", " b"], [0.5, -1.0, 0.0]))
        assert "<script>" not in page and "&lt;script&gt;" in page
        assert page.count("<span") == 3

    def test_text_lists_each_token_with_its_score(self):
        """Plain text: one line per token with its signed score, no ANSI codes."""
        text = to_text(_explanation([" great", " film"], [0.75, -0.25]), color=False)
        assert "+0.7500  great" in text and "-0.2500  film" in text and "\x1b" not in text

    def test_text_colours_by_sign(self):
        """color=True marks a positive token green and a negative one red."""
        text = to_text(_explanation([" great", " film"], [0.75, -0.25]), color=True)
        assert "\x1b[32mgreat" in text and "\x1b[31mfilm" in text

    def test_by_word_merges_pieces(self):
        """Pieces without a leading space join the word before them, and their scores add."""
        expl = _explanation([" un", "believ", "able", " film"], [1.0, 2.0, 3.0, 4.0])
        assert expl.by_word() == [("unbelievable", 6.0), ("film", 4.0)]


    def test_by_word_folds_case_markers_into_the_next_word(self):
        """xxmaj / xxup are part of the word after them: their score goes to it and its case comes back."""
        expl = _explanation([" xxmaj", " an", " xxup", " nasa", " xxmaj", " un", "sight", "ly"],
                            [1.0, 2.0, 0.5, 0.25, -1.0, 1.0, 1.0, 1.0])
        assert expl.by_word() == [("An", 3.0), ("NASA", 0.75), ("Unsightly", 2.0)]


class TestAttributionPlot:
    def test_words_for_the_label_are_green_and_against_it_red(self, tmp_path):
        """The PNG colours as to_html does: a word with a positive score on green, a negative one on red."""
        image = pytest.importorskip("matplotlib.image")
        expl = Explanation(tokens=[" good", " bad"], scores=[1.0, -1.0], label="pos", probability=0.7, delta=0.0,
                           logit=1.0, baseline_logit=1.0, predicted="pos", steps=8)
        pixels = image.imread(plot_attributions([expl, expl], tmp_path / "ig.png"))[..., :3]
        red, green = pixels[..., 0], pixels[..., 1]
        assert (green - red > 0.3).any() and (red - green > 0.3).any()

    def test_long_texts_wrap(self, tmp_path):
        """A text longer than `width` characters takes more lines, so a taller picture."""
        image = pytest.importorskip("matplotlib.image")
        short = Explanation(tokens=[" word"] * 5, scores=[0.1] * 5, label="a", probability=0.5, delta=0.0, logit=0.0,
                            baseline_logit=0.0, predicted="a", steps=8)
        long = dataclasses.replace(short, tokens=[" word"] * 60, scores=[0.1] * 60)
        heights = [image.imread(plot_attributions([e], tmp_path / f"{n}.png", width=40)).shape[0]
                   for n, e in (("short", short), ("long", long))]
        assert heights[1] > heights[0]


class TestConfusionPlot:
    def test_writes_a_png(self, tmp_path):
        """The picture is a PNG file at the path given."""
        pytest.importorskip("matplotlib")
        path = plot_confusion([[3, 1], [0, 4]], ["neg", "pos"], tmp_path / "cm.png")
        assert path.read_bytes()[:4] == b"\x89PNG"

    def test_without_matplotlib_says_how_to_get_it(self, tmp_path, monkeypatch):
        """Without matplotlib the error is a UlmfitError naming `pip install matplotlib`."""
        for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
            monkeypatch.setitem(sys.modules, name, None)
        with pytest.raises(UlmfitError, match="pip install matplotlib"):
            plot_confusion([[1, 0], [0, 1]], ["a", "b"], tmp_path / "cm.png")


# ---- metrics.top_losses (here with the other "why this label" tools) ------------------------------------------

PROBS = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.05, 0.95], [0.3, 0.7]]
Y_TRUE = [0, 0, 1, 0, 1]          # mistakes: #1 (p_true 0.2), #2 (0.4), #3 (0.05)
TEXTS = ["a", "b", "c", "d", "e"]


class TestTopLosses:
    def test_mistakes_only_largest_loss_first(self):
        """Only misclassified texts, ordered by -log p(true class), largest first; k cuts the list."""
        assert [t["index"] for t in top_losses(PROBS, Y_TRUE, TEXTS, k=10)] == [3, 1, 2]
        assert [t["index"] for t in top_losses(PROBS, Y_TRUE, TEXTS, k=2)] == [3, 1]

    def test_contents(self):
        """Each item holds the text, true and predicted label names, the predicted class's probability and the loss."""
        first = top_losses(PROBS, Y_TRUE, TEXTS, k=1, label_names=["neg", "pos"])[0]
        assert first == {"index": 3, "text": "d", "true": "neg", "predicted": "pos",
                         "probability": pytest.approx(0.95), "loss": pytest.approx(-np.log(0.05))}

    def test_no_mistakes_gives_an_empty_list(self):
        """A classifier that gets everything right has no top losses."""
        assert top_losses([[0.8, 0.2], [0.1, 0.9]], [0, 1], ["x", "y"], k=5) == []
