"""Tests for ulmfit/model/quantize.py: int8 dynamic quantization for CPU inference (the API, the CLI's --int8, refusals)."""
import copy
import hashlib
import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch.ao.nn.quantized import dynamic as qdynamic

from test_pipeline import runs  # noqa: F401  (the tiny pretrain -> finetune -> classify run dirs, once per module)
from ulmfit.model import quantize
from ulmfit.predict import LanguageModel, TextClassifier
from ulmfit.config import ModelConfig
from ulmfit.cli import main
from ulmfit.errors import UlmfitError
from ulmfit.data.readers import read_labelled_file
from ulmfit.model.regularizers import WeightDropLSTM
from ulmfit import runtime
from ulmfit.runtime import Runtime


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


class TestConversion:
    def test_the_plain_lstm_twin_computes_what_the_weight_drop_lstm_computes_in_eval(self, gen):
        """InferenceLSTM holds weight_hh_raw in nn.LSTM's weight_hh_l0, with the same gate order: same outputs and
        state, to fp32 rounding."""
        rnn = WeightDropLSTM(6, 10, weight_p=0.5).eval()
        x, state = torch.randn(3, 7, 6, generator=gen), (torch.randn(1, 3, 10, generator=gen),
                                                         torch.randn(1, 3, 10, generator=gen))
        out, (h, c) = rnn(x, state)
        twin_out, (twin_h, twin_c) = quantize.InferenceLSTM(rnn)(x, state)
        for ours, twin in ((out, twin_out), (h, twin_h), (c, twin_c)):
            torch.testing.assert_close(twin, ours, rtol=1e-5, atol=1e-6)

    def test_the_lstms_and_linears_become_torch_dynamic_int8_modules(self, tiny_config):
        """The classifier's 3 LSTMs and 2 head Linears are torch.ao.nn.quantized.dynamic modules; the embedding
        stays an fp32 nn.Embedding."""
        model = quantize.quantize_classifier(TextClassifier(tiny_config, 2).eval())
        assert [type(rnn.lstm) for rnn in model.encoder.rnns] == [qdynamic.LSTM] * 3
        assert [type(m) for m in model.head.modules() if isinstance(m, (nn.Linear, qdynamic.Linear))] == \
            [qdynamic.Linear] * 2
        assert type(model.encoder.embedding) is nn.Embedding and model.encoder.embedding.weight.dtype == torch.float32

    def test_the_language_model_decoder_is_quantized_too(self, tiny_config):
        """For generate: the LM's decoder becomes an int8 Linear, the (tied) embedding stays fp32."""
        model = quantize.quantize_language_model(LanguageModel(tiny_config).eval())
        assert isinstance(model.decoder, qdynamic.Linear) and type(model.encoder.embedding) is nn.Embedding

    def test_training_an_int8_model_is_refused(self, tiny_config, tiny_tokens):
        """A forward in training mode raises a UlmfitError (int8 weights would silently not train)."""
        model = quantize.quantize_classifier(TextClassifier(tiny_config, 2).eval()).train()
        with pytest.raises(UlmfitError, match="int8, which is for inference only"):
            model(tiny_tokens, torch.ones_like(tiny_tokens, dtype=torch.bool))

    def test_torchs_deprecation_notices_do_not_reach_the_user(self):
        """Quantizing prints nothing on stderr even with every warning on (a fresh process: torch warns once)."""
        code = ("from ulmfit.config import ModelConfig; from ulmfit.predict import TextClassifier; "
                "from ulmfit.model.quantize import quantize_classifier; "
                "quantize_classifier(TextClassifier(ModelConfig(vocab_size=50, emb_size=8, hidden_size=12, "
                "n_layers=2), 2).eval())")
        proc = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0 and proc.stderr == ""


@pytest.mark.skipif(runtime.cpu_family() != "x86" or "onednn" not in torch.backends.quantized.supported_engines
                    or "x86" not in torch.backends.quantized.supported_engines,
                    reason="the engine order concerns x86 CPUs whose torch has the onednn and x86 engines")
class TestEngineChoice:
    """On x86, onednn's int8 products run first where the CPU has int8 dot products (VNNI, AMX), fbgemm's (the
    "x86" engine) elsewhere; the CPU's flags are faked, so both branches run on any x86 machine."""

    @pytest.mark.parametrize("int8_dot, engine", [(True, "onednn"), (False, "x86")])
    def test_the_engine_follows_the_cpus_int8_instructions(self, monkeypatch, int8_dot, engine):
        monkeypatch.setattr(runtime, "has_int8_dot", lambda: int8_dot)
        assert quantize.int8_engine() == engine

    def test_a_model_quantized_for_either_engine_gives_the_same_labels(self, monkeypatch, tiny_tokens):
        torch.manual_seed(0)
        fp32 = TextClassifier(ModelConfig(vocab_size=50, emb_size=16, hidden_size=24, n_layers=2), 3).eval()
        mask = torch.ones_like(tiny_tokens, dtype=torch.bool)
        probs = {}
        for engine in ("onednn", "x86"):
            model = quantize.quantize_classifier(copy.deepcopy(fp32), engine=engine)
            assert torch.backends.quantized.engine == engine
            with torch.inference_mode():
                probs[engine] = model(tiny_tokens, mask).softmax(-1)
        assert (probs["onednn"] - probs["x86"]).abs().max() < 0.01


