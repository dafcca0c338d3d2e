"""Tests for ulmfit/apps/export.py and ulmfit/apps/exported.py: a classifier as TorchScript, served without the model code."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from test_pipeline import _texts_of_many_lengths, runs  # noqa: F401  (the tiny run dirs, once per module)
from ulmfit.predict import TextClassifier
from ulmfit.cli import main
from ulmfit.errors import UlmfitError
from ulmfit.apps.export import export_classifier
from ulmfit import runtime
from ulmfit.apps import exported
from ulmfit.apps.exported import load
from ulmfit.data.readers import read_labelled_file

# TorchScript runs the eager model's own kernels in the same order: measured differences are 0.0 (fp32 and int8,
# tiny model and the demo's clickbait classifier); 1e-5 leaves room for a JIT fusion on another CPU or torch.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def texts(runs):  # noqa: F811
    """The run's test texts, texts of 10 to 400 tokens (several BPT3C chunks), and real English words."""
    return read_labelled_file(runs / "test.csv")[0] + _texts_of_many_lengths(12) + [
        "You Won't Believe What This Dog Did Next", "Parliament passes the budget after a long debate"]


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("exports")
    for name, run, int8, baseline in (("fp32", "cls", False, False), ("int8", "cls", True, False),
                                      ("bwd", "cls_bwd", False, False)):
        export_classifier(runs / run, root / name, int8=int8, baseline=baseline)
    return root


class TestParity:
    @pytest.mark.parametrize("name, run, int8", [("fp32", "cls", False), ("int8", "cls", True),
                                                 ("bwd", "cls_bwd", False)])
    def test_exported_probabilities_match_the_pytorch_model(self, runs, exports, texts, name, run, int8):  # noqa: F811
        """fp32, int8 and a backward model: every probability within TOLERANCE of TextClassifier.predict_proba."""
        ours = TextClassifier.from_pretrained(runs / run, device="cpu", baseline=False, int8=int8).predict_proba(texts)
        exported = load(exports / name).predict_proba(texts)
        assert exported.shape == ours.shape
        assert np.abs(exported - ours).max() <= TOLERANCE

    def test_the_baseline_the_run_chose_is_averaged_in_as_by_from_pretrained(self, runs, texts, tmp_path):  # noqa: F811
        """A run that chose the TF-IDF + LR ensemble on validation: the default export averages it in too. (The
        choice is written into a copy: whether the tiny run makes it depends on its validation split.)"""
        run = tmp_path / "cls"
        shutil.copytree(runs / "cls", run)
        meta = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**meta, "baseline_ensemble": True}))
        ours = TextClassifier.from_pretrained(run, device="cpu").predict_proba(texts)
        export_classifier(run, tmp_path / "with_baseline", baseline=True)
        exported = load(tmp_path / "with_baseline")
        assert exported.baseline is not None
        assert np.abs(exported.predict_proba(texts) - ours).max() <= TOLERANCE

    def test_batching_does_not_change_the_probabilities(self, exports, texts):
        """Token-budget batches, fixed batches of 3 and one text at a time give the same rows, in input order."""
        model = load(exports / "fp32")
        whole = model.predict_proba(texts)
        np.testing.assert_allclose(model.predict_proba(texts, batch_size=3, max_tokens=None), whole, atol=1e-6)
        one_by_one = np.concatenate([model.predict_proba([t]) for t in texts[::7]])
        np.testing.assert_allclose(one_by_one, whole[::7], atol=1e-6)


class TestFiles:
    def test_the_torchscript_file_alone_takes_ids_and_lengths(self, runs, exports):  # noqa: F811
        """torch.jit.load + the tokenizer's ids, as export.py's docstring shows, gives the loader's probabilities."""
        with pytest.warns(DeprecationWarning):                   # torch >= 2.10 says so; the file still loads
            net = torch.jit.load(str(exports / "fp32" / "model.pt"))
        model = load(exports / "fp32")
        ids = model.tokenizer.encode_document("alpha beta gamma")
        with torch.inference_mode():
            probs = net(torch.tensor([ids]), torch.tensor([len(ids)]))[0]
        np.testing.assert_allclose(probs.numpy(), model.predict_proba(["alpha beta gamma"])[0], atol=1e-6)

    def test_export_json_says_what_the_model_is(self, exports):
        meta = json.loads((exports / "int8" / "export.json").read_text())
        assert meta["int8"] is True and meta["int8_engine"] in torch.backends.quantized.supported_engines
        assert meta["baseline"] is False and meta["backwards"] is False and len(meta["labels"]) >= 2
        assert json.loads((exports / "bwd" / "export.json").read_text())["backwards"] is True

    def test_serving_imports_no_model_or_training_code(self, exports):
        """A fresh interpreter that loads and predicts imports none of ulmfit's model, training or pipeline modules."""
        code = ("import sys; from ulmfit.apps.exported import load; load(sys.argv[1]).predict(['a text']); "
                "print(' '.join(sorted(m for m in sys.modules if m.startswith('ulmfit'))))")
        out = subprocess.run([sys.executable, "-c", code, str(exports / "int8")], capture_output=True, text=True,
                             check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout.split()
        assert "ulmfit.apps.exported" in out
        assert not {"ulmfit.model.awd_lstm", "ulmfit.model.classifier", "ulmfit.train.loop", "ulmfit.model.regularizers",
                    "ulmfit.pipeline", "ulmfit.model.quantize"} & set(out)


class TestRefusals:
    def test_a_non_empty_out_dir_is_refused(self, runs, tmp_path):  # noqa: F811
        (tmp_path / "keep.txt").write_text("mine")
        with pytest.raises(UlmfitError, match="is not an empty folder"):
            export_classifier(runs / "cls", tmp_path)
        assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]

    def test_loading_a_run_dir_names_the_export_command(self, runs):  # noqa: F811
        with pytest.raises(UlmfitError, match="not a ulmfit export .*`ulmfit export RUN_DIR --out DIR`"):
            load(runs / "cls")

    def test_empty_texts_are_refused_in_one_line(self, exports):
        with pytest.raises(UlmfitError, match="1 empty text"):
            load(exports / "fp32").predict(["fine", "  "])



@pytest.mark.skipif(not {"onednn", "x86"} <= set(torch.backends.quantized.supported_engines),
                    reason="needs torch's onednn and x86 int8 engines (x86 builds)")
@pytest.mark.parametrize("int8_dot, engine", [(True, "onednn"), (False, "x86")])
def test_an_int8_export_runs_on_this_cpus_best_engine(exports, texts, monkeypatch, int8_dot, engine):
    """Whatever engine the export was made on, it loads on the one this CPU runs best (onednn where the CPU has
    int8 dot products, x86 elsewhere), with the same predictions."""
    monkeypatch.setattr(runtime, "has_int8_dot", lambda: int8_dot)
    model = load(exports / "int8")
    assert torch.backends.quantized.engine == engine
    assert np.abs(model.predict_proba(texts) - load(exports / "fp32").predict_proba(texts)).max() < 0.05

def test_the_cli_exports_int8_and_prints_the_metadata(runs, tmp_path, capsys):  # noqa: F811
    """`ulmfit export DIR --out X --int8 --no-baseline` writes model.pt, export.json and the tokenizer."""
    assert main(["export", str(runs / "cls"), "--out", str(tmp_path / "x"), "--int8", "--no-baseline"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["int8"] is True and result["baseline"] is False
    assert {"model.pt", "export.json", "tokenizer.model", "vocab.txt"} <= {p.name for p in (tmp_path / "x").iterdir()}
