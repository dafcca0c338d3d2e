"""An imported fastai LM through the whole CLI: finetune -> classify -> evaluate -> predict, forward and backward,
and `make classify PRETRAINED=DIR` (issue 15's "done when"). Random weights at the tiny preset's size stand in for
wt103 (which these machines cannot download); the vocabulary is fastai's, built from the texts by fastai's rules.
"""
import csv
import json
import os
import pickle
import shutil
import subprocess
import sys

import pytest
import torch

pytest.importorskip("spacy", reason="the fastai tokenizer needs spaCy (pip install 'spacy>=3,<4')")

from tests.synthetic import labelled_topics  # noqa: E402
from tests.test_datasets import MIRROR, needs_mirror  # noqa: E402
from tests.test_fastai_interop import as_bytes, fastai_state  # noqa: E402
from ulmfit import checkpoint as ckpt  # noqa: E402
from ulmfit.cli import main  # noqa: E402
from ulmfit.config import TokenizerConfig  # noqa: E402
from ulmfit.text.fastai_tokenizer import FastaiTokenizer  # noqa: E402

SMALL = ["--preset", "tiny", "--max-steps", "6"]


def write_csv(path, texts, labels):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(zip(texts, labels))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """fastai-format files (weights .pth + vocabulary .pkl) and labelled CSVs."""
    root = tmp_path_factory.mktemp("fastai")
    texts, labels = labelled_topics(160, seed=0)
    vocab = FastaiTokenizer.train(texts, TokenizerConfig(model_type="fastai", min_freq=1), root / "tok").vocab
    (root / "lm.pth").write_bytes(as_bytes({"model": fastai_state("tiny", len(vocab)), "opt": {}}))
    (root / "itos.pkl").write_bytes(pickle.dumps(vocab))
    write_csv(root / "train.csv", texts[:120], labels[:120])
    write_csv(root / "valid.csv", texts[120:140], labels[120:140])
    write_csv(root / "test.csv", texts[140:], labels[140:])
    return root


def run(capsys, *argv) -> dict:
    assert main([str(a) for a in argv]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_imported_lm_through_the_cli(files, tmp_path, capsys):
    """lm import -> finetune -> classify -> evaluate -> predict, forward and backward, then their ensemble and a
    generation from the imported LM."""
    data = ["--train", files / "train.csv", "--valid", files / "valid.csv"]
    classifiers = []
    for direction in ("fwd", "bwd"):
        back = ["--backwards"] if direction == "bwd" else []
        lm, ft, cls = tmp_path / f"lm-{direction}", tmp_path / f"ft-{direction}", tmp_path / f"cls-{direction}"
        run(capsys, "lm", "import", "--fastai", files / "lm.pth", files / "itos.pkl", "--preset", "tiny",
            "--out", lm, *back)
        run(capsys, "finetune", "--pretrained", lm, *data, *SMALL, "--out", ft, *back)
        result = run(capsys, "classify", "--finetuned", ft, *data, "--test", files / "test.csv", *SMALL,
                     "--out", cls, *back)
        assert result["n_test"] == 20
        _, config, _, tokenizer = ckpt.load_run(cls)
        assert tokenizer.kind == "fastai" and config.model.pad_id == 1
        assert config.train.backwards == (direction == "bwd")
        assert run(capsys, "evaluate", cls, "--data", files / "test.csv", "--no-baseline")["n"] == 20
        predicted = run(capsys, "predict", cls, "The striker scored a goal", "--no-baseline")
        assert predicted["predictions"][0]["label"] in ("food", "sport")
        classifiers.append(cls)
    both = run(capsys, "evaluate", *classifiers, "--data", files / "test.csv", "--no-baseline")
    assert both["n"] == 20 and len(both["models"]) == 2
    text = run(capsys, "generate", tmp_path / "lm-fwd", "The match", "--n-words", "5")
    assert text["text"].lower().startswith("the match")


def test_finetune_moves_to_the_target_vocabulary(files, tmp_path, capsys):
    """As fastai's match_embeds: the fine-tuned LM has the target corpus's own words; shared words keep their rows."""
    lm, ft = tmp_path / "lm", tmp_path / "ft"
    run(capsys, "lm", "import", "--fastai", files / "lm.pth", files / "itos.pkl", "--preset", "tiny", "--out", lm)
    target = tmp_path / "target.csv"
    write_csv(target, ["Zebra quagga okapi."] * 30 + ["The match was a win."] * 30, ["a"] * 60)
    run(capsys, "finetune", "--pretrained", lm, "--train", target, "--preset", "tiny", "--max-steps", "1",
        "--set", "lr=1e-12", "--out", ft)
    before, after = ckpt.load_run(lm), ckpt.load_run(ft)
    old_vocab, new_vocab = before[3].vocab, after[3].vocab
    assert "zebra" in new_vocab and "zebra" not in old_vocab
    row = lambda run_, vocab, w: run_[2]["encoder.embedding.weight"][vocab.index(w)]  # noqa: E731
    assert torch.allclose(row(before, old_vocab, "match"), row(after, new_vocab, "match"), atol=1e-6)
    mean = before[2]["encoder.embedding.weight"].mean(0)
    assert torch.allclose(row(after, new_vocab, "zebra"), mean, atol=1e-6)      # a new word starts at the mean


def test_tokenizer_encode_prints_fastai_ids(files, tmp_path, capsys):
    lm = tmp_path / "lm"
    run(capsys, "lm", "import", "--fastai", files / "lm.pth", files / "itos.pkl", "--preset", "tiny", "--out", lm)
    assert main(["tokenizer", "encode", str(lm), "The GOAL."]) == 0
    tokens, ids = capsys.readouterr().out.splitlines()[:2]
    assert tokens == "xxbos xxmaj the xxup goal ."
    vocab = FastaiTokenizer.load(lm).vocab
    assert [int(i) for i in ids.split()] == [vocab.index(t) for t in tokens.split()]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@needs_mirror
def test_make_classify_from_an_imported_dir(files, tmp_path):
    """`make classify PRETRAINED=DIR` runs finetune + classify + evaluate from an imported LM (on clickbait)."""
    lm = tmp_path / "imported"
    assert main(["lm", "import", "--fastai", str(files / "lm.pth"), str(files / "itos.pkl"), "--preset", "tiny",
                 "--out", str(lm)]) == 0
    done = subprocess.run(["make", "classify", f"PRETRAINED={lm}", "PRESET=tiny", f"RUNS={tmp_path / 'runs'}",
                           f"PY={sys.executable}", "DATASET=clickbait", "ARGS=--max-steps 4"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "ULMFIT_MIRROR": str(MIRROR)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "runs" / "classify-clickbait-imported-tiny" / "model.pt").is_file()
    assert '"accuracy"' in done.stdout