class TestRefusals:
    def test_a_cpu_without_int8_kernels_is_refused_in_one_line(self, monkeypatch):
        """On a CPU family torch has no quantized engine for, int8 is refused (no silent fp32 fallback)."""
        monkeypatch.setattr(platform, "machine", lambda: "riscv64")
        with pytest.raises(UlmfitError, match="int8 is not available: .* riscv64; use fp32"):
            quantize.int8_engine()

    def test_a_torch_build_without_the_engine_is_refused(self, monkeypatch):
        """Where torch offers none of the CPU's engines (an x86 CPU without AVX2), the message names them."""
        monkeypatch.setitem(runtime.INT8_ENGINES, runtime.cpu_family(), ("no-such-engine",))
        monkeypatch.setattr(runtime, "has_int8_dot", lambda: False)
        with pytest.raises(UlmfitError, match="offers no no-such-engine engine"):
            quantize.int8_engine()

    def test_an_engine_asked_for_that_torch_lacks_is_refused(self):
        """`int8_engine(wanted)` (the benchmarks' override) names what this torch offers instead."""
        with pytest.raises(UlmfitError, match="the no-such-engine int8 engine is not available here"):
            quantize.int8_engine("no-such-engine")

    @pytest.mark.parametrize("device, precision, said", [("cuda", "fp32", "CPU only"),
                                                         ("cpu", "bf16", "--precision bf16"),
                                                         ("cpu", "fp16", "--precision fp16")])
    def test_gpus_and_half_precision_are_refused(self, device, precision, said):
        """int8 runs on the CPU in fp32 between its int8 products: a GPU or bf16/fp16 is refused in one line."""
        with pytest.raises(UlmfitError, match=said):
            quantize.check_int8_runtime(device, precision)


@pytest.fixture(scope="module")
def test_texts(runs):  # noqa: F811
    return read_labelled_file(runs / "test.csv")[0]


class TestTrainedClassifier:
    def test_probabilities_stay_close_to_fp32(self, runs, test_texts):  # noqa: F811
        """On the tiny trained classifier, int8 moves no probability by more than 0.01 and keeps >= 95% of the
        argmax. Measured here: 0.0008 at most, 0.0003 on average (x86 engine); 0.01 leaves room for the other
        engines' rounding (fbgemm, qnnpack) while staying far below this model's margins (its top probability is
        0.55 or more). A wrongly copied weight is the exact conversion test's to catch, not this one's."""
        fp32 = TextClassifier.from_pretrained(runs / "cls", device="cpu").predict_proba(test_texts)
        int8 = TextClassifier.from_pretrained(runs / "cls", int8=True).predict_proba(test_texts)
        assert np.abs(int8 - fp32).max() <= 0.01
        assert (int8.argmax(1) == fp32.argmax(1)).mean() >= 0.95

    def test_the_run_dir_is_not_changed(self, runs, test_texts):  # noqa: F811
        """Loading and predicting in int8 writes nothing: every file of the run dir keeps its bytes."""
        def snapshot():
            return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((runs / "cls").rglob("*"))
                    if p.is_file()}
        before = snapshot()
        TextClassifier.from_pretrained(runs / "cls", int8=True).predict(test_texts[:5])
        assert snapshot() == before

    def test_a_bf16_runtime_is_refused_for_an_int8_model(self, runs, test_texts):  # noqa: F811
        """predict_proba under a bf16 Runtime refuses an int8 model in one line rather than mixing the two."""
        model = TextClassifier.from_pretrained(runs / "cls", int8=True)
        with pytest.raises(UlmfitError, match="int8 cannot be combined with --precision bf16"):
            model.predict_proba(test_texts[:2], rt=Runtime(device=torch.device("cpu"), precision="bf16"))


class TestCommandLine:
    def test_predict_int8_gives_the_api_int8_probabilities(self, runs, test_texts, capsys):  # noqa: F811
        """`ulmfit predict DIR TEXTS --int8` prints the probabilities of from_pretrained(DIR, int8=True)."""
        assert main(["predict", str(runs / "cls"), *test_texts[:4], "--int8"]) == 0
        printed = _last_json(capsys)["predictions"]
        model = TextClassifier.from_pretrained(runs / "cls", int8=True)
        expected = model.predict_proba(test_texts[:4])
        got = np.array([[p["probabilities"][n] for n in model.label_names] for p in printed])
        np.testing.assert_allclose(got, expected, atol=1e-5)

    def test_evaluate_int8_scores_within_a_few_points_of_fp32(self, runs, capsys):  # noqa: F811
        """`ulmfit evaluate DIR --data test.csv --int8` runs, and its accuracy is fp32's to within 5 points
        (3 of the 60 test texts)."""
        assert main(["evaluate", str(runs / "cls"), "--data", str(runs / "test.csv")]) == 0
        fp32 = _last_json(capsys)["accuracy"]
        assert main(["evaluate", str(runs / "cls"), "--data", str(runs / "test.csv"), "--int8"]) == 0
        assert abs(_last_json(capsys)["accuracy"] - fp32) <= 0.05

    def test_generate_int8_writes_a_continuation(self, runs, capsys):  # noqa: F811
        """`ulmfit generate DIR PROMPT --int8` samples from the int8 language model."""
        assert main(["generate", str(runs / "ft"), "The team", "--n-words", "5", "--int8"]) == 0
        assert _last_json(capsys)["text"].startswith("The team")

    def test_no_engine_exits_2_with_one_line(self, runs, monkeypatch, capsys):  # noqa: F811
        """Where int8 cannot run, `predict --int8` exits 2 with one error line, before loading anything."""
        monkeypatch.setattr(platform, "machine", lambda: "riscv64")
        assert main(["predict", str(runs / "cls"), "Goal!", "--int8"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("ulmfit: error: int8 is not available")
